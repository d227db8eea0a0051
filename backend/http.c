/* SPDX-License-Identifier: MIT */
/*
 * The HTTP layer of the remote stores: http.h says what it does, when a
 * call moves on to another endpoint, and the lock rules.
 *
 * One call is one loop of attempts (run()); an attempt is one transfer on
 * one endpoint (attempt()), through curl_easy_perform for a plain call or a
 * private multi handle for a stream (so that http_cancel() can wake it with
 * curl_multi_wakeup instead of waiting for curl's once-a-second progress
 * callback).  Plain calls borrow a curl handle from the client's pool and
 * give it back, with its live connections, for the next call; a stream's
 * handle is its own and closes with it.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "http.h"
#include "log.h"

#define POOL_MAX 8 /* idle curl handles kept per client */
#define DEFAULT_CONNECT_MS 2000
#define DEFAULT_BACKOFF_MS 100
#define BACKOFF_MAX_MS 5000
#define DEFAULT_CALL_MS 10000 /* a call without a deadline */
#define DEFAULT_MAX_RESPONSE (16u << 20)
#define MESSAGE_MAX 160 /* bytes of a server's error message kept */
#define URL_MAX 512
#define WHAT_MAX 224        /* an attempt's outcome, within a reason */
#define STREAM_POLL_MS 1000 /* a stream's loop wakes at least this often */

struct http_client {
	char *endpoints[HTTP_ENDPOINTS_MAX]; /* immutable after new */
	size_t n_endpoints;
	char *cacert, *cert, *certkey; /* immutable after new */
	unsigned connect_timeout_ms, attempt_timeout_ms, retries, backoff_ms;
	size_t max_response;
	bool (*not_applied)(long status, const char *message);
	char name[32];

	pthread_mutex_t lock;
	size_t current;       /* protected by lock: the endpoint calls start at */
	char *auth;           /* protected by lock: "Authorization: …" line,
	                         sodium_malloc'ed, or NULL */
	CURL *idle[POOL_MAX]; /* protected by lock */
	size_t n_idle;        /* protected by lock */
	/* The rate limit (http.h): a token bucket, refilled at max_rate per
	 * second up to max_burst.  tokens and refilled_ms: protected by lock. */
	unsigned max_rate, max_burst;
	double tokens;
	int64_t refilled_ms;
};

struct http_cancel {
	atomic_bool cancelled; /* set with lock held, read anywhere */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast when cancelled is set */
	CURLM *multi;        /* protected by lock: the stream to wake, or NULL */
};

/* A growing byte buffer whose old copies are wiped (answers can hold
 * tokens and sealed values). */
struct buf {
	char *p;
	size_t len, cap, max;
	bool overflow;
};

enum verdict {
	V_DONE,            /* success, or a final error */
	V_NEXT_ANY,        /* nothing was done: any call may go on */
	V_NEXT_IDEMPOTENT, /* may have been done: only idempotent calls go on */
};

/* One call and its current attempt, shared with curl's callbacks (one
 * thread only). */
struct xfer {
	/* the call: the same for every attempt */
	const struct http_request *req;
	const char *body; /* the request's, JSON */
	size_t body_len;
	struct curl_slist *headers;
	json_t **ret_body;
	bool is_stream;
	http_object_fn fn; /* streams */
	void *arg;
	unsigned idle_ms;
	size_t delivered; /* objects handed to fn */

