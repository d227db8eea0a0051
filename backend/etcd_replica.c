/* SPDX-License-Identifier: MIT */
/*
 * The local replica of an etcd prefix (etcd_replica.h): a sorted array of
 * pairs, a watch thread that keeps it current.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "etcd_replica.h"
#include "http.h"
#include "log.h"
#include "ownedfile.h"

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000
/* A stream that hangs without ending (a member stopped, not killed) is
 * given up after this long without a message; etcd's progress
 * notifications (every 10 min by default) keep a quiet one alive. */
#define WATCH_IDLE_MS (11u * 60u * 1000u)

struct etcd_replica {
	struct etcd_kv *kv;
	char *prefix; /* "/fleet/": every key of the store */

	pthread_mutex_t lock;
	pthread_cond_t moved;     /* rev or live changed */
	struct etcd_kv_pair *kvs; /* key order; lock */
	size_t n, cap;
	int64_t rev;     /* every change up to it is applied; lock */
	bool loaded;     /* lock */
	bool live;       /* the watch is in place; lock */
	int64_t lost_ns; /* CLOCK_MONOTONIC when it last stopped being current */

	pthread_t thread;
	bool started;

	/* The sealed cache on disk (etcd_replica_persist). */
	char *cache_path;
	pthread_t saver;
	bool saver_started;
	pthread_cond_t save_cond; /* dirty or stopping; lock */
	bool dirty, stopping;     /* lock */
	struct http_cancel *cancel;
	etcd_replica_batch_fn batch_fn;
	etcd_replica_idle_fn idle_fn;
	void *arg;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* Index of key, or where it would go (*found false). */
static size_t find(const struct etcd_replica *r, const uint8_t *key, size_t len, bool *found)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(r->kvs[mid].key, r->kvs[mid].key_len, key, len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static int pair_copy(struct etcd_kv_pair *dst, const struct etcd_kv_pair *src)
{
	*dst = *src;
	dst->key = malloc(src->key_len + 1);
	dst->value = src->value ? malloc(src->value_len + 1) : NULL;
	if (!dst->key || (src->value && !dst->value)) {
		free(dst->key);
		free(dst->value);
		*dst = (struct etcd_kv_pair){ 0 };
		return -ENOMEM;
	}
	memcpy(dst->key, src->key, src->key_len);
	dst->key[src->key_len] = 0;
	if (src->value) {
		memcpy(dst->value, src->value, src->value_len);
		dst->value[src->value_len] = 0;
	}
	return 0;
}

/* Puts a copy of p in place of what key held (a deletion: removes it). */
static int apply_one(struct etcd_replica *r, enum etcd_event_type type,
                     const struct etcd_kv_pair *p)
{
	bool found;
	size_t i = find(r, p->key, p->key_len, &found);
	if (type == ETCD_EVENT_DELETE) {
		if (found) {
			etcd_kv_pair_clear(&r->kvs[i]);
			memmove(&r->kvs[i], &r->kvs[i + 1], (r->n - i - 1) * sizeof(r->kvs[0]));
			r->n--;
		}
		return 0;
	}
	struct etcd_kv_pair copy;
	if (pair_copy(&copy, p) < 0)
		return -ENOMEM;
	if (found) {
		etcd_kv_pair_clear(&r->kvs[i]);
		r->kvs[i] = copy;
		return 0;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct etcd_kv_pair *kvs = realloc(r->kvs, cap * sizeof(*kvs));
		if (!kvs) {
			etcd_kv_pair_clear(&copy);
			return -ENOMEM;
		}
		r->kvs = kvs;
		r->cap = cap;
	}
	memmove(&r->kvs[i + 1], &r->kvs[i], (r->n - i) * sizeof(r->kvs[0]));
	r->kvs[i] = copy;
	r->n++;
	return 0;
}

int etcd_replica_new(struct etcd_kv *kv, const char *prefix, struct etcd_replica **ret)
{
	struct etcd_replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kv = kv;
	if (asprintf(&r->prefix, "%s/", prefix) < 0 || http_cancel_new(&r->cancel) < 0) {
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->moved, &ca);
	pthread_cond_init(&r->save_cond, &ca);
	pthread_condattr_destroy(&ca);
	*ret = r;
	return 0;
}

static void clear_pairs(struct etcd_replica *r)
{
	for (size_t i = 0; i < r->n; i++)
		etcd_kv_pair_clear(&r->kvs[i]);
	free(r->kvs);
	r->kvs = NULL;
	r->n = r->cap = 0;
}

void etcd_replica_free(struct etcd_replica *r)
{
	if (!r)
		return;
	if (r->started) {
		http_cancel(r->cancel);
		pthread_join(r->thread, NULL);
	}
	if (r->saver_started) { /* after the watch: its last batch is saved */
		pthread_mutex_lock(&r->lock);
		r->stopping = true;
		pthread_cond_broadcast(&r->save_cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->saver, NULL);
	}
	free(r->cache_path);
	pthread_cond_destroy(&r->save_cond);
	clear_pairs(r);
	http_cancel_free(r->cancel);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->moved);
	free(r->prefix);
	free(r);
}

void etcd_replica_load(struct etcd_replica *r, struct etcd_range_result *all)
{
	pthread_mutex_lock(&r->lock);
	clear_pairs(r);
	r->kvs = all->kvs; /* key order, as etcd answers a range */
	r->n = r->cap = all->n;
	r->rev = all->revision;
	r->loaded = true;
	r->lost_ns = mono_ns();
	pthread_mutex_unlock(&r->lock);
	*all = (struct etcd_range_result){ 0 };
}

/* Hands a batch to batch_fn, then applies it; r->lock held. */
static void apply_batch(struct etcd_replica *r, int64_t revision, const struct etcd_event *evs,
                        size_t n)
{
	struct etcd_replica_event *rev = calloc(n ? n : 1, sizeof(*rev));
	if (rev) {
		for (size_t i = 0; i < n; i++) {
			bool found;
			size_t j = find(r, evs[i].kv.key, evs[i].kv.key_len, &found);
			rev[i] = (struct etcd_replica_event){ .type = evs[i].type,
				                              .kv = &evs[i].kv,
				                              .old = found ? &r->kvs[j] : NULL };
		}
		r->batch_fn(r->arg, revision, rev, n);
		free(rev);
	}
	for (size_t i = 0; i < n; i++)
		if (apply_one(r, evs[i].type, &evs[i].kv) < 0) {
			/* the replica no longer matches etcd: listed again at the
			 * next batch (see on_batch) */
			log_error("etcd store: out of memory keeping the local copy of %s",
			          r->prefix);
			r->loaded = false;
		}
	if (revision > r->rev)
		r->rev = revision;
	pthread_cond_broadcast(&r->moved);
	if (r->cache_path) {
		r->dirty = true;
		pthread_cond_signal(&r->save_cond);
	}
}

static void set_live(struct etcd_replica *r, bool live)
{
	pthread_mutex_lock(&r->lock);
	if (r->live && !live)
		r->lost_ns = mono_ns();
	r->live = live;
	pthread_cond_broadcast(&r->moved);
	pthread_mutex_unlock(&r->lock);
}

/* The prefix listed again (after a compaction, or a replica that lost a
 * change): the difference becomes one batch. */
static int resync(struct etcd_replica *r)
{
	struct etcd_range_result all = { 0 };
	struct http_status st = { 0 };
	struct etcd_range q = { .key = r->prefix, .key_len = strlen(r->prefix), .prefix = true };
	int e = etcd_kv_range(r->kv, &q, http_deadline(10000), &all, &st);
	if (e < 0)
		return e;
	pthread_mutex_lock(&r->lock);
	size_t cap = all.n + r->n, n = 0;
	struct etcd_event *evs = calloc(cap ? cap : 1, sizeof(*evs));
	if (!evs) {
		pthread_mutex_unlock(&r->lock);
		etcd_range_result_clear(&all);
		return -ENOMEM;
	}
	/* both sorted: a merge */
	size_t i = 0, j = 0;
	while (i < r->n || j < all.n) {
		int c = i == r->n  ? 1
		      : j == all.n ? -1
		                   : key_cmp(r->kvs[i].key, r->kvs[i].key_len, all.kvs[j].key,
		                             all.kvs[j].key_len);
		if (c < 0) { /* gone */
			evs[n].type = ETCD_EVENT_DELETE;
			evs[n].kv.key = r->kvs[i].key;
			evs[n].kv.key_len = r->kvs[i].key_len;
			n++;
			i++;
		} else if (c > 0 || r->kvs[i].mod_revision != all.kvs[j].mod_revision) {
			evs[n].type = ETCD_EVENT_PUT;
			evs[n].kv = all.kvs[j];
			n++;
			i += c == 0;
			j++;
		} else {
			i++;
			j++;
		}
	}
	/* deletions name keys the replica owns: copied before it drops them */
	bool copied = true;
	for (size_t k = 0; k < n; k++)
		if (evs[k].type == ETCD_EVENT_DELETE) {
			uint8_t *key = malloc(evs[k].kv.key_len + 1);
			if (key) {
				memcpy(key, evs[k].kv.key, evs[k].kv.key_len);
				key[evs[k].kv.key_len] = 0;
			}
			copied = copied && key;
			evs[k].kv.key = key;
		}
	int64_t listed = all.revision;
	if (copied) {
		r->loaded = true;
		apply_batch(r, listed, evs, n);
	}
	pthread_mutex_unlock(&r->lock);
	for (size_t k = 0; k < n; k++)
		if (evs[k].type == ETCD_EVENT_DELETE)
			free(evs[k].kv.key);
	free(evs);
	etcd_range_result_clear(&all);
	if (!copied)
		return -ENOMEM;
	r->idle_fn(r->arg);
	log_info("etcd store: %s listed again at revision %" PRId64 " (%zu keys changed)",
	         r->prefix, listed, n);
	return 0;
}

static int on_batch(const struct etcd_watch_batch *b, void *arg)
{
	struct etcd_replica *r = arg;
	if (b->created) {
		set_live(r, true);
		return 0;
	}
	if (b->n == 0) {
		/* a progress notification: every change up to its revision
		 * was sent (etcd sends them to a watcher that is caught up) */
		pthread_mutex_lock(&r->lock);
		if (b->progress && b->revision > r->rev) {
			r->rev = b->revision;
			pthread_cond_broadcast(&r->moved);
		}
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	/* One message may carry many revisions (a watcher catching up gets
	 * up to 1000 in one), and its header revision is etcd's current one,
	 * not its last event's: each revision (one Txn) is a batch of its
	 * own, and the replica is at the last event's revision. */
	pthread_mutex_lock(&r->lock);
	bool ok = r->loaded;
	for (size_t i = 0, j; ok && i < b->n; i = j) {
		int64_t rev = b->events[i].kv.mod_revision;
		for (j = i + 1; j < b->n && b->events[j].kv.mod_revision == rev; j++)
			;
		apply_batch(r, rev, b->events + i, j - i);
		ok = r->loaded;
	}
	pthread_mutex_unlock(&r->lock);
	if (!ok)
		return -ESTALE; /* list again */
	r->idle_fn(r->arg);
	return 0;
}

static void *watch_main(void *arg)
{
	struct etcd_replica *r = arg;
	unsigned backoff = BACKOFF_FIRST_MS;
	bool said = false;
	for (;;) {
		struct etcd_watch_end end;
		struct http_status st = { 0 };
		struct etcd_watch w = {
			.range = { .key = r->prefix, .key_len = strlen(r->prefix), .prefix = true },
			.start_revision = etcd_replica_revision(r) + 1,
			.progress_notify = true,
			.idle_timeout_ms = WATCH_IDLE_MS,
			.cancel = r->cancel,
		};
		int e = etcd_kv_watch(r->kv, &w, on_batch, r, &end, &st);
		bool was_live = r->live;
		set_live(r, false);
		if (e == -ECANCELED || http_cancelled(r->cancel))
			break;
		if (e == -ESTALE) {
			e = resync(r);
			if (e == 0)
				continue;
		}
		if (was_live)
			backoff = BACKOFF_FIRST_MS;
		if (!said || was_live)
			log_warn("etcd store: the watch on %s ended (%s%s%s); values are served "
			         "from the local copy while it reconnects",
			         r->prefix, strerrordesc_np(-e), st.reason[0] ? ": " : "",
			         st.reason);
		said = true;
		unsigned ms = backoff / 2 + (unsigned)(random() % (backoff / 2 + 1));
		if (http_cancel_sleep(r->cancel, ms) < 0)
			break;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

int etcd_replica_start(struct etcd_replica *r, etcd_replica_batch_fn batch_fn,
                       etcd_replica_idle_fn idle_fn, void *arg)
{
	if (r->started)
		return -EALREADY;
	r->batch_fn = batch_fn;
	r->idle_fn = idle_fn;
	r->arg = arg;
	int e = pthread_create(&r->thread, NULL, watch_main, r);
	if (e)
		return -e;
	r->started = true;
	return 0;
}

bool etcd_replica_current(struct etcd_replica *r, int64_t min_rev, unsigned wait_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->lock);
	/* (no waiting while the watch is down: it will not catch up soon) */
	while (r->live && r->loaded && r->rev < min_rev &&
	       pthread_cond_timedwait(&r->moved, &r->lock, &until) == 0)
		;
	bool ok = r->live && r->loaded && r->rev >= min_rev;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

int64_t etcd_replica_behind_ns(struct etcd_replica *r)
{
	pthread_mutex_lock(&r->lock);
	int64_t ns = !r->loaded ? -1 : r->live ? 0 : mono_ns() - r->lost_ns;
	pthread_mutex_unlock(&r->lock);
	return ns;
}

int64_t etcd_replica_revision(struct etcd_replica *r)
{
	pthread_mutex_lock(&r->lock);
	int64_t rev = r->rev;
	pthread_mutex_unlock(&r->lock);
	return rev;
}

/* A copy of r->kvs[i, j) into res, at the replica's revision; r->lock
 * held.  On failure res is cleared. */
static int copy_span(const struct etcd_replica *r, size_t i, size_t j,
                     struct etcd_range_result *res)
{
	int e = 0;
	*res = (struct etcd_range_result){ .revision = r->rev };
	if (j > i && !(res->kvs = calloc(j - i, sizeof(res->kvs[0]))))
		e = -ENOMEM;
	for (size_t k = i; e == 0 && k < j; k++, res->n++)
		e = pair_copy(&res->kvs[res->n], &r->kvs[k]);
	res->count = (int64_t)res->n;
	if (e < 0)
		etcd_range_result_clear(res);
	return e;
}

int etcd_replica_range(struct etcd_replica *r, const char *prefix, struct etcd_range_result *res)
{
	size_t pl = strlen(prefix);
	bool found;
	pthread_mutex_lock(&r->lock);
	size_t i = find(r, (const uint8_t *)prefix, pl, &found), j = i;
	while (j < r->n && r->kvs[j].key_len >= pl && memcmp(r->kvs[j].key, prefix, pl) == 0)
		j++;
	int e = copy_span(r, i, j, res);
	pthread_mutex_unlock(&r->lock);
	return e;
}

int etcd_replica_get(struct etcd_replica *r, const char *key, struct etcd_range_result *res)
{
	bool found;
	pthread_mutex_lock(&r->lock);
	size_t i = find(r, (const uint8_t *)key, strlen(key), &found);
	int e = copy_span(r, i, found ? i + 1 : i, res);
	pthread_mutex_unlock(&r->lock);
	return e;
}

/* --- the sealed cache on disk --- */

#define CACHE_MAGIC "secretsfs etcd replica cache 1\n"
#define CACHE_MAX (1u << 30)
#define CACHE_REFRESH_S 300

static int64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_u64(uint8_t **p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		(*p)[i] = (uint8_t)(v >> (8 * i));
	*p += 8;
}

static void put_bytes(uint8_t **p, const void *b, size_t n)
{
	put_u64(p, n);
	memcpy(*p, b, n);
	*p += n;
}

/* The file's bytes for the replica as it is; r->lock held. */
static uint8_t *serialize(const struct etcd_replica *r, size_t *ret_len)
{
	size_t len = sizeof(CACHE_MAGIC) - 1 + 8 + strlen(r->prefix) + 3 * 8;
	for (size_t i = 0; i < r->n; i++)
		len += 5 * 8 + r->kvs[i].key_len + r->kvs[i].value_len;
	uint8_t *buf = malloc(len), *p = buf;
	if (!buf)
		return NULL;
	memcpy(p, CACHE_MAGIC, sizeof(CACHE_MAGIC) - 1);
	p += sizeof(CACHE_MAGIC) - 1;
	put_bytes(&p, r->prefix, strlen(r->prefix));
	put_u64(&p, (uint64_t)r->rev);
	put_u64(&p, (uint64_t)real_ns());
	put_u64(&p, r->n);
	for (size_t i = 0; i < r->n; i++) {
		const struct etcd_kv_pair *kv = &r->kvs[i];
		put_bytes(&p, kv->key, kv->key_len);
		put_bytes(&p, kv->value ? kv->value : (const uint8_t *)"", kv->value_len);
		put_u64(&p, (uint64_t)kv->create_revision);
		put_u64(&p, (uint64_t)kv->mod_revision);
		put_u64(&p, (uint64_t)kv->version);
	}
	*ret_len = len;
	return buf;
}

/* path replaced by buf, atomically: PATH.new written, fsynced, renamed. */
static int write_cache(const char *path, const uint8_t *buf, size_t len)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.new", path) < 0)
		return -ENOMEM;
	unlink(tmp); /* a leftover of a crash */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e = fd < 0 ? -errno : 0;
	for (size_t off = 0; e == 0 && off < len;) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0 && errno != EINTR)
			e = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (e == 0 && fsync(fd) < 0)
		e = -errno;
	if (fd >= 0 && close(fd) < 0 && e == 0)
		e = -errno;
	if (e == 0 && rename(tmp, path) < 0)
		e = -errno;
	if (e < 0)
		unlink(tmp);
	free(tmp);
	return e;
}

static void *saver_main(void *arg)
{
	struct etcd_replica *r = arg;
	bool said = false;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->dirty && !r->stopping)
			pthread_cond_wait(&r->save_cond, &r->lock);
		if (!r->dirty)
			break;
		r->dirty = false;
		size_t len = 0;
		uint8_t *buf = serialize(r, &len);
		int64_t rev = r->rev;
		pthread_mutex_unlock(&r->lock);
		int e = buf ? write_cache(r->cache_path, buf, len) : -ENOMEM;
		if (buf) {
			sodium_memzero(buf, len);
			free(buf);
		}
		if (e < 0 && !said)
			log_error("etcd store: cannot save the sealed cache %s: %s (a mount that "
			          "starts while etcd is away would find an older one, or none)",
			          r->cache_path, strerrordesc_np(-e));
		else if (e == 0)
			log_debug("etcd store: sealed cache %s saved at revision %" PRId64,
			          r->cache_path, rev);
		said = e < 0;
		/* at most once a second; at once when stopping */
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&r->lock);
		while (!r->stopping &&
		       pthread_cond_timedwait(&r->save_cond, &r->lock, &until) != ETIMEDOUT)
			;
		/* A quiet store: saved again every few minutes while the watch
		 * is in place, so that the file's time (how stale it is when
		 * a mount starts from it) is when it was last known current,
		 * not its last change. */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += CACHE_REFRESH_S;
		while (!r->dirty && !r->stopping &&
		       pthread_cond_timedwait(&r->save_cond, &r->lock, &until) != ETIMEDOUT)
			;
		if (!r->dirty && !r->stopping && r->live)
			r->dirty = true;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int etcd_replica_persist(struct etcd_replica *r, const char *path, bool save_now)
{
	if (r->saver_started)
		return -EALREADY;
	if (!(r->cache_path = strdup(path)))
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	r->dirty = save_now; /* what it holds now */
	pthread_mutex_unlock(&r->lock);
	int e = pthread_create(&r->saver, NULL, saver_main, r);
	if (e) {
		free(r->cache_path);
		r->cache_path = NULL;
		return -e;
	}
	r->saver_started = true;
	return 0;
}

struct reader {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t get_u64(struct reader *rd)
{
	if (rd->bad || rd->end - rd->p < 8) {
		rd->bad = true;
		return 0;
	}
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)rd->p[i] << (8 * i);
	rd->p += 8;
	return v;
}

/* A malloc'ed, NUL-terminated copy of the next length-prefixed bytes. */
static uint8_t *get_bytes(struct reader *rd, size_t *ret_len)
{
	uint64_t n = get_u64(rd);
	if (rd->bad || n > (uint64_t)(rd->end - rd->p)) {
		rd->bad = true;
		return NULL;
	}
	uint8_t *b = malloc(n + 1);
	if (!b) {
		rd->bad = true;
		return NULL;
	}
	memcpy(b, rd->p, n);
	b[n] = 0;
	rd->p += n;
	*ret_len = n;
	return b;
}

static int parse_cache(const struct etcd_replica *r, const uint8_t *buf, size_t len,
                       struct etcd_range_result *all, int64_t *saved)
{
	struct reader rd = { buf, buf + len, false };
	size_t ml = sizeof(CACHE_MAGIC) - 1, pl = 0;
	if (len < ml || memcmp(buf, CACHE_MAGIC, ml) != 0)
		return -EIO;
	rd.p += ml;
	uint8_t *prefix = get_bytes(&rd, &pl);
	bool same = prefix && pl == strlen(r->prefix) && memcmp(prefix, r->prefix, pl) == 0;
	free(prefix);
	if (!same)
		return -EIO; /* another store's cache, or damaged */
	all->revision = (int64_t)get_u64(&rd);
	*saved = (int64_t)get_u64(&rd);
	if (all->revision < 0 || all->revision > INT64_MAX / 2 || *saved < 0 ||
	    *saved > real_ns() + 86400LL * 1000000000)
		return -EIO;
	uint64_t n = get_u64(&rd);
	if (rd.bad || n > (uint64_t)(rd.end - rd.p) / (5 * 8))
		return -EIO;
	if (n && !(all->kvs = calloc(n, sizeof(all->kvs[0]))))
		return -ENOMEM;
	for (uint64_t i = 0; i < n && !rd.bad; i++, all->n++) {
		struct etcd_kv_pair *kv = &all->kvs[i];
		kv->key = get_bytes(&rd, &kv->key_len);
		kv->value = get_bytes(&rd, &kv->value_len);
		kv->create_revision = (int64_t)get_u64(&rd);
		kv->mod_revision = (int64_t)get_u64(&rd);
		kv->version = (int64_t)get_u64(&rd);
		/* sorted, as the replica keeps them */
		if (i && !rd.bad &&
		    key_cmp(all->kvs[i - 1].key, all->kvs[i - 1].key_len, kv->key, kv->key_len) >=
		        0)
			rd.bad = true;
	}
	if (rd.bad || rd.p != rd.end) {
		etcd_range_result_clear(all);
		return -EIO;
	}
	all->count = (int64_t)all->n;
	return 0;
}

int etcd_replica_load_file(struct etcd_replica *r, const char *path, int64_t *ret_saved_ns,
                           char *why, size_t why_size)
{
	struct etcd_range_result all = { 0 };
	int64_t saved = 0;
	why[0] = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e != ENOENT)
			owned_open_reason(e, "the etcd cache", path, why, why_size);
		return e == ELOOP || e == ENXIO ? -EPERM : -e;
	}
	struct stat st;
	int e = owned_fd_check(fd, 077, "the etcd cache", path, why, why_size);
	if (e == 0 && fstat(fd, &st) < 0)
		e = -errno;
	if (e == 0 && (st.st_size < 0 || (uint64_t)st.st_size > CACHE_MAX))
		e = -EIO;
	size_t len = e == 0 ? (size_t)st.st_size : 0, off = 0;
	uint8_t *buf = e == 0 ? malloc(len ? len : 1) : NULL;
	if (e == 0 && !buf)
		e = -ENOMEM;
	while (e == 0 && off < len) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n < 0 && errno != EINTR)
			e = -errno;
		else if (n == 0)
			e = -EIO;
		else if (n > 0)
			off += (size_t)n;
	}
	close(fd);
	if (e == 0)
		e = parse_cache(r, buf, len, &all, &saved);
	if (buf) {
		sodium_memzero(buf, len);
		free(buf);
	}
	if (e == -EIO)
		snprintf(why, why_size, "the etcd cache %s is damaged or another store's", path);
	if (e < 0)
		return e;
	etcd_replica_load(r, &all);
	/* behind since it was saved, not since now */
	int64_t age = real_ns() - saved;
	pthread_mutex_lock(&r->lock);
	r->lost_ns = mono_ns() - (age > 0 ? age : 0);
	pthread_mutex_unlock(&r->lock);
	*ret_saved_ns = saved;
	return 0;
}
