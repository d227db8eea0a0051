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

static void vlog(int prio, const char *fmt, va_list ap)
{
	if (use_stderr) {
		static const char *const tag[] = {
			[LOG_ERR] = "error", [LOG_WARNING] = "warning",
			[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
		};
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "secretsfs: %s: %s\n", tag[prio], line);
	} else {
		vsyslog(prio, fmt, ap);
	}
}

#define DEFINE_LOG(fn, prio, cond)                 \
	void fn(const char *fmt, ...)               \
	{                                           \
		if (!(cond))                        \
			return;                     \
		va_list ap;                         \
		va_start(ap, fmt);                  \
		vlog(prio, fmt, ap);                \
		va_end(ap);                         \
	}

DEFINE_LOG(log_info, LOG_INFO, true)
DEFINE_LOG(log_warn, LOG_WARNING, true)
DEFINE_LOG(log_error, LOG_ERR, true)
DEFINE_LOG(log_debug, LOG_DEBUG, debug_on)
