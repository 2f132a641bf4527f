/*
 * test-thread-pool-workers.c - the pool's workers: created on demand,
 * bounded by max_threads (also while a worker spins, and after the bound
 * is lowered), retired when idle down to min_threads, idle timeouts
 * beyond an int of milliseconds; freeing a busy pool (thread_pool_free
 * and the context's last unref); and bad parameters, which change
 * nothing.
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
/* Workers: on demand, bounded, retired when idle                     */

static void test_workers_on_demand(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    QemuSemaphore started, release;
    QemuThread self;
    Job jobs[8];
    Job *burst;
    int count = 0, i, cur = -1, idle = -1, max_seen = 0;

    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    qemu_thread_get_self(&self);
    REQUIRE(pool != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 4, 10000 * MS, 0) == 0);

    /* No job yet: no worker. */
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 0);
    CHECK_EQ(idle, 0);

    /* One job at a time: the idle worker takes the next one. */
    for (i = 0; i < 10; i++) {
        Job j = { .value = i, .expect = &self, .cb_counter = &count };

        REQUIRE(submit(pool, &j) != NULL);
        CHECK_EQ(poll_until(ctx, &count, i + 1), 0);
        CHECK_EQ(j.cb_ret, i);
        wait_threads(pool, 1, true);
    }

    /* Four blocking jobs: four workers, none idle. */
    memset(jobs, 0, sizeof(jobs));
    qatomic_set(&count, 0);
    for (i = 0; i < 8; i++) {
        jobs[i].value = 100 + i;
        jobs[i].started = &started;
        jobs[i].release = &release;
        jobs[i].expect = &self;
        jobs[i].cb_counter = &count;
    }
    for (i = 0; i < 4; i++) {
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    wait_sem_n(&started, 4);
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 4);
    CHECK_EQ(idle, 0);

    /* Four more: never more than max_threads. */
    for (i = 4; i < 8; i++) {
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    sleep_ms(50);
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 4);
    CHECK_EQ(qatomic_read(&active_jobs), 4);
    for (i = 4; i < 8; i++) {
        CHECK_EQ(qatomic_read(&jobs[i].ran), 0);
    }
    for (i = 0; i < 8; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 8), 0);
    for (i = 0; i < 8; i++) {
        CHECK_EQ(jobs[i].cb_runs, 1);
        CHECK_EQ(jobs[i].cb_ret, 100 + i);
    }
    /* The four later jobs started too. */
    wait_sem_n(&started, 4);

    /* A burst of short jobs: at most four at once. */
    burst = calloc(300, sizeof(*burst));
    REQUIRE(burst != NULL);
    qatomic_set(&count, 0);
    for (i = 0; i < 300; i++) {
        burst[i].value = i;
        burst[i].sleep_us = 100;
        burst[i].expect = &self;
        burst[i].cb_counter = &count;
        REQUIRE(submit(pool, &burst[i]) != NULL);
    }
    while (qatomic_read(&count) < 300) {
        aio_poll(ctx, true);
        thread_pool_stats(pool, &cur, &idle);
        if (cur > max_seen) {
            max_seen = cur;
        }
        CHECK(idle <= cur);
    }
    CHECK(max_seen <= 4);
    CHECK(max_seen >= 1);
    CHECK(qatomic_read(&max_active_jobs) <= 4);
    printf("#   max workers seen %d, max jobs at once %d\n", max_seen,
           qatomic_read(&max_active_jobs));
    thread_pool_free(pool);
    aio_context_unref(ctx);
    free(burst);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

static void test_idle_workers_retire(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    int cur = -1, idle = -1;

    reset_case_counters();
    REQUIRE(pool != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 4, 50 * MS, 0) == 0);
    four_workers(ctx, pool);
    thread_pool_stats(pool, &cur, &idle);
    CHECK(cur > 0);
    CHECK(cur <= 4);
    CHECK(idle <= cur);
    wait_threads(pool, 0, false);

    /* With min_threads 2, two stay. */
    REQUIRE(thread_pool_set_params(pool, 2, 4, 50 * MS, 0) == 0);
    four_workers(ctx, pool);
    wait_threads(pool, 2, true);
    sleep_ms(300);              /* six idle timeouts */
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 2);
    CHECK_EQ(idle, 2);

    /* Lowering min_threads lets the survivors retire too. */
    REQUIRE(thread_pool_set_params(pool, 0, 4, 50 * MS, 1000) == 0);
    four_workers(ctx, pool);
    wait_threads(pool, 0, false);

    thread_pool_free(pool);
    aio_context_unref(ctx);
}

