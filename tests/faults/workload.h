/*
 * tests/faults/workload.h - a mixed workload with exactly-once
 * accounting, shared by the probability-mode fault test
 * (test-faults-mixed.c) and the signal storm (test-signals.c).
 *
 * One round runs, on a main context polled by this thread and on an
 * IOThread:
 *   - BHs: one-shot BHs scheduled from this thread, from a helper thread
 *     and into the IOThread;
 *   - timers with deadlines spread over a few milliseconds;
 *   - thread-pool jobs of the main context's pool, and of the IOThread's
 *     pool submitted and completed in the IOThread;
 *   - coroutines that sleep, wait for a pool job, move to the IOThread and
 *     back (aio_co_schedule), take a CoMutex and write one block;
 *   - block I/O on every engine the kernel offers (a backend each, with
 *     its own file), attached at the start of the round and detached at
 *     the end: writes then reads, data checked;
 *   - bytes written into a pipe by the helper thread, read by a handler.
 *
 * Every item has its own counter, so a lost or doubled completion shows
 * up by name; results are checked against the documented values (a job
 * returns its index, I/O returns 0; the only error a fault may produce is
 * -EAGAIN: a thread-pool job whose worker could not be started for a
 * second, or a Linux AIO request at the head of a queue refused for a
 * second). All waits are bounded.
 *
 * A test may set Mixed.thread_hook: it runs in every thread the workload
 * uses (this one, the helper, the IOThread, every pool worker that runs a
 * job), first thing - the signal test unblocks SIGUSR1 there and records
 * the thread as a target.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FAULTS_WORKLOAD_H
#define AIOLOOP_FAULTS_WORKLOAD_H

#include <signal.h>

#include <aioloop/thread-pool.h>

#include "faults-test.h"
#include "block/block-test.h"

/*
 * Joining a thread while signals arrive: under ThreadSanitizer a signal
 * that lands in pthread_join() while glibc frees the joined thread's
 * stack deadlocks TSan's own runtime (the handler is run synchronously
 * from the blocking interceptor and waits for the slot lock that the
 * interrupted free() holds: google/sanitizers#1540, seen here as a
 * watchdog hang of test-signals in make check-tsan, once in about 25
 * runs; the stacks were taken with gdb). TSan builds therefore join with
 * signals blocked; they stay pending and are delivered on unblocking, so
 * the storm loses nothing. Plain and ASan builds join as they are.
 */
static inline void w_signals_hold(sigset_t *old)
{
    sigset_t all;

    if (UNDER_TSAN) {
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, old);
    }
}

static inline void w_signals_release(const sigset_t *old)
{
    if (UNDER_TSAN) {
        pthread_sigmask(SIG_SETMASK, old, NULL);
    }
}

/* qemu_thread_join() with the above. */
static inline void w_join(QemuThread *thread)
{
    sigset_t old;

    w_signals_hold(&old);
    qemu_thread_join(thread);
    w_signals_release(&old);
}

#define W_SCALE (UNDER_TSAN ? 4 : 1)
#define W_BH (200 / W_SCALE)
#define W_TIMERS (100 / W_SCALE)
#define W_JOBS (200 / W_SCALE)
#define W_IOJOBS (100 / W_SCALE)
#define W_COS (48 / W_SCALE)
#define W_BLK (64 / W_SCALE)
#define W_BYTES (100 / W_SCALE)
#define W_ENGINES 3

typedef struct Mixed Mixed;

typedef struct WJob {
    Mixed *m;
    int value;
    int ran;                    /* atomic */
    int runs;                   /* atomic: callbacks */
    int ret;
} WJob;

typedef struct WCo {
    Mixed *m;
    int index;
    WJob job;
    int job_ret;
    int io_ret;
    bool in_io;                 /* ran in the IOThread */
    int stage;                  /* atomic: how far it got (for reports) */
    int runs;                   /* atomic: finished */
} WCo;

typedef struct WTimer {
    QEMUTimer *t;
    int64_t armed, due, fired;
    int runs;
} WTimer;

typedef struct WBackend {
    AioBlockEngine engine;
    AioBlockBackend *b;
    int fd;
    BlkReq reqs[W_BLK];
    int completed;
} WBackend;

struct Mixed {
    AioContext *ctx;
    IOThread *io;
    AioContext *io_ctx;
    void (*thread_hook)(void);
    uint32_t round;

