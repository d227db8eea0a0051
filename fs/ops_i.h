/* SPDX-License-Identifier: MIT */
/* Private to the ops_*.c files: helpers they share and the operations
 * each file implements for the table in ops.c. */
#ifndef SECRETSFS_OPS_I_H
#define SECRETSFS_OPS_I_H

#include <sys/stat.h>

#include "fs.h"

#define ENTRY_TIMEOUT 1.0
#define ATTR_TIMEOUT 1.0

/* Labels are user.tag.KEY; read-only facts are secretsfs.NAME, readable
 * by name and never listed (so cp -a and getfattr -d ignore them). */
#define LABEL_XATTR_PREFIX "user.tag."
#define FACT_XATTR_PREFIX "secretsfs."

struct fs *fs_of(fuse_req_t req);
void caller_of_req(fuse_req_t req, struct caller *ret);  /* caller_clear() it */
void rdlock(struct fs *fs);
void wrlock(struct fs *fs);
void unlock(struct fs *fs);
int scope_of_dir(fuse_ino_t ino);
const char *scope_names(scope_set set, char *buf, size_t size);
int user_errno(int r);
/* The kernel passes FUSE names up to 1024 bytes; ours are at most 255
 * (statfs says so, and an ID is at most 255 characters). */
#define NAME_MAX_BYTES 255
bool name_too_long(const char *name);
int admit_change(struct fs *fs, scope_set scopes, const struct caller *who,
                 const char *what, const char *name);
void fill_attr(struct fs *fs, const struct node *n, struct stat *st);
void reply_entry(fuse_req_t req, struct fs *fs, fuse_ino_t ino);
double entry_timeout_of(const struct node *n);
struct node *scope_child(struct fs *fs, enum scope sc, const char *name);
char *name_secret_id(struct fs *fs, const char *name);

/* ops_file.c */
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void release_open_handles(struct fs *fs);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);

/* ops_namespace.c */
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);

/* ops_xattr.c */
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                 size_t size, int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
