/* SPDX-License-Identifier: MIT */
/* ID, label and scope rules; label maps; metadata copies; values. */
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sodium.h>

#include "harness.h"
#include "store.h"

static void test_ids(void)
{
	char buf[300];

	CHECK(secret_id_valid_new("OPENAI_API_KEY"));
	CHECK(secret_id_valid_new("A"));
	CHECK(secret_id_valid_new("A1_B2"));
	CHECK(!secret_id_valid_new(""));
	CHECK(!secret_id_valid_new(NULL));
	CHECK(!secret_id_valid_new("1ABC"));
	CHECK(!secret_id_valid_new("_ABC"));
	CHECK(!secret_id_valid_new("openai"));
	CHECK(!secret_id_valid_new("ABC-DEF"));
	CHECK(!secret_id_valid_new("ABC/DEF"));
	CHECK(!secret_id_valid_new("ABC DEF"));
	CHECK(!secret_id_valid_new(".ABC.swp"));
	CHECK(!secret_id_valid_new("ÄBC"));

	memset(buf, 'A', 255);
	buf[255] = '\0';
	CHECK(secret_id_valid_new(buf));
	CHECK(secret_id_valid_existing(buf));
	buf[255] = 'A';
	buf[256] = '\0';
	CHECK(!secret_id_valid_new(buf));
	CHECK(!secret_id_valid_existing(buf));

	CHECK(secret_id_valid_existing("OPENAI_API_KEY"));
	CHECK(secret_id_valid_existing("legacy/key-name_1"));
	CHECK(secret_id_valid_existing("a"));
	CHECK(secret_id_valid_existing("-"));
	CHECK(!secret_id_valid_existing(""));
	CHECK(!secret_id_valid_existing(NULL));
	CHECK(!secret_id_valid_existing("a.b"));
	CHECK(!secret_id_valid_existing("a b"));
	CHECK(!secret_id_valid_existing("a\nb"));
	CHECK(!secret_id_valid_existing("Grüße"));
}

static void test_label_rules(void)
{
	char buf[300];

	CHECK(label_key_valid("managed-by"));
	CHECK(label_key_valid("a.b/c_d-E9"));
	CHECK(!label_key_valid(""));
	CHECK(!label_key_valid(NULL));
	CHECK(!label_key_valid("owner"));
	CHECK(label_key_valid("owners"));
	CHECK(!label_key_valid("a=b"));
	CHECK(!label_key_valid("a b"));
	CHECK(!label_key_valid("ä"));
	memset(buf, 'k', LABEL_KEY_MAX);
	buf[LABEL_KEY_MAX] = '\0';
	CHECK(label_key_valid(buf));
	buf[LABEL_KEY_MAX] = 'k';
	buf[LABEL_KEY_MAX + 1] = '\0';
	CHECK(!label_key_valid(buf));

#define V(s) label_value_valid((s), strlen(s))
	CHECK(V(""));
	CHECK(V("aigateway"));
	CHECK(V("Grüße"));
	CHECK(V("日本語 テキスト"));
	CHECK(V("a b_c.d:e/f=g+h-i@j 42"));
	CHECK(V("\xc2\xa0"));         /* U+00A0 no-break space */
	CHECK(V("\xf0\x9f\x98\x80")); /* U+1F600, 4 bytes */
	CHECK(!V("a\nb"));
	CHECK(!V("a\tb"));
	CHECK(!V("\x7f"));
	CHECK(!V("a,b"));
	CHECK(!V("a;b"));
	CHECK(!V("\"quoted\""));
	CHECK(!V("a$b"));
	CHECK(!V("\xff"));             /* never valid */
	CHECK(!V("\xc3"));             /* truncated */
	CHECK(!V("\xc3("));            /* bad continuation */
	CHECK(!V("\xc0\xaf"));         /* overlong '/' */
	CHECK(!V("\xe0\x80\xaf"));     /* overlong */
	CHECK(!V("\xed\xa0\x80"));     /* surrogate */
	CHECK(!V("\xf4\x90\x80\x80")); /* > U+10FFFF */
	CHECK(!V("\xc2\x85"));         /* C1 control NEL */
#undef V
	CHECK(!label_value_valid("a\0b", 3));
	CHECK(label_value_valid(NULL, 0));
	memset(buf, 'v', LABEL_VALUE_MAX + 1);
	CHECK(label_value_valid(buf, LABEL_VALUE_MAX));
	CHECK(!label_value_valid(buf, LABEL_VALUE_MAX + 1));
}

