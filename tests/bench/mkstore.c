/* SPDX-License-Identifier: MIT */
/*
 * Bulk store generator for tests/bench/run, linked against the project's
 * backend library: every value is sealed by the store itself.
 *
 *   mkstore DIR N     creates the store DIR if needed, then secrets 0 .. N-1
 *                     in ai_gateway that are not there yet; prints creates
 *                     per second.  Metadata as AI Gateway's keys look: IDs
 *                     of 23 to 40 characters (OPENAI_API_KEY_SEARCH_0000042:
 *                     provider, team, number), three labels (managed-by,
 *                     provider, team), a 64-byte value
 *   mkstore -i I      prints secret I's ID
 *   mkstore -l DIR    opens DIR and lists it through the store interface,
 *                     keeping nothing; prints "SECRETS SECONDS RSS_KB": the
 *                     store's own cost of a listing, without the daemon
 *                     (and on stderr the CPU seconds of the whole process
 *                     and of its main thread: the listing verifies rows on
 *                     a second thread)
 *
 * Each create is one transaction; with synchronous=FULL that is one fsync
 * each.  tests/bench/run runs this under eatmydata when it is installed
 * (fsync becomes a no-op; the files are synced once at the end).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "crypto.h"
#include "embedded.h"
#include "keyfile.h"
#include "store.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(const struct rusage *u)
{
	return (double)u->ru_utime.tv_sec + u->ru_utime.tv_usec / 1e6 + (double)u->ru_stime.tv_sec +
	       u->ru_stime.tv_usec / 1e6;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return kb;
}

static int open_store(const char *dir, uint8_t **ret_key, struct store **ret_store)
{
	char *kp = NULL;
	int r = embedded_key_path(dir, &kp);
	if (r == 0)
		r = key_load(kp, ret_key);
	free(kp);
	if (r < 0)
		return r;
	struct store_config cfg = { .source = dir, .key = *ret_key, .keep_versions = 5 };
	return embedded_store_ops.open(&cfg, ret_store);
}

static const char *const providers[] = { "OPENAI",  "ANTHROPIC", "GOOGLE_VERTEX", "AZURE_OPENAI",
	                                 "MISTRAL", "COHERE",    "AWS_BEDROCK",   "GROQ" };
static const char *const teams[] = {
	"ML", "SEARCH", "PLATFORM", "SUPPORT", "DATA_INFRA", "RESEARCH"
};
#define N_PROVIDERS (sizeof(providers) / sizeof(providers[0]))
#define N_TEAMS (sizeof(teams) / sizeof(teams[0]))

/* Secret i's ID: PROVIDER_API_KEY_TEAM_NNNNNNN, 23 to 40 characters. */
static void id_of(unsigned long i, char *buf, size_t size)
{
	snprintf(buf, size, "%s_API_KEY_%s_%07lu", providers[i % N_PROVIDERS],
	         teams[i / N_PROVIDERS % N_TEAMS], i);
}

/* A label value: the upper-case name in lower case. */
static void lower(const char *from, char *buf, size_t size)
{
	size_t k = 0;
	for (; from[k] && k + 1 < size; k++)
		buf[k] = (char)(from[k] >= 'A' && from[k] <= 'Z' ? from[k] - 'A' + 'a' : from[k]);
	buf[k] = 0;
}

static unsigned long listed;
static int count_one(void *userdata, const struct secret_meta *meta)
{
	listed++;
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t *key = NULL;
	struct store *s = NULL;
	int r;

	if (argc == 3 && strcmp(argv[1], "-l") == 0) {
		double t0 = now();
		r = open_store(argv[2], &key, &s);
		if (r == 0)
			r = embedded_store_ops.list(s, count_one, NULL);
		if (r < 0) {
			fprintf(stderr, "mkstore: %s: %s\n", argv[2], strerror(-r));
			return 1;
		}
		struct rusage all, main_thread;
		getrusage(RUSAGE_SELF, &all);
		getrusage(RUSAGE_THREAD, &main_thread);
		printf("%lu %.3f %ld\n", listed, now() - t0, rss_kb());
		fprintf(stderr, "mkstore: CPU %.2f s, of which the main thread %.2f s\n",
		        cpu_s(&all), cpu_s(&main_thread));
		embedded_store_ops.close(s);
		key_free(key);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "-i") == 0) {
		char id[64];
		id_of(strtoul(argv[2], NULL, 10), id, sizeof(id));
		printf("%s\n", id);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: mkstore DIR N | mkstore -l DIR | mkstore -i I\n");
		return 2;
	}
	const char *dir = argv[1];
	unsigned long n = strtoul(argv[2], NULL, 10);
	struct stat st;
	char db[4096];
	snprintf(db, sizeof(db), "%s/%s", dir, EMBEDDED_DB_FILE);
	if (stat(db, &st) != 0 && (r = embedded_store_init(dir)) < 0) {
		fprintf(stderr, "mkstore: init %s: %s\n", dir, strerror(-r));
		return 1;
	}
	r = open_store(dir, &key, &s);
	if (r < 0) {
		fprintf(stderr, "mkstore: open %s: %s\n", dir, strerror(-r));
		return 1;
	}
	char provider[32], team[32];
	struct label lab[3] = { { .key = "managed-by", .value = "aigateway" },
		                { .key = "provider", .value = provider },
		                { .key = "team", .value = team } };
	struct labels labels = { .n = 3, .v = lab };
	uint8_t value[64];
	unsigned long made = 0;
	double t0 = now(), last = t0;
	for (unsigned long i = 0; i < n; i++) {
		char id[64];
		id_of(i, id, sizeof(id));
		lower(providers[i % N_PROVIDERS], provider, sizeof(provider));
		lower(teams[i / N_PROVIDERS % N_TEAMS], team, sizeof(team));
		snprintf((char *)value, sizeof(value), "%063lu", i);
		r = embedded_store_ops.create(s, id, 1u << SCOPE_AI_GATEWAY, &labels, value,
		                              sizeof(value), NULL);
		if (r == -EEXIST)
			continue;
		if (r < 0) {
			fprintf(stderr, "mkstore: create %s: %s\n", id, strerror(-r));
			return 1;
		}
		made++;
		if (now() - last > 10) {
			last = now();
			fprintf(stderr, "mkstore: %lu/%lu (%.0f/s)\n", i + 1, n,
			        made / (last - t0));
		}
	}
	double dt = now() - t0;
	printf("%lu created in %.1f s (%.0f creates/s)\n", made, dt, made ? made / dt : 0.0);
	embedded_store_ops.close(s);
	key_free(key);
	return 0;
}
