/* SPDX-License-Identifier: MIT */
/*
 * The Secrets Store client interface.
 *
 * One table of operations (struct store_ops) that every store implements:
 * the embedded SQLite store now, an etcd v3 store and the Redpanda Cloud
 * Data Plane API next.  fs/ only ever talks to a store through this table.
 *
 * Rules every implementation follows:
 *  - every call returns 0 or -errno; out-parameters (ret_*) are set only
 *    on success;
 *  - calls are thread-safe: fs/ calls them from many FUSE worker threads at
 *    once and never while holding fs->lock, so a slow store blocks only the
 *    requests that wait for the same secret (fs/ serialises changes per
 *    secret, see fs/fs.h);
 *  - every call has a deadline: a store that cannot answer in time returns
 *    -ETIMEDOUT (or -EBUSY), having changed nothing;
 *  - values (plaintext) are only ever handed over in struct secret_value,
 *    whose buffer is locked memory (sodium_malloc) and wiped on free;
 *  - a store never logs a value.  It may log one line for an error that
 *    the errno alone cannot explain (a failed authentication tag, say).
 *
 * Identity.  Every change a store records gets a store-wide revision that
 * only ever grows (the embedded store's own counter; etcd's revision).  A
 * secret's incarnation is the revision that created it: delete and
 * re-create the same ID and the new secret has a new incarnation, so
 * (id, incarnation) names one life of an ID and is never reused.  Every
 * change returns what it made as metadata carrying its revision (a change
 * record): fs/ applies records in revision order, whether they come from
 * its own calls or, later, from other clients through watch.
 *
 * Compare-and-swap.  Changes take the incarnation they mean (0: whatever
 * is there) and fail with -ESTALE when the ID now names another
 * incarnation; put_value also takes the value revision its new value was
 * based on (0: replace whatever is current) and fails with -ESTALE when
 * another value was committed since.
 *
 * Errors with a fixed meaning:
 *   -ENOENT   no such secret (or no such version)
 *   -EEXIST   create of an ID that exists
 *   -ESTALE   the secret is another incarnation, or (put_value) its value
 *             changed since the base revision
 *   -EINVAL   bad ID, label, scope set or value length
 *   -EIO      the store failed or a value failed authentication
 *   -ENOSPC   the store is full
 *   -EROFS    the store is read-only
 *   -EOPNOTSUPP  an optional operation the store does not have
 */
#ifndef SECRETSFS_STORE_H
#define SECRETSFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SECRET_ID_MAX 255      /* characters */
#define SECRET_VALUE_MAX 65536 /* bytes; values are 1..SECRET_VALUE_MAX */
#define LABEL_KEY_MAX 128      /* bytes */
#define LABEL_VALUE_MAX 256    /* bytes */
#define LABELS_MAX 64          /* labels per secret */
#define STORE_KEY_BYTES 32

/* Scopes, in the order of their directories.  Bit (1u << scope). */
enum scope {
	SCOPE_AI_GATEWAY,
	SCOPE_MCP_SERVER,
	SCOPE_AI_AGENT,
	SCOPE_REDPANDA_CLUSTER,
	SCOPE_REDPANDA_CONNECT,
	SCOPE_COUNT
};
typedef uint32_t scope_set;
#define SCOPE_ALL ((scope_set)((1u << SCOPE_COUNT) - 1))

struct label {
	char *key;
	char *value;
};

struct labels {
	size_t n;
	struct label *v;
};

/* Everything about a secret except its value. */
struct secret_meta {
	char *id;
	uint64_t incarnation;    /* revision that created it (>= 1); never reused */
	uint64_t revision;       /* revision of its last change of any kind */
	uint64_t value_revision; /* revision that wrote the current value */
	scope_set scopes;        /* never 0 for a stored secret */
	struct labels labels;
	uint64_t version; /* current version, >= 1: counts this
	                          incarnation's values (secretsfs.version) */
	uint32_t size;    /* length of the current value, in bytes */
	int64_t ctime_ns; /* creation of the secret */
	int64_t mtime_ns; /* commit of the current version */
};

/* A decrypted value: data lives in locked memory and is wiped by
 * secret_value_free().  data has len bytes (len >= 1). */
struct secret_value {
	uint8_t *data;
	size_t len;
	uint64_t version;
	uint64_t revision; /* the value revision: put_value's base */
	int64_t mtime_ns;
	bool stale; /* served from a local copy while the store could not be
	               reached (store_config.stale_ns): maybe not current */
	size_t cap; /* bytes at data (secret.c's business) */
};

