/* SPDX-License-Identifier: MIT */
/* The mount command line.  Every option is documented in cmdline_usage(),
 * the README and secretsfs(1). */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"
#include "etcd.h"
#include "etcd_conn.h"
#include "mirror.h"

void cmdline_usage(FILE *out)
{
	fprintf(out,
	        "usage: secretsfs init DIR [-o key=FILE[,run_as=USER]]\n"
	        "       secretsfs init etcd[+https]://HOST:PORT[,HOST:PORT...]/PREFIX -o "
	        "key=FILE[,...]\n"
	        "       secretsfs list MOUNTPOINT [--label KEY=VALUE]... [--scope SCOPE] "
	        "[--json]\n"
	        "       secretsfs backup DIR FILE\n"
	        "       secretsfs restore FILE DIR\n"
	        "       secretsfs rekey DIR\n"
	        "       secretsfs DIR MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
	        "       secretsfs etcd[+https]://HOST:PORT[,...]/PREFIX MOUNTPOINT -o "
	        "key=FILE,attrs=FILE[,...]\n"
	        "       secretsfs redpanda:https://DATAPLANE-URL MOUNTPOINT -o credentials=FILE "
	        "[...]\n"
	        "       secretsfs redpanda: MOUNTPOINT -o cluster=ID,credentials=FILE[,...]\n"
	        "\n"
	        "Serves the Secrets Store in DIR as files: one directory per scope, one file\n"
	        "per secret, labels as user.tag.* extended attributes.\n"
	        "\n"
	        "scopes (the directories): ai_gateway, mcp_server, ai_agent, redpanda_cluster,\n"
	        "  redpanda_connect; .versions holds old values (root only)\n"
	        "secret IDs (file names): ^[A-Z][A-Z0-9_]*$, up to 255 characters, e.g.\n"
	        "  OPENAI_API_KEY.  Tools' temporaries are scratch files, held in memory and\n"
	        "  never stored unless renamed onto an ID: .NAME (any dot-file), NAME~,\n"
	        "  digits only, sedXXXXXX, tmpXXXXXX..., #NAME#.  Any other name is refused\n"
	        "  (EINVAL; the log names the ID meant: openai_api_key -> OPENAI_API_KEY)\n"
	        "\n"
	        "commands:\n"
	        "  init DIR               create an empty store and a new key file DIR/key (0400)\n"
	        "  init DIR -o key=FILE   the same with the new key at FILE, outside DIR\n"
	        "                         (refused if FILE exists; its missing directory is\n"
	        "                         made, 0700); mount with -o key=FILE\n"
	        "  init DIR -o key=FILE,run_as=USER\n"
	        "                         the same, then DIR made USER's (the store of\n"
	        "                         -o run_as=USER); the key stays root's\n"
	        "  list MOUNTPOINT        every secret of a mounted tree: ID, version, size,\n"
	        "                         time, scopes, labels (reads the mount only: no\n"
	        "                         store access, nothing decrypted); --label K=V and\n"
	        "                         --scope S filter, --json prints a JSON array\n"
	        "  init etcd://…/PREFIX -o key=FILE\n"
	        "                         create an empty store under PREFIX of an etcd cluster\n"
	        "                         (refused if PREFIX holds keys), sealed with the key in\n"
	        "                         FILE (a new one, 0400, if FILE does not exist)\n"
	        "  backup DIR FILE        a consistent copy of the store in DIR, mounted or\n"
	        "                         not, into the new file FILE (0600): sealed as the\n"
	        "                         store is, it opens with the same key\n"
	        "  restore FILE DIR       FILE (a backup) becomes the store in DIR, which holds\n"
	        "                         the store's key (DIR/key, 0400) and no store yet;\n"
	        "                         checked with that key before it is kept\n"
	        "  rekey DIR              seal the store in DIR (not mounted) again under a new\n"
	        "                         key, which becomes DIR/key; made first as\n"
	        "                         DIR/key.new, the old key opening the store until\n"
	        "                         all is sealed again: killed, run it again\n"
	        "                         FILE (a new one, 0400, if FILE does not exist);\n"
	        "                         etcd+https:// for TLS; takes cacert=, cert=,\n"
	        "                         certkey=, etcd_user=, etcd_password= as a mount does\n"
	        "\n"
	        "options:\n"
	        "  -o key=FILE            the store key (default: $CREDENTIALS_DIRECTORY/%s\n"
	        "                         when systemd passes it, else DIR/key); refused if\n"
	        "                         group or others can read it\n"
	        "  -o keep_versions=N     versions of each value the store keeps (default 5)\n"
	        "  -o stale=DURATION      etcd store: how long after etcd was last reachable\n"
	        "                         values are still served (stale, logged) from the\n"
	        "                         local copy: 0 (never), Ns, Nm, Nh (default 1h)\n"
	        "  -o cache=FILE          etcd store: the sealed copy of the store kept on\n"
	        "                         this host, to mount from while etcd is down\n"
	        "                         (default: the attrs file's path + .etcd-cache)\n"
	        "  -o keep_deleted=DURATION\n"
	        "                         how long a deleted secret is kept (sealed, with its\n"
	        "                         versions, labels and scopes) in /.deleted, root's\n"
	        "                         only, for mv /.deleted/ID SCOPE/ID to restore it;\n"
	        "                         rm there purges it.  Ns, Nm, Nh, Nd; 0: purge at\n"
	        "                         once (default 7d)\n"
	        "  -o cacert=FILE         etcd+https, Redpanda Cloud: verify the server's\n"
	        "                         certificate against this CA (PEM; default: the\n"
	        "                         system's CAs)\n"
	        "  -o cert=FILE,certkey=FILE\n"
	        "                         etcd+https: the client certificate and its key (the\n"
	        "                         key refused if group or others can read it)\n"
	        "  -o etcd_user=NAME      etcd auth: log in as NAME (again when the token\n"
	        "                         lapses); the password from etcd_password=, else\n"
	        "                         $CREDENTIALS_DIRECTORY/" ETCD_PASSWORD_CREDENTIAL "\n"
	        "  -o etcd_password=FILE  the password: FILE's first line (refused if group\n"
	        "                         or others can read it); never argv or environment\n"
	        "  -o attrs=FILE          where chmod and chown of secrets and scopes are kept\n"
	        "                         across remounts (default: DIR/host-attrs)\n"
	        "  -o credentials=FILE    Redpanda Cloud: the OAuth client, lines client_id=…\n"
	        "                         and client_secret=… (default:\n"
	        "                         $CREDENTIALS_DIRECTORY/redpanda.credentials); refused\n"
	        "                         if group or others can read it\n"
	        "  -o token_url=URL       Redpanda Cloud: the OAuth token endpoint (default\n"
	        "                         https://auth.prd.cloud.redpanda.com/oauth/token)\n"
	        "  -o audience=NAME       Redpanda Cloud: the token's audience (default\n"
	        "                         cloudv2-production.redpanda.cloud)\n"
	        "  -o cluster=ID          Redpanda Cloud: the cluster whose data plane to use,\n"
	        "                         looked up through the control plane (the source is\n"
	        "                         then just redpanda:)\n"
	        "  -o controlplane=URL    Redpanda Cloud: the control plane API for cluster=\n"
	        "                         (default https://api.redpanda.com)\n"
	        "  -o poll=SECONDS        Redpanda Cloud: list the store every SECONDS for\n"
	        "                         changes made elsewhere (default 30; 0: never)\n"
	        "  -o mirror=redpanda:https://DATAPLANE-URL\n"
	        "                         embedded and etcd stores: every committed change is\n"
	        "                         also applied to that Redpanda Cloud store, in the\n"
	        "                         background, with the credentials=, cacert=,\n"
	        "                         token_url=, audience= above; kept pending while the\n"
	        "                         cloud is down (ATTRS.mirror records what was pushed);\n"
	        "                         reconciled at mount; getfattr -n secretsfs.mirror\n"
	        "                         FILE says synced, pending since … or the last error\n"
	        "  -o ro                  read-only: every change is refused with EROFS\n"
	        "  -o reseal_digest       accept a store.db whose rows no longer match its\n"
	        "                         authenticated digest (rows removed or repaired by\n"
	        "                         hand), as it is: accepts any rollback in it too\n"
	        "  -o allow_other         let users other than the mounter in (turns on\n"
	        "                         default_permissions: the kernel checks modes)\n"
	        "  -o default_permissions let the kernel check owner and mode bits\n"
	        "  -o uid=N,gid=N         owner of every directory and file (default: root)\n"
	        "  -o dir_mode=OCTAL      mode of the scope directories (default 0700)\n"
	        "  -o file_mode=OCTAL     mode of secret files (default 0600, 0400 with ro)\n"
	        "  -o owner=SCOPE:USER[:GROUP]\n"
	        "                         owner of a scope directory and of its files\n"
	        "  -o unit=SCOPE:PATTERN  only processes of systemd units matching PATTERN\n"
	        "                         (fnmatch) open files of SCOPE; repeatable\n"
	        "  -o cgroup=SCOPE:PATH   only processes in cgroup PATH (or below) open\n"
	        "                         files of SCOPE; repeatable\n"
	        "  -o root_bypass         root is not held to unit= and cgroup= rules\n"
	        "  -o audit=WHERE         the audit trail: log (default, with the daemon's\n"
	        "                         log), syslog (authpriv), journal (with fields\n"
	        "                         SECRETSFS_ID= ...), an absolute file path, off\n"
	        "  -o credsocket=PATH     serve systemd credentials on the socket PATH: a\n"
	        "                         unit with LoadCredential=ID:PATH gets secret ID if\n"
	        "                         a unit= or cgroup= rule of one of its scopes admits\n"
	        "                         the unit (no rule: nothing is served); a refused\n"
	        "                         unit fails to start (243/CREDENTIALS)\n"
	        "  -o on_rotate=SCOPE:restart\n"
	        "                         a new value of a secret in SCOPE restarts (systemctl\n"
	        "                         try-restart) the units that loaded it from\n"
	        "                         credsocket; repeatable; not with run_as\n"
	        "  -o run_as=USER         mount as root, then serve as USER (with no other\n"
	        "                         privilege than locked memory); the mounting process\n"
	        "                         stays to unmount when the server stops or dies\n"
	        "  -o allow_unlocked      serve even when memory cannot be locked (no\n"
	        "                         CAP_IPC_LOCK, low LimitMEMLOCK=): plaintext may\n"
	        "                         then be swapped out.  Without it the mount is\n"
	        "                         refused, and so is an open that finds no locked memory\n"
	        "  -o fast                reads from the kernel's page cache, with no round\n"
	        "                         trip to the daemon per open: each version is an inode\n"
	        "                         of its own.  Gives up: per-open audit, unit= and\n"
	        "                         cgroup= rules, plaintext kept out of the page cache,\n"
	        "                         and writes in place (values change by mv of a\n"
	        "                         scratch file only)\n"
	        "  -o nonempty            mount over a directory that holds files (hidden while\n"
	        "                         mounted); without it such a mountpoint is refused\n"
	        "  -o takeover            take the mount over from the secretsfs serving\n"
	        "                         MOUNTPOINT (same user, no run_as): it hands its\n"
	        "                         connection over and exits, the mount never goes\n"
	        "                         away (an upgrade in place)\n"
	        "  -f                     stay in the foreground, log to stderr\n"
	        "  -d                     debug: -f, and log every FUSE request\n"
	        "  -s                     single-threaded\n"
	        "  -h, --help             this text\n"
	        "  -V, --version          the version\n"
	        "fstab options (rw, _netdev, nofail, noauto, auto, defaults, user, users,\n"
	        "nouser, x-*, comment=) are accepted and ignored; FUSE's (allow_root,\n"
	        "auto_unmount, dev, nodev, suid, nosuid, exec, noexec, atime, noatime,\n"
	        "nodiratime, relatime, strictatime, sync, async, dirsync, max_read=, context=,\n"
	        "fscontext=, defcontext=, rootcontext=) go to libfuse; any other option is\n"
	        "refused, naming the nearest one.\n",
	        CREDENTIAL_NAME);
}

