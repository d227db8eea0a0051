/* SPDX-License-Identifier: MIT */
/*
 * Names: unlink, link and rename, translated into store operations
 * (scope changes, rotation, delete).  Each holds the change set of the
 * nodes it changes from its checks to its last store call, so two changes
 * of the same secret never interleave, and drops fs->lock around each
 * store call.  What a store call returns is applied with fs_apply().
 * docs/design.md lists what each case means.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostattrs.h"
#include "ops.h"

/* Removes scope sc from stored secret n, deleting it with its last scope.
 * n's change set and fs->lock (write) held; the lock is dropped around the
 * store call. */
static int remove_scope(struct fs *fs, struct node *n, enum scope sc)
{
	const struct secret_meta *m = &n->u.secret.meta;
	char *id = strdup(m->id);
	scope_set left = m->scopes & ~(1u << sc);
	uint64_t incarnation = m->incarnation;
	struct store_change c = { .kind = STORE_CHANGED };
	if (!id)
		return -ENOMEM;
	unlock(fs);
	int r = left ? fs->ops->set_scopes(fs->store, id, incarnation, left, &c.meta)
	             : fs->ops->delete_secret(fs->store, id, incarnation, &c);
	wrlock(fs);
	if (r < 0) {
		log_error("%s: could not remove it from %s (%s); nothing changed", id,
		          scope_dir_name(sc), strerrordesc_np(-r));
	} else {
		fs_apply(fs, &c);
		if (left)
			log_info("%s: removed from %s", id, scope_dir_name(sc));
		else
			log_info("%s: deleted (its last scope, %s, was removed)", id,
			         scope_dir_name(sc));
	}
	store_change_clear(&c);
	free(id);
	return r < 0 ? (store_gone(r) ? -ENOENT : user_errno(r)) : 0;
}

/* Unlinks what name in sc stands for; fs->lock (write) held, and the
 * change set of n (a secret; scratch files need none). */
