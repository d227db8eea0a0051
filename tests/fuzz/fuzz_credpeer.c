/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the peer address of a connection to the credential socket
 * (fs/credpeer.c).  Any local process that may connect chooses its own
 * abstract address, so this parser takes hostile input in production.
 * Checks: what it accepts is whole (a unit with a '.', no '/'; an ID with
 * no '/' or control character), found in the input, and never longer
 * than the address.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "credpeer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	/* the input is the name after the leading NUL; the first byte, when
	 * it is 0xff, makes it a path address instead */
	size_t room = sizeof(sa.sun_path) - 1;
	size_t n = size < room ? size : room;
	memcpy(sa.sun_path + 1, data, n);
	if (size && data[0] == 0xff)
		sa.sun_path[0] = '/';
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	struct credpeer p;
	if (credpeer_parse(&sa, len, &p) != 0)
		return 0;
	size_t ul = strlen(p.unit), il = strlen(p.id);
	assert(ul > 0 && il > 0 && ul + il + 7 < n + 1);
	assert(strchr(p.unit, '.') && !strchr(p.unit, '/') && !strchr(p.id, '/'));
	for (size_t i = 0; i < il; i++)
		assert((unsigned char)p.id[i] >= 0x20 && p.id[i] != 0x7f);
	assert(memmem(sa.sun_path + 1, n, p.unit, ul) && memmem(sa.sun_path + 1, n, p.id, il));
	/* the ID ends the address */
	assert(memcmp(sa.sun_path + 1 + n - il, p.id, il) == 0);
	return 0;
}
