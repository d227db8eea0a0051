/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ownedfile.h"

enum owned_problem owned_check(const struct stat *st, mode_t forbidden)
{
	if (!S_ISREG(st->st_mode))
		return OWNED_NOT_REGULAR;
	if (st->st_uid != geteuid())
		return OWNED_OTHER_OWNER;
	if (st->st_mode & forbidden)
		return OWNED_MODE;
	return OWNED_OK;
}

char *owned_reason(enum owned_problem p, const struct stat *st, mode_t forbidden, const char *what,
                   const char *path, char *why, size_t size)
{
	unsigned me = (unsigned)geteuid();
	switch (p) {
	case OWNED_OK:
		snprintf(why, size, "%s %s is fine", what, path);
		break;
	case OWNED_NOT_REGULAR:
		snprintf(why, size, "%s %s is not a regular file", what, path);
		break;
	case OWNED_OTHER_OWNER:
		snprintf(why, size,
		         "%s %s is owned by uid %u, not by this daemon (uid %u): chown %u %s", what,
		         path, (unsigned)st->st_uid, me, me, path);
		break;
	case OWNED_MODE:
		if ((forbidden & 077) == 077)
			snprintf(why, size,
			         "%s %s is open to group or others; make it private: chmod 0400 %s",
			         what, path, path);
		else
			snprintf(why, size, "%s %s is writable by group or others: chmod go-w %s",
			         what, path, path);
		break;
	}
	return why;
}

char *owned_open_reason(int err, const char *what, const char *path, char *why, size_t size)
{
	if (err == ELOOP)
		snprintf(why, size, "%s %s is a symlink (not followed): give the file itself", what,
		         path);
	else if (err == ENXIO || err == EWOULDBLOCK)
		snprintf(why, size, "%s %s is not a regular file", what, path);
	else
		snprintf(why, size, "%s %s: %s", what, path, strerrordesc_np(err));
	return why;
}

int owned_fd_check(int fd, mode_t forbidden, const char *what, const char *path, char *why,
                   size_t size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	enum owned_problem p = owned_check(&st, forbidden);
	if (p == OWNED_OK)
		return 0;
	if (why && size)
		owned_reason(p, &st, forbidden, what, path, why, size);
	return -EPERM;
}
