/* SPDX-License-Identifier: MIT */
/*
 * The Redpanda Cloud store (redpanda.h): store.h's ops as Data Plane API
 * calls through http.h, answers read by redpanda_json.h.
 *
 *   list        GET /v1/secrets?page_size=50[&page_token=T], every page,
 *               stopping (-EIO) if a token repeats
 *   stat        GET /v1/secrets/{id}
 *   create      POST /v1/secrets {id, scopes, labels, secret_data}
 *   put_value   PUT /v1/secrets/{id} {scopes, labels, secret_data}: every
 *   set_labels  scope and label as this mount knows them, and the value in
 *   set_scopes  base64 or "" (keeps the value)
 *   delete      DELETE /v1/secrets/{id}
 *
 * Identity (store.h) is synthesised here: the API has no revision of any
 * kind.  s->rev is this mount's counter; every change this mount makes or
 * sees takes the next number as its revision, a secret first seen (at
 * mount, by a poll, by stat, or created here) takes it as its
 * incarnation too.  A secret that a poll no longer finds is deleted; found
 * again later, it is a new incarnation.  A value changed elsewhere cannot
 * be seen at all (no value, no revision, no timestamp comes back).
 *
 * The table (s->v, sorted by ID) is what this mount knows.  A poll lists
 * without the lock, then merges under it; a secret this mount changed
 * while the listing ran (revision above the one the poll started at) is
 * left as the mount has it, and so is an ID it deleted meanwhile (s->gone):
 * the listing may predate either change.
 *
 * Locks: s->token_lock (serialises token fetches; guards the token's
 * state), then s->lock (the table, the counter, s->gone), each held only
 * for memory work, never across an HTTP call; the poller calls the
 * change callback holding neither.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "http.h"
#include "log.h"
#include "ownedfile.h"
#include "redpanda.h"
#include "redpanda_json.h"

#define CREDENTIALS_FILE_MAX 4096
#define LIST_PAGES_MAX 4000 /* 200,000 secrets */
#define TOKEN_MARGIN_MS 60000
#define QUOTA_DEFAULT_S 60 /* a 429 of the token endpoint that says nothing */
#define FORM_MAX 2048

struct gone {
	char *id;
	uint64_t rev;
};

struct store {
	struct http_client *api, *auth;
	char *token_path; /* "/oauth/token", on auth's one endpoint */
	char *audience;
	char *client_id, *client_secret; /* locked memory */
	char *bearer;                    /* token_lock: "Bearer TOKEN" of the current token (locked
	                  memory), for a client made after it (cluster=) */
	bool read_only;
	int poll_s;

	pthread_mutex_t token_lock;
	uint64_t token_gen;     /* token_lock: 0 until the first token */
	int64_t token_renew_ms; /* token_lock: renew from then on */
	int64_t quota_until_ms; /* token_lock: no token request before */

	pthread_mutex_t lock;
	struct secret_meta *v; /* lock: what this mount knows, by ID */
	size_t n, cap;
	uint64_t rev;      /* lock: the last revision handed out */
	struct gone *gone; /* lock: IDs deleted here, until a poll that
	                       started after the deletion */
	size_t n_gone;

	store_change_fn fn;
	void *fn_arg;
	pthread_t poller;
	bool polling;
	struct http_cancel *cancel;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool redpanda_store_source(const char *source)
{
	return strncmp(source, "redpanda:", 9) == 0;
}

/* --- the table (s->lock held) --- */

/* index of id, or -(insertion point) - 1 */
static long find(const struct store *s, const char *id)
{
	return sorted_find(s->v, s->n, sizeof(*s->v), id);
}

/* Puts a copy of m at its place (replacing what is there). */
static int table_put(struct store *s, const struct secret_meta *m)
{
	long i = find(s, m->id);
	struct secret_meta copy;
	int r = secret_meta_copy(&copy, m);

	if (r < 0)
		return r;
	if (i >= 0) {
		secret_meta_clear(&s->v[i]);
		s->v[i] = copy;
		return 0;
	}
	i = -i - 1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct secret_meta *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			secret_meta_clear(&copy);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - (size_t)i) * sizeof(*s->v));
	s->v[i] = copy;
	s->n++;
	return 0;
}

static void table_remove(struct store *s, long i)
{
	secret_meta_clear(&s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - (size_t)i - 1) * sizeof(*s->v));
	s->n--;
}

static void gone_add(struct store *s, const char *id, uint64_t rev)
{
	struct gone *g = realloc(s->gone, (s->n_gone + 1) * sizeof(*g));
	char *copy = strdup(id);

	if (!g || !copy) {
		free(copy);
		if (g)
			s->gone = g;
		return; /* a poll may then briefly show it again: logged by none */
	}
	s->gone = g;
	g[s->n_gone++] = (struct gone){ copy, rev };
}

