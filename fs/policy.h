/* SPDX-License-Identifier: MIT */
/*
 * Who may open what, beyond mode bits.
 *
 *   -o owner=SCOPE:USER[:GROUP]   owner of a scope directory and its files
 *   -o unit=SCOPE:PATTERN         only processes of matching systemd units
 *                                 (fnmatch: ai-gateway.service, session-*.scope)
 *   -o cgroup=SCOPE:PATH          only processes in cgroup PATH or below it
 *   -o root_bypass                root skips the unit/cgroup rules
 *
 * A scope with unit or cgroup rules admits a process that matches any of
 * them.  A secret in several scopes may be read by a process that one of
 * its scopes admits; changing it (write, rotate, link, move, unlink,
 * labels) needs every scope it is in, and the target scope, to admit it.
 */
#ifndef SECRETSFS_POLICY_H
#define SECRETSFS_POLICY_H

#include <stdbool.h>
#include <sys/types.h>

#include "store.h"
#include "caller.h"

struct scope_rule {
	bool owner_set;
	uid_t uid;
	gid_t gid;
	char **units; /* fnmatch patterns */
	size_t nunits;
	char **cgroups; /* paths */
	size_t ncgroups;
};

struct policy {
	struct scope_rule scope[SCOPE_COUNT];
	bool root_bypass;
	/* -o on_rotate=SCOPE:restart: a new value of a secret in one of these
	 * scopes restarts the units that loaded it from the credential
	 * socket (credsock.h) */
	scope_set restart_on_rotate;
};

/* Parse one option value ("SCOPE:..."); 0 or -EINVAL with *ret_why set to
 * a static explanation. */
int policy_add_owner(struct policy *p, const char *arg, const char **ret_why);
int policy_add_unit(struct policy *p, const char *arg, const char **ret_why);
int policy_add_cgroup(struct policy *p, const char *arg, const char **ret_why);
int policy_add_on_rotate(struct policy *p, const char *arg, const char **ret_why);
void policy_clear(struct policy *p);
/* Does any scope have unit= or cgroup= rules? */
bool policy_has_rules(const struct policy *p);

/* 0 if one of the scopes admits the caller (to read), else -EACCES. */
int policy_check(const struct policy *p, scope_set scopes, const struct caller *c);
/* 0 if every one of the scopes admits the caller (to change), else -EACCES. */
int policy_check_all(const struct policy *p, scope_set scopes, const struct caller *c);
/* For the credential socket (credsock.c): 0 if one of the scopes has a
 * unit= or cgroup= rule that c matches, else -EACCES.  Unlike a read
 * through the mount, which mode bits guard too, a scope with no rules
 * serves no credential, and root_bypass does not apply (systemd always
 * connects as root). */
int policy_check_credential(const struct policy *p, scope_set scopes, const struct caller *c);

#endif
