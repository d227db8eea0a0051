/* SPDX-License-Identifier: MIT */
/*
 * Open files: values through handles.
 *
 * A read-only open of a secret fetches and decrypts the current version
 * into locked memory (the handle's snapshot) and serves every read from it
 * until release, which wipes it.  A writable open works on a private
 * locked buffer that becomes one new version when the writer flushes
 * (close) or fsyncs: never one per write(2), never a partial value.
 * Scratch files keep their bytes in their node, shared by every open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ops.h"
#include "hostattrs.h"

struct handle {
	pthread_mutex_t lock;      /* guards everything below */
	struct node *node;         /* the node opened; its open_count holds it */
	enum node_kind kind;       /* NODE_SECRET, NODE_SCRATCH, NODE_VERSION_FILE */
	char *id;                  /* the secret's ID (not for scratch files) */
	struct secret_value *snap; /* read-only opens: what they read */
	struct lockedbuf buf;      /* writable opens of a secret */
	uint64_t incarnation;      /* the secret's at open (0: pending then) */
	uint64_t base_revision;    /* the value revision buf started from */
	bool writable, append;
	bool dirty;    /* buf holds bytes not committed */
	bool replaced; /* buf was emptied first: a whole new value */
	/* A write was refused or a commit failed (-errno): the bytes are not
	 * what the writer meant, so nothing of this open is ever committed,
	 * and every later write, flush and fsync says so again. */
	int failed;
	struct caller who;          /* who opened it (for the audit of commits) */
	struct handle *prev, *next; /* its bucket of fs->handles, under its lock */
	uint64_t fh;                /* what the kernel holds for it (handle_of) */
};

/* An fh is a random token, never a pointer: one the kernel kept from
 * before a restart (handover.c) names nothing here instead of another
 * process's memory.  A read-only open of a stored secret carries the
 * version it reads (FH_SNAPSHOT), so that a restarted daemon can serve
 * the same bytes to its end (handle_adopt). */
#define FH_SNAPSHOT (1ULL << 63)
#define FH_VERSION_MAX 0x7fffffffULL

/* The handle fh names on the file ino: the kernel sends both, and a
 * handle answers only for the node it was opened on, so that even two
 * equal tokens could never hand one file's snapshot to another's fd. */
static struct handle_bucket *bucket_of(struct fs *fs, uint64_t fh)
{
	return &fs->handles[(uint32_t)fh % HANDLE_BUCKETS];
}

static struct handle *handle_find(struct fs *fs, fuse_ino_t ino, uint64_t fh)
{
	struct handle_bucket *b = bucket_of(fs, fh);
	struct handle *h;
	pthread_mutex_lock(&b->lock);
	for (h = b->first; h && (h->fh != fh || h->node->ino != ino); h = h->next)
		;
	pthread_mutex_unlock(&b->lock);
	return h;
}

/* Does a handle other than self hold fh?  Its bucket b locked. */
static bool fh_taken(const struct handle_bucket *b, uint64_t fh, const struct handle *self)
{
	for (const struct handle *h = b->first; h; h = h->next)
		if (h != self && h->fh == fh)
			return true;
	return false;
}

static void bucket_add(struct handle_bucket *b, struct handle *h)
{
	h->prev = NULL;
	h->next = b->first;
	if (h->next)
		h->next->prev = h;
	b->first = h;
}

static void bucket_remove(struct handle_bucket *b, struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		b->first = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
}

/* Gives the open handle h the token fh, unless another handle holds it
 * (false).  Both buckets are held while h moves, so a lookup of either
 * token finds it or finds nothing, never another handle. */
static bool handle_retoken(struct fs *fs, struct handle *h, uint64_t fh)
{
	struct handle_bucket *from = bucket_of(fs, h->fh), *to = bucket_of(fs, fh);
	struct handle_bucket *first = from < to ? from : to, *second = from < to ? to : from;
	pthread_mutex_lock(&first->lock);
	if (second != first)
		pthread_mutex_lock(&second->lock);
	bool taken = fh_taken(to, fh, h);
	if (!taken) {
		bucket_remove(from, h);
		h->fh = fh;
		bucket_add(to, h);
	}
	if (second != first)
		pthread_mutex_unlock(&second->lock);
	pthread_mutex_unlock(&first->lock);
	return !taken;
}

static struct handle *handle_adopt(struct fs *fs, fuse_req_t req, fuse_ino_t ino, uint64_t fh,
                                   int *err);

/* The handle fi names; NULL with *err 0 for fh 0 (scratch files, -o
 * fast), NULL with *err -ESTALE for an open from before a restart that
 * cannot be carried on (a writer: its bytes were in the old daemon). */
static struct handle *handle_of(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
                                const struct fuse_file_info *fi, int *err)
{
	*err = 0;
	if (!fi || !fi->fh)
		return NULL;
	struct handle *h = handle_find(fs, ino, fi->fh);
	if (!h && (fi->fh & FH_SNAPSHOT))
		h = handle_adopt(fs, req, ino, fi->fh, err);
	else if (!h)
		*err = -ESTALE;
	if (*err == -ESTALE)
		log_warn("a file opened before the daemon restarted cannot be used any more: "
		         "ESTALE (open it again)");
	return h;
}

/* A new fh: SipHash of a counter under a key drawn once per process, so
 * as unpredictable as randombytes_buf() and without its getrandom(2)
 * per open.  Never 0, FH_SNAPSHOT clear. */
static uint8_t fh_key[crypto_shorthash_KEYBYTES];

static void fh_key_init(void)
{
	randombytes_buf(fh_key, sizeof(fh_key));
}

static uint64_t fh_new(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	static uint64_t counter;
	pthread_once(&once, fh_key_init);
	uint64_t fh;
	do {
		uint64_t c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		uint8_t out[crypto_shorthash_BYTES];
		crypto_shorthash(out, (const uint8_t *)&c, sizeof(c), fh_key);
		memcpy(&fh, out, sizeof(fh));
	} while (!(fh &= ~FH_SNAPSHOT));
	return fh;
}

/* A handle on node n; fs->lock held (read is enough).  The caller's
 * identity moves into the handle (who keeps only its numbers): use
 * h->who from then on. */
