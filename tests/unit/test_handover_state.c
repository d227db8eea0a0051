/* SPDX-License-Identifier: MIT */
/* The restart state's parser (fs/handover_state.c): a state as a daemon
 * writes it is read exactly; torn, truncated, bit-flipped and hostile
 * ones are refused, never half read. */
#include <linux/fuse.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sodium.h>

#include "harness.h"
#include "handover_state.h"

#define FIRST 16

static uint8_t init[64];
static const uint32_t init_len = sizeof(init);

static void make_init(void)
{
	struct fuse_in_header in = { .len = sizeof(init), .opcode = FUSE_INIT, .unique = 42 };
	memset(init, 0x5a, sizeof(init));
	memcpy(init, &in, sizeof(in));
}

static int fresh(void)
{
	int fd = memfd_create("state-test", MFD_CLOEXEC);
	REQUIRE(fd >= 0);
	return fd;
}

/* A good state of three secrets into region. */
static void write_good(int fd, uint64_t region, uint64_t next)
{
	struct hs_table t;
	hs_table_begin(&t, next);
	hs_table_add(&t, 20, 7, 3, "DB_PASSWORD");
	hs_table_add(&t, 16, 1, 1, "API_KEY");
	hs_table_add(&t, 17, 2, 0, "team/svc-x_y");
	REQUIRE(hs_write(fd, init, init_len, &t, region, NULL) == 0);
	hs_table_free(&t);
}

/* A raw table (its count and checksum as written) made current. */
static int write_raw(int fd, const void *table, size_t len)
{
	struct hs_table t = { .main = { .p = malloc(len), .len = len, .cap = len } };
	REQUIRE(t.main.p);
	memcpy(t.main.p, table, len);
	memcpy(&t.count, t.main.p + 8, sizeof(t.count)); /* hs_write puts it back */
	int r = hs_write(fd, init, init_len, &t, 0, NULL);
	hs_table_free(&t);
	return r;
}

static int read_state(int fd)
{
	struct hs_state s;
	int r = hs_read(fd, &s, FIRST);
	if (r == 0)
		hs_free(&s);
	else
		CHECK(s.entries == NULL && s.count == 0);
	return r;
}

static void test_good(void)
{
	int fd = fresh();
	write_good(fd, 1, 1040);
	struct hs_state s;
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 3);
	CHECK_EQ(s.next, 1040);
	CHECK_EQ(s.region, 1);
	CHECK_EQ(s.init_len, init_len);
	CHECK_EQ(s.init_unique, 42);
	CHECK(memcmp(s.init, init, init_len) == 0);
	const struct hs_entry *e = hs_find(&s, "DB_PASSWORD");
	REQUIRE(e);
	CHECK_EQ(e->ino, 20);
	CHECK_EQ(e->incarnation, 7);
	CHECK_EQ(e->nlookup, 3);
	REQUIRE((e = hs_find(&s, "team/svc-x_y")));
	CHECK_EQ(e->ino, 17);
	CHECK_EQ(e->nlookup, 0);
	REQUIRE((e = hs_find(&s, "API_KEY")));
	CHECK_EQ(e->ino, 16);
	CHECK(hs_find(&s, "NOPE") == NULL);
	hs_free(&s);

	/* an empty table reads as one */
	struct hs_table t;
	hs_table_begin(&t, FIRST);
	REQUIRE(hs_write(fd, init, init_len, &t, 0, NULL) == 0);
	hs_table_free(&t);
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 0);
	CHECK(hs_find(&s, "API_KEY") == NULL);
	hs_free(&s);
	close(fd);
}

/* Killed while writing the other region: the current table still reads;
 * a pointer to a half-written table does not. */
static void test_torn(void)
{
	int fd = fresh();
	write_good(fd, 0, 1040);
	uint8_t junk[40];
	memset(junk, 0xff, sizeof(junk));
	REQUIRE(pwrite(fd, junk, sizeof(junk), HS_REGION_OFFSET(1)) == sizeof(junk));
	struct hs_state s;
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 3);
	CHECK_EQ(s.region, 0);
	hs_free(&s);
	/* the switch written, the table not all there */
	write_good(fd, 1, 1040);
	REQUIRE(pwrite(fd, junk, 8, HS_REGION_OFFSET(1) + 30) == 8);
	CHECK_EQ(read_state(fd), -EBADMSG);
	/* the new table punched away after the switch (a bug): zeros */
	write_good(fd, 0, 1040);
	hs_forget_region(fd, 0);
	CHECK_EQ(read_state(fd), -EBADMSG);
	close(fd);
}

