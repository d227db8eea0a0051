/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: one line of the host attributes file (fs/hostattrs_line.c),
 * which the daemon reads at every mount and anyone able to write the store
 * directory can change.  Checks that nothing crashes or leaks and that an
 * accepted line stays within its documented ranges.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostattrs.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	if (!line)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	struct hostattr a;
	int r = hostattr_parse_line(line, &a);
	if (r == 1) {
		assert(a.name && *a.name);
		assert(a.is_scope ? scope_from_dir_name(a.name) >= 0
		                  : secret_id_valid_existing(a.name));
		assert(!a.mode_set || a.mode <= 07777);
		free(a.name);
	} else {
		assert(r == 0 || r == -EINVAL || r == -ENOMEM);
	}
	free(line);
	return 0;
}