static struct handle *handle_new(struct fs *fs, struct node *n, const char *id, struct caller *who)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	if (id && !(h->id = strdup(id))) {
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->node = n;
	h->kind = n->kind;
	h->who = *who;
	who->exe = who->cgroup = who->unit = who->comm = NULL;
	__atomic_add_fetch(&n->open_count, 1, __ATOMIC_RELAXED);
	for (;;) { /* unique among open handles (handle_retoken keeps it so) */
		uint64_t fh = fh_new();
		struct handle_bucket *b = bucket_of(fs, fh);
		pthread_mutex_lock(&b->lock);
		bool taken = fh_taken(b, fh, NULL);
		if (!taken) {
			h->fh = fh;
			bucket_add(b, h);
		}
		pthread_mutex_unlock(&b->lock);
		if (!taken)
			return h;
	}
}

/* Frees h and lets its node go; a pending secret that nobody holds open
 * and that never got a value goes with its last handle (touch NEW, a cp
 * refused with EFBIG).  fs->lock not held. */
static void handle_free(struct fs *fs, struct handle *h)
{
	struct handle_bucket *b = bucket_of(fs, h->fh);
	pthread_mutex_lock(&b->lock);
	bucket_remove(b, h);
	pthread_mutex_unlock(&b->lock);

	/* The common case (a stored secret's last reader) needs no write
	 * lock: only a node that may have to go is pinned and settled under
	 * it (nothing is freed while the read lock is held). */
	struct node *n = h->node;
	rdlock(fs);
	bool last = __atomic_sub_fetch(&n->open_count, 1, __ATOMIC_RELAXED) == 0;
	/* pending: goes if nothing else holds it (fs_node_release) */
	bool settle = last && (!fs_node_live(n) ||
	                       (n->kind == NODE_SECRET && !n->u.secret.meta.incarnation));
	if (settle)
		fs_node_pin(n);
	unlock(fs);
	if (settle) {
		wrlock(fs);
		if (n->kind == NODE_SECRET)
			n->u.secret.mknod_hold = false; /* its first open is done */
		fs_node_unpin(fs, n);
		unlock(fs);
	}
	secret_value_free(h->snap);
	lockedbuf_clear(&h->buf);
	free(h->id);
	caller_clear(&h->who);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static bool write_only(const struct fs *fs)
{
	return fs->ops->caps & STORE_CAP_WRITE_ONLY_VALUES;
}

/* --- commit --- */

/* Makes the handle's buffer a new version of the incarnation it opened
 * (or the first version of a pending secret); h->lock held.  Errors are
 * for close(2)/fsync(2): the old value stays, and the handle is failed. */
static int commit(struct fs *fs, struct handle *h)
{
	if (h->kind != NODE_SECRET || !h->writable)
		return 0;
	if (h->failed)
		return h->failed;
	if (!h->dirty)
		return 0;
	if (h->buf.len == 0) {
		/* A writer may still come ("echo x >" flushes before it
		 * writes); an empty value is never stored. */
		log_debug("%s: empty, nothing committed yet", h->id);
		return 0;
	}
	struct node *n = h->node;
	struct labels labels = { 0 };
	struct secret_meta meta = { 0 };
	fs_change_begin(fs, &n, 1);
	rdlock(fs);
	/* A node stands for one incarnation; a pending one becomes the
	 * incarnation of its own first commit (this handle's or another's on
	 * the same file), and dies if any other change creates the ID. */
	uint64_t incarnation = n->u.secret.meta.incarnation;
	bool dead = n->dead || (h->incarnation && incarnation != h->incarnation);
	scope_set scopes = n->u.secret.pending_scopes;
	int r = !dead && !incarnation ? labels_copy(&labels, &n->u.secret.meta.labels) : 0;
	/* a first value goes only where the name was created: the policy
	 * of every scope it has, checked again */
	bool refused = false;
	if (r == 0 && !dead && !incarnation)
		refused = (r = admit_change(fs, scopes, &h->who, "first commit of", h->id)) < 0;
	unlock(fs);
	if (r < 0)
		; /* refused (logged) or out of memory */
	else if (dead)
		r = -ESTALE;
	else if (incarnation)
		r = fs->ops->put_value(fs->store, h->id, incarnation,
		                       h->replaced ? 0 : h->base_revision, h->buf.p, h->buf.len,
		                       &meta);
	else if (r == 0)
		r = fs->ops->create(fs->store, h->id, scopes, &labels, h->buf.p, h->buf.len, &meta);
	if (r == 0) {
		wrlock(fs);
		struct store_change c = { .kind = STORE_CHANGED, .meta = meta };
		fs_apply_for(fs, &c, n);
		unlock(fs);
	}
	fs_change_end(fs, &n, 1);
	labels_clear(&labels);

	if (refused || r == -ENOMEM) {
		/* said */
	} else if (r == -ESTALE && (dead || h->replaced)) {
		log_error("%s: write not stored: the secret was deleted (or deleted and created "
		          "again) since this file was opened",
		          h->id);
		r = -EIO;
	} else if (r == -ESTALE) {
		log_error("%s: write not stored: the secret changed since this file was opened "
		          "(at version %" PRIu64 "); open it again and repeat the edit",
		          h->id, n->u.secret.meta.version);
		r = -EIO;
	} else if (r == -ENOENT) {
		log_error("%s: write not stored: the secret was deleted since this file was "
		          "opened",
		          h->id);
		r = -EIO;
	} else if (r == -EEXIST) {
		log_error("%s: not created: another writer created it meanwhile; open it again",
		          h->id);
		r = -EIO;
	} else if (r < 0) {
		log_error("%s: the store refused the new value (%s); the current value stays",
		          h->id, strerrordesc_np(-r));
		r = user_errno(r);
	}
	audit_event(&h->who, incarnation ? "write" : "create", h->id, r < 0 ? 0 : meta.version, r,
	            NULL);
	if (r < 0) {
		h->failed = r;
		return r;
	}
	log_info("%s: version %" PRIu64 " committed (%zu bytes)", h->id, meta.version, h->buf.len);
	warn_trailing_newline(h->id, h->buf.p, h->buf.len);
	h->incarnation = meta.incarnation;
	h->dirty = false;
	h->replaced = false;
	h->base_revision = meta.value_revision;
	secret_meta_clear(&meta);
	return 0;
}

/* --- open --- */

static void release_handle(struct fs *fs, struct handle *h);

/* The scopes whose rules decide over n: a secret's, a scratch file's
 * directory, a version's secret's.  fs->lock held. */
static scope_set rule_scopes(const struct node *n)
{
	if (n->kind == NODE_SCRATCH)
		return 1u << n->u.scratch.scope;
	if (n->kind == NODE_VERSION_FILE)
		n = n->u.vfile.secret;
	return fs_secret_visible_scopes(n);
}

/* The policy decides over an open: reading needs one admitting scope,
 * writing every one.  Refusals are logged and audited.  fs->lock held. */
static int admit_open(struct fs *fs, const struct node *n, bool writable, const struct caller *who)
{
	scope_set scopes = rule_scopes(n);
	const char *op = writable ? "open-write" : "read";
	int r = writable ? policy_check_all(&fs->policy, scopes, who)
	                 : policy_check(&fs->policy, scopes, who);
	if (r < 0) {
		char where[128], name[300], ename[AUDIT_CAP_ID + 1], exe[AUDIT_CAP_EXE + 64],
		    unit[AUDIT_CAP_UNIT + 1];
		const char *what = audit_name(n, name, sizeof(name));
		/* escaped and capped as in the audit line: the line stays whole */
		audit_escape(ename, sizeof(ename), what, AUDIT_CAP_ID);
		audit_escape(unit, sizeof(unit), who->unit, AUDIT_CAP_UNIT);
		log_warn("%s: %s refused to uid %u pid %d (%s, unit %s): the policy of %s "
		         "does not admit it",
		         ename, op, (unsigned)who->uid, (int)who->pid,
		         audit_exe(who, exe, sizeof(exe)), unit,
		         scope_names(scopes, where, sizeof(where)));
		audit_event(who, op, what,
		            n->kind == NODE_SCRATCH  ? 0
		            : n->kind == NODE_SECRET ? n->u.secret.meta.version
		                                     : n->u.vfile.version,
		            r, NULL);
	}
	return r;
}

/* get_value found no value of n's incarnation: a change of it is in
 * flight (a delete, a rename away) or done.  Once nothing is changing it:
 * ESTALE if it is gone (the kernel looks the name up again, and finds
 * what is there now), else ENOENT.  n is held by a handle. */
static int value_gone(struct fs *fs, struct node *n)
{
	fs_change_begin(fs, &n, 1);
	fs_change_end(fs, &n, 1);
	rdlock(fs);
	bool gone = n->dead;
	unlock(fs);
	return gone ? -ESTALE : -ENOENT;
}

/* A read-only open of /.deleted/ID: its value at deletion, from the
 * store.  fs->lock held; dropped. */
static int open_deleted(struct fs *fs, struct node *n, struct caller *who, struct handle **ret)
{
	uint64_t incarnation = n->u.deleted.incarnation;
	struct handle *h = handle_new(fs, n, n->u.deleted.id, who);
	unlock(fs);
	if (!h)
		return -ENOMEM;
	int r = fs->ops->get_deleted_value(fs->store, h->id, incarnation, &h->snap);
	if (r == -ENOENT || r == -ESTALE)
		r = -ESTALE; /* purged or restored meanwhile: the kernel looks again */
	else if (r < 0)
		r = user_errno(r);
	audit_event(&h->who, "read-deleted", h->id, h->snap ? h->snap->version : 0, r, NULL);
	if (r < 0) {
		release_handle(fs, h);
		return r;
	}
	*ret = h;
	return 0;
}

/* Opens the node ino as flags asks. */
static int open_node(struct fs *fs, fuse_ino_t ino, int flags, struct caller *who,
                     struct handle **ret)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (flags & O_TRUNC);
	char name[300];

	/* Opens run in parallel (read lock, atomic counts); only truncating
	 * a scratch file's bytes needs the write lock. */
	if (trunc)
		wrlock(fs);
	else
		rdlock(fs);
	struct node *n = fs_node(fs, ino);
	int r = 0;
	if (!n)
		r = -ENOENT;
	else if (n->kind != NODE_SECRET && n->kind != NODE_SCRATCH &&
	         n->kind != NODE_VERSION_FILE && n->kind != NODE_DELETED_FILE)
		r = -EISDIR;
	else if (!fs_node_live(n) || (n->kind == NODE_VERSION_FILE && n->u.vfile.secret->dead))
		r = -ESTALE; /* the kernel looks the name up again */
	else if (writable && fs->opt.read_only)
		r = -EROFS;
	else if (writable && (n->kind == NODE_VERSION_FILE || n->kind == NODE_DELETED_FILE))
		r = -EACCES;
	else if (n->kind == NODE_DELETED_FILE)
		/* root's only (no scope's policy decides over what has none) */
		r = who->uid == 0 ? 0 : -EACCES;
	else
		r = admit_open(fs, n, writable, who);
	if (r == -EROFS)
		log_warn("write refused: the mount is read-only");
	if (r < 0) {
		unlock(fs);
		return r;
	}
	if (n->kind == NODE_SCRATCH) {
		/* As secret as the scope it sits in: admitted and audited
		 * like the secret it may become. */
		struct handle *h = handle_new(fs, n, NULL, who);
		if (h && trunc) {
			lockedbuf_resize(&n->u.scratch.data, 0);
			n->u.scratch.refused = 0;
			n->u.scratch.mtime_ns = now_ns();
		}
		if (h && !writable)
			audit_event(&h->who, "read", audit_name(n, name, sizeof(name)), 0, 0, NULL);
		unlock(fs);
		if (!h)
			return -ENOMEM;
		h->writable = writable;
		h->append = flags & O_APPEND;
		*ret = h;
		return 0;
	}
	if (n->kind == NODE_DELETED_FILE)
		return open_deleted(fs, n, who, ret); /* drops the lock */
	const struct node *s = n->kind == NODE_SECRET ? n : n->u.vfile.secret;
	const char *id = s->u.secret.meta.id;
	if (writable && fs->opt.fast)
		r = -EPERM;
	else if (write_only(fs) && (!writable || !trunc))
		r = -EACCES;
	if (r == -EPERM)
		log_warn("write to %s refused: with -o fast values change only by rename "
		         "(write a scratch file such as .NAME.new, then mv it onto NAME)",
		         id);
	else if (r == -EACCES && !writable)
		log_warn("%s: reading refused: the values of the %s store cannot be read back "
		         "(they are write-only there); write a whole new value instead (printf v > "
		         "FILE, cp, tee, or mv a scratch file onto it)",
		         id, fs->ops->name);
	else if (r == -EACCES)
		log_warn("%s: write refused: the values of the %s store cannot be read back, so "
		         "a write that keeps part of the old value (an append, a write in place, "
		         "an editor) cannot work; write the whole value (printf v > FILE)",
		         id, fs->ops->name);
	if (r < 0) {
		unlock(fs);
		return r;
	}
	uint64_t incarnation = s->u.secret.meta.incarnation;
	uint64_t version = n->kind == NODE_SECRET ? 0 : n->u.vfile.version;
	bool pending = !incarnation;
	struct handle *h = handle_new(fs, n, id, who);
	unlock(fs);
	if (!h)
		return -ENOMEM;
	h->writable = writable;
	h->append = flags & O_APPEND;
	h->incarnation = incarnation;

	if (writable && fs->ops->can_change && (r = fs->ops->can_change(fs->store)) < 0) {
		/* said: refused at open, where even a shell's "printf >" shows
		 * it, rather than at a close whose error it ignores */
		r = user_errno(r);
	} else if (pending || trunc) {
		/* Nothing to read: the writer starts from an empty value. */
		if (writable)
			h->replaced = true;
		h->dirty = writable && trunc;
		if (!writable)
			h->snap = secret_value_new(0);
	} else {
		struct secret_value *v = NULL;
		r = fs->ops->get_value(fs->store, h->id, incarnation, version, &v);
		if (r == -ENOENT && n->kind == NODE_SECRET)
			r = value_gone(fs, n);
		if (r == -ESTALE || r == -ENOENT) {
			/* said */
		} else if (r < 0) {
			log_error("%s: the value could not be read (%s)", h->id,
			          strerrordesc_np(-r));
			r = user_errno(r);
		} else if (writable) {
			h->base_revision = v->revision;
			r = lockedbuf_assign(&h->buf, v->data, v->len);
			secret_value_free(v);
		} else {
			h->snap = v;
		}
	}
	if (r == 0 && !writable && !h->snap)
		r = -ENOMEM;
	if (!writable || r < 0)
		audit_event(&h->who, writable ? "open-write" : "read", h->id,
		            h->snap ? h->snap->version : 0, r,
		            h->snap && h->snap->stale ? "stale=yes" : NULL);
	if (r < 0) {
		release_handle(fs, h);
		return r;
	}
	*ret = h;
	return 0;
}

