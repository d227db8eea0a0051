/* SPDX-License-Identifier: MIT */
/*
 * Names: unlink, link and rename, translated into store operations
 * (scope changes, rotation, delete).  Every operation here holds
 * fs->ns_lock from its check to its last store call, so two of them never
 * interleave; fs->lock is dropped around each store call.
 * docs/design.md lists what each case means.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_i.h"

/* fs->lock held.  Remembers what an unlink takes, so that a create of the
 * same name soon after restores it (see create_node). */
static void tombstone(struct node *n, enum scope sc)
{
	struct secret_node *s = &n->u.secret;
	int64_t now = now_ns();
	if (now - s->tomb_time_ns >= TOMBSTONE_NS)
		s->tomb_unlinked = s->tomb_scopes = 0;
	s->tomb_unlinked |= 1u << sc;
	s->tomb_scopes |= s->meta.scopes;
	s->tomb_time_ns = now;
	labels_clear(&s->tomb_labels);
	labels_copy(&s->tomb_labels, &s->meta.labels);
}

/* Removes scope sc from a stored secret, deleting it with its last scope.
 * ns_lock held, fs->lock held for writing (dropped around the store call). */
static int remove_scope(struct fs *fs, struct node *n, enum scope sc)
{
	char *id = strdup(n->u.secret.meta.id);
	scope_set left = n->u.secret.meta.scopes & ~(1u << sc);
	if (!id)
		return -ENOMEM;
	unlock(fs);
	int r = left ? fs->ops->set_scopes(fs->store, id, left)
	             : fs->ops->delete(fs->store, id);
	wrlock(fs);
	if (r < 0) {
		log_error("%s: could not remove it from %s (%s); nothing changed", id,
		          scope_dir_name(sc), strerrordesc_np(-r));
	} else if (left) {
		n->u.secret.meta.scopes = left;
		n->ctime_ns = now_ns();
		log_info("%s: removed from %s", id, scope_dir_name(sc));
	} else {
		fs_secret_mark_deleted(n);
		log_info("%s: deleted (its last scope, %s, was removed)", id, scope_dir_name(sc));
	}
	free(id);
	return r < 0 ? user_errno(r) : 0;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	int sc = scope_of_dir(parent);
	if (sc < 0) {
		fuse_reply_err(req, parent == INO_ROOT ? EPERM : EROFS);
		return;
	}
	if (fs->opt.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct caller who;
	caller_of_req(req, &who);
	pthread_mutex_lock(&fs->ns_lock);
	wrlock(fs);
	struct node *n = scope_child(fs, sc, name);
	int r = 0;
	if (!n) {
		r = -ENOENT;
	} else if (n->kind == NODE_SCRATCH) {
		fs_scratch_unlink(fs, n);
	} else if (!n->u.secret.meta.version) {
		n->u.secret.pending_scopes &= ~(1u << sc);  /* never stored */
	} else {
		char extra[64];
		bool last = n->u.secret.meta.scopes == (1u << sc);
		uint64_t version = n->u.secret.meta.version;
		char *id = strdup(n->u.secret.meta.id);
		r = admit_change(fs, n->u.secret.meta.scopes, &who, "unlink of", name);
		if (r == 0) {
			tombstone(n, sc);
			r = remove_scope(fs, n, sc);
		}
		snprintf(extra, sizeof(extra), "scope=%s", scope_dir_name(sc));
		audit_event(&who, last ? "delete" : "unscope", id, version, r, extra);
		free(id);
	}
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);
	caller_clear(&who);
	fuse_reply_err(req, -r);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);
	int sc = scope_of_dir(newparent);
	if (fs->opt.read_only || name_too_long(newname)) {
		fuse_reply_err(req, fs->opt.read_only ? EROFS : ENAMETOOLONG);
		return;
	}
	struct caller who;
	caller_of_req(req, &who);
	pthread_mutex_lock(&fs->ns_lock);
	wrlock(fs);
	struct node *n = fs_node_resolve(fs, ino);
	char *name = NULL;
	int r = 0;
	if (!n || n->kind != NODE_SECRET || !n->u.secret.meta.version || sc < 0) {
		log_warn("link %s refused: only a stored secret can be linked, into a scope "
		         "directory", newname);
		r = -EPERM;
	} else if (!(name = id_to_name(n->u.secret.meta.id))) {
		r = -ENOMEM;
	} else if (strcmp(name, newname) != 0) {
		log_warn("link %s refused: a secret keeps its ID in every scope (ln %s/%s %s/%s)",
		         newname, scope_dir_name(__builtin_ctz(n->u.secret.meta.scopes)), name,
		         scope_dir_name(sc), name);
		r = -EPERM;
	} else if (n->u.secret.meta.scopes & (1u << sc)) {
		r = -EEXIST;
	} else if ((r = admit_change(fs, n->u.secret.meta.scopes | (1u << sc), &who, "link of",
	                             newname)) < 0) {
		/* refused and logged */
	} else {
		char *id = strdup(n->u.secret.meta.id);
		scope_set scopes = n->u.secret.meta.scopes | (1u << sc);
		unlock(fs);
		r = id ? fs->ops->set_scopes(fs->store, id, scopes) : -ENOMEM;
		wrlock(fs);
		if (r < 0) {
			log_error("%s: could not add scope %s (%s)", id, scope_dir_name(sc),
			          strerrordesc_np(-r));
			r = user_errno(r);
		} else if (n->u.secret.meta.version) {
			n->u.secret.meta.scopes = scopes;
			n->ctime_ns = now_ns();
			log_info("%s: added to %s", id, scope_dir_name(sc));
		}
		free(id);
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "scope=%s", sc >= 0 ? scope_dir_name(sc) : "-");
	audit_event(&who, "link", n && n->kind == NODE_SECRET ? n->u.secret.meta.id : newname,
	            n && n->kind == NODE_SECRET ? n->u.secret.meta.version : 0, r, extra);
	if (r == 0 && fs->opt.fast)  /* the name leads to the version's inode */
		n = fs_secret_version_node(fs, n);
	fuse_ino_t target = n ? n->ino : 0;
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);
	caller_clear(&who);
	free(name);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, fs, target);
}