/* Jobs that arrive while the only worker watches the queue (spins) are
 * not held back: the pool still grows up to max_threads. */
static void test_workers_grow_while_spinning(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    QemuSemaphore started, release;
    Job first = { .value = 1 };
    Job jobs[3];
    int count = 0, i, cur = -1, idle = -1;

    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    REQUIRE(pool != NULL);
    /* Idle workers spin for 2 s before they sleep. */
    REQUIRE(thread_pool_set_params(pool, 0, 4, 10000 * MS, 2000 * MS) == 0);
    first.cb_counter = &count;
    REQUIRE(submit(pool, &first) != NULL);
    CHECK_EQ(poll_until(ctx, &count, 1), 0);

    /* The worker spins now; three jobs that block arrive together. */
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < 3; i++) {
        jobs[i].value = 10 + i;
        jobs[i].started = &started;
        jobs[i].release = &release;
        jobs[i].cb_counter = &count;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    wait_sem_n(&started, 3);
    thread_pool_stats(pool, &cur, &idle);
    CHECK(cur >= 3);            /* the spinner may stay apart: 4 */
    CHECK(cur <= 4);
    for (i = 0; i < 3; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 4), 0);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(jobs[i].cb_ret, 10 + i);
    }
    thread_pool_free(pool);
    aio_context_unref(ctx);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* Lowering max_threads while more workers are busy: once their jobs
 * end, no more than the new maximum run at once, and the surplus
 * workers go away. */
static void test_lower_max_threads(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    QemuSemaphore started, release;
    Job blockers[4];
    Job *later = calloc(16, sizeof(*later));
    int act = 0, act_max = 0;
    int count = 0, i, cur = -1, idle = -1;

    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    REQUIRE(pool != NULL);
    REQUIRE(later != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 4, 10000 * MS, 0) == 0);
    memset(blockers, 0, sizeof(blockers));
    for (i = 0; i < 4; i++) {
        blockers[i].value = i;
        blockers[i].started = &started;
        blockers[i].release = &release;
        blockers[i].cb_counter = &count;
        CHECK(submit(pool, &blockers[i]) != NULL);
    }
    wait_sem_n(&started, 4);

    /* Lowered, with an idle timeout of an hour: only the new maximum
     * can make the surplus workers go (a pool that kept them until their
     * idle timeout would keep them past the watchdog). */
    CHECK_EQ(thread_pool_set_params(pool, 0, 1, 3600 * 1000 * MS, 0), 0);
    for (i = 0; i < 16; i++) {
        later[i].value = 100 + i;
        later[i].sleep_us = 2000;
        later[i].act = &act;
        later[i].act_max = &act_max;
        later[i].cb_counter = &count;
        CHECK(submit(pool, &later[i]) != NULL);
    }
    for (i = 0; i < 4; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 20), 0);
    for (i = 0; i < 16; i++) {
        CHECK_EQ(later[i].cb_ret, 100 + i);
    }
    printf("#   after lowering max_threads to 1: %d jobs ran at once\n",
           qatomic_read(&act_max));
    CHECK_EQ(qatomic_read(&act_max), 1);
    /* The surplus workers go without waiting for their idle timeout. */
    for (;;) {
        thread_pool_stats(pool, &cur, &idle);
        if (cur <= 1) {
            break;
        }
        sleep_ms(2);
    }
    CHECK(cur <= 1);
    CHECK(idle <= cur);
    thread_pool_free(pool);
    aio_context_unref(ctx);
    free(later);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* Idle timeouts too long for an int of milliseconds (30 days,
 * INT64_MAX) are valid: an idle worker stays. */
