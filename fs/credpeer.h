/* SPDX-License-Identifier: MIT */
/*
 * The address systemd connects from when it loads a credential from an
 * AF_UNIX socket (LoadCredential=ID:/PATH/TO/SOCKET): an abstract name
 *
 *     \0<1..16 hex digits>/unit/<unit name>/<credential ID>
 *
 * not NUL-terminated (its length is the address length).  What it says is
 * a claim: the credential socket (credsock.c) checks the unit against the
 * connecting process's own cgroup before believing it.
 */
#ifndef SECRETSFS_CREDPEER_H
#define SECRETSFS_CREDPEER_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A unit name is at most 255 bytes (systemd's UNIT_NAME_MAX less its NUL);
 * a credential ID, a file name, at most 255 too.  Both fit: the whole
 * address is at most 108 bytes. */
#define CREDPEER_NAME_MAX 255

struct credpeer {
	char unit[CREDPEER_NAME_MAX + 1]; /* "ai-gateway.service" */
	char id[CREDPEER_NAME_MAX + 1];   /* "OPENAI_API_KEY" */
};

/* Reads the unit and the credential ID from a peer address as accept()
 * or getpeername() gave it (len: the address length they returned).
 * 0, or -EPROTO when it is not systemd's credential address: not
 * abstract, no hex prefix, no "/unit/", an empty or malformed unit name
 * (allowed: [A-Za-z0-9:_.\\@-], with a '.'), an empty ID or one with a
 * '/', a NUL or a control character in it. */
int credpeer_parse(const struct sockaddr_un *sa, socklen_t len, struct credpeer *ret);

#endif
