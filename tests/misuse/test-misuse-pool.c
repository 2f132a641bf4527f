/*
 * test-misuse-pool.c - the thread pool and AIOCBs given what they must
 * not get.
 *
 * Outcomes checked (thread-pool.h, block-aio.h):
 *   thread_pool_submit_aio with a NULL       abort naming the pool (and
 *     work function or a NULL pool             the callback); with NDEBUG
 *                                              NULL, nothing queued and
 *                                              the callback never runs
 *   thread_pool_new(NULL) /                  abort ("NULL AioContext")
 *     aio_get_thread_pool(NULL)
 *   thread_pool_submit_co outside a          abort before anything is
 *     coroutine                                submitted
 *   bdrv_aio_cancel_async twice              one completion, -ECANCELED
 *   cancel after completion (a reference     no-op: no second callback
 *     kept with qemu_aio_ref)
 *   cancel of a running job                  completes normally
 *   a submission from a callback that the    completes with -ECANCELED,
 *     pool's free runs (context unref or       its callback runs before
 *     thread_pool_free)                        the free returns; no leak
 *   thread_pool_free of a context's pool     abort naming pool and context
 *   thread_pool_free(NULL)                   no-op
 *   thread_pool_set_params with a bad value  -EINVAL, limits unchanged
 *   aio_context_set_thread_pool_params bad   errp set, limits unchanged
 *   qemu_aio_ref / qemu_aio_unref of a       abort naming the request
 *     request without references (zeroed,      (once too often: while the
 *     or unref'd once too often)               freed memory still holds
 *                                              the count; ASan reports
 *                                              the use after free)
 *   qemu_aio_get(NULL info)                  abort
 *   an extra reference                       keeps the request valid
 *                                              after its callback
 *
 * Not here: bdrv_aio_cancel() from the request's own callback
 * (tests/regress).
 *
 * SPDX-License-Identifier: MIT
 */
#include <malloc.h>

#include "misuse-test.h"

typedef struct {
    QemuSemaphore started, release;
    int value;
} Gate;

static int gated_work(void *opaque)
{
    Gate *g = opaque;

    qemu_sem_post(&g->started);
    qemu_sem_wait(&g->release);
    return g->value;
}

static int seven_work(void *opaque)
{
    if (opaque) {
        qatomic_inc((int *)opaque);
    }
    return 7;
}

typedef struct {
    int calls;
    int ret;
} Done;

static void done_cb(void *opaque, int ret)
{
    Done *d = opaque;

    d->calls++;
    d->ret = ret;
}

static void gate_init(Gate *g, int value)
{
    qemu_sem_init(&g->started, 0);
    qemu_sem_init(&g->release, 0);
    g->value = value;
}

static void gate_destroy(Gate *g)
{
    qemu_sem_destroy(&g->started);
    qemu_sem_destroy(&g->release);
}

/* Polls @ctx until @calls reaches @n. */
static void poll_calls(AioContext *ctx, int *calls, int n)
{
    while (*calls < n) {
        aio_poll(ctx, true);
        test_progress();
    }
}

/* ------------------------------------------------------------------ */
/* Bad submissions                                                     */

static void child_submit_null_func(void *opaque)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    Done d = { 0 };

    (void)opaque;
    death_expect("ThreadPool %p: NULL work function (callback %p)",
                 (void *)pool, (void *)(uintptr_t)done_cb);
    thread_pool_submit_aio(pool, NULL, NULL, done_cb, &d);
}

/* NDEBUG builds: NULL, nothing queued, no callback (thread-pool.h; the
 * two-build contract test-thread-pool relies on). */
static void check_null_submission_returns_null(void)
{
    AioContext *ctx = new_ctx();
    Done d = { 0 };

    CHECK(thread_pool_submit_aio(aio_get_thread_pool(ctx), NULL, NULL,
                                 done_cb, &d) == NULL);
    CHECK(thread_pool_submit_aio(NULL, seven_work, NULL, done_cb,
                                 &d) == NULL);
    thread_pool_submit(NULL, seven_work, NULL);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);         /* runs whatever is pending: nothing */
    CHECK_EQ(d.calls, 0);
}

