/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <sodium.h>

#include "crypto.h"

_Static_assert(CRYPTO_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(CRYPTO_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(STORE_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -EIO;

static void do_init(void)
{
	init_result = sodium_init() < 0 ? -EIO : 0;
}

int crypto_init(void)
{
	if (pthread_once(&init_once, do_init) != 0)
		return -EIO;
	return init_result;
}

int crypto_seal(const uint8_t key[STORE_KEY_BYTES], const uint8_t *ad, size_t adlen,
                const uint8_t *pt, size_t ptlen, uint8_t **ret_ct, size_t *ret_ctlen)
{
	unsigned long long clen = 0;
	uint8_t *ct;
	size_t n;
	int r;

	if (!key || !ret_ct || !ret_ctlen || (ptlen > 0 && !pt) || (adlen > 0 && !ad))
		return -EINVAL;
	if (ptlen > SIZE_MAX - CRYPTO_OVERHEAD ||
	    ptlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return -EFBIG;
	r = crypto_init();
	if (r < 0)
		return r;

	n = ptlen + CRYPTO_OVERHEAD;
	ct = malloc(n);
	if (!ct)
		return -ENOMEM;
	randombytes_buf(ct, CRYPTO_NONCE_BYTES);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct + CRYPTO_NONCE_BYTES, &clen, pt, ptlen,
	                                               ad, adlen, NULL, ct, key) != 0 ||
	    clen != ptlen + CRYPTO_TAG_BYTES) {
		free(ct);
		return -EIO;
	}
	*ret_ct = ct;
	*ret_ctlen = n;
	return 0;
}

int crypto_open(const uint8_t key[STORE_KEY_BYTES], const uint8_t *ad, size_t adlen,
                const uint8_t *ct, size_t ctlen, struct secret_value **ret_value)
{
	struct secret_value *v;
	unsigned long long mlen = 0;
	int r;

	if (!key || !ret_value || (ctlen > 0 && !ct) || (adlen > 0 && !ad))
		return -EINVAL;
	if (ctlen < CRYPTO_OVERHEAD)
		return -EBADMSG;
	r = crypto_init();
	if (r < 0)
		return r;

	v = secret_value_new(ctlen - CRYPTO_OVERHEAD);
	if (!v)
		return -ENOMEM;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        v->data, &mlen, NULL, ct + CRYPTO_NONCE_BYTES, ctlen - CRYPTO_NONCE_BYTES, ad,
	        adlen, ct, key) != 0 ||
	    mlen != v->len) {
		secret_value_free(v);
		return -EBADMSG;
	}
	*ret_value = v;
	return 0;
}
