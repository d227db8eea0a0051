/* SPDX-License-Identifier: MIT */
/*
 * A local replica of every key under an etcd prefix, kept current by one
 * watch stream.  The etcd store (etcd.c) reads values from it, so that a
 * read costs no request; serves from it, marked stale, while etcd cannot
 * be reached; and turns the watch's batches into change records.  It
 * holds only what etcd holds -- sealed values and authenticated metadata,
 * never plaintext.
 *
 * The watch thread: watches PREFIX from the replica's revision + 1; each
 * batch (one etcd revision: one transaction's events) is handed to
 * batch_fn with the replica locked, with the pair each key had before,
 * then applied; after the lock is released, idle_fn runs (etcd.c delivers
 * the change records it collected from there, so that what they wake can
 * read the replica).  A compacted start revision: the prefix is listed
 * again and the difference handed over as one batch.  A stream that ends
 * (member gone, no leader): resumed from the last revision seen, on the
 * next endpoint, with a jittered backoff of 50 ms doubling to 2 s.
 *
 * Lock: the replica's own mutex, a leaf for everything but its callbacks:
 * batch_fn runs under it and must not call back into the replica or take
 * any lock of the caller's that is held across replica calls.
 */
#ifndef SECRETSFS_ETCD_REPLICA_H
#define SECRETSFS_ETCD_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd_kv.h"

struct etcd_replica;

/* One event of a batch: the new state (kv; for a deletion only the key)
 * and what the replica held for the key (NULL if nothing). */
struct etcd_replica_event {
	enum etcd_event_type type;
	const struct etcd_kv_pair *kv;
	const struct etcd_kv_pair *old;
};
typedef void (*etcd_replica_batch_fn)(void *arg, int64_t revision,
                                      const struct etcd_replica_event *ev, size_t n);
typedef void (*etcd_replica_idle_fn)(void *arg);

int etcd_replica_new(struct etcd_kv *kv, const char *prefix, struct etcd_replica **ret);
/* Stops the watch thread (if started) and frees everything. */
void etcd_replica_free(struct etcd_replica *r);

/* Replaces the content with a listing of the whole prefix (taking its
 * pairs; *all is left empty).  Before etcd_replica_start only. */
void etcd_replica_load(struct etcd_replica *r, struct etcd_range_result *all);
/* Starts the watch thread from the loaded revision + 1. */
int etcd_replica_start(struct etcd_replica *r, etcd_replica_batch_fn batch_fn,
                       etcd_replica_idle_fn idle_fn, void *arg);

/* Is the replica current: its watch in place, and every change up to
 * min_rev applied?  Waits up to wait_ms for that. */
bool etcd_replica_current(struct etcd_replica *r, int64_t min_rev, unsigned wait_ms);
/* How long the replica has not been current, in ns (0: it is; -1: it
 * was never loaded). */
int64_t etcd_replica_behind_ns(struct etcd_replica *r);
/* The revision it reflects. */
int64_t etcd_replica_revision(struct etcd_replica *r);

/* The sealed cache on disk: the replica as it is, for a mount that
 * starts while etcd cannot be reached.  It holds what the replica holds
 * (sealed values, MAC'd metadata: never plaintext), is owned by the daemon
 * and 0600, and is replaced atomically (a new file, fsync, rename).
 * etcd_replica_persist: from now on the watch thread's batches mark it
 * for saving, and a thread of its own saves it at most once a second.
 * etcd_replica_load_file: loads it (before etcd_replica_start) as if it
 * were a listing, and makes the replica behind since the cache was saved;
 * -ENOENT if there is none, -EPERM (reason in why) for a file another
 * user owns or others may read, -EIO for one that does not parse. */
int etcd_replica_persist(struct etcd_replica *r, const char *path, bool save_now);
int etcd_replica_load_file(struct etcd_replica *r, const char *path, int64_t *ret_saved_ns,
                           char *why, size_t why_size);

/* A copy of key's pair into res (res->n 0 or 1; res->revision the
 * replica's); -ENOMEM only. */
int etcd_replica_get(struct etcd_replica *r, const char *key, struct etcd_range_result *res);
/* A copy of every pair whose key starts with prefix, in key order. */
int etcd_replica_range(struct etcd_replica *r, const char *prefix, struct etcd_range_result *res);

#endif
