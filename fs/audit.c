/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "ownedfile.h"

enum sink { SINK_LOG, SINK_SYSLOG, SINK_JOURNAL, SINK_FILE, SINK_OFF };

static enum sink sink = SINK_LOG;
static int audit_fd = -1;

int audit_setup(const char *spec, char *why, size_t why_size)
{
	if (why && why_size)
		why[0] = '\0';
	if (!spec || strcmp(spec, "log") == 0) {
		sink = SINK_LOG;
	} else if (strcmp(spec, "off") == 0) {
		sink = SINK_OFF;
	} else if (strcmp(spec, "syslog") == 0) {
		sink = SINK_SYSLOG;
		/* syslog(3) drops what no socket takes: say so now, once */
		if (!log_socket_present(LOG_SYSLOG_SOCKET))
			log_warn("-o audit=syslog: there is no syslog socket (" LOG_SYSLOG_SOCKET
			         "): audit lines are lost until a syslog daemon listens there");
	} else if (strcmp(spec, "journal") == 0) {
		if (!log_socket_present(LOG_JOURNAL_SOCKET)) {
			if (why && why_size)
				snprintf(why, why_size,
				         "-o audit=journal: there is no journal socket "
				         "(" LOG_JOURNAL_SOCKET "): is systemd-journald running?");
			return -ENOENT;
		}
		sink = SINK_JOURNAL;
	} else if (spec[0] == '/') {
		/* O_NONBLOCK: a FIFO must not hang the mount (no reader: ENXIO);
		 * then the rule of ownedfile.h: a regular file of ours that
		 * nobody else may write, or a new one made 0600. */
		int fd = open(spec,
		              O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		                  O_NONBLOCK,
		              0600);
		if (fd < 0) {
			int e = errno;
			if (why && why_size)
				owned_open_reason(e, "audit file", spec, why, why_size);
			return -e;
		}
		int r = owned_fd_check(fd, 022, "audit file", spec, why, why_size);
		if (r < 0) {
			close(fd);
			return r;
		}
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		audit_fd = fd;
		sink = SINK_FILE;
	} else {
		return -EINVAL;
	}
	return 0;
}

bool audit_enabled(void)
{
	return sink != SINK_OFF;
}

void audit_close(void)
{
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = -1;
}

/* Whether ch is written %XX: what would split a field or a line, or
 * fool a reader (quotes, backslash), and every byte that is not ASCII. */
static bool needs_escape(unsigned char ch)
{
	return ch <= ' ' || ch == '%' || ch == '=' || ch == '"' || ch == '\'' || ch == '\\' ||
	       ch >= 0x7f;
}

/* Appends s to out (at *used, of size bytes, NUL kept), %-escaped, at most
 * cap bytes of it: a value that does not fit in cap (or in what is left
 * of out) is cut at a whole character and ends in TRUNC_MARK ("…", whose
 * bytes never occur unescaped in a value).  (Plain appends: this runs on
 * every open, and snprintf per field was most of the daemon's own cost of
 * a cat.) */
static void put_escaped(char *out, size_t size, size_t *used, const char *s, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char mark[] = TRUNC_MARK;
	const size_t mlen = sizeof(mark) - 1;
	if (*used >= size)
		return;
	size_t room = size - 1 - *used; /* bytes left before the NUL */
	if (cap > room)
		cap = room;
	size_t start = *used, keep = start; /* keep: the end that leaves room for the mark */
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		size_t w = needs_escape(ch) ? 3 : 1;
		if (*used - start + w > cap) {
			/* cut: back to the last end that leaves room for the mark */
			*used = keep;
			if (*used - start + mlen <= cap) {
				memcpy(out + *used, mark, mlen);
				*used += mlen;
			}
			break;
		}
		if (w == 3) {
			out[(*used)++] = '%';
			out[(*used)++] = hex[ch >> 4];
			out[(*used)++] = hex[ch & 15];
		} else {
			out[(*used)++] = (char)ch;
		}
		if (*used - start + mlen <= cap)
			keep = *used;
	}
	out[*used] = '\0';
}

size_t audit_escape(char *out, size_t size, const char *s, size_t cap)
{
	size_t used = 0;
	if (!size)
		return 0;
	out[0] = '\0';
	put_escaped(out, size, &used, s, cap);
	return used;
}

const char *audit_exe(const struct caller *c, char *out, size_t size)
{
	size_t used = audit_escape(out, size, c->exe ? c->exe : "?", AUDIT_CAP_EXE);
	if (c->comm && used + 7 < size) {
		memcpy(out + used, " comm=", 6);
		used += 6;
		put_escaped(out, size, &used, c->comm, AUDIT_CAP_COMM);
	}
	return out;
}

