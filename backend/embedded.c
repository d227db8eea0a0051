/* SPDX-License-Identifier: MIT */
/*
 * The embedded store: SQLite in WAL mode on local disk, values sealed with
 * XChaCha20-Poly1305 (crypto.c), metadata in plaintext columns so that
 * list and stat never need the key.
 *
 * Sealing is seal.c's (shared by every store): every ciphertext is bound
 * by its associated data to the store identity, the secret's life (ID,
 * incarnation, per-incarnation nonce) and the version, and every secret
 * row with its labels carries a MAC under a key derived from the store
 * key.  Every read that serves metadata or a value verifies that MAC
 * first, and every change verifies the row it starts from (a tampered
 * row is never re-authenticated by a later change).
 *
 * The store digest (seal.h, format 4) sums a keyed term of every secret
 * and version row as stored; each write transaction updates it for the
 * rows it adds, changes or removes and stores it, with its MAC over the
 * revision counter, in meta 'digest' before COMMIT (tx_end).  Every open
 * recomputes it over all rows: one secret's rows replayed from a backup,
 * or removed, refuse the store (-o reseal_digest accepts them).
 *
 * The database is not trusted to run SQL: it is opened with
 * SQLITE_DBCONFIG_DEFENSIVE, without trusted schema, triggers or views,
 * and its schema must be exactly the one init_db() creates.
 *
 * Revisions (store.h): meta.revision counts every change; each
 * secret row keeps its incarnation (the revision that created it), the
 * revision of its last change and the revision that wrote its current
 * value; each version row the revision that wrote it.
 *
 * Deleted secrets are kept for undo (keep_deleted_ns) in their own rows,
 * marked and sealed again (see DELETED_SHIFT), until purged.
 *
 * Deleted ciphertext: secure_delete zeroes freed pages in store.db, and a
 * transaction that deleted a secret's rows runs a TRUNCATE checkpoint before it
 * returns, so no value of a deleted secret stays behind in store.db-wal
 * either.  A version pruned by keep_versions is zeroed in store.db at
 * its pages' next checkpoint and may stay in the -wal file until those
 * frames are overwritten: a checkpoint per rotation halved rotations per
 * second, and the keep_versions versions before it are in the store
 * anyway (as ciphertext, like everything here).
 *
 * One connection, one mutex: every statement runs with s->mutex held.
 * A read transaction runs from BEGIN to COMMIT under it; changes that
 * come together share one write transaction and its COMMIT (group
 * commit, groupcommit.h: each from its own savepoint, the mutex let go
 * between them, no read served while the batch is open), so
 * transactions are never interleaved.  get_value decrypts after the
 * mutex is released; exchange_values and rename decrypt inside their
 * transaction (they re-seal what they read for its new place).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "crypto.h"
#include "embedded.h"
#include "groupcommit.h"
#include "keyfile.h"
#include "log.h"
#include "seal.h"
#include "store.h"

#define STORE_ID_BYTES SEAL_STORE_ID_BYTES
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
/* 1: no revisions; 2: no metadata MACs, values sealed under the store key
 * itself; 3: no store digest; 4: secrets stored in rowid order, found by ID
 * through an index (all upgraded at a read-write open) */
#define FORMAT_VERSION 5
#define LIST_BATCH 512
#define BUSY_TIMEOUT_MS 5000

/* formats 1 and 2: read by the upgrade only */
static const char old_value_ad_domain[] = "secretsfs embedded value v1";
static const char old_keycheck_ad_domain[] = "secretsfs key check";
/* formats 3 and 4: read by the upgrade only */
static const char keycheck3_ad_domain[] = "secretsfs key check v3";
static const char keycheck4_ad_domain[] = "secretsfs key check v4";
/* format 5 */
static const char keycheck_ad_domain[] = "secretsfs key check v5";
static const char keycheck_plaintext[] = "secretsfs key check: the key is right";

#define STMT_CACHE_SIZE 48
#define ROW_MEMO_SIZE 64
/* the value cache (value_cached): buckets, and the largest ciphertext
 * kept (an API key is well under it; 256 full buckets: 2 MiB) */
#define VALUE_CACHE_SIZE 256
#define VALUE_CACHE_CT_MAX 8192

struct value_entry;

struct store {
	pthread_mutex_t mutex;
	sqlite3 *db;                      /* protected by mutex */
	uint8_t *key;                     /* sodium_malloc'ed, read-only */
	struct seal_keys *keys;           /* derived from key; after open */
	uint8_t store_id[STORE_ID_BYTES]; /* immutable after open */
	unsigned keep_versions;           /* immutable after open */
	bool read_only;                   /* immutable after open */
	int lock_fd;                      /* flock'ed DIR/store.lock */
	bool reseal_digest;               /* immutable after open */
	int64_t keep_deleted_ns;          /* immutable after open: 0, purge at delete */
	bool dropped_values;              /* this transaction deleted a
	                                     secret: checkpoint after it */
	/* a second connection, opened for one job (digest_committed_locked) */
	bool second;
	/* The store digest of the write transaction under way (seal.h):
	 * loaded from the verified head by next_revision_locked(), updated
	 * by every row the transaction adds, changes or removes, stored
	 * with a new head MAC by tx_end() before COMMIT.  Protected by
	 * mutex. */
	struct seal_digest tx_digest;
	uint64_t tx_revision;
	bool tx_head;   /* tx_digest is loaded: store it at commit */
	bool upgrading; /* the upgrade, which computes D afresh at its end */
	bool tx_broken; /* a row changed outside a head's transaction (a bug) */
	/* a transaction is open (tx_begin to tx_end); SQLite rolled it back by
	 * itself: every statement refused until tx_end (sql_prepare) */
	bool in_tx, tx_lost;
	/* Group commit (groupcommit.h): the changes that come together are
	 * made in one write transaction, each from its own savepoint, and
	 * share its COMMIT and fsync.  tx_op_write: the operation under way
	 * is a change (tx_lock(s, true)); tx_op_savepoint: it joined a batch
	 * other changes are in, from savepoint "op", and tx_saved is the
	 * transaction's state before it (restored if it fails).  Protected
	 * by mutex. */
	struct group_commit batch;
	bool tx_op_write, tx_op_savepoint;
	struct tx_saved {
		struct seal_digest digest;
		uint64_t revision;
		bool head, dropped_values;
	} tx_saved;
	/* Statements compiled once per connection (compiling one costs more
	 * than a whole get_value otherwise).  Protected by mutex. */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[STMT_CACHE_SIZE];
	/* Rows whose MAC verified, one per bucket (by ID), so that reading a
	 * secret again costs no MAC while its row is the same byte for byte
	 * (row_memo_hit).  Protected by mutex. */
	struct row_memo {
		struct secret_meta meta; /* meta.id NULL: empty */
		uint8_t nonce[SEAL_NONCE_BYTES];
		uint8_t mac[SEAL_MAC_BYTES];
	} memo[ROW_MEMO_SIZE];
	/* The current value of recently read secrets, sealed, with their
	 * verified rows (value_cached).  An entry counts while its gen is
	 * value_gen, which every write transaction bumps (tx_begin, mutex
	 * held; read without it, atomically).  The entries: value_lock. */
	pthread_rwlock_t value_lock;
	uint64_t value_gen;
	struct value_entry *values; /* VALUE_CACHE_SIZE of them */
	uint64_t transactions;      /* begun (tx_begin), for the tests; mutex */
	/* store.db-shm's first page, mapped read-only (wal_map): its
	 * WAL-index header changes with every commit, by any process.  NULL
	 * if not mapped (an immutable store has none).  Immutable after open. */
	const uint32_t *wal_hdr;
	size_t wal_map_len;
	/* The -shm file's descriptor, kept open until SQLite has closed the
	 * database: closing any descriptor of a file drops every POSIX lock
	 * the process holds on it (fcntl(2)), SQLite's own on -shm included,
	 * after which another process (secretsfs backup) takes itself for
	 * the only user and resets the WAL index under us. */
	int wal_fd;
};

/* The tables, as the current format makes them (schema_sql) and as
 * formats 3 and 4 made them (schema4_sql: a store in either is compared
 * with it, exactly, before its upgrade reads a row).  Format 5 stores
 * secrets in ID order (WITHOUT ROWID: the primary key is the table), as
 * labels are: a listing, which goes by ID, reads both front to back
 * instead of looking every secret up through an ID index (a third of a
 * 1,000,000-secret mount in format 4).  versions keeps its rowid: its
 * ciphertexts make its rows long. */
/* clang-format off */
#define META_TABLE_SQL \
	"CREATE TABLE meta (" \
	"  key TEXT PRIMARY KEY NOT NULL," \
	"  value BLOB NOT NULL" \
	");"
#define SECRETS_COLUMNS_SQL \
	"CREATE TABLE secrets (" \
	"  id TEXT PRIMARY KEY NOT NULL," \
	"  scopes INTEGER NOT NULL," \
	"  version INTEGER NOT NULL," \
	"  size INTEGER NOT NULL," \
	"  ctime_ns INTEGER NOT NULL," \
	"  mtime_ns INTEGER NOT NULL," \
	"  incarnation INTEGER NOT NULL," \
	"  revision INTEGER NOT NULL," \
	"  value_revision INTEGER NOT NULL," \
	"  nonce BLOB NOT NULL," \
	"  mac BLOB NOT NULL" \
	")"
#define SECRETS_TABLE_SQL SECRETS_COLUMNS_SQL " WITHOUT ROWID;"
#define LABELS_VERSIONS_TABLES_SQL \
	"CREATE TABLE labels (" \
	"  id TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE," \
	"  key TEXT NOT NULL," \
	"  value TEXT NOT NULL," \
	"  PRIMARY KEY (id, key)" \
	") WITHOUT ROWID;" \
	"CREATE TABLE versions (" \
	"  id TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE," \
	"  version INTEGER NOT NULL," \
	"  size INTEGER NOT NULL," \
	"  mtime_ns INTEGER NOT NULL," \
	"  ct BLOB NOT NULL," \
	"  revision INTEGER NOT NULL," \
	"  PRIMARY KEY (id, version)" \
	");"
/* clang-format on */
static const char schema_sql[] = META_TABLE_SQL SECRETS_TABLE_SQL LABELS_VERSIONS_TABLES_SQL;
static const char schema4_sql[] = META_TABLE_SQL SECRETS_COLUMNS_SQL ";" LABELS_VERSIONS_TABLES_SQL;

/* Format 1 -> 2: revisions.  Incarnations, value revisions and the store
 * counter are made up once, in an order that keeps them unique. */
static const char upgrade_1_sql[] =
    "ALTER TABLE secrets ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN value_revision INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE versions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;"
    "UPDATE secrets SET incarnation = rowid;"
    "UPDATE versions SET revision = rowid + (SELECT coalesce(max(rowid), 0) FROM secrets);"
    "UPDATE secrets SET value_revision = coalesce((SELECT v.revision FROM versions v "
    "  WHERE v.id = secrets.id AND v.version = secrets.version), incarnation),"
    "  revision = coalesce((SELECT v.revision FROM versions v "
    "  WHERE v.id = secrets.id AND v.version = secrets.version), incarnation);"
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', "
    "  (SELECT coalesce(max(r), 0) FROM (SELECT max(revision) AS r FROM secrets "
    "   UNION ALL SELECT max(revision) FROM versions)));"
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('format', x'02');";

/* --- small helpers --- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + 1 + b + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

bool embedded_store_present(const char *dir)
{
	char *p = path_join(dir, EMBEDDED_DB_FILE);
	bool present = p && access(p, F_OK) == 0;
	free(p);
	return present;
}

int embedded_key_path(const char *dir, char **ret_path)
{
	char *p;

	if (!dir || !ret_path)
		return -EINVAL;
	p = path_join(dir, EMBEDDED_KEY_FILE);
	if (!p)
		return -ENOMEM;
	*ret_path = p;
	return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Formats 1 and 2 (the upgrade only): under the store key itself,
 * domain || store_id || u32le(len(id)) || id || u64le(version). */
static int old_value_ad(const struct store *s, const char *id, uint64_t version, uint8_t **ret_ad,
                        size_t *ret_len)
{
	size_t dl = sizeof(old_value_ad_domain) - 1, il = strlen(id);
	size_t n = dl + STORE_ID_BYTES + 4 + il + 8;
	uint8_t *ad, *p;

	ad = malloc(n);
	if (!ad)
		return -ENOMEM;
	p = ad;
	memcpy(p, old_value_ad_domain, dl);
	p += dl;
	memcpy(p, s->store_id, STORE_ID_BYTES);
	p += STORE_ID_BYTES;
	put_le32(p, (uint32_t)il);
	p += 4;
	memcpy(p, id, il);
	p += il;
	put_le64(p, version);
	*ret_ad = ad;
	*ret_len = n;
	return 0;
}

/* The key-check record's domain in a format. */
static const char *keycheck_domain(int format)
{
	return format <= 2 ? old_keycheck_ad_domain
	     : format == 3 ? keycheck3_ad_domain
	     : format == 4 ? keycheck4_ad_domain
	                   : keycheck_ad_domain;
}

/* The key-check record's associated data: domain || store_id.  Formats 3,
 * 4 and 5 each have their own domain, so a store holds nothing that opens
 * as an older format (whose rows, or digest, the upgrade would take on
 * trust). */
#define KEYCHECK_AD_MAX (sizeof(keycheck_ad_domain) - 1 + STORE_ID_BYTES)
_Static_assert(sizeof(keycheck3_ad_domain) <= sizeof(keycheck_ad_domain) &&
                   sizeof(keycheck4_ad_domain) <= sizeof(keycheck_ad_domain),
               "key-check domains");
static size_t keycheck_ad(const uint8_t store_id[STORE_ID_BYTES], int format,
                          uint8_t ad[KEYCHECK_AD_MAX])
{
	const char *d = keycheck_domain(format);
	size_t dl = strlen(d);
	memcpy(ad, d, dl);
	memcpy(ad + dl, store_id, STORE_ID_BYTES);
	return dl + STORE_ID_BYTES;
}

/* One life of a secret, as a change or a read found it. */
struct life {
	uint64_t incarnation;
	uint8_t nonce[SEAL_NONCE_BYTES];
};

/* Seals value as version `version` (written at revision rev, mtime) of
 * the life l of id. */
static int seal_version(const struct store *s, const char *id, const struct life *l,
                        uint64_t version, uint64_t rev, int64_t mtime, const uint8_t *value,
                        size_t len, uint8_t **ret_ct, size_t *ret_ctlen)
{
	struct seal_place p = { .id = id,
		                .incarnation = l->incarnation,
		                .nonce = l->nonce,
		                .version = version,
		                .revision = rev,
		                .mtime_ns = mtime };
	return seal_value(s->keys, &p, value, len, ret_ct, ret_ctlen);
}

/* SQLite result code -> -errno. */
static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_TOOBIG:
		return -EFBIG;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_IOERR:
	default:
		return -EIO;
	}
}

/* Maps rc and, for -EIO (which says little), logs SQLite's own message.
 * Called with s->mutex held. */
