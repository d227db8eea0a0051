/* SPDX-License-Identifier: MIT */
/*
 * The mirror (-o mirror=redpanda:https://DATAPLANE-URL): every committed
 * change of a store whose values are readable here (embedded, etcd) is
 * also applied to a Redpanda Cloud Secrets Store, by a thread of its own,
 * so that one mv rotates a key for the host's services and for the
 * cloud's AI Gateway.  Design: docs/design.md "The mirror".
 *
 * The remote side is a second store, opened with redpanda_store_ops (its
 * poll off): the mirror only calls its create, put_value, set_scopes,
 * set_labels, delete_secret, stat and list.
 *
 * The outbox is derived, not queued: the record file (record_path, the
 * daemon's own, 0600) says per ID which local (incarnation, value
 * revision) the cloud last got from this host.  A secret is pending when
 * the local store differs from that and from the scopes and labels the
 * cloud holds, or when it is recorded but gone here (a delete).  So a
 * change committed while the cloud is down, or while the daemon is
 * killed mid-push, is found again from the local store itself: nothing to
 * lose, and pushing the current state again is idempotent (a create
 * answered 409 becomes an update, a delete answered 404 is done).
 * Intermediate values of a secret changed several times before a push
 * are not sent: the cloud keeps no versions, it gets the latest.
 *
 * At start the thread reconciles: one local listing, one remote listing,
 * each difference logged and pushed; a secret only in the cloud that this
 * host never pushed is left alone (logged).  Then it pushes what
 * mirror_kick() names, and retries failures with a jittered backoff
 * (MIRROR_BACKOFF_MIN_MS doubling to MIRROR_BACKOFF_MAX_MS).
 *
 * Threads.  mirror_kick() and mirror_status() only take m->lock (a leaf:
 * held for memory work only, never across a store call), so fs/ may call
 * them under its own locks.  The thread calls both stores holding nothing.
 */
#ifndef SECRETSFS_MIRROR_H
#define SECRETSFS_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

#define MIRROR_BACKOFF_MIN_MS 500
#define MIRROR_BACKOFF_MAX_MS 30000
/* pushes between two saves of the record while more are queued */
#define MIRROR_SAVE_EVERY 32
#define MIRROR_STATUS_MAX 400
/* differences the reconcile logs one line each (of each kind), then counts */
#define MIRROR_LOG_DIFFERENCES 100
#define MIRROR_LOG_DIFFERENCES_TEXT "100"

struct mirror;

/* Is source a mirror this build can make (redpanda:https://HOST…)?
 * (Inline: the command line checks it without the stores.) */
static inline bool mirror_source_valid(const char *source)
{
	/* "redpanda:" alone: the data plane from -o cluster= */
	return strcmp(source, "redpanda:") == 0 ||
	       (strncmp(source, "redpanda:https://", 17) == 0 && source[17]);
}

/* Opens the remote store with remote_ops (&redpanda_store_ops; a unit
 * test's fake store, whose calls mirror_stop cannot cancel) and cfg (its
 * source and credentials; poll_s is forced to 0), and reads the record at
 * record_path (the record of another mirror URL is not used: logged).
 * local/local_ops stay the caller's and must outlive the mirror.  Nothing
 * is sent yet.  0 or -errno (logged). */
int mirror_open(const struct store_config *cfg, const struct store_ops *remote_ops,
                const struct store_ops *local_ops, struct store *local, const char *record_path,
                struct mirror **ret);
/* How long a call whose outcome is unknown (timed out, cancelled, a 5xx)
 * may still land in the cloud and undo a later push: the secret is pushed
 * once more after then before it is synced.  Default RP_CALL_TIMEOUT_MS
 * plus 5 s; a unit test's fake remote answers at once.  Before
 * mirror_start. */
void mirror_set_settle_ms(struct mirror *m, int64_t ms);
/* Starts the thread: reconcile, then pushes. */
int mirror_start(struct mirror *m);
/* Stops the thread promptly (a call in flight is cancelled: what it was
 * pushing stays pending for the next mount), saves the record, closes
 * the remote store.  Accepts NULL. */
void mirror_stop(struct mirror *m);

/* The local secret id changed (committed): push its current state soon.
 * Never blocks on anything but m->lock. */
void mirror_kick(struct mirror *m, const char *id);
/* For the xattr secretsfs.mirror: "synced", "pending since TIME" (UTC,
 * ISO 8601) with "; last error: …" after a failed push. */
void mirror_status(struct mirror *m, const char *id, char *buf, size_t size);

#endif
