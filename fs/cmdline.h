/* SPDX-License-Identifier: MIT */
/* The mount command line: options into struct cmdline. */
#ifndef SECRETSFS_CMDLINE_H
#define SECRETSFS_CMDLINE_H

#include <stdio.h>

#include "fs.h"

#define CREDENTIAL_NAME "secretsfs.key"

struct cmdline {
	struct fs_options opt;
	struct policy policy;
	char *audit;
	struct fuse_args fuse_args; /* what goes to fuse_session_new */
	bool single_thread;
	bool file_mode_set;
	bool fake; /* mount -f through the helper: check only */
};


void cmdline_usage(FILE *out);
/* Prints "secretsfs: MESSAGE" to stderr; returns 1 (the exit status). */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 0, or 1 after printing why. */
int cmdline_parse(struct cmdline *c, int argc, char **argv);
/* The choice nearest to word (at most 2 edits, and fewer than half its
 * length), NULL if none is that near. */
const char *did_you_mean(const char *word, const char *const *choices, size_t n);
/* "unknown scope S (did you mean T?); the scopes are: ..." (in: where it
 * was given, e.g. "-o owner=x:root"); returns 1. */
int fail_unknown_scope(const char *in, const char *scope);
int cmdline_parse_options(struct cmdline *c, const char *list);
/* The -o options, from cmdline.c's one table (for tests): how many, the
 * i-th as spelt ("ro" a flag, "key=" with a value, "x-" any option that
 * begins so), and the index of the one that takes option o ("key=FILE"),
 * -1 if none does. */
size_t cmdline_option_count(void);
const char *cmdline_option_name(size_t i);
int cmdline_option_find(const char *o);
void cmdline_free(struct cmdline *c);
/* -o etcd_user= without -o etcd_password=: systemd's credential
 * $CREDENTIALS_DIRECTORY/etcd.password, if systemd passes credentials.
 * 0, or 1 after saying why not (out of memory). */
int cmdline_etcd_password_default(struct fs_options *o);
/* The store_remote of these options (borrowing their strings). */
struct store_remote cmdline_store_remote(const struct fs_options *o);

#endif
