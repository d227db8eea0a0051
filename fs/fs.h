/* SPDX-License-Identifier: MIT */
/*
 * The filesystem's shared state: the inode table that mirrors the store's
 * metadata, scratch files, open handles.
 *
 * Identity: a secret node stands for one incarnation of a secret (store.h)
 * and its inode number for nothing else, ever.  When the incarnation is
 * deleted the node is dead: it leaves the ID index, answers ESTALE to
 * anything addressed to its inode (so the kernel looks the name up again)
 * and is freed once the kernel forgot it and no handle or operation holds
 * it.  A re-created ID gets a new node and a new inode number.  A secret
 * created through the mount is pending (incarnation 0) until its first
 * value is stored, and belongs to the scope it is created in; the
 * incarnation its own first commit stores takes the pending node over.
 * Any other creation of the ID (a rename onto the name, another host)
 * gets a node of its own, and the pending one dies.
 *
 * Changes: the table changes in one place, fs_apply(), from change
 * records (store.h) in revision order; the daemon's own store calls
 * return them, and other clients' changes arrive the same way from the
 * store's watch thread (fs_apply_remote), which takes the secret's change
 * set like any operation.
 *
 * Locking, in the order they are taken:
 *  1. struct handle's mutex, for its buffers (ops_file.c);
 *  2. change sets (fs_change_begin/end): a change to a secret or scratch
 *     file holds its node, and a rename both ends, from its checks to the
 *     store's answer being applied; one operation takes its whole set at
 *     once, so sets cannot deadlock.  Store calls are made holding only
 *     these: a slow store stalls only the operations on the same secret;
 *  3. fs->lock (rwlock): the inode table, the ID index, every field of
 *     every node (scratch data too).  Never held across a store call.
 *     Metadata operations (lookup, getattr, readdir, getxattr) take only
 *     this one, for reading, and never wait on the store;
 *  4. leaves: fs->change_mutex (the sets' busy bits), a bucket of
 *     fs->handles (two only to move a handle between them: the lower
 *     index first),
 *     the notifier's queue, the credential socket's queue of rotated
 *     secrets (credsock_value_changed, called from fs_apply), the
 *     mirror's lock (mirror_kick from fs_apply, mirror_status from
 *     getxattr; backend/mirror.h), handover.c's state_lock (the restart
 *     state's writes, under fs->lock: a new block, a secret born, a
 *     whole write);
 *  5. leaves taken with none of the above held: handle_adopt's
 *     adopt_lock (ops_file.c), and under it the caller's task slot
 *     (caller.c, held across the requester's /proc reads), then after it
 *     the cgroup cache's lock.
 * The credential socket's thread (credsock.c) takes none of them: it
 * calls the store directly and reads only the read-only policy.
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
	INO_ROOT = FUSE_ROOT_ID, /* 1 */
	INO_SCOPE_FIRST = 2,     /* 2..6, one per enum scope */
	INO_VERSIONS = INO_SCOPE_FIRST + SCOPE_COUNT,
	INO_DELETED, /* /.deleted (deleted.c) */
	INO_FIRST_FREE = 16,
};

#define VERSIONS_DIR_NAME ".versions"
#define DELETED_DIR_NAME ".deleted"
/* -o keep_deleted's default: a week */
#define KEEP_DELETED_DEFAULT_NS (7LL * 24 * 3600 * 1000000000LL)
/* How long after an unlink a create of the same name restores the secret's
 * labels and scopes (install(1) unlinks, then creates). */
#define TOMBSTONE_NS (30LL * 1000000000LL)
/* Buckets of fs->handles (open files by token). */
#define HANDLE_BUCKETS 64
/* How long a secret's names get no entry timeout after its scopes or value
 * changed (struct secret_node.settle_ns): twice the entry timeout. */
#define SETTLE_NS (2LL * 1000000000LL)

