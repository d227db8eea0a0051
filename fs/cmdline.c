/* SPDX-License-Identifier: MIT */
/* The mount command line.  Every option is documented in cmdline_usage(),
 * the README and secretsfs(1). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

void cmdline_usage(FILE *out)
{
	fprintf(out,
	        "usage: secretsfs init DIR\n"
	        "       secretsfs init etcd://HOST:PORT[,HOST:PORT...]/PREFIX -o key=FILE\n"
	        "       secretsfs DIR MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
	        "       secretsfs etcd://HOST:PORT[,...]/PREFIX MOUNTPOINT -o key=FILE,attrs=FILE "
	        "[...]\n"
	        "       secretsfs redpanda:https://DATAPLANE-URL MOUNTPOINT -o credentials=FILE "
	        "[...]\n"
	        "\n"
	        "Serves the Secrets Store in DIR as files: one directory per scope, one file\n"
	        "per secret, labels as user.tag.* extended attributes.\n"
	        "\n"
	        "commands:\n"
	        "  init DIR               create an empty store and a new key file DIR/key (0400)\n"
	        "  init etcd://…/PREFIX -o key=FILE\n"
	        "                         create an empty store under PREFIX of an etcd cluster\n"
	        "                         (refused if PREFIX holds keys), sealed with the key in\n"
	        "                         FILE (a new one, 0400, if FILE does not exist)\n"
	        "\n"
	        "options:\n"
	        "  -o key=FILE            the store key (default: $CREDENTIALS_DIRECTORY/%s\n"
	        "                         when systemd passes it, else DIR/key); refused if\n"
	        "                         group or others can read it\n"
	        "  -o keep_versions=N     versions of each value the store keeps (default 5)\n"
	        "  -o attrs=FILE          where chmod and chown of secrets and scopes are kept\n"
	        "                         across remounts (default: DIR/host-attrs)\n"
	        "  -o credentials=FILE    Redpanda Cloud: the OAuth client, lines client_id=…\n"
	        "                         and client_secret=… (default:\n"
	        "                         $CREDENTIALS_DIRECTORY/redpanda.credentials); refused\n"
	        "                         if group or others can read it\n"
	        "  -o token_url=URL       Redpanda Cloud: the OAuth token endpoint (default\n"
	        "                         https://auth.prd.cloud.redpanda.com/oauth/token)\n"
	        "  -o audience=NAME       Redpanda Cloud: the token's audience (default\n"
	        "                         cloudv2-production.redpanda.cloud)\n"
	        "  -o cacert=FILE         Redpanda Cloud: PEM CA bundle for a private CA\n"
	        "                         (default: the system's CAs)\n"
	        "  -o poll=SECONDS        Redpanda Cloud: list the store every SECONDS for\n"
	        "                         changes made elsewhere (default 30; 0: never)\n"
	        "  -o ro                  read-only: every change is refused with EROFS\n"
	        "  -o reseal_digest       accept a store.db whose rows no longer match its\n"
	        "                         authenticated digest (rows removed or repaired by\n"
	        "                         hand), as it is: accepts any rollback in it too\n"
	        "  -o allow_other         let users other than the mounter in (turns on\n"
	        "                         default_permissions: the kernel checks modes)\n"
	        "  -o default_permissions let the kernel check owner and mode bits\n"
	        "  -o uid=N,gid=N         owner of every directory and file (default: root)\n"
	        "  -o dir_mode=OCTAL      mode of the scope directories (default 0700)\n"
	        "  -o file_mode=OCTAL     mode of secret files (default 0600, 0400 with ro)\n"
	        "  -o owner=SCOPE:USER[:GROUP]\n"
	        "                         owner of a scope directory and of its files\n"
	        "  -o unit=SCOPE:PATTERN  only processes of systemd units matching PATTERN\n"
	        "                         (fnmatch) open files of SCOPE; repeatable\n"
	        "  -o cgroup=SCOPE:PATH   only processes in cgroup PATH (or below) open\n"
	        "                         files of SCOPE; repeatable\n"
	        "  -o root_bypass         root is not held to unit= and cgroup= rules\n"
	        "  -o audit=WHERE         the audit trail: log (default, with the daemon's\n"
	        "                         log), syslog (authpriv), an absolute file path, off\n"
	        "  -o run_as=USER         mount as root, then serve as USER (with no other\n"
	        "                         privilege than locked memory); the mounting process\n"
	        "                         stays to unmount when the server stops or dies\n"
	        "  -o allow_unlocked      serve even when memory cannot be locked (no\n"
	        "                         CAP_IPC_LOCK, low LimitMEMLOCK=): plaintext may\n"
	        "                         then be swapped out.  Without it the mount is\n"
	        "                         refused, and so is an open that finds no locked memory\n"
	        "  -o fast                reads from the kernel's page cache, with no round\n"
	        "                         trip to the daemon per open: each version is an inode\n"
	        "                         of its own.  Gives up: per-open audit, unit= and\n"
	        "                         cgroup= rules, plaintext kept out of the page cache,\n"
	        "                         and writes in place (values change by mv of a\n"
	        "                         scratch file only)\n"
	        "  -f                     stay in the foreground, log to stderr\n"
	        "  -d                     debug: -f, and log every FUSE request\n"
	        "  -s                     single-threaded\n"
	        "  -h, --help             this text\n"
	        "  -V, --version          the version\n"
	        "fstab options (_netdev, nofail, noauto, auto, defaults, rw, x-*) are accepted\n"
	        "and ignored.\n",
	        CREDENTIAL_NAME);
}

int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("secretsfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static bool parse_uint(const char *s, int base, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || end == s || *end || v > max || *s == '-')
		return false;
	*ret = v;
	return true;
}

/* One -o option: ours, ignored (fstab), or FUSE's. */
static int parse_option(struct cmdline *c, const char *o)
{
	unsigned long v;
	if (strncmp(o, "key=", 4) == 0) {
		free(c->opt.key_file);
		c->opt.key_file = strdup(o + 4);
	} else if (strncmp(o, "credentials=", 12) == 0 || strncmp(o, "token_url=", 10) == 0 ||
	           strncmp(o, "audience=", 9) == 0 || strncmp(o, "cacert=", 7) == 0) {
		char **slot = o[0] == 'c' && o[1] == 'r' ? &c->opt.credentials
		            : o[0] == 't'                ? &c->opt.token_url
		            : o[0] == 'a'                ? &c->opt.audience
		                                         : &c->opt.cacert;
		free(*slot);
		*slot = strdup(strchr(o, '=') + 1);
		if (!*slot)
			return fail("out of memory");
	} else if (strncmp(o, "poll=", 5) == 0) {
		if (!parse_uint(o + 5, 10, 86400, &v))
			return fail("poll must be 0 (never) to 86400 seconds, not '%s'", o + 5);
		c->opt.poll_s = (int)v;
	} else if (strncmp(o, "attrs=", 6) == 0) {
		free(c->opt.attrs_file);
		c->opt.attrs_file = strdup(o + 6);
	} else if (strncmp(o, "keep_versions=", 14) == 0) {
		if (!parse_uint(o + 14, 10, 1000, &v) || v == 0)
			return fail("keep_versions must be 1 to 1000, not '%s'", o + 14);
		c->opt.keep_versions = (unsigned)v;
	} else if (strncmp(o, "uid=", 4) == 0) {
		if (!parse_uint(o + 4, 10, UINT_MAX - 1, &v))
			return fail("uid must be a number, not '%s'", o + 4);
		c->opt.uid = (uid_t)v;
	} else if (strncmp(o, "gid=", 4) == 0) {
		if (!parse_uint(o + 4, 10, UINT_MAX - 1, &v))
			return fail("gid must be a number, not '%s'", o + 4);
		c->opt.gid = (gid_t)v;
	} else if (strncmp(o, "dir_mode=", 9) == 0) {
		if (!parse_uint(o + 9, 8, 07777, &v))
			return fail("dir_mode must be octal, not '%s'", o + 9);
		c->opt.dir_mode = (mode_t)v;
	} else if (strncmp(o, "file_mode=", 10) == 0) {
		if (!parse_uint(o + 10, 8, 07777, &v))
			return fail("file_mode must be octal, not '%s'", o + 10);
		c->opt.file_mode = (mode_t)v;
		c->file_mode_set = true;
	} else if (strncmp(o, "owner=", 6) == 0 || strncmp(o, "unit=", 5) == 0 ||
	           strncmp(o, "cgroup=", 7) == 0) {
		const char *why = "out of memory";
		const char *arg = strchr(o, '=') + 1;
		int r = o[0] == 'o' ? policy_add_owner(&c->policy, arg, &why)
		      : o[0] == 'u' ? policy_add_unit(&c->policy, arg, &why)
		                    : policy_add_cgroup(&c->policy, arg, &why);
		if (r < 0)
			return fail("-o %s: %s", o, why);
	} else if (strcmp(o, "fast") == 0) {
		c->opt.fast = true;
	} else if (strncmp(o, "run_as=", 7) == 0) {
		free(c->opt.run_as);
		c->opt.run_as = strdup(o + 7);
		if (!c->opt.run_as)
			return fail("out of memory");
	} else if (strcmp(o, "allow_unlocked") == 0) {
		c->opt.allow_unlocked = true;
	} else if (strcmp(o, "root_bypass") == 0) {
		c->policy.root_bypass = true;
	} else if (strncmp(o, "audit=", 6) == 0) {
		free(c->audit);
		c->audit = strdup(o + 6);
	} else if (strcmp(o, "ro") == 0) {
		c->opt.read_only = true;
	} else if (strcmp(o, "reseal_digest") == 0) {
		c->opt.reseal_digest = true;
	} else if (strcmp(o, "allow_other") == 0) {
		c->opt.allow_other = true;
		c->opt.default_permissions = true; /* else every user could read all */
	} else if (strcmp(o, "default_permissions") == 0) {
		c->opt.default_permissions = true;
	} else if (strcmp(o, "rw") == 0 || strcmp(o, "_netdev") == 0 || strcmp(o, "nofail") == 0 ||
	           strcmp(o, "noauto") == 0 || strcmp(o, "auto") == 0 ||
	           strcmp(o, "defaults") == 0 || strcmp(o, "user") == 0 ||
	           strcmp(o, "users") == 0 || strcmp(o, "nouser") == 0 ||
	           strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0) {
		/* for mount(8) and systemd, not for us */
	} else {
		if (fuse_opt_add_arg(&c->fuse_args, "-o") < 0 ||
		    fuse_opt_add_arg(&c->fuse_args, o) < 0)
			return fail("out of memory");
	}
	return 0;
}

