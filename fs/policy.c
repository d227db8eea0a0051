/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

/* Splits "SCOPE:REST"; returns the scope or -1. */
static int split_scope(const char *arg, const char **ret_rest)
{
	const char *colon = strchr(arg, ':');
	if (!colon || !colon[1])
		return -1;
	char name[32];
	size_t len = (size_t)(colon - arg);
	if (len >= sizeof(name))
		return -1;
	memcpy(name, arg, len);
	name[len] = '\0';
	*ret_rest = colon + 1;
	return scope_from_dir_name(name);
}

static bool lookup_uid(const char *s, uid_t *ret, gid_t *ret_primary)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && !*end) {
		*ret = (uid_t)v;
		struct passwd *pw = getpwuid(*ret);
		*ret_primary = pw ? pw->pw_gid : (gid_t)v;
		return true;
	}
	struct passwd *pw = getpwnam(s);
	if (!pw)
		return false;
	*ret = pw->pw_uid;
	*ret_primary = pw->pw_gid;
	return true;
}

static bool lookup_gid(const char *s, gid_t *ret)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && !*end) {
		*ret = (gid_t)v;
		return true;
	}
	struct group *gr = getgrnam(s);
	if (!gr)
		return false;
	*ret = gr->gr_gid;
	return true;
}

int policy_add_owner(struct policy *p, const char *arg, const char **ret_why)
{
	const char *rest;
	int sc = split_scope(arg, &rest);
	if (sc < 0) {
		*ret_why = "expected owner=SCOPE:USER[:GROUP] with a scope directory name";
		return -EINVAL;
	}
	char *user = strdup(rest);
	if (!user)
		return -ENOMEM;
	char *group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	struct scope_rule *r = &p->scope[sc];
	int ret = 0;
	if (!lookup_uid(user, &r->uid, &r->gid)) {
		*ret_why = "unknown user";
		ret = -EINVAL;
	} else if (group && !lookup_gid(group, &r->gid)) {
		*ret_why = "unknown group";
		ret = -EINVAL;
	} else {
		r->owner_set = true;
	}
	free(user);
	return ret;
}

static int add_string(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

int policy_add_unit(struct policy *p, const char *arg, const char **ret_why)
{
	const char *rest;
	int sc = split_scope(arg, &rest);
	if (sc < 0) {
		*ret_why = "expected unit=SCOPE:UNIT-PATTERN with a scope directory name";
		return -EINVAL;
	}
	return add_string(&p->scope[sc].units, &p->scope[sc].nunits, rest);
}

int policy_add_cgroup(struct policy *p, const char *arg, const char **ret_why)
{
	const char *rest;
	int sc = split_scope(arg, &rest);
	if (sc < 0 || rest[0] != '/') {
		*ret_why = "expected cgroup=SCOPE:/PATH with a scope directory name";
		return -EINVAL;
	}
	return add_string(&p->scope[sc].cgroups, &p->scope[sc].ncgroups, rest);
}

int policy_add_on_rotate(struct policy *p, const char *arg, const char **ret_why)
{
	const char *rest;
	int sc = split_scope(arg, &rest);
	if (sc < 0 || strcmp(rest, "restart") != 0) {
		/* reload is no choice: systemd copies credentials at start only */
		*ret_why = "expected on_rotate=SCOPE:restart with a scope directory name (a "
		           "reload would not refresh a unit's credentials)";
		return -EINVAL;
	}
	p->restart_on_rotate |= 1u << sc;
	return 0;
}

bool policy_has_rules(const struct policy *p)
{
	for (int sc = 0; sc < SCOPE_COUNT; sc++)
		if (p->scope[sc].nunits || p->scope[sc].ncgroups)
			return true;
	return false;
}

void policy_clear(struct policy *p)
{
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		struct scope_rule *r = &p->scope[sc];
		for (size_t i = 0; i < r->nunits; i++)
			free(r->units[i]);
		for (size_t i = 0; i < r->ncgroups; i++)
			free(r->cgroups[i]);
		free(r->units);
		free(r->cgroups);
	}
	*p = (struct policy){ 0 };
}

/* path is prefix, or below it. */
static bool under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	while (n > 1 && prefix[n - 1] == '/')
		n--;
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
}

static bool admits(const struct scope_rule *r, const struct caller *c)
{
	if (r->nunits == 0 && r->ncgroups == 0)
		return true;
	for (size_t i = 0; i < r->nunits; i++)
		if (fnmatch(r->units[i], c->unit, 0) == 0)
			return true;
	for (size_t i = 0; i < r->ncgroups; i++)
		if (under(c->cgroup, r->cgroups[i]))
			return true;
	return false;
}

int policy_check(const struct policy *p, scope_set scopes, const struct caller *c)
{
	if (c->uid == 0 && p->root_bypass)
		return 0;
	for (int sc = 0; sc < SCOPE_COUNT; sc++)
		if ((scopes & (1u << sc)) && admits(&p->scope[sc], c))
			return 0;
	return scopes ? -EACCES : 0;
}

int policy_check_all(const struct policy *p, scope_set scopes, const struct caller *c)
{
	if (c->uid == 0 && p->root_bypass)
		return 0;
	for (int sc = 0; sc < SCOPE_COUNT; sc++)
		if ((scopes & (1u << sc)) && !admits(&p->scope[sc], c))
			return -EACCES;
	return 0;
}

int policy_check_credential(const struct policy *p, scope_set scopes, const struct caller *c)
{
	for (int sc = 0; sc < SCOPE_COUNT; sc++) {
		const struct scope_rule *r = &p->scope[sc];
		if ((scopes & (1u << sc)) && (r->nunits || r->ncgroups) && admits(r, c))
			return 0;
	}
	return -EACCES;
}