static int sql_fail(struct store *s, int rc)
{
	/* Called for a result that should not have come (a row where none
	 * was due, say): whatever it is, it is a failure. */
	int r = sql_errno(rc) ? sql_errno(rc) : -EIO;

	if (r == -EIO)
		log_error("embedded store: database error: %s",
		          s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	return r;
}

/* A compiled statement for sql, from the cache or compiled now (and
 * cached while there is room).  Give it back with sql_done(). */
static int sql_prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	int free_slot = -1;
	if (s->in_tx && sqlite3_get_autocommit(s->db)) {
		/* SQLite rolled the transaction under way back by itself (an
		 * I/O error, a full disk: even a SELECT may): whatever comes
		 * next would run and commit on its own, outside it, half a
		 * change (and a head that sums nothing).  Refused until
		 * tx_end. */
		if (!s->tx_lost)
			log_error("embedded store: the transaction was rolled back by SQLite (%s); "
			          "the change fails",
			          sqlite3_errmsg(s->db));
		s->tx_lost = true;
		return -EIO;
	}
	for (int i = 0; i < STMT_CACHE_SIZE; i++) {
		if (!s->stmts[i].sql) {
			if (free_slot < 0)
				free_slot = i;
		} else if (s->stmts[i].sql == sql || strcmp(s->stmts[i].sql, sql) == 0) {
			*ret = s->stmts[i].st;
			return 0;
		}
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(s->db, sql, -1, free_slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0,
	                            &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(s, rc);
	if (free_slot >= 0) {
		s->stmts[free_slot].sql = sql;
		s->stmts[free_slot].st = st;
	}
	*ret = st;
	return 0;
}

/* Gives a statement back: a cached one is reset for its next use (its
 * bindings cleared: they may point at caller memory), another finalized. */
static void sql_done(struct store *s, sqlite3_stmt *st)
{
	if (!st)
		return;
	for (int i = 0; i < STMT_CACHE_SIZE; i++) {
		if (s->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	}
	sqlite3_finalize(st);
}

static void sql_cache_clear(struct store *s)
{
	for (int i = 0; i < STMT_CACHE_SIZE; i++) {
		sqlite3_finalize(s->stmts[i].st);
		s->stmts[i].sql = NULL;
		s->stmts[i].st = NULL;
	}
}

/* Runs a script of several statements (set-up only: not cached). */
static int sql_exec_script(struct store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(s, rc);
}

/* Runs one statement through the cache. */
static int sql_exec(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	int r = sql_prepare(s, sql, &st);
	if (r == 0) {
		int rc = sqlite3_step(st);
		r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sql_fail(s, rc);
		sql_done(s, st);
	}
	return r;
}

/* Steps a statement that returns no row (INSERT, UPDATE, DELETE). */
static int sql_step_done(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? 0 : sql_fail(s, rc);
}

static int tx_begin(struct store *s, bool write)
{
	/* whatever it changes, no value cached before it is served after it */
	if (write)
		__atomic_add_fetch(&s->value_gen, 1, __ATOMIC_RELEASE);
	s->transactions++;
	int r = sql_exec(s, write ? "BEGIN IMMEDIATE" : "BEGIN");
	s->in_tx = r == 0;
	return r;
}

static int tx_end(struct store *s, int r);

/* The store's mutex, once no batch of changes is open: a read sees only
 * what is committed (groupcommit.h). */
static void store_lock_idle(struct store *s)
{
	pthread_mutex_lock(&s->mutex);
	gc_wait_idle(&s->batch);
}

/* Commits the batch's transaction (gc_leave's commit). */
static int batch_commit(void *store)
{
	return tx_end(store, 0);
}

/* The change under way failed (r < 0): it alone is undone.  One that
 * joined other changes goes back to its savepoint; the first of a batch
 * rolls the transaction back (nothing else is in it).  If SQLite rolled
 * the whole transaction back itself (SQLITE_FULL, an I/O error may),
 * the batch is lost and its members fail with r. */
static void op_undo(struct store *s, int r)
{
	if (s->tx_op_savepoint && !sqlite3_get_autocommit(s->db) &&
	    sql_exec(s, "ROLLBACK TO op") == 0 && sql_exec(s, "RELEASE op") == 0) {
		s->tx_digest = s->tx_saved.digest;
		s->tx_revision = s->tx_saved.revision;
		s->tx_head = s->tx_saved.head;
		s->dropped_values = s->tx_saved.dropped_values;
		s->tx_broken = false; /* it was not before the change */
		return;
	}
	tx_end(s, r); /* rolls back */
	/* the others in the batch lost their changes to the store, not to
	 * anything of theirs: not this change's own refusal (ESTALE, EEXIST) */
	gc_abort(&s->batch, r == -ENOSPC || r == -ENOMEM ? r : -EIO);
}

/* Takes the store's mutex and begins a transaction; on failure holds
 * nothing.  Every operation runs between tx_lock and tx_unlock.  A change
 * (write) is made in the open batch's transaction if there is one, from
 * a savepoint, and else begins it. */
static int tx_lock(struct store *s, bool write)
{
	struct gc_member m;
	size_t others;
	int r;

	if (!write) {
		store_lock_idle(s);
		r = tx_begin(s, false);
		if (r < 0)
			pthread_mutex_unlock(&s->mutex);
		return r;
	}
	gc_arrive(&s->batch);
	pthread_mutex_lock(&s->mutex);
	s->tx_op_savepoint = false;
	others = gc_join(&s->batch);
	if (others == 0) {
		r = tx_begin(s, true);
		if (r == 0)
			gc_opened(&s->batch);
	} else {
		s->tx_saved = (struct tx_saved){ .digest = s->tx_digest,
			                         .revision = s->tx_revision,
			                         .head = s->tx_head,
			                         .dropped_values = s->dropped_values };
		__atomic_add_fetch(&s->value_gen, 1, __ATOMIC_RELEASE); /* as tx_begin */
		r = sql_exec(s, "SAVEPOINT op");
		if (r < 0)
			op_undo(s, r); /* (no savepoint: the batch goes) */
	}
	if (r < 0) {
		r = gc_leave(&s->batch, &m, r, batch_commit, s);
		pthread_mutex_unlock(&s->mutex);
		return r;
	}
	s->tx_op_write = true;
	s->tx_op_savepoint = others > 0;
	return 0;
}

/* Ends the operation: a read's transaction, or a change (r == 0: kept
 * for its batch's commit; r < 0: undone), and lets the mutex go.  A
 * change returns once its batch is committed (or failed): the result is
 * the commit's. */
static int tx_unlock(struct store *s, int r)
{
	struct gc_member m;

	if (!s->tx_op_write) {
		r = tx_end(s, r);
		pthread_mutex_unlock(&s->mutex);
		return r;
	}
	s->tx_op_write = false;
	if (r == 0 && s->tx_broken)
		r = -EIO;
	if (r == 0 && s->tx_op_savepoint)
		r = sql_exec(s, "RELEASE op");
	if (r < 0)
		op_undo(s, r);
	r = gc_leave(&s->batch, &m, r, batch_commit, s);
	pthread_mutex_unlock(&s->mutex);
	return r;
}

/* After a transaction that deleted versions: the WAL still holds the
 * pages they were in, so it is checkpointed and truncated now. */
static void drop_wal(struct store *s)
{
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK)
		log_warn("embedded store: deleted values may stay in the -wal file until the next "
		         "checkpoint: %s",
		         sqlite3_errmsg(s->db));
}

/* Commits if r == 0, else rolls back; returns the outcome. */
static int head_put_locked(struct store *s, uint64_t rev, const struct seal_digest *d);

static int tx_end(struct store *s, int r)
{
	bool dropped = s->dropped_values, head = s->tx_head, broken = s->tx_broken;
	if (r == 0 && s->tx_lost)
		r = -EIO;
	s->dropped_values = false;
	s->tx_head = false;
	s->tx_broken = false;
	if (r == 0 && broken)
		r = -EIO;
	/* the head goes with the rows it sums, in the same transaction */
	if (r == 0 && head)
		r = head_put_locked(s, s->tx_revision, &s->tx_digest);
	if (r == 0) {
		r = sql_exec(s, "COMMIT");
		if (r == 0) {
			s->in_tx = false;
			if (dropped)
				drop_wal(s);
			return 0;
		}
	}
	/* some errors roll the transaction back by themselves */
	s->in_tx = s->tx_lost = false;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* --- the store digest (seal.h): D over every row as stored --- */

/* A row of id added (sign > 0) or removed (sign < 0) by the write
 * transaction under way; mutex held.  Outside one (the upgrade computes
 * D afresh) nothing is counted; a row changed with no head loaded would
 * be a bug, and fails the transaction rather than leave D wrong. */
static bool digest_counting(struct store *s)
{
	if (s->tx_head)
		return true;
	if (!s->upgrading && !s->tx_broken) {
		log_error("embedded store: internal error: a row changed outside a digest "
		          "update; the change is refused");
		s->tx_broken = true;
	}
	return false;
}

static void digest_secret(struct store *s, int sign, const char *id, uint64_t incarnation,
                          const void *mac, size_t maclen)
{
	if (digest_counting(s))
		seal_digest_secret(s->keys, &s->tx_digest, sign, id, strlen(id), incarnation, mac,
		                   maclen);
}

static void digest_version(struct store *s, int sign, const char *id, uint64_t version,
                           uint64_t revision)
{
	if (digest_counting(s))
		seal_digest_version(s->keys, &s->tx_digest, sign, id, strlen(id), version,
		                    revision);
}

/* Steps a DELETE ... RETURNING version, revision of id's version rows
 * to its end, each row's term taken out of D. */
static int drop_versions_step(struct store *s, sqlite3_stmt *st, const char *id)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		digest_version(s, -1, id, (uint64_t)sqlite3_column_int64(st, 0),
		               (uint64_t)sqlite3_column_int64(st, 1));
	return rc == SQLITE_DONE ? 0 : sql_fail(s, rc);
}

/* Appends a label to a map known to be sorted (rows come ordered by key). */
static int labels_append(struct labels *l, const char *key, const char *value)
{
	struct label *v;
	char *k, *val;

	k = strdup(key);
	val = strdup(value);
	v = (k && val) ? realloc(l->v, (l->n + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(k);
		free(val);
		return -ENOMEM;
	}
	l->v = v;
	l->v[l->n].key = k;
	l->v[l->n].value = val;
	l->n++;
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? (const char *)t : "";
}

/* A deleted secret kept for undo (-o keep_deleted) stays in its rows: its
 * scopes column holds the scopes it had shifted up by DELETED_SHIFT (no
 * live row has bits there), its mtime_ns the time of its deletion and its
 * revision the deletion's; labels and versions stay as they were.  Its
 * MAC covers all of that as for a live row, so a deleted secret made live
 * again, or kept longer, by anyone without the key fails authentication;
 * the store digest counts its rows as any others.  Live readers never see
 * such a row (list: scopes < DELETED_MIN; by ID: -ENOENT). */
#define DELETED_SHIFT 16
#define DELETED_MIN "65536" /* 1 << DELETED_SHIFT, in SQL */

/* The columns meta_from_row reads, in its order. */
#define META_COLUMNS                                                                               \
	"scopes, version, size, ctime_ns, mtime_ns, incarnation, revision, "                       \
	"value_revision, nonce, mac"

/* What authenticates a row, as read from it. */
struct row_auth {
	uint8_t nonce[SEAL_NONCE_BYTES];
	uint8_t mac[SEAL_MAC_BYTES];
	bool fits;     /* every integer fits its field (nothing was cut) */
	bool shaped;   /* fits, and nonce and MAC have their sizes */
	bool too_many; /* more than LABELS_MAX label rows */
	bool deleted;  /* a deleted secret kept for undo (DELETED_SHIFT) */
};

/* Copies a blob column of exactly n bytes; false if it is not one. */
static bool col_blob(sqlite3_stmt *st, int col, void *dst, size_t n)
{
	if (sqlite3_column_type(st, col) != SQLITE_BLOB ||
	    (size_t)sqlite3_column_bytes(st, col) != n)
		return false;
	memcpy(dst, sqlite3_column_blob(st, col), n);
	return true;
}

/* Fills m (id and labels excluded) and a from META_COLUMNS starting at
 * col. */
static void meta_from_row(sqlite3_stmt *st, int col, struct secret_meta *m, struct row_auth *a)
{
	int64_t scopes = sqlite3_column_int64(st, col);
	int64_t size = sqlite3_column_int64(st, col + 2);

	/* a damaged row cannot invent scopes; a deleted one keeps its own
	 * above DELETED_SHIFT */
	m->scopes = (scope_set)scopes & (SCOPE_ALL | SCOPE_ALL << DELETED_SHIFT);
	m->version = (uint64_t)sqlite3_column_int64(st, col + 1);
	m->size = (uint32_t)size;
	m->ctime_ns = sqlite3_column_int64(st, col + 3);
	m->mtime_ns = sqlite3_column_int64(st, col + 4);
	m->incarnation = (uint64_t)sqlite3_column_int64(st, col + 5);
	m->revision = (uint64_t)sqlite3_column_int64(st, col + 6);
	m->value_revision = (uint64_t)sqlite3_column_int64(st, col + 7);
	memset(a, 0, sizeof(*a));
	a->fits = scopes == (int64_t)m->scopes && size == (int64_t)m->size;
	a->shaped = a->fits && col_blob(st, col + 8, a->nonce, sizeof(a->nonce)) &&
	            col_blob(st, col + 9, a->mac, sizeof(a->mac));
	a->deleted = m->scopes > SCOPE_ALL;
}

/* What is wrong with a row read back, if anything. */
enum row_problem {
	ROW_OK,
	ROW_NO_INCARNATION,
	ROW_BAD_ID,
	ROW_BAD_SCOPES,
	ROW_BAD_LABELS,
	ROW_NOT_AUTHENTIC,
};

/* What can be checked without the key. */
static enum row_problem row_check_shape(const struct secret_meta *m, const struct row_auth *a)
{
	if (!m->incarnation)
		return ROW_NO_INCARNATION;
	if (!m->id || !secret_id_valid_existing(m->id))
		return ROW_BAD_ID;
	scope_set scopes = a->deleted ? m->scopes >> DELETED_SHIFT : m->scopes;
	if (!secret_scopes_valid(scopes) || (a->deleted && (m->scopes & SCOPE_ALL)) || !a->fits)
		return ROW_BAD_SCOPES;
	if (a->too_many || secret_labels_valid(&m->labels) < 0)
		return ROW_BAD_LABELS;
	return ROW_OK;
}

/* FNV-1a of an ID: the bucket of the row memo and of the value cache. */
static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u;
	for (const char *c = id; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	return h;
}

static struct row_memo *row_memo_of(struct store *s, const char *id)
{
	return &s->memo[id_hash(id) % ROW_MEMO_SIZE];
}

/* The row read is, in every field the MAC covers and in its nonce and MAC,
 * one that verified before: it verifies now (the MAC is a function of
 * exactly these), and is not computed again. */
static bool row_memo_hit(struct store *s, const struct secret_meta *m, const struct row_auth *a)
{
	const struct row_memo *e = row_memo_of(s, m->id);
	const struct secret_meta *v = &e->meta;
	return v->id && strcmp(v->id, m->id) == 0 && v->incarnation == m->incarnation &&
	       v->scopes == m->scopes && v->version == m->version &&
	       v->value_revision == m->value_revision && v->revision == m->revision &&
	       v->size == m->size && v->ctime_ns == m->ctime_ns && v->mtime_ns == m->mtime_ns &&
	       sodium_memcmp(e->nonce, a->nonce, sizeof(e->nonce)) == 0 &&
	       sodium_memcmp(e->mac, a->mac, sizeof(e->mac)) == 0 &&
	       labels_equal(&v->labels, &m->labels);
}

static void row_memo_put(struct store *s, const struct secret_meta *m, const struct row_auth *a)
{
	struct row_memo *e = row_memo_of(s, m->id);
	secret_meta_clear(&e->meta);
	if (secret_meta_copy(&e->meta, m) < 0) {
		secret_meta_clear(&e->meta); /* an empty bucket: only a MAC saved is lost */
		return;
	}
	memcpy(e->nonce, a->nonce, sizeof(e->nonce));
	memcpy(e->mac, a->mac, sizeof(e->mac));
}

static enum row_problem row_check(const struct store *s, const struct secret_meta *m,
                                  const struct row_auth *a)
{
	enum row_problem p = row_check_shape(m, a);
	if (p != ROW_OK)
		return p;
	if (!a->shaped || seal_meta_verify(s->keys, m, a->nonce, a->mac, sizeof(a->mac)) != 0)
		return ROW_NOT_AUTHENTIC;
	return ROW_OK;
}

/* row_check for the reads of one secret (get_value, stat, every change):
 * a row verified before and unchanged since is not verified again.  The
 * listing at mount, which reads each row once, does without. */
static enum row_problem row_check_memo(struct store *s, const struct secret_meta *m,
                                       const struct row_auth *a)
{
	if (row_check_shape(m, a) == ROW_OK && a->shaped && row_memo_hit(s, m, a))
		return ROW_OK;
	enum row_problem p = row_check(s, m, a);
	if (p == ROW_OK)
		row_memo_put(s, m, a);
	return p;
}

/* One line for a refused row, naming it (the log escapes what an ID
 * read back may hold). */
static void row_log(enum row_problem p, const char *id, bool left_out)
{
	static const char *const what[] = {
		[ROW_OK] = "",
		[ROW_NO_INCARNATION] = "has no incarnation (damaged)",
		[ROW_BAD_ID] = "is not a valid ID (changed outside secretsfs)",
		[ROW_BAD_SCOPES] = "has an invalid scope set or size (changed outside secretsfs)",
		[ROW_BAD_LABELS] = "has invalid labels (changed outside secretsfs)",
		[ROW_NOT_AUTHENTIC] = "metadata failed authentication (changed outside secretsfs)",
	};
	if (p == ROW_NO_INCARNATION)
		log_warn("embedded store: the row of %.300s %s%s", id, what[p],
		         left_out ? ": left out" : "");
	else if (left_out)
		log_warn("embedded store: %.300s: %s: left out", id, what[p]);
	else
		log_error("embedded store: %.300s: %s", id, what[p]);
}

/* Reads the metadata of id and what authenticates it; mutex held.
 * -ENOENT if there is none.  With verify, a row that does not verify is
 * -EIO (logged). */
static int load_meta_locked(struct store *s, const char *id, bool verify,
                            struct secret_meta *ret_meta, struct row_auth *ret_auth)
{
	struct secret_meta m = { 0 };
	struct row_auth a;
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = sql_prepare(s, "SELECT id, " META_COLUMNS " FROM secrets WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sql_fail(s, rc);
		goto out;
	}
	meta_from_row(st, 1, &m, &a);
	/* the row's own ID, which the MAC covers */
	m.id = strdup(col_text(st, 0));
	sql_done(s, st);
	st = NULL;
	if (!m.id) {
		r = -ENOMEM;
		goto out;
	}

	r = sql_prepare(s, "SELECT key, value FROM labels WHERE id = ?1 ORDER BY key", &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (m.labels.n == LABELS_MAX) {
			a.too_many = true;
			continue;
		}
		r = labels_append(&m.labels, col_text(st, 0), col_text(st, 1));
		if (r < 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = sql_fail(s, rc);
		goto out;
	}
	if (verify) {
		enum row_problem p = strcmp(m.id, id) != 0 ? ROW_NOT_AUTHENTIC
		                                           : row_check_memo(s, &m, &a);
		if (p != ROW_OK) {
			row_log(p, id, false);
			r = -EIO;
			goto out;
		}
	}
	*ret_meta = m;
	memset(&m, 0, sizeof(m));
	if (ret_auth)
		*ret_auth = a;
	r = 0;
out:
	sql_done(s, st);
	secret_meta_clear(&m);
	return r;
}

/* What a change checks before it writes, and a read before it decrypts:
 * the verified row. */
struct row {
	struct life life;
	uint64_t revision, value_revision, version;
	scope_set scopes; /* a deleted secret's: the scopes it had */
	uint32_t size;
	int64_t mtime_ns; /* a deleted secret's: when it was deleted */
	bool deleted;
};

static int any_row_locked(struct store *s, const char *id, uint64_t incarnation, struct row *ret);

/* The row of a live secret id, verified, if it is incarnation (0: any);
 * mutex held.  -ENOENT if there is no such secret (or it is deleted, kept
 * for undo: then ret->deleted), -ESTALE if it is another incarnation,
 * -EIO (logged) if it does not verify. */
static int row_locked(struct store *s, const char *id, uint64_t incarnation, struct row *ret)
{
	int r = any_row_locked(s, id, incarnation, ret);
	return r == 0 && ret->deleted ? -ENOENT : r;
}

/* The same for a deleted secret kept for undo: -ENOENT if id is live or
 * gone. */
static int deleted_row_locked(struct store *s, const char *id, uint64_t incarnation,
                              struct row *ret)
{
	int r = any_row_locked(s, id, incarnation, ret);
	return r == 0 && !ret->deleted ? -ENOENT : r;
}

static int any_row_locked(struct store *s, const char *id, uint64_t incarnation, struct row *ret)
{
	ret->deleted = false;
	struct secret_meta m = { 0 };
	struct row_auth a;
	int r = load_meta_locked(s, id, true, &m, &a);
	if (r < 0)
		return r;
	ret->life.incarnation = m.incarnation;
	memcpy(ret->life.nonce, a.nonce, sizeof(a.nonce));
	ret->revision = m.revision;
	ret->value_revision = m.value_revision;
	ret->version = m.version;
	ret->deleted = a.deleted;
	ret->scopes = a.deleted ? m.scopes >> DELETED_SHIFT : m.scopes;
	ret->size = m.size;
	ret->mtime_ns = m.mtime_ns;
	secret_meta_clear(&m);
	sodium_memzero(&a, sizeof(a));
	return incarnation && incarnation != ret->life.incarnation ? -ESTALE : 0;
}

static int head_get_locked(struct store *s, uint64_t rev, struct seal_digest *d);

/* Runs sql, which returns the revision counter in one row, into *ret;
 * a counter missing, not an integer or under min is -EIO (logged). */
static int revision_query_locked(struct store *s, const char *sql, int64_t min, uint64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int r = sql_prepare(s, sql, &st);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
	    sqlite3_column_int64(st, 0) >= min) {
		*ret = (uint64_t)sqlite3_column_int64(st, 0);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		log_error("embedded store: the revision counter is missing or damaged; the store "
		          "needs repair");
		r = -EIO;
	} else {
		r = sql_fail(s, rc);
	}
	sql_done(s, st);
	return r;
}

/* The next store revision, taken by a write transaction for every row it
 * writes; mutex held, inside the transaction.  Also loads the verified
 * head (its D) that the transaction updates and stores at commit. */
static int next_revision_locked(struct store *s, uint64_t *ret)
{
	int r = revision_query_locked(s,
	                              "UPDATE meta SET value = value + 1 WHERE key = 'revision' "
	                              "RETURNING value",
	                              1, ret);
	/* the head this transaction starts from: (revision before, D) */
	if (r == 0 && !s->tx_head) {
		r = head_get_locked(s, *ret - 1, &s->tx_digest);
		if (r == -EBADMSG || r == -ENOENT) {
			log_error("embedded store: store.db's digest record %s (changed outside "
			          "secretsfs while the store was open): change refused",
			          r == -ENOENT ? "is missing" : "failed authentication");
			r = -EIO;
		}
		s->tx_head = r == 0;
	}
	if (r == 0)
		s->tx_revision = *ret;
	return r;
}

/* A version's ciphertext and what is known of it without the key. */
struct sealed {
	uint64_t version, revision;
	uint32_t size;
	int64_t mtime_ns;
	uint8_t *ct;
	size_t ctlen;
};

/* Ciphertext of version `version` of id, copied out; mutex held.
 * -ENOENT if there is none. */
static int load_ct_locked(struct store *s, const char *id, uint64_t version, struct sealed *ret)
{
	sqlite3_stmt *st = NULL;
	const void *blob;
	uint8_t *ct = NULL;
	size_t n;
	int r, rc;

	r = sql_prepare(s,
	                "SELECT size, mtime_ns, ct, revision FROM versions "
	                "WHERE id = ?1 AND version = ?2",
	                &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sql_fail(s, rc);
		goto out;
	}
	blob = sqlite3_column_blob(st, 2);
	n = (size_t)sqlite3_column_bytes(st, 2);
	ct = malloc(n ? n : 1);
	if (!ct) {
		r = -ENOMEM;
		goto out;
	}
	if (n)
		memcpy(ct, blob, n);
	ret->version = version;
	ret->size = (uint32_t)sqlite3_column_int64(st, 0);
	ret->mtime_ns = sqlite3_column_int64(st, 1);
	ret->revision = (uint64_t)sqlite3_column_int64(st, 3);
	ret->ct = ct;
	ret->ctlen = n;
	r = 0;
out:
	sql_done(s, st);
	return r;
}

/* The current value's ciphertext of a verified row; mutex held. */
static int load_current_ct_locked(struct store *s, const char *id, const struct row *row,
                                  struct sealed *ret)
{
	return load_ct_locked(s, id, row->version, ret);
}

/* Records value as version `version` of the life l of id (which must
 * exist, with current version version - 1), written at store revision
 * rev, and drops versions beyond keep_versions.  Mutex held, inside a
 * write transaction; the change ends with seal_row_locked(). */
static int write_version_locked(struct store *s, const char *id, const struct life *l,
                                uint64_t version, uint64_t rev, const uint8_t *value, size_t len,
                                int64_t mtime)
{
	sqlite3_stmt *st = NULL;
	uint8_t *ct = NULL;
	size_t ctlen = 0;
	int r;

	/* Versions are SQLite integers: a counter at INT64_MAX (a damaged
	 * or hostile database) would wrap, and pruning would then delete
	 * the new version. */
	if (version < 1 || version > INT64_MAX) {
		log_error(
		    "embedded store: %s: version counter out of range; the store needs repair", id);
		return -EIO;
	}
	r = seal_version(s, id, l, version, rev, mtime, value, len, &ct, &ctlen);
	if (r < 0)
		return r;

	r = sql_prepare(s,
	                "INSERT INTO versions (id, version, size, mtime_ns, ct, revision) "
	                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	                &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)version);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
	sqlite3_bind_int64(st, 4, mtime);
	sqlite3_bind_blob(st, 5, ct, (int)ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)rev);
	r = sql_step_done(s, st);
	sql_done(s, st);
	st = NULL;
	if (r < 0)
		goto out;
	digest_version(s, +1, id, version, rev);

	r = sql_prepare(s,
	                "UPDATE secrets SET version = ?2, size = ?3, mtime_ns = ?4, "
	                "revision = ?5, value_revision = ?5 WHERE id = ?1",
	                &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)version);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
	sqlite3_bind_int64(st, 4, mtime);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)rev);
	r = sql_step_done(s, st);
	sql_done(s, st);
	st = NULL;
	if (r < 0)
		goto out;

	if (version > s->keep_versions) {
		r = sql_prepare(s,
		                "DELETE FROM versions WHERE id = ?1 AND version <= ?2 "
		                "RETURNING version, revision",
		                &st);
		if (r < 0)
			goto out;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)(version - s->keep_versions));
		/* (no checkpoint for a pruned version: see the top) */
		r = drop_versions_step(s, st, id);
	}