static int unlink_node(struct fs *fs, struct node *n, enum scope sc, const char *name,
                       const struct caller *who)
{
	char what[300], extra[64];
	snprintf(extra, sizeof(extra), "scope=%s", scope_dir_name(sc));
	if (n->kind == NODE_SCRATCH) {
		int r = admit_change(fs, 1u << sc, who, "unlink of", name);
		audit_event(who, "unlink", audit_name(n, what, sizeof(what)), 0, r, extra);
		if (r == 0) {
			fs_scratch_unlink(fs, n);
			fs_node_release(fs, n);
		}
		return r;
	}
	if (!n->u.secret.meta.incarnation) {
		/* Never stored: the name goes; writers still open on it get
		 * EIO at close (nothing is stored for a removed name). */
		int r = admit_change(fs, 1u << sc, who, "unlink of", name);
		if (r == 0) {
			n->u.secret.pending_scopes &= ~(1u << sc);
			if (!n->u.secret.pending_scopes)
				fs_secret_drop_pending(fs, n);
		}
		return r;
	}
	bool last = n->u.secret.meta.scopes == (1u << sc);
	uint64_t version = n->u.secret.meta.version;
	char *id = strdup(n->u.secret.meta.id);
	int r = id ? admit_change(fs, n->u.secret.meta.scopes, who, "unlink of", name) : -ENOMEM;
	if (r == 0) {
		fs_tomb_add(fs, n, sc);
		r = remove_scope(fs, n, sc);
	}
	audit_event(who, last ? "delete" : "unscope", id ? id : name, version, r, extra);
	free(id);
	return r;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	int sc = scope_of_dir(parent);
	if (parent == INO_DELETED) {
		struct caller who;
		caller_of_req(req, &who);
		int r = who.uid == 0 ? deleted_purge(fs, name) : -EACCES;
		audit_event(&who, "purge", name, 0, r, NULL);
		caller_clear(&who);
		fuse_reply_err(req, -r);
		return;
	}
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
	int r = -EAGAIN; /* look again: another change came first */
	for (int attempt = 0; attempt < 8 && r == -EAGAIN; attempt++) {
		wrlock(fs);
		struct node *n = scope_child(fs, sc, name);
		if (!n || n->kind == NODE_SCRATCH) {
			r = n ? unlink_node(fs, n, sc, name, &who) : -ENOENT;
			unlock(fs);
			break;
		}
		fs_node_pin(n);
		unlock(fs);
		fs_change_begin(fs, &n, 1);
		wrlock(fs);
		/* Another change may have come first: only the node the name
		 * still stands for is unlinked (else look again). */
		if (scope_child(fs, sc, name) == n)
			r = unlink_node(fs, n, sc, name, &who);
		unlock(fs);
		fs_change_done(fs, &n, 1);
	}
	if (r == -EAGAIN)
		r = -EIO;
	hostattrs_save_if_dirty(fs);
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
	wrlock(fs);
	struct node *n = fs_node_target(fs, ino);
	if (n && n->kind == NODE_SECRET)
		fs_node_pin(n);
	else
		n = NULL;
	unlock(fs);
	if (n)
		fs_change_begin(fs, &n, 1);
	wrlock(fs);
	char *name = NULL, *id = NULL;
	uint64_t version = 0;
	struct secret_meta meta = { 0 };
	int r = 0;
	if (n && n->dead) {
		r = -ESTALE; /* deleted meanwhile: the kernel looks the name up again */
	} else if (!n || !n->u.secret.meta.incarnation || sc < 0) {
		log_warn("link %s refused: only a stored secret can be linked, into a scope "
		         "directory",
		         newname);
		r = -EPERM;
	} else if (!(name = id_to_name(n->u.secret.meta.id)) ||
	           !(id = strdup(n->u.secret.meta.id))) {
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
		scope_set scopes = n->u.secret.meta.scopes | (1u << sc);
		uint64_t incarnation = n->u.secret.meta.incarnation;
		version = n->u.secret.meta.version;
		unlock(fs);
		r = fs->ops->set_scopes(fs->store, id, incarnation, scopes, &meta);
		wrlock(fs);
		if (r == 0) {
			fs_apply_meta(fs, &meta);
			log_info("%s: added to %s", id, scope_dir_name(sc));
		} else {
			log_error("%s: could not add scope %s (%s)", id, scope_dir_name(sc),
			          strerrordesc_np(-r));
			r = store_gone(r) ? -ESTALE : user_errno(r);
		}
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "scope=%s", sc >= 0 ? scope_dir_name(sc) : "-");
	audit_event(&who, "link", id ? id : newname, version, r, extra);
	struct node *target = n;
	if (r == 0 && fs->opt.fast) /* the name leads to the version's inode */
		target = fs_secret_version_node(fs, n);
	fuse_ino_t target_ino = target ? target->ino : 0;
	unlock(fs);
	if (n)
		fs_change_done(fs, &n, 1);
	caller_clear(&who);
	secret_meta_clear(&meta);
	free(name);
	free(id);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, fs, target_ino);
}

/* --- rename --- */

struct rename_op {
	struct fs *fs;
	enum scope sc, nsc;
	const char *name, *newname;
	unsigned flags;
	/* The nodes it changes, pinned and in its change set: the source,
	 * what newname stands for in nsc (NULL: free), and the secret node
	 * of newname's ID wherever it is (NULL: none). */
	struct node *src, *dst, *target;
	char *dst_id; /* newname's ID, NULL for a scratch name */
	/* for the audit line */
	const char *what; /* rotate, create, move, rename, exchange */
	uint64_t version; /* the version a rename committed */
	char extra[300];
};

/* The scope set a secret created under newname gets. */
static scope_set new_secret_scopes(const struct rename_op *op, scope_set from)
{
	/* A name pending in nsc joins; one pending elsewhere does not (it
	 * belongs to its own scope, and its writers' commits will fail). */
	scope_set scopes = from | (1u << op->nsc);
	if (op->dst && op->dst == op->target && !op->target->u.secret.meta.incarnation)
		scopes |= op->target->u.secret.pending_scopes;
	return scopes;
}

/* Is newname a stored secret in nsc (a rotation target)?  fs->lock held. */
static bool dst_is_stored(const struct rename_op *op)
{
	return op->dst && op->dst->kind == NODE_SECRET && op->dst->u.secret.meta.incarnation;
}

