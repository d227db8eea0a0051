/* SPDX-License-Identifier: MIT */
/*
 * Extended attributes.  Label K=V is user.tag.K with value V.  Read-only
 * facts (secretsfs.id, .version, .scopes, .store, .mirror) are answered
 * by name and never listed, so cp -a, rsync -X and getfattr -d see
 * labels only.
 * Every other name is EOPNOTSUPP: tools then fall back to chmod instead of
 * storing a POSIX ACL (see ../shared/notes/fuse-facts.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "mirror.h"
#include "ops.h"

static void reply_xattr(fuse_req_t req, const char *value, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

/* The labels a node carries; fs->lock held.  NULL: it cannot carry any. */
static struct labels *labels_of(struct node *n)
{
	if (n->kind == NODE_SECRET)
		return &n->u.secret.meta.labels; /* pending ones too */
	if (n->kind == NODE_SCRATCH)
		return &n->u.scratch.labels;
	return NULL;
}

/* A fact about a node as text into buf; -ENODATA if it has none. */
static int fact(struct fs *fs, const struct node *n, const char *name, char *buf, size_t size)
{
	bool stored = n->kind == NODE_SECRET && n->u.secret.meta.incarnation;
	const struct secret_meta *m = &n->u.secret.meta;
	if (strcmp(name, "store") == 0)
		snprintf(buf, size, "%s", fs->ops->name);
	else if (strcmp(name, "scratch") == 0 && n->kind == NODE_SCRATCH)
		snprintf(buf, size, "not stored: the name is not a secret ID");
	else if (stored && strcmp(name, "id") == 0)
		snprintf(buf, size, "%s", m->id);
	else if (stored && strcmp(name, "version") == 0)
		snprintf(buf, size, "%" PRIu64, m->version);
	else if (stored && strcmp(name, "scopes") == 0)
		scope_names(m->scopes, buf, size);
	else if (stored && strcmp(name, "mirror") == 0 && fs->mirror)
		mirror_status(fs->mirror, m->id, buf, size);
	else
		return -ENODATA;
	return 0;
}

#define ACL_XATTR "system.posix_acl_access"

/* The ACL fill_acl() makes for a secret in scopes of different owners;
 * ENODATA for every other node (its mode says it all). */