out:
	sql_done(s, st);
	free(ct);
	return r;
}

static int insert_labels_locked(struct store *s, const char *id, const struct labels *l)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (!l || l->n == 0)
		return 0;
	r = sql_prepare(s, "INSERT INTO labels (id, key, value) VALUES (?1, ?2, ?3)", &st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l->n && r == 0; i++) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, l->v[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, l->v[i].value, -1, SQLITE_STATIC);
		r = sql_step_done(s, st);
		sqlite3_reset(st);
	}
	sql_done(s, st);
	return r;
}

/* Ends every change to id's row: authenticates the row as the
 * transaction left it (its MAC over what is read back) and hands that
 * over as the change record if ret_meta.  Mutex held, inside the write
 * transaction, after the row it started from was verified. */
static int seal_row_locked(struct store *s, const char *id, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	struct row_auth a;
	uint8_t mac[SEAL_MAC_BYTES];
	sqlite3_stmt *st = NULL;
	int rc, r = load_meta_locked(s, id, false, &m, &a);
	if (r == 0 && !a.fits)
		r = -EIO;
	if (r == 0)
		r = seal_meta_mac(s->keys, &m, a.nonce, mac);
	/* the row's term as stored until now (its MAC column, whatever it
	 * holds), out of D; the new one in */
	if (r == 0)
		r = sql_prepare(s, "SELECT incarnation, mac FROM secrets WHERE id = ?1", &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			digest_secret(s, -1, id, (uint64_t)sqlite3_column_int64(st, 0),
			              sqlite3_column_blob(st, 1),
			              (size_t)sqlite3_column_bytes(st, 1));
		else
			r = sql_fail(s, rc);
		sql_done(s, st);
	}
	if (r == 0)
		r = sql_prepare(s, "UPDATE secrets SET mac = ?2 WHERE id = ?1", &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, mac, sizeof(mac), SQLITE_STATIC);
		r = sql_step_done(s, st);
		sql_done(s, st);
	}
	if (r == 0)
		digest_secret(s, +1, id, m.incarnation, mac, sizeof(mac));
	if (r == 0 && ret_meta)
		*ret_meta = m;
	else
		secret_meta_clear(&m);
	return r;
}

/* --- meta table --- */

static int meta_get_blob(struct store *s, const char *key, uint8_t **ret, size_t *ret_len)
{
	sqlite3_stmt *st = NULL;
	uint8_t *buf;
	size_t n;
	int r, rc;

	r = sql_prepare(s, "SELECT value FROM meta WHERE key = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? -ENOENT : sql_fail(s, rc);
		goto out;
	}
	n = (size_t)sqlite3_column_bytes(st, 0);
	buf = malloc(n ? n : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	if (n)
		memcpy(buf, sqlite3_column_blob(st, 0), n);
	*ret = buf;
	*ret_len = n;
	r = 0;
out:
	sql_done(s, st);
	return r;
}

static int meta_put_blob(struct store *s, const char *key, const void *value, size_t len)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = sql_prepare(s, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
	r = sql_step_done(s, st);
	sql_done(s, st);
	return r;
}

/* --- the head record: (revision, D) and its MAC, in meta 'digest' --- */

#define HEAD_BYTES (SEAL_DIGEST_BYTES + SEAL_MAC_BYTES)

static int head_put_locked(struct store *s, uint64_t rev, const struct seal_digest *d)
{
	uint8_t blob[HEAD_BYTES];
	memcpy(blob, d->d, SEAL_DIGEST_BYTES);
	seal_head_mac(s->keys, rev, d, blob + SEAL_DIGEST_BYTES);
	/* an UPDATE in place (cheaper than meta_put_blob's REPLACE, on every
	 * write); the first head is inserted */
	sqlite3_stmt *st = NULL;
	int r = sql_prepare(s, "UPDATE meta SET value = ?1 WHERE key = 'digest'", &st);
	if (r < 0)
		return r;
	sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
	r = sql_step_done(s, st);
	bool missing = r == 0 && sqlite3_changes(s->db) == 0;
	sql_done(s, st);
	if (missing)
		r = meta_put_blob(s, "digest", blob, sizeof(blob));
	return r;
}

/* The head's D if its MAC verifies for the store revision rev: 0,
 * -ENOENT (no head), -EBADMSG (it does not verify) or a database error.
 * Logs nothing. */
static int head_get_locked(struct store *s, uint64_t rev, struct seal_digest *d)
{
	uint8_t *blob = NULL;
	size_t n = 0;
	int r = meta_get_blob(s, "digest", &blob, &n);
	if (r == 0 && n != HEAD_BYTES)
		r = -EBADMSG;
	if (r == 0) {
		memcpy(d->d, blob, SEAL_DIGEST_BYTES);
		r = seal_head_verify(s->keys, rev, d, blob + SEAL_DIGEST_BYTES, SEAL_MAC_BYTES);
	}
	free(blob);
	return r;
}

/* The store revision as meta holds it; -EIO (logged) if it is damaged. */
static int revision_get_locked(struct store *s, uint64_t *ret)
{
	return revision_query_locked(s, "SELECT value FROM meta WHERE key = 'revision'", 0, ret);
}

/* D over every row of secrets as stored (secrets_part) or of versions,
 * added to d, and the highest revision a row names, raised in *max_rev;
 * mutex held, inside a transaction. */
static int digest_part_locked(struct store *s, bool secrets_part, struct seal_digest *d,
                              uint64_t *max_rev)
{
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_DONE;
	int r = sql_prepare(s,
	                    secrets_part ? "SELECT id, incarnation, mac, revision FROM secrets"
	                                 : "SELECT id, version, revision FROM versions",
	                    &st);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		size_t idlen = id ? (size_t)sqlite3_column_bytes(st, 0) : 0;
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t rev = (uint64_t)sqlite3_column_int64(st, secrets_part ? 3 : 2);
		if (secrets_part)
			seal_digest_secret(s->keys, d, +1, id ? id : "", idlen, n,
			                   sqlite3_column_blob(st, 2),
			                   (size_t)sqlite3_column_bytes(st, 2));
		else
			seal_digest_version(s->keys, d, +1, id ? id : "", idlen, n, rev);
		if (rev > *max_rev && rev <= INT64_MAX)
			*max_rev = rev;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(s, rc);
	sql_done(s, st);
	return r;
}

/* D over every row of secrets and versions as stored, and the highest
 * revision a row names; mutex held, inside a transaction (one snapshot). */
static int digest_compute_locked(struct store *s, struct seal_digest *d, uint64_t *ret_max_rev)
{
	uint64_t max_rev = 0;
	memset(d, 0, sizeof(*d));
	int r = digest_part_locked(s, true, d, &max_rev);
	if (r == 0)
		r = digest_part_locked(s, false, d, &max_rev);
	if (ret_max_rev)
		*ret_max_rev = max_rev;
	return r;
}

static struct store *store_alloc(void);
static void store_free(struct store *s);
static int open_db(struct store *s, const char *path);

/* The versions' part of D on a second connection of its own, on a thread
 * (digest_check_locked): at open, half of a big store's check. */
struct digest_helper {
	struct store *c; /* the second connection; keys borrowed */
	struct seal_digest d;
	int r;
};

static void *digest_helper_run(void *arg)
{
	struct digest_helper *h = arg;
	uint64_t max_rev = 0;
	h->r = tx_begin(h->c, false);
	if (h->r == 0)
		h->r = tx_end(h->c, digest_part_locked(h->c, false, &h->d, &max_rev));
	return NULL;
}

/* D over the rows as committed, for the check at open: the secrets' part
 * here, the versions' part on a second connection beside it (another
 * process committing between the two reads can only make them disagree
 * with the head: a refusal, never an acceptance of rows that do not sum
 * to it).  On one connection when no second one opens.  Mutex held,
 * inside a transaction that has changed nothing yet. */
static int digest_committed_locked(struct store *s, struct seal_digest *d)
{
	struct digest_helper h = { .c = store_alloc() };
	const char *path = sqlite3_db_filename(s->db, "main");
	pthread_t t;
	bool helped = false;
	uint64_t max_rev = 0;

	if (h.c && path && path[0]) {
		h.c->read_only = s->read_only;
		h.c->second = true;
		h.c->keys = s->keys;
		helped = open_db(h.c, path) == 0 &&
		         pthread_create(&t, NULL, digest_helper_run, &h) == 0;
	}
	memset(d, 0, sizeof(*d));
	int r = digest_part_locked(s, true, d, &max_rev);
	if (helped) {
		pthread_join(t, NULL);
		if (r == 0 && h.r == 0)
			seal_digest_add(d, &h.d);
		else if (r == 0)
			r = h.r;
	} else if (r == 0) {
		r = digest_part_locked(s, false, d, &max_rev);
	}
	if (h.c)
		h.c->keys = NULL; /* s's */
	store_free(h.c);
	sodium_memzero(&h.d, sizeof(h.d));
	return r;
}

/* A new head over the rows as they are (the upgrade, -o reseal_digest):
 * the revision counter is first raised past every revision a row names,
 * so that revisions keep growing.  Mutex held, inside a write
 * transaction. */
static int head_reset_locked(struct store *s)
{
	struct seal_digest d;
	uint64_t rev = 0, max_rev = 0;
	int r = revision_get_locked(s, &rev);
	if (r == 0)
		r = digest_compute_locked(s, &d, &max_rev);
	if (r == 0 && max_rev > rev) {
		sqlite3_stmt *st = NULL;
		rev = max_rev;
		r = sql_prepare(s, "UPDATE meta SET value = ?1 WHERE key = 'revision'", &st);
		if (r == 0) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)rev);
			r = sql_step_done(s, st);
			sql_done(s, st);
		}
	}
	if (r == 0)
		r = head_put_locked(s, rev, &d);
	return r;
}

/* At open: the rows must sum to the authenticated head (seal.h), or the
 * store is refused, with one line saying why and what to do.  With
 * -o reseal_digest (read-write) a mismatch is accepted instead: the
 * rows as they are get a new head, with a warning. */
