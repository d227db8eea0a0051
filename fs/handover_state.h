/* SPDX-License-Identifier: MIT */
/* The state a restarted daemon reads (handover.c): its layout in the
 * memfd, written and read here, with no FUSE session, so that
 * tests/unit/test_handover_state.c can feed it any bytes.
 *
 *   0        head: magic "SFSHOV2", the INIT's length (u32), padding
 *   16       the FUSE INIT request the kernel sent (at most HS_INIT_MAX)
 *   4064     cur: the current table's region (0 or 1), its length, and
 *            its checksum (BLAKE2b-128): one 32-byte write switches tables
 *   16 MiB   region 0, 16 GiB region 1 (sparse), each at most 256 MiB
 *            (1,000,000 secrets with 40-character IDs take ~70 MB):
 *            u64 next inode number, u64 count, then count times
 *            u64 ino, u64 incarnation, u64 lookup count, u32 ID length,
 *            the ID (no NUL); then, if any (-o fast), u64 count and
 *            count times u64 ino, u64 version, u64 lookup count, u64 the
 *            inode number of its secret: a secret's version inodes;
 *            then the journal (below), ended by a 0 byte
 *
 * The journal: records appended after the current table, so that a
 * create costs one small write whatever the table's size (the table is
 * rewritten, emptying it, when it is as long as the table, at least
 * HS_JOURNAL_MIN, or the region is full).  Each record is a kind byte,
 * its body, and a BLAKE2b-128 of both keyed with the previous record's
 * (the first's: the table's checksum in cur), then a 0 byte that a next
 * record overwrites.  A reader applies the records in order up to the
 * first that does not check (an append torn by a kill) or the end byte;
 * a byte of no kind where a record starts, or records longer than a
 * writer lets them be, refuse the state:
 *   'B' a secret born: an entry as in the table; it replaces an entry
 *       of the same ID (a newer incarnation), and that entry's versions
 *   'N' a new block of inode numbers reserved: u64 next, not below the
 *       one before
 * A state "SFSHOV1" (the daemon before the journal) reads as its table
 * alone; a daemon from before the journal refuses this one (its magic),
 * and mounts anew.
 *
 * All numbers in the host's order: the file never leaves the machine.
 * The checksum covers the table, not the INIT (written once per
 * connection, with the same bytes each time; its header is checked). */
#ifndef SECRETSFS_HANDOVER_STATE_H
#define SECRETSFS_HANDOVER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HS_INIT_MAX 4000 /* a FUSE_INIT request is ~100 bytes */
#define HS_CUR_OFFSET 4064
#define HS_REGION_OFFSET(r) ((off_t)1 << ((r) ? 34 : 24))
#define HS_REGION_MAX ((size_t)1 << 28) /* region 0 ends below region 1 */
#define HS_TABLE_HEAD 16
#define HS_ENTRY_MIN 28 /* an entry with an empty ID */
/* Inode numbers index an array (fs->nodes): a table whose next number
 * is above this is refused rather than grown into. */
#define HS_INO_MAX ((uint64_t)1 << 28)

/* One secret the kernel knows. */
struct hs_entry {
	char *id;
	uint64_t ino, incarnation, nlookup;
	size_t seq; /* its place in the state (table, then journal) */
};

/* -o fast: one version inode the kernel knows. */
struct hs_version {
	uint64_t ino, version, nlookup, secret_ino;
};
#define HS_VERSION_SIZE 32

/* A state read. */
struct hs_state {
	uint8_t init[HS_INIT_MAX];
	uint32_t init_len;
	uint64_t init_unique;     /* the INIT's, whose reply is dropped */
	uint64_t region;          /* the current table's */
	uint64_t next;            /* the first inode number not handed out */
	struct hs_entry *entries; /* sorted by ID */
	size_t count;
	struct hs_version *versions; /* their secret_ino is an entry's */
	size_t vcount;
	size_t journaled; /* of the entries, those the journal had */
};