static bool gone_since(const struct store *s, const char *id, uint64_t rev)
{
	for (size_t i = 0; i < s->n_gone; i++)
		if (s->gone[i].rev > rev && strcmp(s->gone[i].id, id) == 0)
			return true;
	return false;
}

static void gone_prune(struct store *s, uint64_t rev)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n_gone; i++) {
		if (s->gone[i].rev <= rev)
			free(s->gone[i].id);
		else
			s->gone[k++] = s->gone[i];
	}
	s->n_gone = k;
}

/* A secret first seen: a new incarnation of this mount's. */
static void first_seen(struct store *s, struct secret_meta *m)
{
	m->incarnation = m->revision = m->value_revision = ++s->rev;
	m->version = 1;
	m->size = 0; /* never known: values are write-only */
	m->ctime_ns = m->mtime_ns = now_ns();
}

/* --- tokens --- */

/* Makes sure the API client has a token that is not gen_stale (0: any
 * current one will do): fetches one if there is none, it is about to
 * expire, or it is the one a 401 just refused.  The token endpoint's
 * quota is never spent twice for one refusal, and never while it said to
 * wait. */
static int token_ensure(struct store *s, uint64_t gen_stale)
{
	char *form = NULL, *tok = NULL, *auth = NULL;
	char eid[FORM_MAX / 4], esecret[FORM_MAX / 2], eaud[256];
	struct http_status st;
	json_t *ans = NULL, *err = NULL;
	int64_t now, expires_s = 0;
	int r = 0, len;

	pthread_mutex_lock(&s->token_lock);
	now = http_now_ms();
	if (s->token_gen && s->token_gen != gen_stale && now < s->token_renew_ms)
		goto out;
	if (now < s->quota_until_ms) {
		log_error("redpanda: no token: the token endpoint's quota is spent; asking again "
		          "in %" PRId64 " s",
		          (s->quota_until_ms - now + 999) / 1000);
		r = -EAGAIN;
		goto out;
	}
	form = secret_locked_alloc(FORM_MAX);
	if (!form) {
		r = -ENOMEM;
		goto out;
	}
	if (rp_form_escape(s->client_id, eid, sizeof(eid)) < 0 ||
	    rp_form_escape(s->client_secret, esecret, sizeof(esecret)) < 0 ||
	    rp_form_escape(s->audience, eaud, sizeof(eaud)) < 0) {
		r = -EINVAL;
		goto out;
	}
	len = snprintf(form, FORM_MAX,
	               "grant_type=client_credentials&client_id=%s&client_secret=%s&audience=%s",
	               eid, esecret, eaud);
	if (len < 0 || len >= FORM_MAX) {
		r = -EINVAL;
		goto out;
	}
	{
		struct http_request req = {
			.method = "POST",
			.path = s->token_path,
			.raw_body = form,
			.raw_len = (size_t)len,
			.content_type = "application/x-www-form-urlencoded",
			.want_header = "Auth0-Organization-Quota-Limit",
			.deadline = http_deadline(RP_CALL_TIMEOUT_MS),
			.no_auth = true,
			.cancel = s->cancel,
			.ret_error = &err,
		};
		r = http_call(s->auth, &req, &ans, &st);
	}
	if (r < 0) {
		char text[RP_ERROR_TEXT_MAX];
		bool store_error;

		rp_parse_error(err, text, sizeof(text), &store_error);
		if (st.code == 429) {
			long wait = rp_quota_reset_s(st.header);

			if (wait < 0)
				wait = st.retry_after_s > 0 ? st.retry_after_s : QUOTA_DEFAULT_S;
			s->quota_until_ms = http_now_ms() + (int64_t)wait * 1000;
			log_error(
			    "redpanda: the token endpoint refused a token (quota: %s%s%s); no "
			    "token request for %ld s",
			    st.header[0] ? st.header : "no quota header", text[0] ? "; " : "", text,
			    wait);
			r = -EAGAIN;
		} else {
			log_error("redpanda: no token: %s%s%s", st.reason, text[0] ? "; " : "",
			          text);
			if (st.code == 401 || st.code == 403)
				log_error(
				    "redpanda: the token endpoint refused the client in the "
				    "credentials file (client_id, client_secret) for audience %s",
				    s->audience);
		}
		goto out;
	}
	r = rp_parse_token(ans, &tok, &expires_s);
	if (r < 0) {
		log_error("redpanda: the token endpoint's answer holds no usable token "
		          "(access_token, expires_in, token_type Bearer)");
		r = -EIO;
		goto out;
	}
	auth = secret_locked_alloc(strlen(tok) + 8);
	if (!auth) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(auth, strlen(tok) + 8, "Bearer %s", tok);
	r = http_client_set_auth(s->api, auth);
	if (r == 0) {
		sodium_free(s->bearer);
		s->bearer = auth;
		auth = NULL;
		/* renewed a minute before it expires, or halfway through a
		 * shorter life (the clocks' and the network's slack) */
		int64_t life = expires_s * 1000, margin = life / 2;

		if (margin > TOKEN_MARGIN_MS)
			margin = TOKEN_MARGIN_MS;
		s->token_gen++;
		s->token_renew_ms = http_now_ms() + life - margin;
		log_info("redpanda: new access token, valid for %" PRId64 " s", expires_s);
	}
out:
	pthread_mutex_unlock(&s->token_lock);
	json_decref(ans);
	json_decref(err);
	sodium_memzero(esecret, sizeof(esecret));
	sodium_free(form);
	sodium_free(tok);
	sodium_free(auth);
	return r;
}

