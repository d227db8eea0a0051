/* SPDX-License-Identifier: MIT */
/*
 * secretsfs: the command line.
 *
 *   secretsfs init DIR
 *   secretsfs DIR MOUNTPOINT [-o opt,...] [-f] [-d] [-s]
 *
 * Mounting is done in a child that reports back to the parent, so every
 * error (not a store, wrong key, mountpoint busy) reaches the terminal
 * before the parent exits, and the store is opened only in the process
 * that serves it (SQLite connections must not cross a fork).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "fs.h"
#include "crypto.h"
#include "embedded.h"
#include "keyfile.h"

#define KEY_FILE_NAME "key"
#define CREDENTIAL_NAME "secretsfs.key"

static void usage(FILE *out)
{
	fprintf(out,
"usage: secretsfs init DIR\n"
"       secretsfs DIR MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
"\n"
"Serves the Secrets Store in DIR as files: one directory per scope, one file\n"
"per secret, labels as user.tag.* extended attributes.\n"
"\n"
"commands:\n"
"  init DIR               create an empty store and a new key file DIR/key (0400)\n"
"\n"
"options:\n"
"  -o key=FILE            the store key (default: $CREDENTIALS_DIRECTORY/%s\n"
"                         when systemd passes it, else DIR/key); refused if\n"
"                         group or others can read it\n"
"  -o keep_versions=N     versions of each value the store keeps (default 5)\n"
"  -o ro                  read-only: every change is refused with EROFS\n"
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
"  -f                     stay in the foreground, log to stderr\n"
"  -d                     debug: -f, and log every FUSE request\n"
"  -s                     single-threaded\n"
"  -h, --help             this text\n"
"  -V, --version          the version\n"
"fstab options (_netdev, nofail, noauto, auto, defaults, rw, x-*) are accepted\n"
"and ignored.\n",
	        CREDENTIAL_NAME);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("secretsfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static int cmd_init(const char *dir)
{
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	int r = embedded_store_init(dir);
	if (r == -EEXIST)
		return fail("%s already holds a store", dir);
	if (r < 0)
		return fail("cannot create a store in %s: %s", dir, strerrordesc_np(-r));
	printf("created an empty store in %s\n"
	       "its key is %s/%s (mode 0400): without it no value can be read; keep a copy "
	       "somewhere safe\n", dir, dir, KEY_FILE_NAME);
	return 0;
}

/* --- options --- */

struct cmdline {
	struct fs_options opt;
	struct policy policy;
	char *audit;
	struct fuse_args fuse_args;  /* what goes to fuse_session_new */
	bool single_thread;
	bool default_permissions;
	bool file_mode_set;
};

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
	} else if (strcmp(o, "root_bypass") == 0) {
		c->policy.root_bypass = true;
	} else if (strncmp(o, "audit=", 6) == 0) {
		free(c->audit);
		c->audit = strdup(o + 6);
	} else if (strcmp(o, "ro") == 0) {
		c->opt.read_only = true;
	} else if (strcmp(o, "allow_other") == 0) {
		c->opt.allow_other = true;
	} else if (strcmp(o, "default_permissions") == 0) {
		c->default_permissions = true;
	} else if (strcmp(o, "rw") == 0 || strcmp(o, "_netdev") == 0 ||
	           strcmp(o, "nofail") == 0 || strcmp(o, "noauto") == 0 ||
	           strcmp(o, "auto") == 0 || strcmp(o, "defaults") == 0 ||
	           strcmp(o, "user") == 0 || strcmp(o, "users") == 0 ||
	           strcmp(o, "nouser") == 0 || strncmp(o, "x-", 2) == 0 ||
	           strncmp(o, "comment=", 8) == 0) {
		/* for mount(8) and systemd, not for us */
	} else {
		if (fuse_opt_add_arg(&c->fuse_args, "-o") < 0 ||
		    fuse_opt_add_arg(&c->fuse_args, o) < 0)
			return fail("out of memory");
	}
	return 0;
}

static int parse_options(struct cmdline *c, const char *list)
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

