/* SPDX-License-Identifier: MIT */
/*
 * Metadata operations: lookup, forget, getattr, readdir, statfs.  Answered
 * from the inode table under fs->lock read; only /.versions asks the store
 * (which versions are kept).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "ops.h"

/* Is version kept?  Its size and time into *ret. */
static bool version_kept(struct fs *fs, const char *id, uint64_t incarnation, uint64_t version,
                         struct secret_version *ret)
{
	struct secret_version *v = NULL;
	size_t n = 0;
	bool kept = false;
	if (!fs->ops->list_versions ||
	    fs->ops->list_versions(fs->store, id, incarnation, &v, &n) < 0)
		return false;
	for (size_t i = 0; i < n && !kept; i++) {
		if (v[i].version == version) {
			*ret = v[i];
			kept = true;
		}
	}
	free(v);
	return kept;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	fuse_ino_t found = 0;
	int sc = scope_of_dir(parent);

	if (name_too_long(name)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}

	if (parent == INO_DELETED) {
		struct node *n = NULL;
		int r = fuse_req_ctx(req)->uid == 0 ? deleted_lookup(fs, name, &n) : -ENOENT;
		if (r < 0) {
			struct fuse_entry_param e = { .ino = 0 };
			fuse_reply_entry(req, &e);
			return;
		}
		reply_entry(req, fs, n->ino);
		wrlock(fs);
		fs_node_unpin(fs, n);
		unlock(fs);
		return;
	}
	/* Only /.versions and -o fast add nodes on lookup. */
	bool adds = fs->opt.fast || (parent != INO_ROOT && sc < 0);
	if (adds)
		wrlock(fs);
	else
		rdlock(fs);
	if (parent == INO_ROOT) {
		for (int i = 0; i < SCOPE_COUNT; i++)
			if (strcmp(name, scope_dir_name(i)) == 0)
				found = INO_SCOPE_FIRST + i;
		if (strcmp(name, VERSIONS_DIR_NAME) == 0)
			found = INO_VERSIONS;
		/* root's only, and not even there for anyone else */
		if (strcmp(name, DELETED_DIR_NAME) == 0 && fs_node(fs, INO_DELETED) &&
		    fuse_req_ctx(req)->uid == 0)
			found = INO_DELETED;
	} else if (sc >= 0) {
		struct node *n = scope_child(fs, sc, name);
		if (n && fs->opt.fast && n->kind == NODE_SECRET && n->u.secret.meta.incarnation)
			n = fs_secret_version_node(fs, n);
		if (n)
			found = n->ino;
	} else if (parent == INO_VERSIONS) {
		char *id = name_to_id(name);
		struct node *s = id ? fs_secret_by_id(fs, id) : NULL;
		free(id);
		if (s && s->u.secret.meta.incarnation) {
			if (!s->u.secret.vdir_ino) {
				struct node *d = fs_node_new(fs, NODE_VERSION_DIR);
				if (d) {
					d->u.vdir.secret = s;
					fs_node_pin(s);
					s->u.secret.vdir_ino = d->ino;
				}
			}
			found = s->u.secret.vdir_ino;
		}
	} else {
		struct node *d = fs_node(fs, parent);
		if (d && d->kind == NODE_VERSION_DIR) {
			char *end;
			uint64_t version = strtoull(name, &end, 10);
			struct node *s = d->u.vdir.secret;
			char *id = strdup(s->u.secret.meta.id);
			uint64_t incarnation = s->u.secret.meta.incarnation;
			unlock(fs);
			struct secret_version info;
			bool kept = id && *name >= '1' && *name <= '9' && !*end &&
			            version_kept(fs, id, incarnation, version, &info);
			free(id);
			wrlock(fs);
			d = fs_node(fs, parent);
			if (kept && d) {
				struct node *f = fs_version_node(fs, &d->u.vdir.files,
				                                 NODE_VERSION_FILE,
				                                 d->u.vdir.secret, &info);
				if (f)
					found = f->ino;
			}
		}
	}
	unlock(fs);
	if (!found) {
		/* A negative entry with no timeout: a secret created elsewhere
		 * is found by the next lookup. */
		struct fuse_entry_param e = { .ino = 0 };
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, fs, found);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = fs_node(fs, ino);
	if (!n)
		return;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	fs_node_release(fs, n);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	wrlock(fs);
	forget_one(fs, ino, nlookup);
	unlock(fs);
	fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	wrlock(fs);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	unlock(fs);
	fuse_reply_none(req);
}

/* Is getattr of n about a name that stands for something else now?  An
 * open file keeps its attributes (fstat), and so does a -o fast version
 * (no opens to tell fstat from stat; its names are invalidated when its
 * secret goes). */