/* newname's ID names a stored secret in other scopes only: refused (the
 * name would take it from them).  fs->lock held. */
static int refuse_elsewhere(const struct rename_op *op, const char *what)
{
	const struct node *t = op->target;
	if (!t || !t->u.secret.meta.incarnation || dst_is_stored(op))
		return 0;
	log_id_elsewhere(op->fs, what, op->nsc, &t->u.secret.meta);
	return -EEXIST;
}

/* Logs a store's refusal of a rename and says what the caller gets. */
static int store_refused(const struct rename_op *op, int r)
{
	log_error("rename of %s/%s onto %s/%s refused by the store (%s); nothing changed",
	          scope_dir_name(op->sc), op->name, scope_dir_name(op->nsc), op->newname,
	          r == -ESTALE ? "it changed meanwhile" : strerrordesc_np(-r));
	return r == -ESTALE ? -EIO : user_errno(r);
}

/* A scratch file moves to newname: another scratch name, a rotation of
 * the secret there, or a new secret.  fs->lock held for writing. */
static int rename_scratch(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct node *src = op->src;
	struct scratch_node *sn = &src->u.scratch;
	if (!op->dst_id) {
		char *name = strdup(op->newname);
		if (!name)
			return -ENOMEM;
		if (op->dst) {
			fs_scratch_unlink(fs, op->dst); /* replaced */
			fs_node_release(fs, op->dst);
		}
		free(sn->name);
		sn->name = name;
		sn->scope = op->nsc;
		return 0;
	}
	int r = refuse_elsewhere(op, "rename");
	if (r < 0)
		return r;
	if (sn->refused) {
		log_warn("rename of %s/%s onto %s refused: a write to it was refused (over the "
		         "%d-byte limit), so it holds no whole value",
		         scope_dir_name(op->sc), op->name, op->newname, SECRET_VALUE_MAX);
		return sn->refused;
	}
	if (sn->data.len == 0) {
		log_warn(
		    "rename of %s/%s onto %s refused: it is empty, and a value is 1 to %d bytes",
		    scope_dir_name(op->sc), op->name, op->newname, SECRET_VALUE_MAX);
		return -EINVAL;
	}
	bool exists = dst_is_stored(op);
	op->what = exists ? "rotate" : "create";
	snprintf(op->extra, sizeof(op->extra), "from=%s", op->name);
	scope_set scopes = new_secret_scopes(op, 0);
	uint64_t incarnation = exists ? op->dst->u.secret.meta.incarnation : 0;
	struct labels labels = { 0 };
	struct lockedbuf value = { 0 };
	struct secret_meta meta = { 0 };
	char *stored_as = strdup(op->dst_id);
	r = stored_as ? labels_copy(&labels, &sn->labels) : -ENOMEM;
	if (r == 0 && op->target && op->target == op->dst &&
	    !exists) /* pending here: labels join */
		for (size_t i = 0; i < op->target->u.secret.meta.labels.n && r == 0; i++)
			r = labels_set(&labels, op->target->u.secret.meta.labels.v[i].key,
			               op->target->u.secret.meta.labels.v[i].value);
	if (r == 0)
		r = lockedbuf_assign(&value, sn->data.p, sn->data.len);
	/* From here its bytes are on their way: a write through another
	 * descriptor meanwhile fails (EIO) rather than being lost. */
	if (r == 0)
		sn->stored_as = stored_as;
	unlock(fs);
	if (r == 0 && exists)
		r = fs->ops->put_value(fs->store, op->dst_id, incarnation, 0, value.p, value.len,
		                       &meta);
	else if (r == 0)
		r = fs->ops->create(fs->store, op->dst_id, scopes, &labels, value.p, value.len,
		                    &meta);
	lockedbuf_clear(&value);
	labels_clear(&labels);
	wrlock(fs);
	if (r != 0) {
		if (sn->stored_as == stored_as)
			sn->stored_as = NULL; /* not stored: writes go on */
		free(stored_as);
		return r == -ENOMEM ? r : store_refused(op, r);
	}
	fs_apply_meta(fs, &meta);
	op->version = meta.version;
	log_info("%s: version %" PRIu64 " committed by rename (%zu bytes)", op->dst_id,
	         meta.version, sn->data.len);
	warn_trailing_newline(op->dst_id, sn->data.p, sn->data.len);
	secret_meta_clear(&meta);
	fs_scratch_unlink(fs, src);
	return 0;
}

