/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: mount options (fs/cmdline.c, and through it fs/policy.c's
 * owner=, unit= and cgroup= parsers).  The first byte picks the entry
 * point: an -o option list (cmdline_parse_options) or a whole argv split at
 * NUL bytes (cmdline_parse).  Errors are printed to stderr (run with
 * -close_fd_mask=2); the target checks only that nothing crashes or leaks
 * and that the parsed values stay within their documented ranges.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmdline c = {
		.opt = { .keep_versions = 5, .dir_mode = 0700, .file_mode = 0600 },
		.fuse_args = FUSE_ARGS_INIT(0, NULL),
	};
	char *buf;
	int r;

	if (size < 1)
		return 0;
	buf = malloc(size);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	if (fuse_opt_add_arg(&c.fuse_args, "secretsfs") < 0)
		abort();

	if (data[0] & 1) {
		r = cmdline_parse_options(&c, buf);
	} else {
		char *argv[MAX_ARGS + 1];
		int argc = 0;
		argv[argc++] = "secretsfs";
		for (char *p = buf; p < buf + size - 1 && argc < MAX_ARGS; p += strlen(p) + 1)
			argv[argc++] = p;
		argv[argc] = NULL;
		r = cmdline_parse(&c, argc, argv);
	}
	if (r == 0) {
		assert(c.opt.keep_versions >= 1 && c.opt.keep_versions <= 1000);
		assert(c.opt.dir_mode <= 07777 && c.opt.file_mode <= 07777);
	}
	cmdline_free(&c);
	free(buf);
	return 0;
}
