/* SPDX-License-Identifier: MIT */
/*
 * -o run_as=USER: mount with the privilege, serve without it.
 *
 * Mounting needs CAP_SYS_ADMIN; serving needs none of root's powers, and
 * the server is the part every user who may enter the mount talks to.  So
 * the process that mounted forks:
 *
 *   the server (the child) gets a mount namespace of its own, like
 *     systemd's ProtectSystem=strict and ProtectHome=yes (sandbox()),
 *     takes USER's uid and gid, no supplementary groups, keeps only
 *     CAP_IPC_LOCK (its locked memory may pass RLIMIT_MEMLOCK), sets
 *     no_new_privs and opens the store as USER;
 *   the keeper (the parent) holds no FUSE descriptor and reads nothing a
 *     caller sends.  SIGTERM, SIGINT, SIGHUP: it unmounts (lazily, as
 *     fusermount3 -uz does), so the server's loop ends as on any unmount.
 *     When the server exits, however it exits (a clean stop, a crash,
 *     SIGKILL), the keeper takes the mount down if it is still there, so
 *     no "Transport endpoint is not connected" is left behind, and exits
 *     with the server's status.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keeper.h"
#include "log.h"

int keeper_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
	if (r != 0 || !found)
		return -ENOENT;
	if (found->pw_uid == 0)
		return -EPERM; /* that is no separation */
	*uid = found->pw_uid;
	*gid = found->pw_gid;
	return 0;
}

/* The mount ID (/proc/self/mountinfo's first field) of the topmost FUSE
 * mount of secretsfs on mnt, or -1. */
static long mount_id_of(const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	long id = -1;
	while (f && getline(&line, &cap, f) > 0) {
		/* "ID PARENT MAJ:MIN ROOT POINT ... - fuse.secretsfs ..." */
		char *end, *save = NULL, *point = NULL;
		bool ours = strstr(line, " - fuse.secretsfs ") != NULL;
		long this_id = strtol(line, &end, 10);
		for (int field = 1; field <= 4 && ours; field++)
			point = strtok_r(field == 1 ? end : NULL, " ", &save);
		if (ours && point && strcmp(point, mnt) == 0)
			id =
			    this_id; /* mountinfo escapes spaces as \040: such a mnt never matches */
	}
	free(line);
	if (f)
		fclose(f);
	return id;
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

/* Leaves the calling process exactly the capability cap. */
static int keep_only(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { 0 };
	d[cap / 32].permitted = d[cap / 32].effective = 1u << (cap % 32);
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* The keeper's life: returns the exit status for the process. */
static int keep(pid_t server, const char *mnt, long mount_id)
{
	/* umount2 is all it does: root's other powers go. */
	if (keep_only(CAP_SYS_ADMIN) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("run_as: the keeper could not drop its other capabilities: %s",
		         strerrordesc_np(errno));
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 0;
	bool unmounted = false;
	for (;;) {
		pid_t p = waitpid(server, &status, 0);
		if (p == server)
			break;
		if (p < 0 && errno != EINTR) {
			log_error("run_as: lost the server (pid %d): %s", (int)server,
			          strerrordesc_np(errno));
			status = 1 << 8;
			break;
		}
		if (stop_signal && !unmounted) {
			/* A stop: unmount, and the server ends as on fusermount3 -u. */
			unmounted = true;
			if (umount2(mnt, MNT_DETACH) < 0)
				kill(server, SIGTERM); /* gone already: let it stop itself */
		}
	}
	if (mount_id >= 0 && mount_id_of(mnt) == mount_id) {
		/* The server died with the mount up. */
		if (umount2(mnt, MNT_DETACH) < 0)
			log_error("run_as: cannot unmount %s after the server exited: %s", mnt,
			          strerrordesc_np(errno));
		else
			log_warn("the server exited with the mount up; unmounted %s", mnt);
	}
	if (WIFSIGNALED(status)) {
		log_error("the server (pid %d) was killed by signal %d (%s)", (int)server,
		          WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/*
 * The server's own view of the system: a mount namespace (a slave: nothing
 * goes back to the host) in which everything is read-only and nosuid but
 * the directories it writes (the store's, host-attrs'), and /home, /root
 * and /run/user are empty.  The mount it serves lives in the host's
 * namespace and is reached by its descriptor; its copy here is detached,
 * or it would keep the connection alive after the host unmounts.
 */
static int sandbox(const char *mnt, const char *const *writable)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID };
	struct mount_attr rw = { .attr_clr = MOUNT_ATTR_RDONLY };
	static const char *const hidden[] = { "/home", "/root", "/run/user" };
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
	    umount2(mnt, MNT_DETACH) < 0)
		return -errno;
	/* Each writable directory a mount of its own, to be made writable
	 * again after the whole tree went read-only. */
	for (size_t i = 0; writable[i]; i++)
		if (mount(writable[i], writable[i], NULL, MS_BIND | MS_REC, NULL) < 0)
			return -errno;
	if (mount_setattr(-1, "/", AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		return -errno;
	for (size_t i = 0; writable[i]; i++)
		if (mount_setattr(-1, writable[i], AT_RECURSIVE, &rw, sizeof(rw)) < 0)
			return -errno;
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (mount("tmpfs", hidden[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		          "mode=0755,size=4k") < 0 &&
		    errno != ENOENT)
			return -errno;
	return 0;
}

/* Only what the server needs: USER's ids and CAP_IPC_LOCK. */
static int drop_privileges(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0)
		return -errno;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (keep_only(CAP_IPC_LOCK) < 0 || prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* Changing ids resets dumpability to the system default. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (setresuid(0, 0, 0) == 0)
		return -EPERM; /* the drop did not hold */
	return 0;
}

int keeper_split(const char *mnt, int fuse_fd, uid_t uid, gid_t gid, const char *const *writable,
                 int *ready_fd)
{
	long mount_id = mount_id_of(mnt);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int r = sandbox(mnt, writable);
		if (r < 0)
			log_error("run_as: cannot set up the server's mount namespace: %s",
			          strerrordesc_np(-r));
		else if ((r = drop_privileges(uid, gid)) < 0)
			log_error("run_as: cannot drop privileges: %s", strerrordesc_np(-r));
		return r;
	}
	/* The connection lives in the server alone: it ends when it does. */
	close(fuse_fd);
	if (*ready_fd >= 0) {
		close(*ready_fd); /* the server says when it is ready */
		*ready_fd = -1;
	}
	_exit(keep(pid, mnt, mount_id));
}