static uint64_t token_gen(struct store *s)
{
	uint64_t g;

	pthread_mutex_lock(&s->token_lock);
	g = s->token_gen;
	pthread_mutex_unlock(&s->token_lock);
	return g;
}

/* --- calls --- */

/* One API call with the current token, once more with a new one after a
 * 401.  An error is logged once, with the server's message, reason and
 * field violations, and mapped to the contract's errno; unless quiet_404,
 * for a caller that expects a 404 and says so itself. */
static int api_call_as(struct store *s, const char *method, const char *path, const json_t *body,
                       bool idempotent, struct http_cancel *cancel, bool quiet_404, json_t **ret)
{
	struct http_status st;
	json_t *err = NULL;
	int r = -EIO;

	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t gen;

		r = token_ensure(s, 0);
		if (r < 0)
			return r;
		gen = token_gen(s);
		json_decref(err);
		err = NULL;
		struct http_request req = {
			.method = method,
			.path = path,
			.body = body,
			.deadline = http_deadline(RP_CALL_TIMEOUT_MS),
			.idempotent = idempotent,
			.cancel = cancel ? cancel : s->cancel,
			.ret_error = &err,
		};
		r = http_call(s->api, &req, ret, &st);
		if (r == -EACCES && st.code == 401 && attempt == 0) {
			/* expired or revoked: one new token, then once more */
			r = token_ensure(s, gen);
			if (r < 0)
				break;
			continue;
		}
		break;
	}
	if (r < 0 && r != -ECANCELED) {
		char text[RP_ERROR_TEXT_MAX];
		bool store_error;

		rp_parse_error(err, text, sizeof(text), &store_error);
		r = rp_error_errno(st.code, r, store_error);
		if (!quiet_404 || st.code != 404)
			log_error("redpanda: %s%s%s%s", st.reason,
			          text[0] ? "; the server says: " : "", text,
			          store_error ? " (the backing cloud secret manager failed)" : "");
	}
	json_decref(err);
	return r;
}

static int api_call(struct store *s, const char *method, const char *path, const json_t *body,
                    bool idempotent, struct http_cancel *cancel, json_t **ret)
{
	return api_call_as(s, method, path, body, idempotent, cancel, false, ret);
}

/* --- listing --- */

/* Every page of the listing into l, sorted by ID. */
static int list_all(struct store *s, struct http_cancel *cancel, struct meta_list *l)
{
	char *tokens[LIST_PAGES_MAX] = { 0 };
	size_t pages = 0;
	unsigned bad_total = 0;
	int r = 0;

	for (;;) {
		char path[64 + 3 * RP_PAGE_TOKEN_MAX];
		char *next = NULL;
		unsigned bad = 0;
		json_t *page = NULL;

		if (pages == 0) {
			snprintf(path, sizeof(path), "/v1/secrets?page_size=%d", RP_PAGE_SIZE);
		} else {
			int n = snprintf(path, sizeof(path),
			                 "/v1/secrets?page_size=%d&page_token=", RP_PAGE_SIZE);
			rp_form_escape(tokens[pages - 1], path + n, sizeof(path) - (size_t)n);
		}
		r = api_call(s, "GET", path, NULL, true, cancel, &page);
		if (r < 0)
			break;
		r = rp_parse_list_page(page, meta_list_add, l, &next, &bad);
		json_decref(page);
		if (r < 0) {
			log_error("redpanda: page %zu of the listing is not a list of secrets; the "
			          "listing is not used",
			          pages + 1);
			r = r == -ENOMEM ? r : -EIO;
			break;
		}
		bad_total += bad;
		if (!next[0]) {
			free(next);
			break;
		}
		for (size_t i = 0; i < pages && r == 0; i++)
			if (strcmp(tokens[i], next) == 0)
				r = -EIO;
		if (r == 0 && pages + 1 >= LIST_PAGES_MAX)
			r = -E2BIG;
		if (r < 0) {
			log_error("redpanda: the listing %s after %zu pages; it is not used",
			          r == -EIO ? "loops (a next_page_token came again)"
			                    : "does not end",
			          pages + 1);
			free(next);
			r = -EIO;
			break;
		}
		tokens[pages++] = next;
	}
	for (size_t i = 0; i < pages; i++)
		free(tokens[i]);
	if (bad_total)
		log_warn("redpanda: %u secret(s) of the listing left out: no scope secretsfs "
		         "knows, or not a secret",
		         bad_total);
	if (r == 0 && l->n)
		meta_list_sort(l);
	return r;
}