static void test_truncated(void)
{
	int fd = fresh();
	CHECK_EQ(read_state(fd), -EIO); /* empty: nothing was written */
	write_good(fd, 1, 1040);
	off_t end = HS_REGION_OFFSET(1) + 16 + 3 * 28 + 30;
	off_t cuts[] = { 0, 10, 16 + 20, HS_CUR_OFFSET + 10, HS_REGION_OFFSET(1) + 5, end - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		int c = fresh();
		write_good(c, 1, 1040);
		REQUIRE(ftruncate(c, cuts[i]) == 0);
		int r = read_state(c);
		CHECK(r == -EIO || r == -EBADMSG);
		close(c);
	}
	REQUIRE(ftruncate(fd, end) == 0); /* exactly the table's end: still whole */
	CHECK_EQ(read_state(fd), 0);
	close(fd);
}

/* Every single bit flipped in the head, the INIT's header, the pointer
 * and the table: refused (the INIT's body is not checksummed). */
static void test_bitflips(void)
{
	int fd = fresh();
	write_good(fd, 1, 1040);
	const size_t table_len = 16 + 3 * 28 + 11 + 7 + 12;
	struct {
		off_t off;
		size_t len;
	} parts[] = { { 0, 12 },
		      { 16, 8 }, /* the INIT's length and opcode */
		      { HS_CUR_OFFSET, 32 },
		      { HS_REGION_OFFSET(1), table_len } };
	int refused = 0, flips = 0;
	for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++)
		for (size_t byte = 0; byte < parts[p].len; byte++)
			for (int bit = 0; bit < 8; bit++) {
				uint8_t b;
				off_t at = parts[p].off + (off_t)byte;
				REQUIRE(pread(fd, &b, 1, at) == 1);
				b ^= (uint8_t)(1u << bit);
				REQUIRE(pwrite(fd, &b, 1, at) == 1);
				int r = read_state(fd);
				flips++;
				refused += r == -EBADMSG || r == -EIO;
				if (r == 0)
					fprintf(stderr, "flip at %lld bit %d read\n", (long long)at,
					        bit);
				b ^= (uint8_t)(1u << bit);
				REQUIRE(pwrite(fd, &b, 1, at) == 1);
			}
	CHECK_EQ(refused, flips);
	CHECK_EQ(read_state(fd), 0); /* all flipped back */
	close(fd);
}

/* Checksummed, so only a writer could make them: refused all the same. */
static void test_hostile(void)
{
	int fd = fresh();
	struct hs_table t;
	struct {
		const char *why;
		uint64_t next, ino[2];
		const char *id[2];
		uint64_t incarnation;
	} cases[] = {
		{ "duplicate ID", 100, { 20, 21 }, { "A", "A" }, 1 },
		{ "duplicate inode number", 100, { 20, 20 }, { "A", "B" }, 1 },
		{ "invalid ID", 100, { 20, 21 }, { "A", "../etc" }, 1 },
		{ "empty ID", 100, { 20, 21 }, { "A", "" }, 1 },
		{ "number below the first", 100, { 20, 3 }, { "A", "B" }, 1 },
		{ "number at next", 100, { 20, 100 }, { "A", "B" }, 1 },
		{ "next above the maximum", HS_INO_MAX + 1, { 20, 21 }, { "A", "B" }, 1 },
		{ "next below the first", 2, { 20, 21 }, { "A", "B" }, 1 },
		{ "incarnation 0", 100, { 20, 21 }, { "A", "B" }, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hs_table_begin(&t, cases[i].next);
		for (int j = 0; j < 2; j++)
			hs_table_add(&t, cases[i].ino[j], cases[i].incarnation, 1, cases[i].id[j]);
		REQUIRE(hs_write(fd, init, init_len, &t, 0, NULL) == 0);
		hs_table_free(&t);
		int r = read_state(fd);
		if (r != -EBADMSG)
			fprintf(stderr, "hostile state read (%d): %s\n", r, cases[i].why);
		CHECK_EQ(r, -EBADMSG);
	}

	/* raw tables: counts and lengths that do not add up */
	uint8_t raw[16 + 28 + 8] = { 0 };
	uint64_t next = 100, count, ino = 20, inc = 1, nl = 1;
	uint32_t idlen;
	memcpy(raw, &next, 8);
	memcpy(raw + 16, &ino, 8);
	memcpy(raw + 24, &inc, 8);
	memcpy(raw + 32, &nl, 8);
	memcpy(raw + 44, "ABCDEFGH", 8);
	uint64_t counts[] = { UINT64_MAX, UINT64_MAX / 28 + 1, 2, 0 };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		count = counts[i];
		memcpy(raw + 8, &count, 8);
		idlen = 8;
		memcpy(raw + 40, &idlen, 4);
		CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0);
		CHECK_EQ(read_state(fd), -EBADMSG);
	}
	count = 1;
	memcpy(raw + 8, &count, 8);
	uint32_t idlens[] = { 9, UINT32_MAX, 0x80000000u, 7 /* a byte left over */ };
	for (size_t i = 0; i < sizeof(idlens) / sizeof(idlens[0]); i++) {
		memcpy(raw + 40, &idlens[i], 4);
		CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0);
		CHECK_EQ(read_state(fd), -EBADMSG);
	}
	raw[46] = '\0'; /* a NUL inside the ID */
	idlen = 8;
	memcpy(raw + 40, &idlen, 4);
	CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0);
	CHECK_EQ(read_state(fd), -EBADMSG);
	raw[46] = 'G'; /* and the same table whole: read */
	CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0);
	CHECK_EQ(read_state(fd), 0);

	/* the pointer: a region that is not one, a length out of range */
	struct {
		uint64_t region, len;
	} curs[] = { { 2, 52 },
		     { UINT64_MAX, 52 },
		     { 0, 15 },
		     { 0, HS_REGION_MAX + 1 },
		     { 0, UINT64_MAX } };
	for (size_t i = 0; i < sizeof(curs) / sizeof(curs[0]); i++) {
		REQUIRE(pwrite(fd, &curs[i], 16, HS_CUR_OFFSET) == 16);
		CHECK_EQ(read_state(fd), -EBADMSG);
	}
	/* the INIT: lengths out of range, not an INIT */
	CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0);
	uint32_t lens[] = { 0, sizeof(struct fuse_in_header) - 1, HS_INIT_MAX + 1, UINT32_MAX };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		REQUIRE(pwrite(fd, &lens[i], 4, 8) == 4);
		CHECK_EQ(read_state(fd), -EBADMSG);
	}
	REQUIRE(pwrite(fd, &init_len, 4, 8) == 4);
	CHECK_EQ(read_state(fd), 0);
	uint32_t op = FUSE_LOOKUP;
	REQUIRE(pwrite(fd, &op, 4, 16 + 4) == 4);
	CHECK_EQ(read_state(fd), -EBADMSG);
	close(fd);

	/* a table over the region's size is not written at all */
	hs_table_begin(&t, 100);
	char big[4096];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < (int)(HS_REGION_MAX / sizeof(big)) + 1 && !t.failed; i++)
		hs_table_add(&t, 20, 1, 1, big);
	CHECK(t.failed);
	CHECK_EQ(hs_write(fresh(), init, init_len, &t, 0, NULL), -ENOMEM);
	hs_table_free(&t);
}

