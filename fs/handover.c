/* SPDX-License-Identifier: MIT */
/*
 * Restart under a live mount.
 *
 * The kernel ends a FUSE connection only when the last file open on it
 * (/dev/fuse) is closed.  So the daemon keeps a copy of its connection
 * outside itself, and the next daemon takes it over: the mount never goes
 * away, and callers block for the gap instead of failing.
 *
 *   Under systemd (FileDescriptorStoreMax=): the connection ("fuse") and
 *   a memfd with the state below ("state") go to systemd's fd store and
 *   come back as LISTEN_FDS after a crash (Restart=) or a restart.  A
 *   restart job sends RestartKillSignal=SIGUSR1, on which the daemon ends
 *   without unmounting; SIGTERM (systemctl stop) still unmounts.
 *   Without systemd: -o takeover asks the daemon serving the mountpoint
 *   over a unix socket (abstract, named after the mountpoint, the same
 *   uid only), which ends its loop, writes the state and sends both
 *   descriptors (SCM_RIGHTS); the new daemon serves once the old one has
 *   exited (its end of the socket closes).
 *
 * The state (a memfd, rewritten in place: systemd holds the same file):
 *   - the FUSE INIT request the kernel sent.  It comes once per
 *     connection, and libfuse answers every request EIO until it has
 *     seen one, so the new daemon's session reads the saved INIT first
 *     (ho_read) and its reply, which the kernel does not expect, is
 *     dropped (ho_writev);
 *   - the inode table's secrets: ID, incarnation, inode number, lookup
 *     count.  After the store is listed, each secret the kernel knows
 *     gets the number it knows (handover_restore_inodes); inode numbers
 *     are handed out in reserved blocks and the next daemon starts after
 *     the block, so no number the kernel may hold is ever given to
 *     something else.
 *   - under -o fast, each secret's version inodes (the kernel reads
 *     through them with no open, from its page cache or not): the new
 *     daemon gives the current version its old number back; an older
 *     version's number answers ESTALE.
 * The whole table is written at start, at a handover, on each new block
 * under -o fast (after its record), and when its journal is full.  A
 * secret created (its number is new) and a new block are a record
 * appended to the journal after the table, one small write whatever the
 * number of secrets; a block that can be written neither way invalidates
 * the state (a successor mounts anew rather than start below the block).
 * The journal is full when it is as long as the table (at least 1 MiB),
 * so its rewrites cost O(1) a create, amortised.  (So after a crash,
 * version inodes made since the last whole write are unknown: their
 * reads that the page cache does not answer fail ESTALE; lookup counts
 * are the last whole write's, or a record's.)  The table is written to
 * one of two regions and then made current by one small write with its
 * checksum, so a daemon killed while writing leaves the previous table;
 * a journal record checks itself, chained from that checksum, so an
 * append torn by a kill is ignored (a secret's: the CREATE reply went
 * before its commit, with a number below next, which a successor answers
 * ESTALE; a block's: none of its numbers was handed out yet).  The
 * layout, and the checks a state read must pass: handover_state.c,
 * unit-tested.  Scratch files and .versions inodes are not carried
 * over: their numbers answer ESTALE, and the kernel looks the names up
 * again.
 *
 * Open files: the kernel keeps their fh, a random token (ops_file.c); the
 * new daemon has no handle for it and answers ESTALE: a file opened
 * before a restart must be opened again (its value is in the old
 * daemon's locked memory, which is gone, and is never written to the
 * state).
 *
 * Requests the old daemon had read and not answered: the kernel resends
 * them on FUSE_NOTIFY_RESEND (Linux 6.9).  On older kernels they stay
 * unanswered until the connection ends; the daemon says so at start.
 *
 * A connection that cannot be taken over (no usable state) is aborted
 * (/sys/fs/fuse/connections/N/abort) and the mount replaced by a new one.
 * So is a mount of ours left on the mountpoint whose daemon does not
 * answer a statfs within ANSWER_BOUND_MS (stopped, or stuck dying with
 * nothing stored: handover_unstick, at start), which would otherwise hang
 * the start and every caller; a stopped daemon that holds the store's
 * lock is then continued (main.c), reads ENODEV and ends.  fusectl is
 * mounted on /sys/fs/fuse/connections when it is not and this process
 * may (root), as systemd does at boot; if it cannot be, the mount is only
 * detached and the stuck daemon stays until it is killed (said so).
 *
 * Under -o run_as (keeper.c) the keeper, root and the unit's main
 * process, mounts (or takes the stored connection from LISTEN_FDS),
 * stores both descriptors and forks the server, which inherits them and
 * writes the state; the keeper then closes its copies.  The keeper never
 * parses the state (the unprivileged server wrote it): the next server
 * does, after the drop (handover_server_state), and exits
 * HANDOVER_EXIT_UNADOPTABLE if it does not read, on which the keeper
 * abandons the connection (handover_abandon).  The restart
 * signal reaches the server through the keeper, which leaves the mount
 * up when the server hands over or dies with the connection stored.
 * -o takeover is not for run_as (the keeper would have to hand over).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "cmdline.h"
#include "fs.h"
#include "audit.h"
#include "handover.h"
#include "handover_state.h"
#include "keeper.h"

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7 /* Linux 6.9, protocol 7.40 */
#endif

