/* SPDX-License-Identifier: MIT */
/*
 * The inode table: an array indexed by inode number (numbers are handed
 * out in order and never reused while mounted), an index from secret ID
 * to the node of its live or pending incarnation, and fs_apply(), the one
 * place where change records enter the table.  The caller holds fs->lock
 * (write for changes) unless a function says otherwise.
 *
 * Memory per secret (a million of them must fit in a few hundred MiB):
 * a secret node is one allocation with its ID behind it, and a stored
 * secret's labels are a label set kept once for every secret that
 * carries the same labels in the same order (struct label_set, counted).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "credsock.h"
#include "handover.h"
#include "mirror.h"

static uint64_t load64(const unsigned char *c)
{
	uint64_t w;
	memcpy(&w, c, sizeof(w));
	return w;
}

static uint64_t load32(const unsigned char *c)
{
	uint32_t w;
	memcpy(&w, c, sizeof(w));
	return w;
}

/* A hash of n bytes at p, added to h, eight bytes a step: IDs are 20 to
 * 40 bytes and a mount hashes a million of them (a byte-wise FNV-1a was
 * most of the ID index's cost).  Not keyed, as FNV-1a was not: only who
 * may create secrets chooses IDs, and they can fill the store anyway. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p, *end = c + n;
	uint64_t w;
	h = (h ^ n) * 0x9e3779b97f4a7c15ULL; /* the length: tails may overlap */
	if (n >= 8) {
		for (; end - c > 8; c += 8) {
			h = (h ^ load64(c)) * 0x9e3779b97f4a7c15ULL;
			h ^= h >> 32;
		}
		w = load64(end - 8); /* the last eight (overlapping the step before) */
	} else if (n >= 4) {
		w = load32(c) | load32(end - 4) << 32;
	} else {
		w = n ? c[0] | (uint64_t)c[n / 2] << 8 | (uint64_t)end[-1] << 16 : 0;
	}
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 32);
}

/* The final mix (MurmurHash3's): the index uses the low bits. */
static uint64_t hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

static uint64_t hash_id(const char *id)
{
	return hash_mix(hash_bytes(0, id, strlen(id)));
}

/* --- label sets: one copy of each distinct set of labels --- */

/* Read-only once made; meta.labels.v of the secrets carrying it points
 * at v.  The strings follow v in the same allocation. */
struct label_set {
	struct label_set *next; /* in its hash chain */
	uint64_t hash;
	size_t refs; /* secret nodes whose meta.labels it is */
	size_t n;
	struct label v[];
};

static uint64_t labels_hash(const struct labels *l)
{
	uint64_t h = l->n; /* over key\0value\0... */
	for (size_t i = 0; i < l->n; i++) {
		h = hash_bytes(h, l->v[i].key, strlen(l->v[i].key) + 1);
		h = hash_bytes(h, l->v[i].value, strlen(l->v[i].value) + 1);
	}
	return hash_mix(h);
}

static bool label_set_holds(const struct label_set *set, const struct labels *l)
{
	const struct labels set_labels = { .n = set->n, .v = (struct label *)set->v };
	return labels_equal(&set_labels, l);
}

static bool label_set_is(const struct label_set *set, uint64_t hash, const struct labels *l)
{
	return set->hash == hash && label_set_holds(set, l);
}

static struct label_set *label_set_new(const struct labels *l, uint64_t hash)
{
	size_t bytes = sizeof(struct label_set) + l->n * sizeof(struct label);
	for (size_t i = 0; i < l->n; i++)
		bytes += strlen(l->v[i].key) + strlen(l->v[i].value) + 2;
	struct label_set *set = malloc(bytes);
	if (!set)
		return NULL;
	*set = (struct label_set){ .hash = hash, .n = l->n };
	char *p = (char *)&set->v[l->n];
	for (size_t i = 0; i < l->n; i++) {
		size_t k = strlen(l->v[i].key) + 1, v = strlen(l->v[i].value) + 1;
		set->v[i].key = memcpy(p, l->v[i].key, k);
		set->v[i].value = memcpy(p + k, l->v[i].value, v);
		p += k + v;
	}
	return set;
}

