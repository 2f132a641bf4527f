/*
 * test-thread-pool.c - the thread pool and AIOCBs: results and the thread
 * completion callbacks run in, aio_poll() progress, cancellation (queued,
 * running, finished, from inside a completion callback, synchronous and
 * asynchronous), AIOCB reference counting with a custom AIOCBInfo, pools
 * of an IOThread's context, fire-and-forget jobs, on-demand workers
 * (also while a worker spins), the max_threads bound (also after it is
 * lowered), idle retirement down to min_threads, idle timeouts beyond an
 * int of milliseconds, freeing a busy pool (thread_pool_free and the
 * context's last unref), and bad input (including the NULL-function
 * death test, which runs first, while the process has one thread).
 *
 * Every job records in its own Job struct whether (and where) its function
 * ran and what its callback received, so each case checks "exactly once"
 * per job. Jobs that block wait on a semaphore with a timeout, so that a
 * bug shows up as a failed check rather than a hang; a blocking
 * aio_poll() that never returns is caught by the watchdog.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "aio-test.h"


#define MS 1000000LL                    /* nanoseconds per millisecond */
#define BLOCK_TIMEOUT_MS 10000          /* a blocked job gives up after */

/* Concurrency of job functions, over all pools of the current case. */
static int active_jobs;                 /* atomic */
static int max_active_jobs;             /* atomic */
static int block_timeouts;              /* atomic: a blocked job gave up */

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
static void track_enter(int *cur, int *max)
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

static int job_fn(void *opaque)
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
    if (j->release && qemu_sem_timedwait(j->release, BLOCK_TIMEOUT_MS) != 0) {
        qatomic_inc(&block_timeouts);
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

static void job_cb(void *opaque, int ret)
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

static void reset_case_counters(void)
{
    qatomic_set(&active_jobs, 0);
    qatomic_set(&max_active_jobs, 0);
    qatomic_set(&block_timeouts, 0);
}

static BlockAIOCB *submit(ThreadPool *pool, Job *j)
{
    j->acb = thread_pool_submit_aio(pool, job_fn, j, job_cb, j);
    return j->acb;
}

/*
 * Blocking aio_poll() until *count reaches target. Every iteration in
 * which the count grew (a completion callback ran) must report progress;
 * returns the number of iterations that did not.
 */
static int poll_until(AioContext *ctx, int *count, int target)
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

/* Waits until the pool has 'want' workers (and, if idle_too, all idle);
 * returns false if that did not happen within timeout_ms. */
static bool wait_threads(ThreadPool *pool, int want, bool idle_too,
                         int timeout_ms)
{
    int64_t deadline = test_now_ns() + timeout_ms * MS;

    for (;;) {
        int cur = -1, idle = -1;

        thread_pool_stats(pool, &cur, &idle);
        if (cur == want && (!idle_too || idle == cur)) {
            return true;
        }
        if (test_now_ns() > deadline) {
            printf("#   wanted %d threads%s, have %d (%d idle)\n", want,
                   idle_too ? " all idle" : "", cur, idle);
            return false;
        }
        sleep_ms(2);
    }
}

/* Takes n units of 'sem', waiting at most 3 s in all; counts the ones
 * that did not come. */
static void wait_sem_n(QemuSemaphore *sem, int n, int *missing)
{
    int64_t deadline = test_now_ns() + 3000 * MS;
    int i;

    for (i = 0; i < n; i++) {
        int64_t left_ms = (deadline - test_now_ns()) / MS;

        if (qemu_sem_timedwait(sem, left_ms > 0 ? (int)left_ms : 0) != 0) {
            (*missing)++;
        }
    }
}

static void four_workers(AioContext *ctx, ThreadPool *pool);

/* ------------------------------------------------------------------ */
/* NULL function: an assertion in debug builds, NULL with NDEBUG.      */

static void test_null_func(void)
{
#ifdef NDEBUG
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    int count = 0;

    REQUIRE(pool != NULL);
    CHECK(thread_pool_submit_aio(pool, NULL, NULL, job_cb, &count) == NULL);
    /* Nothing was queued: nothing completes. */
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
#else
    pid_t pid;
    int status = 0;

    fflush(stdout);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        AioContext *ctx;
        ThreadPool *pool;
        int fd = open("/dev/null", O_WRONLY);

        setrlimit(RLIMIT_CORE, &no_core);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
        }
        ctx = aio_context_new(NULL);
        if (!ctx) {
            _exit(3);
        }
        pool = aio_get_thread_pool(ctx);
        if (!pool) {
            _exit(4);
        }
        (void)thread_pool_submit_aio(pool, NULL, NULL, NULL, NULL);
        _exit(0);               /* no assertion: the test fails */
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status)) {
        printf("#   child exited with %d\n", WEXITSTATUS(status));
    }
    CHECK(WIFSIGNALED(status));
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