/* --- rename --- */

struct rename_op {
	struct fs *fs;
	enum scope sc, nsc;
	const char *name, *newname;
	unsigned flags;
	struct node *src, *dst;   /* dst: NULL if newname is free in nsc */
	char *dst_id;             /* newname's ID, NULL for a scratch name */
	/* for the audit line */
	const char *what;         /* rotate, create, move, rename, exchange */
	uint64_t version;         /* the version a rename committed */
	char extra[300];
};

/* The scope set a secret created under newname gets. */
static scope_set new_secret_scopes(const struct rename_op *op, scope_set from)
{
	scope_set scopes = from | (1u << op->nsc);
	if (op->dst && op->dst->kind == NODE_SECRET && !op->dst->u.secret.meta.version)
		scopes |= op->dst->u.secret.pending_scopes;
	return scopes;
}

/* Stores value under dst_id: a new version of the secret newname names in
 * nsc, or a new secret there.  ns_lock held, fs->lock not held. */
static int store_under_newname(struct rename_op *op, bool exists, scope_set scopes,
                               const struct labels *labels, const uint8_t *value, size_t len)
{
	struct fs *fs = op->fs;
	struct secret_meta meta = { 0 };
	int r = exists ? fs->ops->put_value(fs->store, op->dst_id, 0, value, len, &meta)
	               : fs->ops->create(fs->store, op->dst_id, scopes, labels, value, len, &meta);
	if (r < 0) {
		log_error("rename onto %s/%s refused by the store (%s); nothing changed",
		          scope_dir_name(op->nsc), op->newname, strerrordesc_np(-r));
		return user_errno(r);
	}
	wrlock(fs);
	struct node *n = fs_secret_add(fs, &meta);
	if (n)
		n->became = 0;
	unlock(fs);
	op->version = meta.version;
	log_info("%s: version %" PRIu64 " committed by rename (%zu bytes)", op->dst_id,
	         meta.version, len);
	secret_meta_clear(&meta);
	return n ? 0 : -ENOMEM;
}

