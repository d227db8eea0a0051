/* SPDX-License-Identifier: MIT */
/*
 * File names and secret IDs.
 *
 * A secret ID may contain '/', which no file name can: in file names it is
 * written "%2F".  '%' is never part of an ID, so the escape is unambiguous.
 * Whether a name is a secret is decided in common.c (name_secret_id): a
 * name that decodes to an ID matching the create rule, or to the ID of a
 * secret the store already holds, is a secret.  Of every other name only
 * the ones tools make as temporaries are scratch files (name_is_scratch);
 * the rest are refused at create and as a rename's target (EINVAL), with
 * the ID the name probably meant (name_suggest_id).
 */
#include <stdio.h>
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

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* The n characters at s are [A-Za-z0-9] (what mkstemp's XXXXXX becomes)
 * or in extra. */
static bool all_alnum(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !(extra && s[i] && strchr(extra, s[i])))
			return false;
	return true;
}

/* The temporaries of the tools people use on files (docs/design.md,
 * "Names"), and nothing more:
 *   .ANYTHING     dot-files: rsync's .NAME.XXXXXX, vim's .NAME.swp,
 *                 mktemp -p DIR .NAME.XXXXXX, mv's .NAME.new, emacs' .#NAME
 *   ANYTHING~     backups: vim's NAME~, cp --backup, emacs
 *   DIGITS        vim's probe that it may write a directory (4913, 4914...)
 *   sedXXXXXX     sed -i (sed and six of [A-Za-z0-9])
 *   tmpXXXXXX...  mktemp's tmp.XXXXXXXXXX, Python's tempfile tmpXXXXXXXX
 *                 (tmp and six or more of [A-Za-z0-9._])
 *   #ANYTHING#    emacs' auto-save file
 * cp, tee, dd, install and printf > write the name itself. */
bool name_is_scratch(const char *name)
{
	size_t n = strlen(name);
	if (n == 0)
		return false;
	if (name[0] == '.' || name[n - 1] == '~')
		return true;
	if (strspn(name, "0123456789") == n)
		return true;
	if (n == 9 && strncmp(name, "sed", 3) == 0 && all_alnum(name + 3, 6, NULL))
		return true;
	if (n >= 9 && strncmp(name, "tmp", 3) == 0 && all_alnum(name + 3, n - 3, "._"))
		return true;
	return n >= 3 && name[0] == '#' && name[n - 1] == '#';
}

bool name_suggest_id(const char *name, char *buf, size_t size)
{
	size_t n = strlen(name), j = 0;
	if (n == 0 || n >= size || n > SECRET_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!is_alnum(c))
			c = '_';
		if (c == '_' && (j == 0 || buf[j - 1] == '_'))
			continue; /* no leading or doubled _ from "my--key" or "-x" */
		buf[j++] = c;
	}
	while (j > 0 && buf[j - 1] == '_')
		j--;
	buf[j] = '\0';
	return secret_id_valid_new(buf) && strcmp(buf, name) != 0;
}

void name_refused_why(const char *name, char *buf, size_t size)
{
	char id[SECRET_ID_MAX + 1];
	int len = snprintf(buf, size,
	                   "not a secret ID (^[A-Z][A-Z0-9_]*$, up to %d characters) nor a "
	                   "tool's temporary (.NAME, NAME~, digits, sedXXXXXX, tmpXXXXXX, #NAME#)",
	                   SECRET_ID_MAX);
	if (len > 0 && (size_t)len < size && name_suggest_id(name, id, sizeof(id)))
		snprintf(buf + len, size - (size_t)len, "; did you mean %s?", id);
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
