/* SPDX-License-Identifier: MIT */
/*
 * -o credsocket=PATH: systemd credentials per unit.  A service with
 *
 *     LoadCredential=OPENAI_API_KEY:PATH
 *
 * gets the current value of the secret OPENAI_API_KEY when it starts.
 * systemd connects from an abstract address naming the unit and the
 * credential ID (credpeer.h); the daemon believes the unit only when the
 * connecting process is root (SO_PEERCRED) and in that unit's cgroup (the
 * process systemd forked to start it), then serves the secret if one of
 * its scopes has a unit= or cgroup= rule that admits the unit
 * (policy_check_credential: a scope with no rules serves nothing).
 *
 * A refusal is never an empty credential: closing without data gives the
 * unit an empty file and it starts (systemd 252; systemd#27373), so a
 * refused connection gets CREDSOCK_REFUSAL_BYTES of a text that says
 * where to look, one byte more than systemd takes for a credential: the
 * unit fails to start with status 243/CREDENTIALS ("Failed to set up
 * credentials: Protocol error").
 *
 * Served from a thread of its own, one connection at a time, with a send
 * deadline; it takes no fs lock at all (the store is thread-safe), and
 * every request is audited (op=credential) with the unit's name.
 *
 * Rotation (-o on_rotate=SCOPE:restart): systemd copies a credential when
 * a unit starts, so a new value reaches it only at its next start.  The
 * thread remembers which units it served which secret; a new value of a
 * secret in such a scope (credsock_value_changed, from the one change
 * path, fs_apply) makes it ask systemd to try-restart those units
 * (TryRestartUnit over PID 1's private bus socket, with a deadline).
 */
#ifndef SECRETSFS_CREDSOCK_H
#define SECRETSFS_CREDSOCK_H

#include <stddef.h>

#include "fs.h"

/* systemd's CREDENTIAL_SIZE_MAX (1 MiB) + 1 */
#define CREDSOCK_REFUSAL_BYTES (1024 * 1024 + 1)
/* How long one peer may take to read what it is sent. */
#define CREDSOCK_SEND_TIMEOUT_S 10
/* How long systemd may take to answer a TryRestartUnit. */
#define CREDSOCK_BUS_TIMEOUT_US (5 * 1000000ULL)
#define CREDSOCK_BUS_ADDRESS "unix:path=/run/systemd/private"

struct credsock;

/* Makes the listening socket at path (absolute; mode 0600).  A socket left
 * there by a daemon that died is replaced; one another process listens on
 * (-EADDRINUSE) or anything that is not a socket (-EEXIST) is not.  0 or
 * -errno with a one-line reason in why. */
int credsock_open(const char *path, struct credsock **ret, char *why, size_t why_size);
/* Serves on it from a thread of its own.  0 or -errno. */
int credsock_start(struct credsock *cs, struct fs *fs);

/* The listening socket (-o run_as: the keeper, which bound it before the
 * fork, closes its copy; the server accepts on it). */
int credsock_fd(const struct credsock *cs);
/* Secret id (in scopes) has a new value: queued for the thread, which
 * restarts the units that loaded it if on_rotate says so.  Called under
 * fs->lock: takes only the queue's own mutex (a leaf, fs.h).  Accepts a
 * NULL cs. */
void credsock_value_changed(struct credsock *cs, const char *id, scope_set scopes);
/* Stops the thread, closes the socket and removes its file (if it is
 * still this socket).  Accepts NULL. */
void credsock_close(struct credsock *cs);

#endif
