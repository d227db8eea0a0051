/* SPDX-License-Identifier: MIT */
/* backend/etcd_kv.c against a real 3-member etcd cluster on 127.0.0.1,
 * started and stopped by tests/tools/etcd-cluster ($ETCD_CLUSTER): kv
 * calls, transactions both ways, watches (events from another client,
 * compaction, the member under it dying), failover, quorum loss and
 * recovery.  Skips (77) only when etcd is not installed.  The cluster is
 * stopped at exit; if this process dies, the harness's watchdog stops it.
 * No timing assertions but generous deadlines (and the median delay of
 * watch events, the one figure the store depends on). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#include "etcd_kv.h"
#include "harness.h"
#include "etcd_cluster.h"
#include "http.h"

static const char *eps[3], *eps_reversed[3];

/* --- the cluster --- */

/* The endpoints in member order and reversed (another client starts at
 * another member). */
static void endpoints_from_cluster(void)
{
	for (int i = 0; i < 3; i++) {
		eps[i] = etcd_cluster_urls[i];
		eps_reversed[2 - i] = etcd_cluster_urls[i];
	}
}

static void member(const char *cmd, int m)
{
	char s[4];

	snprintf(s, sizeof(s), "%d", m);
	REQUIRE(etcd_cluster(cmd, s) == 0);
}

/* --- helpers --- */

static struct etcd_kv *open_kv(const char *const *endpoints, size_t n)
{
	struct etcd_kv_config cfg = {
		.endpoints = endpoints,
		.n_endpoints = n,
		.connect_timeout_ms = 1000,
		.attempt_timeout_ms = 2000, /* a read on a member that lost its
		                               leader moves on after 2 s */
		.retries = 8,
		.backoff_ms = 50,
	};
	struct etcd_kv *kv = NULL;

	REQUIRE(etcd_kv_open(&cfg, &kv) == 0);
	return kv;
}

#define S(x) (x), strlen(x)

static int put(struct etcd_kv *kv, const char *k, const char *v, int64_t *rev)
{
	struct http_status st;
	int r = etcd_kv_put(kv, S(k), S(v), 0, http_deadline(10000), rev, &st);

	if (r < 0)
		fprintf(stderr, "put %s: %d: %s\n", k, r, st.reason);
	return r;
}

/* the value of k as a string ("" if absent, "?" on error) */
static const char *get(struct etcd_kv *kv, const char *k, struct etcd_kv_pair *ret)
{
	static char out[256];
	struct etcd_range q = { .key = k, .key_len = strlen(k) };
	struct etcd_range_result res;
	struct http_status st;
	int r = etcd_kv_range(kv, &q, http_deadline(10000), &res, &st);

	if (r < 0) {
		fprintf(stderr, "get %s: %d: %s\n", k, r, st.reason);
		return "?";
	}
	snprintf(out, sizeof(out), "%s", res.n ? (const char *)res.kvs[0].value : "");
	if (ret && res.n) {
		*ret = res.kvs[0];
		memset(&res.kvs[0], 0, sizeof(res.kvs[0]));
	}
	etcd_range_result_clear(&res);
	return out;
}

/* --- kv --- */

