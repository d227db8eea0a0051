/* SPDX-License-Identifier: MIT */
/*
 * The Redpanda Cloud answers' parsers (backend/redpanda_json.c) under
 * libFuzzer: each fuzz_rp_*.c target defines RP_TARGET and includes this.
 * An answer comes from a server (or whatever sits between): nothing may
 * crash, leak or break the documented ranges, whatever it holds.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "redpanda_json.h"
#include "store.h"

static int count_secret(void *arg, const struct secret_meta *m)
{
	assert(m->id && secret_id_valid_existing(m->id));
	assert(m->scopes && (m->scopes & ~SCOPE_ALL) == 0);
	assert(m->labels.n <= LABELS_MAX);
	for (size_t i = 0; i < m->labels.n; i++)
		assert(strcmp(m->labels.v[i].key, "owner") != 0);
	(*(size_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		secret_allow_unlocked(true); /* the fuzzer's limits, not ours */
		ready = true;
	}
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
#if RP_TARGET == 1 /* a list page */
	char *next = NULL;
	size_t n = 0;
	unsigned bad = 0;
	int r = rp_parse_list_page(j, count_secret, &n, &next, &bad);
	if (r == 0) {
		assert(next && strlen(next) <= RP_PAGE_TOKEN_MAX);
		free(next);
	} else {
		assert(r == -EINVAL || r == -ENOMEM);
	}
#elif RP_TARGET == 2 /* a secret, a cluster */
	char *url = NULL;
	int rc = rp_parse_cluster(j, &url);
	if (rc == 0) {
		assert(strncmp(url, "https://", 8) == 0 && url[8] && !strpbrk(url, " ?#@"));
		free(url);
	} else {
		assert(rc == -EINVAL || rc == -EAGAIN || rc == -ENOMEM);
	}
	struct secret_meta m;
	unsigned unknown = 0, skipped = 0;
	size_t n = 0;
	int r = rp_parse_secret(j, &m, &unknown, &skipped);
	if (r == 0) {
		count_secret(&n, &m);
		secret_meta_clear(&m);
	} else {
		assert(r == -EINVAL || r == -ENOMEM);
	}
#elif RP_TARGET == 3 /* an error answer */
	char text[RP_ERROR_TEXT_MAX];
	bool store_error = true;
	rp_parse_error(j, text, sizeof(text), &store_error);
	assert(strlen(text) < sizeof(text));
	for (const char *p = text; *p; p++)
		assert((unsigned char)*p >= 0x20 && *p != 0x7f);
	int e = rp_error_errno(size ? data[0] * 2 : 0, -EINVAL, store_error);
	assert(e < 0);
#elif RP_TARGET == 4 /* a token answer, the quota header, the credentials file */
	char *tok = NULL;
	int64_t secs = 0;
	int r = rp_parse_token(j, &tok, &secs);
	if (r == 0) {
		assert(tok && *tok && secs > 0);
		for (const char *p = tok; *p; p++)
			assert((unsigned char)*p > ' ' && (unsigned char)*p < 0x7f);
		sodium_free(tok);
	}
	char *hdr = malloc(size + 1);
	if (!hdr)
		abort();
	memcpy(hdr, data, size);
	hdr[size] = '\0';
	assert(rp_quota_reset_s(hdr) >= -1);
	free(hdr);
	char *id = NULL, *secret = NULL;
	if (rp_parse_credentials((const char *)data, size, &id, &secret) == 0) {
		assert(*id && *secret);
		char out[2048];
		rp_form_escape(secret, out, sizeof(out));
		sodium_free(id);
		sodium_free(secret);
	}
#endif
	json_decref(j);
	return 0;
}