static void test_submit_null_func_aborts(void)
{
    if (BUILT_WITH_NDEBUG) {
        check_null_submission_returns_null();
        return;
    }
    expect_abort(child_submit_null_func, NULL, "thread_pool_submit_aio",
                 NULL);
}

static void child_submit_null_pool(void *opaque)
{
    (void)opaque;
    thread_pool_submit(NULL, seven_work, NULL);
}

static void test_submit_null_pool_aborts(void)
{
    if (BUILT_WITH_NDEBUG) {
        check_null_submission_returns_null();
        return;
    }
    expect_abort(child_submit_null_pool, NULL, "thread_pool_submit_aio",
                 "NULL ThreadPool");
}

static void child_new_null_ctx(void *opaque)
{
    if (*(int *)opaque) {
        aio_get_thread_pool(NULL);
    } else {
        thread_pool_new(NULL);
    }
}

static void test_pool_null_context_aborts(void)
{
    int standalone = 0, own = 1;

    expect_abort(child_new_null_ctx, &standalone, "thread_pool_new",
                 "NULL AioContext");
    expect_abort(child_new_null_ctx, &own, "aio_get_thread_pool",
                 "NULL AioContext");
}

static void child_submit_co_outside(void *opaque)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    int ran = 0;

    (void)opaque;
    death_expect("ThreadPool %p", (void *)pool);
    thread_pool_submit_co(pool, seven_work, &ran);
}