/* ------------------------------------------------------------------ */
/* 1,000 jobs: results, threads, progress                             */

#define N_MANY 1000

static void test_many_jobs_results_and_threads(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    Job *jobs = calloc(N_MANY, sizeof(*jobs));
    QemuThread self;
    int main_tid = qemu_get_thread_id();
    int count = 0, bad_progress, i;
    int wrong_ret = 0, wrong_runs = 0, wrong_thread = 0, wrong_worker = 0;
    int not_ran = 0;

    REQUIRE(jobs != NULL);
    REQUIRE(pool != NULL);
    CHECK(aio_get_thread_pool(ctx) == pool);
    reset_case_counters();
    qemu_thread_get_self(&self);

    for (i = 0; i < N_MANY; i++) {
        jobs[i].value = 3 * i + 7;      /* distinct, derived from the arg */
        jobs[i].expect = &self;
        jobs[i].cb_counter = &count;
        jobs[i].sleep_us = (i % 50 == 0) ? 200 : 0;
        CHECK(submit(pool, &jobs[i]) != NULL);
    }
    bad_progress = poll_until(ctx, &count, N_MANY);
    CHECK_EQ(bad_progress, 0);
    CHECK_EQ(qatomic_read(&count), N_MANY);

    /* Nothing left: a non-blocking poll makes no progress. */
    for (i = 0; i < 3; i++) {
        CHECK(!aio_poll(ctx, false));
    }

    for (i = 0; i < N_MANY; i++) {
        Job *j = &jobs[i];

        wrong_runs += j->cb_runs != 1 || qatomic_read(&j->ran) != 1;
        wrong_ret += j->cb_ret != 3 * i + 7;
        not_ran += j->cb_ran != 1;
        wrong_thread += !j->cb_in_expected || j->cb_tid != main_tid;
        wrong_worker += j->cb_worker_tid == main_tid ||
                        j->cb_worker_tid == 0 ||
                        j->cb_worker_tid == j->cb_tid;
    }
    CHECK_EQ(wrong_runs, 0);
    CHECK_EQ(wrong_ret, 0);
    CHECK_EQ(not_ran, 0);
    CHECK_EQ(wrong_thread, 0);
    CHECK_EQ(wrong_worker, 0);
    CHECK(qatomic_read(&max_active_jobs) <= 64);

    /* Negative returns (errors) reach the callback unchanged. */
    {
        Job e = { .value = -EIO, .expect = &self, .cb_counter = &count };

        qatomic_set(&count, 0);
        CHECK(submit(pool, &e) != NULL);
        CHECK_EQ(poll_until(ctx, &count, 1), 0);
        CHECK_EQ(e.cb_runs, 1);
        CHECK_EQ(e.cb_ret, -EIO);
    }

    aio_context_unref(ctx);
    free(jobs);
}

/* A callback runs only from aio_poll(): not while the context is idle,
 * even after the function has returned. */
