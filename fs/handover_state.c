/* SPDX-License-Identifier: MIT */
/* The restart state's layout: written and read (handover_state.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "handover_state.h"

_Static_assert(HS_REGION_OFFSET(0) + (off_t)HS_REGION_MAX <= HS_REGION_OFFSET(1),
               "region 0 ends before region 1 begins");
#include "store.h"

#define STATE_MAGIC "SFSHOV1"

struct state_head {
	char magic[8];
	uint32_t init_len;
	uint32_t pad;
};

struct state_cur {
	uint64_t region, len;
	uint8_t sum[16];
};

/* All of len bytes at off, written (write) or read; 0 or -errno (-EIO:
 * the file ends before). */
static int all_at(int fd, void *p, size_t len, off_t off, bool write)
{
	char *c = p;
	while (len) {
		ssize_t n = write ? pwrite(fd, c, len, off) : pread(fd, c, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		c += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static void tput(struct hs_table *t, struct hs_buf *b, const void *p, size_t len)
{
	if (t->failed)
		return;
	if (len > HS_REGION_MAX - t->main.len - t->ver.len) {
		t->failed = true;
		return;
	}
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *v = realloc(b->p, cap);
		if (!v) {
			t->failed = true;
			return;
		}
		b->p = v;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void tput64(struct hs_table *t, struct hs_buf *b, uint64_t v)
{
	tput(t, b, &v, sizeof(v));
}

void hs_table_begin(struct hs_table *t, uint64_t next)
{
	memset(t, 0, sizeof(*t));
	tput64(t, &t->main, next);
	tput64(t, &t->main, 0); /* the count, filled in by hs_write */
}

void hs_table_add(struct hs_table *t, uint64_t ino, uint64_t incarnation, uint64_t nlookup,
                  const char *id)
{
	uint32_t idlen = (uint32_t)strlen(id);
	tput64(t, &t->main, ino);
	tput64(t, &t->main, incarnation);
	tput64(t, &t->main, nlookup);
	tput(t, &t->main, &idlen, sizeof(idlen));
	tput(t, &t->main, id, idlen);
	t->count++;
}

void hs_table_add_version(struct hs_table *t, uint64_t ino, uint64_t version, uint64_t nlookup,
                          uint64_t secret_ino)
{
	tput64(t, &t->ver, ino);
	tput64(t, &t->ver, version);
	tput64(t, &t->ver, nlookup);
	tput64(t, &t->ver, secret_ino);
	t->vcount++;
}

void hs_table_free(struct hs_table *t)
{
	free(t->main.p);
	free(t->ver.p);
	memset(t, 0, sizeof(*t));
}

int hs_write(int fd, const uint8_t *init, uint32_t init_len, struct hs_table *t, uint64_t region)
{
	if (t->vcount) {
		/* the versions after the secrets (a reader from before they
		 * were written reads the secrets and ignores the rest) */
		struct hs_buf v = t->ver;
		t->ver = (struct hs_buf){ 0 };
		tput64(t, &t->main, t->vcount);
		tput(t, &t->main, v.p, v.len);
		free(v.p);
		t->vcount = 0;
	}
	if (t->failed || t->main.len < HS_TABLE_HEAD)
		return -ENOMEM;
	struct state_head h = { .init_len = init_len };
	memcpy(h.magic, STATE_MAGIC, sizeof(h.magic));
	struct state_cur cur = { .region = region, .len = t->main.len };
	memcpy(t->main.p + 8, &t->count, sizeof(t->count));
	crypto_generichash(cur.sum, sizeof(cur.sum), t->main.p, t->main.len, NULL, 0);
	int r = all_at(fd, &h, sizeof(h), 0, true);
	if (r == 0)
		r = all_at(fd, (void *)init, init_len, sizeof(h), true);
	if (r == 0)
		r = all_at(fd, t->main.p, t->main.len, HS_REGION_OFFSET(region), true);
	/* The switch: one write of 32 bytes inside one page. */
	if (r == 0)
		r = all_at(fd, &cur, sizeof(cur), HS_CUR_OFFSET, true);
	return r;
}

void hs_forget_region(int fd, uint64_t region)
{
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, HS_REGION_OFFSET(region),
	          (off_t)HS_REGION_MAX);
}

static uint64_t get64(const uint8_t **p)
{
	uint64_t v;
	memcpy(&v, *p, sizeof(v));
	*p += sizeof(v);
	return v;
}

void hs_free(struct hs_state *s)
{
	for (size_t i = 0; s->entries && i < s->count; i++)
		free(s->entries[i].id);
	free(s->entries);
	free(s->versions);
	s->entries = NULL;
	s->versions = NULL;
	s->count = 0;
	s->vcount = 0;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct hs_entry *)a)->id, ((const struct hs_entry *)b)->id);
}

static int by_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct hs_entry *)a)->ino, y = ((const struct hs_entry *)b)->ino;
	return x < y ? -1 : x > y;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* -o fast's version inodes, p to end, into s (its entries sorted by
 * inode number). */
