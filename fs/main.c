/* SPDX-License-Identifier: MIT */
/*
 * secretsfs: the command line.
 *
 *   secretsfs init DIR [-o key=FILE]
 *   secretsfs backup DIR FILE | restore FILE DIR | rekey DIR
 *   secretsfs list MOUNTPOINT [--label K=V] [--scope S] [--json]
 *   secretsfs DIR MOUNTPOINT [-o opt,...] [-f] [-d] [-s]
 *
 * Mounting is done in a child that reports back to the parent, so every
 * error (not a store, wrong key, mountpoint busy) reaches the terminal
 * before the parent exits, and the store is opened only in the process
 * that serves it (SQLite connections must not cross a fork).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <sodium.h>

#include "cmd_list.h"
#include "cmdline.h"
#include "credsock.h"
#include "hostattrs.h"
#include "crypto.h"
#include "embedded.h"
#include "etcd.h"
#include "handover.h"
#include "keeper.h"
#include "keyfile.h"
#include "mirror.h"
#include "redpanda.h"


/* secretsfs init etcd://…/PREFIX -o key=FILE: a new key in FILE unless it
 * exists (made through its directory's fd, O_EXCL, never read back by
 * name), then the store's identity under PREFIX. */
static int cmd_init_etcd(const char *source, const char *key_file,
                         const struct store_remote *remote)
{
	char why[2 * PATH_MAX + 160] = "";
	uint8_t *key = NULL;
	bool made = false;
	int dirfd = -1, r;
	char *copy = strdup(key_file), *base = NULL;
	if (!copy)
		return fail("out of memory");
	if (crypto_init() < 0) {
		free(copy);
		return fail("libsodium failed to initialise");
	}
	r = key_load_why(key_file, &key, why, sizeof(why));
	if (r == -ENOENT) {
		char *slash = strrchr(copy, '/');
		base = slash ? slash + 1 : copy;
		if (slash)
			*slash = '\0';
		dirfd = open(slash ? (copy[0] ? copy : "/") : ".",
		             O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dirfd < 0 ? -errno : key_create_at(dirfd, base, &key);
		made = r == 0;
		if (r < 0)
			snprintf(why, sizeof(why), "cannot create the key file %s: %s", key_file,
			         strerrordesc_np(-r));
	} else if (r < 0 && !why[0]) {
		snprintf(why, sizeof(why), "key file %s: %s", key_file,
		         r == -EINVAL ? "not a 32-byte key" : strerrordesc_np(-r));
	}
	if (r == 0) {
		r = etcd_store_init(source, remote, key, why, sizeof(why));
		if (r < 0 && !why[0])
			snprintf(why, sizeof(why), "cannot create a store at %s: %s", source,
			         strerrordesc_np(-r));
		/* the key made for a store that was not created goes again */
		if (r < 0 && made && unlinkat(dirfd, base, 0) < 0)
			log_warn("could not remove %s again: %s", key_file, strerror(errno));
	}
	key_free(key);
	if (dirfd >= 0)
		close(dirfd);
	free(copy);
	if (r < 0)
		return fail("%s", why);
	printf("created an empty store at %s\n", source);
	if (made)
		printf("its key is the new file %s (mode 0400): without it no value can be read; "
		       "keep a copy somewhere safe\n",
		       key_file);
	return 0;
}

/* init's -o lists into c, each option one of allowed (NULL-terminated),
 * parsed as a mount's are.  0 or printed why not (usage: the line to
 * print for anything but -o). */
static int init_options(int argc, char **argv, const char *const *allowed, const char *usage,
                        struct cmdline *c)
{
	int r = 0;
	for (int i = 0; i < argc && r == 0; i++) {
		const char *list = strcmp(argv[i], "-o") == 0 && i + 1 < argc   ? argv[++i]
		                 : strncmp(argv[i], "-o", 2) == 0 && argv[i][2] ? argv[i] + 2
		                                                                : NULL;
		if (!list) {
			r = fail("usage: %s", usage);
			break;
		}
		char *copy = strdup(list), *save = NULL;
		for (char *o = copy ? strtok_r(copy, ",", &save) : NULL; o && r == 0;
		     o = strtok_r(NULL, ",", &save)) {
			bool ok = false;
			for (size_t j = 0; allowed[j]; j++)
				ok = ok || strncmp(o, allowed[j], strlen(allowed[j])) == 0;
			r = ok ? cmdline_parse_options(c, o)
			       : fail("init: -o %s is not an option of init here (usage: %s)", o,
			              usage);
		}
		if (!copy)
			r = fail("out of memory");
		free(copy);
	}
	return r;
}

/* secretsfs init etcd…://…/PREFIX -o key=FILE[,OPTION…] (options: key and
 * the connection's, nothing else). */
static int init_etcd(int argc, char **argv, const char *source)
{
	static const char *const allowed[] = { "key=",       "cacert=",        "cert=", "certkey=",
		                               "etcd_user=", "etcd_password=", NULL };
	static const char usage[] = "secretsfs init etcd://HOST:PORT[,…]/PREFIX -o "
	                            "key=FILE[,cacert=FILE,cert=FILE,certkey=FILE,etcd_user=NAME,"
	                            "etcd_password=FILE]";
	struct cmdline c = { .fuse_args = FUSE_ARGS_INIT(0, NULL) };
	int r = init_options(argc, argv, allowed, usage, &c);
	if (r == 0 && (!c.opt.key_file || !c.opt.key_file[0]))
		r = fail("usage: %s", usage);
	if (r == 0)
		r = cmdline_etcd_password_default(&c.opt);
	if (r == 0) {
		struct store_remote rem = cmdline_store_remote(&c.opt);
		r = cmd_init_etcd(source, c.opt.key_file, &rem);
	}
	cmdline_free(&c);
	return r;
}

/* The directory a new key file goes into, made (0700) if it is missing:
 * one level, for "-o key=/etc/secretsfs/key". */
static int key_parent_made(const char *key_file)
{
	char *copy = strdup(key_file);
	if (!copy)
		return fail("out of memory");
	char *slash = strrchr(copy, '/');
	int r = 0;
	if (slash && slash != copy) {
		*slash = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			r = fail("key file %s: cannot make its directory %s: %s", key_file, copy,
			         strerrordesc_np(errno));
	}
	free(copy);
	return r;
}

/* secretsfs init DIR [-o key=FILE,run_as=USER]: the key in DIR/key, or made
 * new at FILE (outside DIR; then every mount gives -o key=FILE); with
 * run_as, DIR is USER's afterwards (the server of -o run_as=USER writes
 * it) and the key stays root's, outside it. */
static int cmd_init(const char *dir, const char *key_file, const char *run_as)
{
	uid_t uid = 0;
	gid_t gid = 0;
	if (run_as) {
		int u = keeper_user(run_as, &uid, &gid);
		if (u == -ENOENT)
			return fail("init -o run_as=%s: no such user", run_as);
		if (u < 0)
			return fail(
			    "init -o run_as=%s: that is root; name the user the server runs "
			    "as",
			    run_as);
		if (!key_file)
			return fail(
			    "init -o run_as=%s: the key must stay root's, outside the store "
			    "%s writes: give -o key=FILE (e.g. /etc/secretsfs/key)",
			    run_as, run_as);
		if (geteuid() != 0)
			return fail("init -o run_as=%s: only root makes a store another user's",
			            run_as);
	}
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	if (key_file && key_parent_made(key_file))
		return 1;
	char why[2 * PATH_MAX + 160];
	int r = embedded_store_init_key(dir, key_file, why, sizeof(why));
	if (r < 0 && why[0])
		return fail("%s", why);
	if (r == -EEXIST)
		return fail("%s already holds a store", dir);
	if (r < 0)
		return fail("cannot create a store in %s: %s", dir, strerrordesc_np(-r));
	if (run_as && (r = keeper_give_store(dir, uid, gid)) < 0)
		return fail("created a store in %s, but cannot make it %s's: %s (chown -R %s: %s)",
		            dir, run_as, strerrordesc_np(-r), run_as, dir);
	if (key_file)
		printf("created an empty store in %s%s%s\n"
		       "its key is the new file %s (mode 0400): mount with -o key=%s; without it "
		       "no value can be read; keep a copy somewhere safe\n",
		       dir, run_as ? ", owned by " : "", run_as ? run_as : "", key_file, key_file);
	else
		printf("created an empty store in %s\n"
		       "its key is %s/%s (mode 0400): without it no value can be read; keep a "
		       "copy somewhere safe\n",
		       dir, dir, EMBEDDED_KEY_FILE);
	return 0;
}

/* secretsfs init DIR [-o key=FILE,run_as=USER] */
static int init_dir(int argc, char **argv, const char *dir)
{
	static const char *const allowed[] = { "key=", "run_as=", NULL };
	static const char usage[] = "secretsfs init DIR [-o key=FILE[,run_as=USER]] | init "
	                            "etcd://HOST:PORT[,…]/PREFIX -o key=FILE";
	struct cmdline c = { .fuse_args = FUSE_ARGS_INIT(0, NULL) };
	int r = init_options(argc, argv, allowed, usage, &c);
	if (r == 0 && c.opt.key_file && !c.opt.key_file[0])
		r = fail("usage: %s", usage);
	if (r == 0)
		r = cmd_init(dir, c.opt.key_file, c.opt.run_as);
	cmdline_free(&c);
	return r;
}

/* secretsfs backup DIR FILE */
static int cmd_backup(const char *dir, const char *file)
{
	char why[2 * PATH_MAX + 160] = "";
	int r = embedded_store_backup(dir, file, why, sizeof(why));
	if (r < 0)
		return fail("%s", why[0] ? why : strerrordesc_np(-r));
	printf("backed up the store in %s to %s: it opens with the same key (%s/%s); restore "
	       "with: secretsfs restore %s NEWDIR (NEWDIR holding a copy of the key)\n",
	       dir, file, dir, EMBEDDED_KEY_FILE, file);
	return 0;
}

/* secretsfs restore FILE DIR: DIR holds the store's key, not a store. */
static int cmd_restore(const char *file, const char *dir)
{
	char why[2 * PATH_MAX + 160] = "";
	char *key_path = NULL;
	uint8_t *key = NULL;
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	int r = embedded_key_path(dir, &key_path);
	if (r == 0)
		r = key_load_why(key_path, &key, why, sizeof(why));
	if (r < 0 && !why[0])
		snprintf(why, sizeof(why),
		         "%s: %s (put the store's key there first: install -m 0400 KEY %s)",
		         key_path ? key_path : dir,
		         r == -EINVAL ? "not a 32-byte key" : strerrordesc_np(-r),
		         key_path ? key_path : dir);
	if (r == 0)
		r = embedded_store_restore(file, dir, key, why, sizeof(why));
	key_free(key);
	free(key_path);
	if (r < 0)
		return fail("%s", why[0] ? why : strerrordesc_np(-r));
	printf("restored %s into %s: mount it with secretsfs %s MOUNTPOINT\n", file, dir, dir);
	return 0;
}

#define REKEY_NEW_KEY_FILE "key.new"

static void rekey_progress(size_t done, size_t total)
{
	fprintf(stderr, "secretsfs: rekey: %zu of %zu secrets sealed again\n", done, total);
}

/* secretsfs rekey DIR: the store sealed again under a new key, staged so
 * that a kill at any moment leaves a store one of the two keys opens and
 * a run again finishes it: the new key is made first as DIR/key.new (or
 * taken from there: a run before was killed), the store sealed again
 * under it in one transaction (the old key opens it until that commits),
 * then key.new renamed over DIR/key. */
static int cmd_rekey(const char *dir)
{
	char why[2 * PATH_MAX + 160] = "";
	uint8_t *old = NULL, *new = NULL;
	char *kp = NULL, *np = NULL;
	bool made = false;
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return fail("%s: %s", dir, strerror(errno));
	int r = embedded_key_path(dir, &kp);
	if (r == 0 && asprintf(&np, "%s/%s", dir, REKEY_NEW_KEY_FILE) < 0) {
		np = NULL;
		r = -ENOMEM;
	}
	if (r == 0)
		r = key_load_why(kp, &old, why, sizeof(why));
	if (r < 0 && !why[0])
		snprintf(why, sizeof(why), "%s: %s", kp ? kp : dir, strerrordesc_np(-r));
	int rn = r == 0 ? key_load_why(np, &new, why, sizeof(why)) : 0;
	if (r == 0 && rn == -ENOENT) {
		why[0] = '\0';
		rn = key_create_at(dirfd, REKEY_NEW_KEY_FILE, &new);
		made = rn == 0;
	} else if (r == 0 && rn == 0) {
		fprintf(stderr,
		        "secretsfs: %s exists: an earlier rekey was interrupted; "
		        "finishing it with that key\n",
		        np);
	}
	if (r == 0 && rn < 0) {
		r = rn;
		if (!why[0])
			snprintf(why, sizeof(why), "%s: %s", np, strerrordesc_np(-r));
	}
	if (r == 0)
		r = embedded_store_rekey(dir, old, new, rekey_progress, why, sizeof(why));
	if (r >= 0) {
		/* the store is the new key's now: DIR/key becomes it */
		if (renameat(dirfd, REKEY_NEW_KEY_FILE, dirfd, EMBEDDED_KEY_FILE) < 0 ||
		    fsync(dirfd) < 0) {
			snprintf(
			    why, sizeof(why),
			    "the store is sealed under %s, but it could not be renamed to %s: %s "
			    "(run secretsfs rekey %s again)",
			    np, kp, strerror(errno), dir);
			r = -EIO;
		}
	} else if (made) {
		unlinkat(dirfd, REKEY_NEW_KEY_FILE, 0); /* nothing was sealed under it */
	}
	key_free(old);
	key_free(new);
	close(dirfd);
	if (r < 0) {
		free(kp);
		free(np);
		return fail("%s", why[0] ? why : strerrordesc_np(-r));
	}
	printf("the store in %s is sealed under a new key, now %s (mode 0400); the old key no "
	       "longer opens it, only the backups taken before (take a new backup); keep a copy "
	       "of the new key somewhere safe\n",
	       dir, kp);
	free(kp);
	free(np);
	return 0;
}

/* --- checks before mounting --- */

/* The store the source argument names: a directory holds the embedded
 * store, etcd://… names the etcd store, redpanda:https://… the Redpanda
 * Cloud store (no key: it holds no values of ours to seal). */
static int choose_store(const char *source, const struct store_ops **ret)
{
	if (etcd_store_source(source)) {
		*ret = &etcd_store_ops;
		return 0;
	}
	if (redpanda_store_source(source)) {
		*ret = &redpanda_store_ops;
		return 0;
	}
	if (strstr(source, "://"))
		return fail("%s: not a store secretsfs knows (a directory, etcd://… or "
		            "redpanda:https://…)",
		            source);
	*ret = &embedded_store_ops;
	return 0;
}

static char *key_path(const struct cmdline *c)
{
	char *p = NULL;
	if (c->opt.key_file)
		return strdup(c->opt.key_file);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (creds) {
		if (asprintf(&p, "%s/%s", creds, CREDENTIAL_NAME) < 0)
			return NULL;
		if (access(p, F_OK) == 0)
			return p;
		free(p);
		p = NULL;
	}
	/* The embedded store keeps its key beside it by default. */
	if (embedded_key_path(c->opt.store_dir, &p) < 0)
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

/* The first entry of directory path other than . and .., into buf
 * (empty if none or unreadable). */
static void first_entry(const char *path, char *buf, size_t size)
{
	DIR *d = opendir(path);
	struct dirent *e;
	buf[0] = '\0';
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(buf, size, "%s", e->d_name);
			break;
		}
	if (d)
		closedir(d);
}

static int check_mountpoint(const char *mnt, bool nonempty)
{
	struct stat st, up;
	char *parent = NULL;
	handover_unstick(mnt); /* a mount whose daemon is stopped would hang the stat */
	if (stat(mnt, &st) < 0 && errno == ENOTCONN && is_secretsfs_mount(mnt)) {
		/* A daemon that died (crash, SIGKILL) leaves its mount behind;
		 * a restart must not be blocked by it. */
		if (umount2(mnt, MNT_DETACH) == 0)
			fprintf(stderr, "secretsfs: cleaned up the dead secretsfs mount on %s\n",
			        mnt);
	}
	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			return fail("mountpoint %s is a dead FUSE mount (Transport endpoint is not "
			            "connected); clean it up with: fusermount3 -uz %s",
			            mnt, mnt);
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
	/* As gocryptfs: files under the mount would be hidden while it lasts
	 * (and a wrong path given as the mountpoint is noticed). */
	char entry[NAME_MAX + 1];
	if (!nonempty)
		first_entry(mnt, entry, sizeof(entry));
	if (!nonempty && entry[0])
		return fail("mountpoint %s is not empty (%s is in it): the mount would hide its "
		            "files; give an empty directory, or -o nonempty",
		            mnt, entry);
	return 0;
}

static void remote_change(void *userdata, const struct store_change *c)
{
	fs_apply_remote(userdata, c);
}

static int add_listed(void *userdata, const struct secret_meta *meta)
{
	struct fs *fs = userdata;
	return fs_apply_meta(fs, meta) ? 0 : -ENOMEM;
}

/* Reads the store key (into locked memory) and where it came from.
 * Returns 0 or prints why not. */
static int load_key(const struct fs *fs, const struct cmdline *c, uint8_t **ret_key, char **ret_kp)
{
	const char *dir = fs->opt.store_dir;
	char *kp = key_path(c);
	uint8_t *key = NULL;
	char why[2 * PATH_MAX + 160];
	if (!kp)
		return fail("out of memory");
	int r = key_load_why(kp, &key, why, sizeof(why));
	/* The default key sits in the store: missing with the store is
	 * "not a store", which says more than "no key". */
	if (r == -ENOENT && !c->opt.key_file && !embedded_store_present(dir))
		r = fail("%s is not a secretsfs store; create one with: secretsfs init %s", dir,
		         dir);
	else if (r == -ENOENT)
		r = fail("key file %s not found (give the key with -o key=FILE)", kp);
	else if ((r == -EPERM || r == -EACCES) && why[0])
		r = fail("%s", why); /* another user's, or open to group or others */
	else if (r == -EINVAL)
		r = fail("key file %s is not a %d-byte key", kp, STORE_KEY_BYTES);
	else if (r < 0)
		r = fail("key file %s: %s", kp, strerrordesc_np(-r));
	if (r) {
		free(kp);
		return r;
	}
	*ret_key = key;
	*ret_kp = kp;
	return 0;
}

/* The pid holding an flock on the file at path, per /proc/locks; 0 if
 * none is found. */
static pid_t flock_holder(const char *path)
{
	struct stat st;
	FILE *f = stat(path, &st) == 0 ? fopen("/proc/locks", "re") : NULL;
	char *line = NULL;
	size_t cap = 0;
	pid_t pid = 0;
	/* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" ("->" lines are
	 * waiters) */
	while (f && !pid && getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok[6] = { 0 };
		if (strstr(line, "->"))
			continue;
		tok[0] = strtok_r(line, " ", &save);
		for (int i = 1; i < 6 && tok[i - 1]; i++)
			tok[i] = strtok_r(NULL, " ", &save);
		if (!tok[5] || strcmp(tok[1], "FLOCK") != 0)
			continue;
		char *end;
		unsigned long maj = strtoul(tok[5], &end, 16);
		unsigned long min = *end == ':' ? strtoul(end + 1, &end, 16) : 0;
		unsigned long long ino = *end == ':' ? strtoull(end + 1, &end, 10) : 0;
		if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == st.st_ino)
			pid = (pid_t)strtol(tok[4], NULL, 10);
	}
	free(line);
	if (f)
		fclose(f);
	return pid;
}

