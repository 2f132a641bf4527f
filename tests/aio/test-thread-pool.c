/*
 * test-thread-pool.c - the thread pool: results and the thread completion
 * callbacks run in, aio_poll() progress, callbacks only from aio_poll(),
 * thread_pool_submit_co, the pool of an IOThread's context, and
 * fire-and-forget jobs (including the NULL-function death test).
 * (Cancellation: test-thread-pool-cancel.c; AIOCBs: test-aiocb.c;
 * workers, freeing a busy pool, bad parameters:
 * test-thread-pool-workers.c.)
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
    qemu_sem_wait(&fin);
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
    int bad_thread = 0, bad_ret = 0, bad_worker = 0, i;
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
    wait_sem_n(&t->done, N_IO / 2);
    CHECK_EQ(t->submitted_null, 0);

    /* Half from this thread, into the IOThread's pool: the callbacks
     * still run in the IOThread. */
    pool = aio_get_thread_pool(t->ctx);
    REQUIRE(pool != NULL);
    for (i = N_IO / 2; i < N_IO; i++) {
        t->jobs[i].expect = &t->io_thread;
        CHECK(submit(pool, &t->jobs[i]) != NULL);
    }
    wait_sem_n(&t->done, N_IO / 2);
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
    int ran = 0, i;

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
    wait_sem_n(&fin, 50);
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

/* A job with no callback is progress of the pool's context when it
 * completes: the aio_poll() that runs its completion returns true, as in
 * QEMU, whose completion BH is an ordinary one. Loops such as "while
 * (!done) aio_poll(ctx, true)" rely on it: had the completion run in an
 * iteration that was not going to sleep (so no wake-up), a completion
 * that is not progress would leave that aio_poll() asleep for good. The
 * job waits until the loop thread sleeps; nothing else can wake it, so
 * the one aio_poll() ends with the completion and must say true. */
typedef struct {
    QemuSemaphore go;
    int loop_tid;
    int done;
} Gate;

static int gate_job(void *arg)
{
    Gate *g = arg;

    qemu_sem_wait(&g->go);
    qatomic_set(&g->done, 1);
    return 0;
}

static void *gate_opener(void *arg)
{
    Gate *g = arg;

    wait_until_polling(g->loop_tid);
    qemu_sem_post(&g->go);
    return NULL;
}

static void test_submit_no_callback_is_progress(void)
{
    AioContext *ctx = new_ctx();
    Gate g = { .loop_tid = test_gettid() };
    QemuThread opener;
    int polls = 0;
    bool progress = false;

    qemu_sem_init(&g.go, 0);
    thread_pool_submit(aio_get_thread_pool(ctx), gate_job, &g);
    qemu_thread_create(&opener, "gate-opener", gate_opener, &g,
                       QEMU_THREAD_JOINABLE);
    while (!qatomic_read(&g.done)) {
        progress = aio_poll(ctx, true);
        polls++;
    }
    CHECK(polls >= 1);
    CHECK(progress);
    qemu_thread_join(&opener);
    qemu_sem_destroy(&g.go);
    aio_context_unref(ctx);
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

    RUN(test_null_func);
    RUN(test_submit_co);
    RUN(test_many_jobs_results_and_threads);
    RUN(test_completion_waits_for_aio_poll);
    RUN(test_iothread_pool);
    RUN(test_submit_no_callback);
    RUN(test_submit_no_callback_is_progress);
    return test_done();
}
