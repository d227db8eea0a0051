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
/* fake_lock: the next create lands unseen (hidden) but answers this */
static int fake_create_lost;
/* fake_lock: the next value PUT answers -ETIMEDOUT and lands after the
 * one that follows it (late[]: its ID and value) */
static bool fake_put_lost;
static char late_id[64], late_value[64];
/* fake_lock: every call about fail_id answers fail_id_r */
static const char *fail_id;
static int fail_id_r;
/* fake_lock: value PUTs and label PUTs per call, of count_id */
static const char *count_id;
static const char *fake_labels_refused; /* fake_lock: its label PUTs answer -EINVAL */
static unsigned count_put_values, count_set_labels;
/* called (without fake_lock) after each value PUT of hook_id */
static const char *hook_id;
static void (*hook)(void);

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

static int fake_enter_id(const char *id)
{
	pthread_mutex_lock(&fake_lock);
	fake_calls++;
	if (fake_fail || (id && fail_id && strcmp(id, fail_id) == 0)) {
		int r = fake_fail ? fake_fail : fail_id_r;
		pthread_mutex_unlock(&fake_lock);
		return r;
	}
	return 0;
}

static int fake_enter(void)
{
	return fake_enter_id(NULL);
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
	int r = fake_enter_id(id);
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
	int r = fake_enter_id(id);

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
			if (fake_create_lost) {
				/* it landed, its answer was lost: the real remote
				 * store's table does not know it */
				fake[i].hidden = true;
				r = fake_create_lost;
				fake_create_lost = 0;
			}
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
	int r = fake_enter_id(id);
	struct fake_secret *f;
	bool hooked = false;

	if (r)
		return r;
	f = fake_find(id);
	if (count_id && strcmp(id, count_id) == 0) {
		count_put_values += value != NULL;
		count_set_labels += labels != NULL;
	}
	if (!f || f->hidden) {
		r = -ENOENT; /* (hidden: not in the real remote store's table) */
	} else if (labels && fake_labels_refused && strcmp(id, fake_labels_refused) == 0) {
		r = -EINVAL;
	} else if (value && fake_put_lost) {
		fake_put_lost = false;
		snprintf(late_id, sizeof(late_id), "%s", id);
		snprintf(late_value, sizeof(late_value), "%.*s", (int)len, value);
		r = -ETIMEDOUT;
	} else {
		if (value)
			snprintf(f->value, sizeof(f->value), "%.*s", (int)len, value);
		if (value && late_id[0] && strcmp(late_id, id) == 0) {
			/* the lost PUT lands now, after this one */
			snprintf(f->value, sizeof(f->value), "%s", late_value);
			late_id[0] = '\0';
		}
		hooked = value && hook && hook_id && strcmp(id, hook_id) == 0;
		if (scopes)
			f->scopes = scopes;
		if (labels) {
			labels_clear(&f->labels);
			labels_copy(&f->labels, labels);
		}
	}
	pthread_mutex_unlock(&fake_lock);
	if (hooked)
		hook();
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
	int r = fake_enter_id(id);
	struct fake_secret *f;

	if (r)
		return r;
	f = fake_find(id);
	if (f && f->hidden) {
		/* the real remote store answers -ENOENT for an ID its table
		 * does not know, without a call */
		pthread_mutex_unlock(&fake_lock);
		return -ENOENT;
	}
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

/* settle_ms: how long the fake's lost calls may take to land */
static struct mirror *start_settle(int64_t settle_ms)
{
	struct store_config cfg = { .source = "redpanda:https://fake.example" };
	struct mirror *m = NULL;

	REQUIRE(mirror_open(&cfg, &fake_ops, lops, local, record, &m) == 0);
	mirror_set_settle_ms(m, settle_ms);
	REQUIRE(mirror_start(m) == 0);
	return m;
}

static struct mirror *start(void)
{
	return start_settle(200);
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

static void put(const char *id, const char *v);

static void del(const char *id)
{
	struct store_change c = { 0 };

	REQUIRE(lops->delete_secret(local, id, 0, &c) == 0);
	store_change_clear(&c);
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000 }, NULL);
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

/* Secrets the reconcile finds never pushed: their intents are written
 * (at once, in one write) before any is sent. */
static void test_reconcile_intents_ahead(void)
{
	struct secret_meta meta = { 0 };
	struct mirror *m;
	char line[64];

	pthread_mutex_lock(&fake_lock);
	fake_create_fail = -EIO;
	pthread_mutex_unlock(&fake_lock);
	put("AT_START", "s");
	REQUIRE(lops->stat(local, "AT_START", &meta) == 0);
	snprintf(line, sizeof(line), "AT_START %" PRIu64 " 0\n", meta.incarnation);
	secret_meta_clear(&meta);
	m = start();
	CHECK(eventually_error(m, "AT_START"));
	CHECK(record_has(line));
	pthread_mutex_lock(&fake_lock);
	fake_create_fail = 0;
	pthread_mutex_unlock(&fake_lock);
	CHECK(eventually(m, "AT_START", "synced"));
	mirror_stop(m);
	CHECK(!record_has(line));
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

/* A create whose answer was lost landed (the remote store's table does
 * not know it); deleted here: the DELETE reaches the cloud all the same. */
static void test_delete_after_lost_create(void)
{
	struct mirror *m = start();

	pthread_mutex_lock(&fake_lock);
	fake_create_lost = -ETIMEDOUT;
	pthread_mutex_unlock(&fake_lock);
	put("ZOMBIE", "z");
	mirror_kick(m, "ZOMBIE");
	CHECK(eventually_error(m, "ZOMBIE"));
	del("ZOMBIE");
	mirror_kick(m, "ZOMBIE");
	for (int i = 0; i < 1000 && fake_find("ZOMBIE"); i++)
		sleep_ms(10);
	CHECK(!fake_find("ZOMBIE"));
	CHECK(eventually(m, "ZOMBIE", "not mirrored"));
	mirror_stop(m);
	CHECK(!record_has("ZOMBIE "));
}

/* A value PUT whose answer was lost lands after the next one: the newer
 * value is sent once more before the secret is synced. */
static void test_lost_put_lands_late(void)
{
	/* (it lands at the next PUT: within 3 s, after the outage pause) */
	struct mirror *m = start_settle(3000);

	put("LATE", "v1");
	mirror_kick(m, "LATE");
	CHECK(eventually(m, "LATE", "synced"));
	pthread_mutex_lock(&fake_lock);
	fake_put_lost = true;
	pthread_mutex_unlock(&fake_lock);
	put("LATE", "v2");
	mirror_kick(m, "LATE");
	CHECK(eventually_error(m, "LATE"));
	put("LATE", "v3");
	mirror_kick(m, "LATE");
	CHECK(eventually(m, "LATE", "synced"));
	CHECK(fake_value_is("LATE", "v3"));
	mirror_stop(m);
}

/* One secret the cloud keeps failing (a 5xx for its ID) holds up no other. */
static void test_one_failing_secret(void)
{
	struct mirror *m = start();

	pthread_mutex_lock(&fake_lock);
	fail_id = "BAD";
	fail_id_r = -EIO;
	pthread_mutex_unlock(&fake_lock);
	put("BAD", "b");
	mirror_kick(m, "BAD");
	CHECK(eventually_error(m, "BAD"));
	put("GOOD", "g");
	mirror_kick(m, "GOOD");
	CHECK(eventually(m, "GOOD", "synced"));
	CHECK(fake_value_is("GOOD", "g"));
	CHECK(status_is(m, "BAD", "pending since "));
	pthread_mutex_lock(&fake_lock);
	fail_id = NULL;
	pthread_mutex_unlock(&fake_lock);
	CHECK(eventually(m, "BAD", "synced"));
	mirror_stop(m);
}

/* A secret changed during each of its pushes holds up no other. */
#define HOT_MAX 200
static struct mirror *hot_m;
static unsigned hot_changes;

static void change_hot(void)
{
	char v[32];

	if (fake_find("COLD") || hot_changes >= HOT_MAX)
		return; /* (read without fake_lock: only this thread writes it) */
	snprintf(v, sizeof(v), "h%u", ++hot_changes);
	put("HOT", v);
	mirror_kick(hot_m, "HOT");
}

static void test_hot_secret(void)
{
	hot_m = start();
	put("HOT", "h0");
	mirror_kick(hot_m, "HOT");
	CHECK(eventually(hot_m, "HOT", "synced"));
	hook_id = "HOT";
	hook = change_hot;
	put("HOT", "h");
	mirror_kick(hot_m, "HOT");
	put("COLD", "c");
	mirror_kick(hot_m, "COLD");
	CHECK(eventually(hot_m, "COLD", "synced"));
	CHECK(hot_changes < 5);
	CHECK(eventually(hot_m, "HOT", "synced"));
	hook = NULL;
	mirror_stop(hot_m);
}

/* A label the cloud refuses: each retry sends the labels, not the value. */
static void test_value_sent_once(void)
{
	struct mirror *m = start();
	struct labels l = { 0 };
	struct secret_meta meta = { 0 };
	unsigned labels_tries = 0, values = 0;

	put("LBL", "l1");
	mirror_kick(m, "LBL");
	CHECK(eventually(m, "LBL", "synced"));
	put("LBL", "l2");
	labels_set(&l, "team", "ops");
	REQUIRE(lops->set_labels(local, "LBL", 0, &l, &meta) == 0);
	secret_meta_clear(&meta);
	labels_clear(&l);
	pthread_mutex_lock(&fake_lock);
	count_id = "LBL";
	pthread_mutex_unlock(&fake_lock);
	/* refused: a label PUT answers -EINVAL (fail_id is checked on entry:
	 * the value PUT would fail too, so the refusal is in the hook's
	 * place: labels only) */
	pthread_mutex_lock(&fake_lock);
	fake_labels_refused = "LBL";
	pthread_mutex_unlock(&fake_lock);
	mirror_kick(m, "LBL");
	for (int i = 0; i < 1000 && labels_tries < 3; i++) {
		sleep_ms(10);
		pthread_mutex_lock(&fake_lock);
		labels_tries = count_set_labels;
		values = count_put_values;
		pthread_mutex_unlock(&fake_lock);
	}
	CHECK(labels_tries >= 3);
	CHECK_EQ(values, 1);
	CHECK(fake_value_is("LBL", "l2"));
	pthread_mutex_lock(&fake_lock);
	fake_labels_refused = NULL;
	count_id = NULL;
	pthread_mutex_unlock(&fake_lock);
	CHECK(eventually(m, "LBL", "synced"));
	mirror_stop(m);
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
	test_reconcile_intents_ahead();
	test_other_mirror_record();
	test_delete_after_lost_create();
	test_lost_put_lands_late();
	test_one_failing_secret();
	test_hot_secret();
	test_value_sent_once();

	lops->close(local);
	key_free(key);
	free(kp);
	free(record);
	free(dir);
	harness_rmrf(tmp);
	free(tmp);
	return harness_result("test_mirror");
}
