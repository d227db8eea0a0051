/* SPDX-License-Identifier: MIT */
/*
 * The no-op baseline: a minimal low-level FUSE daemon serving
 *
 *   MNT/ai_gateway/SECRET     64 bytes, xattr user.tag.k = "v"
 *
 * with the same timeouts (entry and attr 1 s) and the same loop as
 * secretsfs (fuse_session_loop_mt, 16 threads max; -s: single-threaded).
 * It does no work of its own, so secretsfs / noop is the share of FUSE's
 * own cost in what secretsfs costs.
 *
 *   noop MNT -f [-s] -o mode=dio    every open reaches the daemon, direct_io,
 *                                   noflush (what secretsfs does today)
 *   noop MNT -f [-s] -o mode=zero   "zero-message open": OPEN and FLUSH
 *                                   answered ENOSYS (the kernel then stops
 *                                   sending them), data kept in the page cache
 *
 * Not part of secretsfs; built and run by tests/bench/run only.
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { INO_ROOT = 1, INO_DIR = 2, INO_FILE = 3 };
#define DIR_NAME "ai_gateway"
#define FILE_NAME "SECRET"
#define TIMEOUT 1.0

static char data[64];
static int zero_mode; /* immutable after start */

struct opts {
	char *mode;
};
static const struct fuse_opt opt_spec[] = {
	{ "mode=%s", offsetof(struct opts, mode), 0 },
	FUSE_OPT_END,
};

static void fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == INO_FILE) {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = sizeof(data);
	} else {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
	}
}

static void nop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { .attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT };
	if (parent == INO_ROOT && strcmp(name, DIR_NAME) == 0)
		e.ino = INO_DIR;
	else if (parent == INO_DIR && strcmp(name, FILE_NAME) == 0)
		e.ino = INO_FILE;
	if (!e.ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void nop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino > INO_FILE) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void nop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
	char buf[512];
	size_t used = 0;
	struct stat st = { .st_mode = S_IFDIR };
	const char *child = ino == INO_ROOT ? DIR_NAME : FILE_NAME;
	if (size > sizeof(buf))
		size = sizeof(buf);
	if (off < 1) {
		st.st_ino = ino;
		used += fuse_add_direntry(req, buf + used, size - used, ".", &st, 1);
	}
	if (off < 2) {
		st.st_ino = INO_ROOT;
		used += fuse_add_direntry(req, buf + used, size - used, "..", &st, 2);
	}
	if (off < 3) {
		st.st_ino = ino == INO_ROOT ? INO_DIR : INO_FILE;
		st.st_mode = ino == INO_ROOT ? S_IFDIR : S_IFREG;
		used += fuse_add_direntry(req, buf + used, size - used, child, &st, 3);
	}
	fuse_reply_buf(req, buf, used);
}

static void nop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (zero_mode) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void nop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	if (off >= (off_t)sizeof(data)) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = sizeof(data) - (size_t)off;
	fuse_reply_buf(req, data + off, n < size ? n : size);
}

static void nop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, zero_mode ? ENOSYS : 0);
}

static void nop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void nop_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (ino != INO_FILE || strcmp(name, "user.tag.k") != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, 1);
	else if (size < 1)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, "v", 1);
}

static const struct fuse_lowlevel_ops nop_ops = {
	.lookup = nop_lookup,
	.getattr = nop_getattr,
	.readdir = nop_readdir,
	.open = nop_open,
	.read = nop_read,
	.flush = nop_flush,
	.release = nop_release,
	.getxattr = nop_getxattr,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts co;
	struct opts o = { 0 };
	int r = 1;

	/* what tests/bench/run writes everywhere else: 0…07 and a newline */
	memset(data, '0', sizeof(data));
	data[sizeof(data) - 2] = '7';
	data[sizeof(data) - 1] = '\n';
	if (fuse_parse_cmdline(&args, &co) != 0 || fuse_opt_parse(&args, &o, opt_spec, NULL) != 0)
		return 1;
	if (!co.mountpoint || !o.mode ||
	    (strcmp(o.mode, "dio") != 0 && strcmp(o.mode, "zero") != 0)) {
		fprintf(stderr, "usage: noop MNT -f [-s] -o mode=dio|zero\n");
		return 1;
	}
	zero_mode = strcmp(o.mode, "zero") == 0;
	struct fuse_session *se = fuse_session_new(&args, &nop_ops, sizeof(nop_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, co.mountpoint) != 0)
		goto out_se;
	fuse_daemonize(co.foreground);
	if (co.singlethread) {
		r = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(lc, 16);
		r = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
out_se:
	fuse_session_destroy(se);
out:
	free(co.mountpoint);
	free(o.mode);
	fuse_opt_free_args(&args);
	return r ? 1 : 0;
}
