/* SPDX-License-Identifier: MIT */
#include <sodium.h>

#include "crypto.h"
#include "harness.h"

int main(void)
{
	uint8_t key[STORE_KEY_BYTES], key2[STORE_KEY_BYTES];
	static const uint8_t pt[] = "sk-live-0123456789abcdef";
	static const uint8_t ad[] = "context A";
	static const uint8_t ad2[] = "context B";
	struct secret_value *v = NULL;
	uint8_t *ct = NULL, *ct2 = NULL;
	size_t ctlen = 0, ct2len = 0;
	size_t ptlen = sizeof(pt) - 1;

	REQUIRE(crypto_init() == 0);
	CHECK_EQ(crypto_init(), 0); /* idempotent */
	randombytes_buf(key, sizeof(key));
	randombytes_buf(key2, sizeof(key2));

	/* round trip */
	CHECK_EQ(crypto_seal(key, ad, sizeof(ad), pt, ptlen, &ct, &ctlen), 0);
	REQUIRE(ct != NULL);
	CHECK_EQ(ctlen, ptlen + CRYPTO_OVERHEAD);
	CHECK(memmem(ct, ctlen, pt, ptlen) == NULL);
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, ctlen, &v), 0);
	REQUIRE(v != NULL);
	CHECK_EQ(v->len, ptlen);
	CHECK(memcmp(v->data, pt, ptlen) == 0);
	v = secret_value_free(v);

	/* random nonce: the same input seals differently */
	CHECK_EQ(crypto_seal(key, ad, sizeof(ad), pt, ptlen, &ct2, &ct2len), 0);
	CHECK(ct2len == ctlen && memcmp(ct, ct2, ctlen) != 0);
	free(ct2);

	/* a flipped byte anywhere: nonce, body, tag */
	size_t positions[] = { 0, CRYPTO_NONCE_BYTES - 1, CRYPTO_NONCE_BYTES,
		               CRYPTO_NONCE_BYTES + ptlen / 2, ctlen - 1 };
	for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
		ct[positions[i]] ^= 0x01;
		v = NULL;
		CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, ctlen, &v), -EBADMSG);
		CHECK(v == NULL); /* untouched on failure */
		ct[positions[i]] ^= 0x01;
	}
	/* wrong associated data, none, wrong key */
	CHECK_EQ(crypto_open(key, ad2, sizeof(ad2), ct, ctlen, &v), -EBADMSG);
	CHECK_EQ(crypto_open(key, NULL, 0, ct, ctlen, &v), -EBADMSG);
	CHECK_EQ(crypto_open(key2, ad, sizeof(ad), ct, ctlen, &v), -EBADMSG);
	/* short or truncated input */
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, CRYPTO_OVERHEAD - 1, &v), -EBADMSG);
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, 0, &v), -EBADMSG);
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, ctlen - 1, &v), -EBADMSG);
	/* still fine afterwards */
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, ctlen, &v), 0);
	v = secret_value_free(v);
	free(ct);

	/* empty plaintext and no AD */
	CHECK_EQ(crypto_seal(key, NULL, 0, NULL, 0, &ct, &ctlen), 0);
	CHECK_EQ(ctlen, CRYPTO_OVERHEAD);
	CHECK_EQ(crypto_open(key, NULL, 0, ct, ctlen, &v), 0);
	REQUIRE(v != NULL);
	CHECK_EQ(v->len, 0);
	secret_value_free(v);
	free(ct);

	/* the largest value */
	uint8_t *big = malloc(SECRET_VALUE_MAX);
	REQUIRE(big != NULL);
	randombytes_buf(big, SECRET_VALUE_MAX);
	CHECK_EQ(crypto_seal(key, ad, sizeof(ad), big, SECRET_VALUE_MAX, &ct, &ctlen), 0);
	CHECK_EQ(crypto_open(key, ad, sizeof(ad), ct, ctlen, &v), 0);
	REQUIRE(v != NULL);
	CHECK(v->len == SECRET_VALUE_MAX && memcmp(v->data, big, SECRET_VALUE_MAX) == 0);
	secret_value_free(v);
	free(ct);
	free(big);

	return harness_result("test_crypto");
}
