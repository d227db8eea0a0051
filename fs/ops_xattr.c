/* SPDX-License-Identifier: MIT */
/*
 * Extended attributes.  Label K=V is user.tag.K with value V.  Read-only
 * facts (secretsfs.id, .version, .scopes, .store) are answered by name and
 * never listed, so cp -a, rsync -X and getfattr -d see labels only.
 * Every other name is EOPNOTSUPP: tools then fall back to chmod instead of
 * storing a POSIX ACL (see ../shared/notes/fuse-facts.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "ops_i.h"

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
		return &n->u.secret.meta.labels;  /* pending ones too */
	if (n->kind == NODE_SCRATCH)
		return &n->u.scratch.labels;
	return NULL;
}

/* A fact about a node as text into buf; -ENODATA if it has none. */
static int fact(struct fs *fs, const struct node *n, const char *name, char *buf, size_t size)
{
	bool stored = n->kind == NODE_SECRET && n->u.secret.meta.version;
	const struct secret_meta *m = &n->u.secret.meta;
	if (strcmp(name, "store") == 0)
		snprintf(buf, size, "%s", fs->ops->name);
	else if (strcmp(name, "scratch") == 0 && n->kind == NODE_SCRATCH)
		snprintf(buf, size, "not stored: the name is not a secret ID");
	else if (!stored)
		return -ENODATA;
	else if (strcmp(name, "id") == 0)
		snprintf(buf, size, "%s", m->id);
	else if (strcmp(name, "version") == 0)
		snprintf(buf, size, "%" PRIu64, m->version);
	else if (strcmp(name, "scopes") == 0)
		scope_names(m->scopes, buf, size);
	else
		return -ENODATA;
	return 0;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	bool is_label = strncmp(name, LABEL_XATTR_PREFIX, strlen(LABEL_XATTR_PREFIX)) == 0;
	bool is_fact = strncmp(name, FACT_XATTR_PREFIX, strlen(FACT_XATTR_PREFIX)) == 0;
	if (!is_label && !is_fact) {
		fuse_reply_err(req, strncmp(name, "user.", 5) == 0 ? ENODATA : EOPNOTSUPP);
		return;
	}
	rdlock(fs);
	struct node *n = fs_node_resolve(fs, ino);
	int r = 0;
	char text[512];
	const char *value = NULL;
	if (!n) {
		r = -ENOENT;
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
	struct node *n = fs_node_resolve(fs, ino);
	if (!n) {
		unlock(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct labels *l = labels_of(n);
	size_t len = 0, prefix = strlen(LABEL_XATTR_PREFIX);
	for (size_t i = 0; l && i < l->n; i++)
		len += prefix + strlen(l->v[i].key) + 1;
	char *list = malloc(len ? len : 1);
	if (!list) {
		unlock(fs);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	char *p = list;
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
	pthread_mutex_lock(&fs->ns_lock);
	wrlock(fs);
	struct node *n = fs_node_resolve(fs, ino);
	struct labels *l = n ? labels_of(n) : NULL;
	struct labels next = { 0 };
	int r = 0;
	if (!n)
		r = -ENOENT;
	else if (!l)
		r = -EPERM;
	else if (n->kind == NODE_SECRET &&
	         (r = admit_change(fs, fs_secret_visible_scopes(n), &who, "label change of",
	                           n->u.secret.meta.id)) < 0)
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
	bool stored = r == 0 && n->kind == NODE_SECRET && n->u.secret.meta.version;
	const char *op = value ? "label-set" : "label-remove";
	if (r < 0 && n && n->kind == NODE_SECRET)
		audit_event(&who, op, n->u.secret.meta.id, n->u.secret.meta.version, r, extra);
	if (r == 0 && !stored) {
		/* Scratch and pending files keep labels in memory; they go to
		 * the store with the file's first value. */
		labels_clear(l);
		*l = next;
		next = (struct labels){ 0 };
	} else if (stored) {
		char *id = strdup(n->u.secret.meta.id);
		if (id) {
			unlock(fs);
			r = fs->ops->set_labels(fs->store, id, &next);
			wrlock(fs);
		} else {
			r = -ENOMEM;
		}
		audit_event(&who, op, id ? id : "?", n->u.secret.meta.version, r, extra);
		if (r == -ENOMEM) {
			/* nothing to say beyond the errno */
		} else if (r < 0) {
			log_error("%s: label %s not changed: the store refused (%s)", id, key,
			          strerrordesc_np(-r));
			r = r == -EINVAL ? r : user_errno(r);
		} else if ((n = fs_secret_by_id(fs, id)) && n->u.secret.meta.version) {
			labels_clear(&n->u.secret.meta.labels);
			n->u.secret.meta.labels = next;
			next = (struct labels){ 0 };
			n->ctime_ns = now_ns();
			log_info("%s: label %s %s", id, key, value ? "set" : "removed");
		}
		free(id);
	}
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);
	labels_clear(&next);
	caller_clear(&who);
	return r;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                 size_t size, int flags)
{
	int r;
	if (strncmp(name, FACT_XATTR_PREFIX, strlen(FACT_XATTR_PREFIX)) == 0) {
		r = -EPERM;  /* read-only facts */
	} else if (strncmp(name, LABEL_XATTR_PREFIX, strlen(LABEL_XATTR_PREFIX)) != 0) {
		if (strncmp(name, "user.", 5) == 0)
			log_warn("xattr %s refused: only labels (user.tag.KEY) are stored", name);
		r = -EOPNOTSUPP;
	} else if (memchr(value, '\0', size) || size > LABEL_VALUE_MAX) {
		log_warn("label %s refused: the value has a NUL byte or is over %d bytes",
		         name, LABEL_VALUE_MAX);
		r = -EINVAL;
	} else {
		char *v = strndup(value, size);
		r = v ? change_label(req, ino, name + strlen(LABEL_XATTR_PREFIX), v, flags) : -ENOMEM;
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
