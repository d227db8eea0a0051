/* SPDX-License-Identifier: MIT */
/*
 * The etcd store: one key prefix of an etcd v3 cluster, over its JSON
 * gateway (etcd_kv.h), values sealed on this host with seal.h exactly as
 * the embedded store seals them.  Key layout: docs/design.md "The etcd
 * store".
 *
 *   source: etcd://HOST:PORT[,HOST:PORT...]/PREFIX   (plain http)
 *           etcd+https://HOST:PORT[,...]/PREFIX      (TLS: store_remote's
 *                                                    cacert, cert, certkey)
 * and etcd auth with store_remote's user and password_file (etcd_conn.h).
 *
 * Notes on the ops beyond store.h:
 *  - open: -EINVAL for a source that does not parse, -ENOENT if PREFIX
 *    holds no store identity, -EKEYREJECTED for the wrong key, -EIO
 *    (logged) if the keys under PREFIX do not sum to the authenticated
 *    digest in PREFIX/head;
 *  - every change is one etcd Txn comparing the mod_revision of the head
 *    and of every key it replaces or removes; a Txn that lost a race with
 *    another writer is planned again from a fresh read (bounded), so a
 *    condition that no longer holds then is -ESTALE;
 *  - revisions, incarnations: the store's own counter, kept in the head;
 *  - watch (STORE_CAP_WATCH): a local replica of every key, kept current
 *    by one watch stream (etcd_replica.h); values are read from it while
 *    it is current, and from it, stale, while etcd cannot be reached
 *    (store_config.stale_ns); it is saved as the sealed cache
 *    (store_config.cache_file) a mount starts from when etcd is down;
 *  - can_change: one linearizable read;
 *  - every call has a deadline (ETCD_STORE_TIMEOUT_MS): -ETIMEDOUT.
 */
#ifndef SECRETSFS_ETCD_H
#define SECRETSFS_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

#define ETCD_STORE_KEEP_VERSIONS_DEFAULT 5
#define ETCD_STORE_TIMEOUT_MS 10000

extern const struct store_ops etcd_store_ops;

/* Does source name an etcd store (etcd:// or etcd+https://)?  Inline:
 * the command line (and its fuzz target) asks without the store. */
static inline bool etcd_store_source(const char *source)
{
	return source &&
	       (strncmp(source, "etcd://", 7) == 0 || strncmp(source, "etcd+https://", 13) == 0);
}

/* Creates a new, empty store under the source's PREFIX, sealed for key
 * (STORE_KEY_BYTES): its identity and head, in one create-if-absent Txn.
 * -EEXIST if PREFIX already holds keys (a store or anything else), with a
 * one-line reason in why (empty if none) for every refusal. */
int etcd_store_init(const char *source, const struct store_remote *remote, const uint8_t *key,
                    char *why, size_t why_size);

#endif
