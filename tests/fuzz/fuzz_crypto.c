/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: sealed values as read back from a store (backend/crypto.c).
 * First byte: mode.  Even: the rest is split into associated data and a
 * "ciphertext" that crypto_open must refuse (or, never in practice, open)
 * without crashing.  Odd: the rest is sealed and opened again (must round
 * trip), then one byte of the sealed value or of the associated data,
 * chosen by the input, is flipped (must fail with -EBADMSG).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

static uint8_t key[STORE_KEY_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (crypto_init() < 0)
		abort();
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secret_value *v = NULL;
	int r;

	if (size < 3)
		return 0;
	uint8_t mode = data[0];
	size_t adlen = data[1] % (size - 2 + 1);
	const uint8_t *ad = data + 2, *rest = data + 2 + adlen;
	size_t restlen = size - 2 - adlen;

	if (!(mode & 1)) {
		r = crypto_open(key, adlen ? ad : NULL, adlen, restlen ? rest : NULL, restlen, &v);
		assert(r == 0 || r == -EBADMSG);
		if (r == 0) {
			assert(v->len + CRYPTO_OVERHEAD == restlen);
			secret_value_free(v);
		}
		return 0;
	}

	uint8_t *ct = NULL;
	size_t ctlen = 0;
	r = crypto_seal(key, adlen ? ad : NULL, adlen, restlen ? rest : NULL, restlen, &ct, &ctlen);
	assert(r == 0 && ctlen == restlen + CRYPTO_OVERHEAD);
	r = crypto_open(key, adlen ? ad : NULL, adlen, ct, ctlen, &v);
	assert(r == 0 && v->len == restlen && memcmp(v->data, rest, restlen) == 0);
	v = secret_value_free(v);

	/* flip one bit somewhere in ct || ad */
	size_t pos = ((size_t)mode >> 1) * 131 % (ctlen + adlen);
	uint8_t *adc = malloc(adlen ? adlen : 1);
	if (!adc)
		abort();
	memcpy(adc, ad, adlen);
	if (pos < ctlen)
		ct[pos] ^= 0x01;
	else
		adc[pos - ctlen] ^= 0x01;
	r = crypto_open(key, adlen ? adc : NULL, adlen, ct, ctlen, &v);
	assert(r == -EBADMSG && v == NULL);
	/* a shortened ciphertext is refused too */
	r = crypto_open(key, adlen ? ad : NULL, adlen, ct, ctlen - 1, &v);
	assert(r == -EBADMSG && v == NULL);
	free(adc);
	free(ct);
	return 0;
}
