/* SPDX-License-Identifier: MIT */
/*
 * The audit trail (audit.h).  Lines for a file or for the log on stderr
 * are batched: a request appends its line to a buffer and goes on, and
 * the writer thread writes what accumulated with one write(2) at most
 * AUDIT_BATCH_MS after the first line of the batch (or sooner when the
 * buffer fills up), so an open makes no syscall of its own for the
 * audit.  audit_close() (a clean stop: unmount, SIGTERM, SIGINT, whose
 * handlers end the FUSE loop first) writes what is left: nothing is lost
 * then.  A crash (SIGKILL, a fault, power loss) loses the lines of the
 * batch under way: at most the last AUDIT_BATCH_MS, never more than
 * AUDIT_BUF_MAX bytes.  audit_flush() writes the batch at once (fsync(2)
 * of any file or directory of the mount: `sync MOUNTPOINT`).  The journal
 * and syslog sinks take one datagram
 * per record (sd_journal_send, syslog(3)): written at once, as before.
 *
 * Lock order: batch.write_lock (whoever writes a batch: the writer, or a
 * request that found the buffer full), then batch.lock (the buffer); both
 * leaves below everything in fs/.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
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

#define AUDIT_BATCH_MS 100
#define AUDIT_BUF_MAX (256 * 1024)          /* a full buffer is written at once */
#define AUDIT_BUF_SOON (64 * 1024)          /* the writer is woken early past this */
#define LOG_INFO_PREFIX "secretsfs: info: " /* log.c's on stderr */

static struct {
	pthread_mutex_t lock;       /* guards the fields below */
	pthread_mutex_t write_lock; /* one batch written at a time, in order */
	pthread_cond_t wake;        /* lines came, or the buffer is filling, or stop */
	char *buf;                  /* the one lines go to: one of bufs */
	char *bufs[2];              /* AUDIT_BUF_MAX bytes each; the other
	                               one is written, under write_lock */
	size_t used;
	struct timespec first; /* CLOCK_MONOTONIC: when buf's first line came */
	int fd;                /* where batches go: audit_fd, or 2 for the log */
	bool started, stop;
	pthread_t thread;
} batch = { .lock = PTHREAD_MUTEX_INITIALIZER,
	    .write_lock = PTHREAD_MUTEX_INITIALIZER,
	    .wake = PTHREAD_COND_INITIALIZER,
	    .fd = -1 };

/* Writes buf whole; batch.write_lock held.  Into a pipe or socket (the
 * log on stderr read by a collector) only PIPE_BUF bytes go in one piece:
 * a longer write can be cut into by the log's own lines once the pipe is
 * full, so there it goes in chunks of whole lines. */