/* /proc/self/mounts writes space, tab, newline and \ as \ooo: undone in
 * place. */
static void unescape_mount_field(char *s)
{
	char *w = s;
	for (const char *r = s; *r; w++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w = *r++;
		}
	}
	*w = '\0';
}

/* Where the store in dir is mounted: a fuse.secretsfs mount whose source
 * is dir itself (by device and inode, so another path to it counts), per
 * /proc/self/mounts, into buf; "" if none is seen here. */
static void mounted_at(const char *dir, char *buf, size_t size)
{
	struct stat want, st;
	FILE *f = stat(dir, &want) == 0 ? fopen("/proc/self/mounts", "re") : NULL;
	char *line = NULL;
	size_t cap = 0;
	buf[0] = '\0';
	while (f && getline(&line, &cap, f) > 0) {
		char *save = NULL;
		char *src = strtok_r(line, " ", &save);
		char *mnt = strtok_r(NULL, " ", &save);
		const char *type = strtok_r(NULL, " ", &save);
		if (!src || !mnt || !type || strcmp(type, "fuse.secretsfs") != 0)
			continue;
		unescape_mount_field(src);
		if (stat(src, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino) {
			unescape_mount_field(mnt);
			snprintf(buf, size, "%s", mnt);
			break;
		}
	}
	free(line);
	if (f)
		fclose(f);
}

/* The command name of pid (/proc/PID/comm) into buf; "" if unknown. */
static void comm_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	buf[0] = '\0';
	if (f && fgets(buf, (int)size, f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* "the store in DIR is in use by pid N (mounted on M)": who holds the
 * embedded store's lock. */
static int fail_busy(const char *dir)
{
	char *lock = NULL, where[PATH_MAX + 16] = "";
	pid_t pid = 0;
	if (asprintf(&lock, "%s/%s", dir, EMBEDDED_LOCK_FILE) >= 0)
		pid = flock_holder(lock);
	free(lock);
	mounted_at(dir, where, sizeof(where));
	if (pid > 0 && where[0])
		return fail("the store in %s is in use by another secretsfs: pid %d, mounted on %s "
		            "(unmount it first: fusermount3 -u %s)",
		            dir, (int)pid, where, where);
	char comm[32];
	if (pid > 0)
		comm_of(pid, comm, sizeof(comm));
	if (pid > 0 && strcmp(comm, "secretsfs") == 0)
		return fail("the store in %s is in use by another secretsfs: pid %d (its mount is "
		            "not visible here)",
		            dir, (int)pid);
	if (pid > 0)
		return fail("the store in %s is in use by another process: pid %d (%s) holds %s/%s",
		            dir, (int)pid, comm[0] ? comm : "?", dir, EMBEDDED_LOCK_FILE);
	return fail("the store in %s is in use by another secretsfs", dir);
}

/* After handover_unstick aborted a stuck mount: its daemon, which may
 * hold the store's lock, ends as soon as it runs again.  A stopped one
 * (SIGSTOP) is let go on (SIGCONT, harmless to any process).  True while
 * a secretsfs holds the lock: worth waiting for. */
static bool predecessor_ending(const char *dir)
{
	char *lock = NULL, comm[32] = "", path[64], state = 0;
	pid_t pid = asprintf(&lock, "%s/%s", dir, EMBEDDED_LOCK_FILE) >= 0 ? flock_holder(lock) : 0;
	free(lock);
	if (pid > 0)
		comm_of(pid, comm, sizeof(comm));
	if (pid <= 0 || strcmp(comm, "secretsfs") != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%*d (secretsfs) %c", &state) == 1 && (state == 'T' || state == 't')) {
		log_warn("continued pid %d (stopped), which holds the store in %s, so that it ends",
		         (int)pid, dir);
		kill(pid, SIGCONT);
	}
	if (f)
		fclose(f);
	return true;
}

/* Does dir hold the new key of a rekey that did not finish? */
static bool rekey_interrupted(const char *dir)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, REKEY_NEW_KEY_FILE) < 0)
		return false;
	bool there = access(p, F_OK) == 0;
	free(p);
	return there;
}