static void put(char *line, size_t size, size_t *used, const char *key, const char *value,
                size_t cap)
{
	size_t k = strlen(key);
	if (*used + k + 2 >= size)
		return;
	line[(*used)++] = ' ';
	memcpy(line + *used, key, k);
	*used += k;
	line[(*used)++] = '=';
	put_escaped(line, size, used, value, cap);
}

/* Decimal digits of v into buf (at least 21 bytes). */
static const char *decimal(uint64_t v, char *buf)
{
	char *p = buf + 20;
	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10));
	return p;
}

/* The record as journal fields besides its line (MESSAGE=), each value
 * escaped and capped as in the line: "journalctl SECRETSFS_ID=X". */
static void to_journal(const char *line, const char *op, const char *id, const char *unit,
                       const char *res, uint64_t version, const struct caller *c)
{
	char eid[AUDIT_CAP_ID + 1], eunit[AUDIT_CAP_UNIT + 1], eexe[AUDIT_CAP_EXE + 1];
	char num[32];
	audit_escape(eid, sizeof(eid), id, AUDIT_CAP_ID);
	audit_escape(eunit, sizeof(eunit), unit, AUDIT_CAP_UNIT);
	audit_escape(eexe, sizeof(eexe), c->exe ? c->exe : "?", AUDIT_CAP_EXE);
	int r = sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", LOG_NOTICE,
	                        "SYSLOG_IDENTIFIER=" LOG_IDENTIFIER, "SECRETSFS_OP=%s", op,
	                        "SECRETSFS_ID=%s", eid, "SECRETSFS_VERSION=%s",
	                        version ? decimal(version, num) : "-", "SECRETSFS_UNIT=%s", eunit,
	                        "SECRETSFS_RESULT=%s", res, "SECRETSFS_UID=%u", (unsigned)c->uid,
	                        "SECRETSFS_PID=%d", (int)c->pid, "SECRETSFS_EXE=%s", eexe, NULL);
	if (r < 0) /* journald gone (restarting): the line is not lost */
		log_info("%s", line);
}

void audit_event(const struct caller *c, const char *op, const char *id, uint64_t version,
                 int result, const char *extra)
{
	if (sink == SINK_OFF)
		return;
	/* AUDIT_LINE_MAX with the '\n' of the file sink; what is searched
	 * for (op, id, unit, result) first, the caller's own strings last, and
	 * every field capped, so a line is whole in the log's 1,024 bytes. */
	char line[AUDIT_LINE_MAX + 1], num[32], stamp[40];
	const size_t size = AUDIT_LINE_MAX;
	size_t used = 0;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	used = (size_t)snprintf(line, size, "audit: time=%s.%03ldZ", stamp, ts.tv_nsec / 1000000);
	const char *res = result == 0 ? "ok" : strerrorname_np(-result);
	put(line, size, &used, "op", op, AUDIT_CAP_OP);
	put(line, size, &used, "id", id ? id : "-", AUDIT_CAP_ID);
	put(line, size, &used, "unit", c->unit ? c->unit : "-", AUDIT_CAP_UNIT);
	put(line, size, &used, "result", res ? res : "error", AUDIT_CAP_OP);
	put(line, size, &used, "uid", decimal(c->uid, num), 20);
	put(line, size, &used, "pid", decimal((uint64_t)c->pid, num), 20);
	put(line, size, &used, "version", version ? decimal(version, num) : "-", 20);
	if (extra) {
		const char *eq = strchr(extra, '=');
		char key[8]; /* scope, label, from, with, to */
		size_t klen = eq ? (size_t)(eq - extra) : 0;
		if (eq && klen < sizeof(key)) {
			memcpy(key, extra, klen);
			key[klen] = '\0';
			put(line, size, &used, key, eq + 1, AUDIT_CAP_EXTRA);
		}
	}
	put(line, size, &used, "exe", c->exe ? c->exe : "?", AUDIT_CAP_EXE);
	if (c->comm)
		put(line, size, &used, "comm", c->comm, AUDIT_CAP_COMM);

	switch (sink) {
	case SINK_LOG:
		if (log_reaches_journal())
			to_journal(line, op, id ? id : "-", c->unit ? c->unit : "-",
			           res ? res : "error", version, c);
		else
			log_info("%s", line);
		break;
	case SINK_JOURNAL:
		to_journal(line, op, id ? id : "-", c->unit ? c->unit : "-", res ? res : "error",
		           version, c);
		break;
	case SINK_SYSLOG:
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
		break;
	case SINK_FILE:
		line[used++] = '\n';
		/* One write per line: O_APPEND keeps lines whole. */
		if (write(audit_fd, line, used) < 0)
			log_error("audit file write failed: %s", strerrordesc_np(errno));
		break;
	case SINK_OFF:
		break;
	}
}