/* Is dst a stored secret in nsc (a rotation target)?  fs->lock held. */
static bool dst_is_stored(const struct rename_op *op)
{
	return op->dst && op->dst->kind == NODE_SECRET && op->dst->u.secret.meta.version;
}

/* A scratch file moves to newname: another scratch name, a rotation of
 * the secret there, or a new secret.  fs->lock held for writing. */
static int rename_scratch(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct node *src = op->src;
	if (!op->dst_id) {
		char *name = strdup(op->newname);
		if (!name)
			return -ENOMEM;
		if (op->dst)
			fs_scratch_unlink(fs, op->dst);  /* replaced */
		free(src->u.scratch.name);
		src->u.scratch.name = name;
		src->u.scratch.scope = op->nsc;
		return 0;
	}
	struct node *existing = fs_secret_by_id(fs, op->dst_id);
	if (!dst_is_stored(op) && existing && existing->u.secret.meta.version) {
		char where[128];
		log_warn("rename onto %s/%s refused: secret %s exists in %s only",
		         scope_dir_name(op->nsc), op->newname, op->dst_id,
		         scope_names(existing->u.secret.meta.scopes, where, sizeof(where)));
		return -EEXIST;
	}
	if (src->u.scratch.data.len == 0) {
		log_warn("rename of %s/%s onto %s refused: it is empty, and a value is 1 to %d bytes",
		         scope_dir_name(op->sc), op->name, op->newname, SECRET_VALUE_MAX);
		return -EINVAL;
	}
	bool exists = dst_is_stored(op);
	op->what = exists ? "rotate" : "create";
	snprintf(op->extra, sizeof(op->extra), "from=%s", op->name);
	scope_set scopes = new_secret_scopes(op, 0);
	struct labels labels = { 0 };
	struct lockedbuf value = { 0 };
	int r = labels_copy(&labels, &src->u.scratch.labels);
	if (r == 0 && op->dst && !exists)  /* a pending secret's labels join */
		for (size_t i = 0; i < op->dst->u.secret.meta.labels.n && r == 0; i++)
			r = labels_set(&labels, op->dst->u.secret.meta.labels.v[i].key,
			               op->dst->u.secret.meta.labels.v[i].value);
	if (r == 0)
		r = lockedbuf_assign(&value, src->u.scratch.data.p, src->u.scratch.data.len);
	fuse_ino_t src_ino = src->ino;
	unlock(fs);
	if (r == 0)
		r = store_under_newname(op, exists, scopes, &labels, value.p, value.len);
	lockedbuf_clear(&value);
	labels_clear(&labels);
	wrlock(fs);
	src = fs_node(fs, src_ino);
	if (r == 0 && src) {
		struct node *n = fs_secret_by_id(fs, op->dst_id);
		fs_scratch_unlink(fs, src);
		src->became = n ? n->ino : 0;
	}
	return r;
}

/* A secret's name moves: to another scope (same ID), or onto another ID
 * (the value moves, then the source secret is deleted).  fs->lock held. */
