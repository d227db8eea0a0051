/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caller.h"

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

char *cgroup_path_unit(const char *path)
{
	const char *best = NULL;
	size_t best_len = 0;
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len && (ends_with(p, len, ".service") || ends_with(p, len, ".scope"))) {
			best = p;
			best_len = len;
		}
		p += len;
	}
	return best ? strndup(best, best_len) : NULL;
}

char *cgroup_from_proc_text(const char *text)
{
	char *unified = NULL, *named = NULL;
	const char *line = text;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		/* hierarchy-ID:controllers:path */
		const char *c1 = memchr(line, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
		if (c2) {
			size_t plen = len - (size_t)(c2 + 1 - line);
			if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1 && !unified)
				unified = strndup(c2 + 1, plen);
			else if ((size_t)(c2 - c1 - 1) == strlen("name=systemd") &&
			         memcmp(c1 + 1, "name=systemd", strlen("name=systemd")) == 0 &&
			         !named)
				named = strndup(c2 + 1, plen);
		}
		line = end ? end + 1 : NULL;
	}
	if (unified && (strcmp(unified, "/") != 0 || !named)) {
		free(named);
		return unified;
	}
	free(unified);
	return named;
}

/* Reads a small /proc file into buf (NUL-terminated); false if it can't. */
static bool read_proc_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* "/proc/PID/name" into path (64 bytes); by hand: this runs on every
 * audited open. */
static void proc_path(char *path, pid_t pid, const char *name)
{
	char digits[16], *d = digits + sizeof(digits);
	unsigned v = (unsigned)pid;
	do
		*--d = (char)('0' + v % 10);
	while ((v /= 10));
	size_t n = (size_t)(digits + sizeof(digits) - d), k = strlen(name);
	memcpy(path, "/proc/", 6);
	memcpy(path + 6, d, n);
	path[6 + n] = '/';
	memcpy(path + 7 + n, name, k + 1);
}

void caller_init(struct caller *c, pid_t pid, uid_t uid, gid_t gid, bool details)
{
	char path[64], exe[PATH_MAX];
	*c = (struct caller){ .uid = uid, .gid = gid, .pid = pid };
	if (!details)
		goto unknown;

	proc_path(path, pid, "exe");
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		c->exe = strdup(exe);
	} else {
		/* /proc/PID/exe needs ptrace access (PTRACE_MODE_READ): without
		 * CAP_SYS_PTRACE, as under secretsfs.service, every caller of
		 * another uid or with capabilities the daemon lacks is EACCES.
		 * comm is readable by anyone, and set by the process itself:
		 * logged beside exe=?, as a name it gave, not a verified path. */
		char comm[64];
		proc_path(path, pid, "comm");
		if (read_proc_file(path, comm, sizeof(comm))) {
			size_t l = strlen(comm);
			if (l && comm[l - 1] == '\n') /* the kernel's; any other is the name's */
				comm[l - 1] = '\0';
			if (comm[0])
				c->comm = strdup(comm);
		}
	}
	char text[4096]; /* one line per hierarchy: a dozen lines */
	proc_path(path, pid, "cgroup");
	if (read_proc_file(path, text, sizeof(text)))
		c->cgroup = cgroup_from_proc_text(text);
	if (c->cgroup)
		c->unit = cgroup_path_unit(c->cgroup);
unknown:
	if (!c->exe)
		c->exe = strdup("?");
	if (!c->cgroup)
		c->cgroup = strdup("?");
	if (!c->unit)
		c->unit = strdup("-");
}

void caller_clear(struct caller *c)
{
	free(c->exe);
	free(c->cgroup);
	free(c->unit);
	free(c->comm);
	c->exe = c->cgroup = c->unit = c->comm = NULL;
}

int caller_copy(struct caller *dst, const struct caller *src)
{
	*dst = *src;
	dst->exe = strdup(src->exe ? src->exe : "?");
	dst->cgroup = strdup(src->cgroup ? src->cgroup : "?");
	dst->unit = strdup(src->unit ? src->unit : "-");
	dst->comm = src->comm ? strdup(src->comm) : NULL;
	if (!dst->exe || !dst->cgroup || !dst->unit || (src->comm && !dst->comm)) {
		caller_clear(dst);
		return -ENOMEM;
	}
	return 0;
}
