/* SPDX-License-Identifier: MIT */
/* The HTTP layer (backend/http.c) against tiny scripted servers in this
 * process, on 127.0.0.1: deadlines against a server that never answers,
 * failover, retries only where safe, errno mapping, the auth header kept
 * out of reasons and logs, streams (idle timeout, cancel, the last object
 * without a newline), answer size limits.  No timing assertion but
 * generous upper bounds, and lower bounds a broken deadline would miss. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "harness.h"
#include "http.h"
#include "log.h"

/* --- a scripted server --- */

enum mode {
	ANSWER,     /* status + body, then close */
	SILENT,     /* read the request, never answer */
	STREAM,     /* 200, chunked: body's lines one chunk each, then hold */
	STREAM_END, /* the same, then end the stream */
};

#define HELD_MAX 16

struct server {
	int fd, port;
	enum mode mode;
	int status;
	const char *body;
	pthread_t thread;
	int stop_pipe[2];
	atomic_int requests;
	pthread_mutex_t lock;
	char last[4096]; /* the last request's head; protected by lock */
	int held[HELD_MAX];
	int n_held;
};

static int read_request(struct server *s, int fd)
{
	char buf[8192];
	size_t len = 0;
	char *end = NULL, *cl;
	size_t want = 0;

	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return -1;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strcasestr(buf, "Content-Length:");
			want = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
			pthread_mutex_lock(&s->lock);
			snprintf(s->last, sizeof(s->last), "%.*s", (int)(end - buf), buf);
			pthread_mutex_unlock(&s->lock);
		}
		if (end && len >= want)
			break;
	}
	atomic_fetch_add(&s->requests, 1);
	return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		/* The client may have hung up (a deadline, a cancel): no SIGPIPE. */
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve_one(struct server *s, int fd)
{
	char head[256];

	if (read_request(s, fd) < 0) {
		close(fd);
		return;
	}
	if (s->mode == ANSWER) {
		snprintf(head, sizeof(head),
		         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		         s->status, strlen(s->body));
		write_all(fd, head, strlen(head));
		write_all(fd, s->body, strlen(s->body));
		close(fd);
		return;
	}
	if (s->mode == STREAM || s->mode == STREAM_END) {
		const char *p = s->body;

		snprintf(head, sizeof(head),
		         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		         "Transfer-Encoding: chunked\r\n\r\n");
		write_all(fd, head, strlen(head));
		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);

			snprintf(head, sizeof(head), "%zx\r\n", n);
			write_all(fd, head, strlen(head));
			write_all(fd, p, n);
			write_all(fd, "\r\n", 2);
			p += n;
		}
		if (s->mode == STREAM_END) {
			write_all(fd, "0\r\n\r\n", 5);
			close(fd);
			return;
		}
	}
	if (s->n_held < HELD_MAX)
		s->held[s->n_held++] = fd; /* never answered (further) */
	else
		close(fd);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
			               { .fd = s->stop_pipe[0], .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0 || p[1].revents)
			break;
		fd = accept(s->fd, NULL, NULL);
		if (fd >= 0)
			serve_one(s, fd);
	}
	return NULL;
}