/* One kept version of a value, without the value. */
struct secret_version {
	uint64_t version;
	uint32_t size;
	int64_t mtime_ns;
};

/* Capability bits (store_ops.caps). */
enum {
	STORE_CAP_WRITE_ONLY_VALUES = 1u << 0, /* get_value always -EACCES */
	STORE_CAP_VERSIONS = 1u << 1,          /* old versions can be read */
	STORE_CAP_WATCH = 1u << 2,             /* changes by others announced */
	STORE_CAP_EXCHANGE = 1u << 3,          /* exchange_values exists */
	STORE_CAP_UNDELETE = 1u << 4,          /* deleted secrets kept: list_deleted,
	                                 get_deleted_value, undelete, purge,
	                                 purge_expired exist */
};

/* How a remote store is reached and logged in to: TLS (etcd+https://,
 * Redpanda Cloud: cacert) and etcd auth.  Paths; the store checks and
 * reads them. */
struct store_remote {
	const char *cacert;         /* CA to verify the server against; NULL:
	                              the system's */
	const char *cert, *certkey; /* client certificate and its private key
	                               (owned by this uid, 0600 or tighter);
	                               NULL: none */
	const char *user;           /* etcd user; NULL: no login */
	const char *password_file;  /* its password: the first line (owned by
	                              this uid, 0600 or tighter) */
};

/* What a store was opened with (from the command line). */
struct store_config {
	const char *source;     /* the store's location: a directory, URL… */
	const uint8_t *key;     /* STORE_KEY_BYTES of key material, locked;
	                               the store copies what it needs */
	unsigned keep_versions; /* how many versions to keep, >= 1 */
	bool read_only;
	bool reseal_digest;     /* a store whose rows do not match its digest is
	                       accepted as it is and its digest made again
	                       (-o reseal_digest, after a repair by hand) */
	const char *cache_file; /* a remote store's sealed copy on this host
	                           (its values sealed, never plaintext), to
	                           start from while the store cannot be
	                           reached; NULL: none */
	struct store_remote remote;
	int64_t stale_ns; /* a remote store that cannot be reached: how long
	                       after it was last reachable its values may still
	                       be served from a local copy (0: never) */
	/* STORE_CAP_UNDELETE: how long delete_secret keeps a deleted secret
	 * (sealed, with its versions, labels and scopes) for undelete;
	 * 0: it is purged at once, as stores without the capability do. */
	int64_t keep_deleted_ns;
	/* Remote stores (NULL or -1 when not given: the store's defaults) */
	const char *credentials;  /* -o credentials=: Redpanda Cloud's OAuth
	                            client file */
	const char *token_url;    /* -o token_url= */
	const char *audience;     /* -o audience= */
	const char *cluster;      /* -o cluster=: Redpanda Cloud's data plane URL
	                            looked up through the control plane */
	const char *controlplane; /* -o controlplane=: its API's base URL */
	int poll_s;               /* -o poll=: seconds between listings, 0:
	                            never, -1: the store's default */
};

/* A change record: what one change left behind. */
enum store_change_kind {
	STORE_CHANGED, /* created, new value, labels or scopes changed */
	STORE_DELETED, /* meta.id, meta.incarnation, meta.revision only */
};

struct store_change {
	enum store_change_kind kind;
	struct secret_meta meta;
};

/* Called by a store (from its own thread) for a change made by another
 * client; c is valid only during the call. */
typedef void (*store_change_fn)(void *userdata, const struct store_change *c);

/* Called by list() once per secret; meta is valid during the call only.
 * A non-zero return stops the listing and is returned by list(). */
typedef int (*store_list_fn)(void *userdata, const struct secret_meta *meta);

struct store;

struct store_ops {
	const char *name; /* "embedded", "etcd", "redpanda-cloud" */
	unsigned caps;    /* STORE_CAP_* */

	/* Mandatory.  Opens the store; checks the key when the store has
	 * values encrypted under it (wrong key: -EKEYREJECTED). */
	int (*open)(const struct store_config *cfg, struct store **ret_store);
	/* Mandatory.  Accepts NULL. */
	void (*close)(struct store *s);

	/* Mandatory.  Metadata of every secret; never fetches or decrypts a
	 * value. */
	int (*list)(struct store *s, store_list_fn fn, void *userdata);
	/* Mandatory.  Metadata of one secret; free with secret_meta_clear(). */
	int (*stat)(struct store *s, const char *id, struct secret_meta *ret_meta);

