/* SPDX-License-Identifier: MIT */
/* One line per event: to stderr until log_setup(false, …) sends it where a
 * daemon in the background logs (see log_setup).  Never pass a value here. */
#ifndef SECRETSFS_LOG_H
#define SECRETSFS_LOG_H

#include <stdbool.h>

/* The identifier every line carries in syslog and the journal:
 * "journalctl -t secretsfs". */
#define LOG_IDENTIFIER "secretsfs"
#define LOG_SYSLOG_SOCKET "/dev/log"
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

enum log_dest {
	LOG_TO_STDERR,  /* "secretsfs: LEVEL: line" */
	LOG_TO_JOURNAL, /* journald's own socket, SYSLOG_IDENTIFIER=secretsfs */
	LOG_TO_SYSLOG,  /* syslog(3), facility daemon, ident secretsfs */
};

/* to_stderr true: stderr.  false (a daemon gone to the background): the
 * journal if its socket is there, else syslog if /dev/log is, else
 * stderr still -- then the caller must keep its stderr open and say
 * where that is, or the log is lost.  Returns the destination. */
enum log_dest log_setup(bool to_stderr, bool debug);
enum log_dest log_destination(void);
/* Do the lines end up in the journal: sent there, or written to a stderr
 * that systemd connected to it ($JOURNAL_STREAM names fd 2)?  Then audit
 * records go to the journal too, with fields of their own (fs/audit.c). */
bool log_reaches_journal(void);
/* Is there a socket at path (LOG_SYSLOG_SOCKET, LOG_JOURNAL_SOCKET)? */
bool log_socket_present(const char *path);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