static int label_sets_grow(struct fs *fs)
{
	size_t cap = fs->label_sets_cap * 2;
	struct label_set **v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < fs->label_sets_cap; i++)
		for (struct label_set *set = fs->label_sets[i], *next; set; set = next) {
			next = set->next;
			set->next = v[set->hash & (cap - 1)];
			v[set->hash & (cap - 1)] = set;
		}
	free(fs->label_sets);
	fs->label_sets = v;
	fs->label_sets_cap = cap;
	return 0;
}

/* *ret: l as a label set's labels, counted once more (no labels: none). */
static int labels_intern(struct fs *fs, const struct labels *l, struct labels *ret)
{
	if (!l->n) {
		*ret = (struct labels){ 0 };
		return 0;
	}
	/* A listing in ID order brings runs of secrets with the same labels
	 * (a provider's, a team's keys): the set found last, first. */
	struct label_set *set = fs->label_set_last;
	if (set && label_set_holds(set, l))
		goto found;
	uint64_t hash = labels_hash(l);
	struct label_set **head = &fs->label_sets[hash & (fs->label_sets_cap - 1)];
	for (set = *head; set && !label_set_is(set, hash, l); set = set->next)
		;
	if (!set) {
		if (fs->label_sets_count >= fs->label_sets_cap && label_sets_grow(fs) == 0)
			head = &fs->label_sets[hash & (fs->label_sets_cap - 1)];
		if (!(set = label_set_new(l, hash)))
			return -ENOMEM;
		set->next = *head;
		*head = set;
		fs->label_sets_count++;
	}
	fs->label_set_last = set;
found:
	set->refs++;
	*ret = (struct labels){ .n = set->n, .v = set->v };
	return 0;
}

/* Counts l (from labels_intern) once less; the last one frees its set. */
static void labels_release(struct fs *fs, struct labels *l)
{
	if (!l->n)
		return;
	struct label_set *set = (struct label_set *)((char *)l->v - offsetof(struct label_set, v));
	*l = (struct labels){ 0 };
	if (--set->refs)
		return;
	struct label_set **pp = &fs->label_sets[set->hash & (fs->label_sets_cap - 1)];
	while (*pp != set)
		pp = &(*pp)->next;
	*pp = set->next;
	fs->label_sets_count--;
	if (fs->label_set_last == set)
		fs->label_set_last = NULL;
	free(set);
}

/* A secret node's labels go: a stored one's set, or a pending one's own. */
static void secret_labels_drop(struct fs *fs, struct secret_node *sn)
{
	if (sn->labels_interned)
		labels_release(fs, &sn->meta.labels);
	else
		labels_clear(&sn->meta.labels);
	sn->labels_interned = false;
}

int fs_nodes_init(struct fs *fs)
{
	fs->nodes_cap = 1024;
	fs->nodes = calloc(fs->nodes_cap, sizeof(*fs->nodes));
	fs->by_id_cap = 1024;
	fs->by_id = calloc(fs->by_id_cap, sizeof(*fs->by_id));
	fs->label_sets_cap = 64;
	fs->label_sets = calloc(fs->label_sets_cap, sizeof(*fs->label_sets));
	if (!fs->nodes || !fs->by_id || !fs->label_sets)
		return -ENOMEM;
	fs->next_ino = INO_FIRST_FREE;
	return 0;
}

static void node_destroy(struct fs *fs, struct node *n);

/* Takes n out of the sibling list at *pp. */
static void list_remove(struct node **pp, struct node *n)
{
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			return;
		}
	}
}

void fs_nodes_free(struct fs *fs)
{
	for (size_t i = 0; fs->nodes && i < fs->nodes_cap; i++)
		if (fs->nodes[i])
			node_destroy(fs, fs->nodes[i]);
	while (fs->tombs)
		fs_tomb_drop(fs, fs->tombs);
	free(fs->nodes);
	free(fs->by_id);
	fs->nodes = NULL;
	fs->by_id = NULL;
	/* every set went with the last node carrying it */
	free(fs->label_sets);
	fs->label_sets = NULL;
}

struct node *fs_node(struct fs *fs, fuse_ino_t ino)
{
	if (ino >= fs->nodes_cap)
		return NULL;
	return fs->nodes[ino];
}

