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

#include "ops_i.h"
#include "hostattrs.h"

struct handle {
	pthread_mutex_t lock;       /* guards everything below */
	fuse_ino_t ino;             /* the node opened */
	enum node_kind kind;        /* NODE_SECRET, NODE_SCRATCH, NODE_VERSION_FILE */
	char *id;                   /* the secret's ID (not for scratch files) */
	struct secret_value *snap;  /* read-only opens: what they read */
	struct lockedbuf buf;       /* writable opens of a secret */
	uint64_t base_version;      /* the version buf started from */
	bool writable, append;
	bool dirty;                 /* buf holds bytes not committed */
	bool replaced;              /* buf was emptied first: a whole new value */
	bool pending;               /* opened before the secret had a value */
	struct caller who;          /* who opened it (for the audit of commits) */
	struct handle *prev, *next; /* fs->handles, under fs->handles_lock */
};

static struct handle *handle_new(struct fs *fs, fuse_ino_t ino, enum node_kind kind,
                                 const char *id, const struct caller *who)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->ino = ino;
	h->kind = kind;
	if ((id && !(h->id = strdup(id))) || caller_copy(&h->who, who) < 0) {
		free(h->id);
		free(h);
		return NULL;
	}
	pthread_mutex_lock(&fs->handles_lock);
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

