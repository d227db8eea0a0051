/* SPDX-License-Identifier: MIT */
/*
 * The FUSE operations (low-level API), the table of them: metadata from
 * the inode table (ops_meta.c), values through handles (ops_file.c),
 * names (ops_namespace.c), labels (ops_xattr.c).  See fs.h for identity
 * and locking and docs/design.md for what each operation means.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "ops.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* O_TRUNC arrives with open, so "> f" never reads the old value.
	 * -o fast answers no open: truncation must come as a setattr. */
	if (fs->opt.fast)
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* The kernel's page cache must not keep or merge values. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* A secret in scopes of different owners lets each of them in by a
	 * POSIX ACL (common.c, fill_acl); only the kernel's mode checks
	 * (default_permissions) read it. */
	fs->acl = fs->opt.default_permissions && (conn->capable & FUSE_CAP_POSIX_ACL);
	if (fs->acl)
		conn->want |= FUSE_CAP_POSIX_ACL;
}

static void op_destroy(void *userdata)
{
	struct fs *fs = userdata;
	/* The kernel is gone: nothing to invalidate any more.  Stopped
	 * first, because releasing the handles below commits what writers
	 * left, and a commit queues invalidations. */
	notifier_stop(fs->notifier);
	fs->notifier = NULL;
	release_open_handles(fs);
	wrlock(fs);
	for (struct node *n = fs->scratch_head; n; n = n->next)
		if (n->u.scratch.data.len)
			log_warn("scratch file %s/%s dropped at unmount (%zu bytes, never stored: "
			         "the name is not a secret ID)",
			         scope_dir_name(n->u.scratch.scope), n->u.scratch.name,
			         n->u.scratch.data.len);
	unlock(fs);
}

const struct fuse_lowlevel_ops secretsfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readdir = op_readdir,
	.statfs = op_statfs,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.release = op_release,
	.unlink = op_unlink,
	.rename = op_rename,
	.link = op_link,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.mknod = op_mknod,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
