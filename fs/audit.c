/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"

enum sink { SINK_LOG, SINK_SYSLOG, SINK_FILE, SINK_OFF };

static enum sink sink = SINK_LOG;
static int audit_fd = -1;

int audit_setup(const char *spec)
{
	if (!spec || strcmp(spec, "log") == 0) {
		sink = SINK_LOG;
	} else if (strcmp(spec, "off") == 0) {
		sink = SINK_OFF;
	} else if (strcmp(spec, "syslog") == 0) {
		sink = SINK_SYSLOG;
	} else if (spec[0] == '/') {
		audit_fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (audit_fd < 0)
			return -errno;
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

/* Appends s to the line, %-escaping what would split a field.  (Plain
 * appends: this runs on every open, and snprintf per field was most of
 * the daemon's own cost of a cat.) */
static void put_escaped(char *line, size_t size, size_t *used, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; s && *s && *used + 4 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= ' ' || ch == '%' || ch == '=' || ch >= 0x7f) {
			line[(*used)++] = '%';
			line[(*used)++] = hex[ch >> 4];
			line[(*used)++] = hex[ch & 15];
		} else {
			line[(*used)++] = (char)ch;
		}
	}
	line[*used] = '\0';
}

static void put(char *line, size_t size, size_t *used, const char *key, const char *value)
{
	size_t k = strlen(key);
	if (*used + k + 2 >= size)
		return;
	line[(*used)++] = ' ';
	memcpy(line + *used, key, k);
	*used += k;
	line[(*used)++] = '=';
	put_escaped(line, size, used, value);
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

void audit_event(const struct caller *c, const char *op, const char *id, uint64_t version,
                 int result, const char *extra)
{
	if (sink == SINK_OFF)
		return;
	char line[2048], num[32], stamp[40];
	size_t used = 0;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	used = (size_t)snprintf(line, sizeof(line), "audit: time=%s.%03ldZ op=%s", stamp,
	                        ts.tv_nsec / 1000000, op);
	put(line, sizeof(line), &used, "id", id ? id : "-");
	put(line, sizeof(line), &used, "version", version ? decimal(version, num) : "-");
	put(line, sizeof(line), &used, "uid", decimal(c->uid, num));
	put(line, sizeof(line), &used, "pid", decimal((uint64_t)c->pid, num));
	put(line, sizeof(line), &used, "exe", c->exe);
	put(line, sizeof(line), &used, "unit", c->unit);
	if (extra) {
		const char *eq = strchr(extra, '=');
		char key[32];
		size_t klen = eq ? (size_t)(eq - extra) : 0;
		if (eq && klen < sizeof(key)) {
			memcpy(key, extra, klen);
			key[klen] = '\0';
			put(line, sizeof(line), &used, key, eq + 1);
		}
	}
	const char *res = result == 0 ? "ok" : strerrorname_np(-result);
	put(line, sizeof(line), &used, "result", res ? res : "error");

	switch (sink) {
	case SINK_LOG:
		log_info("%s", line);
		break;
	case SINK_SYSLOG:
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
		break;
	case SINK_FILE:
		if (used + 1 < sizeof(line)) {
			line[used++] = '\n';
			/* One write per line: O_APPEND keeps lines whole. */
			if (write(audit_fd, line, used) < 0)
				log_error("audit file write failed: %s", strerrordesc_np(errno));
		}
		break;
	case SINK_OFF:
		break;
	}
}