static int parse_versions(const uint8_t *p, const uint8_t *end, struct hs_state *s,
                          uint64_t first_ino)
{
	if (end - p < 8)
		return -EBADMSG;
	uint64_t vcount = get64(&p);
	if (vcount > (size_t)(end - p) / HS_VERSION_SIZE ||
	    (size_t)(end - p) != vcount * HS_VERSION_SIZE)
		return -EBADMSG;
	if (!(s->versions = calloc(vcount ? vcount : 1, sizeof(*s->versions))))
		return -ENOMEM;
	for (uint64_t i = 0; i < vcount; i++) {
		struct hs_version *v = &s->versions[i];
		v->ino = get64(&p);
		v->version = get64(&p);
		v->nlookup = get64(&p);
		v->secret_ino = get64(&p);
		struct hs_entry key = { .ino = v->secret_ino };
		if (v->ino < first_ino || v->ino >= s->next || !v->version ||
		    !bsearch(&key, s->entries, s->count, sizeof(*s->entries), by_ino))
			return -EBADMSG;
		s->vcount++;
	}
	/* no number twice, among secrets and versions */
	uint64_t *all = calloc(s->count + s->vcount + 1, sizeof(*all));
	if (!all)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < s->count; i++)
		all[n++] = s->entries[i].ino;
	for (size_t i = 0; i < s->vcount; i++)
		all[n++] = s->versions[i].ino;
	qsort(all, n, sizeof(*all), by_u64);
	int r = 0;
	for (size_t i = 1; i < n && r == 0; i++)
		if (all[i] == all[i - 1])
			r = -EBADMSG;
	free(all);
	return r;
}

/* The entries of table t (len bytes, checksummed) into s. */
static int parse_table(const uint8_t *t, size_t len, struct hs_state *s, uint64_t first_ino)
{
	const uint8_t *p = t, *end = t + len;
	s->next = get64(&p);
	uint64_t count = get64(&p);
	if (s->next < first_ino || s->next > HS_INO_MAX ||
	    count > (len - HS_TABLE_HEAD) / HS_ENTRY_MIN)
		return -EBADMSG;
	if (!(s->entries = calloc(count ? count : 1, sizeof(*s->entries))))
		return -ENOMEM;
	for (uint64_t i = 0; i < count; i++) {
		struct hs_entry *e = &s->entries[i];
		uint32_t idlen;
		if (end - p < HS_ENTRY_MIN)
			return -EBADMSG;
		e->ino = get64(&p);
		e->incarnation = get64(&p);
		e->nlookup = get64(&p);
		memcpy(&idlen, p, sizeof(idlen));
		p += sizeof(idlen);
		if ((size_t)(end - p) < idlen || memchr(p, '\0', idlen) || e->ino < first_ino ||
		    e->ino >= s->next || !e->incarnation)
			return -EBADMSG;
		if (!(e->id = strndup((const char *)p, idlen)))
			return -ENOMEM;
		s->count++;
		p += idlen;
		if (!secret_id_valid_existing(e->id))
			return -EBADMSG;
	}
	/* one number per ID and one ID per number, as a daemon hands out */
	qsort(s->entries, s->count, sizeof(*s->entries), by_ino);
	for (size_t i = 1; i < s->count; i++)
		if (s->entries[i].ino == s->entries[i - 1].ino)
			return -EBADMSG;
	int r = p == end ? 0 : parse_versions(p, end, s, first_ino);
	if (r < 0)
		return r;
	qsort(s->entries, s->count, sizeof(*s->entries), by_id);
	for (size_t i = 1; i < s->count; i++)
		if (by_id(&s->entries[i], &s->entries[i - 1]) == 0)
			return -EBADMSG;
	return 0;
}

int hs_read(int fd, struct hs_state *s, uint64_t first_ino)
{
	struct state_head h = { 0 };
	struct state_cur cur = { 0 };
	memset(s, 0, sizeof(*s));
	int r = all_at(fd, &h, sizeof(h), 0, false);
	if (r == 0 && (memcmp(h.magic, STATE_MAGIC, sizeof(h.magic)) != 0 ||
	               h.init_len > HS_INIT_MAX || h.init_len < sizeof(struct fuse_in_header)))
		r = -EBADMSG;
	if (r == 0)
		r = all_at(fd, s->init, h.init_len, sizeof(h), false);
	struct fuse_in_header in = { 0 };
	memcpy(&in, s->init, sizeof(in)); /* s->init has no alignment of its own */
	if (r == 0 && (in.opcode != FUSE_INIT || in.len != h.init_len))
		r = -EBADMSG;
	if (r == 0)
		r = all_at(fd, &cur, sizeof(cur), HS_CUR_OFFSET, false);
	if (r == 0 && (cur.region > 1 || cur.len < HS_TABLE_HEAD || cur.len > HS_REGION_MAX))
		r = -EBADMSG;
	uint8_t *t = r == 0 ? malloc(cur.len) : NULL;
	if (r == 0 && !t)
		r = -ENOMEM;
	if (r == 0)
		r = all_at(fd, t, cur.len, HS_REGION_OFFSET(cur.region), false);
	uint8_t sum[16];
	if (r == 0) {
		crypto_generichash(sum, sizeof(sum), t, cur.len, NULL, 0);
		if (sodium_memcmp(sum, cur.sum, sizeof(sum)) != 0)
			r = -EBADMSG;
	}
	if (r == 0)
		r = parse_table(t, cur.len, s, first_ino);
	free(t);
	if (r < 0) {
		hs_free(s);
		memset(s, 0, sizeof(*s));
		return r;
	}
	s->init_len = h.init_len;
	s->init_unique = in.unique;
	s->region = cur.region;
	return 0;
}

const struct hs_entry *hs_find(const struct hs_state *s, const char *id)
{
	struct hs_entry key = { .id = (char *)id };
	return s->count ? bsearch(&key, s->entries, s->count, sizeof(*s->entries), by_id) : NULL;
}
