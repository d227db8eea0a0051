/* SPDX-License-Identifier: MIT */
/*
 * The -o options (fs/cmdline.c's one table) against the parser and
 * against --help:
 *  - every entry of the table has a row here, with a valid value (taken by
 *    that very entry, not by another before it, and changing something)
 *    and, where the option checks its value, an invalid one and the line
 *    it prints;
 *  - each entry given in the wrong shape (a flag with a value, a value
 *    option without one) and each misspelt is refused with "did you mean"
 *    naming it;
 *  - every option cmdline_usage() names is in the table, and every entry
 *    of the table is named in cmdline_usage();
 *  - what the common shapes do: the last of a repeated string wins, rules
 *    add up, allow_other implies default_permissions, FUSE's go to libfuse.
 * A new option fails this test until it has its row here and its line in
 * --help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "harness.h"

struct row {
	const char *name;    /* as the table spells it */
	const char *valid;   /* a whole option the entry takes */
	const char *invalid; /* NULL: the option takes any value (or is a flag) */
	const char *error;   /* what invalid prints after "secretsfs: " (a prefix of it) */
};

static const struct row rows[] = {
	{ "key=", "key=/etc/secretsfs/key", NULL, NULL },
	{ "attrs=", "attrs=/var/lib/secretsfs/attrs", NULL, NULL },
	{ "keep_versions=", "keep_versions=7", "keep_versions=0",
	  "keep_versions must be 1 to 1000, not '0'\n" },
	{ "stale=", "stale=10m", "stale=1y",
	  "stale must be a duration such as 0, 90s, 10m or 1h, not '1y'\n" },
	{ "cache=", "cache=/var/cache/x",
	  "cache=", "unknown option -o cache= (did you mean cache?)" },
	{ "keep_deleted=", "keep_deleted=2d", "keep_deleted=-1",
	  "keep_deleted must be a duration such as 7d, 12h, 30m, 10s or 0 (purge at once), not "
	  "'-1'\n" },
	{ "cert=", "cert=/c.pem", "cert=", "unknown option -o cert= (did you mean cert?)" },
	{ "certkey=", "certkey=/k.pem",
	  "certkey=", "unknown option -o certkey= (did you mean certkey?)" },
	{ "etcd_user=", "etcd_user=root",
	  "etcd_user=", "unknown option -o etcd_user= (did you mean etcd_user?)" },
	{ "etcd_password=", "etcd_password=/p",
	  "etcd_password=", "unknown option -o etcd_password= (did you mean etcd_password?)" },
	{ "uid=", "uid=1000", "uid=-1", "uid must be a number, not '-1'\n" },
	{ "gid=", "gid=4294967294", "gid=4294967295", "gid must be a number, not '4294967295'\n" },
	{ "dir_mode=", "dir_mode=0750", "dir_mode=8", "dir_mode must be octal, not '8'\n" },
	{ "file_mode=", "file_mode=0440", "file_mode=10000",
	  "file_mode must be octal, not '10000'\n" },
	{ "owner=", "owner=ai_gateway:root", "owner=ai_gatway:root",
	  "-o owner: unknown scope 'ai_gatway' (did you mean ai_gateway?); the scopes are: "
	  "ai_gateway, mcp_server, ai_agent, redpanda_cluster, redpanda_connect\n" },
	{ "unit=", "unit=ai_gateway:ai-gateway.service", "unit=ai_gateway",
	  "-o unit=ai_gateway: expected unit=SCOPE:UNIT-PATTERN with a scope directory name\n" },
	{ "cgroup=", "cgroup=mcp_server:/system.slice", "cgroup=mcp_server:rel",
	  "-o cgroup=mcp_server:rel: expected cgroup=SCOPE:/PATH with a scope directory name\n" },
	{ "fast", "fast", NULL, NULL },
	{ "run_as=", "run_as=secretsfs", NULL, NULL },
	{ "allow_unlocked", "allow_unlocked", NULL, NULL },
	{ "root_bypass", "root_bypass", NULL, NULL },
	{ "audit=", "audit=journal", NULL, NULL },
	{ "ro", "ro", NULL, NULL },
	{ "reseal_digest", "reseal_digest", NULL, NULL },
	{ "allow_other", "allow_other", NULL, NULL },
	{ "default_permissions", "default_permissions", NULL, NULL },
	{ "nonempty", "nonempty", NULL, NULL },
	{ "takeover", "takeover", NULL, NULL },
	{ "credentials=", "credentials=/etc/rp", NULL, NULL },
	{ "token_url=", "token_url=https://auth.example/token", NULL, NULL },
	{ "audience=", "audience=cloudv2", NULL, NULL },
	{ "cluster=", "cluster=d0abc_1-x", "cluster=bad id",
	  "-o cluster=bad id: a Redpanda Cloud cluster ID is letters, digits, '_' and '-' (up to "
	  "64), as the Console shows it\n" },
	{ "controlplane=", "controlplane=https://api.example", "controlplane=http://api.example",
	  "-o controlplane=http://api.example: expected https://HOST\n" },
	{ "cacert=", "cacert=/ca.pem", NULL, NULL },
	{ "poll=", "poll=60", "poll=86401",
	  "poll must be 0 (never) to 86400 seconds, not '86401'\n" },
	{ "mirror=", "mirror=redpanda:https://dp.example", "mirror=https://dp.example",
	  "-o mirror=https://dp.example: expected mirror=redpanda:https://DATAPLANE-URL (or "
	  "mirror=redpanda: with -o cluster=ID)\n" },
	{ "credsocket=", "credsocket=/run/x.sock", "credsocket=run/x.sock",
	  "-o credsocket=run/x.sock: expected an absolute path "
	  "(credsocket=/run/secretsfs-credentials.sock)\n" },
	{ "on_rotate=", "on_rotate=ai_gateway:restart", "on_rotate=ai_gateway:reload",
	  "-o on_rotate=ai_gateway:reload: expected on_rotate=SCOPE:restart with a scope "
	  "directory name" },
	/* fstab, mount(8), systemd: ignored */
	{ "rw", "rw", NULL, NULL },
	{ "_netdev", "_netdev", NULL, NULL },
	{ "nofail", "nofail", NULL, NULL },
	{ "noauto", "noauto", NULL, NULL },
	{ "auto", "auto", NULL, NULL },
	{ "defaults", "defaults", NULL, NULL },
	{ "user", "user", NULL, NULL },
	{ "users", "users", NULL, NULL },
	{ "nouser", "nouser", NULL, NULL },
	{ "x-", "x-systemd.automount", NULL, NULL },
	{ "comment=", "comment=systemd.automount", NULL, NULL },
	/* FUSE's */
	{ "allow_root", "allow_root", NULL, NULL },
	{ "auto_unmount", "auto_unmount", NULL, NULL },
	{ "dev", "dev", NULL, NULL },
	{ "nodev", "nodev", NULL, NULL },
	{ "suid", "suid", NULL, NULL },
	{ "nosuid", "nosuid", NULL, NULL },
	{ "exec", "exec", NULL, NULL },
	{ "noexec", "noexec", NULL, NULL },
	{ "atime", "atime", NULL, NULL },
	{ "noatime", "noatime", NULL, NULL },
	{ "nodiratime", "nodiratime", NULL, NULL },
	{ "relatime", "relatime", NULL, NULL },
	{ "strictatime", "strictatime", NULL, NULL },
	{ "sync", "sync", NULL, NULL },
	{ "async", "async", NULL, NULL },
	{ "dirsync", "dirsync", NULL, NULL },
	{ "max_read=", "max_read=65536", NULL, NULL },
	{ "context=", "context=system_u:object_r:tmp_t:s0", NULL, NULL },
	{ "fscontext=", "fscontext=system_u:object_r:tmp_t:s0", NULL, NULL },
	{ "defcontext=", "defcontext=system_u:object_r:tmp_t:s0", NULL, NULL },
	{ "rootcontext=", "rootcontext=system_u:object_r:tmp_t:s0", NULL, NULL },
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* A command line as main() starts it (its defaults). */
static void fresh(struct cmdline *c)
{
	memset(c, 0, sizeof(*c));
	c->opt.keep_versions = 5;
	c->opt.keep_deleted_ns = 7LL * 86400 * 1000000000;
	c->opt.stale_ns = 3600LL * 1000000000;
	c->opt.dir_mode = 0700;
	c->opt.file_mode = 0600;
	c->opt.poll_s = -1;
	c->fuse_args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	REQUIRE(fuse_opt_add_arg(&c->fuse_args, "secretsfs") == 0);
}

/* cmdline_parse_options(c, list), what it printed (to stderr) in err. */
static int parse(struct cmdline *c, const char *list, char *err, size_t errsize)
{
	FILE *f = tmpfile();
	REQUIRE(f != NULL);
	fflush(stderr);
	int saved = dup(2);
	REQUIRE(saved >= 0 && dup2(fileno(f), 2) == 2);
	int r = cmdline_parse_options(c, list);
	fflush(stderr);
	REQUIRE(dup2(saved, 2) == 2);
	close(saved);
	rewind(f);
	size_t n = fread(err, 1, errsize - 1, f);
	err[n] = '\0';
	fclose(f);
	return r;
}

/* a and b (from fresh()) hold the same options.  Their bytes compared:
 * fresh() zeroes all of them, padding included, and the parser only
 * stores members. */
static bool same(const struct cmdline *a, const struct cmdline *b)
{
	/* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison,cert-exp42-c,cert-flp37-c) */
	return memcmp(&a->opt, &b->opt, sizeof(a->opt)) == 0 &&
	       /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison,cert-exp42-c,cert-flp37-c) */
	       memcmp(&a->policy, &b->policy, sizeof(a->policy)) == 0 && a->audit == b->audit &&
	       a->single_thread == b->single_thread && a->file_mode_set == b->file_mode_set &&
	       a->fake == b->fake && a->fuse_args.argc == b->fuse_args.argc;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The entry's name without its "=" ("key" for "key="). */
static void bare(const char *name, char *out, size_t size)
{
	snprintf(out, size, "%.*s", (int)strcspn(name, "="), name);
}

/* o is refused as unknown, naming name ("did you mean NAME?"; NULL: any
 * one), in one line. */
static void check_suggests(const char *o, const char *name)
{
	struct cmdline c;
	char err[4096], want[256], base[64];
	fresh(&c);
	bare(name ? name : "", base, sizeof(base));
	snprintf(want, sizeof(want), "secretsfs: unknown option -o %s (did you mean %s%s", o, base,
	         name ? "?)" : "");
	CHECK_EQ(parse(&c, o, err, sizeof(err)), 1);
	if (!starts_with(err, want))
		fprintf(stderr, "-o %s: want \"%s...\", got \"%s\"\n", o, want, err);
	CHECK(starts_with(err, want));
	CHECK(strchr(err, '\n') == err + strlen(err) - 1);
	cmdline_free(&c);
}

static const struct row *row_of(const char *name)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (strcmp(rows[i].name, name) == 0)
			return &rows[i];
	return NULL;
}