/* Inode numbers reserved at a time (each restart skips what is left). */
#define INO_BLOCK 1024

static struct {
	struct fs *fs;
	int fuse_fd;  /* adopted connection; -1: mounted here */
	int state_fd; /* the memfd; -1 if none */
	bool adopted;
	bool stored;       /* the connection and the state sent to the fd store */
	bool state_unread; /* run_as: adopted, the state for the server to read */
	bool replay_pending, drop_reply;
	uint8_t init[HS_INIT_MAX];
	uint32_t init_len; /* 0: no INIT seen yet */
	uint64_t init_unique;
	uint64_t region;           /* the current table's */
	struct hs_journal journal; /* after it; state_lock */
	struct hs_state saved;     /* read at an adoption, until renumbered */
	int listen_fd, successor;  /* -o takeover: ours, and a successor's */
	pthread_t main_thread;
	volatile sig_atomic_t handing_over;
	/* adopted, the table not yet renumbered: nothing is written over the
	 * saved state until then */
	bool restore_pending;
	pthread_mutex_t state_lock; /* state_write; a leaf, after fs->lock */
} ho = { .fuse_fd = -1,
	 .state_fd = -1,
	 .listen_fd = -1,
	 .successor = -1,
	 .state_lock = PTHREAD_MUTEX_INITIALIZER };

bool handover_handing_over(void)
{
	return ho.handing_over;
}

bool handover_adopted(void)
{
	return ho.adopted;
}

/* --- the state (its layout: handover_state.c) --- */

static bool state_writable(void)
{
	return ho.state_fd >= 0 && ho.init_len && !ho.restore_pending;
}

/* Writes the whole state, state_lock held: 0 or -errno. */
static int state_write_locked(struct fs *fs)
{
	struct hs_table t;
	/* a successor may hand out numbers from next on: the block reserved,
	 * or, before any is (an empty store at its first INIT: its blocks
	 * then come as journal records), the next number itself */
	hs_table_begin(&t, fs->ino_reserved > fs->next_ino ? fs->ino_reserved : fs->next_ino);
	for (fuse_ino_t i = INO_FIRST_FREE; i < fs->next_ino; i++) {
		struct node *n = fs_node(fs, i);
		if (!n || n->kind != NODE_SECRET || n->dead || !n->u.secret.meta.incarnation)
			continue;
		hs_table_add(&t, n->ino, n->u.secret.meta.incarnation,
		             __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED), n->u.secret.meta.id);
		/* -o fast: the kernel reads a secret through its version
		 * inodes, from its page cache or with no open behind */
		for (const struct node *v = n->u.secret.versions; v; v = v->next)
			hs_table_add_version(&t, v->ino, v->u.vfile.version,
			                     __atomic_load_n(&v->nlookup, __ATOMIC_RELAXED),
			                     n->ino);
	}
	int r = hs_write(ho.state_fd, ho.init, ho.init_len, &t, ho.region ^ 1, &ho.journal);
	hs_table_free(&t);
	if (r == 0) {
		hs_forget_region(ho.state_fd, ho.region); /* the old table's pages go */
		ho.region ^= 1;
	}
	return r;
}