struct node *fs_node_target(struct fs *fs, fuse_ino_t ino)
{
	struct node *n = fs_node(fs, ino);
	if (n && n->kind == NODE_SECRET_VERSION)
		n = n->u.vfile.secret;
	return n;
}

bool fs_node_live(const struct node *n)
{
	if (n->kind == NODE_SECRET)
		return !n->dead;
	if (n->kind == NODE_SCRATCH)
		return !n->u.scratch.unlinked;
	if (n->kind == NODE_DELETED_FILE)
		return !n->dead;
	return true;
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

/* A node with extra bytes behind it (a secret's ID). */
static struct node *node_new_at(struct fs *fs, enum node_kind kind, fuse_ino_t ino, size_t extra)
{
	struct node *n = calloc(1, sizeof(*n) + extra);
	if (!n)
		return NULL;
	n->kind = kind;
	n->uid = fs->opt.uid;
	n->gid = fs->opt.gid;
	n->ctime_ns = now_ns();
	if (kind == NODE_ROOT || kind == NODE_SCOPE)
		n->mode = fs->opt.dir_mode;
	else
		n->mode = fs->opt.file_mode;
	if (kind == NODE_VERSIONS || kind == NODE_VERSION_DIR || kind == NODE_VERSION_FILE ||
	    kind == NODE_DELETED || kind == NODE_DELETED_FILE) {
		/* Every secret's old values, whatever scope and owner it has:
		 * root's only, not uid='s or owner='s (chmod/chown: EPERM). */
		n->uid = 0;
		n->gid = 0;
		n->mode = kind == NODE_VERSION_FILE || kind == NODE_DELETED_FILE ? 0400 : 0500;
	}
	if (place(fs, n, ino) < 0) {
		free(n);
		return NULL;
	}
	return n;
}

static struct node *node_new_next(struct fs *fs, enum node_kind kind, size_t extra)
{
	struct node *n = node_new_at(fs, kind, fs->next_ino, extra);
	if (n && ++fs->next_ino > fs->ino_reserved)
		handover_reserve(fs);
	return n;
}

struct node *fs_node_new(struct fs *fs, enum node_kind kind)
{
	if (kind == NODE_ROOT)
		return node_new_at(fs, kind, INO_ROOT, 0);
	if (kind == NODE_VERSIONS)
		return node_new_at(fs, kind, INO_VERSIONS, 0);
	if (kind == NODE_DELETED)
		return node_new_at(fs, kind, INO_DELETED, 0);
	return node_new_next(fs, kind, 0);
}

size_t fs_secrets_renumber(struct fs *fs, fuse_ino_t (*want)(const struct node *, void *nlookup),
                           fuse_ino_t next)
{
	size_t count = 0, kept = 0;
	struct node **v = calloc(fs->next_ino, sizeof(*v));
	if (!v)
		return 0; /* as they are: the kernel's old numbers get ESTALE */
	for (fuse_ino_t i = INO_FIRST_FREE; i < fs->next_ino; i++) {
		struct node *n = fs_node(fs, i);
		if (n && n->kind == NODE_SECRET) {
			v[count++] = n;
			fs->nodes[i] = NULL;
		}
	}
	if (fs->next_ino < next)
		fs->next_ino = next;
	for (size_t i = 0; i < count; i++) {
		uint64_t nlookup = 0;
		fuse_ino_t ino = want(v[i], &nlookup);
		/* a wanted number is below next and unique (one per ID) */
		if (ino >= INO_FIRST_FREE && ino < next && !fs_node(fs, ino) &&
		    place(fs, v[i], ino) == 0) {
			v[i]->nlookup = nlookup;
			v[i] = NULL;
			kept++;
		}
	}
	for (size_t i = 0; i < count; i++)
		if (v[i] && place(fs, v[i], fs->next_ino) == 0)
			fs->next_ino++;
	free(v);
	return kept;
}

/* Scope directories get fixed numbers. */
struct node *fs_scope_node_new(struct fs *fs, enum scope sc)
{
	return node_new_at(fs, NODE_SCOPE, INO_SCOPE_FIRST + sc, 0);
}

/* Frees n and what it owns, unconditionally. */
static void node_destroy(struct fs *fs, struct node *n)
{
	if (n->kind == NODE_SECRET) {
		secret_labels_drop(fs, &n->u.secret); /* meta.id is in n */
	} else if (n->kind == NODE_SCRATCH) {
		fs_scratch_unlink(fs, n);
		free(n->u.scratch.name);
		free(n->u.scratch.stored_as);
		lockedbuf_clear(&n->u.scratch.data);
		labels_clear(&n->u.scratch.labels);
	} else if (n->kind == NODE_DELETED_FILE) {
		list_remove(&fs->deleted_files, n);
		free(n->u.deleted.id);
	}
	if (n->ino < fs->nodes_cap && fs->nodes[n->ino] == n)
		fs->nodes[n->ino] = NULL;
	free(n);
}

void fs_node_pin(struct node *n)
{
	__atomic_add_fetch(&n->pins, 1, __ATOMIC_RELAXED);
}

/* Is a -o fast version inode its secret's current version? */
static bool version_current(const struct node *v)
{
	const struct node *s = v->u.vfile.secret;
	return !s->dead && s->u.secret.meta.incarnation &&
	       s->u.secret.meta.version == v->u.vfile.version;
}

static void node_kill(struct fs *fs, struct node *n);

void fs_node_release(struct fs *fs, struct node *n)
{
	if (n->open_count || n->pins)
		return;
	if (n->kind == NODE_SECRET && !n->dead && !n->u.secret.meta.incarnation &&
	    !(n->u.secret.mknod_hold && n->nlookup)) {
		/* Pending, and nothing holds it open: it was never stored, and
		 * its name goes (it had no entry timeout: the kernel looks
		 * again and finds nothing). */
		if (n->u.secret.pending_scopes)
			log_warn("%s: closed without a value, so it was not created (a value is 1 "
			         "to %d bytes)",
			         n->u.secret.meta.id, SECRET_VALUE_MAX);
		node_kill(fs, n);
	}
	if (n->nlookup)
		return;
	struct node *s = NULL;
	switch (n->kind) {
	case NODE_SECRET:
		if (n->dead)
			node_destroy(fs, n);
		break;
	case NODE_SCRATCH:
		if (n->u.scratch.unlinked)
			node_destroy(fs, n);
		break;
	case NODE_DELETED_FILE:
		node_destroy(fs, n); /* looked up again from the store */
		break;
	case NODE_SECRET_VERSION:
		/* The current version is looked up again soon: kept. */
		s = n->u.vfile.secret;
		if (version_current(n))
			break;
		list_remove(&s->u.secret.versions, n);
		node_destroy(fs, n);
		fs_node_unpin(fs, s);
		break;
	case NODE_VERSION_FILE: {
		s = n->u.vfile.secret;
		struct node *d = fs_node(fs, s->u.secret.vdir_ino);
		if (d && d->kind == NODE_VERSION_DIR)
			list_remove(&d->u.vdir.files, n);
		node_destroy(fs, n);
		fs_node_unpin(fs, s);
		if (d && d->kind == NODE_VERSION_DIR)
			fs_node_release(fs, d);
		break;
	}
	case NODE_VERSION_DIR:
		if (n->u.vdir.files)
			break; /* its files go first */
		s = n->u.vdir.secret;
		if (s->u.secret.vdir_ino == n->ino)
			s->u.secret.vdir_ino = 0;
		node_destroy(fs, n);
		fs_node_unpin(fs, s);
		break;
	default:
		break;
	}
}

void fs_node_unpin(struct fs *fs, struct node *n)
{
	if (n->pins)
		n->pins--;
	fs_node_release(fs, n);
}

/* --- the ID index: live and pending secrets only --- */

/* The slot of id (whose hash_id is hash), or the empty one it would take. */
static size_t id_slot(struct fs *fs, const char *id, uint64_t hash)
{
	size_t mask = fs->by_id_cap - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct node *n = fs->by_id[i];
		if (!n || strcmp(n->u.secret.meta.id, id) == 0)
			return i;
	}
}

