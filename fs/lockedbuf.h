/* SPDX-License-Identifier: MIT */
/* A growable byte buffer in locked, guarded memory (sodium_malloc), wiped
 * whenever it is resized or freed.  Holds plaintext being written. */
#ifndef SECRETSFS_LOCKEDBUF_H
#define SECRETSFS_LOCKEDBUF_H

#include <stddef.h>
#include <stdint.h>

struct lockedbuf {
	uint8_t *p; /* NULL until the first byte is stored */
	size_t len;
	size_t cap;
};

/* Sets the length to len (new bytes are zero); -ENOMEM. */
int lockedbuf_resize(struct lockedbuf *b, size_t len);
/* Stores size bytes at off, growing the buffer; -ENOMEM. */
int lockedbuf_write(struct lockedbuf *b, const void *data, size_t size, size_t off);
int lockedbuf_assign(struct lockedbuf *b, const void *data, size_t size);
void lockedbuf_clear(struct lockedbuf *b);

#endif