/* Undoes the reference an entry reply counted; n is held otherwise. */
static void forget_entry(struct fs *fs, struct node *n)
{
	wrlock(fs);
	if (n->nlookup)
		n->nlookup--;
	unlock(fs);
}

static void reply_open(fuse_req_t req, struct fs *fs, struct handle *h, struct fuse_file_info *fi,
                       const struct fuse_entry_param *e)
{
	if (h->kind == NODE_SECRET && !h->writable && h->snap && h->snap->version &&
	    h->snap->version <= FH_VERSION_MAX) {
		/* 32 bits of the token are left beside the version: drawn
		 * again while another handle holds the same */
		uint64_t low = h->fh & 0xffffffffULL;
		while (!handle_retoken(fs, h, FH_SNAPSHOT | h->snap->version << 32 | low))
			low = fh_new() & 0xffffffffULL;
	}
	fi->fh = h->fh;
	/* No page cache: each open reads its own snapshot and no plaintext
	 * lingers in the kernel. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = !h->writable;
	int r = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (r != 0) {
		/* the kernel took neither the entry nor the open */
		if (e)
			forget_entry(fs, h->node);
		release_handle(fs, h);
	}
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	if (fs->opt.fast) {
		/* Zero-message open: the kernel stops sending OPEN (and
		 * RELEASE) for the whole mount; files are read through their
		 * page cache and READ by inode (read_unopened). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (echo_is_own(fs->echo, fuse_req_ctx(req)->pid)) {
		/* the echo of another client's change (echo.c): no handle */
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	struct handle *h = NULL;
	struct caller who;
	caller_of_req(req, &who);
	int r = open_node(fs, ino, fi->flags, &who, &h);
	caller_clear(&who);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_open(req, fs, h, fi, NULL);
}

