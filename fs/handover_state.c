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

#define STATE_MAGIC "SFSHOV2"
#define STATE_MAGIC_V1 "SFSHOV1" /* before the journal: read as its table alone */
#define JOURNAL_BORN 'B'
#define JOURNAL_NEXT 'N'
#define JOURNAL_SUM 16
/* A record is at most this long (an ID is at most SECRET_ID_MAX; a longer
 * one goes into the table instead). */
#define JOURNAL_ID_MAX 4096
#define JOURNAL_RECORD_MAX (1 + HS_ENTRY_MIN + JOURNAL_ID_MAX + JOURNAL_SUM)

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

int hs_write(int fd, const uint8_t *init, uint32_t init_len, struct hs_table *t, uint64_t region,
             struct hs_journal *j)
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
	/* the journal, empty: whatever the region held before is not read */
	uint8_t end = 0;
	if (r == 0 && t->main.len < HS_REGION_MAX)
		r = all_at(fd, &end, 1, HS_REGION_OFFSET(region) + (off_t)t->main.len, true);
	/* The switch: one write of 32 bytes inside one page. */
	if (r == 0)
		r = all_at(fd, &cur, sizeof(cur), HS_CUR_OFFSET, true);
	if (r == 0 && j) {
		*j = (struct hs_journal){ .region = region, .table_len = t->main.len, .ok = true };
		memcpy(j->chain, cur.sum, sizeof(j->chain));
	}
	return r;
}

/* The journal after a table of table_len bytes holds records of at most
 * this many bytes (then the table is written again). */
static size_t journal_cap(size_t table_len)
{
	return table_len > HS_JOURNAL_MIN ? table_len : HS_JOURNAL_MIN;
}

/* Record r (its kind and body; its checksum and the end byte are added
 * here) after the last one in j. */
static int journal_put(int fd, struct hs_journal *j, struct hs_table *r)
{
	uint8_t sum[JOURNAL_SUM], end = 0;
	size_t cap = journal_cap(j->table_len);
	if (!r->failed && r->main.len)
		crypto_generichash(sum, sizeof(sum), r->main.p, r->main.len, j->chain,
		                   sizeof(j->chain));
	tput(r, &r->main, sum, sizeof(sum));
	tput(r, &r->main, &end, 1);
	if (r->failed)
		return -ENOMEM;
	size_t len = r->main.len - 1; /* the end byte is the next record's */
	if (!j->ok || j->len + len > cap || j->table_len + j->len + len + 1 > HS_REGION_MAX)
		return -ENOSPC;
	int e = all_at(fd, r->main.p, r->main.len,
	               HS_REGION_OFFSET(j->region) + (off_t)(j->table_len + j->len), true);
	if (e < 0) {
		j->ok = false; /* a part may be there: the next record would not check */
		return e;
	}
	j->len += len;
	memcpy(j->chain, sum, sizeof(sum));
	return 0;
}

int hs_journal_born(int fd, struct hs_journal *j, uint64_t ino, uint64_t incarnation,
                    uint64_t nlookup, const char *id)
{
	struct hs_table r = { 0 };
	uint8_t kind = JOURNAL_BORN;
	if (strlen(id) > JOURNAL_ID_MAX)
		return -ENOSPC;
	tput(&r, &r.main, &kind, 1);
	hs_table_add(&r, ino, incarnation, nlookup, id); /* as in the table */
	int e = journal_put(fd, j, &r);
	hs_table_free(&r);
	return e;
}

int hs_journal_next(int fd, struct hs_journal *j, uint64_t next)
{
	struct hs_table r = { 0 };
	uint8_t kind = JOURNAL_NEXT;
	tput(&r, &r.main, &kind, 1);
	tput64(&r, &r.main, next);
	int e = journal_put(fd, j, &r);
	hs_table_free(&r);
	return e;
}

int hs_invalidate(int fd, struct hs_journal *j)
{
	struct state_cur none = { 0 }; /* a table shorter than its head */
	j->ok = false;
	/* in the page the head is in: it needs no room of its own */
	return all_at(fd, &none, sizeof(none), HS_CUR_OFFSET, true);
}

enum hs_block hs_write_block(int fd, struct hs_journal *j, uint64_t next, bool whole,
                             int (*write_whole)(void *arg), void *arg, int *err)
{
	int rec = hs_journal_next(fd, j, next);
	int r = rec < 0 || whole ? write_whole(arg) : 0;
	*err = r < 0 ? r : rec;
	if (r == 0)
		return HS_BLOCK_WRITTEN;
	if (rec == 0)
		return HS_BLOCK_RECORDED;
	return hs_invalidate(fd, j) == 0 ? HS_BLOCK_INVALIDATED : HS_BLOCK_STALE;
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
	return 0;
}

