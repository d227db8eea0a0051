/* SPDX-License-Identifier: MIT */
/*
 * A test aid, preloaded into `secretsfs init` (LD_PRELOAD): plays the
 * user who may write to the store directory and swaps in a key they know.
 * At the first fsync(2) of a directory, $SWAP_KEY_FROM is renamed onto
 * $SWAP_KEY_TO (once), as if the attacker had won the race between init
 * writing the key and using it.  Used by tests/bats/hardening.bats.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int done;

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	const char *from = getenv("SWAP_KEY_FROM"), *to = getenv("SWAP_KEY_TO");
	struct stat st;
	if (from && to && !done && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(to, F_OK) == 0) {
		done = 1;
		rename(from, to);
	}
	return real(fd);
}