static int rename_secret(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct node *src = op->src;
	struct secret_meta *m = &src->u.secret.meta;
	if (!m->version) {
		log_warn("rename of %s refused: it has no value yet", m->id);
		return -EBUSY;
	}
	if (!op->dst_id) {
		log_warn("rename of %s/%s to %s refused: %s is not a secret ID; copy the value "
		         "instead (cp)", scope_dir_name(op->sc), op->name, op->newname, op->newname);
		return -EPERM;
	}
	char *src_id = strdup(m->id);
	if (!src_id)
		return -ENOMEM;
	int r;
	if (strcmp(op->dst_id, src_id) == 0) {
		/* mv a/X b/X: the secret leaves scope a and joins scope b. */
		op->what = "move";
		op->version = m->version;
		snprintf(op->extra, sizeof(op->extra), "to=%s", scope_dir_name(op->nsc));
		scope_set scopes = (m->scopes & ~(1u << op->sc)) | (1u << op->nsc);
		unlock(fs);
		r = fs->ops->set_scopes(fs->store, src_id, scopes);
		wrlock(fs);
		if (r < 0) {
			log_error("%s: could not move from %s to %s (%s)", src_id,
			          scope_dir_name(op->sc), scope_dir_name(op->nsc), strerrordesc_np(-r));
			r = user_errno(r);
		} else {
			m->scopes = scopes;
			src->ctime_ns = now_ns();
			log_info("%s: moved from %s to %s", src_id, scope_dir_name(op->sc),
			         scope_dir_name(op->nsc));
		}
		free(src_id);
		return r;
	}

	struct node *existing = fs_secret_by_id(fs, op->dst_id);
	if (!dst_is_stored(op) && existing && existing->u.secret.meta.version) {
		char where[128];
		log_warn("rename of %s onto %s/%s refused: secret %s exists in %s only", src_id,
		         scope_dir_name(op->nsc), op->newname, op->dst_id,
		         scope_names(existing->u.secret.meta.scopes, where, sizeof(where)));
		free(src_id);
		return -EEXIST;
	}
	bool exists = dst_is_stored(op);
	op->what = "rename";
	snprintf(op->extra, sizeof(op->extra), "to=%s", op->dst_id);
	if (!exists && !secret_id_valid_new(op->dst_id)) {
		free(src_id);
		return -EINVAL;
	}
	scope_set scopes = new_secret_scopes(op, m->scopes & ~(1u << op->sc));
	struct labels labels = { 0 };
	r = labels_copy(&labels, &m->labels);
	fuse_ino_t src_ino = src->ino;
	scope_set src_scopes = m->scopes;
	unlock(fs);

	/* The value first, then the delete: a crash in between leaves both
	 * secrets, never neither. */
	struct secret_value *v = NULL;
	if (r == 0)
		r = fs->ops->get_value(fs->store, src_id, 0, &v);
	if (r == 0)
		r = store_under_newname(op, exists, scopes, &labels, v->data, v->len);
	secret_value_free(v);
	labels_clear(&labels);
	if (r == 0) {
		r = fs->ops->delete(fs->store, src_id);
		if (r < 0)
			log_error("%s: its value now lives in %s, but deleting %s failed (%s): "
			          "both exist; remove %s by hand", src_id, op->dst_id, src_id,
			          strerrordesc_np(-r), src_id);
		else
			log_info("%s: deleted after its value moved to %s", src_id, op->dst_id);
	}
	wrlock(fs);
	src = fs_node(fs, src_ino);
	if (r == 0 && src) {
		struct node *n = fs_secret_by_id(fs, op->dst_id);
		fs_secret_mark_deleted(src);
		src->became = n ? n->ino : 0;
		/* The kernel may still hold the source in its other scopes. */
		for (int i = 0; i < SCOPE_COUNT; i++)
			if ((src_scopes & (1u << i)) && i != (int)op->sc)
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + i, op->name);
	}
	free(src_id);
	return user_errno(r);
}

static int rename_exchange(struct rename_op *op)
{
	struct fs *fs = op->fs;
	if (!op->dst || op->src->kind != NODE_SECRET || op->dst->kind != NODE_SECRET ||
	    !op->src->u.secret.meta.version || !op->dst->u.secret.meta.version ||
	    !fs->ops->exchange_values) {
		log_warn("rename exchange of %s and %s refused: only two stored secrets can "
		         "swap values", op->name, op->newname);
		return -EINVAL;
	}
	char *a = strdup(op->src->u.secret.meta.id), *b = strdup(op->dst->u.secret.meta.id);
	op->what = "exchange";
	snprintf(op->extra, sizeof(op->extra), "with=%s", b ? b : "?");
	unlock(fs);
	int r = a && b ? fs->ops->exchange_values(fs->store, a, b) : -ENOMEM;
	struct secret_meta ma = { 0 }, mb = { 0 };
	if (r == 0) {
		r = fs->ops->stat(fs->store, a, &ma);
		if (r == 0)
			r = fs->ops->stat(fs->store, b, &mb);
	}
	wrlock(fs);
	if (r == 0) {
		fs_secret_add(fs, &ma);
		fs_secret_add(fs, &mb);
		log_info("%s and %s: values exchanged", a, b);
		/* The kernel swapped the two names' inodes; the secrets kept
		 * theirs and swapped values: make it look both names up again
		 * (this waits for the rename to finish: it needs the
		 * directory's lock). */
		for (int i = 0; i < SCOPE_COUNT; i++) {
			if (ma.scopes & (1u << i))
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + i, op->name);
			if (mb.scopes & (1u << i))
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + i, op->newname);
		}
	} else {
		log_error("exchange of %s and %s failed (%s)", a ? a : "?", b ? b : "?",
		          strerrordesc_np(-r));
	}
	secret_meta_clear(&ma);
	secret_meta_clear(&mb);
	free(a);
	free(b);
	return user_errno(r);
}