/* Every entry: its row, its valid value taken by it alone, its invalid
 * value refused with its line, its wrong shape and a misspelling refused
 * naming it. */
static void test_every_entry(void)
{
	size_t n = cmdline_option_count();
	CHECK(n > 0);
	CHECK_EQ(n, N_ROWS);
	for (size_t i = 0; i < N_ROWS; i++) {
		int at = -1;
		for (size_t j = 0; j < n; j++)
			if (strcmp(cmdline_option_name(j), rows[i].name) == 0)
				at = (int)j;
		if (at < 0)
			fprintf(stderr, "row %s: no such entry in the table\n", rows[i].name);
		CHECK(at >= 0);
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = cmdline_option_name(i);
		const struct row *row = row_of(name);
		if (!row) {
			fprintf(stderr, "entry %s has no row in test_cmdline.c\n", name);
			CHECK(row != NULL);
			continue;
		}
		size_t len = strlen(name);
		bool value = name[len - 1] == '=', prefix = name[len - 1] == '-';
		char err[4096], o[128], base[64];
		struct cmdline c, before;

		/* the valid value: this entry's, parsed without a word, and it
		 * changes something (or, ignored, nothing) */
		CHECK_EQ(cmdline_option_find(row->valid), (int)i);
		fresh(&c);
		fresh(&before);
		CHECK_EQ(parse(&c, row->valid, err, sizeof(err)), 0);
		if (err[0])
			fprintf(stderr, "-o %s: printed %s", row->valid, err);
		CHECK(err[0] == '\0');
		bool ignored = same(&c, &before);
		/* the fstab ones (rw to comment= above) change nothing */
		bool fstab = row >= row_of("rw") && row <= row_of("comment=");
		if (ignored != fstab)
			fprintf(stderr, "-o %s: %s\n", row->valid,
			        ignored ? "changed nothing" : "changed something, but is ignored");
		CHECK(ignored == fstab);
		cmdline_free(&c);
		cmdline_free(&before);

		/* the invalid value: refused with its one line */
		if (row->invalid) {
			char want[1024];
			snprintf(want, sizeof(want), "secretsfs: %s", row->error);
			fresh(&c);
			CHECK_EQ(parse(&c, row->invalid, err, sizeof(err)), 1);
			if (!starts_with(err, want))
				fprintf(stderr, "-o %s: want \"%s\", got \"%s\"\n", row->invalid,
				        want, err);
			CHECK(starts_with(err, want));
			CHECK(strchr(err, '\n') == err + strlen(err) - 1);
			cmdline_free(&c);
		}

		/* the wrong shape (every option x-... is an x- one): refused,
		 * naming the nearest (for suid=1 that is uid=, as near) */
		bare(name, base, sizeof(base));
		if (value) {
			check_suggests(base, name);
		} else if (!prefix) {
			snprintf(o, sizeof(o), "%s=1", name);
			check_suggests(o, NULL);
		}

		/* a misspelling: the first letter twice (kkey=v, rro, xx-) */
		snprintf(o, sizeof(o), "%c%s%s", name[0], name, value ? "v" : "");
		check_suggests(o, name);
	}
}

