/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "etcd_conn.h"
#include "ownedfile.h"

#define PASSWORD_MAX 256 /* etcd_kv's CREDENTIAL_MAX */
#define LOGIN_TIMEOUT_MS 10000

/* A CA bundle or certificate: public, may be a symlink (distributions
 * link their CA files), must be a readable regular file. */
static int check_public(const char *what, const char *path, char *why, size_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int r = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (fd >= 0)
		close(fd);
	if (r == -EINVAL)
		snprintf(why, size, "%s %s is not a regular file", what, path);
	else if (r < 0)
		snprintf(why, size, "%s %s: %s", what, path, strerrordesc_np(-r));
	return r;
}

/* A private file (the certificate's key, the password): ownedfile.h's rule.
 * Returns the open fd, or -errno with why. */
static int open_private(const char *what, const char *path, char *why, size_t size)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		owned_open_reason(e, what, path, why, size);
		return -e;
	}
	int r = owned_fd_check(fd, 077, what, path, why, size);
	if (r < 0) {
		if (r != -EPERM)
			snprintf(why, size, "%s %s: %s", what, path, strerrordesc_np(-r));
		close(fd);
		return r;
	}
	return fd;
}

/* The first line of the password file, into locked memory (*ret, free
 * with sodium_free: wiped). */
static int read_password(const char *path, char **ret, char *why, size_t size)
{
	int fd = open_private("etcd password file", path, why, size);
	if (fd < 0)
		return fd;
	char *p = secret_locked_alloc(PASSWORD_MAX + 2);
	size_t got = 0;
	int r = p ? 0 : -ENOMEM;
	while (r == 0 && got < PASSWORD_MAX + 1) {
		ssize_t n = read(fd, p + got, PASSWORD_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(p, '\n', got))
			break;
	}
	close(fd);
	if (r < 0) {
		snprintf(why, size, "etcd password file %s: %s", path, strerrordesc_np(-r));
		sodium_free(p);
		return r;
	}
	p[got] = '\0';
	const char *nl = memchr(p, '\n', got);
	size_t len = nl ? (size_t)(nl - p) : got;
	if (len && p[len - 1] == '\r')
		len--;
	if (len > PASSWORD_MAX) {
		snprintf(why, size, "etcd password file %s: its first line is longer than %d bytes",
		         path, PASSWORD_MAX);
		r = -EINVAL;
	} else if (len == 0 || memchr(p, '\0', len)) {
		snprintf(why, size, "etcd password file %s: its first line is %s", path,
		         len ? "not text" : "empty");
		r = -EINVAL;
	}
	if (r < 0) {
		sodium_free(p);
		return r;
	}
	sodium_memzero(p + len, got + 1 - len);
	*ret = p;
	return 0;
}

static int check_options(bool https, const struct store_remote *rem, char *why, size_t size)
{
	if (!https && (rem->cacert || rem->cert || rem->certkey)) {
		snprintf(why, size,
		         "-o cacert=, cert= and certkey= are for etcd+https:// stores "
		         "(etcd:// is plain http)");
		return -EINVAL;
	}
	if (!rem->cert != !rem->certkey) {
		snprintf(why, size, "-o %s= needs -o %s= too (a client certificate and its key)",
		         rem->cert ? "cert" : "certkey", rem->cert ? "certkey" : "cert");
		return -EINVAL;
	}
	if (rem->password_file && !rem->user) {
		snprintf(why, size, "-o etcd_password= needs -o etcd_user=NAME");
		return -EINVAL;
	}
	if (rem->user && !rem->password_file) {
		snprintf(why, size,
		         "-o etcd_user=%s needs its password: -o etcd_password=FILE, or the "
		         "systemd credential %s",
		         rem->user, ETCD_PASSWORD_CREDENTIAL);
		return -EINVAL;
	}
	int r = 0;
	if (rem->cacert)
		r = check_public("CA file (-o cacert=)", rem->cacert, why, size);
	if (r == 0 && rem->cert)
		r = check_public("client certificate (-o cert=)", rem->cert, why, size);
	if (r == 0 && rem->certkey) {
		r = open_private("client certificate key (-o certkey=)", rem->certkey, why, size);
		if (r >= 0) {
			close(r);
			r = 0;
		}
	}
	return r;
}

int etcd_conn_open(const char *const *endpoints, size_t n, const struct store_remote *rem,
                   struct etcd_kv **ret_kv, char *why, size_t why_size)
{
	static const struct store_remote none = { 0 };
	struct etcd_kv *kv = NULL;
	char *password = NULL;
	if (why && why_size)
		why[0] = '\0';
	if (!rem)
		rem = &none;
	bool https = n && strncmp(endpoints[0], "https://", 8) == 0;
	int r = check_options(https, rem, why, why_size);
	if (r == 0 && rem->user)
		r = read_password(rem->password_file, &password, why, why_size);
	if (r == 0) {
		struct etcd_kv_config cfg = {
			.endpoints = endpoints,
			.n_endpoints = n,
			.cacert = rem->cacert,
			.cert = rem->cert,
			.certkey = rem->certkey,
			.connect_timeout_ms = 2000,
			.attempt_timeout_ms = 4000,
			.retries = 3,
			.backoff_ms = 100,
		};
		r = etcd_kv_open(&cfg, &kv);
		if (r < 0)
			snprintf(why, why_size, "cannot set up the etcd client: %s",
			         strerrordesc_np(-r));
	}
	if (r == 0 && rem->user) {
		struct http_status st = { 0 };
		r = etcd_kv_authenticate(kv, rem->user, password, http_deadline(LOGIN_TIMEOUT_MS),
		                         &st);
		if (r == -EACCES)
			snprintf(why, why_size,
			         "etcd refused the login of user %s (wrong password in %s, or no "
			         "such user): %s",
			         rem->user, rem->password_file, st.reason);
		else if (r == -EPROTO)
			snprintf(why, why_size, "TLS with etcd failed: %s", st.reason);
		else if (r == -EINVAL || r == -ENOMEM)
			snprintf(why, why_size, "cannot log in to etcd as %s: %s", rem->user,
			         st.reason[0] ? st.reason : strerrordesc_np(-r));
		else
			r = 0; /* etcd away: logged in when it is back (etcd_kv.h) */
	}
	sodium_free(password);
	if (r < 0) {
		etcd_kv_free(kv);
		return r;
	}
	*ret_kv = kv;
	return 0;
}
