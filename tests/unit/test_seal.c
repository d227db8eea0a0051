/* SPDX-License-Identifier: MIT */
/* Known answers of seal.c's metadata MAC and digest terms: every store
 * written so far holds them, so a faster way to compute them must give
 * the same bytes (the answers were taken from the code before
 * seal_meta_mac buffered its input and the digest kept its keyed
 * states; an existing store would fail authentication otherwise). */
#include <sodium.h>

#include "harness.h"
#include "seal.h"

#define KAT_MAC3 "6ce077f73231ff1a7d283d272f181b6e7cf74f3b78d94ff4c8d638f10264fe33"
#define KAT_MAC0 "be733146ccab785004ebd355ef0d51d4cecfac0870468b0e7ac3bf0de8e0bdaf"
#define KAT_MACBIG "827ca018b4a481eb699d9ea5869be25fc3f1c1c1112621d0c22422e58140a3e9"
#define KAT_DIGEST "4402020f3da87c5ddcab2f4c0f8f10f0fc834b9ab034a67604d227a554d2de21"

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

int main(void)
{
	uint8_t key[STORE_KEY_BYTES], store_id[SEAL_STORE_ID_BYTES], nonce[SEAL_NONCE_BYTES];
	struct seal_keys *k = NULL;
	char out[2 * SEAL_MAC_BYTES + 1];
	uint8_t mac[SEAL_MAC_BYTES];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(store_id); i++)
		store_id[i] = (uint8_t)(0xa0 + i);
	for (size_t i = 0; i < sizeof(nonce); i++)
		nonce[i] = (uint8_t)(0x50 + i);
	REQUIRE(seal_keys_new(key, store_id, &k) == 0);

	/* labels out of order: the MAC sorts them */
	struct label lv[3] = { { "team", "search" },
		               { "managed-by", "aigateway" },
		               { "provider", "openai" } };
	struct secret_meta m = { .id = "OPENAI_API_KEY_SEARCH_0000042",
		                 .incarnation = 7,
		                 .revision = 9,
		                 .value_revision = 8,
		                 .scopes = 5,
		                 .labels = { 3, lv },
		                 .version = 2,
		                 .size = 64,
		                 .ctime_ns = 1700000000000000000LL,
		                 .mtime_ns = 1700000000123456789LL };
	REQUIRE(seal_meta_mac(k, &m, nonce, mac) == 0);
	hex(mac, sizeof(mac), out);
	CHECK(strcmp(out, KAT_MAC3) == 0);
	CHECK_EQ(seal_meta_verify(k, &m, nonce, mac, sizeof(mac)), 0);

	/* no labels, and an ID of 255 characters (longer than one block) */
	char longid[256];
	memset(longid, 'A', 255);
	longid[255] = 0;
	struct secret_meta m0 = m;
	m0.id = longid;
	m0.labels = (struct labels){ 0 };
	REQUIRE(seal_meta_mac(k, &m0, nonce, mac) == 0);
	hex(mac, sizeof(mac), out);
	CHECK(strcmp(out, KAT_MAC0) == 0);

	/* a label value of 1000 bytes (the buffer's spill) */
	char big[1001];
	memset(big, 'v', 1000);
	big[1000] = 0;
	struct label lb[2] = { { "a", big }, { "b", "x" } };
	struct secret_meta mb = m;
	mb.labels = (struct labels){ 2, lb };
	REQUIRE(seal_meta_mac(k, &mb, nonce, mac) == 0);
	hex(mac, sizeof(mac), out);
	CHECK(strcmp(out, KAT_MACBIG) == 0);
	lb[0].value[999] = 'w'; /* one byte more: another MAC */
	CHECK(seal_meta_verify(k, &mb, nonce, mac, sizeof(mac)) == -EBADMSG);

	struct seal_digest d = { 0 };
	seal_digest_secret(k, &d, +1, m.id, strlen(m.id), 7, mac, sizeof(mac));
	seal_digest_version(k, &d, +1, m.id, strlen(m.id), 2, 8);
	seal_digest_version(k, &d, +1, longid, 255, 1, 3);
	hex(d.d, sizeof(d.d), out);
	CHECK(strcmp(out, KAT_DIGEST) == 0);
	seal_digest_version(k, &d, -1, longid, 255, 1, 3);
	seal_digest_version(k, &d, -1, m.id, strlen(m.id), 2, 8);
	seal_digest_secret(k, &d, -1, m.id, strlen(m.id), 7, mac, sizeof(mac));
	struct seal_digest zero = { 0 };
	CHECK(seal_digest_equal(&d, &zero));

	seal_keys_free(k);
	return harness_result("test_seal");
}
