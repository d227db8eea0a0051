/* SPDX-License-Identifier: MIT */
/*
 * Power loss, simulated under the embedded store: what a change that was
 * reported committed wrote must be on disk, i.e. fsynced, before the
 * report.  A SQLite VFS wrapped around "unix" (registered as the default
 * while the store is open) keeps each file's durable image: a write is
 * pending until an xSync of its file makes it part of the image.  Writers
 * on several threads change secrets of their own (their commits share
 * fsyncs: group commit); at a moment chosen by count, the power goes:
 * from then on nothing reaches the disk, and every file is put back to
 * its durable image.  The store, opened again, must hold for every secret
 * the last value reported committed before the power went, or a later
 * one that was under way (never an older one), and its digest must
 * verify (the store opens).  Now and then a writer's change is refused
 * (-ESTALE before it changed anything, -EEXIST after it took a revision)
 * and undone alone, inside a batch of others.
 *
 * What it does not model: a file's directory entry is taken as durable
 * once the file is (SQLite syncs the directory of a new journal itself);
 * -shm is not durable (SQLite rebuilds it from the WAL).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "embedded.h"
#include "harness.h"
#include "keyfile.h"
#include "store.h"

static const struct store_ops *ops = &embedded_store_ops;

/* --- the durable-image VFS --- */

struct pending {
	struct pending *next; /* in the order made */
	sqlite3_int64 off;    /* write: where; truncate: the new size */
	int len;              /* -1: a truncate */
	unsigned char *data;
};

/* One file, by path: its durable image and the writes not yet synced. */
struct image {
	struct image *next;
	char *path;
	bool present; /* the durable image has the file at all */
	unsigned char *buf;
	size_t len, cap;
	struct pending *head, **tail;
};

static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;
static struct image *images; /* images_lock */
static atomic_bool power_off;
static atomic_ulong syncs;
static sqlite3_vfs *unix_vfs;

struct pl_file {
	sqlite3_file base;
	struct image *img;
	sqlite3_file real[]; /* unix_vfs->szOsFile bytes */
};

static void image_put(struct image *im, sqlite3_int64 off, const void *data, size_t len)
{
	size_t end = (size_t)off + len;
	if (end > im->cap) {
		size_t cap = im->cap ? im->cap : 65536;
		while (cap < end)
			cap *= 2;
		im->buf = realloc(im->buf, cap);
		REQUIRE(im->buf);
		im->cap = cap;
	}
	if ((size_t)off > im->len)
		memset(im->buf + im->len, 0, (size_t)off - im->len);
	memcpy(im->buf + off, data, len);
	if (end > im->len)
		im->len = end;
}

/* The file's state on disk now: read it whole (at its first open). */
static struct image *image_of(const char *path)
{
	struct image *im;
	pthread_mutex_lock(&images_lock);
	for (im = images; im && strcmp(im->path, path) != 0; im = im->next)
		;
	if (!im) {
		im = calloc(1, sizeof(*im));
		REQUIRE(im && (im->path = strdup(path)));
		im->tail = &im->head;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			unsigned char b[65536];
			ssize_t n;
			im->present = true;
			while ((n = read(fd, b, sizeof(b))) > 0)
				image_put(im, (sqlite3_int64)im->len, b, (size_t)n);
			close(fd);
		}
		im->next = images;
		images = im;
	}
	pthread_mutex_unlock(&images_lock);
	return im;
}

static int pl_close(sqlite3_file *f)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
}

static int pl_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xRead(p->real, buf, amt, off);
}

static int pl_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *p = (struct pl_file *)f;
	if (atomic_load(&power_off))
		return SQLITE_OK; /* the disk is gone; the process does not know */
	if (!p->img)
		return p->real->pMethods->xWrite(p->real, buf, amt, off);
	struct pending *w = calloc(1, sizeof(*w));
	REQUIRE(w && (w->data = malloc((size_t)amt)));
	memcpy(w->data, buf, (size_t)amt);
	w->off = off;
	w->len = amt;
	pthread_mutex_lock(&images_lock);
	*p->img->tail = w;
	p->img->tail = &w->next;
	pthread_mutex_unlock(&images_lock);
	return p->real->pMethods->xWrite(p->real, buf, amt, off);
}