static int state_write_whole(void *fs)
{
	return state_write_locked(fs);
}

/* r: why the state could not be written; then what a restart does. */
static void state_write_failed(int r, const char *then)
{
	log_error("cannot write the state a restarted daemon needs: %s; %s", strerrordesc_np(-r),
	          then);
}

/* Writes the state; fs->lock held (read is enough).  Quiet unless it
 * fails. */
static void state_write(struct fs *fs)
{
	if (!state_writable())
		return;
	pthread_mutex_lock(&ho.state_lock);
	int r = state_write_locked(fs);
	pthread_mutex_unlock(&ho.state_lock);
	if (r < 0)
		state_write_failed(r, "a restart reads the state written before, if any, "
		                      "or mounts anew");
}

/* Secret n born: a record appended to the state's journal; the whole
 * state when it cannot be (the journal full, or a write failed).  If
 * neither is written, nothing more is needed: n's number is below the
 * state's next (a successor answers it ESTALE).  fs->lock held. */
static void state_journal(struct fs *fs, const struct node *n)
{
	if (!state_writable())
		return;
	pthread_mutex_lock(&ho.state_lock);
	int r = hs_journal_born(ho.state_fd, &ho.journal, n->ino, n->u.secret.meta.incarnation,
	                        __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED),
	                        n->u.secret.meta.id);
	if (r < 0)
		r = state_write_locked(fs); /* which empties the journal */
	pthread_mutex_unlock(&ho.state_lock);
	if (r < 0)
		state_write_failed(r, "after a restart, the new secret's inode number is "
		                      "stale (ESTALE: the kernel looks it up again)");
}

/* The new block fs->ino_reserved into the state (hs_write_block): if it
 * cannot be, the state is invalidated, so that a successor does not
 * start below the block.  fs->lock held. */
static void state_block(struct fs *fs)
{
	if (!state_writable())
		return;
	int err = 0;
	pthread_mutex_lock(&ho.state_lock);
	enum hs_block b = hs_write_block(ho.state_fd, &ho.journal, fs->ino_reserved, fs->opt.fast,
	                                 state_write_whole, fs, &err);
	pthread_mutex_unlock(&ho.state_lock);
	if (b == HS_BLOCK_RECORDED)
		state_write_failed(err, "a restart keeps the secrets' inode numbers, not the "
		                        "version inodes made since the last whole write (ESTALE)");
	else if (b == HS_BLOCK_INVALIDATED)
		state_write_failed(err, "a restart will mount anew (the state is invalid until "
		                        "it is written whole again)");
	else if (b == HS_BLOCK_STALE)
		state_write_failed(err, "nor invalidate it: a restart could give an inode number "
		                        "the kernel holds to another file; stop and start the "
		                        "service instead of restarting it");
}

/* Reads the state: 0, or why not (-EBADMSG: not whole). */
static int state_read(int fd)
{
	int r = hs_read(fd, &ho.saved, INO_FIRST_FREE);
	if (r < 0)
		return r;
	memcpy(ho.init, ho.saved.init, ho.saved.init_len);
	ho.init_len = ho.saved.init_len;
	ho.init_unique = ho.saved.init_unique;
	ho.region = ho.saved.region;
	return 0;
}

static fuse_ino_t wanted_ino(const struct node *n, void *arg)
{
	const struct hs_entry *s = hs_find(&ho.saved, n->u.secret.meta.id);
	if (!s || s->incarnation != n->u.secret.meta.incarnation)
		return 0;
	*(uint64_t *)arg = s->nlookup;
	return s->ino;
}

