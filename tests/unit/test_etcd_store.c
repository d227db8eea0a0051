/* SPDX-License-Identifier: MIT */
/* backend/etcd.c against a real 3-member etcd cluster on 127.0.0.1,
 * started and stopped by tests/tools/etcd-cluster ($ETCD_CLUSTER): the
 * store ops, CAS, versions, two handles on one prefix (concurrent puts:
 * one wins, no lost update), wrong key, second init, tampering through
 * etcd_kv directly, no plaintext in etcd.  Skips (77) only when etcd is not
 * installed.  No timing assertions. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include <sodium.h>

#include "crypto.h"
#include "etcd.h"
#include "etcd_kv.h"
#include "harness.h"
#include "etcd_cluster.h"
#include "http.h"
#include "store.h"

static char endpoints_line[512]; /* H:P,H:P,H:P, for etcd://… */

static void endpoints_from_cluster(void)
{
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		n += (size_t)snprintf(endpoints_line + n, sizeof(endpoints_line) - n, "%s%s",
		                      i ? "," : "", etcd_cluster_urls[i] + strlen("http://"));
}

static uint8_t *key_a, *key_b;

static char *source(const char *prefix)
{
	char *s = NULL;
	REQUIRE(asprintf(&s, "etcd://%s/%s", endpoints_line, prefix) > 0);
	return s;
}

static struct etcd_kv *raw_kv(void)
{
	const char *eps[3] = { etcd_cluster_urls[0], etcd_cluster_urls[1], etcd_cluster_urls[2] };
	struct etcd_kv_config cfg = { .endpoints = eps,
		                      .n_endpoints = 3,
		                      .connect_timeout_ms = 2000,
		                      .attempt_timeout_ms = 4000,
		                      .retries = 3 };
	struct etcd_kv *kv = NULL;
	REQUIRE(etcd_kv_open(&cfg, &kv) == 0);
	return kv;
}

static int open_store(const char *src, const uint8_t *key, unsigned keep, struct store **ret)
{
	struct store_config cfg = { .source = src, .key = key, .keep_versions = keep };
	return etcd_store_ops.open(&cfg, ret);
}

static const struct labels no_labels = { 0 };

static int create(struct store *s, const char *id, const char *value, struct secret_meta *m)
{
	struct secret_meta tmp = { 0 };
	int r = etcd_store_ops.create(s, id, 1u << SCOPE_AI_AGENT, &no_labels,
	                              (const uint8_t *)value, strlen(value), m ? m : &tmp);
	secret_meta_clear(&tmp);
	return r;
}

static int put(struct store *s, const char *id, uint64_t inc, uint64_t base, const char *value,
               struct secret_meta *m)
{
	struct secret_meta tmp = { 0 };
	int r = etcd_store_ops.put_value(s, id, inc, base, (const uint8_t *)value, strlen(value),
	                                 m ? m : &tmp);
	secret_meta_clear(&tmp);
	return r;
}

/* value of id (version ver) equals want */
static bool value_is(struct store *s, const char *id, uint64_t ver, const char *want)
{
	struct secret_value *v = NULL;
	int r = etcd_store_ops.get_value(s, id, 0, ver, &v);
	bool ok = r == 0 && v->len == strlen(want) && memcmp(v->data, want, v->len) == 0;
	if (!ok)
		fprintf(stderr, "value of %s v%llu: r=%d\n", id, (unsigned long long)ver, r);
	secret_value_free(v);
	return ok;
}

static int count_cb(void *ud, const struct secret_meta *m)
{
	(void)m;
	(*(int *)ud)++;
	return 0;
}

static int count(struct store *s)
{
	int n = 0;
	CHECK_EQ(etcd_store_ops.list(s, count_cb, &n), 0);
	return n;
}

/* --- tests --- */

static void test_init(void)
{
	char *src = source("t/init");
	char why[512];
	struct store *s = NULL;

	CHECK_EQ(open_store(src, key_a, 0, &s), -ENOENT);
	CHECK_EQ(etcd_store_init(src, NULL, key_a, why, sizeof(why)), 0);
	/* a second init on the same prefix is refused, with a reason */
	CHECK_EQ(etcd_store_init(src, NULL, key_b, why, sizeof(why)), -EEXIST);
	CHECK(strstr(why, "already holds") != NULL);
	CHECK_EQ(open_store(src, key_b, 0, &s), -EKEYREJECTED);
	REQUIRE(open_store(src, key_a, 0, &s) == 0);
	CHECK_EQ(count(s), 0);
	etcd_store_ops.close(s);
	CHECK_EQ(etcd_store_init("etcd://nohostport", NULL, key_a, why, sizeof(why)), -EINVAL);
	free(src);
}