    WBackend be[W_ENGINES];
    int nbe;

    int pipe[2];
    int bytes_read;             /* atomic */

    int bh_main[W_BH];
    int bh_remote[W_BH];        /* atomic */
    int bh_io[W_BH];            /* atomic */
    WTimer timers[W_TIMERS];
    WJob jobs[W_JOBS];
    WJob iojobs[W_IOJOBS];
    WCo cos[W_COS];
    CoMutex co_lock;
    int cos_in_lock;

    int eagain;                 /* results -EAGAIN, allowed */
    int bad;                    /* results that are wrong */
    bool stranded;              /* a round did not finish: leak, not free */
};

static inline void w_hook(Mixed *m)
{
    if (m->thread_hook) {
        m->thread_hook();
    }
}

static inline void w_count_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

static void w_pipe_cb(void *opaque)
{
    Mixed *m = opaque;
    int n = drain_fd(m->pipe[0]);

    qatomic_add(&m->bytes_read, n);
}

static int w_job_fn(void *opaque)
{
    WJob *j = opaque;

    w_hook(j->m);
    qatomic_inc(&j->ran);
    return j->value;
}

static void w_job_cb(void *opaque, int ret)
{
    WJob *j = opaque;

    j->ret = ret;
    qatomic_inc(&j->runs);
}

static void w_timer_cb(void *opaque)
{
    WTimer *t = opaque;

    t->fired = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    t->runs++;
}

/* In the IOThread: make it a hook target, then submit the IOThread
 * pool's jobs (their callbacks run here too). */
static void w_io_hook_bh(void *opaque)
{
    w_hook(opaque);
}

static void w_io_jobs_bh(void *opaque)
{
    Mixed *m = opaque;
    ThreadPool *pool = aio_get_thread_pool(m->io_ctx);

    for (int i = 0; i < W_IOJOBS; i++) {
        thread_pool_submit_aio(pool, w_job_fn, &m->iojobs[i], w_job_cb,
                               &m->iojobs[i]);
    }
}

static void coroutine_fn w_co_entry(void *opaque)
{
    WCo *c = opaque;
    Mixed *m = c->m;
    WBackend *be = m->nbe ? &m->be[c->index % m->nbe] : NULL;
    uint8_t *buf = aligned_buf(SECTOR);
    QEMUIOVector q;

    qatomic_set(&c->stage, 1);
    qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 20 * 1000);
    qatomic_set(&c->stage, 2);
    c->job_ret = thread_pool_submit_co(aio_get_thread_pool(m->ctx), w_job_fn,
                                       &c->job);
    qatomic_set(&c->stage, 3);
    aio_co_schedule(m->io_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    qatomic_set(&c->stage, 4);
    c->in_io = qemu_get_current_aio_context() == m->io_ctx;
    w_hook(m);
    aio_co_schedule(m->ctx, qemu_coroutine_self());
    qemu_coroutine_yield();

    qatomic_set(&c->stage, 5);
    qemu_co_mutex_lock(&m->co_lock);
    qatomic_set(&c->stage, 6);
    if (++m->cos_in_lock != 1) {
        m->bad++;
    }
    qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 10 * 1000);
    m->cos_in_lock--;
    qemu_co_mutex_unlock(&m->co_lock);

    c->io_ret = 0;
    qatomic_set(&c->stage, 7);
    if (be) {
        /* Past the callback requests' blocks: blocks W_BLK + index. */
        pattern_fill(buf, SECTOR, 1000 + m->round, (W_BLK + c->index) *
                     (uint64_t)SECTOR);
        qemu_iovec_init_buf(&q, buf, SECTOR);
        c->io_ret = aio_block_co_submit(be->b, be->fd,
                                        (W_BLK + c->index) * (uint64_t)SECTOR,
                                        &q, QEMU_AIO_WRITE);
    }
    free(buf);
    qatomic_set(&c->stage, 8);
    qatomic_inc(&c->runs);
}

/* The helper thread: BHs into the main context and bytes into the pipe,
 * interleaved. */
static void *w_helper(void *opaque)
{
    Mixed *m = opaque;

    w_hook(m);
    for (int i = 0; i < W_BH; i++) {
        aio_bh_schedule_oneshot(m->ctx, w_count_cb, &m->bh_remote[i]);
        if (i < W_BYTES) {
            write_byte(m->pipe[1]);
        }
        if (i % 16 == 0) {
            sleep_us(50);
        }
    }
    return NULL;
}

