/*
 * thread-pool.c - worker threads whose results come back through aio_poll.
 *
 * The costs that matter are per job: a burst of a million empty jobs is
 * dominated by what the library itself does for each, and a queue-depth-1
 * round trip by the wake-ups. So the common paths take no lock and make
 * no system call where that can be avoided.
 *
 * Submission: a job goes onto pool->incoming, a lock-free stack (one CAS,
 * no lock). Whether a worker must be woken is decided from counters read
 * without the lock: if a worker is spinning (pool->searching), it will
 * take the job; if no worker is idle and no worker can be spawned, a busy
 * one will take it when it comes back; if a sentinel watches
 * (pool->watching, below) and at least as many workers are busy
 * (pool->running) as the process has CPUs, the busy ones or the sentinel
 * will. Only otherwise does the submitter take pool->lock, to apply the
 * policy below: hand the job to a parked worker (woken on its own futex
 * word), spawn one, or appoint a sentinel. Each of these decisions is a
 * Dekker pair with the worker's side: the submitter pushes (seq_cst) then
 * reads the counter (seq_cst); a worker that stops spinning, parks, stops
 * being busy or ends its watch changes the counter (seq_cst) then looks
 * at pool->incoming (seq_cst). One of the two sees the other, so a job
 * never waits while every worker sleeps.
 *
 * Taking: workers take jobs one at a time, in submission order, from
 * pool->queue (a FIFO under pool->lock); when it is empty, the taker
 * moves pool->incoming onto it with one exchange (reversed into FIFO
 * order). A worker that comes back from a job always takes the next one
 * (it is running already: no wake-up). A worker that takes a job, or is
 * handed one, while more are queued and nobody is spinning applies the
 * policy below (the kick that handed it a job stopped at one), which
 * may wake (or spawn) one more worker, so a burst spreads over the pool
 * without the submitter paying a wake-up per job. One job per taking,
 * never a private batch: a job queued behind a long-running one must
 * stay free for the next worker, and cancellable.
 *
 * How many workers run: a parked worker is woken (or a new one spawned)
 * only when those already busy do not drain the queue. A cross-CPU
 * wake-up costs tens of microseconds, longer than the page-cache reads
 * the pool mostly runs, so waking one worker per queued job (up to 64 for
 * a burst on 2 CPUs) mostly woke workers that found the queue already
 * emptied, and cost CPU and context switches. A busy worker is fresh
 * while its job has run less than STALE_NS (50 us), then stale: suspected
 * blocked (in a slow disk, NFS, a lock) or preempted. The busy workers
 * drain the queue when the fresh ones are at least as many as the process
 * has CPUs, and at least as many as the stale ones (draining_locked();
 * the count is by a walk of pool->busy_workers with the clock read once,
 * under the lock, and only when that many are busy at all; a kick that
 * could neither wake nor spawn a worker returns before counting, a
 * worker's chain kick counts with the time it just stamped its own start
 * with, and a job's start is stamped only while a kick could act on it -
 * in a saturated pool the count's own "now" stamps it - so a saturated
 * pool reads no clock per job). The second bound makes a pool whose jobs
 * block grow by doubling (2 fresh ones go stale, 2 more may start; then
 * 4, 8, ...) up to max_threads, instead of by the CPU count per STALE_NS.
 * While the busy ones drain the queue, a kick does not wake a worker; it
 * makes sure a sentinel watches: it appoints the most recently parked
 * worker (hands it no job but Worker.watch, and wakes it) or, with none
 * parked, spawns one as the sentinel, and sets pool->watching. The
 * sentinel is neither idle nor busy. It sleeps on its futex word until
 * the oldest fresh job turns stale, then looks again; while the busy ones
 * still drain the queue, it backs off (sleeps STALE_NS, doubling up to
 * WATCH_MAX_NS, 1 ms), so a steady stream of short jobs costs it about a
 * thousand wake-ups a second at most, not one per job: while any worker
 * still takes jobs, its chain kick notices stale ones at once, and the
 * sentinel is only the fallback for when none does. It ends its watch
 * (clearing pool->watching, seq_cst, before it looks at the queue) when
 * the queue is empty, or when the busy ones no longer drain it: then it
 * takes a job like any worker, and its own kick wakes others as the
 * policy allows, or appoints the next sentinel. So a queue behind workers
 * that all block is taken up within about STALE_NS (at most WATCH_MAX_NS
 * + STALE_NS after a long stream of short jobs) plus a wake-up, with no
 * submission or completion to prompt it, and a burst of short jobs on 2
 * CPUs wakes 2 workers and the sentinel instead of 32. A sentinel that
 * cannot be spawned clears pool->watching: the next kick tries again, and
 * the busy workers still come back for the queue.
 *
 * Why a futex word per worker and not a condition variable: a condition
 * variable signalled under pool->lock wakes its waiter into an immediate
 * wait for that same lock (two more futex calls and a context switch per
 * job), and signalling it after the unlock would race with the worker
 * exiting. The futex word needs no lock to wake on, and a woken worker
 * runs the job it was handed without taking the lock (unless more jobs
 * wait: then it takes it once, to kick). A waker
 * touches a parked worker only under pool->lock, and a worker leaves
 * (its Worker is on its stack) only under the lock, so the word is never
 * used after the worker has gone.
 *
 * Completion: the worker stores the result and pushes the job onto
 * pool->done (one CAS). Only the push that finds the list empty schedules
 * the pool's completion BH: the BH takes the whole list with one
 * exchange, so until it does, the first pusher's schedule covers every
 * later push. A burst costs one BH schedule (and at most one wake of the
 * loop) per batch, not per job. The BH, in the pool's context, runs the
 * callbacks in completion order. It is internal: it counts as progress
 * when it completed a job (with a callback or not), not when it ran with
 * nothing left to do. While callbacks run with more completions
 * still waiting in pool->ready, the BH is kept scheduled (once, not per
 * callback), so that a callback that polls a nested loop - a synchronous
 * bdrv_aio_cancel() of a request whose completion is waiting, say - lets
 * that loop run the rest.
 *
 * Requests are recycled: completions go through
 * aioloop__aiocb_complete_keep() (aiocb.c: the callback runs marked as
 * completing, for bdrv_aio_cancel() from inside it), and when the
 * completion held the last reference (nobody took one with
 * qemu_aio_ref()), the request goes onto a small cache of the completing
 * thread, from which that thread's next submission takes it instead of
 * calloc() and free() per job. A request that someone else still holds
 * is released by qemu_aio_unref() as usual. ASan builds keep no cache
 * (every request is freed into ASan's quarantine), so a use after
 * completion is still reported.
 *
 * Job states: QUEUED -> ACTIVE (a worker took it, under the lock) ->
 * DONE (result stored), or QUEUED -> DONE with -ECANCELED (cancelled,
 * under the lock; a job still on pool->incoming is moved to the queue
 * first). A job in any state other than QUEUED ignores cancellation.
 * Every job reaches pool->done exactly once.
 *
 * Idle workers: a worker with nothing to do first watches the queue for
 * spin_ns (pool->searching counts it), then parks on its futex word for
 * the idle timeout; a surplus worker (more than min_threads) whose sleep
 * times out exits. A worker does not spin on the CPU its submitter last
 * ran on: there it would only keep the loop thread, which has the
 * completion to run and the next job to submit, off the CPU. Nor do more
 * workers spin than the process has CPUs minus one. Workers are
 * detached: thread_pool_free() hands every parked worker a stop, nudges
 * a watching sentinel, and waits for cur_threads to reach 0 under the
 * lock instead of joining.
 *
 * A worker that cannot be started (pthread_create EAGAIN, or no memory
 * for it) loses no job. If another worker is alive, it will take the
 * queue: workers only retire with an empty queue, and a busy one comes
 * back for the next job. If none is alive, the spawn is retried from a
 * timer of the pool's context with a back-off (1 ms doubling to 100 ms),
 * and a later submission also tries again; the first success runs the
 * whole queue. Only when spawning has failed for SPAWN_GIVE_UP_NS (1 s)
 * with no worker alive do the queued jobs complete, through their
 * callbacks as usual, with the spawn's -errno (-EAGAIN, -ENOMEM) instead
 * of running. So a transient refusal costs latency, a lasting one is
 * reported, and nothing waits forever.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <aioloop/thread-pool.h>
#include "aio-internal.h"
#include "aiocb-internal.h"
#include "attach.h"
#include "clock-internal.h"
#include "util/alloc.h"
#include "util/futex.h"
#include "util/misuse.h"
#include "util/relax.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TP_ASAN)
#define TP_ASAN 1
#endif
#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>           /* glibc 2.35+: the thread's rseq area */
#define TP_HAVE_RSEQ 1
#endif
#endif

