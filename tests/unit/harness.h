/* SPDX-License-Identifier: MIT */
/* A tiny assert-style harness: every failed check is reported with its
 * line and counted; the test exits non-zero if any failed. */
#ifndef SECRETSFS_TEST_HARNESS_H
#define SECRETSFS_TEST_HARNESS_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int harness_failures;
static int harness_checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		harness_checks++;                                                                  \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			harness_failures++;                                                        \
		}                                                                                  \
	} while (0)

/* integer equality, both sides printed on failure */
#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		harness_checks++;                                                                  \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",          \
			        __FILE__, __LINE__, #a, #b, _a, _b);                               \
			harness_failures++;                                                        \
		}                                                                                  \
	} while (0)

/* fatal: later checks make no sense */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		harness_checks++;                                                                  \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static inline int harness_result(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name, harness_checks, harness_failures);
	return harness_failures ? 1 : 0;
}

static inline char *harness_tmpdir(void)
{
	char tmpl[] = "/tmp/secretsfs-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	REQUIRE(d != NULL);
	d = strdup(d);
	REQUIRE(d != NULL);
	return d;
}

static inline int harness_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static inline void harness_rmrf(const char *dir)
{
	nftw(dir, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *harness_path(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	REQUIRE(p != NULL);
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

#endif
