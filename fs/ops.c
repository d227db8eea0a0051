/* SPDX-License-Identifier: MIT */
/*
 * The FUSE operations (low-level API): metadata from the inode table,
 * values through handles, changes through the store.  See fs.h for the
 * locking rules and docs/design.md for what each operation means.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "ops_i.h"

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void rdlock(struct fs *fs) { pthread_rwlock_rdlock(&fs->lock); }
void wrlock(struct fs *fs) { pthread_rwlock_wrlock(&fs->lock); }
void unlock(struct fs *fs) { pthread_rwlock_unlock(&fs->lock); }

int scope_of_dir(fuse_ino_t ino)
{
	if (ino >= INO_SCOPE_FIRST && ino < INO_SCOPE_FIRST + SCOPE_COUNT)
		return (int)(ino - INO_SCOPE_FIRST);
	return -1;
}

void caller_of_req(fuse_req_t req, struct caller *ret)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	const struct fs *fs = fs_of(req);
	/* /proc is read only for what needs it: the audit line, the rules. */
	caller_init(ret, ctx->pid, ctx->uid, ctx->gid,
	            audit_enabled() || policy_has_rules(&fs->policy));
}

/* The owner a node shows: its own after chown, else the owner given to the
 * first of its scopes that has one (-o owner=), else the mount's. */
static void owner_of(struct fs *fs, const struct node *n, uid_t *uid, gid_t *gid)
{
	*uid = n->uid;
	*gid = n->gid;
	if (n->owner_set)
		return;
	scope_set scopes = 0;
	if (n->kind == NODE_SCOPE)
		scopes = 1u << (n->ino - INO_SCOPE_FIRST);
	else if (n->kind == NODE_SECRET)
		scopes = fs_secret_visible_scopes(n);
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		const struct scope_rule *r = &fs->policy.scope[sc];
		if ((scopes & (1u << sc)) && r->owner_set) {
			*uid = r->uid;
			*gid = r->gid;
			return;
		}
	}
}

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
}

const char *scope_names(scope_set set, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		if (!(set & (1u << sc)))
			continue;
		int w = snprintf(buf + used, size - used, "%s%s", used ? "," : "",
		                 scope_dir_name(sc));
		if (w < 0 || (size_t)w >= size - used)
			break;
		used += (size_t)w;
	}
	return buf;
}

/* Store errors as the caller sees them: refusals keep their errno, every
 * failure of the store itself is EIO (the old value stays). */
int user_errno(int r)
{
	switch (r) {
	case 0:
	case -EINVAL: case -EFBIG: case -EEXIST: case -ENOENT: case -EROFS:
	case -EACCES: case -EPERM: case -ENOMEM:
		return r;
	default:
		return -EIO;
	}
}

/* Changing a secret touches every scope it is in: the policy must admit
 * the caller to all of them (reading needs any one).  Logs a refusal. */
int admit_change(struct fs *fs, scope_set scopes, const struct caller *who,
                 const char *what, const char *name)
{
	int r = policy_check_all(&fs->policy, scopes, who);
	if (r < 0) {
		char where[128];
		log_warn("%s %s refused to uid %u pid %d (%s, unit %s): the policy of %s does not "
		         "admit it to all of them", what, name, (unsigned)who->uid, (int)who->pid,
		         who->exe, who->unit, scope_names(scopes, where, sizeof(where)));
	}
	return r;
}

/* --- attributes --- */

