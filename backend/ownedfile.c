/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

int owned_file_replace(const char *path, const char *text, size_t len)
{
	char *copy = strdup(path), *tmp = NULL;
	int dirfd = -1, fd = -1, r = 0;
	if (!copy)
		return -ENOMEM;
	char *base = strrchr(copy, '/');
	const char *dir = ".";
	if (base) {
		*base++ = '\0';
		dir = copy[0] ? copy : "/";
	} else {
		base = copy;
	}
	if (asprintf(&tmp, "%s.tmp", base) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		goto out;
	}
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT) {
		r = -errno;
		goto out;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	            0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	errno = 0;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, base) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	else if (fsync(dirfd) < 0)
		r = -errno;
out:
	if (dirfd >= 0)
		close(dirfd);
	free(tmp);
	free(copy);
	return r;
}