/* Opens the store with the key from kp and mirrors its metadata; frees
 * both.  Returns 0 or prints why not. */
static int setup_store(struct fs *fs, uint8_t *key, char *kp)
{
	const char *dir = fs->opt.store_dir;
	int r;
	struct store_config cfg = {
		.source = dir,
		.key = key,
		.keep_versions = fs->opt.keep_versions,
		.stale_ns = fs->opt.stale_ns,
		.cache_file = fs->opt.cache_file,
		.remote = cmdline_store_remote(&fs->opt),
		.read_only = fs->opt.read_only,
		.reseal_digest = fs->opt.reseal_digest,
		.keep_deleted_ns = fs->opt.keep_deleted_ns,
		.credentials = fs->opt.credentials,
		.token_url = fs->opt.token_url,
		.audience = fs->opt.audience,
		.cluster = fs->opt.cluster,
		.controlplane = fs->opt.controlplane,
		.poll_s = fs->opt.poll_s,
	};
	/* -o cacert= of a mirror on plain etcd:// is the mirror's only (on
	 * etcd+https:// one CA file serves both: a bundle of their CAs) */
	if (fs->opt.mirror && strncmp(dir, "etcd://", 7) == 0)
		cfg.remote.cacert = NULL;
	r = fs->ops->open(&cfg, &fs->store);
	for (int i = 0; r == -EBUSY && handover_unstuck() && i < 100 && predecessor_ending(dir);
	     i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
		r = fs->ops->open(&cfg, &fs->store);
	}
	key_free(key);
	if (r == -ENOENT)
		r = fail("%s is not a secretsfs store; create one with: secretsfs init %s", dir,
		         dir);
	else if (r == -ENOTDIR)
		r = fail("%s is not a directory", dir);
	else if (r == -EKEYREJECTED && rekey_interrupted(dir))
		r = fail("the key in %s does not open the store in %s: a rekey was interrupted; "
		         "run secretsfs rekey %s to finish it",
		         kp, dir, dir);
	else if (r == -EKEYREJECTED)
		r = fail("the key in %s does not open the store in %s (wrong key)", kp, dir);
	else if (r == -EBUSY)
		r = fail_busy(dir);
	else if (r == -EPROTO) /* the store logged which endpoint and why */
		r = fail("cannot open the store in %s: TLS with etcd failed; nothing mounted", dir);
	else if (r < 0)
		r = fail("cannot open the store in %s: %s", dir, strerrordesc_np(-r));
	free(kp);
	if (r)
		return r;

	pthread_rwlock_wrlock(&fs->lock);
	struct node *root = fs_node_new(fs, NODE_ROOT);
	struct node *versions = fs_node_new(fs, NODE_VERSIONS);
	bool ok = root && versions && (!deleted_shown(fs) || fs_node_new(fs, NODE_DELETED));
	for (int sc = 0; sc < SCOPE_COUNT && ok; sc++)
		ok = fs_scope_node_new(fs, sc) != NULL;
	r = ok ? fs->ops->list(fs->store, add_listed, fs) : -ENOMEM;
	if (r == 0)
		handover_restore_inodes(fs); /* the numbers the kernel knows */
	char why[2 * PATH_MAX + 160] = "";
	int ra = r == 0 ? hostattrs_load(fs, why, sizeof(why)) : 0;
	pthread_rwlock_unlock(&fs->lock);
	if (r < 0)
		return fail("cannot list the store in %s: %s", dir, strerrordesc_np(-r));
	if (ra < 0 && why[0])
		return fail("%s", why);
	if (ra < 0)
		return fail("cannot read %s: %s", fs->opt.attrs_file, strerrordesc_np(-ra));
	/* what was kept past -o keep_deleted goes before anything is served */
	if ((r = deleted_purger_start(fs)) < 0)
		return fail("cannot purge the deleted secrets kept in %s: %s", dir,
		            strerrordesc_np(-r));
	return 0;
}