struct changes {
	struct store_change *v;
	size_t n, cap;
};

static void changes_add(struct changes *c, enum store_change_kind kind, const struct secret_meta *m)
{
	if (!c)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct store_change *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return; /* the table has it; fs/ learns it at the next change */
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n].kind = kind;
	if (secret_meta_copy(&c->v[c->n].meta, m) == 0)
		c->n++;
}

static void changes_clear(struct changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		store_change_clear(&c->v[i]);
	free(c->v);
	*c = (struct changes){ 0 };
}

/* Merges a complete listing, begun when the counter was at since, into
 * the table; the differences into out (may be NULL).  s->lock held. */
static int merge(struct store *s, struct meta_list *l, uint64_t since, struct changes *out)
{
	struct secret_meta *old = s->v;
	size_t n_old = s->n, i = 0, j = 0;
	int r = 0;

	s->v = NULL;
	s->n = s->cap = 0;
	while (r == 0 && (i < n_old || j < l->n)) {
		int c = i == n_old ? 1 : j == l->n ? -1 : strcmp(old[i].id, l->v[j].id);

		if (c < 0) { /* known here, not listed */
			if (old[i].revision > since) {
				r = table_put(s, &old[i]); /* made here meanwhile */
			} else {
				struct secret_meta d = { .id = old[i].id,
					                 .incarnation = old[i].incarnation,
					                 .revision = ++s->rev };
				changes_add(out, STORE_DELETED, &d);
			}
			i++;
		} else if (c > 0) { /* listed, new here */
			struct secret_meta *m = &l->v[j];

			if (!gone_since(s, m->id, since)) {
				first_seen(s, m);
				r = table_put(s, m);
				changes_add(out, STORE_CHANGED, m);
			}
			j++;
		} else {
			struct secret_meta *m = &old[i];

			if (m->revision <= since && (m->scopes != l->v[j].scopes ||
			                             !labels_equal(&m->labels, &l->v[j].labels))) {
				labels_clear(&m->labels);
				m->labels = l->v[j].labels;
				l->v[j].labels = (struct labels){ 0 };
				m->scopes = l->v[j].scopes;
				m->revision = ++s->rev;
				changes_add(out, STORE_CHANGED, m);
			}
			r = table_put(s, m);
			i++;
			j++;
		}
	}
	for (size_t k = 0; k < n_old; k++)
		secret_meta_clear(&old[k]);
	free(old);
	gone_prune(s, since);
	return r;
}

/* --- open, close --- */

/* Reads the credentials file: the daemon's own, private (ownedfile.h's
 * rule with 077, as the store key), into locked memory. */
static int load_credentials(struct store *s, const char *path)
{
	char why[2 * 4096 + 160] = "";
	char *text = NULL;
	ssize_t n = 0, got;
	int fd, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		owned_open_reason(-r, "credentials file", path, why, sizeof(why));
		log_error("redpanda: %s", why);
		return r;
	}
	r = owned_fd_check(fd, 077, "credentials file", path, why, sizeof(why));
	if (r < 0) {
		log_error("redpanda: %s", why[0] ? why : strerror(-r));
		close(fd);
		return r;
	}
	text = secret_locked_alloc(CREDENTIALS_FILE_MAX + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while ((got = read(fd, text + n, (size_t)(CREDENTIALS_FILE_MAX + 1 - n))) > 0)
		n += got;
	r = got < 0 ? -errno : 0;
	close(fd);
	if (r == 0 && n > CREDENTIALS_FILE_MAX)
		r = -EFBIG;
	if (r == 0)
		r = rp_parse_credentials(text, (size_t)n, &s->client_id, &s->client_secret);
	if (r == -EINVAL)
		log_error("redpanda: credentials file %s: expected two lines, client_id=… and "
		          "client_secret=…",
		          path);
	else if (r < 0)
		log_error("redpanda: credentials file %s: %s", path, strerror(-r));
	sodium_free(text);
	return r;
}