/* start_thread() for the test's own threads, which the fault hook's
 * pthread_create fault may refuse too: retried until it starts. */
static inline void w_start_thread(QemuThread *t, const char *name,
                                  void *(*fn)(void *), void *arg)
{
    for (int i = 0; qemu_thread_create(t, name, fn, arg,
                                       QEMU_THREAD_JOINABLE) != 0; i++) {
        if (i == 1000) {
            printf("# cannot start the test thread %s\n", name);
            abort();
        }
        sleep_us(100);
    }
}

/* Sets up the contexts, the IOThread and a backend per engine. Returns
 * false (after printing why) if something could not be created. */
static inline bool mixed_init(Mixed *m)
{
    static const AioBlockEngine engines[W_ENGINES] = {
        AIO_ENGINE_IO_URING, AIO_ENGINE_LINUX_AIO, AIO_ENGINE_THREADS,
    };

    m->ctx = new_ctx();
    m->io = iothread_create("mixed-io", &error_abort);
    m->io_ctx = iothread_get_aio_context(m->io);
    w_hook(m);
    aio_bh_schedule_oneshot(m->io_ctx, w_io_hook_bh, m);
    /* Few workers, retiring fast: many thread starts, few targets. */
    thread_pool_set_params(aio_get_thread_pool(m->ctx), 0, 4, 2 * MS,
                           10 * 1000);
    thread_pool_set_params(aio_get_thread_pool(m->io_ctx), 0, 2, 2 * MS,
                           10 * 1000);
    qemu_co_mutex_init(&m->co_lock);
    make_pipe(m->pipe);
    aio_set_fd_handler(m->ctx, m->pipe[0], false, w_pipe_cb, NULL, m);
    for (int i = 0; i < W_ENGINES; i++) {
        Error *err = NULL;
        AioBlockBackend *b = aio_block_backend_new(engines[i], &err);

        if (!b) {
            printf("# %s: %s\n", aio_block_engine_name(engines[i]),
                   error_get_pretty(err));
            error_free(err);
            continue;
        }
        m->be[m->nbe].engine = engines[i];
        m->be[m->nbe].b = b;
        m->be[m->nbe].fd = tmp_file_in(test_dir(), 0);
        if (m->be[m->nbe].fd < 0) {
            printf("# cannot create a file in %s\n", test_dir());
            aio_block_backend_free(b);
            return false;
        }
        m->nbe++;
    }
    printf("# engines:");
    for (int i = 0; i < m->nbe; i++) {
        printf(" %s", aio_block_engine_name(m->be[i].engine));
    }
    printf("\n");
    return true;
}

static inline void mixed_fini(Mixed *m)
{
    if (m->stranded) {
        printf("#   requests still in flight: leaking the workload\n");
        return;
    }
    aio_set_fd_handler(m->ctx, m->pipe[0], false, NULL, NULL, NULL);
    close(m->pipe[0]);
    close(m->pipe[1]);
    for (int i = 0; i < m->nbe; i++) {
        aio_block_backend_free(m->be[i].b);
        close(m->be[i].fd);
    }
    iothread_destroy(m->io);
    aio_context_unref(m->ctx);
}

/* How many items have finished (each counted once even if it ran twice:
 * doubles are found by the checks). */
static int w_finished(Mixed *m)
{
    int n = 0;

    for (int i = 0; i < W_BH; i++) {
        n += m->bh_main[i] > 0;
        n += qatomic_read(&m->bh_remote[i]) > 0;
        n += qatomic_read(&m->bh_io[i]) > 0;
    }
    for (int i = 0; i < W_TIMERS; i++) {
        n += m->timers[i].runs > 0;
    }
    for (int i = 0; i < W_JOBS; i++) {
        n += qatomic_read(&m->jobs[i].runs) > 0;
    }
    for (int i = 0; i < W_IOJOBS; i++) {
        n += qatomic_read(&m->iojobs[i].runs) > 0;
    }
    for (int i = 0; i < W_COS; i++) {
        n += qatomic_read(&m->cos[i].runs) > 0;
    }
    for (int i = 0; i < m->nbe; i++) {
        n += m->be[i].completed;
    }
    n += qatomic_read(&m->bytes_read) >= W_BYTES;
    return n;
}

