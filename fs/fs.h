/* SPDX-License-Identifier: MIT */
/*
 * The filesystem's shared state: the inode table that mirrors the store's
 * metadata, scratch files, open handles.
 *
 * Locking (see also docs/design.md):
 *  - fs->lock (rwlock) guards the inode table, the ID index and every field
 *    of every node, including scratch data.  Metadata operations (lookup,
 *    getattr, readdir, getxattr) take it for reading and never call the
 *    store, so a slow store cannot stall them.
 *  - fs->ns_lock (mutex) serialises operations that change the namespace
 *    in the store (create, unlink, link, rename, label changes, first
 *    commit of a new secret).  It is held across the store call; fs->lock
 *    is never held across a store call.
 *  - struct handle has its own mutex for its buffers.
 *  Order: ns_lock, then fs->lock, then a handle's lock.
 */
#ifndef SECRETSFS_FS_H
#define SECRETSFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"
#include "lockedbuf.h"
#include "log.h"
#include "policy.h"
#include "audit.h"

/* Fixed inode numbers; secrets and scratch files start at INO_FIRST_FREE. */
enum {
	INO_ROOT = FUSE_ROOT_ID,               /* 1 */
	INO_SCOPE_FIRST = 2,                   /* 2..6, one per enum scope */
	INO_VERSIONS = INO_SCOPE_FIRST + SCOPE_COUNT,
	INO_FIRST_FREE = 16,
};

#define VERSIONS_DIR_NAME ".versions"
/* How long after an unlink a create of the same name restores the secret's
 * labels and scopes (install(1) unlinks, then creates). */
#define TOMBSTONE_NS (30LL * 1000000000LL)

enum node_kind {
	NODE_ROOT,
	NODE_SCOPE,        /* a scope directory */
	NODE_VERSIONS,     /* /.versions */
	NODE_SECRET,       /* a secret (in the store, pending or deleted) */
	NODE_SCRATCH,      /* a file whose name is not a secret ID */
	NODE_VERSION_DIR,  /* /.versions/ID */
	NODE_VERSION_FILE, /* /.versions/ID/N */
	NODE_SECRET_VERSION, /* -o fast: a secret's version as an inode of its own */
};

struct node;

struct secret_node {
	/* Copy of the store's metadata.  meta.version == 0: not in the store:
	 * either pending (pending_scopes != 0: created, no value committed
	 * yet) or deleted. */
	struct secret_meta meta;
	scope_set pending_scopes;
	unsigned pending_opens;     /* open handles of a pending secret */
	/* Tombstone: what an unlink took away, so that a create of the same
	 * name soon after (install, some editors) restores it. */
	scope_set tomb_scopes;      /* scopes before the unlink */
	scope_set tomb_unlinked;    /* scopes unlinked */
	int64_t tomb_time_ns;
	struct labels tomb_labels;
	fuse_ino_t vdir_ino;        /* its /.versions/ID directory, 0 if none yet */
	struct node *versions;      /* -o fast: its NODE_SECRET_VERSION inodes */
};

struct scratch_node {
	enum scope scope;
	char *name;
	struct lockedbuf data;
	struct labels labels;       /* user.tag.* set on the scratch file */
	int64_t mtime_ns;
	bool unlinked;
	unsigned open_count;
};

struct node {
	fuse_ino_t ino;
	enum node_kind kind;
	uint64_t nlookup;           /* kernel's references; atomic increments
	                               under fs->lock read, the rest under write */
	mode_t mode;                /* permission bits, this host's view */
	uid_t uid;
	gid_t gid;
	int64_t ctime_ns;           /* last chmod/chown/link count change */
	bool owner_set;             /* chown'ed: uid/gid override the scope's owner */
	bool mode_set;              /* chmod'ed (both kept in hostattrs.c's file) */
	/* After a rename onto a secret's name the kernel keeps the renamed
	 * inode under that name until it looks the name up again: this node
	 * then stands for the secret 'became' (see fs_node_resolve). */
	fuse_ino_t became;
	struct node *next;          /* sibling list: live scratch files, or a
	                               version directory's files */
	union {
		struct secret_node secret;
		struct scratch_node scratch;
		/* NODE_VERSION_FILE and NODE_SECRET_VERSION; size and time
		 * are known for versions that were current when looked up. */
		struct {
			fuse_ino_t secret_ino;
			uint64_t version;
			uint32_t size;
			int64_t mtime_ns;
		} vfile;
		struct { fuse_ino_t secret_ino; struct node *files; } vdir;
	} u;
};

