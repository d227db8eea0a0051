/* SPDX-License-Identifier: MIT */
/*
 * The etcd store (etcd.h): a store under one key prefix of an etcd v3
 * cluster, through etcd_kv.h, sealed with seal.h as the embedded store is.
 *
 * Keys under PREFIX (docs/design.md "The etcd store"):
 *   PREFIX/identity        {"format","store_id","keycheck"} (JSON)
 *   PREFIX/head            {"revision","digest","mac"}: the store's own
 *                          revision counter and digest D (seal.h)
 *   PREFIX/s/ENC(ID)       the secret's metadata, JSON, with its MAC
 *   PREFIX/v/ENC(ID)/INC/VER  one sealed version: u64le revision, i64le
 *                          mtime_ns, u32le size, then seal_value's output;
 *                          INC and VER are 20 decimal digits
 * ENC(ID) is the ID with '/' written as '%' (an ID never holds '%'), so
 * that PREFIX/v/ENC(ID)/ is the prefix of one ID's versions only.
 *
 * Every change reads what it needs in one read-only Txn (the head, and per
 * ID its metadata key and every version key), plans the change from that
 * read (checks, new rows, the digest terms it removes and adds), and
 * commits it in one Txn that compares the mod_revision (or absence) of the
 * head and of every key it replaces or removes.  A Txn that failed its
 * compares lost a race: the change is planned again from a fresh read, so
 * a CAS condition that no longer holds is then -ESTALE.  The compares make
 * a repeat harmless (etcd_kv.h retry_safe); a repeat that reports failure
 * for its own first copy is told by the head it finds (ours, byte for
 * byte: it holds our new D and revision).
 *
 * No lock of the store's own: every call is independent (etcd serialises).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "crypto.h"
#include "etcd.h"
#include "etcd_conn.h"
#include "etcd_kv.h"
#include "etcd_replica.h"
#include "log.h"
#include "seal.h"
#include "store.h"

#define FORMAT_VERSION 1
#define VHDR 20         /* revision, mtime, size */
#define TXN_MAX_OPS 128 /* etcd's --max-txn-ops default */
#define CHANGE_ATTEMPTS 32

static const char keycheck_ad_domain[] = "secretsfs etcd key check v1";
static const char keycheck_plaintext[] = "secretsfs key check: the key is right";

struct store {
	struct etcd_kv *kv;
	char *prefix; /* "/fleet": keys are prefix + "/..." */
	uint8_t store_id[SEAL_STORE_ID_BYTES];
	struct seal_keys *keys;
	unsigned keep_versions;
	bool read_only;
	int64_t stale_ns; /* store_config.stale_ns */

	/* The local replica (etcd_replica.h): values are read from it while it
	 * is current.  own_rev: the etcd revision of this client's latest
	 * change (atomic), which a read waits for, so that a writer reads
	 * what it wrote. */
	struct etcd_replica *rep;
	int64_t own_rev;
	bool watching;
	bool from_cache; /* opened from the sealed cache: etcd was away */
	/* The watch thread's own (batch_fn and idle_fn, one thread): the
	 * digest of every key as the replica has them, checked against the
	 * head of each batch, and the change records made from the last
	 * batch, delivered once the replica is unlocked. */
	struct seal_digest d;
	bool tampered; /* a batch did not match its head: no records since */
	store_change_fn fn;
	void *fn_arg;
	struct store_change *out;
	size_t nout, capout;
};

/* --- small helpers --- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static char *b64(const uint8_t *p, size_t n)
{
	size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(len);
	if (s)
		sodium_bin2base64(s, len, p, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* Decodes exactly n bytes of base64 from a JSON string; false otherwise. */