/* a listening socket on 127.0.0.1, port from the kernel */
static int listen_any(int *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	REQUIRE(fd >= 0);
	REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(listen(fd, 16) == 0);
	REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static struct server *server_start(enum mode mode, int status, const char *body)
{
	struct server *s = calloc(1, sizeof(*s));

	REQUIRE(s != NULL);
	s->mode = mode;
	s->status = status;
	s->body = body;
	pthread_mutex_init(&s->lock, NULL);
	s->fd = listen_any(&s->port);
	REQUIRE(pipe(s->stop_pipe) == 0);
	REQUIRE(pthread_create(&s->thread, NULL, server_main, s) == 0);
	return s;
}

static void server_stop(struct server *s)
{
	REQUIRE(write(s->stop_pipe[1], "x", 1) == 1);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->n_held; i++)
		close(s->held[i]);
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* a port nothing listens on (bound, then closed) */
static int closed_port(void)
{
	int port, fd = listen_any(&port);

	close(fd);
	return port;
}

/* --- clients --- */

static char urls[HTTP_ENDPOINTS_MAX][64];
static const char *url_list[HTTP_ENDPOINTS_MAX];

static struct http_client *client(unsigned retries, int port0, int port1)
{
	struct http_config cfg = { .endpoints = url_list,
		                   .retries = retries,
		                   .backoff_ms = 20,
		                   .connect_timeout_ms = 2000,
		                   .name = "test" };
	struct http_client *c = NULL;
	int ports[2] = { port0, port1 };

	for (size_t i = 0; i < 2 && ports[i]; i++) {
		snprintf(urls[i], sizeof(urls[i]), "http://127.0.0.1:%d", ports[i]);
		url_list[i] = urls[i];
		cfg.n_endpoints = i + 1;
	}
	REQUIRE(http_client_new(&cfg, &c) == 0);
	return c;
}

static int post(struct http_client *c, bool idempotent, unsigned timeout_ms, struct http_status *st)
{
	json_t *body = json_pack("{s:s}", "value", "v4lue-s3cret");
	json_t *ans = NULL;
	struct http_request req = { .method = "POST",
		                    .path = "/v3/kv/put",
		                    .body = body,
		                    .deadline = http_deadline(timeout_ms),
		                    .idempotent = idempotent };
	int r = http_call(c, &req, &ans, st);

	json_decref(body);
	json_decref(ans);
	return r;
}

/* --- tests --- */

static void test_deadline_silent_server(void)
{
	struct server *s = server_start(SILENT, 0, "");
	struct http_client *c = client(3, s->port, 0);
	struct http_status st;
	int64_t t0 = http_now_ms(), dt;
	int r = post(c, true, 500, &st);

	dt = http_now_ms() - t0;
	CHECK_EQ(r, -ETIMEDOUT);
	CHECK(dt >= 450);  /* not before its deadline */
	CHECK(dt < 10000); /* and not long after it */
	CHECK(strstr(st.reason, "/v3/kv/put") != NULL);
	fprintf(stderr, "silent server: %d after %lld ms (%s)\n", r, (long long)dt, st.reason);
	/* a write is not sent again after a timeout */
	CHECK_EQ(post(c, false, 300, &st), -ETIMEDOUT);
	CHECK_EQ(atomic_load(&s->requests), 2);
	http_client_free(c);
	server_stop(s);
}

static void test_failover(void)
{
	struct server *ok = server_start(ANSWER, 200, "{\"ok\":true}");
	struct http_client *c = client(0, closed_port(), ok->port);
	struct http_status st;

	/* unreachable first endpoint: even a write goes on */
	CHECK_EQ(post(c, false, 5000, &st), 0);
	CHECK_EQ(http_client_endpoint(c), 1);
	CHECK_EQ(st.code, 200);
	/* remembered: the next call starts there */
	CHECK_EQ(post(c, false, 5000, &st), 0);
	CHECK(strstr(st.reason, "(1 attempt,") != NULL);
	CHECK_EQ(atomic_load(&ok->requests), 2);
	http_client_free(c);
	server_stop(ok);

	c = client(1, closed_port(), closed_port());
	CHECK_EQ(post(c, true, 5000, &st), -EHOSTUNREACH);
	CHECK(strstr(st.reason, "4 attempts") != NULL);
	http_client_free(c);
}

static bool no_leader(long status, const char *message)
{
	return status == 503 && strstr(message, "no leader");
}

static void test_retry_rules(void)
{
	struct server *bad = server_start(ANSWER, 503, "{\"message\":\"try later\"}");
	struct server *ok = server_start(ANSWER, 200, "{}");
	struct http_client *c = client(0, bad->port, ok->port);
	struct http_status st;

	/* 5xx: a read goes to the next endpoint, a write does not */
	CHECK_EQ(post(c, false, 5000, &st), -EIO);
	CHECK_EQ(st.code, 503);
	CHECK(strstr(st.reason, "HTTP 503: try later") != NULL);
	CHECK_EQ(atomic_load(&ok->requests), 0);
	CHECK_EQ(post(c, true, 5000, &st), 0);
	CHECK_EQ(atomic_load(&ok->requests), 1);
	http_client_free(c);
	server_stop(ok);

	/* bounded rounds with backoff on one endpoint */
	c = client(2, bad->port, 0);
	atomic_store(&bad->requests, 0);
	CHECK_EQ(post(c, true, 10000, &st), -EIO);
	CHECK_EQ(atomic_load(&bad->requests), 3);
	CHECK(strstr(st.reason, "3 attempts") != NULL);
	http_client_free(c);
	server_stop(bad);

	/* an answer that says nothing was done lets a write go on */
	{
		struct server *nl = server_start(
		    ANSWER, 503,
		    "{\"error\":\"etcdserver: no leader\","
		    "\"message\":\"etcdserver: no leader\",\"code\":14}");
		struct http_config cfg = { .endpoints = url_list,
			                   .n_endpoints = 2,
			                   .not_applied = no_leader,
			                   .name = "test" };

		ok = server_start(ANSWER, 200, "{}");
		snprintf(urls[0], sizeof(urls[0]), "http://127.0.0.1:%d", nl->port);
		snprintf(urls[1], sizeof(urls[1]), "http://127.0.0.1:%d", ok->port);
		REQUIRE(http_client_new(&cfg, &c) == 0);
		CHECK_EQ(post(c, false, 5000, &st), 0);
		CHECK_EQ(atomic_load(&nl->requests), 1);
		CHECK_EQ(atomic_load(&ok->requests), 1);
		http_client_free(c);
		server_stop(nl);
		server_stop(ok);
	}
}

static void test_status_mapping(void)
{
	static const struct {
		int status;
		int err;
	} map[] = { { 400, -EINVAL }, { 401, -EACCES }, { 403, -EACCES },
		    { 404, -ENOENT }, { 409, -EEXIST }, { 422, -EINVAL },
		    { 429, -EAGAIN }, { 500, -EIO },    { 504, -ETIMEDOUT } };

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct server *s = server_start(ANSWER, map[i].status, "{\"message\":\"m\"}");
		struct http_client *c = client(0, s->port, 0);
		struct http_status st;

		CHECK_EQ(post(c, true, 5000, &st), map[i].err);
		CHECK_EQ(st.code, map[i].status);
		http_client_free(c);
		server_stop(s);
	}
	{
		struct server *s = server_start(ANSWER, 200, "<html>proxy</html>");
		struct http_client *c = client(0, s->port, 0);

		CHECK_EQ(post(c, true, 5000, NULL), -EIO);
		http_client_free(c);
		server_stop(s);
	}
}