	/* Mandatory (may answer -EACCES with STORE_CAP_WRITE_ONLY_VALUES).
	 * version 0 means the current one; incarnation 0 any (else -ENOENT
	 * if id now names another incarnation, or none). */
	int (*get_value)(struct store *s, const char *id, uint64_t incarnation, uint64_t version,
	                 struct secret_value **ret_value);
	/* Optional (STORE_CAP_VERSIONS).  The versions kept, oldest first;
	 * *ret_versions is malloc'ed.  incarnation as for get_value. */
	int (*list_versions)(struct store *s, const char *id, uint64_t incarnation,
	                     struct secret_version **ret_versions, size_t *ret_n);

	/* Mandatory.  Creates a secret with its first version (1), if no
	 * secret has the ID (else -EEXIST).  The ID is checked against the
	 * create rule (secret_id_valid_new). */
	int (*create)(struct store *s, const char *id, scope_set scopes,
	              const struct labels *labels, const uint8_t *value, size_t len,
	              struct secret_meta *ret_meta);
	/* Mandatory.  Records a new version of incarnation's value, based on
	 * the value written at base_revision (0: replaces whatever is
	 * current); -ESTALE if either does not hold.  Labels and scopes are
	 * kept. */
	int (*put_value)(struct store *s, const char *id, uint64_t incarnation,
	                 uint64_t base_revision, const uint8_t *value, size_t len,
	                 struct secret_meta *ret_meta);
	/* Optional (STORE_CAP_EXCHANGE).  Swaps the current values of a and b
	 * atomically, as one new version of each. */
	int (*exchange_values)(struct store *s, const char *a, uint64_t a_incarnation,
	                       const char *b, uint64_t b_incarnation, struct secret_meta *ret_a,
	                       struct secret_meta *ret_b);
	/* Optional (needs readable values).  In one transaction: the current
	 * value of `from` (which must be from_incarnation, unchanged since
	 * from_revision) becomes a new version of `to` (incarnation
	 * to_incarnation, labels and scopes kept) or, with to_incarnation 0,
	 * the first version of a new secret `to` with to_scopes and
	 * to_labels; then `from` is deleted.  -ESTALE if a condition fails,
	 * -EEXIST if `to` exists where it should not.  ret_from gets the
	 * deletion record of from. */
	int (*rename)(struct store *s, const char *from, uint64_t from_incarnation,
	              uint64_t from_revision, const char *to, uint64_t to_incarnation,
	              scope_set to_scopes, const struct labels *to_labels,
	              struct store_change *ret_from, struct secret_meta *ret_to);
	/* Mandatory.  Deletes a secret and all its versions (a store with
	 * STORE_CAP_UNDELETE and keep_deleted_ns > 0 keeps them for undelete;
	 * the change record is the same). */
	int (*delete_secret)(struct store *s, const char *id, uint64_t incarnation,
	                     struct store_change *ret_change);
	/* Mandatory.  Replaces the whole label map. */
	int (*set_labels)(struct store *s, const char *id, uint64_t incarnation,
	                  const struct labels *labels, struct secret_meta *ret_meta);
	/* Mandatory.  Replaces the scope set (non-empty). */
	int (*set_scopes)(struct store *s, const char *id, uint64_t incarnation, scope_set scopes,
	                  struct secret_meta *ret_meta);

	/* Optional (STORE_CAP_WATCH).  Starts announcing changes made by other
	 * clients; fn is called from a thread of the store's. */
	int (*watch)(struct store *s, store_change_fn fn, void *userdata);
	/* Optional.  Could a change be made now?  0, or the error it would
	 * get (a remote store that cannot be reached: -EIO, logged), found
	 * out soon; fs/ asks at an open for writing. */
	int (*can_change)(struct store *s);

	/* Optional, all five (STORE_CAP_UNDELETE): deleted secrets kept for
	 * keep_deleted_ns.  A deleted secret is one incarnation, kept until
	 * it is purged (by purge, purge_expired, or a create of the same ID:
	 * one kept per ID).  Its change records were those of delete_secret;
	 * nothing else of the store's interface sees it.
	 *
	 * list_deleted: the deleted secrets, in ID order, as they were (scopes,
	 * labels, current version, size), except that mtime_ns is the time
	 * of the deletion and revision the deletion's; never decrypts.  A
	 * kept secret that fails authentication is left out (logged). */
	int (*list_deleted)(struct store *s, store_list_fn fn, void *userdata);
	/* The current value of deleted incarnation (0: whichever is kept). */
	int (*get_deleted_value)(struct store *s, const char *id, uint64_t incarnation,
	                         struct secret_value **ret_value);
	/* Makes the deleted incarnation live again as a NEW incarnation (the
	 * revision of this change), with its versions, labels and scopes,
	 * plus add_scopes.  -EEXIST if id is live, -ENOENT if none is kept,
	 * -ESTALE if the kept one is another incarnation. */
	int (*undelete)(struct store *s, const char *id, uint64_t incarnation, scope_set add_scopes,
	                struct secret_meta *ret_meta);
	/* Purges a deleted incarnation now (-ENOENT, -ESTALE as undelete). */
	int (*purge)(struct store *s, const char *id, uint64_t incarnation);
	/* Purges every deleted secret kept longer than keep_deleted_ns at
	 * time now (all of them with keep_deleted_ns 0); *ret_n: how many. */
	int (*purge_expired)(struct store *s, int64_t now_ns, unsigned *ret_n);
};