static int digest_check_locked(struct store *s)
{
	struct seal_digest want, have;
	uint64_t rev = 0;
	bool reseal = s->reseal_digest && !s->read_only;
	int r = tx_begin(s, reseal), hr = 0;
	if (r < 0)
		return r;
	r = revision_get_locked(s, &rev);
	if (r == 0) {
		hr = head_get_locked(s, rev, &want);
		if (hr != -ENOENT && hr != -EBADMSG)
			r = hr;
	}
	if (r == 0)
		r = digest_committed_locked(s, &have);
	if (r == 0 && hr == 0 && seal_digest_equal(&want, &have)) {
		if (reseal)
			log_info("embedded store: -o reseal_digest: store.db matches its digest "
			         "already; nothing to do");
	} else if (r == 0 && reseal) {
		r = head_reset_locked(s);
		if (r == 0)
			log_warn("embedded store: -o reseal_digest: store.db did not match its "
			         "authenticated digest; the rows as they are now are the store "
			         "(any secret rolled back or removed in them stays so)");
	} else if (r == 0 && hr != 0) {
		log_error("embedded store: store.db's digest record %s (changed outside "
		          "secretsfs): refusing to open the store (restore the whole store from "
		          "one backup, or see -o reseal_digest in secretsfs(1))",
		          hr == -ENOENT ? "is missing" : "failed authentication");
		r = -EIO;
	} else if (r == 0) {
		log_error("embedded store: store.db does not match its authenticated digest: a "
		          "secret's rows were replaced or removed outside secretsfs: refusing to "
		          "open the store (restore the whole store from one backup, or, to accept "
		          "the rows as they are, mount once with -o reseal_digest: secretsfs(1))");
		r = -EIO;
	}
	return tx_end(s, r);
}

/* --- open, close, init --- */

/* "file:PATH?immutable=1", with the characters a URI path reserves escaped. */
static char *immutable_uri(const char *path)
{
	size_t n = strlen(path);
	char *uri = malloc(5 + 3 * n + sizeof("?immutable=1"));
	if (!uri)
		return NULL;
	char *p = uri;
	memcpy(p, "file:", 5);
	p += 5;
	for (size_t i = 0; i < n; i++) {
		if (path[i] == '?' || path[i] == '#' || path[i] == '%') {
			static const char hex[] = "0123456789ABCDEF";
			*p++ = '%';
			*p++ = hex[(unsigned char)path[i] >> 4];
			*p++ = hex[path[i] & 15];
		} else {
			*p++ = path[i];
		}
	}
	memcpy(p, "?immutable=1", sizeof("?immutable=1"));
	return uri;
}

/* The database is data, not code: no trigger or view runs, no function
 * the schema names is trusted, and SQL cannot corrupt the file on
 * purpose (SQLITE_DBCONFIG_DEFENSIVE: no writable_schema, no direct
 * writes to shadow tables).  Set on the connection before its first
 * statement parses the schema. */
static int harden_db(sqlite3 *db)
{
	static const int off[] = {
		SQLITE_DBCONFIG_TRUSTED_SCHEMA,
		SQLITE_DBCONFIG_ENABLE_TRIGGER,
		SQLITE_DBCONFIG_ENABLE_VIEW,
		SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
	};
	int set = -1;

	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &set) != SQLITE_OK || set != 1)
		return SQLITE_ERROR;
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		set = -1;
		if (sqlite3_db_config(db, off[i], 0, &set) != SQLITE_OK || set != 0)
			return SQLITE_ERROR;
	}
	return SQLITE_OK;
}

static int open_db(struct store *s, const char *path)
{
	int flags = (s->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
	            SQLITE_OPEN_NOMUTEX;
	int rc;

#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc == SQLITE_OK)
		rc = harden_db(s->db);
	if (rc == SQLITE_OK && s->read_only &&
	    sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) !=
	        SQLITE_OK) {
		/* A WAL database on a read-only filesystem opens only as
		 * immutable (nothing can create its -shm file).  Changes still
		 * in a -wal file left by a crash are then not seen. */
		char *uri = immutable_uri(path);
		sqlite3_close_v2(s->db);
		s->db = NULL;
		rc = uri ? sqlite3_open_v2(uri, &s->db, flags | SQLITE_OPEN_URI, NULL)
		         : SQLITE_NOMEM;
		free(uri);
		if (rc == SQLITE_OK)
			rc = harden_db(s->db);
		if (rc == SQLITE_OK && !s->second)
			log_warn(
			    "embedded store: %s is on a read-only filesystem: opened as immutable; "
			    "changes a crash left in its -wal file are not visible",
			    path);
	}
	if (rc != SQLITE_OK)
		return sql_fail(s, rc);
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	return sql_exec_script(s, "PRAGMA foreign_keys = ON;"
	                          "PRAGMA synchronous = FULL;"
	                          "PRAGMA secure_delete = ON;"
	                          "PRAGMA cell_size_check = ON;"
	                          "PRAGMA temp_store = MEMORY;");
}

/* Opens and flocks DIR/store.lock; -EBUSY if another holder has it. */
static int take_lock(const char *dir, bool read_only, int *ret_fd)
{
	char *path;
	int fd, r = 0;

	path = path_join(dir, EMBEDDED_LOCK_FILE);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0 && read_only && (errno == EROFS || errno == EACCES))
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		goto out;
	}
	*ret_fd = fd;
out:
	free(path);
	return r;
}

static struct value_entry *values_alloc(void);
static void values_free(struct store *s);
static void wal_map(struct store *s, const char *dbpath);

static void store_free(struct store *s)
{
	if (!s)
		return;
	values_free(s);
	if (s->wal_hdr)
		munmap((void *)s->wal_hdr, s->wal_map_len);
	sql_cache_clear(s);
	for (size_t i = 0; i < ROW_MEMO_SIZE; i++)
		secret_meta_clear(&s->memo[i].meta);
	if (s->db)
		sqlite3_close_v2(s->db);
	if (s->wal_fd >= 0) /* only now: see wal_fd */
		close(s->wal_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	sodium_free(s->key); /* wipes */
	seal_keys_free(s->keys);
	sodium_memzero(s->store_id, sizeof(s->store_id));
	pthread_rwlock_destroy(&s->value_lock);
	gc_destroy(&s->batch);
	pthread_mutex_destroy(&s->mutex);
	free(s);
}

static struct store *store_alloc(void)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->lock_fd = -1;
	s->wal_fd = -1;
	s->values = values_alloc();
	if (!s->values || pthread_mutex_init(&s->mutex, NULL) != 0) {
		free(s->values);
		free(s);
		return NULL;
	}
	if (pthread_rwlock_init(&s->value_lock, NULL) != 0) {
		pthread_mutex_destroy(&s->mutex);
		free(s->values);
		free(s);
		return NULL;
	}
	if (gc_init(&s->batch, &s->mutex) != 0) {
		pthread_rwlock_destroy(&s->value_lock);
		pthread_mutex_destroy(&s->mutex);
		free(s->values);
		free(s);
		return NULL;
	}
	return s;
}

/* --- the schema: exactly what init_db() creates --- */

/* One object of sqlite_schema. */
struct schema_obj {
	char *type, *name, *tbl, *sql; /* sql NULL for an automatic index */
	bool seen;
};

#define SCHEMA_OBJS_MAX 16

struct schema {
	size_t n;
	struct schema_obj v[SCHEMA_OBJS_MAX];
};

static void schema_clear(struct schema *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->v[i].type);
		free(sc->v[i].name);
		free(sc->v[i].tbl);
		free(sc->v[i].sql);
	}
	sc->n = 0;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

/* The schema sql (schema_sql, schema4_sql) makes, read back from a
 * scratch database. */
static int expected_schema(const char *sql, struct schema *sc)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	sc->n = 0;
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	        SQLITE_OK ||
	    harden_db(db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema", -1, &st,
	                       NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct schema_obj *o = &sc->v[sc->n];
		if (sc->n == SCHEMA_OBJS_MAX)
			goto out;
		*o = (struct schema_obj){ .type = dup_col(st, 0),
			                  .name = dup_col(st, 1),
			                  .tbl = dup_col(st, 2),
			                  .sql = dup_col(st, 3) };
		sc->n++;
		if (!o->type || !o->name || !o->tbl)
			goto out;
	}
	r = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close_v2(db);
	if (r < 0) {
		log_error("embedded store: cannot build the expected schema: out of memory");
		schema_clear(sc);
	}
	return r;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares store.db's schema with the one sql (schema_sql, schema4_sql)
 * creates.  Anything there that it does not create (a trigger, a view,
 * another table or index) is refused; with exact every object must also
 * be the very one (same SQL).  -EIO with one line naming what was found
 * (none if quiet).  Mutex held (or the store not yet shared). */
