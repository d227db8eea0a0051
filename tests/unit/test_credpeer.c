/* SPDX-License-Identifier: MIT */
/* The credential socket's parts that need no systemd: the peer address
 * systemd connects from (fs/credpeer.c) and the rule that decides whom a
 * credential is served to (fs/policy.c policy_check_credential). */
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "harness.h"
#include "credpeer.h"
#include "policy.h"

/* An abstract address holding the n bytes of name after its leading NUL. */
static socklen_t addr(struct sockaddr_un *sa, const char *name, size_t n)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int parse(const char *name, struct credpeer *p)
{
	struct sockaddr_un sa;
	return credpeer_parse(&sa, addr(&sa, name, strlen(name)), p);
}

static void test_good(void)
{
	struct credpeer p;
	CHECK_EQ(parse("7b561f9d5452972f/unit/ai-gateway.service/OPENAI_API_KEY", &p), 0);
	CHECK(strcmp(p.unit, "ai-gateway.service") == 0);
	CHECK(strcmp(p.id, "OPENAI_API_KEY") == 0);
	/* one hex digit (systemd does not pad), a template instance */
	CHECK_EQ(parse("a/unit/getty@tty1.service/K", &p), 0);
	CHECK(strcmp(p.unit, "getty@tty1.service") == 0 && strcmp(p.id, "K") == 0);
	/* escaped unit names (systemd-escape: \x2d) */
	CHECK_EQ(parse("0/unit/a\\x2db.service/K", &p), 0);
	CHECK(strcmp(p.unit, "a\\x2db.service") == 0);

	/* the longest address: 107 bytes after the family, a 16-digit prefix */
	char name[108], unit[90];
	size_t ulen = 107 - 16 - 6 - 1 - 1; /* hex, "/unit/", '/', a 1-byte ID */
	memset(unit, 'u', ulen - 8);
	memcpy(unit + ulen - 8, ".service", 8);
	unit[ulen] = '\0';
	int n = snprintf(name, sizeof(name), "0123456789abcdef/unit/%s/K", unit);
	CHECK_EQ(n, 107);
	struct sockaddr_un sa;
	socklen_t len = addr(&sa, name, (size_t)n);
	CHECK_EQ(len, sizeof(sa));
	CHECK_EQ(credpeer_parse(&sa, len, &p), 0);
	CHECK(strcmp(p.unit, unit) == 0 && strcmp(p.id, "K") == 0);
	/* the kernel's sockaddr_un is the limit: one byte more is no address */
	CHECK_EQ(credpeer_parse(&sa, len + 1, &p), -EPROTO);
}

static void test_bad(void)
{
	static const char *const bad[] = {
		"",                                   /* nothing after the NUL */
		"/unit/x.service/K",                  /* no hex prefix */
		"0123456789abcdef0/unit/x.service/K", /* 17 hex digits */
		"zz/unit/x.service/K",                /* not hex */
		"ab/units/x.service/K",               /* not "/unit/" */
		"ab/unit/",                           /* no unit */
		"ab/unit/x.service",                  /* no ID */
		"ab/unit/x.service/",                 /* empty ID */
		"ab/unit//K",                         /* empty unit */
		"ab/unit/noservice/K",                /* no '.' in the unit */
		"ab/unit/.service/K",                 /* starts with '.' */
		"ab/unit/x y.service/K",              /* space in the unit */
		"ab/unit/x.service/A/B",              /* '/' in the ID */
		"ab/unit/x.service/A\nB",             /* control character */
		"ab/unit/x.service/..",               /* not a file name */
		"ab/unit/x.service/.",
	};
	struct credpeer p;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(bad[i], &p);
		if (r != -EPROTO)
			fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
		CHECK_EQ(r, -EPROTO);
	}
	/* a NUL inside (an address is not NUL-terminated: it must not cut) */
	struct sockaddr_un sa;
	CHECK_EQ(credpeer_parse(&sa, addr(&sa, "ab/unit/x.service/K\0Z", 21), &p), -EPROTO);
	/* a path, not an abstract name */
	socklen_t len = addr(&sa, "ab/unit/x.service/K", 19);
	sa.sun_path[0] = '/';
	CHECK_EQ(credpeer_parse(&sa, len, &p), -EPROTO);
	/* unnamed (autobound empty) and too short to hold a family */
	CHECK_EQ(credpeer_parse(&sa, sizeof(sa_family_t), &p), -EPROTO);
	CHECK_EQ(credpeer_parse(&sa, 0, &p), -EPROTO);
	CHECK_EQ(credpeer_parse(NULL, 20, &p), -EPROTO);
	len = addr(&sa, "ab/unit/x.service/K", 19);
	sa.sun_family = AF_INET;
	CHECK_EQ(credpeer_parse(&sa, len, &p), -EPROTO);
}