static int id_index_grow(struct fs *fs)
{
	size_t old_cap = fs->by_id_cap;
	struct node **old = fs->by_id;
	struct node **v = calloc(old_cap * 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t mask = old_cap * 2 - 1;
	/* the IDs are distinct: each goes to the first empty slot from its
	 * home, no comparisons */
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i])
			continue;
		size_t j = hash_id(old[i]->u.secret.meta.id) & mask;
		while (v[j])
			j = (j + 1) & mask;
		v[j] = old[i];
	}
	free(old);
	fs->by_id = v;
	fs->by_id_cap = old_cap * 2;
	return 0;
}

struct node *fs_secret_by_id(struct fs *fs, const char *id)
{
	return fs->by_id[id_slot(fs, id, hash_id(id))];
}

/* n's ID (whose hash_id is hash) has no node in the index yet. */
static int id_index_add(struct fs *fs, struct node *n, uint64_t hash)
{
	if ((fs->by_id_count + 1) * 2 > fs->by_id_cap && id_index_grow(fs) < 0)
		return -ENOMEM;
	fs->by_id[id_slot(fs, n->u.secret.meta.id, hash)] = n;
	fs->by_id_count++;
	return 0;
}

/* Removal from a linear-probing table: the entries after the hole that
 * belong before it move back (no tombstone entries). */