/* -o fast's version inodes, after the secrets: read exactly; refused if
 * their secret is not in the table, their number is taken or out of
 * range, or the bytes do not add up. */
static void test_versions(void)
{
	int fd = fresh();
	struct hs_table t;
	hs_table_begin(&t, 1040);
	hs_table_add(&t, 20, 7, 3, "DB_PASSWORD");
	hs_table_add(&t, 16, 1, 1, "API_KEY");
	hs_table_add_version(&t, 30, 4, 2, 20);
	hs_table_add_version(&t, 31, 1, 5, 16);
	REQUIRE(hs_write(fd, init, init_len, &t, 0, NULL) == 0);
	hs_table_free(&t);
	struct hs_state s;
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 2);
	REQUIRE(s.vcount == 2);
	CHECK_EQ(s.versions[0].ino, 30);
	CHECK_EQ(s.versions[0].version, 4);
	CHECK_EQ(s.versions[0].nlookup, 2);
	CHECK_EQ(s.versions[0].secret_ino, 20);
	CHECK_EQ(s.versions[1].ino, 31);
	CHECK_EQ(s.versions[1].secret_ino, 16);
	CHECK(hs_find(&s, "API_KEY") && hs_find(&s, "API_KEY")->ino == 16);
	hs_free(&s);

	struct {
		const char *why;
		uint64_t ino, version, secret_ino;
	} bad[] = {
		{ "its secret not in the table", 30, 1, 21 }, { "a secret's number", 16, 1, 20 },
		{ "the other version's number", 31, 1, 20 },  { "a number at next", 1040, 1, 20 },
		{ "a number below the first", 3, 1, 20 },     { "version 0", 30, 0, 20 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hs_table_begin(&t, 1040);
		hs_table_add(&t, 20, 7, 3, "DB_PASSWORD");
		hs_table_add(&t, 16, 1, 1, "API_KEY");
		hs_table_add_version(&t, 31, 1, 1, 16);
		hs_table_add_version(&t, bad[i].ino, bad[i].version, 1, bad[i].secret_ino);
		REQUIRE(hs_write(fd, init, init_len, &t, 0, NULL) == 0);
		hs_table_free(&t);
		int r = read_state(fd);
		if (r != -EBADMSG)
			fprintf(stderr, "hostile version read (%d): %s\n", r, bad[i].why);
		CHECK_EQ(r, -EBADMSG);
	}

	/* raw: a count that overflows, one that is short, bytes left over */
	uint8_t raw[16 + 28 + 1 + 8 + 32 + 1] = { 0 };
	uint64_t next = 100, count = 1, ino = 20, inc = 1, one = 1, vino = 21;
	uint32_t idlen = 1;
	memcpy(raw, &next, 8);
	memcpy(raw + 8, &count, 8);
	memcpy(raw + 16, &ino, 8);
	memcpy(raw + 24, &inc, 8);
	memcpy(raw + 32, &one, 8);
	memcpy(raw + 40, &idlen, 4);
	raw[44] = 'A';
	memcpy(raw + 53, &vino, 8);
	memcpy(raw + 61, &one, 8);
	memcpy(raw + 69, &one, 8);
	memcpy(raw + 77, &ino, 8);
	uint64_t vcounts[] = { UINT64_MAX, UINT64_MAX / 32 + 1, 2, 0, 1 };
	for (size_t i = 0; i < sizeof(vcounts) / sizeof(vcounts[0]); i++) {
		memcpy(raw + 45, &vcounts[i], 8);
		CHECK_EQ(write_raw(fd, raw, sizeof(raw)), 0); /* one byte left over */
		CHECK_EQ(read_state(fd), -EBADMSG);
	}
	CHECK_EQ(write_raw(fd, raw, sizeof(raw) - 1), 0); /* vcount 1, whole */
	CHECK_EQ(read_state(fd), 0);
	CHECK_EQ(write_raw(fd, raw, 16 + 28 + 1 + 4), 0); /* a count cut short */
	CHECK_EQ(read_state(fd), -EBADMSG);
	close(fd);
}