static void test_ops(void)
{
	char *src = source("t/ops");
	struct store *s = NULL;
	struct secret_meta m = { 0 }, m2 = { 0 };
	struct secret_value *v = NULL;
	struct secret_version *vs = NULL;
	size_t nv = 0;
	char val[32];

	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 3, &s) == 0);

	CHECK_EQ(create(s, "API_KEY", "one", &m), 0);
	CHECK_EQ(m.version, 1);
	CHECK(m.incarnation >= 1);
	CHECK_EQ(m.incarnation, m.revision);
	CHECK_EQ(m.size, 3);
	CHECK_EQ(create(s, "API_KEY", "again", NULL), -EEXIST);
	CHECK_EQ(create(s, "bad id", "x", NULL), -EINVAL);
	CHECK(value_is(s, "API_KEY", 0, "one"));

	/* CAS: a put on the current base wins, one on a stale base is -ESTALE */
	uint64_t base = m.value_revision, inc = m.incarnation;
	CHECK_EQ(put(s, "API_KEY", inc, base, "two", &m2), 0);
	CHECK_EQ(m2.version, 2);
	CHECK(m2.value_revision > base);
	CHECK_EQ(put(s, "API_KEY", inc, base, "stale", NULL), -ESTALE);
	CHECK_EQ(put(s, "API_KEY", inc + 1000, 0, "other life", NULL), -ESTALE);
	CHECK_EQ(put(s, "NOPE", 0, 0, "x", NULL), -ENOENT);
	CHECK(value_is(s, "API_KEY", 0, "two"));
	secret_meta_clear(&m2);

	/* versions: keep 3 */
	for (int i = 3; i <= 6; i++) {
		snprintf(val, sizeof(val), "value %d", i);
		CHECK_EQ(put(s, "API_KEY", inc, 0, val, NULL), 0);
	}
	CHECK_EQ(etcd_store_ops.list_versions(s, "API_KEY", inc, &vs, &nv), 0);
	CHECK_EQ(nv, 3);
	if (nv == 3) {
		CHECK_EQ(vs[0].version, 4);
		CHECK_EQ(vs[2].version, 6);
		CHECK_EQ(vs[2].size, strlen("value 6"));
	}
	free(vs);
	CHECK(value_is(s, "API_KEY", 4, "value 4"));
	CHECK(value_is(s, "API_KEY", 0, "value 6"));
	CHECK_EQ(etcd_store_ops.get_value(s, "API_KEY", 0, 3, &v), -ENOENT);
	CHECK_EQ(etcd_store_ops.get_value(s, "API_KEY", 0, 7, &v), -ENOENT);

	/* labels and scopes */
	struct labels l = { 0 };
	CHECK_EQ(labels_set(&l, "team", "payments"), 0);
	CHECK_EQ(etcd_store_ops.set_labels(s, "API_KEY", inc, &l, &m2), 0);
	CHECK(labels_get(&m2.labels, "team") &&
	      strcmp(labels_get(&m2.labels, "team"), "payments") == 0);
	secret_meta_clear(&m2);
	CHECK_EQ(etcd_store_ops.set_scopes(s, "API_KEY", inc,
	                                   (1u << SCOPE_AI_AGENT) | (1u << SCOPE_MCP_SERVER), &m2),
	         0);
	secret_meta_clear(&m2);
	CHECK_EQ(etcd_store_ops.set_scopes(s, "API_KEY", inc, 0, &m2), -EINVAL);
	CHECK_EQ(etcd_store_ops.stat(s, "API_KEY", &m2), 0);
	CHECK_EQ(m2.scopes, (1u << SCOPE_AI_AGENT) | (1u << SCOPE_MCP_SERVER));
	CHECK(labels_get(&m2.labels, "team") != NULL);
	CHECK_EQ(m2.version, 6);
	secret_meta_clear(&m2);
	labels_clear(&l);
	/* the value survives metadata changes */
	CHECK(value_is(s, "API_KEY", 0, "value 6"));

	/* rename onto a new name, and onto an existing one */
	CHECK_EQ(create(s, "OTHER", "other", NULL), 0);
	CHECK_EQ(count(s), 2);
	struct store_change gone = { 0 };
	secret_meta_clear(&m);
	CHECK_EQ(etcd_store_ops.stat(s, "API_KEY", &m2), 0);
	CHECK_EQ(etcd_store_ops.rename(s, "API_KEY", m2.incarnation, m2.revision, "MOVED", 0,
	                               1u << SCOPE_AI_AGENT, &no_labels, &gone, &m),
	         0);
	CHECK_EQ(gone.kind, STORE_DELETED);
	CHECK_EQ(gone.meta.incarnation, m2.incarnation);
	CHECK_EQ(m.version, 1);
	CHECK(value_is(s, "MOVED", 0, "value 6"));
	CHECK_EQ(etcd_store_ops.stat(s, "API_KEY", &m2), -ENOENT);
	store_change_clear(&gone);
	secret_meta_clear(&m2);
	uint64_t oinc = 0;
	CHECK_EQ(etcd_store_ops.stat(s, "OTHER", &m2), 0);
	oinc = m2.incarnation;
	secret_meta_clear(&m2);
	CHECK_EQ(
	    etcd_store_ops.rename(s, "MOVED", m.incarnation, 0, "OTHER", oinc, 0, NULL, &gone, &m2),
	    0);
	CHECK_EQ(m2.version, 2);
	CHECK(value_is(s, "OTHER", 0, "value 6"));
	CHECK(value_is(s, "OTHER", 1, "other"));
	store_change_clear(&gone);
	secret_meta_clear(&m2);
	secret_meta_clear(&m);
	CHECK_EQ(count(s), 1);

	/* delete, and a new life of the same ID */
	CHECK_EQ(etcd_store_ops.delete_secret(s, "OTHER", oinc + 1000, &gone), -ESTALE);
	CHECK_EQ(etcd_store_ops.delete_secret(s, "OTHER", oinc, &gone), 0);
	CHECK_EQ(gone.kind, STORE_DELETED);
	store_change_clear(&gone);
	CHECK_EQ(etcd_store_ops.delete_secret(s, "OTHER", 0, &gone), -ENOENT);
	CHECK_EQ(count(s), 0);
	CHECK_EQ(create(s, "OTHER", "reborn", &m), 0);
	CHECK(m.incarnation > oinc);
	CHECK_EQ(m.version, 1);
	CHECK(value_is(s, "OTHER", 0, "reborn"));
	CHECK_EQ(etcd_store_ops.get_value(s, "OTHER", oinc, 0, &v), -ENOENT);
	secret_meta_clear(&m);
	etcd_store_ops.close(s);

	/* reopen: the digest matches after all that */
	REQUIRE(open_store(src, key_a, 3, &s) == 0);
	CHECK_EQ(count(s), 1);
	etcd_store_ops.close(s);
	free(src);
}