/* mv a/X b/X: the secret leaves scope a and joins scope b.  fs->lock held. */
static int move_scope(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct secret_meta *m = &op->src->u.secret.meta;
	struct secret_meta meta = { 0 };
	op->what = "move";
	op->version = m->version;
	snprintf(op->extra, sizeof(op->extra), "to=%s", scope_dir_name(op->nsc));
	scope_set scopes = (m->scopes & ~(1u << op->sc)) | (1u << op->nsc);
	uint64_t incarnation = m->incarnation;
	char *id = strdup(m->id);
	if (!id)
		return -ENOMEM;
	unlock(fs);
	int r = fs->ops->set_scopes(fs->store, id, incarnation, scopes, &meta);
	wrlock(fs);
	if (r < 0) {
		log_error("%s: could not move from %s to %s (%s)", id, scope_dir_name(op->sc),
		          scope_dir_name(op->nsc), strerrordesc_np(-r));
		r = store_gone(r) ? -ENOENT : user_errno(r);
	} else {
		fs_apply_meta(fs, &meta);
		log_info("%s: moved from %s to %s", id, scope_dir_name(op->sc),
		         scope_dir_name(op->nsc));
	}
	secret_meta_clear(&meta);
	free(id);
	return r;
}

/* A secret's name moves: to another scope (same ID), or onto another ID
 * (the value moves and the source secret is deleted, in one store
 * transaction).  fs->lock held. */
static int rename_secret(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct node *src = op->src;
	struct secret_meta *m = &src->u.secret.meta;
	if (!m->incarnation) {
		log_warn("rename of %s refused: it has no value yet", m->id);
		return -EBUSY;
	}
	if (!op->dst_id) {
		log_warn("rename of %s/%s to %s refused: %s is not a secret ID; copy the value "
		         "instead (cp)",
		         scope_dir_name(op->sc), op->name, op->newname, op->newname);
		return -EPERM;
	}
	if (strcmp(op->dst_id, m->id) == 0)
		return move_scope(op);
	int r = refuse_elsewhere(op, "rename");
	if (r < 0)
		return r;
	bool exists = dst_is_stored(op);
	op->what = "rename";
	snprintf(op->extra, sizeof(op->extra), "to=%s", op->dst_id);
	if (!exists && !secret_id_valid_new(op->dst_id))
		return -EINVAL;
	if (!fs->ops->rename || (fs->ops->caps & STORE_CAP_WRITE_ONLY_VALUES)) {
		log_warn("rename of %s onto %s refused: the %s store's values are write-only, and "
		         "this rename moves one; write the value to %s instead",
		         m->id, op->dst_id, fs->ops->name, op->newname);
		return -EACCES;
	}
	scope_set scopes = new_secret_scopes(op, m->scopes & ~(1u << op->sc));
	struct labels labels = { 0 };
	struct store_change gone = { 0 };
	struct secret_meta meta = { 0 };
	char *src_id = strdup(m->id);
	uint64_t src_incarnation = m->incarnation, src_revision = m->revision;
	uint64_t dst_incarnation = exists ? op->dst->u.secret.meta.incarnation : 0;
	r = src_id ? labels_copy(&labels, &m->labels) : -ENOMEM;
	unlock(fs);
	if (r == 0)
		r = fs->ops->rename(fs->store, src_id, src_incarnation, src_revision, op->dst_id,
		                    dst_incarnation, scopes, &labels, &gone, &meta);
	labels_clear(&labels);
	wrlock(fs);
	if (r == 0) {
		/* the destination first: the mirror (its kicks, in order)
		 * makes it in the cloud before it deletes the source there */
		fs_apply_meta(fs, &meta);
		fs_apply(fs, &gone);
		op->version = meta.version;
		log_info("%s: deleted after its value moved to %s (version %" PRIu64 ")", src_id,
		         op->dst_id, meta.version);
	} else if (r != -ENOMEM) {
		r = store_refused(op, r);
	}
	store_change_clear(&gone);
	secret_meta_clear(&meta);
	free(src_id);
	return r;
}