/* The auth header reaches the server, and neither it nor the body is in
 * a reason or a log line (the log goes to a file for this test). */
static void test_secrets_not_logged(void)
{
	struct server *s = server_start(ANSWER, 500, "{\"message\":\"boom\"}");
	struct http_client *c = client(1, s->port, 0);
	char *dir = harness_tmpdir(), *path = harness_path(dir, "log"), text[8192];
	struct http_status st;
	int saved = dup(2), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	REQUIRE(fd >= 0 && saved >= 0);
	CHECK_EQ(http_client_set_auth(c, "Bearer t0ken-s3cret"), 0);
	CHECK_EQ(http_client_set_auth(c, "a\r\nX-Injected: 1"), -EINVAL);
	log_setup(true, true);
	fflush(stderr);
	dup2(fd, 2);
	CHECK_EQ(post(c, true, 5000, &st), -EIO);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_setup(true, false);
	pthread_mutex_lock(&s->lock);
	CHECK(strstr(s->last, "Authorization: Bearer t0ken-s3cret") != NULL);
	pthread_mutex_unlock(&s->lock);
	n = pread(fd, text, sizeof(text) - 1, 0);
	REQUIRE(n >= 0);
	text[n] = '\0';
	close(fd);
	CHECK(strstr(text, "/v3/kv/put") != NULL); /* it did log the attempts */
	CHECK(strstr(text, "s3cret") == NULL);
	CHECK(strstr(st.reason, "s3cret") == NULL);
	CHECK(strstr(st.reason, "boom") != NULL);
	unlink(path);
	rmdir(dir);
	free(path);
	free(dir);
	http_client_free(c);
	server_stop(s);
}

static void test_bad_config(void)
{
	const char *cred[] = { "http://user:pw@127.0.0.1:1" };
	const char *ftp[] = { "ftp://127.0.0.1:1" };
	struct http_config cfg = { .endpoints = cred, .n_endpoints = 1 };
	struct http_client *c = NULL;
	struct server *s = server_start(ANSWER, 200, "{}");
	const char *const inject[] = { "X-A: 1\r\nX-B: 2", NULL };
	struct http_request req = { .method = "POST", .path = "/x", .headers = inject };

	CHECK_EQ(http_client_new(&cfg, &c), -EINVAL);
	cfg.endpoints = ftp;
	CHECK_EQ(http_client_new(&cfg, &c), -EINVAL);
	cfg.n_endpoints = 0;
	CHECK_EQ(http_client_new(&cfg, &c), -EINVAL);
	c = client(0, s->port, 0);
	CHECK_EQ(http_call(c, &req, NULL, NULL), -EINVAL);
	CHECK_EQ(atomic_load(&s->requests), 0);
	http_client_free(c);
	server_stop(s);
}