enum node_kind {
	NODE_ROOT,
	NODE_SCOPE,          /* a scope directory */
	NODE_VERSIONS,       /* /.versions */
	NODE_SECRET,         /* one incarnation of a secret, or a pending one */
	NODE_SCRATCH,        /* a file whose name is not a secret ID */
	NODE_VERSION_DIR,    /* /.versions/ID */
	NODE_VERSION_FILE,   /* /.versions/ID/N */
	NODE_SECRET_VERSION, /* -o fast: a secret's version as an inode of its own */
	NODE_DELETED,        /* /.deleted */
	NODE_DELETED_FILE,   /* /.deleted/ID: a deleted secret kept for undo */
};

struct node;

struct secret_node {
	/* Copy of the store's metadata.  meta.incarnation == 0: pending
	 * (created here, no value stored yet), in pending_scopes.  meta.id
	 * lies in the node's own allocation (nodes.c); a stored secret's
	 * meta.labels are a shared, read-only label set (labels_interned:
	 * change them only through the store), a pending one's its own. */
	struct secret_meta meta;
	fuse_ino_t vdir_ino;   /* its /.versions/ID directory, 0 if none yet */
	struct node *versions; /* -o fast: its NODE_SECRET_VERSION inodes */
	/* Until then its names get no entry timeout: after a change of its
	 * scopes or value the kernel's own count of its links may be off
	 * (see entry_timeout_of), and only a lookup sets it right. */
	int64_t settle_ns;
	scope_set pending_scopes;
	/* Made by mknod(2) (tar --xattrs makes a file, sets its xattrs, then
	 * opens it): a pending node the kernel knows stays until its first
	 * open is released, not only while something holds it open. */
	bool mknod_hold;
	bool labels_interned; /* meta.labels belong to fs->label_sets */
};

struct scratch_node {
	enum scope scope;
	char *name;
	struct lockedbuf data;
	struct labels labels; /* user.tag.* set on the scratch file */
	int64_t mtime_ns;
	bool unlinked;
	char *stored_as; /* renamed onto this secret: writes through
	                               descriptors still open fail */
	int refused;     /* -EFBIG: a write was refused, so the bytes
	                               are no whole value (until truncated) */
};

/* Fields ordered so that no padding is left: there is one per secret. */
struct node {
	fuse_ino_t ino;
	/* Counts that keep a node: the kernel's references, open handles,
	 * operations and version inodes that hold it.  Atomic increments
	 * under fs->lock read, the rest under write (fs_node_release). */
	uint64_t nlookup;
	int64_t ctime_ns;  /* last chmod/chown/link count change */
	struct node *next; /* sibling list: live scratch files, a
	                               version directory's files, or a
	                               secret's version inodes */
	unsigned open_count;
	unsigned pins;
	enum node_kind kind;
	mode_t mode; /* permission bits, this host's view */
	uid_t uid;
	gid_t gid;
	bool dead;      /* secret: its incarnation is gone */
	bool busy;      /* in a change set (fs->change_mutex) */
	bool owner_set; /* chown'ed: uid/gid override the scope's owner */
	bool mode_set;  /* chmod'ed (both kept in hostattrs.c's file) */
	union {
		struct secret_node secret;
		struct scratch_node scratch;
		/* NODE_VERSION_FILE and NODE_SECRET_VERSION: one version of
		 * the secret node they pin. */
		struct {
			struct node *secret;
			uint64_t version;
			uint32_t size;
			int64_t mtime_ns;
		} vfile;
		struct {
			struct node *secret;
			struct node *files;
		} vdir;
		/* NODE_DELETED_FILE: one deleted incarnation, as the store
		 * last listed it; dead once purged or restored. */
		struct {
			char *id;
			uint64_t incarnation;
			uint32_t size;
			int64_t deleted_ns;
		} deleted;
	} u;
};

/* What an unlink took away, so that a create of the same name soon after
 * (install, some editors) restores it. */
struct tombstone {
	struct tombstone *next;
	char *id;
	scope_set scopes;   /* scopes right before the last unlink */
	scope_set unlinked; /* scopes unlinked */
	struct labels labels;
	int64_t time_ns;
};