/* --- two handles --- */

struct racer {
	struct store *s;
	uint64_t inc, base;
	const char *value;
	pthread_barrier_t *go;
	int r;
};

static void *race(void *arg)
{
	struct racer *c = arg;
	pthread_barrier_wait(c->go);
	c->r = put(c->s, "SHARED", c->inc, c->base, c->value, NULL);
	return NULL;
}

static void test_two_handles(void)
{
	char *src = source("t/two");
	struct store *a = NULL, *b = NULL;
	struct secret_meta m = { 0 };
	char va[32], vb[32];

	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 5, &a) == 0);
	REQUIRE(open_store(src, key_a, 5, &b) == 0);
	CHECK_EQ(create(a, "SHARED", "from a", &m), 0);
	CHECK(value_is(b, "SHARED", 0, "from a"));
	CHECK_EQ(count(b), 1);
	/* concurrent CAS puts on the same base: exactly one wins each round */
	int wins_a = 0, wins_b = 0;
	uint64_t inc = m.incarnation;
	for (int round = 0; round < 10; round++) {
		struct secret_meta cur = { 0 };
		pthread_barrier_t go;
		pthread_t ta, tb;
		CHECK_EQ(etcd_store_ops.stat(a, "SHARED", &cur), 0);
		snprintf(va, sizeof(va), "a %d", round);
		snprintf(vb, sizeof(vb), "b %d", round);
		pthread_barrier_init(&go, NULL, 2);
		struct racer ra = { a, inc, cur.value_revision, va, &go, 0 };
		struct racer rb = { b, inc, cur.value_revision, vb, &go, 0 };
		pthread_create(&ta, NULL, race, &ra);
		pthread_create(&tb, NULL, race, &rb);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&go);
		CHECK((ra.r == 0) != (rb.r == 0));
		CHECK(ra.r == 0 || ra.r == -ESTALE);
		CHECK(rb.r == 0 || rb.r == -ESTALE);
		wins_a += ra.r == 0;
		wins_b += rb.r == 0;
		CHECK(value_is(b, "SHARED", 0, ra.r == 0 ? va : vb));
		CHECK(value_is(a, "SHARED", 0, ra.r == 0 ? va : vb));
		secret_meta_clear(&cur);
		CHECK_EQ(etcd_store_ops.stat(b, "SHARED", &cur), 0);
		CHECK_EQ(cur.version, (uint64_t)round + 2);
		secret_meta_clear(&cur);
	}
	CHECK_EQ(wins_a + wins_b, 10);
	/* unconditional puts from both: both land, one after the other */
	pthread_barrier_t go;
	pthread_t ta, tb;
	pthread_barrier_init(&go, NULL, 2);
	struct racer ra = { a, inc, 0, "last a", &go, 0 }, rb = { b, inc, 0, "last b", &go, 0 };
	pthread_create(&ta, NULL, race, &ra);
	pthread_create(&tb, NULL, race, &rb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&go);
	CHECK_EQ(ra.r, 0);
	CHECK_EQ(rb.r, 0);
	secret_meta_clear(&m);
	CHECK_EQ(etcd_store_ops.stat(a, "SHARED", &m), 0);
	CHECK_EQ(m.version, 13);
	secret_meta_clear(&m);
	/* different secrets from both at once (they share the head) */
	CHECK_EQ(create(b, "FROM_B", "b", NULL), 0);
	CHECK_EQ(count(a), 2);
	etcd_store_ops.close(a);
	etcd_store_ops.close(b);
	REQUIRE(open_store(src, key_a, 5, &a) == 0);
	etcd_store_ops.close(a);
	free(src);
}