/* A new scratch file; fs->lock (write) held. */
static int create_scratch(struct fs *fs, enum scope sc, const char *name, mode_t mode, int flags,
                          const struct caller *who, struct node **ret)
{
	struct node *n = fs_scratch_find(fs, sc, name);
	if (n) {
		if (flags & O_EXCL)
			return -EEXIST;
		*ret = n;
		return 0;
	}
	n = fs_node_new(fs, NODE_SCRATCH);
	if (!n)
		return -ENOMEM;
	n->u.scratch.scope = sc;
	if (!(n->u.scratch.name = strdup(name))) {
		n->u.scratch.unlinked = true;
		fs_node_release(fs, n);
		return -ENOMEM;
	}
	/* Never wider than the scope's files: it holds the next value. */
	n->mode = mode & fs->opt.file_mode;
	n->uid = who->uid;
	n->gid = who->gid;
	n->u.scratch.mtime_ns = now_ns();
	fs_scratch_link(fs, n);
	log_info("%s/%s: scratch file: the name is not a secret ID (^[A-Z][A-Z0-9_]*$), "
	         "so it is held in memory only and never stored unless renamed to an ID",
	         scope_dir_name(sc), name);
	*ret = n;
	return 0;
}

/* The name of secret node n (pending or stored) comes into scope sc.
 * n's change set and fs->lock (write) are held; the lock is dropped
 * around the store call that restores a scope an unlink just took
 * (install(1): unlink, then create). */