void fill_attr(struct fs *fs, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	owner_of(fs, n, &st->st_uid, &st->st_gid);
	st->st_blksize = 4096;
	int64_t mtime = n->ctime_ns, ctime = n->ctime_ns;
	switch (n->kind) {
	case NODE_ROOT:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2 + SCOPE_COUNT + 1;
		break;
	case NODE_SCOPE:
	case NODE_VERSIONS:
	case NODE_VERSION_DIR:
		st->st_mode = S_IFDIR | n->mode;
		st->st_nlink = 2;
		break;
	case NODE_SECRET: {
		const struct secret_meta *m = &n->u.secret.meta;
		st->st_mode = S_IFREG | n->mode;
		st->st_nlink = __builtin_popcount(fs_secret_visible_scopes(n));
		st->st_size = m->size;
		if (m->version) {
			mtime = m->mtime_ns;
			if (ctime < mtime)
				ctime = mtime;
		}
		break;
	}
	case NODE_SCRATCH:
		st->st_mode = S_IFREG | n->mode;
		st->st_nlink = n->u.scratch.unlinked ? 0 : 1;
		st->st_size = n->u.scratch.data.len;
		mtime = n->u.scratch.mtime_ns;
		break;
	case NODE_VERSION_FILE:
		st->st_mode = S_IFREG | (n->mode & 0444);
		st->st_nlink = 1;
		st->st_size = n->u.vfile.size;
		mtime = ctime = n->u.vfile.mtime_ns;
		break;
	case NODE_SECRET_VERSION: {
		/* The secret as it was at this version: its size and time stay
		 * fixed, so the page cache of this inode is always right. */
		const struct node *s = fs_node(fs, n->u.vfile.secret_ino);
		if (s)
			fill_attr(fs, s, st);
		st->st_ino = n->ino;
		st->st_size = n->u.vfile.size;
		mtime = ctime = n->u.vfile.mtime_ns;
		break;
	}
	}
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim = ts_of(mtime);
	st->st_atim = st->st_mtim;
	st->st_ctim = ts_of(ctime);
}

/* Replies with an entry for n and counts the kernel's new reference.
 * Takes fs->lock itself. */
void reply_entry(fuse_req_t req, struct fs *fs, fuse_ino_t ino)
{
	struct fuse_entry_param e = { .attr_timeout = ATTR_TIMEOUT };
	rdlock(fs);  /* many lookups at once: the count is atomic */
	struct node *n = fs_node(fs, ino);
	if (!n) {
		unlock(fs);
		fuse_reply_err(req, ENOENT);
		return;
	}
	__atomic_add_fetch(&n->nlookup, 1, __ATOMIC_RELAXED);
	e.ino = n->ino;
	e.entry_timeout = entry_timeout_of(n);
	fill_attr(fs, n, &e.attr);
	unlock(fs);
	if (fuse_reply_entry(req, &e) != 0) {
		/* The kernel did not take the reference. */
		wrlock(fs);
		n = fs_node(fs, ino);
		if (n && n->nlookup)
			n->nlookup--;
		unlock(fs);
	}
}

/* How long the kernel may keep a name's entry.  Scratch files and
 * secrets not stored yet get none: a rename onto a secret moves their
 * entry to the secret's name, and a pending name can vanish at close;
 * either way the kernel must look again rather than be told (telling it
 * means a notification that can block on a directory lock). */
double entry_timeout_of(const struct node *n)
{
	if (n->kind == NODE_SCRATCH)
		return 0;
	if (n->kind == NODE_SECRET && !n->u.secret.meta.version)
		return 0;
	return ENTRY_TIMEOUT;
}

/* The node a name in scope sc stands for; fs->lock held. */
struct node *scope_child(struct fs *fs, enum scope sc, const char *name)
{
	char *id = name_to_id(name);
	if (id) {
		struct node *n = fs_secret_by_id(fs, id);
		free(id);
		if (n && fs_node_in_scope(n, sc))
			return n;
	}
	return fs_scratch_find(fs, sc, name);
}

/* The secret ID a name stands for, or NULL for a scratch name: a name is a
 * secret when it matches the create rule, or names a secret the store
 * holds (older, looser IDs).  fs->lock held. */
char *name_secret_id(struct fs *fs, const char *name)
{
	char *id = name_to_id(name);
	if (!id)
		return NULL;
	if (secret_id_valid_new(id))
		return id;
	struct node *n = fs_secret_by_id(fs, id);
	if (n && n->u.secret.meta.version)
		return id;
	free(id);
	return NULL;
}

