/* SPDX-License-Identifier: MIT */
/*
 * Authenticated encryption of values: XChaCha20-Poly1305 (libsodium).
 *
 * A sealed value is  nonce (24 random bytes) || ciphertext || tag (16).
 * The associated data binds a ciphertext to its place (store, secret,
 * version), so a ciphertext moved elsewhere fails to open.
 */
#ifndef SECRETSFS_CRYPTO_H
#define SECRETSFS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define CRYPTO_NONCE_BYTES 24
#define CRYPTO_TAG_BYTES 16
#define CRYPTO_OVERHEAD (CRYPTO_NONCE_BYTES + CRYPTO_TAG_BYTES)

/* Initialises libsodium once (thread-safe).  0 or -EIO. */
int crypto_init(void);

/* Seals pt under key with associated data ad.  *ret_ct is malloc'ed and
 * holds nonce || ciphertext || tag (ptlen + CRYPTO_OVERHEAD bytes). */
int crypto_seal(const uint8_t key[STORE_KEY_BYTES], const uint8_t *ad, size_t adlen,
                const uint8_t *pt, size_t ptlen, uint8_t **ret_ct, size_t *ret_ctlen);

/* Opens what crypto_seal produced, decrypting straight into locked memory
 * (*ret_value; its version and mtime_ns are left 0 for the caller).
 * -EBADMSG if the input is short or fails authentication (wrong key,
 * wrong associated data, a flipped byte). */
int crypto_open(const uint8_t key[STORE_KEY_BYTES], const uint8_t *ad, size_t adlen,
                const uint8_t *ct, size_t ctlen, struct secret_value **ret_value);

#endif