static int create_secret(struct fs *fs, struct node *n, enum scope sc, mode_t mode, int flags,
                         const struct caller *who)
{
	struct secret_node *s = &n->u.secret;
	struct tombstone *tomb = fs_tomb_find(fs, s->meta.id, sc);
	if (fs_node_in_scope(n, sc))
		return flags & O_EXCL ? -EEXIST : 0;
	if (s->meta.incarnation && tomb) {
		scope_set scopes = s->meta.scopes | (1u << sc);
		int r = admit_change(fs, scopes, who, "re-create of", s->meta.id);
		char *id = strdup(s->meta.id);
		if (r == 0 && !id)
			r = -ENOMEM;
		if (r < 0) {
			free(id);
			return r;
		}
		uint64_t incarnation = s->meta.incarnation;
		struct secret_meta meta = { 0 };
		unlock(fs);
		r = fs->ops->set_scopes(fs->store, id, incarnation, scopes, &meta);
		wrlock(fs);
		if (r == 0) {
			fs_apply_meta(fs, &meta);
			if ((tomb = fs_tomb_find(fs, id, sc)))
				tomb->unlinked &= ~(1u << sc);
			log_info(
			    "%s: re-created in %s right after its unlink: labels and scopes kept",
			    id, scope_dir_name(sc));
		} else {
			log_error("%s: could not add scope %s back (%s)", id, scope_dir_name(sc),
			          strerrordesc_np(-r));
			r = store_gone(r) ? -ESTALE : user_errno(r);
		}
		secret_meta_clear(&meta);
		free(id);
		return r;
	}
	if (s->meta.incarnation) {
		/* Never a scope added by a create, even of the same value:
		 * comparing would make every writer of sc an oracle for the
		 * values of other scopes, and adding a scope is ln's, admitted
		 * against every scope of the secret (docs/design.md). */
		log_id_elsewhere(fs, "create", sc, &s->meta);
		return -EEXIST;
	}
	/* Not in the store: pending until its first value is written.  A
	 * pending name belongs to the scope it is being created in: the same
	 * ID created in another scope meanwhile would carry one creator's
	 * value to the other's scope (a caller holding NEW_KEY open in its
	 * scope would read the key an administrator creates in another). */
	if (s->pending_scopes) {
		char where[128];
		log_warn("%s/%s: not created: %s is being created in %s (not stored yet); create "
		         "it when that is done (then ln adds this scope), or mv a scratch file "
		         "onto it",
		         scope_dir_name(sc), s->meta.id, s->meta.id,
		         scope_names(s->pending_scopes, where, sizeof(where)));
		return -EEXIST;
	}
	labels_clear(&s->meta.labels);
	s->pending_scopes |= 1u << sc;
	if (tomb) {
		s->pending_scopes |= tomb->scopes;
		labels_clear(&s->meta.labels);
		labels_copy(&s->meta.labels, &tomb->labels);
		fs_tomb_drop(fs, tomb);
		log_info("%s: re-created right after its delete: its labels and scopes "
		         "return with its next value",
		         s->meta.id);
	}
	/* Never wider than the mount gives secrets (a umask of 022 would
	 * otherwise make a new key world-readable under allow_other). */
	n->mode = mode & fs->opt.file_mode;
	return 0;
}

/* Create: a scratch file, or a secret that is stored at its first commit.
 * Returns the node to open, pinned. */
static int create_node(struct fs *fs, enum scope sc, const char *name, mode_t mode, int flags,
                       const struct caller *who, struct node **ret)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		wrlock(fs);
		int r = policy_check(&fs->policy, 1u << sc, who);
		if (r < 0) {
			unlock(fs);
			char ename[AUDIT_CAP_ID + 1], exe[AUDIT_CAP_EXE + 64],
			    unit[AUDIT_CAP_UNIT + 1];
			audit_escape(ename, sizeof(ename), name, AUDIT_CAP_ID);
			audit_escape(unit, sizeof(unit), who->unit, AUDIT_CAP_UNIT);
			log_warn(
			    "%s/%s: create refused to uid %u pid %d (%s, unit %s): the policy of "
			    "%s does not admit it",
			    scope_dir_name(sc), ename, (unsigned)who->uid, (int)who->pid,
			    audit_exe(who, exe, sizeof(exe)), unit, scope_dir_name(sc));
			return r;
		}
		char *id = name_secret_id(fs, name);
		if (!id && !name_is_scratch(name)) {
			unlock(fs);
			char ename[AUDIT_CAP_ID + 1], why[400];
			audit_escape(ename, sizeof(ename), name, AUDIT_CAP_ID);
			name_refused_why(name, why, sizeof(why));
			log_warn("%s/%s: not created: %s", scope_dir_name(sc), ename, why);
			return -EINVAL;
		}
		if (!id) {
			struct node *n = NULL;
			r = create_scratch(fs, sc, name, mode, flags, who, &n);
			if (r == 0) {
				fs_node_pin(n);
				*ret = n;
			}
			unlock(fs);
			return r;
		}
		if (fs->opt.fast) {
			unlock(fs);
			log_warn("%s/%s: not created: with -o fast a secret is created by rename "
			         "(write .%s.new, then mv it onto %s)",
			         scope_dir_name(sc), name, name, name);
			free(id);
			return -EPERM;
		}
		struct node *n = fs_secret_by_id(fs, id);
		if (!n)
			n = fs_secret_pending(fs, id);
		free(id);
		if (!n) {
			unlock(fs);
			return -ENOMEM;
		}
		fs_node_pin(n);
		unlock(fs);

		fs_change_begin(fs, &n, 1);
		wrlock(fs);
		bool gone = n->dead;
		if (!gone)
			r = create_secret(fs, n, sc, mode, flags, who);
		unlock(fs);
		fs_change_end(fs, &n, 1);
		if (!gone && r == 0) {
			*ret = n;
			return 0;
		}
		wrlock(fs);
		fs_node_unpin(fs, n);
		unlock(fs);
		if (!gone)
			return r;
		/* deleted while we waited: look at the name again */
	}
	return -EIO;
}

/* The kernel did not take an entry reply for ino: its count goes. */
static void entry_not_taken(struct fs *fs, fuse_ino_t ino)
{
	wrlock(fs);
	struct node *m = fs_node(fs, ino);
	if (m && m->nlookup) {
		m->nlookup--;
		fs_node_release(fs, m);
	}
	unlock(fs);
}

/* What create and mknod check first: the scope of parent, or -errno
 * (logged). */
static int create_scope(struct fs *fs, fuse_ino_t parent, const char *name)
{
	int sc = scope_of_dir(parent);
	if (sc < 0) {
		log_warn("%s: not created: files live in the scope directories", name);
		return -EPERM;
	}
	if (fs->opt.read_only)
		return -EROFS;
	if (name_too_long(name)) {
		log_warn("%s/<%zu-byte name>: not created: names are at most %d bytes",
		         scope_dir_name(sc), strlen(name), NAME_MAX_BYTES);
		return -ENAMETOOLONG;
	}
	return sc;
}

