/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the rules for secret IDs, label keys and values, label maps
 * (backend/secret.c) and file name <-> ID translation (fs/names.c).
 *
 * Besides "never crash, never leak", it checks the properties the rest of
 * the code relies on:
 *  - a new-rule ID is also an existing-rule ID;
 *  - name_to_id and id_to_name are inverse on every name without '/'
 *    (no file name has one) and on every valid ID;
 *  - a label map stays sorted, unique and within LABELS_MAX;
 *  - an ID is never a scratch name, and the ID suggested for a refused
 *    name is always a valid new ID (fs/names.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "store.h"

static char *cstr(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void check_id_rules(const char *s)
{
	bool nw = secret_id_valid_new(s), ex = secret_id_valid_existing(s);
	size_t len = strlen(s);

	if (nw)
		assert(ex);
	if (ex) {
		assert(len >= 1 && len <= SECRET_ID_MAX);
		assert(!strchr(s, '%'));
	}
	if (nw)
		assert(s[0] >= 'A' && s[0] <= 'Z');
}

static void check_names(const char *s)
{
	char *id = name_to_id(s);

	if (id) {
		assert(secret_id_valid_existing(id));
		if (!strchr(s, '/')) {
			char *back = id_to_name(id);
			assert(back && strcmp(back, s) == 0);
			free(back);
		}
		free(id);
	}
	if (secret_id_valid_existing(s)) {
		char *name = id_to_name(s);
		assert(name && !strchr(name, '/'));
		char *again = name_to_id(name);
		assert(again && strcmp(again, s) == 0);
		free(again);
		free(name);
	}
}

static void check_scratch_rule(const char *s)
{
	char id[SECRET_ID_MAX + 1], why[400];
	if (secret_id_valid_new(s))
		assert(!name_is_scratch(s));
	if (name_suggest_id(s, id, sizeof(id))) {
		assert(secret_id_valid_new(id));
		assert(strcmp(id, s) != 0);
	}
	name_refused_why(s, why, sizeof(why));
	assert(strlen(why) < sizeof(why));
}

static void check_label_value(const uint8_t *p, size_t n)
{
	if (!label_value_valid((const char *)p, n))
		return;
	assert(n <= LABEL_VALUE_MAX);
	for (size_t i = 0; i < n; i++) {
		assert(p[i] != 0);
		assert(p[i] >= 0x20 && p[i] != 0x7f);
	}
}

static void check_map(const struct labels *l)
{
	assert(l->n <= LABELS_MAX);
	for (size_t i = 0; i + 1 < l->n; i++)
		assert(strcmp(l->v[i].key, l->v[i + 1].key) < 0);
	for (size_t i = 0; i < l->n; i++)
		assert(labels_get(l, l->v[i].key) == l->v[i].value);
}

/* The input as a program over a label map: records separated by 0xff,
 * each "op key \0 value". */
static void run_label_program(const uint8_t *data, size_t size)
{
	struct labels l = { 0, NULL }, copy = { 0, NULL };
	size_t i = 0;

	while (i < size) {
		const uint8_t *end = memchr(data + i, 0xff, size - i);
		size_t rec = end ? (size_t)(end - (data + i)) : size - i;
		if (rec >= 1) {
			uint8_t op = data[i];
			const uint8_t *body = data + i + 1;
			size_t blen = rec - 1;
			const uint8_t *nul = memchr(body, 0, blen);
			size_t klen = nul ? (size_t)(nul - body) : blen;
			char *key = cstr(body, klen);
			char *val = nul ? cstr(nul + 1, blen - klen - 1)
			                : cstr((const uint8_t *)"", 0);
			size_t before = l.n;
			int r;

			switch (op % 4) {
			case 0:
				r = labels_set(&l, key, val);
				assert(r == 0 || r == -EINVAL || r == -ENOSPC);
				if (r == 0) {
					assert(label_key_valid(key));
					assert(strcmp(labels_get(&l, key), val) == 0);
				} else {
					assert(l.n == before);
				}
				break;
			case 1:
				r = labels_remove(&l, key);
				assert(r == 0 || r == -ENODATA);
				assert(labels_get(&l, key) == NULL);
				break;
			case 2:
				(void)labels_get(&l, key);
				break;
			case 3:
				labels_clear(&copy);
				r = labels_copy(&copy, &l);
				assert(r == 0 && copy.n == l.n);
				break;
			}
			check_map(&l);
			free(key);
			free(val);
		}
		i += rec + 1;
	}
	labels_clear(&l);
	labels_clear(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = cstr(data, size); /* stops at the first NUL, like a path */

	check_id_rules(s);
	check_names(s);
	check_scratch_rule(s);
	(void)label_key_valid(s);
	check_label_value(data, size);
	free(s);
	run_label_program(data, size);
	return 0;
}