static void rp_close(struct store *s);

/* "https://host[:port]/path" into a base URL and a path. */
static int split_url(const char *url, char **ret_base, char **ret_path)
{
	const char *host, *slash;

	if (strncmp(url, "https://", 8) != 0)
		return -EINVAL;
	host = url + 8;
	slash = strchr(host, '/');
	if (!slash || slash == host)
		return -EINVAL;
	char *base = strndup(url, (size_t)(slash - url)), *path = strdup(slash);
	if (!base || !path) {
		free(base);
		free(path);
		return -ENOMEM;
	}
	*ret_base = base;
	*ret_path = path;
	return 0;
}

/* The Data Plane API's client for url, as s->api. */
static int api_client_new(struct store *s, const struct store_config *cfg, const char *url)
{
	const char *ep[] = { url };
	struct http_config api = {
		.endpoints = ep,
		.n_endpoints = 1,
		.cacert = cfg->remote.cacert,
		.retries = 4,
		.backoff_ms = 200,
		.max_rate = RP_MAX_RATE,
		.max_burst = RP_MAX_BURST,
		.name = "redpanda",
	};
	int r = http_client_new(&api, &s->api);
	if (r == -EINVAL)
		log_error("redpanda: %s is not a URL secretsfs can use", url);
	return r;
}

/* -o cluster=ID: the cluster's Data Plane API URL from the control plane
 * (GET /v1/clusters/ID, or /v1/serverless/clusters/ID for a serverless
 * one), asked with this store's token through a client of its own that
 * is s->api for the while; the token stays for the data plane. */
static int find_dataplane(struct store *s, const struct store_config *cfg, char **ret_url)
{
	const char *cp = cfg->controlplane ? cfg->controlplane : RP_DEFAULT_CONTROLPLANE;
	const char *kinds[] = { "clusters", "serverless/clusters" };
	char path[128];
	json_t *ans = NULL;
	int r = api_client_new(s, cfg, cp);

	for (size_t i = 0; r == 0 && i < 2; i++) {
		snprintf(path, sizeof(path), "/v1/%s/%s", kinds[i], cfg->cluster);
		r = api_call_as(s, "GET", path, NULL, true, NULL, true, &ans);
		if (r == -ENOENT && i == 0)
			r = 0; /* not a dedicated or BYOC cluster: a serverless one? */
		else if (r == 0)
			break;
	}
	if (r == 0) {
		r = rp_parse_cluster(ans, ret_url);
		if (r == -EAGAIN)
			log_error(
			    "redpanda: cluster %s has no Data Plane API yet (it is not ready); "
			    "mount it once the Console shows it running",
			    cfg->cluster);
		else if (r == -EINVAL)
			log_error(
			    "redpanda: the control plane's answer for cluster %s holds no Data "
			    "Plane API URL secretsfs can use",
			    cfg->cluster);
		else if (r == 0)
			log_info("redpanda: cluster %s: Data Plane API %s", cfg->cluster, *ret_url);
	} else if (r == -ENOENT) {
		log_error("redpanda: %s knows no cluster %s (neither dedicated nor serverless) for "
		          "this OAuth client's organisation",
		          cp, cfg->cluster);
	}
	json_decref(ans);
	s->api = http_client_free(s->api);
	return r;
}