static bool stale(struct fs *fs, const struct node *n)
{
	if (n->open_count || n->kind == NODE_SECRET_VERSION)
		return false;
	return !fs_node_live(n);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	rdlock(fs);
	struct node *n = fs_node(fs, ino);
	/* A name that led here stands for something else now: the kernel
	 * looks it up again.  An open file keeps its attributes. */
	int r = !n ? ENOENT : stale(fs, n) ? ESTALE : 0;
	if (!r)
		fill_attr(fs, n, &st);
	unlock(fs);
	if (r) {
		fuse_reply_err(req, r);
		return;
	}
	st.st_ino = ino;
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* --- directories --- */

struct dirbuf {
	char *p;
	size_t size, used;
	fuse_req_t req;
};

/* Adds an entry; false when the reply buffer is full. */
static bool dir_add(struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t type, off_t next)
{
	struct stat st = { .st_ino = ino, .st_mode = type };
	size_t need = fuse_add_direntry(b->req, b->p + b->used, b->size - b->used, name, &st, next);
	if (need > b->size - b->used)
		return false;
	b->used += need;
	return true;
}

/* A secret's file name: its ID itself unless the ID has a '/' to escape
 * (then *owned, malloc'ed; NULL: no memory).  A listing of a million
 * secrets makes no copy of each. */
static const char *secret_name(const char *id, char **owned)
{
	return strchr(id, '/') ? (*owned = id_to_name(id)) : id;
}

/* Offsets: 1 after ".", 2 after "..", ino + 3 after a node's entry: a
 * listing survives entries coming and going between calls. */
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dirbuf b = { .p = malloc(size), .size = size, .req = req };
	if (!b.p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int sc = scope_of_dir(ino);
	struct secret_version *versions = NULL;
	size_t nversions = 0;
	char *vid = NULL;

	rdlock(fs);
	struct node *dir = fs_node(fs, ino);
	if (!dir) {
		unlock(fs);
		free(b.p);
		fuse_reply_err(req, ENOENT);
		return;
	}
	uint64_t incarnation = 0;
	bool root_caller = fuse_req_ctx(req)->uid == 0;
	char **kept = NULL;
	size_t nkept = 0;
	if (dir->kind == NODE_DELETED && !root_caller) {
		unlock(fs);
		free(b.p);
		fuse_reply_err(req, EACCES);
		return;
	}
	bool deleted_dir = dir->kind == NODE_DELETED;
	if (dir->kind == NODE_VERSION_DIR) {
		struct node *s = dir->u.vdir.secret;
		vid = strdup(s->u.secret.meta.id);
		incarnation = s->u.secret.meta.incarnation;
	}
	unlock(fs);
	if (vid && fs->ops->list_versions && incarnation)
		fs->ops->list_versions(fs->store, vid, incarnation, &versions, &nversions);
	free(vid);
	if (deleted_dir)
		deleted_names(fs, &kept, &nkept);

	rdlock(fs);
	if (off < 1 && !dir_add(&b, ".", ino, S_IFDIR, 1))
		goto done;
	if (off < 2 && !dir_add(&b, "..", INO_ROOT, S_IFDIR, 2))
		goto done;
	if (dir->kind == NODE_VERSION_DIR) {
		for (size_t i = off >= 2 ? (size_t)off - 2 : 0; i < nversions; i++) {
			char name[24];
			snprintf(name, sizeof(name), "%" PRIu64, versions[i].version);
			if (!dir_add(&b, name, 0xffffffff, S_IFREG, (off_t)i + 3))
				goto done;
		}
		goto done;
	}
	if (deleted_dir) {
		for (size_t i = off >= 2 ? (size_t)off - 2 : 0; i < nkept; i++)
			if (!dir_add(&b, kept[i], 0xffffffff, S_IFREG, (off_t)i + 3))
				goto done;
		goto done;
	}
	for (fuse_ino_t i = off >= 2 ? (fuse_ino_t)off - 2 : 0; i < fs->next_ino; i++) {
		struct node *n = fs_node(fs, i);
		const char *name = NULL;
		char *owned = NULL;
		mode_t type = S_IFREG;
		if (!n)
			continue;
		if (ino == INO_ROOT) {
			if (n->kind == NODE_SCOPE) {
				name = scope_dir_name(n->ino - INO_SCOPE_FIRST);
				type = S_IFDIR;
			} else if (n->kind == NODE_VERSIONS) {
				name = VERSIONS_DIR_NAME;
				type = S_IFDIR;
			} else if (n->kind == NODE_DELETED && root_caller) {
				name = DELETED_DIR_NAME;
				type = S_IFDIR;
			}
		} else if (sc >= 0 && fs_node_in_scope(n, sc)) {
			if (n->kind == NODE_SECRET)
				name = secret_name(n->u.secret.meta.id, &owned);
			else
				name = n->u.scratch.name;
		} else if (ino == INO_VERSIONS && n->kind == NODE_SECRET && !n->dead &&
		           n->u.secret.meta.incarnation) {
			name = secret_name(n->u.secret.meta.id, &owned);
			type = S_IFDIR;
		}
		if (!name)
			continue;
		bool added = dir_add(&b, name, n->ino, type, (off_t)i + 3);
		free(owned);
		if (!added)
			break;
	}
done:
	unlock(fs);
	free(versions);
	for (size_t i = 0; i < nkept; i++)
		free(kept[i]);
	free(kept);
	fuse_reply_buf(req, b.p, b.used);
	free(b.p);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv = { .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255 };
	rdlock(fs);
	sv.f_files = fs->by_id_count;
	unlock(fs);
	fuse_reply_statfs(req, &sv);
}