static int pl_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct pl_file *p = (struct pl_file *)f;
	if (atomic_load(&power_off))
		return SQLITE_OK;
	if (!p->img)
		return p->real->pMethods->xTruncate(p->real, size);
	struct pending *w = calloc(1, sizeof(*w));
	REQUIRE(w);
	w->off = size;
	w->len = -1;
	pthread_mutex_lock(&images_lock);
	*p->img->tail = w;
	p->img->tail = &w->next;
	pthread_mutex_unlock(&images_lock);
	return p->real->pMethods->xTruncate(p->real, size);
}

/* What was written to the file before a sync is on disk after it. */
static int pl_sync(sqlite3_file *f, int flags)
{
	struct pl_file *p = (struct pl_file *)f;
	if (atomic_load(&power_off))
		return SQLITE_OK;
	if (!p->img)
		return p->real->pMethods->xSync(p->real, flags);
	pthread_mutex_lock(&images_lock);
	struct pending *w = p->img->head;
	p->img->head = NULL;
	p->img->tail = &p->img->head;
	pthread_mutex_unlock(&images_lock);
	int rc = p->real->pMethods->xSync(p->real, flags);
	pthread_mutex_lock(&images_lock);
	p->img->present = true;
	while (w) {
		struct pending *next = w->next;
		if (w->len < 0) {
			if ((size_t)w->off < p->img->len)
				p->img->len = (size_t)w->off;
		} else {
			image_put(p->img, w->off, w->data, (size_t)w->len);
		}
		free(w->data);
		free(w);
		w = next;
	}
	pthread_mutex_unlock(&images_lock);
	atomic_fetch_add(&syncs, 1);
	return rc;
}

static int pl_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xFileSize(p->real, size);
}

static int pl_lock(sqlite3_file *f, int l)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xLock(p->real, l);
}

static int pl_unlock(sqlite3_file *f, int l)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xUnlock(p->real, l);
}

static int pl_check_reserved(sqlite3_file *f, int *out)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int pl_file_control(sqlite3_file *f, int op, void *arg)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int pl_sector_size(sqlite3_file *f)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xSectorSize(p->real);
}

static int pl_device(sqlite3_file *f)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int pl_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xShmMap(p->real, pg, sz, extend, pp);
}

static int pl_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xShmLock(p->real, off, n, flags);
}

static void pl_shm_barrier(sqlite3_file *f)
{
	struct pl_file *p = (struct pl_file *)f;
	p->real->pMethods->xShmBarrier(p->real);
}

static int pl_shm_unmap(sqlite3_file *f, int del)
{
	struct pl_file *p = (struct pl_file *)f;
	return p->real->pMethods->xShmUnmap(p->real, del);
}

/* No memory-mapped I/O: every write goes through pl_write. */
static int pl_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	(void)f, (void)off, (void)amt;
	*pp = NULL;
	return SQLITE_OK;
}

static int pl_unfetch(sqlite3_file *f, sqlite3_int64 off, void *pg)
{
	(void)f, (void)off, (void)pg;
	return SQLITE_OK;
}

static const sqlite3_io_methods pl_methods = {
	.iVersion = 3,
	.xClose = pl_close,
	.xRead = pl_read,
	.xWrite = pl_write,
	.xTruncate = pl_truncate,
	.xSync = pl_sync,
	.xFileSize = pl_file_size,
	.xLock = pl_lock,
	.xUnlock = pl_unlock,
	.xCheckReservedLock = pl_check_reserved,
	.xFileControl = pl_file_control,
	.xSectorSize = pl_sector_size,
	.xDeviceCharacteristics = pl_device,
	.xShmMap = pl_shm_map,
	.xShmLock = pl_shm_lock,
	.xShmBarrier = pl_shm_barrier,
	.xShmUnmap = pl_shm_unmap,
	.xFetch = pl_fetch,
	.xUnfetch = pl_unfetch,
};

