/* SPDX-License-Identifier: MIT */
/*
 * Kernel cache invalidations from a thread of their own.  A notification
 * sent from inside a request, or while holding a lock that a request needs,
 * can deadlock (libfuse README.notifications), so requests only queue them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

struct notice {
	struct notice *next;
	fuse_ino_t ino; /* parent for an entry, the inode otherwise */
	char *name;     /* NULL: invalidate the inode */
};

struct notifier {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct notice *head, *tail; /* lock */
	bool stop;                  /* lock */
};

static void *notifier_main(void *arg)
{
	struct notifier *nt = arg;
	pthread_mutex_lock(&nt->lock);
	for (;;) {
		while (!nt->head && !nt->stop)
			pthread_cond_wait(&nt->cond, &nt->lock);
		if (!nt->head)
			break;
		struct notice *n = nt->head;
		nt->head = n->next;
		if (!nt->head)
			nt->tail = NULL;
		pthread_mutex_unlock(&nt->lock);
		int r;
		if (n->name)
			r = fuse_lowlevel_notify_inval_entry(nt->se, n->ino, n->name,
			                                     strlen(n->name));
		else
			r = fuse_lowlevel_notify_inval_inode(nt->se, n->ino, 0, 0);
		/* -ENOENT: the kernel did not have it cached; nothing to do. */
		if (r < 0 && r != -ENOENT)
			log_debug("cache invalidation of inode %lu failed: %d",
			          (unsigned long)n->ino, r);
		free(n->name);
		free(n);
		pthread_mutex_lock(&nt->lock);
	}
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

struct notifier *notifier_start(struct fuse_session *se)
{
	struct notifier *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return NULL;
	nt->se = se;
	pthread_mutex_init(&nt->lock, NULL);
	pthread_cond_init(&nt->cond, NULL);
	if (pthread_create(&nt->thread, NULL, notifier_main, nt) != 0) {
		free(nt);
		return NULL;
	}
	return nt;
}

void notifier_stop(struct notifier *nt)
{
	if (!nt)
		return;
	pthread_mutex_lock(&nt->lock);
	nt->stop = true;
	/* Pending notices are dropped: the mount is going away. */
	while (nt->head) {
		struct notice *n = nt->head;
		nt->head = n->next;
		free(n->name);
		free(n);
	}
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
	pthread_join(nt->thread, NULL);
	free(nt);
}

static void enqueue(struct notifier *nt, fuse_ino_t ino, const char *name)
{
	if (!nt)
		return;
	struct notice *n = calloc(1, sizeof(*n));
	if (!n)
		return;
	n->ino = ino;
	if (name && !(n->name = strdup(name))) {
		free(n);
		return;
	}
	pthread_mutex_lock(&nt->lock);
	if (nt->tail)
		nt->tail->next = n;
	else
		nt->head = n;
	nt->tail = n;
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
}

void notifier_inval_entry(struct notifier *nt, fuse_ino_t parent, const char *name)
{
	enqueue(nt, parent, name);
}

void notifier_inval_inode(struct notifier *nt, fuse_ino_t ino)
{
	enqueue(nt, ino, NULL);
}