/* --- tampering through etcd directly --- */

static char *raw_get(struct etcd_kv *kv, const char *key, size_t *len)
{
	struct etcd_range_result res = { 0 };
	struct etcd_range q = { .key = key, .key_len = strlen(key) };
	char *out = NULL;
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	if (res.n == 1) {
		out = malloc(res.kvs[0].value_len + 1);
		memcpy(out, res.kvs[0].value, res.kvs[0].value_len + 1);
		*len = res.kvs[0].value_len;
	}
	etcd_range_result_clear(&res);
	return out;
}

static void raw_put(struct etcd_kv *kv, const char *key, const void *v, size_t len)
{
	REQUIRE(etcd_kv_put(kv, key, strlen(key), v, len, 0, http_deadline(10000), NULL, NULL) ==
	        0);
}

static void raw_delete_prefix(struct etcd_kv *kv, const char *p, bool prefix)
{
	struct etcd_range q = { .key = p, .key_len = strlen(p), .prefix = prefix };
	REQUIRE(etcd_kv_delete(kv, &q, http_deadline(10000), NULL, NULL, NULL) == 0);
}

static void test_tamper(void)
{
	struct etcd_kv *kv = raw_kv();
	struct store *s = NULL, *s2 = NULL;
	struct secret_meta m = { 0 };
	struct secret_value *v = NULL;
	size_t len = 0, len1 = 0;
	char key[256], key1[256];

	/* scopes changed in the metadata JSON: stat/get refuse, list leaves it out */
	char *src = source("t/tamper1");
	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 5, &s) == 0);
	CHECK_EQ(create(s, "MOVE_ME", "secret-scoped", &m), 0);
	CHECK_EQ(create(s, "KEEP", "kept", NULL), 0);
	snprintf(key, sizeof(key), "/t/tamper1/s/MOVE_ME");
	char *json = raw_get(kv, key, &len);
	REQUIRE(json);
	char *sc = strstr(json, "\"scopes\":4");
	REQUIRE(sc);
	sc[strlen("\"scopes\":")] = '1';
	raw_put(kv, key, json, len);
	free(json);
	CHECK_EQ(etcd_store_ops.stat(s, "MOVE_ME", &m), -EIO);
	CHECK_EQ(etcd_store_ops.get_value(s, "MOVE_ME", 0, 0, &v), -EIO);
	CHECK_EQ(put(s, "MOVE_ME", 0, 0, "x", NULL), -EIO);
	CHECK_EQ(count(s), 1);
	CHECK(value_is(s, "KEEP", 0, "kept"));
	etcd_store_ops.close(s);
	secret_meta_clear(&m);
	free(src);

	/* an old version's ciphertext put as the current one */
	src = source("t/tamper2");
	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 5, &s) == 0);
	CHECK_EQ(create(s, "ROLLBACK", "old value", &m), 0);
	CHECK_EQ(put(s, "ROLLBACK", 0, 0, "new value", NULL), 0);
	snprintf(key1, sizeof(key1), "/t/tamper2/v/ROLLBACK/%020llu/%020llu",
	         (unsigned long long)m.incarnation, 1ULL);
	snprintf(key, sizeof(key), "/t/tamper2/v/ROLLBACK/%020llu/%020llu",
	         (unsigned long long)m.incarnation, 2ULL);
	char *old = raw_get(kv, key1, &len1);
	REQUIRE(old);
	raw_put(kv, key, old, len1);
	free(old);
	CHECK_EQ(etcd_store_ops.get_value(s, "ROLLBACK", 0, 0, &v), -EIO);
	CHECK(value_is(s, "ROLLBACK", 1, "old value"));
	/* and a new open refuses the store: its keys no longer sum to the head */
	CHECK_EQ(open_store(src, key_a, 5, &s2), -EIO);
	etcd_store_ops.close(s);
	secret_meta_clear(&m);
	free(src);

	/* one secret's keys deleted: the next open (and list) refuse */
	src = source("t/tamper3");
	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 5, &s) == 0);
	CHECK_EQ(create(s, "GONE", "gone", NULL), 0);
	CHECK_EQ(create(s, "STAYS", "stays", NULL), 0);
	raw_delete_prefix(kv, "/t/tamper3/s/GONE", false);
	raw_delete_prefix(kv, "/t/tamper3/v/GONE/", true);
	int n = 0;
	CHECK_EQ(etcd_store_ops.list(s, count_cb, &n), -EIO);
	CHECK_EQ(open_store(src, key_a, 5, &s2), -EIO);
	/* -o reseal_digest accepts the keys as they are */
	struct store_config cfg = { .source = src, .key = key_a, .reseal_digest = true };
	CHECK_EQ(etcd_store_ops.open(&cfg, &s2), 0);
	etcd_store_ops.close(s2);
	s2 = NULL;
	CHECK_EQ(open_store(src, key_a, 5, &s2), 0);
	CHECK_EQ(count(s2), 1);
	etcd_store_ops.close(s2);
	etcd_store_ops.close(s);
	free(src);

	/* the head changed: refused */
	src = source("t/tamper4");
	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	raw_put(kv, "/t/tamper4/head", "{}", 2);
	CHECK_EQ(open_store(src, key_a, 5, &s2), -EIO);
	free(src);
	etcd_kv_free(kv);
}