static void test_long_idle_timeout(void)
{
    static const int64_t timeouts[] = {
        30LL * 24 * 3600 * 1000 * MS, INT64_MAX,
    };
    unsigned k;

    for (k = 0; k < sizeof(timeouts) / sizeof(timeouts[0]); k++) {
        AioContext *ctx = new_ctx();
        ThreadPool *pool = thread_pool_new(ctx);
        Job j = { .value = 5 };
        int count = 0, cur = -1, idle = -1;

        REQUIRE(pool != NULL);
        CHECK_EQ(thread_pool_set_params(pool, 0, 2, timeouts[k], 0), 0);
        j.cb_counter = &count;
        CHECK(submit(pool, &j) != NULL);
        CHECK_EQ(poll_until(ctx, &count, 1), 0);
        CHECK_EQ(j.cb_ret, 5);
        sleep_ms(200);
        thread_pool_stats(pool, &cur, &idle);
        if (cur != 1) {
            printf("#   idle timeout %lld ns: %d workers left\n",
                   (long long)timeouts[k], cur);
        }
        CHECK_EQ(cur, 1);
        CHECK_EQ(idle, 1);
        thread_pool_free(pool);
        aio_context_unref(ctx);
    }
}

/* ------------------------------------------------------------------ */
/* Freeing a busy pool                                                 */

#define N_BUSY_RUNNING 2
#define N_BUSY_QUEUED 60

typedef struct {
    Job jobs[N_BUSY_RUNNING + N_BUSY_QUEUED];
    QemuSemaphore started;
    QemuThread self;
    int count;
} BusyPool;

static void busy_pool_fill(BusyPool *b, ThreadPool *pool)
{
    int i;

    memset(b, 0, sizeof(*b));
    qemu_sem_init(&b->started, 0);
    qemu_thread_get_self(&b->self);
    REQUIRE(thread_pool_set_params(pool, 0, N_BUSY_RUNNING, 10000 * MS,
                                   0) == 0);
    for (i = 0; i < N_BUSY_RUNNING + N_BUSY_QUEUED; i++) {
        Job *j = &b->jobs[i];

        j->value = 11 * i + 5;
        j->expect = &b->self;
        j->cb_counter = &b->count;
        if (i < N_BUSY_RUNNING) {
            j->started = &b->started;
            j->sleep_us = 20000;
        } else {
            j->sleep_us = i % 2 ? 1000 : 0;
        }
        REQUIRE(submit(pool, j) != NULL);
    }
    wait_sem_n(&b->started, N_BUSY_RUNNING);
}

/* After the pool (or its context) is gone: every callback ran exactly
 * once, in this thread, with -ECANCELED (never ran) or its value. */