static int schema_check_locked(struct store *s, const char *sql_want, bool exact, bool quiet)
{
	struct schema want;
	sqlite3_stmt *st = NULL;
	int r = expected_schema(sql_want, &want), rc;
	if (r < 0)
		return r;
	r = sql_prepare(s, "SELECT type, name, tbl_name, sql FROM sqlite_schema", &st);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = col_text(st, 0), *name = col_text(st, 1), *tbl = col_text(st, 2);
		const char *sql = (const char *)sqlite3_column_text(st, 3);
		struct schema_obj *o = NULL;
		for (size_t i = 0; i < want.n && !o; i++)
			if (strcmp(want.v[i].type, type) == 0 && strcmp(want.v[i].name, name) == 0)
				o = &want.v[i];
		if (!o || strcmp(o->tbl, tbl) != 0) {
			if (!quiet)
				log_error(
				    "embedded store: store.db holds %.20s \"%.100s\" on %.100s, which "
				    "secretsfs did not create: refusing to open the store (SQL in it "
				    "must never run); drop it with sqlite3 only if you trust the rest "
				    "of the store, or restore a backup",
				    type, name, tbl);
			r = -EIO;
		} else if (exact && !str_eq(o->sql, sql)) {
			if (!quiet)
				log_error(
				    "embedded store: store.db: %.20s \"%.100s\" is not the one "
				    "secretsfs creates (altered outside secretsfs): refusing to open "
				    "the store; restore a backup",
				    type, name);
			r = -EIO;
		} else {
			o->seen = true;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(s, rc);
	sql_done(s, st);
	for (size_t i = 0; r == 0 && i < want.n; i++) {
		if (!want.v[i].seen) {
			if (!quiet)
				log_error(
				    "embedded store: store.db lacks %s \"%s\" (damaged, or not a "
				    "secretsfs store): refusing to open it",
				    want.v[i].type, want.v[i].name);
			r = -EIO;
		}
	}
	schema_clear(&want);
	return r;
}

/* --- upgrades --- */

/* Format 2 -> 3, first half: the tables are made again exactly as
 * schema_sql makes them (so that format 3 has one schema to compare
 * with, however the store began), their rows copied over.  Children
 * are dropped before their parent, so nothing cascades. */
static const char upgrade_2_copy_sql[] =
    "CREATE TEMP TABLE old_meta AS SELECT key, value FROM main.meta;"
    "CREATE TEMP TABLE old_secrets AS SELECT id, scopes, version, size, ctime_ns, mtime_ns, "
    "  incarnation, revision, value_revision FROM main.secrets;"
    "CREATE TEMP TABLE old_labels AS SELECT id, key, value FROM main.labels;"
    "CREATE TEMP TABLE old_versions AS SELECT id, version, size, mtime_ns, ct, revision "
    "  FROM main.versions;"
    "DROP TABLE main.labels;"
    "DROP TABLE main.versions;"
    "DROP TABLE main.secrets;"
    "DROP TABLE main.meta;";
static const char upgrade_2_fill_sql[] =
    "INSERT INTO main.meta (key, value) SELECT key, value FROM old_meta;"
    "INSERT INTO main.secrets (id, scopes, version, size, ctime_ns, mtime_ns, incarnation, "
    "  revision, value_revision, nonce, mac) SELECT id, scopes, version, size, ctime_ns, "
    "  mtime_ns, incarnation, revision, value_revision, x'', x'' FROM old_secrets;"
    "INSERT INTO main.labels (id, key, value) SELECT id, key, value FROM old_labels "
    "  WHERE id IN (SELECT id FROM main.secrets);"
    "INSERT INTO main.versions (id, version, size, mtime_ns, ct, revision) "
    "  SELECT id, version, size, mtime_ns, ct, revision FROM old_versions "
    "  WHERE id IN (SELECT id FROM main.secrets);"
    "DROP TABLE temp.old_meta;"
    "DROP TABLE temp.old_secrets;"
    "DROP TABLE temp.old_labels;"
    "DROP TABLE temp.old_versions;";

/* Formats 3 and 4 -> 5: secrets made again in ID order (SECRETS_TABLE_SQL),
 * its rows copied as they are, byte for byte (MACs, nonces: the digest
 * over them does not change).  With foreign keys off (upgrade_locked), so
 * that dropping the old table takes no label or version with it. */
static const char upgrade_4_sql[] =
    "CREATE TABLE main.secrets_format4 AS SELECT id, scopes, version, size, ctime_ns, "
    "  mtime_ns, incarnation, revision, value_revision, nonce, mac FROM main.secrets;"
    "DROP TABLE main.secrets;" SECRETS_TABLE_SQL
    "INSERT INTO main.secrets (id, scopes, version, size, ctime_ns, mtime_ns, incarnation, "
    "  revision, value_revision, nonce, mac) SELECT id, scopes, version, size, ctime_ns, "
    "  mtime_ns, incarnation, revision, value_revision, nonce, mac FROM main.secrets_format4 "
    "  ORDER BY id;"
    "DROP TABLE main.secrets_format4;";

/* The IDs a query returns (its one column; ?1 bound to arg), in its
 * order; mutex held, in a transaction. */
static int ids_query_locked(struct store *s, const char *sql, int64_t arg, char ***ret_ids,
                            size_t *ret_n)
{
	sqlite3_stmt *st = NULL;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	int rc = SQLITE_DONE, r = sql_prepare(s, sql, &st);
	if (r == 0 && sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, arg);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nids = realloc(ids, cap * sizeof(*ids));
			if (!nids) {
				r = -ENOMEM;
				break;
			}
			ids = nids;
		}
		if (!(ids[n] = strdup(col_text(st, 0)))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(s, rc);
	sql_done(s, st);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		return r;
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}

static int all_ids_locked(struct store *s, char ***ret_ids, size_t *ret_n)
{
	return ids_query_locked(s, "SELECT id FROM secrets ORDER BY id", 0, ret_ids, ret_n);
}

/* Re-seals every version of id, a format 2 row, for its new life l;
 * counts the versions that do not open as they are (left as they are:
 * they stay unreadable, as they were).  Mutex held. */
static int reseal_versions_locked(struct store *s, const char *id, const struct life *l,
                                  size_t *broken)
{
	sqlite3_stmt *st = NULL;
	uint64_t vers[256];
	size_t nv = 0;
	int rc,
	    r = sql_prepare(s, "SELECT version FROM versions WHERE id = ?1 ORDER BY version", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && nv < sizeof(vers) / sizeof(vers[0]))
		vers[nv++] = (uint64_t)sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = sql_fail(s, rc);
	sql_done(s, st);

	for (size_t i = 0; r == 0 && i < nv; i++) {
		struct sealed old = { 0 };
		struct secret_value *v = NULL;
		uint8_t *ad = NULL, *ct = NULL;
		size_t adlen = 0, ctlen = 0;

		r = load_ct_locked(s, id, vers[i], &old);
		if (r == 0)
			r = old_value_ad(s, id, vers[i], &ad, &adlen);
		if (r == 0 && crypto_open(s->key, ad, adlen, old.ct, old.ctlen, &v) != 0) {
			(*broken)++;
		} else if (r == 0) {
			r = seal_version(s, id, l, vers[i], old.revision, old.mtime_ns, v->data,
			                 v->len, &ct, &ctlen);
			if (r == 0)
				r = sql_prepare(s,
				                "UPDATE versions SET ct = ?3 WHERE id = ?1 AND "
				                "version = ?2",
				                &st);
			if (r == 0) {
				sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
				sqlite3_bind_int64(st, 2, (sqlite3_int64)vers[i]);
				sqlite3_bind_blob(st, 3, ct, (int)ctlen, SQLITE_STATIC);
				r = sql_step_done(s, st);
				sql_done(s, st);
			}
		}
		secret_value_free(v);
		free(ad);
		free(ct);
		free(old.ct);
	}
	return r;
}

/* Format 2 -> 3, second half, row by row: a nonce for each secret's
 * life, its values re-sealed for it under the value key, its metadata
 * authenticated.  The rows are taken as they are found (format 2 has
 * nothing to check them by); rows that are not even well formed are
 * left unauthenticated, and so refused from now on. */
static int upgrade_rows_locked(struct store *s)
{
	char **ids = NULL;
	size_t n = 0, broken = 0, refused = 0;
	int r = all_ids_locked(s, &ids, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct secret_meta m = { 0 };
		struct row_auth a;
		struct life l;
		sqlite3_stmt *st = NULL;

		r = load_meta_locked(s, ids[i], false, &m, &a);
		if (r == 0 && row_check_shape(&m, &a) != ROW_OK) {
			refused++;
			secret_meta_clear(&m);
			continue;
		}
		l.incarnation = m.incarnation;
		seal_nonce_new(l.nonce);
		secret_meta_clear(&m);
		if (r == 0)
			r = sql_prepare(s, "UPDATE secrets SET nonce = ?2 WHERE id = ?1", &st);
		if (r == 0) {
			sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, l.nonce, sizeof(l.nonce), SQLITE_STATIC);
			r = sql_step_done(s, st);
			sql_done(s, st);
		}
		if (r == 0)
			r = reseal_versions_locked(s, ids[i], &l, &broken);
		if (r == 0)
			r = seal_row_locked(s, ids[i], NULL);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (r == 0 && broken)
		log_warn("embedded store: upgrade: %zu value versions failed authentication "
		         "already and stay unreadable",
		         broken);
	if (r == 0 && refused)
		log_warn("embedded store: upgrade: %zu damaged secret rows were not "
		         "authenticated; they are left out from now on",
		         refused);
	return r;
}

static int write_keycheck_locked(struct store *s)
{
	uint8_t ad[KEYCHECK_AD_MAX];
	uint8_t *ct = NULL;
	size_t ctlen = 0;
	size_t adlen = keycheck_ad(s->store_id, FORMAT_VERSION, ad);
	int r = crypto_seal(s->key, ad, adlen, (const uint8_t *)keycheck_plaintext,
	                    sizeof(keycheck_plaintext) - 1, &ct, &ctlen);
	if (r == 0)
		r = meta_put_blob(s, "keycheck", ct, ctlen);
	free(ct);
	return r;
}

/* Inside the upgrade of format 3 or 4, before its commit: every label
 * and version it had is still there (labels, versions: the counts
 * before; a store changed by hand may hold rows of no secret, which stay
 * as they were); -EIO, logged, if not. */
static int upgrade_kept_rows_locked(struct store *s, uint64_t labels, uint64_t versions)
{
	uint64_t l = 0, v = 0;
	int r = revision_query_locked(s, "SELECT count(*) FROM labels", 0, &l);
	if (r == 0)
		r = revision_query_locked(s, "SELECT count(*) FROM versions", 0, &v);
	if (r == 0 && (l != labels || v != versions)) {
		log_error("embedded store: the upgrade would have lost labels or versions: "
		          "nothing changed");
		r = -EIO;
	}
	return r;
}

/* A store in format 1 to 4 becomes format 5, in one transaction; a
 * read-only mount cannot do that and says so.  Formats 1 and 2 get
 * their tables made again, nonces, re-sealed values and metadata MACs;
 * formats 3 and 4 their secrets table.  Formats 1 to 3 get their store
 * digest computed over the rows as they are (a row another format let be
 * replaced stays as it was found); format 4 keeps its own, which the
 * rows must still match (digest_check_locked, after this). */
static int upgrade_locked(struct store *s, int format)
{
	static const uint8_t format_now = FORMAT_VERSION;

	if (s->read_only) {
		log_error("embedded store: the store is in format %d; mount it read-write once to "
		          "upgrade it to format %d",
		          format, FORMAT_VERSION);
		return -EIO;
	}
	/* Foreign keys off, or dropping the old tables would take every label
	 * and version with them: a no-op inside a transaction, so set before
	 * it (and read back), and on again after. */
	uint64_t fk = 1, labels = 0, versions = 0;
	int r = sqlite3_get_autocommit(s->db) ? sql_exec(s, "PRAGMA foreign_keys = OFF") : -EIO;
	if (r == 0)
		r = revision_query_locked(s, "PRAGMA foreign_keys", 0, &fk);
	if (r == 0 && fk != 0)
		r = -EIO;
	if (r == 0)
		r = tx_begin(s, true);
	if (r < 0) {
		log_error("embedded store: cannot turn foreign keys off for the upgrade: nothing "
		          "changed");
		sql_exec(s, "PRAGMA foreign_keys = ON");
		return r < 0 ? r : -EIO;
	}
	s->upgrading = true;
	if (format >= 3) {
		r = revision_query_locked(s, "SELECT count(*) FROM labels", 0, &labels);
		if (r == 0)
			r = revision_query_locked(s, "SELECT count(*) FROM versions", 0, &versions);
	}
	if (r == 0 && format == 1)
		r = sql_exec_script(s, upgrade_1_sql);
	if (r == 0 && format <= 2)
		r = sql_exec_script(s, upgrade_2_copy_sql);
	if (r == 0 && format <= 2)
		r = sql_exec_script(s, schema_sql);
	if (r == 0 && format <= 2)
		r = sql_exec_script(s, upgrade_2_fill_sql);
	if (r == 0 && format <= 2)
		r = upgrade_rows_locked(s);
	if (r == 0 && (format == 3 || format == 4))
		r = sql_exec_script(s, upgrade_4_sql);
	if (r == 0)
		r = write_keycheck_locked(s);
	if (r == 0 && format <= 3)
		r = head_reset_locked(s);
	if (r == 0)
		r = meta_put_blob(s, "format", &format_now, 1);
	/* before it counts: the tables exactly as a new store has them, no
	 * label or version of formats 3-4 lost */
	if (r == 0)
		r = schema_check_locked(s, schema_sql, true, false);
	if (r == 0 && format >= 3)
		r = upgrade_kept_rows_locked(s, labels, versions);
	/* the old ciphertexts (1-2), the copied table (3-4): out of the WAL */
	if (r == 0)
		s->dropped_values = true;
	s->upgrading = false;
	r = tx_end(s, r);
	int fr = sql_exec(s, "PRAGMA foreign_keys = ON");
	if (r == 0)
		r = fr;
	/* the statements cached against the old tables */
	sql_cache_clear(s);
	if (r == 0 && format <= 2)
		log_info("embedded store: upgraded from format %d to %d (metadata and the store "
		         "digest authenticated from now on; the rows were taken as found)",
		         format, FORMAT_VERSION);
	else if (r == 0 && format == 3)
		log_info("embedded store: upgraded from format %d to %d (a store digest from now "
		         "on; the rows were taken as found)",
		         format, FORMAT_VERSION);
	else if (r == 0)
		log_info("embedded store: upgraded from format %d to %d (secrets stored in ID "
		         "order; nothing else changed)",
		         format, FORMAT_VERSION);
	return r;
}

/* Checks the schema, the format and the key; derives the sub-keys;
 * upgrades an older format.  Before the store is shared. */
static int check_key_locked(struct store *s)
{
	uint8_t ad[KEYCHECK_AD_MAX];
	struct secret_value *v = NULL;
	uint8_t *blob = NULL;
	size_t n = 0;
	int r, format = 0;

	/* before anything reads a table: nothing the database holds runs.  The
	 * names first (the format is in a table), as this format or formats
	 * 1-4 have them; once the format is known, every object exactly. */
	r = schema_check_locked(s, schema_sql, false, true);
	if (r == -EIO && schema_check_locked(s, schema4_sql, false, true) == 0)
		r = 0;
	else if (r == -EIO)
		r = schema_check_locked(s, schema_sql, false, false); /* says why */
	if (r < 0)
		return r;
	r = meta_get_blob(s, "format", &blob, &n);
	if (r == 0 && (n != 1 || blob[0] < 1 || blob[0] > FORMAT_VERSION)) {
		log_error("embedded store: unknown store format");
		r = -EIO;
	}
	if (r == 0)
		format = blob[0];
	free(blob);
	blob = NULL;
	if (r < 0)
		return r == -ENOENT ? -EIO : r;
	if (format >= 3) {
		r = schema_check_locked(s, format == FORMAT_VERSION ? schema_sql : schema4_sql,
		                        true, false);
		if (r < 0)
			return r;
	}

	r = meta_get_blob(s, "store_id", &blob, &n);
	if (r == 0 && (n != STORE_ID_BYTES || !blob))
		r = -EIO;
	if (r != 0) {
		free(blob);
		return r == -ENOENT ? -EIO : r;
	}
	memcpy(s->store_id, blob, STORE_ID_BYTES);
	free(blob);
	blob = NULL;

	r = meta_get_blob(s, "keycheck", &blob, &n);
	if (r < 0)
		return r == -ENOENT ? -EIO : r;
	size_t adlen = keycheck_ad(s->store_id, format, ad);
	r = crypto_open(s->key, ad, adlen, blob, n, &v);
	/* a store made to look older (whose rows, or digest, an upgrade
	 * would take on trust)? */
	for (int f = format + 1; r == -EBADMSG && f <= FORMAT_VERSION; f++) {
		if (keycheck_domain(f) == keycheck_domain(f - 1))
			continue;
		adlen = keycheck_ad(s->store_id, f, ad);
		if (crypto_open(s->key, ad, adlen, blob, n, &v) == 0) {
			log_error("embedded store: the store says format %d but was written in "
			          "format %d (its format record was changed outside secretsfs): "
			          "refusing to open it; restore a backup",
			          format, f);
			r = -EIO;
		}
	}
	free(blob);
	if (r == -EBADMSG)
		return -EKEYREJECTED;
	if (r == 0 && (v->len != sizeof(keycheck_plaintext) - 1 ||
	               memcmp(v->data, keycheck_plaintext, v->len) != 0))
		r = -EKEYREJECTED;
	secret_value_free(v);
	if (r < 0)
		return r;
	r = seal_keys_new(s->key, s->store_id, &s->keys);
	/* format 4's rows must sum to its digest before anything changes them
	 * (the upgrade keeps the digest; a refused store stays as it was) */
	if (r == 0 && format == 4)
		r = digest_check_locked(s);
	if (r == 0 && format < FORMAT_VERSION)
		r = upgrade_locked(s, format);
	if (r == 0)
		r = digest_check_locked(s);
	return r;
}

static int embedded_open(const struct store_config *cfg, struct store **ret_store)
{
	struct store *s = NULL;
	char *dbpath = NULL;
	struct stat st;
	int r;

	if (!cfg || !cfg->source || !cfg->key || !ret_store)
		return -EINVAL;
	r = crypto_init();
	if (r < 0)
		return r;

	if (stat(cfg->source, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	dbpath = path_join(cfg->source, EMBEDDED_DB_FILE);
	if (!dbpath)
		return -ENOMEM;
	if (lstat(dbpath, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -ENOENT; /* not a store */
		goto fail;
	}

	s = store_alloc();
	if (!s) {
		r = -ENOMEM;
		goto fail;
	}
	s->keep_versions = cfg->keep_versions ? cfg->keep_versions : EMBEDDED_KEEP_VERSIONS_DEFAULT;
	s->read_only = cfg->read_only;
	s->reseal_digest = cfg->reseal_digest;
	s->keep_deleted_ns = cfg->keep_deleted_ns > 0 ? cfg->keep_deleted_ns : 0;
	s->key = secret_locked_alloc(STORE_KEY_BYTES);
	if (!s->key) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(s->key, cfg->key, STORE_KEY_BYTES);
	if (sodium_mprotect_readonly(s->key) != 0) {
		r = -errno;
		goto fail;
	}

	r = take_lock(cfg->source, cfg->read_only, &s->lock_fd);
	if (r < 0)
		goto fail;
	r = open_db(s, dbpath);
	if (r < 0)
		goto fail;
	r = check_key_locked(s);
	if (r < 0)
		goto fail;
	wal_map(s, dbpath);

	free(dbpath);
	*ret_store = s;
	return 0;
fail:
	store_free(s);
	free(dbpath);
	return r;
}

static void embedded_close(struct store *s)
{
	store_free(s);
}

static int init_db(struct store *s, const char *dbpath)
{
	uint8_t format = FORMAT_VERSION;
	int r;

	r = open_db(s, dbpath);
	if (r < 0)
		return r;
	r = sql_exec_script(s, "PRAGMA journal_mode = WAL");
	if (r < 0)
		return r;

	randombytes_buf(s->store_id, STORE_ID_BYTES);
	r = seal_keys_new(s->key, s->store_id, &s->keys);
	if (r < 0)
		return r;
	r = tx_begin(s, true);
	if (r < 0)
		return r;
	r = sql_exec_script(s, schema_sql);
	if (r == 0)
		r = meta_put_blob(s, "format", &format, 1);
	if (r == 0)
		r = meta_put_blob(s, "store_id", s->store_id, STORE_ID_BYTES);
	if (r == 0)
		r = write_keycheck_locked(s);
	if (r == 0)
		r = sql_exec_script(s, "INSERT INTO meta (key, value) VALUES ('revision', 0)");
	if (r == 0)
		r = head_put_locked(s, 0, &(struct seal_digest){ 0 }); /* no rows: D = 0 */
	return tx_end(s, r);
}

static void unlink_db(const char *dbpath)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	size_t n = strlen(dbpath);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t m = strlen(suffixes[i]);
		char *p = malloc(n + m + 1);

		if (!p)
			continue;
		memcpy(p, dbpath, n);
		memcpy(p + n, suffixes[i], m + 1);
		unlink(p);
		free(p);
	}
}

/* The directory init writes into: opened without following a symlink,
 * ours and not writable by anyone else (who could otherwise swap the key
 * or the database under us).  Returns the fd or -errno, with why. */
static int open_store_dir(const char *dir, char *why, size_t why_size)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if ((e == ELOOP || e == ENOTDIR) && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
			snprintf(
			    why, why_size,
			    "store directory %s is a symlink (not followed): give the directory "
			    "itself",
			    dir);
			return -ELOOP;
		}
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, why_size,
		         "store directory %s is owned by uid %u, not by this process (uid %u): "
		         "chown %u %s",
		         dir, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), dir);
		close(fd);
		return -EPERM;
	}
	if (st.st_mode & 022) {
		snprintf(why, why_size,
		         "store directory %s is writable by group or others: chmod go-w %s", dir,
		         dir);
		close(fd);
		return -EPERM;
	}
	return fd;
}

int embedded_store_init_why(const char *dir, char *why, size_t why_size)
{
	return embedded_store_init_key(dir, NULL, why, why_size);
}

/* The directory and name a key is created in: DIR/key, or key_file (its
 * directory opened here, *ret_name into key_file). */