static void test_submit_co_outside_coroutine_aborts(void)
{
    expect_abort(child_submit_co_outside, NULL, "thread_pool_submit_co",
                 "called outside a coroutine");
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                        */

static void test_cancel_twice_completes_once(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    Done first = { 0 }, second = { 0 };
    int ran = 0;
    BlockAIOCB *acb;
    Gate g;

    gate_init(&g, 1);
    REQUIRE(thread_pool_set_params(pool, 0, 1, 1000000000LL, 0) == 0);
    thread_pool_submit_aio(pool, gated_work, &g, done_cb, &first);
    qemu_sem_wait(&g.started);      /* the only worker is busy */
    acb = thread_pool_submit_aio(pool, seven_work, &ran, done_cb, &second);
    bdrv_aio_cancel_async(acb);
    bdrv_aio_cancel_async(acb);     /* still valid: not completed yet */
    poll_calls(ctx, &second.calls, 1);
    CHECK_EQ(second.ret, -ECANCELED);
    qemu_sem_post(&g.release);
    poll_calls(ctx, &first.calls, 1);
    CHECK_EQ(first.ret, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(second.calls, 1);
    CHECK_EQ(qatomic_read(&ran), 0);
    gate_destroy(&g);
    aio_context_unref(ctx);
}

static void test_cancel_after_completion_is_noop(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    Done d = { 0 };
    BlockAIOCB *acb;

    acb = thread_pool_submit_aio(pool, seven_work, NULL, done_cb, &d);
    qemu_aio_ref(acb);
    poll_calls(ctx, &d.calls, 1);
    bdrv_aio_cancel_async(acb);
    bdrv_aio_cancel_async(acb);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(d.calls, 1);
    CHECK_EQ(d.ret, 7);
    CHECK(acb->opaque == &d);       /* still valid: our reference */
    qemu_aio_unref(acb);            /* freed here (ASan: exactly once) */
    aio_context_unref(ctx);
}

static void test_cancel_running_completes_normally(void)
{
    AioContext *ctx = new_ctx();
    Done d = { 0 };
    BlockAIOCB *acb;
    Gate g;

    gate_init(&g, 42);
    acb = thread_pool_submit_aio(aio_get_thread_pool(ctx), gated_work, &g,
                                 done_cb, &d);
    qemu_sem_wait(&g.started);
    bdrv_aio_cancel_async(acb);     /* too late: it runs */
    qemu_sem_post(&g.release);
    poll_calls(ctx, &d.calls, 1);
    CHECK_EQ(d.ret, 42);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(d.calls, 1);
    gate_destroy(&g);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Submitting to a pool that is being freed                            */

typedef struct {
    ThreadPool *pool;
    Done first, late;
    int late_ran;
} Dying;

static void submit_more_cb(void *opaque, int ret)
{
    Dying *d = opaque;

    done_cb(&d->first, ret);
    thread_pool_submit_aio(d->pool, seven_work, &d->late_ran, done_cb,
                           &d->late);
}

static void run_submit_while_freed(bool standalone)
{
    AioContext *ctx = new_ctx();
    Dying d = { 0 };

    d.pool = standalone ? thread_pool_new(ctx) : aio_get_thread_pool(ctx);
    thread_pool_submit_aio(d.pool, seven_work, NULL, submit_more_cb, &d);
    /* No aio_poll(): the free runs the first completion, whose callback
     * submits to the dying pool. */
    if (standalone) {
        thread_pool_free(d.pool);
    } else {
        aio_context_unref(ctx);
    }
    CHECK_EQ(d.first.calls, 1);
    CHECK(d.first.ret == 7 || d.first.ret == -ECANCELED);
    CHECK_EQ(d.late.calls, 1);
    CHECK_EQ(d.late.ret, -ECANCELED);
    CHECK_EQ(qatomic_read(&d.late_ran), 0);
    if (standalone) {
        CHECK(!aio_poll(ctx, false));
        aio_context_unref(ctx);
    }
}

static void test_submit_while_context_freed_completes(void)
{
    run_submit_while_freed(false);
}

static void test_submit_while_pool_freed_completes(void)
{
    run_submit_while_freed(true);
}

/* ------------------------------------------------------------------ */
/* Freeing and parameters                                              */

static void child_free_context_pool(void *opaque)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);

    (void)opaque;
    death_expect("ThreadPool %p is the own pool of AioContext %p",
                 (void *)pool, (void *)ctx);
    thread_pool_free(pool);
}

static void test_free_context_pool_aborts(void)
{
    expect_abort(child_free_context_pool, NULL, "thread_pool_free", NULL);
    thread_pool_free(NULL);         /* and NULL is a no-op */
}

/* Submits 4 gated jobs and checks that at most @max run at once. */
static void check_max_workers(AioContext *ctx, ThreadPool *pool, int max)
{
    Done d[4] = { { 0 } };
    int cur = 0, calls = 0;
    Gate g;

    gate_init(&g, 0);
    for (int i = 0; i < 4; i++) {
        thread_pool_submit_aio(pool, gated_work, &g, done_cb, &d[i]);
    }
    for (int i = 0; i < max; i++) {
        qemu_sem_wait(&g.started);
    }
    /* A third worker, if the limit had changed, would start now. */
    CHECK(qemu_sem_timedwait(&g.started, 50) < 0);
    thread_pool_stats(pool, &cur, NULL);
    CHECK(cur <= max);
    for (int i = 0; i < 4; i++) {
        qemu_sem_post(&g.release);
    }
    while (calls < 4) {
        aio_poll(ctx, true);
        calls = d[0].calls + d[1].calls + d[2].calls + d[3].calls;
    }
    gate_destroy(&g);
}

static void test_set_params_invalid_einval(void)
{
    static const struct { int min, max; int64_t idle, spin; } bad[] = {
        { -1, 4, 1000000, 0 }, { 0, 0, 1000000, 0 }, { 5, 4, 1000000, 0 },
        { 0, 64, 0, 0 }, { 0, 64, -1, 0 }, { 0, 64, 1000000, -1 },
    };
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);

    REQUIRE(thread_pool_set_params(pool, 0, 2, 1000000000LL, 0) == 0);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CHECK_EQ(thread_pool_set_params(pool, bad[i].min, bad[i].max,
                                        bad[i].idle, bad[i].spin), -EINVAL);
    }
    check_max_workers(ctx, pool, 2);    /* the limit is still 2 */
    aio_context_unref(ctx);
}

static void test_set_thread_pool_params_invalid_errp(void)
{
    static const int64_t bad[][2] = {
        { -1, 4 }, { 0, 0 }, { 5, 4 }, { 0, (int64_t)1 << 40 },
    };
    AioContext *ctx = new_ctx();

    aio_context_set_thread_pool_params(ctx, 0, 2, &error_abort);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        Error *err = NULL;

        aio_context_set_thread_pool_params(ctx, bad[i][0], bad[i][1], &err);
        REQUIRE(err != NULL);
        printf("#   %s\n", error_get_pretty(err));
        error_free(err);
        aio_context_set_thread_pool_params(ctx, bad[i][0], bad[i][1], NULL);
    }
    check_max_workers(ctx, aio_get_thread_pool(ctx), 2);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* AIOCB references                                                    */

