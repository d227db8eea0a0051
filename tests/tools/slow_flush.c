/* SPDX-License-Identifier: MIT */
/*
 * A benchmark aid, preloaded into the daemon (LD_PRELOAD): every fsync(2)
 * and fdatasync(2) takes $SLOW_FLUSH_US microseconds longer, as on a disk
 * whose cache flush is slow (a SATA SSD's flush takes 1-5 ms; this VM's
 * virtual disk answers one in ~0.1 ms).  The real call is still made, so
 * durability is what it was.  Used by tests/bench/rotations and tests/bats/stress.bats.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void flush_delay(void)
{
	const char *us = getenv("SLOW_FLUSH_US");
	long n = us ? strtol(us, NULL, 10) : 0;
	if (n > 0) {
		struct timespec ts = { n / 1000000, (n % 1000000) * 1000 };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	flush_delay();
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	flush_delay();
	return real(fd);
}
