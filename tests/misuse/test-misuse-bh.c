/*
 * test-misuse-bh.c - bottom halves given what they must not get.
 *
 * Outcomes checked (aio.h, the bottom-half functions):
 *   aio_bh_new / aio_bh_schedule_oneshot    abort naming the BH
 *     with a NULL context or callback
 *   qemu_bh_delete twice (before the loop   abort naming the BH
 *     freed it)
 *   schedule / schedule_idle / cancel of a  no-op: the BH stays deleted,
 *     deleted BH, a BH that reschedules       never runs, and is freed by
 *     itself after deleting itself            the next aio_bh_poll()
 *   qemu_bh_cancel(NULL), qemu_bh_delete     no-op
 *     (NULL)
 *   qemu_bh_schedule(NULL), _idle(NULL)     abort ("NULL BH")
 *   delete from another thread while the    the callback finishes; the
 *     callback runs, or while the BH keeps    BH is freed afterwards and
 *     rescheduling itself                     runs no more
 *   a one-shot BH whose context is freed    freed unrun, not reported as
 *     before it ran                           leaked
 *   a BH created without a name, leaked     reported as '(unnamed)'
 *                                             (builds without NDEBUG)
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"

static void nop_cb(void *opaque)
{
    (void)opaque;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */

static void child_bh_new_null_ctx(void *opaque)
{
    (void)opaque;
    aio_bh_new_full(NULL, nop_cb, NULL, "orphan_bh");
}

static void child_bh_new_null_cb(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    aio_bh_new_full(ctx, NULL, NULL, "empty_bh");
}

static void test_bh_new_null_ctx_aborts(void)
{
    expect_abort(child_bh_new_null_ctx, NULL, "aio_bh_new",
                 "NULL AioContext for BH 'orphan_bh'");
}

static void test_bh_new_null_cb_aborts(void)
{
    expect_abort(child_bh_new_null_cb, NULL, "aio_bh_new",
                 "BH 'empty_bh' has no callback");
}

static void child_oneshot_null_ctx(void *opaque)
{
    (void)opaque;
    aio_bh_schedule_oneshot(NULL, nop_cb, NULL);
}

static void child_oneshot_null_cb(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    aio_bh_schedule_oneshot_full(ctx, NULL, NULL, "empty_oneshot");
}

static void test_oneshot_null_ctx_aborts(void)
{
    expect_abort(child_oneshot_null_ctx, NULL, "aio_bh_schedule_oneshot",
                 "NULL AioContext for BH 'nop_cb'");
}

static void test_oneshot_null_cb_aborts(void)
{
    expect_abort(child_oneshot_null_cb, NULL, "aio_bh_schedule_oneshot",
                 "BH 'empty_oneshot' has no callback");
}

/* ------------------------------------------------------------------ */
/* Deleted BHs                                                         */

static void twice_cb(void *opaque)
{
    (void)opaque;
}

static void child_delete_twice(void *opaque)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh = aio_bh_new(ctx, twice_cb, NULL);

    if (*(int *)opaque) {
        qemu_bh_schedule(bh);       /* pending when deleted */
    }
    qemu_bh_delete(bh);
    qemu_bh_delete(bh);
}

static void test_bh_delete_twice_aborts(void)
{
    int idle = 0, scheduled = 1;

    expect_abort(child_delete_twice, &idle, "qemu_bh_delete",
                 "BH 'twice_cb' deleted twice");
    expect_abort(child_delete_twice, &scheduled, "qemu_bh_delete",
                 "BH 'twice_cb' deleted twice");
}

static void test_bh_use_after_delete_is_noop(void)
{
    AioContext *ctx = new_ctx();
    int runs = 0;
    QEMUBH *a = aio_bh_new(ctx, misuse_count_cb, &runs);
    QEMUBH *b = aio_bh_new(ctx, misuse_count_cb, &runs);
    QEMUBH *c = aio_bh_new(ctx, misuse_count_cb, &runs);

    /* Between the delete and the next aio_bh_poll() the BHs still
     * exist: schedule, schedule_idle and cancel change nothing. */
    qemu_bh_delete(a);
    qemu_bh_schedule(a);
    qemu_bh_schedule(b);
    qemu_bh_delete(b);
    qemu_bh_schedule_idle(b);
    qemu_bh_delete(c);
    qemu_bh_cancel(c);
    qemu_bh_schedule(c);
    CHECK(!aio_poll(ctx, false));   /* freed, not run: no progress */
    CHECK_EQ(runs, 0);
    CHECK_EQ(aio_compute_timeout(ctx), -1);
    aio_context_unref(ctx);         /* ASan: each freed exactly once */
}

typedef struct {
    QEMUBH *bh;
    int runs;
} SelfBH;

static void delete_then_reschedule_cb(void *opaque)
{
    SelfBH *s = opaque;

    s->runs++;
    qemu_bh_delete(s->bh);
    qemu_bh_schedule(s->bh);
}

static void test_bh_reschedule_after_self_delete_is_noop(void)
{
    AioContext *ctx = new_ctx();
    SelfBH s = { 0 };

    s.bh = aio_bh_new(ctx, delete_then_reschedule_cb, &s);
    qemu_bh_schedule(s.bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.runs, 1);
    CHECK(!aio_poll(ctx, false));   /* freed, not run again */
    CHECK_EQ(s.runs, 1);
    aio_context_unref(ctx);
}