static int key_dir_of(int dirfd, const char *key_file, char **ret_copy, const char **ret_name)
{
	if (!key_file) {
		*ret_copy = NULL;
		*ret_name = EMBEDDED_KEY_FILE;
		int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	char *copy = strdup(key_file);
	if (!copy)
		return -ENOMEM;
	char *slash = strrchr(copy, '/');
	*ret_name = key_file + (slash ? (size_t)(slash - copy) + 1 : 0);
	if (slash)
		*slash = '\0';
	int fd = open(slash ? (copy[0] ? copy : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(copy);
		return -e;
	}
	*ret_copy = copy;
	return fd;
}

int embedded_store_init_key(const char *dir, const char *key_file, char *why, size_t why_size)
{
	char *dbpath = NULL, *key_copy = NULL;
	const char *key_name = EMBEDDED_KEY_FILE;
	bool made_db = false, made_key = false, made_dir = false, made_lock = false;
	struct store *s = NULL;
	struct stat st;
	int fd, dirfd = -1, keydirfd = -1, r;
	char spare[8];

	if (!why || !why_size) {
		why = spare;
		why_size = sizeof(spare);
	}
	why[0] = '\0';
	if (!dir || !dir[0])
		return -EINVAL;
	r = crypto_init();
	if (r < 0)
		return r;

	if (key_file && !key_file[0])
		return -EINVAL;
	if (mkdir(dir, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST)
		return -errno;
	dirfd = open_store_dir(dir, why, why_size);
	if (dirfd < 0) {
		if (made_dir)
			rmdir(dir);
		return dirfd;
	}

	dbpath = path_join(dir, EMBEDDED_DB_FILE);
	s = store_alloc();
	if (!dbpath || !s) {
		r = -ENOMEM;
		goto out;
	}
	s->keep_versions = EMBEDDED_KEEP_VERSIONS_DEFAULT;

	/* before and after taking the lock: an open store says -EEXIST, not
	 * -EBUSY, and a racing init loses cleanly */
	if (fstatat(dirfd, EMBEDDED_DB_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r = -EEXIST;
		goto out;
	}
	/* A key with no store beside it came from elsewhere: refused before
	 * anything (the lock file) is made here. */
	if (!key_file && fstatat(dirfd, EMBEDDED_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(why, why_size,
		         "%s/%s is a key with no store beside it (a key from elsewhere is never "
		         "adopted): move it away, init another directory, or keep the new key "
		         "elsewhere with -o key=FILE",
		         dir, EMBEDDED_KEY_FILE);
		r = -EEXIST;
		goto out;
	}
	keydirfd = key_dir_of(dirfd, key_file, &key_copy, &key_name);
	if (keydirfd < 0) {
		r = keydirfd;
		snprintf(why, why_size, "key file %s: its directory: %s", key_file,
		         strerrordesc_np(-r));
		goto out;
	}
	made_lock = fstatat(dirfd, EMBEDDED_LOCK_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0;
	r = take_lock(dir, false, &s->lock_fd);
	if (r < 0) {
		made_lock = false; /* another init's */
		goto out;
	}
	if (fstatat(dirfd, EMBEDDED_DB_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		made_lock = false;
		r = -EEXIST;
		goto out;
	}

	/* The key: made new in the directory we hold, and the bytes made are
	 * the ones used (never read back by name). */
	r = key_create_at(keydirfd, key_name, &s->key);
	if (r == -EEXIST && key_file)
		snprintf(why, why_size,
		         "key file %s already exists (a key from elsewhere is never adopted): "
		         "name a new file",
		         key_file);
	else if (r == -EEXIST)
		snprintf(why, why_size,
		         "%s/%s already exists (a key from elsewhere is never adopted): remove it "
		         "or init another directory",
		         dir, EMBEDDED_KEY_FILE);
	else if (r == -ESTALE)
		snprintf(why, why_size,
		         "%s%s%s was replaced while init wrote it: someone else writes there",
		         key_file ? "" : dir, key_file ? "" : "/",
		         key_file ? key_file : EMBEDDED_KEY_FILE);
	else if (r < 0 && key_file)
		snprintf(why, why_size, "cannot create the key file %s: %s", key_file,
		         strerrordesc_np(-r));
	if (r < 0)
		goto out;
	made_key = true;

	/* claim the name with our mode before SQLite creates anything */
	fd = openat(dirfd, EMBEDDED_DB_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	made_db = true;
	close(fd);

	r = init_db(s, dbpath);
out:
	store_free(s); /* closes the db before any unlink */
	if (r < 0) {
		if (made_db)
			unlink_db(dbpath);
		if (made_key)
			unlinkat(keydirfd, key_name, 0);
		if (made_lock)
			unlinkat(dirfd, EMBEDDED_LOCK_FILE, 0);
		if (made_dir)
			rmdir(dir);
	}
	if (keydirfd >= 0)
		close(keydirfd);
	if (dirfd >= 0)
		close(dirfd);
	free(key_copy);
	free(dbpath);
	return r;
}

int embedded_store_init(const char *dir)
{
	return embedded_store_init_why(dir, NULL, 0);
}

/* --- operations --- */

static int check_id(const char *id)
{
	return secret_id_valid_existing(id) ? 0 : -EINVAL;
}

/* The checks every change starts with: a store, writable, a valid ID. */
static int check_write(struct store *s, const char *id)
{
	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	return check_id(id);
}

/* One batch of a listing: rows read, and what their checks found. */
struct list_batch {
	struct secret_meta *meta; /* LIST_BATCH of them; n filled */
	struct row_auth *auth;
	enum row_problem *problem; /* list_verify's verdicts */
	size_t n, rows;            /* rows: read, n: kept */
	const struct store *s;
};

/* Reads the batch of rows after `last` (keyset pagination, one read
 * transaction: two ordered range queries merged) into b; *seen becomes
 * the last ID read.  Takes and lets go of the mutex. */
static int list_read(struct store *s, const char *last, struct list_batch *b, char **seen)
{
	sqlite3_stmt *st = NULL;
	size_t j = 0;
	int r, rc;

	b->n = b->rows = 0;
	store_lock_idle(s);
	r = tx_begin(s, false);
	if (r < 0) {
		pthread_mutex_unlock(&s->mutex);
		return r;
	}
	r = sql_prepare(s,
	                "SELECT id, " META_COLUMNS " FROM secrets "
	                "WHERE id > ?1 AND scopes < " DELETED_MIN " ORDER BY id LIMIT ?2",
	                &st);
	if (r == 0) {
		const char *id = NULL;
		sqlite3_bind_text(st, 1, last, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, LIST_BATCH);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct secret_meta *m = &b->meta[b->n];

			b->rows++;
			meta_from_row(st, 1, m, &b->auth[b->n]);
			if (!(m->id = strdup(col_text(st, 0)))) {
				r = -ENOMEM;
				break;
			}
			id = m->id;
			b->n++;
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = sql_fail(s, rc);
		if (r == 0 && id) {
			free(*seen);
			if (!(*seen = strdup(id)))
				r = -ENOMEM;
		}
		sql_done(s, st);
		st = NULL;
	}
	if (r == 0 && b->n > 0)
		r = sql_prepare(s,
		                "SELECT id, key, value FROM labels "
		                "WHERE id > ?1 AND id <= ?2 ORDER BY id, key",
		                &st);
	if (r == 0 && b->n > 0) {
		sqlite3_bind_text(st, 1, last, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, *seen, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *lid = col_text(st, 0);
			int c = -1;

			while (j < b->n && (c = strcmp(b->meta[j].id, lid)) < 0)
				j++;
			if (j < b->n && c == 0) {
				if (b->meta[j].labels.n == LABELS_MAX) {
					b->auth[j].too_many = true;
					continue;
				}
				r = labels_append(&b->meta[j].labels, col_text(st, 1),
				                  col_text(st, 2));
				if (r < 0)
					break;
			}
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = sql_fail(s, rc);
		sql_done(s, st);
	}
	r = tx_end(s, r);
	pthread_mutex_unlock(&s->mutex);
	return r;
}

/* Every row of b checked (its MAC: most of a listing's cost); touches
 * only b and the store's read-only keys, so it runs on a thread of its
 * own while the next batch is read. */
static void *list_verify(void *arg)
{
	struct list_batch *b = arg;
	for (size_t i = 0; i < b->n; i++)
		b->problem[i] = row_check(b->s, &b->meta[i], &b->auth[i]);
	return NULL;
}

static void list_batch_clear(struct list_batch *b)
{
	for (size_t i = 0; b->meta && i < b->n; i++)
		secret_meta_clear(&b->meta[i]);
	b->n = b->rows = 0;
}

static void list_batch_free(struct list_batch *b)
{
	list_batch_clear(b);
	free(b->meta);
	if (b->auth)
		sodium_memzero(b->auth, LIST_BATCH * sizeof(*b->auth));
	free(b->auth);
	free(b->problem);
}

static int list_batch_init(const struct store *s, struct list_batch *b)
{
	*b = (struct list_batch){ .s = s };
	b->meta = calloc(LIST_BATCH, sizeof(*b->meta));
	b->auth = calloc(LIST_BATCH, sizeof(*b->auth));
	b->problem = calloc(LIST_BATCH, sizeof(*b->problem));
	return b->meta && b->auth && b->problem ? 0 : -ENOMEM;
}

/* Batch by batch, in ID order; fn runs without the mutex, and only for
 * rows that verified.  Batch k's rows are verified on a second thread
 * while batch k+1 is read (a listing at mount checks a MAC per secret:
 * with one thread, half its time).  A row that does not verify is left
 * out with a line: one tampered secret hides no other. */
static int embedded_list(struct store *s, store_list_fn fn, void *userdata)
{
	struct list_batch batch[2], *cur = &batch[0], *next = &batch[1];
	char *last = NULL, *seen = NULL;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = list_batch_init(s, &batch[0]);
	if (r == 0)
		r = list_batch_init(s, &batch[1]);
	if (r == 0 && !(last = strdup("")))
		r = -ENOMEM;
	if (r == 0)
		r = list_read(s, last, cur, &seen);
	while (r == 0 && cur->rows > 0) {
		pthread_t verifier;
		bool threaded = cur->rows == LIST_BATCH &&
		                pthread_create(&verifier, NULL, list_verify, cur) == 0;
		if (!threaded)
			list_verify(cur);
		/* the next batch starts after this one's last ID */
		if (cur->rows == LIST_BATCH) {
			free(last);
			last = seen ? strdup(seen) : NULL;
			r = last ? list_read(s, last, next, &seen) : -ENOMEM;
		}
		if (threaded)
			pthread_join(verifier, NULL);
		for (size_t i = 0; r == 0 && i < cur->n; i++) {
			if (cur->problem[i] != ROW_OK)
				row_log(cur->problem[i], cur->meta[i].id, true);
			else
				r = fn(userdata, &cur->meta[i]);
		}
		list_batch_clear(cur);
		struct list_batch *t = cur;
		cur = next;
		next = t;
	}
	list_batch_free(&batch[0]);
	list_batch_free(&batch[1]);
	free(last);
	free(seen);
	return r;
}

static int embedded_stat(struct store *s, const char *id, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	int r;

	if (!s || !ret_meta)
		return -EINVAL;
	r = check_id(id);
	if (r < 0)
		return r;
	store_lock_idle(s);
	r = tx_begin(s, false);
	if (r == 0) {
		struct row_auth a;
		r = load_meta_locked(s, id, true, &m, &a);
		if (r == 0 && a.deleted)
			r = -ENOENT;
		sodium_memzero(&a, sizeof(a));
		r = tx_end(s, r);
	}
	pthread_mutex_unlock(&s->mutex);
	if (r < 0) {
		secret_meta_clear(&m);
		return r;
	}
	*ret_meta = m;
	return 0;
}

/* Opens a sealed version of the life l of id into a value; sealed is
 * left as it is.  With cur (the verified row), the version must be its
 * current one, exactly as the row says. */
static int open_sealed_keep(struct store *s, const char *id, const struct life *l,
                            const struct sealed *sealed, const struct row *cur,
                            struct secret_value **ret_value)
{
	struct secret_value *v = NULL;
	struct seal_place p = { .id = id,
		                .incarnation = l->incarnation,
		                .nonce = l->nonce,
		                .version = sealed->version,
		                .revision = sealed->revision,
		                .mtime_ns = sealed->mtime_ns };
	int r = 0;

	if (cur && (sealed->version != cur->version || sealed->revision != cur->value_revision ||
	            sealed->mtime_ns != cur->mtime_ns || sealed->size != cur->size)) {
		log_error("embedded store: %s: version %" PRIu64
		          " does not match the authenticated metadata (changed outside secretsfs)",
		          id, sealed->version);
		r = -EIO;
	}
	if (r == 0) {
		r = seal_value_open(s->keys, &p, sealed->ct, sealed->ctlen, &v);
		if (r == -EBADMSG) {
			log_error("embedded store: value of %s version %" PRIu64
			          " failed authentication (tampered or copied ciphertext)",
			          id, sealed->version);
			r = -EIO;
		}
	}
	if (r < 0)
		return r;
	if (v->len != sealed->size) {
		log_error("embedded store: value of %s version %" PRIu64
		          " does not have its recorded size",
		          id, sealed->version);
		secret_value_free(v);
		return -EIO;
	}
	v->version = sealed->version;
	v->revision = sealed->revision;
	v->mtime_ns = sealed->mtime_ns;
	*ret_value = v;
	return 0;
}

/* open_sealed_keep, and frees what sealed held. */
static int open_sealed(struct store *s, const char *id, const struct life *l, struct sealed *sealed,
                       const struct row *cur, struct secret_value **ret_value)
{
	int r = open_sealed_keep(s, id, l, sealed, cur, ret_value);
	free(sealed->ct);
	sealed->ct = NULL;
	return r;
}

/* --- the value cache: opens without SQL --- */

/*
 * An open of a secret's current value needs no SQLite transaction when
 * its current version's ciphertext and the verified row it belongs to are
 * in memory: one entry per recently read secret (a bucket by ID, the last
 * one read wins).  Each open still decrypts, and so authenticates, that
 * ciphertext into its own locked snapshot (open_sealed_keep): what is
 * kept here is ciphertext, as in store.db, never plaintext.
 *
 * Why it is sound: this process is the store's only writer.  store.lock
 * is flock'ed for the life of the open store (take_lock: one daemon per
 * store), and every write transaction this process makes begins in
 * tx_begin(), which bumps value_gen; an entry counts only while its gen is
 * value_gen, so nothing read before a change is served after it begins
 * (the whole cache goes at once: changes are rare next to opens, and
 * there is no per-ID invalidation to forget).  An entry is filled from a
 * read transaction that ran under the mutex, with the gen read there.
 *
 * Another process may still commit to store.db behind the lock while
 * mounted (sqlite3 by hand; docs/threat-model.md, "replace rows while
 * the store is mounted"): every entry also carries the WAL-index header
 * of store.db-shm as it was before its read (wal_map), and any commit
 * changes that header, so after one nothing cached counts and the next
 * open reads and verifies the rows as before.  A change that bypasses
 * SQLite's WAL (bytes written into store.db itself) is not seen by SQLite
 * either until it reads those pages again; the next mount verifies every
 * row and the store digest.
 */
/* What an entry was read at: value_gen and store.db-shm's WAL-index
 * header (SQLite's walformat: the header's first copy, 48 bytes, which a
 * commit writes last; its change counter, frame count and salts change
 * with every commit and checkpoint, whoever makes them). */
#define WAL_HDR_WORDS 12
struct value_stamp {
	uint64_t gen;
	uint32_t wal[WAL_HDR_WORDS];
};

struct value_entry {
	char *id; /* NULL: empty */
	struct value_stamp stamp;
	struct row row;       /* verified */
	struct sealed sealed; /* the row's current version; ct owned */
};

/* Maps the WAL-index header of the database at dbpath (its -shm file,
 * which SQLite keeps while the connection is open), so that the cache
 * also sees commits of other processes behind the lock (sqlite3 on
 * store.db while mounted): those are refused at the next read as before,
 * at the price of one 48-byte compare per open.  Without it (no -shm: an
 * immutable store, which nobody changes) the cache goes by value_gen. */
static void wal_map(struct store *s, const char *dbpath)
{
	char *path = NULL;
	struct stat st;
	if (asprintf(&path, "%s-shm", dbpath) < 0)
		return;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	free(path);
	long page = sysconf(_SC_PAGESIZE);
	size_t len = page > 0 ? (size_t)page : 4096;
	/* one page, of which only the header is read: within the file
	 * (136 bytes of WAL-index header at least), whatever the page size */
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (size_t)st.st_size >= WAL_HDR_WORDS * sizeof(uint32_t) * 2 + 40) {
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			s->wal_hdr = p;
			s->wal_map_len = len;
		}
	}
	if (fd >= 0)
		s->wal_fd = fd; /* never closed before the database: see wal_fd */
	if (!s->wal_hdr && !s->read_only)
		log_warn("store %s: its -shm file could not be mapped; opens read the store each "
		         "time (no value cache)",
		         dbpath);
}

/* A writable store whose -shm could not be mapped (wal_map) could be
 * changed behind the lock unseen: no value cache for it. */
static bool value_cache_on(const struct store *s)
{
	return s->wal_hdr || s->read_only;
}

static void value_stamp_now(const struct store *s, struct value_stamp *ret)
{
	ret->gen = __atomic_load_n(&s->value_gen, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < WAL_HDR_WORDS; i++)
		ret->wal[i] = s->wal_hdr ? __atomic_load_n(&s->wal_hdr[i], __ATOMIC_ACQUIRE) : 0;
}

static bool value_stamp_equal(const struct value_stamp *a, const struct value_stamp *b)
{
	return a->gen == b->gen && memcmp(a->wal, b->wal, sizeof(a->wal)) == 0;
}

static struct value_entry *value_entry_of(struct store *s, const char *id)
{
	return &s->values[id_hash(id) % VALUE_CACHE_SIZE];
}

static void value_entry_clear(struct value_entry *e)
{
	free(e->id);
	free(e->sealed.ct);
	*e = (struct value_entry){ 0 };
}

static struct value_entry *values_alloc(void)
{
	return calloc(VALUE_CACHE_SIZE, sizeof(struct value_entry));
}

static void values_free(struct store *s)
{
	for (size_t i = 0; s->values && i < VALUE_CACHE_SIZE; i++)
		value_entry_clear(&s->values[i]);
	free(s->values);
	s->values = NULL;
}

/* The current value of id from the cache: 1 (*ret_value set), 0 if it
 * is not there, or get_value's -errno (-ENOENT: another incarnation). */
static int value_cached(struct store *s, const char *id, uint64_t incarnation,
                        struct secret_value **ret_value)
{
	struct value_stamp now;
	int r = 0;
	if (!value_cache_on(s))
		return 0;
	value_stamp_now(s, &now);
	pthread_rwlock_rdlock(&s->value_lock);
	struct value_entry *e = value_entry_of(s, id);
	if (e->id && value_stamp_equal(&e->stamp, &now) && strcmp(e->id, id) == 0) {
		if (incarnation && incarnation != e->row.life.incarnation)
			r = -ENOENT;
		else if ((r = open_sealed_keep(s, id, &e->row.life, &e->sealed, &e->row,
		                               ret_value)) == 0)
			r = 1;
	}
	pthread_rwlock_unlock(&s->value_lock);
	return r;
}

uint64_t embedded_transactions(struct store *s)
{
	pthread_mutex_lock(&s->mutex);
	uint64_t n = s->transactions;
	pthread_mutex_unlock(&s->mutex);
	return n;
}

void embedded_group_commits(struct store *s, uint64_t *ret_commits, uint64_t *ret_changes)
{
	pthread_mutex_lock(&s->mutex);
	*ret_commits = s->batch.commits;
	*ret_changes = s->batch.changes;
	pthread_mutex_unlock(&s->mutex);
}

/* Keeps what a get_value of id's current value read after stamp (its
 * row, the sealed version: taken over, freed if not kept). */
static void value_keep(struct store *s, const char *id, const struct value_stamp *stamp,
                       const struct row *row, struct sealed *sealed)
{
	char *copy = sealed->ctlen <= VALUE_CACHE_CT_MAX && value_cache_on(s) ? strdup(id) : NULL;
	if (!copy) {
		free(sealed->ct);
		sealed->ct = NULL;
		return;
	}
	pthread_rwlock_wrlock(&s->value_lock);
	struct value_entry *e = value_entry_of(s, id);
	value_entry_clear(e);
	*e = (struct value_entry){ .id = copy, .stamp = *stamp, .row = *row, .sealed = *sealed };
	pthread_rwlock_unlock(&s->value_lock);
	sealed->ct = NULL;
}

/* The current value of a verified row (a change's source); mutex held. */
static int current_value_locked(struct store *s, const char *id, const struct row *row,
                                struct secret_value **ret_value)
{
	struct sealed sealed = { 0 };
	int r = load_current_ct_locked(s, id, row, &sealed);
	if (r == 0)
		r = open_sealed(s, id, &row->life, &sealed, row, ret_value);
	return r;
}

static int embedded_get_value(struct store *s, const char *id, uint64_t incarnation,
                              uint64_t version, struct secret_value **ret_value)
{
	struct sealed sealed = { 0 };
	struct row row;
	int r;

	if (!s || !ret_value)
		return -EINVAL;
	r = check_id(id);
	if (r < 0)
		return r;
	if (!version && (r = value_cached(s, id, incarnation, ret_value)) != 0)
		return r < 0 ? r : 0;
	/* taken before the transaction: a commit between the two leaves an
	 * entry that never counts, never a stale one that does */
	struct value_stamp stamp;
	value_stamp_now(s, &stamp);
	r = tx_lock(s, false);
	if (r < 0)
		return r;
	/* the verified row says which version is current, and which exist */
	r = row_locked(s, id, incarnation, &row);
	if (r == -ESTALE || (r == 0 && version > row.version))
		r = -ENOENT;
	if (r == 0)
		r = load_ct_locked(s, id, version ? version : row.version, &sealed);
	r = tx_unlock(s, r);
	if (r < 0) {
		free(sealed.ct);
		return r;
	}
	/* decrypted without the mutex */
	if (version)
		return open_sealed(s, id, &row.life, &sealed, NULL, ret_value);
	r = open_sealed_keep(s, id, &row.life, &sealed, &row, ret_value);
	if (r == 0)
		value_keep(s, id, &stamp, &row, &sealed);
	free(sealed.ct);
	return r;
}

static int embedded_list_versions(struct store *s, const char *id, uint64_t incarnation,
                                  struct secret_version **ret_versions, size_t *ret_n)
{
	sqlite3_stmt *st = NULL;
	struct secret_version *v = NULL, *nv;
	struct row row;
	size_t n = 0, cap = 0;
	int r, rc;

	if (!s || !ret_versions || !ret_n)
		return -EINVAL;
	r = check_id(id);
	if (r < 0)
		return r;
	r = tx_lock(s, false);
	if (r < 0)
		goto out;
	r = row_locked(s, id, incarnation, &row);
	if (r == -ESTALE)
		r = -ENOENT;
	if (r == 0)
		r = sql_prepare(s,
		                "SELECT version, size, mtime_ns FROM versions WHERE id = ?1 "
		                "AND version <= ?2 ORDER BY version",
		                &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)row.version);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				v = nv;
			}
			v[n].version = (uint64_t)sqlite3_column_int64(st, 0);
			v[n].size = (uint32_t)sqlite3_column_int64(st, 1);
			v[n].mtime_ns = sqlite3_column_int64(st, 2);
			n++;
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = sql_fail(s, rc);
		sql_done(s, st);
	}
	r = tx_unlock(s, r);
out:
	if (r < 0) {
		free(v);
		return r;
	}
	*ret_versions = v;
	*ret_n = n;
	return 0;
}

static int delete_secret_locked(struct store *s, const char *id);

/* Inserts a new secret row with its labels and first version; mutex held,
 * inside a write transaction at revision rev.  -EEXIST if id exists. */
static int insert_secret_locked(struct store *s, const char *id, uint64_t rev, scope_set scopes,
                                const struct labels *labels, const uint8_t *value, size_t len)
{
	sqlite3_stmt *st = NULL;
	struct row row;
	struct life l = { .incarnation = rev };
	int64_t now = now_ns();
	int r = row_locked(s, id, 0, &row);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	if (row.deleted) {
		/* one row per ID: the deleted secret kept for undo goes */
		r = delete_secret_locked(s, id);
		if (r < 0)
			return r;
		log_info("embedded store: %s: the deleted secret kept for undo is purged: the ID "
		         "is created again",
		         id);
	}
	seal_nonce_new(l.nonce); /* this life's, never another's */
	r = sql_prepare(s,
	                "INSERT INTO secrets (id, scopes, version, size, ctime_ns, mtime_ns, "
	                "incarnation, revision, value_revision, nonce, mac) "
	                "VALUES (?1, ?2, 0, 0, ?3, ?3, ?4, ?4, ?4, ?5, x'')",
	                &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, scopes);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)rev);
	sqlite3_bind_blob(st, 5, l.nonce, sizeof(l.nonce), SQLITE_STATIC);
	r = sql_step_done(s, st);
	sql_done(s, st);
	if (r == 0)
		digest_secret(s, +1, id, rev, NULL, 0); /* (no MAC until it is sealed) */
	if (r == 0)
		r = insert_labels_locked(s, id, labels);
	if (r == 0)
		r = write_version_locked(s, id, &l, 1, rev, value, len, now);
	return r;
}

/* Deletes the row of id (known to exist); mutex held, in a transaction. */
static int delete_secret_locked(struct store *s, const char *id)
{
	sqlite3_stmt *st = NULL;
	/* its versions first (not left to the cascade): each one's term
	 * goes out of D, then the row's */
	int rc, r = sql_prepare(s, "DELETE FROM versions WHERE id = ?1 RETURNING version, revision",
	                        &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	r = drop_versions_step(s, st, id);
	sql_done(s, st);
	if (r == 0)
		r = sql_prepare(s, "DELETE FROM secrets WHERE id = ?1 RETURNING incarnation, mac",
		                &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		digest_secret(s, -1, id, (uint64_t)sqlite3_column_int64(st, 0),
		              sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
		rc = sqlite3_step(st);
		r = rc == SQLITE_DONE ? 0 : sql_fail(s, rc);
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : sql_fail(s, rc);
	}
	sql_done(s, st);
	if (r == 0)
		s->dropped_values = true; /* its versions went with it (cascade) */
	return r;
}

/* Sets a row's revision (a change that wrote no value); mutex held. */
static int touch_locked(struct store *s, const char *id, uint64_t rev)
{
	sqlite3_stmt *st = NULL;
	int r = sql_prepare(s, "UPDATE secrets SET revision = ?2 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)rev);
	r = sql_step_done(s, st);
	sql_done(s, st);
	return r;
}

/* The record a change returns: id's metadata as the transaction left it,
 * authenticated.  Mutex held, inside it. */
static int record_locked(struct store *s, const char *id, struct secret_meta *ret_meta)
{
	return seal_row_locked(s, id, ret_meta);
}

/* A deletion record. */
static int deletion_record(const char *id, uint64_t incarnation, uint64_t rev,
                           struct store_change *ret)
{
	if (!ret)
		return 0;
	char *copy = strdup(id);
	if (!copy)
		return -ENOMEM;
	*ret = (struct store_change){
		.kind = STORE_DELETED,
		.meta = { .id = copy, .incarnation = incarnation, .revision = rev }
	};
	return 0;
}

/* Ends a change: commits if r == 0, hands the record over or drops it. */
static int change_end(struct store *s, int r, struct secret_meta *m, struct secret_meta *ret_meta)
{
	return secret_meta_hand_over(tx_unlock(s, r), m, ret_meta);
}

static int embedded_create(struct store *s, const char *id, scope_set scopes,
                           const struct labels *labels, const uint8_t *value, size_t len,
                           struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	uint64_t rev = 0;
	int r;

	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	if (!secret_id_valid_new(id) || !secret_scopes_valid(scopes))
		return -EINVAL;
	r = secret_labels_valid(labels);
	if (r == 0)
		r = secret_value_len_valid(value, len);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = next_revision_locked(s, &rev);
	if (r == 0)
		r = insert_secret_locked(s, id, rev, scopes, labels, value, len);
	if (r == 0)
		r = record_locked(s, id, &m);
	return change_end(s, r, &m, ret_meta);
}

static int embedded_put_value(struct store *s, const char *id, uint64_t incarnation,
                              uint64_t base_revision, const uint8_t *value, size_t len,
                              struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	struct row row;
	uint64_t rev = 0;
	int r;

	r = check_write(s, id);
	if (r == 0)
		r = secret_value_len_valid(value, len);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = row_locked(s, id, incarnation, &row);
	if (r == 0 && base_revision && base_revision != row.value_revision)
		r = -ESTALE;
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0)
		r = write_version_locked(s, id, &row.life, row.version + 1, rev, value, len,
		                         now_ns());
	if (r == 0)
		r = record_locked(s, id, &m);
	return change_end(s, r, &m, ret_meta);
}

static int embedded_exchange_values(struct store *s, const char *a, uint64_t a_incarnation,
                                    const char *b, uint64_t b_incarnation,
                                    struct secret_meta *ret_a, struct secret_meta *ret_b)
{
	struct secret_value *va = NULL, *vb = NULL;
	struct secret_meta ma = { 0 }, mb = { 0 };
	uint64_t rev = 0;
	int64_t now = now_ns();
	int r;

	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	if (check_id(a) < 0 || check_id(b) < 0 || strcmp(a, b) == 0)
		return -EINVAL;

	r = tx_lock(s, true);
	if (r < 0)
		return r;
	struct row ra, rb;
	r = row_locked(s, a, a_incarnation, &ra);
	if (r == 0)
		r = row_locked(s, b, b_incarnation, &rb);
	if (r == 0)
		r = current_value_locked(s, a, &ra, &va);
	if (r == 0)
		r = current_value_locked(s, b, &rb, &vb);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0)
		r = write_version_locked(s, a, &ra.life, ra.version + 1, rev, vb->data, vb->len,
		                         now);
	if (r == 0)
		r = write_version_locked(s, b, &rb.life, rb.version + 1, rev, va->data, va->len,
		                         now);
	if (r == 0)
		r = record_locked(s, a, ret_a ? &ma : NULL);
	if (r == 0)
		r = record_locked(s, b, ret_b ? &mb : NULL);
	r = tx_unlock(s, r);
	secret_value_free(va);
	secret_value_free(vb);
	if (r < 0) {
		secret_meta_clear(&ma);
		secret_meta_clear(&mb);
		return r;
	}
	if (ret_a)
		*ret_a = ma;
	if (ret_b)
		*ret_b = mb;
	return 0;
}

static int embedded_rename(struct store *s, const char *from, uint64_t from_incarnation,
                           uint64_t from_revision, const char *to, uint64_t to_incarnation,
                           scope_set to_scopes, const struct labels *to_labels,
                           struct store_change *ret_from, struct secret_meta *ret_to)
{
	struct secret_value *v = NULL;
	struct secret_meta m = { 0 };
	struct store_change gone = { 0 };
	struct row rf, rt;
	uint64_t rev = 0;
	int r;

	r = check_write(s, from);
	if (r == 0)
		r = check_id(to);
	if (r == 0 && strcmp(from, to) == 0)
		r = -EINVAL;
	if (r == 0 && !to_incarnation &&
	    (!secret_id_valid_new(to) || !secret_scopes_valid(to_scopes)))
		r = -EINVAL;
	if (r == 0 && !to_incarnation)
		r = secret_labels_valid(to_labels);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = row_locked(s, from, from_incarnation, &rf);
	if (r == 0 && from_revision && from_revision != rf.revision)
		r = -ESTALE;
	if (r == 0 && to_incarnation)
		r = row_locked(s, to, to_incarnation, &rt);
	if (r == 0)
		r = current_value_locked(s, from, &rf, &v);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0 && to_incarnation)
		r = write_version_locked(s, to, &rt.life, rt.version + 1, rev, v->data, v->len,
		                         now_ns());
	else if (r == 0)
		r = insert_secret_locked(s, to, rev, to_scopes, to_labels, v->data, v->len);
	if (r == 0)
		r = delete_secret_locked(s, from);
	if (r == 0)
		r = record_locked(s, to, &m);
	if (r == 0)
		r = deletion_record(from, rf.life.incarnation, rev, ret_from ? &gone : NULL);
	secret_value_free(v);
	r = change_end(s, r, &m, ret_to);
	if (r < 0)
		store_change_clear(&gone);
	else if (ret_from)
		*ret_from = gone;
	return r;
}

/* Deletes live secret id (verified) by keeping it for undo: its row
 * marked deleted at revision rev, now, and sealed again; its labels and
 * versions stay.  Mutex held, in a write transaction. */
static int keep_deleted_locked(struct store *s, const char *id, uint64_t rev)
{
	sqlite3_stmt *st = NULL;
	int r = sql_prepare(s,
	                    "UPDATE secrets SET scopes = scopes << " STRINGIFY(
	                        DELETED_SHIFT) ", "
	                                       "revision = ?2, mtime_ns = ?3 WHERE id = ?1",
	                    &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)rev);
	sqlite3_bind_int64(st, 3, now_ns());
	r = sql_step_done(s, st);
	sql_done(s, st);
	return r == 0 ? seal_row_locked(s, id, NULL) : r;
}

static int embedded_delete(struct store *s, const char *id, uint64_t incarnation,
                           struct store_change *ret_change)
{
	struct store_change gone = { 0 };
	struct row row;
	uint64_t rev = 0;
	int r;

	r = check_write(s, id);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = row_locked(s, id, incarnation, &row);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0 && s->keep_deleted_ns > 0)
		r = keep_deleted_locked(s, id, rev);
	else if (r == 0)
		r = delete_secret_locked(s, id);
	if (r == 0)
		r = deletion_record(id, row.life.incarnation, rev, ret_change ? &gone : NULL);
	r = tx_unlock(s, r);
	if (r < 0)
		store_change_clear(&gone);
	else if (ret_change)
		*ret_change = gone;
	return r;
}