struct fs_options {
	char *store_dir;
	char *mountpoint;
	char *key_file;
	char *attrs_file; /* this host's chmod/chown (hostattrs.h); NULL: not
	                     kept (a Redpanda Cloud mount without -o attrs=) */
	char *cache_file; /* etcd: the sealed cache (store_config.cache_file) */
	/* remote stores: -o credentials=, token_url=, audience=, cacert=,
	 * poll= (-1: the store's default); etcd+https and etcd auth:
	 * cacert=, cert=, certkey=, etcd_user=, etcd_password= (store_config.remote) */
	char *credentials, *token_url, *audience, *cacert;
	char *cluster, *controlplane; /* -o cluster=ID: the data plane URL looked up */
	int poll_s;
	char *cert, *certkey, *etcd_user, *etcd_password_file;
	unsigned keep_versions;
	int64_t keep_deleted_ns; /* -o keep_deleted; 0: deleted secrets purged at once */
	int64_t stale_ns;        /* -o stale= (store_config.stale_ns) */
	bool read_only;
	bool reseal_digest; /* -o reseal_digest: accept the store's rows as they are */
	bool foreground;
	bool debug;
	bool allow_other;
	bool default_permissions; /* the kernel checks modes (on with allow_other) */
	bool allow_unlocked;      /* serve with swappable plaintext if memory cannot be locked */
	char *run_as;             /* serve as this user; the mounting process keeps the mount */
	uid_t run_uid;
	gid_t run_gid;
	char *run_mountpoint; /* run_as: the mountpoint's absolute path */
	bool fast;            /* -o fast: zero-message open, page cache, an inode per version */
	bool nonempty;        /* -o nonempty: mount over a directory that holds files */
	char *credsocket;     /* -o credsocket=PATH: systemd credentials per unit (credsock.h) */
	char *mirror;         /* -o mirror=redpanda:https://…: changes also go there (mirror.h) */
	bool takeover;        /* -o takeover: the running daemon's connection (handover.c) */
	mode_t dir_mode, file_mode;
	uid_t uid;
	gid_t gid;
};

struct fs {
	const struct store_ops *ops;
	struct store *store;
	struct fs_options opt;
	bool acl;             /* the kernel checks the POSIX ACLs fill_acl() makes */
	struct policy policy; /* read-only once mounted */
	struct fuse_session *se;

	pthread_rwlock_t lock;
	pthread_mutex_t change_mutex; /* guards every node's busy bit */
	pthread_cond_t change_done;   /* a busy bit was cleared */

	/* The inode table: nodes[ino] (NULL where free).  fs->lock. */
	struct node **nodes;
	size_t nodes_cap;
	fuse_ino_t next_ino; /* fs->lock */
	/* Numbers below this may be known to the kernel after a restart
	 * (handover.c hands them out in blocks).  fs->lock. */
	fuse_ino_t ino_reserved;

	/* ID -> secret node (open addressing, linear probing).  fs->lock. */
	struct node **by_id;
	size_t by_id_cap, by_id_count;
	/* The stored secrets' label sets, each kept once however many
	 * secrets carry it (AI Gateway's keys share a few: managed-by,
	 * provider, team), counted (nodes.c).  fs->lock. */
	struct label_set **label_sets;
	size_t label_sets_cap, label_sets_count;
	struct label_set *label_set_last; /* the one labels_intern found last */

	/* Open files by fh (ops_file.c: every read and release finds its
	 * handle here; unmount releases what the kernel did not), in buckets
	 * by the token's low 32 bits, which a snapshot fh keeps: requests on
	 * different files meet on no common lock, and a lookup does not walk
	 * every open file.  Each bucket under its own lock. */
	struct handle_bucket {
		pthread_mutex_t lock;
		struct handle *first;
	} handles[HANDLE_BUCKETS];

	/* Linked (not unlinked) scratch files.  fs->lock. */
	struct node *scratch_head;
	/* Recent unlinks (TOMBSTONE_NS).  fs->lock. */
	struct tombstone *tombs;
	/* /.deleted's files the kernel knows (sibling list).  fs->lock. */
	struct node *deleted_files;
	/* deleted.c's purger: purges what was kept longer than keep_deleted. */
	struct purger *purger;

	struct notifier *notifier;
	struct echo *echo;         /* a store with a watch, not under run_as */
	struct credsock *credsock; /* -o credsocket, or NULL.  fs->lock */
	struct mirror *mirror;     /* -o mirror, or NULL.  fs->lock */