static void test_put_get_range(struct etcd_kv *kv)
{
	struct etcd_range q = { .key = "t/", .key_len = 2, .prefix = true };
	struct etcd_range_result res;
	struct etcd_kv_pair p = { 0 };
	int64_t r1 = 0, r2 = 0, r3 = 0;

	CHECK_EQ(put(kv, "t/a", "1", &r1), 0);
	CHECK_EQ(put(kv, "t/b", "2", &r2), 0);
	CHECK_EQ(put(kv, "t/c/d", "3", NULL), 0);
	CHECK_EQ(put(kv, "u/x", "9", NULL), 0);
	CHECK(r2 > r1 && r1 > 0);

	CHECK(strcmp(get(kv, "t/a", &p), "1") == 0);
	CHECK_EQ(p.create_revision, r1);
	CHECK_EQ(p.mod_revision, r1);
	CHECK_EQ(p.version, 1);
	CHECK_EQ(p.key_len, 3);
	etcd_kv_pair_clear(&p);
	CHECK(strcmp(get(kv, "t/none", NULL), "") == 0);

	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK_EQ(res.n, 3);
	CHECK_EQ(res.count, 3);
	CHECK(!res.more);
	CHECK(res.n == 3 && strcmp((char *)res.kvs[0].key, "t/a") == 0 &&
	      strcmp((char *)res.kvs[2].key, "t/c/d") == 0 &&
	      strcmp((char *)res.kvs[2].value, "3") == 0);
	etcd_range_result_clear(&res);

	q.limit = 2;
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK_EQ(res.n, 2);
	CHECK_EQ(res.count, 3);
	CHECK(res.more);
	etcd_range_result_clear(&res);

	q.limit = 0;
	q.keys_only = true;
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK(res.n == 3 && res.kvs[0].value == NULL && res.kvs[0].mod_revision == r1);
	etcd_range_result_clear(&res);

	q.keys_only = false;
	q.count_only = true;
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK_EQ(res.n, 0);
	CHECK_EQ(res.count, 3);
	etcd_range_result_clear(&res);

	/* an older revision; a serializable read */
	CHECK_EQ(put(kv, "t/a", "1b", &r3), 0);
	q = (struct etcd_range){ .key = "t/a", .key_len = 3, .revision = r1 };
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK(res.n == 1 && strcmp((char *)res.kvs[0].value, "1") == 0);
	CHECK(res.revision >= r3);
	etcd_range_result_clear(&res);
	q.revision = 0;
	q.serializable = true;
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK_EQ(res.n, 1);
	etcd_range_result_clear(&res);

	/* bytes: NULs in values, 0xff at the end of a prefix */
	{
		static const uint8_t k1[] = { 'p', 0xff }, k2[] = { 'p', 0xff, 0x01 },
		                     v[] = { 0, 1, 0 };
		struct etcd_range pq = { .key = k1, .key_len = sizeof(k1), .prefix = true };

		CHECK_EQ(etcd_kv_put(kv, k1, sizeof(k1), v, sizeof(v), 0, http_deadline(10000),
		                     NULL, NULL),
		         0);
		CHECK_EQ(etcd_kv_put(kv, k2, sizeof(k2), v, sizeof(v), 0, http_deadline(10000),
		                     NULL, NULL),
		         0);
		CHECK_EQ(put(kv, "q", "not in the prefix", NULL), 0);
		REQUIRE(etcd_kv_range(kv, &pq, http_deadline(10000), &res, NULL) == 0);
		CHECK_EQ(res.n, 2);
		CHECK(res.n == 2 && res.kvs[1].key_len == 3 && res.kvs[0].value_len == 3 &&
		      memcmp(res.kvs[0].value, v, 3) == 0);
		etcd_range_result_clear(&res);
	}
}

