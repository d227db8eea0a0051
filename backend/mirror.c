/* SPDX-License-Identifier: MIT */
/*
 * The mirror (mirror.h): a thread that makes a Redpanda Cloud store hold
 * what the local store holds, from the local store's own state and a
 * small record of what it already pushed.
 *
 * State, per ID (struct entry, m->v sorted by ID):
 *  - the record, kept in record_path across mounts: the local
 *    (incarnation, value revision) whose value the cloud last got from
 *    this host;
 *  - what the cloud holds as far as this mount knows: whether it has the
 *    ID, its scopes and labels (from the listing at start, then from our
 *    own pushes; the remote store's poll is off, as is its table's);
 *  - the queue: pending (kicked, or found different), since when, the
 *    last error and when to try again.
 *
 * One push makes the cloud match the local secret as it is now: a
 * create, or a PUT with the value if the record does not hold the local
 * value revision, then a PUT for scopes and one for labels if they differ;
 * a delete if the ID is recorded and gone here.  Each step is idempotent,
 * so a push that was cut off (the cloud down, the daemon killed) is simply
 * made again.  The record is written (owned_file_replace: new file,
 * fsync, rename) before this host first sends a secret (written ahead:
 * "ours", no value confirmed), then when the queue is empty, every
 * MIRROR_SAVE_EVERY pushes, and at stop; a push made but not yet
 * recorded is made once more after a crash, which changes nothing in the
 * cloud.
 *
 * Locks: m->lock guards every field marked so; it is a leaf, held for
 * memory work only (fs/ calls mirror_kick under fs->lock).  The thread
 * calls the stores and writes the record holding nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "http.h"
#include "log.h"
#include "mirror.h"
#include "ownedfile.h"
#include "redpanda.h"

#define RECORD_MAGIC "# secretsfs mirror record"
/* A call whose answer was lost (http.h: the client gave up at its
 * deadline) is taken to land, if ever, within this long of then. */
#define MIRROR_SETTLE_MS (RP_CALL_TIMEOUT_MS + 5000)

/* What the cloud holds of one ID, as this mount knows it. */
struct view {
	/* the record: the cloud got this local (incarnation, value
	 * revision)'s value from this host */
	bool recorded;
	uint64_t incarnation, value_revision;
	/* from the listing at start, then from our own pushes */
	bool in_cloud;
	scope_set scopes;
	struct labels labels;
};

struct entry {
	char *id;
	struct view cloud;
	/* the queue */
	bool pending;
	uint64_t seq;   /* when it became pending (m->seq): oldest first */
	uint64_t kicks; /* changes announced so far */
	int64_t since_ns;
	int64_t retry_ms; /* http_now_ms(): not before then */
	unsigned failures;
	int error; /* the last push's -errno, or 0 */
	int64_t error_ns;
	/* A call of ours whose outcome is unknown (timed out, cancelled, a
	 * 5xx) may still land until unsure_ms (http_now_ms) and undo a later
	 * push: verify makes one more push that starts after then and sends
	 * the value (or the delete) again before the entry is synced. */
	bool verify;
	int64_t unsure_ms;
};
/* find() hands sorted_find (backend/secret.c) entries keyed by their first
 * field */
_Static_assert(offsetof(struct entry, id) == 0, "struct entry: id first");

struct mirror {
	const struct store_ops *local_ops;
	struct store *local;
	const struct store_ops *remote_ops; /* redpanda_store_ops (a unit test's fake) */
	struct store *remote;
	char *source; /* redpanda:https://… */
	char *record_path;
	int64_t start_ns;
	int64_t settle_ms; /* how long a call whose answer was lost may still land */

	pthread_mutex_t lock;
	pthread_cond_t cond; /* lock: a kick, or stop (CLOCK_MONOTONIC) */
	struct entry *v;     /* lock: by ID */
	size_t n, cap;
	bool reconciled;     /* lock */
	int reconcile_error; /* lock: the last failed reconcile's -errno */
	bool stop;           /* lock */
	uint64_t seq;        /* lock: entries made pending so far */
	/* The cloud failed as a whole (unreachable, 5xx, 429, refused
	 * credentials): no push before pause_ms, outage failures in a row.
	 * lock. */
	int64_t pause_ms;
	unsigned outage;
	int outage_error; /* lock: its last -errno, and when */
	int64_t outage_ns;