/* Where the next journal record goes (hs_write sets it). */
struct hs_journal {
	uint64_t region;
	size_t table_len, len; /* the table's bytes, the records' after it */
	uint8_t chain[16];     /* the last record's checksum, or the table's */
	bool ok;               /* false: write the table first (hs_write) */
};
#define HS_JOURNAL_MIN ((size_t)1 << 20)

/* A table being built (hs_table_add), then written (hs_write). */
struct hs_buf {
	uint8_t *p;
	size_t len, cap;
};
struct hs_table {
	struct hs_buf main, ver;
	uint64_t count, vcount;
	bool failed; /* out of memory or over HS_REGION_MAX */
};

void hs_table_begin(struct hs_table *t, uint64_t next);
void hs_table_add(struct hs_table *t, uint64_t ino, uint64_t incarnation, uint64_t nlookup,
                  const char *id);
void hs_table_add_version(struct hs_table *t, uint64_t ino, uint64_t version, uint64_t nlookup,
                          uint64_t secret_ino);
void hs_table_free(struct hs_table *t);

/* Writes head, INIT and the table t to region, with an empty journal,
 * then makes it current; j (may be NULL) is where records go then.  0 or
 * -errno (-ENOMEM: t failed), j set on success only.  The other region is
 * left alone: the caller punches it (hs_forget_region) once this
 * returned 0. */
int hs_write(int fd, const uint8_t *init, uint32_t init_len, struct hs_table *t, uint64_t region,
             struct hs_journal *j);

/* Appends a record to the journal j of the current table: a secret born
 * (hs_journal_born), a new block of inode numbers (hs_journal_next).
 * Written when this returns 0.  -ENOSPC: the journal is full (or j not
 * set): write the whole table instead (hs_write); other -errno: j is not
 * used again until then. */
int hs_journal_born(int fd, struct hs_journal *j, uint64_t ino, uint64_t incarnation,
                    uint64_t nlookup, const char *id);
int hs_journal_next(int fd, struct hs_journal *j, uint64_t next);
void hs_forget_region(int fd, uint64_t region);

/* Makes the state one hs_read refuses (-EBADMSG), so that a successor
 * mounts anew, until hs_write writes a table again (j is not used until
 * then).  0 or -errno. */
int hs_invalidate(int fd, struct hs_journal *j);

/* A new block of inode numbers, next, into the state before a number of
 * it is handed out: a successor starts there, or a number the kernel
 * holds could go to something else.  A record (hs_journal_next), then
 * the whole table (write_whole(arg), which calls hs_write) if whole is
 * set (-o fast: the version inodes are in the table only) or the record
 * could not be written.  If neither is written, the older state (its
 * next too low) is invalidated.  *err: the failure, if any. */
enum hs_block {
	HS_BLOCK_WRITTEN,     /* all of it */
	HS_BLOCK_RECORDED,    /* the record, not the whole table */
	HS_BLOCK_INVALIDATED, /* neither: a successor mounts anew */
	HS_BLOCK_STALE,       /* not even invalidated: the older state reads */
};
enum hs_block hs_write_block(int fd, struct hs_journal *j, uint64_t next, bool whole,
                             int (*write_whole)(void *arg), void *arg, int *err);

/* Reads the state in fd, its journal applied, into s (which it owns
 * then: hs_free).  0, or -EBADMSG (not whole, or not one a daemon writes:
 * every ID valid, no ID or inode number twice, numbers in [first_ino,
 * next), a version's secret in the table), -EIO (shorter than it says),
 * -ENOMEM; on error s holds nothing.  A journal record that does not
 * check ends the journal; one that checks and breaks a rule (the numbers
 * of the secrets it replaced count) refuses the state. */
int hs_read(int fd, struct hs_state *s, uint64_t first_ino);
void hs_free(struct hs_state *s);

/* The entry for id, or NULL. */
const struct hs_entry *hs_find(const struct hs_state *s, const char *id);

#endif