/* A big store's table (1,000,000 secrets with 40-character IDs take
 * ~70 MB; here 400,000, ~27 MB: over the old 16 MiB cap) is written and
 * read back whole, in both regions. */
static void test_big(void)
{
	enum { N = 400000 };
	int fd = fresh();
	for (uint64_t region = 0; region < 2; region++) {
		struct hs_table t;
		hs_table_begin(&t, FIRST + N);
		char id[48];
		for (uint64_t i = 0; i < N; i++) {
			snprintf(id, sizeof(id), "OPENAI_API_KEY_SEARCH_SERVICE_%09llu",
			         (unsigned long long)i);
			hs_table_add(&t, FIRST + i, i + 1, i % 3, id);
		}
		CHECK(t.main.len > ((size_t)16 << 20));
		REQUIRE(hs_write(fd, init, init_len, &t, region, NULL) == 0);
		hs_table_free(&t);
		struct hs_state s;
		REQUIRE(hs_read(fd, &s, FIRST) == 0);
		CHECK_EQ(s.count, N);
		CHECK_EQ(s.region, region);
		const struct hs_entry *e = hs_find(&s, "OPENAI_API_KEY_SEARCH_SERVICE_000399999");
		REQUIRE(e);
		CHECK_EQ(e->ino, FIRST + N - 1);
		CHECK_EQ(e->incarnation, N);
		hs_free(&s);
	}
	close(fd);
}

/* A good state of three secrets into region, its journal in j. */
static void write_good_j(int fd, uint64_t region, uint64_t next, struct hs_journal *j)
{
	struct hs_table t;
	hs_table_begin(&t, next);
	hs_table_add(&t, 20, 7, 3, "DB_PASSWORD");
	hs_table_add(&t, 16, 1, 1, "API_KEY");
	hs_table_add(&t, 17, 2, 0, "team/svc-x_y");
	hs_table_add_version(&t, 30, 4, 2, 20);
	hs_table_add_version(&t, 31, 1, 5, 16);
	REQUIRE(hs_write(fd, init, init_len, &t, region, j) == 0);
	hs_table_free(&t);
}

/* The number of secrets read, and next (-errno if it does not read). */
static long long read_count(int fd, uint64_t *ret_next)
{
	struct hs_state s;
	int r = hs_read(fd, &s, FIRST);
	if (r < 0)
		return r;
	long long n = (long long)s.count;
	if (ret_next)
		*ret_next = s.next;
	hs_free(&s);
	return n;
}

/* Records appended after the table read back on top of it: a secret
 * born is added, one of an ID already there replaces it (and its
 * versions go), a new block raises next. */