void handover_restore_inodes(struct fs *fs)
{
	if (!ho.restore_pending)
		return;
	size_t kept = fs_secrets_renumber(fs, wanted_ino, ho.saved.next), vkept = 0;
	/* -o fast: each secret's current version where the kernel knows it
	 * (older versions answer ESTALE: their value is not listed) */
	for (size_t i = 0; fs->opt.fast && i < ho.saved.vcount; i++) {
		const struct hs_version *v = &ho.saved.versions[i];
		struct node *s = fs_node(fs, v->secret_ino);
		if (s && s->kind == NODE_SECRET && s->u.secret.meta.version == v->version &&
		    fs_secret_version_restore(fs, s, v->ino, v->nlookup))
			vkept++;
	}
	char fast[64] = "";
	if (fs->opt.fast)
		snprintf(fast, sizeof(fast), ", %zu of %zu version inodes", vkept, ho.saved.vcount);
	char journaled[64] = "";
	if (ho.saved.journaled)
		snprintf(journaled, sizeof(journaled),
		         "; %zu of the state's secrets from its journal", ho.saved.journaled);
	log_info("took over the mount on %s: %zu of %zu secrets kept their inode numbers%s%s",
	         fs->opt.mountpoint, kept, fs->by_id_count, fast, journaled);
	hs_free(&ho.saved);
	ho.restore_pending = false;
	handover_reserve(fs);
}

void handover_secret_born(struct fs *fs, const struct node *n)
{
	state_journal(fs, n);
}

void handover_reserve(struct fs *fs)
{
	fs->ino_reserved = fs->next_ino + INO_BLOCK;
	state_block(fs);
}

/* --- the session's I/O --- */

static ssize_t ho_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = userdata;
	if (__atomic_exchange_n(&ho.replay_pending, false, __ATOMIC_ACQ_REL)) {
		memcpy(buf, ho.init, ho.init_len < len ? ho.init_len : len);
		return ho.init_len;
	}
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;
	if (n >= (ssize_t)sizeof(*in) && in->opcode == FUSE_INIT && !ho.init_len &&
	    (size_t)n <= HS_INIT_MAX) {
		memcpy(ho.init, buf, (size_t)n);
		pthread_rwlock_rdlock(&fs->lock);
		ho.init_len = (uint32_t)n;
		state_write(fs);
		pthread_rwlock_unlock(&fs->lock);
	}
	return n;
}

static ssize_t ho_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	if (__atomic_load_n(&ho.drop_reply, __ATOMIC_ACQUIRE) && count > 0 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    ((const struct fuse_out_header *)iov[0].iov_base)->unique == ho.init_unique &&
	    __atomic_exchange_n(&ho.drop_reply, false, __ATOMIC_ACQ_REL)) {
		/* the reply to the replayed INIT: the kernel had its answer */
		ssize_t sum = 0;
		for (int i = 0; i < count; i++)
			sum += (ssize_t)iov[i].iov_len;
		return sum;
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io io = { .read = ho_read, .writev = ho_writev };

/* --- the fd store --- */

static bool under_systemd(void)
{
	return getenv("NOTIFY_SOCKET") != NULL;
}

/* fd to systemd's fd store as name: true if sent (whether systemd keeps
 * it, FileDescriptorStoreMax= says: 252 does not tell). */
static bool fdstore(int fd, const char *name)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
	int r = under_systemd() ? sd_pid_notify_with_fds(0, 0, msg, &fd, 1) : 0;
	if (r < 0)
		log_warn("cannot hand the %s descriptor to systemd's fd store: %s; a restart "
		         "will mount anew",
		         name, strerrordesc_np(-r));
	return r > 0;
}

/* The FUSE connection number of the secretsfs mount on mnt; -1 if none.
 * Only mnt's parent is resolved: the mount itself may have no daemon to
 * answer yet. */
long handover_connection_of(const char *mnt)
{
	char *path = keeper_mount_path(mnt);
	unsigned long minor = 0;
	long id = -1;
	if (path)
		id = keeper_mount_of(path, &minor);
	free(path);
	return id < 0 ? -1 : (long)minor;
}

#define FUSECTL "/sys/fs/fuse/connections"
#define FUSECTL_SUPER_MAGIC 0x65735543

/* Aborts FUSE connection conn: its requests fail ENOTCONN, its daemon
 * reads ENODEV.  fusectl is mounted on FUSECTL first if it is not (as
 * systemd does at boot; it stays mounted), *mounted says if it was.  0 or
 * -errno. */