/* The stores this build has. */
extern const struct store_ops embedded_store_ops;
/* (etcd.h and redpanda.h declare the others.) */

/* --- helpers shared by every store (backend/secret.c) --- */

/* ID rules: a new secret matches ^[A-Z][A-Z0-9_]*$ (1..255); an existing
 * one may carry ^[a-zA-Z0-9/_-]+$. */
bool secret_id_valid_new(const char *id);
bool secret_id_valid_existing(const char *id);
/* Label key: 1..LABEL_KEY_MAX bytes of [A-Za-z0-9_.-/] (no '=', no NUL);
 * value: 0..LABEL_VALUE_MAX bytes of letters, spaces, digits and _.:/=+-@
 * (UTF-8 letters allowed).  "owner" is server-managed and refused. */
bool label_key_valid(const char *key);
bool label_value_valid(const char *value, size_t len);
/* What every store accepts: a non-empty set of known scopes; at most
 * LABELS_MAX valid, distinct labels (0 or -EINVAL); a value of 1 to
 * SECRET_VALUE_MAX bytes (0, -EINVAL, -EFBIG). */
bool secret_scopes_valid(scope_set scopes);
int secret_labels_valid(const struct labels *l);
int secret_value_len_valid(const uint8_t *value, size_t len);

const char *scope_dir_name(enum scope sc); /* "ai_gateway" */
const char *scope_api_name(enum scope sc); /* "SCOPE_AI_GATEWAY" */
int scope_from_dir_name(const char *name); /* enum scope or -1 */

/* Label maps (sorted by key). */
const char *labels_get(const struct labels *l, const char *key);
int labels_set(struct labels *l, const char *key, const char *value); /* 0/-errno */
int labels_remove(struct labels *l, const char *key);                 /* 0/-ENODATA */
int labels_copy(struct labels *dst, const struct labels *src);
bool labels_equal(const struct labels *a, const struct labels *b); /* same keys and values */
void labels_clear(struct labels *l);

int secret_meta_copy(struct secret_meta *dst, const struct secret_meta *src);
void secret_meta_clear(struct secret_meta *m);
void store_change_clear(struct store_change *c);

/* Metadata of many secrets: a whole listing (meta_list_add is list()'s
 * callback), then sorted by ID to look IDs up. */
struct meta_list {
	struct secret_meta *v;
	size_t n, cap;
};
int meta_list_add(void *list, const struct secret_meta *meta); /* a store_list_fn */
void meta_list_sort(struct meta_list *l);
/* (sorted) the secret id, or NULL */
const struct secret_meta *meta_list_find(const struct meta_list *l, const char *id);
void meta_list_clear(struct meta_list *l);

/* In an array of n elements of size bytes sorted by the string their first
 * member (a char *: secret_meta.id, label.key) points to: the index of
 * key, or -(its insertion point) - 1. */
long sorted_find(const void *v, size_t n, size_t size, const char *key);
/* The end of a store call that made *m: with r == 0 and ret, *m is
 * handed to *ret; else it is cleared.  Returns r. */
int secret_meta_hand_over(int r, struct secret_meta *m, struct secret_meta *ret);

/* Values: locked memory, wiped on free.  Accept NULL. */
struct secret_value *secret_value_new(size_t len);
/* n bytes of guarded memory (sodium_malloc) that is verified locked, for
 * values and keys:
 * sodium_malloc itself goes on when mlock fails, so this checks and, when
 * the memory cannot be locked, logs, frees and returns NULL (ENOMEM) --
 * plaintext is never handed out in swappable memory -- unless
 * secret_allow_unlocked(true) was called (-o allow_unlocked).  Free with
 * sodium_free(). */
void *secret_locked_alloc(size_t n);
void secret_allow_unlocked(bool allow);
struct secret_value *secret_value_free(struct secret_value *v);

#endif
