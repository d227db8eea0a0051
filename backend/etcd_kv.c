/* SPDX-License-Identifier: MIT */
/*
 * etcd v3's JSON gateway over http.c (etcd_kv.h says what and the lock
 * rules).  Facts this relies on, checked against etcd 3.4.23 (see
 * ../shared/notes/etcd-v3-json.md): every call is a POST with a JSON body;
 * keys and values are standard base64; int64 fields come back as strings;
 * fields that are zero or false are left out (a failed txn has no
 * "succeeded", a PUT event no "type"); a watch answers one JSON object per
 * line, and ends with {"error":…} on an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "etcd_kv.h"
#include "http.h"

#define TXN_OPS_MAX 128
#define CREDENTIAL_MAX 256

struct etcd_kv {
	struct http_client *http;
	pthread_mutex_t auth_lock; /* serialises logins; guards user, password */
	char *user;                /* sodium_malloc'ed, or NULL: no auth */
	char *password;            /* sodium_malloc'ed */
};

static const char *const headers[] = { "Grpc-Metadata-hasleader: true", NULL };
/* A serializable read is the member's own view, wanted most when there
 * is no leader: it goes without hasleader, which would refuse it. */
static const char *const no_headers[] = { NULL };

/* A member without a leader refuses before doing anything. */
static bool etcd_not_applied(long status, const char *message)
{
	return status == 503 && strstr(message, "no leader") != NULL;
}

int etcd_kv_open(const struct etcd_kv_config *cfg, struct etcd_kv **ret_kv)
{
	struct http_config hc = {
		.endpoints = cfg->endpoints,
		.n_endpoints = cfg->n_endpoints,
		.cacert = cfg->cacert,
		.cert = cfg->cert,
		.certkey = cfg->certkey,
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.attempt_timeout_ms = cfg->attempt_timeout_ms,
		.retries = cfg->retries,
		.backoff_ms = cfg->backoff_ms,
		.not_applied = etcd_not_applied,
		.name = "etcd",
	};
	struct etcd_kv *kv = calloc(1, sizeof(*kv));
	int r;

	if (!kv)
		return -ENOMEM;
	r = http_client_new(&hc, &kv->http);
	if (r < 0) {
		free(kv);
		return r;
	}
	pthread_mutex_init(&kv->auth_lock, NULL);
	*ret_kv = kv;
	return 0;
}

struct etcd_kv *etcd_kv_free(struct etcd_kv *kv)
{
	if (!kv)
		return NULL;
	http_client_free(kv->http);
	sodium_free(kv->user);
	sodium_free(kv->password);
	pthread_mutex_destroy(&kv->auth_lock);
	free(kv);
	return NULL;
}

struct http_client *etcd_kv_http(struct etcd_kv *kv)
{
	return kv->http;
}

/* --- JSON <-> bytes --- */

/* base64 of p as a JSON string (NULL on no memory) */
static json_t *b64(const void *p, size_t n)
{
	size_t size = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(size);
	json_t *j;

	if (!s)
		return NULL;
	sodium_bin2base64(s, size, p, n, sodium_base64_VARIANT_ORIGINAL);
	j = json_stringn_nocheck(s, size - 1);
	sodium_memzero(s, size);
	free(s);
	return j;
}

/* A field's bytes, NUL-terminated; a missing field is empty (and NULL). */
static int unb64(const json_t *o, const char *field, uint8_t **ret, size_t *ret_len)
{
	const json_t *j = json_object_get(o, field);
	const char *s = json_string_value(j);
	size_t n = json_string_length(j), cap = n / 4 * 3 + 3, len = 0;
	uint8_t *out;

	*ret = NULL;
	*ret_len = 0;
	if (!j)
		return 0;
	if (!s)
		return -EIO;
	out = malloc(cap + 1);
	if (!out)
		return -ENOMEM;
	if (sodium_base642bin(out, cap, s, n, NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) !=
	    0) {
		free(out);
		return -EIO;
	}
	out[len] = 0;
	*ret = out;
	*ret_len = len;
	return 0;
}

