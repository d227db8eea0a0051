/* SPDX-License-Identifier: MIT */
/*
 * The embedded store: one directory on local disk.
 *
 *   DIR/key         the store key (STORE_KEY_BYTES, mode 0400)
 *   DIR/store.db    SQLite database (WAL): metadata in plaintext columns,
 *                   every version of every value sealed with
 *                   XChaCha20-Poly1305 under the key
 *   DIR/store.lock  flock'ed by the process that has the store open
 *
 * The operations are embedded_store_ops (store.h); store_config.source is
 * the directory and store_config.key the contents of DIR/key (or of a key
 * kept elsewhere: the store only checks that it is the right one).
 *
 * Notes on the ops beyond store.h:
 *  - open: -ENOTDIR if source is not a directory, -ENOENT if it holds no
 *    store.db ("not a store"), -EBUSY if another opener holds
 *    DIR/store.lock, -EKEYREJECTED for the wrong key; keep_versions 0
 *    means EMBEDDED_KEEP_VERSIONS_DEFAULT;
 *  - every op but create takes IDs by the existing rule
 *    (secret_id_valid_existing), else -EINVAL;
 *  - list calls fn in ID order, in batches read in one transaction each,
 *    with no lock of the store's held: fn may call the store;
 *  - get_value: -EIO (one line on stderr) if a ciphertext fails
 *    authentication: a flipped byte, or one copied from another secret,
 *    version or store;
 *  - exchange_values(s, a, a) is -EINVAL;
 *  - the deadline of every call is SQLite's busy timeout (5 s) for the
 *    database lock: -EBUSY when it passes, nothing changed;
 *  - a store in format 1 (before revisions) or 2 (before metadata MACs)
 *    is upgraded in place to format 3 at a read-write open; a read-only
 *    open of one fails (-EIO, logged);
 *  - open fails (-EIO, logged, naming it) if store.db's schema is not
 *    exactly what the store creates (a trigger, a view, another index);
 *  - a row whose metadata does not verify (seal.h) is left out of list
 *    (logged) and is -EIO (logged) to stat, get_value and every change;
 *  - STORE_CAP_UNDELETE: a deleted secret stays in its rows, marked and
 *    sealed again, until purged (embedded.c, DELETED_SHIFT); one is kept
 *    per ID, and a create of the ID purges it.
 */
#ifndef SECRETSFS_EMBEDDED_H
#define SECRETSFS_EMBEDDED_H

#include <stddef.h>

#include "store.h"

#define EMBEDDED_KEY_FILE "key"
#define EMBEDDED_DB_FILE "store.db"
#define EMBEDDED_LOCK_FILE "store.lock"
#define EMBEDDED_KEEP_VERSIONS_DEFAULT 5

/* Creates a new, empty store in dir (created 0700 if missing): a fresh key
 * in dir/key, the database with a random store identity and a key-check
 * record.  -EEXIST if dir already holds a store (or a key), -EBUSY if
 * another process holds the store's lock. */
int embedded_store_init(const char *dir);
/* The same, with a one-line reason in why (empty if none) for a refusal:
 * DIR a symlink (-ELOOP), owned by another uid or writable by group or
 * others (-EPERM), DIR/key already there (-EEXIST) or replaced while it
 * was written (-ESTALE).  The key is created through a directory fd with
 * O_EXCL | O_NOFOLLOW and never read back by name. */
int embedded_store_init_why(const char *dir, char *why, size_t why_size);
/* The same with the new key at key_file instead of DIR/key (NULL: DIR/key);
 * key_file must not exist yet.  A refused init leaves nothing behind: no
 * key, no database, no lock file, and no DIR if it made DIR. */
int embedded_store_init_key(const char *dir, const char *key_file, char *why, size_t why_size);

/* *ret_path = "dir/key" (malloc'ed): where embedded_store_init() put the
 * key, for key_load(). */
int embedded_key_path(const char *dir, char **ret_path);

/* secretsfs backup DIR FILE: a consistent copy of DIR's database, taken
 * while it may be mounted (SQLite's online backup), into the new file
 * FILE (0600; -EEXIST if it exists).  The copy is sealed as the store is
 * (the same key opens it) and holds everything: no -wal or -shm beside
 * it.  why gets a line for a failure. */
int embedded_store_backup(const char *dir, const char *file, char *why, size_t why_size);
/* secretsfs restore FILE DIR: FILE (a backup) becomes DIR's store.db;
 * DIR holds no store yet.  The result is then opened with key (DIR/key)
 * as a mount would open it (key check, schema, digest); if that fails
 * nothing is left behind.  why gets a line for a failure. */
int embedded_store_restore(const char *file, const char *dir, const uint8_t *key, char *why,
                           size_t why_size);

/* secretsfs rekey: every version, MAC, the key-check record and the
 * digest of the store in dir (not open elsewhere: -EBUSY) sealed again
 * under new_key in one transaction; a kill before it commits leaves the
 * store under old_key.  1 if old_key no longer opens it but new_key does
 * (an earlier rekey committed: nothing to do).  progress (may be NULL)
 * is told every 100 secrets.  why gets a line for a failure. */
int embedded_store_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key,
                         void (*progress)(size_t done, size_t total), char *why, size_t why_size);

/* How many SQLite transactions the store has begun, for the unit tests
 * (a get_value the value cache answers begins none: embedded.c). */
uint64_t embedded_transactions(struct store *s);
/* Group commit (groupcommit.h), for the unit tests: how many batches of
 * changes were committed, and how many changes they held. */
void embedded_group_commits(struct store *s, uint64_t *ret_commits, uint64_t *ret_changes);

/* Does DIR hold a store database?  (For error messages; open() decides.) */
bool embedded_store_present(const char *dir);

#endif