int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("secretsfs: ", stderr);
	/* ap is started above: clang-tidy 14's analyzer says otherwise since
	 * this file holds the option table (a false positive, not understood) */
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* Edit distance (Levenshtein) of a and b, capped: names are short. */
static size_t edits(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *did_you_mean(const char *word, const char *const *choices, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t d = edits(word, choices[i]);
		if (d < best_d) {
			best_d = d;
			best = choices[i];
		}
	}
	return best && best_d <= 2 && 2 * best_d < strlen(word) ? best : NULL;
}

int fail_unknown_scope(const char *in, const char *scope)
{
	const char *names[SCOPE_COUNT];
	char list[256] = "";
	size_t used = 0;
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		names[sc] = scope_dir_name(sc);
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", sc ? ", " : "",
		                 names[sc]);
		if (w > 0 && (size_t)w < sizeof(list) - used)
			used += (size_t)w;
	}
	const char *near = did_you_mean(scope, names, SCOPE_COUNT);
	return fail("%s%sunknown scope '%s'%s%s%s; the scopes are: %s", in ? in : "",
	            in ? ": " : "", scope, near ? " (did you mean " : "", near ? near : "",
	            near ? "?)" : "", list);
}

static bool parse_uint(const char *s, int base, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || end == s || *end || v > max || *s == '-')
		return false;
	*ret = v;
	return true;
}