static void test_completion_waits_for_aio_poll(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore fin;
    QemuThread self;
    Job j = { .value = 42 };
    int count = 0;

    qemu_sem_init(&fin, 0);
    qemu_thread_get_self(&self);
    j.finished = &fin;
    j.expect = &self;
    j.cb_counter = &count;
    REQUIRE(submit(pool, &j) != NULL);
    CHECK_EQ(qemu_sem_timedwait(&fin, 5000), 0);
    sleep_ms(20);
    CHECK_EQ(j.cb_runs, 0);
    CHECK_EQ(j.cb_ret, 0);
    CHECK_EQ(poll_until(ctx, &count, 1), 0);
    CHECK_EQ(j.cb_runs, 1);
    CHECK_EQ(j.cb_ret, 42);
    CHECK(j.cb_in_expected);
    aio_context_unref(ctx);
    qemu_sem_destroy(&fin);
}

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
    int count = 0, missing = 0, i, cur = -1, idle = -1;
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
    wait_sem_n(&started, 2, &missing);
    CHECK_EQ(missing, 0);

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
    CHECK_EQ(qatomic_read(&block_timeouts), 0);
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
            CHECK(wait_threads(pool, 4, true, 3000));
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
    CHECK_EQ(qemu_sem_timedwait(&started, 5000), 0);
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
    CHECK_EQ(qemu_sem_timedwait(&started, 5000), 0);
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
    int count = 0, missing = 0;

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
    CHECK_EQ(qemu_sem_timedwait(&fin, 5000), 0);
    bl.started = &started;
    bl.release = &release;
    REQUIRE(submit(pool, &bl) != NULL);
    CHECK_EQ(qemu_sem_timedwait(&started, 5000), 0);
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
    wait_sem_n(&fin, 2, &missing);
    CHECK_EQ(missing, 0);
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
    CHECK_EQ(qemu_sem_timedwait(&fin, 5000), 0);
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

/* ------------------------------------------------------------------ */
/* AIOCBs with a custom AIOCBInfo                                      */

typedef struct {
    BlockAIOCB common;
    AioContext *ctx;
    int payload[64];
    char tail[37];
} MyAIOCB;

static int my_cancel_calls;
static int my_cb_runs;
static int my_cb_ret;

static void my_cb(void *opaque, int ret)
{
    int *p = opaque;

    (*p)++;
    my_cb_runs++;
    my_cb_ret = ret;
}

/* The "device" completes a cancelled request from a BH of its context. */
static void my_complete_bh(void *opaque)
{
    MyAIOCB *acb = opaque;

    acb->common.cb(acb->common.opaque, -ECANCELED);
    qemu_aio_unref(acb);
}

static void my_cancel_async(BlockAIOCB *acb)
{
    MyAIOCB *m = (MyAIOCB *)acb;

    my_cancel_calls++;
    aio_bh_schedule_oneshot(m->ctx, my_complete_bh, m);
}

static AioContext *my_get_aio_context(BlockAIOCB *acb)
{
    return ((MyAIOCB *)acb)->ctx;
}

static const AIOCBInfo my_info = {
    .cancel_async = my_cancel_async,
    .get_aio_context = my_get_aio_context,
    .aiocb_size = sizeof(MyAIOCB),
};

static const AIOCBInfo my_info_nocancel = {
    .get_aio_context = my_get_aio_context,
    .aiocb_size = sizeof(MyAIOCB),
};

static const AIOCBInfo my_info_main_ctx = {
    .cancel_async = my_cancel_async,
    .aiocb_size = sizeof(MyAIOCB),
};

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (c[i]) {
            return false;
        }
    }
    return true;
}

