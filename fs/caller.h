/* SPDX-License-Identifier: MIT */
/* Who is asking: the process behind a FUSE request, for policy and audit. */
#ifndef SECRETSFS_CALLER_H
#define SECRETSFS_CALLER_H

#include <stdbool.h>
#include <sys/types.h>

struct caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char *exe;    /* /proc/PID/exe, or "?" */
	char *comm;   /* /proc/PID/comm when exe is "?" (unverified: the process
	               * names itself), else NULL */
	char *cgroup; /* the process's cgroup path ("/system.slice/x.service"), or "?" */
	char *unit;   /* the systemd unit in that path ("x.service"), or "-" */
};

/* Fills c from /proc/PID; never fails (unknown fields read "?").  With
 * details false (no audit, no unit/cgroup rules), /proc is not read: exe
 * and cgroup read "?", unit "-". */
void caller_init(struct caller *c, pid_t pid, uid_t uid, gid_t gid, bool details);
void caller_clear(struct caller *c);
int caller_copy(struct caller *dst, const struct caller *src);

/* The unit named in a cgroup path: its last component that ends in
 * .service or .scope; NULL if none.  Exposed for the unit tests. */
char *cgroup_path_unit(const char *path);
/* The cgroup path in the text of /proc/PID/cgroup: the unified (0::) one,
 * or name=systemd's when the unified one is the root. */
char *cgroup_from_proc_text(const char *text);

#endif