/* A duration: N with s, m, h or d after it (no unit: seconds), at most
 * 10 years; 0 is 0.  False if s is none. */
static bool parse_duration(const char *s, int64_t *ret_ns)
{
	static const struct {
		char unit;
		int64_t ns;
	} units[] = {
		{ 's', 1000000000LL },
		{ 'm', 60LL * 1000000000LL },
		{ 'h', 3600LL * 1000000000LL },
		{ 'd', 86400LL * 1000000000LL },
	};
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	int64_t unit = units[0].ns;
	if (*end) {
		size_t i = 0;
		while (i < sizeof(units) / sizeof(units[0]) && units[i].unit != *end)
			i++;
		if (i == sizeof(units) / sizeof(units[0]) || end[1])
			return false;
		unit = units[i].ns;
	}
	if (errno || n > 3650ULL * 86400ULL * 1000000000ULL / (unsigned long long)unit)
		return false;
	*ret_ns = (int64_t)n * unit;
	return true;
}

/* How an option is written. */
enum option_shape {
	OPT_FLAG,   /* NAME, exactly: ro */
	OPT_VALUE,  /* NAME=VALUE: keep_versions=3 (VALUE may be empty unless .nonempty) */
	OPT_PREFIX, /* anything that begins with NAME: x- takes x-systemd.automount */
};