static void test_txn(struct etcd_kv *kv)
{
	struct etcd_compare absent = { .key = "t/new",
		                       .key_len = 5,
		                       .target = ETCD_TARGET_CREATE,
		                       .cmp = ETCD_EQUAL,
		                       .number = 0 };
	struct etcd_op create = { .type = ETCD_OP_PUT,
		                  .range = { .key = "t/new", .key_len = 5 },
		                  .value = "v1",
		                  .value_len = 2 };
	struct etcd_op read = { .type = ETCD_OP_RANGE, .range = { .key = "t/new", .key_len = 5 } };
	struct etcd_txn t = { .compare = &absent,
		              .n_compare = 1,
		              .success = &create,
		              .n_success = 1,
		              .failure = &read,
		              .n_failure = 1 };
	struct etcd_txn_result res;
	struct http_status st;
	int64_t mod;

	/* create-if-absent: first wins, second sees what is there */
	REQUIRE(etcd_kv_txn(kv, &t, http_deadline(10000), &res, &st) == 0);
	CHECK(res.succeeded);
	CHECK(res.n == 1 && res.ops[0].type == ETCD_OP_PUT);
	mod = res.revision;
	etcd_txn_result_clear(&res);
	create.value = "v-other";
	create.value_len = 7;
	REQUIRE(etcd_kv_txn(kv, &t, http_deadline(10000), &res, &st) == 0);
	CHECK(!res.succeeded);
	CHECK(res.n == 1 && res.ops[0].type == ETCD_OP_RANGE && res.ops[0].range.n == 1 &&
	      strcmp((char *)res.ops[0].range.kvs[0].value, "v1") == 0 &&
	      res.ops[0].range.kvs[0].mod_revision == mod);
	etcd_txn_result_clear(&res);

	/* CAS on mod_revision: the right base wins, a stale one loses */
	{
		struct etcd_compare cas = { .key = "t/new",
			                    .key_len = 5,
			                    .target = ETCD_TARGET_MOD,
			                    .cmp = ETCD_EQUAL,
			                    .number = mod };
		struct etcd_op upd = { .type = ETCD_OP_PUT,
			               .range = { .key = "t/new", .key_len = 5 },
			               .value = "v2",
			               .value_len = 2 };
		struct etcd_txn u = { .compare = &cas,
			              .n_compare = 1,
			              .success = &upd,
			              .n_success = 1,
			              .failure = &read,
			              .n_failure = 1,
			              .retry_safe = true };
		int64_t mod2;

		REQUIRE(etcd_kv_txn(kv, &u, http_deadline(10000), &res, &st) == 0);
		CHECK(res.succeeded);
		mod2 = res.revision;
		CHECK(mod2 > mod);
		etcd_txn_result_clear(&res);
		upd.value = "v3";
		REQUIRE(etcd_kv_txn(kv, &u, http_deadline(10000), &res, &st) == 0);
		CHECK(!res.succeeded);
		CHECK(res.n == 1 && res.ops[0].range.n == 1 &&
		      res.ops[0].range.kvs[0].mod_revision == mod2 &&
		      strcmp((char *)res.ops[0].range.kvs[0].value, "v2") == 0);
		etcd_txn_result_clear(&res);
		CHECK(strcmp(get(kv, "t/new", NULL), "v2") == 0);

		/* VALUE and VERSION compares; several ops in one branch */
		{
			struct etcd_compare two[] = {
				{ .key = "t/new",
				  .key_len = 5,
				  .target = ETCD_TARGET_VALUE,
				  .cmp = ETCD_EQUAL,
				  .value = "v2",
				  .value_len = 2 },
				{ .key = "t/new",
				  .key_len = 5,
				  .target = ETCD_TARGET_VERSION,
				  .cmp = ETCD_GREATER,
				  .number = 1 },
			};
			struct etcd_op ops[] = {
				{ .type = ETCD_OP_DELETE,
				  .range = { .key = "t/new", .key_len = 5 } },
				{ .type = ETCD_OP_RANGE,
				  .range = { .key = "t/",
				             .key_len = 2,
				             .prefix = true,
				             .count_only = true } },
			};
			struct etcd_txn v = {
				.compare = two, .n_compare = 2, .success = ops, .n_success = 2
			};

			REQUIRE(etcd_kv_txn(kv, &v, http_deadline(10000), &res, &st) == 0);
			CHECK(res.succeeded);
			CHECK(res.n == 2 && res.ops[0].type == ETCD_OP_DELETE &&
			      res.ops[0].deleted == 1 && res.ops[1].type == ETCD_OP_RANGE &&
			      res.ops[1].range.count == 3);
			etcd_txn_result_clear(&res);
		}
	}
	CHECK(strcmp(get(kv, "t/new", NULL), "") == 0);
}

