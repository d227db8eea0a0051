/* SPDX-License-Identifier: MIT */
/*
 * This host's chmod and chown of secrets and scope directories, kept across
 * remounts in a small text file beside the store (DIR/host-attrs by
 * default, -o attrs=FILE).  The store has no notion of owners and modes:
 * they belong to the host that mounts it.
 *
 *   # comment
 *   scope ai_gateway 0711 - -
 *   secret OPENAI_API_KEY 0640 1002 1002
 *
 * Fields: kind, name (a scope directory or a secret ID), mode (octal or
 * -), uid (or -), gid (or -).  "-" leaves the mount options' value.
 */
#ifndef SECRETSFS_HOSTATTRS_H
#define SECRETSFS_HOSTATTRS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fs;

struct hostattr {
	bool is_scope;
	char *name;
	bool mode_set, owner_set;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* Parses one line; 1 for an entry in *ret (free ret->name), 0 for a blank
 * or comment line, -EINVAL for a line that is not one of those. */
int hostattr_parse_line(const char *line, struct hostattr *ret);

/* Applies the file to the inode table (fs->lock held for writing).  A
 * missing file is no error; bad lines are logged and skipped.  A file
 * that is a symlink, not a regular file, another uid's, or writable by
 * group or others is refused (-errno, a one-line reason in why). */
int hostattrs_load(struct fs *fs, char *why, size_t why_size);
/* Writes the file anew, atomically, from the inode table.  Takes fs->lock
 * itself; logs a failure. */
int hostattrs_save(struct fs *fs);
/* Saves if a node with chmod/chown died since (fs->attrs_dirty); takes
 * fs->lock itself. */
void hostattrs_save_if_dirty(struct fs *fs);

#endif