/* mknod(2) of a regular file, and a creat(2) the kernel sends as MKNOD:
 * the file is made as create makes it, not opened.  tar --xattrs
 * extracts a file so (mknod, set its xattrs, open, write), so a pending
 * secret made here stays until its first open is released
 * (secret_node.mknod_hold).  Every other file type: EPERM. */
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	if ((mode & S_IFMT) != S_IFREG || rdev != 0) {
		refuse_mknod(req, name);
		return;
	}
	int sc = create_scope(fs, parent, name);
	if (sc < 0) {
		fuse_reply_err(req, -sc);
		return;
	}
	mode = (mode & ~fuse_req_ctx(req)->umask) & 07777;
	struct caller who;
	caller_of_req(req, &who);
	struct node *n = NULL;
	int r = create_node(fs, sc, name, mode, O_EXCL, &who, &n);
	if (r == -EACCES)
		audit_event(&who, "create", name, 0, r, NULL);
	caller_clear(&who);
	struct fuse_entry_param e = { .attr_timeout = ATTR_TIMEOUT };
	if (n) {
		wrlock(fs);
		if (n->kind == NODE_SECRET && !n->u.secret.meta.incarnation)
			n->u.secret.mknod_hold = true;
		n->nlookup++;
		e.ino = n->ino;
		e.entry_timeout = entry_timeout_of(n);
		fill_attr(fs, n, &e.attr);
		fs_node_unpin(fs, n);
		unlock(fs);
	}
	if (r != 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_entry(req, &e) != 0)
		entry_not_taken(fs, e.ino);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int sc = create_scope(fs, parent, name);
	if (sc < 0) {
		fuse_reply_err(req, -sc);
		return;
	}
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	mode = (mode & ~ctx->umask) & 07777;

	bool fast = fs->opt.fast;
	struct caller who;
	caller_of_req(req, &who);
	struct node *n = NULL;
	int r = create_node(fs, sc, name, mode, fi->flags, &who, &n);

	/* A created file starts empty, even one that takes a secret's name
	 * back right after its unlink (install, cp --preserve=all). */
	struct handle *h = NULL;
	if (r == 0 && !fast)
		r = open_node(fs, n->ino, fi->flags | O_TRUNC, &who, &h);
	else if (r == -EACCES)
		audit_event(&who, "create", name, 0, r, NULL);
	caller_clear(&who);
	struct fuse_entry_param e = { .attr_timeout = ATTR_TIMEOUT };
	if (n) {
		wrlock(fs);
		if (r == 0) {
			n->nlookup++;
			e.ino = n->ino;
			e.entry_timeout = entry_timeout_of(n);
			fill_attr(fs, n, &e.attr);
		}
		fs_node_unpin(fs, n); /* a pending name nobody opened goes */
		unlock(fs);
	}
	if (r != 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fast) {
		fi->fh = 0; /* a scratch file: its bytes are in its node */
		if (fuse_reply_create(req, &e, fi) != 0)
			entry_not_taken(fs, e.ino);
		return;
	}
	reply_open(req, fs, h, fi, &e);
}

/* --- data --- */

static void reply_slice(fuse_req_t req, const uint8_t *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		size = 0;
	else if (size > len - (size_t)off)
		size = len - (size_t)off;
	/* fuse_reply_buf copies before it returns: the plaintext stays in
	 * locked memory on our side. */
	fuse_reply_buf(req, size ? (const char *)data + off : NULL, size);
}

/* -o fast: a READ with no open behind it, for an inode (a scratch file,
 * or a version of a secret, which is fetched for the page cache). */
static void read_unopened(fuse_req_t req, struct fs *fs, fuse_ino_t ino, size_t size, off_t off)
{
	rdlock(fs);
	struct node *n = fs_node(fs, ino);
	if (n && n->kind == NODE_SCRATCH) {
		reply_slice(req, n->u.scratch.data.p, n->u.scratch.data.len, size, off);
		unlock(fs);
		return;
	}
	char *id = NULL;
	uint64_t incarnation = 0, version = 0;
	bool deleted = n && n->kind == NODE_DELETED_FILE;
	if (deleted && !n->dead) {
		id = strdup(n->u.deleted.id);
		incarnation = n->u.deleted.incarnation;
	} else if (deleted) {
		unlock(fs);
		fuse_reply_err(req, ESTALE); /* purged or restored */
		return;
	} else if (n && (n->kind == NODE_SECRET_VERSION || n->kind == NODE_VERSION_FILE)) {
		const struct node *s = n->u.vfile.secret;
		id = strdup(s->u.secret.meta.id);
		incarnation = s->u.secret.meta.incarnation;
		version = n->u.vfile.version;
	} else if (n && n->kind == NODE_SECRET && n->u.secret.meta.incarnation) {
		id = strdup(n->u.secret.meta.id);
		incarnation = n->u.secret.meta.incarnation;
	} else if (n && n->kind == NODE_SECRET) {
		unlock(fs);
		fuse_reply_buf(req, NULL, 0); /* pending: no value yet */
		return;
	}
	unlock(fs);
	if (!id) {
		fuse_reply_err(req, n ? ENOMEM : ENOENT);
		return;
	}
	/* The version of this incarnation, never another one's. */
	struct secret_value *v = NULL;
	int r = deleted ? fs->ops->get_deleted_value(fs->store, id, incarnation, &v)
	                : fs->ops->get_value(fs->store, id, incarnation, version, &v);
	if (r < 0) {
		log_error("%s: version %" PRIu64 " could not be read (%s)", id, version,
		          r == -ENOENT ? "it was deleted" : strerrordesc_np(-r));
		fuse_reply_err(req, r == -ENOENT ? EIO : -user_errno(r));
	} else {
		reply_slice(req, v->data, v->len, size, off);
	}
	secret_value_free(v);
	free(id);
}

/* A read-only open of a secret from before a restart: the version its fh
 * names, read again from the store, so the reader gets the bytes it
 * started on to the end.  One at a time (adopt_lock, taken before any
 * other lock): two reads of the same open must not make two handles. */