static int rename_exchange(struct rename_op *op)
{
	struct fs *fs = op->fs;
	struct node *a = op->src, *b = op->dst;
	if (!b || a->kind != NODE_SECRET || b->kind != NODE_SECRET ||
	    !a->u.secret.meta.incarnation || !b->u.secret.meta.incarnation ||
	    !fs->ops->exchange_values || a == b) {
		log_warn("rename exchange of %s and %s refused: only two stored secrets can "
		         "swap values",
		         op->name, op->newname);
		return -EINVAL;
	}
	char *ida = strdup(a->u.secret.meta.id), *idb = strdup(b->u.secret.meta.id);
	uint64_t inca = a->u.secret.meta.incarnation, incb = b->u.secret.meta.incarnation;
	op->what = "exchange";
	snprintf(op->extra, sizeof(op->extra), "with=%s", idb ? idb : "?");
	struct secret_meta ma = { 0 }, mb = { 0 };
	unlock(fs);
	int r = ida && idb ? fs->ops->exchange_values(fs->store, ida, inca, idb, incb, &ma, &mb)
	                   : -ENOMEM;
	wrlock(fs);
	if (r == 0) {
		fs_apply_meta(fs, &ma);
		fs_apply_meta(fs, &mb);
		log_info("%s and %s: values exchanged", ida, idb);
		/* The kernel swapped the two names' inodes; the secrets kept
		 * theirs and swapped values: make it look both names up again
		 * (this waits for the rename to finish: it needs the
		 * directory's lock). */
		for (int i = 0; i < SCOPE_COUNT; i++) {
			if (ma.scopes & (1u << i))
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + i, op->name);
			if (mb.scopes & (1u << i))
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + i,
				                     op->newname);
		}
	} else {
		log_error("exchange of %s and %s failed (%s)", ida ? ida : "?", idb ? idb : "?",
		          strerrordesc_np(-r));
		r = store_gone(r) ? -ENOENT : user_errno(r);
	}
	secret_meta_clear(&ma);
	secret_meta_clear(&mb);
	free(ida);
	free(idb);
	return r;
}

/* Every scope a rename changes: both directories, and every scope of a
 * secret whose value or names it changes.  fs->lock held. */
static scope_set rename_scopes(const struct rename_op *op)
{
	scope_set scopes = (1u << op->sc) | (1u << op->nsc);
	const struct node *ends[3] = { op->src, op->dst, op->target };
	for (int i = 0; i < 3; i++)
		if (ends[i] && ends[i]->kind == NODE_SECRET)
			scopes |= fs_secret_visible_scopes(ends[i]);
	return scopes;
}

/* Finds what the rename's names stand for now; fs->lock held. */
static void rename_resolve(struct rename_op *op, struct node **src, struct node **dst,
                           struct node **target)
{
	*src = scope_child(op->fs, op->sc, op->name);
	*dst = scope_child(op->fs, op->nsc, op->newname);
	*target = op->dst_id ? fs_secret_by_id(op->fs, op->dst_id) : NULL;
}

