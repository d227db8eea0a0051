/* SPDX-License-Identifier: MIT */
/*
 * secretsfs list MOUNTPOINT [--label K=V]... [--scope S] [--json]
 *
 * The inventory: every secret of a mounted tree with its scopes, labels,
 * version, size and time, as `vault kv list`, `docker secret ls` and
 * `systemd-creds list` give theirs.  It reads the mount only (readdir,
 * stat, getxattr): no store, no key, no value is opened or decrypted, so
 * whoever runs it sees what the mount lets them see.  A secret in several
 * scopes is one entry (by its secretsfs.id); scratch files, which have no
 * ID, are not secrets and are left out; .versions is not walked.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "cmd_list.h"
#include "cmdline.h"
#include "common.h"

#define LIST_FILTERS_MAX 16

struct entry {
	char *id;
	char *scopes; /* "ai_gateway,mcp_server", from secretsfs.scopes */
	unsigned long long version;
	long long size;
	struct timespec mtime;
	struct labels labels;
};

struct listing {
	struct entry *v;
	size_t n, cap;
};

static void entry_clear(struct entry *e)
{
	free(e->id);
	free(e->scopes);
	labels_clear(&e->labels);
}

/* One extended attribute's value as a string (malloc'ed); NULL with errno. */
static char *xattr_string(const char *path, const char *name)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		ssize_t n = lgetxattr(path, name, NULL, 0);
		if (n < 0)
			return NULL;
		char *v = malloc((size_t)n + 1);
		if (!v)
			return NULL;
		ssize_t got = lgetxattr(path, name, v, (size_t)n);
		if (got >= 0) {
			v[got] = '\0';
			return v;
		}
		free(v);
		if (errno != ERANGE) /* grew meanwhile: ask again */
			return NULL;
	}
	return NULL;
}

/* The user.tag.* labels of path into l; 0 or -errno. */
static int read_labels(const char *path, struct labels *l)
{
	ssize_t n = llistxattr(path, NULL, 0);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	char *names = malloc((size_t)n);
	if (!names)
		return -ENOMEM;
	n = llistxattr(path, names, (size_t)n);
	int r = n < 0 ? -errno : 0;
	size_t plen = strlen(LABEL_XATTR_PREFIX);
	for (ssize_t i = 0; r == 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *name = names + i;
		if (strncmp(name, LABEL_XATTR_PREFIX, plen) != 0)
			continue;
		char *value = xattr_string(path, name);
		if (!value) {
			if (errno != ENODATA) /* removed meanwhile: skipped */
				r = -errno;
			continue;
		}
		r = labels_set(l, name + plen, value);
		free(value);
	}
	free(names);
	return r;
}

static struct entry *find_entry(struct listing *ls, const char *id)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(ls->v[i].id, id) == 0)
			return &ls->v[i];
	return NULL;
}

/* One file of a scope directory: a new entry unless its ID is listed
 * already or it has none (a scratch file).  0 or -errno (after saying
 * why). */
static int add_file(struct listing *ls, const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno; /* removed meanwhile */
	if (!S_ISREG(st.st_mode))
		return 0;
	char *id = xattr_string(path, FACT_XATTR_PREFIX "id");
	if (!id)
		return errno == ENODATA || errno == ENOENT ? 0 : -errno;
	if (find_entry(ls, id)) {
		free(id);
		return 0;
	}
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? 2 * ls->cap : 64;
		struct entry *v = realloc(ls->v, cap * sizeof(*v));
		if (!v) {
			free(id);
			return -ENOMEM;
		}
		ls->v = v;
		ls->cap = cap;
	}
	struct entry *e = &ls->v[ls->n];
	*e = (struct entry){ .id = id, .size = (long long)st.st_size, .mtime = st.st_mtim };
	char *version = xattr_string(path, FACT_XATTR_PREFIX "version");
	e->scopes = xattr_string(path, FACT_XATTR_PREFIX "scopes");
	int r = version && e->scopes ? 0 : -errno;
	if (version)
		e->version = strtoull(version, NULL, 10);
	free(version);
	if (r == 0)
		r = read_labels(path, &e->labels);
	if (r < 0) {
		entry_clear(e);
		return r == -ENOENT || r == -ENODATA || r == -ESTALE ? 0 : r;
	}
	ls->n++;
	return 0;
}

