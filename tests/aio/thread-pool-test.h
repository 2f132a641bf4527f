/*
 * tests/aio/thread-pool-test.h - helpers shared by the thread-pool test
 * programs (test-thread-pool*.c): Job, a job whose function records
 * whether and where it ran (and can post semaphores, block until
 * released, sleep, count concurrency) and whose completion callback
 * records what it received and in which thread; submit(), poll_until()
 * (blocking polls until a count, counting iterations that ran a callback
 * without reporting progress), wait_threads(), wait_sem_n() and
 * four_workers(). Waits have no time bound: the harness's watchdog.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_THREAD_POOL_TEST_H
#define AIOLOOP_THREAD_POOL_TEST_H

#include <aioloop.h>

#include "aio-test.h"


#define MS 1000000LL                    /* nanoseconds per millisecond */

/* Concurrency of job functions, over all pools of the current case. */
static int active_jobs __attribute__((unused));      /* atomic */
static int max_active_jobs __attribute__((unused));  /* atomic */

typedef struct Job Job;

struct Job {
    int value;                  /* what the function returns */
    QemuSemaphore *started;     /* posted when the function starts */
    QemuSemaphore *release;     /* if set, the function waits on it */
    QemuSemaphore *finished;    /* posted just before the function returns */
    int sleep_us;               /* the function sleeps this long */
    int *act;                   /* optional: concurrency of a group */
    int *act_max;
    QemuThread *expect;         /* the thread callbacks must run in */
    void (*on_cb)(Job *j);      /* called from the completion callback */
    int *cb_counter;            /* atomically incremented by the callback */
    QemuSemaphore *cb_done;     /* posted by the callback, last */

    int ran;                    /* atomic: times the function ran */
    int worker_tid;             /* written by the function */
    BlockAIOCB *acb;

    int cb_runs;                /* the completion callback's records */
    int cb_ret;
    int cb_tid;
    bool cb_in_expected;
    int cb_worker_tid;          /* worker_tid as the callback saw it */
    int cb_ran;                 /* ran as the callback saw it */
    void *user;                 /* for on_cb hooks */
};

/* *cur += 1; *max = the largest *cur seen. */
static inline void track_enter(int *cur, int *max)
{
    int now = qatomic_inc_fetch(cur);
    int m = qatomic_read(max);

    while (now > m) {
        int seen = qatomic_cmpxchg(max, m, now);
        if (seen == m) {
            break;
        }
        m = seen;
    }
}

static inline int job_fn(void *opaque)
{
    Job *j = opaque;

    qatomic_inc(&j->ran);
    j->worker_tid = qemu_get_thread_id();
    track_enter(&active_jobs, &max_active_jobs);
    if (j->act) {
        track_enter(j->act, j->act_max);
    }
    if (j->started) {
        qemu_sem_post(j->started);
    }
    if (j->release) {
        qemu_sem_wait(j->release);
    }
    if (j->sleep_us) {
        sleep_us(j->sleep_us);
    }
    if (j->act) {
        qatomic_dec(j->act);
    }
    qatomic_dec(&active_jobs);
    if (j->finished) {
        qemu_sem_post(j->finished);
    }
    return j->value;
}

static inline void job_cb(void *opaque, int ret)
{
    Job *j = opaque;

    j->cb_runs++;
    j->cb_ret = ret;
    j->cb_tid = qemu_get_thread_id();
    j->cb_in_expected = j->expect && qemu_thread_is_self(j->expect);
    j->cb_ran = qatomic_read(&j->ran);
    if (j->cb_ran) {
        /* Written by the worker before the function returned: the
         * completion must happen after it (TSan checks the ordering). */
        j->cb_worker_tid = j->worker_tid;
    }
    if (j->on_cb) {
        j->on_cb(j);
    }
    if (j->cb_counter) {
        qatomic_inc(j->cb_counter);
    }
    if (j->cb_done) {
        qemu_sem_post(j->cb_done);
    }
}

static inline void reset_case_counters(void)
{
    qatomic_set(&active_jobs, 0);
    qatomic_set(&max_active_jobs, 0);
}

static inline BlockAIOCB *submit(ThreadPool *pool, Job *j)
{
    j->acb = thread_pool_submit_aio(pool, job_fn, j, job_cb, j);
    return j->acb;
}

/*
 * Blocking aio_poll() until *count reaches target. Every iteration in
 * which the count grew (a completion callback ran) must report progress;
 * returns the number of iterations that did not.
 */
static inline int poll_until(AioContext *ctx, int *count, int target)
{
    int bad = 0;

    while (qatomic_read(count) < target) {
        int before = qatomic_read(count);
        bool progress = aio_poll(ctx, true);

        if (qatomic_read(count) > before && !progress) {
            bad++;
        }
    }
    return bad;
}

/* Waits until the pool has 'want' workers (and, if idle_too, all idle).
 * No time bound (a pool that never gets there: the watchdog); says what
 * it waits for every few seconds. */
static inline void wait_threads(ThreadPool *pool, int want, bool idle_too)
{
    int polls = 0;

    for (;;) {
        int cur = -1, idle = -1;

        thread_pool_stats(pool, &cur, &idle);
        if (cur == want && (!idle_too || idle == cur)) {
            return;
        }
        if (++polls % 2500 == 0) {
            printf("#   waiting for %d threads%s, have %d (%d idle)\n", want,
                   idle_too ? " all idle" : "", cur, idle);
        }
        sleep_ms(2);
    }
}

/* Takes n units of 'sem'. */
static inline void wait_sem_n(QemuSemaphore *sem, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        qemu_sem_wait(sem);
    }
}

/* Runs four jobs at once on 'pool' so that four workers exist. */
static inline void four_workers(AioContext *ctx, ThreadPool *pool)
{
    QemuSemaphore started, release;
    Job jobs[4];
    int count = 0, i, cur = -1, idle = -1;

    qemu_sem_init(&started, 0);
    qemu_sem_init(&release, 0);
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < 4; i++) {
        jobs[i].value = i;
        jobs[i].started = &started;
        jobs[i].release = &release;
        jobs[i].cb_counter = &count;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    wait_sem_n(&started, 4);
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 4);
    for (i = 0; i < 4; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 4), 0);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(jobs[i].cb_ret, i);
    }
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}
#endif /* AIOLOOP_THREAD_POOL_TEST_H */
