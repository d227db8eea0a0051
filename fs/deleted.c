/* SPDX-License-Identifier: MIT */
/*
 * /.deleted: the undo for rm (-o keep_deleted, STORE_CAP_UNDELETE).
 *
 * A secret whose last scope is removed is deleted in the store, which
 * keeps it (sealed, with its versions, labels and scopes) for
 * keep_deleted; /.deleted/ID shows each one kept, as a read-only file of
 * its value at deletion (mtime: when it was deleted), root's only and
 * hidden from everyone else.  `mv /.deleted/ID SCOPE/ID` restores it:
 * the store makes it live again as a new incarnation (a new inode; CAS
 * bases and open files of the deleted one never reach it) with all its
 * versions, labels and scopes, plus SCOPE.  `rm /.deleted/ID` purges it
 * at once.  The purger thread purges what was kept longer than
 * keep_deleted, once at mount and then every deleted_purge_period().
 *
 * Nothing here is in the inode table's ID index: /.deleted is answered
 * from the store (list_deleted) at each lookup and readdir, and a node
 * (NODE_DELETED_FILE) exists only while the kernel knows the name.  A
 * restore's record goes through fs_apply like every other change.
 *
 * Locks: fs->lock only, never across a store call; the purger's own
 * mutex is a leaf (fs.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

bool deleted_shown(const struct fs *fs)
{
	return (fs->ops->caps & STORE_CAP_UNDELETE) && fs->ops->list_deleted &&
	       fs->opt.keep_deleted_ns > 0;
}

/* --- what the store keeps --- */

struct kept_one {
	const char *id;
	uint64_t incarnation;
	uint32_t size;
	int64_t deleted_ns;
	bool found;
};

static int find_kept(void *userdata, const struct secret_meta *m)
{
	struct kept_one *k = userdata;
	if (strcmp(m->id, k->id) != 0)
		return 0;
	k->incarnation = m->incarnation;
	k->size = m->size;
	k->deleted_ns = m->mtime_ns; /* list_deleted's mtime: the deletion */
	k->found = true;
	return 1; /* found: stop */
}

/* The kept incarnation of the ID NAME names; -ENOENT if none.  *ret_id
 * malloc'ed.  No lock held. */
static int kept_of_name(struct fs *fs, const char *name, char **ret_id, struct kept_one *ret)
{
	if (!deleted_shown(fs))
		return -ENOENT;
	char *id = name_to_id(name);
	if (!id)
		return -ENOENT;
	*ret = (struct kept_one){ .id = id };
	int r = fs->ops->list_deleted(fs->store, find_kept, ret);
	if (r == 1)
		r = 0;
	if (r == 0 && !ret->found)
		r = -ENOENT;
	if (r < 0) {
		free(id);
		return r;
	}
	*ret_id = id;
	return 0;
}

/* The nodes of id's other incarnations (or all, with incarnation 0) are
 * dead: purged or restored.  The kernel forgets their attributes (after
 * mv the restored name still leads to such an inode until looked up
 * again, which its ESTALE makes happen).  fs->lock (write) held. */
static void kill_kept_nodes(struct fs *fs, const char *id, uint64_t incarnation)
{
	for (struct node *n = fs->deleted_files; n; n = n->next) {
		if (!n->dead && strcmp(n->u.deleted.id, id) == 0 &&
		    (!incarnation || n->u.deleted.incarnation != incarnation)) {
			n->dead = true;
			if (fs->notifier)
				notifier_inval_inode(fs->notifier, n->ino);
		}
	}
}

int deleted_lookup(struct fs *fs, const char *name, struct node **ret)
{
	struct kept_one k;
	char *id = NULL;
	int r = kept_of_name(fs, name, &id, &k);
	if (r < 0)
		return r;
	wrlock(fs);
	kill_kept_nodes(fs, id, k.incarnation);
	struct node *n = fs->deleted_files;
	while (n && (n->dead || strcmp(n->u.deleted.id, id) != 0))
		n = n->next;
	if (!n && (n = fs_node_new(fs, NODE_DELETED_FILE))) {
		n->u.deleted.id = id;
		id = NULL;
		n->u.deleted.incarnation = k.incarnation;
		n->next = fs->deleted_files;
		fs->deleted_files = n;
	}
	if (n) {
		n->u.deleted.size = k.size;
		n->u.deleted.deleted_ns = k.deleted_ns;
		fs_node_pin(n);
	}
	unlock(fs);
	free(id);
	if (!n)
		return -ENOMEM;
	*ret = n;
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
};

static int add_name(void *userdata, const struct secret_meta *m)
{
	struct names *l = userdata;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = id_to_name(m->id)))
		return -ENOMEM;
	l->n++;
	return 0;
}

int deleted_names(struct fs *fs, char ***ret_names, size_t *ret_n)
{
	struct names l = { 0 };
	int r = deleted_shown(fs) ? fs->ops->list_deleted(fs->store, add_name, &l) : 0;
	if (r < 0) {
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i]);
		free(l.v);
		return r;
	}
	*ret_names = l.v;
	*ret_n = l.n;
	return 0;
}