/* The options cmdline_usage() names: "  -o NAME..." lines (NAME=X,NAME=Y
 * too) and the parenthesised lists of the fstab and FUSE ones. */
static size_t usage_names(char names[][64], size_t max)
{
	char *text = NULL;
	size_t size = 0, n = 0;
	FILE *f = open_memstream(&text, &size);
	REQUIRE(f != NULL);
	cmdline_usage(f);
	fclose(f);
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!starts_with(line, "  -o "))
			continue;
		char spec[256];
		snprintf(spec, sizeof(spec), "%.*s", (int)strcspn(line + 5, " "), line + 5);
		for (char *s2 = NULL, *p = strtok_r(spec, ",", &s2); p && n < max;
		     p = strtok_r(NULL, ",", &s2)) {
			size_t l = strcspn(p, "=");
			snprintf(names[n++], 64, "%.*s%s", (int)l, p, p[l] ? "=" : "");
		}
	}
	free(text);
	/* again, whole: the lists span lines */
	f = open_memstream(&text, &size);
	REQUIRE(f != NULL);
	cmdline_usage(f);
	fclose(f);
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	const char *lists[] = { "fstab options (", "FUSE's (" };
	char *from = text;
	for (size_t k = 0; k < 2; k++) {
		char *start = strstr(from, lists[k]);
		CHECK(start != NULL);
		if (!start)
			continue;
		start += strlen(lists[k]);
		char *end = strchr(start, ')');
		REQUIRE(end != NULL);
		*end = '\0';
		from = end + 1;
		for (char *s2 = NULL, *p = strtok_r(start, ", ", &s2); p && n < max;
		     p = strtok_r(NULL, ", ", &s2))
			snprintf(names[n++], 64, "%.*s", (int)strcspn(p, "*"), p);
	}
	free(text);
	return n;
}

