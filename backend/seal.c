/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"
#include "seal.h"

_Static_assert(SEAL_MAC_BYTES == crypto_auth_hmacsha512256_BYTES, "MAC size");
_Static_assert(crypto_auth_hmacsha512256_KEYBYTES == 32, "MAC key size");
_Static_assert(crypto_kdf_KEYBYTES == STORE_KEY_BYTES, "KDF key size");

/* Sub-key contexts (crypto_kdf: 8 bytes each) and domain strings: a new
 * scheme gets new ones, never reuses these. */
static const char kdf_context_value[crypto_kdf_CONTEXTBYTES + 1] = "sfsvalue";
static const char kdf_context_meta[crypto_kdf_CONTEXTBYTES + 1] = "sfs-meta";
static const char value_domain[] = "secretsfs value v2";
static const char kdf_context_digest[crypto_kdf_CONTEXTBYTES + 1] = "sfs-dgst";
static const char kdf_context_head[crypto_kdf_CONTEXTBYTES + 1] = "sfs-head";
static const char meta_domain[] = "secretsfs metadata v1";
static const char digest_secret_domain[] = "secretsfs digest secret row v1";
static const char digest_version_domain[] = "secretsfs digest version row v1";
static const char head_domain[] = "secretsfs store head v1";

struct seal_keys {
	uint8_t value_key[STORE_KEY_BYTES];
	uint8_t mac_key[crypto_auth_hmacsha512256_KEYBYTES];
	uint8_t digest_key[crypto_generichash_KEYBYTES];
	uint8_t head_key[crypto_generichash_KEYBYTES];
	uint8_t store_id[SEAL_STORE_ID_BYTES];
	/* HMAC's state once the key is in (its two padded key blocks
	 * hashed): copied per MAC instead of hashing them again, which was
	 * about 11,000 instructions of every read. */
	crypto_auth_hmacsha512256_state mac_start;
	/* The same for the digest's terms: BLAKE2b keyed with digest_key,
	 * its domain and the store identity in (hash_begin), one state per
	 * kind of row; a term then costs one compression less.  A listing at
	 * mount computes one per row. */
	crypto_generichash_state digest_secret_start, digest_version_start;
};

static void hash_begin(const struct seal_keys *k, crypto_generichash_state *st, const char *domain);

int seal_keys_new(const uint8_t store_key[STORE_KEY_BYTES],
                  const uint8_t store_id[SEAL_STORE_ID_BYTES], struct seal_keys **ret_keys)
{
	if (!store_key || !store_id || !ret_keys)
		return -EINVAL;
	int r = crypto_init();
	if (r < 0)
		return r;
	struct seal_keys *k = secret_locked_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (crypto_kdf_derive_from_key(k->value_key, sizeof(k->value_key), 1, kdf_context_value,
	                               store_key) != 0 ||
	    crypto_kdf_derive_from_key(k->mac_key, sizeof(k->mac_key), 1, kdf_context_meta,
	                               store_key) != 0 ||
	    crypto_kdf_derive_from_key(k->digest_key, sizeof(k->digest_key), 1, kdf_context_digest,
	                               store_key) != 0 ||
	    crypto_kdf_derive_from_key(k->head_key, sizeof(k->head_key), 1, kdf_context_head,
	                               store_key) != 0) {
		sodium_free(k);
		return -EIO;
	}
	memcpy(k->store_id, store_id, SEAL_STORE_ID_BYTES);
	crypto_auth_hmacsha512256_init(&k->mac_start, k->mac_key, sizeof(k->mac_key));
	hash_begin(k, &k->digest_secret_start, digest_secret_domain);
	hash_begin(k, &k->digest_version_start, digest_version_domain);
	if (sodium_mprotect_readonly(k) != 0) {
		sodium_free(k);
		return -ENOMEM;
	}
	*ret_keys = k;
	return 0;
}

void seal_keys_free(struct seal_keys *k)
{
	sodium_free(k); /* wipes */
}

void seal_nonce_new(uint8_t nonce[SEAL_NONCE_BYTES])
{
	randombytes_buf(nonce, SEAL_NONCE_BYTES);
}

/* --- encoding: fixed-width little-endian integers, strings as u32 length
 * then bytes --- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n <= b->cap)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, sizeof(x));
}

static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, sizeof(x));
}

static void put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	put_u32(b, (uint32_t)n);
	put(b, s, n);
}

/* domain || store_id || str(id) || u64(incarnation) || nonce || u64(version)
 * || u64(revision) || i64(mtime_ns) */
static void value_ad(struct buf *b, const struct seal_keys *k, const struct seal_place *p)
{
	put(b, value_domain, sizeof(value_domain) - 1);
	put(b, k->store_id, SEAL_STORE_ID_BYTES);
	put_str(b, p->id);
	put_u64(b, p->incarnation);
	put(b, p->nonce, SEAL_NONCE_BYTES);
	put_u64(b, p->version);
	put_u64(b, p->revision);
	put_u64(b, (uint64_t)p->mtime_ns);
}

