/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the embedded store reading back records it did not write
 * (backend/embedded.c over SQLite, crypto.c, secret.c).
 *
 * Once: a store is created in a temporary directory and filled (secrets
 * with several versions, labels, two scopes, a 65,536-byte value); the
 * database file is kept in memory.  Per input: the pristine database is
 * written back, then the input, read as a little program, alters rows
 * through the SQLite API (overwrites ciphertext blobs, size, version,
 * scope and time columns, label and meta rows with fuzz bytes; truncates,
 * copies, deletes and inserts rows).  Then the store is opened and every
 * operation is run over every secret it lists.  Every call must return 0
 * or a negative errno, never crash or leak; a put_value that succeeded
 * must read back as the value put.
 *
 * And nothing the rows were changed to is ever served as truth (format 3's
 * metadata MACs and value binding, format 4's store digest): before the
 * first write, every
 * secret listed or stat'ed has exactly the metadata the store wrote, and
 * every value read is the one the store wrote for that secret and
 * version (the current one for version 0): an unchanged secret, or an
 * error.  Rows of one secret replayed whole from a backup of the same
 * store taken before its last rotation (each row authentic), or one
 * secret's rows removed, must refuse the open: an input that does
 * nothing else asserts -EIO.
 *
 * Inputs of odd length start from the same store as format 4 left it
 * (secrets a rowid table, the key-check record under format 4's domain):
 * their open upgrades it, after the rows were altered, and the same
 * truths must hold.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto.h"
#include "embedded.h"
#include "keyfile.h"
#include "store.h"
#include "../unit/old_formats.h"

static char dir[64], dbpath[128], walpath[128], shmpath[128], backuppath[128];
static uint8_t *key;
static uint8_t *pristine, *pristine4; /* format 5; the same as format 4 */
static size_t pristine_len, pristine4_len;

static void check_rc(int r)
{
	assert(r <= 0 && r > -4096);
}

/* --- reading the input --- */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take_u8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t take_u64(struct input *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | take_u8(in);
	return v;
}

static const uint8_t *take_bytes(struct input *in, size_t *len)
{
	size_t want = take_u8(in);
	if (want == 255) /* long form: two more bytes */
		want = ((size_t)take_u8(in) << 8 | take_u8(in)) + 255;
	if (want > in->n)
		want = in->n;
	const uint8_t *p = in->p;
	in->p += want;
	in->n -= want;
	*len = want;
	return p;
}

/* --- altering rows --- */

struct column {
	const char *table, *pk, *col;
	bool text;
};

/* (tables: one entry a line) */
/* clang-format off */
static const struct column columns[] = {
	{ "secrets", "id", "id", true },
	{ "secrets", "id", "scopes", false },
	{ "secrets", "id", "version", false },
	{ "secrets", "id", "size", false },
	{ "secrets", "id", "ctime_ns", false },
	{ "secrets", "id", "mtime_ns", false },
	{ "secrets", "id", "incarnation", false },
	{ "secrets", "id", "revision", false },
	{ "secrets", "id", "value_revision", false },
	{ "secrets", "id", "nonce", false },
	{ "secrets", "id", "mac", false },
	{ "versions", "rowid", "id", true },
	{ "versions", "rowid", "version", false },
	{ "versions", "rowid", "size", false },
	{ "versions", "rowid", "mtime_ns", false },
	{ "versions", "rowid", "ct", false },
	{ "versions", "rowid", "revision", false },
	{ "labels", "id, key", "id", true },
	{ "labels", "id, key", "key", true },
	{ "labels", "id, key", "value", true },
	{ "meta", "key", "value", false },
	{ "meta", "key", "key", true },
};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

static const int64_t interesting[] = {
	0, 1, 2, 3, 4, 5, -1, 31, 32, 255, 65535, 65536, 65537, 0x7fffffff,
	0x80000000LL, 0xffffffffLL, 0x100000000LL, INT64_MAX, INT64_MIN,
};
/* clang-format on */

static void exec_sql(sqlite3 *db, const char *sql)
{
	sqlite3_exec(db, sql, NULL, NULL, NULL); /* failures are fine */
}

/* Binds a fuzz-chosen value to parameter 1. */
static void bind_value(sqlite3_stmt *st, struct input *in, const struct column *c)
{
	uint8_t kind = take_u8(in);
	size_t len;
	const uint8_t *b;

	switch (kind % 6) {
	case 0:
		sqlite3_bind_int64(st, 1, (sqlite3_int64)take_u64(in));
		break;
	case 1:
		sqlite3_bind_int64(
		    st, 1,
		    interesting[take_u8(in) % (sizeof(interesting) / sizeof(interesting[0]))]);
		break;
	case 2:
		b = take_bytes(in, &len);
		sqlite3_bind_blob(st, 1, len ? (const void *)b : "", (int)len, SQLITE_TRANSIENT);
		break;
	case 3:
		b = take_bytes(in, &len);
		sqlite3_bind_text(st, 1, len ? (const char *)b : "", (int)len, SQLITE_TRANSIENT);
		break;
	case 4:
		sqlite3_bind_null(st, 1);
		break;
	case 5:
		/* a plausible text: an ID-like string */
		sqlite3_bind_text(st, 1, c->text ? "OPENAI_API_KEY" : "B", -1, SQLITE_STATIC);
		break;
	}
}

static void alter_value(sqlite3 *db, struct input *in)
{
	const struct column *c = &columns[take_u8(in) % NCOLUMNS];
	unsigned row = take_u8(in) % 8;
	char sql[256];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql),
	         "UPDATE %s SET %s = ?1 WHERE (%s) IN "
	         "(SELECT %s FROM %s LIMIT 1 OFFSET ?2)",
	         c->table, c->col, c->pk, c->pk, c->table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	bind_value(st, in, c);
	sqlite3_bind_int(st, 2, (int)row);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* Flips, overwrites, truncates or extends a stored ciphertext in place. */
static void edit_blob(sqlite3 *db, struct input *in)
{
	unsigned row = take_u8(in) % 16;
	uint8_t how = take_u8(in);
	uint64_t where = take_u64(in);
	sqlite3_stmt *st;
	uint8_t *blob = NULL;
	size_t n = 0, len;
	const uint8_t *b;

	if (sqlite3_prepare_v2(db, "SELECT rowid, ct FROM versions LIMIT 1 OFFSET ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int(st, 1, (int)row);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_int64 rowid = sqlite3_column_int64(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 1);
	blob = malloc(n + 70000);
	if (!blob)
		abort();
	if (n)
		memcpy(blob, sqlite3_column_blob(st, 1), n);
	sqlite3_finalize(st);

	switch (how % 4) {
	case 0: /* flip bits */
		if (n)
			blob[where % n] ^= (uint8_t)(how | 1);
		break;
	case 1: /* overwrite a range with fuzz bytes */
		b = take_bytes(in, &len);
		if (n) {
			size_t at = where % n;
			if (len > n - at)
				len = n - at;
			memcpy(blob + at, b, len);
		}
		break;
	case 2: /* truncate */
		n = n ? where % n : 0;
		break;
	case 3: /* append */
		b = take_bytes(in, &len);
		memcpy(blob + n, b, len);
		n += len;
		break;
	}
	if (sqlite3_prepare_v2(db, "UPDATE versions SET ct = ?1 WHERE rowid = ?2", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_blob(st, 1, n ? blob : (const void *)"", (int)n, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, rowid);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	free(blob);
}

static void other_change(sqlite3 *db, struct input *in)
{
	static const char *const sql[] = {
		/* ciphertexts moved to another secret or version */
		/* one statement in two literals */
		/* NOLINTNEXTLINE(bugprone-suspicious-missing-comma) */
		"UPDATE versions SET ct = (SELECT ct FROM versions v2 WHERE v2.rowid != versions.rowid "
		"LIMIT 1) WHERE rowid = (SELECT MIN(rowid) FROM versions)",
		"UPDATE versions SET version = version + 1 WHERE rowid = (SELECT MAX(rowid) FROM versions)",
		"DELETE FROM versions WHERE rowid = (SELECT MIN(rowid) FROM versions)",
		"DELETE FROM versions WHERE rowid = (SELECT MAX(rowid) FROM versions)",
		"DELETE FROM secrets WHERE id = (SELECT MIN(id) FROM secrets)",
		"DELETE FROM meta WHERE key = 'keycheck'",
		"DELETE FROM meta WHERE key = 'store_id'",
		"DELETE FROM meta WHERE key = 'format'",
		"DELETE FROM labels",
		"INSERT INTO secrets VALUES ('bad id', 1, 1, 5, 0, 0)",
		"INSERT INTO secrets VALUES ('', 1, 1, 5, 0, 0)",
		"INSERT INTO secrets VALUES ('lower/case-id', 3, 1, 5, 0, 0)",
		"INSERT INTO secrets SELECT id || '_COPY', scopes, version, size, ctime_ns, mtime_ns FROM secrets",
		"INSERT INTO versions SELECT id || '_COPY', version, size, mtime_ns, ct FROM versions",
		/* format 3: one row's authentication, or whole rows, moved */
		"INSERT INTO secrets SELECT id || '_COPY', scopes, version, size, ctime_ns, mtime_ns, "
		"incarnation, revision, value_revision, nonce, mac FROM secrets",
		"INSERT INTO versions SELECT id || '_COPY', version, size, mtime_ns, ct, revision FROM versions",
		"UPDATE secrets SET mac = (SELECT mac FROM secrets s2 WHERE s2.id != secrets.id LIMIT 1)",
		"UPDATE secrets SET nonce = (SELECT nonce FROM secrets s2 WHERE s2.id != secrets.id LIMIT 1)",
		"UPDATE secrets SET version = version - 1",
		"UPDATE secrets SET version = version - 1, size = (SELECT size FROM versions v "
		"WHERE v.id = secrets.id AND v.version = secrets.version - 1), value_revision = "
		"(SELECT revision FROM versions v WHERE v.id = secrets.id AND v.version = "
		"secrets.version - 1)",
		"UPDATE secrets SET scopes = 31",
		"UPDATE secrets SET scopes = scopes | 2 WHERE id = 'OPENAI_API_KEY'",
		"UPDATE labels SET value = 'dev'",
		"DELETE FROM labels WHERE key = 'env'",
		"UPDATE versions SET revision = revision + 1",
		"UPDATE versions SET mtime_ns = mtime_ns + 1",
		"UPDATE versions SET version = 1 WHERE id = 'OPENAI_API_KEY' AND version = 4",
		"CREATE TRIGGER t AFTER UPDATE ON secrets BEGIN UPDATE secrets SET scopes = 31; END",
		"CREATE VIEW v AS SELECT * FROM secrets",
		"CREATE INDEX i ON secrets(scopes)",
		"UPDATE meta SET value = x'02' WHERE key = 'format'",
		"INSERT INTO labels VALUES ('OPENAI_API_KEY', 'owner', 'x')",
		"INSERT INTO labels VALUES ('OPENAI_API_KEY', 'bad key', 'bad\nvalue')",
		"INSERT INTO labels VALUES ('NO_SUCH_SECRET', 'k', 'v')",
		"UPDATE secrets SET scopes = 0",
		"UPDATE secrets SET scopes = -1",
		"UPDATE secrets SET version = 0",
		"UPDATE secrets SET version = -1",
		"UPDATE versions SET size = -1",
		"UPDATE versions SET ct = zeroblob(40)",
		"UPDATE versions SET ct = NULL",
		"UPDATE versions SET ct = 'text, not a blob'",
		"DROP TABLE labels",
		"DROP TABLE versions",
		"DROP TABLE meta",
		"PRAGMA journal_mode = DELETE",
		"PRAGMA user_version = 99",
		"PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = "
		"replace(sql, 'NOT NULL', '') WHERE name = 'versions'; PRAGMA writable_schema = OFF",
		"UPDATE meta SET value = zeroblob(16) WHERE key = 'store_id'",
		"UPDATE meta SET value = x'02' WHERE key = 'format'",
	};
	exec_sql(db, sql[take_u8(in) % (sizeof(sql) / sizeof(sql[0]))]);
}

static void insert_row(sqlite3 *db, struct input *in)
{
	sqlite3_stmt *st;
	size_t len;
	const uint8_t *b;
	uint8_t which = take_u8(in) % 3;
	static const char *const sql[] = {
		"INSERT INTO versions VALUES ('OPENAI_API_KEY', ?2, ?3, 0, ?1)",
		"INSERT INTO labels VALUES ('B', ?2, ?1)",
		"INSERT INTO secrets VALUES (?1, ?2, ?3, 7, 0, 0)",
	};

	if (sqlite3_prepare_v2(db, sql[which], -1, &st, NULL) != SQLITE_OK)
		return;
	b = take_bytes(in, &len);
	if (which == 0)
		sqlite3_bind_blob(st, 1, len ? b : (const void *)"", (int)len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_text(st, 1, len ? (const char *)b : "", (int)len, SQLITE_TRANSIENT);
	if (which == 1) {
		b = take_bytes(in, &len);
		sqlite3_bind_text(st, 2, len ? (const char *)b : "", (int)len, SQLITE_TRANSIENT);
	} else {
		sqlite3_bind_int64(st, 2, (sqlite3_int64)take_u64(in));
	}
	sqlite3_bind_int64(st, 3, (sqlite3_int64)take_u64(in));
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* Rows of the store as it was before OPENAI_API_KEY's last rotation
 * (backuppath, a copy of the whole database then) put in place of the
 * current ones, or one secret's rows removed: each row it leaves
 * verifies on its own; only the store digest tells. */
static void replay_rows(sqlite3 *db, struct input *in)
{
	static const char *const sql[] = {
		/* the whole row set of one secret */
		"DELETE FROM main.labels WHERE id = 'OPENAI_API_KEY';"
		"DELETE FROM main.versions WHERE id = 'OPENAI_API_KEY';"
		"DELETE FROM main.secrets WHERE id = 'OPENAI_API_KEY';"
		"INSERT INTO main.secrets SELECT * FROM b.secrets WHERE id = 'OPENAI_API_KEY';"
		"INSERT INTO main.labels SELECT * FROM b.labels WHERE id = 'OPENAI_API_KEY';"
		"INSERT INTO main.versions SELECT * FROM b.versions WHERE id = 'OPENAI_API_KEY'",
		/* its secrets row alone */
		"DELETE FROM main.secrets WHERE id = 'OPENAI_API_KEY';"
		"INSERT INTO main.secrets SELECT * FROM b.secrets WHERE id = 'OPENAI_API_KEY'",
		/* its version rows alone (a pruned one back) */
		"DELETE FROM main.versions WHERE id = 'OPENAI_API_KEY';"
		"INSERT INTO main.versions SELECT * FROM b.versions WHERE id = 'OPENAI_API_KEY'",
		"INSERT OR IGNORE INTO main.versions SELECT * FROM b.versions WHERE id = "
		"'OPENAI_API_KEY'",
		/* one secret's rows removed */
		"DELETE FROM main.labels WHERE id = 'B'; DELETE FROM main.versions WHERE id = 'B';"
		"DELETE FROM main.secrets WHERE id = 'B'",
		"DELETE FROM main.versions WHERE id = 'OPENAI_API_KEY' AND version = 3",
	};
	/* (main. everywhere: a table the input dropped must never resolve to
	 * the backup's, which stays as it was for every input) */
	char attach[192];
	snprintf(attach, sizeof(attach), "ATTACH '%s' AS b", backuppath);
	exec_sql(db, attach);
	exec_sql(db, sql[take_u8(in) % (sizeof(sql) / sizeof(sql[0]))]);
	exec_sql(db, "DETACH b");
}

/* --- what the store wrote (the authenticated truth) --- */

#define NPRISTINE 3
static struct secret_meta pristine_meta[NPRISTINE];

static const struct secret_meta *pristine_of(const char *id)
{
	for (int i = 0; i < NPRISTINE; i++)
		if (pristine_meta[i].id && strcmp(pristine_meta[i].id, id) == 0)
			return &pristine_meta[i];
	return NULL;
}

/* Exactly the metadata the store wrote for m->id. */
static void assert_pristine_meta(const struct secret_meta *m)
{
	const struct secret_meta *p = pristine_of(m->id);
	assert(p);
	assert(m->incarnation == p->incarnation && m->revision == p->revision &&
	       m->value_revision == p->value_revision && m->scopes == p->scopes &&
	       m->version == p->version && m->size == p->size && m->ctime_ns == p->ctime_ns &&
	       m->mtime_ns == p->mtime_ns && m->labels.n == p->labels.n);
	for (size_t i = 0; i < m->labels.n; i++)
		assert(strcmp(m->labels.v[i].key, p->labels.v[i].key) == 0 &&
		       strcmp(m->labels.v[i].value, p->labels.v[i].value) == 0);
}

/* Exactly the value the store wrote as version `version` (0: current) of
 * id. */
static void assert_pristine_value(const char *id, uint64_t version, const struct secret_value *v)
{
	const struct secret_meta *p = pristine_of(id);
	char want[16];
	assert(p);
	if (!version)
		version = p->version;
	assert(v->version == version);
	if (strcmp(id, "OPENAI_API_KEY") == 0) {
		int n = snprintf(want, sizeof(want), "sk-%llu", (unsigned long long)version);
		assert(v->len == (size_t)n && memcmp(v->data, want, v->len) == 0);
	} else if (strcmp(id, "B") == 0) {
		assert(version == 1 && v->len == 1 && v->data[0] == 'b');
	} else {
		assert(version == 1 && v->len == SECRET_VALUE_MAX);
		for (size_t i = 0; i < v->len; i++)
			assert(v->data[i] == 'x');
	}
	if (version == p->version)
		assert(v->revision == p->value_revision && v->mtime_ns == p->mtime_ns);
}

static int check_listed(void *userdata, const struct secret_meta *m)
{
	(void)userdata;
	assert_pristine_meta(m);
	return 0;
}

/* Before any write: nothing but what the store wrote, or errors. */
static void check_truth(struct store *s, const struct store_ops *ops)
{
	static const char *const ids[] = { "OPENAI_API_KEY",      "B",      "C_1",
		                           "OPENAI_API_KEY_COPY", "B_COPY", "bad id",
		                           "lower/case-id" };
	check_rc(ops->list(s, check_listed, NULL));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct secret_meta m = { 0 };
		struct secret_value *v = NULL;
		int r = ops->stat(s, ids[i], &m);
		check_rc(r);
		if (r == 0) {
			assert_pristine_meta(&m);
			secret_meta_clear(&m);
		}
		for (uint64_t ver = 0; ver <= 5; ver++) {
			r = ops->get_value(s, ids[i], 0, ver, &v);
			check_rc(r);
			if (r == 0) {
				assert_pristine_value(ids[i], ver, v);
				v = secret_value_free(v);
			}
		}
	}
}

/* --- the store under test --- */

#define MAX_IDS 32

struct listing {
	char *ids[MAX_IDS];
	size_t n;
};

static int collect(void *userdata, const struct secret_meta *m)
{
	struct listing *l = userdata;
	assert(m->id);
	if (l->n < MAX_IDS) {
		l->ids[l->n] = strdup(m->id);
		if (!l->ids[l->n])
			abort();
		l->n++;
	}
	return 0;
}

static int count_one(void *userdata, const struct secret_meta *m)
{
	assert(m->id);
	(*(size_t *)userdata)++;
	return 0;
}


static void exercise(struct store *s, const struct store_ops *ops, uint8_t writes)
{
	struct listing l = { .n = 0 };
	check_truth(s, ops);
	int r = ops->list(s, collect, &l);
	check_rc(r);
	const char *fixed[] = { "OPENAI_API_KEY", "NO_SUCH", "bad id", "" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		collect(&l, &(struct secret_meta){ .id = (char *)fixed[i] });

	for (size_t i = 0; i < l.n; i++) {
		const char *id = l.ids[i];
		struct secret_meta m = { 0 };
		struct secret_value *v = NULL;
		struct secret_version *vers = NULL;
		size_t nv = 0;

		r = ops->stat(s, id, &m);
		check_rc(r);
		if (r == 0)
			secret_meta_clear(&m);
		r = ops->get_value(s, id, 0, 0, &v);
		check_rc(r);
		if (r == 0) {
			assert(v->data && v->len >= 1 && v->len <= SECRET_VALUE_MAX);
			v = secret_value_free(v);
		}
		r = ops->list_versions(s, id, 0, &vers, &nv);
		check_rc(r);
		if (r == 0) {
			for (size_t k = 0; k < nv && k < 8; k++) {
				r = ops->get_value(s, id, 0, vers[k].version, &v);
				check_rc(r);
				v = secret_value_free(v);
			}
			free(vers);
		}
		r = ops->get_value(s, id, 0, UINT64_MAX, &v);
		check_rc(r);
		v = secret_value_free(v);

		if (!(writes & 1))
			continue;
		static const uint8_t newval[] = "rotated-value";
		struct secret_meta pm = { 0 };
		r = ops->put_value(s, id, 0, 0, newval, sizeof(newval) - 1, &pm);
		check_rc(r);
		if (r == 0) {
			secret_meta_clear(&pm);
			r = ops->get_value(s, id, 0, 0, &v);
			/* what was just acknowledged reads back */
			assert(r == 0 && v->len == sizeof(newval) - 1 &&
			       memcmp(v->data, newval, v->len) == 0);
			v = secret_value_free(v);
		}
		struct labels lb = { 0, NULL };
		if (labels_set(&lb, "managed-by", "aigateway") == 0) {
			check_rc(ops->set_labels(s, id, 0, &lb, NULL));
			labels_clear(&lb);
		}
		check_rc(
		    ops->set_scopes(s, id, 0, (scope_set)((writes >> 1) & SCOPE_ALL) | 1, NULL));
		if (i + 1 < l.n)
			check_rc(ops->exchange_values(s, id, 0, l.ids[i + 1], 0, NULL, NULL));
		if (writes & 0x80)
			check_rc(ops->delete_secret(s, id, 0, NULL));
	}
	if (writes & 2) {
		static const uint8_t val[] = "new";
		struct secret_meta cm = { 0 };
		r = ops->create(s, "FUZZ_NEW", 1, NULL, val, 3, &cm);
		check_rc(r);
		if (r == 0)
			secret_meta_clear(&cm);
	}
	size_t count = 0;
	r = ops->list(s, count_one, &count);
	check_rc(r);
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void cleanup_dir(void)
{
	char path[160];
	static const char *const names[] = { "store.db",   "store.db-wal",     "store.db-shm",
		                             "store.lock", "store.db-journal", "key",
		                             "backup.db" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static uint8_t *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		abort();
	fseek(f, 0, SEEK_END);
	size_t n = (size_t)ftell(f);
	rewind(f);
	uint8_t *p = malloc(n);
	if (!p || fread(p, 1, n, f) != n)
		abort();
	fclose(f);
	*ret_len = n;
	return p;
}

/* The pristine store turned into what format 4 wrote: secrets a rowid
 * table (format 4's SQL, rows in no ID order), the key-check record
 * sealed under format 4's domain, the format record 4. */
static void make_pristine4(void)
{
	static const char ad_domain[] = "secretsfs key check v4";
	static const char check[] = "secretsfs key check: the key is right";
	uint8_t ad[sizeof(ad_domain) - 1 + 16], *ct = NULL;
	size_t ctlen = 0;
	sqlite3 *db;
	sqlite3_stmt *st;

	write_file(dbpath, pristine, pristine_len);
	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		abort();
	exec_sql(db, ROWID_SECRETS_SQL);
	exec_sql(db, "UPDATE meta SET value = x'04' WHERE key = 'format'");
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'store_id'", -1, &st,
	                       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 16)
		abort();
	memcpy(ad, ad_domain, sizeof(ad_domain) - 1);
	memcpy(ad + sizeof(ad_domain) - 1, sqlite3_column_blob(st, 0), 16);
	sqlite3_finalize(st);
	if (crypto_seal(key, ad, sizeof(ad), (const uint8_t *)check, sizeof(check) - 1, &ct,
	                &ctlen) < 0 ||
	    sqlite3_prepare_v2(db, "UPDATE meta SET value = ?1 WHERE key = 'keycheck'", -1, &st,
	                       NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_blob(st, 1, ct, (int)ctlen, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1)
		abort();
	sqlite3_finalize(st);
	free(ct);
	exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
	unlink(walpath);
	unlink(shmpath);
	pristine4 = read_file(dbpath, &pristine4_len);
	/* it must open, as format 4, and upgrade */
	struct store_config cfg = { .source = dir, .key = key, .keep_versions = 3 };
	struct store *s = NULL;
	if (embedded_store_ops.open(&cfg, &s) < 0)
		abort();
	embedded_store_ops.close(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* tests/fuzz/run names a scratch directory it removes afterwards (a
	 * crash skips atexit) */
	const char *base = getenv("FUZZ_SCRATCH");
	if (!base || !base[0])
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/secretsfs-fuzz-store.XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup_dir);
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", dir);
	snprintf(walpath, sizeof(walpath), "%s/store.db-wal", dir);
	snprintf(shmpath, sizeof(shmpath), "%s/store.db-shm", dir);
	snprintf(backuppath, sizeof(backuppath), "%s/backup.db", dir);
	rmdir(dir);
	if (embedded_store_init(dir) < 0)
		abort();
	char kp[160];
	snprintf(kp, sizeof(kp), "%s/key", dir);
	if (key_load(kp, &key) < 0)
		abort();

	struct store_config cfg = { .source = dir, .key = key, .keep_versions = 3 };
	const struct store_ops *ops = &embedded_store_ops;
	struct store *s;
	if (ops->open(&cfg, &s) < 0)
		abort();
	struct labels lb = { 0, NULL };
	labels_set(&lb, "managed-by", "aigateway");
	labels_set(&lb, "env", "prod");
	char v[32];
	if (ops->create(s, "OPENAI_API_KEY", 1u << SCOPE_AI_GATEWAY, &lb, (const uint8_t *)"sk-1",
	                4, NULL) < 0)
		abort();
	for (int i = 2; i <= 4; i++) {
		if (i == 4) { /* a backup of the whole store before the last rotation */
			sqlite3 *bdb;
			char sql[192];
			if (sqlite3_open(dbpath, &bdb) != SQLITE_OK)
				abort();
			snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", backuppath);
			if (sqlite3_exec(bdb, sql, NULL, NULL, NULL) != SQLITE_OK)
				abort();
			sqlite3_close(bdb);
		}
		int n = snprintf(v, sizeof(v), "sk-%d", i);
		if (ops->put_value(s, "OPENAI_API_KEY", 0, 0, (const uint8_t *)v, (size_t)n, NULL) <
		    0)
			abort();
	}
	if (ops->create(s, "B", (1u << SCOPE_AI_GATEWAY) | (1u << SCOPE_MCP_SERVER), NULL,
	                (const uint8_t *)"b", 1, NULL) < 0)
		abort();
	uint8_t *big = malloc(SECRET_VALUE_MAX);
	memset(big, 'x', SECRET_VALUE_MAX);
	if (ops->create(s, "C_1", 1u << SCOPE_AI_AGENT, &lb, big, SECRET_VALUE_MAX, NULL) < 0)
		abort();
	free(big);
	labels_clear(&lb);
	static const char *const ids[NPRISTINE] = { "OPENAI_API_KEY", "B", "C_1" };
	for (int i = 0; i < NPRISTINE; i++)
		if (ops->stat(s, ids[i], &pristine_meta[i]) < 0)
			abort();
	ops->close(s);

	/* one self-contained file: checkpointed, no WAL left */
	sqlite3 *db;
	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		abort();
	exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
	unlink(walpath);
	unlink(shmpath);
	pristine = read_file(dbpath, &pristine_len);
	make_pristine4();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	sqlite3 *db;

	unlink(walpath);
	unlink(shmpath);
	if (size & 1)
		write_file(dbpath, pristine4, pristine4_len);
	else
		write_file(dbpath, pristine, pristine_len);
	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		abort();
	uint8_t writes = take_u8(&in);
	int replays = 0, others = 0;
	for (int steps = 0; in.n > 0 && steps < 32; steps++) {
		uint8_t step = take_u8(&in) % 6;
		if (step == 5)
			replays++;
		else
			others++;
		switch (step) {
		case 0:
			alter_value(db, &in);
			break;
		case 1:
			edit_blob(db, &in);
			break;
		case 2:
			other_change(db, &in);
			break;
		case 3:
			insert_row(db, &in);
			break;
		case 4:
			alter_value(db, &in);
			break;
		case 5:
			replay_rows(db, &in);
			break;
		}
	}
	sqlite3_close(db);

	const struct store_ops *ops = &embedded_store_ops;
	struct store_config cfg = {
		.source = dir, .key = key, .keep_versions = 3, .read_only = (writes & 0x40) != 0
	};
	struct store *s = NULL;
	int r = ops->open(&cfg, &s);
	check_rc(r);
	/* rows replayed or removed, nothing else: the digest refuses them */
	if (replays && !others)
		assert(r == -EIO);
	if (r == 0) {
		exercise(s, ops, writes);
		ops->close(s);
	}
	return 0;
}
