/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by every store: ID, label and scope rules, label maps,
 * metadata copies and values in locked memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "store.h"

/* --- IDs --- */

static bool is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}
static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool secret_id_valid_new(const char *id)
{
	size_t i;

	if (!id || !is_upper(id[0]))
		return false;
	for (i = 0; id[i]; i++) {
		if (i >= SECRET_ID_MAX)
			return false;
		if (!is_upper(id[i]) && !is_digit(id[i]) && id[i] != '_')
			return false;
	}
	return true;
}

bool secret_id_valid_existing(const char *id)
{
	size_t i;

	if (!id || !id[0])
		return false;
	for (i = 0; id[i]; i++) {
		char c = id[i];

		if (i >= SECRET_ID_MAX)
			return false;
		if (!is_upper(c) && !is_lower(c) && !is_digit(c) && c != '/' && c != '_' &&
		    c != '-')
			return false;
	}
	return true;
}

/* --- labels --- */

bool label_key_valid(const char *key)
{
	size_t i;

	if (!key || !key[0])
		return false;
	for (i = 0; key[i]; i++) {
		char c = key[i];

		if (i >= LABEL_KEY_MAX)
			return false;
		if (!is_upper(c) && !is_lower(c) && !is_digit(c) && c != '_' && c != '.' &&
		    c != '/' && c != '-')
			return false;
	}
	return strcmp(key, "owner") != 0;
}

/* Length of the valid UTF-8 multibyte sequence at s (at most n bytes), or
 * 0 if there is none: no overlongs, no surrogates, nothing past U+10FFFF. */
static size_t utf8_multibyte_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/* C1 controls (U+0080..U+009F) are not letters, spaces or numbers */
	if (cp < 0xa0)
		return 0;
	return len;
}

bool label_value_valid(const char *value, size_t len)
{
	const unsigned char *s = (const unsigned char *)value;
	size_t i = 0;

	if (len > LABEL_VALUE_MAX)
		return false;
	if (len > 0 && !value)
		return false;
	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			/* c != 0: strchr would match the terminating NUL */
			if (!is_upper(c) && !is_lower(c) && !is_digit(c) &&
			    (c == '\0' || !strchr(" _.:/=+-@", c)))
				return false;
			i++;
		} else {
			size_t l = utf8_multibyte_len(s + i, len - i);

			if (l == 0)
				return false;
			i += l;
		}
	}
	return true;
}

/* --- scopes --- */

static const char *const scope_dirs[SCOPE_COUNT] = {
	[SCOPE_AI_GATEWAY] = "ai_gateway",
	[SCOPE_MCP_SERVER] = "mcp_server",
	[SCOPE_AI_AGENT] = "ai_agent",
	[SCOPE_REDPANDA_CLUSTER] = "redpanda_cluster",
	[SCOPE_REDPANDA_CONNECT] = "redpanda_connect",
};

static const char *const scope_apis[SCOPE_COUNT] = {
	[SCOPE_AI_GATEWAY] = "SCOPE_AI_GATEWAY",
	[SCOPE_MCP_SERVER] = "SCOPE_MCP_SERVER",
	[SCOPE_AI_AGENT] = "SCOPE_AI_AGENT",
	[SCOPE_REDPANDA_CLUSTER] = "SCOPE_REDPANDA_CLUSTER",
	[SCOPE_REDPANDA_CONNECT] = "SCOPE_REDPANDA_CONNECT",
};

const char *scope_dir_name(enum scope sc)
{
	if ((unsigned)sc >= SCOPE_COUNT)
		return NULL;
	return scope_dirs[sc];
}

const char *scope_api_name(enum scope sc)
{
	if ((unsigned)sc >= SCOPE_COUNT)
		return NULL;
	return scope_apis[sc];
}

int scope_from_dir_name(const char *name)
{
	int i;

	if (!name)
		return -1;
	for (i = 0; i < SCOPE_COUNT; i++)
		if (strcmp(name, scope_dirs[i]) == 0)
			return i;
	return -1;
}

/* --- label maps --- */