	pthread_t thread;
	bool running;
	unsigned unsaved; /* the thread's: record changes not yet written */
};

static int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- the table (m->lock held) --- */

/* index of id, or -(insertion point) - 1 */
static long find(const struct mirror *m, const char *id)
{
	return sorted_find(m->v, m->n, sizeof(*m->v), id);
}

/* The entry of id, made (empty) if there is none; NULL: out of memory. */
static struct entry *entry_of(struct mirror *m, const char *id)
{
	long i = find(m, id);
	char *copy;

	if (i >= 0)
		return &m->v[i];
	i = -i - 1;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct entry *v = realloc(m->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		m->v = v;
		m->cap = cap;
	}
	if (!(copy = strdup(id)))
		return NULL;
	memmove(&m->v[i + 1], &m->v[i], (m->n - (size_t)i) * sizeof(*m->v));
	m->v[i] = (struct entry){ .id = copy };
	m->n++;
	return &m->v[i];
}

static void mark_pending(struct mirror *m, struct entry *e)
{
	if (!e->pending) {
		e->pending = true;
		e->since_ns = wall_ns();
		e->seq = ++m->seq;
	}
	e->kicks++;
	e->retry_ms = 0;
	pthread_cond_signal(&m->cond);
}

/* Does the cloud hold what local secret l is? */
static bool synced(const struct view *v, const struct secret_meta *l)
{
	return v->recorded && v->in_cloud && v->incarnation == l->incarnation &&
	       v->value_revision == l->value_revision && v->scopes == l->scopes &&
	       labels_equal(&v->labels, &l->labels);
}

/* --- the record file --- */

/* "ID INCARNATION VALUE-REVISION" (incarnation >= 1); false if not. */
static bool record_line(const char *line, char *id, size_t size, uint64_t *inc, uint64_t *vrev)
{
	const char *sp = strchr(line, ' ');
	char *end;

	if (!sp || (size_t)(sp - line) >= size)
		return false;
	memcpy(id, line, (size_t)(sp - line));
	id[sp - line] = '\0';
	if (!secret_id_valid_existing(id) || sp[1] < '0' || sp[1] > '9')
		return false;
	errno = 0;
	*inc = strtoull(sp + 1, &end, 10);
	if (errno || *end != ' ' || !*inc || end[1] < '0' || end[1] > '9')
		return false;
	*vrev = strtoull(end + 1, &end, 10);
	return !errno && !*end;
}

static int record_load(struct mirror *m)
{
	char why[2 * 4096 + 160] = "";
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	bool ours = false;
	FILE *f;
	int fd, r;

	fd = open(m->record_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return 0; /* a first mount with this mirror */
	if (fd < 0) {
		r = -errno;
		log_error("mirror: %s",
		          owned_open_reason(-r, "mirror record", m->record_path, why, sizeof(why)));
		return r;
	}
	r = owned_fd_check(fd, 077, "mirror record", m->record_path, why, sizeof(why));
	if (r < 0) {
		log_error("mirror: %s", why[0] ? why : strerror(-r));
		close(fd);
		return r;
	}
	if (!(f = fdopen(fd, "re"))) {
		close(fd);
		return -ENOMEM;
	}
	while (getline(&line, &cap, f) > 0) {
		char id[SECRET_ID_MAX + 2];
		uint64_t inc, vrev;
		struct entry *e;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "mirror ", 7) == 0) {
			ours = strcmp(line + 7, m->source) == 0;
			if (!ours)
				log_warn("mirror: %s is the record of the mirror %s, not %s: not "
				         "used (every secret here is pushed again)",
				         m->record_path, line + 7, m->source);
			continue;
		}
		if (!ours)
			continue;
		if (!record_line(line, id, sizeof(id), &inc, &vrev)) {
			log_warn("mirror: %s:%u: not a record line; ignored", m->record_path,
			         lineno);
			continue;
		}
		if (!(e = entry_of(m, id))) {
			r = -ENOMEM;
			break;
		}
		e->cloud.recorded = true;
		e->cloud.incarnation = inc;
		e->cloud.value_revision = vrev;
	}
	free(line);
	fclose(f);
	return r;
}