static void test_usage_names_the_table(void)
{
	char names[256][64];
	size_t n = usage_names(names, 256), count = cmdline_option_count();
	CHECK(n > 40);
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t j = 0; j < count && !found; j++)
			found = strcmp(names[i], cmdline_option_name(j)) == 0;
		if (!found)
			fprintf(stderr, "--help names -o %s, which the table lacks\n", names[i]);
		CHECK(found);
	}
	for (size_t j = 0; j < count; j++) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(names[i], cmdline_option_name(j)) == 0;
		if (!found)
			fprintf(stderr, "the table has -o %s, which --help does not name\n",
			        cmdline_option_name(j));
		CHECK(found);
	}
	/* each entry once */
	for (size_t j = 0; j < count; j++)
		for (size_t k = j + 1; k < count; k++)
			CHECK(strcmp(cmdline_option_name(j), cmdline_option_name(k)) != 0);
}

/* What the shapes do, repeated and combined. */
static void test_effects(void)
{
	struct cmdline c;
	char err[4096];

	fresh(&c);
	CHECK_EQ(parse(&c,
	               "key=/a,key=/b,keep_versions=9,uid=1000,gid=100,dir_mode=0750,stale=90s,"
	               "keep_deleted=0,poll=0,audit=off,ro",
	               err, sizeof(err)),
	         0);
	CHECK(strcmp(c.opt.key_file, "/b") == 0); /* the last wins */
	CHECK_EQ(c.opt.keep_versions, 9);
	CHECK_EQ(c.opt.uid, 1000);
	CHECK_EQ(c.opt.gid, 100);
	CHECK_EQ(c.opt.dir_mode, 0750);
	CHECK_EQ(c.opt.stale_ns, 90LL * 1000000000);
	CHECK_EQ(c.opt.keep_deleted_ns, 0);
	CHECK_EQ(c.opt.poll_s, 0);
	CHECK(strcmp(c.audit, "off") == 0);
	CHECK(c.opt.read_only);
	CHECK(!c.file_mode_set); /* cmdline_parse makes the mode 0400 with ro */
	cmdline_free(&c);

	fresh(&c);
	CHECK_EQ(parse(&c, "file_mode=0440,allow_other", err, sizeof(err)), 0);
	CHECK_EQ(c.opt.file_mode, 0440);
	CHECK(c.file_mode_set);
	CHECK(c.opt.allow_other && c.opt.default_permissions);
	cmdline_free(&c);

	/* rules add up, per scope */
	fresh(&c);
	CHECK_EQ(parse(&c,
	               "unit=ai_gateway:a.service,unit=ai_gateway:b.service,cgroup=mcp_server:/x",
	               err, sizeof(err)),
	         0);
	CHECK_EQ(c.policy.scope[scope_from_dir_name("ai_gateway")].nunits, 2);
	CHECK_EQ(c.policy.scope[scope_from_dir_name("mcp_server")].ncgroups, 1);
	cmdline_free(&c);

	/* FUSE's go to libfuse as given, ignored ones nowhere */
	fresh(&c);
	CHECK_EQ(parse(&c, "nofail,max_read=4096,x-systemd.requires=a,noatime", err, sizeof(err)),
	         0);
	CHECK_EQ(c.fuse_args.argc, 5);
	CHECK(strcmp(c.fuse_args.argv[1], "-o") == 0);
	CHECK(strcmp(c.fuse_args.argv[2], "max_read=4096") == 0);
	CHECK(strcmp(c.fuse_args.argv[4], "noatime") == 0);
	cmdline_free(&c);

	/* the first bad option stops the list, the ones before it kept */
	fresh(&c);
	CHECK_EQ(parse(&c, "fast,alow_other,nonempty", err, sizeof(err)), 1);
	CHECK(starts_with(err, "secretsfs: unknown option -o alow_other (did you mean "
	                       "allow_other?); the options are: key=, attrs=, keep_versions="));
	CHECK(strstr(err, ", x-*, comment=, allow_root, ") != NULL);
	CHECK(c.opt.fast && !c.opt.nonempty);
	cmdline_free(&c);
}

int main(void)
{
	test_every_entry();
	test_usage_names_the_table();
	test_effects();
	return harness_result("test_cmdline");
}
