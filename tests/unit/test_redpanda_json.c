/* SPDX-License-Identifier: MIT */
/* The Redpanda Cloud answers' parsers (backend/redpanda_json.c) on the
 * contract's own examples and on what they must refuse or leave out. */
#include <jansson.h>
#include <sodium.h>

#include "harness.h"
#include "redpanda_json.h"
#include "store.h"

static json_t *parse(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	REQUIRE(j != NULL);
	return j;
}

static void test_secret(void)
{
	struct secret_meta m;
	unsigned unknown = 9, skipped = 9;
	json_t *j = parse("{\"secret\":{\"id\":\"OPENAI_API_KEY\",\"labels\":{\"managed-by\":"
	                  "\"aigateway\",\"owner\":\"x\",\"bad key\":\"v\"},\"scopes\":["
	                  "\"SCOPE_AI_GATEWAY\",\"SCOPE_FUTURE\",\"SCOPE_MCP_SERVER\"]}}");

	CHECK_EQ(rp_parse_secret(j, &m, &unknown, &skipped), 0);
	CHECK(strcmp(m.id, "OPENAI_API_KEY") == 0);
	CHECK_EQ(m.scopes, (1u << SCOPE_AI_GATEWAY) | (1u << SCOPE_MCP_SERVER));
	CHECK_EQ(m.labels.n, 1); /* owner hidden, "bad key" left out */
	CHECK(strcmp(labels_get(&m.labels, "managed-by"), "aigateway") == 0);
	CHECK(labels_get(&m.labels, "owner") == NULL);
	CHECK_EQ(unknown, 1);
	CHECK_EQ(skipped, 1);
	secret_meta_clear(&m);
	json_decref(j);

	/* older servers: the bare object; loose IDs */
	j = parse("{\"id\":\"legacy/key-1\",\"scopes\":[\"SCOPE_REDPANDA_CONNECT\"]}");
	CHECK_EQ(rp_parse_secret(j, &m, NULL, NULL), 0);
	CHECK(strcmp(m.id, "legacy/key-1") == 0);
	secret_meta_clear(&m);
	json_decref(j);

	static const char *const bad[] = {
		"{\"id\":\"A B\",\"scopes\":[\"SCOPE_AI_GATEWAY\"]}", /* not even a loose ID */
		"{\"id\":\"A\",\"scopes\":[]}",                       /* no scope */
		"{\"id\":\"A\",\"scopes\":[\"SCOPE_UNSPECIFIED\"]}",  /* none we know */
		"{\"id\":\"A\",\"scopes\":\"SCOPE_AI_GATEWAY\"}",     /* not a list */
		"{\"scopes\":[\"SCOPE_AI_GATEWAY\"]}",                /* no ID */
		"[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = parse(bad[i]);
		CHECK_EQ(rp_parse_secret(j, &m, NULL, NULL), -EINVAL);
		json_decref(j);
	}
}

static int count(void *arg, const struct secret_meta *m)
{
	(*(int *)arg)++;
	return 0;
}