static void test_max_response(void)
{
	static char big[8192];
	struct server *s;
	struct http_config cfg = { .endpoints = url_list, .n_endpoints = 1, .max_response = 1024 };
	struct http_client *c = NULL;

	memset(big, ' ', sizeof(big) - 3);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	s = server_start(ANSWER, 200, big);
	snprintf(urls[0], sizeof(urls[0]), "http://127.0.0.1:%d", s->port);
	REQUIRE(http_client_new(&cfg, &c) == 0);
	CHECK_EQ(post(c, true, 5000, NULL), -EMSGSIZE);
	http_client_free(c);
	server_stop(s);
}

/* --- streams --- */

struct seen {
	int n;
	int stop_after; /* return 1 after this many (0: never) */
	long long sum;
};

static int on_object(json_t *o, void *arg)
{
	struct seen *s = arg;

	s->n++;
	s->sum += json_integer_value(json_object_get(o, "n"));
	return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

static int stream(struct http_client *c, unsigned idle_ms, struct http_cancel *k, struct seen *seen,
                  struct http_status *st)
{
	struct http_request req = {
		.method = "POST", .path = "/v3/watch", .idempotent = true, .cancel = k
	};

	return http_stream(c, &req, idle_ms, on_object, seen, st);
}

struct canceller {
	struct http_cancel *k;
	unsigned after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *x = arg;

	http_cancel_sleep(NULL, x->after_ms);
	http_cancel(x->k);
	return NULL;
}

static void test_streams(void)
{
	static const char lines[] = "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n";
	struct server *s = server_start(STREAM, 200, lines);
	struct http_client *c = client(0, s->port, 0);
	struct seen seen = { 0 };
	struct http_status st;
	struct http_cancel *k = NULL;
	struct canceller x;
	pthread_t t;
	int64_t t0;
	int r;

	/* idle timeout after the objects */
	r = stream(c, 300, NULL, &seen, &st);
	CHECK_EQ(r, -ETIMEDOUT);
	CHECK_EQ(seen.n, 3);
	CHECK_EQ(seen.sum, 6);
	CHECK(strstr(st.reason, "idle") != NULL);

	/* the callback ends it */
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 2;
	CHECK_EQ(stream(c, 0, NULL, &seen, &st), 0);
	CHECK_EQ(seen.n, 2);

	/* cancelled from another thread while waiting (no idle limit) */
	memset(&seen, 0, sizeof(seen));
	REQUIRE(http_cancel_new(&k) == 0);
	x.k = k;
	x.after_ms = 200;
	t0 = http_now_ms();
	REQUIRE(pthread_create(&t, NULL, cancel_later, &x) == 0);
	r = stream(c, 0, k, &seen, &st);
	pthread_join(t, NULL);
	CHECK_EQ(r, -ECANCELED);
	CHECK_EQ(seen.n, 3);
	CHECK(http_now_ms() - t0 < 10000);
	/* cancelled stays cancelled */
	CHECK_EQ(stream(c, 0, k, &seen, &st), -ECANCELED);
	CHECK_EQ(http_cancel_sleep(k, 10000), -ECANCELED);
	k = http_cancel_free(k);
	http_client_free(c);
	server_stop(s);

	/* the server ends the stream; the last object has no newline */
	s = server_start(STREAM_END, 200, "{\"n\":1}\n{\"n\":41}");
	c = client(0, s->port, 0);
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(stream(c, 5000, NULL, &seen, &st), -ECONNRESET);
	CHECK_EQ(seen.n, 2);
	CHECK_EQ(seen.sum, 42);
	http_client_free(c);
	server_stop(s);

	/* a line that is not JSON ends it */
	s = server_start(STREAM_END, 200, "{\"n\":1}\n<html>\n{\"n\":2}\n");
	c = client(0, s->port, 0);
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(stream(c, 5000, NULL, &seen, &st), -EIO);
	CHECK_EQ(seen.n, 1);
	http_client_free(c);
	server_stop(s);

	/* an error status is an error, with the server's message */
	s = server_start(ANSWER, 503, "{\"message\":\"etcdserver: no leader\"}");
	c = client(0, s->port, 0);
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(stream(c, 5000, NULL, &seen, &st), -EIO);
	CHECK_EQ(seen.n, 0);
	CHECK(strstr(st.reason, "no leader") != NULL);
	http_client_free(c);
	server_stop(s);
}

/* a plain call cancelled while the server sits on it */
static void test_call_cancel(void)
{
	struct server *s = server_start(SILENT, 0, "");
	struct http_client *c = client(0, s->port, 0);
	struct http_request req = { .method = "GET",
		                    .path = "/health",
		                    .deadline = http_deadline(30000) };
	struct canceller x = { .after_ms = 200 };
	pthread_t t;
	int64_t t0 = http_now_ms();

	REQUIRE(http_cancel_new(&x.k) == 0);
	req.cancel = x.k;
	REQUIRE(pthread_create(&t, NULL, cancel_later, &x) == 0);
	CHECK_EQ(http_call(c, &req, NULL, NULL), -ECANCELED);
	pthread_join(t, NULL);
	CHECK(http_now_ms() - t0 < 10000);
	http_cancel_free(x.k);
	http_client_free(c);
	server_stop(s);
}

/* one client, many threads at once (the pool, the endpoint in use) */
struct worker {
	struct http_client *c;
	int ok;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 20; i++)
		w->ok += post(w->c, true, 10000, NULL) == 0;
	return NULL;
}