static void id_index_remove(struct fs *fs, struct node *n)
{
	size_t mask = fs->by_id_cap - 1;
	size_t i = id_slot(fs, n->u.secret.meta.id, hash_id(n->u.secret.meta.id));
	if (fs->by_id[i] != n)
		return;
	fs->by_id[i] = NULL;
	fs->by_id_count--;
	for (size_t j = (i + 1) & mask; fs->by_id[j]; j = (j + 1) & mask) {
		size_t home = hash_id(fs->by_id[j]->u.secret.meta.id) & mask;
		/* Does j's home lie cyclically in (i, j]?  Then it stays. */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			fs->by_id[i] = fs->by_id[j];
			fs->by_id[j] = NULL;
			i = j;
		}
	}
}

/* A new node for id (hash: its hash_id), which has none in the index. */
static struct node *secret_node_new(struct fs *fs, const char *id, uint64_t hash)
{
	size_t len = strlen(id) + 1;
	struct node *n = node_new_next(fs, NODE_SECRET, len);
	if (!n)
		return NULL;
	n->u.secret.meta.id = memcpy(n + 1, id, len);
	if (id_index_add(fs, n, hash) < 0) {
		node_destroy(fs, n);
		return NULL;
	}
	return n;
}

struct node *fs_secret_pending(struct fs *fs, const char *id)
{
	return secret_node_new(fs, id, hash_id(id));
}

/* -o fast: each version is an inode of its own, so a new version, or the
 * end of an incarnation, must make the kernel look the names up again. */
static void forget_names(struct fs *fs, const struct node *n, scope_set scopes)
{
	char *name = id_to_name(n->u.secret.meta.id);
	for (int sc = 0; name && sc < SCOPE_COUNT; sc++)
		if (scopes & (1u << sc))
			notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + sc, name);
	free(name);
}

/* An incarnation ends: its node leaves the index and answers ESTALE.  n
 * stays allocated: the caller lets it go (fs_node_release) when it no
 * longer uses it. */
static void node_kill(struct fs *fs, struct node *n)
{
	scope_set scopes = fs_secret_visible_scopes(n);
	id_index_remove(fs, n);
	n->dead = true;
	n->ctime_ns = now_ns();
	if (fs->opt.fast && scopes)
		forget_names(fs, n, scopes);
	/* -o fast: its version inodes the kernel forgot go now (they pin n:
	 * held meanwhile, so that n stays for the caller) */
	n->pins++;
	for (struct node *v = n->u.secret.versions, *next; v; v = next) {
		next = v->next;
		fs_node_release(fs, v);
	}
	n->pins--;
	/* chmod/chown of this host must not come back for a later secret of
	 * the same ID: host-attrs is rewritten (hostattrs_save_if_dirty) */
	if (n->mode_set || n->owner_set)
		__atomic_store_n(&fs->attrs_dirty, true, __ATOMIC_RELAXED);
}