/* -o mirror=: the mirror's record beside host-attrs (a directory of this
 * host's that -o run_as keeps writable), its remote store opened, its
 * thread started (it reconciles first, in the background).  0 or prints
 * why not. */
static int setup_mirror(struct fs *fs)
{
	char *record = NULL;
	struct mirror *m = NULL;
	struct store_config cfg = {
		.source = fs->opt.mirror,
		.remote = { .cacert = fs->opt.cacert },
		.credentials = fs->opt.credentials,
		.token_url = fs->opt.token_url,
		.audience = fs->opt.audience,
		.cluster = fs->opt.cluster,
		.controlplane = fs->opt.controlplane,
		.poll_s = 0,
	};
	if (!fs->opt.mirror)
		return 0;
	if (asprintf(&record, "%s.mirror", fs->opt.attrs_file) < 0)
		return fail("out of memory");
	int r = mirror_open(&cfg, &redpanda_store_ops, fs->ops, fs->store, record, &m);
	free(record);
	if (r < 0) /* logged: why */
		return fail("-o mirror=%s: cannot use it: %s", fs->opt.mirror, strerrordesc_np(-r));
	if ((r = mirror_start(m)) < 0) {
		mirror_stop(m);
		return fail("-o mirror: cannot start its thread: %s", strerrordesc_np(-r));
	}
	/* the change path (fs_apply, under fs->lock) kicks it from now on */
	pthread_rwlock_wrlock(&fs->lock);
	fs->mirror = m;
	pthread_rwlock_unlock(&fs->lock);
	log_info("mirroring every change to %s", fs->opt.mirror);
	return 0;
}