/* The AD of an ID of up to SECRET_ID_MAX bytes fits here: no malloc on
 * the open path. */
#define VALUE_AD_STACK                                                                             \
	(sizeof(value_domain) + SEAL_STORE_ID_BYTES + 4 + SECRET_ID_MAX + 8 + SEAL_NONCE_BYTES +   \
	 3 * 8)

/* value_ad into b, which starts as stack (VALUE_AD_STACK bytes); an AD
 * that does not fit (a longer ID) is built again in a buffer of its size,
 * which *heap then holds (to free; else NULL). */
static int value_ad_build(const struct seal_keys *k, const struct seal_place *p, struct buf *b,
                          uint8_t *stack, uint8_t **heap)
{
	*heap = NULL;
	if (!k || !p || !p->id || !p->nonce)
		return -EINVAL;
	*b = (struct buf){ .p = stack, .cap = VALUE_AD_STACK };
	value_ad(b, k, p);
	if (b->n <= b->cap)
		return 0;
	b->cap = b->n;
	b->n = 0;
	b->p = *heap = malloc(b->cap);
	if (!b->p)
		return -ENOMEM;
	value_ad(b, k, p);
	return 0;
}

int seal_value(const struct seal_keys *k, const struct seal_place *p, const uint8_t *value,
               size_t len, uint8_t **ret_ct, size_t *ret_ctlen)
{
	uint8_t stack[VALUE_AD_STACK], *heap;
	struct buf ad;
	int r = value_ad_build(k, p, &ad, stack, &heap);
	if (r == 0)
		r = crypto_seal(k->value_key, ad.p, ad.n, value, len, ret_ct, ret_ctlen);
	free(heap);
	return r;
}

int seal_value_open(const struct seal_keys *k, const struct seal_place *p, const uint8_t *ct,
                    size_t ctlen, struct secret_value **ret_value)
{
	uint8_t stack[VALUE_AD_STACK], *heap;
	struct buf ad;
	int r = value_ad_build(k, p, &ad, stack, &heap);
	if (r == 0)
		r = crypto_open(k->value_key, ad.p, ad.n, ct, ctlen, ret_value);
	free(heap);
	return r;
}

/* --- metadata --- */

/* The MAC's input, gathered into one buffer and handed to HMAC in as few
 * updates as possible: SHA-512 update per field cost more than the
 * compressions (the listing at mount MACs every row).  The bytes hashed
 * are the same as field by field. */
struct mac_in {
	crypto_auth_hmacsha512256_state *st;
	size_t n;
	uint8_t buf[512];
};

static void mac_flush(struct mac_in *in)
{
	crypto_auth_hmacsha512256_update(in->st, in->buf, in->n);
	in->n = 0;
}

static void mac_put(struct mac_in *in, const void *p, size_t n)
{
	if (in->n + n > sizeof(in->buf))
		mac_flush(in);
	if (n > sizeof(in->buf)) {
		crypto_auth_hmacsha512256_update(in->st, p, n);
		return;
	}
	memcpy(in->buf + in->n, p, n);
	in->n += n;
}

static void mac_u64(struct mac_in *in, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	mac_put(in, x, sizeof(x));
}

static void mac_str(struct mac_in *in, const char *s)
{
	size_t n = strlen(s);
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(n >> (8 * i));
	mac_put(in, x, sizeof(x));
	mac_put(in, s, n);
}

