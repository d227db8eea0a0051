/* SPDX-License-Identifier: MIT */
/*
 * The Redpanda Cloud store: the Secrets Store of one Redpanda Cloud
 * cluster, over its Data Plane API (/v1/secrets) with an OAuth
 * client-credentials token.  Contract: ../shared/notes/redpanda-secrets-api.md;
 * design: docs/design.md "The Redpanda Cloud store".
 *
 *   source: redpanda:https://DATAPLANE-URL
 *
 * Notes on the ops beyond store.h:
 *  - values are write-only (STORE_CAP_WRITE_ONLY_VALUES): get_value is
 *    always -EACCES; create and put_value send the value, nothing reads
 *    it back; meta.size is 0;
 *  - the API has no revisions: incarnations and revisions are this
 *    mount's own counter (they start again at every mount, and only grow
 *    while it lasts); version counts the values written through this
 *    mount (1 for a secret found at mount);
 *  - compare-and-swap is against what this mount knows (its last listing
 *    and its own changes): the API has no condition to send, so a change
 *    made elsewhere since the last poll is overwritten by a PUT;
 *  - watch() starts the poller: one paged listing every poll_s seconds,
 *    its differences announced as change records (STORE_CAP_WATCH);
 *  - every call has a deadline (RP_CALL_TIMEOUT_MS) and goes through
 *    http.h with at most RP_MAX_RATE requests a second (burst
 *    RP_MAX_BURST);
 *  - open fails with -EPERM (logged: why) for a credentials file that is
 *    not the daemon's own or that group or others can read, -EINVAL for a
 *    bad source or credentials file.
 */
#ifndef SECRETSFS_REDPANDA_H
#define SECRETSFS_REDPANDA_H

#include <stdbool.h>

#include "store.h"

#define RP_DEFAULT_TOKEN_URL "https://auth.prd.cloud.redpanda.com/oauth/token"
#define RP_DEFAULT_AUDIENCE "cloudv2-production.redpanda.cloud"
#define RP_DEFAULT_CONTROLPLANE "https://api.redpanda.com"
#define RP_DEFAULT_POLL_S 30
#define RP_CREDENTIAL_NAME "redpanda.credentials"
#define RP_CALL_TIMEOUT_MS 15000
#define RP_MAX_RATE 10  /* requests a second to the Data Plane API */
#define RP_MAX_BURST 50 /* … after a burst of this many */
#define RP_PAGE_SIZE 50

extern const struct store_ops redpanda_store_ops;

/* From any thread: every call of s in flight or made from now on fails
 * soon with -ECANCELED (the mirror's way to stop promptly; s stays open
 * until closed).  Cannot be undone. */
void redpanda_store_cancel(struct store *s);

/* Does source name a Redpanda Cloud store (redpanda:)? */
bool redpanda_store_source(const char *source);

#endif