long sorted_find(const void *v, size_t n, size_t size, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *at = *(const char *const *)((const char *)v + mid * size);
		int c = strcmp(at, key);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Index of key in l, or -(insertion point) - 1. */
static long labels_find(const struct labels *l, const char *key)
{
	return sorted_find(l->v, l->n, sizeof(*l->v), key);
}

const char *labels_get(const struct labels *l, const char *key)
{
	long i;

	if (!l || !key || l->n == 0)
		return NULL;
	i = labels_find(l, key);
	return i >= 0 ? l->v[i].value : NULL;
}

int labels_set(struct labels *l, const char *key, const char *value)
{
	struct label *v;
	char *k = NULL, *val = NULL;
	size_t pos;
	long i;

	if (!l || !label_key_valid(key) || !value || !label_value_valid(value, strlen(value)))
		return -EINVAL;

	val = strdup(value);
	if (!val)
		return -ENOMEM;

	i = l->n ? labels_find(l, key) : -1;
	if (i >= 0) {
		free(l->v[i].value);
		l->v[i].value = val;
		return 0;
	}
	if (l->n >= LABELS_MAX) {
		free(val);
		return -ENOSPC;
	}
	k = strdup(key);
	if (!k)
		goto nomem;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		goto nomem;
	l->v = v;
	pos = (size_t)(-i - 1);
	memmove(&l->v[pos + 1], &l->v[pos], (l->n - pos) * sizeof(*v));
	l->v[pos].key = k;
	l->v[pos].value = val;
	l->n++;
	return 0;

nomem:
	free(k);
	free(val);
	return -ENOMEM;
}

int labels_remove(struct labels *l, const char *key)
{
	long i;
	size_t pos;

	if (!l || !key || l->n == 0)
		return -ENODATA;
	i = labels_find(l, key);
	if (i < 0)
		return -ENODATA;
	pos = (size_t)i;
	free(l->v[pos].key);
	free(l->v[pos].value);
	memmove(&l->v[pos], &l->v[pos + 1], (l->n - pos - 1) * sizeof(l->v[0]));
	l->n--;
	if (l->n == 0) {
		free(l->v);
		l->v = NULL;
	}
	return 0;
}

bool labels_equal(const struct labels *a, const struct labels *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].key, b->v[i].key) != 0 ||
		    strcmp(a->v[i].value, b->v[i].value) != 0)
			return false;
	return true;
}

void labels_clear(struct labels *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int labels_copy(struct labels *dst, const struct labels *src)
{
	struct labels tmp = { 0, NULL };
	size_t i;

	if (!dst)
		return -EINVAL;
	if (src && src->n > 0) {
		tmp.v = calloc(src->n, sizeof(*tmp.v));
		if (!tmp.v)
			return -ENOMEM;
		for (i = 0; i < src->n; i++) {
			tmp.v[i].key = strdup(src->v[i].key);
			tmp.v[i].value = strdup(src->v[i].value);
			tmp.n = i + 1;
			if (!tmp.v[i].key || !tmp.v[i].value) {
				labels_clear(&tmp);
				return -ENOMEM;
			}
		}
	}
	*dst = tmp;
	return 0;
}

/* --- metadata --- */

int secret_meta_copy(struct secret_meta *dst, const struct secret_meta *src)
{
	struct secret_meta tmp;
	int r;

	if (!dst || !src)
		return -EINVAL;
	tmp = *src;
	tmp.id = NULL;
	tmp.labels.n = 0;
	tmp.labels.v = NULL;
	if (src->id) {
		tmp.id = strdup(src->id);
		if (!tmp.id)
			return -ENOMEM;
	}
	r = labels_copy(&tmp.labels, &src->labels);
	if (r < 0) {
		free(tmp.id);
		return r;
	}
	*dst = tmp;
	return 0;
}

void secret_meta_clear(struct secret_meta *m)
{
	if (!m)
		return;
	free(m->id);
	labels_clear(&m->labels);
	memset(m, 0, sizeof(*m));
}

int secret_meta_hand_over(int r, struct secret_meta *m, struct secret_meta *ret)
{
	if (r < 0 || !ret)
		secret_meta_clear(m);
	else
		*ret = *m;
	return r;
}

int meta_list_add(void *list, const struct secret_meta *meta)
{
	struct meta_list *l = list;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct secret_meta *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (secret_meta_copy(&l->v[l->n], meta) < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

static int meta_by_id(const void *a, const void *b)
{
	return strcmp(((const struct secret_meta *)a)->id, ((const struct secret_meta *)b)->id);
}

void meta_list_sort(struct meta_list *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), meta_by_id);
}

const struct secret_meta *meta_list_find(const struct meta_list *l, const char *id)
{
	long i = sorted_find(l->v, l->n, sizeof(*l->v), id);

	return i >= 0 ? &l->v[i] : NULL;
}

void meta_list_clear(struct meta_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		secret_meta_clear(&l->v[i]);
	free(l->v);
	*l = (struct meta_list){ 0 };
}

void store_change_clear(struct store_change *c)
{
	if (c)
		secret_meta_clear(&c->meta);
}

/* --- what a store accepts (the same in every store) --- */

bool secret_scopes_valid(scope_set scopes)
{
	return scopes != 0 && (scopes & ~SCOPE_ALL) == 0;
}

int secret_labels_valid(const struct labels *l)
{
	if (!l)
		return 0;
	if (l->n > LABELS_MAX || (l->n > 0 && !l->v))
		return -EINVAL;
	for (size_t i = 0; i < l->n; i++) {
		const struct label *lb = &l->v[i];
		if (!label_key_valid(lb->key) || !lb->value ||
		    !label_value_valid(lb->value, strlen(lb->value)))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(l->v[j].key, lb->key) == 0)
				return -EINVAL;
	}
	return 0;
}

