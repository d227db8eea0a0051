/* SPDX-License-Identifier: MIT */
/*
 * The Data Plane API's JSON (redpanda_json.h): answers read into store.h's
 * structures, error answers into one log line, the token answer, the
 * credentials file.  Bounded everywhere: a hostile or broken server can
 * make a parser refuse, never overrun or allocate without limit (jansson
 * itself is bounded by http.h's max_response).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "redpanda_json.h"

#define CREDENTIAL_MAX 512 /* bytes of a client ID or secret */

static int scope_from_api_name(const char *name)
{
	for (int sc = 0; sc < SCOPE_COUNT; sc++)
		if (strcmp(name, scope_api_name(sc)) == 0)
			return sc;
	return -1;
}

int rp_parse_secret(const json_t *j, struct secret_meta *ret_meta, unsigned *ret_unknown_scopes,
                    unsigned *ret_skipped_labels)
{
	struct secret_meta m = { 0 };
	const json_t *inner = json_object_get(j, "secret");
	const json_t *scopes, *labels, *v;
	const char *id, *key;
	unsigned unknown = 0, skipped = 0;
	size_t i;

	if (json_is_object(inner))
		j = inner;
	if (!json_is_object(j))
		return -EINVAL;
	id = json_string_value(json_object_get(j, "id"));
	if (!id || strlen(id) > SECRET_ID_MAX || !secret_id_valid_existing(id))
		return -EINVAL;
	scopes = json_object_get(j, "scopes");
	if (scopes && !json_is_array(scopes))
		return -EINVAL;
	json_array_foreach(scopes, i, v)
	{
		const char *name = json_string_value(v);
		int sc = name ? scope_from_api_name(name) : -1;

		if (sc < 0)
			unknown++;
		else
			m.scopes |= 1u << sc;
	}
	if (!m.scopes)
		return -EINVAL; /* a secret in no scope we know has no file */
	labels = json_object_get(j, "labels");
	if (labels && !json_is_object(labels) && !json_is_null(labels))
		return -EINVAL;
	if (!(m.id = strdup(id)))
		return -ENOMEM;
	json_object_foreach((json_t *)labels, key, v)
	{
		const char *value = json_string_value(v);
		int r;

		if (!value || !label_key_valid(key) || !label_value_valid(value, strlen(value)) ||
		    m.labels.n >= LABELS_MAX) {
			skipped += strcmp(key, "owner") != 0; /* owner is hidden, not skipped */
			continue;
		}
		r = labels_set(&m.labels, key, value);
		if (r < 0) {
			secret_meta_clear(&m);
			return r;
		}
	}
	if (ret_unknown_scopes)
		*ret_unknown_scopes = unknown;
	if (ret_skipped_labels)
		*ret_skipped_labels = skipped;
	*ret_meta = m;
	return 0;
}

int rp_parse_list_page(const json_t *j, rp_secret_fn fn, void *arg, char **ret_next,
                       unsigned *ret_bad)
{
	const json_t *list, *next, *item;
	const char *token = "";
	unsigned bad = 0;
	size_t i;
	char *copy;

	if (!json_is_object(j))
		return -EINVAL;
	list = json_object_get(j, "secrets");
	if (list && !json_is_array(list) && !json_is_null(list))
		return -EINVAL;
	next = json_object_get(j, "next_page_token");
	if (next && !json_is_null(next)) {
		token = json_string_value(next);
		if (!token || strlen(token) > RP_PAGE_TOKEN_MAX)
			return -EINVAL;
	}
	json_array_foreach(list, i, item)
	{
		struct secret_meta m;
		int r = rp_parse_secret(item, &m, NULL, NULL);

		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			bad++;
			continue;
		}
		r = fn(arg, &m);
		secret_meta_clear(&m);
		if (r)
			return r;
	}
	if (!(copy = strdup(token)))
		return -ENOMEM;
	*ret_next = copy;
	if (ret_bad)
		*ret_bad = bad;
	return 0;
}