static int abort_connection(long conn, bool *mounted)
{
	char path[64];
	struct statfs sf;
	*mounted = false;
	if ((statfs(FUSECTL, &sf) < 0 || sf.f_type != FUSECTL_SUPER_MAGIC) &&
	    mount("fusectl", FUSECTL, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
		*mounted = true;
	snprintf(path, sizeof(path), FUSECTL "/%ld/abort", conn);
	int a = open(path, O_WRONLY | O_CLOEXEC);
	int r = a < 0 || write(a, "1", 1) != 1 ? -errno : 0;
	if (a >= 0)
		close(a);
	return r;
}

/* A connection that cannot be taken over ends, and its mount goes, so
 * that a new one can be made: no daemon-less mount is left behind. */
void handover_abandon(const char *mnt, const char *why)
{
	long conn = handover_connection_of(mnt);
	log_warn("cannot take over the mount on %s (%s): aborting its connection and "
	         "mounting anew",
	         mnt, why);
	if (conn >= 0) {
		bool ctl;
		int r = abort_connection(conn, &ctl);
		if (r < 0)
			log_warn("cannot abort FUSE connection %ld (" FUSECTL "/%ld/abort): %s",
			         conn, conn, strerrordesc_np(-r));
		if (umount2(mnt, MNT_DETACH) < 0)
			log_warn("cannot unmount %s: %s", mnt, strerrordesc_np(errno));
	}
	if (under_systemd())
		sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=fuse");
}

/* How long a mount left on the mountpoint has to answer a statfs. */
#define ANSWER_BOUND_MS 3000

static bool unstuck;

bool handover_unstuck(void)
{
	return unstuck;
}

void handover_unstick(const char *mnt)
{
	char *path = keeper_mount_path(mnt);
	unsigned long conn = 0;
	if (!path || keeper_mount_of(path, &conn) < 0) {
		free(path);
		return;
	}
	/* statfs always goes to the daemon (no cache answers it); a
	 * daemon that does not answer holds the child, not this process. */
	pid_t child = fork();
	if (child == 0) {
		struct statfs sf;
		_exit(statfs(path, &sf) == 0 ? 0 : 1);
	}
	bool answered = child < 0; /* cannot tell: as before */
	for (int ms = 0; !answered && ms < ANSWER_BOUND_MS; ms += 20) {
		if (waitpid(child, NULL, WNOHANG) == child)
			answered = true;
		else
			nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000000 }, NULL);
	}
	if (answered) {
		free(path);
		return;
	}
	bool ctl;
	int r = abort_connection((long)conn, &ctl);
	unstuck = true;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	int u = umount2(path, MNT_DETACH) < 0 ? -errno : 0;
	if (r == 0)
		log_warn("the secretsfs mount on %s did not answer for %d s (its daemon stopped "
		         "or stuck): aborted its FUSE connection %lu%s, unmounted it%s, mounting "
		         "anew",
		         path, ANSWER_BOUND_MS / 1000, conn,
		         ctl ? " (mounted fusectl on " FUSECTL " for it)" : "",
		         u < 0 ? " (failed)" : "");
	else
		log_warn("the secretsfs mount on %s did not answer for %d s (its daemon stopped "
		         "or stuck) and its FUSE connection %lu cannot be aborted (" FUSECTL
		         ": %s): unmounted it%s, mounting anew; its daemon stays stuck until it "
		         "is killed",
		         path, ANSWER_BOUND_MS / 1000, conn, strerrordesc_np(-r),
		         u < 0 ? " (failed)" : "");
	free(path);
}

static void abandon(struct fs *fs, int fd, const char *why)
{
	handover_abandon(fs->opt.mountpoint, why);
	close(fd);
}

/* --- -o takeover --- */

static int takeover_address(const char *mnt, struct sockaddr_un *sa, socklen_t *len)
{
	char *path = realpath(mnt, NULL);
	if (!path)
		return -errno;
	uint8_t h[16];
	crypto_generichash(h, sizeof(h), (const uint8_t *)path, strlen(path), NULL, 0);
	free(path);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "secretsfs/takeover/");
	sodium_bin2hex(sa->sun_path + 1 + n, sizeof(sa->sun_path) - 1 - (size_t)n, h, sizeof(h));
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n + 32);
	return 0;
}

