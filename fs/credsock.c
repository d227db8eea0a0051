/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "credpeer.h"
#include "credsock.h"
#include "common.h"

/* A unit served a secret (the thread's own list). */
struct loaded {
	struct loaded *next;
	char *id, *unit;
};

/* A secret with a new value, for the thread. */
struct rotated {
	struct rotated *next;
	char *id;
};

struct credsock {
	int fd;
	int stop[2]; /* a byte on stop[1] ends the thread */
	int wake[2]; /* a byte on wake[1]: something in rotated */
	char *path;
	dev_t dev; /* the socket file this daemon made */
	ino_t ino;
	struct fs *fs;
	pthread_t thread;
	bool running;
	struct loaded *loaded;   /* the thread's */
	pthread_mutex_t lock;    /* guards rotated (a leaf: fs.h) */
	struct rotated *rotated; /* newest first */
};

/* why = "-o credsocket=PATH: WHAT[: reason of e]" */
static int say(char *why, size_t size, const char *path, const char *what, int e)
{
	if (why && size)
		snprintf(why, size, "-o credsocket=%s: %s%s%s", path, what, e ? ": " : "",
		         e ? strerrordesc_np(e) : "");
	return e ? -e : -EINVAL;
}

/* Is someone listening on the socket at sa?  (A socket file left by a
 * daemon that died refuses the connection.) */
static bool listened_on(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool yes = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return yes;
}