/* The rename proper: its checks and store calls, with its nodes held. */
static int rename_nodes(struct rename_op *op, const struct caller *who)
{
	int r = admit_change(op->fs, rename_scopes(op), who, "rename of", op->name);
	if (r < 0)
		return r;
	if (op->flags & RENAME_EXCHANGE)
		return rename_exchange(op);
	/* A secret renamed to a name that is no ID is refused in
	 * rename_secret (EPERM: copy the value instead); a scratch file the
	 * same way, by the name rule: EPERM, not create's EINVAL, which mv
	 * reports as "cannot move to a subdirectory of itself". */
	if (!op->dst_id && op->src->kind == NODE_SCRATCH && !name_is_scratch(op->newname) &&
	    !(op->flags & RENAME_EXCHANGE)) {
		char ename[AUDIT_CAP_ID + 1], why[400];
		audit_escape(ename, sizeof(ename), op->newname, AUDIT_CAP_ID);
		name_refused_why(op->newname, why, sizeof(why));
		log_warn("rename of %s/%s onto %s/%s refused: %s", scope_dir_name(op->sc), op->name,
		         scope_dir_name(op->nsc), ename, why);
		return -EPERM;
	}
	if (op->dst && (op->flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (op->src == op->dst)
		return 0;
	if (op->src->kind == NODE_SCRATCH)
		return rename_scratch(op);
	return rename_secret(op);
}

/* mv /.deleted/ID SCOPE/ID: root restores a deleted secret, if the
 * policy admits a change in the scopes it comes back to. */
static int restore_deleted(fuse_req_t req, struct fs *fs, const char *name, enum scope sc,
                           const char *newname)
{
	struct caller who;
	caller_of_req(req, &who);
	int r = who.uid == 0 ? 0 : -EACCES;
	if (r == 0 && fs->opt.read_only)
		r = -EROFS;
	if (r == 0) {
		rdlock(fs);
		r = admit_change(fs, 1u << sc, &who, "restore of", name);
		unlock(fs);
	}
	if (r == 0)
		r = deleted_restore(fs, name, sc, newname);
	audit_event(&who, "restore", name, 0, r, NULL);
	caller_clear(&who);
	return r;
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
	if (parent == INO_DELETED && nsc >= 0 && !(flags & RENAME_EXCHANGE)) {
		fuse_reply_err(req, -restore_deleted(req, fs, name, nsc, newname));
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
	int r = -EAGAIN;
	for (int attempt = 0; attempt < 8 && r == -EAGAIN; attempt++) {
		wrlock(fs);
		free(op.dst_id);
		op.dst_id = name_secret_id(fs, newname);
		rename_resolve(&op, &op.src, &op.dst, &op.target);
		if (!op.src) {
			unlock(fs);
			r = -ENOENT;
			break;
		}
		struct node *set[3] = { op.src, op.dst, op.target };
		for (int i = 0; i < 3; i++)
			if (set[i] && (i == 0 || set[i] != set[i - 1]))
				fs_node_pin(set[i]);
		unlock(fs);
		fs_change_begin(fs, set, 3);
		wrlock(fs);
		struct node *src, *dst, *target;
		rename_resolve(&op, &src, &dst, &target);
		if (src != op.src || dst != op.dst || target != op.target) {
			unlock(fs); /* changed while we waited: again */
		} else {
			r = rename_nodes(&op, &who);
			/* Renames among scratch files are not about secrets. */
			bool about_secret = op.what || op.src->kind == NODE_SECRET || op.dst_id;
			if (about_secret && !(r == 0 && op.src == op.dst)) {
				char buf[300];
				const char *id = op.what && strcmp(op.what, "rotate") == 0
				                   ? op.dst_id
				               : op.src->kind == NODE_SECRET
				                   ? op.src->u.secret.meta.id
				               : op.dst_id ? op.dst_id
				                           : audit_name(op.src, buf, sizeof(buf));
				if (!op.extra[0])
					snprintf(op.extra, sizeof(op.extra), "to=%s", newname);
				audit_event(&who, op.what ? op.what : "rename", id, op.version, r,
				            op.extra);
			}
			unlock(fs);
		}
		fs_change_done(fs, set, 3);
	}
	if (r == -EAGAIN)
		r = -EIO;
	hostattrs_save_if_dirty(fs);
	caller_clear(&who);
	free(op.dst_id);
	fuse_reply_err(req, -r);
}

/* --- what a secrets tree does not have --- */

static void refuse(fuse_req_t req, const char *what, const char *name)
{
	log_warn("%s %s refused: the tree is fixed (one directory per scope, files only)", what,
	         name);
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

/* mknod of anything but a regular file (which ops_file.c makes) */
void refuse_mknod(fuse_req_t req, const char *name)
{
	refuse(req, "mknod", name);
}