/* --- running --- */

/* Nothing of the serving process is swapped out: besides the values' own
 * locked buffers, libfuse's request buffers briefly hold what is written.
 * Pages are locked as they are touched (MCL_ONFAULT).  Not inherited
 * across fork: called in the process that serves.  Without locked memory
 * the daemon does not serve unless -o allow_unlocked says it may; then it
 * warns, and values' buffers are locked where the limit allows. */
static int lock_memory(bool allow_unlocked)
{
	secret_allow_unlocked(allow_unlocked);
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
		return 0;
	if (!allow_unlocked)
		return fail("cannot lock memory (mlockall: %s): values could be swapped out; "
		            "grant CAP_IPC_LOCK or raise LimitMEMLOCK= (ulimit -l), or mount "
		            "with -o allow_unlocked to accept that",
		            strerrordesc_np(errno));
	fprintf(stderr,
	        "secretsfs: warning: mlockall: %s; -o allow_unlocked: serving with "
	        "swappable memory\n",
	        strerrordesc_np(errno));
	return 0;
}

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

/* Off the terminal: stdio to /dev/null (stderr kept when the log has
 * nowhere else to go), the cwd to /. */
static void null_stdio_but(bool keep_stderr)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (!keep_stderr)
			dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (chdir("/") < 0) { /* nothing depends on the cwd */
	}
}

static void null_stdio(void)
{
	null_stdio_but(false);
}

/* Where the audit trail goes, for the line below. */
static const char *audit_whereabouts(const char *audit, char *buf, size_t size)
{
	if (!audit || strcmp(audit, "log") == 0)
		return "the audit trail with it";
	if (strcmp(audit, "off") == 0)
		return "there is no audit trail (-o audit=off)";
	if (strcmp(audit, "journal") == 0)
		return "the audit trail to the journal (-o audit=journal)";
	if (strcmp(audit, "syslog") == 0)
		return "the audit trail (-o audit=syslog) is lost until a syslog daemon listens on " LOG_SYSLOG_SOCKET;
	snprintf(buf, size, "the audit trail to %s", audit);
	return buf;
}

/* Can the log stay on stderr in the background?  A file (2>>FILE) or a
 * socket (a log collector's stream) can; a terminal goes away, and a pipe
 * would keep whoever reads it (out=$(secretsfs …)) waiting forever. */
