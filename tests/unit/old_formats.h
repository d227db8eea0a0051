/* SPDX-License-Identifier: MIT */
/* What the embedded store's older formats wrote, for the tests that turn
 * a current store into one (tests/unit/test_embedded.c,
 * tests/fuzz/fuzz_store.c): written out here as those formats' code
 * wrote it, not taken from backend/embedded.c. */
#ifndef SECRETSFS_TEST_OLD_FORMATS_H
#define SECRETSFS_TEST_OLD_FORMATS_H

/* secrets as formats 1-4 stored it, made from a current store's: a rowid
 * table with format 3-4's exact SQL, its rows in no ID order; foreign
 * keys off, in one transaction. */
#define ROWID_SECRETS_SQL                                                                          \
	"PRAGMA foreign_keys = OFF; BEGIN;"                                                        \
	"CREATE TABLE f5 AS SELECT * FROM secrets; DROP TABLE secrets;"                            \
	"CREATE TABLE secrets (  id TEXT PRIMARY KEY NOT NULL,  scopes INTEGER NOT "               \
	"NULL,  version INTEGER NOT NULL,  size INTEGER NOT NULL,  ctime_ns INTEGER "              \
	"NOT NULL,  mtime_ns INTEGER NOT NULL,  incarnation INTEGER NOT NULL,  "                   \
	"revision INTEGER NOT NULL,  value_revision INTEGER NOT NULL,  nonce BLOB NOT "            \
	"NULL,  mac BLOB NOT NULL);"                                                               \
	"INSERT INTO secrets SELECT * FROM f5 ORDER BY id DESC; DROP TABLE f5; COMMIT"

#endif
