/*
 * test-thread-pool-cancel.c - cancelling thread-pool requests: queued and
 * running jobs, cancels racing with the workers, synchronous
 * bdrv_aio_cancel (queued: -ECANCELED; running: its value), cancels from
 * inside completion callbacks, and a late cancel of a finished job.
 *
 * Every job records in its own Job struct whether (and where) its function
 * ran and what its callback received, so each case checks "exactly once"
 * per job (thread-pool-test.h). Waits have no time bound: a job that is
 * never released, a worker that never starts or retires, a blocking
 * aio_poll() that never returns is a hang, which the harness's
 * no-progress watchdog fails by name.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "thread-pool-test.h"

/* ------------------------------------------------------------------ */
/* Cancellation                                                        */

#define N_CANCEL 100

static void test_cancel_queued_and_running(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore started, release;
    QemuThread self;
    Job blockers[2];
    Job *jobs = calloc(N_CANCEL, sizeof(*jobs));
    int count = 0, i, cur = -1, idle = -1;
    int early_cb = 0, ran_early = 0;

    REQUIRE(jobs != NULL);
    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    qemu_thread_get_self(&self);
    REQUIRE(thread_pool_set_params(pool, 0, 2, 10000 * MS, 0) == 0);

    memset(blockers, 0, sizeof(blockers));
    for (i = 0; i < 2; i++) {
        blockers[i].value = 500 + i;
        blockers[i].started = &started;
        blockers[i].release = &release;
        blockers[i].expect = &self;
        blockers[i].cb_counter = &count;
        REQUIRE(submit(pool, &blockers[i]) != NULL);
    }
    /* From here on, a failure must not leave the case early: blocked
     * jobs point at this frame. Everything below drains the pool. */
    wait_sem_n(&started, 2);

    /* Both workers are busy and max_threads is 2: these stay queued. */
    for (i = 0; i < N_CANCEL; i++) {
        jobs[i].value = 1000 + i;
        jobs[i].expect = &self;
        jobs[i].cb_counter = &count;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    thread_pool_stats(pool, &cur, &idle);
    CHECK(cur <= 2);
    for (i = 0; i < N_CANCEL; i++) {
        bdrv_aio_cancel_async(jobs[i].acb);
        if (i % 2) {
            bdrv_aio_cancel_async(jobs[i].acb);     /* twice: still once */
        }
    }
    /* Running jobs: cancelling them changes nothing. */
    bdrv_aio_cancel_async(blockers[0].acb);
    bdrv_aio_cancel_async(blockers[1].acb);

    /* Nothing completes before aio_poll(). */
    for (i = 0; i < N_CANCEL; i++) {
        early_cb += jobs[i].cb_runs;
        ran_early += qatomic_read(&jobs[i].ran);
    }
    CHECK_EQ(early_cb, 0);
    CHECK_EQ(ran_early, 0);

    qemu_sem_post(&release);
    qemu_sem_post(&release);
    CHECK_EQ(poll_until(ctx, &count, N_CANCEL + 2), 0);
    for (i = 0; i < 3; i++) {
        aio_poll(ctx, false);
    }
    CHECK_EQ(qatomic_read(&count), N_CANCEL + 2);

    for (i = 0; i < 2; i++) {
        CHECK_EQ(blockers[i].cb_runs, 1);
        CHECK_EQ(blockers[i].cb_ret, 500 + i);
        CHECK_EQ(qatomic_read(&blockers[i].ran), 1);
        CHECK(blockers[i].cb_in_expected);
    }
    {
        int wrong_runs = 0, not_cancelled = 0, ran = 0, wrong_thread = 0;

        for (i = 0; i < N_CANCEL; i++) {
            wrong_runs += jobs[i].cb_runs != 1;
            not_cancelled += jobs[i].cb_ret != -ECANCELED;
            wrong_thread += !jobs[i].cb_in_expected;
        }
        CHECK_EQ(wrong_runs, 0);
        CHECK_EQ(not_cancelled, 0);
        CHECK_EQ(wrong_thread, 0);

        /* Freeing the context drains the pool: a cancelled function
         * that ran late would show up now. */
        aio_context_unref(ctx);
        for (i = 0; i < N_CANCEL; i++) {
            ran += qatomic_read(&jobs[i].ran);
            wrong_runs += jobs[i].cb_runs != 1;
        }
        CHECK_EQ(ran, 0);
        CHECK_EQ(wrong_runs, 0);
    }
    CHECK(qatomic_read(&max_active_jobs) <= 2);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
    free(jobs);
}

/* Cancel racing with the workers: each job is either cancelled (never
 * ran) or completed with its value, exactly once. */
static void test_cancel_racing(void)
{
    int round;
    int total_cancelled = 0, total_completed = 0;

    reset_case_counters();
    for (round = 0; round < 5; round++) {
        AioContext *ctx = new_ctx();
        ThreadPool *pool = aio_get_thread_pool(ctx);
        Job *jobs = calloc(N_CANCEL, sizeof(*jobs));
        QemuThread self;
        int count = 0, cancelled = 0, completed = 0, bad = 0, i;

        REQUIRE(jobs != NULL);
        qemu_thread_get_self(&self);
        REQUIRE(thread_pool_set_params(pool, 0, 4, 10000 * MS,
                                       round % 2 ? 0 : 10000) == 0);
        /* Workers that already exist start taking jobs at once. */
        if (round >= 2) {
            four_workers(ctx, pool);
            wait_threads(pool, 4, true);
        }
        for (i = 0; i < N_CANCEL; i++) {
            jobs[i].value = 7 * i + 1;
            jobs[i].sleep_us = 50;
            jobs[i].expect = &self;
            jobs[i].cb_counter = &count;
            REQUIRE(submit(pool, &jobs[i]) != NULL);
        }
        for (i = round % 2 ? N_CANCEL - 1 : 0;
             i >= 0 && i < N_CANCEL; i += round % 2 ? -1 : 1) {
            bdrv_aio_cancel_async(jobs[i].acb);
        }
        CHECK_EQ(poll_until(ctx, &count, N_CANCEL), 0);
        aio_context_unref(ctx);         /* drains: late runs show */
        for (i = 0; i < N_CANCEL; i++) {
            Job *j = &jobs[i];

            bad += j->cb_runs != 1 || !j->cb_in_expected;
            if (j->cb_ret == -ECANCELED) {
                cancelled++;
                bad += qatomic_read(&j->ran) != 0;
            } else if (j->cb_ret == 7 * i + 1) {
                completed++;
                bad += qatomic_read(&j->ran) != 1;
            } else {
                bad++;
            }
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(cancelled + completed, N_CANCEL);
        total_cancelled += cancelled;
        total_completed += completed;
        free(jobs);
    }
    printf("#   %d cancelled, %d completed\n", total_cancelled,
           total_completed);
    CHECK(qatomic_read(&max_active_jobs) <= 4);
}

/* bdrv_aio_cancel() returns only after the callback ran: with
 * -ECANCELED for a queued job, with its value for a running one. */
static void test_cancel_sync(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore started, release;
    QemuThread self;
    Job blocker = { .value = 1 }, queued = { .value = 2 };
    Job running = { .value = 3 };
    int count = 0;

    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    qemu_thread_get_self(&self);
    REQUIRE(thread_pool_set_params(pool, 0, 1, 10000 * MS, 0) == 0);

    blocker.started = &started;
    blocker.release = &release;
    blocker.expect = queued.expect = running.expect = &self;
    blocker.cb_counter = queued.cb_counter = running.cb_counter = &count;
    REQUIRE(submit(pool, &blocker) != NULL);
    qemu_sem_wait(&started);
    CHECK(submit(pool, &queued) != NULL);
    bdrv_aio_cancel(queued.acb);
    CHECK_EQ(queued.cb_runs, 1);
    CHECK_EQ(queued.cb_ret, -ECANCELED);
    CHECK(queued.cb_in_expected);
    CHECK_EQ(qatomic_read(&queued.ran), 0);
    CHECK_EQ(blocker.cb_runs, 0);

    qemu_sem_post(&release);
    CHECK_EQ(poll_until(ctx, &count, 2), 0);
    CHECK_EQ(blocker.cb_ret, 1);

    /* A running job: the cancel waits for it and it completes normally. */
    running.started = &started;
    running.sleep_us = 50000;
    CHECK(submit(pool, &running) != NULL);
    qemu_sem_wait(&started);
    bdrv_aio_cancel(running.acb);
    CHECK_EQ(running.cb_runs, 1);
    CHECK_EQ(running.cb_ret, 3);
    CHECK_EQ(qatomic_read(&running.ran), 1);
    CHECK(running.cb_in_expected);

    aio_context_unref(ctx);
    CHECK_EQ(qatomic_read(&queued.ran), 0);
    CHECK_EQ(queued.cb_runs, 1);
    CHECK_EQ(running.cb_runs, 1);
    CHECK_EQ(blocker.cb_runs, 1);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* Hooks for cancelling from inside completion callbacks. */
typedef struct {
    Job *async_victim;          /* cancelled with bdrv_aio_cancel_async */
    Job *sync_victim;           /* cancelled with bdrv_aio_cancel */
    int sync_victim_runs_after; /* its cb_runs when the cancel returned */
    int sync_victim_ret_after;
} CancelFromCb;

static void cancel_others_cb(Job *j)
{
    CancelFromCb *c = j->user;

    bdrv_aio_cancel_async(c->async_victim->acb);
    bdrv_aio_cancel(c->sync_victim->acb);
    c->sync_victim_runs_after = c->sync_victim->cb_runs;
    c->sync_victim_ret_after = c->sync_victim->cb_ret;
}

/* Each of a pair cancels the other if the other's callback is pending. */
static void cancel_partner_cb(Job *j)
{
    Job *other = j->user;

    if (other->cb_runs == 0) {
        bdrv_aio_cancel_async(other->acb);
    }
}

static void test_cancel_from_callback(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore started, release, fin;
    QemuThread self;
    Job a = { .value = 10 }, bl = { .value = 11 };
    Job b = { .value = 12 }, c = { .value = 13 };
    Job d = { .value = 14 }, e = { .value = 15 };
    CancelFromCb hook = { &b, &c, -1, 0 };
    int count = 0;

    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    qemu_sem_init(&fin, 0);
    qemu_thread_get_self(&self);
    REQUIRE(thread_pool_set_params(pool, 0, 1, 10000 * MS, 0) == 0);

    a.expect = bl.expect = b.expect = c.expect = &self;
    d.expect = e.expect = &self;
    a.cb_counter = bl.cb_counter = b.cb_counter = c.cb_counter = &count;
    d.cb_counter = e.cb_counter = &count;

    /* a finishes; bl then occupies the only worker; b and c queue. */
    a.finished = &fin;
    a.on_cb = cancel_others_cb;
    a.user = &hook;
    REQUIRE(submit(pool, &a) != NULL);
    qemu_sem_wait(&fin);
    bl.started = &started;
    bl.release = &release;
    REQUIRE(submit(pool, &bl) != NULL);
    qemu_sem_wait(&started);
    CHECK(submit(pool, &b) != NULL);
    CHECK(submit(pool, &c) != NULL);

    /* a's callback cancels b (async) and c (sync, nested aio_poll). */
    while (a.cb_runs == 0) {
        aio_poll(ctx, true);
    }
    CHECK_EQ(hook.sync_victim_runs_after, 1);
    CHECK_EQ(hook.sync_victim_ret_after, -ECANCELED);
    CHECK_EQ(a.cb_ret, 10);

    qemu_sem_post(&release);
    CHECK_EQ(poll_until(ctx, &count, 4), 0);
    CHECK_EQ(bl.cb_runs, 1);
    CHECK_EQ(bl.cb_ret, 11);
    CHECK_EQ(b.cb_runs, 1);
    CHECK_EQ(b.cb_ret, -ECANCELED);
    CHECK_EQ(c.cb_runs, 1);
    CHECK_EQ(c.cb_ret, -ECANCELED);
    CHECK(b.cb_in_expected && c.cb_in_expected);

    /* Two finished jobs whose callbacks are pending in the same batch:
     * whichever runs first cancels the other, which is unaffected. */
    d.finished = e.finished = &fin;
    d.on_cb = e.on_cb = cancel_partner_cb;
    d.user = &e;
    e.user = &d;
    CHECK(submit(pool, &d) != NULL);
    CHECK(submit(pool, &e) != NULL);
    wait_sem_n(&fin, 2);
    sleep_ms(5);
    CHECK_EQ(poll_until(ctx, &count, 6), 0);
    CHECK_EQ(d.cb_runs, 1);
    CHECK_EQ(d.cb_ret, 14);
    CHECK_EQ(e.cb_runs, 1);
    CHECK_EQ(e.cb_ret, 15);

    aio_context_unref(ctx);
    CHECK_EQ(qatomic_read(&b.ran), 0);
    CHECK_EQ(qatomic_read(&c.ran), 0);
    CHECK_EQ(b.cb_runs + c.cb_runs + d.cb_runs + e.cb_runs, 4);
    CHECK_EQ(qatomic_read(&count), 6);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
    qemu_sem_destroy(&fin);
}

/* A finished job is unaffected by a late cancel. */
static void test_cancel_after_completion(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore fin;
    QemuThread self;
    Job j = { .value = 77 }, k = { .value = 78 };
    int count = 0, i;

    qemu_sem_init(&fin, 0);
    qemu_thread_get_self(&self);
    j.expect = k.expect = &self;
    j.cb_counter = k.cb_counter = &count;

    /* Cancelled after its callback ran (kept alive by a reference). */
    REQUIRE(submit(pool, &j) != NULL);
    qemu_aio_ref(j.acb);
    CHECK_EQ(poll_until(ctx, &count, 1), 0);
    CHECK_EQ(j.cb_runs, 1);
    CHECK_EQ(j.cb_ret, 77);
    bdrv_aio_cancel_async(j.acb);
    bdrv_aio_cancel_async(j.acb);
    for (i = 0; i < 3; i++) {
        aio_poll(ctx, false);
    }
    CHECK_EQ(j.cb_runs, 1);
    CHECK_EQ(j.cb_ret, 77);
    qemu_aio_unref(j.acb);

    /* Cancelled after its function returned, before aio_poll(). */
    k.finished = &fin;
    REQUIRE(submit(pool, &k) != NULL);
    qemu_sem_wait(&fin);
    sleep_ms(5);
    bdrv_aio_cancel_async(k.acb);
    CHECK_EQ(poll_until(ctx, &count, 2), 0);
    CHECK_EQ(k.cb_runs, 1);
    CHECK_EQ(k.cb_ret, 78);

    aio_context_unref(ctx);
    CHECK_EQ(j.cb_runs, 1);
    CHECK_EQ(k.cb_runs, 1);
    qemu_sem_destroy(&fin);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_cancel_queued_and_running);
    RUN(test_cancel_racing);
    RUN(test_cancel_sync);
    RUN(test_cancel_from_callback);
    RUN(test_cancel_after_completion);
    return test_done();
}