static struct handle *handle_adopt(struct fs *fs, fuse_req_t req, fuse_ino_t ino, uint64_t fh,
                                   int *err)
{
	static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;
	uint64_t version = (fh >> 32) & FH_VERSION_MAX;
	struct secret_value *v = NULL;
	struct caller who;
	pthread_mutex_lock(&adopt_lock);
	struct handle *h = handle_find(fs, ino, fh);
	if (h) {
		pthread_mutex_unlock(&adopt_lock);
		return h;
	}
	caller_of_req(req, &who);
	rdlock(fs);
	struct node *n = fs_node(fs, ino);
	uint64_t incarnation = 0;
	if (n && n->kind == NODE_SECRET && !n->dead && n->u.secret.meta.incarnation) {
		incarnation = n->u.secret.meta.incarnation;
		h = handle_new(fs, n, n->u.secret.meta.id, &who);
	}
	unlock(fs);
	int r = !incarnation ? -ESTALE : !h ? -ENOMEM : 0;
	if (r == 0)
		r = fs->ops->get_value(fs->store, h->id, incarnation, version, &v);
	if (r == -ENOENT)
		r = -ESTALE; /* that version is gone from the store */
	else if (r < 0 && r != -ESTALE)
		r = user_errno(r);
	if (h)
		audit_event(&h->who, "read", h->id, version, r, NULL);
	if (r < 0 && h) {
		release_handle(fs, h);
		h = NULL;
	} else if (h) {
		h->incarnation = incarnation;
		h->snap = v;
		if (!handle_retoken(fs, h, fh)) {
			/* a handle of this daemon drew the same token (1 in
			 * 2^32 per pair): this open cannot be told from it */
			release_handle(fs, h);
			h = NULL;
			r = -ESTALE;
		}
	}
	caller_clear(&who);
	pthread_mutex_unlock(&adopt_lock);
	*err = r;
	return h;
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err;
	struct handle *h = handle_of(fs, req, ino, fi, &err);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	if (!h) {
		read_unopened(req, fs, ino, size, off);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (h->kind == NODE_SCRATCH) {
		rdlock(fs);
		const struct lockedbuf *d = &h->node->u.scratch.data;
		reply_slice(req, d->p, d->len, size, off);
		unlock(fs);
	} else if (h->snap) {
		reply_slice(req, h->snap->data, h->snap->len, size, off);
	} else {
		reply_slice(req, h->buf.p, h->buf.len, size, off);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Stores a write into a scratch file's bytes; fs->lock held for writing. */
static int write_scratch(struct node *n, const char *buf, size_t size, off_t off, bool append)
{
	if (!n || n->kind != NODE_SCRATCH) {
		/* -o fast: there is no open file to commit from. */
		log_warn("write refused: with -o fast values change only by rename "
		         "(write a scratch file such as .NAME.new, then mv it onto NAME)");
		return -EPERM;
	}
	struct scratch_node *s = &n->u.scratch;
	if (s->stored_as) {
		/* Writes follow the file, and this one became a secret's
		 * value: they cannot, so they fail rather than vanish. */
		log_error("%s/%s: write refused: the file was renamed onto %s and stored; open "
		          "%s to change it",
		          scope_dir_name(s->scope), s->name, s->stored_as, s->stored_as);
		return -EIO;
	}
	size_t at = append ? s->data.len : (size_t)off;
	if (at + size > SECRET_VALUE_MAX) {
		log_warn("%s/%s: write refused: it would hold %zu bytes, over the %d-byte "
		         "limit of a value; it cannot become a value until it is truncated",
		         scope_dir_name(s->scope), s->name, at + size, SECRET_VALUE_MAX);
		s->refused = -EFBIG;
		return -EFBIG;
	}
	s->mtime_ns = now_ns();
	return lockedbuf_write(&s->data, buf, size, at);
}

/* Stores a write into a writer's buffer; h->lock held. */
static int write_secret(struct handle *h, const char *buf, size_t size, off_t off)
{
	if (h->failed)
		return h->failed;
	size_t at = h->append ? h->buf.len : (size_t)off;
	int r;
	if (at + size > SECRET_VALUE_MAX) {
		log_warn("%s: write refused: the value would be %zu bytes, over the %d-byte "
		         "limit; nothing of this open will be stored, the current value stays",
		         h->id, at + size, SECRET_VALUE_MAX);
		r = -EFBIG;
	} else {
		r = lockedbuf_write(&h->buf, buf, size, at);
		if (r == 0 && size)
			h->dirty = true;
	}
	if (r < 0)
		h->failed = r;
	return r;
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err;
	struct handle *h = handle_of(fs, req, ino, fi, &err);
	int r;

	if (err) {
		sodium_memzero((void *)buf, size);
		fuse_reply_err(req, -err);
		return;
	}
	if (h)
		pthread_mutex_lock(&h->lock);
	if (!h || h->kind == NODE_SCRATCH) {
		wrlock(fs);
		r = write_scratch(h ? h->node : fs_node(fs, ino), buf, size, off, h && h->append);
		unlock(fs);
	} else {
		r = write_secret(h, buf, size, off);
	}
	if (h)
		pthread_mutex_unlock(&h->lock);
	/* The bytes arrived in libfuse's request buffer, which is ours and
	 * not read again: wipe the plaintext there now. */
	sodium_memzero((void *)buf, size);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err;
	struct handle *h = handle_of(fs, req, ino, fi, &err);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	if (fs->opt.fast || !h) {
		/* -o fast: ENOSYS once, and the kernel stops sending FLUSH. */
		fuse_reply_err(req, fs->opt.fast ? ENOSYS : 0);
		return;
	}
	pthread_mutex_lock(&h->lock);
	int r = commit(fs, h);
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -r);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int r;
	struct handle *h = handle_of(fs, req, ino, fi, &r);
	if (h) {
		pthread_mutex_lock(&h->lock);
		r = commit(fs, h);
		pthread_mutex_unlock(&h->lock);
	}
	/* what this open did is in the audit trail, durably */
	audit_flush();
	fuse_reply_err(req, -r);
}

/* fsync(2) of a directory (sync MOUNTPOINT): the audit lines still in a
 * batch are written. */
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	audit_flush();
	fuse_reply_err(req, 0);
}

static void release_handle(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&h->lock);
	if (h->kind == NODE_SECRET && h->writable && h->dirty && !h->failed) {
		/* What was written after the last flush (mmap).  A name never
		 * stored has nothing current: handle_free says what happened
		 * to it. */
		if (h->buf.len == 0 && h->node->u.secret.meta.incarnation)
			log_warn("%s: closed with an empty value, which is not stored "
			         "(a value is 1 to %d bytes); the current value stays",
			         h->id, SECRET_VALUE_MAX);
		else
			commit(fs, h);
	}
	pthread_mutex_unlock(&h->lock);
	handle_free(fs, h);
	hostattrs_save_if_dirty(fs); /* a pending name with a chmod went */
}

/* At unmount: the kernel sends no RELEASE for files still open (or whose
 * RELEASE was still queued): release them here, committing what a writer
 * left, wiping every buffer. */
