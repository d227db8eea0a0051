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
 *     fusermount3 -uz does) and tells the server to stop.  When the
 *     server exits, the keeper takes the mount down if it is still there,
 *     so no "Transport endpoint is not connected" is left behind, and
 *     exits with the server's status -- unless the connection is in
 *     systemd's fd store (handover.c) and the server either handed it
 *     over (SIGUSR1, systemd's RestartKillSignal=: a restart) or died
 *     (a crash, SIGKILL): then the mount stays for the daemon systemd
 *     starts next, which takes the stored connection over, and the keeper
 *     exits 0 after a handover, 1 after a death (so Restart=on-failure
 *     starts that daemon).
 *
 * The keeper has no CAP_KILL, so it cannot signal the server (another
 * uid): it tells it over a pipe (orders_main), whose reading thread turns
 * each order into the signal the daemon without run_as would get from
 * systemd: 'T' SIGTERM (stop), 'R' SIGUSR1 (hand over and end).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
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

#include "fs.h"
#include "handover.h"
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

int keeper_give_store(const char *dir, uid_t uid, gid_t gid)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int lfd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	int r = d ? 0 : -errno;
	if (!d && lfd >= 0)
		close(lfd);
	struct dirent *e;
	while (d && r == 0 && (e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    fchownat(dfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	if (d)
		closedir(d);
	if (r == 0 && fchown(dfd, uid, gid) < 0)
		r = -errno;
	close(dfd);
	return r;
}

/* mountinfo's escapes (\040 for a space, \011, \012, \134) undone in place. */
static void unescape(char *s)
{
	char *out = s;
	for (; *s; s++, out++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out = *s;
		}
	}
	*out = '\0';
}

long keeper_mount_of(const char *mnt, unsigned long *ret_minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	long id = -1;
	while (f && getline(&line, &cap, f) > 0) {
		/* "ID PARENT MAJ:MIN ROOT POINT ... - FSTYPE ..." */
		bool ours = strstr(line, " - fuse.secretsfs ") != NULL;
		char *end, *save = NULL, *point = NULL, *dev = NULL;
		long this_id = strtol(line, &end, 10);
		for (int field = 1; field <= 4; field++) {
			point = strtok_r(field == 1 ? end : NULL, " ", &save);
			if (field == 2)
				dev = point;
		}
		if (!point)
			continue;
		unescape(point);
		if (strcmp(point, mnt) != 0)
			continue;
		id = ours ? this_id : -1; /* later lines are mounted on top */
		/* a FUSE mount's device is anonymous (major 0): its minor
		 * names the connection in /sys/fs/fuse/connections */
		char *colon = dev ? strchr(dev, ':') : NULL;
		if (ret_minor && colon)
			*ret_minor = strtoul(colon + 1, NULL, 10);
	}
	free(line);
	if (f)
		fclose(f);
	return id;
}

char *keeper_mount_path(const char *mnt)
{
	char *copy = strdup(mnt), *path = NULL;
	char *slash = copy ? strrchr(copy, '/') : NULL;
	if (slash) {
		*slash = '\0';
		char *parent = realpath(copy[0] ? copy : "/", NULL);
		if (parent &&
		    asprintf(&path, "%s/%s", strcmp(parent, "/") ? parent : "", slash + 1) < 0)
			path = NULL;
		free(parent);
	} else if (copy) {
		char *cwd = getcwd(NULL, 0);
		if (cwd && asprintf(&path, "%s/%s", cwd, copy) < 0)
			path = NULL;
		free(cwd);
	}
	free(copy);
	return path;
}

/* Unmounts mnt (lazily, as fusermount3 -uz) if the topmost mount there is
 * still ours.  0, or -errno. */
static int unmount_ours(const char *mnt, long mount_id)
{
	if (mount_id < 0 || keeper_mount_of(mnt, NULL) != mount_id)
		return -ENOENT;
	return umount2(mnt, MNT_DETACH) < 0 ? -errno : 0;
}

/* Leaves the calling process exactly the capability cap. */
static int keep_only(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { 0 };
	d[cap / 32].permitted = d[cap / 32].effective = 1u << (cap % 32);
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* The signals the keeper acts on, blocked from before the fork so that
 * none is lost: it takes them with sigwaitinfo. */
static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGCHLD);
}

#define ORDER_STOP 'T'
#define ORDER_HAND_OVER 'R'

/* The keeper's end of the orders pipe (-1 in the server). */
static int orders_fd = -1;

static void order(char what)
{
	if (orders_fd >= 0 && write(orders_fd, &what, 1) != 1)
		log_warn("run_as: cannot tell the server to %s: %s",
		         what == ORDER_STOP ? "stop" : "hand over", strerrordesc_np(errno));
}

struct orders {
	int fd;
	pthread_t loop; /* the thread that will run the FUSE loop */
};

/* In the server: the keeper's orders, as signals to the thread of the
 * FUSE loop.  EOF (the keeper is gone): nothing more to do. */
static void *orders_main(void *arg)
{
	struct orders o = *(struct orders *)arg;
	free(arg);
	char what;
	ssize_t n;
	while ((n = read(o.fd, &what, 1)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		pthread_kill(o.loop, what == ORDER_HAND_OVER ? SIGUSR1 : SIGTERM);
	}
	close(o.fd);
	return NULL;
}

/* In the server, once its privileges are dropped: the thread that takes
 * the keeper's orders (all signals blocked in it). */
static int orders_listen(int fd)
{
	struct orders *o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->fd = fd;
	o->loop = pthread_self();
	sigset_t all, old;
	pthread_t t;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&t, NULL, orders_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		free(o);
		return -r;
	}
	pthread_detach(t);
	return 0;
}

/* The keeper's life: returns the exit status for the process.  stored:
 * the connection and the state are in systemd's fd store. */
static int keep(pid_t server, const char *mnt, long mount_id, bool stored, const char *ready_status)
{
	/* umount2 is all it does: root's other powers go.  If they cannot,
	 * it does not go on as full root beside a server. */
	if (keep_only(CAP_SYS_ADMIN) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_error("run_as: the keeper cannot drop its other capabilities (%s): stopping",
		          strerrordesc_np(errno));
		unmount_ours(mnt, mount_id);
		kill(server, SIGKILL);
	}
	/* READY=1 once the mount answers, asked from here: root is the uid
	 * the mount lets in.  The asking is a child's (the stat waits for the
	 * server); the telling is the keeper's, the unit's main process:
	 * systemd ignores a message whose sender has exited before it looks. */
	pid_t probe = getenv("NOTIFY_SOCKET") ? fork() : -1;
	if (probe == 0) {
		struct stat st;
		_exit(stat(mnt, &st) == 0 ? 0 : 1);
	}
	sigset_t set;
	stop_signals(&set);
	int status = 0;
	bool stopping = false, handing_over = false;
	for (;;) {
		int probed;
		if (probe > 0 && waitpid(probe, &probed, WNOHANG) == probe) {
			probe = -1;
			if (WIFEXITED(probed) && WEXITSTATUS(probed) == 0)
				sd_notify_send("READY=1\nSTATUS=%s", ready_status);
			else
				log_error("the mount on %s does not answer", mnt);
		}
		pid_t p = waitpid(server, &status, WNOHANG);
		if (p == server)
			break;
		if (p < 0 && errno != EINTR) {
			log_error("run_as: lost the server (pid %d): %s", (int)server,
			          strerrordesc_np(errno));
			status = 1 << 8;
			break;
		}
		siginfo_t info;
		int sig = sigwaitinfo(&set, &info);
		if (sig == SIGUSR1 && stored && !stopping && !handing_over) {
			/* A restart: the server hands the connection over to
			 * the fd store and ends; the mount stays. */
			handing_over = true;
			order(ORDER_HAND_OVER);
		} else if (sig > 0 && sig != SIGCHLD && !stopping) {
			/* A stop, as the daemon without run_as stops: unmounted
			 * (lazily), and the server told to end, which commits
			 * what open writers left.  (SIGUSR1 with nothing
			 * stored: nothing could take the mount over.) */
			stopping = true;
			handing_over = false;
			unmount_ours(mnt, mount_id);
			order(ORDER_STOP);
		}
	}
	if (stored && !stopping && WIFEXITED(status) &&
	    WEXITSTATUS(status) == HANDOVER_EXIT_UNADOPTABLE) {
		/* the server could not take the stored connection over */
		handover_abandon(mnt, "its stored state is not whole");
		return 1;
	}
	bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
	if (stored && !stopping && (handing_over || died) &&
	    keeper_mount_of(mnt, NULL) == mount_id) {
		if (handing_over && !died) {
			log_info("the server handed the mount on %s over; it stays for the next "
			         "daemon",
			         mnt);
			return 0;
		}
		log_error("the server (pid %d) %s %d; the mount on %s stays for the next daemon "
		          "(systemd's fd store holds its connection)",
		          (int)server, WIFSIGNALED(status) ? "was killed by signal" : "exited with",
		          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), mnt);
		return 1;
	}
	if (unmount_ours(mnt, mount_id) == 0)
		log_warn("the server exited with the mount up; unmounted %s", mnt);
	if (WIFSIGNALED(status)) {
		log_error("the server (pid %d) was killed by signal %d (%s)", (int)server,
		          WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

const char *const keeper_hidden[] = { "/home", "/root", "/run/user", NULL };

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
	const char *const *hidden = keeper_hidden;
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
	for (size_t i = 0; hidden[i]; i++)
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

pid_t keeper_fork(const char *mnt, uid_t uid, gid_t gid, const char *const *writable,
                  long *ret_mount_id)
{
	sigset_t set, old;
	stop_signals(&set);
	int p[2];
	*ret_mount_id = keeper_mount_of(mnt, NULL);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	sigprocmask(SIG_BLOCK, &set, &old);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		/* the keeper: signals stay blocked for keeper_run() */
		close(p[0]);
		orders_fd = p[1];
		return pid;
	}
	close(p[1]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* Only the keeper speaks to systemd (NotifyAccess=main): the server
	 * can neither store descriptors nor name another main process. */
	unsetenv("NOTIFY_SOCKET");
	int r = sandbox(mnt, writable);
	if (r < 0)
		log_error("run_as: cannot set up the server's mount namespace: %s",
		          strerrordesc_np(-r));
	else if ((r = drop_privileges(uid, gid)) < 0)
		log_error("run_as: cannot drop privileges: %s", strerrordesc_np(-r));
	else if ((r = orders_listen(p[0])) < 0)
		log_error("run_as: cannot start the thread that listens to the keeper: %s",
		          strerrordesc_np(-r));
	if (r < 0)
		close(p[0]);
	return r;
}

_Noreturn void keeper_run(pid_t server, const char *mnt, long mount_id, const int *fds,
                          size_t n_fds, bool stored, const char *ready_status)
{
	/* The connection lives in the server (and in systemd's fd store, if
	 * stored): without the store it ends when the server does.  The
	 * keeper keeps none of what the server serves from. */
	for (size_t i = 0; i < n_fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	_exit(keep(server, mnt, mount_id, stored, ready_status));
}
