/*
 * test-thread-pool-wake.c - the pool's wake-up policy (src/thread-pool.c:
 * "How many workers run"): it wakes fewer workers than jobs are queued
 * while the busy ones drain the queue, but never starves jobs that block.
 *
 *  - N jobs that each block until released all run at once, up to
 *    max_threads, whether or not the loop thread polls meanwhile: the
 *    workers that block are suspected after a while and others are woken
 *    or spawned, by the sentinel, with no submission or completion to
 *    prompt it. A policy that starved blocking jobs hangs here, and the
 *    harness's no-progress watchdog fails the case by name.
 *  - Short jobs queued behind workers that all block still run, on other
 *    workers, while the blocked ones stay blocked.
 *  - Bursts of many tiny jobs complete, each exactly once with its own
 *    result, never on more threads than max_threads.
 *  - A pool freed while its sentinel watches loses no job.
 *
 * Behaviour only: nothing here measures how fast anything happens, and
 * the waits have no time bound (the watchdog).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <sched.h>

#include "thread-pool-test.h"

/* CPUs this process may run on (the pool counts the same). */
static int cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
    return 1;
}

/* Jobs that block until released: @n of them submitted to @pool, whose
 * maximum is @max. Waits until min(n, max) run at the same time, checks
 * that no more do, releases them all and checks every result. With
 * @poll, the loop thread polls @ctx while it waits; without, it only
 * waits on a semaphore, so nothing but the pool's own threads can start
 * the later jobs. */
static void blocking_round(AioContext *ctx, ThreadPool *pool, int n, int max,
                           bool poll)
{
    QemuSemaphore started, release;
    Job *jobs = calloc(n, sizeof(*jobs));
    int count = 0, act = 0, act_max = 0, want = n < max ? n : max, i;
    int cur = -1, idle = -1;

    REQUIRE(jobs != NULL);
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    for (i = 0; i < n; i++) {
        jobs[i].value = 1000 + i;
        jobs[i].started = &started;
        jobs[i].release = &release;
        jobs[i].act = &act;
        jobs[i].act_max = &act_max;
        jobs[i].cb_counter = &count;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    for (i = 0; i < want; i++) {
        if (poll) {
            while (qemu_sem_timedwait(&started, 0) != 0) {
                aio_poll(ctx, false);
                sleep_us(100);
            }
        } else {
            qemu_sem_wait(&started);
        }
        test_progress();
    }
    /* All of them blocked at once: the policy did not starve them. */
    CHECK_EQ(qatomic_read(&act), want);
    thread_pool_stats(pool, &cur, &idle);
    CHECK(cur >= want && cur <= max);
    /* None beyond the maximum (a job past it would have to wait). */
    sleep_ms(20);
    CHECK_EQ(qatomic_read(&act_max), want);
    for (i = 0; i < n; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, n), 0);
    wait_sem_n(&started, n - want);
    CHECK_EQ(qatomic_read(&act_max), want);
    for (i = 0; i < n; i++) {
        CHECK_EQ(qatomic_read(&jobs[i].ran), 1);
        CHECK_EQ(jobs[i].cb_runs, 1);
        CHECK_EQ(jobs[i].cb_ret, 1000 + i);
    }
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
    free(jobs);
}

/* Idle workers never time out here: a job left waiting behind blocked
 * workers while others are parked would wait for good (the watchdog),
 * not until an idle timeout happens to wake one. */
#define NEVER (3600LL * 1000 * MS)

/* Blocking jobs beyond the CPU count all run at once: with the default
 * maximum (64), 64 jobs; with a maximum of 12, 12 of 40 jobs; from a
 * pool with no worker yet (each one spawned) and from one whose workers
 * are all parked (woken); with and without the loop thread polling. */
static void test_blocking_jobs_run_concurrently(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    int round;

    REQUIRE(pool != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 64, NEVER, 10000) == 0);
    reset_case_counters();
    for (round = 0; round < 4; round++) {
        bool poll = round & 1;

        /* Fresh workers (spawned), then the same ones parked (woken). */
        blocking_round(ctx, pool, 64, 64, poll);
        wait_threads(pool, 64, true);
        blocking_round(ctx, pool, 64, 64, poll);
    }
    thread_pool_free(pool);

    pool = thread_pool_new(ctx);
    REQUIRE(pool != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 12, NEVER, 0) == 0);
    blocking_round(ctx, pool, 40, 12, false);
    blocking_round(ctx, pool, 40, 12, true);
    /* Fewer jobs than CPUs: each runs at once too. */
    blocking_round(ctx, pool, 1, 12, false);
    blocking_round(ctx, pool, cpus() < 12 ? cpus() : 12, 12, false);
    thread_pool_free(pool);
    aio_context_unref(ctx);
}