struct mount_option;
/* Takes option o (as given, e.g. "uid=1000"); value is what follows the
 * name ("1000"; "" for a flag).  0, or 1 after printing why (fail()). */
typedef int mount_option_parser(struct cmdline *c, const struct mount_option *opt, const char *o,
                                const char *value);

struct mount_option {
	const char *name; /* as spelt in the list of "did you mean": "ro", "key=", "x-" */
	enum option_shape shape;
	mount_option_parser *parse;
	/* what the generic parsers below need (the others ignore them): */
	size_t field;  /* set_*: the field of struct cmdline set (FIELD()) */
	bool nonempty; /* an empty VALUE is not this option: refused as unknown */
	int base;      /* unsigned numbers: base (10, 8) and bounds */
	unsigned long min, max;
	/* numbers, durations: "NAME must be MUST, not 'VALUE'" */
	const char *must;
	/* set_checked_string: VALUE must pass valid(), else "-o NAME=VALUE: WHY" */
	bool (*valid)(const char *value);
	const char *why;
	/* add_scope_rule: the policy's parser of this rule */
	int (*add_rule)(struct policy *p, const char *arg, const char **ret_why);
};

/* The field m of struct cmdline, which must be of type t (else the build
 * warns: incompatible pointer). */
#define FIELD(m, t) (offsetof(struct cmdline, m) + 0 * sizeof((t *){ &((struct cmdline *)0)->m }))
#define FIELD_OF(c, opt, t) ((t *)((char *)(c) + (opt)->field))

/* The generic parsers: a flag that sets a bool, a string copied (the one
 * given last wins; checked first, or not), an unsigned number or a
 * duration within bounds. */
static int set_bool(struct cmdline *c, const struct mount_option *opt, const char *o,
                    const char *value)
{
	*FIELD_OF(c, opt, bool) = true;
	return 0;
}

static int set_string(struct cmdline *c, const struct mount_option *opt, const char *o,
                      const char *value)
{
	char **slot = FIELD_OF(c, opt, char *);
	free(*slot);
	*slot = strdup(value);
	if (!*slot)
		return fail("out of memory");
	return 0;
}

/* A string that must pass opt->valid: else "-o NAME=VALUE: WHY". */
static int set_checked_string(struct cmdline *c, const struct mount_option *opt, const char *o,
                              const char *value)
{
	if (!opt->valid(value))
		return fail("-o %s: %s", o, opt->why);
	return set_string(c, opt, o, value);
}

/* "NAME must be MUST, not 'VALUE'" */
static int fail_must(const struct mount_option *opt, const char *value)
{
	return fail("%.*s must be %s, not '%s'", (int)strcspn(opt->name, "="), opt->name, opt->must,
	            value);
}

static int unsigned_value(const struct mount_option *opt, const char *value, unsigned *ret)
{
	unsigned long v;
	if (!parse_uint(value, opt->base, opt->max, &v) || v < opt->min)
		return fail_must(opt, value);
	*ret = (unsigned)v;
	return 0;
}

static int set_unsigned(struct cmdline *c, const struct mount_option *opt, const char *o,
                        const char *value)
{
	return unsigned_value(opt, value, FIELD_OF(c, opt, unsigned));
}

static int set_duration(struct cmdline *c, const struct mount_option *opt, const char *o,
                        const char *value)
{
	if (!parse_duration(value, FIELD_OF(c, opt, int64_t)))
		return fail_must(opt, value);
	return 0;
}

/* fstab, mount(8), systemd options: not for us */
static int ignore(struct cmdline *c, const struct mount_option *opt, const char *o,
                  const char *value)
{
	return 0;
}

/* FUSE's mount options: to libfuse as given */
static int to_fuse(struct cmdline *c, const struct mount_option *opt, const char *o,
                   const char *value)
{
	if (fuse_opt_add_arg(&c->fuse_args, "-o") < 0 || fuse_opt_add_arg(&c->fuse_args, o) < 0)
		return fail("out of memory");
	return 0;
}

/* The options that need more than a generic parser. */
static int parse_poll(struct cmdline *c, const struct mount_option *opt, const char *o,
                      const char *value)
{
	unsigned v = 0;
	if (unsigned_value(opt, value, &v))
		return 1;
	c->opt.poll_s = (int)v;
	return 0;
}

static int parse_file_mode(struct cmdline *c, const struct mount_option *opt, const char *o,
                           const char *value)
{
	if (set_unsigned(c, opt, o, value))
		return 1;
	c->file_mode_set = true; /* else ro makes it 0400 */
	return 0;
}

static int parse_allow_other(struct cmdline *c, const struct mount_option *opt, const char *o,
                             const char *value)
{
	c->opt.allow_other = true;
	c->opt.default_permissions = true; /* else every user could read all */
	return 0;
}