/* Is version kept?  Its size and time into *ret. */
static bool version_kept(struct fs *fs, const char *id, uint64_t version,
                         struct secret_version *ret)
{
	struct secret_version *v = NULL;
	size_t n = 0;
	bool kept = false;
	if (!fs->ops->list_versions || fs->ops->list_versions(fs->store, id, &v, &n) < 0)
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

bool name_too_long(const char *name)
{
	return strlen(name) > NAME_MAX_BYTES;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	fuse_ino_t found = 0;
	int sc = scope_of_dir(parent);

	if (name_too_long(name)) {
		fuse_reply_err(req, ENAMETOOLONG);
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
	} else if (sc >= 0) {
		struct node *n = scope_child(fs, sc, name);
		if (n && fs->opt.fast && n->kind == NODE_SECRET && n->u.secret.meta.version)
			n = fs_secret_version_node(fs, n);
		if (n)
			found = n->ino;
	} else if (parent == INO_VERSIONS) {
		char *id = name_to_id(name);
		struct node *s = id ? fs_secret_by_id(fs, id) : NULL;
		free(id);
		if (s && s->u.secret.meta.version) {
			if (!s->u.secret.vdir_ino) {
				struct node *d = fs_node_new(fs, NODE_VERSION_DIR);
				if (d) {
					d->mode = 0500;
					d->u.vdir.secret_ino = s->ino;
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
			struct node *s = fs_node(fs, d->u.vdir.secret_ino);
			char *id = s ? strdup(s->u.secret.meta.id) : NULL;
			unlock(fs);
			struct secret_version info;
			bool kept = id && *name >= '1' && *name <= '9' && !*end &&
			            version_kept(fs, id, version, &info);
			free(id);
			wrlock(fs);
			d = fs_node(fs, parent);
			if (kept && d) {
				struct node *f = fs_version_node(fs, &d->u.vdir.files, NODE_VERSION_FILE,
				                                 d->u.vdir.secret_ino, &info);
				if (f) {
					f->mode = 0400;
					found = f->ino;
				}
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

static void op_forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = fs_node(fs, ino);
	if (!n)
		return;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	if (n->nlookup)
		return;
	if (n->kind == NODE_SCRATCH && n->u.scratch.unlinked && n->u.scratch.open_count == 0)
		fs_node_free(fs, n);
	else if (n->kind == NODE_SECRET_VERSION)
		fs_secret_version_forget(fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	wrlock(fs);
	op_forget_one(fs, ino, nlookup);
	unlock(fs);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	wrlock(fs);
	for (size_t i = 0; i < count; i++)
		op_forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	unlock(fs);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	rdlock(fs);
	struct node *n = fs_node(fs, ino);
	if (!n || n->kind != NODE_SECRET_VERSION)  /* its own size and time */
		n = fs_node_resolve(fs, ino);
	if (n)
		fill_attr(fs, n, &st);
	unlock(fs);
	if (!n) {
		fuse_reply_err(req, ENOENT);
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

/* Offsets: 1 after ".", 2 after "..", ino + 3 after a node's entry: a
 * listing survives entries coming and going between calls. */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
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
	if (dir->kind == NODE_VERSION_DIR) {
		struct node *s = fs_node(fs, dir->u.vdir.secret_ino);
		vid = s ? strdup(s->u.secret.meta.id) : NULL;
	}
	unlock(fs);
	if (vid && fs->ops->list_versions)
		fs->ops->list_versions(fs->store, vid, &versions, &nversions);
	free(vid);

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
			}
		} else if (sc >= 0 && fs_node_in_scope(n, sc)) {
			if (n->kind == NODE_SECRET)
				name = owned = id_to_name(n->u.secret.meta.id);
			else
				name = n->u.scratch.name;
		} else if (ino == INO_VERSIONS && n->kind == NODE_SECRET &&
		           n->u.secret.meta.version) {
			name = owned = id_to_name(n->u.secret.meta.id);
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
	fuse_reply_buf(req, b.p, b.used);
	free(b.p);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv = { .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255 };
	rdlock(fs);
	sv.f_files = fs->by_id_count;
	unlock(fs);
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* O_TRUNC arrives with open, so "> f" never reads the old value.
	 * -o fast answers no open: truncation must come as a setattr. */
	if (fs->opt.fast)
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* The kernel's page cache must not keep or merge values. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void op_destroy(void *userdata)
{
	struct fs *fs = userdata;
	release_open_handles(fs);
	wrlock(fs);
	for (struct node *n = fs->scratch_head; n; n = n->next)
		if (n->u.scratch.data.len)
			log_warn("scratch file %s/%s dropped at unmount (%zu bytes, never stored: "
			         "the name is not a secret ID)",
			         scope_dir_name(n->u.scratch.scope), n->u.scratch.name,
			         n->u.scratch.data.len);
	unlock(fs);
}

const struct fuse_lowlevel_ops secretsfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.statfs = op_statfs,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.unlink = op_unlink,
	.rename = op_rename,
	.link = op_link,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.mknod = op_mknod,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