	/* The mount is going: changes from other clients are no longer
	 * applied (fs->lock). */
	bool remote_off;

	/* A node with this host's chmod/chown died: host-attrs is to be
	 * rewritten (hostattrs_save_if_dirty, with no lock held). */
	bool attrs_dirty;
};

/* nodes.c: the inode table.  Callers hold fs->lock (write for changes). */
int fs_nodes_init(struct fs *fs);
void fs_nodes_free(struct fs *fs);
struct node *fs_node(struct fs *fs, fuse_ino_t ino); /* NULL if none */
/* The node an inode stands for: a -o fast version's secret, else itself. */
struct node *fs_node_target(struct fs *fs, fuse_ino_t ino);
/* Does n still stand for what its inode was given for?  A dead secret or
 * an unlinked scratch file does not (ESTALE). */
bool fs_node_live(const struct node *n);
struct node *fs_node_new(struct fs *fs, enum node_kind kind);
struct node *fs_scope_node_new(struct fs *fs, enum scope sc);
/* At start, after the store is listed: every secret node gets the number
 * want returns for it (and its lookup count in *nlookup), or 0 for a new
 * one; new numbers start at next or later.  Returns how many got the
 * number they wanted. */
size_t fs_secrets_renumber(struct fs *fs, fuse_ino_t (*want)(const struct node *, void *nlookup),
                           fuse_ino_t next);
/* Holding a node without fs->lock: pin under the lock (read is enough),
 * release under the write lock; the last count frees a node nothing
 * stands for any more. */
void fs_node_pin(struct node *n);
void fs_node_unpin(struct fs *fs, struct node *n);
void fs_node_release(struct fs *fs, struct node *n);
/* The live or pending secret node of an ID, NULL if none. */
struct node *fs_secret_by_id(struct fs *fs, const char *id);
/* A new pending secret node for id (which has none); NULL: -ENOMEM. */
struct node *fs_secret_pending(struct fs *fs, const char *id);
/* The one way in for changes: applies a change record (store.h) and
 * returns the node now standing for its ID (NULL after a deletion, or
 * out of memory).  Records older than what the table holds are ignored. */
struct node *fs_apply(struct fs *fs, const struct store_change *c);
struct node *fs_apply_meta(struct fs *fs, const struct secret_meta *meta);
/* The same for the record of pending node own's first commit, which own
 * becomes (every other record about a pending name makes a node of its
 * own). */
struct node *fs_apply_for(struct fs *fs, const struct store_change *c, struct node *own);
/* A change made by another client, announced by the store from a thread
 * of its own (a watch, a poll; hold none of fs/'s locks to call it):
 * applied with fs_apply() once no change of this host's to the secret is
 * in flight (it takes the secret's change set), the kernel's caches of it
 * dropped, inotify told (echo.c).  After fs->remote_off, none is applied
 * any more. */
void fs_apply_remote(struct fs *fs, const struct store_change *c);
/* A pending name that never got a value goes: the node dies (the caller
 * still holds it and lets it go with fs_node_release or an unpin). */
void fs_secret_drop_pending(struct fs *fs, struct node *n);
struct node *fs_scratch_find(struct fs *fs, enum scope sc, const char *name);
void fs_scratch_link(struct fs *fs, struct node *n);
void fs_scratch_unlink(struct fs *fs, struct node *n);
scope_set fs_secret_visible_scopes(const struct node *n);
bool fs_node_in_scope(const struct node *n, enum scope sc);
/* The inode of one version of a secret, found in or added to list: the
 * files of /.versions/ID (NODE_VERSION_FILE), or a secret's own versions
 * under -o fast (NODE_SECRET_VERSION). */
struct node *fs_version_node(struct fs *fs, struct node **list, enum node_kind kind,
                             struct node *secret, const struct secret_version *version);
/* -o fast: the inode of a secret's current version. */
struct node *fs_secret_version_node(struct fs *fs, struct node *secret);
/* After a handover (handover.c): secret's current version at the number
 * ino the kernel knows it by, with its lookup count; NULL if ino is taken
 * or secret has version inodes already.  fs->lock held for writing. */
