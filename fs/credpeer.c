/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "credpeer.h"

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* systemd's unit_name_is_valid() character set, which also keeps the
 * name safe in a log line and an fnmatch() pattern's subject. */
static bool unit_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr(":-_.\\@", ch);
}

int credpeer_parse(const struct sockaddr_un *sa, socklen_t len, struct credpeer *ret)
{
	static const char mid[] = "/unit/";
	const size_t base = offsetof(struct sockaddr_un, sun_path);
	if (!sa || len <= base + 1 || len > sizeof(*sa) || sa->sun_family != AF_UNIX ||
	    sa->sun_path[0] != '\0')
		return -EPROTO;
	const char *p = sa->sun_path + 1;
	size_t n = len - base - 1;
	if (memchr(p, '\0', n))
		return -EPROTO;

	size_t i = 0;
	while (i < n && is_hex(p[i]))
		i++;
	if (i == 0 || i > 16 || n - i < sizeof(mid) - 1 || memcmp(p + i, mid, sizeof(mid) - 1) != 0)
		return -EPROTO;
	i += sizeof(mid) - 1;

	size_t u = i;
	bool dot = false;
	while (i < n && p[i] != '/') {
		if (!unit_char(p[i]))
			return -EPROTO;
		dot |= p[i] == '.';
		i++;
	}
	size_t ulen = i - u;
	if (ulen == 0 || ulen > CREDPEER_NAME_MAX || !dot || i == n || p[u] == '.')
		return -EPROTO;
	i++; /* the '/' */

	size_t d = i, dlen = n - i;
	if (dlen == 0 || dlen > CREDPEER_NAME_MAX)
		return -EPROTO;
	for (; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '/')
			return -EPROTO;
	if ((dlen == 1 && p[d] == '.') || (dlen == 2 && p[d] == '.' && p[d + 1] == '.'))
		return -EPROTO;

	memcpy(ret->unit, p + u, ulen);
	ret->unit[ulen] = '\0';
	memcpy(ret->id, p + d, dlen);
	ret->id[dlen] = '\0';
	return 0;
}