/* The new daemon's side: the connection and the state from the one
 * serving mnt, once it has stopped. */
static int takeover_receive(struct fs *fs)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	const char *mnt = fs->opt.mountpoint;
	int r = takeover_address(mnt, &sa, &len);
	if (r < 0)
		return -fail("-o takeover: %s: %s", mnt, strerrordesc_np(-r));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;
		if (s >= 0)
			close(s);
		return -fail("-o takeover: no secretsfs serving %s answers (%s); is it running, "
		             "as this user, without -o run_as?",
		             mnt, strerrordesc_np(e));
	}
	char byte;
	int fds[2] = { -1, -1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(fds))];
	} u;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov,
		            .msg_iovlen = 1,
		            .msg_control = u.buf,
		            .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&m) : NULL;
	if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(fds)))
		memcpy(fds, CMSG_DATA(c), sizeof(fds));
	if (fds[0] < 0 || fds[1] < 0) {
		close(s);
		return -fail("-o takeover: the daemon serving %s did not hand over its "
		             "connection (see its log)",
		             mnt);
	}
	/* The old daemon exits now: its socket closes when it has.  Requests
	 * it read and left are resent after that (handover_serving). */
	while (read(s, &byte, 1) > 0 || errno == EINTR)
		;
	close(s);
	ho.state_fd = fds[1];
	if ((r = state_read(ho.state_fd)) < 0) {
		/* it answered but its state is unusable: no mount is kept */
		abandon(fs, fds[0], strerrordesc_np(-r));
		return 0;
	}
	ho.fuse_fd = fds[0];
	ho.restore_pending = true;
	return 1;
}

/* The old daemon's side: a thread waiting for a successor. */
static void *takeover_listen(void *arg)
{
	struct fs *fs = arg;
	for (;;) {
		int c = accept4(ho.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != geteuid()) {
			log_warn("-o takeover refused to pid %d (uid %d): only uid %d may take "
			         "over this mount",
			         (int)cr.pid, (int)cr.uid, (int)geteuid());
			close(c);
			continue;
		}
		log_info("handing the mount on %s over to pid %d (-o takeover)", fs->opt.mountpoint,
		         (int)cr.pid);
		ho.successor = c;
		ho.handing_over = 1;
		fuse_session_exit(fs->se);
		pthread_kill(ho.main_thread, SIGUSR1); /* out of its wait */
		return NULL;
	}
}

static void takeover_serve(struct fs *fs)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	pthread_t t;
	int s = takeover_address(fs->opt.mountpoint, &sa, &len) == 0
	          ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)
	          : -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&sa, len) == 0 && listen(s, 4) == 0) {
		ho.listen_fd = s;
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread takes no signal */
		if (pthread_create(&t, NULL, takeover_listen, fs) == 0)
			pthread_detach(t);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	/* e.g. under PrivateNetwork= the address is another namespace's */
	log_warn("-o takeover will not find this daemon: %s", strerrordesc_np(errno));
	if (s >= 0)
		close(s);
}

/* After the loop, handing over to -o takeover: the state, then both
 * descriptors. */
static void takeover_send(struct fs *fs)
{
	if (ho.successor < 0)
		return;
	/* The address is free before the successor has the connection: it
	 * listens there itself as soon as it serves. */
	close(ho.listen_fd);
	ho.listen_fd = -1;
	int fds[2] = { fuse_session_fd(fs->se), ho.state_fd };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(fds))];
	} u;
	memset(&u, 0, sizeof(u));
	char byte = 1;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov,
		            .msg_iovlen = 1,
		            .msg_control = u.buf,
		            .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	if (sendmsg(ho.successor, &m, MSG_NOSIGNAL) != 1)
		log_error("-o takeover: could not send the connection: %s", strerrordesc_np(errno));
	/* ho.successor stays open until this process exits */
}

/* --- start, serving, stop --- */

static void on_restart_signal(int sig)
{
	ho.handing_over = 1;
	if (ho.fs && ho.fs->se)
		fuse_session_exit(ho.fs->se);
}