/* Short jobs submitted while as many workers as there are CPUs (and
 * more) block: they run on other workers, and complete while the
 * blocked jobs are still blocked. */
static void test_short_jobs_pass_blocked_workers(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    int nblock = cpus() + 1, round;

    REQUIRE(pool != NULL);
    REQUIRE(thread_pool_set_params(pool, 0, 64, NEVER, 10000) == 0);
    reset_case_counters();
    for (round = 0; round < 3; round++) {
        QemuSemaphore started, release, finished;
        Job *blockers = calloc(nblock, sizeof(*blockers));
        Job shorts[100];
        int bcount = 0, scount = 0, i;

        REQUIRE(blockers != NULL);
        qemu_sem_init(&started, 0);
        qemu_sem_init(&release, 0);
        qemu_sem_init(&finished, 0);
        for (i = 0; i < nblock; i++) {
            blockers[i].value = 7;
            blockers[i].started = &started;
            blockers[i].release = &release;
            blockers[i].cb_counter = &bcount;
            CHECK(submit(pool, &blockers[i]) != NULL);
        }
        wait_sem_n(&started, nblock);

        /* Round 0 waits on the jobs themselves (nothing polls the
         * loop), the others poll for the completions. */
        memset(shorts, 0, sizeof(shorts));
        for (i = 0; i < 100; i++) {
            shorts[i].value = i;
            shorts[i].finished = &finished;
            shorts[i].cb_counter = &scount;
            CHECK(submit(pool, &shorts[i]) != NULL);
        }
        if (round == 0) {
            for (i = 0; i < 100; i++) {
                qemu_sem_wait(&finished);
                test_progress();
            }
        }
        CHECK_EQ(poll_until(ctx, &scount, 100), 0);
        /* The blockers are still blocked. */
        CHECK_EQ(qatomic_read(&bcount), 0);
        for (i = 0; i < nblock; i++) {
            CHECK_EQ(blockers[i].cb_runs, 0);
        }
        for (i = 0; i < 100; i++) {
            CHECK_EQ(shorts[i].cb_runs, 1);
            CHECK_EQ(shorts[i].cb_ret, i);
        }
        for (i = 0; i < nblock; i++) {
            qemu_sem_post(&release);
        }
        CHECK_EQ(poll_until(ctx, &bcount, nblock), 0);
        for (i = 0; i < nblock; i++) {
            CHECK_EQ(blockers[i].cb_runs, 1);
            CHECK_EQ(blockers[i].cb_ret, 7);
        }
        qemu_sem_destroy(&started);
        qemu_sem_destroy(&release);
        qemu_sem_destroy(&finished);
        free(blockers);
        test_progress();
    }
    thread_pool_free(pool);
    aio_context_unref(ctx);
}

/* Every worker blocked at max_threads: the queue waits (no worker can
 * take it) and runs once they are released; nothing is lost. */
static void test_queue_waits_at_max_threads(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    QemuSemaphore started, release;
    Job blockers[3], shorts[50];
    int count = 0, i;

    REQUIRE(pool != NULL);
    reset_case_counters();
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    REQUIRE(thread_pool_set_params(pool, 0, 3, 10000 * MS, 0) == 0);
    memset(blockers, 0, sizeof(blockers));
    memset(shorts, 0, sizeof(shorts));
    for (i = 0; i < 3; i++) {
        blockers[i].value = -i;
        blockers[i].started = &started;
        blockers[i].release = &release;
        blockers[i].cb_counter = &count;
        CHECK(submit(pool, &blockers[i]) != NULL);
    }
    wait_sem_n(&started, 3);
    for (i = 0; i < 50; i++) {
        shorts[i].value = i;
        shorts[i].cb_counter = &count;
        CHECK(submit(pool, &shorts[i]) != NULL);
    }
    sleep_ms(20);
    aio_poll(ctx, false);
    CHECK_EQ(qatomic_read(&count), 0);
    for (i = 0; i < 50; i++) {
        CHECK_EQ(qatomic_read(&shorts[i].ran), 0);
    }
    for (i = 0; i < 3; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 53), 0);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(blockers[i].cb_ret, -i);
    }
    for (i = 0; i < 50; i++) {
        CHECK_EQ(shorts[i].cb_runs, 1);
        CHECK_EQ(shorts[i].cb_ret, i);
    }
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
    thread_pool_free(pool);
    aio_context_unref(ctx);
}