void release_open_handles(struct fs *fs)
{
	for (size_t i = 0; i < HANDLE_BUCKETS; i++) {
		struct handle_bucket *b = &fs->handles[i];
		for (;;) {
			pthread_mutex_lock(&b->lock);
			struct handle *h = b->first;
			pthread_mutex_unlock(&b->lock);
			if (!h)
				break;
			release_handle(fs, h);
		}
	}
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = fi->fh ? handle_find(fs, ino, fi->fh) : NULL;
	if (h)
		release_handle(fs, h);
	fuse_reply_err(req, 0); /* one from before a restart: nothing here */
}

/* --- attributes that can be set --- */

/* A size change: through the open file, or (truncate(2) by path) through a
 * handle of its own that commits at once. */
static int set_size(struct fs *fs, fuse_ino_t ino, off_t size, struct fuse_file_info *fi,
                    fuse_req_t req)
{
	if (size < 0 || size > SECRET_VALUE_MAX) {
		log_warn("truncate refused: %lld bytes is over the %d-byte limit of a value",
		         (long long)size, SECRET_VALUE_MAX);
		return -EFBIG;
	}
	struct handle *own = NULL;
	int r;
	struct handle *h = handle_of(fs, req, ino, fi, &r); /* NULL: -o fast or by name */
	if (r < 0)
		return r;
	if (!h) {
		struct caller who;
		caller_of_req(req, &who);
		r = open_node(fs, ino, O_WRONLY, &who, &own);
		caller_clear(&who);
		if (r < 0)
			return r;
		h = own;
	}
	pthread_mutex_lock(&h->lock);
	if (h->kind == NODE_SCRATCH) {
		wrlock(fs);
		struct scratch_node *sn = &h->node->u.scratch;
		if (sn->stored_as) {
			log_error(
			    "%s/%s: truncate refused: the file was renamed onto %s and stored",
			    scope_dir_name(sn->scope), sn->name, sn->stored_as);
			r = -EIO;
		} else {
			r = lockedbuf_resize(&sn->data, (size_t)size);
			if (r == 0 && size == 0)
				sn->refused = 0; /* a fresh start */
			sn->mtime_ns = now_ns();
		}
		unlock(fs);
	} else if (!h->writable) {
		r = -EBADF;
	} else if (h->failed) {
		r = h->failed;
	} else {
		r = lockedbuf_resize(&h->buf, (size_t)size);
		h->dirty = true;
		if (size == 0)
			h->replaced = true;
		if (r == 0 && own) {
			if (size == 0) {
				log_warn("%s: truncate to 0 not stored (a value is 1 to %d bytes)",
				         h->id, SECRET_VALUE_MAX);
				r = -EINVAL;
			} else {
				r = commit(fs, h);
			}
			h->dirty = false;
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (own)
		release_handle(fs, own);
	return r;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	rdlock(fs);
	struct node *n = fs_node_target(fs, ino);
	fuse_ino_t target = n ? n->ino : 0;
	enum node_kind kind = n ? n->kind : NODE_ROOT;
	/* Through an open file (ftruncate) a removed file is still the
	 * file; by name it is stale, and the kernel looks again (chmod after
	 * mv: the old name's inode).  fchmod comes without the file, so on a
	 * removed file it is ESTALE too. */
	bool live = n && (fs_node_live(n) || (fi && fi->fh));
	unlock(fs);
	if (!target || !live) {
		fuse_reply_err(req, target ? ESTALE : ENOENT);
		return;
	}
	if (fs->opt.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (kind == NODE_VERSION_FILE || kind == NODE_VERSION_DIR || kind == NODE_VERSIONS ||
	    kind == NODE_DELETED || kind == NODE_DELETED_FILE) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (kind != NODE_SECRET && kind != NODE_SCRATCH) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		int r = set_size(fs, fi && fi->fh ? ino : target, attr->st_size, fi, req);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	struct stat st;
	wrlock(fs);
	n = fs_node(fs, target);
	if (!n) {
		unlock(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* Owner and mode are this host's view of the file, kept while
	 * mounted; the store has no notion of them. */
	struct acl acl;
	if ((to_set & FUSE_SET_ATTR_MODE) && fill_acl(fs, n, &acl)) {
		/* Shared by scopes of different owners: the group bits shown
		 * are the ACL's mask, which the scopes decide.  Taken as they
		 * are (chmod of the mode stat shows: cp -p, sed -i), never as
		 * the group's own bits, which would widen access. */
		mode_t mask = (mode_t)acl.e[acl.n - 2].perm << 3;
		if ((attr->st_mode & S_IRWXG) != mask) {
			unlock(fs);
			log_warn(
			    "chmod %o refused: the file is shared with another scope's owner by "
			    "its ACL, whose mask its group bits show (%o); take a scope's access "
			    "away by removing the secret from that scope",
			    (unsigned)(attr->st_mode & 07777), (unsigned)(mask >> 3));
			fuse_reply_err(req, EPERM);
			return;
		}
		n->mode = (attr->st_mode & 07707) | (n->mode & S_IRWXG);
		n->mode_set = true;
	} else if (to_set & FUSE_SET_ATTR_MODE) {
		n->mode = attr->st_mode & 07777;
		n->mode_set = true;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid;
		gid_t gid;
		fill_attr(fs, n, &st); /* the owner shown now */
		uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : st.st_uid;
		gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : st.st_gid;
		n->uid = uid;
		n->gid = gid;
		n->owner_set = true;
	}
	if (kind == NODE_SCRATCH && (to_set & FUSE_SET_ATTR_MTIME))
		n->u.scratch.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW)
		                          ? now_ns()
		                          : (int64_t)attr->st_mtim.tv_sec * 1000000000LL +
		                                attr->st_mtim.tv_nsec;
	/* A secret's mtime is its current version's time: a set time is
	 * accepted (cp -p, touch) and not kept. */
	bool keep = (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	            (kind == NODE_SECRET || kind == NODE_SCOPE);
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		n->ctime_ns = now_ns();
	fill_attr(fs, n, &st);
	unlock(fs);
	/* Through an open file the size set is the file's size as this
	 * writer sees it, before its commit (the kernel keeps what we say). */
	if (to_set & FUSE_SET_ATTR_SIZE)
		st.st_size = attr->st_size;
	if (keep)
		hostattrs_save(fs); /* kept across remounts; a failure is logged */
	st.st_ino = ino;
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}