static void test_aiocb_get_ref_unref(void)
{
    static int fake_bs;
    BlockDriverState *bs = (BlockDriverState *)&fake_bs;
    int opaque_count = 0;
    MyAIOCB *m;
    int i;

    for (i = 0; i < 20; i++) {
        m = qemu_aio_get(&my_info, bs, my_cb, &opaque_count);
        REQUIRE(m != NULL);
        CHECK(m->common.aiocb_info == &my_info);
        CHECK(m->common.bs == bs);
        CHECK(m->common.cb == my_cb);
        CHECK(m->common.opaque == &opaque_count);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
        CHECK(all_zero((char *)m + sizeof(BlockAIOCB),
                       sizeof(MyAIOCB) - sizeof(BlockAIOCB)));
        /* Dirty it, so that a recycled block shows up as non-zero. */
        memset(m->payload, 0xa5, sizeof(m->payload));
        memset(m->tail, 0x5a, sizeof(m->tail));
        m->tail[sizeof(m->tail) - 1] = 1;

        qemu_aio_ref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 2);
        qemu_aio_ref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 3);
        qemu_aio_unref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 2);
        qemu_aio_unref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
        qemu_aio_unref(m);      /* freed: ASan reports a leak otherwise */
    }

    /* A NULL bs is allowed; with no cancel_async, cancelling is a no-op. */
    m = qemu_aio_get(&my_info_nocancel, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    CHECK(m->common.bs == NULL);
    bdrv_aio_cancel_async(&m->common);
    CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
    CHECK_EQ(opaque_count, 0);
    qemu_aio_unref(m);
}

/* Threads hammering qemu_aio_ref/unref on one AIOCB. */
static void *ref_unref_thread(void *opaque)
{
    int i;

    for (i = 0; i < 10000; i++) {
        qemu_aio_ref(opaque);
        qemu_aio_unref(opaque);
    }
    return NULL;
}

static void test_aiocb_ref_concurrent(void)
{
    int opaque_count = 0;
    MyAIOCB *m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    QemuThread t[4];
    int i;

    REQUIRE(m != NULL);
    for (i = 0; i < 4; i++) {
        start_thread(&t[i], "aiocb-ref", ref_unref_thread, m);
    }
    for (i = 0; i < 4; i++) {
        qemu_thread_join(&t[i]);
    }
    CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
    qemu_aio_unref(m);
}

/* bdrv_aio_cancel() on a custom AIOCB: calls cancel_async, polls the
 * request's context (else the main context) until the request is done. */