struct node *fs_secret_version_restore(struct fs *fs, struct node *secret, fuse_ino_t ino,
                                       uint64_t nlookup);
/* Tombstones: record an unlink of scope sc; find a recent one. */
void fs_tomb_add(struct fs *fs, const struct node *n, enum scope sc);
struct tombstone *fs_tomb_find(struct fs *fs, const char *id, enum scope sc);
void fs_tomb_drop(struct fs *fs, struct tombstone *t);

/* Change sets (see the lock order above).  The nodes (NULLs skipped,
 * duplicates allowed) are pinned by the caller; fs->lock is not held. */
void fs_change_begin(struct fs *fs, struct node *const *nodes, size_t n);
void fs_change_end(struct fs *fs, struct node *const *nodes, size_t n);
/* fs_change_end, then the pins go (one per distinct neighbour, as the
 * caller pinned them); takes fs->lock itself. */
void fs_change_done(struct fs *fs, struct node *const *nodes, size_t n);

/* names.c: the rule that separates secret names from scratch names. */
/* Decodes a file name to a secret ID ("%2F" -> "/"); NULL if the name
 * cannot be an ID (then it is a scratch name unless... see names.c). */
char *name_to_id(const char *name);
char *id_to_name(const char *id);
/* A name one of the usual tools makes as a temporary (the exact rule is
 * in names.c): a scratch file.  Other names that are not IDs are refused. */
bool name_is_scratch(const char *name);
/* The ID a refused name probably meant (openai_api_key -> OPENAI_API_KEY,
 * MY-KEY -> MY_KEY) into buf; false if there is none. */
bool name_suggest_id(const char *name, char *buf, size_t size);
/* Why name is refused, for a log line: the rule, and the ID meant. */
void name_refused_why(const char *name, char *buf, size_t size);

/* deleted.c: /.deleted, secrets deleted less than -o keep_deleted ago
 * (STORE_CAP_UNDELETE), read-only and root's only.  Called with no lock
 * held; each takes fs->lock itself and calls the store without it. */
bool deleted_shown(const struct fs *fs);
/* /.deleted/NAME's node, pinned (the caller unpins it); -ENOENT. */
int deleted_lookup(struct fs *fs, const char *name, struct node **ret);
/* The names in /.deleted, for readdir: *ret_names malloc'ed, each too. */
int deleted_names(struct fs *fs, char ***ret_names, size_t *ret_n);
/* rm /.deleted/NAME: purged now. */
int deleted_purge(struct fs *fs, const char *name);
/* mv /.deleted/NAME SCOPE/NEWNAME: restored under its own ID (NEWNAME
 * must name it) as a new incarnation, its versions, labels and scopes
 * back, plus SCOPE. */
int deleted_restore(struct fs *fs, const char *name, enum scope sc, const char *newname);
/* The purger: once at mount (before serving), then every
 * deleted_purge_period() until stopped. */
int deleted_purger_start(struct fs *fs);
void deleted_purger_stop(struct fs *fs);

/* notify.c: kernel cache invalidations, sent from a thread of their own
 * (never from inside a request). */
struct notifier *notifier_start(struct fuse_session *se);
void notifier_stop(struct notifier *nt);
void notifier_inval_entry(struct notifier *nt, fuse_ino_t parent, const char *name);
void notifier_inval_inode(struct notifier *nt, fuse_ino_t ino);

/* echo.c: inotify events for other clients' changes, made by a thread of
 * its own that opens the changed file on the mount for writing and closes
 * it; its requests (echo_is_own) do nothing.  Accept NULL. */
struct echo *echo_start(const char *mountpoint);
void echo_stop(struct echo *e);
void echo_queue(struct echo *e, enum scope sc, const char *name);
bool echo_is_own(const struct echo *e, pid_t pid);

/* sdnotify.c: Type=notify under systemd. */
int sd_notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sd_notify_ready_when_mounted(struct fs *fs);

/* ops.c */
extern const struct fuse_lowlevel_ops secretsfs_ops;

/* common.c */
int64_t now_ns(void);

#endif