void fs_secret_drop_pending(struct fs *fs, struct node *n)
{
	if (!n->dead && !n->u.secret.meta.incarnation)
		node_kill(fs, n);
}

void fs_change_done(struct fs *fs, struct node *const *nodes, size_t n)
{
	fs_change_end(fs, nodes, n);
	pthread_rwlock_wrlock(&fs->lock);
	for (size_t i = 0; i < n; i++)
		if (nodes[i] && (i == 0 || nodes[i] != nodes[i - 1]))
			fs_node_unpin(fs, nodes[i]);
	pthread_rwlock_unlock(&fs->lock);
}

/* n (whose ID meta names) takes meta: its fields, its labels as a label
 * set.  0 or -ENOMEM (n unchanged). */
static int set_meta(struct fs *fs, struct node *n, const struct secret_meta *meta)
{
	struct secret_meta copy = *meta;
	copy.id = n->u.secret.meta.id;
	int r = labels_intern(fs, &meta->labels, &copy.labels);
	if (r < 0)
		return r;
	const struct secret_meta *old = &n->u.secret.meta;
	bool new_value = old->incarnation && old->version != copy.version;
	bool new_scopes = old->incarnation && old->scopes != copy.scopes;
	/* Default mode: no invalidation for a new size and mtime; the kernel
	 * learns them within ATTR_TIMEOUT (direct_io reads go to the end of
	 * the value whatever size it has cached).  An invalidation here would
	 * make the kernel drop a lookup's attributes that are in flight, the
	 * link count among them (see entry_timeout_of). */
	if (fs->opt.fast && new_value)
		forget_names(fs, n, old->scopes | copy.scopes);
	if (new_value || new_scopes)
		n->u.secret.settle_ns = now_ns() + SETTLE_NS;
	if (new_value) /* units that loaded it as a credential (-o on_rotate) */
		credsock_value_changed(fs->credsock, copy.id, copy.scopes);
	if (new_scopes)
		n->ctime_ns = now_ns();
	secret_labels_drop(fs, &n->u.secret);
	n->u.secret.meta = copy;
	n->u.secret.labels_interned = true;
	n->u.secret.pending_scopes = 0;
	/* -o fast: version inodes the kernel has forgotten go once they are
	 * not current (n is held by the caller: it stays). */
	for (struct node *v = n->u.secret.versions, *next; v; v = next) {
		next = v->next;
		fs_node_release(fs, v);
	}
	return 0;
}

struct node *fs_apply_for(struct fs *fs, const struct store_change *c, struct node *own)
{
	const struct secret_meta *m = &c->meta;
	uint64_t hash = hash_id(m->id); /* for the look-up, and a new node's place */
	struct node *n = fs->by_id[id_slot(fs, m->id, hash)];
	uint64_t have = n ? n->u.secret.meta.incarnation : 0;

	mirror_kick(fs->mirror, m->id); /* committed: the mirror pushes it soon */
	if (c->kind == STORE_DELETED) {
		/* A deleted incarnation newer than ours means ours is gone too. */
		if (n && have && have <= m->incarnation) {
			node_kill(fs, n);
			fs_node_release(fs, n);
		}
		return NULL;
	}
	if (n && have > m->incarnation)
		return n; /* about an incarnation that is gone */
	if (n && have == m->incarnation) {
		if (m->revision > n->u.secret.meta.revision && set_meta(fs, n, m) < 0)
			return NULL;
		return n;
	}
	if (n && have) {
		/* A newer incarnation: the one we had was deleted. */
		node_kill(fs, n);
		fs_node_release(fs, n);
		n = NULL;
	}
	/* A pending node becomes the incarnation its own first commit made.
	 * Any other creator's (a rename onto the name, another host) gets a
	 * node of its own: the pending one dies with whatever its creator
	 * set on it (mode, owner, open files), and their commits fail. */
	if (n && n != own) {
		node_kill(fs, n);
		fs_node_release(fs, n);
		n = NULL;
	}
	if (!n && !(n = secret_node_new(fs, m->id, hash)))
		return NULL;
	if (set_meta(fs, n, m) < 0)
		return NULL;
	handover_secret_born(fs, n); /* its number, for a restarted daemon */
	return n;
}