/* Appends s (bounded, control characters as '?') to out at *used. */
static void put(char *out, size_t size, size_t *used, const char *s, size_t max)
{
	for (size_t i = 0; s && s[i] && i < max && *used + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		out[(*used)++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[*used] = '\0';
}

/* Is the detail's @type this google.rpc type (with or without the
 * type.googleapis.com/ prefix)? */
static bool detail_is(const json_t *d, const char *type)
{
	const char *t = json_string_value(json_object_get(d, "@type"));
	size_t n = t ? strlen(t) : 0, m = strlen(type);

	return t && n >= m && strcmp(t + n - m, type) == 0 && (n == m || t[n - m - 1] == '/');
}

void rp_parse_error(const json_t *j, char *text, size_t size, bool *ret_store_error)
{
	const json_t *code, *details, *d, *fv, *v;
	size_t used = 0, i, k;
	char num[32];

	*ret_store_error = false;
	if (!size)
		return;
	text[0] = '\0';
	if (!json_is_object(j))
		return;
	code = json_object_get(j, "code");
	if (json_is_integer(code)) {
		snprintf(num, sizeof(num), "code %lld", (long long)json_integer_value(code));
		put(text, size, &used, num, sizeof(num));
	} else {
		put(text, size, &used, json_string_value(code), 64);
	}
	if (json_string_value(json_object_get(j, "message"))) {
		put(text, size, &used, used ? ": " : "", 2);
		put(text, size, &used, json_string_value(json_object_get(j, "message")), 160);
	}
	/* the token endpoint's OAuth error answer */
	if (json_string_value(json_object_get(j, "error"))) {
		put(text, size, &used, used ? "; " : "", 2);
		put(text, size, &used, json_string_value(json_object_get(j, "error")), 64);
		if (json_string_value(json_object_get(j, "error_description"))) {
			put(text, size, &used, ": ", 2);
			put(text, size, &used,
			    json_string_value(json_object_get(j, "error_description")), 120);
		}
	}
	details = json_object_get(j, "details");
	json_array_foreach(details, i, d)
	{
		if (detail_is(d, "google.rpc.ErrorInfo")) {
			const char *reason = json_string_value(json_object_get(d, "reason"));

			if (reason && strcmp(reason, "REASON_SECRET_STORE_ERROR") == 0)
				*ret_store_error = true;
			if (reason) {
				put(text, size, &used, " [", 2);
				put(text, size, &used, reason, 64);
				put(text, size, &used, "]", 1);
			}
		} else if (detail_is(d, "google.rpc.BadRequest")) {
			fv = json_object_get(d, "field_violations");
			json_array_foreach(fv, k, v)
			{
				put(text, size, &used, "; ", 2);
				put(text, size, &used,
				    json_string_value(json_object_get(v, "field")), 64);
				put(text, size, &used, ": ", 2);
				put(text, size, &used,
				    json_string_value(json_object_get(v, "description")), 120);
			}
		}
	}
}

int rp_error_errno(long http_status, int http_errno, bool store_error)
{
	if (store_error)
		return -EIO;
	if (http_status == 503)
		return -EAGAIN; /* unavailable, still, after the retries */
	return http_errno;
}

int rp_parse_token(const json_t *j, char **ret_token, int64_t *ret_expires_s)
{
	const char *tok = json_string_value(json_object_get(j, "access_token"));
	const char *type = json_string_value(json_object_get(j, "token_type"));
	const json_t *exp = json_object_get(j, "expires_in");
	json_int_t secs;
	size_t n;
	char *copy;

	if (!tok || !json_is_integer(exp))
		return -EINVAL;
	if (type && strcasecmp(type, "Bearer") != 0)
		return -EINVAL;
	secs = json_integer_value(exp);
	n = strlen(tok);
	if (secs <= 0 || secs > 366LL * 86400 || n == 0 || n > 16384)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)tok[i] <= ' ' || (unsigned char)tok[i] >= 0x7f)
			return -EINVAL; /* it goes into a header line */
	copy = secret_locked_alloc(n + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, tok, n + 1);
	*ret_token = copy;
	*ret_expires_s = secs;
	return 0;
}

