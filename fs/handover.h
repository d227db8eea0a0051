/* SPDX-License-Identifier: MIT */
/* Restart under a live mount: the FUSE connection handed to the next
 * daemon, through systemd's fd store or -o takeover (handover.c). */
#ifndef SECRETSFS_HANDOVER_H
#define SECRETSFS_HANDOVER_H

#include <stdbool.h>

struct fs;
struct node;

/* At start, before the mountpoint is looked at: a connection left in
 * systemd's fd store (LISTEN_FDS "fuse" and "state") or, with -o
 * takeover, received from the daemon serving the mountpoint.  1: adopted
 * (serve it with handover_session, no mount); 0: mount as usual (a
 * connection that cannot be adopted was aborted); <0: printed why not. */
int handover_adopt(struct fs *fs, bool takeover);

/* After fuse_session_new (and, unless adopted, fuse_session_mount): puts
 * the session on its connection through handover.c's own I/O (which
 * keeps the FUSE INIT for the next daemon, and replays it to this one
 * after an adoption), stores the connection in systemd's fd store, and
 * listens for -o takeover.  0 or printed why not. */
int handover_session(struct fs *fs);

/* Once the store is listed, fs->lock held for writing: secrets the
 * kernel knows get the inode numbers it knows them by. */
void handover_restore_inodes(struct fs *fs);

/* Right before serving: the state written for a successor, requests
 * the old daemon had read and not answered resent (FUSE_NOTIFY_RESEND). */
void handover_serving(struct fs *fs);

/* fs_node_new handed out the last reserved inode number: reserves more,
 * in the state before the number is used (fs->lock held for writing). */
void handover_reserve(struct fs *fs);

/* Secret n got an inode number of its own (fs->lock held for writing):
 * the state's journal has it (or the state is written again), so a
 * daemon killed from now on leaves it. */
void handover_secret_born(struct fs *fs, const struct node *n);

/* After the loop, before the session goes: when handing over, the state
 * written and, for -o takeover, both descriptors sent. */
void handover_finish(struct fs *fs);

/* After the loop: is the connection being handed over (then the mount
 * stays), and did this daemon adopt it (then it unmounts itself). */
bool handover_handing_over(void);
bool handover_adopted(void);

/* Under -o run_as the keeper (root) adopts without reading the state the
 * old server wrote; the new server reads it, after the drop, with this.
 * 0, or <0 (logged): the server must exit with HANDOVER_EXIT_UNADOPTABLE,
 * on which the keeper gives the connection up (handover_abandon). */
int handover_server_state(struct fs *fs);
#define HANDOVER_EXIT_UNADOPTABLE 75

/* A stored connection that cannot be taken over: aborted
 * (/sys/fs/fuse/connections/N/abort), mnt unmounted, and dropped from the
 * fd store, so that the next start mounts anew; why: for the log line. */
void handover_abandon(const char *mnt, const char *why);
/* The FUSE connection number of the secretsfs mount on mnt (the topmost
 * one), or -1 if none is mounted there. */
long handover_connection_of(const char *mnt);

/* At start, before anything looks at mnt: a secretsfs mount left there
 * whose daemon does not answer (stopped, or stuck dying) would hang
 * whatever looks.  Its connection is aborted and the mount detached
 * (one log line), so that a new one can be made; a mount that answers,
 * or one already dead (ENOTCONN), is left as it is. */
void handover_unstick(const char *mnt);
/* Did it?  (Then the old daemon, which may hold the store, is ending.) */
bool handover_unstuck(void);

/* Under -o run_as, for the keeper: were the connection and the state
 * sent to systemd's fd store (or taken from it), and the state's memfd
 * (-1 if none), which the keeper closes. */
bool handover_stored(void);
int handover_state_fd(void);

#endif
