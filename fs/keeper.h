/* SPDX-License-Identifier: MIT */
/* -o run_as=USER: the mounting process stays as a privileged keeper, a
 * child serves as USER (keeper.c says what each keeps). */
#ifndef SECRETSFS_KEEPER_H
#define SECRETSFS_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* USER's uid and gid; -ENOENT if there is none, -EPERM for root. */
int keeper_user(const char *name, uid_t *uid, gid_t *gid);

/* The mount ID (/proc/self/mountinfo's first field) of the topmost mount
 * on mnt (an absolute path, as mountinfo has it) if that is a secretsfs
 * mount, else -1: whatever is mounted on top of ours is never taken for
 * it.  *ret_minor (if not NULL): its device's minor, which for a FUSE
 * mount is its connection's number. */
long keeper_mount_of(const char *mnt, unsigned long *ret_minor);

/* secretsfs init DIR -o run_as=USER: the new store in dir (and what init
 * made in it; no symlink followed) made uid:gid's.  0 or -errno. */
int keeper_give_store(const char *dir, uid_t uid, gid_t gid);

/* mnt as an absolute path with only its parent resolved (realpath), as
 * mountinfo has it: the mount itself is not looked at, since it may have
 * no daemon to answer yet (a connection taken over).  Malloc'd; NULL if
 * the parent cannot be resolved (errno). */
char *keeper_mount_path(const char *mnt);

/* The directories the server's namespace hides (keeper.c, sandbox()):
 * a store or host-attrs below one of them cannot be served under run_as.
 * NULL-terminated. */
extern const char *const keeper_hidden[];

/* Called once mnt is mounted, before any thread is started: forks.
 * Returns 0 in the server, now running as uid:gid in its sandbox, where
 * only the directories in writable (NULL-terminated, absolute) can be
 * written, without $NOTIFY_SOCKET, with a thread that turns the keeper's
 * orders into SIGTERM or SIGUSR1 for the calling thread (the one to run
 * the FUSE loop); the server's pid in the keeper, which must call
 * keeper_run(); -errno if it could not fork or, in the server, drop
 * privileges (logged: it must exit).  *ret_mount_id: the mount's ID, for
 * keeper_run(). */
pid_t keeper_fork(const char *mnt, uid_t uid, gid_t gid, const char *const *writable,
                  long *ret_mount_id);

/* The keeper's life, with the signals keeper_fork() blocked; exits with
 * the server's status.  fds (n_fds of them, -1 skipped): what the server
 * serves from (the FUSE connection, the state memfd, the credential
 * socket), closed: the keeper holds none of it.  stored: the connection
 * and the state are in systemd's fd store, so a restart (SIGUSR1) or the
 * server's death leaves the mount for the next daemon (keeper.c).
 * ready_status: the STATUS= sent with READY=1 (the server does not speak
 * to systemd). */
_Noreturn void keeper_run(pid_t server, const char *mnt, long mount_id, const int *fds,
                          size_t n_fds, bool stored, const char *ready_status);

#endif