static int pl_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct pl_file *p = (struct pl_file *)f;
	(void)vfs;
	p->base.pMethods = NULL;
	p->img = name ? image_of(name) : NULL;
	int rc = unix_vfs->xOpen(unix_vfs, name, p->real, flags, out);
	if (rc == SQLITE_OK)
		p->base.pMethods = &pl_methods;
	return rc;
}

static int pl_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	if (atomic_load(&power_off))
		return SQLITE_OK;
	struct image *im = image_of(name);
	pthread_mutex_lock(&images_lock);
	im->present = false; /* taken as durable at once (see above) */
	im->len = 0;
	for (struct pending *w = im->head, *next; w; w = next) {
		next = w->next;
		free(w->data);
		free(w);
	}
	im->head = NULL;
	im->tail = &im->head;
	pthread_mutex_unlock(&images_lock);
	return unix_vfs->xDelete(unix_vfs, name, sync_dir);
}

static int pl_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return unix_vfs->xAccess(unix_vfs, name, flags, out);
}

static int pl_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return unix_vfs->xFullPathname(unix_vfs, name, n, out);
}

static sqlite3_vfs pl_vfs;

static void pl_register(void)
{
	unix_vfs = sqlite3_vfs_find("unix");
	REQUIRE(unix_vfs);
	pl_vfs = *unix_vfs; /* randomness, sleep, time: the real ones */
	pl_vfs.zName = "powerloss";
	pl_vfs.szOsFile = (int)(sizeof(struct pl_file) + (size_t)unix_vfs->szOsFile);
	pl_vfs.pNext = NULL;
	pl_vfs.xOpen = pl_open;
	pl_vfs.xDelete = pl_delete;
	pl_vfs.xAccess = pl_access;
	pl_vfs.xFullPathname = pl_full_pathname;
	pl_vfs.xSetSystemCall = NULL;
	pl_vfs.xGetSystemCall = NULL;
	pl_vfs.xNextSystemCall = NULL;
	REQUIRE(sqlite3_vfs_register(&pl_vfs, 1) == SQLITE_OK);
}

/* After the power went and the store was closed: every file as its
 * durable image has it; -shm files gone. */