enum { THREAD_QUEUED, THREAD_ACTIVE, THREAD_DONE };

typedef struct ThreadPoolElement ThreadPoolElement;

struct ThreadPoolElement {
    BlockAIOCB common;
    ThreadPool *pool;
    ThreadPoolFunc *func;
    void *arg;
    int state;                  /* atomic; see the states above */
    int ret;                    /* written before the push to pool->done */
    /* pool->incoming, then pool->done, then pool->ready, then a thread's
     * cache: one at a time, in that order. */
    ThreadPoolElement *next;
    QTAILQ_ENTRY(ThreadPoolElement) reqs;               /* pool->lock */
};

/* Worker.park, the futex word a parked worker sleeps on. */
enum {
    PARK_ASLEEP,                /* parked, on pool->idle_workers */
    PARK_NUDGED,                /* look again (new parameters); still on
                                 * the idle list */
    PARK_HANDED,                /* taken off the idle list by a waker,
                                 * with a job in Worker.job, or none: stop,
                                 * or watch (Worker.watch) */
    PARK_WATCH,                 /* the sentinel, in a timed sleep */
};

/* A worker's parking place. Owned by the pool, not by the thread: a
 * Worker lives until the pool is freed (a retired worker's is reused by
 * the next one spawned), so a waker may wake it after dropping the lock.
 * The thread that ends up woken by a late wake-up just looks again. */
typedef struct Worker {
    ThreadPool *pool;
    int park;                   /* atomic; written by wakers under lock */
    ThreadPoolElement *job;     /* pool->lock; published by PARK_HANDED */
    bool watch;                 /* pool->lock: appointed the sentinel */
    bool busy;                  /* pool->lock: on pool->busy_workers */
    int64_t start_ns;           /* pool->lock: when it took its job */
    QLIST_ENTRY(Worker) link;   /* pool->idle_workers, or spare_workers
                                 * while no thread uses it; pool->lock */
    QLIST_ENTRY(Worker) busy_link;      /* pool->busy_workers; lock */
} Worker;

#define TP_CACHELINE 64

struct ThreadPool {
    /* Read-mostly. */
    AioContext *ctx;
    bool owns_ctx_ref;
    QEMUBH *completion_bh;
    /* The context's own pool (not owns_ctx_ref) is attached to it and
     * freed by its last unref (attach.h, AIO_ATTACH_ORDER_SERVICES). */
    AioAttachment attachment;
    int max_spinners;           /* CPUs of the process - 1, at least 1 */
    int max_fresh;              /* CPUs of the process */

    /* Written by submitters. */
    alignas(TP_CACHELINE) ThreadPoolElement *incoming;  /* atomic LIFO */
    int submit_cpu;             /* atomic: CPU of the last submission */

    /* Written by workers as they complete jobs. */
    alignas(TP_CACHELINE) ThreadPoolElement *done;      /* atomic LIFO */

    /* The loop thread's: completions taken off pool->done whose
     * callbacks have not run yet, oldest first. Kept here, not on the
     * BH's stack, so that a callback that polls a nested loop lets that
     * loop run the rest. */
    alignas(TP_CACHELINE) ThreadPoolElement *ready, *ready_tail;
    bool bh_armed;              /* completion_bh scheduled for ready */

    /* Workers and their parameters. Counters that submitters read
     * without the lock are written with atomics. */
    alignas(TP_CACHELINE) QemuMutex lock;
    QemuCond workers_gone;      /* broadcast as workers exit */
    QTAILQ_HEAD(, ThreadPoolElement) queue;             /* lock */
    int queued;                 /* atomic mirror of the queue's length */
    QLIST_HEAD(, Worker) idle_workers;                  /* lock */
    QLIST_HEAD(, Worker) spare_workers;                 /* lock */
    QLIST_HEAD(, Worker) busy_workers;                  /* lock */
    int running;                /* lock; atomic: busy workers */
    bool watching;              /* lock; atomic: a sentinel is appointed */
    Worker *sentinel;           /* lock: the sentinel, while it watches */
    int searching;              /* atomic: workers spinning for work */
    int idle_threads;           /* lock; atomic: parked workers */
    int cur_threads;            /* lock; atomic: alive or being spawned */
    int pending_spawns;         /* lock; atomic: spawned, not yet running */
    int min_threads;            /* lock */
    int max_threads;            /* lock; atomic */
    int64_t idle_timeout_ns;    /* atomic */
    int64_t spin_ns;            /* atomic */
    bool stopping;              /* atomic; written under lock */
    unsigned params_gen;        /* lock: bumped by thread_pool_set_params */