/* No inode number twice, among secrets and versions. */
static int numbers_unique(const struct hs_state *s)
{
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

/* One secret's entry at *p (avail bytes there), as a table and a 'B'
 * record hold it, into e, and *p past it: -EBADMSG if no daemon writes it
 * (its number outside [first_ino, next), no incarnation, not a valid ID),
 * -ENOMEM.  e->id is set (the caller frees it) once it was copied, even
 * when it is refused. */
static int parse_entry(const uint8_t **p, size_t avail, uint64_t first_ino, uint64_t next,
                       struct hs_entry *e)
{
	uint32_t idlen;
	if (avail < HS_ENTRY_MIN)
		return -EBADMSG;
	e->ino = get64(p);
	e->incarnation = get64(p);
	e->nlookup = get64(p);
	memcpy(&idlen, *p, sizeof(idlen));
	*p += sizeof(idlen);
	if (avail - HS_ENTRY_MIN < idlen || memchr(*p, '\0', idlen) || e->ino < first_ino ||
	    e->ino >= next || !e->incarnation)
		return -EBADMSG;
	if (!(e->id = strndup((const char *)*p, idlen)))
		return -ENOMEM;
	*p += idlen;
	return secret_id_valid_existing(e->id) ? 0 : -EBADMSG;
}

/* The journal's secrets born, as read (checked, not yet applied: its
 * blocks are, as read). */
struct journal {
	struct hs_entry *e;
	size_t n, cap;
};

static void journal_free(struct journal *jl)
{
	for (size_t i = 0; i < jl->n; i++)
		free(jl->e[i].id);
	free(jl->e);
	memset(jl, 0, sizeof(*jl));
}

/* The length of the record at p (a 'B' or 'N'; avail bytes there),
 * checksum included; 0: not whole. */
static size_t record_len(const uint8_t *p, size_t avail)
{
	uint32_t idlen;
	if (p[0] == JOURNAL_NEXT)
		return avail >= 1 + 8 + JOURNAL_SUM ? 1 + 8 + JOURNAL_SUM : 0;
	if (avail < 1 + HS_ENTRY_MIN)
		return 0;
	memcpy(&idlen, p + 1 + 24, sizeof(idlen));
	if (idlen > JOURNAL_ID_MAX)
		return 0;
	size_t len = 1 + HS_ENTRY_MIN + (size_t)idlen + JOURNAL_SUM;
	return len <= avail ? len : 0;
}

/* Record p (len bytes, checked) into s (a block: next raised) or onto
 * jl (a secret born, its number below the next of its time): -EBADMSG if
 * no daemon writes it. */
static int journal_add(struct journal *jl, const uint8_t *p, size_t len, struct hs_state *s,
                       uint64_t first_ino)
{
	if (*p++ == JOURNAL_NEXT) {
		uint64_t next = get64(&p);
		if (next < s->next || next > HS_INO_MAX)
			return -EBADMSG;
		s->next = next;
		return 0;
	}
	if (jl->n == jl->cap) {
		size_t cap = jl->cap ? jl->cap * 2 : 64;
		struct hs_entry *v = realloc(jl->e, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		jl->e = v;
		jl->cap = cap;
	}
	struct hs_entry *e = &jl->e[jl->n];
	memset(e, 0, sizeof(*e));
	int r = parse_entry(&p, len - 1 - JOURNAL_SUM, first_ino, s->next, e);
	if (e->id)
		jl->n++;
	return r;
}

/* The journal after s's table (at off, at most room bytes), each record
 * checked in a chain from key: its blocks into s, its secrets onto jl.
 * It ends at a 0 byte (where the next record goes) or at the first
 * record that does not check (torn by a kill); a byte of no kind, or
 * records longer than a writer lets them be (cap), refuse the state. */
static int read_journal(int fd, off_t off, size_t room, size_t cap, const uint8_t *key,
                        struct hs_state *s, struct journal *jl, uint64_t first_ino)
{
	enum { BUF = 1 << 16 };
	_Static_assert(BUF >= 2 * JOURNAL_RECORD_MAX, "a record fits the buffer");
	uint8_t chain[JOURNAL_SUM], sum[JOURNAL_SUM];
	uint8_t *buf = malloc(BUF);
	size_t have = 0, pos = 0, total = 0;
	bool eof = false;
	int r = 0;
	if (!buf)
		return -ENOMEM;
	memcpy(chain, key, sizeof(chain));
	for (;;) {
		while (!eof && have - pos < JOURNAL_RECORD_MAX) {
			memmove(buf, buf + pos, have - pos);
			have -= pos;
			pos = 0;
			size_t want = BUF - have < room ? BUF - have : room;
			ssize_t n = want ? pread(fd, buf + have, want, off) : 0;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = -errno;
				break;
			}
			eof = n == 0;
			have += (size_t)n;
			off += n;
			room -= (size_t)n;
		}
		if (r < 0 || have == pos || buf[pos] == 0)
			break; /* the end */
		if (buf[pos] != JOURNAL_BORN && buf[pos] != JOURNAL_NEXT) {
			r = -EBADMSG; /* records after it would be lost (a block: next too low) */
			break;
		}
		size_t len = record_len(buf + pos, have - pos);
		if (!len)
			break; /* torn */
		crypto_generichash(sum, sizeof(sum), buf + pos, len - JOURNAL_SUM, chain,
		                   sizeof(chain));
		if (sodium_memcmp(sum, buf + pos + len - JOURNAL_SUM, sizeof(sum)) != 0)
			break; /* the end: torn, or another table's */
		if ((total += len) > cap) {
			r = -EBADMSG;
			break;
		}
		memcpy(chain, sum, sizeof(chain));
		if ((r = journal_add(jl, buf + pos, len, s, first_ino)) < 0)
			break;
		pos += len;
	}
	free(buf);
	return r;
}

static int by_id_seq(const void *a, const void *b)
{
	const struct hs_entry *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The journal's secrets jl on top of s's table (its entries sorted by
 * ID, no ID twice): a secret born replaces the entry of its ID, and that
 * entry's versions go.  Every state goes through here, journal or not:
 * the one check that no inode number is there twice. */
static int apply_journal(struct hs_state *s, const struct journal *jl)
{
	if (!jl->n)
		return numbers_unique(s);
	struct hs_entry *v = realloc(s->entries, (s->count + jl->n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->entries = v;
	for (size_t i = 0; i < jl->n; i++) {
		struct hs_entry *e = &s->entries[s->count];
		*e = jl->e[i];
		e->seq = s->count;
		if (!(e->id = strdup(e->id)))
			return -ENOMEM;
		s->count++;
	}
	/* no number twice in the whole state, what is replaced included: a
	 * daemon never gives a number to a second ID */
	int r = numbers_unique(s);
	if (r < 0)
		return r;
	/* the last of each ID stays; each other one (at most one per record)
	 * leaves its number and its versions */
	qsort(s->entries, s->count, sizeof(*s->entries), by_id_seq);
	uint64_t *gone = calloc(jl->n, sizeof(*gone));
	if (!gone)
		return -ENOMEM;
	size_t w = 0, ngone = 0, table = s->count - jl->n;
	for (size_t i = 0; i < s->count; i++) {
		if (i + 1 < s->count && strcmp(s->entries[i].id, s->entries[i + 1].id) == 0) {
			gone[ngone++] = s->entries[i].ino;
			free(s->entries[i].id);
			continue;
		}
		s->journaled += s->entries[i].seq >= table;
		s->entries[w++] = s->entries[i];
	}
	s->count = w;
	qsort(gone, ngone, sizeof(*gone), by_u64);
	w = 0;
	for (size_t i = 0; i < s->vcount; i++)
		if (!bsearch(&s->versions[i].secret_ino, gone, ngone, sizeof(*gone), by_u64))
			s->versions[w++] = s->versions[i];
	s->vcount = w;
	free(gone);
	return 0;
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
		int r = parse_entry(&p, (size_t)(end - p), first_ino, s->next, e);
		e->seq = i;
		if (e->id)
			s->count++;
		if (r < 0)
			return r;
	}
	/* by number, for the versions' look-ups (a number twice is refused
	 * with the journal: apply_journal) */
	qsort(s->entries, s->count, sizeof(*s->entries), by_ino);
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
	struct journal jl = { 0 };
	memset(s, 0, sizeof(*s));
	int r = all_at(fd, &h, sizeof(h), 0, false);
	bool v1 = memcmp(h.magic, STATE_MAGIC_V1, sizeof(h.magic)) == 0;
	if (r == 0 && ((!v1 && memcmp(h.magic, STATE_MAGIC, sizeof(h.magic)) != 0) ||
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
	/* the journal: at most as long as a writer lets it be (journal_put),
	 * and one record more, to see it is not */
	size_t cap = journal_cap(cur.len);
	size_t room = HS_REGION_MAX - cur.len;
	if (room > cap + JOURNAL_RECORD_MAX + 1)
		room = cap + JOURNAL_RECORD_MAX + 1;
	if (r == 0 && !v1)
		r = read_journal(fd, HS_REGION_OFFSET(cur.region) + (off_t)cur.len, room, cap,
		                 cur.sum, s, &jl, first_ino);
	if (r == 0)
		r = apply_journal(s, &jl);
	journal_free(&jl);
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