/* Writes the record (the thread only; takes m->lock for the snapshot). */
static int record_save(struct mirror *m)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	int r;

	if (!mem)
		return -ENOMEM;
	fprintf(mem, RECORD_MAGIC ": what this host pushed (ID incarnation value-revision)\n");
	fprintf(mem, "mirror %s\n", m->source);
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].cloud.recorded)
			fprintf(mem, "%s %" PRIu64 " %" PRIu64 "\n", m->v[i].id,
			        m->v[i].cloud.incarnation, m->v[i].cloud.value_revision);
	pthread_mutex_unlock(&m->lock);
	if (fclose(mem) != 0) {
		free(text);
		return -ENOMEM;
	}
	r = owned_file_replace(m->record_path, text, len);
	free(text);
	if (r < 0)
		log_error("mirror: cannot write the record %s (%s): what was pushed since is "
		          "pushed again at the next mount",
		          m->record_path, strerror(-r));
	m->unsaved = 0; /* (failed: written again with the next change) */
	return r;
}

/* --- reconcile --- */

/* Why the cloud does not hold local secret l (for the log). */
static const char *difference(const struct view *e, const struct secret_meta *l)
{
	if (!e->in_cloud)
		return e->recorded ? "deleted in the cloud: created again"
		                   : "only here: created in the cloud";
	if (!e->recorded)
		return "in the cloud, its value not from this host: the value here is pushed";
	if (e->incarnation != l->incarnation || e->value_revision != l->value_revision)
		return "a value not yet in the cloud: pushed";
	if (e->scopes != l->scopes)
		return "other scopes in the cloud: updated";
	return "other labels in the cloud: updated";
}

/* Logs each line of text (written under m->lock, logged without it). */
static void log_lines(char *text)
{
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		log_info("mirror: %s", line);
	}
}

/* The intents of the local secrets reconcile queued that this host never
 * pushed (intent[i]: here.v[i]'s), written in one record write rather than
 * one per push; those not written are not ours yet. */
static void record_intents(struct mirror *m, const struct meta_list *here, const bool *intent,
                           size_t n)
{
	if (!n || record_save(m) == 0)
		return;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < here->n; i++) {
		long j = intent[i] ? find(m, here->v[i].id) : -1;

		if (j >= 0 && m->v[j].cloud.incarnation == here->v[i].incarnation &&
		    m->v[j].cloud.value_revision == 0)
			m->v[j].cloud.recorded = false;
	}
	pthread_mutex_unlock(&m->lock);
}

