/* SPDX-License-Identifier: MIT */
/* One line of the host attributes file (hostattrs.h): parsing only, kept
 * apart so the fuzz target can take it without the inode table. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "hostattrs.h"

/* Splits off the next space-separated field of *p; NULL at the end. */
static const char *field(char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
	if (!**p)
		return NULL;
	const char *start = *p;
	while (**p && **p != ' ' && **p != '\t')
		(*p)++;
	if (**p)
		*(*p)++ = '\0';
	return start;
}

static bool number(const char *s, int base, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || end == s || *end || v > max || *s == '-' || *s == '+')
		return false;
	*ret = v;
	return true;
}

int hostattr_parse_line(const char *line, struct hostattr *ret)
{
	char buf[512];
	size_t len = strcspn(line, "\n");
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, line, len);
	buf[len] = '\0';
	char *p = buf;
	const char *kind = field(&p);
	if (!kind || kind[0] == '#')
		return 0;
	const char *name = field(&p), *mode = field(&p), *uid = field(&p), *gid = field(&p);
	if (!name || !mode || !uid || !gid || field(&p))
		return -EINVAL;
	struct hostattr a = { 0 };
	unsigned long v;
	if (strcmp(kind, "scope") == 0) {
		a.is_scope = true;
		if (scope_from_dir_name(name) < 0)
			return -EINVAL;
	} else if (strcmp(kind, "secret") != 0 || !secret_id_valid_existing(name)) {
		return -EINVAL;
	}
	if (strcmp(mode, "-") != 0) {
		if (!number(mode, 8, 07777, &v))
			return -EINVAL;
		a.mode_set = true;
		a.mode = (mode_t)v;
	}
	if (strcmp(uid, "-") != 0 || strcmp(gid, "-") != 0) {
		if (!number(uid, 10, UINT_MAX - 1, &v))
			return -EINVAL;
		a.uid = (uid_t)v;
		if (!number(gid, 10, UINT_MAX - 1, &v))
			return -EINVAL;
		a.gid = (gid_t)v;
		a.owner_set = true;
	}
	if (!(a.name = strdup(name)))
		return -ENOMEM;
	*ret = a;
	return 1;
}
