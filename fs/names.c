/* SPDX-License-Identifier: MIT */
/*
 * File names and secret IDs.
 *
 * A secret ID may contain '/', which no file name can: in file names it is
 * written "%2F".  '%' is never part of an ID, so the escape is unambiguous.
 * Whether a name is a secret or a scratch file is decided in ops.c
 * (name_kind): a name that decodes to an ID matching the create rule, or
 * to the ID of a secret the store already holds, is a secret; every other
 * name is a scratch file.
 */
#include <stdlib.h>
#include <string.h>

#include "fs.h"

char *name_to_id(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 3 * SECRET_ID_MAX)
		return NULL;
	char *id = malloc(n + 1);
	if (!id)
		return NULL;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '%') {
			if (strncmp(name + i, "%2F", 3) != 0) {
				free(id);
				return NULL;
			}
			id[j++] = '/';
			i += 2;
		} else {
			id[j++] = name[i];
		}
	}
	id[j] = '\0';
	if (!secret_id_valid_existing(id)) {
		free(id);
		return NULL;
	}
	return id;
}

char *id_to_name(const char *id)
{
	size_t n = strlen(id), slashes = 0;
	for (size_t i = 0; i < n; i++)
		slashes += id[i] == '/';
	char *name = malloc(n + 2 * slashes + 1);
	if (!name)
		return NULL;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (id[i] == '/') {
			memcpy(name + j, "%2F", 3);
			j += 3;
		} else {
			name[j++] = id[i];
		}
	}
	name[j] = '\0';
	return name;
}
