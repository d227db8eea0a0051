/* SPDX-License-Identifier: MIT */
/*
 * How the etcd store reaches its cluster and logs in (store_remote in
 * store.h): etcd+https:// with a CA (-o cacert=) and a client certificate
 * (-o cert=, certkey=), and etcd auth (-o etcd_user=, the password from a
 * file).  The files are checked here, with a one-line reason a person can
 * act on: the CA and certificate must be readable regular files; the
 * certificate's key and the password file are held to ownedfile.h's rule
 * (owned by this uid, nothing for group and others, no symlink).  The
 * password is read into locked memory, handed to etcd_kv_authenticate
 * (which keeps its own locked copy for re-logins) and wiped; it is never
 * in a log line or a reason.
 */
#ifndef SECRETSFS_ETCD_CONN_H
#define SECRETSFS_ETCD_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "etcd_kv.h"
#include "store.h"

/* The password file systemd's LoadCredential= passes by default. */
#define ETCD_PASSWORD_CREDENTIAL "etcd.password"

/* Opens the client for these endpoints (all http:// or all https://) and
 * logs in if rem->user.  0, or -errno with the reason in why: -EINVAL (an
 * option that does not fit: TLS files for http://, a cert without its
 * key, a password without a user), -ENOENT/-EACCES/-EPERM (a file),
 * -EACCES (etcd refused the login), -EPROTO (TLS failed).  A login that
 * found no endpoint reachable is not an error here: etcd_kv logs in once
 * etcd answers, and the caller's first call says what happened. */
int etcd_conn_open(const char *const *endpoints, size_t n, const struct store_remote *rem,
                   struct etcd_kv **ret_kv, char *why, size_t why_size);

#endif
