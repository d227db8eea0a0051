/* SPDX-License-Identifier: MIT */
/*
 * The inode table: an array indexed by inode number (numbers are handed
 * out in order and a secret keeps its number for the life of the mount),
 * and an index from secret ID to node.  The caller holds fs->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

int fs_nodes_init(struct fs *fs)
{
	fs->nodes_cap = 1024;
	fs->nodes = calloc(fs->nodes_cap, sizeof(*fs->nodes));
	fs->by_id_cap = 1024;
	fs->by_id = calloc(fs->by_id_cap, sizeof(*fs->by_id));
	if (!fs->nodes || !fs->by_id)
		return -ENOMEM;
	fs->next_ino = INO_FIRST_FREE;
	return 0;
}

void fs_nodes_free(struct fs *fs)
{
	for (size_t i = 0; i < fs->nodes_cap; i++)
		if (fs->nodes[i])
			fs_node_free(fs, fs->nodes[i]);
	free(fs->nodes);
	free(fs->by_id);
	fs->nodes = NULL;
	fs->by_id = NULL;
}

struct node *fs_node(struct fs *fs, fuse_ino_t ino)
{
	if (ino >= fs->nodes_cap)
		return NULL;
	return fs->nodes[ino];
}

struct node *fs_node_resolve(struct fs *fs, fuse_ino_t ino)
{
	struct node *n = fs_node(fs, ino);
	/* -o fast: a version's inode stands for its secret. */
	if (n && n->kind == NODE_SECRET_VERSION)
		n = fs_node(fs, n->u.vfile.secret_ino);
	/* Two quick renames can chain; a live node ends the chain. */
	for (int hops = 0; n && n->became && hops < 8; hops++) {
		bool live = n->kind == NODE_SCRATCH ? !n->u.scratch.unlinked
		          : n->kind == NODE_SECRET ? fs_secret_visible_scopes(n) != 0
		          : true;
		if (live)
			break;
		n = fs_node(fs, n->became);
	}
	return n;
}

static int place(struct fs *fs, struct node *n, fuse_ino_t ino)
{
	if (ino >= fs->nodes_cap) {
		size_t cap = fs->nodes_cap;
		while (cap <= ino)
			cap *= 2;
		struct node **v = realloc(fs->nodes, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memset(v + fs->nodes_cap, 0, (cap - fs->nodes_cap) * sizeof(*v));
		fs->nodes = v;
		fs->nodes_cap = cap;
	}
	n->ino = ino;
	fs->nodes[ino] = n;
	return 0;
}

static struct node *node_new_at(struct fs *fs, enum node_kind kind, fuse_ino_t ino)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->uid = fs->opt.uid;
	n->gid = fs->opt.gid;
	n->ctime_ns = now_ns();
	if (kind == NODE_ROOT || kind == NODE_SCOPE || kind == NODE_VERSIONS ||
	    kind == NODE_VERSION_DIR)
		n->mode = fs->opt.dir_mode;
	else
		n->mode = fs->opt.file_mode;
	if (place(fs, n, ino) < 0) {
		free(n);
		return NULL;
	}
	return n;
}

struct node *fs_node_new(struct fs *fs, enum node_kind kind)
{
	if (kind == NODE_ROOT)
		return node_new_at(fs, kind, INO_ROOT);
	if (kind == NODE_VERSIONS)
		return node_new_at(fs, kind, INO_VERSIONS);
	struct node *n = node_new_at(fs, kind, fs->next_ino);
	if (n)
		fs->next_ino++;
	return n;
}

/* Scope directories get fixed numbers. */
struct node *fs_scope_node_new(struct fs *fs, enum scope sc)
{
	return node_new_at(fs, NODE_SCOPE, INO_SCOPE_FIRST + sc);
}

void fs_node_free(struct fs *fs, struct node *n)
{
	if (!n)
		return;
	if (n->kind == NODE_SECRET) {
		secret_meta_clear(&n->u.secret.meta);
		labels_clear(&n->u.secret.tomb_labels);
	} else if (n->kind == NODE_SCRATCH) {
		fs_scratch_unlink(fs, n);
		free(n->u.scratch.name);
		lockedbuf_clear(&n->u.scratch.data);
		labels_clear(&n->u.scratch.labels);
	}
	if (n->ino < fs->nodes_cap && fs->nodes[n->ino] == n)
		fs->nodes[n->ino] = NULL;
	free(n);
}

/* --- the ID index --- */

static struct node **id_slot(struct fs *fs, const char *id)
{
	size_t mask = fs->by_id_cap - 1;
	for (size_t i = hash_id(id) & mask;; i = (i + 1) & mask) {
		struct node *n = fs->by_id[i];
		if (!n || strcmp(n->u.secret.meta.id, id) == 0)
			return &fs->by_id[i];
	}
}