struct node *fs_apply(struct fs *fs, const struct store_change *c)
{
	return fs_apply_for(fs, c, NULL);
}

struct node *fs_apply_meta(struct fs *fs, const struct secret_meta *meta)
{
	struct store_change c = { .kind = STORE_CHANGED, .meta = *meta };
	return fs_apply_for(fs, &c, NULL);
}

/* The kernel's caches after another client's change: names that appeared,
 * went or moved between scopes, and the attributes of a new value.
 * fs->lock held (the notices are only queued). */
static void forget_remote(struct fs *fs, const char *id, const struct node *was, scope_set before,
                          uint64_t before_version, const struct node *now)
{
	scope_set after = now ? fs_secret_visible_scopes(now) : 0;
	if (was != now || before != after) {
		char *name = id_to_name(id);
		for (int sc = 0; name && sc < SCOPE_COUNT; sc++)
			if ((before | after) & (1u << sc))
				notifier_inval_entry(fs->notifier, INO_SCOPE_FIRST + sc, name);
		free(name);
	}
	if (now && was == now && now->u.secret.meta.version != before_version)
		notifier_inval_inode(fs->notifier, now->ino);
	/* a new value, or a name new in a scope: what a local write there
	 * would have told inotify */
	bool new_value = now && (was != now || now->u.secret.meta.version != before_version);
	scope_set told = new_value ? after : after & ~before;
	char *name = told ? id_to_name(id) : NULL;
	for (int sc = 0; name && sc < SCOPE_COUNT; sc++)
		if (told & (1u << sc))
			echo_queue(fs->echo, sc, name);
	free(name);
}

void fs_apply_remote(struct fs *fs, const struct store_change *c)
{
	const char *id = c->meta.id;
	for (;;) {
		pthread_rwlock_rdlock(&fs->lock);
		struct node *n = fs_secret_by_id(fs, id);
		if (n)
			fs_node_pin(n);
		pthread_rwlock_unlock(&fs->lock);
		/* after any change of this host's to the secret: its own
		 * record is applied by then (and this one, its echo, ignored),
		 * and a pending name's first commit has become its node */
		fs_change_begin(fs, &n, 1);
		pthread_rwlock_wrlock(&fs->lock);
		bool same = fs_secret_by_id(fs, id) == n;
		if (same && !fs->remote_off) {
			scope_set before = n ? fs_secret_visible_scopes(n) : 0;
			uint64_t version = n ? n->u.secret.meta.version : 0;
			uint64_t revision = n ? n->u.secret.meta.revision : 0;
			struct node *now = fs_apply(fs, c);
			if (now != n || (now && now->u.secret.meta.revision != revision))
				log_info("%.300s: %s by another client (version %" PRIu64 ")", id,
				         !now       ? "deleted"
				         : now != n ? "created"
				                    : "changed",
				         now ? now->u.secret.meta.version : 0);
			forget_remote(fs, id, n, before, version, now);
		}
		pthread_rwlock_unlock(&fs->lock);
		fs_change_done(fs, &n, 1);
		if (same)
			return;
		/* the ID got another node meanwhile: take that one's set */
	}
}

/* --- versions --- */

struct node *fs_version_node(struct fs *fs, struct node **list, enum node_kind kind,
                             struct node *secret, const struct secret_version *version)
{
	for (struct node *v = *list; v; v = v->next)
		if (v->u.vfile.version == version->version)
			return v;
	struct node *v = fs_node_new(fs, kind);
	if (!v)
		return NULL;
	v->u.vfile.secret = secret;
	v->u.vfile.version = version->version;
	v->u.vfile.size = version->size;
	v->u.vfile.mtime_ns = version->mtime_ns;
	v->next = *list;
	*list = v;
	fs_node_pin(secret);
	return v;
}

struct node *fs_secret_version_node(struct fs *fs, struct node *secret)
{
	const struct secret_meta *m = &secret->u.secret.meta;
	struct secret_version current = { m->version, m->size, m->mtime_ns };
	/* (Not written to the handover state now, as a secret's birth is:
	 * each lookup would rewrite the whole table.  A handover writes it,
	 * and so does each block of numbers.) */
	return fs_version_node(fs, &secret->u.secret.versions, NODE_SECRET_VERSION, secret,
	                       &current);
}