static int rp_open(const struct store_config *cfg, struct store **ret_store)
{
	const char *url = cfg->source + 9;
	char *auth_base = NULL, *found = NULL;
	struct store *s;
	int r;

	if (!redpanda_store_source(cfg->source) ||
	    (*url ? strncmp(url, "https://", 8) != 0 || !url[8] : !cfg->cluster)) {
		log_error(
		    "redpanda: %s: expected redpanda:https://DATAPLANE-URL, or redpanda: with "
		    "-o cluster=ID",
		    cfg->source);
		return -EINVAL;
	}
	if (!cfg->credentials) {
		log_error("redpanda: no credentials file (-o credentials=FILE)");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->token_lock, NULL);
	s->read_only = cfg->read_only;
	s->poll_s = cfg->poll_s < 0 ? RP_DEFAULT_POLL_S : cfg->poll_s;
	s->audience = strdup(cfg->audience ? cfg->audience : RP_DEFAULT_AUDIENCE);
	r = s->audience ? load_credentials(s, cfg->credentials) : -ENOMEM;
	if (r == 0) {
		const char *tu = cfg->token_url ? cfg->token_url : RP_DEFAULT_TOKEN_URL;

		r = split_url(tu, &auth_base, &s->token_path);
		if (r == -EINVAL)
			log_error("redpanda: -o token_url=%s: expected https://HOST/PATH", tu);
	}
	if (r == 0) {
		const char *auth_ep[] = { auth_base };
		/* A token request is never repeated by the layer: each one
		 * spends the organisation's daily quota. */
		struct http_config auth = {
			.endpoints = auth_ep,
			.n_endpoints = 1,
			.cacert = cfg->remote.cacert,
			.retries = 0,
			.max_rate = 1,
			.max_burst = 2,
			.max_response = 64 << 10,
			.name = "redpanda-token",
		};
		r = http_client_new(&auth, &s->auth);
		if (r == -EINVAL)
			log_error("redpanda: %s is not a URL secretsfs can use", auth_base);
	}
	if (r == 0 && !*url) {
		r = find_dataplane(s, cfg, &found);
		url = found;
	}
	if (r == 0)
		r = api_client_new(s, cfg, url);
	if (r == 0 && s->bearer) /* the token find_dataplane got */
		r = http_client_set_auth(s->api, s->bearer);
	if (r == 0)
		r = http_cancel_new(&s->cancel);
	free(auth_base);
	free(found);
	if (r < 0) {
		rp_close(s);
		return r;
	}
	*ret_store = s;
	return 0;
}

void redpanda_store_cancel(struct store *s)
{
	http_cancel(s->cancel);
}

static void rp_close(struct store *s)
{
	if (!s)
		return;
	if (s->polling) {
		http_cancel(s->cancel);
		pthread_join(s->poller, NULL);
	}
	http_cancel_free(s->cancel);
	http_client_free(s->api);
	http_client_free(s->auth);
	for (size_t i = 0; i < s->n; i++)
		secret_meta_clear(&s->v[i]);
	free(s->v);
	gone_prune(s, UINT64_MAX);
	free(s->gone);
	free(s->token_path);
	free(s->audience);
	sodium_free(s->client_id);
	sodium_free(s->client_secret);
	sodium_free(s->bearer);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->token_lock);
	free(s);
}

/* --- ops --- */

static int rp_list(struct store *s, store_list_fn fn, void *userdata)
{
	struct meta_list l = { 0 };
	uint64_t since;
	int r;

	pthread_mutex_lock(&s->lock);
	since = s->rev;
	pthread_mutex_unlock(&s->lock);
	r = list_all(s, NULL, &l);
	pthread_mutex_lock(&s->lock);
	if (r == 0)
		r = merge(s, &l, since, NULL);
	for (size_t i = 0; i < s->n && r == 0; i++)
		r = fn(userdata, &s->v[i]);
	pthread_mutex_unlock(&s->lock);
	meta_list_clear(&l);
	return r;
}

static int rp_stat(struct store *s, const char *id, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	json_t *ans = NULL;
	char *path = NULL;
	long i;
	int r;

	if (!secret_id_valid_existing(id))
		return -EINVAL;
	path = rp_secret_path(id);
	if (!path)
		return -ENOMEM;
	r = api_call(s, "GET", path, NULL, true, NULL, &ans);
	free(path);
	if (r == 0 && rp_parse_secret(ans, &m, NULL, NULL) < 0) {
		log_error("redpanda: the answer about %s is not a secret", id);
		r = -EIO;
	}
	json_decref(ans);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	i = find(s, id);
	if (i < 0) {
		first_seen(s, &m);
		r = table_put(s, &m);
	} else if (s->v[i].scopes != m.scopes || !labels_equal(&s->v[i].labels, &m.labels)) {
		s->v[i].scopes = m.scopes;
		labels_clear(&s->v[i].labels);
		s->v[i].labels = m.labels;
		m.labels = (struct labels){ 0 };
		s->v[i].revision = ++s->rev;
	}
	secret_meta_clear(&m);
	i = find(s, id);
	r = r == 0 && i >= 0 ? secret_meta_copy(&m, &s->v[i]) : (r ? r : -ENOENT);
	pthread_mutex_unlock(&s->lock);
	return secret_meta_hand_over(r, &m, ret_meta);
}

static int rp_get_value(struct store *s, const char *id, uint64_t incarnation, uint64_t version,
                        struct secret_value **ret_value)
{
	return -EACCES; /* the API never returns a value */
}

/* The body of a create or an update: scopes as enum names, labels, and the
 * value in base64 (NULL: "", which keeps it).  The base64 text is the
 * value: it lives in locked memory and in jansson's, which http.c wipes. */