static int embedded_set_labels(struct store *s, const char *id, uint64_t incarnation,
                               const struct labels *labels, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	sqlite3_stmt *st = NULL;
	struct row row;
	uint64_t rev = 0;
	int r;

	r = check_write(s, id);
	if (r == 0)
		r = secret_labels_valid(labels);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = row_locked(s, id, incarnation, &row);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0)
		r = sql_prepare(s, "DELETE FROM labels WHERE id = ?1", &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		r = sql_step_done(s, st);
		sql_done(s, st);
	}
	if (r == 0)
		r = insert_labels_locked(s, id, labels);
	if (r == 0)
		r = touch_locked(s, id, rev);
	if (r == 0)
		r = record_locked(s, id, &m);
	return change_end(s, r, &m, ret_meta);
}

static int embedded_set_scopes(struct store *s, const char *id, uint64_t incarnation,
                               scope_set scopes, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	sqlite3_stmt *st = NULL;
	struct row row;
	uint64_t rev = 0;
	int r;

	r = check_write(s, id);
	if (r == 0 && !secret_scopes_valid(scopes))
		r = -EINVAL;
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = row_locked(s, id, incarnation, &row);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0)
		r = sql_prepare(s, "UPDATE secrets SET scopes = ?2, revision = ?3 WHERE id = ?1",
		                &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, scopes);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)rev);
		r = sql_step_done(s, st);
		sql_done(s, st);
	}
	if (r == 0)
		r = record_locked(s, id, &m);
	return change_end(s, r, &m, ret_meta);
}


/* --- deleted secrets kept for undo (STORE_CAP_UNDELETE) --- */

/* The IDs of the deleted secrets, in ID order; mutex held, in a
 * transaction.  With before > 0 only those deleted at or before it.  One
 * scan of secrets, which is in ID order (format 4 walked its ID index
 * for the order and looked up every row, deleted or not: ~4 s of a
 * 1,000,000-secret mount). */
static int deleted_ids_locked(struct store *s, int64_t before, char ***ret_ids, size_t *ret_n)
{
	return ids_query_locked(s,
	                        "SELECT id FROM secrets WHERE scopes >= " DELETED_MIN
	                        " AND (?1 = 0 OR mtime_ns <= ?1) ORDER BY id",
	                        before, ret_ids, ret_n);
}