static void test_delete_lease_status(struct etcd_kv *kv)
{
	struct etcd_range one = { .key = "t/b", .key_len = 3 };
	struct etcd_range all = { .key = "t/", .key_len = 2, .prefix = true };
	struct etcd_member_status ms;
	struct etcd_kv_pair p = { 0 };
	int64_t deleted = -1, rev = 0, id = 0, ttl = 0;

	CHECK_EQ(etcd_kv_delete(kv, &one, http_deadline(10000), &deleted, &rev, NULL), 0);
	CHECK_EQ(deleted, 1);
	CHECK(strcmp(get(kv, "t/b", NULL), "") == 0);
	CHECK_EQ(etcd_kv_delete(kv, &one, http_deadline(10000), &deleted, NULL, NULL), 0);
	CHECK_EQ(deleted, 0);
	CHECK_EQ(etcd_kv_delete(kv, &all, http_deadline(10000), &deleted, NULL, NULL), 0);
	CHECK_EQ(deleted, 2);
	CHECK(strcmp(get(kv, "u/x", NULL), "9") == 0);

	CHECK_EQ(etcd_kv_lease_grant(kv, 60, http_deadline(10000), &id, &ttl, NULL), 0);
	CHECK(id != 0 && ttl == 60);
	CHECK_EQ(etcd_kv_put(kv, S("l/k"), S("leased"), id, http_deadline(10000), NULL, NULL), 0);
	CHECK(strcmp(get(kv, "l/k", &p), "leased") == 0);
	CHECK_EQ(p.lease, id);
	etcd_kv_pair_clear(&p);
	ttl = 0;
	CHECK_EQ(etcd_kv_lease_keepalive(kv, id, http_deadline(10000), &ttl, NULL), 0);
	CHECK(ttl > 0);
	CHECK_EQ(etcd_kv_lease_revoke(kv, id, http_deadline(10000), NULL), 0);
	CHECK(strcmp(get(kv, "l/k", NULL), "") == 0);
	CHECK_EQ(etcd_kv_lease_keepalive(kv, id, http_deadline(10000), &ttl, NULL), -ENOENT);

	REQUIRE(etcd_kv_status(kv, http_deadline(10000), &ms, NULL) == 0);
	CHECK(ms.revision > 0 && ms.leader != 0 && ms.member_id != 0 && ms.cluster_id != 0);
	CHECK(strncmp(ms.version, "3.", 2) == 0);
}

/* --- watches --- */

#define EVENTS_MAX 64

struct watcher {
	struct etcd_kv *kv;
	struct etcd_watch w;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* protected by lock: */
	bool created, done;
	int result;
	struct etcd_watch_end end;
	int n;
	struct {
		char key[32], value[32];
		enum etcd_event_type type;
		int64_t at_ms, mod_revision;
	} ev[EVENTS_MAX];
};

