/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
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

/* cgroup_from_proc_text; *ret_unified (if given) says whether the path is
 * the unified hierarchy's, which the cgroup's id names (cgroup_cached). */
static char *cgroup_pick(const char *text, bool *ret_unified)
{
	char *unified = NULL, *named = NULL;
	if (ret_unified)
		*ret_unified = false;
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
		if (ret_unified)
			*ret_unified = true;
		return unified;
	}
	free(unified);
	return named;
}

char *cgroup_from_proc_text(const char *text)
{
	return cgroup_pick(text, NULL);
}

/* --- the caller's cgroup by its id ---
 *
 * Reading /proc/PID/cgroup costs more than the rest of an open (the kernel
 * formats every hierarchy's path: 11-35 us here, docs/benchmarks.md); the
 * cgroup's id costs a PIDFD_GET_INFO ioctl on the requester's pidfd,
 * which is kept (task slots, below).  So the path is kept per cgroup id,
 * and an open asks the kernel only for the id of the requester's cgroup
 * (it is blocked in its request: the tid names it).  An id is never reused while the system
 * runs, and an entry is made only after stat(2) of the path under the
 * cgroup2 mount shows that id as its inode, so a process moved between
 * the two reads cannot file a path under the wrong id.  An entry stays
 * right until its cgroup directory is renamed (which only whoever may
 * write its parent can do, and which changes the /proc text the same
 * way).  Only where the unified hierarchy decides (cgroup_pick): with the
 * unified path "/" and a name=systemd hierarchy (cgroup v1 hosts), the
 * path is not the id's, and /proc is read every time, as before.  Kernels
 * without PIDFD_THREAD (6.9) or PIDFD_GET_INFO (6.13), found by a probe
 * on the daemon's own thread at the first request: no slots, /proc every
 * time.
 */
struct caller_pidfd_info { /* linux/pidfd.h's struct pidfd_info, version 0 */
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
};
#define CALLER_PIDFD_GET_INFO _IOWR(0xFF, 11, struct caller_pidfd_info)
#define CALLER_PIDFD_INFO_CGROUPID (1ULL << 2)
#define CALLER_PIDFD_THREAD O_EXCL
#define CGROUP2_MAGIC 0x63677270 /* CGROUP2_SUPER_MAGIC */
#define CGROUP_CACHE_SIZE 64

static struct {
	pthread_mutex_t lock; /* a leaf */
	bool off;             /* no thread pidfds or PIDFD_GET_INFO (cgc_init) */
	const char *mount;    /* the cgroup2 mount, or NULL (set once) */
	struct {
		uint64_t id; /* 0: empty */
		char *path;
	} e[CGROUP_CACHE_SIZE];
} cgc = { .lock = PTHREAD_MUTEX_INITIALIZER };
static pthread_once_t cgc_once = PTHREAD_ONCE_INIT;