static void test_aiocb_cancel_custom(void)
{
    AioContext *ctx = new_ctx();
    int opaque_count = 0;
    MyAIOCB *m;

    my_cancel_calls = my_cb_runs = my_cb_ret = 0;
    m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = ctx;
    bdrv_aio_cancel(&m->common);
    CHECK_EQ(my_cancel_calls, 1);
    CHECK_EQ(my_cb_runs, 1);
    CHECK_EQ(opaque_count, 1);
    CHECK_EQ(my_cb_ret, -ECANCELED);
    /* m is freed now (ASan reports a leak otherwise). */

    /* Async: the completion comes from the context's loop. */
    m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = ctx;
    bdrv_aio_cancel_async(&m->common);
    CHECK_EQ(my_cancel_calls, 2);
    CHECK_EQ(my_cb_runs, 1);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(my_cb_runs, 2);
    aio_context_unref(ctx);

    /* No get_aio_context: bdrv_aio_cancel polls the main context. */
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    m = qemu_aio_get(&my_info_main_ctx, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = qemu_get_aio_context();
    bdrv_aio_cancel(&m->common);
    CHECK_EQ(my_cancel_calls, 3);
    CHECK_EQ(my_cb_runs, 3);
    CHECK_EQ(opaque_count, 3);
    qemu_cleanup_main_loop();
}

/* ------------------------------------------------------------------ */
/* The pool of an IOThread's context                                   */

#define N_IO 100

typedef struct {
    AioContext *ctx;
    QemuThread io_thread;
    int io_tid;
    Job jobs[N_IO];
    int submitted_null;
    int count;                  /* atomic */
    QemuSemaphore done;         /* posted by each callback */
} IoPoolTest;

static void io_submit_bh(void *opaque)
{
    IoPoolTest *t = opaque;
    ThreadPool *pool = aio_get_thread_pool(t->ctx);
    int i;

    qemu_thread_get_self(&t->io_thread);
    t->io_tid = qemu_get_thread_id();
    for (i = 0; i < N_IO / 2; i++) {
        t->jobs[i].expect = &t->io_thread;
        if (!submit(pool, &t->jobs[i])) {
            t->submitted_null++;
        }
    }
}

static void test_iothread_pool(void)
{
    IOThread *io = iothread_create("tp-io", &error_abort);
    IoPoolTest *t = calloc(1, sizeof(*t));
    int main_tid = qemu_get_thread_id();
    int missing = 0, bad_thread = 0, bad_ret = 0, bad_worker = 0, i;
    ThreadPool *pool;

    REQUIRE(t != NULL);
    t->ctx = iothread_get_aio_context(io);
    qemu_sem_init(&t->done, 0);
    for (i = 0; i < N_IO; i++) {
        t->jobs[i].value = 9 * i + 2;
        t->jobs[i].sleep_us = i % 10 == 0 ? 500 : 0;
        t->jobs[i].cb_counter = &t->count;
        t->jobs[i].cb_done = &t->done;
    }
    /* Half submitted from a BH running in the IOThread. */
    aio_bh_schedule_oneshot(t->ctx, io_submit_bh, t);
    wait_sem_n(&t->done, N_IO / 2, &missing);
    CHECK_EQ(missing, 0);
    CHECK_EQ(t->submitted_null, 0);

    /* Half from this thread, into the IOThread's pool: the callbacks
     * still run in the IOThread. */
    pool = aio_get_thread_pool(t->ctx);
    REQUIRE(pool != NULL);
    for (i = N_IO / 2; i < N_IO; i++) {
        t->jobs[i].expect = &t->io_thread;
        CHECK(submit(pool, &t->jobs[i]) != NULL);
    }
    wait_sem_n(&t->done, N_IO / 2, &missing);
    CHECK_EQ(missing, 0);
    CHECK_EQ(qatomic_read(&t->count), N_IO);

    for (i = 0; i < N_IO; i++) {
        Job *j = &t->jobs[i];

        bad_ret += j->cb_runs != 1 || j->cb_ret != 9 * i + 2;
        bad_thread += !j->cb_in_expected || j->cb_tid != t->io_tid ||
                      j->cb_tid == main_tid;
        bad_worker += j->cb_worker_tid == t->io_tid ||
                      j->cb_worker_tid == main_tid || j->cb_worker_tid == 0;
    }
    CHECK_EQ(bad_ret, 0);
    CHECK_EQ(bad_thread, 0);
    CHECK_EQ(bad_worker, 0);
    iothread_destroy(io);
    qemu_sem_destroy(&t->done);
    free(t);
}

/* ------------------------------------------------------------------ */
/* thread_pool_submit: no callback                                     */

static void test_submit_no_callback(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    QemuSemaphore fin;
    Job jobs[50];
    int missing = 0, ran = 0, i;

    qemu_sem_init(&fin, 0);
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < 50; i++) {
        jobs[i].value = i;
        jobs[i].finished = &fin;
        if (i < 40) {
            thread_pool_submit(pool, job_fn, &jobs[i]);
        } else {
            /* A NULL callback with the _aio variant. */
            CHECK(thread_pool_submit_aio(pool, job_fn, &jobs[i], NULL,
                                         NULL) != NULL);
        }
    }
    /* The functions run without anyone polling. */
    wait_sem_n(&fin, 50, &missing);
    CHECK_EQ(missing, 0);
    for (i = 0; i < 5; i++) {
        aio_poll(ctx, false);
    }
    aio_context_unref(ctx);
    for (i = 0; i < 50; i++) {
        ran += qatomic_read(&jobs[i].ran) == 1;
    }
    CHECK_EQ(ran, 50);
    qemu_sem_destroy(&fin);
}

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
    int count = 0, missing = 0, i, cur = -1, idle = -1, max_seen = 0;

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
        CHECK(wait_threads(pool, 1, true, 3000));
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
    wait_sem_n(&started, 4, &missing);
    CHECK_EQ(missing, 0);
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
    missing = 0;
    wait_sem_n(&started, 4, &missing);
    CHECK_EQ(missing, 0);

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
    CHECK_EQ(qatomic_read(&block_timeouts), 0);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* Runs four jobs at once on 'pool' so that four workers exist. */
