/* SPDX-License-Identifier: MIT */
/*
 * Group commit: write operations that arrive together share one durable
 * commit (one fsync) instead of paying one each.
 *
 * The owner (backend/embedded.c) has one mutex that every change runs
 * under.  A change is made in the owner's open transaction (the batch):
 * the first change of a batch begins it, the next ones join it, each
 * undoing only itself if it fails (a savepoint).  When a change is done
 * and no other change is on its way in (or the batch is full), its
 * caller commits the batch for everyone in it: each member then gets the
 * commit's result, the failure of a commit fails exactly that batch's
 * members, and none is told it was committed unless the commit returned
 * 0.  Otherwise it lets the mutex go and waits for whoever commits.
 * Nobody reads between a batch's changes: a reader waits until no batch
 * is open (gc_wait_idle), so nothing uncommitted is ever served.
 *
 * A batch only grows while another change is already on its way
 * (between gc_arrive and gc_join), so a change alone commits at once:
 * no timer, no added latency.  Each caller whose change succeeded waits
 * for its batch, so a batch holds at most as many changes as there are
 * threads making them; one that failed returns at once and may come
 * again, so at most GC_BATCH_MAX callers (failed or not) leave a batch
 * before it is committed.
 *
 * Every call but gc_arrive is made with the owner's mutex held.
 */
#ifndef SECRETSFS_GROUPCOMMIT_H
#define SECRETSFS_GROUPCOMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GC_BATCH_MAX 64

/* One caller's place in a batch (on its stack while it waits). */
struct gc_member {
	struct gc_member *next;
	int result;
	bool done;
};

struct group_commit {
	pthread_mutex_t *mutex;    /* the owner's */
	pthread_cond_t ended;      /* a batch ended */
	unsigned coming;           /* callers between gc_arrive and gc_join (atomic) */
	bool open;                 /* a batch is open; mutex */
	size_t n;                  /* changes in the open batch; mutex */
	size_t left;               /* callers that left it, failed or not; mutex */
	struct gc_member *members; /* of the open batch; mutex */
	uint64_t commits;          /* batches committed (tried); mutex */
	uint64_t changes;          /* changes those batches held; mutex */
};

int gc_init(struct group_commit *g, pthread_mutex_t *mutex);
void gc_destroy(struct group_commit *g);

/* A change is on its way: called right before taking the mutex (the
 * batch open now waits for it). */
void gc_arrive(struct group_commit *g);
/* The mutex taken: no longer on the way.  Returns the number of changes
 * already in the open batch (to join it), 0 when none is open: then the
 * caller begins its transaction and calls gc_opened on success. */
size_t gc_join(struct group_commit *g);
void gc_opened(struct group_commit *g);
/* The caller's change is in the open batch (r == 0) or not (r < 0: it
 * failed and was undone, or no batch could be begun).  Commits the batch
 * with commit(ctx) when nobody else is coming or it is full; else, with
 * r == 0, waits (the mutex let go meanwhile) until another caller has.
 * Returns r if r < 0, else the commit's result. */
int gc_leave(struct group_commit *g, struct gc_member *m, int r, int (*commit)(void *ctx),
             void *ctx);
/* The open batch is lost (its transaction rolled back as a whole):
 * every member gets r, and the batch ends. */
void gc_abort(struct group_commit *g, int r);
/* Waits until no batch is open: what a batch holds is not committed and
 * must not be read. */
void gc_wait_idle(struct group_commit *g);

#endif
