/* SPDX-License-Identifier: MIT */
/*
 * Group commit (backend/groupcommit.c) against a fake owner: a change
 * adds its value to the open batch; a commit moves the batch's values to
 * the committed set, or fails and drops them.  The cases where changes
 * share a batch are forced, not hoped for: the test holds the owner's
 * mutex while the other writers are on their way (gc_arrive done, the
 * mutex awaited), which is exactly when a batch grows.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "groupcommit.h"
#include "harness.h"

#define VALUES_MAX 4096

struct owner {
	pthread_mutex_t mutex;
	struct group_commit gc;
	int pending[GC_BATCH_MAX]; /* the open batch's changes */
	size_t npending;
	bool committed[VALUES_MAX];
	unsigned commits;
	int fail_commit;       /* the next commit returns this (then 0 again) */
	unsigned fail_every;   /* stress: every Nth commit fails with -EIO */
	bool read_uncommitted; /* a reader ran while a batch was open */
};

static int owner_commit(void *ctx)
{
	struct owner *o = ctx;
	int r = o->fail_commit;
	o->commits++;
	o->fail_commit = 0;
	if (r == 0 && o->fail_every && o->commits % o->fail_every == 0)
		r = -EIO;
	for (size_t i = 0; i < o->npending && r == 0; i++)
		o->committed[o->pending[i]] = true;
	o->npending = 0;
	return r;
}

/* The first half of a change (as embedded.c's tx_lock and body): on the
 * way, the mutex taken, the batch joined or opened, the value added
 * (own < 0: the change fails and is undone). */
static void change_begin(struct owner *o, int value, int own)
{
	pthread_mutex_lock(&o->mutex);
	size_t others = gc_join(&o->gc);
	if (others == 0) {
		o->npending = 0;
		gc_opened(&o->gc);
	}
	if (own == 0)
		o->pending[o->npending++] = value;
	else if (others == 0)
		gc_abort(&o->gc, own); /* the first change: the batch goes with it */
}

/* The second half (tx_unlock): the caller's result. */
static int change_end(struct owner *o, int own)
{
	struct gc_member m;
	int r = gc_leave(&o->gc, &m, own, owner_commit, o);
	pthread_mutex_unlock(&o->mutex);
	return r;
}

static int change(struct owner *o, int value, int own)
{
	gc_arrive(&o->gc);
	change_begin(o, value, own);
	return change_end(o, own);
}

static void owner_init(struct owner *o)
{
	memset(o, 0, sizeof(*o));
	REQUIRE(pthread_mutex_init(&o->mutex, NULL) == 0);
	REQUIRE(gc_init(&o->gc, &o->mutex) == 0);
}

static void owner_free(struct owner *o)
{
	gc_destroy(&o->gc);
	pthread_mutex_destroy(&o->mutex);
}

/* A writer thread making one change. */
struct writer {
	pthread_t tid;
	struct owner *o;
	int value, own, result;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	w->result = change(w->o, w->value, w->own);
	return NULL;
}

static void writer_start(struct writer *w, struct owner *o, int value, int own)
{
	*w = (struct writer){ .o = o, .value = value, .own = own, .result = 1 };
	REQUIRE(pthread_create(&w->tid, NULL, writer_main, w) == 0);
}

/* Until n writers are on their way (they wait for the mutex we hold). */
static void wait_coming(struct owner *o, unsigned n)
{
	while (__atomic_load_n(&o->gc.coming, __ATOMIC_SEQ_CST) < n)
		sched_yield();
}

/* A, then B and C arrive while A's change is in: one batch, one commit,
 * each told the commit's result; own: B's own result. */
static void batch_of_three(struct owner *o, int fail_commit, int b_own, int ret[3])
{
	struct writer b, c;
	gc_arrive(&o->gc);
	change_begin(o, 1, 0);
	writer_start(&b, o, 2, b_own);
	writer_start(&c, o, 3, 0);
	wait_coming(o, 2);
	o->fail_commit = fail_commit;
	ret[0] = change_end(o, 0);
	pthread_join(b.tid, NULL);
	pthread_join(c.tid, NULL);
	ret[1] = b.result;
	ret[2] = c.result;
}

static void test_alone(void)
{
	struct owner o;
	owner_init(&o);
	/* nobody else coming: committed at once, a batch of one */
	CHECK_EQ(change(&o, 7, 0), 0);
	CHECK(o.committed[7]);
	CHECK_EQ(o.commits, 1);
	CHECK_EQ(o.gc.changes, 1);
	CHECK(!o.gc.open);
	/* a change that fails alone: no commit at all */
	CHECK_EQ(change(&o, 8, -ESTALE), -ESTALE);
	CHECK(!o.committed[8]);
	CHECK_EQ(o.commits, 1);
	owner_free(&o);
}

static void test_shared(void)
{
	struct owner o;
	int ret[3];
	owner_init(&o);
	batch_of_three(&o, 0, 0, ret);
	CHECK_EQ(ret[0], 0);
	CHECK_EQ(ret[1], 0);
	CHECK_EQ(ret[2], 0);
	CHECK_EQ(o.commits, 1); /* three changes, one commit */
	CHECK_EQ(o.gc.changes, 3);
	CHECK(o.committed[1] && o.committed[2] && o.committed[3]);
	owner_free(&o);
}

