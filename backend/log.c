/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static bool use_stderr = true;
static bool debug_on;

void log_setup(bool to_stderr, bool debug)
{
	use_stderr = to_stderr;
	debug_on = debug;
	if (!to_stderr)
		openlog("secretsfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
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
	if (use_stderr) {
		static const char *const tag[] = {
			[LOG_ERR] = "error",
			[LOG_WARNING] = "warning",
			[LOG_INFO] = "info",
			[LOG_DEBUG] = "debug",
		};
		fprintf(stderr, "secretsfs: %s: %s\n", tag[prio], line);
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