/* Every scope directory under mnt (what the mount shows, not what this
 * build's scope list says). */
static int walk(const char *mnt, struct listing *ls)
{
	DIR *root = opendir(mnt);
	if (!root)
		return fail("%s: %s", mnt, strerrordesc_np(errno));
	int r = 0;
	struct dirent *d;
	while (r == 0 && (d = readdir(root))) {
		if (d->d_name[0] == '.' || scope_from_dir_name(d->d_name) < 0)
			continue; /* ., .., .versions */
		char *dir = NULL;
		if (asprintf(&dir, "%s/%s", mnt, d->d_name) < 0)
			return fail("out of memory");
		DIR *sd = opendir(dir);
		if (!sd) {
			/* a scope this user may not enter is not theirs to list */
			if (errno != EACCES)
				r = fail("%s: %s", dir, strerrordesc_np(errno));
			free(dir);
			continue;
		}
		struct dirent *f;
		while (r == 0 && (f = readdir(sd))) {
			if (strcmp(f->d_name, ".") == 0 || strcmp(f->d_name, "..") == 0)
				continue;
			char *path = NULL;
			if (asprintf(&path, "%s/%s", dir, f->d_name) < 0) {
				r = fail("out of memory");
				break;
			}
			int e = add_file(ls, path);
			if (e < 0)
				r = fail("%s: %s", path, strerrordesc_np(-e));
			free(path);
		}
		closedir(sd);
		free(dir);
	}
	closedir(root);
	return r;
}

static bool in_scope_list(const char *list, const char *scope)
{
	size_t n = strlen(scope);
	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, scope, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

struct filters {
	const char *scope;
	const char *key[LIST_FILTERS_MAX], *value[LIST_FILTERS_MAX];
	size_t nlabels;
	bool json;
};

static bool wanted(const struct filters *f, const struct entry *e)
{
	if (f->scope && !in_scope_list(e->scopes, f->scope))
		return false;
	for (size_t i = 0; i < f->nlabels; i++) {
		const char *v = labels_get(&e->labels, f->key[i]);
		if (!v || strcmp(v, f->value[i]) != 0)
			return false;
	}
	return true;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->id, ((const struct entry *)b)->id);
}