static void batch_write(int fd, const char *buf, size_t len)
{
	struct stat st;
	bool pipe_like = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
	while (len) {
		size_t chunk = len;
		if (pipe_like && chunk > PIPE_BUF) {
			const char *nl = memrchr(buf, '\n', PIPE_BUF);
			chunk = nl ? (size_t)(nl - buf) + 1 : PIPE_BUF;
		}
		ssize_t n = write(fd, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (fd != 2)
				log_error("audit file write failed: %s",
				          n < 0 ? strerrordesc_np(errno) : "nothing written");
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Takes the buffer's lines and writes them, while new lines go to the
 * other buffer; batch.write_lock held, batch.lock held and dropped. */
static void batch_take_and_write(void)
{
	char *full = batch.buf;
	size_t len = batch.used;
	batch.buf = full == batch.bufs[0] ? batch.bufs[1] : batch.bufs[0];
	batch.used = 0;
	int fd = batch.fd;
	pthread_mutex_unlock(&batch.lock);
	batch_write(fd, full, len);
}

static void *batch_writer(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&batch.lock);
		while (!batch.used && !batch.stop)
			pthread_cond_wait(&batch.wake, &batch.lock);
		if (batch.used && !batch.stop && batch.used < AUDIT_BUF_SOON) {
			/* let the batch gather, from its first line on (which
			 * may have come while the last batch was written) */
			struct timespec until = batch.first;
			until.tv_nsec += AUDIT_BATCH_MS * 1000000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			while (!batch.stop && batch.used < AUDIT_BUF_SOON &&
			       pthread_cond_timedwait(&batch.wake, &batch.lock, &until) == 0)
				;
		}
		bool stop = batch.stop;
		pthread_mutex_unlock(&batch.lock);
		pthread_mutex_lock(&batch.write_lock);
		pthread_mutex_lock(&batch.lock);
		if (batch.used)
			batch_take_and_write(); /* drops batch.lock */
		else
			pthread_mutex_unlock(&batch.lock);
		pthread_mutex_unlock(&batch.write_lock);
		if (stop)
			return NULL;
	}
}

/* After fork: the child has no writer thread, and the parent's lines are
 * the parent's to write. */
static void batch_atfork_child(void)
{
	pthread_mutex_init(&batch.lock, NULL);
	pthread_mutex_init(&batch.write_lock, NULL);
	pthread_cond_init(&batch.wake, NULL);
	batch.used = 0;
	batch.started = batch.stop = false;
}

static void batch_setup(int fd)
{
	static bool atfork;
	if (!atfork && pthread_atfork(NULL, NULL, batch_atfork_child) == 0)
		atfork = true;
	batch.fd = fd;
}

/* Appends line (len bytes, its '\n' included); batch.lock not held.
 * False if there is no batching (no buffer, no thread): the caller
 * writes the line itself. */
static bool batch_append(const char *line, size_t len)
{
	pthread_mutex_lock(&batch.lock);
	if (!batch.started && !batch.stop) {
		/* started by the first line, in the process that serves (after
		 * any fork); with a condition variable on CLOCK_MONOTONIC */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&batch.wake);
		pthread_cond_init(&batch.wake, &ca);
		pthread_condattr_destroy(&ca);
		for (int i = 0; i < 2; i++)
			if (!batch.bufs[i])
				batch.bufs[i] = malloc(AUDIT_BUF_MAX);
		batch.buf = batch.bufs[0];
		batch.started = batch.bufs[0] && batch.bufs[1] &&
		                pthread_create(&batch.thread, NULL, batch_writer, NULL) == 0;
	}
	if (!batch.started) {
		pthread_mutex_unlock(&batch.lock);
		return false;
	}
	while (batch.used + len > AUDIT_BUF_MAX) {
		/* full: written now, by this request, in order */
		pthread_mutex_unlock(&batch.lock);
		pthread_mutex_lock(&batch.write_lock);
		pthread_mutex_lock(&batch.lock);
		if (batch.used + len > AUDIT_BUF_MAX) {
			batch_take_and_write(); /* drops batch.lock */
			pthread_mutex_lock(&batch.lock);
		}
		pthread_mutex_unlock(&batch.write_lock);
	}
	bool first = batch.used == 0;
	if (first)
		clock_gettime(CLOCK_MONOTONIC, &batch.first);
	memcpy(batch.buf + batch.used, line, len);
	batch.used += len;
	/* one wake per batch: the writer then waits AUDIT_BATCH_MS */
	if (first || (batch.used >= AUDIT_BUF_SOON && batch.used - len < AUDIT_BUF_SOON))
		pthread_cond_signal(&batch.wake);
	pthread_mutex_unlock(&batch.lock);
	return true;
}

/* Stops the writer, which writes what is left. */
static void batch_stop(void)
{
	pthread_mutex_lock(&batch.lock);
	bool started = batch.started;
	batch.stop = true;
	pthread_cond_signal(&batch.wake);
	pthread_mutex_unlock(&batch.lock);
	if (started)
		pthread_join(batch.thread, NULL);
	pthread_mutex_lock(&batch.write_lock);
	pthread_mutex_lock(&batch.lock);
	if (batch.used) /* appended after the writer's last batch */
		batch_write(batch.fd, batch.buf, batch.used);
	batch.used = 0;
	batch.started = false;
	for (int i = 0; i < 2; i++) {
		free(batch.bufs[i]);
		batch.bufs[i] = NULL;
	}
	batch.buf = NULL;
	pthread_mutex_unlock(&batch.lock);
	pthread_mutex_unlock(&batch.write_lock);
}

