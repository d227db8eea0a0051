/* SPDX-License-Identifier: MIT */
/* The mirror (backend/mirror.c) between a real embedded store and a fake
 * remote store in memory (the Redpanda Cloud store's part of store.h:
 * list, stat, create, put_value, set_scopes, set_labels, delete_secret),
 * whose calls are counted and can be made to fail: reconcile, pushes,
 * the record written ahead, a create answered 409, an outage. */
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "embedded.h"
#include "harness.h"
#include "keyfile.h"
#include "mirror.h"

#define SA (1u << SCOPE_AI_GATEWAY)
#define SM (1u << SCOPE_MCP_SERVER)
#define FAKE_MAX 16

/* --- the fake remote store --- */

struct fake_secret {
	struct labels labels;
	scope_set scopes;
	bool hidden; /* there, but not listed (a create that landed unseen) */
	char id[64];
	char value[64];
};

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_secret fake[FAKE_MAX]; /* fake_lock; id[0] == 0: free */
static int fake_fail;                     /* fake_lock: every call's answer, 0: none */
static int fake_create_fail;              /* fake_lock: create's answer, 0: none */
static unsigned fake_calls;               /* fake_lock */

struct store {
	int unused;
};
static struct store fake_handle;

static struct fake_secret *fake_find(const char *id)
{
	for (int i = 0; i < FAKE_MAX; i++)
		if (fake[i].id[0] && strcmp(fake[i].id, id) == 0)
			return &fake[i];
	return NULL;
}

static int fake_enter(void)
{
	pthread_mutex_lock(&fake_lock);
	fake_calls++;
	if (fake_fail) {
		int r = fake_fail;
		pthread_mutex_unlock(&fake_lock);
		return r;
	}
	return 0;
}

static int f_open(const struct store_config *cfg, struct store **ret)
{
	*ret = &fake_handle;
	return 0;
}

static void f_close(struct store *s) {}

