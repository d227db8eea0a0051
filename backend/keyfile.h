/* SPDX-License-Identifier: MIT */
/*
 * The store key on disk: a file of exactly STORE_KEY_BYTES random bytes,
 * readable by its owner only.
 */
#ifndef SECRETSFS_KEYFILE_H
#define SECRETSFS_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the key at path into locked, read-only memory (*ret_key, free
 * with key_free()).  Symlinks are not followed.
 *   -ENOENT  no such file
 *   -EACCES  the file is owned by another uid than the daemon's euid
 *   -EPERM   the file is accessible by group or others (mode & 077)
 *   -EINVAL  not a regular file of exactly STORE_KEY_BYTES bytes
 * key_load_why also writes a one-line reason into why for -EACCES and
 * -EPERM (ownedfile.h), and leaves it empty otherwise. */
int key_load(const char *path, uint8_t **ret_key);
int key_load_why(const char *path, uint8_t **ret_key, char *why, size_t why_size);

/* Wipes and frees a key from key_load().  Accepts NULL; returns NULL. */
uint8_t *key_free(uint8_t *key);

/* Creates NAME in the directory dirfd (mode 0400, O_EXCL | O_NOFOLLOW: it
 * must not exist, -EEXIST) holding STORE_KEY_BYTES fresh random bytes,
 * synced to disk with the directory, and hands back those bytes (*ret_key,
 * locked and read-only): the key is never read back by its name, so
 * nobody who may write to the directory can swap in one they know.
 * -ESTALE if the name no longer holds the file made (replaced meanwhile;
 * the key is not handed back). */
int key_create_at(int dirfd, const char *name, uint8_t **ret_key);
/* The same by path (the directory opened once); the key is not kept. */
int key_create(const char *path);

#endif