static void ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static int embedded_list_deleted(struct store *s, store_list_fn fn, void *userdata)
{
	struct secret_meta *v = NULL;
	char **ids = NULL;
	size_t n = 0, got = 0;
	if (!s || !fn)
		return -EINVAL;
	int r = tx_lock(s, false);
	if (r < 0)
		return r;
	r = deleted_ids_locked(s, 0, &ids, &n);
	if (r == 0 && n && !(v = calloc(n, sizeof(*v))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct row_auth a;
		int lr = load_meta_locked(s, ids[i], true, &v[got], &a);
		if (lr == -EIO)
			continue; /* logged, left out: one tampered row hides no other */
		r = lr;
		if (r == 0 && a.deleted) {
			v[got].scopes >>= DELETED_SHIFT;
			got++;
		} else if (r == 0) {
			secret_meta_clear(&v[got]);
		}
	}
	r = tx_unlock(s, r);
	for (size_t i = 0; r == 0 && i < got; i++)
		r = fn(userdata, &v[i]);
	for (size_t i = 0; i < got; i++)
		secret_meta_clear(&v[i]);
	free(v);
	ids_free(ids, n);
	return r;
}

static int embedded_get_deleted_value(struct store *s, const char *id, uint64_t incarnation,
                                      struct secret_value **ret_value)
{
	struct sealed sealed = { 0 };
	struct row row = { 0 };
	if (!s || !ret_value)
		return -EINVAL;
	int r = check_id(id);
	if (r == 0)
		r = tx_lock(s, false);
	if (r < 0)
		return r;
	r = deleted_row_locked(s, id, incarnation, &row);
	if (r == -ESTALE)
		r = -ENOENT;
	if (r == 0)
		r = load_ct_locked(s, id, row.version, &sealed);
	r = tx_unlock(s, r);
	if (r == 0 && (sealed.revision != row.value_revision || sealed.size != row.size)) {
		log_error("embedded store: %s (deleted): version %" PRIu64
		          " does not match the authenticated metadata (changed outside secretsfs)",
		          id, row.version);
		r = -EIO;
	}
	if (r < 0) {
		free(sealed.ct);
		return r;
	}
	return open_sealed(s, id, &row.life, &sealed, NULL, ret_value);
}


/* Every kept version of id up to version upto, sealed for the life
 * `from` under the store's keys, opened and sealed again for the life
 * `to` under keys `to_keys`: as written at revision rev (0: each keeps its
 * own), size and mtime kept, the digest's terms with them.  For an
 * undelete (a new life) and a rekey (new keys).  Mutex held, in a write
 * transaction. */
static int reseal_versions_for_locked(struct store *s, const char *id, const struct life *from,
                                      const struct seal_keys *to_keys, const struct life *to,
                                      uint64_t rev, uint64_t upto)
{
	uint64_t last = 0;
	for (;;) {
		sqlite3_stmt *st = NULL;
		struct sealed old = { 0 };
		struct secret_value *v = NULL;
		uint8_t *ct = NULL;
		size_t ctlen = 0;
		/* the next kept version, one at a time (keep_versions has no
		 * bound) */
		int rc, r = sql_prepare(s,
		                        "SELECT min(version) FROM versions WHERE id = ?1 AND "
		                        "version > ?2 AND version <= ?3",
		                        &st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
		sqlite3_bind_int64(st, 3, upto ? (sqlite3_int64)upto : INT64_MAX);
		rc = sqlite3_step(st);
		bool more = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER;
		if (more)
			last = (uint64_t)sqlite3_column_int64(st, 0);
		if (rc != SQLITE_ROW)
			r = sql_fail(s, rc);
		sql_done(s, st);
		if (r < 0 || !more)
			return r;
		r = load_ct_locked(s, id, last, &old);
		uint64_t old_rev = old.revision, new_rev = rev ? rev : old.revision;
		struct seal_place p = { .id = id,
			                .incarnation = to->incarnation,
			                .nonce = to->nonce,
			                .version = last,
			                .revision = new_rev,
			                .mtime_ns = old.mtime_ns };
		if (r == 0)
			r = open_sealed(s, id, from, &old, NULL, &v); /* frees old.ct; logs */
		if (r == 0)
			r = seal_value(to_keys, &p, v->data, v->len, &ct, &ctlen);
		if (r == 0)
			r = sql_prepare(s,
			                "UPDATE versions SET ct = ?3, revision = ?4 WHERE id = ?1 "
			                "AND version = ?2",
			                &st);
		if (r == 0) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
			sqlite3_bind_blob(st, 3, ct, (int)ctlen, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)new_rev);
			r = sql_step_done(s, st);
			sql_done(s, st);
		}
		if (r == 0 && new_rev != old_rev) {
			digest_version(s, -1, id, last, old_rev);
			digest_version(s, +1, id, last, new_rev);
		}
		secret_value_free(v);
		free(ct);
		if (r < 0)
			return r;
	}
}

static int embedded_undelete(struct store *s, const char *id, uint64_t incarnation,
                             scope_set add_scopes, struct secret_meta *ret_meta)
{
	struct secret_meta m = { 0 };
	sqlite3_stmt *st = NULL;
	struct row row;
	uint64_t rev = 0;
	int r = check_write(s, id);
	if (r == 0 && add_scopes & ~SCOPE_ALL)
		r = -EINVAL;
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = deleted_row_locked(s, id, incarnation, &row);
	if (r == -ENOENT) {
		struct row live;
		if (row_locked(s, id, 0, &live) == 0)
			r = -EEXIST;
	}
	if (r == 0)
		r = next_revision_locked(s, &rev);
	/* a new life: a restored secret is never the incarnation that was
	 * deleted (whose inode, CAS bases and nonce are gone for good) */
	struct life to = { .incarnation = rev };
	seal_nonce_new(to.nonce);
	if (r == 0)
		r = reseal_versions_for_locked(s, id, &row.life, s->keys, &to, rev, row.version);
	/* the row's term as stored goes (seal_row_locked takes out the one
	 * of the row as it is about to be: no MAC yet) */
	uint8_t oldmac[SEAL_MAC_BYTES];
	if (r == 0) {
		struct secret_meta om = { 0 };
		struct row_auth a;
		r = load_meta_locked(s, id, false, &om, &a);
		memcpy(oldmac, a.mac, sizeof(oldmac));
		secret_meta_clear(&om);
	}
	if (r == 0) {
		digest_secret(s, -1, id, row.life.incarnation, oldmac, sizeof(oldmac));
		digest_secret(s, +1, id, rev, NULL, 0);
		r = sql_prepare(s,
		                "UPDATE secrets SET scopes = ?2, incarnation = ?3, revision = ?3, "
		                "value_revision = ?3, nonce = ?4, mac = x'', ctime_ns = ?5, "
		                "mtime_ns = (SELECT v.mtime_ns FROM versions v WHERE v.id = ?1 "
		                "AND v.version = secrets.version) WHERE id = ?1",
		                &st);
	}
	if (r == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)(row.scopes | add_scopes));
		sqlite3_bind_int64(st, 3, (sqlite3_int64)rev);
		sqlite3_bind_blob(st, 4, to.nonce, sizeof(to.nonce), SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, now_ns());
		r = sql_step_done(s, st);
		sql_done(s, st);
	}
	if (r == 0)
		r = record_locked(s, id, &m);
	sodium_memzero(&to, sizeof(to));
	return change_end(s, r, &m, ret_meta);
}

static int embedded_purge(struct store *s, const char *id, uint64_t incarnation)
{
	struct row row;
	uint64_t rev = 0;
	int r = check_write(s, id);
	if (r == 0)
		r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = deleted_row_locked(s, id, incarnation, &row);
	if (r == 0)
		r = next_revision_locked(s, &rev);
	if (r == 0)
		r = delete_secret_locked(s, id);
	return tx_unlock(s, r);
}

static int embedded_purge_expired(struct store *s, int64_t now, unsigned *ret_n)
{
	char **ids = NULL;
	size_t n = 0;
	unsigned purged = 0;
	uint64_t rev = 0;
	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	int64_t before = s->keep_deleted_ns ? now - s->keep_deleted_ns : 0;
	if (s->keep_deleted_ns && before <= 0)
		before = 1; /* (a clock before the epoch) */
	int r = tx_lock(s, true);
	if (r < 0)
		return r;
	r = deleted_ids_locked(s, before, &ids, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct row row;
		/* only what verifies as deleted goes: a row that does not
		 * stays for a person to look at (logged) */
		int dr = deleted_row_locked(s, ids[i], 0, &row);
		if (dr == -EIO)
			continue;
		r = dr;
		if (r == 0 && !rev)
			r = next_revision_locked(s, &rev);
		if (r == 0)
			r = delete_secret_locked(s, ids[i]);
		if (r == 0)
			purged++;
	}
	r = tx_unlock(s, r);
	ids_free(ids, n);
	if (r == 0 && ret_n)
		*ret_n = purged;
	return r;
}

const struct store_ops embedded_store_ops = {
	.name = "embedded",
	.caps = STORE_CAP_VERSIONS | STORE_CAP_EXCHANGE | STORE_CAP_UNDELETE,
	.open = embedded_open,
	.close = embedded_close,
	.list = embedded_list,
	.stat = embedded_stat,
	.get_value = embedded_get_value,
	.list_versions = embedded_list_versions,
	.create = embedded_create,
	.put_value = embedded_put_value,
	.exchange_values = embedded_exchange_values,
	.rename = embedded_rename,
	.delete_secret = embedded_delete,
	.set_labels = embedded_set_labels,
	.set_scopes = embedded_set_scopes,
	.watch = NULL,
	.list_deleted = embedded_list_deleted,
	.get_deleted_value = embedded_get_deleted_value,
	.undelete = embedded_undelete,
	.purge = embedded_purge,
	.purge_expired = embedded_purge_expired,
};

/* --- backup and restore (secretsfs backup / restore) --- */

/* Copies the database at src (live: another process may be writing it,
 * in WAL mode) into the new file dst through SQLite's online backup: one
 * read transaction, so the copy is one committed state of the store, byte
 * for byte what the store holds (ciphertexts, MACs, digest head), and a
 * database in WAL mode with no -wal file beside it.  dst is made 0600
 * under a temporary name and renamed into place only when complete;
 * -EEXIST if dst exists.  why gets a line for a failure. */
static int db_copy(const char *src, bool live, const char *dst, char *why, size_t why_size)
{
	sqlite3 *from = NULL, *to = NULL;
	static const char suffix[] = ".partial";
	size_t n = strlen(dst);
	char *tmp = malloc(n + sizeof(suffix));
	struct stat st;
	int rc = SQLITE_OK, r = 0, fd = -1;
	bool made = false;
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, dst, n);
	memcpy(tmp + n, suffix, sizeof(suffix));
	if (lstat(dst, &st) == 0) {
		snprintf(why, why_size, "%s exists: give a new file name", dst);
		r = -EEXIST;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_size, "cannot create %s: %s", tmp, strerrordesc_np(-r));
		goto out;
	}
	made = true;
	int flags = (live ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	/* a backup file is whole (no -wal beside it): read as immutable, so
	 * nothing (no -shm) is made beside it, on read-only media too */
	char *uri = live ? NULL : immutable_uri(src);
	if (!live && !uri) {
		r = -ENOMEM;
		goto out;
	}
	rc = sqlite3_open_v2(live ? src : uri, &from, live ? flags : flags | SQLITE_OPEN_URI, NULL);
	free(uri);
	if (rc == SQLITE_OK)
		rc = harden_db(from);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(from, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK) {
		snprintf(why, why_size, "cannot open %s: %s", src,
		         from ? sqlite3_errmsg(from) : sqlite3_errstr(rc));
		r = -EIO;
		goto out;
	}
	rc = sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = harden_db(to);
	sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(to, "main", from, "main") : NULL;
	if (b) {
		rc = sqlite3_backup_step(b, -1); /* all pages, in one read transaction */
		int frc = sqlite3_backup_finish(b);
		rc = rc == SQLITE_DONE ? frc : rc;
	} else if (rc == SQLITE_OK) {
		rc = sqlite3_errcode(to);
	}
	/* the copy as the store keeps itself: WAL, everything in the file */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(to, "PRAGMA journal_mode = WAL; PRAGMA quick_check;", NULL, NULL,
		                  NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, why_size, "copying %s failed: %s", src,
		         sqlite3_errcode(from) != SQLITE_OK ? sqlite3_errmsg(from)
		                                            : sqlite3_errmsg(to));
		r = -EIO;
		goto out;
	}
	rc = sqlite3_close(to);
	to = NULL;
	if (rc != SQLITE_OK || fsync(fd) < 0) {
		snprintf(why, why_size, "writing %s failed", tmp);
		r = -EIO;
		goto out;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		r = -errno;
		snprintf(why, why_size, "cannot rename %s to %s: %s", tmp, dst,
		         strerrordesc_np(-r));
		goto out;
	}
	made = false;
	/* the rename on disk too: its directory is tmp up to the last '/' */
	char *slash = strrchr(tmp, '/');
	if (slash)
		slash[slash == tmp ? 1 : 0] = '\0'; /* "/f" -> "/" */
	int dfd = open(slash ? tmp : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	if (to)
		sqlite3_close_v2(to);
	if (from)
		sqlite3_close_v2(from);
	if (fd >= 0)
		close(fd);
	if (made)
		unlink_db(tmp);
	free(tmp);
	return r;
}

int embedded_store_backup(const char *dir, const char *file, char *why, size_t why_size)
{
	struct stat st;
	char *dbpath = path_join(dir, EMBEDDED_DB_FILE);
	if (!dbpath)
		return -ENOMEM;
	int r = 0;
	if (lstat(dbpath, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, why_size, "%s is not a secretsfs store (no %s in it)", dir,
		         EMBEDDED_DB_FILE);
		r = -ENOENT;
	}
	if (r == 0)
		r = db_copy(dbpath, true, file, why, why_size);
	free(dbpath);
	return r;
}

int embedded_store_restore(const char *file, const char *dir, const uint8_t *key, char *why,
                           size_t why_size)
{
	struct stat st;
	struct store *s = NULL;
	char *dbpath = path_join(dir, EMBEDDED_DB_FILE);
	if (!dbpath)
		return -ENOMEM;
	int r = 0;
	if (lstat(dbpath, &st) == 0) {
		snprintf(why, why_size, "%s already holds a store: restore into a new directory",
		         dir);
		r = -EEXIST;
	}
	if (r == 0 && (lstat(file, &st) < 0 || !S_ISREG(st.st_mode))) {
		snprintf(why, why_size, "%s is not a backup file", file);
		r = -ENOENT;
	}
	if (r == 0)
		r = db_copy(file, false, dbpath, why, why_size);
	if (r < 0) {
		free(dbpath);
		return r;
	}
	/* the copy must be a store this key opens, whose rows match its
	 * digest: the open checks all of it (and says what fails) */
	struct store_config cfg = { .source = dir, .key = key };
	r = embedded_open(&cfg, &s);
	if (r < 0) {
		snprintf(why, why_size,
		         "%s does not open as a store with %s/%s (%s): nothing restored", file, dir,
		         EMBEDDED_KEY_FILE, r == -EKEYREJECTED ? "wrong key" : strerrordesc_np(-r));
		unlink_db(dbpath);
	}
	embedded_close(s);
	free(dbpath);
	return r;
}

/* --- rekey (secretsfs rekey) --- */


/* The whole store sealed again under new_key, in one write transaction:
 * every row verified under the old keys (one that does not refuses the
 * rekey, naming it), every version re-sealed, every MAC, the key-check
 * record and the digest made under the new keys.  A kill before COMMIT
 * leaves the store as it was, under the old key.  Mutex held. */
static int rekey_locked(struct store *s, const uint8_t *new_key,
                        void (*progress)(size_t done, size_t total))
{
	struct seal_keys *nk = NULL, *ok = s->keys;
	uint8_t *okey = s->key, *nkey = secret_locked_alloc(STORE_KEY_BYTES);
	char **ids = NULL;
	size_t n = 0;
	if (!nkey)
		return -ENOMEM;
	memcpy(nkey, new_key, STORE_KEY_BYTES);
	int r = sodium_mprotect_readonly(nkey) == 0 ? 0 : -errno;
	if (r == 0)
		r = seal_keys_new(nkey, s->store_id, &nk);
	if (r == 0)
		r = tx_begin(s, true);
	if (r < 0) {
		sodium_free(nkey);
		seal_keys_free(nk);
		return r;
	}
	s->upgrading = true; /* the digest is made afresh at the end */
	r = all_ids_locked(s, &ids, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct secret_meta m = { 0 };
		struct row_auth a;
		uint8_t mac[SEAL_MAC_BYTES];
		sqlite3_stmt *st = NULL;
		r = load_meta_locked(s, ids[i], true, &m, &a); /* -EIO: logged */
		struct life l = { .incarnation = m.incarnation };
		if (r == 0) {
			memcpy(l.nonce, a.nonce, sizeof(l.nonce));
			r = reseal_versions_for_locked(s, ids[i], &l, nk, &l, 0, 0);
		}
		if (r == 0)
			r = seal_meta_mac(nk, &m, a.nonce, mac);
		if (r == 0)
			r = sql_prepare(s, "UPDATE secrets SET mac = ?2 WHERE id = ?1", &st);
		if (r == 0) {
			sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, mac, sizeof(mac), SQLITE_STATIC);
			r = sql_step_done(s, st);
			sql_done(s, st);
		}
		secret_meta_clear(&m);
		if (r == 0 && progress && ((i + 1) % 100 == 0 || i + 1 == n))
			progress(i + 1, n);
	}
	/* from here on the new keys are the store's */
	if (r == 0) {
		s->key = nkey;
		s->keys = nk;
		r = write_keycheck_locked(s);
	}
	if (r == 0)
		r = head_reset_locked(s);
	s->upgrading = false;
	r = tx_end(s, r);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (r == 0) {
		sodium_free(okey);
		seal_keys_free(ok);
	} else {
		s->key = okey;
		s->keys = ok;
		sodium_free(nkey);
		seal_keys_free(nk);
	}
	/* the MACs memoised were the old keys' */
	for (size_t i = 0; i < ROW_MEMO_SIZE; i++)
		secret_meta_clear(&s->memo[i].meta);
	return r;
}

int embedded_store_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key,
                         void (*progress)(size_t done, size_t total), char *why, size_t why_size)
{
	struct store_config cfg = { .source = dir, .key = old_key };
	struct store *s = NULL;
	int r = embedded_open(&cfg, &s);
	if (r == -EKEYREJECTED) {
		/* done before (a rekey killed after its commit)? */
		cfg.key = new_key;
		r = embedded_open(&cfg, &s);
		embedded_close(s);
		if (r == 0)
			return 1;
		snprintf(why, why_size, "neither the key nor the new key opens the store in %s",
		         dir);
		return -EKEYREJECTED;
	}
	if (r == -EBUSY)
		snprintf(why, why_size,
		         "the store in %s is in use (mounted?): unmount it, then rekey it", dir);
	else if (r < 0)
		snprintf(why, why_size, "cannot open the store in %s: %s", dir,
		         strerrordesc_np(-r));
	if (r < 0 || !s)
		return r < 0 ? r : -EIO;
	store_lock_idle(s);
	r = rekey_locked(s, new_key, progress);
	pthread_mutex_unlock(&s->mutex);
	if (r < 0)
		snprintf(why, why_size,
		         "the store in %s could not be sealed again (%s): nothing changed, the "
		         "old key still opens it",
		         dir, strerrordesc_np(-r));
	embedded_close(s);
	return r;
}