	/* the attempt */
	CURL *h;
	struct buf answer;
	char errbuf[CURL_ERROR_SIZE];
	long code; /* HTTP status, once known */
	int64_t last_data;
	bool cancelled;  /* by http_cancel() */
	bool stopped;    /* fn (or a bad line) ended the stream */
	bool idle;       /* ended by the idle timeout */
	int stop_result; /* http_stream's result when stopped */
	/* its outcome */
	enum verdict verdict;
	int64_t retry_after_ms;
	long retry_after_s;           /* the server's Retry-After, -1: none */
	char header[HTTP_HEADER_MAX]; /* req->want_header's value */
	json_t *error_json;           /* a JSON error answer (req->ret_error) */
	char what[WHAT_MAX];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_err;

/* jansson's allocations are wiped when freed: its strings can be a
 * password we send or a token we received.  malloc_usable_size keeps this
 * compatible with memory jansson allocated before it was set. */
static void wiping_free(void *p)
{
	if (!p)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

static void global_init(void)
{
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		global_err = -EIO;
	json_set_alloc_funcs(malloc, wiping_free);
}

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t http_deadline(unsigned timeout_ms)
{
	return http_now_ms() + timeout_ms;
}

/* --- buffers --- */

static void buf_free(struct buf *b)
{
	if (b->p) {
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

static int buf_add(struct buf *b, const char *data, size_t n)
{
	if (n > b->max - b->len) {
		b->overflow = true;
		return -EMSGSIZE;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = malloc(cap);
		if (!p)
			return -ENOMEM;
		if (b->len)
			memcpy(p, b->p, b->len);
		buf_free(b);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* drops the first n bytes */
static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	sodium_memzero(b->p + b->len - n, n);
	b->len -= n;
}

/* --- errors --- */

static int status_errno(long code)
{
	if (code >= 200 && code < 300)
		return 0;
	switch (code) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 408:
	case 504:
		return -ETIMEDOUT;
	case 409:
		return -EEXIST;
	case 413:
		return -EMSGSIZE;
	case 429:
		return -EAGAIN;
	default:
		return code >= 400 && code < 500 ? -EINVAL : -EIO;
	}
}

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	/* TLS refused: a configuration to fix, not an outage to wait out */
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* The server ended the TLS session with an alert where an answer was due:
 * with TLS 1.3 a refused client certificate (none, or one of another CA)
 * shows only then, as "…alert certificate required" or "…alert bad
 * certificate" on the first read.  The server handled no request. */
static bool tls_alert(CURLcode cc, const char *errbuf)
{
	return (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR) &&
	       strstr(errbuf, "SSL routines") && strstr(errbuf, " alert ");
}

/* Failures before the request went out: another endpoint is always safe. */
static bool unsent(CURLcode cc, long request_size)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return true;
	default:
		return request_size == 0;
	}
}

/* The server's own explanation in a JSON error body: "message", "error"
 * as a string, or etcd's streamed {"error":{"message":…}}.  Nothing else
 * of a body ever reaches a log line. */
static void server_message(const char *p, size_t len, char *out, size_t size)
{
	json_t *j, *e;
	const char *m = NULL;

	out[0] = '\0';
	if (!len)
		return;
	j = json_loadb(p, len, 0, NULL);
	if (json_is_object(j)) {
		e = json_object_get(j, "error");
		m = json_string_value(json_object_get(j, "message"));
		if (!m)
			m = json_string_value(e);
		if (!m && json_is_object(e))
			m = json_string_value(json_object_get(e, "message"));
	}
	if (m)
		snprintf(out, size, "%.*s", MESSAGE_MAX, m);
	json_decref(j);
}

/* --- clients --- */

static int check_url(const char *u)
{
	const char *host;
	size_t n = strlen(u);

	if (strncmp(u, "http://", 7) == 0)
		host = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		host = u + 8;
	else
		return -EINVAL;
	if (n >= URL_MAX || !*host || strchr(host, '@'))
		return -EINVAL; /* credentials go in the auth header, never a URL */
	for (const char *q = u; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return -EINVAL;
	return 0;
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

int http_client_new(const struct http_config *cfg, struct http_client **ret_client)
{
	struct http_client *c;
	bool failed = false;

	pthread_once(&global_once, global_init);
	if (global_err)
		return global_err;
	if (!cfg->n_endpoints || cfg->n_endpoints > HTTP_ENDPOINTS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		if (check_url(cfg->endpoints[i]) < 0)
			return -EINVAL;
	if (!cfg->cert != !cfg->certkey)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->n_endpoints = cfg->n_endpoints;
	for (size_t i = 0; i < cfg->n_endpoints; i++) {
		size_t n;

		c->endpoints[i] = dup_or_null(cfg->endpoints[i], &failed);
		n = c->endpoints[i] ? strlen(c->endpoints[i]) : 0;
		while (n > 0 && c->endpoints[i][n - 1] == '/')
			c->endpoints[i][--n] = '\0';
	}
	c->cacert = dup_or_null(cfg->cacert, &failed);
	c->cert = dup_or_null(cfg->cert, &failed);
	c->certkey = dup_or_null(cfg->certkey, &failed);
	if (failed) {
		http_client_free(c);
		return -ENOMEM;
	}
	c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
	                                                : DEFAULT_CONNECT_MS;
	c->attempt_timeout_ms = cfg->attempt_timeout_ms;
	c->retries = cfg->retries;
	c->backoff_ms = cfg->backoff_ms ? cfg->backoff_ms : DEFAULT_BACKOFF_MS;
	c->max_response = cfg->max_response ? cfg->max_response : DEFAULT_MAX_RESPONSE;
	c->not_applied = cfg->not_applied;
	c->max_rate = cfg->max_rate;
	c->max_burst = cfg->max_burst ? cfg->max_burst : cfg->max_rate;
	c->tokens = c->max_burst;
	c->refilled_ms = http_now_ms();
	snprintf(c->name, sizeof(c->name), "%s", cfg->name ? cfg->name : "http");
	*ret_client = c;
	return 0;
}

struct http_client *http_client_free(struct http_client *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	for (size_t i = 0; i < c->n_endpoints; i++)
		free(c->endpoints[i]);
	free(c->cacert);
	free(c->cert);
	free(c->certkey);
	sodium_free(c->auth);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

int http_client_set_auth(struct http_client *c, const char *value)
{
	static const char prefix[] = "Authorization: ";
	char *line = NULL, *old;

	if (value) {
		size_t n = strlen(value);

		if (!n || strpbrk(value, "\r\n"))
			return -EINVAL;
		line = sodium_malloc(sizeof(prefix) + n);
		if (!line)
			return -ENOMEM;
		memcpy(line, prefix, sizeof(prefix) - 1);
		memcpy(line + sizeof(prefix) - 1, value, n + 1);
	}
	pthread_mutex_lock(&c->lock);
	old = c->auth;
	c->auth = line;
	pthread_mutex_unlock(&c->lock);
	sodium_free(old); /* wipes */
	return 0;
}

size_t http_client_endpoint(struct http_client *c)
{
	size_t i;

	pthread_mutex_lock(&c->lock);
	i = c->current;
	pthread_mutex_unlock(&c->lock);
	return i;
}

const char *http_client_endpoint_url(const struct http_client *c, size_t i)
{
	return i < c->n_endpoints ? c->endpoints[i] : NULL;
}

static void use_endpoint(struct http_client *c, size_t ep)
{
	bool changed;

	pthread_mutex_lock(&c->lock);
	changed = c->current != ep;
	c->current = ep;
	pthread_mutex_unlock(&c->lock);
	if (changed)
		log_info("%s: now using endpoint %s", c->name, c->endpoints[ep]);
}

static CURL *handle_get(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->n_idle)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->lock);
	return h ? h : curl_easy_init();
}

static void handle_put(struct http_client *c, CURL *h)
{
	/* forget the options (they point into the call's stack and header
	 * list); connections stay */
	curl_easy_reset(h);
	pthread_mutex_lock(&c->lock);
	if (c->n_idle < POOL_MAX) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* Copies of the header lines are wiped before curl frees them (one is the
 * auth header). */
static void headers_free(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		sodium_memzero(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

static int headers_new(struct http_client *c, const struct http_request *req,
                       struct curl_slist **ret_headers)
{
	static const char *const fixed[] = {
		"Accept: application/json",
		"Expect:", /* no 100-continue round trip for big bodies */
	};
	struct curl_slist *h = NULL, *n;
	char type[128];
	bool failed = false;

	if (req->content_type &&
	    (strpbrk(req->content_type, "\r\n") || strlen(req->content_type) > sizeof(type) - 16))
		return -EINVAL;
	snprintf(type, sizeof(type), "Content-Type: %s",
	         req->content_type ? req->content_type : "application/json");
	n = curl_slist_append(h, type);
	failed = !n;
	h = n ? n : h;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && !failed; i++) {
		n = curl_slist_append(h, fixed[i]);
		failed = !n;
		h = n ? n : h;
	}
	for (size_t i = 0; req->headers && req->headers[i] && !failed; i++) {
		if (strpbrk(req->headers[i], "\r\n")) {
			headers_free(h);
			return -EINVAL;
		}
		n = curl_slist_append(h, req->headers[i]);
		failed = !n;
		h = n ? n : h;
	}
	pthread_mutex_lock(&c->lock);
	if (c->auth && !req->no_auth && !failed) {
		n = curl_slist_append(h, c->auth);
		failed = !n;
		h = n ? n : h;
	}
	pthread_mutex_unlock(&c->lock);
	if (failed) {
		headers_free(h);
		return -ENOMEM;
	}
	*ret_headers = h;
	return 0;
}

/* --- cancellation --- */

int http_cancel_new(struct http_cancel **ret_cancel)
{
	struct http_cancel *k = calloc(1, sizeof(*k));
	pthread_condattr_t attr;

	if (!k)
		return -ENOMEM;
	atomic_init(&k->cancelled, false);
	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &attr);
	pthread_condattr_destroy(&attr);
	*ret_cancel = k;
	return 0;
}

struct http_cancel *http_cancel_free(struct http_cancel *k)
{
	if (!k)
		return NULL;
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	free(k);
	return NULL;
}

void http_cancel(struct http_cancel *k)
{
	pthread_mutex_lock(&k->lock);
	atomic_store(&k->cancelled, true);
	if (k->multi)
		curl_multi_wakeup(k->multi);
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

bool http_cancelled(struct http_cancel *k)
{
	return k && atomic_load(&k->cancelled);
}

int http_cancel_sleep(struct http_cancel *k, unsigned ms)
{
	struct timespec end;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	if (!k) {
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == EINTR)
			;
		return 0;
	}
	pthread_mutex_lock(&k->lock);
	while (!atomic_load(&k->cancelled) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&k->cond, &k->lock, &end);
	r = atomic_load(&k->cancelled) ? -ECANCELED : 0;
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* --- one attempt --- */

/* Hands every complete line of a stream's buffer (and, at the end, what
 * is left) to fn.  false once the stream is to stop. */
static bool deliver(struct xfer *x, bool final)
{
	while (x->answer.len) {
		char *nl = memchr(x->answer.p, '\n', x->answer.len);
		size_t n = nl ? (size_t)(nl - x->answer.p) : x->answer.len;
		size_t blank = strspn(x->answer.p, " \t\r");
		json_t *o;
		int r;

		if (!nl && !final)
			break;
		if (blank >= n) {
			buf_consume(&x->answer, nl ? n + 1 : n);
			continue;
		}
		o = json_loadb(x->answer.p, n, 0, NULL);
		buf_consume(&x->answer, nl ? n + 1 : n);
		if (!json_is_object(o)) {
			json_decref(o);
			x->stopped = true;
			x->stop_result = -EIO;
			snprintf(x->errbuf, sizeof(x->errbuf),
			         "a streamed line is not a JSON object");
			return false;
		}
		x->delivered++;
		r = x->fn(o, x->arg);
		json_decref(o);
		if (r) {
			x->stopped = true;
			x->stop_result = r > 0 ? 0 : r;
			return false;
		}
	}
	return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	x->last_data = http_now_ms();
	if (buf_add(&x->answer, p, size * n) < 0)
		return 0; /* ends the transfer: CURLE_WRITE_ERROR */
	if (x->is_stream) {
		if (!x->code)
			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->code);
		if (x->code >= 200 && x->code < 300 && !deliver(x, false))
			return 0;
	}
	return size * n;
}

/* Keeps the value of the answer header the request asked for (of the
 * last answer: a new status line starts over). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, name = strlen(x->req->want_header);

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0)
		x->header[0] = '\0';
	if (len > name + 1 && strncasecmp(p, x->req->want_header, name) == 0 && p[name] == ':') {
		const char *v = p + name + 1;
		size_t vl = len - name - 1;

		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(x->header))
			vl = sizeof(x->header) - 1;
		memcpy(x->header, v, vl);
		x->header[vl] = '\0';
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = arg;

	if (http_cancelled(x->req->cancel)) {
		x->cancelled = true;
		return 1;
	}
	return 0;
}

static bool set_options(struct http_client *c, struct xfer *x, const char *url, int64_t timeout_ms)
{
	const struct http_request *req = x->req;
	CURL *h = x->h;
	bool ok = true;

#define SET(opt, val) (ok = ok && curl_easy_setopt(h, opt, val) == CURLE_OK)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(timeout_ms && timeout_ms < c->connect_timeout_ms ? timeout_ms
	                                                            : c->connect_timeout_ms));
	SET(CURLOPT_HTTPHEADER, x->headers);
	SET(CURLOPT_WRITEFUNCTION, on_data);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (req->want_header) {
		SET(CURLOPT_HEADERFUNCTION, on_header);
		SET(CURLOPT_HEADERDATA, x);
	}
	if (c->cacert)
		SET(CURLOPT_CAINFO, c->cacert);
	if (c->cert) {
		SET(CURLOPT_SSLCERT, c->cert);
		SET(CURLOPT_SSLKEY, c->certkey);
	}
	if (req->cancel) {
		SET(CURLOPT_NOPROGRESS, 0L);
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, x);
	}
	if (strcmp(req->method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(req->method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, req->method);
		if (x->body || strcmp(req->method, "POST") == 0) {
			SET(CURLOPT_POSTFIELDSIZE, (long)x->body_len);
			SET(CURLOPT_POSTFIELDS, x->body ? x->body : "");
		}
	}
#undef SET
	return ok;
}

/* Runs a stream's transfer in a multi handle of its own, which
 * http_cancel() can wake. */
static CURLcode perform_stream(struct xfer *x)
{
	CURLM *m = curl_multi_init();
	CURLcode cc = CURLE_OK;
	int running = 1, left;

	if (!m || curl_multi_add_handle(m, x->h) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_OUT_OF_MEMORY;
	}
	if (x->req->cancel) {
		pthread_mutex_lock(&x->req->cancel->lock);
		x->req->cancel->multi = m;
		pthread_mutex_unlock(&x->req->cancel->lock);
	}
	x->last_data = http_now_ms();
	for (;;) {
		CURLMsg *msg;
		int64_t now, wait = STREAM_POLL_MS;

		if (curl_multi_perform(m, &running) != CURLM_OK) {
			cc = CURLE_FAILED_INIT;
			break;
		}
		if (!running) {
			msg = curl_multi_info_read(m, &left);
			cc = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
			break;
		}
		if (http_cancelled(x->req->cancel)) {
			x->cancelled = true;
			cc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		now = http_now_ms();
		if (x->idle_ms) {
			int64_t idle_left = x->last_data + x->idle_ms - now;

			if (idle_left <= 0) {
				x->idle = true;
				cc = CURLE_OPERATION_TIMEDOUT;
				break;
			}
			wait = idle_left < wait ? idle_left : wait;
		}
		curl_multi_poll(m, NULL, 0, (int)wait, NULL);
	}
	if (x->req->cancel) {
		pthread_mutex_lock(&x->req->cancel->lock);
		x->req->cancel->multi = NULL;
		pthread_mutex_unlock(&x->req->cancel->lock);
	}
	curl_multi_remove_handle(m, x->h);
	curl_multi_cleanup(m);
	return cc;
}

#define WHAT(...) snprintf(x->what, sizeof(x->what), __VA_ARGS__)

/* One transfer to endpoint ep: 0 or -errno, with x->verdict (may the call
 * go on?) and x->what (for the reason line) set. */
static int attempt(struct http_client *c, struct xfer *x, size_t ep, int64_t timeout_ms)
{
	char url[URL_MAX * 2], msg[MESSAGE_MAX + 1];
	long sent = 0;
	curl_off_t retry_after = -1;
	CURLcode cc;
	int r;

	x->verdict = V_DONE;
	x->retry_after_ms = 0;
	x->answer.len = 0;
	x->answer.overflow = false;
	x->errbuf[0] = '\0';
	x->code = 0;
	x->retry_after_s = -1;
	x->header[0] = '\0';
	json_decref(x->error_json);
	x->error_json = NULL;
	x->stopped = x->idle = x->cancelled = false;
	snprintf(url, sizeof(url), "%s%s", c->endpoints[ep], x->req->path);
	if (!set_options(c, x, url, timeout_ms)) {
		WHAT("curl refused an option");
		return -EIO;
	}
	cc = x->is_stream ? perform_stream(x) : curl_easy_perform(x->h);
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->code);
	curl_easy_getinfo(x->h, CURLINFO_REQUEST_SIZE, &sent);
	curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &retry_after);

	if (x->cancelled) {
		WHAT("cancelled");
		return -ECANCELED;
	}
	if (x->stopped) {
		WHAT("%.200s", x->stop_result ? x->errbuf : "stream ended by the caller");
		return x->stop_result;
	}
	if (x->answer.overflow) {
		WHAT("answer larger than %zu bytes", c->max_response);
		return -EMSGSIZE;
	}
	if (x->idle) {
		WHAT("stream idle for %u ms", x->idle_ms);
		x->verdict = x->delivered ? V_DONE : V_NEXT_IDEMPOTENT;
		return -ETIMEDOUT;
	}
	if (cc != CURLE_OK) {
		WHAT("%.200s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
		bool alert = tls_alert(cc, x->errbuf);
		x->verdict = alert || unsent(cc, sent) ? V_NEXT_ANY : V_NEXT_IDEMPOTENT;
		if (x->delivered)
			x->verdict = V_DONE; /* the caller has seen part of it */
		return alert ? -EPROTO : curl_errno(cc);
	}
	r = status_errno(x->code);
	if (r < 0) {
		server_message(x->answer.p, x->answer.len, msg, sizeof(msg));
		WHAT("HTTP %ld%s%s", x->code, msg[0] ? ": " : "", msg);
		if (x->code == 429 || (c->not_applied && c->not_applied(x->code, msg)))
			x->verdict = V_NEXT_ANY;
		else if (x->code >= 500 || x->code == 408)
			x->verdict = V_NEXT_IDEMPOTENT;
		if (retry_after > 0) { /* curl says 0 for none too */
			x->retry_after_s = (long)retry_after;
			x->retry_after_ms = (int64_t)retry_after * 1000;
		}
		if (x->req->ret_error && x->answer.len)
			x->error_json = json_loadb(x->answer.p, x->answer.len, 0, NULL);
		return r;
	}
	WHAT("HTTP %ld", x->code);
	if (x->is_stream) {
		/* the last object may lack its newline (etcd's error chunk) */
		if (!deliver(x, true))
			return x->stop_result;
		WHAT("stream ended by the server");
		return -ECONNRESET;
	}
	if (x->ret_body) {
		json_t *j = x->answer.len ? json_loadb(x->answer.p, x->answer.len, 0, NULL)
		                          : json_object();

		if (!j) {
			WHAT("HTTP %ld with an answer that is not JSON", x->code);
			x->verdict = V_NEXT_IDEMPOTENT;
			return -EIO;
		}
		*x->ret_body = j;
	}
	return 0;
}

/* --- the call loop --- */

static int64_t backoff(struct http_client *c, unsigned round, int64_t retry_after_ms)
{
	int64_t ms = c->backoff_ms;

	for (unsigned i = 1; i < round && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	ms = ms / 2 + randombytes_uniform((uint32_t)(ms / 2 + 1)); /* jitter */
	return retry_after_ms > ms ? retry_after_ms : ms;
}

/* Waits for the rate limit's next slot (http.h): 0, -ETIMEDOUT if the
 * deadline would pass first (nothing sent), or -ECANCELED. */
static int rate_wait(struct http_client *c, const struct http_request *req, int64_t deadline)
{
	int64_t now, wait_ms;

	if (!c->max_rate)
		return 0;
	pthread_mutex_lock(&c->lock);
	now = http_now_ms();
	c->tokens += (double)(now - c->refilled_ms) * c->max_rate / 1000.0;
	if (c->tokens > c->max_burst)
		c->tokens = c->max_burst;
	c->refilled_ms = now;
	wait_ms = c->tokens >= 1 ? 0 : (int64_t)((1 - c->tokens) * 1000.0 / c->max_rate) + 1;
	if (deadline && now + wait_ms >= deadline) {
		pthread_mutex_unlock(&c->lock);
		return -ETIMEDOUT;
	}
	c->tokens -= 1; /* this slot is ours, even while we wait for it */
	pthread_mutex_unlock(&c->lock);
	if (wait_ms && http_cancel_sleep(req->cancel, (unsigned)wait_ms) < 0)
		return -ECANCELED;
	return 0;
}

/* The attempts of one call (http.h: when a call goes on). */
static int run(struct http_client *c, struct xfer *x, struct http_status *status)
{
	const struct http_request *req = x->req;
	struct http_status local;
	struct http_status *st = status ? status : &local;
	int64_t start = http_now_ms(), deadline = req->deadline;
	char *body = NULL, best_what[WHAT_MAX] = "";
	size_t first, tried = 0, ep = 0, best_ep = 0;
	long best_code = 0;
	unsigned round = 0;
	int r, best = 0;
	size_t round_tls = 0; /* endpoints of this round that refused TLS */

	memset(st, 0, sizeof(*st));
	st->retry_after_s = -1;
	if (req->ret_error)
		*req->ret_error = NULL;
	x->what[0] = '\0';
	if (!deadline && !x->is_stream)
		deadline = start + DEFAULT_CALL_MS;
	if (!req->method || !req->path || req->path[0] != '/')
		return -EINVAL;
	if (req->body) {
		body = json_dumps(req->body, JSON_COMPACT);
		if (!body)
			return -ENOMEM;
		x->body = body;
		x->body_len = strlen(body);
	} else if (req->raw_body) {
		x->body = req->raw_body;
		x->body_len = req->raw_len;
	}
	r = headers_new(c, req, &x->headers);
	if (r < 0)
		goto out;
	x->answer.max = c->max_response;
	first = http_client_endpoint(c);
	for (;;) {
		int64_t now = http_now_ms(), timeout = deadline ? deadline - now : 0;

		if (http_cancelled(req->cancel)) {
			r = -ECANCELED;
			WHAT("cancelled");
			break;
		}
		if (deadline && timeout <= 0) {
			r = -ETIMEDOUT;
			memcpy(best_what, x->what, sizeof(best_what)); /* keep the last outcome */
			WHAT("deadline passed%s%.180s", tried ? "; last: " : "", best_what);
			break;
		}
		ep = (first + tried) % c->n_endpoints;
		r = rate_wait(c, req, deadline);
		if (r == -ETIMEDOUT) {
			memcpy(best_what, x->what, sizeof(best_what));
			WHAT("deadline passed waiting for the rate limit (%u a second)%s%.150s",
			     c->max_rate, tried ? "; last: " : "", best_what);
			break;
		}
		if (r < 0) {
			WHAT("cancelled");
			break;
		}
		if (deadline)
			timeout = deadline - http_now_ms();
		if (deadline && timeout <= 0)
			continue; /* the deadline check above ends it */
		if (!x->is_stream && req->idempotent && c->attempt_timeout_ms &&
		    c->n_endpoints > 1 && timeout > c->attempt_timeout_ms)
			timeout = c->attempt_timeout_ms;
		r = attempt(c, x, ep, timeout);
		tried++;
		log_debug("%s: %s %s at %s: %s in %" PRId64 " ms", c->name, req->method, req->path,
		          c->endpoints[ep], x->what, http_now_ms() - now);
		if (r == 0) {
			use_endpoint(c, ep);
			break;
		}
		if (r != -EHOSTUNREACH) { /* an endpoint that answered explains best */
			best = r;
			best_ep = ep;
			best_code = x->code;
			memcpy(best_what, x->what, sizeof(best_what));
		}
		if (x->verdict == V_DONE || (x->verdict == V_NEXT_IDEMPOTENT && !req->idempotent))
			break;
		round_tls += r == -EPROTO;
		if (tried % c->n_endpoints)
			continue; /* the next endpoint of this round */
		/* TLS refused everywhere: a configuration to fix, no retry will */
		if (x->is_stream || round >= c->retries || round_tls == c->n_endpoints)
			break;
		round_tls = 0;
		round++;
		x->retry_after_ms = backoff(c, round, x->retry_after_ms);
		if (deadline && http_now_ms() + x->retry_after_ms >= deadline)
			break; /* no time for another round: the last error stands */
		if (http_cancel_sleep(req->cancel, (unsigned)x->retry_after_ms) < 0) {
			r = -ECANCELED;
			WHAT("cancelled");
			break;
		}
	}
	if (r == -EHOSTUNREACH && best) {
		r = best;
		ep = best_ep;
		x->code = best_code;
		memcpy(x->what, best_what, sizeof(x->what));
	}
	st->code = x->code;
	st->endpoint = ep;
	st->retry_after_s = x->retry_after_s;
	memcpy(st->header, x->header, sizeof(st->header));
	if (req->ret_error) {
		*req->ret_error = r < 0 ? x->error_json : NULL;
		if (r < 0)
			x->error_json = NULL;
	}
	snprintf(st->reason, sizeof(st->reason), "%s %s at %s: %s (%zu attempt%s, %" PRId64 " ms)",
	         req->method, req->path, c->endpoints[ep], x->what, tried, tried == 1 ? "" : "s",
	         http_now_ms() - start);
out:
	json_decref(x->error_json);
	x->error_json = NULL;
	headers_free(x->headers);
	wiping_free(body);
	buf_free(&x->answer);
	return r;
}

int http_call(struct http_client *c, const struct http_request *req, json_t **ret_body,
              struct http_status *status)
{
	struct xfer x = { .req = req, .ret_body = ret_body };
	int r;

	x.h = handle_get(c);
	if (!x.h)
		return -ENOMEM;
	r = run(c, &x, status);
	handle_put(c, x.h);
	return r;
}

int http_stream(struct http_client *c, const struct http_request *req, unsigned idle_timeout_ms,
                http_object_fn on_object, void *arg, struct http_status *status)
{
	struct xfer x = { .req = req,
		          .is_stream = true,
		          .fn = on_object,
		          .arg = arg,
		          .idle_ms = idle_timeout_ms };
	int r;

	x.h = curl_easy_init(); /* its own: the connection ends with the stream */
	if (!x.h)
		return -ENOMEM;
	r = run(c, &x, status);
	curl_easy_cleanup(x.h);
	return r;
}