static void test_threads(void)
{
	struct server *s = server_start(ANSWER, 200, "{}");
	struct http_client *c = client(0, closed_port(), s->port);
	struct worker w[8];
	pthread_t t[8];

	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ .c = c };
		REQUIRE(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].ok, 20);
	}
	CHECK_EQ(atomic_load(&s->requests), 160);
	CHECK_EQ(http_client_endpoint(c), 1);
	http_client_free(c);
	server_stop(s);
}

/* The rate limit: a burst, then no request before its slot; a call whose
 * deadline comes first fails without sending anything (counted). */
static void test_rate_limit(void)
{
	struct server *s = server_start(ANSWER, 200, "{}");
	struct http_config cfg = { .endpoints = url_list,
		                   .n_endpoints = 1,
		                   .max_rate = 1,
		                   .max_burst = 2,
		                   .name = "test" };
	struct http_client *c = NULL;
	struct http_status st;

	snprintf(urls[0], sizeof(urls[0]), "http://127.0.0.1:%d", s->port);
	url_list[0] = urls[0];
	REQUIRE(http_client_new(&cfg, &c) == 0);
	CHECK_EQ(post(c, true, 5000, NULL), 0);
	CHECK_EQ(post(c, true, 5000, NULL), 0);
	CHECK_EQ(post(c, true, 50, &st), -ETIMEDOUT); /* the next slot is ~1 s away */
	CHECK(strstr(st.reason, "rate limit") != NULL);
	CHECK_EQ(atomic_load(&s->requests), 2);
	CHECK_EQ(post(c, true, 5000, NULL), 0); /* waits for its slot */
	CHECK_EQ(atomic_load(&s->requests), 3);
	http_client_free(c);
	server_stop(s);
}

/* A raw body with its own Content-Type, a wanted answer header, and the
 * JSON of an error answer handed to the caller. */
static void test_raw_body_and_error_json(void)
{
	struct server *s = server_start(ANSWER, 400, "{\"code\":\"INVALID_ARGUMENT\"}");
	struct http_client *c = client(0, s->port, 0);
	static const char form[] = "grant_type=client_credentials&client_secret=f0rm-s3cret";
	json_t *err = NULL, *ans = NULL;
	struct http_request req = { .method = "POST",
		                    .path = "/oauth/token",
		                    .raw_body = form,
		                    .raw_len = sizeof(form) - 1,
		                    .content_type = "application/x-www-form-urlencoded",
		                    .want_header = "content-type",
		                    .ret_error = &err,
		                    .deadline = http_deadline(5000) };
	struct http_status st;

	CHECK_EQ(http_call(c, &req, &ans, &st), -EINVAL);
	CHECK(json_is_object(err));
	CHECK(strcmp(json_string_value(json_object_get(err, "code")), "INVALID_ARGUMENT") == 0);
	CHECK(strcmp(st.header, "application/json") == 0);
	CHECK_EQ(st.retry_after_s, -1);
	CHECK(strstr(st.reason, "s3cret") == NULL);
	pthread_mutex_lock(&s->lock);
	CHECK(strstr(s->last, "Content-Type: application/x-www-form-urlencoded") != NULL);
	CHECK(strstr(s->last, "Content-Type: application/json") == NULL);
	pthread_mutex_unlock(&s->lock);
	json_decref(err);
	req.content_type = "a\r\nX-Injected: 1";
	CHECK_EQ(http_call(c, &req, &ans, &st), -EINVAL);
	CHECK_EQ(atomic_load(&s->requests), 1);
	http_client_free(c);
	server_stop(s);
}

int main(void)
{
	test_deadline_silent_server();
	test_failover();
	test_retry_rules();
	test_status_mapping();
	test_secrets_not_logged();
	test_bad_config();
	test_max_response();
	test_streams();
	test_call_cancel();
	test_threads();
	test_rate_limit();
	test_raw_body_and_error_json();
	return harness_result("test_http");
}