static int id_index_grow(struct fs *fs)
{
	size_t old_cap = fs->by_id_cap;
	struct node **old = fs->by_id;
	struct node **v = calloc(old_cap * 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	fs->by_id = v;
	fs->by_id_cap = old_cap * 2;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			*id_slot(fs, old[i]->u.secret.meta.id) = old[i];
	free(old);
	return 0;
}

struct node *fs_secret_by_id(struct fs *fs, const char *id)
{
	return *id_slot(fs, id);
}

/* Secret nodes are never removed from the index: an ID keeps its inode
 * number for the life of the mount, even across delete and re-create. */
struct node *fs_secret_get_or_add(struct fs *fs, const char *id)
{
	struct node *n = fs_secret_by_id(fs, id);
	if (n)
		return n;
	if ((fs->by_id_count + 1) * 2 > fs->by_id_cap && id_index_grow(fs) < 0)
		return NULL;
	n = fs_node_new(fs, NODE_SECRET);
	if (!n)
		return NULL;
	n->u.secret.meta.id = strdup(id);
	if (!n->u.secret.meta.id) {
		fs_node_free(fs, n);
		return NULL;
	}
	*id_slot(fs, id) = n;
	fs->by_id_count++;
	return n;
}

struct node *fs_secret_add(struct fs *fs, const struct secret_meta *meta)
{
	struct node *n = fs_secret_get_or_add(fs, meta->id);
	if (!n || fs_secret_update_meta(fs, n, meta) < 0)
		return NULL;
	return n;
}

/* -o fast: each version is an inode of its own, so a new version must
 * make the kernel look the names up again. */
static void forget_names(struct fs *fs, const struct node *n, scope_set scopes)
{
	char *name = id_to_name(n->u.secret.meta.id);
	for (int sc = 0; name && sc < SCOPE_COUNT; sc++)
		if (scopes & (1u << sc))
			notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + sc, name);
	free(name);
}

int fs_secret_update_meta(struct fs *fs, struct node *n, const struct secret_meta *meta)
{
	struct secret_meta copy;
	int r = secret_meta_copy(&copy, meta);
	if (r < 0)
		return r;
	uint64_t old_version = n->u.secret.meta.version;
	scope_set old_scopes = n->u.secret.meta.scopes;
	secret_meta_clear(&n->u.secret.meta);
	n->u.secret.meta = copy;
	n->u.secret.pending_scopes = 0;
	if (fs->opt.fast && old_version && old_version != copy.version)
		forget_names(fs, n, old_scopes | copy.scopes);
	return 0;
}

struct node *fs_version_node(struct fs *fs, struct node **list, enum node_kind kind,
                             fuse_ino_t secret_ino, const struct secret_version *version)
{
	for (struct node *v = *list; v; v = v->next)
		if (v->u.vfile.version == version->version)
			return v;
	struct node *v = fs_node_new(fs, kind);
	if (!v)
		return NULL;
	v->u.vfile.secret_ino = secret_ino;
	v->u.vfile.version = version->version;
	v->u.vfile.size = version->size;
	v->u.vfile.mtime_ns = version->mtime_ns;
	v->next = *list;
	*list = v;
	return v;
}

struct node *fs_secret_version_node(struct fs *fs, struct node *secret)
{
	const struct secret_meta *m = &secret->u.secret.meta;
	struct secret_version current = { m->version, m->size, m->mtime_ns };
	return fs_version_node(fs, &secret->u.secret.versions, NODE_SECRET_VERSION, secret->ino,
	                       &current);
}

void fs_secret_version_forget(struct fs *fs, struct node *v)
{
	struct node *s = fs_node(fs, v->u.vfile.secret_ino);
	if (s && v->u.vfile.version == s->u.secret.meta.version)
		return;  /* the current version: looked up again soon */
	for (struct node **pp = s ? &s->u.secret.versions : NULL; pp && *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	fs_node_free(fs, v);
}

void fs_secret_mark_deleted(struct node *n)
{
	struct secret_meta *m = &n->u.secret.meta;
	m->version = 0;
	m->scopes = 0;
	m->size = 0;
	labels_clear(&m->labels);
}

scope_set fs_secret_visible_scopes(const struct node *n)
{
	const struct secret_node *s = &n->u.secret;
	return s->meta.version ? s->meta.scopes : s->pending_scopes;
}

bool fs_node_in_scope(const struct node *n, enum scope sc)
{
	if (n->kind == NODE_SECRET)
		return fs_secret_visible_scopes(n) & (1u << sc);
	if (n->kind == NODE_SCRATCH)
		return !n->u.scratch.unlinked && n->u.scratch.scope == sc;
	return false;
}

/* Scratch files are few (editor and tool temporaries): a list is enough. */
struct node *fs_scratch_find(struct fs *fs, enum scope sc, const char *name)
{
	for (struct node *n = fs->scratch_head; n; n = n->next)
		if (n->u.scratch.scope == sc && strcmp(n->u.scratch.name, name) == 0)
			return n;
	return NULL;
}

void fs_scratch_link(struct fs *fs, struct node *n)
{
	n->u.scratch.unlinked = false;
	n->next = fs->scratch_head;
	fs->scratch_head = n;
}

void fs_scratch_unlink(struct fs *fs, struct node *n)
{
	if (n->u.scratch.unlinked)
		return;
	for (struct node **pp = &fs->scratch_head; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	n->next = NULL;
	n->u.scratch.unlinked = true;
}