static int tiny_fn(void *opaque)
{
    return (int)(intptr_t)opaque * 3;
}

typedef struct Tiny {
    int *results;
    int *runs;
    int done;
} Tiny;

static Tiny *tiny_state;

static void tiny_cb(void *opaque, int ret)
{
    int i = (int)(intptr_t)opaque;

    tiny_state->results[i] = ret;
    tiny_state->runs[i]++;
    tiny_state->done++;
}

/* Bursts of tiny jobs, of several sizes, each complete exactly once with
 * their own result, on no more threads than the maximum; rounds until
 * 50 bursts or the stress time. */
static void test_tiny_job_bursts(void)
{
    enum { MAXN = 4096 };
    static const int sizes[] = { 2, 32, 33, 100, 1000, MAXN };
    AioContext *ctx = new_ctx();
    ThreadPool *pool = thread_pool_new(ctx);
    Tiny t = {
        .results = calloc(MAXN, sizeof(int)),
        .runs = calloc(MAXN, sizeof(int)),
    };
    int64_t end = test_stress_end();
    int round, i;

    REQUIRE(pool != NULL && t.results && t.runs);
    tiny_state = &t;
    REQUIRE(thread_pool_set_params(pool, 0, 8, 10000 * MS, 10000) == 0);
    for (round = 0; round < 50 && (round < 6 || test_stress_more(end));
         round++) {
        int n = sizes[round % 6], cur = -1;

        memset(t.results, 0, MAXN * sizeof(int));
        memset(t.runs, 0, MAXN * sizeof(int));
        t.done = 0;
        for (i = 0; i < n; i++) {
            CHECK(thread_pool_submit_aio(pool, tiny_fn, (void *)(intptr_t)i,
                                         tiny_cb, (void *)(intptr_t)i)
                  != NULL);
        }
        while (t.done < n) {
            aio_poll(ctx, true);
        }
        for (i = 0; i < n; i++) {
            if (t.runs[i] != 1 || t.results[i] != i * 3) {
                CHECK_EQ(t.runs[i], 1);
                CHECK_EQ(t.results[i], i * 3);
                break;
            }
        }
        thread_pool_stats(pool, &cur, NULL);
        CHECK(cur >= 1 && cur <= 8);
        test_progress();
    }
    thread_pool_free(pool);
    aio_context_unref(ctx);
    free(t.results);
    free(t.runs);
}

/* Freeing a pool while jobs wait behind workers that run (a sentinel
 * may be watching them): the running ones complete, the queued ones
 * complete with -ECANCELED or ran, each exactly once. */
static void test_free_while_watching(void)
{
    enum { N = 200 };
    AioContext *ctx = new_ctx();
    Job *jobs = calloc(N, sizeof(*jobs));
    int round, i;

    REQUIRE(jobs != NULL);
    reset_case_counters();
    for (round = 0; round < 20; round++) {
        ThreadPool *pool = thread_pool_new(ctx);
        int count = 0;

        REQUIRE(pool != NULL);
        memset(jobs, 0, N * sizeof(*jobs));
        for (i = 0; i < N; i++) {
            jobs[i].value = i;
            jobs[i].sleep_us = i % 4 == 0 ? 200 : 0;
            jobs[i].cb_counter = &count;
            CHECK(submit(pool, &jobs[i]) != NULL);
        }
        sleep_us(300);
        thread_pool_free(pool);
        CHECK_EQ(count, N);
        for (i = 0; i < N; i++) {
            int ran = qatomic_read(&jobs[i].ran);

            CHECK_EQ(jobs[i].cb_runs, 1);
            CHECK(ran == 0 || ran == 1);
            CHECK_EQ(jobs[i].cb_ret, ran ? i : -ECANCELED);
        }
        test_progress();
    }
    free(jobs);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_blocking_jobs_run_concurrently);
    RUN(test_short_jobs_pass_blocked_workers);
    RUN(test_queue_waits_at_max_threads);
    RUN(test_tiny_job_bursts);
    RUN(test_free_while_watching);
    return test_done();
}
