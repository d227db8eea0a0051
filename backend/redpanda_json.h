/* SPDX-License-Identifier: MIT */
/*
 * The Redpanda Cloud Data Plane API's answers, read (and a few requests'
 * parts written): the parsers of redpanda.c, apart so that each can be
 * fuzzed on its own (tests/fuzz/fuzz_rp_*.c).  The contract they follow:
 * ../shared/notes/redpanda-secrets-api.md.  Nothing here logs or does I/O;
 * nothing here ever sees a value (the API never returns one).
 *
 * Every parser takes what jansson made of an answer and returns 0 or
 * -EINVAL (-ENOMEM), setting its ret_* only on success.
 */
#ifndef SECRETSFS_REDPANDA_JSON_H
#define SECRETSFS_REDPANDA_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

#define RP_PAGE_TOKEN_MAX 1024
#define RP_ERROR_TEXT_MAX 400

/* A Secret: {"secret":{…}} or (older servers) the bare object.  id must
 * match the loose rule; scopes are enum names (unknown ones are counted
 * in *ret_unknown_scopes and left out; at least one known one is needed);
 * labels are strings, and the server-managed "owner" label, or one whose
 * key or value our rules cannot carry as an xattr, is left out (counted
 * in *ret_skipped_labels).  ret_meta gets id, scopes and labels only. */
int rp_parse_secret(const json_t *j, struct secret_meta *ret_meta, unsigned *ret_unknown_scopes,
                    unsigned *ret_skipped_labels);

/* A list page {"secrets":[…],"next_page_token":"…"}: fn is called for each
 * secret that parses (as rp_parse_secret), *ret_bad counts those that do
 * not; *ret_next is the next page's token (malloc'ed, "" at the end).  A
 * non-zero return of fn stops and is returned. */
typedef int (*rp_secret_fn)(void *arg, const struct secret_meta *meta);
int rp_parse_list_page(const json_t *j, rp_secret_fn fn, void *arg, char **ret_next,
                       unsigned *ret_bad);

/* An error answer (google.rpc.Status with the code as its enum name, or a
 * number): the code's name, the message, the ErrorInfo reason and the
 * BadRequest field violations, as one line of text for a log
 * ("INVALID_ARGUMENT: provided parameters are invalid [REASON_INVALID_INPUT]
 * id: …"), bounded, with control characters replaced.  *ret_store_error
 * is true for REASON_SECRET_STORE_ERROR.  j may be NULL or anything. */
void rp_parse_error(const json_t *j, char *text, size_t size, bool *ret_store_error);

/* The errno of a failed call: the HTTP status (http.h's table), except
 * that the backing secret manager's failure is -EIO whatever the status. */
int rp_error_errno(long http_status, int http_errno, bool store_error);

/* A token answer {"access_token","expires_in","token_type":"Bearer"}:
 * the token into locked memory (*ret_token, free with sodium_free), its
 * lifetime in seconds (> 0). */
int rp_parse_token(const json_t *j, char **ret_token, int64_t *ret_expires_s);

/* The control plane's answer for a cluster (GET /v1/clusters/ID:
 * {"cluster":{…,"dataplane_api":{"url":"https://…"}}}, or for a
 * serverless one {"serverless_cluster":{…}}): its Data Plane API URL
 * into *ret_url (malloc'ed, without a trailing '/'), which must be
 * https://HOST[:PORT][/PATH] with nothing a URL should not hold (spaces,
 * control characters, '?', '#', '@').  -EAGAIN while dataplane_api is
 * null or its url empty: the cluster is not ready yet. */
int rp_parse_cluster(const json_t *j, char **ret_url);

/* The token endpoint's quota header "b=per_day;q=100;r=83;t=43200": t,
 * the seconds until it resets; -1 if it has none. */
long rp_quota_reset_s(const char *header);

/* The credentials file's text: lines client_id=… and client_secret=…
 * (blank lines and # comments allowed, nothing else).  Both into locked
 * memory (free with sodium_free).  -EINVAL if one is missing, repeated
 * or holds a character a form value should not (control characters). */
int rp_parse_credentials(const char *text, size_t len, char **ret_id, char **ret_secret);

/* The API path of a secret, "/v1/secrets/ID", with a loose ID's '/' as
 * %2F (its other characters need no escape).  malloc'ed. */
char *rp_secret_path(const char *id);

/* s form-urlencoded into out (size bytes, locked if s is a secret):
 * the length, or -ENOSPC. */
int rp_form_escape(const char *s, char *out, size_t size);

#endif