/* The checks of checked strings (set_checked_string). */
static bool cluster_id(const char *v)
{
	return *v && strlen(v) <= 64 &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(v);
}

static bool https_url(const char *v)
{
	return strncmp(v, "https://", 8) == 0;
}

static bool absolute_path(const char *v)
{
	return v[0] == '/';
}

static int parse_on_rotate(struct cmdline *c, const struct mount_option *opt, const char *o,
                           const char *value)
{
	const char *why = "out of memory";
	if (policy_add_on_rotate(&c->policy, value, &why) < 0)
		return fail("-o %s: %s", o, why);
	return 0;
}

/* owner=, unit=, cgroup=: SCOPE:..., added to the scope's rules (repeatable) */
static int add_scope_rule(struct cmdline *c, const struct mount_option *opt, const char *o,
                          const char *value)
{
	const char *why = "out of memory";
	int r = opt->add_rule(&c->policy, value, &why);
	char scope[64];
	size_t sl = strcspn(value, ":");
	snprintf(scope, sizeof(scope), "%.*s", (int)(sl < sizeof(scope) ? sl : 63), value);
	if (r < 0 && value[sl] == ':' && scope_from_dir_name(scope) < 0) {
		char in[80];
		snprintf(in, sizeof(in), "-o %.*s", (int)(value - o - 1), o);
		return fail_unknown_scope(in, scope);
	}
	if (r < 0)
		return fail("-o %s: %s", o, why);
	return 0;
}

/* An entry: { its name and shape, how it is parsed }. */
#define FLAG(n) .name = (n), .shape = OPT_FLAG
#define VALUE(n) .name = (n "="), .shape = OPT_VALUE
#define PREFIX(n) .name = (n), .shape = OPT_PREFIX
#define BOOL(m) .parse = set_bool, .field = FIELD(m, bool)
#define STRING(m) .parse = set_string, .field = FIELD(m, char *)
#define NUMBER(b, lo, hi, text) .base = (b), .min = (lo), .max = (hi), .must = (text)
#define UNSIGNED(m, b, lo, hi, text)                                                               \
	.parse = set_unsigned, .field = FIELD(m, unsigned), NUMBER(b, lo, hi, text)
#define CHECKED_STRING(m, check, text)                                                             \
	.parse = set_checked_string, .field = FIELD(m, char *), .valid = (check), .why = (text)
#define DURATION(m, text) .parse = set_duration, .field = FIELD(m, int64_t), .must = (text)
/*
 * Every -o option there is: ours, the fstab ones we ignore, FUSE's.
 * parse_option() takes each -o option to the one entry that matches it;
 * an option no entry takes is refused, naming the nearest entry (in this
 * order) and listing them all.  Checks that involve several options or
 * the source (mirror= with ro, cache= on a non-etcd store, on_rotate=
 * without credsocket=, ...) and defaults that depend on others come
 * after all options are read, in cmdline_parse().
 *
 * To add an option: one line here, with the generic parser that fits
 * (BOOL, STRING, CHECKED_STRING, UNSIGNED, DURATION) or a parse_NAME() of its own above
 * (one that prints one line on bad input, with fail(), and returns 1).
 * Then document it in cmdline_usage() (--help, as a "  -o NAME" line),
 * docs/man/secretsfs.1, README.md's option table if users set it, and
 * tests/fuzz/cmdline.dict; and give it a valid and an invalid value in
 * tests/unit/test_cmdline.c (which fails until the table, --help and
 * its list agree).
 */
