/* SPDX-License-Identifier: MIT */
/*
 * The store key on disk: a file of exactly STORE_KEY_BYTES random bytes,
 * readable by its owner only.
 */
#ifndef SECRETSFS_KEYFILE_H
#define SECRETSFS_KEYFILE_H

#include <stdint.h>

/* Reads the key at path into locked, read-only memory (*ret_key, free
 * with key_free()).  Symlinks are not followed.
 *   -ENOENT  no such file
 *   -EPERM   the file is accessible by group or others (mode & 077)
 *   -EINVAL  not a regular file of exactly STORE_KEY_BYTES bytes */
int key_load(const char *path, uint8_t **ret_key);

/* Wipes and frees a key from key_load().  Accepts NULL; returns NULL. */
uint8_t *key_free(uint8_t *key);

/* Creates path (mode 0400, must not exist: -EEXIST) holding
 * STORE_KEY_BYTES fresh random bytes, synced to disk. */
int key_create(const char *path);

#endif