int credsock_open(const char *path, struct credsock **ret, char *why, size_t why_size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
		return say(why, why_size, path, "expected an absolute path of at most 107 bytes",
		           0);
	memcpy(sa.sun_path, path, strlen(path));
	/* Only a directory nobody else may write: what is replaced, made and
	 * chmod'ed below then stays what was checked. */
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int dr = stat(dirname(copy), &st);
	free(copy);
	if (dr < 0)
		return say(why, why_size, path, "its directory", errno);
	if (st.st_mode & 022) {
		say(why, why_size, path,
		    "its directory is writable by group or others: use one only root writes "
		    "(/run)",
		    0);
		return -EPERM;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			say(why, why_size, path, "exists and is not a socket", 0);
			return -EEXIST;
		}
		if (listened_on(&sa)) {
			say(why, why_size, path,
			    "another process listens on it (a second secretsfs?)", 0);
			return -EADDRINUSE;
		}
		if (unlink(path) < 0 && errno != ENOENT)
			return say(why, why_size, path, "cannot remove the old socket", errno);
	}
	struct credsock *cs = calloc(1, sizeof(*cs));
	if (!cs || !(cs->path = strdup(path))) {
		free(cs);
		return -ENOMEM;
	}
	cs->stop[0] = cs->stop[1] = cs->wake[0] = cs->wake[1] = -1;
	pthread_mutex_init(&cs->lock, NULL);
	int e = 0;
	cs->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cs->fd < 0 || bind(cs->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
	} else if (fchmodat(AT_FDCWD, path, 0600, AT_SYMLINK_NOFOLLOW) < 0 ||
	           lstat(path, &st) < 0 || listen(cs->fd, 64) < 0 ||
	           pipe2(cs->stop, O_CLOEXEC) < 0 || pipe2(cs->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		e = errno;
		unlink(path);
	}
	if (e) {
		say(why, why_size, path, "cannot listen there", e);
		if (cs->fd >= 0)
			close(cs->fd);
		for (int i = 0; i < 2; i++) {
			if (cs->stop[i] >= 0)
				close(cs->stop[i]);
			if (cs->wake[i] >= 0)
				close(cs->wake[i]);
		}
		free(cs->path);
		free(cs);
		return -e;
	}
	cs->dev = st.st_dev;
	cs->ino = st.st_ino;
	*ret = cs;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* What a refused unit gets instead of nothing: more than systemd takes,
 * so it fails to start (credsock.h); a text, should a systemd ever take
 * it, that says where the reason is. */
static void refuse(int fd)
{
	static const char text[] = "secretsfs refused this credential; the reason is in its log: "
	                           "journalctl -t secretsfs\n";
	char buf[16 * (sizeof(text) - 1)];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = text[i % (sizeof(text) - 1)];
	for (size_t left = CREDSOCK_REFUSAL_BYTES; left;) {
		size_t n = left < sizeof(buf) ? left : sizeof(buf);
		if (write_all(fd, (const uint8_t *)buf, n) < 0)
			return; /* the peer is gone: it got no credential either */
		left -= n;
	}
}

/* The request on connection fd from peer sa: 0 (served) or -errno
 * (refused, logged); who is filled for the audit line. */
static int serve_one(struct credsock *cs, int fd, const struct sockaddr_un *sa, socklen_t len,
                     struct credpeer *peer, struct caller *who, uint64_t *ret_version)
{
	struct fs *fs = cs->fs;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	char esc[AUDIT_CAP_ID + 1];
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		return -errno;
	caller_clear(who);
	caller_init(who, cred.pid, cred.uid, cred.gid, true);
	if (credpeer_parse(sa, len, peer) < 0) {
		log_warn("credential socket %s: pid %d (uid %u, unit %s) is not systemd loading a "
		         "credential (LoadCredential=ID:%s): refused",
		         cs->path, (int)cred.pid, (unsigned)cred.uid, who->unit, cs->path);
		return -EPROTO;
	}
	/* The address is the peer's claim; the process must be the one
	 * systemd forked to start that unit: root, in the unit's cgroup. */
	if (cred.uid != 0 || strcmp(who->unit, peer->unit) != 0) {
		log_warn("credential socket %s: pid %d (uid %u, unit %s) claims to start %s: "
		         "refused (only systemd starting that unit is served)",
		         cs->path, (int)cred.pid, (unsigned)cred.uid, who->unit, peer->unit);
		return -EPERM;
	}
	if (!secret_id_valid_existing(peer->id)) {
		audit_escape(esc, sizeof(esc), peer->id, AUDIT_CAP_ID);
		log_warn("credential socket %s: %s asks for %s, which is not a secret ID: refused",
		         cs->path, peer->unit, esc);
		return -EINVAL;
	}
	struct secret_meta meta = { 0 };
	int r = fs->ops->stat(fs->store, peer->id, &meta);
	if (r == 0) {
		r = policy_check_credential(&fs->policy, meta.scopes, who);
		if (r < 0) {
			char scopes[128];
			scope_names(meta.scopes, scopes, sizeof(scopes));
			log_warn(
			    "credential socket %s: %s may not load %s: no unit= or cgroup= rule "
			    "of its scopes (%s) admits it (e.g. -o unit=%s:%s)",
			    cs->path, peer->unit, peer->id, scopes,
			    scope_dir_name((enum scope)__builtin_ctz(meta.scopes)), peer->unit);
		}
	} else {
		log_warn("credential socket %s: %s asks for %s: %s", cs->path, peer->unit, peer->id,
		         r == -ENOENT ? "no such secret" : strerrordesc_np(-r));
	}
	struct secret_value *v = NULL;
	if (r == 0 && (r = fs->ops->get_value(fs->store, peer->id, meta.incarnation, 0, &v)) < 0)
		log_warn("credential socket %s: cannot read %s for %s: %s", cs->path, peer->id,
		         peer->unit,
		         r == -EACCES ? "this store's values are write-only" : strerrordesc_np(-r));
	if (r == 0) {
		r = write_all(fd, v->data, v->len);
		*ret_version = v->version;
		if (r < 0)
			log_warn("credential socket %s: sending %s to %s failed: %s", cs->path,
			         peer->id, peer->unit, strerrordesc_np(-r));
	}
	v = secret_value_free(v);
	secret_meta_clear(&meta);
	return r;
}

/* Remembers that unit loaded id (for on_rotate). */
static void remember(struct credsock *cs, const char *id, const char *unit)
{
	if (!cs->fs->policy.restart_on_rotate)
		return;
	for (struct loaded *l = cs->loaded; l; l = l->next)
		if (strcmp(l->id, id) == 0 && strcmp(l->unit, unit) == 0)
			return;
	struct loaded *l = calloc(1, sizeof(*l));
	if (l && (l->id = strdup(id)) && (l->unit = strdup(unit))) {
		l->next = cs->loaded;
		cs->loaded = l;
		return;
	}
	if (l)
		free(l->id);
	free(l);
	log_error("credential socket: out of memory: %s will not be restarted when %s changes",
	          unit, id);
}

void credsock_value_changed(struct credsock *cs, const char *id, scope_set scopes)
{
	if (!cs || !(cs->fs->policy.restart_on_rotate & scopes))
		return;
	struct rotated *r = calloc(1, sizeof(*r));
	if (!r || !(r->id = strdup(id))) {
		free(r);
		log_error("%s: out of memory: the units that loaded it are not restarted", id);
		return;
	}
	pthread_mutex_lock(&cs->lock);
	r->next = cs->rotated;
	cs->rotated = r;
	pthread_mutex_unlock(&cs->lock);
	if (write(cs->wake[1], "", 1) < 0) { /* EAGAIN: a wake-up is pending already */
	}
}

/* systemctl try-restart UNIT, over PID 1's private socket (no D-Bus
 * daemon needed; root only). */
static int try_restart(sd_bus **bus, const char *unit)
{
	sd_bus_message *m = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r = 0;
	if (!*bus) {
		if ((r = sd_bus_new(bus)) < 0 ||
		    (r = sd_bus_set_address(*bus, CREDSOCK_BUS_ADDRESS)) < 0 ||
		    (r = sd_bus_start(*bus)) < 0) {
			*bus = sd_bus_unref(*bus);
			return r;
		}
	}
	r = sd_bus_message_new_method_call(*bus, &m, "org.freedesktop.systemd1",
	                                   "/org/freedesktop/systemd1",
	                                   "org.freedesktop.systemd1.Manager", "TryRestartUnit");
	if (r >= 0)
		r = sd_bus_message_append(m, "ss", unit, "replace");
	if (r >= 0)
		r = sd_bus_call(*bus, m, CREDSOCK_BUS_TIMEOUT_US, &error, NULL);
	if (r < 0 && sd_bus_error_is_set(&error))
		log_warn("%s: systemd refused the restart: %s", unit, error.message);
	sd_bus_error_free(&error);
	sd_bus_message_unref(m);
	if (r < 0) /* the connection may be what failed: a new one next time */
		*bus = sd_bus_flush_close_unref(*bus);
	return r;
}

/* The secrets that got a new value: their units restart. */
static void restart_rotated(struct credsock *cs)
{
	char drain[64];
	while (read(cs->wake[0], drain, sizeof(drain)) > 0) {
	}
	pthread_mutex_lock(&cs->lock);
	struct rotated *list = cs->rotated;
	cs->rotated = NULL;
	pthread_mutex_unlock(&cs->lock);
	/* oldest first */
	struct rotated *rev = NULL;
	while (list) {
		struct rotated *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	sd_bus *bus = NULL;
	for (struct rotated *r = rev, *next; r; r = next) {
		next = r->next;
		for (struct loaded *l = cs->loaded; l; l = l->next) {
			if (strcmp(l->id, r->id) != 0)
				continue;
			int e = try_restart(&bus, l->unit);
			if (e < 0)
				log_error(
				    "%s has a new value, but restarting %s (which loaded it as a "
				    "credential) failed: %s",
				    r->id, l->unit, strerrordesc_np(-e));
			else
				log_info("%s has a new value: restarting %s, which loaded it as a "
				         "credential (-o on_rotate)",
				         r->id, l->unit);
		}
		free(r->id);
		free(r);
	}
	sd_bus_flush_close_unref(bus);
}

static void handle(struct credsock *cs, int fd, const struct sockaddr_un *sa, socklen_t len)
{
	struct timeval tv = { .tv_sec = CREDSOCK_SEND_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct credpeer peer = { .unit = "-", .id = "-" };
	struct caller who;
	caller_init(&who, 0, (uid_t)-1, (gid_t)-1, false);
	uint64_t version = 0;
	int r = serve_one(cs, fd, sa, len, &peer, &who, &version);
	if (r < 0 && r != -EPIPE)
		refuse(fd);
	if (r == 0)
		remember(cs, peer.id, peer.unit);
	/* unit=: what the process's cgroup says (the address's claim, when
	 * it differs, is in the log line) */
	audit_event(&who, "credential", peer.id, version, r, NULL);
	caller_clear(&who);
}

static void *credsock_main(void *arg)
{
	struct credsock *cs = arg;
	for (;;) {
		struct pollfd p[3] = { { .fd = cs->fd, .events = POLLIN },
			               { .fd = cs->stop[0], .events = POLLIN },
			               { .fd = cs->wake[0], .events = POLLIN } };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("credential socket %s: poll: %s", cs->path,
			          strerrordesc_np(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (p[2].revents)
			restart_rotated(cs);
		if (!p[0].revents)
			continue;
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(cs->fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
		if (fd < 0)
			continue; /* EAGAIN, ECONNABORTED, EMFILE...: the next one */
		handle(cs, fd, &sa, len);
		close(fd);
	}
	return NULL;
}

int credsock_start(struct credsock *cs, struct fs *fs)
{
	cs->fs = fs;
	int r = pthread_create(&cs->thread, NULL, credsock_main, cs);
	if (r)
		return -r;
	cs->running = true;
	return 0;
}

int credsock_fd(const struct credsock *cs)
{
	return cs ? cs->fd : -1;
}

void credsock_close(struct credsock *cs)
{
	struct stat st;
	if (!cs)
		return;
	if (cs->running) {
		if (write(cs->stop[1], "", 1) != 1) { /* a pipe of ours: cannot fail */
		}
		pthread_join(cs->thread, NULL);
	}
	close(cs->fd);
	close(cs->stop[0]);
	close(cs->stop[1]);
	close(cs->wake[0]);
	close(cs->wake[1]);
	for (struct loaded *l = cs->loaded, *next; l; l = next) {
		next = l->next;
		free(l->id);
		free(l->unit);
		free(l);
	}
	for (struct rotated *r = cs->rotated, *next; r; r = next) {
		next = r->next;
		free(r->id);
		free(r);
	}
	pthread_mutex_destroy(&cs->lock);
	/* only our own socket: a successor may have made its own by now */
	if (stat(cs->path, &st) == 0 && st.st_dev == cs->dev && st.st_ino == cs->ino)
		unlink(cs->path);
	free(cs->path);
	free(cs);
}
