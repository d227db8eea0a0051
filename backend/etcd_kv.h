/* SPDX-License-Identifier: MIT */
/*
 * etcd v3 through its JSON gateway (etcd 3.4: /v3/kv/..., /v3/watch,
 * /v3/lease/..., /v3/auth/authenticate, /v3/maintenance/status), over the
 * one HTTP layer (http.h): the calls the etcd store is built from, and
 * nothing of the store itself (no key layout, no sealing).
 *
 * Keys and values are bytes here; the gateway's base64 and its habits
 * (int64 as JSON strings, zero and false fields left out) stay inside.
 * Decoded keys and values are NUL-terminated one byte past their length,
 * so a key that is text can be used as a string.
 *
 * Every request but a serializable range carries Grpc-Metadata-hasleader:
 * true, so that a member without a leader answers 503 "no leader" at once
 * instead of after its 7 s request timeout (and a watch on it ends instead
 * of hanging); such an answer means etcd did nothing, so any call, write
 * or not, moves on to the next endpoint.  Reads (range, status) are idempotent and are
 * retried as http.h says; put, delete and txn are sent again only when
 * they never reached a server, unless the txn says it is retry-safe.
 *
 * Errors: those of http.h (etcd's 400 InvalidArgument/FailedPrecondition
 * → -EINVAL, 401 → -EACCES after one re-authentication, 503 → -EIO, …),
 * -EACCES for a bad password or a missing login (etcd says 400),
 * -EIO for an answer that does not parse, and for watches the ends listed
 * at etcd_kv_watch().  Every call fills the struct http_status it is
 * given (may be NULL) with a reason line; nothing here logs it.
 *
 * Threads: an etcd_kv is used by any number of threads at once.  Its own
 * lock (auth_lock) only serialises re-authentication and guards the
 * credentials; it is never held across a call other than authenticate.
 */
#ifndef SECRETSFS_ETCD_KV_H
#define SECRETSFS_ETCD_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct etcd_kv;

struct etcd_kv_config {
	const char *const *endpoints; /* client URLs: http://127.0.0.1:2379 */
	size_t n_endpoints;
	const char *cacert, *cert, *certkey; /* etcd+https: see http_config */
	unsigned connect_timeout_ms;         /* 0: http.h's default */
	unsigned attempt_timeout_ms;         /* 0: none (see http_config) */
	unsigned retries;                    /* extra rounds for retry-safe calls */
	unsigned backoff_ms;                 /* 0: http.h's default */
};

int etcd_kv_open(const struct etcd_kv_config *cfg, struct etcd_kv **ret_kv);
struct etcd_kv *etcd_kv_free(struct etcd_kv *kv);
/* The HTTP client underneath (for its endpoint in use). */
struct http_client *etcd_kv_http(struct etcd_kv *kv);

/* Logs in as user (etcd auth): the token goes into every later request,
 * and user and password are kept, in locked memory, to log in again once
 * when etcd says the token is no longer valid (simple tokens lapse after
 * 5 idle minutes).  They are kept too when the login failed because etcd
 * could not be reached (not when it refused them: -EACCES, or -EPROTO for
 * TLS), so that the first call that finds etcd back logs in. */
int etcd_kv_authenticate(struct etcd_kv *kv, const char *user, const char *password,
                         int64_t deadline, struct http_status *status);

/* One key as etcd has it.  key/value are malloc'ed (value wiped on
 * clear), NUL-terminated at [len]; value is NULL for keys_only. */
struct etcd_kv_pair {
	uint8_t *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	int64_t create_revision; /* 0: the key does not exist */
	int64_t mod_revision;
	int64_t version; /* puts since its creation */
	int64_t lease;
};

/* Which keys (a range request, and the key part of delete and txn ops). */
struct etcd_range {
	const void *key;
	size_t key_len;
	const void *range_end; /* [key, range_end); NULL: key alone */
	size_t range_end_len;
	bool prefix;      /* every key that starts with key (range_end ignored) */
	int64_t revision; /* the store as it was then; 0: now */
	int64_t limit;    /* at most this many; 0: all */
	bool keys_only, count_only;
	bool serializable; /* the member's own view: fast, maybe stale, works
	                      without quorum (and without a leader) */
};

struct etcd_range_result {
	int64_t revision; /* the store revision the answer reflects */
	int64_t count;    /* keys in the range (can exceed n with limit) */
	bool more;        /* limit cut the answer */
	size_t n;
	struct etcd_kv_pair *kvs; /* key order */
};

void etcd_kv_pair_clear(struct etcd_kv_pair *p);
void etcd_range_result_clear(struct etcd_range_result *r);

int etcd_kv_range(struct etcd_kv *kv, const struct etcd_range *q, int64_t deadline,
                  struct etcd_range_result *ret_result, struct http_status *status);
/* lease 0: none.  ret_revision (may be NULL): the revision of the put. */
int etcd_kv_put(struct etcd_kv *kv, const void *key, size_t key_len, const void *value,
                size_t value_len, int64_t lease, int64_t deadline, int64_t *ret_revision,
                struct http_status *status);
/* q: key, range_end or prefix only.  Either ret_ may be NULL. */
int etcd_kv_delete(struct etcd_kv *kv, const struct etcd_range *q, int64_t deadline,
                   int64_t *ret_deleted, int64_t *ret_revision, struct http_status *status);