static int f_list(struct store *s, store_list_fn fn, void *arg)
{
	int r = fake_enter();

	if (r)
		return r;
	for (int i = 0; i < FAKE_MAX && r == 0; i++) {
		if (!fake[i].id[0] || fake[i].hidden)
			continue;
		struct secret_meta m = { .id = fake[i].id,
			                 .scopes = fake[i].scopes,
			                 .labels = fake[i].labels,
			                 .incarnation = 1,
			                 .revision = 1 };
		r = fn(arg, &m);
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

static int f_stat(struct store *s, const char *id, struct secret_meta *ret)
{
	int r = fake_enter();
	struct fake_secret *f;

	if (r)
		return r;
	f = fake_find(id);
	if (!f) {
		r = -ENOENT;
	} else {
		struct secret_meta m = { .id = f->id, .scopes = f->scopes, .labels = f->labels };
		f->hidden = false;
		r = secret_meta_copy(ret, &m);
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

static int f_get_value(struct store *s, const char *id, uint64_t inc, uint64_t version,
                       struct secret_value **ret)
{
	return -EACCES;
}

static int f_create(struct store *s, const char *id, scope_set scopes, const struct labels *labels,
                    const uint8_t *value, size_t len, struct secret_meta *ret)
{
	int r = fake_enter();

	if (r)
		return r;
	if (fake_create_fail) {
		r = fake_create_fail;
	} else if (fake_find(id)) {
		r = -EEXIST;
	} else {
		r = -ENOSPC;
		for (int i = 0; i < FAKE_MAX; i++) {
			if (fake[i].id[0])
				continue;
			snprintf(fake[i].id, sizeof(fake[i].id), "%s", id);
			fake[i].scopes = scopes;
			labels_copy(&fake[i].labels, labels);
			snprintf(fake[i].value, sizeof(fake[i].value), "%.*s", (int)len, value);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

/* the PUT: value (NULL: kept), scopes (0: kept), labels (NULL: kept) */
static int f_update(const char *id, const uint8_t *value, size_t len, scope_set scopes,
                    const struct labels *labels)
{
	int r = fake_enter();
	struct fake_secret *f;

	if (r)
		return r;
	f = fake_find(id);
	if (!f) {
		r = -ENOENT;
	} else {
		if (value)
			snprintf(f->value, sizeof(f->value), "%.*s", (int)len, value);
		if (scopes)
			f->scopes = scopes;
		if (labels) {
			labels_clear(&f->labels);
			labels_copy(&f->labels, labels);
		}
	}
	pthread_mutex_unlock(&fake_lock);
	return r;
}

static int f_put_value(struct store *s, const char *id, uint64_t inc, uint64_t base,
                       const uint8_t *value, size_t len, struct secret_meta *ret)
{
	return f_update(id, value, len, 0, NULL);
}

static int f_set_labels(struct store *s, const char *id, uint64_t inc, const struct labels *l,
                        struct secret_meta *ret)
{
	return f_update(id, NULL, 0, 0, l);
}

static int f_set_scopes(struct store *s, const char *id, uint64_t inc, scope_set sc,
                        struct secret_meta *ret)
{
	return f_update(id, NULL, 0, sc, NULL);
}

static int f_delete(struct store *s, const char *id, uint64_t inc, struct store_change *ret)
{
	int r = fake_enter();
	struct fake_secret *f;

	if (r)
		return r;
	f = fake_find(id);
	if (f) {
		labels_clear(&f->labels);
		memset(f, 0, sizeof(*f));
	}
	pthread_mutex_unlock(&fake_lock);
	return f ? 0 : -ENOENT;
}

static const struct store_ops fake_ops = {
	.name = "fake-cloud",
	.caps = STORE_CAP_WRITE_ONLY_VALUES,
	.open = f_open,
	.close = f_close,
	.list = f_list,
	.stat = f_stat,
	.get_value = f_get_value,
	.create = f_create,
	.put_value = f_put_value,
	.delete_secret = f_delete,
	.set_labels = f_set_labels,
	.set_scopes = f_set_scopes,
};

/* --- helpers --- */

static const struct store_ops *lops = &embedded_store_ops;
static struct store *local;
static char *record;

static struct mirror *start(void)
{
	struct store_config cfg = { .source = "redpanda:https://fake.example" };
	struct mirror *m = NULL;

	REQUIRE(mirror_open(&cfg, &fake_ops, lops, local, record, &m) == 0);
	REQUIRE(mirror_start(m) == 0);
	return m;
}

static bool status_is(struct mirror *m, const char *id, const char *prefix)
{
	char buf[MIRROR_STATUS_MAX];

	mirror_status(m, id, buf, sizeof(buf));
	return strncmp(buf, prefix, strlen(prefix)) == 0;
}

/* status of id starts with prefix within 10 s (a bound, not a timing) */
static bool eventually(struct mirror *m, const char *id, const char *prefix)
{
	for (int i = 0; i < 1000; i++) {
		if (status_is(m, id, prefix))
			return true;
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* the status of id names a last error within 10 s */
static bool eventually_error(struct mirror *m, const char *id)
{
	char buf[MIRROR_STATUS_MAX];

	for (int i = 0; i < 1000; i++) {
		mirror_status(m, id, buf, sizeof(buf));
		if (strstr(buf, "; last error ("))
			return true;
		nanosleep(&(struct timespec){ 0, 10 * 1000000 }, NULL);
	}
	return false;
}

static bool fake_value_is(const char *id, const char *value)
{
	pthread_mutex_lock(&fake_lock);
	struct fake_secret *f = fake_find(id);
	bool ok = f && strcmp(f->value, value) == 0;
	pthread_mutex_unlock(&fake_lock);
	return ok;
}

static void put(const char *id, const char *v)
{
	struct secret_meta m = { 0 };
	int r = lops->put_value(local, id, 0, 0, (const uint8_t *)v, strlen(v), &m);

	if (r == -ENOENT)
		r = lops->create(local, id, SA, &(struct labels){ 0 }, (const uint8_t *)v,
		                 strlen(v), &m);
	REQUIRE(r == 0);
	secret_meta_clear(&m);
}

static bool record_has(const char *line_prefix)
{
	FILE *f = fopen(record, "r");
	char line[512];
	bool found = false;

	while (f && fgets(line, sizeof(line), f))
		found |= strncmp(line, line_prefix, strlen(line_prefix)) == 0;
	if (f)
		fclose(f);
	return found;
}

/* --- tests --- */

static void test_reconcile_and_push(void)
{
	struct mirror *m;

	put("LOCAL_ONLY", "v1");
	/* in the cloud only, never pushed by this host: left alone */
	REQUIRE(f_create(NULL, "CLOUD_ONLY", SM, &(struct labels){ 0 }, (const uint8_t *)"c", 1,
	                 NULL) == 0);
	m = start();
	CHECK(eventually(m, "LOCAL_ONLY", "synced"));
	CHECK(fake_value_is("LOCAL_ONLY", "v1"));
	CHECK(record_has("LOCAL_ONLY "));
	CHECK(!record_has("CLOUD_ONLY "));

	/* a kicked change: its current value, labels and scopes */
	put("LOCAL_ONLY", "v2");
	{
		struct labels l = { 0 };
		struct secret_meta meta = { 0 };

		labels_set(&l, "managed-by", "aigateway");
		REQUIRE(lops->set_labels(local, "LOCAL_ONLY", 0, &l, &meta) == 0);
		secret_meta_clear(&meta);
		REQUIRE(lops->set_scopes(local, "LOCAL_ONLY", 0, SA | SM, &meta) == 0);
		secret_meta_clear(&meta);
		labels_clear(&l);
	}
	mirror_kick(m, "LOCAL_ONLY");
	CHECK(eventually(m, "LOCAL_ONLY", "synced"));
	pthread_mutex_lock(&fake_lock);
	struct fake_secret *f = fake_find("LOCAL_ONLY");
	CHECK(f && strcmp(f->value, "v2") == 0 && f->scopes == (SA | SM) &&
	      labels_get(&f->labels, "managed-by") &&
	      strcmp(labels_get(&f->labels, "managed-by"), "aigateway") == 0);
	pthread_mutex_unlock(&fake_lock);
	CHECK(fake_value_is("CLOUD_ONLY", "c"));
	mirror_stop(m);
}

static void test_in_step_sends_nothing(void)
{
	struct mirror *m;

	pthread_mutex_lock(&fake_lock);
	fake_calls = 0;
	pthread_mutex_unlock(&fake_lock);
	m = start();
	CHECK(eventually(m, "LOCAL_ONLY", "synced"));
	mirror_stop(m);
	pthread_mutex_lock(&fake_lock);
	CHECK_EQ(fake_calls, 1); /* the listing */
	pthread_mutex_unlock(&fake_lock);
}

static void test_outage_and_409(void)
{
	struct mirror *m = start();

	CHECK(eventually(m, "LOCAL_ONLY", "synced"));
	pthread_mutex_lock(&fake_lock);
	fake_fail = -EIO;
	pthread_mutex_unlock(&fake_lock);
	put("LOCAL_ONLY", "v3");
	mirror_kick(m, "LOCAL_ONLY");
	CHECK(eventually(m, "LOCAL_ONLY", "pending since "));
	CHECK(eventually_error(m, "LOCAL_ONLY"));
	CHECK(fake_value_is("LOCAL_ONLY", "v2"));
	/* meanwhile a create of ours landed without our knowing (hidden
	 * from the listing): the push finds 409, learns it, updates it */
	put("LANDED", "new");
	mirror_kick(m, "LANDED");
	pthread_mutex_lock(&fake_lock);
	fake[FAKE_MAX - 1] =
	    (struct fake_secret){ .id = "LANDED", .scopes = SM, .value = "old", .hidden = true };
	fake_fail = 0;
	pthread_mutex_unlock(&fake_lock);
	CHECK(eventually(m, "LOCAL_ONLY", "synced"));
	CHECK(eventually(m, "LANDED", "synced"));
	CHECK(fake_value_is("LOCAL_ONLY", "v3"));
	CHECK(fake_value_is("LANDED", "new"));
	pthread_mutex_lock(&fake_lock);
	CHECK_EQ(fake_find("LANDED")->scopes, SA);
	pthread_mutex_unlock(&fake_lock);
	mirror_stop(m);
}

static void test_delete_and_record(void)
{
	struct mirror *m = start();
	struct store_change c = { 0 };

	CHECK(eventually(m, "LANDED", "synced"));
	REQUIRE(lops->delete_secret(local, "LANDED", 0, &c) == 0);
	store_change_clear(&c);
	mirror_kick(m, "LANDED");
	for (int i = 0; i < 1000 && fake_find("LANDED"); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000000 }, NULL);
	CHECK(!fake_find("LANDED"));
	mirror_stop(m);
	CHECK(!record_has("LANDED "));
	CHECK(record_has("LOCAL_ONLY "));
	CHECK(record_has("mirror redpanda:https://fake.example"));

	/* deleted here while unmounted: the next start deletes it there */
	REQUIRE(lops->delete_secret(local, "LOCAL_ONLY", 0, &c) == 0);
	store_change_clear(&c);
	m = start();
	for (int i = 0; i < 1000 && fake_find("LOCAL_ONLY"); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000000 }, NULL);
	CHECK(!fake_find("LOCAL_ONLY"));
	CHECK(fake_value_is("CLOUD_ONLY", "c")); /* never ours: still there */
	mirror_stop(m);
	CHECK(!record_has("LOCAL_ONLY "));
}

static void test_record_written_ahead(void)
{
	struct mirror *m = start();
	char line[64];

	/* the create fails: the record says "ours, no value confirmed"
	 * already, so a delete here would reach the cloud even had it landed */
	pthread_mutex_lock(&fake_lock);
	fake_create_fail = -EIO;
	pthread_mutex_unlock(&fake_lock);
	put("AHEAD", "x");
	mirror_kick(m, "AHEAD");
	CHECK(eventually_error(m, "AHEAD"));
	{
		struct secret_meta meta = { 0 };

		REQUIRE(lops->stat(local, "AHEAD", &meta) == 0);
		snprintf(line, sizeof(line), "AHEAD %" PRIu64 " 0\n", meta.incarnation);
		secret_meta_clear(&meta);
	}
	CHECK(record_has(line));
	pthread_mutex_lock(&fake_lock);
	fake_create_fail = 0;
	pthread_mutex_unlock(&fake_lock);
	CHECK(eventually(m, "AHEAD", "synced"));
	mirror_stop(m);
	CHECK(record_has("AHEAD "));
	CHECK(!record_has(line));
	CHECK(fake_value_is("AHEAD", "x"));
}

static void test_other_mirror_record(void)
{
	struct store_config cfg = { .source = "redpanda:https://other.example" };
	struct mirror *m = NULL;

	/* the record of another URL is not used: everything is pushed again */
	put("AGAIN", "a");
	REQUIRE(mirror_open(&cfg, &fake_ops, lops, local, record, &m) == 0);
	REQUIRE(mirror_start(m) == 0);
	CHECK(eventually(m, "AGAIN", "synced"));
	mirror_stop(m);
	CHECK(record_has("mirror redpanda:https://other.example"));
	CHECK(fake_value_is("AGAIN", "a"));
}

int main(void)
{
	char *tmp = harness_tmpdir();
	char *dir = harness_path(tmp, "store"), *kp = NULL;
	uint8_t *key = NULL;

	REQUIRE(sodium_init() >= 0);
	REQUIRE(embedded_store_init(dir) == 0);
	REQUIRE(embedded_key_path(dir, &kp) == 0);
	REQUIRE(key_load(kp, &key) == 0);
	struct store_config cfg = { .source = dir, .key = key, .keep_versions = 2 };
	REQUIRE(lops->open(&cfg, &local) == 0);
	record = harness_path(tmp, "host-attrs.mirror");

	test_reconcile_and_push();
	test_in_step_sends_nothing();
	test_outage_and_409();
	test_delete_and_record();
	test_record_written_ahead();
	test_other_mirror_record();

	lops->close(local);
	key_free(key);
	free(kp);
	free(record);
	free(dir);
	harness_rmrf(tmp);
	free(tmp);
	return harness_result("test_mirror");
}
