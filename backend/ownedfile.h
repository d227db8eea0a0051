/* SPDX-License-Identifier: MIT */
/*
 * The rule for every file the daemon opens by a path someone else might
 * control (the key, the audit file, host-attrs): it must be a regular
 * file, owned by the daemon's effective uid, without the forbidden mode
 * bits; a symlink is never followed (O_NOFOLLOW), and a file the daemon
 * makes is created new (O_CREAT | O_EXCL) through a directory fd.  So a
 * file another user owns, planted, or may rewrite is refused, never
 * adopted.  docs/threat-model.md, "Files the daemon opens".
 */
#ifndef SECRETSFS_OWNEDFILE_H
#define SECRETSFS_OWNEDFILE_H

#include <stddef.h>
#include <sys/stat.h>

enum owned_problem {
	OWNED_OK = 0,
	OWNED_NOT_REGULAR, /* a directory, FIFO, socket or device */
	OWNED_OTHER_OWNER, /* st_uid is not geteuid() */
	OWNED_MODE,        /* has one of the forbidden mode bits */
};

/* Checks st (from fstat of the open file) against the rule. */
enum owned_problem owned_check(const struct stat *st, mode_t forbidden);

/* A one-line reason for p into why ("WHAT PATH is owned by uid N, not by
 * this daemon (uid M): chown M PATH"); mode_fix is the advice for
 * OWNED_MODE ("make it private: chmod 0400 PATH" is written for
 * forbidden 077, "chmod go-w PATH" otherwise).  Returns why. */
char *owned_reason(enum owned_problem p, const struct stat *st, mode_t forbidden, const char *what,
                   const char *path, char *why, size_t size);

/* fstat(fd) and the rule in one step, for the files whose only check it
 * is: 0, fstat's -errno, or -EPERM with the reason in why (if why and
 * size).  fd stays open either way. */
int owned_fd_check(int fd, mode_t forbidden, const char *what, const char *path, char *why,
                   size_t size);

/* The same for an open() that failed with err (ELOOP: "is a symlink";
 * ENXIO: "is not a regular file", a FIFO without reader or a socket); other
 * errors as their strerror text. */
char *owned_open_reason(int err, const char *what, const char *path, char *why, size_t size);

/* Replaces path with text: a temporary (path.tmp) made new (O_CREAT |
 * O_EXCL | O_NOFOLLOW, 0600) through the directory's fd, after removing
 * whatever was at its name (a stale one of ours, or anything planted
 * there: never written into, never adopted), synced, renamed over path,
 * the directory synced.  0 or -errno. */
int owned_file_replace(const char *path, const char *text, size_t len);

#endif