static void test_policy(void)
{
	struct policy pol = { 0 };
	const char *why;
	struct caller gw = { .uid = 0,
		             .unit = "ai-gateway.service",
		             .cgroup = "/system.slice/ai-gateway.service" };
	struct caller other = { .uid = 0,
		                .unit = "other.service",
		                .cgroup = "/system.slice/other.service" };
	scope_set gwscope = 1u << SCOPE_AI_GATEWAY, agent = 1u << SCOPE_AI_AGENT;
	/* no rules at all: nothing is served (a read through the mount would
	 * be let in: mode bits guard that) */
	CHECK_EQ(policy_check_credential(&pol, gwscope, &gw), -EACCES);
	CHECK_EQ(policy_check(&pol, gwscope, &gw), 0);
	pol.root_bypass = true; /* systemd is root: no bypass here */
	CHECK_EQ(policy_check_credential(&pol, gwscope, &gw), -EACCES);
	pol.root_bypass = false;

	REQUIRE(policy_add_unit(&pol, "ai_gateway:ai-gateway.service", &why) == 0);
	CHECK_EQ(policy_check_credential(&pol, gwscope, &gw), 0);
	CHECK_EQ(policy_check_credential(&pol, gwscope, &other), -EACCES);
	/* a secret in a scope without rules besides: that scope serves nobody */
	CHECK_EQ(policy_check_credential(&pol, gwscope | agent, &other), -EACCES);
	CHECK_EQ(policy_check_credential(&pol, gwscope | agent, &gw), 0);
	CHECK_EQ(policy_check_credential(&pol, agent, &gw), -EACCES);
	CHECK_EQ(policy_check_credential(&pol, 0, &gw), -EACCES);
	/* cgroup= rules count too */
	REQUIRE(policy_add_cgroup(&pol, "ai_agent:/system.slice/other.service", &why) == 0);
	CHECK_EQ(policy_check_credential(&pol, agent, &other), 0);
	/* patterns */
	REQUIRE(policy_add_unit(&pol, "mcp_server:mcp-*.service", &why) == 0);
	struct caller mcp = { .unit = "mcp-github.service", .cgroup = "/x" };
	CHECK_EQ(policy_check_credential(&pol, 1u << SCOPE_MCP_SERVER, &mcp), 0);
	/* on_rotate: restart only (a reload does not refresh credentials) */
	CHECK_EQ(policy_add_on_rotate(&pol, "ai_gateway:restart", &why), 0);
	CHECK_EQ(pol.restart_on_rotate, gwscope);
	CHECK_EQ(policy_add_on_rotate(&pol, "ai_gateway:reload", &why), -EINVAL);
	CHECK_EQ(policy_add_on_rotate(&pol, "nosuchscope:restart", &why), -EINVAL);
	CHECK_EQ(policy_add_on_rotate(&pol, "ai_agent:", &why), -EINVAL);
	CHECK_EQ(pol.restart_on_rotate, gwscope);
	policy_clear(&pol);
	CHECK_EQ(pol.restart_on_rotate, 0);
}

int main(void)
{
	test_good();
	test_bad();
	test_policy();
	return harness_result("test_credpeer");
}