static const struct mount_option options[] = {
	{ VALUE("key"), STRING(opt.key_file) },
	{ VALUE("attrs"), STRING(opt.attrs_file) },
	{ VALUE("keep_versions"), UNSIGNED(opt.keep_versions, 10, 1, 1000, "1 to 1000") },
	{ VALUE("stale"), DURATION(opt.stale_ns, "a duration such as 0, 90s, 10m or 1h") },
	{ VALUE("cache"), STRING(opt.cache_file), .nonempty = true },
	{ VALUE("keep_deleted"),
	  DURATION(opt.keep_deleted_ns,
	           "a duration such as 7d, 12h, 30m, 10s or 0 (purge at once)") },
	{ VALUE("cert"), STRING(opt.cert), .nonempty = true },
	{ VALUE("certkey"), STRING(opt.certkey), .nonempty = true },
	{ VALUE("etcd_user"), STRING(opt.etcd_user), .nonempty = true },
	{ VALUE("etcd_password"), STRING(opt.etcd_password_file), .nonempty = true },
	{ VALUE("uid"), UNSIGNED(opt.uid, 10, 0, UINT_MAX - 1, "a number") },
	{ VALUE("gid"), UNSIGNED(opt.gid, 10, 0, UINT_MAX - 1, "a number") },
	{ VALUE("dir_mode"), UNSIGNED(opt.dir_mode, 8, 0, 07777, "octal") },
	{ VALUE("file_mode"), .parse = parse_file_mode, .field = FIELD(opt.file_mode, unsigned),
	  NUMBER(8, 0, 07777, "octal") },
	{ VALUE("owner"), .parse = add_scope_rule, .add_rule = policy_add_owner },
	{ VALUE("unit"), .parse = add_scope_rule, .add_rule = policy_add_unit },
	{ VALUE("cgroup"), .parse = add_scope_rule, .add_rule = policy_add_cgroup },
	{ FLAG("fast"), BOOL(opt.fast) },
	{ VALUE("run_as"), STRING(opt.run_as) },
	{ FLAG("allow_unlocked"), BOOL(opt.allow_unlocked) },
	{ FLAG("root_bypass"), BOOL(policy.root_bypass) },
	{ VALUE("audit"), STRING(audit) },
	{ FLAG("ro"), BOOL(opt.read_only) },
	{ FLAG("reseal_digest"), BOOL(opt.reseal_digest) },
	{ FLAG("allow_other"), .parse = parse_allow_other },
	{ FLAG("default_permissions"), BOOL(opt.default_permissions) },
	{ FLAG("nonempty"), BOOL(opt.nonempty) },
	{ FLAG("takeover"), BOOL(opt.takeover) },
	{ VALUE("credentials"), STRING(opt.credentials) },
	{ VALUE("token_url"), STRING(opt.token_url) },
	{ VALUE("audience"), STRING(opt.audience) },
	{ VALUE("cluster"),
	  CHECKED_STRING(opt.cluster, cluster_id,
	                 "a Redpanda Cloud cluster ID is letters, digits, '_' and "
	                 "'-' (up to 64), as the Console shows it") },
	{ VALUE("controlplane"),
	  CHECKED_STRING(opt.controlplane, https_url, "expected https://HOST") },
	{ VALUE("cacert"), STRING(opt.cacert) },
	{ VALUE("poll"), .parse = parse_poll, NUMBER(10, 0, 86400, "0 (never) to 86400 seconds") },
	{ VALUE("mirror"), CHECKED_STRING(opt.mirror, mirror_source_valid,
	                                  "expected mirror=redpanda:https://DATAPLANE-URL (or "
	                                  "mirror=redpanda: with -o cluster=ID)") },
	{ VALUE("credsocket"), CHECKED_STRING(opt.credsocket, absolute_path,
	                                      "expected an absolute path "
	                                      "(credsocket=/run/secretsfs-credentials.sock)") },
	{ VALUE("on_rotate"), .parse = parse_on_rotate },
	/* fstab, mount(8), systemd: accepted and ignored */
	{ FLAG("rw"), .parse = ignore },
	{ FLAG("_netdev"), .parse = ignore },
	{ FLAG("nofail"), .parse = ignore },
	{ FLAG("noauto"), .parse = ignore },
	{ FLAG("auto"), .parse = ignore },
	{ FLAG("defaults"), .parse = ignore },
	{ FLAG("user"), .parse = ignore },
	{ FLAG("users"), .parse = ignore },
	{ FLAG("nouser"), .parse = ignore },
	{ PREFIX("x-"), .parse = ignore },
	{ VALUE("comment"), .parse = ignore },
	/* FUSE's mount options, passed to libfuse as given */
	{ FLAG("allow_root"), .parse = to_fuse },
	{ FLAG("auto_unmount"), .parse = to_fuse },
	{ FLAG("dev"), .parse = to_fuse },
	{ FLAG("nodev"), .parse = to_fuse },
	{ FLAG("suid"), .parse = to_fuse },
	{ FLAG("nosuid"), .parse = to_fuse },
	{ FLAG("exec"), .parse = to_fuse },
	{ FLAG("noexec"), .parse = to_fuse },
	{ FLAG("atime"), .parse = to_fuse },
	{ FLAG("noatime"), .parse = to_fuse },
	{ FLAG("nodiratime"), .parse = to_fuse },
	{ FLAG("relatime"), .parse = to_fuse },
	{ FLAG("strictatime"), .parse = to_fuse },
	{ FLAG("sync"), .parse = to_fuse },
	{ FLAG("async"), .parse = to_fuse },
	{ FLAG("dirsync"), .parse = to_fuse },
	{ VALUE("max_read"), .parse = to_fuse },
	{ VALUE("context"), .parse = to_fuse },
	{ VALUE("fscontext"), .parse = to_fuse },
	{ VALUE("defcontext"), .parse = to_fuse },
	{ VALUE("rootcontext"), .parse = to_fuse },
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* The entry that takes option o, or NULL. */
static const struct mount_option *find_option(const char *o)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct mount_option *opt = &options[i];
		size_t n = strlen(opt->name);
		if (opt->shape == OPT_FLAG
		        ? strcmp(o, opt->name) == 0
		        : strncmp(o, opt->name, n) == 0 && !(opt->nonempty && !o[n]))
			return opt;
	}
	return NULL;
}