int handover_adopt(struct fs *fs, bool takeover)
{
	ho.fs = fs;
	if (takeover)
		return takeover_receive(fs);
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int fuse = -1;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (strcmp(names[i], "fuse") == 0 && fuse < 0)
			fuse = fd;
		else if (strcmp(names[i], "state") == 0 && ho.state_fd < 0)
			ho.state_fd = fd;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		free(names[i]);
	}
	free(names);
	if (fuse < 0)
		return 0;
	/* Under run_as this is the keeper, root: what the (unprivileged)
	 * server wrote is read by the next server, after the drop
	 * (handover_server_state). */
	ho.state_unread = fs->opt.run_as != NULL;
	int r = ho.state_fd < 0 ? -ENOENT : ho.state_unread ? 0 : state_read(ho.state_fd);
	if (r == 0 && handover_connection_of(fs->opt.mountpoint) < 0)
		r = -ENOTCONN; /* unmounted meanwhile (umount -l) */
	if (r < 0) {
		abandon(fs, fuse,
		        r == -ENOENT     ? "no state was stored with it"
		        : r == -ENOTCONN ? "it is no longer mounted there"
		                         : "its stored state is not whole");
		return 0;
	}
	ho.fuse_fd = fuse;
	ho.restore_pending = true;
	return 1;
}

int handover_session(struct fs *fs)
{
	ho.fs = fs;
	ho.main_thread = pthread_self(); /* the one that runs the loop */
	int fd = ho.fuse_fd >= 0 ? ho.fuse_fd : fuse_session_fd(fs->se);
	if (fuse_session_custom_io(fs->se, &io, fd) < 0)
		return -fail("could not set up the FUSE session's I/O");
	/* Adopted: both are in the store already (systemd keeps them). */
	bool stored = ho.fuse_fd >= 0 && under_systemd();
	if (ho.fuse_fd >= 0) {
		ho.adopted = true;
		ho.replay_pending = true;
		ho.drop_reply = true;
	} else {
		stored = fdstore(fd, "fuse");
	}
	if (ho.state_fd < 0) {
		ho.state_fd = memfd_create("secretsfs-state", MFD_CLOEXEC);
		if (ho.state_fd < 0)
			log_warn("memfd_create: %s: a restart will mount anew",
			         strerrordesc_np(errno));
		stored = ho.state_fd >= 0 && fdstore(ho.state_fd, "state") && stored;
	}
	ho.stored = stored;
	/* Under run_as SIGUSR1 comes from the keeper's orders (keeper.c). */
	struct sigaction sa = { .sa_handler = on_restart_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (!fs->opt.run_as)
		takeover_serve(fs);
	return 0;
}

int handover_server_state(struct fs *fs)
{
	if (!ho.state_unread)
		return 0;
	ho.state_unread = false;
	int r = state_read(ho.state_fd);
	if (r < 0)
		log_error("the stored state of the mount on %s is not whole (%s): the keeper "
		          "aborts the connection, and the next start mounts anew",
		          fs->opt.mountpoint, strerrordesc_np(-r));
	return r;
}

bool handover_stored(void)
{
	return ho.stored;
}

int handover_state_fd(void)
{
	return ho.state_fd;
}

void handover_serving(struct fs *fs)
{
	pthread_rwlock_rdlock(&fs->lock);
	state_write(fs);
	pthread_rwlock_unlock(&fs->lock);
	if (!ho.adopted)
		return;
	struct fuse_out_header oh = { .len = sizeof(oh), .error = FUSE_NOTIFY_RESEND };
	if (write(ho.fuse_fd, &oh, sizeof(oh)) != (ssize_t)sizeof(oh))
		log_warn("this kernel does not resend the requests the old daemon had read "
		         "(FUSE_NOTIFY_RESEND, Linux 6.9: %s): their callers wait until the "
		         "mount ends",
		         strerrordesc_np(errno));
}

void handover_finish(struct fs *fs)
{
	if (!ho.handing_over)
		return;
	pthread_rwlock_rdlock(&fs->lock);
	state_write(fs);
	pthread_rwlock_unlock(&fs->lock);
	/* this daemon's last audit lines before its successor's first */
	audit_flush();
	takeover_send(fs);
}