static void get_acl(fuse_req_t req, struct fs *fs, fuse_ino_t ino, size_t size)
{
	uint8_t buf[4 + 8 * ACL_ENTRIES_MAX];
	struct acl acl;
	size_t len = 0;
	rdlock(fs);
	struct node *n = fs_node_target(fs, ino);
	int r = !n                                 ? -ENOENT
	      : !fs_node_live(n) && !n->open_count ? -ESTALE
	      : fill_acl(fs, n, &acl)              ? 0
	                                           : -ENODATA;
	if (r == 0)
		len = acl_to_xattr(&acl, buf);
	unlock(fs);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_xattr(req, (const char *)buf, len, size);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	bool is_label = strncmp(name, LABEL_XATTR_PREFIX, strlen(LABEL_XATTR_PREFIX)) == 0;
	bool is_fact = strncmp(name, FACT_XATTR_PREFIX, strlen(FACT_XATTR_PREFIX)) == 0;
	if (strcmp(name, ACL_XATTR) == 0) {
		get_acl(req, fs, ino, size);
		return;
	}
	if (!is_label && !is_fact) {
		fuse_reply_err(req, strncmp(name, "user.", 5) == 0 ? ENODATA : EOPNOTSUPP);
		return;
	}
	rdlock(fs);
	struct node *n = fs_node_target(fs, ino);
	int r = 0;
	char text[512];
	const char *value = NULL;
	if (!n) {
		r = -ENOENT;
	} else if (!fs_node_live(n) && !n->open_count) {
		r = -ESTALE; /* by a name that stands for something else now */
	} else if (is_fact) {
		r = fact(fs, n, name + strlen(FACT_XATTR_PREFIX), text, sizeof(text));
		value = text;
	} else {
		struct labels *l = labels_of(n);
		value = l ? labels_get(l, name + strlen(LABEL_XATTR_PREFIX)) : NULL;
		if (!value)
			r = -ENODATA;
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_xattr(req, value, strlen(value), size);
	unlock(fs);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	rdlock(fs);
	struct node *n = fs_node_target(fs, ino);
	if (!n || (!fs_node_live(n) && !n->open_count)) {
		unlock(fs);
		fuse_reply_err(req, n ? ESTALE : ENOENT);
		return;
	}
	struct labels *l = labels_of(n);
	struct acl acl;
	bool has_acl = fill_acl(fs, n, &acl);
	size_t len = has_acl ? sizeof(ACL_XATTR) : 0, prefix = strlen(LABEL_XATTR_PREFIX);
	for (size_t i = 0; l && i < l->n; i++)
		len += prefix + strlen(l->v[i].key) + 1;
	char *list = malloc(len ? len : 1);
	if (!list) {
		unlock(fs);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	char *p = list;
	if (has_acl) {
		memcpy(p, ACL_XATTR, sizeof(ACL_XATTR));
		p += sizeof(ACL_XATTR);
	}
	for (size_t i = 0; l && i < l->n; i++) {
		memcpy(p, LABEL_XATTR_PREFIX, prefix);
		size_t k = strlen(l->v[i].key) + 1;
		memcpy(p + prefix, l->v[i].key, k);
		p += prefix + k;
	}
	unlock(fs);
	reply_xattr(req, list, len, size);
	free(list);
}

/* The label change proper: n's change set and fs->lock (write) held. */
static int change_label_locked(struct fs *fs, struct node *n, const char *key, const char *value,
                               int flags, const struct caller *who, const char *extra)
{
	struct labels *l = n ? labels_of(n) : NULL;
	struct labels next = { 0 };
	char name[300];
	int r = 0;
	if (!n)
		r = -ENOENT;
	else if (!fs_node_live(n))
		r = -ESTALE; /* by a stale name: the kernel looks again */
	else if (!l)
		r = -EPERM;
	else if ((r = admit_change(fs,
	                           n->kind == NODE_SCRATCH ? 1u << n->u.scratch.scope
	                                                   : fs_secret_visible_scopes(n),
	                           who, "label change of", audit_name(n, name, sizeof(name)))) < 0)
		; /* refused and logged */
	else if (labels_get(l, key) ? (flags & XATTR_CREATE) : 0)
		r = -EEXIST;
	else if (!labels_get(l, key) && (!value || (flags & XATTR_REPLACE)))
		r = -ENODATA;
	else
		r = labels_copy(&next, l);
	if (r == 0)
		r = value ? labels_set(&next, key, value) : labels_remove(&next, key);
	if (r == -EINVAL)
		log_warn("label %s refused: keys are 1-%d bytes of A-Z a-z 0-9 _ . / - (not "
		         "'owner'); values up to %d bytes of letters, digits, spaces and _.:/=+-@",
		         key, LABEL_KEY_MAX, LABEL_VALUE_MAX);
	else if (r == -ENOSPC)
		log_warn("label %s refused: at most %d labels per secret", key, LABELS_MAX);
	const char *op = value ? "label-set" : "label-remove";
	bool stored = r == 0 && n->kind == NODE_SECRET && n->u.secret.meta.incarnation;
	if (r == 0 && !stored) {
		/* Scratch and pending files keep labels in memory; they go to
		 * the store with the file's first value. */
		labels_clear(l);
		*l = next;
		next = (struct labels){ 0 };
	} else if (stored) {
		struct secret_meta meta = { 0 };
		char *id = strdup(n->u.secret.meta.id);
		uint64_t incarnation = n->u.secret.meta.incarnation;
		unlock(fs);
		r = id ? fs->ops->set_labels(fs->store, id, incarnation, &next, &meta) : -ENOMEM;
		wrlock(fs);
		if (r == 0) {
			fs_apply_meta(fs, &meta);
			log_info("%s: label %s %s", id, key, value ? "set" : "removed");
		} else if (r != -ENOMEM) {
			log_error("%s: label %s not changed: the store refused (%s)", id, key,
			          strerrordesc_np(-r));
			r = r == -EINVAL ? r : store_gone(r) ? -ESTALE : user_errno(r);
		}
		secret_meta_clear(&meta);
		free(id);
	}
	if (n && (n->kind == NODE_SECRET || n->kind == NODE_SCRATCH) &&
	    (r < 0 || stored || n->kind == NODE_SCRATCH))
		audit_event(who, op, audit_name(n, name, sizeof(name)), n->u.secret.meta.version, r,
		            extra);
	labels_clear(&next);
	return r;
}

/* Sets (value != NULL) or removes a label. */
static int change_label(fuse_req_t req, fuse_ino_t ino, const char *key, const char *value,
                        int flags)
{
	struct fs *fs = fs_of(req);
	if (fs->opt.read_only)
		return -EROFS;
	struct caller who;
	caller_of_req(req, &who);
	char extra[LABEL_KEY_MAX + 16];
	snprintf(extra, sizeof(extra), "label=%s", key);
	wrlock(fs);
	struct node *n = fs_node_target(fs, ino);
	if (n)
		fs_node_pin(n);
	unlock(fs);
	if (n)
		fs_change_begin(fs, &n, 1);
	wrlock(fs);
	int r = change_label_locked(fs, n, key, value, flags, &who, extra);
	unlock(fs);
	fs_change_done(fs, &n, 1);
	caller_clear(&who);
	return r;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags)
{
	int r;
	if (strncmp(name, FACT_XATTR_PREFIX, strlen(FACT_XATTR_PREFIX)) == 0) {
		r = -EPERM; /* read-only facts */
	} else if (strncmp(name, LABEL_XATTR_PREFIX, strlen(LABEL_XATTR_PREFIX)) != 0) {
		if (strncmp(name, "user.", 5) == 0)
			log_warn("xattr %s refused: only labels (user.tag.KEY) are stored", name);
		r = -EOPNOTSUPP;
	} else if (memchr(value, '\0', size) || size > LABEL_VALUE_MAX) {
		log_warn("label %s refused: the value has a NUL byte or is over %d bytes", name,
		         LABEL_VALUE_MAX);
		r = -EINVAL;
	} else {
		char *v = strndup(value, size);
		r = v ? change_label(req, ino, name + strlen(LABEL_XATTR_PREFIX), v, flags)
		      : -ENOMEM;
		free(v);
	}
	fuse_reply_err(req, -r);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int r;
	if (strncmp(name, LABEL_XATTR_PREFIX, strlen(LABEL_XATTR_PREFIX)) == 0)
		r = change_label(req, ino, name + strlen(LABEL_XATTR_PREFIX), NULL, 0);
	else if (strncmp(name, FACT_XATTR_PREFIX, strlen(FACT_XATTR_PREFIX)) == 0)
		r = -EPERM;
	else
		r = strncmp(name, "user.", 5) == 0 ? -ENODATA : -EOPNOTSUPP;
	fuse_reply_err(req, -r);
}
