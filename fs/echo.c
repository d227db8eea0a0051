/* SPDX-License-Identifier: MIT */
/*
 * Real inotify events for changes other clients made.  The kernel sends
 * none for a change a daemon only announces (fuse_lowlevel_notify_*), so
 * a service on this host that reloads on IN_CLOSE_WRITE or IN_MOVED_TO
 * would never see a rotation made on another host.  What the kernel does
 * report is an operation on the mount itself: this thread opens the
 * changed file for writing and closes it, and inotify reports
 * IN_CLOSE_WRITE on it and its directory, exactly as it does after a
 * local write.  The daemon knows these opens by the thread's id
 * (echo_is_own) and answers them with a handle that does nothing: no
 * value is read, written or audited.
 *
 * The thread serves no request and holds no lock of the daemon's while it
 * opens (a request it waits on could otherwise wait on it: libfuse's
 * README.notifications), so fs_apply_remote() only queues.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs.h"

struct echo_item {
	struct echo_item *next;
	char *path; /* MOUNTPOINT/ai_gateway/OPENAI_API_KEY */
};

struct echo {
	char *mountpoint;
	pthread_t thread;
	pid_t tid; /* the thread's, once started (atomic) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct echo_item *head, *tail; /* lock */
	bool stop;                     /* lock */
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	__atomic_store_n(&e->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		while (!e->head && !e->stop)
			pthread_cond_wait(&e->cond, &e->lock);
		if (e->stop)
			break;
		struct echo_item *it = e->head;
		e->head = it->next;
		if (!e->head)
			e->tail = NULL;
		pthread_mutex_unlock(&e->lock);
		/* by path each time: a descriptor kept on the mount would make
		 * fusermount3 -u fail with EBUSY */
		int fd = open(it->path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		else
			log_debug("%s: no inotify event for another client's change: %s", it->path,
			          strerror(errno));
		free(it->path);
		free(it);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

struct echo *echo_start(const char *mountpoint)
{
	struct echo *e = calloc(1, sizeof(*e));
	if (!e || !(e->mountpoint = strdup(mountpoint))) {
		free(e);
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	if (pthread_create(&e->thread, NULL, echo_main, e) != 0) {
		pthread_mutex_destroy(&e->lock);
		pthread_cond_destroy(&e->cond);
		free(e->mountpoint);
		free(e);
		return NULL;
	}
	return e;
}

void echo_stop(struct echo *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	for (struct echo_item *it = e->head, *next; it; it = next) {
		next = it->next;
		free(it->path);
		free(it);
	}
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->mountpoint);
	free(e);
}

void echo_queue(struct echo *e, enum scope sc, const char *name)
{
	if (!e)
		return;
	struct echo_item *it = calloc(1, sizeof(*it));
	if (!it || asprintf(&it->path, "%s/%s/%s", e->mountpoint, scope_dir_name(sc), name) < 0) {
		free(it);
		return;
	}
	pthread_mutex_lock(&e->lock);
	if (e->tail)
		e->tail->next = it;
	else
		e->head = it;
	e->tail = it;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

bool echo_is_own(const struct echo *e, pid_t pid)
{
	return e && pid > 0 && __atomic_load_n(&e->tid, __ATOMIC_ACQUIRE) == pid;
}
