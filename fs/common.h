/* SPDX-License-Identifier: MIT */
/* Private to fs/: what the ops_*.c files share (common.c). */
#ifndef SECRETSFS_COMMON_H
#define SECRETSFS_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"

#define ENTRY_TIMEOUT 1.0
#define ATTR_TIMEOUT 1.0

/* Labels are user.tag.KEY; read-only facts are secretsfs.NAME, readable
 * by name and never listed (so cp -a and getfattr -d ignore them). */
#define LABEL_XATTR_PREFIX "user.tag."
#define FACT_XATTR_PREFIX "secretsfs."

struct fs *fs_of(fuse_req_t req);
void caller_of_req(fuse_req_t req, struct caller *ret); /* caller_clear() it */
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
int admit_change(struct fs *fs, scope_set scopes, const struct caller *who, const char *what,
                 const char *name);
/* The audit line's name for a node: its ID, or SCOPE/NAME of a scratch
 * file (into buf). */
const char *audit_name(const struct node *n, char *buf, size_t size);
void fill_attr(struct fs *fs, const struct node *n, struct stat *st);

/* A POSIX ACL as the kernel's system.posix_acl_access xattr holds it. */
#define ACL_ENTRIES_MAX (3 + 2 * SCOPE_COUNT)
struct acl {
	size_t n;
	struct acl_entry {
		uint16_t tag, perm;
		uint32_t id;
	} e[ACL_ENTRIES_MAX];
};
bool fill_acl(struct fs *fs, const struct node *n, struct acl *acl);
size_t acl_to_xattr(const struct acl *acl, uint8_t *buf);
void reply_entry(fuse_req_t req, struct fs *fs, fuse_ino_t ino);
double entry_timeout_of(const struct node *n);
struct node *scope_child(struct fs *fs, enum scope sc, const char *name);
char *name_secret_id(struct fs *fs, const char *name);
/* Store errors of a change made for an inode: the incarnation it meant is
 * gone (ESTALE, -ENOENT), which the kernel answers by looking again. */
bool store_gone(int r);

/* The one line for a create or rename in scope sc of an ID that lives in
 * other scopes only: where it lives and the ln that adds sc. */
void log_id_elsewhere(const struct fs *fs, const char *what, enum scope sc,
                      const struct secret_meta *m);
/* Warns (once per mount) that a committed value ends in a newline. */
void warn_trailing_newline(const char *id, const void *value, size_t len);

#endif