int cmdline_parse_options(struct cmdline *c, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		return fail("out of memory");
	int r = 0;
	for (char *o = strtok_r(copy, ",", &save); o && r == 0; o = strtok_r(NULL, ",", &save))
		r = parse_option(c, o);
	free(copy);
	return r;
}

/* Called as mount.secretsfs or mount.fuse.secretsfs, mount(8) passes its
 * own flags: -f fake (do nothing), -n no mtab, -s sloppy, -v verbose. */
static bool called_by_mount(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	return strncmp(base ? base + 1 : argv0, "mount.", 6) == 0;
}

int cmdline_parse(struct cmdline *c, int argc, char **argv)
{
	const char *positional[2] = { 0 };
	int npos = 0;
	bool helper = called_by_mount(argv[0]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (helper &&
		    (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0 || strcmp(a, "-v") == 0)) {
			/* nothing for us */
		} else if (helper && strcmp(a, "-f") == 0) {
			c->fake = true;
		} else if (strcmp(a, "-o") == 0) {
			if (++i == argc)
				return fail("-o needs options");
			r = cmdline_parse_options(c, argv[i]);
		} else if (strncmp(a, "-o", 2) == 0) {
			r = cmdline_parse_options(c, a + 2);
		} else if (strcmp(a, "-f") == 0) {
			c->opt.foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			c->opt.foreground = c->opt.debug = true;
		} else if (strcmp(a, "-s") == 0) {
			c->single_thread = true;
		} else if (a[0] == '-' && a[1]) {
			return fail("unknown option %s (see secretsfs --help)", a);
		} else if (npos < 2) {
			positional[npos++] = a;
		} else {
			return fail("too many arguments: %s (see secretsfs --help)", a);
		}
		if (r)
			return r;
	}
	if (npos < 2)
		return fail("need a store directory and a mountpoint (see secretsfs --help)");
	/* A URL names a remote store (main.c chooses); anything else is the
	 * embedded store's directory. */
	bool url = strstr(positional[0], "://") || strncmp(positional[0], "redpanda:", 9) == 0;
	c->opt.store_dir = url ? strdup(positional[0]) : realpath(positional[0], NULL);
	if (!c->opt.store_dir)
		return fail("store %s: %s", positional[0], strerrordesc_np(errno));
	c->opt.mountpoint = strdup(positional[1]);
	/* An etcd store has no directory of its own to keep its key or
	 * host-attrs beside it. */
	if (strncmp(positional[0], "etcd://", 7) == 0 && !c->opt.key_file &&
	    !getenv("CREDENTIALS_DIRECTORY"))
		return fail("%s: an etcd store needs its key: -o key=FILE", positional[0]);
	if (strncmp(positional[0], "etcd://", 7) == 0 && !c->opt.attrs_file)
		return fail("%s: an etcd store needs -o attrs=FILE (where chmod and chown are "
		            "kept on this host)",
		            positional[0]);
	if (strncmp(positional[0], "redpanda:", 9) == 0 && !c->opt.credentials) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (!dir)
			return fail("%s: a Redpanda Cloud store needs its OAuth client: -o "
			            "credentials=FILE (lines client_id=… and client_secret=…)",
			            positional[0]);
		if (asprintf(&c->opt.credentials, "%s/redpanda.credentials", dir) < 0)
			return fail("out of memory");
	}
	if (!url && !c->opt.attrs_file &&
	    asprintf(&c->opt.attrs_file, "%s/host-attrs", c->opt.store_dir) < 0)
		return fail("out of memory");
	if (c->opt.read_only && !c->file_mode_set)
		c->opt.file_mode = 0400;
	for (int sc = 0; sc < SCOPE_COUNT && c->opt.fast; sc++)
		if (c->policy.scope[sc].nunits || c->policy.scope[sc].ncgroups)
			return fail("-o fast cannot enforce unit= or cgroup= rules: the kernel "
			            "no longer asks the daemon at open");
	return 0;
}

void cmdline_free(struct cmdline *c)
{
	free(c->opt.store_dir);
	free(c->opt.mountpoint);
	free(c->opt.key_file);
	free(c->opt.attrs_file);
	free(c->opt.credentials);
	free(c->opt.token_url);
	free(c->opt.audience);
	free(c->opt.cacert);
	free(c->opt.run_as);
	free(c->audit);
	policy_clear(&c->policy);
	fuse_opt_free_args(&c->fuse_args);
}
