/* SPDX-License-Identifier: MIT */
/* A 3-member etcd cluster on 127.0.0.1 for a unit test, started and
 * stopped by tests/tools/etcd-cluster ($ETCD_CLUSTER).  The cluster is
 * stopped at exit; if the test dies, the harness's watchdog stops it.
 * Include after harness.h. */
#ifndef SECRETSFS_TEST_ETCD_CLUSTER_H
#define SECRETSFS_TEST_ETCD_CLUSTER_H

#include <stdbool.h>
#include <sys/wait.h>

static const char *etcd_cluster_tool;
static char *etcd_cluster_dir;
static char *etcd_cluster_urls[3]; /* "http://127.0.0.1:PORT", member 1 to 3 */
static bool etcd_cluster_up;

/* etcd_cluster(CMD, MEMBER or NULL): runs the harness, its exit status */
static int etcd_cluster(const char *cmd, const char *member)
{
	pid_t pid = fork();
	int st;

	REQUIRE(pid >= 0);
	if (pid == 0) {
		execl(etcd_cluster_tool, etcd_cluster_tool, cmd, etcd_cluster_dir, member,
		      (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void etcd_cluster_stop_all(void)
{
	if (!etcd_cluster_up)
		return;
	etcd_cluster("stop-all", NULL);
	etcd_cluster_up = false;
	harness_rmrf(etcd_cluster_dir);
	for (int i = 0; i < 3; i++) {
		free(etcd_cluster_urls[i]);
		etcd_cluster_urls[i] = NULL;
	}
}

static bool etcd_cluster_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "/usr/bin:/bin"), *save = NULL, *d, *f;
	bool found = false;

	REQUIRE(copy != NULL);
	for (d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		f = harness_path(d, name);
		found = access(f, X_OK) == 0;
		free(f);
	}
	free(copy);
	return found;
}

/* Starts the cluster and fills etcd_cluster_urls, or exits the test
 * named test: 1 without $ETCD_CLUSTER, 77 (skipped) without etcd. */
static void etcd_cluster_start(const char *test)
{
	char *path, line[512], *save = NULL, *tok;
	FILE *f;
	int i = 0;
	char pid[16];

	etcd_cluster_tool = getenv("ETCD_CLUSTER");
	if (!etcd_cluster_tool) {
		fprintf(stderr, "%s: ETCD_CLUSTER (tests/tools/etcd-cluster) not set\n", test);
		exit(1);
	}
	if (!etcd_cluster_in_path("etcd") || !etcd_cluster_in_path("etcdctl")) {
		fprintf(stderr,
		        "%s: SKIP: etcd/etcdctl not installed "
		        "(scripts/install-deps installs etcd-server and etcd-client)\n",
		        test);
		exit(77);
	}
	etcd_cluster_dir = harness_tmpdir();
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("ETCD_CLUSTER_OWNER", pid, 1); /* the harness's watchdog watches us */
	etcd_cluster_up = true;
	atexit(etcd_cluster_stop_all);
	REQUIRE(etcd_cluster("start", NULL) == 0);
	path = harness_path(etcd_cluster_dir, "endpoints");
	f = fopen(path, "r");
	REQUIRE(f && fgets(line, sizeof(line), f));
	fclose(f);
	free(path);
	line[strcspn(line, "\n")] = '\0';
	for (tok = strtok_r(line, ",", &save); tok && i < 3; tok = strtok_r(NULL, ",", &save))
		etcd_cluster_urls[i++] = strdup(tok);
	REQUIRE(i == 3);
}

#endif