static void utc_time(const struct timespec *t, char *buf, size_t size)
{
	struct tm tm;
	time_t s = t->tv_sec;
	if (!gmtime_r(&s, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "-");
}

static int print_json(const struct listing *ls, const struct filters *f)
{
	json_t *arr = json_array();
	int r = arr ? 0 : -1;
	for (size_t i = 0; r == 0 && i < ls->n; i++) {
		const struct entry *e = &ls->v[i];
		if (!wanted(f, e))
			continue;
		char when[32];
		utc_time(&e->mtime, when, sizeof(when));
		json_t *scopes = json_array(), *labels = json_object();
		for (const char *p = e->scopes; scopes && p && *p;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			json_array_append_new(scopes, json_stringn(p, len));
			p = comma ? comma + 1 : NULL;
		}
		for (size_t k = 0; labels && k < e->labels.n; k++)
			json_object_set_new(labels, e->labels.v[k].key,
			                    json_string(e->labels.v[k].value));
		json_t *o = json_pack("{s:s, s:o, s:o, s:I, s:I, s:s, s:I}", "id", e->id, "scopes",
		                      scopes, "labels", labels, "version", (json_int_t)e->version,
		                      "size", (json_int_t)e->size, "mtime", when, "mtime_ns",
		                      (json_int_t)e->mtime.tv_sec * 1000000000 + e->mtime.tv_nsec);
		r = o ? json_array_append_new(arr, o) : -1;
	}
	if (r == 0)
		r = json_dumpf(arr, stdout, JSON_INDENT(2)) == 0 && putchar('\n') != EOF ? 0 : -1;
	json_decref(arr);
	return r == 0 ? 0 : fail("cannot write the JSON listing");
}

static void labels_text(const struct labels *l, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t k = 0; k < l->n && used < size; k++) {
		int w = snprintf(buf + used, size - used, "%s%s=%s", k ? "," : "", l->v[k].key,
		                 l->v[k].value);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int print_text(const struct listing *ls, const struct filters *f)
{
	int wid = 2, wsc = 6;
	for (size_t i = 0; i < ls->n; i++) {
		if (!wanted(f, &ls->v[i]))
			continue;
		int a = (int)strlen(ls->v[i].id), b = (int)strlen(ls->v[i].scopes);
		wid = a > wid ? a : wid;
		wsc = b > wsc ? b : wsc;
	}
	printf("%-*s  %7s  %5s  %-20s  %-*s  %s\n", wid, "ID", "VERSION", "SIZE", "MODIFIED", wsc,
	       "SCOPES", "LABELS");
	for (size_t i = 0; i < ls->n; i++) {
		const struct entry *e = &ls->v[i];
		if (!wanted(f, e))
			continue;
		char when[32], labels[4096];
		utc_time(&e->mtime, when, sizeof(when));
		labels_text(&e->labels, labels, sizeof(labels));
		printf("%-*s  %7llu  %5lld  %-20s  %-*s  %s\n", wid, e->id, e->version, e->size,
		       when, wsc, e->scopes, labels[0] ? labels : "-");
	}
	return fflush(stdout) == 0 ? 0 : fail("cannot write the listing");
}

static int list_usage(void)
{
	return fail("usage: secretsfs list MOUNTPOINT [--label KEY=VALUE]... [--scope SCOPE] "
	            "[--json]");
}

int cmd_list(int argc, char **argv)
{
	struct filters f = { 0 };
	const char *mnt = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			f.json = true;
		} else if (strcmp(a, "--scope") == 0 || strcmp(a, "--label") == 0) {
			if (++i == argc)
				return fail("%s needs a value", a);
			if (a[2] == 's') {
				if ((f.scope = argv[i]) && scope_from_dir_name(f.scope) < 0)
					return fail_unknown_scope("--scope", f.scope);
				continue;
			}
			char *eq = strchr(argv[i], '=');
			if (!eq || eq == argv[i])
				return fail("--label %s: expected KEY=VALUE", argv[i]);
			if (f.nlabels == LIST_FILTERS_MAX)
				return fail("at most %d --label filters", LIST_FILTERS_MAX);
			*eq = '\0'; /* argv is ours */
			f.key[f.nlabels] = argv[i];
			f.value[f.nlabels++] = eq + 1;
		} else if (a[0] == '-' || mnt) {
			return list_usage();
		} else {
			mnt = a;
		}
	}
	if (!mnt)
		return list_usage();
	char store[64];
	if (lgetxattr(mnt, FACT_XATTR_PREFIX "store", store, sizeof(store)) < 0)
		return fail("%s is not a secretsfs mount (%s)", mnt,
		            errno == ENODATA || errno == ENOTSUP ? "no secretsfs.store attribute"
		                                                 : strerrordesc_np(errno));
	struct listing ls = { 0 };
	int r = walk(mnt, &ls);
	if (r == 0) {
		if (ls.n)
			qsort(ls.v, ls.n, sizeof(*ls.v), by_id);
		r = f.json ? print_json(&ls, &f) : print_text(&ls, &f);
	}
	for (size_t i = 0; i < ls.n; i++)
		entry_clear(&ls.v[i]);
	free(ls.v);
	return r;
}
