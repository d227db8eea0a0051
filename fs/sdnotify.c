/* SPDX-License-Identifier: MIT */
/*
 * The systemd notify protocol (Type=notify), through libsystemd.  READY=1
 * is sent only once the mount answers: a thread stats the mountpoint,
 * which needs the FUSE loop to have answered INIT and GETATTR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "fs.h"

int sd_notify_send(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EINVAL;
	int r = sd_notify(0, msg);
	return r < 0 ? r : 0;
}

static void *ready_main(void *arg)
{
	struct fs *fs = arg;
	struct stat st;
	if (stat(fs->opt.mountpoint, &st) == 0) {
		sd_notify_send("READY=1\nSTATUS=Serving %zu secrets from %s on %s", fs->by_id_count,
		               fs->opt.store_dir, fs->opt.mountpoint);
	} else {
		log_error("the mount on %s does not answer: %s", fs->opt.mountpoint,
		          strerrordesc_np(errno));
	}
	return NULL;
}

void sd_notify_ready_when_mounted(struct fs *fs)
{
	if (!getenv("NOTIFY_SOCKET"))
		return;
	pthread_t t;
	if (pthread_create(&t, NULL, ready_main, fs) == 0)
		pthread_detach(t);
}
