/* SPDX-License-Identifier: MIT */
/*
 * Sealing, shared by every store: what binds a value to its place and a
 * secret's metadata to the store key (docs/design.md "Sealing").  The
 * embedded store uses it now; the etcd and Redpanda stores, whose
 * metadata others can write, use the same scheme.  crypto.c stays the
 * primitive layer (the AEAD); this file decides what is authenticated.
 *
 * Keys.  Two sub-keys are derived from the store key with crypto_kdf
 * (BLAKE2b): one seals values (XChaCha20-Poly1305), one authenticates
 * metadata (HMAC-SHA-512-256).  The store key itself only opens the
 * key-check record.
 *
 * One life of a secret is (store identity, ID, incarnation, nonce): the
 * nonce is SEAL_NONCE_BYTES random bytes chosen when the incarnation is
 * created, so a later life of the same ID never shares it, even in a copy
 * of the store whose revision counter was rolled back.
 *
 * Values: the associated data is a domain string, the store identity,
 * the ID, the incarnation, the nonce, and the version's number, revision
 * and mtime.  A ciphertext moved to another secret, version, life or
 * store fails to open.
 *
 * Metadata: the MAC covers, in a length-prefixed encoding, the store
 * identity, ID, incarnation, nonce, scopes, labels (sorted by key),
 * current version, value revision, revision, size, ctime and mtime:
 * everything struct secret_meta carries.
 */
#ifndef SECRETSFS_SEAL_H
#define SECRETSFS_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SEAL_STORE_ID_BYTES 16
#define SEAL_NONCE_BYTES 16
#define SEAL_MAC_BYTES 32

/* The sub-keys and the store identity, in locked read-only memory. */
struct seal_keys;

/* Derives the sub-keys of store_key for the store store_id.  0, -ENOMEM
 * or -EIO. */
int seal_keys_new(const uint8_t store_key[STORE_KEY_BYTES],
                  const uint8_t store_id[SEAL_STORE_ID_BYTES], struct seal_keys **ret_keys);
/* Wipes and frees; accepts NULL. */
void seal_keys_free(struct seal_keys *k);

/* A fresh per-incarnation nonce. */
void seal_nonce_new(uint8_t nonce[SEAL_NONCE_BYTES]);

/* Where a value belongs: one version of one life of a secret. */
struct seal_place {
	const char *id;
	uint64_t incarnation;
	const uint8_t *nonce; /* SEAL_NONCE_BYTES */
	uint64_t version;
	uint64_t revision; /* the revision that wrote this version */
	int64_t mtime_ns;
};

/* Seals a value for its place: *ret_ct is malloc'ed (crypto_seal). */
int seal_value(const struct seal_keys *k, const struct seal_place *p, const uint8_t *value,
               size_t len, uint8_t **ret_ct, size_t *ret_ctlen);
/* Opens what seal_value made for the same place, into locked memory;
 * -EBADMSG if it does not authenticate there. */
int seal_value_open(const struct seal_keys *k, const struct seal_place *p, const uint8_t *ct,
                    size_t ctlen, struct secret_value **ret_value);

/* The MAC of m (m->id and every field; labels in any order) for the life
 * whose nonce is given.  0, -EINVAL (more than LABELS_MAX labels, no ID)
 * or -ENOMEM. */
int seal_meta_mac(const struct seal_keys *k, const struct secret_meta *m,
                  const uint8_t nonce[SEAL_NONCE_BYTES], uint8_t mac[SEAL_MAC_BYTES]);
/* 0 if mac (maclen bytes) is m's MAC, else -EBADMSG (or seal_meta_mac's
 * error).  Constant time in the MAC's bytes. */
int seal_meta_verify(const struct seal_keys *k, const struct secret_meta *m,
                     const uint8_t nonce[SEAL_NONCE_BYTES], const uint8_t *mac, size_t maclen);

#endif
