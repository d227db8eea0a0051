/* SPDX-License-Identifier: MIT */
/*
 * The audit trail: one line per open for reading, committed write,
 * rotation, rename, delete, scope and label change, and refusal.  Never a
 * value.  The format (docs/audit.md):
 *
 *   audit: time=2026-11-28T20:55:01.123Z op=read id=OPENAI_API_KEY
 *          unit=ai-gateway.service result=ok uid=0 pid=1234 version=3
 *          exe=/usr/bin/cat
 *
 * What is searched for comes first (op, id, unit, result), the caller's
 * own strings last (extra, exe, comm); every value is %-escaped and
 * capped (a cut value ends in "…"), so a line always fits the log's
 * 1,024 bytes with its key fields whole.  comm= (the caller's own name
 * for itself, unverified) only when /proc/PID/exe could not be read.
 *
 * -o audit=log (default: with the daemon's log), syslog (authpriv),
 * journal, FILE (appended, 0600, a regular file of the daemon's uid), or
 * off.  Whenever the lines reach the journal (audit=journal, or audit=log
 * with the log there: under systemd, or in the background with
 * journald running) each record also carries fields of its own:
 * SECRETSFS_OP, _ID, _VERSION, _UNIT, _RESULT, _UID, _PID, _EXE, so
 * "journalctl SECRETSFS_ID=OPENAI_API_KEY" lists who read a key.
 */
#ifndef SECRETSFS_AUDIT_H
#define SECRETSFS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caller.h"

/* The caps, in bytes of the escaped value ("…" included).  The longest
 * line: time 36, " op=" 4 + 16, " id=" 4 + 256, " unit=" 6 + 128,
 * " result=" 8 + 16, " uid=" 5 + 10, " pid=" 5 + 10, " version=" 9 + 20,
 * extra 2 + 7 + 224, " exe=" 5 + 160, " comm=" 6 + 48: 985 bytes, under
 * AUDIT_LINE_MAX - 1 (and put_escaped never writes past the buffer). */
#define AUDIT_LINE_MAX 1024 /* the log's line (backend/log.c), NUL included */
#define AUDIT_CAP_OP 16
#define AUDIT_CAP_ID 256
#define AUDIT_CAP_UNIT 128
#define AUDIT_CAP_EXTRA 224
#define AUDIT_CAP_EXE 160
#define AUDIT_CAP_COMM 48
#define TRUNC_MARK "\xe2\x80\xa6" /* "…": a value cut at its cap */

/* 0 or -errno; for a refused FILE (a symlink, not a regular file (a
 * FIFO), another uid's, writable by group or others) a one-line reason in
 * why. */
int audit_setup(const char *spec, char *why, size_t why_size);
bool audit_enabled(void);
/* Lines for a file or for the log on stderr are written in batches (up to
 * 100 ms after the first line; audit.c): this writes what is pending now
 * (and fdatasyncs an audit file).  audit_close() writes it too. */
void audit_flush(void);
void audit_close(void);
/* result: 0 or -errno.  extra: "key=value" detail, or NULL. */
void audit_event(const struct caller *c, const char *op, const char *id, uint64_t version,
                 int result, const char *extra);

/* s %-escaped as in an audit value, at most cap bytes (cut: ends in
 * "…"), into out (NUL-terminated); returns its length.  For log lines
 * that name what a caller chose (exe paths, unit and file names). */
size_t audit_escape(char *out, size_t size, const char *s, size_t cap);
/* The caller's exe, escaped and capped, with " comm=NAME" when the exe
 * was unreadable: for warnings.  Returns out. */
const char *audit_exe(const struct caller *c, char *out, size_t size);

#endif