/* One local and one remote listing; every difference logged and queued. */
static int reconcile(struct mirror *m)
{
	struct meta_list here = { 0 }, cloud = { 0 };
	size_t queued = 0, left_alone = 0, intents = 0;
	char *notes_text = NULL;
	size_t notes_len = 0;
	FILE *notes = NULL;
	bool *intent = NULL;
	int r;

	r = m->local_ops->list(m->local, meta_list_add, &here);
	if (r < 0) {
		log_error("mirror: cannot list the local store (%s)", strerror(-r));
		goto out;
	}
	r = m->remote_ops->list(m->remote, meta_list_add, &cloud);
	if (r < 0)
		goto out; /* logged by the store */
	meta_list_sort(&here);
	meta_list_sort(&cloud);
	intent = calloc(here.n + 1, sizeof(*intent));
	notes = open_memstream(&notes_text, &notes_len);
	if (!intent || !notes) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		m->v[i].cloud.in_cloud = false;
		labels_clear(&m->v[i].cloud.labels);
		m->v[i].cloud.scopes = 0;
	}
	for (size_t i = 0; i < cloud.n && r == 0; i++) {
		struct entry *e = entry_of(m, cloud.v[i].id);

		if (!e) {
			r = -ENOMEM;
			break;
		}
		e->cloud.in_cloud = true;
		e->cloud.scopes = cloud.v[i].scopes;
		r = labels_copy(&e->cloud.labels, &cloud.v[i].labels);
	}
	for (size_t i = 0; i < here.n && r == 0; i++) {
		struct entry *e = entry_of(m, here.v[i].id);

		if (!e) {
			r = -ENOMEM;
			break;
		}
		if (synced(&e->cloud, &here.v[i]))
			continue;
		if (queued < MIRROR_LOG_DIFFERENCES)
			fprintf(notes, "%s: %s\n", e->id, difference(&e->cloud, &here.v[i]));
		if (!e->cloud.recorded) {
			/* its intent (record_intent), for one write below */
			e->cloud.recorded = true;
			e->cloud.incarnation = here.v[i].incarnation;
			e->cloud.value_revision = 0;
			intent[i] = true;
			intents++;
		}
		mark_pending(m, e);
		queued++;
	}
	for (size_t i = 0; i < m->n && r == 0; i++) {
		struct entry *e = &m->v[i];

		if (meta_list_find(&here, e->id))
			continue;
		if (e->cloud.recorded) {
			if (queued < MIRROR_LOG_DIFFERENCES)
				fprintf(notes, "%s: deleted here: deleted in the cloud\n", e->id);
			mark_pending(m, e);
			queued++;
		} else if (e->cloud.in_cloud && left_alone++ < MIRROR_LOG_DIFFERENCES) {
			fprintf(notes,
			        "%s: only in the cloud, not pushed by this host: left alone\n",
			        e->id);
		}
	}
	if (r == 0) {
		m->reconciled = true;
		m->reconcile_error = 0;
	}
	pthread_mutex_unlock(&m->lock);
	if (fclose(notes) == 0)
		log_lines(notes_text);
	notes = NULL;
	record_intents(m, &here, intent, intents);
	if (r == 0)
		log_info("mirror: reconciled with %s: %zu secret(s) here, %zu in the cloud; %zu "
		         "to push, %zu only in the cloud left alone%s",
		         m->source, here.n, cloud.n, queued, left_alone,
		         queued > MIRROR_LOG_DIFFERENCES || left_alone > MIRROR_LOG_DIFFERENCES
		             ? " (the first " MIRROR_LOG_DIFFERENCES_TEXT " of each logged)"
		             : "");
out:
	if (notes)
		fclose(notes);
	free(notes_text);
	free(intent);
	meta_list_clear(&here);
	meta_list_clear(&cloud);
	return r;
}

/* --- one push --- */

/* An error about this one secret (the cloud refused its ID, labels or
 * value; it changed meanwhile), not about the cloud as a whole. */
static bool secret_refused(int r)
{
	return r == -EINVAL || r == -EFBIG || r == -EEXIST || r == -ENOENT || r == -ESTALE ||
	       r == -ENOMEM;
}

/* Did a changing call that failed with r perhaps reach the cloud all the
 * same, so that it may still land later: no answer in time (-ETIMEDOUT,
 * a 504), cut off (-ECONNRESET, -ECANCELED), a 500 (-EIO)?  Not so for a
 * refusal, a 429 or 503 (-EAGAIN: not taken), no connection
 * (-EHOSTUNREACH) or TLS refused (-EPROTO) (http.c's errnos). */
static bool outcome_unknown(int r)
{
	return !secret_refused(r) && r != -EACCES && r != -EPERM && r != -EROFS && r != -EAGAIN &&
	       r != -EHOSTUNREACH && r != -EPROTO && r != -EMSGSIZE;
}

/* What one push found, for push()'s bookkeeping. */
struct outcome {
	bool local;   /* the error is this host's (local store, record) */
	bool unknown; /* a changing call may still land (outcome_unknown) */
};

/* A changing call to the cloud answered r: notes an unknown outcome. */
static int sent(struct outcome *o, int r)
{
	if (r < 0 && outcome_unknown(r))
		o->unknown = true;
	return r;
}

/* The value of local secret l (its revision) is in the cloud now: known
 * at once, so that a later step failing does not send it again. */
