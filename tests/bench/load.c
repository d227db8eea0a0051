/* SPDX-License-Identifier: MIT */
/*
 * The load generator of tests/bench/run.
 *
 *   load cat    PATH THREADS SECONDS  open, read to EOF (as cat does), close
 *   load stat   PATH THREADS SECONDS  stat(2)
 *   load xattr  PATH THREADS SECONDS  getxattr(2) of user.tag.k
 *   load rotate PATH THREADS SECONDS  write 64 bytes to DIR/.NAME.new, rename
 *                                     it onto PATH (a rotation); with
 *                                     THREADS > 1 each thread rotates a
 *                                     secret of its own: thread 0 PATH,
 *                                     thread t PATH_t (made by its first
 *                                     rotation), from DIR/.NAME_t.new.
 *                                     PATH may be a list P0:P1:...: thread t
 *                                     takes Pt (P(t mod n)_t past the end),
 *                                     e.g. one secret per directory (the
 *                                     kernel serialises renames and creates
 *                                     within one directory)
 *   load write  PATH THREADS SECONDS  write 64 bytes over PATH in place (open
 *                                     O_TRUNC, write, close: a new version
 *                                     committed at close); PATH and its
 *                                     threads as for rotate
 *   load hold   PATH COUNT  THREADS   COUNT opens of PATH held open at once
 *                                     (from THREADS threads), then each read
 *                                     and closed; prints the seconds taken
 *
 * Prints one number: operations per second (hold: seconds).  Exit status 1
 * with a message on the first failing call: a benchmark of errors is no
 * benchmark.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum mode { M_CAT, M_STAT, M_XATTR, M_ROTATE, M_WRITE, M_HOLD };

static enum mode mode;
static const char *path;
/* rotate: thread t's secret and its scratch file */
#define THREADS_MAX 64
static char rot_target[THREADS_MAX][4096], rot_scratch[THREADS_MAX][4096];
static atomic_bool stop;
static unsigned long counts[THREADS_MAX];
static pthread_barrier_t start_line;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "load: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void one_cat(void)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open");
	ssize_t n, total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0)
		die("read");
	if (total == 0) {
		errno = ENODATA;
		die("read (empty)");
	}
	close(fd);
}

/* 64 bytes of value i written over file (created if need be), closed. */
static void write_value(const char *file, unsigned long i)
{
	char v[64];
	memset(v, 'a' + (int)(i % 26), sizeof(v));
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open");
	if (write(fd, v, sizeof(v)) != (ssize_t)sizeof(v))
		die("write");
	if (close(fd) < 0)
		die("close");
}

static void one_rotate(unsigned t, unsigned long i)
{
	write_value(rot_scratch[t], i);
	if (rename(rot_scratch[t], rot_target[t]) < 0)
		die("rename onto");
}

static void one_write(unsigned t, unsigned long i)
{
	write_value(rot_target[t], i);
}

static void *worker(void *arg)
{
	unsigned long *count = arg, n = 0;
	unsigned t = (unsigned)(count - counts);
	struct stat st;
	char v[256];
	pthread_barrier_wait(&start_line);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		switch (mode) {
		case M_CAT:
			one_cat();
			break;
		case M_STAT:
			if (stat(path, &st) < 0)
				die("stat");
			break;
		case M_XATTR:
			if (getxattr(path, "user.tag.k", v, sizeof(v)) < 0)
				die("getxattr");
			break;
		case M_ROTATE:
			one_rotate(t, n);
			break;
		case M_WRITE:
			one_write(t, n);
			break;
		case M_HOLD:
			break;
		}
		n++;
	}
	*count = n;
	return NULL;
}

/* --- hold: COUNT simultaneous opens --- */

static int *fds;
static unsigned long hold_count, hold_threads;

static void *holder(void *arg)
{
	unsigned long t = (unsigned long)(uintptr_t)arg;
	pthread_barrier_wait(&start_line);
	for (unsigned long i = t; i < hold_count; i += hold_threads)
		if ((fds[i] = open(path, O_RDONLY)) < 0)
			die("open");
	return NULL;
}

static int run_hold(unsigned long count, unsigned long threads)
{
	pthread_t tid[256];
	hold_count = count;
	hold_threads = threads;
	fds = calloc(count, sizeof(*fds));
	if (!fds || threads == 0 || threads > 256)
		return 1;
	pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
	for (unsigned long t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, holder, (void *)(uintptr_t)t);
	double t0 = now();
	pthread_barrier_wait(&start_line);
	for (unsigned long t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	for (unsigned long i = 0; i < count; i++) {
		char buf[4096];
		if (read(fds[i], buf, sizeof(buf)) <= 0)
			die("read");
		close(fds[i]);
	}
	printf("%.3f\n", now() - t0);
	free(fds);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: load cat|stat|xattr|rotate|write PATH THREADS SECONDS\n"
		                "       load hold PATH COUNT THREADS\n");
		return 2;
	}
	const char *m = argv[1];
	path = argv[2];
	if (strcmp(m, "cat") == 0)
		mode = M_CAT;
	else if (strcmp(m, "stat") == 0)
		mode = M_STAT;
	else if (strcmp(m, "xattr") == 0)
		mode = M_XATTR;
	else if (strcmp(m, "rotate") == 0)
		mode = M_ROTATE;
	else if (strcmp(m, "write") == 0)
		mode = M_WRITE;
	else if (strcmp(m, "hold") == 0)
		return run_hold(strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
	else
		return 2;
	char *end_threads, *end_seconds;
	unsigned long threads = strtoul(argv[3], &end_threads, 10);
	double seconds = strtod(argv[4], &end_seconds);
	if (*end_threads || *end_seconds || threads < 1 || threads > THREADS_MAX || !(seconds > 0))
		return 2;
	if (mode == M_ROTATE || mode == M_WRITE) {
		char *list = strdup(path), *paths[THREADS_MAX], *save = NULL, *tok;
		unsigned npaths = 0;
		for (char *p = list; npaths < THREADS_MAX && (tok = strtok_r(p, ":", &save));
		     p = NULL)
			paths[npaths++] = tok;
		if (npaths == 0) {
			free(list);
			return 2;
		}
		for (unsigned t = 0; t < threads; t++) {
			char *d = strdup(paths[t % npaths]), *b = strdup(paths[t % npaths]),
			     name[1024];
			if (t < npaths)
				snprintf(name, sizeof(name), "%s", basename(b));
			else
				snprintf(name, sizeof(name), "%s_%u", basename(b), t);
			const char *dir = dirname(d);
			snprintf(rot_target[t], sizeof(rot_target[t]), "%s/%s", dir, name);
			snprintf(rot_scratch[t], sizeof(rot_scratch[t]), "%s/.%s.new", dir, name);
			free(d);
			free(b);
		}
		free(list);
	}

	pthread_t tid[THREADS_MAX];
	pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
	for (unsigned t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, worker, &counts[t]);
	pthread_barrier_wait(&start_line);
	double t0 = now();
	struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	unsigned long total = 0;
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		total += counts[t];
	}
	printf("%.0f\n", (double)total / (now() - t0));
	return 0;
}
