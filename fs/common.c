/* SPDX-License-Identifier: MIT */
/*
 * What the operations share: the request's fs and caller, lock wrappers,
 * attributes and entries as replied, names to nodes, the policy check of a
 * change, errnos as users see them.  Below every ops_*.c file; calls
 * nothing of theirs.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"

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

void rdlock(struct fs *fs)
{
	pthread_rwlock_rdlock(&fs->lock);
}
void wrlock(struct fs *fs)
{
	pthread_rwlock_wrlock(&fs->lock);
}
void unlock(struct fs *fs)
{
	pthread_rwlock_unlock(&fs->lock);
}

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

/* The scopes whose owner (-o owner=) a node takes. */
static scope_set owning_scopes(const struct node *n)
{
	if (n->owner_set)
		return 0; /* chown'ed: its own */
	if (n->kind == NODE_SCOPE)
		return 1u << (n->ino - INO_SCOPE_FIRST);
	if (n->kind == NODE_SECRET)
		return fs_secret_visible_scopes(n);
	return 0;
}

/* The owner a node shows: its own after chown, else the owner given to the
 * first of its scopes that has one (-o owner=), else the mount's. */
static void owner_of(struct fs *fs, const struct node *n, uid_t *uid, gid_t *gid)
{
	*uid = n->uid;
	*gid = n->gid;
	scope_set scopes = owning_scopes(n);
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		const struct scope_rule *r = &fs->policy.scope[sc];
		if ((scopes & (1u << sc)) && r->owner_set) {
			*uid = r->uid;
			*gid = r->gid;
			return;
		}
	}
}

enum {
	ACL_USER_OBJ = 0x01,
	ACL_USER = 0x02,
	ACL_GROUP_OBJ = 0x04,
	ACL_GROUP = 0x08,
	ACL_MASK = 0x10,
	ACL_OTHER = 0x20,
};
#define ACL_NO_ID UINT32_MAX /* the entries that name no one */

/* Adds a named entry, kept sorted by id without duplicates (the kernel
 * refuses anything else); the owner's own id is left out. */
static void acl_add(struct acl *acl, uint16_t tag, uint32_t id, uint32_t owner, uint16_t perm)
{
	if (id == owner || perm == 0)
		return;
	size_t i = 0;
	while (i < acl->n && (acl->e[i].tag < tag || (acl->e[i].tag == tag && acl->e[i].id < id)))
		i++;
	if (i < acl->n && acl->e[i].tag == tag && acl->e[i].id == id)
		return;
	memmove(&acl->e[i + 1], &acl->e[i], (acl->n - i) * sizeof(acl->e[0]));
	acl->e[i] = (struct acl_entry){ tag, perm, id };
	acl->n++;
}

/*
 * A secret in scopes of different owners (-o owner=ai_gateway:A,
 * owner=mcp_server:B, then ln) is owned by the first, and each other
 * scope's owner gets the same rights by a named ACL entry (user:B:rw-, and
 * group:G with the group bits), so that every scope's owner reads its own
 * scope's file -- and only through that scope, whose directory keeps the
 * others out.  The kernel checks it under default_permissions; getfacl
 * shows it.  false: no ACL (one owner, chown'ed, or no kernel checks).
 */
bool fill_acl(struct fs *fs, const struct node *n, struct acl *acl)
{
	if (!fs->acl || n->kind != NODE_SECRET)
		return false;
	uid_t uid;
	gid_t gid;
	owner_of(fs, n, &uid, &gid);
	uint16_t user = (n->mode >> 6) & 7, group = (n->mode >> 3) & 7, mask = group;
	struct acl named = { 0 };
	scope_set scopes = owning_scopes(n);
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		const struct scope_rule *r = &fs->policy.scope[sc];
		if (!(scopes & (1u << sc)))
			continue;
		acl_add(&named, ACL_USER, r->owner_set ? r->uid : fs->opt.uid, uid, user);
		acl_add(&named, ACL_GROUP, r->owner_set ? r->gid : fs->opt.gid, gid, group);
	}
	if (named.n == 0)
		return false;
	acl->n = 0;
	acl->e[acl->n++] = (struct acl_entry){ ACL_USER_OBJ, user, ACL_NO_ID };
	for (size_t i = 0; i < named.n; i++) {
		if (named.e[i].tag == ACL_GROUP && acl->e[acl->n - 1].tag != ACL_GROUP)
			acl->e[acl->n++] = (struct acl_entry){ ACL_GROUP_OBJ, group, ACL_NO_ID };
		acl->e[acl->n++] = named.e[i];
		mask |= named.e[i].perm;
	}
	if (acl->e[acl->n - 1].tag != ACL_GROUP)
		acl->e[acl->n++] = (struct acl_entry){ ACL_GROUP_OBJ, group, ACL_NO_ID };
	acl->e[acl->n++] = (struct acl_entry){ ACL_MASK, mask, ACL_NO_ID };
	acl->e[acl->n++] = (struct acl_entry){ ACL_OTHER, n->mode & 7, ACL_NO_ID };
	return true;
}