static int on_batch(const struct etcd_watch_batch *b, void *arg)
{
	struct watcher *x = arg;

	pthread_mutex_lock(&x->lock);
	x->created |= b->created;
	for (size_t i = 0; i < b->n && x->n < EVENTS_MAX; i++) {
		const struct etcd_event *e = &b->events[i];

		snprintf(x->ev[x->n].key, sizeof(x->ev[0].key), "%s", (const char *)e->kv.key);
		snprintf(x->ev[x->n].value, sizeof(x->ev[0].value), "%s",
		         e->kv.value ? (const char *)e->kv.value : "");
		x->ev[x->n].type = e->type;
		x->ev[x->n].mod_revision = e->kv.mod_revision;
		x->ev[x->n].at_ms = http_now_ms();
		x->n++;
	}
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

static void *watch_main(void *arg)
{
	struct watcher *x = arg;
	struct etcd_watch_end end;
	struct http_status st;
	int r = etcd_kv_watch(x->kv, &x->w, on_batch, x, &end, &st);

	pthread_mutex_lock(&x->lock);
	x->done = true;
	x->result = r;
	x->end = end;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	fprintf(stderr, "watch ended: %d: %s\n", r, st.reason);
	return NULL;
}

static struct watcher *watch_start(struct etcd_kv *kv, const char *prefix, int64_t from)
{
	struct watcher *x = calloc(1, sizeof(*x));

	REQUIRE(x != NULL);
	x->kv = kv;
	x->w.range.key = prefix;
	x->w.range.key_len = strlen(prefix);
	x->w.range.prefix = true;
	x->w.start_revision = from;
	x->w.idle_timeout_ms = 60000;
	REQUIRE(http_cancel_new(&x->w.cancel) == 0);
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	REQUIRE(pthread_create(&x->thread, NULL, watch_main, x) == 0);
	return x;
}

/* waits up to ms for pred (with x->lock held); its value */
#define WAIT_FOR(x, ms, pred)                                                                      \
	({                                                                                         \
		int64_t _end = http_now_ms() + (ms);                                               \
		bool _ok;                                                                          \
		pthread_mutex_lock(&(x)->lock);                                                    \
		while (!(_ok = (pred)) && http_now_ms() < _end) {                                  \
			struct timespec _ts;                                                       \
			clock_gettime(CLOCK_REALTIME, &_ts);                                       \
			_ts.tv_nsec += 20000000;                                                   \
			if (_ts.tv_nsec >= 1000000000) {                                           \
				_ts.tv_sec++;                                                      \
				_ts.tv_nsec -= 1000000000;                                         \
			}                                                                          \
			pthread_cond_timedwait(&(x)->cond, &(x)->lock, &_ts);                      \
		}                                                                                  \
		pthread_mutex_unlock(&(x)->lock);                                                  \
		_ok;                                                                               \
	})

static int watch_stop(struct watcher *x)
{
	int r;

	http_cancel(x->w.cancel);
	pthread_join(x->thread, NULL);
	r = x->result;
	http_cancel_free(x->w.cancel);
	pthread_cond_destroy(&x->cond);
	pthread_mutex_destroy(&x->lock);
	free(x);
	return r;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* Puts from another client (endpoints the other way round) reach the
 * watch; the median delay must be under a second. */
static void test_watch(struct etcd_kv *kv)
{
	struct etcd_kv *other = open_kv(eps_reversed, 3);
	struct watcher *x = watch_start(kv, "w/", 0);
	long long delay[10];
	int got = 0;

	REQUIRE(WAIT_FOR(x, 10000, x->created));
	for (int i = 0; i < 10; i++) {
		char k[16], v[16];
		int64_t t0, rev = 0;

		snprintf(k, sizeof(k), "w/k%d", i);
		snprintf(v, sizeof(v), "value %d", i);
		t0 = http_now_ms();
		REQUIRE(put(other, k, v, &rev) == 0);
		if (!WAIT_FOR(x, 10000, x->n > i)) {
			CHECK(!"watch event within 10 s");
			break;
		}
		CHECK(strcmp(x->ev[i].key, k) == 0 && strcmp(x->ev[i].value, v) == 0);
		CHECK_EQ(x->ev[i].type, ETCD_EVENT_PUT);
		CHECK_EQ(x->ev[i].mod_revision, rev);
		delay[got++] = x->ev[i].at_ms - t0;
	}
	if (got) {
		qsort(delay, (size_t)got, sizeof(delay[0]), cmp_ll);
		fprintf(stderr, "watch delay of %d puts: median %lld ms, max %lld ms\n", got,
		        delay[got / 2], delay[got - 1]);
		CHECK(delay[got / 2] < 1000);
	}
	{
		struct etcd_range q = { .key = "w/k0", .key_len = 4 };

		CHECK_EQ(etcd_kv_delete(other, &q, http_deadline(10000), NULL, NULL, NULL), 0);
		CHECK(WAIT_FOR(x, 10000, x->n > 10));
		CHECK(x->n > 10 && x->ev[10].type == ETCD_EVENT_DELETE &&
		      strcmp(x->ev[10].key, "w/k0") == 0);
	}
	CHECK_EQ(watch_stop(x), -ECANCELED);
	etcd_kv_free(other);
}

static int count_batches(const struct etcd_watch_batch *b, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* A watch from before the compacted revision is told so. */
static void test_compacted(struct etcd_kv *kv)
{
	struct etcd_watch w = { .range = { .key = "c/", .key_len = 2, .prefix = true },
		                .idle_timeout_ms = 30000 };
	struct etcd_range q = { .key = "c/x", .key_len = 3 };
	struct etcd_range_result res;
	struct etcd_watch_end end;
	struct http_status st;
	int64_t first = 0, last = 0;
	int batches = 0;

	CHECK_EQ(put(kv, "c/x", "1", &first), 0);
	CHECK_EQ(put(kv, "c/x", "2", NULL), 0);
	CHECK_EQ(put(kv, "c/x", "3", &last), 0);
	REQUIRE(etcd_kv_compact(kv, last, true, http_deadline(10000), &st) == 0);
	CHECK_EQ(etcd_kv_compact(kv, last, true, http_deadline(10000), &st), -EINVAL);
	q.revision = first;
	CHECK_EQ(etcd_kv_range(kv, &q, http_deadline(10000), &res, &st), -EINVAL);
	w.start_revision = first;
	CHECK_EQ(etcd_kv_watch(kv, &w, count_batches, &batches, &end, &st), -ESTALE);
	CHECK_EQ(end.compact_revision, last);
	fprintf(stderr, "compacted watch: %s\n", st.reason);
}

/* --- members dying --- */

static void test_failover(struct etcd_kv *kv)
{
	struct etcd_kv *only1 = open_kv(eps, 1);
	struct etcd_kv *other = open_kv(eps_reversed, 3);
	struct watcher *x;
	int64_t rev = 0;

	/* everything on member 1 to begin with */
	CHECK(strcmp(get(kv, "u/x", NULL), "9") == 0);
	CHECK_EQ(http_client_endpoint(etcd_kv_http(kv)), 0);
	x = watch_start(kv, "f/", 0);
	REQUIRE(WAIT_FOR(x, 10000, x->created));

	member("kill", 1);
	/* the watch on member 1 ends (not hangs); kv moves on: a read at
	 * once (retried through the election if member 1 led), then a write.
	 * (A write sent while the election runs can fail, ambiguously, with
	 * etcd's "request timed out": one not retried is then -EIO.) */
	CHECK(WAIT_FOR(x, 30000, x->done));
	CHECK(x->result < 0 && x->result != -ECANCELED);
	CHECK(strcmp(get(kv, "u/x", NULL), "9") == 0);
	CHECK(http_client_endpoint(etcd_kv_http(kv)) != 0);
	CHECK_EQ(put(kv, "f/after-kill", "ok", &rev), 0);
	CHECK(strcmp(get(kv, "f/after-kill", NULL), "ok") == 0);
	CHECK_EQ(put(other, "f/missed", "m", NULL), 0);
	/* resuming from the last revision seen delivers what was missed */
	{
		int64_t from = x->end.last_revision + 1;

		watch_stop(x);
		x = watch_start(kv, "f/", from);
		CHECK(WAIT_FOR(x, 10000, x->n >= 2));
		CHECK(x->n >= 2 && strcmp(x->ev[0].key, "f/after-kill") == 0 &&
		      strcmp(x->ev[1].key, "f/missed") == 0);
		CHECK_EQ(watch_stop(x), -ECANCELED);
	}

	member("restart", 1);
	CHECK_EQ(put(only1, "f/member1-back", "ok", NULL), 0);
	CHECK(strcmp(get(only1, "f/missed", NULL), "m") == 0);
	etcd_kv_free(only1);
	etcd_kv_free(other);
}

struct timed {
	int r;
	int64_t ms;
	char reason[HTTP_REASON_MAX];
};

#define TIMED(out, call)                                                                           \
	do {                                                                                       \
		struct http_status _st;                                                            \
		int64_t _t0 = http_now_ms();                                                       \
		(out).r = (call);                                                                  \
		(out).ms = http_now_ms() - _t0;                                                    \
		snprintf((out).reason, sizeof((out).reason), "%s", _st.reason);                    \
	} while (0)

static void check_fails_in_time(const char *what, const struct timed *t, unsigned deadline)
{
	fprintf(stderr, "quorum lost: %s: %d after %lld ms: %s\n", what, t->r, (long long)t->ms,
	        t->reason);
	CHECK(t->r == -ETIMEDOUT || t->r == -EIO);
	CHECK(t->ms < deadline + 5000); /* its deadline, and no hang */
}

static void test_quorum_loss(struct etcd_kv *kv)
{
	enum { D = 3000 };
	struct etcd_range q = { .key = "u/x", .key_len = 3 };
	struct etcd_range_result res = { 0 };
	struct etcd_compare absent = { .key = "q/new", .key_len = 5, .target = ETCD_TARGET_CREATE };
	struct etcd_op create = { .type = ETCD_OP_PUT,
		                  .range = { .key = "q/new", .key_len = 5 },
		                  .value = "x",
		                  .value_len = 1 };
	struct etcd_txn t = {
		.compare = &absent, .n_compare = 1, .success = &create, .n_success = 1
	};
	struct etcd_txn_result tres = { 0 };
	struct timed a, b, c;
	struct watcher *x;

	member("kill", 2);
	member("kill", 3);
	TIMED(a, etcd_kv_range(kv, &q, http_deadline(D), &res, &_st));
	check_fails_in_time("range", &a, D);
	TIMED(b, etcd_kv_put(kv, S("q/put"), S("x"), 0, http_deadline(D), NULL, &_st));
	check_fails_in_time("put", &b, D);
	TIMED(c, etcd_kv_txn(kv, &t, http_deadline(D), &tres, &_st));
	check_fails_in_time("txn", &c, D);
	/* the survivor's own (maybe stale) view still answers */
	q.serializable = true;
	CHECK_EQ(etcd_kv_range(kv, &q, http_deadline(D), &res, NULL), 0);
	CHECK(res.n == 1 && strcmp((char *)res.kvs[0].value, "9") == 0);
	etcd_range_result_clear(&res);
	/* a watch does not hang either: etcd ends it (no leader) */
	x = watch_start(kv, "f/", 0);
	CHECK(WAIT_FOR(x, 40000, x->done));
	fprintf(stderr, "quorum lost: watch: %d\n", x->result);
	CHECK(x->result < 0 && x->result != -ECANCELED);
	watch_stop(x);

	/* quorum back: writes work again, what was there is intact.  (A put
	 * that timed out above may still be applied now: etcd's business,
	 * which is why the store writes with CAS transactions.) */
	member("restart", 2);
	member("restart", 3);
	CHECK_EQ(put(kv, "q/after", "back", NULL), 0);
	CHECK(strcmp(get(kv, "q/after", NULL), "back") == 0);
	CHECK(strcmp(get(kv, "u/x", NULL), "9") == 0);
}

/* etcd auth: a login, its token in every request, a lapsed token
 * replaced by logging in again, a bad password refused.  Last: it turns
 * auth on for the cluster. */
static void test_auth(void)
{
	struct etcd_kv *kv = open_kv(eps, 3);
	struct http_status st;
	pid_t pid;
	int status;

	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* etcdctl's own output is noise here */
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("sh", "sh", "-c",
		       "etcdctl --endpoints \"$0\" user add root --new-user-password=s3cret-pw "
		       "--interactive=false && etcdctl --endpoints \"$0\" auth enable",
		       etcd_cluster_urls[0], (char *)NULL);
		_exit(127);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);

	CHECK(strcmp(get(kv, "u/x", NULL), "?") == 0); /* no login: refused */
	CHECK_EQ(put(kv, "a/x", "1", NULL), -EACCES);
	CHECK_EQ(etcd_kv_authenticate(kv, "root", "wrong", http_deadline(10000), &st), -EACCES);
	CHECK(strstr(st.reason, "wrong") == NULL);
	CHECK_EQ(etcd_kv_authenticate(kv, "root", "s3cret-pw", http_deadline(10000), &st), 0);
	CHECK_EQ(put(kv, "a/x", "1", NULL), 0);
	CHECK(strcmp(get(kv, "a/x", NULL), "1") == 0);
	/* a token etcd no longer knows: one new login, then the call */
	CHECK_EQ(http_client_set_auth(etcd_kv_http(kv), "lapsed-token"), 0);
	CHECK(strcmp(get(kv, "u/x", NULL), "9") == 0);
	CHECK_EQ(put(kv, "a/x", "2", NULL), 0);
	etcd_kv_free(kv);
}

int main(void)
{
	struct etcd_kv *kv;
	int64_t t0 = http_now_ms();

	signal(SIGPIPE, SIG_IGN);
	etcd_cluster_start("test_etcd_kv");
	endpoints_from_cluster();
	fprintf(stderr, "cluster up in %lld ms: %s %s %s\n", (long long)(http_now_ms() - t0),
	        eps[0], eps[1], eps[2]);
	kv = open_kv(eps, 3);
	test_put_get_range(kv);
	test_txn(kv);
	test_delete_lease_status(kv);
	test_watch(kv);
	test_compacted(kv);
	test_failover(kv);
	test_quorum_loss(kv);
	etcd_kv_free(kv);
	test_auth();
	etcd_cluster_stop_all();
	fprintf(stderr, "test_etcd_kv: %lld ms\n", (long long)(http_now_ms() - t0));
	return harness_result("test_etcd_kv");
}
