/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "log.h"

static enum log_dest dest = LOG_TO_STDERR;
static bool stderr_is_journal; /* $JOURNAL_STREAM names fd 2 */
static bool debug_on;

bool log_socket_present(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* systemd sets JOURNAL_STREAM=DEV:INO for a stdout/stderr it connected to
 * the journal; a child that inherited the variable but not the stream
 * must not take it for its own (systemd.exec(5)). */
static bool stderr_on_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char *end;
	struct stat st;
	if (!v || fstat(2, &st) < 0)
		return false;
	dev = strtoull(v, &end, 10);
	if (end == v || *end != ':')
		return false;
	v = end + 1;
	ino = strtoull(v, &end, 10);
	return end != v && !*end && dev == (unsigned long long)st.st_dev &&
	       ino == (unsigned long long)st.st_ino;
}

enum log_dest log_setup(bool to_stderr, bool debug)
{
	debug_on = debug;
	dest = LOG_TO_STDERR; /* also when there is nowhere else to go */
	if (!to_stderr && log_socket_present(LOG_JOURNAL_SOCKET))
		dest = LOG_TO_JOURNAL;
	else if (!to_stderr && log_socket_present(LOG_SYSLOG_SOCKET))
		dest = LOG_TO_SYSLOG;
	if (dest == LOG_TO_SYSLOG)
		openlog(LOG_IDENTIFIER, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	stderr_is_journal = dest == LOG_TO_STDERR && stderr_on_journal();
	return dest;
}

enum log_dest log_destination(void)
{
	return dest;
}

bool log_reaches_journal(void)
{
	return dest == LOG_TO_JOURNAL || stderr_is_journal;
}

/* Control characters (a newline in a file name, say) are written as \xNN:
 * one event is one line, and nothing in it can forge another. */
#define LOG_LINE_MAX 1024

static void escape_controls(char *line, size_t size)
{
	char out[LOG_LINE_MAX];
	size_t j = 0;
	for (size_t i = 0; line[i] && j + 5 < sizeof(out); i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch == 0x7f)
			j += (size_t)snprintf(out + j, sizeof(out) - j, "\\x%02x", ch);
		else
			out[j++] = (char)ch;
	}
	out[j] = '\0';
	snprintf(line, size, "%s", out);
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	vsnprintf(line, sizeof(line), fmt, ap);
	escape_controls(line, sizeof(line));
	if (dest == LOG_TO_STDERR) {
		static const char *const tag[] = {
			[LOG_ERR] = "error",
			[LOG_WARNING] = "warning",
			[LOG_INFO] = "info",
			[LOG_DEBUG] = "debug",
		};
		fprintf(stderr, "secretsfs: %s: %s\n", tag[prio], line);
	} else if (dest == LOG_TO_JOURNAL) {
		/* journald gone (restarting): syslog(3) is the one place left */
		if (sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", prio,
		                    "SYSLOG_IDENTIFIER=" LOG_IDENTIFIER, "SYSLOG_FACILITY=%d",
		                    LOG_DAEMON >> 3, NULL) < 0)
			syslog(LOG_DAEMON | prio, "%s", line);
	} else {
		syslog(prio, "%s", line);
	}
}

#define DEFINE_LOG(fn, prio, cond)                                                                 \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		if (!(cond))                                                                       \
			return;                                                                    \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vlog(prio, fmt, ap);                                                               \
		va_end(ap);                                                                        \
	}

DEFINE_LOG(log_info, LOG_INFO, true)
DEFINE_LOG(log_warn, LOG_WARNING, true)
DEFINE_LOG(log_error, LOG_ERR, true)
DEFINE_LOG(log_debug, LOG_DEBUG, debug_on)
