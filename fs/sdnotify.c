/* SPDX-License-Identifier: MIT */
/*
 * The systemd notify protocol (Type=notify), without libsystemd: one
 * datagram to $NOTIFY_SOCKET.  READY=1 is sent only once the mount
 * answers: a thread stats the mountpoint, which needs the FUSE loop to
 * have answered INIT and GETATTR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs.h"

int sd_notify_send(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EINVAL;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t w = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	int r = w < 0 ? -errno : 0;
	close(fd);
	return r;
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