static json_t *secret_body(const char *id, scope_set scopes, const struct labels *labels,
                           const uint8_t *value, size_t len)
{
	json_t *b = json_object(), *sc = json_array(), *lb = json_object();
	char *data = NULL;
	size_t dlen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	bool ok = b && sc && lb;

	for (int i = 0; i < SCOPE_COUNT && ok; i++)
		if (scopes & (1u << i))
			ok = json_array_append_new(sc, json_string(scope_api_name(i))) == 0;
	for (size_t i = 0; i < labels->n && ok; i++)
		ok = json_object_set_new(lb, labels->v[i].key, json_string(labels->v[i].value)) ==
		     0;
	if (ok && value) {
		data = secret_locked_alloc(dlen);
		ok = data != NULL;
		if (ok)
			sodium_bin2base64(data, dlen, value, len, sodium_base64_VARIANT_ORIGINAL);
	}
	if (ok && id)
		ok = json_object_set_new(b, "id", json_string(id)) == 0;
	if (ok)
		ok = json_object_set(b, "scopes", sc) == 0 &&
		     json_object_set(b, "labels", lb) == 0 &&
		     json_object_set_new(b, "secret_data", json_string(data ? data : "")) == 0;
	sodium_free(data);
	json_decref(sc);
	json_decref(lb);
	if (!ok) {
		json_decref(b);
		return NULL;
	}
	return b;
}

static int rp_create(struct store *s, const char *id, scope_set scopes, const struct labels *labels,
                     const uint8_t *value, size_t len, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	json_t *body, *ans = NULL;
	long i;
	int r;

	if (s->read_only)
		return -EROFS;
	if (!secret_id_valid_new(id) || !secret_scopes_valid(scopes))
		return -EINVAL;
	if ((r = secret_labels_valid(labels)) < 0 || (r = secret_value_len_valid(value, len)) < 0)
		return r;
	body = secret_body(id, scopes, labels, value, len);
	if (!body)
		return -ENOMEM;
	r = api_call(s, "POST", "/v1/secrets", body, false, NULL, &ans);
	json_decref(body);
	json_decref(ans);
	if (r < 0)
		return r;
	m.id = strdup(id);
	r = m.id ? labels_copy(&m.labels, labels) : -ENOMEM;
	m.scopes = scopes;
	pthread_mutex_lock(&s->lock);
	i = find(s, id);
	if (r == 0 && i >= 0) {
		/* a poll found it between our POST and now: its incarnation
		 * is this one */
		m.incarnation = s->v[i].incarnation;
		m.revision = m.value_revision = ++s->rev;
		m.version = s->v[i].version;
		m.ctime_ns = m.mtime_ns = now_ns();
	} else if (r == 0) {
		first_seen(s, &m);
	}
	if (r == 0)
		r = table_put(s, &m);
	pthread_mutex_unlock(&s->lock);
	return secret_meta_hand_over(r, &m, ret_meta);
}

/* A copy of what this mount knows of id, if it is incarnation (0: any)
 * and its value was written at base_revision (0: any): 0, -ENOENT, or
 * -ESTALE (another incarnation, or a value committed since). */
static int known(struct store *s, const char *id, uint64_t incarnation, uint64_t base_revision,
                 struct secret_meta *ret_meta)
{
	long i;
	int r;