static void pl_restore_and_unregister(void)
{
	sqlite3_vfs_unregister(&pl_vfs);
	for (struct image *im = images, *next; im; im = next) {
		next = im->next;
		if (im->present) {
			int fd = open(im->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			REQUIRE(fd >= 0);
			REQUIRE(write(fd, im->buf, im->len) == (ssize_t)im->len);
			close(fd);
		} else {
			unlink(im->path);
		}
		char *shm = NULL;
		REQUIRE(asprintf(&shm, "%s-shm", im->path) > 0);
		unlink(shm);
		free(shm);
		for (struct pending *w = im->head, *n2; w; w = n2) {
			n2 = w->next;
			free(w->data);
			free(w);
		}
		free(im->buf);
		free(im->path);
		free(im);
	}
	images = NULL;
}

/* --- writers --- */

#define WRITERS 4
#define POWER_OFF_AFTER 400 /* changes reported committed, all writers */

static struct store *st;
static atomic_ulong acked_total;

struct writer {
	pthread_t tid;
	int idx;
	unsigned acked; /* the last value reported committed before the power went */
	unsigned tried; /* the last value tried */
	unsigned errors;
};

static void value_of(char *buf, size_t n, int idx, unsigned k)
{
	snprintf(buf, n, "w%d-value-%u", idx, k);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char id[32], v[64];
	snprintf(id, sizeof(id), "PL_%d", w->idx);
	/* a store that refuses every change would never reach the power cut:
	 * many errors end the run (and fail it) */
	for (unsigned k = 2; !atomic_load(&power_off) && w->errors < 50; k++) {
		/* now and then a change the store refuses (-ESTALE: based on
		 * the first value), undone alone inside its batch */
		if (k % 7 == 0 &&
		    ops->put_value(st, id, 0, 1, (const uint8_t *)"stale", 5, NULL) != -ESTALE &&
		    !atomic_load(&power_off))
			w->errors++;
		/* and one refused after it took a revision (EEXIST: the name
		 * is there): its savepoint must give the revision, the digest
		 * and the head back, or the next commit's head sums nothing */
		if (k % 5 == 0 &&
		    ops->create(st, id, 1u << SCOPE_AI_GATEWAY, NULL, (const uint8_t *)"dup", 3,
		                NULL) != -EEXIST &&
		    !atomic_load(&power_off))
			w->errors++;
		value_of(v, sizeof(v), w->idx, k);
		w->tried = k;
		int r = ops->put_value(st, id, 0, 0, (const uint8_t *)v, strlen(v), NULL);
		/* reported before the power went: must be there after */
		bool before = !atomic_load(&power_off);
		if (r == 0 && before)
			w->acked = k;
		else if (r != 0 && before)
			w->errors++;
		if (r == 0 && atomic_fetch_add(&acked_total, 1) + 1 == POWER_OFF_AFTER)
			atomic_store(&power_off, true);
	}
	if (w->errors >= 50)
		atomic_store(&power_off, true);
	return NULL;
}

static struct store *open_st(const char *dir, const uint8_t *key)
{
	struct store_config cfg = { .source = dir, .key = key, .keep_versions = 3 };
	struct store *s = NULL;
	int r = ops->open(&cfg, &s);
	if (r != 0)
		fprintf(stderr, "open: error %d\n", r);
	REQUIRE(r == 0 && s);
	return s;
}

static unsigned value_k(struct store *s, int idx)
{
	char id[32], want[64];
	struct secret_value *v = NULL;
	snprintf(id, sizeof(id), "PL_%d", idx);
	if (ops->get_value(s, id, 0, 0, &v) != 0)
		return 0;
	unsigned found = 0;
	for (unsigned k = 1; k < 100000 && !found; k++) {
		value_of(want, sizeof(want), idx, k);
		if (v->len == strlen(want) && memcmp(v->data, want, v->len) == 0)
			found = k;
	}
	secret_value_free(v);
	return found;
}

int main(void)
{
	char *tmp = harness_tmpdir(), *dir = harness_path(tmp, "store"), *kp = NULL;
	uint8_t *key = NULL;
	struct writer w[WRITERS];

	REQUIRE(sodium_init() >= 0);
	REQUIRE(embedded_store_init(dir) == 0);
	REQUIRE(embedded_key_path(dir, &kp) == 0);
	REQUIRE(key_load(kp, &key) == 0);
	free(kp);
	st = open_st(dir, key);
	for (int i = 0; i < WRITERS; i++) {
		char id[32], v[64];
		snprintf(id, sizeof(id), "PL_%d", i);
		value_of(v, sizeof(v), i, 1);
		REQUIRE(ops->create(st, id, 1u << SCOPE_AI_GATEWAY, NULL, (const uint8_t *)v,
		                    strlen(v), NULL) == 0);
	}
	ops->close(st);

	/* the store again, over the durable-image VFS */
	pl_register();
	st = open_st(dir, key);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .idx = i, .acked = 1, .tried = 1 };
		REQUIRE(pthread_create(&w[i].tid, NULL, writer_main, &w[i]) == 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i].tid, NULL);
	uint64_t commits = 0, changes = 0;
	embedded_group_commits(st, &commits, &changes);
	ops->close(st); /* (its checkpoint goes nowhere: the power is off) */
	pl_restore_and_unregister();
	fprintf(stderr,
	        "power off after %lu changes reported committed (%" PRIu64 " changes in %" PRIu64
	        " commits, %lu syncs)\n",
	        (unsigned long)atomic_load(&acked_total), changes, commits,
	        (unsigned long)atomic_load(&syncs));
	CHECK(atomic_load(&acked_total) >= POWER_OFF_AFTER);

	/* power back: every change reported committed is there */
	st = open_st(dir, key); /* (the digest verifies, or this fails) */
	for (int i = 0; i < WRITERS; i++) {
		unsigned k = value_k(st, i);
		fprintf(stderr, "PL_%d: reported %u, tried %u, found %u\n", i, w[i].acked,
		        w[i].tried, k);
		CHECK_EQ(w[i].errors, 0);
		CHECK(k >= w[i].acked && k <= w[i].tried);
	}
	ops->close(st);
	sodium_free(key);
	harness_rmrf(tmp);
	free(dir);
	free(tmp);
	return harness_result("test_powerloss");
}
