/* SPDX-License-Identifier: MIT */
/* Group commit (groupcommit.h): one commit for the changes that come
 * together. */
#include <errno.h>

#include "groupcommit.h"

int gc_init(struct group_commit *g, pthread_mutex_t *mutex)
{
	*g = (struct group_commit){ .mutex = mutex };
	return -pthread_cond_init(&g->ended, NULL);
}

void gc_destroy(struct group_commit *g)
{
	pthread_cond_destroy(&g->ended);
}

void gc_arrive(struct group_commit *g)
{
	__atomic_add_fetch(&g->coming, 1, __ATOMIC_SEQ_CST);
}

size_t gc_join(struct group_commit *g)
{
	__atomic_sub_fetch(&g->coming, 1, __ATOMIC_SEQ_CST);
	return g->open ? g->n : 0;
}

void gc_opened(struct group_commit *g)
{
	g->open = true;
	g->n = g->left = 0;
	g->members = NULL;
}

/* The batch ends with result r for each of its members. */
static void batch_end(struct group_commit *g, int r)
{
	for (struct gc_member *m = g->members; m; m = m->next) {
		m->result = r;
		m->done = true;
	}
	g->members = NULL;
	g->n = g->left = 0;
	g->open = false;
	pthread_cond_broadcast(&g->ended);
}

int gc_leave(struct group_commit *g, struct gc_member *m, int r, int (*commit)(void *ctx),
             void *ctx)
{
	*m = (struct gc_member){ .result = r, .done = r < 0 || !g->open };
	if (!g->open)
		return r < 0 ? r : -EIO; /* r == 0 with no batch: a bug of the owner's */
	if (!m->done) {
		m->next = g->members;
		g->members = m;
		g->n++;
	}
	/* Anyone on the way will join and commit; the last one in commits.
	 * Failed changes count towards the cap too: callers failing in a
	 * loop cannot keep a batch (and the readers waiting on it) open. */
	g->left++;
	if (__atomic_load_n(&g->coming, __ATOMIC_SEQ_CST) == 0 || g->left >= GC_BATCH_MAX) {
		g->commits++;
		g->changes += g->n;
		batch_end(g, commit(ctx));
	}
	while (!m->done)
		pthread_cond_wait(&g->ended, g->mutex);
	return m->result;
}

void gc_abort(struct group_commit *g, int r)
{
	if (g->open)
		batch_end(g, r < 0 ? r : -EIO);
}

void gc_wait_idle(struct group_commit *g)
{
	while (g->open)
		pthread_cond_wait(&g->ended, g->mutex);
}