size_t cmdline_option_count(void)
{
	return N_OPTIONS;
}

const char *cmdline_option_name(size_t i)
{
	return i < N_OPTIONS ? options[i].name : NULL;
}

int cmdline_option_find(const char *o)
{
	const struct mount_option *opt = find_option(o);
	return opt ? (int)(opt - options) : -1;
}

/* -o o is no option at all: one line with the nearest one and the list. */
static int fail_unknown_option(const char *o)
{
	const char *all[N_OPTIONS];
	char word[64], list[1024] = "";
	for (size_t i = 0; i < N_OPTIONS; i++)
		all[i] = options[i].name;
	const char *eq = strchr(o, '=');
	size_t wl = eq ? (size_t)(eq - o) + 1 : strlen(o);
	snprintf(word, sizeof(word), "%.*s", (int)(wl < sizeof(word) ? wl : sizeof(word) - 1), o);
	const char *near = did_you_mean(word, all, N_OPTIONS);
	size_t used = 0;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s%s", i ? ", " : "", all[i],
		                 options[i].shape == OPT_PREFIX ? "*" : "");
		if (w > 0 && (size_t)w < sizeof(list) - used)
			used += (size_t)w;
	}
	return fail("unknown option -o %s%s%.*s%s; the options are: %s", o,
	            near ? " (did you mean " : "", near ? (int)strcspn(near, "=") : 0,
	            near ? near : "", near ? "?)" : "", list);
}

/* One -o option: ours, ignored (fstab), or FUSE's. */
static int parse_option(struct cmdline *c, const char *o)
{
	const struct mount_option *opt = find_option(o);
	if (!opt)
		return fail_unknown_option(o);
	return opt->parse(c, opt, o, o + (opt->shape == OPT_FLAG ? strlen(o) : strlen(opt->name)));
}

int cmdline_parse_options(struct cmdline *c, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		return fail("out of memory");
	int r = 0;
	for (char *o = strtok_r(copy, ",", &save); o && r == 0; o = strtok_r(NULL, ",", &save))
		r = parse_option(c, o);
	free(copy);
	return r;
}

/* Called as mount.secretsfs or mount.fuse.secretsfs, mount(8) passes its
 * own flags: -f fake (do nothing), -n no mtab, -s sloppy, -v verbose. */
static bool called_by_mount(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	return strncmp(base ? base + 1 : argv0, "mount.", 6) == 0;
}

