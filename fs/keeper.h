/* SPDX-License-Identifier: MIT */
/* -o run_as=USER: the mounting process stays as a privileged keeper, a
 * child serves as USER (keeper.c says what each keeps). */
#ifndef SECRETSFS_KEEPER_H
#define SECRETSFS_KEEPER_H

#include <sys/types.h>

/* USER's uid and gid; -ENOENT if there is none, -EPERM for root. */
int keeper_user(const char *name, uid_t *uid, gid_t *gid);

/* Called once mnt is mounted on fuse_fd, before any thread is started.
 * Returns 0 in the server, now running as uid:gid in its sandbox, where
 * only the directories in writable (NULL-terminated, absolute) can be
 * written; the keeper never returns (it exits with the server's status).
 * *ready_fd: background()'s pipe, left to the server.  -errno: the server
 * could not drop privileges (logged) and must exit. */
int keeper_split(const char *mnt, int fuse_fd, uid_t uid, gid_t gid, const char *const *writable,
                 int *ready_fd);

#endif
