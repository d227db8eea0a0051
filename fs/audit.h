/* SPDX-License-Identifier: MIT */
/*
 * The audit trail: one line per open for reading, committed write,
 * rotation, rename, delete, scope and label change, and refusal.  Never a
 * value.  The format (docs/audit.md):
 *
 *   audit: time=2026-11-28T20:55:01.123Z op=read id=OPENAI_API_KEY version=3
 *          uid=0 pid=1234 exe=/usr/bin/cat unit=ai-gateway.service result=ok
 *
 * -o audit=log (default: with the daemon's log), syslog (authpriv), FILE
 * (appended, 0600), or off.
 */
#ifndef SECRETSFS_AUDIT_H
#define SECRETSFS_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "caller.h"

int audit_setup(const char *spec); /* 0 or -errno */
bool audit_enabled(void);
void audit_close(void);
/* result: 0 or -errno.  extra: "key=value" detail, or NULL. */
void audit_event(const struct caller *c, const char *op, const char *id, uint64_t version,
                 int result, const char *extra);

#endif