static const AIOCBInfo plain_info = { .aiocb_size = 64 };

static void child_aiocb_zeroed(void *opaque)
{
    BlockAIOCB acb = { 0 };

    death_expect("request %p has no reference left (refcnt 0)",
                 (void *)&acb);
    if (*(int *)opaque) {
        qemu_aio_ref(&acb);
    } else {
        qemu_aio_unref(&acb);
    }
}

static void test_aiocb_unref_zeroed_aborts(void)
{
    int unref = 0;

    expect_abort(child_aiocb_zeroed, &unref, "qemu_aio_unref", NULL);
}

static void test_aiocb_ref_zeroed_aborts(void)
{
    int ref = 1;

    expect_abort(child_aiocb_zeroed, &ref, "qemu_aio_ref", NULL);
}

static void child_aiocb_unref_twice(void *opaque)
{
    BlockAIOCB *acb;

    (void)opaque;
    /* glibc keeps a small freed chunk's bytes past its first 16 (the
     * count is at 32) unless MALLOC_PERTURB_ (which meson sets) fills
     * them: switch that off, so that the count still reads 0. */
    mallopt(M_PERTURB, 0);
    acb = qemu_aio_get(&plain_info, NULL, NULL, NULL);
    death_expect("request %p", (void *)acb);
    qemu_aio_unref(acb);            /* the last reference: freed */
    qemu_aio_unref(acb);
}

static void test_aiocb_unref_below_zero_aborts(void)
{
    DeathResult res;

    if (UNDER_TSAN) {
        SKIP_CASE("TSan's allocator rewrites freed memory: the count an "
                  "unref after the last one reads is not the request's");
    }
    if (!UNDER_ASAN) {
        /* The freed chunk keeps its count (0) until reused: caught. */
        expect_abort(child_aiocb_unref_twice, NULL, "qemu_aio_unref",
                     "has no reference left");
        return;
    }
    /* ASan catches the use after free first (abort_on_error=1: SIGABRT;
     * without it ASan exits with status 1). */
    REQUIRE(misuse_death_run(child_aiocb_unref_twice, NULL, &res));
    death_print(&res);
    CHECK(died_of(&res, SIGABRT) || !exited_with(&res, 0));
    CHECK(strstr(res.err, "heap-use-after-free") != NULL);
}

static void child_aio_get_null_info(void *opaque)
{
    (void)opaque;
    death_expect("callback %p", (void *)(uintptr_t)done_cb);
    qemu_aio_get(NULL, NULL, done_cb, NULL);
}

static void test_aio_get_null_info_aborts(void)
{
    expect_abort(child_aio_get_null_info, NULL, "qemu_aio_get",
                 "NULL AIOCBInfo");
}

static void test_extra_ref_outlives_callback(void)
{
    BlockAIOCB *acb = qemu_aio_get(&plain_info, NULL, done_cb, NULL);

    qemu_aio_ref(acb);
    qemu_aio_ref(acb);
    qemu_aio_unref(acb);
    qemu_aio_unref(acb);
    CHECK(acb->cb == done_cb);      /* one reference left: valid */
    qemu_aio_unref(acb);            /* freed (ASan: no leak) */
}

int main(void)
{
    TEST(test_submit_null_func_aborts);
    TEST(test_submit_null_pool_aborts);
    TEST(test_pool_null_context_aborts);
    TEST(test_submit_co_outside_coroutine_aborts);
    TEST(test_cancel_twice_completes_once);
    TEST(test_cancel_after_completion_is_noop);
    TEST(test_cancel_running_completes_normally);
    TEST(test_submit_while_context_freed_completes);
    TEST(test_submit_while_pool_freed_completes);
    TEST(test_free_context_pool_aborts);
    TEST(test_set_params_invalid_einval);
    TEST(test_set_thread_pool_params_invalid_errp);
    TEST(test_aiocb_unref_zeroed_aborts);
    TEST(test_aiocb_ref_zeroed_aborts);
    TEST(test_aiocb_unref_below_zero_aborts);
    TEST(test_aio_get_null_info_aborts);
    TEST(test_extra_ref_outlives_callback);
    return test_done();
}