static void four_workers(AioContext *ctx, ThreadPool *pool)
{
    QemuSemaphore started, release;
    Job jobs[4];
    int count = 0, missing = 0, i, cur = -1, idle = -1;

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
    wait_sem_n(&started, 4, &missing);
    CHECK_EQ(missing, 0);
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
    CHECK(wait_threads(pool, 0, false, 3000));

    /* With min_threads 2, two stay. */
    REQUIRE(thread_pool_set_params(pool, 2, 4, 50 * MS, 0) == 0);
    four_workers(ctx, pool);
    CHECK(wait_threads(pool, 2, true, 3000));
    sleep_ms(300);              /* six idle timeouts */
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 2);
    CHECK_EQ(idle, 2);

    /* Lowering min_threads lets the survivors retire too. */
    REQUIRE(thread_pool_set_params(pool, 0, 4, 50 * MS, 1000) == 0);
    four_workers(ctx, pool);
    CHECK(wait_threads(pool, 0, false, 3000));

    thread_pool_free(pool);
    aio_context_unref(ctx);
    CHECK_EQ(qatomic_read(&block_timeouts), 0);
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
    int count = 0, missing = 0, i, cur = -1, idle = -1;

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
    wait_sem_n(&started, 3, &missing);
    CHECK_EQ(missing, 0);
    thread_pool_stats(pool, &cur, &idle);
    CHECK(cur >= 3);            /* the spinner may stay apart: 4 */
    CHECK(cur <= 4);
    for (i = 0; i < 3; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 4), 0);
    if (missing) {
        missing = 0;
        wait_sem_n(&started, 3, &missing);      /* the late starters */
    }
    for (i = 0; i < 3; i++) {
        CHECK_EQ(jobs[i].cb_ret, 10 + i);
    }
    thread_pool_free(pool);
    aio_context_unref(ctx);
    CHECK_EQ(qatomic_read(&block_timeouts), 0);
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
    int count = 0, missing = 0, i, cur = -1, idle = -1;

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
    wait_sem_n(&started, 4, &missing);
    CHECK_EQ(missing, 0);

    CHECK_EQ(thread_pool_set_params(pool, 0, 1, 10000 * MS, 0), 0);
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
    /* The surplus workers do not wait for the (10 s) idle timeout. */
    {
        int64_t deadline = test_now_ns() + 3000 * MS;

        do {
            thread_pool_stats(pool, &cur, &idle);
        } while (cur > 1 && test_now_ns() < deadline && (sleep_ms(2), 1));
    }
    if (cur > 1) {
        printf("#   %d workers left 3 s after max_threads became 1\n", cur);
    }
    CHECK(cur <= 1);
    CHECK(idle <= cur);
    thread_pool_free(pool);
    aio_context_unref(ctx);
    free(later);
    CHECK_EQ(qatomic_read(&block_timeouts), 0);
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
    int missing = 0, i;

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
    wait_sem_n(&b->started, N_BUSY_RUNNING, &missing);
    CHECK_EQ(missing, 0);
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

    CHECK_EQ(qatomic_read(&block_timeouts), 0);
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
    int count = 0, missing = 0, i, cur = -1, idle = -1;

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
    CHECK_EQ(qemu_sem_timedwait(&started, 5000), 0);
    sleep_ms(50);
    thread_pool_stats(pool, &cur, &idle);
    CHECK_EQ(cur, 1);
    CHECK_EQ(qemu_sem_timedwait(&started, 0), -1);
    for (i = 0; i < 3; i++) {
        qemu_sem_post(&release);
    }
    CHECK_EQ(poll_until(ctx, &count, 3), 0);
    wait_sem_n(&started, 2, &missing);
    CHECK_EQ(missing, 0);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(jobs[i].cb_ret, i + 1);
    }
    /* Still min_threads 0 and a 50 ms idle timeout: the worker retires. */
    CHECK(wait_threads(pool, 0, false, 3000));
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
        wait_sem_n(&started, 4, &missing);
        CHECK_EQ(missing, 0);
        sleep_ms(50);
        CHECK_EQ(qemu_sem_timedwait(&started, 0), -1);
        thread_pool_stats(pool, &cur, &idle);
        CHECK_EQ(cur, 4);
        for (i = 0; i < 5; i++) {
            qemu_sem_post(&release);
        }
        CHECK_EQ(poll_until(ctx, &count, 5), 0);
        wait_sem_n(&started, 1, &missing);
        CHECK_EQ(missing, 0);
        for (i = 0; i < 5; i++) {
            CHECK_EQ(more[i].cb_ret, 20 + i);
        }
    }
    aio_context_unref(ctx);
    qemu_sem_destroy(&started);
    qemu_sem_destroy(&release);
}