	pthread_mutex_lock(&s->lock);
	i = find(s, id);
	if (i < 0)
		r = -ENOENT;
	else if ((incarnation && s->v[i].incarnation != incarnation) ||
	         (base_revision && s->v[i].value_revision != base_revision))
		r = -ESTALE;
	else
		r = secret_meta_copy(ret_meta, &s->v[i]);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* A PUT of what this mount knows of incarnation, with changes: the value
 * (NULL: kept), scopes (0: kept), labels (NULL: kept). */
static int update(struct store *s, const char *id, uint64_t incarnation, uint64_t base_revision,
                  const uint8_t *value, size_t len, scope_set scopes, const struct labels *labels,
                  struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	json_t *body = NULL, *ans = NULL;
	char *path = NULL;
	int r;

	if (s->read_only)
		return -EROFS;
	r = known(s, id, incarnation, base_revision, &m);
	if (r < 0)
		return r;
	if (scopes)
		m.scopes = scopes;
	if (labels) {
		labels_clear(&m.labels);
		r = labels_copy(&m.labels, labels);
	}
	if (r == 0) {
		body = secret_body(NULL, m.scopes, &m.labels, value, len);
		path = rp_secret_path(id);
		r = body && path ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = api_call(s, "PUT", path, body, true, NULL, &ans);
	json_decref(body);
	json_decref(ans);
	free(path);
	if (r < 0) {
		secret_meta_clear(&m);
		return r;
	}
	pthread_mutex_lock(&s->lock);
	m.revision = ++s->rev;
	if (value) {
		m.value_revision = m.revision;
		m.version++;
		m.mtime_ns = now_ns();
	}
	r = table_put(s, &m);
	pthread_mutex_unlock(&s->lock);
	return secret_meta_hand_over(r, &m, ret_meta);
}

static int rp_put_value(struct store *s, const char *id, uint64_t incarnation,
                        uint64_t base_revision, const uint8_t *value, size_t len,
                        struct secret_meta *ret_meta)
{
	int r = secret_value_len_valid(value, len);

	if (r < 0)
		return r;
	return update(s, id, incarnation, base_revision, value, len, 0, NULL, ret_meta);
}

static int rp_set_labels(struct store *s, const char *id, uint64_t incarnation,
                         const struct labels *labels, struct secret_meta *ret_meta)
{
	int r = secret_labels_valid(labels);

	if (r < 0)
		return r;
	return update(s, id, incarnation, 0, NULL, 0, 0, labels, ret_meta);
}

static int rp_set_scopes(struct store *s, const char *id, uint64_t incarnation, scope_set scopes,
                         struct secret_meta *ret_meta)
{
	if (!secret_scopes_valid(scopes))
		return -EINVAL;
	return update(s, id, incarnation, 0, NULL, 0, scopes, NULL, ret_meta);
}

static int rp_delete(struct store *s, const char *id, uint64_t incarnation,
                     struct store_change *ret_change)
{
	struct store_change c = { .kind = STORE_DELETED };
	char *path = NULL;
	long i;
	int r = 0;

	if (s->read_only)
		return -EROFS;
	r = known(s, id, incarnation, 0, &c.meta);
	if (r < 0)
		return r;
	free(c.meta.id); /* set again below: the deletion record's fields only */
	labels_clear(&c.meta.labels);
	c.meta = (struct secret_meta){ .incarnation = c.meta.incarnation };
	path = rp_secret_path(id);
	if (!path)
		return -ENOMEM;
	r = api_call(s, "DELETE", path, NULL, true, NULL, NULL);
	free(path);
	if (r < 0)
		return r;
	c.meta.id = strdup(id);
	pthread_mutex_lock(&s->lock);
	i = find(s, id);
	if (i >= 0 && s->v[i].incarnation == c.meta.incarnation)
		table_remove(s, i);
	c.meta.revision = ++s->rev;
	gone_add(s, id, c.meta.revision);
	pthread_mutex_unlock(&s->lock);
	if (!c.meta.id)
		return -ENOMEM;
	if (ret_change)
		*ret_change = c;
	else
		store_change_clear(&c);
	return 0;
}

/* --- the poller --- */

/* One listing of the whole mount; its differences go to the callback. */
static void poll_once(struct store *s)
{
	struct meta_list l = { 0 };
	struct changes out = { 0 };
	uint64_t since;
	int r;

	pthread_mutex_lock(&s->lock);
	since = s->rev;
	pthread_mutex_unlock(&s->lock);
	r = list_all(s, s->cancel, &l);
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		r = merge(s, &l, since, &out);
		pthread_mutex_unlock(&s->lock);
	}
	meta_list_clear(&l);
	if (r < 0 && r != -ECANCELED)
		log_warn("redpanda: this poll found no complete listing (%s); the mount shows "
		         "what it last knew until the next one",
		         strerror(-r));
	if (out.n)
		log_info("redpanda: the poll found %zu change(s) made elsewhere", out.n);
	for (size_t i = 0; i < out.n; i++)
		s->fn(s->fn_arg, &out.v[i]);
	changes_clear(&out);
}

static void *poller_main(void *arg)
{
	struct store *s = arg;

	while (http_cancel_sleep(s->cancel, (unsigned)s->poll_s * 1000) == 0)
		poll_once(s);
	return NULL;
}

static int rp_watch(struct store *s, store_change_fn fn, void *userdata)
{
	if (s->polling)
		return -EBUSY;
	s->fn = fn;
	s->fn_arg = userdata;
	if (s->poll_s == 0)
		return 0; /* -o poll=0: never */
	if (pthread_create(&s->poller, NULL, poller_main, s) != 0)
		return -EAGAIN;
	s->polling = true;
	return 0;
}

const struct store_ops redpanda_store_ops = {
	.name = "redpanda-cloud",
	.caps = STORE_CAP_WRITE_ONLY_VALUES | STORE_CAP_WATCH,
	.open = rp_open,
	.close = rp_close,
	.list = rp_list,
	.stat = rp_stat,
	.get_value = rp_get_value,
	.create = rp_create,
	.put_value = rp_put_value,
	.delete_secret = rp_delete,
	.set_labels = rp_set_labels,
	.set_scopes = rp_set_scopes,
	.watch = rp_watch,
};