static void test_commit_fails(void)
{
	struct owner o;
	int ret[3];
	owner_init(&o);
	CHECK_EQ(change(&o, 10, 0), 0); /* an earlier batch, committed */
	batch_of_three(&o, -EIO, 0, ret);
	/* every member of the failed batch is told, none is committed */
	CHECK_EQ(ret[0], -EIO);
	CHECK_EQ(ret[1], -EIO);
	CHECK_EQ(ret[2], -EIO);
	CHECK(!o.committed[1] && !o.committed[2] && !o.committed[3]);
	CHECK_EQ(o.commits, 2);
	/* ...and exactly them: the batch before stays, the next one commits */
	CHECK(o.committed[10]);
	CHECK_EQ(change(&o, 11, 0), 0);
	CHECK(o.committed[11]);
	CHECK_EQ(o.commits, 3);
	owner_free(&o);
}

static void test_member_fails(void)
{
	struct owner o;
	int ret[3];
	owner_init(&o);
	/* B's own change fails in the middle of the batch: B alone is told */
	batch_of_three(&o, 0, -ESTALE, ret);
	CHECK_EQ(ret[0], 0);
	CHECK_EQ(ret[1], -ESTALE);
	CHECK_EQ(ret[2], 0);
	CHECK(o.committed[1] && !o.committed[2] && o.committed[3]);
	CHECK_EQ(o.commits, 1);
	CHECK_EQ(o.gc.changes, 2);
	owner_free(&o);
}

static void test_first_fails(void)
{
	struct owner o;
	struct writer b;
	owner_init(&o);
	/* the first change fails while B is on its way: the batch ends with
	 * it (nothing in it), B begins and commits its own */
	gc_arrive(&o.gc);
	change_begin(&o, 1, -ENOSPC);
	writer_start(&b, &o, 2, 0);
	wait_coming(&o, 1);
	CHECK_EQ(change_end(&o, -ENOSPC), -ENOSPC);
	pthread_join(b.tid, NULL);
	CHECK_EQ(b.result, 0);
	CHECK(!o.committed[1] && o.committed[2]);
	CHECK_EQ(o.commits, 1);
	owner_free(&o);
}

/* A reader (as embedded.c's reads: the mutex, then gc_wait_idle) never
 * runs while a batch is open. */
struct reader {
	pthread_t tid;
	struct owner *o;
	bool saw_1, saw_2;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	pthread_mutex_lock(&rd->o->mutex);
	gc_wait_idle(&rd->o->gc);
	if (rd->o->gc.open || rd->o->npending)
		rd->o->read_uncommitted = true;
	rd->saw_1 = rd->o->committed[1];
	rd->saw_2 = rd->o->committed[2];
	pthread_mutex_unlock(&rd->o->mutex);
	return NULL;
}

static void test_reader_waits(void)
{
	struct owner o;
	struct writer b;
	struct reader rd = { .o = &o };
	owner_init(&o);
	gc_arrive(&o.gc);
	change_begin(&o, 1, 0);
	writer_start(&b, &o, 2, 0);
	wait_coming(&o, 1);
	REQUIRE(pthread_create(&rd.tid, NULL, reader_main, &rd) == 0);
	/* A lets the mutex go waiting for B; the reader may get it first,
	 * while the batch is open: it must wait for B's commit */
	CHECK_EQ(change_end(&o, 0), 0);
	pthread_join(b.tid, NULL);
	pthread_join(rd.tid, NULL);
	CHECK_EQ(b.result, 0);
	CHECK(!o.read_uncommitted);
	CHECK(rd.saw_1 && rd.saw_2);
	owner_free(&o);
}

/* Many writers at once, every 5th commit failing: each change's result
 * says whether it is committed, exactly. */
#define STRESS_THREADS 8
#define STRESS_EACH 300

struct stresser {
	pthread_t tid;
	struct owner *o;
	int base;
	int results[STRESS_EACH];
};

static void *stress_main(void *arg)
{
	struct stresser *st = arg;
	for (int i = 0; i < STRESS_EACH; i++)
		st->results[i] = change(st->o, st->base + i, (i % 11 == 5) ? -ESTALE : 0);
	return NULL;
}

static void test_stress(void)
{
	static struct owner o;
	static struct stresser st[STRESS_THREADS];
	owner_init(&o);
	o.fail_every = 5;
	for (int t = 0; t < STRESS_THREADS; t++) {
		st[t].o = &o;
		st[t].base = t * STRESS_EACH;
		REQUIRE(pthread_create(&st[t].tid, NULL, stress_main, &st[t]) == 0);
	}
	for (int t = 0; t < STRESS_THREADS; t++)
		pthread_join(st[t].tid, NULL);
	int wrong = 0, ok = 0, failed = 0;
	for (int t = 0; t < STRESS_THREADS; t++)
		for (int i = 0; i < STRESS_EACH; i++) {
			int r = st[t].results[i];
			bool in = o.committed[st[t].base + i];
			if (i % 11 == 5)
				wrong += r != -ESTALE || in;
			else if (r == 0)
				ok++, wrong += !in;
			else
				failed++, wrong += r != -EIO || in;
		}
	CHECK_EQ(wrong, 0);
	CHECK(ok > 0 && failed > 0);
	CHECK(!o.gc.open);
	CHECK_EQ(__atomic_load_n(&o.gc.coming, __ATOMIC_SEQ_CST), 0);
	CHECK(o.gc.commits <= o.gc.changes);
	fprintf(stderr, "stress: %d changes in %llu commits\n", ok + failed,
	        (unsigned long long)o.gc.commits);
	owner_free(&o);
}

int main(void)
{
	test_alone();
	test_shared();
	test_commit_fails();
	test_member_fails();
	test_first_fails();
	test_reader_waits();
	test_stress();
	return harness_result("test_groupcommit");
}