static void value_sent(struct view *v, const struct secret_meta *l,
                       const struct secret_value *value)
{
	v->recorded = true;
	v->incarnation = l->incarnation;
	v->value_revision = value->revision;
}

/* Makes the cloud hold local secret l (meta l, current value fetched if
 * needed, always if resend); v is updated as the cloud changes. */
static int push_secret(struct mirror *m, const struct secret_meta *l, struct view *v, bool resend,
                       struct outcome *o)
{
	const struct store_ops *rp = m->remote_ops;
	struct secret_value *value = NULL;
	bool need_value = resend || !v->recorded || !v->in_cloud ||
	                  v->incarnation != l->incarnation ||
	                  v->value_revision != l->value_revision;
	int r = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (need_value && !value &&
		    (r = m->local_ops->get_value(m->local, l->id, l->incarnation, 0, &value)) < 0) {
			o->local = true; /* (changed or deleted meanwhile: its kick follows) */
			break;
		}
		if (!v->in_cloud) {
			r = sent(o, rp->create(m->remote, l->id, l->scopes, &l->labels, value->data,
			                       value->len, NULL));
			if (r == 0) {
				log_info("mirror: %s: created in the cloud", l->id);
				v->in_cloud = true;
				value_sent(v, l, value);
				v->scopes = l->scopes;
				labels_clear(&v->labels);
				r = labels_copy(&v->labels, &l->labels);
				break;
			}
			if (r != -EEXIST)
				break;
			/* there already (made elsewhere since the listing, or our
			 * own create that was cut off): learn it, then update */
			struct secret_meta there = { 0 };
			if ((r = rp->stat(m->remote, l->id, &there)) < 0)
				break;
			v->in_cloud = true;
			v->scopes = there.scopes;
			labels_clear(&v->labels);
			v->labels = there.labels;
			there.labels = (struct labels){ 0 };
			secret_meta_clear(&there);
		}
		if (need_value) {
			r = sent(o, rp->put_value(m->remote, l->id, 0, 0, value->data, value->len,
			                          NULL));
			if (r == 0) {
				log_info("mirror: %s: new value in the cloud", l->id);
				value_sent(v, l, value);
			}
		}
		if (r == 0 && v->scopes != l->scopes &&
		    (r = sent(o, rp->set_scopes(m->remote, l->id, 0, l->scopes, NULL))) == 0)
			v->scopes = l->scopes;
		if (r == 0 && !labels_equal(&v->labels, &l->labels) &&
		    (r = sent(o, rp->set_labels(m->remote, l->id, 0, &l->labels, NULL))) == 0) {
			labels_clear(&v->labels);
			r = labels_copy(&v->labels, &l->labels);
		}
		if (r != -ENOENT)
			break;
		/* deleted in the cloud meanwhile: made again, with its value */
		v->in_cloud = false;
		need_value = true;
	}
	secret_value_free(value);
	return r;
}

/* Deletes id in the cloud: 0 once the cloud said 204 or 404.  The remote
 * store knows only the IDs it listed or made (a create whose answer was
 * lost is not among them) and answers -ENOENT for the others without a
 * call, so a -ENOENT is checked with the cloud itself. */
static int push_delete(struct mirror *m, const char *id, struct outcome *o)
{
	const struct store_ops *rp = m->remote_ops;
	struct secret_meta there = { 0 };
	int r = sent(o, rp->delete_secret(m->remote, id, 0, NULL));

	if (r == -ENOENT) {
		r = rp->stat(m->remote, id, &there);
		secret_meta_clear(&there);
		if (r == -ENOENT)
			return 0; /* a 404: not there */
		if (r == 0)
			r = sent(o, rp->delete_secret(m->remote, id, 0, NULL));
	}
	if (r == 0)
		log_info("mirror: %s: deleted in the cloud", id);
	return r == -ENOENT ? 0 : r; /* (a 404 after the stat: gone meanwhile) */
}

static int64_t backoff_ms(unsigned failures)
{
	int64_t ms = MIRROR_BACKOFF_MIN_MS;

	while (--failures && ms < MIRROR_BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > MIRROR_BACKOFF_MAX_MS)
		ms = MIRROR_BACKOFF_MAX_MS;
	/* jitter: 75 % to 125 % */
	return ms * 3 / 4 + (int64_t)randombytes_uniform((uint32_t)(ms / 2 + 1));
}