int deleted_purge(struct fs *fs, const char *name)
{
	struct kept_one k;
	char *id = NULL;
	if (fs->opt.read_only)
		return -EROFS;
	int r = kept_of_name(fs, name, &id, &k);
	if (r < 0)
		return r;
	r = fs->ops->purge(fs->store, id, k.incarnation);
	if (r == 0 || r == -ENOENT || r == -ESTALE) {
		wrlock(fs);
		kill_kept_nodes(fs, id, r == 0 ? 0 : k.incarnation);
		unlock(fs);
	}
	if (r == 0)
		log_info("%s: deleted secret purged (rm in /%s): it cannot be restored any more",
		         id, DELETED_DIR_NAME);
	else
		log_error("%s: could not purge the deleted secret (%s)", id, strerrordesc_np(-r));
	free(id);
	return r == 0 ? 0 : r == -ESTALE ? -ENOENT : user_errno(r);
}

int deleted_restore(struct fs *fs, const char *name, enum scope sc, const char *newname)
{
	struct kept_one k;
	struct secret_meta meta = { 0 };
	char *id = NULL, *newid = NULL;
	if (fs->opt.read_only)
		return -EROFS;
	int r = kept_of_name(fs, name, &id, &k);
	if (r < 0)
		return r;
	newid = name_to_id(newname);
	if (!newid || strcmp(newid, id) != 0) {
		log_warn("%s: a deleted secret is restored under its own ID: mv /%s/%s %s/%s", id,
		         DELETED_DIR_NAME, name, scope_dir_name(sc), name);
		r = -EPERM;
		goto out;
	}
	rdlock(fs);
	bool taken = fs_secret_by_id(fs, id) != NULL;
	unlock(fs);
	if (taken) {
		log_warn("%s: not restored: a secret %s exists (rm it first, or read the deleted "
		         "value with cat /%s/%s)",
		         id, id, DELETED_DIR_NAME, name);
		r = -EEXIST;
		goto out;
	}
	r = fs->ops->undelete(fs->store, id, k.incarnation, 1u << sc, &meta);
	if (r == 0) {
		struct store_change c = { .kind = STORE_CHANGED, .meta = meta };
		char where[128];
		wrlock(fs);
		kill_kept_nodes(fs, id, 0);
		fs_apply(fs, &c);
		unlock(fs);
		log_info("%s: restored from /%s with its %llu version(s), labels and scopes (%s)",
		         id, DELETED_DIR_NAME, (unsigned long long)meta.version,
		         scope_names(meta.scopes, where, sizeof(where)));
	} else if (r == -EEXIST) {
		log_warn("%s: not restored: a secret %s was created meanwhile", id, id);
	} else {
		log_error("%s: could not restore the deleted secret (%s)", id, strerrordesc_np(-r));
		r = r == -ESTALE ? -ENOENT : user_errno(r);
	}
out:
	secret_meta_clear(&meta);
	free(newid);
	free(id);
	return r;
}

/* --- the purger --- */

struct purger {
	pthread_t thread;
	pthread_mutex_t lock; /* a leaf */
	pthread_cond_t wake;
	bool stop; /* lock */
	int64_t period_ns;
};

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* How often the purger looks: a tenth of the grace period, between one
 * second and a minute (a kept secret lives at most that much longer). */
static int64_t purge_period(int64_t keep_ns)
{
	int64_t p = keep_ns / 10;
	if (p < 1000000000LL)
		p = 1000000000LL;
	if (p > 60LL * 1000000000LL)
		p = 60LL * 1000000000LL;
	return p;
}

static int purge_now(struct fs *fs)
{
	unsigned n = 0;
	int r = fs->ops->purge_expired(fs->store, realtime_ns(), &n);
	if (r < 0)
		log_warn("deleted secrets past -o keep_deleted could not be purged (%s); trying "
		         "again later",
		         strerrordesc_np(-r));
	else if (n)
		log_info("%u deleted secret(s) kept longer than -o keep_deleted purged", n);
	return r;
}

static void *purger_main(void *arg)
{
	struct fs *fs = arg;
	struct purger *p = fs->purger;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += p->period_ns / 1000000000LL;
		until.tv_nsec += p->period_ns % 1000000000LL;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0)
			;
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		purge_now(fs);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int deleted_purger_start(struct fs *fs)
{
	/* a store that keeps nothing may still hold what an earlier mount
	 * with a longer keep_deleted kept: purged now, and on no timer */
	if (!(fs->ops->caps & STORE_CAP_UNDELETE) || !fs->ops->purge_expired || fs->opt.read_only)
		return 0;
	int r = purge_now(fs);
	if (r < 0 || !deleted_shown(fs))
		return r;
	struct purger *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	p->period_ns = purge_period(fs->opt.keep_deleted_ns);
	fs->purger = p;
	r = -pthread_create(&p->thread, NULL, purger_main, fs);
	if (r < 0) {
		fs->purger = NULL;
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	return r;
}

void deleted_purger_stop(struct fs *fs)
{
	struct purger *p = fs->purger;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
	fs->purger = NULL;
}