struct fs_options {
	char *store_dir;
	char *mountpoint;
	char *key_file;
	char *attrs_file;   /* this host's chmod/chown (hostattrs.h) */
	unsigned keep_versions;
	bool read_only;
	bool foreground;
	bool debug;
	bool allow_other;
	bool fast;          /* -o fast: zero-message open, page cache, an inode per version */
	mode_t dir_mode, file_mode;
	uid_t uid;
	gid_t gid;
};

struct fs {
	const struct store_ops *ops;
	struct store *store;
	struct fs_options opt;
	struct policy policy;       /* read-only once mounted */
	struct fuse_session *se;

	pthread_rwlock_t lock;
	pthread_mutex_t ns_lock;

	/* The inode table: nodes[ino] (NULL where free).  fs->lock. */
	struct node **nodes;
	size_t nodes_cap;
	fuse_ino_t next_ino;        /* fs->lock */

	/* ID -> secret node (open addressing, linear probing).  fs->lock. */
	struct node **by_id;
	size_t by_id_cap, by_id_count;

	/* Open files (ops_file.c), so unmount can release what the kernel
	 * did not.  Guarded by handles_lock. */
	struct handle *handles;
	pthread_mutex_t handles_lock;

	/* Linked (not unlinked) scratch files.  fs->lock. */
	struct node *scratch_head;

	struct notifier *notifier;
};

/* nodes.c: the inode table.  Callers hold fs->lock (write for changes). */
int fs_nodes_init(struct fs *fs);
void fs_nodes_free(struct fs *fs);
struct node *fs_node(struct fs *fs, fuse_ino_t ino);     /* NULL if none */
struct node *fs_node_resolve(struct fs *fs, fuse_ino_t ino); /* follows 'became' */
struct node *fs_node_new(struct fs *fs, enum node_kind kind);
void fs_node_free(struct fs *fs, struct node *n);
struct node *fs_secret_by_id(struct fs *fs, const char *id);
struct node *fs_secret_add(struct fs *fs, const struct secret_meta *meta);  /* meta copied */
struct node *fs_secret_get_or_add(struct fs *fs, const char *id);
struct node *fs_scratch_find(struct fs *fs, enum scope sc, const char *name);
void fs_scratch_link(struct fs *fs, struct node *n);
void fs_scratch_unlink(struct fs *fs, struct node *n);
struct node *fs_scope_node_new(struct fs *fs, enum scope sc);
scope_set fs_secret_visible_scopes(const struct node *n);
bool fs_node_in_scope(const struct node *n, enum scope sc);
/* Replace the cached metadata of a secret by what the store returned. */
int fs_secret_update_meta(struct fs *fs, struct node *n, const struct secret_meta *meta);
void fs_secret_mark_deleted(struct node *n);
/* The inode of one version of a secret, found in or added to list: the
 * files of /.versions/ID (NODE_VERSION_FILE), or a secret's own versions
 * under -o fast (NODE_SECRET_VERSION). */
struct node *fs_version_node(struct fs *fs, struct node **list, enum node_kind kind,
                             fuse_ino_t secret_ino, const struct secret_version *version);
/* -o fast: the inode of a secret's current version; and dropping one the
 * kernel forgot (kept while it is the current one). */
struct node *fs_secret_version_node(struct fs *fs, struct node *secret);
void fs_secret_version_forget(struct fs *fs, struct node *v);

/* names.c: the rule that separates secret names from scratch names. */
/* Decodes a file name to a secret ID ("%2F" -> "/"); NULL if the name
 * cannot be an ID (then it is a scratch name unless... see names.c). */
char *name_to_id(const char *name);
char *id_to_name(const char *id);

/* notify.c: kernel cache invalidations, sent from a thread of their own
 * (never from inside a request). */
struct notifier *notifier_start(struct fuse_session *se);
void notifier_stop(struct notifier *nt);
void notifier_inval_entry(struct notifier *nt, fuse_ino_t parent, const char *name);
void notifier_inval_inode(struct notifier *nt, fuse_ino_t ino);

/* sdnotify.c: Type=notify under systemd. */
int sd_notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sd_notify_ready_when_mounted(struct fs *fs);

/* ops.c */
extern const struct fuse_lowlevel_ops secretsfs_ops;
int64_t now_ns(void);

#endif