static int parse_cmdline(struct cmdline *c, int argc, char **argv)
{
	const char *positional[2] = { 0 };
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (strcmp(a, "-o") == 0) {
			if (++i == argc)
				return fail("-o needs options");
			r = parse_options(c, argv[i]);
		} else if (strncmp(a, "-o", 2) == 0) {
			r = parse_options(c, a + 2);
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
	c->opt.store_dir = realpath(positional[0], NULL);
	if (!c->opt.store_dir)
		return fail("store %s: %s", positional[0], strerrordesc_np(errno));
	c->opt.mountpoint = strdup(positional[1]);
	if (c->opt.read_only && !c->file_mode_set)
		c->opt.file_mode = 0400;
	return 0;
}

/* --- checks before mounting --- */

static char *key_path(const struct cmdline *c)
{
	char *p = NULL;
	if (c->opt.key_file)
		return strdup(c->opt.key_file);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (creds && asprintf(&p, "%s/%s", creds, CREDENTIAL_NAME) >= 0 && access(p, F_OK) == 0)
		return p;
	free(p);
	if (asprintf(&p, "%s/%s", c->opt.store_dir, KEY_FILE_NAME) < 0)
		return NULL;
	return p;
}

/* Is mnt a secretsfs mount (per /proc/self/mounts)? */
static bool is_secretsfs_mount(const char *mnt)
{
	char *want = realpath(mnt, NULL);
	FILE *f = fopen("/proc/self/mounts", "re");
	bool found = false;
	char *line = NULL;
	size_t cap = 0;
	/* realpath fails on a dead mount: compare the absolute path as given. */
	if (!want && mnt[0] == '/')
		want = strdup(mnt);
	while (want && f && getline(&line, &cap, f) > 0) {
		char *save = NULL;
		strtok_r(line, " ", &save);
		const char *dir = strtok_r(NULL, " ", &save);
		const char *type = strtok_r(NULL, " ", &save);
		if (dir && type && strcmp(dir, want) == 0 && strcmp(type, "fuse.secretsfs") == 0)
			found = true;
	}
	free(line);
	free(want);
	if (f)
		fclose(f);
	return found;
}

static int check_mountpoint(const char *mnt)
{
	struct stat st, up;
	char *parent = NULL;
	if (stat(mnt, &st) < 0 && errno == ENOTCONN && is_secretsfs_mount(mnt)) {
		/* A daemon that died (crash, SIGKILL) leaves its mount behind;
		 * a restart must not be blocked by it. */
		if (umount2(mnt, MNT_DETACH) == 0)
			fprintf(stderr, "secretsfs: cleaned up the dead secretsfs mount on %s\n", mnt);
	}
	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			return fail("mountpoint %s is a dead FUSE mount (Transport endpoint is not "
			            "connected); clean it up with: fusermount3 -uz %s", mnt, mnt);
		return fail("mountpoint %s: %s", mnt, strerrordesc_np(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail("mountpoint %s is not a directory", mnt);
	if (asprintf(&parent, "%s/..", mnt) < 0)
		return fail("out of memory");
	int r = stat(parent, &up);
	free(parent);
	if (r == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino))
		return fail("mountpoint %s is busy: something is already mounted there", mnt);
	return 0;
}

static int add_listed(void *userdata, const struct secret_meta *meta)
{
	struct fs *fs = userdata;
	return fs_secret_add(fs, meta) ? 0 : -ENOMEM;
}

/* Opens the store and mirrors its metadata.  Returns 0 or prints why not. */
static int setup_store(struct fs *fs, const struct cmdline *c)
{
	const char *dir = fs->opt.store_dir;
	char *kp = key_path(c);
	uint8_t *key = NULL;
	if (!kp)
		return fail("out of memory");
	int r = key_load(kp, &key);
	if (r == -ENOENT)
		r = fail("key file %s not found (give the key with -o key=FILE)", kp);
	else if (r == -EPERM)
		r = fail("key file %s is open to group or others; make it private: chmod 0400 %s",
		         kp, kp);
	else if (r == -EINVAL)
		r = fail("key file %s is not a %d-byte key", kp, STORE_KEY_BYTES);
	else if (r < 0)
		r = fail("key file %s: %s", kp, strerrordesc_np(-r));
	if (r) {
		free(kp);
		return r;
	}
	struct store_config cfg = {
		.source = dir, .key = key,
		.keep_versions = fs->opt.keep_versions, .read_only = fs->opt.read_only,
	};
	r = fs->ops->open(&cfg, &fs->store);
	key_free(key);
	if (r == -ENOENT)
		r = fail("%s is not a secretsfs store; create one with: secretsfs init %s", dir, dir);
	else if (r == -ENOTDIR)
		r = fail("%s is not a directory", dir);
	else if (r == -EKEYREJECTED)
		r = fail("the key in %s does not open the store in %s (wrong key)", kp, dir);
	else if (r == -EBUSY)
		r = fail("the store in %s is in use by another secretsfs", dir);
	else if (r < 0)
		r = fail("cannot open the store in %s: %s", dir, strerrordesc_np(-r));
	free(kp);
	if (r)
		return r;

	pthread_rwlock_wrlock(&fs->lock);
	struct node *root = fs_node_new(fs, NODE_ROOT);
	struct node *versions = fs_node_new(fs, NODE_VERSIONS);
	bool ok = root && versions;
	if (versions)
		versions->mode = 0500;  /* history: the mount's owner only */
	for (int sc = 0; sc < SCOPE_COUNT && ok; sc++)
		ok = fs_scope_node_new(fs, sc) != NULL;
	r = ok ? fs->ops->list(fs->store, add_listed, fs) : -ENOMEM;
	pthread_rwlock_unlock(&fs->lock);
	if (r < 0)
		return fail("cannot list the store in %s: %s", dir, strerrordesc_np(-r));
	return 0;
}

/* --- running --- */

static void harden(bool debug)
{
	/* No core dumps and no ptrace by other users: plaintext lives in
	 * this process.  -d keeps them for debugging. */
	if (debug)
		return;
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Forks; the parent waits for the child to say it is mounted.  Returns in
 * the child with the pipe's write end in *ret_fd. */
static int background(int *ret_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail("pipe: %s", strerrordesc_np(errno));
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerrordesc_np(errno));
	if (pid > 0) {
		close(p[1]);
		char ok;
		ssize_t n = read(p[0], &ok, 1);
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*ret_fd = p[1];
	return 0;
}

static void detach_stdio(int ready_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (chdir("/") < 0) { /* nothing depends on the cwd */ }
	if (write(ready_fd, "", 1) != 1) { /* the parent is gone: fine */ }
	close(ready_fd);
}

static int serve(struct fs *fs, struct cmdline *c)
{
	struct fuse_args *args = &c->fuse_args;
	char fsopts[PATH_MAX + 64];
	snprintf(fsopts, sizeof(fsopts), "fsname=%s,subtype=secretsfs%s",
	         fs->opt.store_dir, fs->opt.allow_other || c->default_permissions
	                            ? ",default_permissions" : "");
	if (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, fsopts) < 0 ||
	    (fs->opt.allow_other && (fuse_opt_add_arg(args, "-o") < 0 ||
	                             fuse_opt_add_arg(args, "allow_other") < 0)) ||
	    (fs->opt.read_only && (fuse_opt_add_arg(args, "-o") < 0 ||
	                           fuse_opt_add_arg(args, "ro") < 0)) ||
	    (fs->opt.debug && fuse_opt_add_arg(args, "-d") < 0))
		return fail("out of memory");

	fs->se = fuse_session_new(args, &secretsfs_ops, sizeof(secretsfs_ops), fs);
	if (!fs->se)
		return fail("could not start the FUSE session (see the message above)");
	if (fuse_set_signal_handlers(fs->se) < 0)
		return fail("could not set signal handlers");
	if (fuse_session_mount(fs->se, fs->opt.mountpoint) < 0)
		return fail("could not mount on %s", fs->opt.mountpoint);
	fs->notifier = notifier_start(fs->se);
	log_info("mounted the %s store %s on %s", fs->ops->name, fs->opt.store_dir,
	         fs->opt.mountpoint);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("secretsfs %s (libfuse %s, libsodium %s)\n", SECRETSFS_VERSION,
		       fuse_pkgversion(), sodium_version_string());
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "init") == 0) {
		if (argc != 3)
			return fail("usage: secretsfs init DIR");
		return cmd_init(argv[2]);
	}

	static struct fs fs;
	struct cmdline c = {
		.opt = { .keep_versions = 5, .dir_mode = 0700, .file_mode = 0600 },
		.fuse_args = FUSE_ARGS_INIT(0, NULL),
	};
	if (fuse_opt_add_arg(&c.fuse_args, argv[0]) < 0)
		return fail("out of memory");
	int r = parse_cmdline(&c, argc, argv);
	if (r)
		return r;
	fs.opt = c.opt;
	fs.policy = c.policy;
	fs.ops = &embedded_store_ops;
	if (c.audit && strcmp(c.audit, "log") && strcmp(c.audit, "off") &&
	    strcmp(c.audit, "syslog") && c.audit[0] != '/')
		return fail("-o audit=%s: expected log, syslog, off or an absolute path", c.audit);
	harden(fs.opt.debug);
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	if ((r = check_mountpoint(fs.opt.mountpoint)))
		return r;

	int ready_fd = -1;
	if (!fs.opt.foreground && (r = background(&ready_fd)))
		return r;
	if ((r = audit_setup(c.audit)) < 0)
		return fail("audit file %s: %s", c.audit, strerrordesc_np(-r));
	pthread_rwlock_init(&fs.lock, NULL);
	pthread_mutex_init(&fs.ns_lock, NULL);
	log_setup(true, fs.opt.debug);
	if (fs_nodes_init(&fs) < 0)
		return fail("out of memory");
	sd_notify_send("STATUS=Opening the store in %s", fs.opt.store_dir);
	if ((r = setup_store(&fs, &c)) || (r = serve(&fs, &c)))
		return r;
	if (!fs.opt.foreground) {
		log_setup(false, fs.opt.debug);
		detach_stdio(ready_fd);
	}
	sd_notify_ready_when_mounted(&fs);

	if (c.single_thread) {
		r = fuse_session_loop(fs.se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(lc, 16);
		r = fuse_session_loop_mt(fs.se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* A signal (SIGTERM, SIGINT, SIGHUP) or fusermount3 -u: a clean stop.
	 * fuse_session_loop returns the signal's number then. */
	sd_notify_send("STOPPING=1");
	notifier_stop(fs.notifier);
	fuse_session_unmount(fs.se);
	fuse_remove_signal_handlers(fs.se);
	fuse_session_destroy(fs.se);
	fs.ops->close(fs.store);
	fs_nodes_free(&fs);
	policy_clear(&fs.policy);
	audit_close();
	free(c.audit);
	fuse_opt_free_args(&c.fuse_args);
	log_info("unmounted %s", fs.opt.mountpoint);
	return r < 0 ? 1 : 0;
}
