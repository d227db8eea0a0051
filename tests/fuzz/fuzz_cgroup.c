/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: /proc/PID/cgroup text and cgroup paths (fs/caller.c), and
 * the open policy that matches them (fs/policy.c policy_check).  A process
 * controls its own cgroup path (it can create and enter sub-cgroups it is
 * delegated), so these parsers take hostile input in production.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "caller.h"
#include "policy.h"

static struct policy pol;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *why;
	if (policy_add_unit(&pol, "ai_gateway:ai-gateway.service", &why) < 0 ||
	    policy_add_unit(&pol, "mcp_server:session-*.scope", &why) < 0 ||
	    policy_add_cgroup(&pol, "ai_agent:/system.slice/agent.service", &why) < 0 ||
	    policy_add_cgroup(&pol, "redpanda_cluster:/", &why) < 0)
		abort();
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void check_unit(const char *path)
{
	char *u = cgroup_path_unit(path);
	if (!u)
		return;
	assert(u[0] && !strchr(u, '/'));
	assert(ends_with(u, ".service") || ends_with(u, ".scope"));
	assert(strstr(path, u));
	free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';

	check_unit(text);
	char *cg = cgroup_from_proc_text(text);
	if (cg) {
		assert(strlen(cg) <= size);
		check_unit(cg);
		struct caller c = { .uid = 1000, .gid = 1000, .pid = 1 };
		c.cgroup = cg;
		c.unit = cgroup_path_unit(cg);
		c.exe = strdup("/usr/bin/fuzz");
		if (!c.unit)
			c.unit = strdup("-");
		struct caller copy;
		if (caller_copy(&copy, &c) == 0)
			caller_clear(&copy);
		for (scope_set s = 0; s <= SCOPE_ALL; s++) {
			int r = policy_check(&pol, s, &c);
			assert(r == 0 || r == -EACCES);
		}
		caller_clear(&c); /* frees cg */
	}
	free(text);
	return 0;
}
