/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto.h"
#include "keyfile.h"
#include "store.h"

int key_load(const char *path, uint8_t **ret_key)
{
	uint8_t *key = NULL;
	struct stat st;
	size_t got = 0;
	uint8_t extra;
	int fd, r;

	if (!path || !ret_key)
		return -EINVAL;
	r = crypto_init();
	if (r < 0)
		return r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	                    O_NONBLOCK); /* a FIFO must not hang us */
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		goto out;
	}
	if (st.st_size != STORE_KEY_BYTES) {
		r = -EINVAL;
		goto out;
	}

	key = sodium_malloc(STORE_KEY_BYTES);
	if (!key) {
		r = -ENOMEM;
		goto out;
	}
	while (got < STORE_KEY_BYTES) {
		ssize_t n = read(fd, key + got, STORE_KEY_BYTES - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0) {
			r = -EINVAL; /* shrank under us */
			goto out;
		}
		got += (size_t)n;
	}
	/* and not one byte more */
	for (;;) {
		ssize_t n = read(fd, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n > 0) {
			sodium_memzero(&extra, sizeof(extra));
			r = -EINVAL;
			goto out;
		}
		break;
	}
	if (sodium_mprotect_readonly(key) != 0) {
		r = -errno;
		goto out;
	}
	*ret_key = key;
	key = NULL;
	r = 0;
out:
	sodium_free(key); /* wipes; accepts NULL */
	close(fd);
	return r;
}

uint8_t *key_free(uint8_t *key)
{
	sodium_free(key);
	return NULL;
}

static int fsync_parent(const char *path)
{
	char *copy, *dir;
	int fd, r = 0;

	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
out:
	free(copy);
	return r;
}

int key_create(const char *path)
{
	uint8_t *key = NULL;
	size_t done = 0;
	int fd, r;

	if (!path)
		return -EINVAL;
	r = crypto_init();
	if (r < 0)
		return r;

	key = sodium_malloc(STORE_KEY_BYTES);
	if (!key)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0400);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	/* the umask could only take bits away; make the mode exact */
	if (fchmod(fd, 0400) < 0) {
		r = -errno;
		goto out_unlink;
	}
	randombytes_buf(key, STORE_KEY_BYTES);
	while (done < STORE_KEY_BYTES) {
		ssize_t n = write(fd, key + done, STORE_KEY_BYTES - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out_unlink;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out_unlink;
	}
	fd = -1;
	r = fsync_parent(path);
	if (r < 0)
		goto out_unlink;
	goto out_free;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(path);
out_free:
	sodium_free(key);
	return r;
}