static void test_scopes(void)
{
	CHECK(strcmp(scope_dir_name(SCOPE_AI_GATEWAY), "ai_gateway") == 0);
	CHECK(strcmp(scope_dir_name(SCOPE_MCP_SERVER), "mcp_server") == 0);
	CHECK(strcmp(scope_dir_name(SCOPE_AI_AGENT), "ai_agent") == 0);
	CHECK(strcmp(scope_dir_name(SCOPE_REDPANDA_CLUSTER), "redpanda_cluster") == 0);
	CHECK(strcmp(scope_dir_name(SCOPE_REDPANDA_CONNECT), "redpanda_connect") == 0);
	CHECK(strcmp(scope_api_name(SCOPE_AI_GATEWAY), "SCOPE_AI_GATEWAY") == 0);
	CHECK(strcmp(scope_api_name(SCOPE_REDPANDA_CONNECT), "SCOPE_REDPANDA_CONNECT") == 0);
	CHECK(scope_dir_name(SCOPE_COUNT) == NULL);
	CHECK(scope_api_name(SCOPE_COUNT) == NULL);
	for (int i = 0; i < SCOPE_COUNT; i++)
		CHECK_EQ(scope_from_dir_name(scope_dir_name(i)), i);
	CHECK_EQ(scope_from_dir_name("nope"), -1);
	CHECK_EQ(scope_from_dir_name("SCOPE_AI_GATEWAY"), -1);
	CHECK_EQ(scope_from_dir_name(NULL), -1);
	CHECK_EQ(SCOPE_ALL, 0x1f);
}

static void test_label_maps(void)
{
	struct labels l = { 0 }, c = { 0 };
	char key[16];

	CHECK(labels_get(&l, "x") == NULL);
	CHECK_EQ(labels_set(&l, "zeta", "1"), 0);
	CHECK_EQ(labels_set(&l, "alpha", "2"), 0);
	CHECK_EQ(labels_set(&l, "mid", "3"), 0);
	CHECK_EQ(l.n, 3);
	CHECK(strcmp(l.v[0].key, "alpha") == 0);
	CHECK(strcmp(l.v[1].key, "mid") == 0);
	CHECK(strcmp(l.v[2].key, "zeta") == 0);
	CHECK_EQ(labels_set(&l, "mid", "three"), 0); /* replace */
	CHECK_EQ(l.n, 3);
	CHECK(strcmp(labels_get(&l, "mid"), "three") == 0);
	CHECK_EQ(labels_set(&l, "owner", "me"), -EINVAL);
	CHECK_EQ(labels_set(&l, "bad key", "x"), -EINVAL);
	CHECK_EQ(labels_set(&l, "k", "a\nb"), -EINVAL);
	CHECK_EQ(labels_set(&l, "k", NULL), -EINVAL);
	CHECK_EQ(l.n, 3);

	CHECK_EQ(labels_copy(&c, &l), 0);
	CHECK_EQ(c.n, 3);
	CHECK(c.v[0].key != l.v[0].key);
	CHECK(strcmp(labels_get(&c, "alpha"), "2") == 0);

	CHECK_EQ(labels_remove(&l, "mid"), 0);
	CHECK_EQ(labels_remove(&l, "mid"), -ENODATA);
	CHECK_EQ(l.n, 2);
	CHECK(labels_get(&l, "mid") == NULL);
	CHECK(strcmp(labels_get(&l, "zeta"), "1") == 0);
	CHECK_EQ(labels_remove(&l, "alpha"), 0);
	CHECK_EQ(labels_remove(&l, "zeta"), 0);
	CHECK_EQ(l.n, 0);
	CHECK_EQ(labels_remove(&l, "zeta"), -ENODATA);
	labels_clear(&l);

	for (int i = 0; i < LABELS_MAX; i++) {
		snprintf(key, sizeof(key), "k%03d", LABELS_MAX - i);
		CHECK_EQ(labels_set(&l, key, "v"), 0);
	}
	CHECK_EQ(labels_set(&l, "extra", "v"), -ENOSPC);
	CHECK_EQ(labels_set(&l, "k001", "replaced"), 0); /* replacing is fine */
	for (size_t i = 1; i < l.n; i++)
		CHECK(strcmp(l.v[i - 1].key, l.v[i].key) < 0);
	labels_clear(&l);
	labels_clear(&c);
	CHECK_EQ(c.n, 0);
	CHECK(c.v == NULL);
}