static void test_journal(void)
{
	int fd = fresh();
	struct hs_journal j;
	write_good_j(fd, 1, 1040, &j);
	CHECK(j.ok && j.region == 1 && j.len == 0);
	REQUIRE(hs_journal_born(fd, &j, 1000, 1, 1, "NEW_ONE") == 0);
	REQUIRE(hs_journal_born(fd, &j, 1001, 9, 0, "DB_PASSWORD") == 0); /* re-created */
	REQUIRE(hs_journal_next(fd, &j, 2064) == 0);
	REQUIRE(hs_journal_born(fd, &j, 2000, 1, 2, "NEW_TWO") == 0); /* in the new block */
	REQUIRE(hs_journal_born(fd, &j, 2001, 2, 1, "NEW_ONE") == 0); /* again */
	struct hs_state s;
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 5);
	CHECK_EQ(s.journaled, 3); /* NEW_ONE twice */
	CHECK_EQ(s.next, 2064);
	CHECK_EQ(s.region, 1);
	const struct hs_entry *e;
	REQUIRE((e = hs_find(&s, "DB_PASSWORD")));
	CHECK_EQ(e->ino, 1001);
	CHECK_EQ(e->incarnation, 9);
	CHECK_EQ(e->nlookup, 0);
	REQUIRE((e = hs_find(&s, "NEW_ONE")));
	CHECK_EQ(e->ino, 2001);
	CHECK_EQ(e->incarnation, 2);
	REQUIRE((e = hs_find(&s, "NEW_TWO")));
	CHECK_EQ(e->ino, 2000);
	CHECK_EQ(e->nlookup, 2);
	REQUIRE((e = hs_find(&s, "API_KEY")));
	CHECK_EQ(e->ino, 16);
	/* DB_PASSWORD's old version went with its incarnation */
	REQUIRE(s.vcount == 1);
	CHECK_EQ(s.versions[0].ino, 31);
	CHECK_EQ(s.versions[0].secret_ino, 16);
	hs_free(&s);

	/* the whole table written again (the other region) holds none of
	 * them, and its journal starts empty */
	write_good_j(fd, 0, 1040, &j);
	uint64_t next = 0;
	CHECK_EQ(read_count(fd, &next), 3);
	CHECK_EQ(next, 1040);
	/* and back into region 1, whose old records are still there (the
	 * punch is the caller's): the new table's journal does not read them,
	 * even where the table is the same bytes as before */
	write_good_j(fd, 1, 1040, &j);
	CHECK_EQ(read_count(fd, &next), 3);
	REQUIRE(hs_journal_born(fd, &j, 1000, 1, 1, "NEW_ONE") == 0);
	CHECK_EQ(read_count(fd, NULL), 4);

	/* a state from the daemon before the journal ("SFSHOV1"): its table
	 * alone; another magic: refused */
	REQUIRE(pwrite(fd, "SFSHOV1", 8, 0) == 8);
	CHECK_EQ(read_count(fd, NULL), 3);
	REQUIRE(pwrite(fd, "SFSHOV3", 8, 0) == 8);
	CHECK_EQ(read_count(fd, NULL), -EBADMSG);
	REQUIRE(pwrite(fd, "SFSHOV2", 8, 0) == 8);
	CHECK_EQ(read_count(fd, NULL), 4);
	close(fd);
}

/* A record torn by a kill, or garbled: it and what follows are not read;
 * the state reads as it was before that record was appended. */
static void test_journal_torn(void)
{
	int fd = fresh();
	struct hs_journal j;
	write_good_j(fd, 0, 1040, &j);
	REQUIRE(hs_journal_born(fd, &j, 1000, 1, 1, "NEW_ONE") == 0);
	REQUIRE(hs_journal_born(fd, &j, 1001, 1, 1, "NEW_TWO") == 0);
	size_t before = j.len;
	REQUIRE(hs_journal_born(fd, &j, 1002, 1, 1, "NEW_THREE") == 0);
	size_t reclen = j.len - before;
	CHECK_EQ(reclen, 1 + 28 + 9 + 16);
	CHECK_EQ(read_count(fd, NULL), 6);
	off_t last = HS_REGION_OFFSET(0) + (off_t)(j.table_len + before);

	/* every bit of the last record and of the end byte after it flipped
	 * in turn: the last one is not read, the others are; where a kind
	 * byte goes (the record's first, the end byte), a byte of no kind
	 * refuses the state */
	int flips = 0, right = 0;
	for (size_t byte = 0; byte <= reclen; byte++)
		for (int bit = 0; bit < 8; bit++) {
			uint8_t b;
			off_t at = last + (off_t)byte;
			long long want = byte == 0 || byte == reclen ? -EBADMSG : 5;
			REQUIRE(pread(fd, &b, 1, at) == 1);
			b ^= (uint8_t)(1u << bit);
			REQUIRE(pwrite(fd, &b, 1, at) == 1);
			long long n = read_count(fd, NULL);
			flips++;
			right += n == want;
			if (n != want)
				fprintf(stderr, "journal flip at +%zu bit %d: %lld secrets\n", byte,
				        bit, n);
			b ^= (uint8_t)(1u << bit);
			REQUIRE(pwrite(fd, &b, 1, at) == 1);
		}
	CHECK_EQ(right, flips);
	CHECK_EQ(read_count(fd, NULL), 6);

	/* torn: only a part of the last record written (its end cut off, or
	 * the file ends inside it) */
	for (size_t keep = 1; keep < reclen; keep += 7) {
		int c = fresh();
		struct hs_journal k;
		write_good_j(c, 0, 1040, &k);
		REQUIRE(hs_journal_born(c, &k, 1000, 1, 1, "NEW_ONE") == 0);
		size_t at = k.table_len + k.len;
		REQUIRE(hs_journal_born(c, &k, 1001, 1, 1, "NEW_TWO") == 0);
		uint8_t zeros[64] = { 0 };
		off_t cut = HS_REGION_OFFSET(0) + (off_t)(at + keep);
		REQUIRE(pwrite(c, zeros, sizeof(zeros), cut) == sizeof(zeros));
		CHECK_EQ(read_count(c, NULL), 4);
		REQUIRE(ftruncate(c, cut) == 0);
		CHECK_EQ(read_count(c, NULL), 4);
		close(c);
	}

	/* a record moved: another's place in the chain does not check */
	int c = fresh();
	struct hs_journal k;
	write_good_j(c, 0, 1040, &k);
	REQUIRE(hs_journal_born(c, &k, 1000, 1, 1, "NEW_ONE") == 0);
	REQUIRE(hs_journal_born(c, &k, 1001, 1, 1, "NEW_TWO") == 0);
	uint8_t second[1 + 28 + 7 + 16];
	REQUIRE(pread(c, second, sizeof(second),
	              HS_REGION_OFFSET(0) + (off_t)k.table_len + (off_t)sizeof(second)) ==
	        sizeof(second));
	REQUIRE(pwrite(c, second, sizeof(second), HS_REGION_OFFSET(0) + (off_t)k.table_len) ==
	        sizeof(second));
	CHECK_EQ(read_count(c, NULL), 3);
	close(c);
	close(fd);
}