int cmdline_parse(struct cmdline *c, int argc, char **argv)
{
	const char *positional[2] = { 0 };
	int npos = 0;
	bool helper = called_by_mount(argv[0]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (helper &&
		    (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0 || strcmp(a, "-v") == 0)) {
			/* nothing for us */
		} else if (helper && strcmp(a, "-f") == 0) {
			c->fake = true;
		} else if (strcmp(a, "-o") == 0) {
			if (++i == argc)
				return fail("-o needs options");
			r = cmdline_parse_options(c, argv[i]);
		} else if (strncmp(a, "-o", 2) == 0) {
			r = cmdline_parse_options(c, a + 2);
		} else if (strcmp(a, "-f") == 0) {
			c->opt.foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			c->opt.foreground = c->opt.debug = true;
		} else if (strcmp(a, "-s") == 0) {
			c->single_thread = true;
		} else if (a[0] == '-' && a[1]) {
			return fail("unknown option %s (see secretsfs --help)", a);
		} else if (npos < 2) {
			positional[npos++] = a;
		} else {
			return fail("too many arguments: %s (see secretsfs --help)", a);
		}
		if (r)
			return r;
	}
	if (npos < 2)
		return fail("need a store directory and a mountpoint (see secretsfs --help)");
	/* A URL names a remote store (main.c chooses); anything else is the
	 * embedded store's directory. */
	bool url = strstr(positional[0], "://") || strncmp(positional[0], "redpanda:", 9) == 0;
	c->opt.store_dir = url ? strdup(positional[0]) : realpath(positional[0], NULL);
	if (!c->opt.store_dir)
		return fail("store %s: %s", positional[0], strerrordesc_np(errno));
	c->opt.mountpoint = strdup(positional[1]);
	bool etcd = etcd_store_source(positional[0]);
	/* An etcd store has no directory of its own to keep its key or
	 * host-attrs beside it. */
	if (etcd && !c->opt.key_file && !getenv("CREDENTIALS_DIRECTORY"))
		return fail("%s: an etcd store needs its key: -o key=FILE", positional[0]);
	if (etcd && !c->opt.attrs_file)
		return fail("%s: an etcd store needs -o attrs=FILE (where chmod and chown are "
		            "kept on this host)",
		            positional[0]);
	bool redpanda = strncmp(positional[0], "redpanda:", 9) == 0;
	if (redpanda && c->opt.mirror)
		return fail("-o mirror= is for embedded and etcd stores (values readable here, "
		            "also sent to Redpanda Cloud); %s is Redpanda Cloud itself",
		            positional[0]);
	if (c->opt.mirror && c->opt.read_only)
		return fail(
		    "-o ro and -o mirror= together: the mirror would still change the "
		    "cloud (its reconcile at mount pushes and deletes there); mount without "
		    "one of them");
	if ((redpanda || c->opt.mirror) && !c->opt.credentials) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (!dir)
			return fail("%s: Redpanda Cloud needs its OAuth client: -o "
			            "credentials=FILE (lines client_id=… and client_secret=…)",
			            redpanda ? positional[0] : c->opt.mirror);
		if (asprintf(&c->opt.credentials, "%s/redpanda.credentials", dir) < 0)
			return fail("out of memory");
	}
	if (!url && !c->opt.attrs_file &&
	    asprintf(&c->opt.attrs_file, "%s/host-attrs", c->opt.store_dir) < 0)
		return fail("out of memory");
	/* the etcd store's sealed cache sits beside host-attrs (a directory
	 * of this host's that -o run_as keeps writable) */
	if (etcd && !c->opt.cache_file &&
	    asprintf(&c->opt.cache_file, "%s.etcd-cache", c->opt.attrs_file) < 0)
		return fail("out of memory");
	if (c->opt.cache_file && !etcd)
		return fail("-o cache= is for etcd stores only");
	/* Redpanda Cloud: the store itself, or the mirror's */
	const char *rp = redpanda ? positional[0] : c->opt.mirror;
	if (!rp && (c->opt.cluster || c->opt.controlplane))
		return fail("-o cluster= and controlplane= are for Redpanda Cloud (a redpanda: "
		            "store or -o mirror=) only");
	if (rp && !rp[9] && !c->opt.cluster)
		return fail("%s: which data plane? redpanda:https://DATAPLANE-URL, or redpanda: "
		            "with -o cluster=ID",
		            rp);
	if (rp && rp[9] && c->opt.cluster)
		return fail("%s: give the data plane URL or -o cluster=ID, not both", rp);
	if (!etcd && !redpanda && !c->opt.mirror && c->opt.cacert)
		return fail("-o cacert= is for etcd+https, Redpanda Cloud stores and -o mirror= "
		            "only");
	if (!etcd &&
	    (c->opt.cert || c->opt.certkey || c->opt.etcd_user || c->opt.etcd_password_file))
		return fail("-o cert=, certkey=, etcd_user= and etcd_password= are for etcd stores "
		            "only");
	if (etcd && cmdline_etcd_password_default(&c->opt))
		return 1;
	if (c->opt.read_only && !c->file_mode_set)
		c->opt.file_mode = 0400;
	if (c->policy.restart_on_rotate && !c->opt.credsocket)
		return fail("-o on_rotate restarts units that loaded a secret from -o credsocket: "
		            "give it too");
	if (c->policy.restart_on_rotate && c->opt.run_as)
		return fail("-o on_rotate cannot be combined with -o run_as: restarting a unit "
		            "takes root (systemd's private socket), and the server runs as %s",
		            c->opt.run_as);
	for (int sc = 0; sc < SCOPE_COUNT && c->opt.fast; sc++)
		if (c->policy.scope[sc].nunits || c->policy.scope[sc].ncgroups)
			return fail("-o fast cannot enforce unit= or cgroup= rules: the kernel "
			            "no longer asks the daemon at open");
	return 0;
}

void cmdline_free(struct cmdline *c)
{
	free(c->opt.store_dir);
	free(c->opt.mountpoint);
	free(c->opt.key_file);
	free(c->opt.attrs_file);
	free(c->opt.cache_file);
	free(c->opt.credentials);
	free(c->opt.token_url);
	free(c->opt.audience);
	free(c->opt.cluster);
	free(c->opt.controlplane);
	free(c->opt.cacert);
	free(c->opt.cert);
	free(c->opt.certkey);
	free(c->opt.etcd_user);
	free(c->opt.etcd_password_file);
	free(c->opt.run_as);
	free(c->opt.credsocket);
	free(c->opt.mirror);
	free(c->audit);
	policy_clear(&c->policy);
	fuse_opt_free_args(&c->fuse_args);
}

int cmdline_etcd_password_default(struct fs_options *o)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (!o->etcd_user || o->etcd_password_file || !creds)
		return 0;
	if (asprintf(&o->etcd_password_file, "%s/%s", creds, ETCD_PASSWORD_CREDENTIAL) < 0) {
		o->etcd_password_file = NULL;
		return fail("out of memory");
	}
	return 0;
}

struct store_remote cmdline_store_remote(const struct fs_options *o)
{
	return (struct store_remote){
		.cacert = o->cacert,
		.cert = o->cert,
		.certkey = o->certkey,
		.user = o->etcd_user,
		.password_file = o->etcd_password_file,
	};
}