/* ------------------------------------------------------------------ */
/* thread_pool_submit_co                                               */

typedef struct {
    AioContext *ctx;
    QemuThread loop_thread;
    int rounds;
    int bad_ret;
    int wrong_thread;
    int done;
} CoJobs;

static int co_job(void *arg)
{
    return (int)(intptr_t)arg * 3;
}

static void coroutine_fn co_jobs_entry(void *opaque)
{
    CoJobs *c = opaque;
    int i;

    for (i = 0; i < c->rounds; i++) {
        int ret = thread_pool_submit_co(aio_get_thread_pool(c->ctx), co_job,
                                        (void *)(intptr_t)i);

        if (ret != i * 3) {
            c->bad_ret++;
        }
        /* Resumed in the loop thread of its context, not in a worker. */
        if (!qemu_thread_is_self(&c->loop_thread) ||
            qemu_coroutine_get_aio_context(qemu_coroutine_self()) != c->ctx) {
            c->wrong_thread++;
        }
    }
    c->done = 1;
}

static void test_submit_co(void)
{
    CoJobs c = { .ctx = new_ctx(), .rounds = 200 };
    Coroutine *co = qemu_coroutine_create(co_jobs_entry, &c);

    qemu_thread_get_self(&c.loop_thread);
    aio_co_enter(c.ctx, co);        /* scheduled: enters from aio_poll */
    while (!c.done) {
        aio_poll(c.ctx, true);
    }
    CHECK_EQ(c.bad_ret, 0);
    CHECK_EQ(c.wrong_thread, 0);
    aio_context_unref(c.ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    /* First, while this process has a single thread (it forks). */
    RUN(test_null_func);
    RUN(test_submit_co);
    RUN(test_many_jobs_results_and_threads);
    RUN(test_completion_waits_for_aio_poll);
    RUN(test_cancel_queued_and_running);
    RUN(test_cancel_racing);
    RUN(test_cancel_sync);
    RUN(test_cancel_from_callback);
    RUN(test_cancel_after_completion);
    RUN(test_aiocb_get_ref_unref);
    RUN(test_aiocb_ref_concurrent);
    RUN(test_aiocb_cancel_custom);
    RUN(test_iothread_pool);
    RUN(test_submit_no_callback);
    RUN(test_workers_on_demand);
    RUN(test_idle_workers_retire);
    RUN(test_workers_grow_while_spinning);
    RUN(test_lower_max_threads);
    RUN(test_long_idle_timeout);
    RUN(test_free_busy_pool);
    RUN(test_bad_params);
    return test_done();
}