/* Before this host first sends a secret, the record says it is ours
 * (value revision 0: no value confirmed), written ahead: a daemon killed
 * right after the cloud made it still deletes it there once it is
 * deleted here, and pushes its value again.  v says so only once the
 * record is written. */
static int record_intent(struct mirror *m, const struct secret_meta *l, struct view *v)
{
	long i;
	int r;

	pthread_mutex_lock(&m->lock);
	i = find(m, l->id);
	if (i >= 0) {
		m->v[i].cloud.recorded = true;
		m->v[i].cloud.incarnation = l->incarnation;
		m->v[i].cloud.value_revision = 0;
	}
	pthread_mutex_unlock(&m->lock);
	r = record_save(m);
	if (r < 0) {
		/* not written: not ours yet (tried again with the push) */
		pthread_mutex_lock(&m->lock);
		i = find(m, l->id);
		if (i >= 0 && m->v[i].cloud.incarnation == l->incarnation &&
		    m->v[i].cloud.value_revision == 0)
			m->v[i].cloud.recorded = false;
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	v->recorded = true;
	v->incarnation = l->incarnation;
	v->value_revision = 0;
	return 0;
}

static void remove_entry(struct mirror *m, long i)
{
	free(m->v[i].id);
	labels_clear(&m->v[i].cloud.labels);
	m->n--;
	memmove(&m->v[i], &m->v[i + 1], (m->n - (size_t)i) * sizeof(*m->v));
}

/* After a push of e that ended with r (m->lock held; kicks, started,
 * o: push()'s): done, again at the back of the queue, or a failure. */
static void push_done(struct mirror *m, long i, int r, uint64_t kicks, int64_t started,
                      const struct outcome *o)
{
	struct entry *e = &m->v[i];
	int64_t now = http_now_ms();
	bool changed = e->kicks != kicks;

	if (r == -ECANCELED)
		return; /* stopping: still pending for the next mount */
	if (r < 0 && o->unknown) {
		e->verify = true;
		e->unsure_ms = now + m->settle_ms;
	}
	if (r == 0 || (changed && o->local)) {
		if (r == 0 && m->outage) {
			log_info("mirror: the cloud takes changes again");
			m->outage = 0;
			m->pause_ms = 0;
		}
		if (changed) {
			/* changed meanwhile (the kick set retry_ms = 0): again,
			 * behind the others */
			e->seq = ++m->seq;
		} else if (e->verify && started < e->unsure_ms) {
			/* a call of ours may still land: once more after then */
			e->retry_ms = e->unsure_ms;
			e->seq = ++m->seq;
		} else {
			e->pending = false;
			e->failures = 0;
			e->error = 0;
			e->verify = false;
			e->unsure_ms = 0;
			if (!e->cloud.recorded && !e->cloud.in_cloud)
				remove_entry(m, i); /* deleted both here and there */
		}
		return;
	}
	if (r != e->error || !e->failures) {
		if (o->local)
			log_warn("mirror: %s: not pushed, a local error (%s); kept pending, tried "
			         "again later",
			         e->id, strerror(-r));
		else
			log_warn("mirror: %s: not pushed (%s); kept pending, tried again later",
			         e->id, strerror(-r));
	}
	e->failures++;
	e->error = r;
	e->error_ns = wall_ns();
	e->seq = ++m->seq; /* the others first */
	if (!changed)
		e->retry_ms = now + backoff_ms(e->failures);
	if (!o->local && !secret_refused(r)) {
		/* perhaps every push would fail: all of them wait a moment;
		 * the next one to get through ends it */
		if (!m->outage++)
			log_warn("mirror: the cloud cannot take changes now (%s); trying again "
			         "with backoff",
			         strerror(-r));
		m->pause_ms = now + backoff_ms(m->outage);
		m->outage_error = r;
		m->outage_ns = e->error_ns;
	}
}

/* Pushes the current state of id (kicks: its count when picked). */
static void push(struct mirror *m, const char *id, uint64_t kicks)
{
	struct secret_meta l = { 0 };
	struct view v = { 0 };
	struct outcome o = { 0 };
	int64_t started = http_now_ms();
	bool resend = false;
	long i;
	int r = m->local_ops->stat(m->local, id, &l);
	bool gone = r == -ENOENT;

	if (r < 0 && !gone)
		o.local = true;
	pthread_mutex_lock(&m->lock);
	i = find(m, id);
	if (i >= 0) {
		v = m->v[i].cloud;
		resend = m->v[i].verify;
		v.labels = (struct labels){ 0 };
		if (labels_copy(&v.labels, &m->v[i].cloud.labels) < 0 && r == 0)
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&m->lock);
	if (gone) {
		r = 0;
		if (v.recorded || resend) {
			r = push_delete(m, id, &o);
			if (r == 0) {
				labels_clear(&v.labels);
				v = (struct view){ 0 };
			}
		}
	} else if (r == 0 && (resend || !synced(&v, &l))) {
		if (!v.recorded && (r = record_intent(m, &l, &v)) < 0)
			o.local = true;
		if (r == 0)
			r = push_secret(m, &l, &v, resend, &o);
	}
	secret_meta_clear(&l);

	pthread_mutex_lock(&m->lock);
	i = find(m, id);
	if (i >= 0) {
		struct entry *e = &m->v[i];

		/* what the cloud got stays known even if a later step failed */
		if (e->cloud.recorded != v.recorded || e->cloud.incarnation != v.incarnation ||
		    e->cloud.value_revision != v.value_revision)
			m->unsaved++;
		labels_clear(&e->cloud.labels);
		e->cloud = v;
		v.labels = (struct labels){ 0 };
		push_done(m, i, r, kicks, started, &o);
	}
	pthread_mutex_unlock(&m->lock);
	labels_clear(&v.labels);
}

/* --- the thread --- */

/* Waits on m->cond until ms (http_now_ms; 0: a kick or stop).  Lock held. */
static void wait_until(struct mirror *m, int64_t ms)
{
	if (ms <= 0) {
		pthread_cond_wait(&m->cond, &m->lock);
		return;
	}
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

static void *mirror_main(void *arg)
{
	struct mirror *m = arg;
	unsigned failures = 0;

	for (;;) {
		int r = reconcile(m);
		int64_t until;

		if (r == 0)
			break;
		if (!failures)
			log_warn("mirror: cannot reconcile with %s yet (%s); every change stays "
			         "pending, trying again with backoff",
			         m->source, strerror(-r));
		pthread_mutex_lock(&m->lock);
		m->reconcile_error = r;
		until = http_now_ms() + backoff_ms(++failures);
		while (!m->stop && http_now_ms() < until)
			wait_until(m, until);
		r = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (r)
			return NULL;
	}
	for (;;) {
		char *id = NULL;
		uint64_t kicks = 0;
		bool picked = false;

		pthread_mutex_lock(&m->lock);
		while (!m->stop) {
			int64_t now = http_now_ms(), next = 0;
			long pick = -1;

			for (size_t i = 0; i < m->n && now >= m->pause_ms; i++) {
				struct entry *e = &m->v[i];

				if (!e->pending)
					continue;
				if (e->retry_ms <= now) {
					if (pick < 0 || e->seq < m->v[pick].seq)
						pick = (long)i;
				} else if (!next || e->retry_ms < next) {
					next = e->retry_ms;
				}
			}
			if (pick >= 0) {
				id = strdup(m->v[pick].id);
				kicks = m->v[pick].kicks;
				picked = true;
				break;
			}
			if (m->unsaved) {
				pthread_mutex_unlock(&m->lock);
				record_save(m);
				pthread_mutex_lock(&m->lock);
				continue;
			}
			wait_until(m, now < m->pause_ms ? m->pause_ms : next);
		}
		bool stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop) {
			free(id);
			break;
		}
		if (!picked)
			continue;
		if (!id) {
			/* out of memory: a moment, then again */
			http_cancel_sleep(NULL, 100);
			continue;
		}
		push(m, id, kicks);
		free(id);
		if (m->unsaved >= MIRROR_SAVE_EVERY)
			record_save(m);
	}
	return NULL;
}

/* --- the interface --- */

int mirror_open(const struct store_config *cfg, const struct store_ops *remote_ops,
                const struct store_ops *local_ops, struct store *local, const char *record_path,
                struct mirror **ret)
{
	struct store_config rc = *cfg;
	pthread_condattr_t ca;
	struct mirror *m;
	int r;

	if (!mirror_source_valid(cfg->source)) {
		log_error("mirror: %s: expected redpanda:https://DATAPLANE-URL, or redpanda: with "
		          "-o cluster=ID",
		          cfg->source);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	m->local_ops = local_ops;
	m->local = local;
	m->remote_ops = remote_ops;
	m->start_ns = wall_ns();
	m->settle_ms = MIRROR_SETTLE_MS;
	/* the cloud this mirror's record is about (its first line) */
	if (cfg->cluster ? asprintf(&m->source, "redpanda:cluster=%s", cfg->cluster) < 0
	                 : !(m->source = strdup(cfg->source)))
		m->source = NULL;
	m->record_path = strdup(record_path);
	r = m->source && m->record_path ? 0 : -ENOMEM;
	rc.poll_s = 0; /* the mirror lists once, at start */
	rc.read_only = false;
	if (r == 0)
		r = remote_ops->open(&rc, &m->remote);
	if (r == 0)
		r = record_load(m);
	if (r < 0) {
		mirror_stop(m);
		return r;
	}
	*ret = m;
	return 0;
}

void mirror_set_settle_ms(struct mirror *m, int64_t ms)
{
	m->settle_ms = ms;
}

int mirror_start(struct mirror *m)
{
	if (pthread_create(&m->thread, NULL, mirror_main, m) != 0)
		return -EAGAIN;
	m->running = true;
	return 0;
}

void mirror_stop(struct mirror *m)
{
	if (!m)
		return;
	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		if (m->remote_ops == &redpanda_store_ops)
			redpanda_store_cancel(m->remote);
		pthread_join(m->thread, NULL);
		if (m->unsaved)
			record_save(m);
	}
	if (m->remote)
		m->remote_ops->close(m->remote);
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].id);
		labels_clear(&m->v[i].cloud.labels);
	}
	free(m->v);
	free(m->source);
	free(m->record_path);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void mirror_kick(struct mirror *m, const char *id)
{
	struct entry *e;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	e = entry_of(m, id);
	if (e)
		mark_pending(m, e);
	else
		log_error("mirror: %s: out of memory; pushed at the next mount", id);
	pthread_mutex_unlock(&m->lock);
}