/* The xattr form (little-endian: version 2, then tag, perm, id per entry)
 * into buf (4 + 8 * ACL_ENTRIES_MAX bytes); returns its length. */
size_t acl_to_xattr(const struct acl *acl, uint8_t *buf)
{
	uint8_t *p = buf;
	uint32_t version = htole32(2);
	memcpy(p, &version, 4);
	p += 4;
	for (size_t i = 0; i < acl->n; i++) {
		uint16_t tag = htole16(acl->e[i].tag), perm = htole16(acl->e[i].perm);
		uint32_t id = htole32(acl->e[i].id);
		memcpy(p, &tag, 2);
		memcpy(p + 2, &perm, 2);
		memcpy(p + 4, &id, 4);
		p += 8;
	}
	return (size_t)(p - buf);
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
	case -EINVAL:
	case -EFBIG:
	case -EEXIST:
	case -ENOENT:
	case -EROFS:
	case -EACCES:
	case -EPERM:
	case -ENOMEM:
	case -ESTALE:
		return r;
	default:
		return -EIO;
	}
}

/* Changing a secret touches every scope it is in: the policy must admit
 * the caller to all of them (reading needs any one).  Logs a refusal. */
int admit_change(struct fs *fs, scope_set scopes, const struct caller *who, const char *what,
                 const char *name)
{
	int r = policy_check_all(&fs->policy, scopes, who);
	if (r < 0) {
		char where[128], ename[AUDIT_CAP_ID + 1], exe[AUDIT_CAP_EXE + 64],
		    unit[AUDIT_CAP_UNIT + 1];
		audit_escape(ename, sizeof(ename), name, AUDIT_CAP_ID);
		audit_escape(unit, sizeof(unit), who->unit, AUDIT_CAP_UNIT);
		log_warn("%s %s refused to uid %u pid %d (%s, unit %s): the policy of %s does not "
		         "admit it to all of them",
		         what, ename, (unsigned)who->uid, (int)who->pid,
		         audit_exe(who, exe, sizeof(exe)), unit,
		         scope_names(scopes, where, sizeof(where)));
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
	case NODE_DELETED:
		st->st_mode = S_IFDIR | n->mode;
		st->st_nlink = 2;
		break;
	case NODE_SECRET: {
		const struct secret_meta *m = &n->u.secret.meta;
		struct acl acl;
		st->st_mode = S_IFREG | n->mode;
		/* A store whose values cannot be read back: no read bits
		 * (--w-------), whatever chmod said; size 0 (the store's) */
		if (fs->ops->caps & STORE_CAP_WRITE_ONLY_VALUES)
			st->st_mode &= ~(mode_t)0444;
		/* With an ACL the group bits are its mask (POSIX), and the
		 * kernel reads the ACL only when they are not 0. */
		if (fill_acl(fs, n, &acl))
			st->st_mode = (st->st_mode & ~(mode_t)S_IRWXG) |
			              ((mode_t)acl.e[acl.n - 2].perm << 3);
		st->st_nlink = __builtin_popcount(fs_secret_visible_scopes(n));
		st->st_size = m->size;
		if (m->incarnation) {
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
	case NODE_DELETED_FILE: {
		/* a deleted secret's: its value at deletion, the time the
		 * deletion's */
		bool del = n->kind == NODE_DELETED_FILE;
		st->st_mode = S_IFREG | (n->mode & 0444);
		st->st_nlink = 1;
		st->st_size = del ? n->u.deleted.size : n->u.vfile.size;
		mtime = ctime = del ? n->u.deleted.deleted_ns : n->u.vfile.mtime_ns;
		break;
	}
	case NODE_SECRET_VERSION: {
		/* The secret as it was at this version: its size and time stay
		 * fixed, so the page cache of this inode is always right. */
		fill_attr(fs, n->u.vfile.secret, st);
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
	rdlock(fs); /* many lookups at once: the count is atomic */
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
		if (n && n->nlookup) {
			n->nlookup--;
			fs_node_release(fs, n);
		}
		unlock(fs);
	}
}

/* How long the kernel may keep a name's entry.  Scratch files and
 * secrets not stored yet get none: a rename onto a secret moves their
 * entry to the secret's name, and a pending name can vanish at close;
 * either way the kernel must look again rather than be told (telling it
 * means a notification that can block on a directory lock).
 *
 * Nor does a secret whose scopes or value changed in the last SETTLE_NS.
 * The kernel keeps its own count of an inode's links: it drops one at an
 * unlink and at a rename onto the name (a rotation, where we keep the
 * inode), and takes ours from a lookup only when nothing else touched the
 * inode while the lookup was in flight.  A lost correction, then an
 * unlink, leaves a live secret at 0 links in the kernel, and link(2)
 * refuses it with ENOENT before asking us (the crash trials' ln ENOENT).
 * A name with no entry timeout is looked up at every path walk, so ln
 * walks its source afresh and the count it checks is ours. */
double entry_timeout_of(const struct node *n)
{
	/* a kept deleted secret's name: purged or restored at any time;
	 * /.deleted: looked up by each caller (only root finds it) */
	if (n->kind == NODE_SCRATCH || n->kind == NODE_DELETED_FILE || n->kind == NODE_DELETED)
		return 0;
	if (n->kind == NODE_SECRET &&
	    (!n->u.secret.meta.incarnation || now_ns() < n->u.secret.settle_ns))
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
	if (n && n->u.secret.meta.incarnation)
		return id;
	free(id);
	return NULL;
}

bool store_gone(int r)
{
	return r == -ESTALE || r == -ENOENT;
}

const char *audit_name(const struct node *n, char *buf, size_t size)
{
	if (n->kind == NODE_SCRATCH) {
		snprintf(buf, size, "%s/%s", scope_dir_name(n->u.scratch.scope), n->u.scratch.name);
		return buf;
	}
	if (n->kind == NODE_SECRET)
		return n->u.secret.meta.id;
	if (n->kind == NODE_DELETED_FILE)
		return n->u.deleted.id;
	return "-";
}

bool name_too_long(const char *name)
{
	return strlen(name) > NAME_MAX_BYTES;
}

/* Once per mount: values are stored byte for byte, and `echo v > X` adds
 * a newline many programs then send as part of an API key. */
void warn_trailing_newline(const char *id, const void *value, size_t len)
{
	static atomic_bool warned;
	if (len == 0 || ((const char *)value)[len - 1] != '\n' || atomic_exchange(&warned, true))
		return;
	log_warn("%s: the value ends in a newline and is stored so, byte for byte; API keys "
	         "rarely end in one (printf '%%s' KEY > FILE writes none; echo adds one); this "
	         "is said once per mount",
	         id);
}

void log_id_elsewhere(const struct fs *fs, const char *what, enum scope sc,
                      const struct secret_meta *m)
{
	char where[128];
	char *name = id_to_name(m->id);
	const char *nm = name ? name : m->id;
	/* the mountpoint as given: a relative one reads as a placeholder */
	const char *mnt = fs->opt.mountpoint && fs->opt.mountpoint[0] == '/' ? fs->opt.mountpoint
	                                                                     : "<mountpoint>";
	log_warn("%s/%s: %s refused (EEXIST): secret %s already lives in %s, and an ID is one "
	         "secret in every scope; to add %s to it run: ln %s/%s/%s %s/%s/%s (then write "
	         "the value if it differs)",
	         scope_dir_name(sc), nm, what, m->id, scope_names(m->scopes, where, sizeof(where)),
	         scope_dir_name(sc), mnt, scope_dir_name(__builtin_ctz(m->scopes)), nm, mnt,
	         scope_dir_name(sc), nm);
	free(name);
}
