/* SPDX-License-Identifier: MIT */
/*
 * Sealing, shared by every store: what binds a value to its place and a
 * secret's metadata to the store key (docs/design.md "Sealing").  The
 * embedded store uses it now; the etcd and Redpanda stores, whose
 * metadata others can write, use the same scheme.  crypto.c stays the
 * primitive layer (the AEAD); this file decides what is authenticated.
 *
 * Keys.  Four sub-keys are derived from the store key with crypto_kdf
 * (BLAKE2b): one seals values (XChaCha20-Poly1305), one authenticates
 * metadata (HMAC-SHA-512-256), one keys the store digest's row terms and
 * one the store's head record (both keyed BLAKE2b-256).  The store key itself only opens the
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
 *
 * The store digest: what makes one secret's rows, replayed from a backup
 * of the same store or removed, show (docs/design.md "The store digest").
 * Each row's MAC covers that row only, so a secret's whole row set
 * copied from an older backup verifies row by row.  The digest is
 *
 *   D = sum over every stored row of T(row)  (mod 2^256)
 *
 * where T is BLAKE2b-256 keyed with a third sub-key (crypto_kdf context
 * "sfs-dgst") over a domain string, the store identity and what names
 * the row's state: for a secret row its ID, incarnation and MAC column as
 * stored (the MAC covers every other field), for a version row its ID,
 * version number and revision (its ciphertext is bound to those by the
 * AEAD).  The head record is (revision, D) with a MAC (keyed BLAKE2b-256
 * under the head key, its own domain string).  Without the key no term can be
 * computed, so no set of rows other than the one the store wrote sums to
 * the head's D (a sum, not an XOR: the attacker knows the differences of
 * D between backups, and with XOR a row present twice would cancel; keyed,
 * neither gives them a second row set with the same sum).  Only a rollback
 * of every row together with the head stays undetected.
 *
 * A store keeps D incrementally: each write transaction subtracts the
 * terms of the rows it changes or removes as they were stored and adds
 * the terms of what it writes, then stores (its revision, D, head MAC)
 * in the same transaction: O(1) per write.  At open it recomputes D over
 * every row in one read and compares.
 *
 * An etcd store would keep the head as one key of its own, written in
 * the same Txn as the rows it changes, with a Compare on that key's
 * mod_revision (and on each changed row's) so that two writers never
 * both update D from the same head; the terms of the rows a Txn replaces
 * are those its Compare pinned.  The head's revision is then the store's
 * own counter kept in the head (an etcd revision is known only after the
 * Txn commits, too late for the MAC).  At start, one Range read at a
 * single etcd revision recomputes D over the prefix.
 */
#ifndef SECRETSFS_SEAL_H
#define SECRETSFS_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SEAL_STORE_ID_BYTES 16
#define SEAL_NONCE_BYTES 16
#define SEAL_MAC_BYTES 32
#define SEAL_DIGEST_BYTES 32

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

/* The store digest D, a 256-bit little-endian integer. */
struct seal_digest {
	uint8_t d[SEAL_DIGEST_BYTES];
};

/* Adds (sign > 0) or subtracts (sign < 0) the term of a secret row as it
 * is stored: its ID (idlen bytes), incarnation and MAC column (maclen
 * bytes, whatever they are: a damaged row has a term too). */
void seal_digest_secret(const struct seal_keys *k, struct seal_digest *d, int sign, const char *id,
                        size_t idlen, uint64_t incarnation, const uint8_t *mac, size_t maclen);
/* The same for a version row: its ID, version number and revision. */
void seal_digest_version(const struct seal_keys *k, struct seal_digest *d, int sign, const char *id,
                         size_t idlen, uint64_t version, uint64_t revision);
/* The head record's MAC: the store revision and D. */
void seal_head_mac(const struct seal_keys *k, uint64_t revision, const struct seal_digest *d,
                   uint8_t mac[SEAL_MAC_BYTES]);
/* 0 if mac (maclen bytes) is the head MAC of (revision, d), else -EBADMSG.
 * Constant time in the MAC's bytes. */
int seal_head_verify(const struct seal_keys *k, uint64_t revision, const struct seal_digest *d,
                     const uint8_t *mac, size_t maclen);
/* d += e: the digest of two disjoint sets of rows is the sum of theirs. */
void seal_digest_add(struct seal_digest *d, const struct seal_digest *e);
/* 1 if a and b are the same digest (constant time), else 0. */
int seal_digest_equal(const struct seal_digest *a, const struct seal_digest *b);

#endif