    /* Failed spawns with no worker alive (see the essay above). */
    QEMUTimer spawn_timer;      /* retries in ctx; armed under lock */
    int64_t spawn_failed_since; /* lock: 0, or when the failures began */
    int64_t spawn_backoff_ns;   /* lock: next retry delay */
};

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_IDLE_TIMEOUT_NS (10LL * 1000 * 1000 * 1000)
#define DEFAULT_SPIN_NS (10 * 1000)
#define SPAWN_RETRY_FIRST_NS (1000 * 1000)
#define SPAWN_RETRY_MAX_NS (100 * 1000 * 1000)
#define SPAWN_GIVE_UP_NS (1000LL * 1000 * 1000)
/* A job that has run this long is suspected blocked (see the essay):
 * longer than a wake-up across CPUs (25-50 us on this project's VM) and
 * than the page-cache reads the pool mostly serves, short against the
 * milliseconds of a disk or network read. */
#define STALE_NS (50 * 1000)
/* The sentinel's longest sleep while the busy workers keep draining the
 * queue: its period doubles from STALE_NS up to this. */
#define WATCH_MAX_NS (1000 * 1000)
/* Requests a thread keeps for reuse: enough for the completions one
 * loop iteration gets with thousands of jobs in flight (a window of 2048
 * brings about 700 per iteration). At most about 200 KiB per loop
 * thread: what malloc would keep in its bins after freeing them anyway. */
#define CACHE_MAX 2048

static void thread_pool_cancel(BlockAIOCB *acb);

static AioContext *thread_pool_get_aio_context(BlockAIOCB *acb)
{
    ThreadPoolElement *req = container_of(acb, ThreadPoolElement, common);

    return req->pool->ctx;
}

static const AIOCBInfo thread_pool_aiocb_info = {
    .aiocb_size = sizeof(ThreadPoolElement),
    .cancel_async = thread_pool_cancel,
    .get_aio_context = thread_pool_get_aio_context,
};

/* ------------------------------------------------------------------ */
/* The per-thread request cache                                        */

typedef struct ReqCache {
    ThreadPoolElement *head;
    unsigned len;
    bool registered;            /* for the thread-exit destructor */
} ReqCache;

static __thread ReqCache req_cache __attribute__((tls_model("initial-exec")));
static pthread_key_t req_cache_key;
static pthread_once_t req_cache_once = PTHREAD_ONCE_INIT;

/* Thread exit: free what the thread kept. */
static void req_cache_exit(void *opaque)
{
    ReqCache *c = opaque;
    ThreadPoolElement *req;

    while ((req = c->head)) {
        c->head = req->next;
        free(req);
    }
    c->len = 0;
    c->registered = false;      /* a later release registers again */
}

/* exit(): the exiting thread's cache too (no key destructor runs for
 * it), so that leak checkers see nothing left behind. */
static void req_cache_atexit(void)
{
    req_cache_exit(&req_cache);
}

static void req_cache_key_init(void)
{
    if (pthread_key_create(&req_cache_key, req_cache_exit) != 0) {
        aioloop__oom("the thread pool's request cache key");
    }
    atexit(req_cache_atexit);
}

/* A request for @pool: from this thread's cache, else a new one. */
static inline ThreadPoolElement *req_alloc(ThreadPool *pool,
                                           BlockCompletionFunc *cb,
                                           void *opaque)
{
    ReqCache *c = &req_cache;
    ThreadPoolElement *req = c->head;

    if (!req) {
        req = qemu_aio_get(&thread_pool_aiocb_info, NULL, cb, opaque);
    } else {
        c->head = req->next;
        c->len--;
        /* What qemu_aio_get() gives, without the calloc. */
        memset(&req->common, 0, sizeof(req->common));
        req->common.aiocb_info = &thread_pool_aiocb_info;
        req->common.cb = cb;
        req->common.opaque = opaque;
        req->common.refcnt = 1;
    }
    req->pool = pool;
    return req;
}

/* Keeps @req, whose last reference the completion held (see
 * aioloop__aiocb_complete_keep()), in this thread's cache, or frees it
 * when the cache is full. Loop thread of @req's pool. */
static void req_recycle(ThreadPoolElement *req)
{
    ReqCache *c = &req_cache;

#ifdef TP_ASAN
    /* No cache under ASan: the freed request goes to ASan's quarantine,
     * so a use after completion is reported, and leak checkers (libFuzzer
     * checks after each input) see every request freed. */
    free(req);
    return;
#endif
    if (c->len >= CACHE_MAX) {
        free(req);
        return;
    }
    if (unlikely(!c->registered)) {
        pthread_once(&req_cache_once, req_cache_key_init);
        pthread_setspecific(req_cache_key, c);
        c->registered = true;
    }
    req->next = c->head;
    c->head = req;
    c->len++;
}

/* The CPU the calling thread runs on (-1: unknown). From the rseq area
 * the kernel keeps up to date where glibc registered one (a load), else
 * sched_getcpu() (a vDSO call, 15 ns on this project's VM: too much for
 * every submission). */
static inline int current_cpu(void)
{
#ifdef TP_HAVE_RSEQ
    if (likely(__rseq_size >= offsetof(struct rseq, cpu_id) + 4)) {
        const volatile struct rseq *r = (const volatile struct rseq *)
            ((const char *)__builtin_thread_pointer() + __rseq_offset);
        int cpu = (int)r->cpu_id;

        if (likely(cpu >= 0)) {
            return cpu;
        }
    }
#endif
    return sched_getcpu();
}

/* ------------------------------------------------------------------ */
/* Completion                                                          */