static void test_bh_null_cancel_delete_are_noops(void)
{
    AioContext *ctx = new_ctx();

    qemu_bh_cancel(NULL);
    qemu_bh_delete(NULL);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

static void child_schedule_null(void *opaque)
{
    if (*(int *)opaque) {
        qemu_bh_schedule_idle(NULL);
    } else {
        qemu_bh_schedule(NULL);
    }
}

static void test_bh_schedule_null_aborts(void)
{
    int plain = 0, idle = 1;

    expect_abort(child_schedule_null, &plain, "qemu_bh_schedule", "NULL BH");
    expect_abort(child_schedule_null, &idle, "qemu_bh_schedule_idle",
                 "NULL BH");
}

/* ------------------------------------------------------------------ */
/* Deletion from another thread                                        */

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    QemuSemaphore running, deleted;
    int runs;                   /* atomic */
    bool reschedule;
} CrossBH;

static void blocking_cb(void *opaque)
{
    CrossBH *c = opaque;

    qatomic_inc(&c->runs);
    if (c->reschedule) {
        qemu_bh_schedule(c->bh);
        return;
    }
    qemu_sem_post(&c->running);
    qemu_sem_wait(&c->deleted);     /* deleted meanwhile, still running */
}

static void *deleter_thread(void *opaque)
{
    CrossBH *c = opaque;

    if (!c->reschedule) {
        qemu_sem_wait(&c->running);
    } else {
        while (qatomic_read(&c->runs) < 10) {
            sched_yield();
        }
    }
    qemu_bh_delete(c->bh);
    qemu_sem_post(&c->deleted);
    return NULL;
}

static void run_cross_delete(bool reschedule)
{
    CrossBH c = { .reschedule = reschedule };
    QemuThread t;
    int runs;

    c.ctx = new_ctx();
    qemu_sem_init(&c.running, 0);
    qemu_sem_init(&c.deleted, 0);
    c.bh = aio_bh_new(c.ctx, blocking_cb, &c);
    qemu_bh_schedule(c.bh);
    start_thread(&t, "deleter", deleter_thread, &c);
    if (reschedule) {
        /* Runs once per aio_poll() until the other thread's delete. */
        while (qemu_sem_timedwait(&c.deleted, 0) < 0) {
            aio_poll(c.ctx, false);
            test_progress();
        }
    } else {
        CHECK(aio_poll(c.ctx, false));  /* returns once deleted */
    }
    qemu_thread_join(&t);
    /* Every aio_bh_poll() after the delete frees the BH instead of
     * running it; the runs before all happened in the polls above. */
    runs = qatomic_read(&c.runs);
    CHECK(!aio_poll(c.ctx, false));
    CHECK(!aio_poll(c.ctx, false));
    CHECK_EQ(qatomic_read(&c.runs), runs);
    CHECK(reschedule ? runs >= 10 : runs == 1);
    qemu_sem_destroy(&c.running);
    qemu_sem_destroy(&c.deleted);
    aio_context_unref(c.ctx);
}

static void test_bh_delete_from_other_thread_while_running(void)
{
    run_cross_delete(false);
}

static void test_bh_delete_from_other_thread_while_rescheduling(void)
{
    run_cross_delete(true);
}

/* ------------------------------------------------------------------ */
/* BHs and the context's end                                           */

static void child_oneshot_unrun(void *opaque)
{
    AioContext *ctx = new_ctx();

    aio_bh_schedule_oneshot(ctx, misuse_count_cb, opaque);
    aio_context_unref(ctx);
}

static void test_oneshot_freed_unrun_with_context(void)
{
    DeathResult res;
    int runs = 0;

    if (expect_survival(child_oneshot_unrun, &runs, &res)) {
        CHECK(strstr(res.err, "leaked") == NULL);
    }
    /* The same in this process, for ASan's leak check at exit. */
    child_oneshot_unrun(&runs);
    CHECK_EQ(runs, 0);
}

static void child_unnamed_leak(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    aio_bh_new_full(ctx, nop_cb, NULL, NULL);
    aio_context_unref(ctx);
}

static void test_unnamed_bh_leak_reported(void)
{
    DeathResult res;

    if (expect_survival(child_unnamed_leak, NULL, &res)) {
        if (BUILT_WITH_NDEBUG) {
            CHECK(strstr(res.err, "leaked") == NULL);
        } else {
            CHECK(strstr(res.err, "BH '(unnamed)' leaked") != NULL);
        }
    }
}

int main(void)
{
    TEST(test_bh_new_null_ctx_aborts);
    TEST(test_bh_new_null_cb_aborts);
    TEST(test_oneshot_null_ctx_aborts);
    TEST(test_oneshot_null_cb_aborts);
    TEST(test_bh_delete_twice_aborts);
    TEST(test_bh_use_after_delete_is_noop);
    TEST(test_bh_reschedule_after_self_delete_is_noop);
    TEST(test_bh_null_cancel_delete_are_noops);
    TEST(test_bh_schedule_null_aborts);
    TEST(test_bh_delete_from_other_thread_while_running);
    TEST(test_bh_delete_from_other_thread_while_rescheduling);
    TEST(test_oneshot_freed_unrun_with_context);
    TEST(test_unnamed_bh_leak_reported);
    return test_done();
}