/* Records that check but that no daemon writes: the state is refused. */
static void test_journal_hostile(void)
{
	struct {
		const char *why;
		uint64_t ino, incarnation;
		const char *id;
		uint64_t next; /* a block record instead, if set */
	} bad[] = {
		{ "a number at next", 1040, 1, "NEW_ONE", 0 },
		{ "a number below the first", 3, 1, "NEW_ONE", 0 },
		{ "a table secret's number", 16, 1, "NEW_ONE", 0 },
		{ "a table version's number", 31, 1, "NEW_ONE", 0 },
		{ "a record before's number", 1001, 1, "NEW_TWO", 0 },
		{ "incarnation 0", 1003, 0, "NEW_ONE", 0 },
		{ "an invalid ID", 1003, 1, "../etc", 0 },
		{ "an empty ID", 1003, 1, "", 0 },
		{ "a replaced table secret's number", 20, 1, "NEW_TWO", 0 },
		{ "a replaced table version's number", 30, 1, "NEW_TWO", 0 },
		{ "a replaced record's number", 1000, 1, "NEW_TWO", 0 },
		{ "next going back", 0, 0, NULL, 1039 },
		{ "next above the maximum", 0, 0, NULL, HS_INO_MAX + 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = fresh();
		struct hs_journal j;
		write_good_j(fd, 0, 1040, &j);
		REQUIRE(hs_journal_born(fd, &j, 1000, 1, 1, "OK_ONE") == 0);
		CHECK_EQ(read_count(fd, NULL), 4);
		/* DB_PASSWORD (20, its version 30) and OK_ONE (1000) re-created:
		 * their old numbers are still the kernel's */
		REQUIRE(hs_journal_born(fd, &j, 1001, 8, 0, "DB_PASSWORD") == 0);
		REQUIRE(hs_journal_born(fd, &j, 1002, 2, 0, "OK_ONE") == 0);
		CHECK_EQ(read_count(fd, NULL), 4);
		if (bad[i].next)
			REQUIRE(hs_journal_next(fd, &j, bad[i].next) == 0);
		else
			REQUIRE(hs_journal_born(fd, &j, bad[i].ino, bad[i].incarnation, 1,
			                        bad[i].id) == 0);
		long long r = read_count(fd, NULL);
		if (r != -EBADMSG)
			fprintf(stderr, "hostile record read (%lld): %s\n", r, bad[i].why);
		CHECK_EQ(r, -EBADMSG);
		close(fd);
	}
	/* an ID too long for a record goes into the table instead */
	int fd = fresh();
	struct hs_journal j;
	write_good_j(fd, 0, 1040, &j);
	char big[4098];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(hs_journal_born(fd, &j, 1000, 1, 1, big), -ENOSPC);
	CHECK_EQ(j.len, 0);
	CHECK_EQ(hs_journal_born(fd, &j, 1000, 1, 1, "NEW_ONE"), 0);
	CHECK_EQ(read_count(fd, NULL), 4);
	close(fd);
	/* a record after a table that failed: not written */
	struct hs_journal none = { 0 };
	CHECK_EQ(hs_journal_born(fresh(), &none, 1000, 1, 1, "NEW_ONE"), -ENOSPC);
}

/* The journal is full when it is as long as its table, or HS_JOURNAL_MIN
 * for a small one: then the whole table is written (which empties it),
 * and every record appended until then reads. */
static void test_journal_cap(void)
{
	int fd = fresh();
	struct hs_journal j;
	write_good_j(fd, 0, HS_INO_MAX, &j);
	char id[48];
	uint64_t n = 0;
	int r;
	for (;;) {
		snprintf(id, sizeof(id), "OPENAI_API_KEY_SEARCH_SERVICE_%09llu",
		         (unsigned long long)n);
		size_t len = j.len;
		if ((r = hs_journal_born(fd, &j, 100 + n, 1, 0, id)) < 0)
			break;
		CHECK_EQ(j.len - len, 1 + 28 + 39 + 16);
		n++;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK_EQ(n, HS_JOURNAL_MIN / (1 + 28 + 39 + 16));
	CHECK(j.len <= HS_JOURNAL_MIN);
	struct hs_state s;
	REQUIRE(hs_read(fd, &s, FIRST) == 0);
	CHECK_EQ(s.count, 3 + n);
	CHECK_EQ(s.journaled, n);
	CHECK(hs_find(&s, id) == NULL); /* the one refused */
	snprintf(id, sizeof(id), "OPENAI_API_KEY_SEARCH_SERVICE_%09llu", (unsigned long long)n - 1);
	REQUIRE(hs_find(&s, id));
	CHECK_EQ(hs_find(&s, id)->ino, 100 + n - 1);

	/* compaction: the table of all of them, then the journal empty and
	 * as long as that table may be */
	struct hs_table t;
	hs_table_begin(&t, HS_INO_MAX);
	for (size_t i = 0; i < s.count; i++)
		hs_table_add(&t, s.entries[i].ino, s.entries[i].incarnation, s.entries[i].nlookup,
		             s.entries[i].id);
	for (uint64_t i = n; i < 2 * n; i++) { /* over HS_JOURNAL_MIN */
		snprintf(id, sizeof(id), "OPENAI_API_KEY_SEARCH_SERVICE_%09llu",
		         (unsigned long long)i);
		hs_table_add(&t, 100 + i, 1, 0, id);
	}
	hs_free(&s);
	REQUIRE(hs_write(fd, init, init_len, &t, 1, &j) == 0);
	hs_table_free(&t);
	CHECK(j.table_len > HS_JOURNAL_MIN);
	CHECK_EQ(j.len, 0);
	uint64_t more = 0;
	while (hs_journal_next(fd, &j, HS_INO_MAX) == 0)
		more++;
	CHECK_EQ(more, j.table_len / (1 + 8 + 16));
	CHECK_EQ(read_count(fd, NULL), 3 + 2 * n);
	close(fd);
}

/* A record of kind and a u64 body, chained right after j's last, as a
 * writer would append it. */
static void append_forged(int fd, struct hs_journal *j, uint8_t kind, uint64_t v)
{
	uint8_t rec[1 + 8 + 16 + 1] = { kind };
	memcpy(rec + 1, &v, sizeof(v));
	crypto_generichash(rec + 9, 16, rec, 9, j->chain, sizeof(j->chain));
	off_t at = HS_REGION_OFFSET(j->region) + (off_t)(j->table_len + j->len);
	REQUIRE(pwrite(fd, rec, sizeof(rec), at) == sizeof(rec));
	j->len += sizeof(rec) - 1;
	memcpy(j->chain, rec + 9, sizeof(j->chain));
}

/* A byte of no kind where a record starts is not the journal's end: a
 * record of a kind unknown, chained right, then a block: refused (read
 * as the end, the block after it would be lost and next too low). */
static void test_journal_unknown_kind(void)
{
	int fd = fresh();
	struct hs_journal j;
	uint64_t next = 0;
	write_good_j(fd, 0, 1040, &j);
	append_forged(fd, &j, 'X', 5);
	REQUIRE(hs_journal_next(fd, &j, 3000) == 0);
	CHECK_EQ(read_count(fd, NULL), -EBADMSG);
	/* the same with a kind the writer has: read, next raised */
	write_good_j(fd, 0, 1040, &j);
	append_forged(fd, &j, 'N', 2064);
	REQUIRE(hs_journal_next(fd, &j, 3000) == 0);
	CHECK_EQ(read_count(fd, &next), 3);
	CHECK_EQ(next, 3000);
	close(fd);
}

/* Records beyond what a writer appends (the journal as long as its
 * table, at least HS_JOURNAL_MIN) refuse the state, however well they
 * chain. */
static void test_journal_bound(void)
{
	int fd = fresh();
	struct hs_journal j;
	write_good_j(fd, 0, 1040, &j);
	size_t n = 0;
	while (hs_journal_next(fd, &j, 1040) == 0)
		n++;
	CHECK_EQ(n, HS_JOURNAL_MIN / (1 + 8 + 16));
	CHECK_EQ(read_count(fd, NULL), 3);
	/* one more, chained right, as a writer without the bound would */
	struct hs_journal more = j;
	more.table_len += more.len;
	more.len = 0;
	REQUIRE(hs_journal_next(fd, &more, 1040) == 0);
	CHECK_EQ(read_count(fd, NULL), -EBADMSG);
	close(fd);
}

/* The whole table written again into the other region (as handover.c
 * does for a block under -o fast, or when its record fails). */
struct whole {
	int fd;
	uint64_t region, next;
	struct hs_journal *j;
};

static int write_whole(void *arg)
{
	struct whole *w = arg;
	struct hs_table t;
	hs_table_begin(&t, w->next);
	hs_table_add(&t, 20, 7, 3, "DB_PASSWORD");
	hs_table_add(&t, 16, 1, 1, "API_KEY");
	hs_table_add(&t, 17, 2, 0, "team/svc-x_y");
	int r = hs_write(w->fd, init, init_len, &t, w->region ^ 1, w->j);
	hs_table_free(&t);
	if (r == 0)
		w->region ^= 1;
	return r;
}

/* Writes of the state past limit bytes fail (EFBIG); RLIM_INFINITY: none. */
static void file_limit(rlim_t limit)
{
	struct rlimit rl;
	REQUIRE(getrlimit(RLIMIT_FSIZE, &rl) == 0);
	rl.rlim_cur = limit;
	REQUIRE(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

/* A new block that cannot be written, neither as a record nor whole:
 * the state written before (its next below the block) must not read,
 * or a successor gives the block's numbers, which the kernel may hold,
 * to other secrets.  Invalidated until a whole write succeeds. */
static void test_block_unwritable(void)
{
	REQUIRE(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	struct rlimit old;
	REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
	int fd = fresh(), err = 0;
	struct hs_journal j;
	write_good_j(fd, 0, 1040, &j);
	REQUIRE(hs_journal_born(fd, &j, 1000, 1, 1, "NEW_ONE") == 0);
	struct whole w = { .fd = fd, .region = 0, .next = 2064, .j = &j };
	uint64_t next = 0;

	/* -o fast: the record written, the whole table not: next kept */
	file_limit((rlim_t)HS_REGION_OFFSET(1));
	CHECK_EQ(hs_write_block(fd, &j, 2064, true, write_whole, &w, &err), HS_BLOCK_RECORDED);
	CHECK_EQ(err, -EFBIG);
	CHECK_EQ(w.region, 0);
	CHECK_EQ(read_count(fd, &next), 4);
	CHECK_EQ(next, 2064);

	/* nothing written past the journal's end: neither */
	file_limit((rlim_t)(HS_REGION_OFFSET(0) + (off_t)(j.table_len + j.len)));
	w.next = 3088;
	for (int fast = 0; fast <= 1; fast++) {
		CHECK_EQ(hs_write_block(fd, &j, 3088, fast, write_whole, &w, &err),
		         HS_BLOCK_INVALIDATED);
		CHECK_EQ(err, -EFBIG);
		CHECK_EQ(read_count(fd, NULL), -EBADMSG);
		/* and stays so: a record after it is not appended */
		CHECK_EQ(hs_journal_born(fd, &j, 2000, 1, 1, "NEW_TWO"), -ENOSPC);
		CHECK_EQ(read_count(fd, NULL), -EBADMSG);
	}

	/* the next whole write repairs it; a block then is a record alone
	 * (without -o fast), or a record and the whole table */
	file_limit(old.rlim_cur);
	REQUIRE(write_whole(&w) == 0);
	CHECK_EQ(read_count(fd, &next), 3);
	CHECK_EQ(next, 3088);
	CHECK_EQ(hs_write_block(fd, &j, 4112, false, write_whole, &w, &err), HS_BLOCK_WRITTEN);
	CHECK_EQ(w.region, 1);
	CHECK_EQ(read_count(fd, &next), 3);
	CHECK_EQ(next, 4112);
	w.next = 5136;
	CHECK_EQ(hs_write_block(fd, &j, 5136, true, write_whole, &w, &err), HS_BLOCK_WRITTEN);
	CHECK_EQ(w.region, 0);
	CHECK_EQ(j.len, 0);
	CHECK_EQ(read_count(fd, &next), 3);
	CHECK_EQ(next, 5136);
	REQUIRE(signal(SIGXFSZ, SIG_DFL) != SIG_ERR);
	close(fd);
}

int main(void)
{
	REQUIRE(sodium_init() >= 0);
	make_init();
	test_good();
	test_torn();
	test_truncated();
	test_bitflips();
	test_hostile();
	test_versions();
	test_big();
	test_journal();
	test_journal_torn();
	test_journal_hostile();
	test_journal_cap();
	test_journal_unknown_kind();
	test_journal_bound();
	test_block_unwritable();
	return harness_result("test_handover_state");
}