int secret_value_len_valid(const uint8_t *value, size_t len)
{
	if (len > SECRET_VALUE_MAX)
		return -EFBIG;
	return len == 0 || !value ? -EINVAL : 0;
}

/* --- values --- */

/*
 * Values live in locked, guarded memory.  sodium_malloc costs about ten
 * system calls (mmap, mprotect, mlock, ...) and sodium_free as many; at one
 * of each per open that was the daemon's largest cost after SQLite.  So
 * wiped buffers go back to a small pool per size class instead.
 */
static const size_t value_classes[] = { 1024, 8192, SECRET_VALUE_MAX };
static const unsigned value_pool_max[] = { 64, 16, 4 };
#define VALUE_CLASSES (sizeof(value_classes) / sizeof(value_classes[0]))

static struct {
	pthread_mutex_t lock;
	uint8_t *free[64];
	unsigned n; /* protected by lock */
} value_pool[VALUE_CLASSES] = {
	{ PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 },
	{ PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 },
	{ PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 },
};

static atomic_bool allow_unlocked;

void secret_allow_unlocked(bool allow)
{
	atomic_store(&allow_unlocked, allow);
}

void *secret_locked_alloc(size_t n)
{
	void *p = sodium_malloc(n);
	if (p && (atomic_load(&allow_unlocked) || sodium_mlock(p, n) == 0))
		return p;
	/* Under mlockall(MCL_FUTURE) a mapping past RLIMIT_MEMLOCK fails
	 * outright: sodium_malloc returns NULL. */
	int e = errno;
	sodium_free(p);
	/* Any caller may cause this (an open each): one line per 10 s. */
	static atomic_llong next_log_ns;
	static atomic_uint refused;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long t = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	unsigned times = atomic_fetch_add(&refused, 1) + 1;
	long long due = atomic_load(&next_log_ns);
	if (t >= due && atomic_compare_exchange_strong(&next_log_ns, &due, t + 10000000000LL)) {
		atomic_store(&refused, 0);
		log_error("cannot lock %zu bytes of memory for a value or key (%s): refused (%u "
		          "time%s since the last such line); raise LimitMEMLOCK= (ulimit -l) or "
		          "grant CAP_IPC_LOCK, or mount with -o allow_unlocked to accept swappable "
		          "plaintext",
		          n, strerrordesc_np(e), times, times == 1 ? "" : "s");
	}
	errno = ENOMEM;
	return NULL;
}

static int value_class(size_t len)
{
	for (size_t c = 0; c < VALUE_CLASSES; c++)
		if (len <= value_classes[c])
			return (int)c;
	return -1; /* larger than any value: allocated as it is */
}

struct secret_value *secret_value_new(size_t len)
{
	struct secret_value *v;
	int c = value_class(len ? len : 1);

	/* sodium_malloc needs the page size sodium_init finds */
	if (sodium_init() < 0)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->cap = c >= 0 ? value_classes[c] : (len ? len : 1);
	if (c >= 0) {
		pthread_mutex_lock(&value_pool[c].lock);
		if (value_pool[c].n)
			v->data = value_pool[c].free[--value_pool[c].n];
		pthread_mutex_unlock(&value_pool[c].lock);
	}
	if (!v->data)
		v->data = secret_locked_alloc(v->cap);
	if (!v->data) {
		free(v);
		return NULL;
	}
	v->len = len;
	return v;
}

struct secret_value *secret_value_free(struct secret_value *v)
{
	if (!v)
		return NULL;
	sodium_memzero(v->data, v->cap);
	int c = value_class(v->cap);
	bool pooled = false;
	if (c >= 0 && value_classes[c] == v->cap) {
		pthread_mutex_lock(&value_pool[c].lock);
		if (value_pool[c].n < value_pool_max[c]) {
			value_pool[c].free[value_pool[c].n++] = v->data;
			pooled = true;
		}
		pthread_mutex_unlock(&value_pool[c].lock);
	}
	if (!pooled)
		sodium_free(v->data); /* wipes again, unmaps */
	free(v);
	return NULL;
}