static void cgc_find_mount(void)
{
	static const char *const where[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	struct statfs sf;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (statfs(where[i], &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_MAGIC) {
			cgc.mount = where[i];
			return;
		}
}

/* A pidfd per requesting thread, kept: opening and closing one for every
 * request cost two more syscalls and two updates of the fd table the
 * daemon's threads share.  A kept pidfd names one task for good: while
 * PIDFD_GET_INFO answers on it, its task is alive (or a zombie) and so
 * holds its tid, and a request from that tid is that task's.  Once the
 * task is gone the ioctl says ESRCH, and the tid may name another task
 * now: the slot starts again with a new pidfd, nothing of the old task's
 * reused.  Beside it, /proc/TID/comm once it was needed (a caller whose
 * exe the daemon may not read: every other uid's under run_as), opened
 * while its task was the requester and so that task's: re-read with
 * pread, not opened again.  A slot holds the last tid that hashed there
 * (its fds closed when another takes it). */
#define TASK_SLOTS 64
static struct task_slot {
	pthread_mutex_t lock; /* a leaf; held across the requester's /proc reads */
	pid_t tid;            /* 0: empty */
	int pidfd, comm_fd;   /* -1: not open */
} slots[TASK_SLOTS];

/* PIDFD_GET_INFO's cgroup id into *id; 0 or -errno.  ESRCH: the task is
 * gone — which is what a slot relies on, so the mask must never ask for
 * PIDFD_INFO_EXIT (6.15), with which a reaped task answers too.  (6.13
 * and 6.14 also say ESRCH for a live task whose parent is outside the
 * daemon's pid namespace: that slot is emptied each time, /proc read.) */
static int pidfd_cgroup(int fd, uint64_t *id)
{
	struct caller_pidfd_info info = { .mask = CALLER_PIDFD_INFO_CGROUPID };
	if (ioctl(fd, CALLER_PIDFD_GET_INFO, &info) != 0)
		return -errno;
	if (info.mask & CALLER_PIDFD_INFO_CGROUPID)
		*id = info.cgroupid;
	return 0;
}

static void cgc_init(void)
{
	for (size_t i = 0; i < TASK_SLOTS; i++) {
		pthread_mutex_init(&slots[i].lock, NULL);
		slots[i].pidfd = slots[i].comm_fd = -1;
	}
	cgc_find_mount();
	/* Whether the kernel has thread pidfds (6.9) and PIDFD_GET_INFO
	 * (6.13), asked once of this thread: a later error is that request's
	 * own (a task being released says EINVAL too), never a reason to
	 * stop asking. */
	uint64_t id;
	int fd = (int)syscall(SYS_pidfd_open, gettid(), CALLER_PIDFD_THREAD);
	if (fd < 0 || pidfd_cgroup(fd, &id) < 0)
		cgc.off = true;
	if (fd >= 0)
		close(fd);
}

static void slot_empty(struct task_slot *s)
{
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->comm_fd >= 0)
		close(s->comm_fd);
	s->pidfd = s->comm_fd = -1;
	s->tid = 0;
}

/* The slot of the requesting thread tid, locked, its pidfd checked now
 * (the task is the requester) and *cgid the id of its cgroup in the
 * unified hierarchy (0 if unknown); NULL (and *cgid 0) without pidfds. */
static struct task_slot *slot_lock(pid_t tid, uint64_t *cgid)
{
	*cgid = 0;
	/* pid 0: a request from outside the daemon's pid namespace */
	if (tid <= 0)
		return NULL;
	pthread_once(&cgc_once, cgc_init);
	if (cgc.off)
		return NULL;
	struct task_slot *s = &slots[(unsigned)tid % TASK_SLOTS];
	pthread_mutex_lock(&s->lock);
	int r = s->tid == tid ? pidfd_cgroup(s->pidfd, cgid) : -ESRCH;
	if (r == -ESRCH) {
		/* not kept, or its task is gone (the tid reused): anew */
		slot_empty(s);
		s->pidfd = (int)syscall(SYS_pidfd_open, tid, CALLER_PIDFD_THREAD);
		if (s->pidfd < 0) {
			r = -errno;
		} else {
			s->tid = tid;
			r = pidfd_cgroup(s->pidfd, cgid);
		}
	}
	if (r < 0) {
		slot_empty(s);
		pthread_mutex_unlock(&s->lock);
		*cgid = 0;
		return NULL;
	}
	if (!cgc.mount)
		*cgid = 0; /* no cgroup2 mount to tell an id's path */
	return s;
}

static void slot_unlock(struct task_slot *s)
{
	if (s)
		pthread_mutex_unlock(&s->lock);
}

/* A copy of the path of cgroup id, NULL if not kept (or no memory). */
static char *cgroup_cached(uint64_t id)
{
	char *path = NULL;
	pthread_mutex_lock(&cgc.lock);
	size_t i = id % CGROUP_CACHE_SIZE;
	if (cgc.e[i].id == id && cgc.e[i].path)
		path = strdup(cgc.e[i].path);
	pthread_mutex_unlock(&cgc.lock);
	return path;
}

/* Keeps path as cgroup id's if the cgroup2 mount says it is. */
static void cgroup_keep(uint64_t id, const char *path)
{
	char full[PATH_MAX];
	struct stat st;
	if (!cgc.mount || path[0] != '/' ||
	    (size_t)snprintf(full, sizeof(full), "%s%s", cgc.mount, path) >= sizeof(full) ||
	    stat(full, &st) != 0 || !S_ISDIR(st.st_mode) || (uint64_t)st.st_ino != id)
		return;
	char *copy = strdup(path);
	if (!copy)
		return;
	pthread_mutex_lock(&cgc.lock);
	size_t i = id % CGROUP_CACHE_SIZE;
	free(cgc.e[i].path);
	cgc.e[i].id = id;
	cgc.e[i].path = copy;
	pthread_mutex_unlock(&cgc.lock);
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

/* The requester's comm into buf (NUL-terminated, the kernel's '\n'
 * dropped); through the slot's kept fd when there is a slot. */
static bool read_comm(struct task_slot *s, pid_t pid, char *buf, size_t size)
{
	char path[64];
	proc_path(path, pid, "comm");
	bool ok;
	if (s) {
		if (s->comm_fd < 0)
			s->comm_fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = s->comm_fd >= 0 ? pread(s->comm_fd, buf, size - 1, 0) : -1;
		if (n < 0 && s->comm_fd >= 0) {
			close(s->comm_fd);
			s->comm_fd = -1;
		}
		if ((ok = n >= 0))
			buf[n] = '\0';
	} else {
		ok = read_proc_file(path, buf, size);
	}
	if (!ok)
		return false;
	size_t l = strlen(buf);
	if (l && buf[l - 1] == '\n') /* the kernel's; any other is the name's */
		buf[l - 1] = '\0';
	return true;
}

void caller_init(struct caller *c, pid_t pid, uid_t uid, gid_t gid, bool details)
{
	char path[64], exe[PATH_MAX];
	*c = (struct caller){ .uid = uid, .gid = gid, .pid = pid };
	if (!details)
		goto unknown;

	uint64_t cgid;
	struct task_slot *slot = slot_lock(pid, &cgid);
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
		if (read_comm(slot, pid, comm, sizeof(comm)) && comm[0])
			c->comm = strdup(comm);
	}
	slot_unlock(slot);
	if (cgid)
		c->cgroup = cgroup_cached(cgid);
	if (!c->cgroup) {
		char text[4096]; /* one line per hierarchy: a dozen lines */
		bool unified = false;
		proc_path(path, pid, "cgroup");
		if (read_proc_file(path, text, sizeof(text)))
			c->cgroup = cgroup_pick(text, &unified);
		if (c->cgroup && cgid && unified)
			cgroup_keep(cgid, c->cgroup);
	}
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