static int w_total(Mixed *m)
{
    return 3 * W_BH + W_TIMERS + W_JOBS + W_IOJOBS + W_COS +
           m->nbe * W_BLK + 1;
}

/* A job's result: its value, or -EAGAIN if it never ran. */
static void w_check_job(Mixed *m, WJob *j, const char *what, int i)
{
    int runs = qatomic_read(&j->runs), ran = qatomic_read(&j->ran);

    if (runs == 1 && j->ret == j->value && ran == 1) {
        return;
    }
    if (runs == 1 && j->ret == -EAGAIN && ran == 0) {
        m->eagain++;
        return;
    }
    if (m->bad++ < 10) {
        printf("#   %s %d: %d callbacks, ret %d, ran %d times\n", what, i,
               runs, j->ret, ran);
    }
}

static void w_fail(Mixed *m, const char *what, int i, int got)
{
    if (m->bad++ < 10) {
        printf("#   %s %d: %d\n", what, i, got);
    }
}

/* Runs round @round; returns the number of wrong results (0: all well).
 * Every item is checked for exactly one completion and its result. */
static inline int mixed_round(Mixed *m, uint32_t round)
{
    ThreadPool *pool = aio_get_thread_pool(m->ctx);
    QEMUTimer *ticker = aio_timer_new(m->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                      faults_ticker_cb, &ticker);
    QemuThread helper;
    int total, finished;

    m->round = round;
    m->bad = m->eagain = 0;
    qatomic_set(&m->bytes_read, 0);
    memset(m->bh_main, 0, sizeof(m->bh_main));
    memset(m->bh_remote, 0, sizeof(m->bh_remote));
    memset(m->bh_io, 0, sizeof(m->bh_io));
    faults_ticker_cb(&ticker);

    for (int i = 0; i < m->nbe; i++) {
        WBackend *be = &m->be[i];

        aio_block_backend_attach(be->b, m->ctx);
        be->completed = 0;
        for (int k = 0; k < W_BLK; k++) {
            blk_req_init(&be->reqs[k], &be->completed,
                         (uint64_t)k * SECTOR, SECTOR);
            pattern_fill(be->reqs[k].buf, SECTOR, round, be->reqs[k].off);
        }
    }
    for (int i = 0; i < W_TIMERS; i++) {
        WTimer *t = &m->timers[i];

        *t = (WTimer){ .t = aio_timer_new(m->ctx, QEMU_CLOCK_REALTIME,
                                          SCALE_NS, w_timer_cb, t) };
        t->armed = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
        t->due = t->armed + (int64_t)(i % 20) * 250 * 1000;
        timer_mod_ns(t->t, t->due);
    }
    for (int i = 0; i < W_JOBS; i++) {
        m->jobs[i] = (WJob){ .m = m, .value = i };
        thread_pool_submit_aio(pool, w_job_fn, &m->jobs[i], w_job_cb,
                               &m->jobs[i]);
    }
    for (int i = 0; i < W_IOJOBS; i++) {
        m->iojobs[i] = (WJob){ .m = m, .value = 1000 + i };
    }
    aio_bh_schedule_oneshot(m->io_ctx, w_io_jobs_bh, m);
    for (int i = 0; i < W_BH; i++) {
        aio_bh_schedule_oneshot(m->ctx, w_count_cb, &m->bh_main[i]);
        aio_bh_schedule_oneshot(m->io_ctx, w_count_cb, &m->bh_io[i]);
    }
    for (int i = 0; i < W_COS; i++) {
        m->cos[i] = (WCo){ .m = m, .index = i,
                           .job = { .m = m, .value = 2000 + i } };
        aio_co_enter(m->ctx, qemu_coroutine_create(w_co_entry, &m->cos[i]));
    }
    w_start_thread(&helper, "mixed-helper", w_helper, m);
    for (int i = 0; i < m->nbe; i++) {
        WBackend *be = &m->be[i];

        aio_block_plug(be->b);
        for (int k = 0; k < W_BLK; k++) {
            if (!blk_req_submit(&(Blk){ .ctx = m->ctx, .b = be->b,
                                        .fd = be->fd }, &be->reqs[k],
                                QEMU_AIO_WRITE)) {
                w_fail(m, "block submit returned NULL", k, 0);
            }
        }
        aio_block_unplug(be->b);
    }

    /* No time bound: an item that never finishes is a hang, which the
     * harness's watchdog names; every item that finishes is progress. */
    total = w_total(m);
    while ((finished = w_finished(m)) < total) {
        aio_poll(m->ctx, true);
        if (w_finished(m) != finished) {
            test_progress();
        }
    }
    w_join(&helper);
    /* Let late doubles show up before counting. */
    for (int i = 0; i < 5; i++) {
        while (aio_poll(m->ctx, false)) {
        }
        sleep_ms(1);
    }
    finished = w_finished(m);
    if (finished < total) {
        printf("#   round %u: %d of %d items finished in time\n", round,
               finished, total);
        m->bad++;
        m->stranded = true;
    }

    for (int i = 0; i < W_BH; i++) {
        if (m->bh_main[i] != 1) {
            w_fail(m, "main BH runs", i, m->bh_main[i]);
        }
        if (qatomic_read(&m->bh_remote[i]) != 1) {
            w_fail(m, "remote BH runs", i, m->bh_remote[i]);
        }
        if (qatomic_read(&m->bh_io[i]) != 1) {
            w_fail(m, "IOThread BH runs", i, m->bh_io[i]);
        }
    }
    for (int i = 0; i < W_TIMERS; i++) {
        WTimer *t = &m->timers[i];

        if (t->runs != 1 || t->fired < t->due) {
            w_fail(m, "timer runs (or fired early)", i, t->runs);
        }
        timer_free(t->t);
    }
    for (int i = 0; i < W_JOBS; i++) {
        w_check_job(m, &m->jobs[i], "job", i);
    }
    for (int i = 0; i < W_IOJOBS; i++) {
        w_check_job(m, &m->iojobs[i], "IOThread job", i);
    }
    for (int i = 0; i < W_COS; i++) {
        WCo *c = &m->cos[i];

        if (qatomic_read(&c->runs) != 1 || !c->in_io) {
            w_fail(m, "coroutine finished", i, qatomic_read(&c->runs));
            printf("#   coroutine %d stopped at stage %d of 8 (engine %s)\n",
                   i, qatomic_read(&c->stage), m->nbe ?
                   aio_block_engine_name(m->be[i % m->nbe].engine) : "-");
        } else if (c->io_ret == -EAGAIN) {
            m->eagain++;
        } else if (c->io_ret != 0) {
            w_fail(m, "coroutine I/O ret", i, c->io_ret);
        }
        if (qatomic_read(&c->runs) == 1) {
            if (c->job_ret == -EAGAIN && c->job.ran == 0) {
                m->eagain++;
            } else if (c->job_ret != c->job.value || c->job.ran != 1) {
                w_fail(m, "coroutine job ret", i, c->job_ret);
            }
        }
    }
    if (qatomic_read(&m->bytes_read) != W_BYTES) {
        w_fail(m, "pipe bytes", 0, qatomic_read(&m->bytes_read));
    }
    for (int i = 0; i < m->nbe; i++) {
        WBackend *be = &m->be[i];

        for (int k = 0; k < W_BLK; k++) {
            BlkReq *r = &be->reqs[k];

            if (r->runs != 1) {
                w_fail(m, "block request callbacks", k, r->runs);
            } else if (r->ret == -EAGAIN) {
                m->eagain++;
            } else if (r->ret != 0) {
                w_fail(m, "block request ret", k, r->ret);
            } else if (!file_has_pattern(be->fd, r->off, SECTOR, round)) {
                w_fail(m, "block data", k, 0);
            }
        }
        for (int c = i; c < W_COS; c += m->nbe) {
            if (m->cos[c].io_ret == 0 && qatomic_read(&m->cos[c].runs) == 1 &&
                !file_has_pattern(be->fd, (W_BLK + c) * (uint64_t)SECTOR,
                                  SECTOR, 1000 + round)) {
                w_fail(m, "coroutine block data", c, 0);
            }
        }
    }
    timer_free(ticker);
    if (!m->stranded) {
        /* Only an idle backend may be detached; else leak the round. */
        for (int i = 0; i < m->nbe; i++) {
            aio_block_backend_detach(m->be[i].b, m->ctx);
            for (int k = 0; k < W_BLK; k++) {
                blk_req_free(&m->be[i].reqs[k]);
            }
        }
    }
    return m->bad;
}

#endif /* AIOLOOP_FAULTS_WORKLOAD_H */
