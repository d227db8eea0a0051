/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "lockedbuf.h"
#include "store.h"

static int reserve(struct lockedbuf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	/* sodium_malloc maps whole pages: grow in page-sized steps. */
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	uint8_t *p = secret_locked_alloc(cap);
	if (!p)
		return -ENOMEM;
	if (b->len)
		memcpy(p, b->p, b->len);
	sodium_free(b->p); /* wipes */
	b->p = p;
	b->cap = cap;
	return 0;
}

int lockedbuf_resize(struct lockedbuf *b, size_t len)
{
	int r = reserve(b, len);
	if (r < 0)
		return r;
	if (len > b->len)
		memset(b->p + b->len, 0, len - b->len);
	else if (b->p)
		sodium_memzero(b->p + len, b->len - len);
	b->len = len;
	return 0;
}

int lockedbuf_write(struct lockedbuf *b, const void *data, size_t size, size_t off)
{
	if (size == 0)
		return 0;
	if (off + size > b->len) {
		int r = lockedbuf_resize(b, off + size);
		if (r < 0)
			return r;
	}
	memcpy(b->p + off, data, size);
	return 0;
}

int lockedbuf_assign(struct lockedbuf *b, const void *data, size_t size)
{
	int r = lockedbuf_resize(b, 0);
	if (r < 0)
		return r;
	return lockedbuf_write(b, data, size, 0);
}

void lockedbuf_clear(struct lockedbuf *b)
{
	sodium_free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