int audit_setup(const char *spec, char *why, size_t why_size)
{
	if (why && why_size)
		why[0] = '\0';
	if (!spec || strcmp(spec, "log") == 0) {
		sink = SINK_LOG;
		batch_setup(2); /* used while the log is on stderr */
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
		batch_setup(fd);
	} else {
		return -EINVAL;
	}
	return 0;
}

void audit_flush(void)
{
	pthread_mutex_lock(&batch.write_lock);
	pthread_mutex_lock(&batch.lock);
	if (batch.started && batch.used)
		batch_take_and_write(); /* drops batch.lock */
	else
		pthread_mutex_unlock(&batch.lock);
	if (sink == SINK_FILE && fdatasync(audit_fd) < 0 && errno != EINVAL)
		log_error("audit file: fdatasync failed: %s", strerrordesc_np(errno));
	pthread_mutex_unlock(&batch.write_lock);
}

bool audit_enabled(void)
{
	return sink != SINK_OFF;
}

void audit_close(void)
{
	batch_stop();
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
	/* The common value (an ID, a unit, a path) needs no escape: its run
	 * of plain bytes, as far as it leaves room for the mark, is copied in
	 * one go (every end in it is a keep). */
	size_t plain = 0, plain_max = cap > mlen ? cap - mlen : 0;
	while (s && plain < plain_max && s[plain] && !needs_escape((unsigned char)s[plain]))
		plain++;
	if (plain) {
		memcpy(out + *used, s, plain);
		*used += plain;
		keep = *used;
		s += plain;
	}
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

/* "audit: time=2026-11-28T20:55:01.123Z" into line; returns its length.
 * The date and time of the second are formatted once per second and
 * thread (strftime and snprintf were a third of an audit line's cost). */
static size_t put_time(char *line)
{
	static const char head[] = "audit: time=";
	static __thread time_t last_sec = -1;
	static __thread char last[32]; /* YYYY-MM-DDTHH:MM:SS */
	static __thread size_t last_len;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != last_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		last_len = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
		last_sec = ts.tv_sec;
	}
	size_t used = sizeof(head) - 1;
	memcpy(line, head, used);
	memcpy(line + used, last, last_len);
	used += last_len;
	long ms = ts.tv_nsec / 1000000;
	line[used++] = '.';
	line[used++] = (char)('0' + ms / 100);
	line[used++] = (char)('0' + ms / 10 % 10);
	line[used++] = (char)('0' + ms % 10);
	line[used++] = 'Z';
	line[used] = '\0';
	return used;
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
	char line[AUDIT_LINE_MAX + 1], num[32];
	const size_t size = AUDIT_LINE_MAX;
	size_t used = put_time(line);
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
		if (log_reaches_journal()) {
			to_journal(line, op, id ? id : "-", c->unit ? c->unit : "-",
			           res ? res : "error", version, c);
		} else if (log_destination() == LOG_TO_STDERR) {
			/* as log_info() writes it (no control characters: every
			 * value is escaped), in a batch */
			char out[sizeof(LOG_INFO_PREFIX) + AUDIT_LINE_MAX + 1];
			memcpy(out, LOG_INFO_PREFIX, sizeof(LOG_INFO_PREFIX) - 1);
			memcpy(out + sizeof(LOG_INFO_PREFIX) - 1, line, used);
			size_t n = sizeof(LOG_INFO_PREFIX) - 1 + used;
			out[n++] = '\n';
			if (!batch_append(out, n))
				log_info("%s", line);
		} else {
			log_info("%s", line);
		}
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
		/* O_APPEND: batches stay whole between writers */
		if (!batch_append(line, used) && write(audit_fd, line, used) < 0)
			log_error("audit file write failed: %s", strerrordesc_np(errno));
		break;
	case SINK_OFF:
		break;
	}
}