/* Hand a finished (or cancelled) job to the context. Any thread. */
static void complete(ThreadPool *pool, ThreadPoolElement *req, int ret)
{
    ThreadPoolElement *old = qatomic_read(&pool->done);

    req->ret = ret;
    qatomic_set(&req->state, THREAD_DONE);
    do {
        req->next = old;
        /* seq_cst: the BH's exchange sees req->ret and req->state. */
    } while (!__atomic_compare_exchange_n(&pool->done, &old, req, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (!old) {
        /* The list was empty: nobody has scheduled the BH for it. */
        qemu_bh_schedule(pool->completion_bh);
    }
}

static void completion_bh(void *opaque)
{
    ThreadPool *pool = opaque;
    ThreadPoolElement *lifo = qatomic_xchg(&pool->done, NULL);
    ThreadPoolElement *req;
    bool reusable;

    if (lifo) {
        /* pool->done is newest first: reverse it behind what is ready. */
        ThreadPoolElement *fifo = NULL, *tail = lifo;

        while (lifo) {
            ThreadPoolElement *next = lifo->next;

            lifo->next = fifo;
            fifo = lifo;
            lifo = next;
        }
        if (pool->ready) {
            pool->ready_tail->next = fifo;
        } else {
            pool->ready = fifo;
        }
        pool->ready_tail = tail;
    }

    /* Running now, this BH is no longer scheduled (or is called
     * directly by the pool's destruction). */
    pool->bh_armed = false;
    while ((req = pool->ready)) {
        pool->ready = req->next;
        if (pool->ready && !pool->bh_armed) {
            /* If a callback polls a nested loop, that loop goes on with
             * the rest. */
            pool->bh_armed = true;
            qemu_bh_schedule(pool->completion_bh);
        }
        /* Progress whether or not a callback ran: as in QEMU, where the
         * completion BH is an ordinary one, a job submitted without a
         * callback (thread_pool_submit()) ends the caller's blocking
         * aio_poll() when it completes. */
        aioloop__aiocb_complete_keep(&req->common, req->ret, &reusable);
        aioloop__report_progress(pool->ctx);
        if (reusable) {
            req_recycle(req);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The queue                                                           */

/* Moves pool->incoming onto the queue's tail, oldest first. Returns
 * whether there was anything. Under pool->lock. */
static bool refill_locked(ThreadPool *pool)
{
    ThreadPoolElement *lifo, *fifo = NULL;
    int n = 0;

    if (!qatomic_mb_read(&pool->incoming)) {
        return false;
    }
    lifo = qatomic_xchg(&pool->incoming, NULL);
    while (lifo) {
        ThreadPoolElement *next = lifo->next;

        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
    }
    while (fifo) {
        QTAILQ_INSERT_TAIL(&pool->queue, fifo, reqs);
        fifo = fifo->next;
        n++;
    }
    qatomic_set(&pool->queued, pool->queued + n);
    return n > 0;
}

/* Whether a job waits, on the queue or on pool->incoming. The read of
 * pool->incoming is seq_cst (see the essay). Under pool->lock. */
static bool work_waiting_locked(ThreadPool *pool)
{
    return !QTAILQ_EMPTY(&pool->queue) || qatomic_mb_read(&pool->incoming);
}

/* Takes queued @req off the queue. Under pool->lock. */
static void dequeue_locked(ThreadPool *pool, ThreadPoolElement *req)
{
    QTAILQ_REMOVE(&pool->queue, req, reqs);
    qatomic_set(&pool->queued, pool->queued - 1);
}

/* Takes the oldest job for a worker, or returns NULL: it is running from
 * now on, so no longer cancellable. Under pool->lock. */
static ThreadPoolElement *take_locked(ThreadPool *pool)
{
    ThreadPoolElement *req = QTAILQ_FIRST(&pool->queue);

    if (!req) {
        if (!refill_locked(pool)) {
            return NULL;
        }
        req = QTAILQ_FIRST(&pool->queue);
    }
    dequeue_locked(pool, req);
    qatomic_set(&req->state, THREAD_ACTIVE);
    return req;
}

/* Completes every queued job with @err (never started). Under lock. */
static void fail_queued_locked(ThreadPool *pool, int err)
{
    ThreadPoolElement *req;

    refill_locked(pool);
    while ((req = QTAILQ_FIRST(&pool->queue))) {
        dequeue_locked(pool, req);
        complete(pool, req, err);
    }
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */

static void run_job(ThreadPool *pool, ThreadPoolElement *req)
{
    complete(pool, req, req->func(req->arg));
}

static void wake(Worker *w)
{
    aioloop__futex_wake(&w->park, 1);
}

/* Sets a parked worker's word to @state and wakes it. Under pool->lock. */
static void unpark_locked(Worker *w, int state)
{
    qatomic_store_release(&w->park, state);
    wake(w);
}

/* @w starts a job now: it is busy, and fresh for STALE_NS. The time
 * matters only to a kick that could wake or spawn a worker: with none
 * parked and the pool at its maximum, the start is left unknown (0) and
 * the next draining_locked() takes its own "now" for it, which saves a
 * clock read per job (about 50 ns here) when the pool is saturated.
 * Under pool->lock. */
static int64_t set_busy_locked(ThreadPool *pool, Worker *w)
{
    if (!w->busy) {
        w->busy = true;
        QLIST_INSERT_HEAD(&pool->busy_workers, w, busy_link);
        qatomic_inc(&pool->running);
    }
    if (QLIST_EMPTY(&pool->idle_workers) &&
        pool->cur_threads >= pool->max_threads) {
        w->start_ns = 0;
    } else {
        w->start_ns = aioloop__now_ns();
    }
    return w->start_ns;
}

/* @w has no job. Uncounted (seq_cst) before the worker's next look at
 * the queue: a submitter that saw it running pushed before. Under lock. */
static void set_idle_locked(ThreadPool *pool, Worker *w)
{
    if (w->busy) {
        w->busy = false;
        QLIST_REMOVE(w, busy_link);
        qatomic_dec(&pool->running);
    }
}

/*
 * Whether the busy workers drain the queue by themselves: at least
 * max_fresh of them started their job less than STALE_NS ago (fresh),
 * and at least as many as have been on theirs for longer (stale,
 * suspected blocked). If so, *@until is when the oldest fresh one turns
 * stale: the sentinel looks again then. @now: the time, if the caller
 * just read it, else 0. Under pool->lock.
 */
static bool draining_locked(ThreadPool *pool, int64_t now, int64_t *until)
{
    int64_t oldest = INT64_MAX;
    int fresh = 0, stale = 0;
    Worker *w;

    if (pool->running < pool->max_fresh) {
        return false;
    }
    if (!now) {
        now = aioloop__now_ns();
    }
    QLIST_FOREACH(w, &pool->busy_workers, busy_link) {
        if (!w->start_ns) {
            w->start_ns = now;          /* not stamped: from now on */
        }
        if (now - w->start_ns < STALE_NS) {
            fresh++;
            if (w->start_ns < oldest) {
                oldest = w->start_ns;
            }
        } else {
            stale++;
        }
    }
    *until = oldest == INT64_MAX ? now : oldest + STALE_NS;
    return fresh >= pool->max_fresh && fresh >= stale;
}

/* Takes @w off the idle list and hands it @job (NULL: stop, or watch if
 * @w->watch is set). The caller wakes it, after dropping the lock if it
 * likes: the woken worker runs @job without the lock, and would
 * otherwise wait at once for the lock its waker still holds (on a shared
 * CPU, a context switch each way). */
static void hand_locked(ThreadPool *pool, Worker *w, ThreadPoolElement *job)
{
    QLIST_REMOVE(w, link);
    qatomic_dec(&pool->idle_threads);
    w->job = job;
    if (job) {
        set_busy_locked(pool, w);
    }
    qatomic_store_release(&w->park, PARK_HANDED);
}

/* Sleeps while @w's word is @state, until @deadline_ns (monotonic). */
static void park_wait(Worker *w, int state, int64_t deadline_ns)
{
    while (qatomic_load_acquire(&w->park) == state) {
        int64_t left = deadline_ns - aioloop__now_ns();
        struct timespec ts;

        if (left <= 0) {
            return;
        }
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        /* EINTR, EAGAIN (the word changed), ETIMEDOUT: look again. */
        aioloop__futex_wait_timeout(&w->park, state, &ts);
    }
}

/* Whether the pool may start one more worker now. */
static bool can_spawn_locked(ThreadPool *pool)
{
    return pool->pending_spawns == 0 && pool->cur_threads < pool->max_threads;
}

/* What kick_locked() leaves to do once the lock is dropped. */
typedef struct Kick {
    Worker *wake;               /* handed a job (or the watch): wake it */
    bool spawn;                 /* start a worker (already counted) */
    bool spawn_sentinel;        /* ... as the sentinel */
} Kick;

/*
 * Get a worker for the waiting jobs, if they need one: nothing to do when
 * a worker is spinning (it takes the next job without a wake-up, and
 * kicks again if more wait). When the busy workers drain the queue by
 * themselves (draining_locked()), only make sure a sentinel watches
 * them: appoint an idle worker, or spawn one as the sentinel. Else hand
 * the oldest job to an idle worker; else spawn one, one spawn at a time
 * (a burst grows the pool while the new thread starts, not by one thread
 * per queued job), up to the maximum. The caller does the wake-up or
 * spawn with kick_finish() after unlocking. Called under the lock by
 * submitters, by workers when they take a job and more wait, and by the
 * spawn timer, so that a queue never waits for a worker that will not
 * come.
 */
static Kick kick_locked(ThreadPool *pool, int64_t now)
{
    Kick k = { NULL, false, false };
    int64_t until;
    Worker *w;

    if (pool->stopping || qatomic_read(&pool->searching) > 0 ||
        !work_waiting_locked(pool)) {
        return k;
    }
    w = QLIST_FIRST(&pool->idle_workers);
    if (!w && !can_spawn_locked(pool)) {
        return k;       /* nobody to wake or start: the busy ones come back */
    }
    if (draining_locked(pool, now, &until)) {
        if (pool->watching) {
            return k;
        }
        if (w) {
            w->watch = true;
            hand_locked(pool, w, NULL);
            k.wake = w;
        } else if (can_spawn_locked(pool)) {
            qatomic_inc(&pool->cur_threads);
            qatomic_inc(&pool->pending_spawns);
            k.spawn = k.spawn_sentinel = true;
        }
        qatomic_mb_set(&pool->watching, true);
        return k;
    }
    if (w) {
        /* Hand the oldest job over: the worker need not take the lock. */
        hand_locked(pool, w, take_locked(pool));
        k.wake = w;
        return k;
    }
    if (can_spawn_locked(pool)) {
        qatomic_inc(&pool->cur_threads);
        qatomic_inc(&pool->pending_spawns);
        k.spawn = true;
    }
    return k;
}

static void spawn_worker(ThreadPool *pool, bool sentinel);

/* The second half of kick_locked(), without the lock. */
static void kick_finish(ThreadPool *pool, Kick k)
{
    if (k.wake) {
        wake(k.wake);
    }
    if (k.spawn) {
        spawn_worker(pool, k.spawn_sentinel);
    }
}

/* Whether spinning would only take the CPU from the loop thread: it last
 * submitted from the CPU this worker runs on. */
static bool on_submitter_cpu(ThreadPool *pool)
{
    int cpu = current_cpu();

    return cpu >= 0 && cpu == qatomic_read(&pool->submit_cpu);
}

/* Watch for work without the lock for up to spin_ns. Returns true if a
 * job (or a stop request) showed up. */
static bool spin_for_work(ThreadPool *pool)
{
    int64_t spin = qatomic_read(&pool->spin_ns), start;
    bool found = false;

    if (spin <= 0 || on_submitter_cpu(pool)) {
        return false;
    }
    /* More spinners than spare CPUs would only steal time from the
     * workers and the loop that have real work. */
    if (qatomic_fetch_inc(&pool->searching) >= pool->max_spinners) {
        qatomic_dec(&pool->searching);
        return false;
    }
    start = aioloop__now_ns();
    do {
        if (qatomic_read(&pool->incoming) || qatomic_read(&pool->queued) ||
            qatomic_read(&pool->stopping)) {
            found = true;
            break;
        }
        cpu_relax();
    } while (aioloop__now_ns() - start < spin);
    /* seq_cst, before the caller looks at the queue under the lock: a
     * submitter that still saw us spinning pushed before this. */
    qatomic_dec(&pool->searching);
    return found;
}

/*
 * Parks @w until a waker hands it a job, the parameters change or the
 * idle timeout passes. Called and returns under pool->lock, except when
 * a job (or a stop, job NULL) was handed over: then returns true with
 * the lock NOT held and @w off the idle list. Otherwise returns false,
 * @w still on the idle list, *@timed_out set.
 */
static bool park_locked(ThreadPool *pool, Worker *w, bool *timed_out)
{
    int64_t deadline, now = aioloop__now_ns();
    int64_t idle = qatomic_read(&pool->idle_timeout_ns);
    unsigned gen = pool->params_gen;

    /* Saturate: the timeout may be as large as INT64_MAX. */
    deadline = idle > INT64_MAX - now ? INT64_MAX : now + idle;
    for (;;) {
        qemu_mutex_unlock(&pool->lock);
        park_wait(w, PARK_ASLEEP, deadline);
        if (qatomic_load_acquire(&w->park) == PARK_HANDED) {
            return true;
        }
        qemu_mutex_lock(&pool->lock);
        if (qatomic_read(&w->park) == PARK_HANDED) {
            qemu_mutex_unlock(&pool->lock);
            return true;
        }
        *timed_out = aioloop__now_ns() >= deadline;
        if (*timed_out || gen != pool->params_gen) {
            return false;
        }
        qatomic_set(&w->park, PARK_ASLEEP);      /* a stale nudge */
    }
}

/*
 * The sentinel's watch (see the essay): while jobs wait and the busy
 * workers drain them by themselves, sleep until the oldest fresh one
 * turns stale, and look again. Returns under pool->lock when the queue
 * is empty, or when it is not drained (the caller then takes a job like
 * any worker, and kicks others as needed), or at a stop; no longer the
 * sentinel.
 */
static void watch_locked(ThreadPool *pool, Worker *w)
{
    int64_t until, period = STALE_NS, now = 0;

    pool->sentinel = w;
    while (!pool->stopping && pool->cur_threads <= pool->max_threads &&
           work_waiting_locked(pool) &&
           draining_locked(pool, now, &until)) {
        if (now) {
            /* Looked before and they drain it still: back off. */
            until = now + period;
            period = period * 2 > WATCH_MAX_NS ? WATCH_MAX_NS : period * 2;
        }
        qatomic_set(&w->park, PARK_WATCH);
        qemu_mutex_unlock(&pool->lock);
        park_wait(w, PARK_WATCH, until);
        qemu_mutex_lock(&pool->lock);
        now = aioloop__now_ns();
    }
    pool->sentinel = NULL;
    /* seq_cst, before the caller's look at the queue: a submitter that
     * saw the watch pushed before. */
    qatomic_mb_set(&pool->watching, false);
}

static void *worker_thread(void *opaque)
{
    Worker *w = opaque;
    ThreadPool *pool = w->pool;

    qemu_mutex_lock(&pool->lock);
    /* seq_cst, before take_locked() looks at the queue: a submitter that
     * saw this spawn pending pushed before. */
    qatomic_dec(&pool->pending_spawns);
    pool->spawn_failed_since = 0;       /* spawning works (again) */
    for (;;) {
        ThreadPoolElement *req;
        bool timed_out = false;

        if (w->watch) {
            /* Appointed the sentinel (spawned as it, or handed it). */
            w->watch = false;
            watch_locked(pool, w);
        }
        if (pool->cur_threads > pool->max_threads) {
            break;                  /* the maximum was lowered: retire */
        }
        req = take_locked(pool);
        if (req) {
            Kick k = { NULL, false, false };
            int64_t now = set_busy_locked(pool, w);

            /* More waiting and nobody spinning: bring another worker,
             * if those running do not drain the queue. */
            if (work_waiting_locked(pool)) {
                k = kick_locked(pool, now);
            }
            qemu_mutex_unlock(&pool->lock);
            kick_finish(pool, k);
            run_job(pool, req);
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        set_idle_locked(pool, w);
        if (pool->stopping) {
            break;
        }
        qemu_mutex_unlock(&pool->lock);
        if (spin_for_work(pool)) {
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        qemu_mutex_lock(&pool->lock);

        /* Park. Counted idle (seq_cst) before the last look at the
         * queue: a submitter that saw no idle worker pushed before. */
        w->job = NULL;
        qatomic_set(&w->park, PARK_ASLEEP);
        QLIST_INSERT_HEAD(&pool->idle_workers, w, link);
        qatomic_inc(&pool->idle_threads);
        if (!work_waiting_locked(pool) && !pool->stopping &&
            park_locked(pool, w, &timed_out)) {
            /* Handed a job: off the idle list already, the lock not
             * held. */
            if (w->job) {
                /* More waiting: kick as a worker that took the job
                 * would (the kick that handed it to us stopped at one:
                 * if we and the others block, nobody else may look). */
                if (qatomic_read(&pool->queued) ||
                    qatomic_read(&pool->incoming)) {
                    Kick k;

                    qemu_mutex_lock(&pool->lock);
                    k = kick_locked(pool, 0);
                    qemu_mutex_unlock(&pool->lock);
                    kick_finish(pool, k);
                }
                run_job(pool, w->job);
            }
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        /* Work arrived, or timed out, or new parameters: still on the
         * idle list, locked. */
        QLIST_REMOVE(w, link);
        qatomic_dec(&pool->idle_threads);
        if (!pool->stopping &&
            ((timed_out && pool->cur_threads > pool->min_threads) ||
             pool->cur_threads > pool->max_threads)) {
            /* Retire, unless work came. Uncounted (seq_cst) before the
             * last look: a submitter that counted us pushed before. */
            qatomic_dec(&pool->cur_threads);
            if (!work_waiting_locked(pool)) {
                goto gone;
            }
            qatomic_inc(&pool->cur_threads);
        }
    }
    qatomic_dec(&pool->cur_threads);
gone:
    set_idle_locked(pool, w);
    QLIST_INSERT_HEAD(&pool->spare_workers, w, link);
    qemu_cond_broadcast(&pool->workers_gone);
    qemu_mutex_unlock(&pool->lock);     /* last touch of the pool */
    return NULL;
}


/* Start one worker; cur_threads and pending_spawns were already counted
 * under the lock. On failure, jobs are not lost (see the essay above):
 * with no worker alive, the spawn is retried later, and after
 * SPAWN_GIVE_UP_NS of failures the queued jobs complete with the error. */
static void spawn_worker(ThreadPool *pool, bool sentinel)
{
    QemuThread thread;
    Worker *w;
    int ret;

    qemu_mutex_lock(&pool->lock);
    w = QLIST_FIRST(&pool->spare_workers);
    if (w) {
        QLIST_REMOVE(w, link);
    }
    qemu_mutex_unlock(&pool->lock);
    if (!w) {
        w = aioloop__calloc(1, sizeof(*w));
    }
    if (w) {
        w->pool = pool;
        w->watch = sentinel;
        ret = qemu_thread_create(&thread, "aio-worker", worker_thread, w,
                                 QEMU_THREAD_DETACHED);
        if (ret == 0) {
            return;
        }
    } else {
        ret = -ENOMEM;
    }
    qemu_mutex_lock(&pool->lock);
    if (w) {
        w->watch = false;
        QLIST_INSERT_HEAD(&pool->spare_workers, w, link);
    }
    if (sentinel) {
        /* No watch: the next kick appoints another sentinel. */
        qatomic_mb_set(&pool->watching, false);
    }
    /* seq_cst, before the look at the queue (see worker_thread()). */
    qatomic_dec(&pool->cur_threads);
    qatomic_dec(&pool->pending_spawns);
    if (pool->cur_threads == 0 && !pool->stopping &&
        work_waiting_locked(pool)) {
        int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);

        if (!pool->spawn_failed_since) {
            pool->spawn_failed_since = now;
            pool->spawn_backoff_ns = SPAWN_RETRY_FIRST_NS;
        }
        if (now - pool->spawn_failed_since >= SPAWN_GIVE_UP_NS) {
            fail_queued_locked(pool, ret);
            pool->spawn_failed_since = 0;   /* later jobs: a new window */
        } else {
            /* Under the lock: thread_pool_free() deletes the timer after
             * taking it, so it is never armed after that. */
            timer_mod_ns(&pool->spawn_timer, now + pool->spawn_backoff_ns);
            pool->spawn_backoff_ns *= 2;
            if (pool->spawn_backoff_ns > SPAWN_RETRY_MAX_NS) {
                pool->spawn_backoff_ns = SPAWN_RETRY_MAX_NS;
            }
        }
    }
    qemu_cond_broadcast(&pool->workers_gone);
    qemu_mutex_unlock(&pool->lock);
}

/* spawn_timer: try again, if the queue still needs a worker. */
static void spawn_retry_cb(void *opaque)
{
    ThreadPool *pool = opaque;
    Kick k;

    qemu_mutex_lock(&pool->lock);
    k = kick_locked(pool, 0);
    qemu_mutex_unlock(&pool->lock);
    kick_finish(pool, k);
}

/* ------------------------------------------------------------------ */
/* Submission and cancellation                                         */

BlockAIOCB *thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func,
                                   void *arg, BlockCompletionFunc *cb,
                                   void *opaque)
{
    ThreadPoolElement *req, *old;
    int cpu;
    Kick k;

    /* The contract of two builds (thread-pool.h): builds without NDEBUG
     * stop here with a report naming the pool and callback; NDEBUG
     * builds return NULL, queueing nothing (no callback will run). */
    if (unlikely(!pool || !func)) {
#ifndef NDEBUG
        if (!pool) {
            aioloop__misuse("thread_pool_submit_aio", "NULL ThreadPool "
                            "(callback %p)", AIOLOOP_FN_PTR(cb));
        }
        aioloop__misuse("thread_pool_submit_aio", "ThreadPool %p: NULL work "
                        "function (callback %p)", (void *)pool,
                        AIOLOOP_FN_PTR(cb));
#else
        return NULL;
#endif
    }
    req = req_alloc(pool, cb, opaque);
    req->func = func;
    req->arg = arg;
    req->state = THREAD_QUEUED;
    req->ret = -EINPROGRESS;

    cpu = current_cpu();
    if (qatomic_read(&pool->submit_cpu) != cpu) {
        qatomic_set(&pool->submit_cpu, cpu);
    }
    old = qatomic_read(&pool->incoming);
    do {
        req->next = old;
        /* seq_cst: publishes the request to the worker's exchange, and
         * comes before the reads below (see the essay). */
    } while (!__atomic_compare_exchange_n(&pool->incoming, &old, req, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));

    /* A spinning worker will take it; with no idle worker and none to
     * spawn, a busy one will; while a sentinel watches the busy ones,
     * they or the sentinel will. Otherwise wake or spawn one, or appoint
     * a sentinel (kick_locked()). */
    if (qatomic_mb_read(&pool->searching) > 0 ||
        (qatomic_mb_read(&pool->watching) &&
         qatomic_mb_read(&pool->running) >= pool->max_fresh) ||
        (qatomic_mb_read(&pool->idle_threads) == 0 &&
         (qatomic_mb_read(&pool->pending_spawns) > 0 ||
          qatomic_mb_read(&pool->cur_threads) >=
          qatomic_mb_read(&pool->max_threads)))) {
        return &req->common;
    }
    qemu_mutex_lock(&pool->lock);
    k = kick_locked(pool, 0);
    qemu_mutex_unlock(&pool->lock);
    kick_finish(pool, k);
    return &req->common;
}

typedef struct ThreadPoolCo {
    Coroutine *co;
    int ret;
} ThreadPoolCo;

static void thread_pool_co_cb(void *opaque, int ret)
{
    ThreadPoolCo *tpc = opaque;

    tpc->ret = ret;
    aio_co_wake(tpc->co);       /* in the coroutine's own context */
}

int coroutine_fn thread_pool_submit_co(ThreadPool *pool, ThreadPoolFunc *func,
                                       void *arg)
{
    ThreadPoolCo tpc = { .co = qemu_coroutine_self(), .ret = -EINPROGRESS };

    /* Before anything is submitted: the yield below would abort anyway,
     * with a job already queued whose completion wakes nobody. */
    if (unlikely(!tpc.co)) {
        aioloop__misuse("thread_pool_submit_co", "called outside a "
                        "coroutine (ThreadPool %p)", (void *)pool);
    }
    /* The completion runs from the pool context's aio_poll(), so never
     * before this coroutine has yielded: in another thread it goes
     * through aio_co_schedule(), which waits for the switch-out. */
    thread_pool_submit_aio(pool, func, arg, thread_pool_co_cb, &tpc);
    qemu_coroutine_yield();
    return tpc.ret;
}

void thread_pool_submit(ThreadPool *pool, ThreadPoolFunc *func, void *arg)
{
    thread_pool_submit_aio(pool, func, arg, NULL, NULL);
}

static void thread_pool_cancel(BlockAIOCB *acb)
{
    ThreadPoolElement *req = container_of(acb, ThreadPoolElement, common);
    ThreadPool *pool = req->pool;

    qemu_mutex_lock(&pool->lock);
    if (qatomic_read(&req->state) == THREAD_QUEUED) {
        /* It may still be on pool->incoming. */
        refill_locked(pool);
        dequeue_locked(pool, req);
        complete(pool, req, -ECANCELED);
    }
    qemu_mutex_unlock(&pool->lock);
}

/* ------------------------------------------------------------------ */
/* Pools                                                               */

/* CPUs this process may run on. */
static int usable_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static ThreadPool *pool_create(AioContext *ctx, bool take_ref)
{
    ThreadPool *pool;

    if (aioloop__posix_memalign((void **)&pool, TP_CACHELINE,
                                sizeof(*pool)) != 0) {
        aioloop__oom("creating a thread pool");
    }
    memset(pool, 0, sizeof(*pool));
    pool->ctx = ctx;
    pool->owns_ctx_ref = take_ref;
    if (take_ref) {
        aio_context_ref(ctx);
    }
    pool->completion_bh = aioloop__bh_new_internal(ctx, completion_bh, pool,
                                                   "thread-pool completion");
    qemu_mutex_init(&pool->lock);
    qemu_cond_init(&pool->workers_gone);
    QTAILQ_INIT(&pool->queue);
    QLIST_INIT(&pool->idle_workers);
    QLIST_INIT(&pool->spare_workers);
    QLIST_INIT(&pool->busy_workers);
    pool->submit_cpu = -1;
    pool->max_threads = DEFAULT_MAX_THREADS;
    pool->idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
    pool->spin_ns = DEFAULT_SPIN_NS;
    aio_timer_init(ctx, &pool->spawn_timer, QEMU_CLOCK_REALTIME, SCALE_NS,
                   spawn_retry_cb, pool);
    pool->max_fresh = usable_cpus();
    if (pool->max_fresh < 1) {
        pool->max_fresh = 1;
    }
    pool->max_spinners = pool->max_fresh - 1;
    if (pool->max_spinners < 1) {
        pool->max_spinners = 1;
    }
    return pool;
}

ThreadPool *thread_pool_new(AioContext *ctx)
{
    if (unlikely(!ctx)) {
        aioloop__misuse("thread_pool_new", "NULL AioContext");
    }
    return pool_create(ctx, true);
}

static void pool_destroy(ThreadPool *pool);

/* The context's last unref: its own pool runs its pending completions
 * (callbacks that submit again get -ECANCELED) and goes. ctx->thread_pool
 * still points at it meanwhile, so that such a callback finds it. */
static void pool_context_ends(AioAttachment *a, AioContext *ctx)
{
    ThreadPool *pool = container_of(a, ThreadPool, attachment);

    aioloop__attachment_remove(ctx, a);
    pool_destroy(pool);
    qatomic_set(&ctx->thread_pool, NULL);
}

ThreadPool *aio_get_thread_pool(AioContext *ctx)
{
    ThreadPool *pool, *seen;

    if (unlikely(!ctx)) {
        aioloop__misuse("aio_get_thread_pool", "NULL AioContext");
    }
    pool = qatomic_mb_read(&ctx->thread_pool);
    if (pool) {
        return pool;
    }
    pool = pool_create(ctx, false);
    seen = qatomic_cmpxchg(&ctx->thread_pool, NULL, pool);
    if (seen) {
        pool_destroy(pool);     /* lost the race */
        return seen;
    }
    pool->attachment = (AioAttachment) {
        .context_ends = pool_context_ends,
        .order = AIO_ATTACH_ORDER_SERVICES,
    };
    aioloop__attachment_add(ctx, &pool->attachment);
    return pool;
}

static void pool_destroy(ThreadPool *pool)
{
    Worker *w;

    qemu_mutex_lock(&pool->lock);
    qatomic_set(&pool->stopping, true);
    fail_queued_locked(pool, -ECANCELED);
    while ((w = QLIST_FIRST(&pool->idle_workers))) {
        hand_locked(pool, w, NULL);
        wake(w);
    }
    if (pool->sentinel) {
        unpark_locked(pool->sentinel, PARK_NUDGED);
    }
    while (pool->cur_threads > 0) {
        qemu_cond_wait(&pool->workers_gone, &pool->lock);
    }
    timer_del(&pool->spawn_timer);
    qemu_mutex_unlock(&pool->lock);
    timer_deinit(&pool->spawn_timer);

    /* Every job is on pool->done now: run the callbacks here. A callback
     * that submits again gets -ECANCELED the same way. */
    for (;;) {
        completion_bh(pool);
        qemu_mutex_lock(&pool->lock);
        fail_queued_locked(pool, -ECANCELED);
        qemu_mutex_unlock(&pool->lock);
        if (!qatomic_read(&pool->done)) {
            break;
        }
    }
    while ((w = QLIST_FIRST(&pool->spare_workers))) {
        QLIST_REMOVE(w, link);
        free(w);
    }
    qemu_bh_delete(pool->completion_bh);
    qemu_cond_destroy(&pool->workers_gone);
    qemu_mutex_destroy(&pool->lock);
    if (pool->owns_ctx_ref) {
        aio_context_unref(pool->ctx);
    }
    free(pool);
}

void thread_pool_free(ThreadPool *pool)
{
    if (pool) {
        /* A context's own pool is freed with the context; freeing it here
         * would leave the context pointing at freed memory. */
        if (unlikely(!pool->owns_ctx_ref)) {
            aioloop__misuse("thread_pool_free", "ThreadPool %p is the own "
                            "pool of AioContext %p (aio_get_thread_pool()): "
                            "it is freed with its context", (void *)pool,
                            (void *)pool->ctx);
        }
        pool_destroy(pool);
    }
}

int thread_pool_set_params(ThreadPool *pool, int min_threads, int max_threads,
                           int64_t idle_timeout_ns, int64_t spin_ns)
{
    Worker *w;

    if (min_threads < 0 || max_threads < 1 || min_threads > max_threads ||
        idle_timeout_ns <= 0 || spin_ns < 0) {
        return -EINVAL;
    }
    qemu_mutex_lock(&pool->lock);
    pool->min_threads = min_threads;
    qatomic_set(&pool->max_threads, max_threads);
    qatomic_set(&pool->idle_timeout_ns, idle_timeout_ns);
    qatomic_set(&pool->spin_ns, spin_ns);
    /* Idle workers go round again with the new timeout; surplus ones
     * (beyond the new maximum) exit at once. */
    pool->params_gen++;
    QLIST_FOREACH(w, &pool->idle_workers, link) {
        unpark_locked(w, PARK_NUDGED);
    }
    qemu_mutex_unlock(&pool->lock);
    return 0;
}

void aio_context_set_thread_pool_params(AioContext *ctx, int64_t min,
                                        int64_t max, Error **errp)
{
    ThreadPool *pool;

    if (min < 0 || max < 1 || min > max || max > 0x7fffffff) {
        error_setg(errp, "thread pool limits must satisfy 0 <= min <= max, "
                   "1 <= max <= %d (min=%lld max=%lld)", 0x7fffffff,
                   (long long)min, (long long)max);
        return;
    }
    pool = aio_get_thread_pool(ctx);
    thread_pool_set_params(pool, (int)min, (int)max,
                           qatomic_read(&pool->idle_timeout_ns),
                           qatomic_read(&pool->spin_ns));
}

void thread_pool_stats(ThreadPool *pool, int *cur_threads, int *idle_threads)
{
    qemu_mutex_lock(&pool->lock);
    if (cur_threads) {
        *cur_threads = pool->cur_threads;
    }
    if (idle_threads) {
        *idle_threads = pool->idle_threads;
    }
    qemu_mutex_unlock(&pool->lock);
}
