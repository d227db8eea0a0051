/* SPDX-License-Identifier: MIT */
/* One line per event: to stderr until log_setup(false, …) sends it to
 * syslog (the journal, under systemd).  Never pass a value here. */
#ifndef SECRETSFS_LOG_H
#define SECRETSFS_LOG_H

#include <stdbool.h>

void log_setup(bool to_stderr, bool debug);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