static void handle_free(struct fs *fs, struct handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
	secret_value_free(h->snap);
	lockedbuf_clear(&h->buf);
	free(h->id);
	caller_clear(&h->who);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* --- commit --- */

/* The first value of a secret created through the mount: creates it in
 * the store with the scopes and labels its node has gathered. */
static int create_pending(struct fs *fs, const char *id, const struct lockedbuf *b,
                          struct secret_meta *ret_meta)
{
	struct labels labels = { 0 };
	pthread_mutex_lock(&fs->ns_lock);
	rdlock(fs);
	struct node *n = fs_secret_by_id(fs, id);
	scope_set scopes = n ? n->u.secret.pending_scopes : 0;
	bool in_store = n && n->u.secret.meta.version;
	int r = n ? labels_copy(&labels, &n->u.secret.meta.labels) : 0;
	unlock(fs);
	if (r == 0) {
		if (in_store)  /* created by another writer meanwhile */
			r = fs->ops->put_value(fs->store, id, 0, b->p, b->len, ret_meta);
		else if (!scopes)
			r = -ENOENT;  /* unlinked before its first value */
		else
			r = fs->ops->create(fs->store, id, scopes, &labels, b->p, b->len, ret_meta);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	labels_clear(&labels);
	return r;
}

/* Makes the handle's buffer the secret's new version; h->lock held.
 * Errors are for close(2)/fsync(2): the old value stays. */
static int commit(struct fs *fs, struct handle *h)
{
	if (h->kind != NODE_SECRET || !h->writable || !h->dirty)
		return 0;
	if (h->buf.len == 0) {
		/* A writer may still come ("echo x >" flushes before it
		 * writes); an empty value is never stored. */
		log_debug("%s: empty, nothing committed yet", h->id);
		return 0;
	}
	rdlock(fs);
	struct node *n = fs_secret_by_id(fs, h->id);
	bool in_store = n && n->u.secret.meta.version;
	unlock(fs);

	struct secret_meta meta = { 0 };
	int r;
	if (in_store)
		r = fs->ops->put_value(fs->store, h->id, h->replaced ? 0 : h->base_version,
		                       h->buf.p, h->buf.len, &meta);
	else
		r = create_pending(fs, h->id, &h->buf, &meta);
	if (r == -ESTALE) {
		log_error("%s: write not stored: the secret changed since this file was opened "
		          "(at version %" PRIu64 "); open it again and repeat the edit",
		          h->id, h->base_version);
		r = -EIO;
	} else if (r < 0) {
		log_error("%s: the store refused the new value (%s); the current value stays",
		          h->id, strerrordesc_np(-r));
		r = user_errno(r);
	}
	audit_event(&h->who, in_store ? "write" : "create", h->id, r < 0 ? 0 : meta.version,
	            r, NULL);
	if (r < 0)
		return r;
	wrlock(fs);
	n = fs_secret_by_id(fs, h->id);
	if (n && meta.version >= n->u.secret.meta.version) {
		fs_secret_update_meta(fs, n, &meta);
		n->became = 0;
	}
	fuse_ino_t ino = n ? n->ino : 0;
	unlock(fs);
	if (ino)
		notifier_inval_inode(fs->notifier, ino);  /* new size and mtime */
	log_info("%s: version %" PRIu64 " committed (%zu bytes)", h->id, meta.version, h->buf.len);
	h->dirty = false;
	h->replaced = false;
	h->base_version = meta.version;
	secret_meta_clear(&meta);
	return 0;
}

/* --- open --- */

static void release_handle(struct fs *fs, struct handle *h);

/* Opens the node ino (already resolved) as flags asks. */
static int open_node(struct fs *fs, fuse_ino_t ino, int flags, const struct caller *who,
                     struct handle **ret)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (flags & O_TRUNC);

	/* Opens run in parallel (read lock, atomic counts); only truncating
	 * a scratch file's bytes needs the write lock. */
	if (trunc)
		wrlock(fs);
	else
		rdlock(fs);
	struct node *n = fs_node(fs, ino);
	if (!n) {
		unlock(fs);
		return -ENOENT;
	}
	enum node_kind kind = n->kind;
	if (kind != NODE_SECRET && kind != NODE_SCRATCH && kind != NODE_VERSION_FILE) {
		unlock(fs);
		return -EISDIR;
	}
	if (writable && fs->opt.read_only) {
		unlock(fs);
		log_warn("write refused: the mount is read-only");
		return -EROFS;
	}
	if (kind == NODE_SCRATCH) {
		struct handle *h = handle_new(fs, ino, kind, NULL, who);
		if (!h) {
			unlock(fs);
			return -ENOMEM;
		}
		h->writable = writable;
		h->append = flags & O_APPEND;
		if (trunc) {
			lockedbuf_resize(&n->u.scratch.data, 0);
			n->u.scratch.mtime_ns = now_ns();
		}
		__atomic_add_fetch(&n->u.scratch.open_count, 1, __ATOMIC_RELAXED);
		unlock(fs);
		*ret = h;
		return 0;
	}
	if (kind == NODE_VERSION_FILE && writable) {
		unlock(fs);
		return -EACCES;
	}
	if (writable && fs->opt.fast) {
		unlock(fs);
		log_warn("write to %s refused: with -o fast values change only by rename "
		         "(write a scratch file such as .NAME.new, then mv it onto NAME)",
		         n->u.secret.meta.id);
		return -EPERM;
	}
	const struct node *s = kind == NODE_SECRET ? n : fs_node(fs, n->u.vfile.secret_ino);
	uint64_t version = kind == NODE_SECRET ? s->u.secret.meta.version : n->u.vfile.version;
	bool pending = kind == NODE_SECRET && !version && s->u.secret.pending_scopes;
	const char *op = writable ? "open-write" : "read";
	int r = writable ? policy_check_all(&fs->policy, fs_secret_visible_scopes(s), who)
	                 : policy_check(&fs->policy, fs_secret_visible_scopes(s), who);
	if (r < 0) {
		char where[128];
		log_warn("%s: %s refused to uid %u pid %d (%s, unit %s): the policy of %s "
		         "does not admit it", s->u.secret.meta.id, op, (unsigned)who->uid,
		         (int)who->pid, who->exe, who->unit,
		         scope_names(fs_secret_visible_scopes(s), where, sizeof(where)));
		audit_event(who, op, s->u.secret.meta.id, version, r, NULL);
		unlock(fs);
		return r;
	}
	struct handle *h = handle_new(fs, ino, kind, s->u.secret.meta.id, who);
	if (h && pending) {
		h->pending = true;
		__atomic_add_fetch(&n->u.secret.pending_opens, 1, __ATOMIC_RELAXED);
	}
	unlock(fs);
	if (!h)
		return -ENOMEM;
	if (!version && !pending) {
		handle_free(fs, h);
		return -ENOENT;
	}
	h->writable = writable;
	h->append = flags & O_APPEND;
	h->base_version = version;

	if (pending || trunc) {
		/* Nothing to read: the writer starts from an empty value. */
		if (writable)
			h->dirty = h->replaced = trunc;
		else
			h->snap = secret_value_new(0);
	} else {
		struct secret_value *v = NULL;
		r = fs->ops->get_value(fs->store, h->id, kind == NODE_SECRET ? 0 : version, &v);
		if (r < 0) {
			log_error("%s: the value could not be read (%s)", h->id, strerrordesc_np(-r));
			r = user_errno(r);
		} else if (writable) {
			h->base_version = v->version;
			r = lockedbuf_assign(&h->buf, v->data, v->len);
			secret_value_free(v);
		} else {
			h->snap = v;
		}
	}
	if (r == 0 && !writable && !h->snap)
		r = -ENOMEM;
	if (!writable || r < 0)
		audit_event(who, op, h->id, h->snap ? h->snap->version : version, r, NULL);
	if (r < 0) {
		release_handle(fs, h);
		return r;
	}
	*ret = h;
	return 0;
}

static void reply_open(fuse_req_t req, struct fs *fs, struct handle *h,
                       struct fuse_file_info *fi, const struct fuse_entry_param *e)
{
	fi->fh = (uintptr_t)h;
	/* No page cache: each open reads its own snapshot and no plaintext
	 * lingers in the kernel. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = !h->writable;
	int r = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (r != 0)
		release_handle(fs, h);
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
	rdlock(fs);
	struct node *n = fs_node_resolve(fs, ino);
	fuse_ino_t target = n ? n->ino : 0;
	unlock(fs);
	struct handle *h = NULL;
	struct caller who;
	caller_of_req(req, &who);
	int r = target ? open_node(fs, target, fi->flags, &who, &h) : -ENOENT;
	caller_clear(&who);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_open(req, fs, h, fi, NULL);
}

/* Create: a scratch file, or a secret that is stored at its first commit.
 * fs->ns_lock and fs->lock (write) held; returns the node to open. */
static int create_node(struct fs *fs, enum scope sc, const char *name, mode_t mode,
                       int flags, const struct caller *who, struct node **ret)
{
	int r = policy_check(&fs->policy, 1u << sc, who);
	if (r < 0) {
		log_warn("%s/%s: create refused to uid %u pid %d (%s, unit %s): the policy of %s "
		         "does not admit it", scope_dir_name(sc), name, (unsigned)who->uid,
		         (int)who->pid, who->exe, who->unit, scope_dir_name(sc));
		return r;
	}
	char *id = name_secret_id(fs, name);
	if (!id) {
		struct node *n = fs_scratch_find(fs, sc, name);
		if (n) {
			if (flags & O_EXCL)
				return -EEXIST;
			*ret = n;
			return 0;
		}
		n = fs_node_new(fs, NODE_SCRATCH);
		if (!n || !(n->u.scratch.name = strdup(name))) {
			fs_node_free(fs, n);
			return -ENOMEM;
		}
		n->mode = mode;
		n->uid = who->uid;
		n->gid = who->gid;
		n->u.scratch.scope = sc;
		n->u.scratch.mtime_ns = now_ns();
		fs_scratch_link(fs, n);
		log_info("%s/%s: scratch file: the name is not a secret ID (^[A-Z][A-Z0-9_]*$), "
		         "so it is held in memory only and never stored unless renamed to an ID",
		         scope_dir_name(sc), name);
		*ret = n;
		return 0;
	}

	struct node *n = fs_secret_get_or_add(fs, id);
	free(id);
	if (!n)
		return -ENOMEM;
	struct secret_node *s = &n->u.secret;
	bool tomb = (s->tomb_unlinked & (1u << sc)) && now_ns() - s->tomb_time_ns < TOMBSTONE_NS;
	if (fs_node_in_scope(n, sc)) {
		if (flags & O_EXCL)
			return -EEXIST;
	} else if (s->meta.version && tomb) {
		/* install(1): unlink, then create.  The scope comes back. */
		scope_set scopes = s->meta.scopes | (1u << sc);
		if ((r = admit_change(fs, scopes, who, "re-create of", s->meta.id)) < 0)
			return r;
		char *sid = strdup(s->meta.id);
		if (!sid)
			return -ENOMEM;
		unlock(fs);
		r = fs->ops->set_scopes(fs->store, sid, scopes);
		wrlock(fs);
		free(sid);
		if (r < 0) {
			log_error("%s: could not add scope %s back (%s)", s->meta.id,
			          scope_dir_name(sc), strerrordesc_np(-r));
			return user_errno(r);
		}
		s->meta.scopes = scopes;
		s->tomb_unlinked &= ~(1u << sc);
		log_info("%s: re-created in %s right after its unlink: labels and scopes kept",
		         s->meta.id, scope_dir_name(sc));
	} else if (s->meta.version) {
		char where[128];
		log_warn("%s/%s: not created: secret %s exists in %s; to add this scope run "
		         "ln <mountpoint>/%s/%s <mountpoint>/%s/%s",
		         scope_dir_name(sc), name, s->meta.id,
		         scope_names(s->meta.scopes, where, sizeof(where)),
		         scope_dir_name(__builtin_ctz(s->meta.scopes)), name,
		         scope_dir_name(sc), name);
		return -EEXIST;
	} else {
		/* Not in the store: pending until its first value is written. */
		if (!s->pending_scopes)
			labels_clear(&s->meta.labels);
		s->pending_scopes |= 1u << sc;
		if (tomb) {
			s->pending_scopes |= s->tomb_scopes;
			labels_clear(&s->meta.labels);
			labels_copy(&s->meta.labels, &s->tomb_labels);
			s->tomb_unlinked = 0;
			log_info("%s: re-created right after its delete: its labels and scopes "
			         "return with its next value", s->meta.id);
		}
		/* Never wider than the mount gives secrets (a umask of 022 would
		 * otherwise make a new key world-readable under allow_other). */
		n->mode = mode & fs->opt.file_mode;
	}
	*ret = n;
	return 0;
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int sc = scope_of_dir(parent);
	if (sc < 0) {
		log_warn("%s: not created: files live in the scope directories", name);
		fuse_reply_err(req, EPERM);
		return;
	}
	if (fs->opt.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (name_too_long(name)) {
		log_warn("%s/<%zu-byte name>: not created: names are at most %d bytes",
		         scope_dir_name(sc), strlen(name), NAME_MAX_BYTES);
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	mode = (mode & ~ctx->umask) & 07777;

	struct caller who;
	caller_of_req(req, &who);
	pthread_mutex_lock(&fs->ns_lock);
	wrlock(fs);
	struct node *n = NULL;
	int r;
	char *id = fs->opt.fast ? name_secret_id(fs, name) : NULL;
	if (id) {
		log_warn("%s/%s: not created: with -o fast a secret is created by rename "
		         "(write .%s.new, then mv it onto %s)", scope_dir_name(sc), name, name, name);
		free(id);
		r = -EPERM;
	} else {
		r = create_node(fs, sc, name, mode, fi->flags, &who, &n);
	}
	fuse_ino_t ino = n ? n->ino : 0;
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);

	/* A created file starts empty, even one that takes a secret's name
	 * back right after its unlink (install, cp --preserve=all). */
	struct handle *h = NULL;
	if (r == 0 && !fs->opt.fast)
		r = open_node(fs, ino, fi->flags | O_TRUNC, &who, &h);
	else if (r == -EACCES)
		audit_event(&who, "create", name, 0, r, NULL);
	caller_clear(&who);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e = { .attr_timeout = ATTR_TIMEOUT };
	wrlock(fs);
	n = fs_node(fs, ino);
	n->nlookup++;
	e.ino = ino;
	e.entry_timeout = entry_timeout_of(n);
	fill_attr(fs, n, &e.attr);
	unlock(fs);
	if (fs->opt.fast) {
		fi->fh = 0;  /* a scratch file: its bytes are in its node */
		fuse_reply_create(req, &e, fi);
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
	uint64_t version = 0;
	if (n && (n->kind == NODE_SECRET_VERSION || n->kind == NODE_VERSION_FILE)) {
		struct node *s = fs_node(fs, n->u.vfile.secret_ino);
		id = s ? strdup(s->u.secret.meta.id) : NULL;
		version = n->u.vfile.version;
	} else if (n && n->kind == NODE_SECRET && n->u.secret.meta.version) {
		id = strdup(n->u.secret.meta.id);
	} else if (n && n->kind == NODE_SECRET) {
		unlock(fs);
		fuse_reply_buf(req, NULL, 0);  /* pending: no value yet */
		return;
	}
	unlock(fs);
	if (!id) {
		fuse_reply_err(req, n ? ENOMEM : ENOENT);
		return;
	}
	struct secret_value *v = NULL;
	int r = fs->ops->get_value(fs->store, id, version, &v);
	if (r < 0) {
		log_error("%s: version %" PRIu64 " could not be read (%s)", id, version,
		          strerrordesc_np(-r));
		fuse_reply_err(req, -user_errno(r));
	} else {
		reply_slice(req, v->data, v->len, size, off);
	}
	secret_value_free(v);
	free(id);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (!h) {
		read_unopened(req, fs, ino, size, off);
		return;
	}
	const uint8_t *data = NULL;
	size_t len = 0;

	pthread_mutex_lock(&h->lock);
	bool scratch = h->kind == NODE_SCRATCH;
	if (scratch) {
		rdlock(fs);
		struct node *n = fs_node(fs, h->ino);
		if (n && n->kind == NODE_SCRATCH) {
			data = n->u.scratch.data.p;
			len = n->u.scratch.data.len;
		}
	} else if (h->snap) {
		data = h->snap->data;
		len = h->snap->len;
	} else {
		data = h->buf.p;
		len = h->buf.len;
	}
	reply_slice(req, data, len, size, off);
	if (scratch)
		unlock(fs);
	pthread_mutex_unlock(&h->lock);
}

/* Stores a write into a scratch file's bytes; fs->lock held for writing. */
static int write_scratch(struct node *n, const char *buf, size_t size, size_t at)
{
	if (!n || n->kind != NODE_SCRATCH) {
		/* -o fast: there is no open file to commit from. */
		log_warn("write refused: with -o fast values change only by rename "
		         "(write a scratch file such as .NAME.new, then mv it onto NAME)");
		return -EPERM;
	}
	if (at + size > SECRET_VALUE_MAX) {
		log_warn("%s/%s: write refused: it would hold %zu bytes, over the %d-byte "
		         "limit of a value", scope_dir_name(n->u.scratch.scope),
		         n->u.scratch.name, at + size, SECRET_VALUE_MAX);
		return -EFBIG;
	}
	n->u.scratch.mtime_ns = now_ns();
	return lockedbuf_write(&n->u.scratch.data, buf, size, at);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int r;

	if (!h || h->kind == NODE_SCRATCH) {
		if (h)
			pthread_mutex_lock(&h->lock);
		wrlock(fs);
		struct node *n = fs_node(fs, h ? h->ino : ino);
		bool append = h ? h->append : false;
		r = write_scratch(n, buf, size, append && n ? n->u.scratch.data.len : (size_t)off);
		unlock(fs);
		if (h)
			pthread_mutex_unlock(&h->lock);
	} else {
		pthread_mutex_lock(&h->lock);
		size_t at = h->append ? h->buf.len : (size_t)off;
		if (at + size > SECRET_VALUE_MAX) {
			log_warn("%s: write refused: the value would be %zu bytes, over the %d-byte "
			         "limit; the current value stays", h->id, at + size, SECRET_VALUE_MAX);
			r = -EFBIG;
		} else {
			r = lockedbuf_write(&h->buf, buf, size, at);
			if (r == 0 && size)
				h->dirty = true;
		}
		pthread_mutex_unlock(&h->lock);
	}
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
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
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
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int r = 0;
	if (h) {
		pthread_mutex_lock(&h->lock);
		r = commit(fs, h);
		pthread_mutex_unlock(&h->lock);
	}
	fuse_reply_err(req, -r);
}

/* The last handle of a secret that never got a value: the name goes (it
 * was never stored: cp of an oversized file, touch). */
static void drop_unwritten(struct fs *fs, struct handle *h)
{
	scope_set gone = 0;
	wrlock(fs);
	struct node *n = fs_secret_by_id(fs, h->id);
	if (n && n->u.secret.pending_opens && --n->u.secret.pending_opens == 0 &&
	    !n->u.secret.meta.version) {
		gone = n->u.secret.pending_scopes;
		n->u.secret.pending_scopes = 0;
	}
	unlock(fs);
	if (!gone)
		return;
	/* Its entries had no timeout (entry_timeout_of): the kernel looks
	 * again and finds nothing. */
	log_warn("%s: closed without a value, so it was not created (a value is 1 to %d bytes)",
	         h->id, SECRET_VALUE_MAX);
}

static void release_handle(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&h->lock);
	if (h->kind == NODE_SECRET && h->writable && h->dirty) {
		/* A name never stored has nothing current: drop_unwritten
		 * says what happened to it. */
		if (h->buf.len == 0 && !h->pending)
			log_warn("%s: closed with an empty value, which is not stored "
			         "(a value is 1 to %d bytes); the current value stays",
			         h->id, SECRET_VALUE_MAX);
		else
			commit(fs, h);  /* written after the last flush (mmap) */
	}
	pthread_mutex_unlock(&h->lock);
	if (h->kind == NODE_SCRATCH) {
		wrlock(fs);
		struct node *n = fs_node(fs, h->ino);
		if (n && n->kind == NODE_SCRATCH && --n->u.scratch.open_count == 0 &&
		    n->u.scratch.unlinked && n->nlookup == 0)
			fs_node_free(fs, n);
		unlock(fs);
	}
	if (h->pending)
		drop_unwritten(fs, h);
	handle_free(fs, h);
}

/* At unmount: the kernel sends no RELEASE for files still open (or whose
 * RELEASE was still queued): release them here, committing what a writer
 * left, wiping every buffer. */
void release_open_handles(struct fs *fs)
{
	for (;;) {
		pthread_mutex_lock(&fs->handles_lock);
		struct handle *h = fs->handles;
		pthread_mutex_unlock(&fs->handles_lock);
		if (!h)
			break;
		release_handle(fs, h);
	}
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh)
		release_handle(fs_of(req), (struct handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
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
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;  /* NULL: -o fast */
	struct handle *own = NULL;
	int r;
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
		struct node *n = fs_node(fs, h->ino);
		r = lockedbuf_resize(&n->u.scratch.data, (size_t)size);
		n->u.scratch.mtime_ns = now_ns();
		unlock(fs);
	} else if (!h->writable) {
		r = -EBADF;
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
	struct node *n = fs_node_resolve(fs, ino);
	fuse_ino_t target = n ? n->ino : 0;
	enum node_kind kind = n ? n->kind : NODE_ROOT;
	unlock(fs);
	if (!target) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs->opt.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (kind == NODE_VERSION_FILE || kind == NODE_VERSION_DIR || kind == NODE_VERSIONS) {
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
	if (to_set & FUSE_SET_ATTR_MODE) {
		n->mode = attr->st_mode & 07777;
		n->mode_set = true;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid;
		gid_t gid;
		fill_attr(fs, n, &st);  /* the owner shown now */
		uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : st.st_uid;
		gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : st.st_gid;
		n->uid = uid;
		n->gid = gid;
		n->owner_set = true;
	}
	if (kind == NODE_SCRATCH && (to_set & FUSE_SET_ATTR_MTIME))
		n->u.scratch.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now_ns()
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
	if (keep)
		hostattrs_save(fs);  /* kept across remounts; a failure is logged */
	st.st_ino = ino;
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}
