/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto.h"
#include "keyfile.h"
#include "ownedfile.h"
#include "store.h"

int key_load_why(const char *path, uint8_t **ret_key, char *why, size_t why_size)
{
	uint8_t *key = NULL;
	struct stat st;
	size_t got = 0;
	uint8_t extra;
	int fd, r;

	if (why && why_size)
		why[0] = '\0';
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
	enum owned_problem p = owned_check(&st, 077);
	if (p == OWNED_NOT_REGULAR || (p == OWNED_OK && st.st_size != STORE_KEY_BYTES)) {
		r = -EINVAL;
		goto out;
	}
	if (p != OWNED_OK) {
		/* another user's key (they chose it), or one others may read */
		if (why && why_size)
			owned_reason(p, &st, 077, "key file", path, why, why_size);
		r = p == OWNED_MODE ? -EPERM : -EACCES;
		goto out;
	}

	key = secret_locked_alloc(STORE_KEY_BYTES);
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

int key_load(const char *path, uint8_t **ret_key)
{
	return key_load_why(path, ret_key, NULL, 0);
}

uint8_t *key_free(uint8_t *key)
{
	sodium_free(key);
	return NULL;
}

int key_create_at(int dirfd, const char *name, uint8_t **ret_key)
{
	struct stat mine, now;
	uint8_t *key = NULL;
	size_t done = 0;
	int fd, r;

	if (dirfd < 0 || !name || !ret_key)
		return -EINVAL;
	r = crypto_init();
	if (r < 0)
		return r;

	key = secret_locked_alloc(STORE_KEY_BYTES);
	if (!key)
		return -ENOMEM;
	/* new, ours, and not through a symlink: nothing planted is used */
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	            0400);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	if (fstat(fd, &mine) < 0) {
		r = -errno;
		close(fd);
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
	if (fsync(dirfd) < 0) {
		r = -errno;
		goto out_unlink;
	}
	/* The bytes are ours, whatever the name holds now; but a key that
	 * someone replaced under us would not open the store: say so. */
	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 || now.st_dev != mine.st_dev ||
	    now.st_ino != mine.st_ino) {
		r = -ESTALE;
		goto out_free;
	}
	if (sodium_mprotect_readonly(key) != 0) {
		r = -errno;
		goto out_unlink;
	}
	*ret_key = key;
	return 0;

out_unlink:
	if (fd >= 0)
		close(fd);
	/* only the file we made */
	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == mine.st_dev &&
	    now.st_ino == mine.st_ino)
		unlinkat(dirfd, name, 0);
out_free:
	sodium_free(key);
	return r;
}

int key_create(const char *path)
{
	char *copy, *base;
	uint8_t *key = NULL;
	int dirfd, r;

	if (!path)
		return -EINVAL;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	base = strrchr(copy, '/');
	if (base) {
		*base++ = '\0';
		dirfd = open(copy[0] ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		base = copy;
		dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dirfd < 0) {
		r = -errno;
		goto out;
	}
	r = key_create_at(dirfd, base, &key);
	close(dirfd);
	key_free(key);
out:
	free(copy);
	return r;
}