static bool stderr_keeps_log(void)
{
	struct stat st;
	return fstat(2, &st) == 0 && (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Gone to the background, the log goes to the journal or syslog
 * (log_setup).  With no syslog socket that is not where anyone looks, or
 * nowhere: say where it goes, on the terminal, before leaving it.
 * Returns whether stderr is to stay open for the log. */
static bool log_to_background(const struct fs *fs, const char *audit)
{
	char abuf[PATH_MAX + 32], err[PATH_MAX];
	const char *a = audit_whereabouts(audit, abuf, sizeof(abuf));
	enum log_dest d = log_setup(false, fs->opt.debug);
	if (log_socket_present(LOG_SYSLOG_SOCKET))
		return false;
	if (d == LOG_TO_JOURNAL) {
		fprintf(stderr,
		        "secretsfs: info: no syslog socket (" LOG_SYSLOG_SOCKET "): the log goes "
		        "to the journal directly (journalctl -t " LOG_IDENTIFIER "), %s\n",
		        a);
		log_info("no syslog socket (" LOG_SYSLOG_SOCKET "): logging to the journal, %s", a);
		return false;
	}
	ssize_t n = readlink("/proc/self/fd/2", err, sizeof(err) - 1);
	err[n > 0 ? n : 0] = '\0';
	if (stderr_keeps_log()) {
		log_info("no syslog socket (" LOG_SYSLOG_SOCKET
		         ") and no journal (" LOG_JOURNAL_SOCKET
		         "): the log stays on this process's stderr (%s), %s",
		         err[0] ? err : "?", a);
		return true;
	}
	log_warn("no syslog socket (" LOG_SYSLOG_SOCKET ") and no journal (" LOG_JOURNAL_SOCKET
	         "): in the background the log is lost, and %s; to keep it, mount with -f, "
	         "or with stderr sent to a file (2>>FILE)%s",
	         a,
	         !audit || strcmp(audit, "log") == 0 ? ", or give the audit trail a file of its "
	                                               "own (-o audit=FILE)"
	                                             : "");
	return false;
}

static void detach_stdio(int ready_fd, bool keep_stderr)
{
	null_stdio_but(keep_stderr);
	if (write(ready_fd, "", 1) != 1) { /* the parent is gone: fine */
	}
	close(ready_fd);
}

/* The mount options libfuse gets from us.  fsname= is the store's path,
 * which may hold commas and backslashes: escaped, or "/x/st,allow_other"
 * would add a mount option of its own choosing. */
static int mount_options(const struct fs *fs, const struct cmdline *c, char **ret)
{
	char *opts = NULL, *fsname = NULL;
	int r = -1;
	if (asprintf(&fsname, "fsname=%s", fs->opt.store_dir) >= 0) {
		r = fuse_opt_add_opt_escaped(&opts, fsname);
		free(fsname);
	}
	if (r == 0)
		r = fuse_opt_add_opt(&opts, "subtype=secretsfs");
	if (r == 0 && fs->opt.default_permissions)
		r = fuse_opt_add_opt(&opts, "default_permissions");
	if (r == 0 && fs->opt.allow_other)
		r = fuse_opt_add_opt(&opts, "allow_other");
	if (r == 0 && fs->opt.read_only)
		r = fuse_opt_add_opt(&opts, "ro");
	if (r < 0) {
		free(opts);
		return -1;
	}
	*ret = opts;
	return 0;
}

static int serve(struct fs *fs, struct cmdline *c, bool adopted)
{
	struct fuse_args *args = &c->fuse_args;
	char *opts = NULL;
	if (mount_options(fs, c, &opts) < 0 || fuse_opt_add_arg(args, "-o") < 0 ||
	    fuse_opt_add_arg(args, opts) < 0 ||
	    (fs->opt.debug && fuse_opt_add_arg(args, "-d") < 0)) {
		free(opts);
		return fail("out of memory");
	}
	free(opts);

	fs->se = fuse_session_new(args, &secretsfs_ops, sizeof(secretsfs_ops), fs);
	if (!fs->se)
		return fail("could not start the FUSE session (see the message above)");
	if (fuse_set_signal_handlers(fs->se) < 0)
		return fail("could not set signal handlers");
	/* A connection taken over is served as it is: no mount. */
	if (!adopted && fuse_session_mount(fs->se, fs->opt.mountpoint) < 0)
		return fail("could not mount on %s", fs->opt.mountpoint);
	return handover_session(fs);
}

/* -o run_as=USER: from here on this process serves as USER and the
 * mounting one keeps the mount (keeper.c).  Then the server locks its
 * memory and opens the store as USER. */
static int serve_as(struct fs *fs, uint8_t *key, char *kp, int *ready_fd, int credsock_fd)
{
	/* What the server may write: the store, and host-attrs' directory. */
	char *attrs = strdup(fs->opt.attrs_file ? fs->opt.attrs_file : "/");
	char *attrs_dir = attrs ? realpath(dirname(attrs), NULL) : NULL;
	/* (A remote store's source is a URL, not a directory.) */
	const char *writable[] = { attrs_dir,
		                   fs->opt.store_dir[0] == '/' ? fs->opt.store_dir : NULL, NULL };
	long mount_id = -1;
	pid_t pid = attrs_dir ? keeper_fork(fs->opt.run_mountpoint, fs->opt.run_uid,
	                                    fs->opt.run_gid, writable, &mount_id)
	                      : -errno;
	free(attrs);
	free(attrs_dir);
	if (pid > 0) {
		/* The keeper: no key, no terminal, no store. */
		key_free(key);
		free(kp);
		if (!fs->opt.foreground) {
			close(*ready_fd); /* the server says when it is ready */
			null_stdio();
			log_setup(false, fs->opt.debug);
		}
		char *status = NULL;
		if (asprintf(&status, "Serving %s on %s as %s", fs->opt.store_dir,
		             fs->opt.mountpoint, fs->opt.run_as) < 0)
			status = NULL;
		const int fds[] = { fuse_session_fd(fs->se), handover_state_fd(), credsock_fd };
		keeper_run(pid, fs->opt.run_mountpoint, mount_id, fds, sizeof(fds) / sizeof(fds[0]),
		           handover_stored(), status ? status : "Serving");
	}
	int r = (int)pid;
	if (r < 0) {
		key_free(key);
		free(kp);
		return fail("-o run_as=%s: cannot drop privileges: %s", fs->opt.run_as,
		            strerrordesc_np(-r));
	}
	if (handover_server_state(fs) < 0) {
		key_free(key);
		free(kp);
		return HANDOVER_EXIT_UNADOPTABLE;
	}
	if ((r = lock_memory(fs->opt.allow_unlocked))) {
		key_free(key);
		free(kp);
		return r;
	}
	return setup_store(fs, key, kp);
}

/* The server's user, checked before anything is mounted (or, adopted,
 * before the connection taken over is served). */
static int check_run_as(struct fs *fs, bool adopted)
{
	int r = keeper_user(fs->opt.run_as, &fs->opt.run_uid, &fs->opt.run_gid);
	if (r == -ENOENT)
		return fail("-o run_as=%s: no such user", fs->opt.run_as);
	if (r == -EPERM)
		return fail("-o run_as=%s: that is root; name the user the server runs as",
		            fs->opt.run_as);
	if (geteuid() != 0)
		return fail("-o run_as=%s: only root mounts and then drops to another user",
		            fs->opt.run_as);
	/* The keeper finds its mount in /proc/self/mountinfo by this path;
	 * resolved now, as once mounted it leads into the mount itself (and
	 * a mount taken over has no daemon to answer yet: only its parent is
	 * resolved). */
	if (!(fs->opt.run_mountpoint = adopted ? keeper_mount_path(fs->opt.mountpoint)
	                                       : realpath(fs->opt.mountpoint, NULL)))
		return fail("%s: %s", fs->opt.mountpoint, strerrordesc_np(errno));
	/* The server cannot see below the directories its namespace hides. */
	const char *need[] = { fs->opt.store_dir, fs->opt.attrs_file };
	for (size_t i = 0; i < 2; i++)
		for (size_t h = 0; need[i] && keeper_hidden[h]; h++) {
			size_t n = strlen(keeper_hidden[h]);
			if (need[i][0] == '/' && strncmp(need[i], keeper_hidden[h], n) == 0 &&
			    (need[i][n] == '/' || need[i][n] == '\0'))
				return fail(
				    "-o run_as=%s: %s is below %s, which the server's "
				    "namespace hides; keep the store and host-attrs elsewhere "
				    "(e.g. /var/lib/secretsfs)",
				    fs->opt.run_as, need[i], keeper_hidden[h]);
		}
	/* The server opens the embedded store as USER, which must own it (a
	 * store left root's by the root mode, e.g. after a package upgrade,
	 * is said so here, before anything is mounted). */
	struct stat st;
	if (fs->ops == &embedded_store_ops && fs->opt.store_dir &&
	    stat(fs->opt.store_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid != fs->opt.run_uid)
		return fail("-o run_as=%s: the server cannot open the store in %s: it is uid "
		            "%u's, not %s's; make it %s's (chown -R %s: %s, with the key outside "
		            "it: secretsfs(1), SYSTEMD) or serve as root (secretsfs-as-root.conf)",
		            fs->opt.run_as, fs->opt.store_dir, (unsigned)st.st_uid, fs->opt.run_as,
		            fs->opt.run_as, fs->opt.run_as, fs->opt.store_dir);
	return 0;
}

/* -o credsocket=PATH must be outside the mount: the socket is made once
 * mounted, and a path below the mountpoint would then lead into the mount
 * itself (whose requests nobody serves yet). */
static int check_credsocket(const struct fs *fs)
{
	char *copy = strdup(fs->opt.credsocket);
	char *dir = copy ? realpath(dirname(copy), NULL) : NULL;
	int dir_errno = errno;
	char *mnt = realpath(fs->opt.mountpoint, NULL);
	int r = 0;
	if (!copy)
		r = fail("out of memory");
	else if (!mnt)
		r = fail("mountpoint %s: %s", fs->opt.mountpoint, strerrordesc_np(errno));
	else if (!dir)
		r = fail("-o credsocket=%s: its directory: %s", fs->opt.credsocket,
		         strerrordesc_np(dir_errno));
	else if (strncmp(dir, mnt, strlen(mnt)) == 0 &&
	         (dir[strlen(mnt)] == '/' || dir[strlen(mnt)] == '\0' || strcmp(mnt, "/") == 0))
		r = fail("-o credsocket=%s is inside the mountpoint %s: put it beside it (e.g. "
		         "/run/secretsfs-credentials.sock)",
		         fs->opt.credsocket, fs->opt.mountpoint);
	free(copy);
	free(dir);
	free(mnt);
	return r;
}

/* -o credsocket=PATH: the socket made and listened on.  0 or printed why
 * not. */
static int open_credsocket(const struct fs *fs, struct credsock **ret)
{
	char why[PATH_MAX + 160] = "";
	int r = credsock_open(fs->opt.credsocket, ret, why, sizeof(why));
	if (r < 0)
		return why[0]
		         ? fail("%s", why)
		         : fail("-o credsocket=%s: %s", fs->opt.credsocket, strerrordesc_np(-r));
	return 0;
}

/* Mounts, serves until unmounted or signalled, stops.  Returns the exit
 * status; whatever was set up is taken down by stop(). */
static int serve_store(struct fs *fs, struct cmdline *c)
{
	int r;
	if (c->audit && strcmp(c->audit, "log") != 0 && strcmp(c->audit, "off") != 0 &&
	    strcmp(c->audit, "syslog") != 0 && strcmp(c->audit, "journal") != 0 &&
	    c->audit[0] != '/')
		return fail("-o audit=%s: expected log, syslog, journal, off or an absolute path",
		            c->audit);
	harden(fs->opt.debug);
	if (crypto_init() < 0)
		return fail("libsodium failed to initialise");
	if (fs->opt.takeover && fs->opt.run_as)
		return fail("-o takeover cannot be used with -o run_as (a keeper's server is "
		            "restarted through systemd's fd store)");
	/* A connection left by the daemon before (systemd's fd store) or
	 * handed over by the one serving now (-o takeover): the mount stays,
	 * and looking at the mountpoint would wait for this daemon (so what
	 * looks at it is left to the daemon that mounted it). */
	int adopted = handover_adopt(fs, fs->opt.takeover);
	if (adopted < 0)
		return 1;
	if (!adopted && fs->opt.takeover)
		return fail("-o takeover: nothing taken over from the daemon serving %s",
		            fs->opt.mountpoint);
	if (!adopted && (r = check_mountpoint(fs->opt.mountpoint, fs->opt.nonempty)))
		return r;
	if (!adopted && fs->opt.credsocket && (r = check_credsocket(fs)))
		return r;
	if (fs->opt.run_as && (r = check_run_as(fs, adopted))) {
		/* a stored connection this start cannot serve: given up, so
		 * that callers do not wait for a server that never comes */
		if (adopted)
			handover_abandon(fs->opt.mountpoint, "-o run_as refused it, see above");
		return r;
	}

	int ready_fd = -1;
	if (!fs->opt.foreground && (r = background(&ready_fd)))
		return r;
	if (!fs->opt.run_as && (r = lock_memory(fs->opt.allow_unlocked)))
		return r; /* else in the server (mlockall is not inherited) */
	char why[PATH_MAX + 160];
	if ((r = audit_setup(c->audit, why, sizeof(why))) < 0)
		return why[0] ? fail("%s", why)
		              : fail("audit file %s: %s", c->audit, strerrordesc_np(-r));
	log_setup(true, fs->opt.debug);
	if (fs_nodes_init(fs) < 0)
		return fail("out of memory");
	sd_notify_send("STATUS=Opening the store in %s", fs->opt.store_dir);
	uint8_t *key = NULL;
	char *kp = NULL;
	/* The Redpanda Cloud store seals nothing: it has no key. */
	if (fs->ops != &redpanda_store_ops && (r = load_key(fs, c, &key, &kp)))
		return r;
	if (!kp && !(kp = strdup("(none)")))
		return fail("out of memory");
	/* As root, the store is opened first: its errors come before a
	 * mount.  Under run_as it is opened by the server, as USER. */
	/* Under run_as the keeper makes the credential socket, before the
	 * fork: the server's namespace cannot write its directory (and keeps
	 * no copy of /run writable); the server accepts on what it inherits. */
	struct credsock *cs = NULL;
	if (fs->opt.run_as && fs->opt.credsocket && (r = open_credsocket(fs, &cs))) {
		key_free(key);
		free(kp);
		return r;
	}
	if (fs->opt.run_as) {
		if ((r = serve(fs, c, adopted))) {
			key_free(key);
			free(kp);
			credsock_close(cs);
			return r;
		}
		if ((r = serve_as(fs, key, kp, &ready_fd, credsock_fd(cs))) ||
		    (r = setup_mirror(fs))) {
			credsock_close(cs);
			return r;
		}
	} else if ((r = setup_store(fs, key, kp)) || (r = setup_mirror(fs)) ||
	           (r = serve(fs, c, adopted))) {
		return r;
	}
	fs->notifier = notifier_start(fs->se);
	/* Changes made by other clients (a watch, a poll), from now on: the
	 * notifier they use is there, and the echo thread that gives them
	 * inotify events (not under run_as: the server's namespace has no
	 * copy of the mount to make them on). */
	if (fs->ops->watch && !fs->opt.run_as && !(fs->echo = echo_start(fs->opt.mountpoint)))
		return fail("out of memory");
	if (fs->ops->watch && (r = fs->ops->watch(fs->store, remote_change, fs)) < 0)
		return fail("cannot follow the store's changes: %s", strerrordesc_np(-r));
	if (fs->opt.run_as)
		log_info("mounted the %s store %s on %s; serving as %s (uid %u)", fs->ops->name,
		         fs->opt.store_dir, fs->opt.mountpoint, fs->opt.run_as,
		         (unsigned)fs->opt.run_uid);
	else
		log_info("mounted the %s store %s on %s", fs->ops->name, fs->opt.store_dir,
		         fs->opt.mountpoint);
	if (fs->opt.credsocket) {
		if (!cs && (r = open_credsocket(fs, &cs)))
			return r;
		if ((r = credsock_start(cs, fs)) < 0) {
			credsock_close(cs);
			return fail("-o credsocket: cannot start its thread: %s",
			            strerrordesc_np(-r));
		}
		/* the change path (fs_apply, under fs->lock) tells it of new values */
		pthread_rwlock_wrlock(&fs->lock);
		fs->credsock = cs;
		pthread_rwlock_unlock(&fs->lock);
		log_info("serving systemd credentials on %s (LoadCredential=ID:%s)",
		         fs->opt.credsocket, fs->opt.credsocket);
	}
	if (!fs->opt.foreground)
		detach_stdio(ready_fd, log_to_background(fs, c->audit));
	/* Under run_as the keeper says READY=1 (and the server has no
	 * $NOTIFY_SOCKET): the server's namespace has no copy of the mount
	 * to ask, and the mount (no allow_other) lets in only the uid that
	 * mounted it. */
	if (!fs->opt.run_as)
		sd_notify_ready_when_mounted(fs);

	handover_serving(fs);
	if (c->single_thread) {
		r = fuse_session_loop(fs->se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(lc, 16);
		r = fuse_session_loop_mt(fs->se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* A signal (SIGTERM, SIGINT, SIGHUP) or fusermount3 -u: a clean stop.
	 * fuse_session_loop returns the signal's number then. */
	if (r == -ECONNABORTED && handover_connection_of(fs->opt.mountpoint) < 0) {
		/* An unmount that meets a request the kernel was handing to
		 * a thread (a RELEASE of a file closed just before) ends that
		 * thread's read with ECONNABORTED, not ENODEV (fuse_dev_do_read:
		 * the queue went down between taking the request and queueing
		 * it for the reply); libfuse logged "reading device".  The
		 * mount is gone: a clean stop.  An abort through fusectl leaves
		 * the mount: still an error. */
		log_info("the unmount ended a request in flight: a clean stop");
		r = 0;
	}
	sd_notify_send("STOPPING=1");
	handover_finish(fs);
	if (handover_handing_over())
		log_info("handed the mount on %s over to the next daemon", fs->opt.mountpoint);
	else
		log_info("unmounted %s", fs->opt.mountpoint);
	return r < 0 ? 1 : 0;
}

/* Takes down what serve_store() set up, in reverse; each part may be
 * missing (a refused start). */
static void stop(struct fs *fs)
{
	/* Before the session goes (destroying it may still release open
	 * handles, op_destroy, whose commits must find no notifier rather
	 * than a freed one) and before the store: the credential socket, out
	 * of the change path's reach first; and the notifier, under fs->lock,
	 * since a store's thread may be applying a change that tells it
	 * (fs_apply_remote). */
	pthread_rwlock_wrlock(&fs->lock);
	fs->remote_off = true;
	struct credsock *cs = fs->credsock;
	fs->credsock = NULL;
	struct notifier *nt = fs->notifier;
	fs->notifier = NULL;
	struct mirror *mi = fs->mirror; /* what it did not push stays pending */
	fs->mirror = NULL;
	pthread_rwlock_unlock(&fs->lock);
	credsock_close(cs);
	mirror_stop(mi);
	notifier_stop(nt);
	deleted_purger_stop(fs); /* before the store closes */
	if (fs->se) {
		/* Handing over a mount this session made: libfuse's session
		 * is not destroyed, as destroying it would first unmount
		 * (fuse_session_unmount is also what frees its copy of the
		 * mountpoint).  The process ends now; what destroying does for
		 * this filesystem (op_destroy) is done. */
		bool keep_session = handover_handing_over() && !handover_adopted();
		if (handover_handing_over()) {
			/* the mount stays, for the next daemon */
		} else if (handover_adopted() && !fs->opt.run_as) {
			/* not mounted by this session: libfuse would not (under
			 * run_as the keeper unmounts) */
			if (umount2(fs->opt.mountpoint, MNT_DETACH) < 0 && errno != EINVAL &&
			    errno != ENOENT) /* EINVAL: unmounted already (fusermount3 -u) */
				log_warn("cannot unmount %s: %s", fs->opt.mountpoint,
				         strerrordesc_np(errno));
		} else {
			/* Under run_as the server may not unmount: this finds
			 * the mount gone, or fails quietly (fusermount3 -q) and
			 * the keeper unmounts; it frees the session's
			 * mountpoint either way. */
			fuse_session_unmount(fs->se);
		}
		/* Stopping already: a stop signal now (the keeper's order to
		 * the server may come after the loop ended by the unmount)
		 * must not kill the process in the middle of it.  Set before
		 * libfuse's handlers go, which it then leaves alone. */
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		fuse_remove_signal_handlers(fs->se);
		if (keep_session)
			secretsfs_ops.destroy(fs);
		else
			fuse_session_destroy(fs->se);
		/* Once the session (its /dev/fuse) is gone, an open of the echo
		 * thread's in flight fails; handing over, one is answered by
		 * the next daemon, and this process ends without waiting. */
		if (!handover_handing_over()) {
			echo_stop(fs->echo);
			fs->echo = NULL;
		}
	}
	if (fs->store)
		fs->ops->close(fs->store);
	fs_nodes_free(fs);
	audit_close();
	free(fs->opt.run_mountpoint);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		cmdline_usage(stdout);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("secretsfs %s (libfuse %s, libsodium %s)\n", SECRETSFS_VERSION,
		       fuse_pkgversion(), sodium_version_string());
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return cmd_list(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "init") == 0) {
		if (argc < 3)
			return fail("usage: secretsfs init DIR [-o key=FILE[,run_as=USER]] | init "
			            "etcd://HOST:PORT[,…]/PREFIX -o key=FILE");
		if (etcd_store_source(argv[2]))
			return init_etcd(argc - 3, argv + 3, argv[2]);
		return init_dir(argc - 3, argv + 3, argv[2]);
	}

	if (argc >= 2 && strcmp(argv[1], "backup") == 0) {
		if (argc != 4)
			return fail("usage: secretsfs backup DIR FILE");
		return cmd_backup(argv[2], argv[3]);
	}
	if (argc >= 2 && strcmp(argv[1], "rekey") == 0) {
		if (argc != 3)
			return fail("usage: secretsfs rekey DIR");
		return cmd_rekey(argv[2]);
	}
	if (argc >= 2 && strcmp(argv[1], "restore") == 0) {
		if (argc != 4)
			return fail("usage: secretsfs restore FILE DIR");
		return cmd_restore(argv[2], argv[3]);
	}

	static struct fs fs;
	struct cmdline c = {
		.opt = { .keep_versions = 5,
		         .keep_deleted_ns = KEEP_DELETED_DEFAULT_NS,
		         .stale_ns = 3600LL * 1000000000,
		         .dir_mode = 0700,
		         .file_mode = 0600,
		         .poll_s = -1 },
		.fuse_args = FUSE_ARGS_INIT(0, NULL),
	};
	int r = fuse_opt_add_arg(&c.fuse_args, argv[0]) < 0 ? fail("out of memory")
	                                                    : cmdline_parse(&c, argc, argv);
	if (r == 0 && !c.fake) {
		fs.opt = c.opt;
		fs.policy = c.policy;
		r = choose_store(fs.opt.store_dir, &fs.ops);
	}
	if (r == 0 && !c.fake) {
		pthread_rwlock_init(&fs.lock, NULL);
		pthread_mutex_init(&fs.change_mutex, NULL);
		pthread_cond_init(&fs.change_done, NULL);
		for (size_t i = 0; i < HANDLE_BUCKETS; i++)
			pthread_mutex_init(&fs.handles[i].lock, NULL);
		r = serve_store(&fs, &c);
		stop(&fs);
	}
	cmdline_free(&c); /* fs.opt and fs.policy share its strings */
	return r;
}