/* no plaintext anywhere under the prefix */
static bool mem_has(const uint8_t *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(hay + i, needle, k) == 0)
			return true;
	return false;
}

static void test_no_plaintext(void)
{
	static const char value[] = "PLAINTEXT-sentinel-7f3a9c";
	struct etcd_kv *kv = raw_kv();
	struct store *s = NULL;
	char *src = source("t/plain");
	REQUIRE(etcd_store_init(src, NULL, key_a, NULL, 0) == 0);
	REQUIRE(open_store(src, key_a, 5, &s) == 0);
	CHECK_EQ(create(s, "PLAIN", value, NULL), 0);
	CHECK_EQ(put(s, "PLAIN", 0, 0, value, NULL), 0);
	struct etcd_range_result res = { 0 };
	struct etcd_range q = { .key = "/", .key_len = 1, .prefix = true };
	REQUIRE(etcd_kv_range(kv, &q, http_deadline(10000), &res, NULL) == 0);
	CHECK(res.n > 10);
	for (size_t i = 0; i < res.n; i++) {
		CHECK(!mem_has(res.kvs[i].key, res.kvs[i].key_len, value));
		CHECK(!mem_has(res.kvs[i].value, res.kvs[i].value_len, value));
	}
	etcd_range_result_clear(&res);
	CHECK(value_is(s, "PLAIN", 0, value));
	etcd_store_ops.close(s);
	etcd_kv_free(kv);
	free(src);
}

int main(void)
{
	int64_t t0 = http_now_ms();

	signal(SIGPIPE, SIG_IGN);
	REQUIRE(crypto_init() == 0);
	secret_allow_unlocked(true); /* ASan's mlock; the values are test data */
	key_a = sodium_malloc(STORE_KEY_BYTES);
	key_b = sodium_malloc(STORE_KEY_BYTES);
	REQUIRE(key_a && key_b);
	randombytes_buf(key_a, STORE_KEY_BYTES);
	randombytes_buf(key_b, STORE_KEY_BYTES);
	etcd_cluster_start("test_etcd_store");
	endpoints_from_cluster();
	fprintf(stderr, "cluster up in %lld ms: %s\n", (long long)(http_now_ms() - t0),
	        endpoints_line);
	test_init();
	test_ops();
	test_two_handles();
	test_tamper();
	test_no_plaintext();
	etcd_cluster_stop_all();
	sodium_free(key_a);
	sodium_free(key_b);
	fprintf(stderr, "took %lld ms\n", (long long)(http_now_ms() - t0));
	return harness_result("test_etcd_store");
}