static void test_list_page(void)
{
	json_t *j = parse("{\"secrets\":[{\"id\":\"A\",\"scopes\":[\"SCOPE_AI_GATEWAY\"]},{\"id\":"
	                  "\"B\",\"scopes\":[]},{\"id\":\"C\",\"scopes\":[\"SCOPE_AI_AGENT\"]}],"
	                  "\"next_page_token\":\"tok\"}");
	char *next = NULL;
	unsigned bad = 0;
	int n = 0;

	CHECK_EQ(rp_parse_list_page(j, count, &n, &next, &bad), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(bad, 1);
	CHECK(strcmp(next, "tok") == 0);
	free(next);
	json_decref(j);
	j = parse("{\"secrets\":[]}"); /* the last page may leave the token out */
	CHECK_EQ(rp_parse_list_page(j, count, &n, &next, &bad), 0);
	CHECK(strcmp(next, "") == 0);
	free(next);
	json_decref(j);
	j = parse("{\"secrets\":{},\"next_page_token\":\"\"}");
	CHECK_EQ(rp_parse_list_page(j, count, &n, &next, &bad), -EINVAL);
	json_decref(j);
}

static void test_error(void)
{
	char text[RP_ERROR_TEXT_MAX];
	bool store_error;
	json_t *j = parse(
	    "{\"code\":\"INVALID_ARGUMENT\",\"message\":\"provided parameters are invalid\","
	    "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
	    "\"REASON_INVALID_INPUT\",\"domain\":\"redpanda.com/dataplane\"},{\"@type\":"
	    "\"google.rpc.BadRequest\",\"field_violations\":[{\"field\":\"id\",\"description\":"
	    "\"bad\\nline\"}]}]}");

	rp_parse_error(j, text, sizeof(text), &store_error);
	CHECK(strcmp(text, "INVALID_ARGUMENT: provided parameters are invalid "
	                   "[REASON_INVALID_INPUT]; id: bad?line") == 0);
	CHECK(!store_error);
	CHECK_EQ(rp_error_errno(400, -EINVAL, store_error), -EINVAL);
	json_decref(j);
	j = parse("{\"code\":13,\"message\":\"m\",\"details\":[{\"@type\":\"google.rpc.ErrorInfo\","
	          "\"reason\":\"REASON_SECRET_STORE_ERROR\"}]}");
	rp_parse_error(j, text, sizeof(text), &store_error);
	CHECK(store_error);
	CHECK(strncmp(text, "code 13: m", 10) == 0);
	CHECK_EQ(rp_error_errno(400, -EINVAL, store_error), -EIO);
	json_decref(j);
	/* "not.google.rpc.ErrorInfo" is another type */
	j = parse("{\"details\":[{\"@type\":\"notgoogle.rpc.ErrorInfo\",\"reason\":"
	          "\"REASON_SECRET_STORE_ERROR\"}]}");
	rp_parse_error(j, text, sizeof(text), &store_error);
	CHECK(!store_error);
	json_decref(j);
	rp_parse_error(NULL, text, sizeof(text), &store_error);
	CHECK(text[0] == '\0');
	CHECK_EQ(rp_error_errno(503, -EIO, false), -EAGAIN);
}

static void test_token_and_quota(void)
{
	char *tok = NULL;
	int64_t secs = 0;
	json_t *j = parse("{\"access_token\":\"abc.def\",\"expires_in\":86400,\"token_type\":"
	                  "\"Bearer\"}");

	CHECK_EQ(rp_parse_token(j, &tok, &secs), 0);
	CHECK(strcmp(tok, "abc.def") == 0);
	CHECK_EQ(secs, 86400);
	sodium_free(tok);
	json_decref(j);
	j = parse("{\"access_token\":\"a\\r\\nX: y\",\"expires_in\":60}"); /* header injection */
	CHECK_EQ(rp_parse_token(j, &tok, &secs), -EINVAL);
	json_decref(j);
	j = parse("{\"access_token\":\"a\",\"expires_in\":0}");
	CHECK_EQ(rp_parse_token(j, &tok, &secs), -EINVAL);
	json_decref(j);
	CHECK_EQ(rp_quota_reset_s("b=per_day;q=100;r=83;t=43200"), 43200);
	CHECK_EQ(rp_quota_reset_s("t=5"), 5);
	CHECK_EQ(rp_quota_reset_s("b=per_day;q=100"), -1);
	CHECK_EQ(rp_quota_reset_s("t=x"), -1);
	CHECK_EQ(rp_quota_reset_s(""), -1);
}

static void test_cluster(void)
{
	static const struct {
		const char *json;
		int r;
		const char *url;
	} cases[] = {
		{ "{\"cluster\":{\"id\":\"c1\",\"dataplane_api\":{\"url\":\"https://api-1.example.com\"}}}",
		  0, "https://api-1.example.com" },
		{ "{\"serverless_cluster\":{\"dataplane_api\":{\"url\":\"https://h:8443/dp/\","
		  "\"private_url\":\"https://p\"}}}",
		  0, "https://h:8443/dp" },
		{ "{\"cluster\":{\"dataplane_api\":null}}", -EAGAIN, NULL }, /* not ready */
		{ "{\"cluster\":{\"state\":\"STATE_CREATING\"}}", -EAGAIN, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"\"}}}", -EAGAIN, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"http://plain\"}}}", -EINVAL, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"https://\"}}}", -EINVAL, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"https:///path\"}}}", -EINVAL, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"https://a b\"}}}", -EINVAL, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":\"https://u@evil\"}}}", -EINVAL, NULL },
		{ "{\"cluster\":{\"dataplane_api\":{\"url\":7}}}", -EINVAL, NULL },
		{ "{\"cluster\":[]}", -EINVAL, NULL },
		{ "[]", -EINVAL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = parse(cases[i].json);
		char *url = NULL;
		CHECK_EQ(rp_parse_cluster(j, &url), cases[i].r);
		CHECK(cases[i].url ? url && strcmp(url, cases[i].url) == 0 : url == NULL);
		free(url);
		json_decref(j);
	}
}

static void test_credentials_and_paths(void)
{
	static const char ok[] = "# the gateway's client\nclient_id=abc\r\n\n  client_secret=s3&x "
	                         "\n";
	char *id = NULL, *secret = NULL, *p, out[64];

	CHECK_EQ(rp_parse_credentials(ok, sizeof(ok) - 1, &id, &secret), 0);
	CHECK(strcmp(id, "abc") == 0);
	CHECK(strcmp(secret, "s3&x") == 0);
	CHECK_EQ(rp_form_escape(secret, out, sizeof(out)), 6);
	CHECK(strcmp(out, "s3%26x") == 0);
	CHECK_EQ(rp_form_escape(secret, out, 4), -ENOSPC);
	sodium_free(id);
	sodium_free(secret);
	static const char *const bad[] = {
		"client_id=a\n",                               /* no secret */
		"client_id=a\nclient_secret=b\nclient_id=c\n", /* twice */
		"client_id=a\nclient_secret=b\nother=c\n",     /* unknown line */
		"client_id=a\nclient_secret=\n",               /* empty */
		"client_id=a\nclient_secret=b\x01\n",          /* control character */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(rp_parse_credentials(bad[i], strlen(bad[i]), &id, &secret), -EINVAL);
	p = rp_secret_path("legacy/key-1");
	CHECK(strcmp(p, "/v1/secrets/legacy%2Fkey-1") == 0);
	free(p);
}

int main(void)
{
	REQUIRE(sodium_init() >= 0);
	secret_allow_unlocked(true); /* a test's memory limit, not the daemon's */
	test_secret();
	test_list_page();
	test_error();
	test_token_and_quota();
	test_credentials_and_paths();
	test_cluster();
	return harness_result("test_redpanda_json");
}