static bool unb64(const json_t *j, uint8_t *out, size_t n)
{
	const char *s = json_string_value(j);
	size_t got = 0;
	if (!s || sodium_base642bin(out, n, s, strlen(s), NULL, &got, NULL,
	                            sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return got == n;
}

static bool json_u64(const json_t *o, const char *name, uint64_t *ret)
{
	const json_t *j = json_object_get(o, name);
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(j);
	return true;
}

/* --- keys --- */

static char *enc_id(const char *id)
{
	char *e = strdup(id);
	for (char *p = e; p && *p; p++)
		if (*p == '/')
			*p = '%';
	return e;
}

static char *key_fmt(const struct store *s, const char *what, const char *id, uint64_t inc,
                     uint64_t ver)
{
	char *e = id ? enc_id(id) : NULL, *k = NULL;
	int r;
	if (id && !e)
		return NULL;
	if (!id)
		r = asprintf(&k, "%s/%s", s->prefix, what);
	else if (!inc)
		r = asprintf(&k, "%s/%s/%s%s", s->prefix, what, e, what[0] == 'v' ? "/" : "");
	else
		r = asprintf(&k, "%s/v/%s/%020" PRIu64 "/%020" PRIu64, s->prefix, e, inc, ver);
	free(e);
	return r < 0 ? NULL : k;
}

static char *s_key(const struct store *s, const char *id)
{
	return key_fmt(s, "s", id, 0, 0);
}

static char *v_prefix(const struct store *s, const char *id)
{
	return key_fmt(s, "v", id, 0, 0);
}

static char *v_key(const struct store *s, const char *id, uint64_t inc, uint64_t ver)
{
	return key_fmt(s, "v", id, inc, ver);
}

static bool digits20(const char *p, uint64_t *ret)
{
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*ret = v;
	return true;
}

/* Splits a key below PREFIX/: 's' (id set), 'v' (id, inc, ver set), or 0.
 * *ret_id is malloc'ed (decoded). */
static char key_kind(const struct store *s, const struct etcd_kv_pair *p, char **ret_id,
                     uint64_t *inc, uint64_t *ver)
{
	size_t pl = strlen(s->prefix);
	const char *k = (const char *)p->key;
	if (p->key_len < pl + 3 || memcmp(k, s->prefix, pl) != 0 || k[pl] != '/' ||
	    memchr(k, '\0', p->key_len))
		return 0;
	k += pl + 1;
	char kind = k[0];
	if ((kind != 's' && kind != 'v') || k[1] != '/')
		return 0;
	k += 2;
	size_t idlen = kind == 's' ? strlen(k) : strcspn(k, "/");
	if (idlen == 0)
		return 0;
	if (kind == 'v' && (strlen(k + idlen) != 42 || k[idlen] != '/' || k[idlen + 21] != '/' ||
	                    !digits20(k + idlen + 1, inc) || !digits20(k + idlen + 22, ver)))
		return 0;
	char *id = strndup(k, idlen);
	if (!id)
		return 0;
	for (char *c = id; *c; c++)
		if (*c == '%')
			*c = '/';
	*ret_id = id;
	return kind;
}

/* --- metadata rows --- */

struct row {
	struct secret_meta m;
	uint8_t nonce[SEAL_NONCE_BYTES];
	uint8_t mac[SEAL_MAC_BYTES];
	bool shaped;   /* every field parsed and in range */
	bool verified; /* and its MAC holds */
};

static void row_clear(struct row *r)
{
	secret_meta_clear(&r->m);
	memset(r, 0, sizeof(*r));
}

/* Parses a metadata value for id into r (r->shaped, r->verified say how
 * far it got); -ENOMEM only. */
static int row_parse(const struct store *s, const char *id, const uint8_t *val, size_t len,
                     struct row *r)
{
	json_error_t err;
	json_t *o = json_loadb((const char *)val, len, 0, &err);
	uint64_t scopes = 0, size = 0, ct = 0, mt = 0;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	r->m.id = strdup(id);
	if (!r->m.id) {
		json_decref(o);
		return -ENOMEM;
	}
	if (!json_is_object(o))
		goto out;
	/* the incarnation and MAC first: the digest term needs only those */
	if (!json_u64(o, "incarnation", &r->m.incarnation) ||
	    !unb64(json_object_get(o, "mac"), r->mac, SEAL_MAC_BYTES))
		goto out;
	if (!unb64(json_object_get(o, "nonce"), r->nonce, SEAL_NONCE_BYTES) ||
	    !json_u64(o, "scopes", &scopes) || !json_u64(o, "version", &r->m.version) ||
	    !json_u64(o, "value_revision", &r->m.value_revision) ||
	    !json_u64(o, "revision", &r->m.revision) || !json_u64(o, "size", &size) ||
	    !json_u64(o, "ctime_ns", &ct) || !json_u64(o, "mtime_ns", &mt))
		goto out;
	json_t *lo = json_object_get(o, "labels");
	if (!json_is_object(lo) || json_object_size(lo) > LABELS_MAX)
		goto out;
	const char *k;
	json_t *v;
	json_object_foreach(lo, k, v)
	{
		if (!json_is_string(v))
			goto out;
		ret = labels_set(&r->m.labels, k, json_string_value(v));
		if (ret == -ENOMEM)
			goto out;
		if (ret < 0) {
			ret = 0;
			goto out;
		}
	}
	if (scopes > SCOPE_ALL || !secret_scopes_valid((scope_set)scopes) || size == 0 ||
	    size > SECRET_VALUE_MAX || r->m.version == 0 || r->m.incarnation == 0 ||
	    !secret_id_valid_existing(id))
		goto out;
	r->m.scopes = (scope_set)scopes;
	r->m.size = (uint32_t)size;
	r->m.ctime_ns = (int64_t)ct;
	r->m.mtime_ns = (int64_t)mt;
	r->shaped = true;
	r->verified = seal_meta_verify(s->keys, &r->m, r->nonce, r->mac, SEAL_MAC_BYTES) == 0;
out:
	json_decref(o);
	return ret;
}

/* Sets r->mac for r->m and returns the JSON of the row (malloc'ed). */
static int row_json(const struct store *s, struct row *r, char **ret)
{
	int e = seal_meta_mac(s->keys, &r->m, r->nonce, r->mac);
	if (e < 0)
		return e;
	char *mac = b64(r->mac, SEAL_MAC_BYTES), *nonce = b64(r->nonce, SEAL_NONCE_BYTES);
	json_t *labels = json_object(), *o = NULL;
	for (size_t i = 0; labels && i < r->m.labels.n; i++)
		json_object_set_new(labels, r->m.labels.v[i].key,
		                    json_string(r->m.labels.v[i].value));
	if (mac && nonce && labels)
		o = json_pack(
		    "{s:I,s:s,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "incarnation",
		    (json_int_t)r->m.incarnation, "nonce", nonce, "scopes", (json_int_t)r->m.scopes,
		    "labels", labels, "version", (json_int_t)r->m.version, "value_revision",
		    (json_int_t)r->m.value_revision, "revision", (json_int_t)r->m.revision, "size",
		    (json_int_t)r->m.size, "ctime_ns", (json_int_t)r->m.ctime_ns, "mtime_ns",
		    (json_int_t)r->m.mtime_ns, "mac", mac);
	else
		json_decref(labels);
	free(mac);
	free(nonce);
	*ret = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return *ret ? 0 : -ENOMEM;
}

/* The digest term of a stored metadata value (whatever it holds). */
static void term_secret(const struct store *s, struct seal_digest *d, int sign, const char *id,
                        const struct etcd_kv_pair *p)
{
	struct row r;
	if (row_parse(s, id, p->value, p->value_len, &r) == 0 && (r.m.incarnation || r.shaped))
		seal_digest_secret(s->keys, d, sign, id, strlen(id), r.m.incarnation, r.mac,
		                   SEAL_MAC_BYTES);
	else
		seal_digest_secret(s->keys, d, sign, id, strlen(id), 0, p->value, p->value_len);
	row_clear(&r);
}

static uint64_t vrow_revision(const struct etcd_kv_pair *p)
{
	return p->value_len >= VHDR ? get_le(p->value, 8) : 0;
}

static void term_version(const struct store *s, struct seal_digest *d, int sign, const char *id,
                         uint64_t ver, const struct etcd_kv_pair *p)
{
	seal_digest_version(s->keys, d, sign, id, strlen(id), ver, vrow_revision(p));
}

static void row_log(const char *id, const struct row *r, bool left_out)
{
	const char *what = !r->shaped
	                     ? "metadata is damaged or invalid (changed outside secretsfs)"
	                     : "metadata failed authentication (changed outside secretsfs)";
	if (left_out)
		log_warn("etcd store: %.300s: %s: left out", id, what);
	else
		log_error("etcd store: %.300s: %s", id, what);
}

/* --- the head --- */

struct head {
	uint64_t revision;
	struct seal_digest d;
	int64_t mod_revision;
};

static char *head_json(const struct store *s, uint64_t rev, const struct seal_digest *d)
{
	uint8_t mac[SEAL_MAC_BYTES];
	seal_head_mac(s->keys, rev, d, mac);
	char *dg = b64(d->d, SEAL_DIGEST_BYTES), *m = b64(mac, sizeof(mac));
	json_t *o = dg && m ? json_pack("{s:I,s:s,s:s}", "revision", (json_int_t)rev, "digest", dg,
	                                "mac", m)
	                    : NULL;
	char *out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	free(dg);
	free(m);
	return out;
}

/* Parses and verifies the head; -EIO (logged) if missing or not authentic. */
static int head_parse(const struct store *s, const struct etcd_kv_pair *p, struct head *h)
{
	uint8_t mac[SEAL_MAC_BYTES];
	json_t *o = p ? json_loadb((const char *)p->value, p->value_len, 0, NULL) : NULL;
	bool ok = o && json_u64(o, "revision", &h->revision) &&
	          unb64(json_object_get(o, "digest"), h->d.d, SEAL_DIGEST_BYTES) &&
	          unb64(json_object_get(o, "mac"), mac, sizeof(mac)) &&
	          seal_head_verify(s->keys, h->revision, &h->d, mac, sizeof(mac)) == 0;
	json_decref(o);
	if (!ok) {
		log_error("etcd store: %s/head, the store's digest record, is %s: refusing it",
		          s->prefix, p ? "not authentic (changed outside secretsfs)" : "missing");
		return -EIO;
	}
	h->mod_revision = p->mod_revision;
	return 0;
}

/* --- etcd calls --- */

static int kv_fail(const char *what, int r, const struct http_status *st)
{
	log_error("etcd store: %s failed: %s (%s)", what, strerrordesc_np(-r), st->reason);
	return r;
}

static int range_key(struct store *s, const char *key, int64_t rev, int64_t deadline,
                     struct etcd_range_result *res)
{
	struct http_status st = { 0 };
	struct etcd_range q = { .key = key, .key_len = strlen(key), .revision = rev };
	int r = etcd_kv_range(s->kv, &q, deadline, res, &st);
	return r < 0 ? kv_fail("a read", r, &st) : 0;
}

/* Everything under PREFIX/ in one read. */
static int range_all(struct store *s, int64_t deadline, struct etcd_range_result *res)
{
	char *p = NULL;
	struct http_status st = { 0 };
	if (asprintf(&p, "%s/", s->prefix) < 0)
		return -ENOMEM;
	struct etcd_range q = { .key = p, .key_len = strlen(p), .prefix = true };
	int r = etcd_kv_range(s->kv, &q, deadline, res, &st);
	free(p);
	return r < 0 ? kv_fail("a read of the store", r, &st) : 0;
}

/* --- the digest over every key --- */

/* Checks the keys in all against their head; *ret_d (may be NULL) gets
 * their digest. */
static int digest_check(struct store *s, const struct etcd_range_result *all, bool reseal,
                        struct seal_digest *ret_d)
{
	struct seal_digest d = { 0 };
	const struct etcd_kv_pair *hp = NULL;
	uint64_t maxrev = 0, inc, ver;
	char *hk = key_fmt(s, "head", NULL, 0, 0);
	if (!hk)
		return -ENOMEM;
	for (size_t i = 0; i < all->n; i++) {
		const struct etcd_kv_pair *p = &all->kvs[i];
		char *id = NULL;
		if (p->key_len == strlen(hk) && memcmp(p->key, hk, p->key_len) == 0)
			hp = p;
		char kind = key_kind(s, p, &id, &inc, &ver);
		if (kind == 's') {
			term_secret(s, &d, 1, id, p);
		} else if (kind == 'v') {
			term_version(s, &d, 1, id, ver, p);
			if (vrow_revision(p) > maxrev)
				maxrev = vrow_revision(p);
		}
		free(id);
	}
	free(hk);
	struct head h;
	int r = head_parse(s, hp, &h);
	if (r < 0)
		return r;
	if (ret_d)
		*ret_d = d;
	if (seal_digest_equal(&h.d, &d))
		return 0;
	if (!reseal) {
		log_error("etcd store: the keys under %s do not match its authenticated digest: a "
		          "secret's keys were replaced or removed outside secretsfs: refusing to "
		          "open the store (restore the whole prefix from one backup, or, to accept "
		          "the keys as they are, mount once with -o reseal_digest)",
		          s->prefix);
		return -EIO;
	}
	/* -o reseal_digest: the keys as they are, a new head after them */
	uint64_t rev = (h.revision > maxrev ? h.revision : maxrev) + 1;
	char *hv = head_json(s, rev, &d);
	hk = key_fmt(s, "head", NULL, 0, 0);
	if (!hv || !hk) {
		free(hv);
		free(hk);
		return -ENOMEM;
	}
	struct etcd_compare c = { .key = hk,
		                  .key_len = strlen(hk),
		                  .target = ETCD_TARGET_MOD,
		                  .cmp = ETCD_EQUAL,
		                  .number = h.mod_revision };
	struct etcd_op op = { .type = ETCD_OP_PUT,
		              .range = { .key = hk, .key_len = strlen(hk) },
		              .value = hv,
		              .value_len = strlen(hv) };
	struct etcd_txn t = { .compare = &c, .n_compare = 1, .success = &op, .n_success = 1 };
	struct etcd_txn_result res = { 0 };
	struct http_status st = { 0 };
	r = etcd_kv_txn(s->kv, &t, http_deadline(ETCD_STORE_TIMEOUT_MS), &res, &st);
	if (r < 0)
		r = kv_fail("writing the new digest", r, &st);
	else if (!res.succeeded)
		r = -EAGAIN;
	else
		log_warn("etcd store: %s: the digest was made again over the keys as they are "
		         "(-o reseal_digest)",
		         s->prefix);
	etcd_txn_result_clear(&res);
	free(hv);
	free(hk);
	return r;
}

/* --- open, close, init --- */

/* etcd://H:P[,H:P...]/PREFIX -> endpoint URLs (http://H:P; https://H:P
 * for etcd+https://) and "/PREFIX". */
static int parse_source(const char *source, char ***ret_eps, size_t *ret_n, char **ret_prefix)
{
	if (!etcd_store_source(source))
		return -EINVAL;
	bool https = strncmp(source, "etcd+https://", 13) == 0;
	const char *hosts = source + (https ? 13 : 7), *slash = strchr(hosts, '/');
	if (!slash || slash == hosts)
		return -EINVAL;
	char *prefix = strdup(slash);
	size_t pl = prefix ? strlen(prefix) : 0;
	while (pl > 1 && prefix[pl - 1] == '/')
		prefix[--pl] = '\0';
	if (!prefix || pl < 2 || strchr(prefix, '%') || strstr(prefix, "//")) {
		free(prefix);
		return -EINVAL;
	}
	char *list = strndup(hosts, (size_t)(slash - hosts)), *save = NULL;
	char **eps = calloc(HTTP_ENDPOINTS_MAX, sizeof(*eps));
	size_t n = 0;
	int r = list && eps ? 0 : -ENOMEM;
	for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && r == 0;
	     t = strtok_r(NULL, ",", &save)) {
		if (n == HTTP_ENDPOINTS_MAX || !strchr(t, ':') || strpbrk(t, "@?#"))
			r = -EINVAL;
		else if (asprintf(&eps[n], "%s://%s", https ? "https" : "http", t) < 0)
			r = -ENOMEM;
		else
			n++;
	}
	if (r == 0 && n == 0)
		r = -EINVAL;
	free(list);
	if (r < 0) {
		for (size_t i = 0; eps && i < n; i++)
			free(eps[i]);
		free(eps);
		free(prefix);
		return r;
	}
	*ret_eps = eps;
	*ret_n = n;
	*ret_prefix = prefix;
	return 0;
}

static void store_free(struct store *s)
{
	if (!s)
		return;
	etcd_replica_free(s->rep); /* its thread first: it uses the rest */
	for (size_t i = 0; i < s->nout; i++)
		store_change_clear(&s->out[i]);
	free(s->out);
	etcd_kv_free(s->kv);
	seal_keys_free(s->keys);
	free(s->prefix);
	free(s);
}

/* The source parsed, its client set up and logged in (etcd_conn.h).  A
 * refusal has its reason in why. */
static int store_connect(const char *source, const struct store_remote *rem, struct store **ret,
                         char *why, size_t why_size)
{
	char **eps = NULL;
	size_t n = 0;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int r = parse_source(source, &eps, &n, &s->prefix);
	if (r == -EINVAL)
		snprintf(why, why_size,
		         "%s: not an etcd store source (etcd://HOST:PORT[,...]/PREFIX or "
		         "etcd+https://…)",
		         source);
	if (r == 0) {
		r = etcd_conn_open((const char *const *)eps, n, rem, &s->kv, why, why_size);
		for (size_t i = 0; i < n; i++)
			free(eps[i]);
		free(eps);
	}
	if (r < 0) {
		store_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

static size_t keycheck_ad(const uint8_t id[SEAL_STORE_ID_BYTES], uint8_t *ad)
{
	size_t dl = sizeof(keycheck_ad_domain) - 1;
	memcpy(ad, keycheck_ad_domain, dl);
	memcpy(ad + dl, id, SEAL_STORE_ID_BYTES);
	return dl + SEAL_STORE_ID_BYTES;
}

/* etcd did not answer (err): the replica from the sealed cache at path,
 * and the identity key ik from it into *res.  Returns 0, or err when there
 * is no usable cache (said). */
static int open_cache(struct store *s, const char *path, const char *ik, int err,
                      struct etcd_range_result *res)
{
	char why[PATH_MAX + 200] = "";
	int64_t saved = 0;
	int r = etcd_replica_new(s->kv, s->prefix, &s->rep);
	if (r == 0)
		r = etcd_replica_load_file(s->rep, path, &saved, why, sizeof(why));
	if (r == -ENOENT) {
		log_error("etcd store: etcd cannot be reached (%s), and there is no sealed cache "
		          "at %s to start from",
		          strerrordesc_np(-err), path);
		return err;
	}
	if (r < 0) {
		log_error("etcd store: etcd cannot be reached (%s), and the sealed cache is "
		          "refused: %s",
		          strerrordesc_np(-err), why[0] ? why : strerrordesc_np(-r));
		return err;
	}
	r = etcd_replica_get(s->rep, ik, res);
	if (r < 0)
		return r;
	s->from_cache = true;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t age = ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec - saved) / 1000000000;
	log_warn("etcd store: etcd cannot be reached (%s): starting from the sealed cache %s, "
	         "saved %" PRId64 " s ago at etcd revision %" PRId64
	         "; values are served stale (within -o stale=) and changes refused until etcd "
	         "is back",
	         strerrordesc_np(-err), path, age, etcd_replica_revision(s->rep));
	return 0;
}

static int etcd_open(const struct store_config *cfg, struct store **ret_store)
{
	struct store *s = NULL;
	struct etcd_range_result res = { 0 };
	uint8_t ad[sizeof(keycheck_ad_domain) + SEAL_STORE_ID_BYTES];
	int64_t deadline = http_deadline(ETCD_STORE_TIMEOUT_MS);
	json_t *o = NULL;

	if (!cfg || !cfg->source || !cfg->key || !ret_store)
		return -EINVAL;
	if (crypto_init() < 0)
		return -EIO;
	char why[PATH_MAX + 400] = "";
	int r = store_connect(cfg->source, &cfg->remote, &s, why, sizeof(why));
	if (r < 0 && why[0])
		log_error("etcd store: %s", why);
	if (r < 0)
		return r;
	s->keep_versions = cfg->keep_versions ? cfg->keep_versions
	                                      : ETCD_STORE_KEEP_VERSIONS_DEFAULT;
	s->read_only = cfg->read_only;
	s->stale_ns = cfg->stale_ns;
	char *ik = key_fmt(s, "identity", NULL, 0, 0);
	r = ik ? range_key(s, ik, 0, deadline, &res) : -ENOMEM;
	/* etcd away: the cache; not when it refused us (TLS, login) */
	if (r < 0 && r != -ENOMEM && r != -EPROTO && r != -EACCES && cfg->cache_file && ik)
		r = open_cache(s, cfg->cache_file, ik, r, &res);
	free(ik);
	if (r == 0 && res.n == 0)
		r = -ENOENT;
	if (r == 0) {
		uint64_t format = 0;
		o = json_loadb((const char *)res.kvs[0].value, res.kvs[0].value_len, 0, NULL);
		if (!o || !json_u64(o, "format", &format) || format != FORMAT_VERSION ||
		    !unb64(json_object_get(o, "store_id"), s->store_id, SEAL_STORE_ID_BYTES)) {
			log_error("etcd store: %s/identity is not a store identity of this format",
			          s->prefix);
			r = -EIO;
		}
	}
	if (r == 0) {
		const char *kc = json_string_value(json_object_get(o, "keycheck"));
		size_t kl = kc ? strlen(kc) : 0, got = 0;
		uint8_t *bin = malloc(kl + 1);
		struct secret_value *v = NULL;
		if (!bin || !kc ||
		    sodium_base642bin(bin, kl + 1, kc, kl, NULL, &got, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0)
			r = -EIO;
		else if (crypto_open(cfg->key, ad, keycheck_ad(s->store_id, ad), bin, got, &v) !=
		             0 ||
		         v->len != sizeof(keycheck_plaintext) - 1 ||
		         memcmp(v->data, keycheck_plaintext, v->len) != 0)
			r = -EKEYREJECTED;
		secret_value_free(v);
		free(bin);
	}
	json_decref(o);
	etcd_range_result_clear(&res);
	if (r == 0)
		r = seal_keys_new(cfg->key, s->store_id, &s->keys);
	if (r == 0 && s->from_cache) {
		char *p = NULL;
		r = asprintf(&p, "%s/", s->prefix) < 0 ? -ENOMEM : 0;
		if (r == 0)
			r = etcd_replica_range(s->rep, p, &res);
		free(p);
		if (r == 0)
			r = digest_check(s, &res, false, &s->d);
	} else if (r == 0) {
		r = range_all(s, deadline, &res);
		if (r == 0)
			r = digest_check(s, &res, cfg->reseal_digest && !cfg->read_only, &s->d);
		if (r == 0)
			r = etcd_replica_new(s->kv, s->prefix, &s->rep);
		if (r == 0)
			etcd_replica_load(s->rep, &res);
	}
	etcd_range_result_clear(&res);
	/* a cache just read is saved again only once something changed: its
	 * time is that of its content */
	if (r == 0 && cfg->cache_file)
		r = etcd_replica_persist(s->rep, cfg->cache_file, !s->from_cache);
	if (r < 0) {
		store_free(s);
		return r;
	}
	*ret_store = s;
	return 0;
}

static void etcd_close(struct store *s)
{
	store_free(s);
}

int etcd_store_init(const char *source, const struct store_remote *remote, const uint8_t *key,
                    char *why, size_t why_size)
{
	struct store *s = NULL;
	struct etcd_range_result res = { 0 };
	struct etcd_txn_result tr = { 0 };
	struct http_status st = { 0 };
	uint8_t ad[sizeof(keycheck_ad_domain) + SEAL_STORE_ID_BYTES];
	uint8_t *kc = NULL;
	size_t kclen = 0;
	char *ik = NULL, *hk = NULL, *iv = NULL, *hv = NULL, *all = NULL, *kcs = NULL, *ids = NULL;
	int64_t deadline = http_deadline(ETCD_STORE_TIMEOUT_MS);

	if (why && why_size)
		why[0] = '\0';
	if (!key)
		return -EINVAL;
	if (crypto_init() < 0)
		return -EIO;
	char local[8];
	if (!why || !why_size) {
		why = local;
		why_size = sizeof(local);
	}
	int r = store_connect(source, remote, &s, why, why_size);
	if (r < 0)
		return r;
	/* nothing at all under PREFIX/ */
	if (asprintf(&all, "%s/", s->prefix) < 0)
		all = NULL;
	struct etcd_range q = {
		.key = all, .key_len = all ? strlen(all) : 0, .prefix = true, .count_only = true
	};
	r = all ? etcd_kv_range(s->kv, &q, deadline, &res, &st) : -ENOMEM;
	if (r < 0 && why)
		snprintf(why, why_size, "cannot read %s: %s", s->prefix, st.reason);
	if (r == 0 && res.count > 0) {
		r = -EEXIST;
		if (why)
			snprintf(why, why_size,
			         "%s already holds a store (or other keys): refusing "
			         "to create one there",
			         s->prefix);
	}
	if (r == 0) {
		randombytes_buf(s->store_id, sizeof(s->store_id));
		r = crypto_seal(key, ad, keycheck_ad(s->store_id, ad),
		                (const uint8_t *)keycheck_plaintext, sizeof(keycheck_plaintext) - 1,
		                &kc, &kclen);
	}
	if (r == 0)
		r = seal_keys_new(key, s->store_id, &s->keys);
	if (r == 0) {
		struct seal_digest zero = { 0 };
		kcs = b64(kc, kclen);
		ids = b64(s->store_id, sizeof(s->store_id));
		json_t *o = kcs && ids ? json_pack("{s:i,s:s,s:s}", "format", FORMAT_VERSION,
		                                   "store_id", ids, "keycheck", kcs)
		                       : NULL;
		iv = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(o);
		hv = head_json(s, 0, &zero);
		ik = key_fmt(s, "identity", NULL, 0, 0);
		hk = key_fmt(s, "head", NULL, 0, 0);
		r = iv && hv && ik && hk ? 0 : -ENOMEM;
	}
	if (r == 0) {
		struct etcd_compare c[2] = {
			{ .key = ik,
			  .key_len = strlen(ik),
			  .target = ETCD_TARGET_CREATE,
			  .number = 0 },
			{ .key = hk,
			  .key_len = strlen(hk),
			  .target = ETCD_TARGET_CREATE,
			  .number = 0 },
		};
		struct etcd_op ops[2] = {
			{ .type = ETCD_OP_PUT,
			  .range = { .key = ik, .key_len = strlen(ik) },
			  .value = iv,
			  .value_len = strlen(iv) },
			{ .type = ETCD_OP_PUT,
			  .range = { .key = hk, .key_len = strlen(hk) },
			  .value = hv,
			  .value_len = strlen(hv) },
		};
		struct etcd_op fail = { .type = ETCD_OP_RANGE,
			                .range = { .key = ik, .key_len = strlen(ik) } };
		struct etcd_txn t = { .compare = c,
			              .n_compare = 2,
			              .success = ops,
			              .n_success = 2,
			              .failure = &fail,
			              .n_failure = 1,
			              .retry_safe = true };
		r = etcd_kv_txn(s->kv, &t, deadline, &tr, &st);
		if (r < 0 && why)
			snprintf(why, why_size, "cannot create the store under %s: %s", s->prefix,
			         st.reason);
		/* a repeat that found its own first copy: our identity is there */
		if (r == 0 && !tr.succeeded &&
		    !(tr.n == 1 && tr.ops[0].range.n == 1 &&
		      tr.ops[0].range.kvs[0].value_len == strlen(iv) &&
		      memcmp(tr.ops[0].range.kvs[0].value, iv, strlen(iv)) == 0)) {
			r = -EEXIST;
			if (why)
				snprintf(why, why_size,
				         "%s already holds a store: refusing to create "
				         "one there",
				         s->prefix);
		}
	}
	etcd_txn_result_clear(&tr);
	etcd_range_result_clear(&res);
	free(kc);
	free(kcs);
	free(ids);
	free(iv);
	free(hv);
	free(ik);
	free(hk);
	free(all);
	store_free(s);
	return r;
}

/* --- reads --- */

static int check_id(const char *id)
{
	return id && secret_id_valid_existing(id) ? 0 : -EINVAL;
}

static int etcd_list(struct store *s, store_list_fn fn, void *userdata)
{
	struct etcd_range_result all = { 0 };
	uint64_t inc, ver;
	if (!s || !fn)
		return -EINVAL;
	/* Watching: the replica, which the watch keeps checked against the
	 * head.  Else a new read, which the replica then holds, so that a
	 * watch started after this listing goes on from it. */
	char *p = NULL;
	int r = asprintf(&p, "%s/", s->prefix) < 0 ? -ENOMEM : 0;
	bool local = s->watching || s->from_cache; /* (checked at open) */
	if (r == 0 && local)
		r = etcd_replica_range(s->rep, p, &all);
	else if (r == 0)
		r = range_all(s, http_deadline(ETCD_STORE_TIMEOUT_MS), &all);
	free(p);
	if (r == 0 && !local)
		r = digest_check(s, &all, false, &s->d);
	for (size_t i = 0; r == 0 && i < all.n; i++) {
		char *id = NULL;
		struct row row;
		if (key_kind(s, &all.kvs[i], &id, &inc, &ver) != 's') {
			free(id);
			continue;
		}
		r = row_parse(s, id, all.kvs[i].value, all.kvs[i].value_len, &row);
		if (r == 0 && !row.verified)
			row_log(id, &row, true);
		else if (r == 0)
			r = fn(userdata, &row.m);
		row_clear(&row);
		free(id);
	}
	if (r == 0 && !local)
		etcd_replica_load(s->rep, &all);
	etcd_range_result_clear(&all);
	return r;
}

/* Where a read goes: etcd, or the replica while it is current (or, for
 * a stale read, whatever it is). */
struct reader {
	struct store *s;
	bool local;
	int64_t deadline;
	int64_t rev;      /* every read after the first at its revision (the
	                     replica: -ESTALE if it moved on in between) */
	bool unreachable; /* etcd did not answer */
};

/* How long a read waits for the replica to catch up with this client's own
 * last change before it asks etcd instead; how long it gives etcd when
 * the replica is not current (so that a stale value is served soon). */
#define OWN_CHANGE_WAIT_MS 1000
#define BEHIND_READ_MS 2000

static void reader_init(struct store *s, struct reader *rd)
{
	*rd = (struct reader){ .s = s, .deadline = http_deadline(ETCD_STORE_TIMEOUT_MS) };
	if (!s->watching)
		return;
	rd->local = etcd_replica_current(s->rep, __atomic_load_n(&s->own_rev, __ATOMIC_ACQUIRE),
	                                 OWN_CHANGE_WAIT_MS);
	if (!rd->local)
		rd->deadline = http_deadline(BEHIND_READ_MS);
}

/* key's pair, or (prefix) every pair under it. */
static int rd_fetch(struct reader *rd, const char *key, bool prefix, struct etcd_range_result *res)
{
	if (rd->local) {
		int r = prefix ? etcd_replica_range(rd->s->rep, key, res)
		               : etcd_replica_get(rd->s->rep, key, res);
		if (r == 0 && rd->rev && res->revision != rd->rev) {
			etcd_range_result_clear(res);
			return -ESTALE; /* a batch came between two reads */
		}
		if (r == 0)
			rd->rev = res->revision;
		return r;
	}
	struct http_status st = { 0 };
	struct etcd_range q = {
		.key = key, .key_len = strlen(key), .prefix = prefix, .revision = rd->rev
	};
	int r = etcd_kv_range(rd->s->kv, &q, rd->deadline, res, &st);
	if (r < 0 && r != -ENOMEM) {
		rd->unreachable = true;
		return kv_fail("a read", r, &st);
	}
	if (r == 0 && !rd->rev)
		rd->rev = res->revision;
	return r;
}

/* The verified row of id.  -ENOENT if none, -EIO (logged) if it does not
 * verify. */
static int load_row(struct reader *rd, const char *id, struct row *row)
{
	struct etcd_range_result res = { 0 };
	char *k = s_key(rd->s, id);
	int r = k ? rd_fetch(rd, k, false, &res) : -ENOMEM;
	free(k);
	if (r == 0 && res.n == 0)
		r = -ENOENT;
	if (r == 0)
		r = row_parse(rd->s, id, res.kvs[0].value, res.kvs[0].value_len, row);
	if (r == 0 && !row->verified) {
		row_log(id, row, false);
		row_clear(row);
		r = -EIO;
	}
	etcd_range_result_clear(&res);
	return r;
}

static int etcd_stat(struct store *s, const char *id, struct secret_meta *ret_meta)
{
	struct row row = { 0 };
	if (!s || !ret_meta)
		return -EINVAL;
	struct reader rd = { .s = s, .deadline = http_deadline(ETCD_STORE_TIMEOUT_MS) };
	int r = check_id(id);
	if (r == 0)
		r = load_row(&rd, id, &row);
	if (r == 0) {
		*ret_meta = row.m;
		memset(&row.m, 0, sizeof(row.m));
	}
	return r;
}

/* Opens a stored version (pair p) of the life of row, as version ver; cur:
 * it must be the row's current one. */
static int open_version(struct store *s, const struct row *row, uint64_t ver,
                        const struct etcd_kv_pair *p, bool cur, struct secret_value **ret)
{
	const char *id = row->m.id;
	if (p->value_len < VHDR) {
		log_error("etcd store: value of %.300s version %" PRIu64 " is damaged", id, ver);
		return -EIO;
	}
	uint64_t rev = get_le(p->value, 8);
	int64_t mtime = (int64_t)get_le(p->value + 8, 8);
	uint32_t size = (uint32_t)get_le(p->value + 16, 4);
	if (cur && (ver != row->m.version || rev != row->m.value_revision ||
	            mtime != row->m.mtime_ns || size != row->m.size)) {
		log_error("etcd store: %.300s: version %" PRIu64
		          " does not match the authenticated metadata (changed outside secretsfs)",
		          id, ver);
		return -EIO;
	}
	struct seal_place pl = { .id = id,
		                 .incarnation = row->m.incarnation,
		                 .nonce = row->nonce,
		                 .version = ver,
		                 .revision = rev,
		                 .mtime_ns = mtime };
	struct secret_value *v = NULL;
	int r = seal_value_open(s->keys, &pl, p->value + VHDR, p->value_len - VHDR, &v);
	if (r == -EBADMSG) {
		log_error("etcd store: value of %.300s version %" PRIu64
		          " failed authentication (tampered or copied ciphertext)",
		          id, ver);
		return -EIO;
	}
	if (r < 0)
		return r;
	if (v->len != size) {
		log_error("etcd store: value of %.300s version %" PRIu64
		          " does not have its recorded size",
		          id, ver);
		secret_value_free(v);
		return -EIO;
	}
	v->version = ver;
	v->revision = rev;
	v->mtime_ns = mtime;
	*ret = v;
	return 0;
}

static int read_value_at(struct reader *rd, const char *id, uint64_t incarnation, uint64_t version,
                         struct secret_value **ret_value)
{
	struct store *s = rd->s;
	struct etcd_range_result res = { 0 };
	struct row row = { 0 };
	int r = load_row(rd, id, &row);
	if (r < 0)
		return r;
	if ((incarnation && incarnation != row.m.incarnation) || version > row.m.version)
		r = -ENOENT;
	uint64_t ver = version ? version : row.m.version;
	char *k = r == 0 ? v_key(s, id, row.m.incarnation, ver) : NULL;
	if (r == 0)
		r = k ? rd_fetch(rd, k, false, &res) : -ENOMEM;
	free(k);
	if (r == 0 && res.n == 0)
		r = version ? -ENOENT : -EIO;
	if (r == -EIO && res.n == 0)
		log_error("etcd store: %.300s: its current version %" PRIu64
		          " is missing (removed outside secretsfs)",
		          id, ver);
	if (r == 0)
		r = open_version(s, &row, ver, &res.kvs[0], version == 0, ret_value);
	etcd_range_result_clear(&res);
	row_clear(&row);
	return r;
}

/* A value, its row and version key read at one revision: from the
 * replica, read again if a batch came between the two reads. */
static int read_value(struct reader *rd, const char *id, uint64_t incarnation, uint64_t version,
                      struct secret_value **ret_value)
{
	int r;
	for (int tries = 0;; tries++) {
		if (rd->local)
			rd->rev = 0;
		r = read_value_at(rd, id, incarnation, version, ret_value);
		if (r != -ESTALE || !rd->local || tries == 8)
			return r == -ESTALE ? -EIO : r;
	}
}

/* From the replica while it is current (no request), else from etcd; and
 * when etcd cannot be reached, from the replica still, marked stale, for
 * stale_ns after it was last current. */
static int etcd_get_value(struct store *s, const char *id, uint64_t incarnation, uint64_t version,
                          struct secret_value **ret_value)
{
	struct reader rd;
	if (!s || !ret_value)
		return -EINVAL;
	int r = check_id(id);
	if (r < 0)
		return r;
	reader_init(s, &rd);
	r = read_value(&rd, id, incarnation, version, ret_value);
	if (r == 0 || !rd.unreachable || !s->watching)
		return r;
	int64_t behind = etcd_replica_behind_ns(s->rep);
	if (s->stale_ns <= 0 || behind < 0 || behind > s->stale_ns) {
		log_error(
		    "etcd store: %.300s: etcd cannot be reached and the local copy is %" PRId64
		    " s old, older than -o stale= allows (%" PRId64 " s): not served",
		    id, behind / 1000000000, s->stale_ns / 1000000000);
		return r;
	}
	struct reader local = { .s = s, .local = true };
	r = read_value(&local, id, incarnation, version, ret_value);
	if (r == 0) {
		(*ret_value)->stale = true;
		log_warn("etcd store: %.300s: etcd cannot be reached: version %" PRIu64
		         " served from the local copy, which is %" PRId64
		         " s old (stale; -o stale= "
		         "allows %" PRId64 " s)",
		         id, (*ret_value)->version, behind / 1000000000, s->stale_ns / 1000000000);
	}
	return r;
}

/* --- changes --- */

/* One ID as a change's read found it. */
struct entry {
	const char *id;
	char *skey, *vpfx;
	const struct etcd_kv_pair *sp; /* NULL: no metadata key */
	const struct etcd_kv_pair *v;  /* its version keys, key order */
	size_t nv;
	struct row row; /* parsed sp */
	bool s_removed;
};

struct plan {
	struct store *s;
	struct entry e[2];
	size_t ne;
	struct head head;
	uint64_t rev; /* the change's revision */
	int64_t now;
	struct seal_digest d;
	struct etcd_compare cmp[TXN_MAX_OPS];
	struct etcd_op ops[TXN_MAX_OPS];
	size_t nc, no;
	void *owned[2 * TXN_MAX_OPS];
	size_t nowned;
};

static int own(struct plan *p, void *ptr)
{
	if (!ptr)
		return -ENOMEM;
	if (p->nowned == sizeof(p->owned) / sizeof(p->owned[0])) {
		free(ptr);
		return -E2BIG;
	}
	p->owned[p->nowned++] = ptr;
	return 0;
}

static int add_cmp(struct plan *p, const void *key, size_t klen, enum etcd_target t, int64_t n)
{
	if (p->nc == TXN_MAX_OPS)
		return -E2BIG;
	p->cmp[p->nc++] = (struct etcd_compare){
		.key = key, .key_len = klen, .target = t, .cmp = ETCD_EQUAL, .number = n
	};
	return 0;
}

static int add_op(struct plan *p, enum etcd_op_type type, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
	if (p->no == TXN_MAX_OPS)
		return -E2BIG;
	p->ops[p->no++] = (struct etcd_op){ .type = type,
		                            .range = { .key = key, .key_len = klen },
		                            .value = val,
		                            .value_len = vlen };
	return 0;
}

/* Needs the verified row of e, of incarnation inc (0: any). */
static int need_row(struct entry *e, uint64_t inc)
{
	if (!e->sp)
		return -ENOENT;
	if (!e->row.verified) {
		row_log(e->id, &e->row, false);
		return -EIO;
	}
	return inc && inc != e->row.m.incarnation ? -ESTALE : 0;
}

/* Removes e's metadata key and every version key. */
static int rm_secret(struct plan *p, struct entry *e)
{
	int r = 0;
	uint64_t inc, ver;
	if (e->sp && !e->s_removed) {
		term_secret(p->s, &p->d, -1, e->id, e->sp);
		r = add_op(p, ETCD_OP_DELETE, e->skey, strlen(e->skey), NULL, 0);
		e->s_removed = true;
	}
	for (size_t i = 0; r == 0 && i < e->nv; i++) {
		char *id = NULL;
		if (key_kind(p->s, &e->v[i], &id, &inc, &ver) == 'v' && strcmp(id, e->id) == 0)
			term_version(p->s, &p->d, -1, e->id, ver, &e->v[i]);
		free(id);
		r = add_cmp(p, e->v[i].key, e->v[i].key_len, ETCD_TARGET_MOD, e->v[i].mod_revision);
		if (r == 0)
			r = add_op(p, ETCD_OP_DELETE, e->v[i].key, e->v[i].key_len, NULL, 0);
	}
	return r;
}

/* Writes row (its ID is e's) as e's metadata key. */
static int put_row(struct plan *p, struct entry *e, struct row *row)
{
	char *json = NULL;
	if (e->sp && !e->s_removed) {
		term_secret(p->s, &p->d, -1, e->id, e->sp);
		e->s_removed = true;
	}
	int r = row_json(p->s, row, &json);
	if (r == 0)
		r = own(p, json);
	if (r == 0)
		seal_digest_secret(p->s->keys, &p->d, 1, e->id, strlen(e->id), row->m.incarnation,
		                   row->mac, SEAL_MAC_BYTES);
	return r ? r : add_op(p, ETCD_OP_PUT, e->skey, strlen(e->skey), json, strlen(json));
}

/* Seals value as version ver of row's life (at p->rev, p->now) and drops
 * the versions of that life keep_versions or more below it. */
static int put_version(struct plan *p, struct entry *e, const struct row *row, uint64_t ver,
                       const uint8_t *value, size_t len)
{
	struct seal_place pl = { .id = e->id,
		                 .incarnation = row->m.incarnation,
		                 .nonce = row->nonce,
		                 .version = ver,
		                 .revision = p->rev,
		                 .mtime_ns = p->now };
	uint8_t *ct = NULL, *buf;
	size_t ctlen = 0;
	uint64_t inc, v;
	int r = seal_value(p->s->keys, &pl, value, len, &ct, &ctlen);
	if (r < 0)
		return r;
	buf = malloc(VHDR + ctlen);
	if (buf) {
		put_le(buf, p->rev, 8);
		put_le(buf + 8, (uint64_t)p->now, 8);
		put_le(buf + 16, len, 4);
		memcpy(buf + VHDR, ct, ctlen);
	}
	free(ct);
	char *k = v_key(p->s, e->id, row->m.incarnation, ver);
	r = own(p, buf);
	if (r == 0)
		r = own(p, k);
	if (r < 0)
		return r;
	seal_digest_version(p->s->keys, &p->d, 1, e->id, strlen(e->id), ver, p->rev);
	r = add_op(p, ETCD_OP_PUT, k, strlen(k), buf, VHDR + ctlen);
	for (size_t i = 0; r == 0 && i < e->nv; i++) {
		char *id = NULL;
		char kind = key_kind(p->s, &e->v[i], &id, &inc, &v);
		bool same = kind == 'v' && strcmp(id, e->id) == 0;
		free(id);
		/* a key of that name already (left over): replaced, pinned */
		bool replaced = same && inc == row->m.incarnation && v == ver;
		if (!replaced &&
		    (!same || inc != row->m.incarnation || v + p->s->keep_versions > ver))
			continue;
		term_version(p->s, &p->d, -1, e->id, v, &e->v[i]);
		r = add_cmp(p, e->v[i].key, e->v[i].key_len, ETCD_TARGET_MOD, e->v[i].mod_revision);
		if (r == 0 && !replaced)
			r = add_op(p, ETCD_OP_DELETE, e->v[i].key, e->v[i].key_len, NULL, 0);
	}
	return r;
}

/* The current value of e's verified row, from the read. */
static int current_value(struct plan *p, struct entry *e, struct secret_value **ret)
{
	char *k = v_key(p->s, e->id, e->row.m.incarnation, e->row.m.version);
	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < e->nv; i++)
		if (e->v[i].key_len == strlen(k) && memcmp(e->v[i].key, k, e->v[i].key_len) == 0) {
			free(k);
			return open_version(p->s, &e->row, e->row.m.version, &e->v[i], true, ret);
		}
	free(k);
	log_error("etcd store: %.300s: its current version is missing (removed outside secretsfs)",
	          e->id);
	return -EIO;
}

typedef int (*plan_fn)(struct plan *p, void *ctx);

static void plan_clear(struct plan *p)
{
	for (size_t i = 0; i < p->ne; i++) {
		free(p->e[i].skey);
		free(p->e[i].vpfx);
		row_clear(&p->e[i].row);
	}
	for (size_t i = 0; i < p->nowned; i++)
		free(p->owned[i]);
}

/* One change to ids (1 or 2): read, plan (fn), commit; again on a lost
 * race. */
static int change(struct store *s, const char *const *ids, size_t nids, plan_fn fn, void *ctx)
{
	int64_t deadline = http_deadline(ETCD_STORE_TIMEOUT_MS);
	struct plan *p = NULL;
	int r = 0;

	if (s->read_only)
		return -EROFS;
	for (int attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
		struct etcd_txn_result rd = { 0 }, wr = { 0 };
		struct http_status st = { 0 };
		char *hk = key_fmt(s, "head", NULL, 0, 0);
		char *hv = NULL;
		struct etcd_op reads[5];

		p = calloc(1, sizeof(*p));
		if (!p || !hk) {
			free(p);
			free(hk);
			return -ENOMEM;
		}
		p->s = s;
		p->ne = nids;
		own(p, hk);
		reads[0] = (struct etcd_op){ .type = ETCD_OP_RANGE,
			                     .range = { .key = hk, .key_len = strlen(hk) } };
		for (size_t i = 0; i < nids && r == 0; i++) {
			p->e[i].id = ids[i];
			p->e[i].skey = s_key(s, ids[i]);
			p->e[i].vpfx = v_prefix(s, ids[i]);
			if (!p->e[i].skey || !p->e[i].vpfx) {
				r = -ENOMEM;
				break;
			}
			reads[1 + 2 * i] = (struct etcd_op){
				.type = ETCD_OP_RANGE,
				.range = { .key = p->e[i].skey, .key_len = strlen(p->e[i].skey) }
			};
			reads[2 + 2 * i] =
			    (struct etcd_op){ .type = ETCD_OP_RANGE,
				              .range = { .key = p->e[i].vpfx,
				                         .key_len = strlen(p->e[i].vpfx),
				                         .prefix = true } };
		}
		struct etcd_txn rt = { .success = reads,
			               .n_success = 1 + 2 * nids,
			               .retry_safe = true };
		if (r == 0) {
			r = etcd_kv_txn(s->kv, &rt, deadline, &rd, &st);
			if (r < 0)
				kv_fail("a read", r, &st);
			else if (!rd.succeeded || rd.n != 1 + 2 * nids)
				r = -EIO;
		}
		if (r == 0)
			r = head_parse(s, rd.ops[0].range.n ? &rd.ops[0].range.kvs[0] : NULL,
			               &p->head);
		for (size_t i = 0; r == 0 && i < nids; i++) {
			struct entry *e = &p->e[i];
			const struct etcd_range_result *sr = &rd.ops[1 + 2 * i].range;
			e->sp = sr->n ? &sr->kvs[0] : NULL;
			e->v = rd.ops[2 + 2 * i].range.kvs;
			e->nv = rd.ops[2 + 2 * i].range.n;
			if (e->sp)
				r = row_parse(s, e->id, e->sp->value, e->sp->value_len, &e->row);
			if (r == 0)
				r = add_cmp(p, e->skey, strlen(e->skey),
				            e->sp ? ETCD_TARGET_MOD : ETCD_TARGET_CREATE,
				            e->sp ? e->sp->mod_revision : 0);
		}
		if (r == 0) {
			p->d = p->head.d;
			p->rev = p->head.revision + 1;
			p->now = now_ns();
			r = add_cmp(p, hk, strlen(hk), ETCD_TARGET_MOD, p->head.mod_revision);
		}
		if (r == 0)
			r = fn(p, ctx);
		if (r == 0) {
			hv = head_json(s, p->rev, &p->d);
			r = own(p, hv);
		}
		if (r == 0)
			r = add_op(p, ETCD_OP_PUT, hk, strlen(hk), hv, strlen(hv));
		bool done = false;
		if (r == 0) {
			struct etcd_txn t = { .compare = p->cmp,
				              .n_compare = p->nc,
				              .success = p->ops,
				              .n_success = p->no,
				              .failure = reads,
				              .n_failure = 1,
				              .retry_safe = true };
			r = etcd_kv_txn(s->kv, &t, deadline, &wr, &st);
			if (r < 0)
				kv_fail("a change", r, &st);
			else
				/* succeeded, or a repeat that found its own first
				 * copy's head */
				done = wr.succeeded ||
				       (wr.n == 1 && wr.ops[0].range.n == 1 &&
				        wr.ops[0].range.kvs[0].value_len == strlen(hv) &&
				        memcmp(wr.ops[0].range.kvs[0].value, hv, strlen(hv)) == 0);
		}
		if (done) {
			/* A read of this client's waits until the replica has it:
			 * the Txn's revision, or for a repeat that found its own
			 * first copy, that copy's head (the answer's header is
			 * etcd's revision now, maybe another prefix's). */
			int64_t made = wr.succeeded ? wr.revision
			                            : wr.ops[0].range.kvs[0].mod_revision;
			int64_t cur = __atomic_load_n(&s->own_rev, __ATOMIC_RELAXED);
			while (made > cur &&
			       !__atomic_compare_exchange_n(&s->own_rev, &cur, made, false,
			                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
				;
		}
		etcd_txn_result_clear(&wr);
		plan_clear(p);
		free(p);
		etcd_txn_result_clear(&rd);
		if (r == -E2BIG) {
			log_error("etcd store: a change needs more than %d operations in one etcd "
			          "transaction",
			          TXN_MAX_OPS);
			r = -EIO;
		}
		if (r < 0 || done)
			return r;
		if (http_now_ms() >= deadline)
			return -ETIMEDOUT;
		/* lost a race with another writer: plan again from a new read */
	}
	log_error("etcd store: a change lost %d races in a row with other writers",
	          CHANGE_ATTEMPTS);
	return -EBUSY;
}

/* The change record of a row as written. */
static int out_meta(const struct row *row, struct secret_meta *out)
{
	if (!out)
		return 0;
	secret_meta_clear(out);
	return secret_meta_copy(out, &row->m);
}

struct c_create {
	const char *id;
	scope_set scopes;
	const struct labels *labels;
	const uint8_t *value;
	size_t len;
	struct secret_meta out;
};

/* A new life of e with its first version. */
static int new_life(struct plan *p, struct entry *e, scope_set scopes, const struct labels *labels,
                    const uint8_t *value, size_t len, struct secret_meta *out)
{
	struct row row = { 0 };
	int r = 0;
	if (e->sp)
		return -EEXIST;
	row.m.id = strdup(e->id);
	if (!row.m.id)
		return -ENOMEM;
	if (labels)
		r = labels_copy(&row.m.labels, labels);
	seal_nonce_new(row.nonce);
	row.m.incarnation = row.m.revision = row.m.value_revision = p->rev;
	row.m.scopes = scopes;
	row.m.version = 1;
	row.m.size = (uint32_t)len;
	row.m.ctime_ns = row.m.mtime_ns = p->now;
	if (r == 0)
		r = put_version(p, e, &row, 1, value, len);
	if (r == 0)
		r = put_row(p, e, &row);
	if (r == 0)
		r = out_meta(&row, out);
	row_clear(&row);
	return r;
}

static int plan_create(struct plan *p, void *ctx)
{
	struct c_create *c = ctx;
	return new_life(p, &p->e[0], c->scopes, c->labels, c->value, c->len, &c->out);
}

static int etcd_create(struct store *s, const char *id, scope_set scopes,
                       const struct labels *labels, const uint8_t *value, size_t len,
                       struct secret_meta *ret_meta)
{
	struct c_create c = {
		.id = id, .scopes = scopes, .labels = labels, .value = value, .len = len
	};
	if (!s)
		return -EINVAL;
	if (!id || !secret_id_valid_new(id) || !secret_scopes_valid(scopes))
		return -EINVAL;
	int r = secret_labels_valid(labels);
	if (r == 0)
		r = secret_value_len_valid(value, len);
	if (r == 0)
		r = change(s, &id, 1, plan_create, &c);
	return secret_meta_hand_over(r, &c.out, ret_meta);
}

struct c_put {
	uint64_t incarnation, base;
	const uint8_t *value;
	size_t len;
	struct secret_meta out;
};

static int new_version(struct plan *p, struct entry *e, const uint8_t *value, size_t len,
                       struct secret_meta *out)
{
	struct row *row = &e->row;
	row->m.version++;
	row->m.revision = row->m.value_revision = p->rev;
	row->m.size = (uint32_t)len;
	row->m.mtime_ns = p->now;
	int r = put_version(p, e, row, row->m.version, value, len);
	if (r == 0)
		r = put_row(p, e, row);
	return r ? r : out_meta(row, out);
}

static int plan_put(struct plan *p, void *ctx)
{
	struct c_put *c = ctx;
	struct entry *e = &p->e[0];
	int r = need_row(e, c->incarnation);
	if (r == 0 && c->base && c->base != e->row.m.value_revision)
		r = -ESTALE;
	return r ? r : new_version(p, e, c->value, c->len, &c->out);
}

static int etcd_put_value(struct store *s, const char *id, uint64_t incarnation,
                          uint64_t base_revision, const uint8_t *value, size_t len,
                          struct secret_meta *ret_meta)
{
	struct c_put c = {
		.incarnation = incarnation, .base = base_revision, .value = value, .len = len
	};
	if (!s)
		return -EINVAL;
	int r = check_id(id);
	if (r == 0)
		r = secret_value_len_valid(value, len);
	if (r == 0)
		r = change(s, &id, 1, plan_put, &c);
	return secret_meta_hand_over(r, &c.out, ret_meta);
}

struct c_delete {
	uint64_t incarnation;
	uint64_t inc_done, rev_done;
};

static int plan_delete(struct plan *p, void *ctx)
{
	struct c_delete *c = ctx;
	struct entry *e = &p->e[0];
	int r = need_row(e, c->incarnation);
	if (r == 0)
		r = rm_secret(p, e);
	c->inc_done = e->row.m.incarnation;
	c->rev_done = p->rev;
	return r;
}

static int deletion_record(const char *id, uint64_t inc, uint64_t rev, struct store_change *ret)
{
	if (!ret)
		return 0;
	char *copy = strdup(id);
	if (!copy)
		return -ENOMEM;
	*ret = (struct store_change){ .kind = STORE_DELETED,
		                      .meta = { .id = copy, .incarnation = inc, .revision = rev } };
	return 0;
}

static int etcd_delete(struct store *s, const char *id, uint64_t incarnation,
                       struct store_change *ret_change)
{
	struct c_delete c = { .incarnation = incarnation };
	if (!s)
		return -EINVAL;
	int r = check_id(id);
	if (r == 0)
		r = change(s, &id, 1, plan_delete, &c);
	if (r == 0)
		r = deletion_record(id, c.inc_done, c.rev_done, ret_change);
	return r;
}

struct c_meta {
	uint64_t incarnation;
	const struct labels *labels; /* set_labels */
	scope_set scopes;            /* set_scopes */
	struct secret_meta out;
};

static int plan_meta(struct plan *p, void *ctx)
{
	struct c_meta *c = ctx;
	struct entry *e = &p->e[0];
	int r = need_row(e, c->incarnation);
	if (r < 0)
		return r;
	if (c->labels) {
		labels_clear(&e->row.m.labels);
		r = labels_copy(&e->row.m.labels, c->labels);
	} else {
		e->row.m.scopes = c->scopes;
	}
	e->row.m.revision = p->rev;
	if (r == 0)
		r = put_row(p, e, &e->row);
	return r ? r : out_meta(&e->row, &c->out);
}

static int etcd_set_labels(struct store *s, const char *id, uint64_t incarnation,
                           const struct labels *labels, struct secret_meta *ret_meta)
{
	static const struct labels none = { 0 };
	struct c_meta c = { .incarnation = incarnation, .labels = labels ? labels : &none };
	if (!s)
		return -EINVAL;
	int r = check_id(id);
	if (r == 0)
		r = secret_labels_valid(labels);
	if (r == 0)
		r = change(s, &id, 1, plan_meta, &c);
	return secret_meta_hand_over(r, &c.out, ret_meta);
}

static int etcd_set_scopes(struct store *s, const char *id, uint64_t incarnation, scope_set scopes,
                           struct secret_meta *ret_meta)
{
	struct c_meta c = { .incarnation = incarnation, .scopes = scopes };
	if (!s)
		return -EINVAL;
	int r = check_id(id);
	if (r == 0 && !secret_scopes_valid(scopes))
		r = -EINVAL;
	if (r == 0)
		r = change(s, &id, 1, plan_meta, &c);
	return secret_meta_hand_over(r, &c.out, ret_meta);
}

struct c_rename {
	uint64_t from_inc, from_rev, to_inc;
	scope_set to_scopes;
	const struct labels *to_labels;
	uint64_t inc_done, rev_done;
	struct secret_meta out;
};

static int plan_rename(struct plan *p, void *ctx)
{
	struct c_rename *c = ctx;
	struct entry *f = &p->e[0], *t = &p->e[1];
	struct secret_value *v = NULL;
	int r = need_row(f, c->from_inc);
	if (r == 0 && c->from_rev && c->from_rev != f->row.m.revision)
		r = -ESTALE;
	if (r == 0 && c->to_inc)
		r = need_row(t, c->to_inc);
	if (r == 0)
		r = current_value(p, f, &v);
	if (r == 0 && c->to_inc)
		r = new_version(p, t, v->data, v->len, &c->out);
	else if (r == 0)
		r = new_life(p, t, c->to_scopes, c->to_labels, v->data, v->len, &c->out);
	if (r == 0)
		r = rm_secret(p, f);
	c->inc_done = f->row.m.incarnation;
	c->rev_done = p->rev;
	secret_value_free(v);
	return r;
}

static int etcd_rename(struct store *s, const char *from, uint64_t from_incarnation,
                       uint64_t from_revision, const char *to, uint64_t to_incarnation,
                       scope_set to_scopes, const struct labels *to_labels,
                       struct store_change *ret_from, struct secret_meta *ret_to)
{
	struct c_rename c = { .from_inc = from_incarnation,
		              .from_rev = from_revision,
		              .to_inc = to_incarnation,
		              .to_scopes = to_scopes,
		              .to_labels = to_labels };
	const char *ids[2] = { from, to };
	struct store_change gone = { 0 };
	if (!s)
		return -EINVAL;
	int r = check_id(from);
	if (r == 0)
		r = check_id(to);
	if (r == 0 && strcmp(from, to) == 0)
		r = -EINVAL;
	if (r == 0 && !to_incarnation &&
	    (!secret_id_valid_new(to) || !secret_scopes_valid(to_scopes)))
		r = -EINVAL;
	if (r == 0 && !to_incarnation)
		r = secret_labels_valid(to_labels);
	if (r == 0)
		r = change(s, ids, 2, plan_rename, &c);
	if (r == 0)
		r = deletion_record(from, c.inc_done, c.rev_done, ret_from ? &gone : NULL);
	if (r == 0 && ret_from)
		*ret_from = gone;
	return secret_meta_hand_over(r, &c.out, ret_to);
}

struct c_exchange {
	uint64_t a_inc, b_inc;
	struct secret_meta out_a, out_b;
};

/* Each current value becomes a new version of the other, in one Txn. */
static int plan_exchange(struct plan *p, void *ctx)
{
	struct c_exchange *c = ctx;
	struct entry *a = &p->e[0], *b = &p->e[1];
	struct secret_value *va = NULL, *vb = NULL;
	int r = need_row(a, c->a_inc);
	if (r == 0)
		r = need_row(b, c->b_inc);
	if (r == 0)
		r = current_value(p, a, &va);
	if (r == 0)
		r = current_value(p, b, &vb);
	if (r == 0)
		r = new_version(p, a, vb->data, vb->len, &c->out_a);
	if (r == 0)
		r = new_version(p, b, va->data, va->len, &c->out_b);
	secret_value_free(va);
	secret_value_free(vb);
	return r;
}

static int etcd_exchange(struct store *s, const char *a, uint64_t a_incarnation, const char *b,
                         uint64_t b_incarnation, struct secret_meta *ret_a,
                         struct secret_meta *ret_b)
{
	struct c_exchange c = { .a_inc = a_incarnation, .b_inc = b_incarnation };
	const char *ids[2] = { a, b };
	if (!s)
		return -EINVAL;
	int r = check_id(a);
	if (r == 0)
		r = check_id(b);
	if (r == 0 && strcmp(a, b) == 0)
		r = -EINVAL;
	if (r == 0)
		r = change(s, ids, 2, plan_exchange, &c);
	secret_meta_hand_over(r, &c.out_a, ret_a);
	return secret_meta_hand_over(r, &c.out_b, ret_b);
}

static int etcd_list_versions(struct store *s, const char *id, uint64_t incarnation,
                              struct secret_version **ret_versions, size_t *ret_n)
{
	struct etcd_range_result res = { 0 };
	struct row row = { 0 };
	struct reader rd;
	struct secret_version *v = NULL;
	size_t n = 0;
	uint64_t inc, ver;

	if (!s || !ret_versions || !ret_n)
		return -EINVAL;
	int r = check_id(id);
	if (r < 0)
		return r;
	reader_init(s, &rd);
	r = load_row(&rd, id, &row);
	if (r < 0)
		return r;
	if (incarnation && incarnation != row.m.incarnation)
		r = -ENOENT;
	char *k = r == 0 ? v_prefix(s, id) : NULL;
	if (r == 0)
		r = k ? rd_fetch(&rd, k, true, &res) : -ENOMEM;
	free(k);
	if (r == 0 && res.n)
		v = calloc(res.n, sizeof(*v));
	if (r == 0 && res.n && !v)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < res.n; i++) {
		char *kid = NULL;
		const struct etcd_kv_pair *p = &res.kvs[i];
		bool ok = key_kind(s, p, &kid, &inc, &ver) == 'v' && strcmp(kid, id) == 0 &&
		          inc == row.m.incarnation && ver <= row.m.version && p->value_len >= VHDR;
		free(kid);
		if (!ok)
			continue;
		v[n].version = ver;
		v[n].mtime_ns = (int64_t)get_le(p->value + 8, 8);
		v[n].size = (uint32_t)get_le(p->value + 16, 4);
		n++;
	}
	etcd_range_result_clear(&res);
	row_clear(&row);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret_versions = v;
	*ret_n = n;
	return 0;
}

/* --- watch: other clients' changes --- */

static int out_add(struct store *s, enum store_change_kind kind, struct secret_meta *m)
{
	if (s->nout == s->capout) {
		size_t cap = s->capout ? 2 * s->capout : 16;
		struct store_change *o = realloc(s->out, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		s->out = o;
		s->capout = cap;
	}
	s->out[s->nout++] = (struct store_change){ .kind = kind, .meta = *m };
	*m = (struct secret_meta){ 0 };
	return 0;
}

/* One etcd revision's events (the replica locked): the running digest
 * follows every key, the batch's head must sum them, and the secrets'
 * rows become change records.  A batch whose keys do not match its head
 * was not written by secretsfs: nothing of it is announced, and from then
 * on nothing else until the mount is made again (the replica keeps
 * following etcd, so the store's reads still verify every row). */
static void on_watch_batch(void *arg, int64_t revision, const struct etcd_replica_event *ev,
                           size_t n)
{
	struct store *s = arg;
	char *hk = key_fmt(s, "head", NULL, 0, 0);
	struct head h = { 0 };
	bool head = false, keys = false;
	size_t first = s->nout;
	uint64_t inc, ver;

	for (size_t i = 0; hk && i < n; i++) {
		const struct etcd_kv_pair *kv = ev[i].kv, *old = ev[i].old;
		bool put = ev[i].type == ETCD_EVENT_PUT;
		if (kv->key_len == strlen(hk) && memcmp(kv->key, hk, kv->key_len) == 0) {
			head = put && head_parse(s, kv, &h) == 0;
			continue;
		}
		char *id = NULL;
		char kind = key_kind(s, put ? kv : old ? old : kv, &id, &inc, &ver);
		keys = keys || kind;
		if (kind == 'v') {
			if (old)
				term_version(s, &s->d, -1, id, ver, old);
			if (put)
				term_version(s, &s->d, 1, id, ver, kv);
		} else if (kind == 's') {
			struct row was = { 0 }, now = { 0 };
			if (old) {
				term_secret(s, &s->d, -1, id, old);
				row_parse(s, id, old->value, old->value_len, &was);
			}
			if (put) {
				term_secret(s, &s->d, 1, id, kv);
				row_parse(s, id, kv->value, kv->value_len, &now);
			}
			if (put && now.verified)
				out_add(s, STORE_CHANGED, &now.m);
			else if (put)
				row_log(id, &now, true);
			else if (was.m.incarnation)
				/* the deletion's revision is the head's: set below */
				out_add(s, STORE_DELETED, &was.m);
			row_clear(&was);
			row_clear(&now);
		}
		free(id);
	}
	free(hk);
	if (!keys && !head)
		return; /* nothing of the store's (a key beside it under PREFIX/) */
	bool ok = head && seal_digest_equal(&h.d, &s->d);
	if (ok && !s->tampered) {
		for (size_t i = first; i < s->nout; i++)
			if (s->out[i].kind == STORE_DELETED) {
				struct secret_meta *m = &s->out[i].meta;
				m->revision = h.revision;
				labels_clear(&m->labels);
			}
		return;
	}
	if (!s->tampered)
		log_error("etcd store: the keys under %s changed at etcd revision %" PRId64
		          " do not match its authenticated digest: changed outside secretsfs; "
		          "this mount no longer shows changes made elsewhere (unmount, check the "
		          "store, mount again)",
		          s->prefix, revision);
	s->tampered = true;
	while (s->nout > first)
		store_change_clear(&s->out[--s->nout]);
}

/* The replica unlocked: the records of the last batch go to fs/. */
static void on_watch_idle(void *arg)
{
	struct store *s = arg;
	for (size_t i = 0; i < s->nout; i++) {
		s->fn(s->fn_arg, &s->out[i]);
		store_change_clear(&s->out[i]);
	}
	s->nout = 0;
}

static int etcd_watch(struct store *s, store_change_fn fn, void *userdata)
{
	if (!s || !fn)
		return -EINVAL;
	if (s->watching)
		return -EALREADY;
	s->fn = fn;
	s->fn_arg = userdata;
	s->watching = true;
	int r = etcd_replica_start(s->rep, on_watch_batch, on_watch_idle, s);
	if (r < 0)
		s->watching = false;
	return r;
}

/* One linearizable read of the head, with the short deadline of a read
 * that is behind: it needs a leader and a quorum, as a change does.  (A
 * quiet watch says nothing about them: after a quorum loss etcd ends it
 * only seconds later.)  Opens for writing are rare; reads never ask. */
static int etcd_can_change(struct store *s)
{
	if (s->read_only)
		return -EROFS;
	struct etcd_range_result res = { 0 };
	char *hk = key_fmt(s, "head", NULL, 0, 0);
	int r = hk ? range_key(s, hk, 0, http_deadline(BEHIND_READ_MS), &res) : -ENOMEM;
	free(hk);
	etcd_range_result_clear(&res);
	if (r < 0 && r != -ENOMEM) {
		log_error("etcd store: etcd cannot be reached: changes are refused until it is "
		          "back (values are served from the local copy meanwhile)");
		r = -EIO;
	}
	return r;
}

const struct store_ops etcd_store_ops = {
	.name = "etcd",
	.caps = STORE_CAP_VERSIONS | STORE_CAP_WATCH | STORE_CAP_EXCHANGE,
	.open = etcd_open,
	.close = etcd_close,
	.list = etcd_list,
	.stat = etcd_stat,
	.get_value = etcd_get_value,
	.list_versions = etcd_list_versions,
	.create = etcd_create,
	.put_value = etcd_put_value,
	.exchange_values = etcd_exchange,
	.rename = etcd_rename,
	.delete_secret = etcd_delete,
	.set_labels = etcd_set_labels,
	.set_scopes = etcd_set_scopes,
	.watch = etcd_watch,
	.can_change = etcd_can_change,
};