int rp_parse_cluster(const json_t *j, char **ret_url)
{
	const json_t *c = json_object_get(j, "cluster");
	if (!json_is_object(c))
		c = json_object_get(j, "serverless_cluster");
	if (!json_is_object(c))
		return -EINVAL;
	const json_t *api = json_object_get(c, "dataplane_api");
	if (!api || json_is_null(api))
		return -EAGAIN;
	if (!json_is_object(api))
		return -EINVAL;
	const json_t *u = json_object_get(api, "url");
	if (!u || json_is_null(u) || (json_is_string(u) && json_string_length(u) == 0))
		return -EAGAIN;
	const char *url = json_string_value(u);
	if (!url || strncmp(url, "https://", 8) != 0)
		return -EINVAL;
	size_t n = strlen(url);
	if (n != json_string_length(u) || n > 2048) /* an embedded NUL, or absurd */
		return -EINVAL;
	while (n > 8 && url[n - 1] == '/')
		n--;
	if (n == 8 || url[8] == '/' || url[8] == ':')
		return -EINVAL; /* no host */
	for (size_t i = 8; i < n; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '@' || ch == '\\')
			return -EINVAL;
	}
	char *copy = strndup(url, n);
	if (!copy)
		return -ENOMEM;
	*ret_url = copy;
	return 0;
}

long rp_quota_reset_s(const char *header)
{
	const char *p = header;

	while (p && *p) {
		while (*p == ' ' || *p == ';' || *p == ',')
			p++;
		if (p[0] == 't' && p[1] == '=') {
			char *end;
			long v = strtol(p + 2, &end, 10);

			if (end != p + 2 && v >= 0 && (*end == '\0' || *end == ';' || *end == ','))
				return v;
			return -1;
		}
		p = strpbrk(p, ";,");
	}
	return -1;
}

/* One value of the credentials file into locked memory. */
static int take(const char *v, size_t n, char **slot)
{
	if (*slot || n == 0 || n > CREDENTIAL_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return -EINVAL;
	*slot = secret_locked_alloc(n + 1);
	if (!*slot)
		return -ENOMEM;
	memcpy(*slot, v, n);
	(*slot)[n] = '\0';
	return 0;
}

int rp_parse_credentials(const char *text, size_t len, char **ret_id, char **ret_secret)
{
	char *id = NULL, *secret = NULL;
	size_t i = 0;
	int r = 0;

	while (i < len && r == 0) {
		const char *line = text + i, *nl = memchr(line, '\n', len - i);
		size_t n = nl ? (size_t)(nl - line) : len - i;

		i += n + (nl ? 1 : 0);
		if (n && line[n - 1] == '\r')
			n--;
		while (n && (line[0] == ' ' || line[0] == '\t'))
			line++, n--;
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if (n > 10 && memcmp(line, "client_id=", 10) == 0)
			r = take(line + 10, n - 10, &id);
		else if (n > 14 && memcmp(line, "client_secret=", 14) == 0)
			r = take(line + 14, n - 14, &secret);
		else
			r = -EINVAL;
	}
	if (r == 0 && (!id || !secret))
		r = -EINVAL;
	if (r < 0) {
		sodium_free(id);
		sodium_free(secret);
		return r;
	}
	*ret_id = id;
	*ret_secret = secret;
	return 0;
}

char *rp_secret_path(const char *id)
{
	static const char prefix[] = "/v1/secrets/";
	size_t n = sizeof(prefix) - 1;
	char *out, *p;

	for (const char *s = id; *s; s++)
		n += *s == '/' ? 3 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	memcpy(out, prefix, sizeof(prefix) - 1);
	p = out + sizeof(prefix) - 1;
	for (const char *s = id; *s; s++) {
		if (*s == '/') {
			memcpy(p, "%2F", 3);
			p += 3;
		} else {
			*p++ = *s;
		}
	}
	*p = '\0';
	return out;
}

int rp_form_escape(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t used = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';

		if (used + (plain ? 1 : 3) + 1 > size)
			return -ENOSPC;
		if (plain) {
			out[used++] = (char)c;
		} else {
			out[used++] = '%';
			out[used++] = hex[c >> 4];
			out[used++] = hex[c & 15];
		}
	}
	out[used] = '\0';
	return (int)used;
}