/* Every scope a rename changes: both directories, and every scope of a
 * secret whose value or names it changes.  fs->lock held. */
static scope_set rename_scopes(const struct rename_op *op)
{
	scope_set scopes = (1u << op->sc) | (1u << op->nsc);
	const struct node *ends[2] = { op->src, op->dst };
	for (int i = 0; i < 2; i++)
		if (ends[i] && ends[i]->kind == NODE_SECRET)
			scopes |= fs_secret_visible_scopes(ends[i]);
	if (op->dst_id) {
		struct node *target = fs_secret_by_id(op->fs, op->dst_id);
		if (target)
			scopes |= fs_secret_visible_scopes(target);
	}
	return scopes;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct rename_op op = { .fs = fs, .name = name, .newname = newname, .flags = flags };
	int sc = scope_of_dir(parent), nsc = scope_of_dir(newparent);

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		log_warn("rename %s: flags %#x not supported", name, flags);
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (sc < 0 || nsc < 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (name_too_long(newname)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (fs->opt.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	op.sc = sc;
	op.nsc = nsc;

	struct caller who;
	caller_of_req(req, &who);
	pthread_mutex_lock(&fs->ns_lock);
	wrlock(fs);
	op.src = scope_child(fs, sc, name);
	op.dst = scope_child(fs, nsc, newname);
	op.dst_id = name_secret_id(fs, newname);
	int r;
	if (!op.src)
		r = -ENOENT;
	else if ((r = admit_change(fs, rename_scopes(&op), &who, "rename of", name)) < 0)
		; /* refused and logged */
	else if (flags & RENAME_EXCHANGE)
		r = rename_exchange(&op);
	else if (op.dst && (flags & RENAME_NOREPLACE))
		r = -EEXIST;
	else if (op.src == op.dst)
		r = 0;
	else if (op.src->kind == NODE_SCRATCH)
		r = rename_scratch(&op);
	else
		r = rename_secret(&op);
	/* Renames among scratch files are not about secrets. */
	bool about_secret = op.what || (op.src && op.src->kind == NODE_SECRET) || op.dst_id;
	if (about_secret && !(r == 0 && op.src == op.dst)) {
		const char *id = op.src && op.src->kind == NODE_SECRET ? op.src->u.secret.meta.id
		               : op.dst_id ? op.dst_id : name;
		if (op.what && strcmp(op.what, "rotate") == 0)
			id = op.dst_id;
		if (!op.extra[0])
			snprintf(op.extra, sizeof(op.extra), "to=%s", newname);
		audit_event(&who, op.what ? op.what : "rename", id, op.version, r, op.extra);
	}
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);
	caller_clear(&who);
	/* The kernel now maps newname to the renamed inode.  A scratch
	 * file's entry never outlives its lookup (entry_timeout 0), so the
	 * next access looks newname up and finds the secret's own inode;
	 * meanwhile the renamed inode stands for it ('became'). */
	free(op.dst_id);
	fuse_reply_err(req, -r);
}

/* --- what a secrets tree does not have --- */

static void refuse(fuse_req_t req, const char *what, const char *name)
{
	log_warn("%s %s refused: the tree is fixed (one directory per scope, files only)",
	         what, name);
	fuse_reply_err(req, EPERM);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	refuse(req, "mkdir", name);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	refuse(req, "rmdir", name);
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	refuse(req, "symlink", name);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	refuse(req, "mknod", name);
}