static void busy_pool_check(BusyPool *b)
{
    int cancelled = 0, completed = 0, bad = 0, i;

    CHECK_EQ(qatomic_read(&b->count), N_BUSY_RUNNING + N_BUSY_QUEUED);
    for (i = 0; i < N_BUSY_RUNNING + N_BUSY_QUEUED; i++) {
        Job *j = &b->jobs[i];

        bad += j->cb_runs != 1 || !j->cb_in_expected;
        if (j->cb_ret == -ECANCELED) {
            cancelled++;
            bad += qatomic_read(&j->ran) != 0 || i < N_BUSY_RUNNING;
        } else if (j->cb_ret == 11 * i + 5) {
            completed++;
            bad += qatomic_read(&j->ran) != 1;
        } else {
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(cancelled + completed, N_BUSY_RUNNING + N_BUSY_QUEUED);
    CHECK(completed >= N_BUSY_RUNNING);
    printf("#   %d cancelled, %d completed\n", cancelled, completed);
    qemu_sem_destroy(&b->started);
}

static void test_free_busy_pool(void)
{
    BusyPool *b = calloc(1, sizeof(*b));
    AioContext *ctx;
    ThreadPool *pool;

    REQUIRE(b != NULL);
    reset_case_counters();

    /* thread_pool_free() with jobs running and queued. */
    ctx = new_ctx();
    pool = thread_pool_new(ctx);
    REQUIRE(pool != NULL);
    busy_pool_fill(b, pool);
    thread_pool_free(pool);
    busy_pool_check(b);
    aio_context_unref(ctx);

    /* The pool holds a reference to its context: dropping ours first is
     * fine (ASan reports a use after free otherwise). */
    ctx = new_ctx();
    pool = thread_pool_new(ctx);
    REQUIRE(pool != NULL);
    busy_pool_fill(b, pool);
    aio_context_unref(ctx);
    thread_pool_free(pool);
    busy_pool_check(b);

    /* The context's last unref frees its pool the same way. */
    ctx = new_ctx();
    pool = aio_get_thread_pool(ctx);
    REQUIRE(pool != NULL);
    busy_pool_fill(b, pool);
    aio_context_unref(ctx);
    busy_pool_check(b);

    /* An idle pool, a never used one, and NULL. */
    ctx = new_ctx();
    pool = thread_pool_new(ctx);
    thread_pool_free(pool);
    thread_pool_free(NULL);
    (void)aio_get_thread_pool(ctx);
    aio_context_unref(ctx);

    free(b);
}

/* ------------------------------------------------------------------ */
/* Bad parameters                                                      */

static void test_bad_params(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    QemuSemaphore started, release;
    Job jobs[3];
    Error *err = NULL;
    int count = 0, i, cur = -1, idle = -1;

    REQUIRE(pool != NULL);
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    REQUIRE(thread_pool_set_params(pool, 0, 1, 50 * MS, 0) == 0);

    /* Each call has one bad value and otherwise different good ones:
     * a partial update would show below. */
    CHECK_EQ(thread_pool_set_params(pool, -1, 8, 50 * MS, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 0, 0, 50 * MS, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 0, -3, 50 * MS, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 9, 8, 50 * MS, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 2, 8, 0, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 2, 8, -50 * MS, 0), -EINVAL);
    CHECK_EQ(thread_pool_set_params(pool, 2, 8, 50 * MS, -1), -EINVAL);

    /* Still max_threads 1: one job runs at a time. */
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < 3; i++) {
        jobs[i].value = i + 1;
        jobs[i].started = &started;
        jobs[i].release = &release;
        jobs[i].cb_counter = &count;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    qemu_sem_wait(&started);
    sleep_ms(50);
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 1);
    CHECK_EQ(qemu_sem_timedwait(&started, 0), -1);
    for (i = 0; i < 3; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 3), 0);
    wait_sem_n(&started, 2);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(jobs[i].cb_ret, i + 1);
    }
    /* Still min_threads 0 and a 50 ms idle timeout: the worker retires. */
    wait_threads(pool, 0, false);
    thread_pool_free(pool);

    /* QEMU's spelling, on the context's own pool. */
    pool = aio_get_thread_pool(ctx);
    REQUIRE(pool != NULL);
    aio_context_set_thread_pool_params(ctx, 0, 1, &err);
    CHECK(err == NULL);
    aio_context_set_thread_pool_params(ctx, 3, 2, &err);
    CHECK(err != NULL);
    error_free(err);
    err = NULL;
    aio_context_set_thread_pool_params(ctx, -1, 4, &err);
    CHECK(err != NULL);
    error_free(err);
    err = NULL;
    aio_context_set_thread_pool_params(ctx, 0, 0, &err);
    CHECK(err != NULL);
    error_free(err);
    err = NULL;
    aio_context_set_thread_pool_params(ctx, 0, 4, NULL);   /* valid */
    aio_context_set_thread_pool_params(ctx, 5, 4, NULL);   /* ignored */

    /* max 4 now (the bad calls changed nothing): four at once, no more. */
    {
        Job more[5];

        memset(more, 0, sizeof(more));
        qatomic_set(&count, 0);
        for (i = 0; i < 5; i++) {
            more[i].value = 20 + i;
            more[i].started = &started;
            more[i].release = &release;
            more[i].cb_counter = &count;
            CHECK(submit(pool, &more[i]) != NULL);
        }
        wait_sem_n(&started, 4);
        sleep_ms(50);
        CHECK_EQ(qemu_sem_timedwait(&started, 0), -1);
        thread_pool_stats(pool, &cur, &idle);
        CHECK_EQ(cur, 4);
        for (i = 0; i < 5; i++) {
            qemu_sem_post(&release);
        }
        CHECK_EQ(poll_until(ctx, &count, 5), 0);
        wait_sem_n(&started, 1);
        for (i = 0; i < 5; i++) {
            CHECK_EQ(more[i].cb_ret, 20 + i);
        }
    }
    aio_context_unref(ctx);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_workers_on_demand);
    RUN(test_idle_workers_retire);
    RUN(test_workers_grow_while_spinning);
    RUN(test_lower_max_threads);
    RUN(test_long_idle_timeout);
    RUN(test_free_busy_pool);
    RUN(test_bad_params);
    return test_done();
}
