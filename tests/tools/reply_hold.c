/* SPDX-License-Identifier: MIT */
/*
 * A test aid, preloaded into the daemon (LD_PRELOAD): holds one positive
 * lookup reply for a while, so that a test can make something else happen
 * to the inode while the kernel waits for that reply.  While the file
 * $REPLY_HOLD_TRIGGER exists, the $REPLY_HOLD_NTH (default 2) positive
 * entry reply after it appeared is held $REPLY_HOLD_MS (default 300) ms.
 * Nothing else changes.  Used by tests/bats/identity.bats.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

static int seen;

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 10) : dflt;
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	static int (*real)(fuse_req_t, const struct fuse_entry_param *);
	if (!real)
		real = (int (*)(fuse_req_t, const struct fuse_entry_param *))dlsym(
		    RTLD_NEXT, "fuse_reply_entry");
	const char *trigger = getenv("REPLY_HOLD_TRIGGER");
	if (trigger && access(trigger, F_OK) == 0) {
		if (e->ino &&
		    __atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST) == env_long("REPLY_HOLD_NTH", 2))
			usleep((useconds_t)env_long("REPLY_HOLD_MS", 300) * 1000);
	} else {
		__atomic_store_n(&seen, 0, __ATOMIC_SEQ_CST);
	}
	return real(req, e);
}
