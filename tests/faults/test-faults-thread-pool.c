/*
 * test-faults-thread-pool.c - the thread pool when workers cannot be
 * started: pthread_create() failing with EAGAIN (once, a few times,
 * always, at random) and the allocation of a new thread's start record
 * failing.
 *
 * Contract checked (thread-pool.h): no job is lost. With a worker alive,
 * it takes the queue; with none, the start is retried (timer back-off,
 * later submissions) and the first success runs every queued job; after
 * one second of failures with no worker, the queued jobs complete with
 * -EAGAIN without running. Each job's callback (or waiting coroutine)
 * runs exactly once, in the pool's context, with the job's value or the
 * error - never both, never neither.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/thread-pool.h>

#include "faults-test.h"


typedef struct Job {
    int value;
    int ran;                    /* atomic: times the function ran */
    int worker;                 /* its thread id */
    QemuSemaphore *started;     /* posted when it starts, if set */
    QemuSemaphore *release;     /* waited on (10 s at most), if set */
    Counter done;
} Job;

static int job_fn(void *opaque)
{
    Job *j = opaque;

    j->worker = qemu_get_thread_id();
    qatomic_inc(&j->ran);
    if (j->started) {
        qemu_sem_post(j->started);
    }
    if (j->release) {
        qemu_sem_wait(j->release);
    }
    return j->value;
}

static void submit(ThreadPool *pool, Job *j, int value, int *total)
{
    j->value = value;
    j->done.total = total;
    thread_pool_submit_aio(pool, job_fn, j, counter_cb, &j->done);
}

/* A context whose pool has never started a worker. */
static AioContext *fresh_ctx(ThreadPool **pool)
{
    AioContext *ctx = new_ctx();

    *pool = aio_get_thread_pool(ctx);
    return ctx;
}

/* ------------------------------------------------------------------ */

/* Starts fail while a worker is busy: that worker runs the queue. */
static void test_spawn_fails_worker_alive(void)
{
    enum { N = 20 };
    ThreadPool *pool;
    AioContext *ctx = fresh_ctx(&pool);
    QemuSemaphore started, release;
    Job blocker = { .started = &started, .release = &release };
    Job jobs[N];
    int total = 0, bad = 0, cur = 0;
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE);

    memset(jobs, 0, sizeof(jobs));
    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    thread_pool_set_params(pool, 0, 64, 10LL * 1000 * MS, 0);
    submit(pool, &blocker, -1, &total);
    qemu_sem_wait(&started);

    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, -1, EAGAIN);
    for (int i = 0; i < N; i++) {
        submit(pool, &jobs[i], i, &total);
    }
    qemu_sem_post(&release);
    poll_until(ctx, &total, N + 1);
    aioloop__fault_clear();
    while (aio_poll(ctx, false)) {
    }

    printf("#   %lu starts refused\n",
           aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) - hits0);
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) - hits0 >= 1);
    CHECK_EQ(counters_not_once(&blocker.done, 1), 0);
    CHECK_EQ(counters_not_once(&jobs[0].done, 1), 0);
    for (int i = 0; i < N; i++) {
        if (jobs[i].done.runs != 1 || jobs[i].done.ret != i ||
            jobs[i].ran != 1 || jobs[i].worker != blocker.worker) {
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    thread_pool_stats(pool, &cur, NULL);
    CHECK_EQ(cur, 1);
    aio_context_unref(ctx);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* No worker at all, three refusals: the retry timer gets one going. */
static void test_spawn_fails_then_succeeds(void)
{
    enum { N = 10 };
    ThreadPool *pool;
    AioContext *ctx = fresh_ctx(&pool);
    Job jobs[N];
    int total = 0, bad = 0;
    int64_t t0;

    /* The retries beat the 1 s give-up (timers fire in deadline order,
     * however late): the first job succeeds (checked below with the
     * others), it does not fail with -EAGAIN. */
    memset(jobs, 0, sizeof(jobs));
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, 3, EAGAIN);
    t0 = test_now_ns();
    submit(pool, &jobs[0], 0, &total);
    poll_until(ctx, &total, 1);
    printf("#   first job done after %lld us\n",
           (long long)(test_now_ns() - t0) / 1000);
    for (int i = 1; i < N; i++) {
        submit(pool, &jobs[i], i, &total);
    }
    poll_until(ctx, &total, N);
    for (int i = 0; i < N; i++) {
        bad += jobs[i].done.runs != 1 || jobs[i].done.ret != i ||
               jobs[i].ran != 1;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) -
             faults__before[AIOLOOP_FAULT_THREAD_CREATE], 3);
    aio_context_unref(ctx);
}

/* Queued jobs complete with the error after a second; a coroutine
 * waiting in thread_pool_submit_co() gets it too. */
typedef struct {
    ThreadPool *pool;
    Job job;
    int ret;
    int done;                   /* atomic */
} CoJob;

static void coroutine_fn co_job_entry(void *opaque)
{
    CoJob *c = opaque;

    c->ret = thread_pool_submit_co(c->pool, job_fn, &c->job);
    qatomic_inc(&c->done);
}