struct node *fs_secret_version_restore(struct fs *fs, struct node *secret, fuse_ino_t ino,
                                       uint64_t nlookup)
{
	if (secret->u.secret.versions || ino < INO_FIRST_FREE || ino >= fs->next_ino ||
	    fs_node(fs, ino))
		return NULL;
	struct node *v = fs_secret_version_node(fs, secret);
	if (!v)
		return NULL;
	fs->nodes[v->ino] = NULL; /* that number is skipped */
	place(fs, v, ino);        /* below next_ino: no growth, no failure */
	v->nlookup = nlookup;
	return v;
}

scope_set fs_secret_visible_scopes(const struct node *n)
{
	const struct secret_node *s = &n->u.secret;
	if (n->dead)
		return 0;
	return s->meta.incarnation ? s->meta.scopes : s->pending_scopes;
}

bool fs_node_in_scope(const struct node *n, enum scope sc)
{
	if (n->kind == NODE_SECRET)
		return fs_secret_visible_scopes(n) & (1u << sc);
	if (n->kind == NODE_SCRATCH)
		return !n->u.scratch.unlinked && n->u.scratch.scope == sc;
	return false;
}

/* --- scratch files: few (editor and tool temporaries), a list is enough --- */

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

/* --- tombstones --- */

void fs_tomb_drop(struct fs *fs, struct tombstone *t)
{
	for (struct tombstone **pp = &fs->tombs; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	free(t->id);
	labels_clear(&t->labels);
	free(t);
}

static void tombs_expire(struct fs *fs, int64_t now)
{
	struct tombstone *t = fs->tombs, *next;
	for (; t; t = next) {
		next = t->next;
		if (now - t->time_ns >= TOMBSTONE_NS)
			fs_tomb_drop(fs, t);
	}
}

struct tombstone *fs_tomb_find(struct fs *fs, const char *id, enum scope sc)
{
	tombs_expire(fs, now_ns());
	for (struct tombstone *t = fs->tombs; t; t = t->next)
		if (strcmp(t->id, id) == 0 && (t->unlinked & (1u << sc)))
			return t;
	return NULL;
}

void fs_tomb_add(struct fs *fs, const struct node *n, enum scope sc)
{
	const struct secret_meta *m = &n->u.secret.meta;
	int64_t now = now_ns();
	tombs_expire(fs, now);
	struct tombstone *t = fs->tombs;
	while (t && strcmp(t->id, m->id) != 0)
		t = t->next;
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || !(t->id = strdup(m->id))) {
			free(t);
			return; /* only a convenience is lost */
		}
		t->next = fs->tombs;
		fs->tombs = t;
	}
	t->unlinked |= 1u << sc;
	/* The scopes it had right before this unlink, not every scope it
	 * had within the window: a scope taken away by an earlier unlink
	 * stays away when the secret is deleted and created again (a
	 * revocation, then a rotation by install(1)). */
	t->scopes = m->scopes;
	t->time_ns = now;
	labels_clear(&t->labels);
	labels_copy(&t->labels, &m->labels);
}

/* --- change sets --- */

static bool any_busy(struct node *const *nodes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (nodes[i] && nodes[i]->busy)
			return true;
	return false;
}

void fs_change_begin(struct fs *fs, struct node *const *nodes, size_t n)
{
	pthread_mutex_lock(&fs->change_mutex);
	while (any_busy(nodes, n))
		pthread_cond_wait(&fs->change_done, &fs->change_mutex);
	for (size_t i = 0; i < n; i++)
		if (nodes[i])
			nodes[i]->busy = true;
	pthread_mutex_unlock(&fs->change_mutex);
}

void fs_change_end(struct fs *fs, struct node *const *nodes, size_t n)
{
	pthread_mutex_lock(&fs->change_mutex);
	for (size_t i = 0; i < n; i++)
		if (nodes[i])
			nodes[i]->busy = false;
	pthread_cond_broadcast(&fs->change_done);
	pthread_mutex_unlock(&fs->change_mutex);
}
