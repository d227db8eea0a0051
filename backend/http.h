/* SPDX-License-Identifier: MIT */
/*
 * The one HTTP layer of the remote stores (etcd's JSON gateway now, the
 * Redpanda Cloud Data Plane API next): JSON requests and answers over
 * libcurl, with the things every such store needs done once:
 *
 *  - a deadline on every call (a point in time, so that one store
 *    operation made of several calls has one budget); connects are capped
 *    by connect_timeout_ms on top of it;
 *  - TLS verified against a CA file or the system's CAs, with an optional
 *    client certificate; redirects are never followed;
 *  - an optional authorization header (a Bearer token, etcd's raw token),
 *    kept in locked memory and never logged;
 *  - endpoint failover: a client has a list of base URLs; a call starts at
 *    the one that answered last and moves on when one cannot be reached,
 *    or when an answer allows it (see below);
 *  - bounded retries with jittered backoff, only where sending again is
 *    safe;
 *  - an optional rate limit (config.max_rate): a token bucket shared by
 *    every call of the client, taken before each attempt, so that a
 *    client never sends more than max_rate requests per second (after an
 *    initial burst); a call whose deadline would pass while it waits for
 *    its turn fails with -ETIMEDOUT without sending anything;
 *  - a streaming call for long-lived answers that are a sequence of JSON
 *    objects, one per line (etcd's /v3/watch), with an idle timeout and
 *    cancellation from another thread.
 *
 * When a call goes to the next endpoint or round.  An attempt that failed
 * before the request was sent (no connection, TLS handshake refused) may
 * always go on.  So may an answer that says the server did nothing: 429,
 * or what config.not_applied recognises (etcd's 503 "no leader").  Other
 * failures (5xx, a timeout or reset after sending) go on only for a call
 * marked idempotent: a write that may have happened is not repeated.  After
 * every endpoint failed once, the call pauses (backoff_ms, doubling and
 * jittered, or the server's Retry-After) and tries another round, at most
 * config.retries more rounds and never past the deadline.
 *
 * Errors are -errno: -ETIMEDOUT (the deadline passed), -EHOSTUNREACH (no
 * endpoint could be reached), -EPROTO (TLS failed: the server's
 * certificate did not verify, a CA or client certificate file is bad, the
 * handshake was refused), -EINVAL (400 and other 4xx), -EACCES (401,
 * 403), -ENOENT (404), -EEXIST (409), -EAGAIN (429), -EMSGSIZE (answer over
 * max_response), -ECANCELED (cancelled), -EIO (5xx, a broken connection, an
 * answer that is not JSON).  The error of an endpoint that answered wins
 * over "unreachable" from the others.  Every call fills a struct
 * http_status with a line a person can act on: method, path, endpoint,
 * status, the server's error message if it sent one in JSON ("message" or
 * "error"), attempts and elapsed time.  Bodies are never logged or put in
 * it: they can hold sealed values, passwords and tokens.  The layer logs
 * one debug line per attempt and one info line when the endpoint in use
 * changes; failing calls are the caller's to log, once, with the reason.
 *
 * Secrets in memory: request bodies and answers are wiped before they are
 * freed, and jansson is set (once, process-wide) to wipe what it frees, so
 * a password in a JSON request or a token in an answer does not linger in
 * the heap.  libcurl's own buffers are not wiped.
 *
 * Threads.  A client is used by any number of threads at once.
 * client->lock guards the endpoint in use, the auth header and a small
 * pool of idle curl handles (each keeps its connections alive for the
 * next call); it is held only to read or swap those, never during a
 * transfer, a sleep or a callback.  A cancel object has its own lock
 * (guards its flag and the stream it wakes), taken by http_cancel() and by
 * the call it cancels for a moment; it nests inside nothing.
 */
#ifndef SECRETSFS_HTTP_H
#define SECRETSFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HTTP_ENDPOINTS_MAX 16
#define HTTP_REASON_MAX 320
#define HTTP_HEADER_MAX 160

struct http_client;
struct http_cancel;

struct http_config {
	const char *const *endpoints; /* base URLs, http:// or https://, no
	                                 user:password@; 1..HTTP_ENDPOINTS_MAX */
	size_t n_endpoints;
	const char *cacert;          /* PEM CA bundle; NULL: the system's */
	const char *cert;            /* PEM client certificate; NULL: none */
	const char *certkey;         /* its key (PEM, not encrypted) */
	unsigned connect_timeout_ms; /* per connection; 0: 2000 */
	unsigned attempt_timeout_ms; /* cap on one attempt of an idempotent
	                                call, so that a hung endpoint leaves
	                                time for the next; 0: no cap */
	unsigned retries;            /* extra rounds over the endpoints */
	unsigned backoff_ms;         /* pause after the first round; 0: 100 */
	size_t max_response;         /* bytes in an answer; 0: 16 MiB */
	/* Optional: true if an error answer means the server did not act on
	 * the request, so that even a call that is not idempotent may go to
	 * the next endpoint.  message is the server's, or "". */
	bool (*not_applied)(long status, const char *message);
	const char *name;   /* what log lines start with: "etcd" */
	unsigned max_rate;  /* requests per second, 0: no limit */
	unsigned max_burst; /* requests at once before max_rate applies;
	                        0: max_rate */
};