/* An int64 field, a string or a number; missing is 0.  *bad on garbage. */
static int64_t i64(const json_t *o, const char *field, bool *bad)
{
	const json_t *j = json_object_get(o, field);
	const char *s;
	char *end;
	long long v;

	if (!j)
		return 0;
	if (json_is_integer(j))
		return json_integer_value(j);
	s = json_string_value(j);
	if (!s || !*s) {
		*bad = true;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		*bad = true;
	return v;
}

static uint64_t u64(const json_t *o, const char *field, bool *bad)
{
	const json_t *j = json_object_get(o, field);
	const char *s = json_string_value(j);
	char *end;
	unsigned long long v;

	if (!j)
		return 0;
	if (json_is_integer(j))
		return (uint64_t)json_integer_value(j);
	if (!s || !*s || *s == '-') {
		*bad = true;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		*bad = true;
	return v;
}

static int64_t header_revision(const json_t *o, bool *bad)
{
	return i64(json_object_get(o, "header"), "revision", bad);
}

static json_t *str_i64(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_string(s);
}

/* Sets o[field] = v, taking v; false (and v dropped) on no memory. */
static bool set(json_t *o, const char *field, json_t *v)
{
	return v && json_object_set_new(o, field, v) == 0;
}

static void bad_answer(struct http_status *st, const char *what)
{
	if (st)
		snprintf(st->reason, sizeof(st->reason), "etcd answered %s that does not parse",
		         what);
}

void etcd_kv_pair_clear(struct etcd_kv_pair *p)
{
	if (!p)
		return;
	free(p->key);
	if (p->value) {
		sodium_memzero(p->value, p->value_len);
		free(p->value);
	}
	*p = (struct etcd_kv_pair){ 0 };
}

void etcd_range_result_clear(struct etcd_range_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		etcd_kv_pair_clear(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

void etcd_txn_result_clear(struct etcd_txn_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		etcd_range_result_clear(&r->ops[i].range);
	free(r->ops);
	memset(r, 0, sizeof(*r));
}

static int parse_pair(const json_t *o, struct etcd_kv_pair *p)
{
	bool bad = !json_is_object(o);
	int r;

	memset(p, 0, sizeof(*p));
	r = unb64(o, "key", &p->key, &p->key_len);
	if (r == 0)
		r = unb64(o, "value", &p->value, &p->value_len);
	p->create_revision = i64(o, "create_revision", &bad);
	p->mod_revision = i64(o, "mod_revision", &bad);
	p->version = i64(o, "version", &bad);
	p->lease = i64(o, "lease", &bad);
	if (r == 0 && bad)
		r = -EIO;
	if (r < 0)
		etcd_kv_pair_clear(p);
	return r;
}

static int parse_range(const json_t *o, struct etcd_range_result *res)
{
	const json_t *kvs = json_object_get(o, "kvs");
	bool bad = !json_is_object(o) || (kvs && !json_is_array(kvs));
	int r = 0;

	memset(res, 0, sizeof(*res));
	res->revision = header_revision(o, &bad);
	res->count = i64(o, "count", &bad);
	res->more = json_is_true(json_object_get(o, "more"));
	if (bad)
		return -EIO;
	if (json_array_size(kvs)) {
		res->kvs = calloc(json_array_size(kvs), sizeof(*res->kvs));
		if (!res->kvs)
			return -ENOMEM;
	}
	for (size_t i = 0; i < json_array_size(kvs) && r == 0; i++) {
		r = parse_pair(json_array_get(kvs, i), &res->kvs[i]);
		if (r == 0)
			res->n++;
	}
	if (r < 0)
		etcd_range_result_clear(res);
	return r;
}

/* --- requests --- */

/* The range fields of q into o. */
static bool put_range(json_t *o, const struct etcd_range *q, bool options)
{
	bool ok = set(o, "key", b64(q->key, q->key_len));

	if (q->prefix) {
		uint8_t *end = malloc(q->key_len + 1);
		size_t n = q->key_len;

		if (!end)
			return false;
		if (n)
			memcpy(end, q->key, n);
		/* the prefix with its last byte below 0xff raised by one;
		 * "\0" (every key) if there is none */
		while (n > 0 && end[n - 1] == 0xff)
			n--;
		if (n > 0)
			end[n - 1]++;
		else
			end[n++] = 0;
		if (q->key_len == 0)
			ok = ok && set(o, "key", b64("", 1));
		ok = ok && set(o, "range_end", b64(end, n));
		free(end);
	} else if (q->range_end) {
		ok = ok && set(o, "range_end", b64(q->range_end, q->range_end_len));
	}
	if (!options)
		return ok;
	if (q->revision)
		ok = ok && set(o, "revision", str_i64(q->revision));
	if (q->limit)
		ok = ok && set(o, "limit", str_i64(q->limit));
	if (q->keys_only)
		ok = ok && set(o, "keys_only", json_true());
	if (q->count_only)
		ok = ok && set(o, "count_only", json_true());
	if (q->serializable)
		ok = ok && set(o, "serializable", json_true());
	return ok;
}

static bool put_put(json_t *o, const void *key, size_t key_len, const void *value, size_t value_len,
                    int64_t lease)
{
	bool ok = set(o, "key", b64(key, key_len)) && set(o, "value", b64(value, value_len));

	if (lease)
		ok = ok && set(o, "lease", str_i64(lease));
	return ok;
}

static int reauthenticate(struct etcd_kv *kv, int64_t deadline);

/* etcd refuses a bad password, or a request without a token when auth is
 * on, as InvalidArgument (400): that is -EACCES here. */
static int auth_errno(int r, const struct http_status *st)
{
	if (r == -EINVAL && st->code == 400 &&
	    (strstr(st->reason, "etcdserver: authentication failed") ||
	     strstr(st->reason, "etcdserver: user name is empty")))
		return -EACCES;
	return r;
}

/* One call: body (taken) to path.  A 401 with credentials at hand logs in
 * again and sends once more (etcd did nothing with the first). */
static int call(struct etcd_kv *kv, const char *path, json_t *body, bool idempotent,
                int64_t deadline, json_t **ret, struct http_status *status)
{
	struct http_request req = {
		.method = "POST",
		.path = path,
		.body = body,
		.headers = json_is_true(json_object_get(body, "serializable")) ? no_headers
		                                                               : headers,
		.deadline = deadline,
		.idempotent = idempotent,
	};
	struct http_status local;
	struct http_status *st = status ? status : &local;
	int r;

	if (!body)
		return -ENOMEM;
	r = http_call(kv->http, &req, ret, st);
	/* 401: the token lapsed; "user name is empty": there is none yet (the
	 * first login found etcd away, etcd_kv_authenticate) */
	bool no_token = r == -EINVAL && st->code == 400 &&
	                strstr(st->reason, "etcdserver: user name is empty");
	if (((r == -EACCES && st->code == 401) || no_token) && kv->user &&
	    reauthenticate(kv, deadline) == 0)
		r = http_call(kv->http, &req, ret, st);
	json_decref(body);
	return auth_errno(r, st);
}

static int login(struct etcd_kv *kv, const char *user, const char *password, int64_t deadline,
                 struct http_status *status)
{
	struct http_status local;
	struct http_status *st = status ? status : &local;
	json_t *body = json_object(), *ans = NULL;
	struct http_request req = {
		.method = "POST",
		.path = "/v3/auth/authenticate",
		.body = body,
		.headers = headers,
		.deadline = deadline,
		.idempotent = true,
		.no_auth = true, /* not the token that may have lapsed */
	};
	const char *token;
	int r;

	if (!set(body, "name", json_string(user)) ||
	    !set(body, "password", json_string(password))) {
		json_decref(body);
		return -ENOMEM;
	}
	r = http_call(kv->http, &req, &ans, st);
	json_decref(body); /* jansson wipes what it frees (http.h) */
	if (r < 0)
		return auth_errno(r, st);
	token = json_string_value(json_object_get(ans, "token"));
	r = token ? http_client_set_auth(kv->http, token) : -EIO;
	if (!token)
		bad_answer(st, "a login");
	json_decref(ans);
	return r;
}

static char *locked_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = sodium_malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}

int etcd_kv_authenticate(struct etcd_kv *kv, const char *user, const char *password,
                         int64_t deadline, struct http_status *status)
{
	char *u, *p;
	int r;

	if (!*user || strlen(user) > CREDENTIAL_MAX || strlen(password) > CREDENTIAL_MAX)
		return -EINVAL;
	u = locked_strdup(user);
	p = locked_strdup(password);
	if (!u || !p) {
		sodium_free(u);
		sodium_free(p);
		return -ENOMEM;
	}
	pthread_mutex_lock(&kv->auth_lock);
	r = login(kv, u, p, deadline, status);
	/* kept also when etcd did not answer, to log in once it does; not
	 * when it refused them */
	if (r != -EACCES && r != -EINVAL && r != -EPROTO && r != -ENOMEM) {
		sodium_free(kv->user);
		sodium_free(kv->password);
		kv->user = u;
		kv->password = p;
		u = p = NULL;
	}
	pthread_mutex_unlock(&kv->auth_lock);
	sodium_free(u);
	sodium_free(p);
	return r;
}

static int reauthenticate(struct etcd_kv *kv, int64_t deadline)
{
	int r;

	pthread_mutex_lock(&kv->auth_lock);
	r = kv->user ? login(kv, kv->user, kv->password, deadline, NULL) : -EACCES;
	pthread_mutex_unlock(&kv->auth_lock);
	return r;
}

/* --- kv --- */

int etcd_kv_range(struct etcd_kv *kv, const struct etcd_range *q, int64_t deadline,
                  struct etcd_range_result *ret_result, struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	struct etcd_range_result res;
	int r;

	if (!put_range(body, q, true)) {
		json_decref(body);
		return -ENOMEM;
	}
	r = call(kv, "/v3/kv/range", body, true, deadline, &ans, status);
	if (r < 0)
		return r;
	r = parse_range(ans, &res);
	json_decref(ans);
	if (r == -EIO)
		bad_answer(status, "a range");
	if (r == 0)
		*ret_result = res;
	return r;
}

int etcd_kv_put(struct etcd_kv *kv, const void *key, size_t key_len, const void *value,
                size_t value_len, int64_t lease, int64_t deadline, int64_t *ret_revision,
                struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	bool bad = false;
	int64_t rev;
	int r;

	if (!put_put(body, key, key_len, value, value_len, lease)) {
		json_decref(body);
		return -ENOMEM;
	}
	r = call(kv, "/v3/kv/put", body, false, deadline, &ans, status);
	if (r < 0)
		return r;
	rev = header_revision(ans, &bad);
	json_decref(ans);
	if (bad) {
		bad_answer(status, "a put");
		return -EIO;
	}
	if (ret_revision)
		*ret_revision = rev;
	return 0;
}

int etcd_kv_delete(struct etcd_kv *kv, const struct etcd_range *q, int64_t deadline,
                   int64_t *ret_deleted, int64_t *ret_revision, struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	bool bad = false;
	int64_t rev, deleted;
	int r;

	if (!put_range(body, q, false)) {
		json_decref(body);
		return -ENOMEM;
	}
	r = call(kv, "/v3/kv/deleterange", body, false, deadline, &ans, status);
	if (r < 0)
		return r;
	rev = header_revision(ans, &bad);
	deleted = i64(ans, "deleted", &bad);
	json_decref(ans);
	if (bad) {
		bad_answer(status, "a delete");
		return -EIO;
	}
	if (ret_deleted)
		*ret_deleted = deleted;
	if (ret_revision)
		*ret_revision = rev;
	return 0;
}

/* --- txn --- */

static json_t *compare_json(const struct etcd_compare *c)
{
	static const char *const targets[] = { "VERSION", "CREATE", "MOD", "VALUE" };
	static const char *const fields[] = { "version", "create_revision", "mod_revision" };
	static const char *const results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	json_t *o = json_object();
	bool ok;

	if ((unsigned)c->target > ETCD_TARGET_VALUE || (unsigned)c->cmp > ETCD_NOT_EQUAL) {
		json_decref(o);
		return NULL;
	}
	ok = set(o, "key", b64(c->key, c->key_len)) &&
	     set(o, "target", json_string(targets[c->target])) &&
	     set(o, "result", json_string(results[c->cmp]));
	if (c->target == ETCD_TARGET_VALUE)
		ok = ok && set(o, "value", b64(c->value, c->value_len));
	else
		ok = ok && set(o, fields[c->target], str_i64(c->number));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *op_json(const struct etcd_op *op)
{
	json_t *o = json_object(), *inner = json_object();
	bool ok = o && inner;
	const char *name = NULL;

	switch (op->type) {
	case ETCD_OP_RANGE:
		name = "request_range";
		ok = ok && put_range(inner, &op->range, true);
		break;
	case ETCD_OP_PUT:
		name = "request_put";
		ok = ok && put_put(inner, op->range.key, op->range.key_len, op->value,
		                   op->value_len, op->lease);
		break;
	case ETCD_OP_DELETE:
		name = "request_delete_range";
		ok = ok && put_range(inner, &op->range, false);
		break;
	}
	if (!ok || !name || json_object_set_new(o, name, inner) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* An array of n things made by make(v[i]); NULL on no memory or a bad one. */
#define ARRAY_OF(make, v, n)                                                                       \
	({                                                                                         \
		json_t *_a = json_array();                                                         \
		for (size_t _i = 0; _a && _i < (n); _i++) {                                        \
			if (json_array_append_new(_a, make(&(v)[_i])) < 0) {                       \
				json_decref(_a);                                                   \
				_a = NULL;                                                         \
			}                                                                          \
		}                                                                                  \
		_a;                                                                                \
	})

static int parse_op_result(const json_t *o, struct etcd_op_result *res)
{
	const json_t *j;
	bool bad = false;

	memset(res, 0, sizeof(*res));
	if ((j = json_object_get(o, "response_range"))) {
		res->type = ETCD_OP_RANGE;
		return parse_range(j, &res->range);
	}
	if ((j = json_object_get(o, "response_delete_range"))) {
		res->type = ETCD_OP_DELETE;
		res->deleted = i64(j, "deleted", &bad);
		return bad ? -EIO : 0;
	}
	if (json_object_get(o, "response_put")) {
		res->type = ETCD_OP_PUT;
		return 0;
	}
	return -EIO;
}

int etcd_kv_txn(struct etcd_kv *kv, const struct etcd_txn *t, int64_t deadline,
                struct etcd_txn_result *ret_result, struct http_status *status)
{
	json_t *body, *ans = NULL, *responses;
	struct etcd_txn_result res = { 0 };
	bool bad = false;
	int r = 0;

	if (t->n_success > TXN_OPS_MAX || t->n_failure > TXN_OPS_MAX || t->n_compare > TXN_OPS_MAX)
		return -EINVAL;
	body = json_object();
	if (!set(body, "compare", ARRAY_OF(compare_json, t->compare, t->n_compare)) ||
	    !set(body, "success", ARRAY_OF(op_json, t->success, t->n_success)) ||
	    !set(body, "failure", ARRAY_OF(op_json, t->failure, t->n_failure))) {
		json_decref(body);
		return -EINVAL; /* a bad enum, or no memory */
	}
	r = call(kv, "/v3/kv/txn", body, t->retry_safe, deadline, &ans, status);
	if (r < 0)
		return r;
	res.succeeded = json_is_true(json_object_get(ans, "succeeded"));
	res.revision = header_revision(ans, &bad);
	responses = json_object_get(ans, "responses");
	if (bad || (responses && !json_is_array(responses)))
		r = -EIO;
	if (r == 0 && json_array_size(responses)) {
		res.ops = calloc(json_array_size(responses), sizeof(*res.ops));
		r = res.ops ? 0 : -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < json_array_size(responses); i++) {
		r = parse_op_result(json_array_get(responses, i), &res.ops[i]);
		if (r == 0)
			res.n++;
	}
	json_decref(ans);
	if (r < 0) {
		etcd_txn_result_clear(&res);
		if (r == -EIO)
			bad_answer(status, "a txn");
		return r;
	}
	*ret_result = res;
	return 0;
}

/* --- compaction, leases, status --- */

int etcd_kv_compact(struct etcd_kv *kv, int64_t revision, bool physical, int64_t deadline,
                    struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	int r;

	if (!set(body, "revision", str_i64(revision)) ||
	    (physical && !set(body, "physical", json_true()))) {
		json_decref(body);
		return -ENOMEM;
	}
	r = call(kv, "/v3/kv/compaction", body, true, deadline, &ans, status);
	json_decref(ans);
	return r;
}

int etcd_kv_lease_grant(struct etcd_kv *kv, int64_t ttl_s, int64_t deadline, int64_t *ret_id,
                        int64_t *ret_ttl, struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	bool bad = false;
	int64_t id, ttl;
	int r;

	if (!set(body, "TTL", str_i64(ttl_s))) {
		json_decref(body);
		return -ENOMEM;
	}
	/* not idempotent: a second grant is a second lease */
	r = call(kv, "/v3/lease/grant", body, false, deadline, &ans, status);
	if (r < 0)
		return r;
	id = i64(ans, "ID", &bad);
	ttl = i64(ans, "TTL", &bad);
	json_decref(ans);
	if (bad || !id) {
		bad_answer(status, "a lease grant");
		return -EIO;
	}
	*ret_id = id;
	if (ret_ttl)
		*ret_ttl = ttl;
	return 0;
}

struct keepalive {
	int64_t ttl;
	bool got, bad;
};

static int on_keepalive(json_t *o, void *arg)
{
	struct keepalive *k = arg;
	const json_t *res = json_object_get(o, "result");

	if (!res)
		return -EIO; /* {"error":…} */
	k->ttl = i64(res, "TTL", &k->bad);
	k->got = true;
	return 1; /* one answer per request: done */
}

int etcd_kv_lease_keepalive(struct etcd_kv *kv, int64_t id, int64_t deadline, int64_t *ret_ttl,
                            struct http_status *status)
{
	json_t *body = json_object();
	struct http_request req = {
		.method = "POST",
		.path = "/v3/lease/keepalive",
		.body = body,
		.headers = headers,
		.deadline = deadline,
		.idempotent = true,
	};
	struct keepalive k = { 0 };
	int r;

	if (!set(body, "ID", str_i64(id))) {
		json_decref(body);
		return -ENOMEM;
	}
	/* a streaming RPC through the gateway: one answer per POST */
	r = http_stream(kv->http, &req, 0, on_keepalive, &k, status);
	json_decref(body);
	if (r < 0)
		return r;
	if (!k.got || k.bad) {
		bad_answer(status, "a keepalive");
		return -EIO;
	}
	if (k.ttl <= 0)
		return -ENOENT; /* expired or revoked */
	if (ret_ttl)
		*ret_ttl = k.ttl;
	return 0;
}

int etcd_kv_lease_revoke(struct etcd_kv *kv, int64_t id, int64_t deadline,
                         struct http_status *status)
{
	json_t *body = json_object(), *ans = NULL;
	int r;

	if (!set(body, "ID", str_i64(id))) {
		json_decref(body);
		return -ENOMEM;
	}
	r = call(kv, "/v3/lease/revoke", body, true, deadline, &ans, status);
	json_decref(ans);
	return r;
}

int etcd_kv_status(struct etcd_kv *kv, int64_t deadline, struct etcd_member_status *ret_status,
                   struct http_status *status)
{
	json_t *ans = NULL, *header;
	struct etcd_member_status s = { 0 };
	bool bad = false;
	int r;

	r = call(kv, "/v3/maintenance/status", json_object(), true, deadline, &ans, status);
	if (r < 0)
		return r;
	header = json_object_get(ans, "header");
	s.revision = i64(header, "revision", &bad);
	s.cluster_id = u64(header, "cluster_id", &bad);
	s.member_id = u64(header, "member_id", &bad);
	s.leader = u64(ans, "leader", &bad);
	s.raft_term = i64(ans, "raftTerm", &bad);
	s.raft_index = i64(ans, "raftIndex", &bad);
	s.db_size = i64(ans, "dbSize", &bad);
	snprintf(s.version, sizeof(s.version), "%s",
	         json_string_value(json_object_get(ans, "version")) ?: "");
	json_decref(ans);
	if (bad) {
		bad_answer(status, "a status");
		return -EIO;
	}
	*ret_status = s;
	return 0;
}

/* --- watch --- */

struct watch_ctx {
	etcd_watch_fn fn;
	void *arg;
	struct etcd_watch_end *end;
	char message[HTTP_REASON_MAX]; /* of etcd's {"error":…} */
	bool unauthenticated;          /* canceled: the token lapsed, or none */
};

static int parse_event(const json_t *o, struct etcd_event *e)
{
	const char *type = json_string_value(json_object_get(o, "type"));
	const json_t *prev = json_object_get(o, "prev_kv");
	int r;

	memset(e, 0, sizeof(*e));
	if (type && strcmp(type, "DELETE") == 0)
		e->type = ETCD_EVENT_DELETE;
	else if (type && strcmp(type, "PUT") != 0)
		return -EIO;
	r = parse_pair(json_object_get(o, "kv"), &e->kv);
	if (r == 0 && prev) {
		r = parse_pair(prev, &e->prev_kv);
		if (r < 0)
			etcd_kv_pair_clear(&e->kv);
		e->has_prev_kv = r == 0;
	}
	return r;
}

static int on_watch_object(json_t *o, void *arg)
{
	struct watch_ctx *w = arg;
	const json_t *res = json_object_get(o, "result"), *error = json_object_get(o, "error");
	const json_t *events = json_object_get(res, "events");
	struct etcd_watch_batch b = { 0 };
	struct etcd_event *ev = NULL;
	bool bad = false;
	int r = 0;

	if (error) {
		const char *m = json_string_value(json_object_get(error, "message"));

		snprintf(w->message, sizeof(w->message), "etcd ended the watch: %.160s",
		         m ? m : "(no message)");
		return -EIO;
	}
	if (!json_is_object(res) || (events && !json_is_array(events)))
		return -EIO;
	b.revision = header_revision(res, &bad);
	if (json_is_true(json_object_get(res, "canceled"))) {
		const char *m = json_string_value(json_object_get(res, "cancel_reason"));

		w->end->compact_revision = i64(res, "compact_revision", &bad);
		if (w->end->compact_revision > 0)
			return -ESTALE;
		snprintf(w->message, sizeof(w->message), "etcd canceled the watch: %.160s",
		         m ? m : "(no reason)");
		/* a watch is refused this way, in a 200 answer, not with a 401 */
		w->unauthenticated = m && (strstr(m, "etcdserver: invalid auth token") ||
		                           strstr(m, "etcdserver: user name is empty"));
		return w->unauthenticated ? -EACCES : -EIO;
	}
	if (bad)
		return -EIO;
	b.created = json_is_true(json_object_get(res, "created"));
	b.n = json_array_size(events);
	b.progress = !b.created && b.n == 0;
	if (b.n) {
		ev = calloc(b.n, sizeof(*ev));
		if (!ev)
			return -ENOMEM;
	}
	for (size_t i = 0; i < b.n && r == 0; i++)
		r = parse_event(json_array_get(events, i), &ev[i]);
	if (r == 0) {
		b.events = ev;
		if (b.revision > w->end->last_revision)
			w->end->last_revision = b.revision;
		r = w->fn(&b, w->arg);
	}
	for (size_t i = 0; i < b.n && ev; i++) {
		etcd_kv_pair_clear(&ev[i].kv);
		etcd_kv_pair_clear(&ev[i].prev_kv);
	}
	free(ev);
	return r;
}

int etcd_kv_watch(struct etcd_kv *kv, const struct etcd_watch *w, etcd_watch_fn fn, void *arg,
                  struct etcd_watch_end *end, struct http_status *status)
{
	json_t *body = json_object(), *create = json_object();
	struct http_request req = {
		.method = "POST",
		.path = "/v3/watch",
		.body = body,
		.headers = headers,
		.idempotent = true, /* nothing is on the stream before it is created */
		.cancel = w->cancel,
	};
	struct watch_ctx ctx = { .fn = fn, .arg = arg, .end = end };
	struct http_status local;
	struct http_status *st = status ? status : &local;
	bool ok = put_range(create, &w->range, false);
	int r;

	memset(end, 0, sizeof(*end));
	if (w->start_revision)
		ok = ok && set(create, "start_revision", str_i64(w->start_revision));
	if (w->prev_kv)
		ok = ok && set(create, "prev_kv", json_true());
	if (w->progress_notify)
		ok = ok && set(create, "progress_notify", json_true());
	if (!ok || json_object_set_new(body, "create_request", create) < 0) {
		json_decref(body);
		return -ENOMEM;
	}
	r = http_stream(kv->http, &req, w->idle_timeout_ms, on_watch_object, &ctx, st);
	/* the token lapsed (or the first login found etcd away): log in, once,
	 * and create the watch again (nothing was delivered before) */
	if (r == -EACCES && ctx.unauthenticated && kv->user &&
	    reauthenticate(kv, http_deadline(10000)) == 0) {
		ctx = (struct watch_ctx){ .fn = fn, .arg = arg, .end = end };
		memset(end, 0, sizeof(*end));
		r = http_stream(kv->http, &req, w->idle_timeout_ms, on_watch_object, &ctx, st);
	}
	json_decref(body);
	if (ctx.message[0])
		snprintf(st->reason, sizeof(st->reason), "%s", ctx.message);
	else if (r == -ESTALE)
		snprintf(st->reason, sizeof(st->reason),
		         "watch from revision %" PRId64 ": compacted up to %" PRId64,
		         w->start_revision, end->compact_revision);
	return r;
}