static void utc(int64_t ns, char *buf, size_t size)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mirror_status(struct mirror *m, const char *id, char *buf, size_t size)
{
	char since[32], at[32];
	const struct entry *e;
	long i;
	int err;

	pthread_mutex_lock(&m->lock);
	i = find(m, id);
	e = i >= 0 ? &m->v[i] : NULL;
	if (!m->reconciled) {
		utc(m->start_ns, since, sizeof(since));
		err = m->reconcile_error;
		snprintf(buf, size, "pending since %s: reconciling with the cloud%s%s", since,
		         err ? "; last error: " : "", err ? strerror(-err) : "");
	} else if (e && e->pending) {
		/* its own last error, or the cloud's while every push waits */
		bool outage = m->outage && (!e->error || m->outage_ns > e->error_ns);

		err = outage ? m->outage_error : e->error;
		utc(e->since_ns, since, sizeof(since));
		utc(outage ? m->outage_ns : e->error_ns, at, sizeof(at));
		if (err)
			snprintf(buf, size, "pending since %s; last error (%s): %s", since, at,
			         strerror(-err));
		else
			snprintf(buf, size, "pending since %s", since);
	} else if (e && e->cloud.recorded) {
		snprintf(buf, size, "synced");
	} else {
		snprintf(buf, size, "not mirrored");
	}
	pthread_mutex_unlock(&m->lock);
}