static int label_cmp(const void *a, const void *b)
{
	const struct label *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

int seal_meta_mac(const struct seal_keys *k, const struct secret_meta *m,
                  const uint8_t nonce[SEAL_NONCE_BYTES], uint8_t mac[SEAL_MAC_BYTES])
{
	const struct label *sorted[LABELS_MAX];
	crypto_auth_hmacsha512256_state st;

	if (!k || !m || !m->id || !nonce || !mac || m->labels.n > LABELS_MAX ||
	    (m->labels.n && !m->labels.v))
		return -EINVAL;
	for (size_t i = 0; i < m->labels.n; i++) {
		if (!m->labels.v[i].key || !m->labels.v[i].value)
			return -EINVAL;
		sorted[i] = &m->labels.v[i];
	}
	if (m->labels.n > 1)
		qsort(sorted, m->labels.n, sizeof(sorted[0]), label_cmp);

	st = k->mac_start;
	struct mac_in in = { .st = &st };
	mac_str(&in, meta_domain);
	mac_put(&in, k->store_id, SEAL_STORE_ID_BYTES);
	mac_str(&in, m->id);
	mac_u64(&in, m->incarnation);
	mac_put(&in, nonce, SEAL_NONCE_BYTES);
	mac_u64(&in, m->scopes);
	mac_u64(&in, m->labels.n);
	for (size_t i = 0; i < m->labels.n; i++) {
		mac_str(&in, sorted[i]->key);
		mac_str(&in, sorted[i]->value);
	}
	mac_u64(&in, m->version);
	mac_u64(&in, m->value_revision);
	mac_u64(&in, m->revision);
	mac_u64(&in, m->size);
	mac_u64(&in, (uint64_t)m->ctime_ns);
	mac_u64(&in, (uint64_t)m->mtime_ns);
	mac_flush(&in);
	crypto_auth_hmacsha512256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(&in, sizeof(in));
	return 0;
}

int seal_meta_verify(const struct seal_keys *k, const struct secret_meta *m,
                     const uint8_t nonce[SEAL_NONCE_BYTES], const uint8_t *mac, size_t maclen)
{
	uint8_t want[SEAL_MAC_BYTES];
	int r = seal_meta_mac(k, m, nonce, want);
	if (r < 0)
		return r;
	r = maclen == SEAL_MAC_BYTES && mac && sodium_memcmp(want, mac, SEAL_MAC_BYTES) == 0
	      ? 0
	      : -EBADMSG;
	sodium_memzero(want, sizeof(want));
	return r;
}

/* --- the store digest --- */

_Static_assert(SEAL_DIGEST_BYTES == 32, "digest size");

static void hash_u64(crypto_generichash_state *st, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	crypto_generichash_update(st, x, sizeof(x));
}

/* u64(length) || bytes */
static void hash_bytes(crypto_generichash_state *st, const void *p, size_t n)
{
	hash_u64(st, n);
	if (n)
		crypto_generichash_update(st, p, n);
}

static void hash_begin(const struct seal_keys *k, crypto_generichash_state *st, const char *domain)
{
	crypto_generichash_init(st, k->digest_key, sizeof(k->digest_key), SEAL_DIGEST_BYTES);
	hash_bytes(st, domain, strlen(domain));
	crypto_generichash_update(st, k->store_id, SEAL_STORE_ID_BYTES);
}

/* d += t or d -= t, mod 2^256 (little-endian) */
static void digest_apply(struct seal_digest *d, const uint8_t t[SEAL_DIGEST_BYTES], int sign)
{
	unsigned carry = sign < 0 ? 1 : 0; /* d - t = d + ~t + 1 */
	for (int i = 0; i < SEAL_DIGEST_BYTES; i++) {
		unsigned x = sign < 0 ? (uint8_t)~t[i] : t[i];
		unsigned sum = d->d[i] + x + carry;
		d->d[i] = (uint8_t)sum;
		carry = sum >> 8;
	}
}

static void hash_end(crypto_generichash_state *st, struct seal_digest *d, int sign)
{
	uint8_t t[SEAL_DIGEST_BYTES];
	crypto_generichash_final(st, t, sizeof(t));
	digest_apply(d, t, sign);
	sodium_memzero(t, sizeof(t));
	sodium_memzero(st, sizeof(*st));
}

void seal_digest_secret(const struct seal_keys *k, struct seal_digest *d, int sign, const char *id,
                        size_t idlen, uint64_t incarnation, const uint8_t *mac, size_t maclen)
{
	crypto_generichash_state st = k->digest_secret_start;
	hash_bytes(&st, id, idlen);
	hash_u64(&st, incarnation);
	hash_bytes(&st, mac, mac ? maclen : 0);
	hash_end(&st, d, sign);
}

void seal_digest_version(const struct seal_keys *k, struct seal_digest *d, int sign, const char *id,
                         size_t idlen, uint64_t version, uint64_t revision)
{
	crypto_generichash_state st = k->digest_version_start;
	hash_bytes(&st, id, idlen);
	hash_u64(&st, version);
	hash_u64(&st, revision);
	hash_end(&st, d, sign);
}

/* Keyed BLAKE2b-256 (a MAC in its keyed mode) under a key of its own:
 * one per write transaction, where HMAC-SHA-512's two key blocks cost as
 * much as the rest of a rotation. */
void seal_head_mac(const struct seal_keys *k, uint64_t revision, const struct seal_digest *d,
                   uint8_t mac[SEAL_MAC_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, k->head_key, sizeof(k->head_key), SEAL_MAC_BYTES);
	hash_bytes(&st, head_domain, strlen(head_domain));
	crypto_generichash_update(&st, k->store_id, SEAL_STORE_ID_BYTES);
	hash_u64(&st, revision);
	crypto_generichash_update(&st, d->d, SEAL_DIGEST_BYTES);
	crypto_generichash_final(&st, mac, SEAL_MAC_BYTES);
	sodium_memzero(&st, sizeof(st));
}

int seal_head_verify(const struct seal_keys *k, uint64_t revision, const struct seal_digest *d,
                     const uint8_t *mac, size_t maclen)
{
	uint8_t want[SEAL_MAC_BYTES];
	seal_head_mac(k, revision, d, want);
	int r = maclen == SEAL_MAC_BYTES && mac && sodium_memcmp(want, mac, SEAL_MAC_BYTES) == 0
	          ? 0
	          : -EBADMSG;
	sodium_memzero(want, sizeof(want));
	return r;
}

void seal_digest_add(struct seal_digest *d, const struct seal_digest *e)
{
	digest_apply(d, e->d, +1);
}

int seal_digest_equal(const struct seal_digest *a, const struct seal_digest *b)
{
	return sodium_memcmp(a->d, b->d, SEAL_DIGEST_BYTES) == 0;
}