static void test_spawn_fails_persistently(void)
{
    enum { N = 5 };
    ThreadPool *pool;
    AioContext *ctx = fresh_ctx(&pool);
    Job jobs[N], again;
    CoJob co = { .pool = pool, .job = { .value = 77 } };
    int total = 0, bad = 0;
    int64_t t0, waited;

    memset(jobs, 0, sizeof(jobs));
    memset(&again, 0, sizeof(again));
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, -1, EAGAIN);
    t0 = test_now_ns();
    for (int i = 0; i < N; i++) {
        submit(pool, &jobs[i], i, &total);
    }
    aio_co_enter(ctx, qemu_coroutine_create(co_job_entry, &co));
    poll_until(ctx, &total, N);
    poll_until(ctx, &co.done, 1);
    waited = (test_now_ns() - t0) / MS;
    printf("#   jobs failed after %lld ms, %lu starts refused\n",
           (long long)waited,
           aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) -
           faults__before[AIOLOOP_FAULT_THREAD_CREATE]);
    CHECK(waited >= 900);
    for (int i = 0; i < N; i++) {
        bad += jobs[i].done.runs != 1 || jobs[i].done.ret != -EAGAIN ||
               jobs[i].ran != 0;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(co.ret, -EAGAIN);
    CHECK_EQ(co.job.ran, 0);
    /* Retried along the way, with a back-off (not thousands of tries). */
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) -
          faults__before[AIOLOOP_FAULT_THREAD_CREATE] >= 5);
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) -
          faults__before[AIOLOOP_FAULT_THREAD_CREATE] <= 100);

    /* Once threads can be started again, the pool works. */
    aioloop__fault_clear();
    submit(pool, &again, 5, &total);
    poll_until(ctx, &total, N + 1);
    CHECK_EQ(again.done.ret, 5);
    CHECK_EQ(again.ran, 1);
    aio_context_unref(ctx);
}

/* The new thread's start record cannot be allocated: -ENOMEM from
 * qemu_thread_create(), a failed start like EAGAIN, retried. */
static void test_start_record_alloc_fails(void)
{
    AioloopFaultPlan plan = { .skip = 1, .count = 1, .err = ENOMEM,
                              .this_thread = true };
    ThreadPool *pool;
    AioContext *ctx = fresh_ctx(&pool);
    Job job;
    int total = 0;
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_ALLOC);

    memset(&job, 0, sizeof(job));
    /* Allocation 0 is the request (qemu_aio_get), 1 the start record. */
    aioloop__fault_arm(AIOLOOP_FAULT_ALLOC, &plan);
    submit(pool, &job, 42, &total);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_ALLOC) - hits0, 1);
    poll_until(ctx, &total, 1);
    CHECK_EQ(job.done.runs, 1);
    CHECK_EQ(job.done.ret, 42);
    CHECK_EQ(job.ran, 1);
    aio_context_unref(ctx);
}

/* 30% of the starts fail, workers retire after 1 ms idle so that there
 * are many starts: 1000 jobs in bursts, each completes once with its
 * value. */
static void test_spawn_random_failures(void)
{
    enum { BURSTS = 20, PER = 50, N = BURSTS * PER };
    ThreadPool *pool;
    AioContext *ctx = fresh_ctx(&pool);
    Job *jobs = calloc(N, sizeof(*jobs));
    int total = 0, bad = 0, failed = 0;
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE);
    unsigned long calls0 = aioloop__fault_calls(AIOLOOP_FAULT_THREAD_CREATE);

    REQUIRE(jobs);
    thread_pool_set_params(pool, 0, 4, 1 * MS, 0);
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_CREATE, 300000, 1,
                                 EAGAIN);
    for (int b = 0; b < BURSTS; b++) {
        for (int i = 0; i < PER; i++) {
            submit(pool, &jobs[b * PER + i], b * PER + i, &total);
        }
        poll_until(ctx, &total, (b + 1) * PER);
        sleep_ms(3);            /* let the workers retire */
    }
    poll_until(ctx, &total, N);
    aioloop__fault_clear();
    for (int i = 0; i < N; i++) {
        if (jobs[i].done.ret == -EAGAIN && jobs[i].ran == 0) {
            failed++;           /* allowed: a full second of refusals */
        } else if (jobs[i].done.ret != i || jobs[i].ran != 1) {
            bad++;
        }
        bad += jobs[i].done.runs != 1;
    }
    printf("#   %lu of %lu starts refused, %d jobs failed with -EAGAIN\n",
           aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) - hits0,
           aioloop__fault_calls(AIOLOOP_FAULT_THREAD_CREATE) - calls0,
           failed);
    CHECK_EQ(bad, 0);
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) - hits0 >= 5);
    aio_context_unref(ctx);
    free(jobs);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    FRUN(test_spawn_fails_worker_alive);
    FRUN(test_spawn_fails_then_succeeds);
    FRUN(test_spawn_fails_persistently);
    FRUN(test_start_record_alloc_fails);
    FRUN(test_spawn_random_failures);
    fault_summary();
    return test_done();
}