static void test_meta_and_values(void)
{
	struct secret_meta m = { 0 }, c = { 0 };
	struct secret_value *v;

	m.id = strdup("OPENAI_API_KEY");
	m.scopes = 1u << SCOPE_AI_GATEWAY;
	m.version = 7;
	m.size = 42;
	m.ctime_ns = 1;
	m.mtime_ns = 2;
	CHECK_EQ(labels_set(&m.labels, "managed-by", "aigateway"), 0);
	CHECK_EQ(secret_meta_copy(&c, &m), 0);
	CHECK(c.id != m.id && strcmp(c.id, m.id) == 0);
	CHECK_EQ(c.version, 7);
	CHECK_EQ(c.size, 42);
	CHECK_EQ(c.scopes, m.scopes);
	CHECK(strcmp(labels_get(&c.labels, "managed-by"), "aigateway") == 0);
	secret_meta_clear(&m);
	CHECK(m.id == NULL);
	CHECK_EQ(m.labels.n, 0);
	secret_meta_clear(&c);
	secret_meta_clear(NULL);

	v = secret_value_new(0);
	REQUIRE(v != NULL);
	CHECK_EQ(v->len, 0);
	CHECK(v->data != NULL);
	CHECK(secret_value_free(v) == NULL);
	v = secret_value_new(SECRET_VALUE_MAX);
	REQUIRE(v != NULL);
	CHECK_EQ(v->len, SECRET_VALUE_MAX);
	memset(v->data, 0xab, v->len);
	secret_value_free(v);
	CHECK(secret_value_free(NULL) == NULL);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SFS_CLANG_ASAN 1
#endif
#endif
#ifndef SFS_CLANG_ASAN
#define SFS_CLANG_ASAN 0
#endif

/* Drops CAP_IPC_LOCK from the effective set, so RLIMIT_MEMLOCK holds. */
static void drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	REQUIRE(syscall(SYS_capget, &h, d) == 0);
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	REQUIRE(syscall(SYS_capset, &h, d) == 0);
}

/* Bytes this process has locked now (earlier tests' pooled buffers). */
static size_t locked_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmLck:", 6) == 0) {
			kb = strtoul(line + 6, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Past RLIMIT_MEMLOCK a value gets no memory rather than swappable
 * memory (sodium_malloc alone would hand it out unlocked), unless
 * unlocked memory is allowed.  Last: it drops a capability. */
static void test_values_only_locked(void)
{
	struct rlimit old, lim = { 64 * 1024 + locked_now(), 0 };
	struct secret_value *v[64] = { 0 };
	int got = 0;

#if defined(__SANITIZE_ADDRESS__) || SFS_CLANG_ASAN
	/* ASan's mlock and mlockall do nothing and always succeed. */
	fprintf(stderr, "test_values_only_locked: skipped under ASan (mlock is a no-op)\n");
	return;
#endif
	drop_ipc_lock();
	REQUIRE(getrlimit(RLIMIT_MEMLOCK, &old) == 0);
	lim.rlim_max = old.rlim_max;
	REQUIRE(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	for (int i = 0; i < 64; i++)
		if ((v[i] = secret_value_new(8192)))
			got++;
	CHECK(got > 0);
	CHECK(got < 64); /* 64 × 8 KiB is eight times what is left */
	secret_allow_unlocked(true);
	struct secret_value *extra = secret_value_new(8192);
	CHECK(extra != NULL);
	secret_value_free(extra);
	secret_allow_unlocked(false);
	for (int i = 0; i < 64; i++)
		secret_value_free(v[i]);
	setrlimit(RLIMIT_MEMLOCK, &old);
}

int main(void)
{
	test_ids();
	test_label_rules();
	test_scopes();
	test_label_maps();
	test_meta_and_values();
	test_values_only_locked();
	return harness_result("test_secret");
}