/* Transactions. */
enum etcd_target {
	ETCD_TARGET_VERSION,
	ETCD_TARGET_CREATE, /* create_revision; 0 = the key does not exist */
	ETCD_TARGET_MOD,    /* mod_revision */
	ETCD_TARGET_VALUE,
};
enum etcd_cmp {
	ETCD_EQUAL,
	ETCD_GREATER,
	ETCD_LESS,
	ETCD_NOT_EQUAL,
};
struct etcd_compare {
	const void *key;
	size_t key_len;
	enum etcd_target target;
	enum etcd_cmp cmp;
	int64_t number;    /* VERSION, CREATE, MOD */
	const void *value; /* VALUE */
	size_t value_len;
};

enum etcd_op_type {
	ETCD_OP_RANGE,
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
};
struct etcd_op {
	enum etcd_op_type type;
	struct etcd_range range; /* the key(s); every field for RANGE */
	const void *value;       /* PUT */
	size_t value_len;
	int64_t lease; /* PUT */
};
struct etcd_op_result {
	enum etcd_op_type type;
	struct etcd_range_result range; /* RANGE */
	int64_t deleted;                /* DELETE */
};

/* At most 128 ops per branch (etcd's --max-txn-ops). */
struct etcd_txn {
	const struct etcd_compare *compare;
	size_t n_compare;
	const struct etcd_op *success, *failure;
	size_t n_success, n_failure;
	/* The compares make a second copy harmless (it fails them), so the
	 * txn may be sent again after a failure that may have applied it.
	 * The price: a repeat can report failure for the first copy's
	 * success; put a RANGE of the key in failure to tell. */
	bool retry_safe;
};
struct etcd_txn_result {
	bool succeeded;
	int64_t revision; /* the store's revision after it */
	size_t n;
	struct etcd_op_result *ops; /* of the branch that ran, in order */
};
void etcd_txn_result_clear(struct etcd_txn_result *r);

int etcd_kv_txn(struct etcd_kv *kv, const struct etcd_txn *t, int64_t deadline,
                struct etcd_txn_result *ret_result, struct http_status *status);

/* Compacts the history before revision (physical: wait until it is gone
 * from the backend).  -EINVAL if revision is compacted already or in the
 * future. */
int etcd_kv_compact(struct etcd_kv *kv, int64_t revision, bool physical, int64_t deadline,
                    struct http_status *status);

/* Leases.  ret_ttl (may be NULL) is what etcd granted, in seconds. */
int etcd_kv_lease_grant(struct etcd_kv *kv, int64_t ttl_s, int64_t deadline, int64_t *ret_id,
                        int64_t *ret_ttl, struct http_status *status);
int etcd_kv_lease_keepalive(struct etcd_kv *kv, int64_t id, int64_t deadline, int64_t *ret_ttl,
                            struct http_status *status);
int etcd_kv_lease_revoke(struct etcd_kv *kv, int64_t id, int64_t deadline,
                         struct http_status *status);

/* The member that answered (status->endpoint says which). */
struct etcd_member_status {
	int64_t revision; /* its header revision */
	uint64_t cluster_id, member_id, leader;
	int64_t raft_term, raft_index, db_size;
	char version[32];
};
int etcd_kv_status(struct etcd_kv *kv, int64_t deadline, struct etcd_member_status *ret_status,
                   struct http_status *status);

/* Watches. */
enum etcd_event_type {
	ETCD_EVENT_PUT,
	ETCD_EVENT_DELETE,
};
struct etcd_event {
	enum etcd_event_type type;
	struct etcd_kv_pair kv; /* DELETE: key and mod_revision only */
	bool has_prev_kv;
	struct etcd_kv_pair prev_kv;
};
/* One message of the stream.  All of one revision's events (a txn's)
 * come in one batch. */
struct etcd_watch_batch {
	int64_t revision; /* header: every change up to it has been sent */
	bool created;     /* the first message: the watch is in place */
	bool progress;    /* a progress notification (no events) */
	size_t n;
	const struct etcd_event *events;
};
/* 0: go on; > 0: end the watch (it returns 0); < 0: end it with that. */
typedef int (*etcd_watch_fn)(const struct etcd_watch_batch *batch, void *arg);

struct etcd_watch {
	struct etcd_range range; /* key, range_end or prefix */
	int64_t start_revision;  /* first revision to send; 0: from now */
	bool prev_kv;
	bool progress_notify;       /* etcd sends progress every 10 min by
	                              default (--experimental-watch-progress-
	                              notify-interval) */
	unsigned idle_timeout_ms;   /* nothing for this long: -ETIMEDOUT; 0: none */
	struct http_cancel *cancel; /* may be NULL */
};
/* How the watch ended, for resuming it.  Always filled. */
struct etcd_watch_end {
	int64_t last_revision;    /* of the last message seen: resume at + 1 */
	int64_t compact_revision; /* > 0 with -ESTALE */
};

/* Runs the watch in this thread until it ends.  A watch etcd cancels for
 * a lapsed token logs in again once and starts over (as calls do on a
 * 401); refused again, it ends with -EACCES.  Ends: 0 (fn asked), -ESTALE
 * (start_revision was compacted: list again at end.compact_revision or
 * later and watch from there), -ECANCELED, -ETIMEDOUT (idle), -EIO (etcd
 * ended it with an error, e.g. no leader), -ECONNRESET (the stream ended),
 * or the errors of http.h / fn.  Never retried here: the caller resumes
 * from last_revision + 1 with its own backoff. */
int etcd_kv_watch(struct etcd_kv *kv, const struct etcd_watch *w, etcd_watch_fn fn, void *arg,
                  struct etcd_watch_end *end, struct http_status *status);

#endif