struct http_request {
	const char *method;         /* "GET", "POST", "PUT", "DELETE" */
	const char *path;           /* after the base URL: "/v3/kv/range" */
	const json_t *body;         /* NULL: none */
	const char *const *headers; /* NULL-terminated "Name: value" lines */
	int64_t deadline;           /* http_deadline(); 0: 10 s for http_call,
	                               none for http_stream */
	bool idempotent;            /* sending it twice does no harm */
	bool no_auth;               /* without the Authorization header (a login) */
	struct http_cancel *cancel; /* NULL: cannot be cancelled */
	/* Optional: a body that is not JSON (instead of body), sent as it
	 * is with this Content-Type (a form for an OAuth token endpoint).
	 * It may hold a secret: it is never logged, and the caller wipes it. */
	const char *raw_body;
	size_t raw_len;
	const char *content_type; /* "application/x-www-form-urlencoded" */
	/* Optional: the answer header of this name (case-insensitive) of the
	 * last attempt goes to status->header (a rate limit's own header). */
	const char *want_header;
	/* Optional: an error answer (not 2xx) that is JSON is handed here
	 * for the caller's own reading of its details (json_decref it);
	 * NULL when there was none. */
	json_t **ret_error;
};

/* What happened, for a log line (never holds a body or a header). */
struct http_status {
	long code;       /* HTTP status of the last answer; 0: none */
	size_t endpoint; /* index of the endpoint of the last attempt */
	char reason[HTTP_REASON_MAX];
	long retry_after_s;           /* the last answer's Retry-After (> 0), -1: none */
	char header[HTTP_HEADER_MAX]; /* request.want_header's value, or "" */
};

/* Milliseconds on CLOCK_MONOTONIC, and that plus timeout_ms. */
int64_t http_now_ms(void);
int64_t http_deadline(unsigned timeout_ms);

/* -EINVAL for a bad config (no endpoint, a URL with credentials in it). */
int http_client_new(const struct http_config *cfg, struct http_client **ret_client);
struct http_client *http_client_free(struct http_client *c);

/* The value of the Authorization header from now on ("Bearer …", or
 * etcd's raw token); NULL removes it.  Copied into locked memory. */
int http_client_set_auth(struct http_client *c, const char *value);

/* The endpoint calls start at (the last that answered), and its URL. */
size_t http_client_endpoint(struct http_client *c);
const char *http_client_endpoint_url(const struct http_client *c, size_t i);

/* One request.  On success (2xx) 0 and, if ret_body is not NULL, the answer
 * (an empty object for an empty body).  status may be NULL. */
int http_call(struct http_client *c, const struct http_request *req, json_t **ret_body,
              struct http_status *status);

/* A streamed answer: on_object is called, in this thread, with each JSON
 * object of a 2xx answer (one per line; a last one without a newline
 * counts too), borrowed for the call.  It returns 0 to go on, > 0 to end
 * the stream (http_stream returns 0), < 0 to end it with that error.
 * Other ends: -ETIMEDOUT when nothing arrived for idle_timeout_ms (0: no
 * idle limit) or the deadline passed, -ECANCELED, -ECONNRESET when the
 * server ended the stream, or the errors of http_call (the next endpoint
 * is tried only while no object has been delivered).  A cancel object
 * wakes at most one stream at a time. */
typedef int (*http_object_fn)(json_t *object, void *arg);
int http_stream(struct http_client *c, const struct http_request *req, unsigned idle_timeout_ms,
                http_object_fn on_object, void *arg, struct http_status *status);

/* Cancellation, from any thread: http_cancel() makes every call that was
 * given this object, now or later, return -ECANCELED soon (a stream at
 * once, http_call within about a second, a backoff pause at once).  It
 * cannot be undone. */
int http_cancel_new(struct http_cancel **ret_cancel);
struct http_cancel *http_cancel_free(struct http_cancel *k);
void http_cancel(struct http_cancel *k);
bool http_cancelled(struct http_cancel *k);
/* Sleeps ms or until cancelled: 0, or -ECANCELED.  k may be NULL. */
int http_cancel_sleep(struct http_cancel *k, unsigned ms);

#endif
