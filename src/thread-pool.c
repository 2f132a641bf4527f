/*
 * thread-pool.c - worker threads whose results come back through aio_poll.
 *
 * Submission: a job is queued on pool->request_list under pool->lock. If
 * a worker sleeps idle, the job is handed to that one worker (taken off
 * the queue) and the worker is woken on its own futex word (no
 * broadcast, no thundering herd); if none is idle and none is spinning,
 * a worker is spawned, up to max_threads. Busy workers take the next job
 * without any wake-up, so a burst costs one short critical section per
 * job and no system call.
 *
 * Why a futex word per worker and not a condition variable: a condition
 * variable signalled under pool->lock wakes its waiter into an immediate
 * wait for that same lock (two more futex calls and a context switch per
 * job), and signalling it after the unlock would race with the worker
 * exiting. The futex word needs no lock to wake on, and a woken worker
 * runs the job it was handed without taking the lock at all. A waker
 * touches a parked worker only under pool->lock, and a worker leaves
 * (its Worker is on its stack) only under the lock, so the word is never
 * used after the worker has gone.
 *
 * Completion: the worker stores the result, pushes the job onto a
 * lock-free list (one CAS) and schedules the pool's completion BH (a
 * fetch-or; no system call unless the loop sleeps). The BH, in the pool's
 * context, takes the whole list with one exchange and runs the callbacks
 * in completion order. The BH is internal: it counts as progress only
 * when it ran a callback.
 *
 * Job states: QUEUED -> ACTIVE (a worker took it, under the lock) ->
 * DONE (result stored), or QUEUED -> DONE with -ECANCELED (cancelled,
 * under the lock). A job in any state other than QUEUED ignores
 * cancellation. Every job reaches the completion list exactly once.
 *
 * Idle workers: a worker with nothing to do first watches the queue
 * length (an atomic mirror) for spin_ns, then parks on its futex word for
 * the idle timeout; a surplus worker (more than min_threads) whose sleep
 * times out exits. Workers are detached: thread_pool_free()
 * waits for cur_threads to reach 0 under the lock instead of joining.
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
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <aioloop/thread-pool.h>
#include "aio-internal.h"
#include "aiocb-internal.h"
#include "util/alloc.h"

enum { THREAD_QUEUED, THREAD_ACTIVE, THREAD_DONE };

typedef struct ThreadPoolElement {
    BlockAIOCB common;
    ThreadPool *pool;
    ThreadPoolFunc *func;
    void *arg;
    int state;                  /* atomic; see the states above */
    int ret;                    /* written before the push to done_list */
    QTAILQ_ENTRY(ThreadPoolElement) reqs;               /* pool->lock */
    QSLIST_ENTRY(ThreadPoolElement) done_next;          /* lock-free */
    QSIMPLEQ_ENTRY(ThreadPoolElement) ready_next;       /* loop thread */
} ThreadPoolElement;

/* Worker.park, the futex word a parked worker sleeps on. */
enum {
    PARK_ASLEEP,                /* parked, on pool->idle_workers */
    PARK_NUDGED,                /* look again (new parameters); still on
                                 * the idle list */
    PARK_HANDED,                /* taken off the idle list by a waker,
                                 * with a job in Worker.job (or none: stop) */
};

typedef struct Worker {
    int park;                   /* atomic; written by wakers under lock */
    ThreadPoolElement *job;     /* pool->lock; published by PARK_HANDED */
    QLIST_ENTRY(Worker) link;   /* pool->idle_workers, pool->lock */
} Worker;

struct ThreadPool {
    AioContext *ctx;
    bool owns_ctx_ref;
    QEMUBH *completion_bh;
    QSLIST_HEAD(, ThreadPoolElement) done_list;         /* lock-free */
    /* Completions taken off done_list whose callbacks have not run yet,
     * oldest first. Kept here, not on the BH's stack, so that a callback
     * that polls a nested loop lets that loop run the rest. */
    QSIMPLEQ_HEAD(, ThreadPoolElement) ready;           /* loop thread */

    QemuMutex lock;
    QemuCond workers_gone;      /* broadcast as workers exit */
    QTAILQ_HEAD(, ThreadPoolElement) request_list;      /* lock */
    QLIST_HEAD(, Worker) idle_workers;                  /* lock */
    int queued;                 /* atomic mirror of the queue length */
    int spinning;               /* atomic: workers watching the queue */
    int cur_threads;            /* lock: alive or being spawned */
    int pending_spawns;         /* lock: spawned, not yet running */
    int idle_threads;           /* lock */
    int min_threads;            /* lock */
    int max_threads;            /* lock */
    int64_t idle_timeout_ns;    /* atomic */
    int64_t spin_ns;            /* atomic */
    bool stopping;              /* atomic; written under lock */
    unsigned params_gen;        /* lock: bumped by thread_pool_set_params */
    int max_spinners;           /* CPUs - 1, at least 1 */

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

/* Hand a finished (or cancelled) job to the context. Any thread. */
static void complete(ThreadPool *pool, ThreadPoolElement *req, int ret)
{
    req->ret = ret;
    qatomic_set(&req->state, THREAD_DONE);
    /* seq_cst push: the completion BH's exchange sees req->ret. */
    QSLIST_INSERT_HEAD_ATOMIC(&pool->done_list, req, done_next);
    qemu_bh_schedule(pool->completion_bh);
}

static void completion_bh(void *opaque)
{
    ThreadPool *pool = opaque;
    QSLIST_HEAD(, ThreadPoolElement) lifo;
    QSIMPLEQ_HEAD(, ThreadPoolElement) fifo = QSIMPLEQ_HEAD_INITIALIZER(fifo);
    ThreadPoolElement *req;

    /* done_list is newest first: reverse it behind what is ready. */
    QSLIST_MOVE_ATOMIC(&lifo, &pool->done_list);
    while ((req = QSLIST_FIRST(&lifo))) {
        QSLIST_REMOVE_HEAD(&lifo, done_next);
        QSIMPLEQ_INSERT_HEAD(&fifo, req, ready_next);
    }
    QSIMPLEQ_CONCAT(&pool->ready, &fifo);

    while ((req = QSIMPLEQ_FIRST(&pool->ready))) {
        QSIMPLEQ_REMOVE_HEAD(&pool->ready, ready_next);
        if (!QSIMPLEQ_EMPTY(&pool->ready)) {
            /* If the callback polls a nested loop, that loop goes on
             * with the rest. */
            qemu_bh_schedule(pool->completion_bh);
        }
        if (aioloop__aiocb_complete(&req->common, req->ret)) {
            aioloop__report_progress(pool->ctx);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */

/* Takes queued @req off the request list. Under pool->lock. */
static void dequeue_locked(ThreadPool *pool, ThreadPoolElement *req)
{
    QTAILQ_REMOVE(&pool->request_list, req, reqs);
    qatomic_dec(&pool->queued);
}

/* Completes every queued job with @err (never started). Under lock. */
static void fail_queued_locked(ThreadPool *pool, int err)
{
    ThreadPoolElement *req;

    while ((req = QTAILQ_FIRST(&pool->request_list))) {
        dequeue_locked(pool, req);
        complete(pool, req, err);
    }
}

/* Takes the head job for a worker: it is running from now on, so no
 * longer cancellable. Under pool->lock; the list must not be empty. */
static ThreadPoolElement *take_head_locked(ThreadPool *pool)
{
    ThreadPoolElement *req = QTAILQ_FIRST(&pool->request_list);

    dequeue_locked(pool, req);
    qatomic_set(&req->state, THREAD_ACTIVE);
    return req;
}

static void run_job(ThreadPool *pool, ThreadPoolElement *req)
{
    complete(pool, req, req->func(req->arg));
}

/* Sets a parked worker's word to @state and wakes it. Under pool->lock. */
static void unpark_locked(Worker *w, int state)
{
    qatomic_store_release(&w->park, state);
    syscall(SYS_futex, &w->park, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Takes @w off the idle list and wakes it with @job (NULL: none). */
static void hand_locked(ThreadPool *pool, Worker *w, ThreadPoolElement *job)
{
    QLIST_REMOVE(w, link);
    pool->idle_threads--;
    w->job = job;
    unpark_locked(w, PARK_HANDED);
}

/* Sleeps while @w is parked, until @deadline_ns (monotonic). */
static void park_wait(Worker *w, int64_t deadline_ns)
{
    while (qatomic_load_acquire(&w->park) == PARK_ASLEEP) {
        int64_t left = deadline_ns - aioloop__now_ns();
        struct timespec ts;

        if (left <= 0) {
            return;
        }
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        /* EINTR, EAGAIN (the word changed), ETIMEDOUT: look again. */
        syscall(SYS_futex, &w->park, FUTEX_WAIT_PRIVATE, PARK_ASLEEP, &ts,
                NULL, 0);
    }
}

/*
 * Get a worker for the queue's head job, if it needs one: nothing to do
 * when a worker is spinning (it takes the job without a wake-up, and then
 * kicks again for the rest of the queue); else wake one idle worker; else
 * spawn one, one spawn at a time (a burst grows the pool while the new
 * thread starts, not by one thread per queued job), up to the maximum.
 * Returns true if the caller must spawn (the worker is already counted).
 * Called under the lock by submitters and by workers when they start and
 * when they take a job, so that a queue never waits for a worker that
 * will not come.
 */
static bool kick_locked(ThreadPool *pool)
{
    Worker *w;

    if (QTAILQ_EMPTY(&pool->request_list) || pool->stopping ||
        qatomic_read(&pool->spinning) > 0) {
        return false;
    }
    w = QLIST_FIRST(&pool->idle_workers);
    if (w) {
        /* Hand the head job over: the worker need not take the lock. */
        hand_locked(pool, w, take_head_locked(pool));
        return false;
    }
    if (pool->pending_spawns > 0 || pool->cur_threads >= pool->max_threads) {
        return false;
    }
    pool->cur_threads++;
    pool->pending_spawns++;
    return true;
}

static void spawn_worker(ThreadPool *pool);

/* Watch the queue without the lock for up to spin_ns. Returns true if a
 * job (or a stop request) showed up. */
static bool spin_for_work(ThreadPool *pool)
{
    int64_t spin = qatomic_read(&pool->spin_ns), start;
    bool found = false;

    if (spin <= 0) {
        return false;
    }
    /* More spinners than spare CPUs would only steal time from the
     * workers and the loop that have real work. */
    if (qatomic_fetch_inc(&pool->spinning) >= pool->max_spinners) {
        qatomic_dec(&pool->spinning);
        return false;
    }
    start = aioloop__now_ns();
    do {
        if (qatomic_read(&pool->queued) > 0 || qatomic_read(&pool->stopping)) {
            found = true;
            break;
        }
        cpu_relax();
    } while (aioloop__now_ns() - start < spin);
    qatomic_dec(&pool->spinning);
    return found;
}

static void *worker_thread(void *opaque)
{
    ThreadPool *pool = opaque;
    Worker w = { .park = PARK_ASLEEP };

    qemu_mutex_lock(&pool->lock);
    pool->pending_spawns--;
    pool->spawn_failed_since = 0;       /* spawning works (again) */
    for (;;) {
        ThreadPoolElement *req = QTAILQ_FIRST(&pool->request_list);
        bool timed_out = false;
        int64_t deadline;
        unsigned gen;

        if (pool->cur_threads > pool->max_threads) {
            break;                  /* the maximum was lowered: retire */
        }
        if (req) {
            bool spawn;

            take_head_locked(pool);
            spawn = kick_locked(pool);
            qemu_mutex_unlock(&pool->lock);
            if (spawn) {
                spawn_worker(pool);
            }
            run_job(pool, req);
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        if (pool->stopping) {
            break;
        }
        qemu_mutex_unlock(&pool->lock);
        if (spin_for_work(pool)) {
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        qemu_mutex_lock(&pool->lock);
        if (!QTAILQ_EMPTY(&pool->request_list) || pool->stopping) {
            continue;
        }

        /* Park until a submitter hands us a job, the parameters change,
         * or the idle timeout ends. */
        w.job = NULL;
        qatomic_set(&w.park, PARK_ASLEEP);
        QLIST_INSERT_HEAD(&pool->idle_workers, &w, link);
        pool->idle_threads++;
        gen = pool->params_gen;
        {
            int64_t now = aioloop__now_ns();
            int64_t idle = qatomic_read(&pool->idle_timeout_ns);

            /* Saturate: the timeout may be as large as INT64_MAX. */
            deadline = idle > INT64_MAX - now ? INT64_MAX : now + idle;
        }
        for (;;) {
            qemu_mutex_unlock(&pool->lock);
            park_wait(&w, deadline);
            if (qatomic_load_acquire(&w.park) == PARK_HANDED) {
                break;
            }
            qemu_mutex_lock(&pool->lock);
            if (qatomic_read(&w.park) == PARK_HANDED) {
                qemu_mutex_unlock(&pool->lock);
                break;
            }
            timed_out = aioloop__now_ns() >= deadline;
            if (timed_out || gen != pool->params_gen) {
                break;
            }
            qatomic_set(&w.park, PARK_ASLEEP);      /* a stale nudge */
        }
        if (qatomic_read(&w.park) == PARK_HANDED) {
            /* Off the idle list already, the lock not held. */
            if (w.job) {
                run_job(pool, w.job);
            }
            qemu_mutex_lock(&pool->lock);
            continue;
        }
        /* Timed out or new parameters: still on the idle list, locked. */
        QLIST_REMOVE(&w, link);
        pool->idle_threads--;
        if (!pool->stopping && QTAILQ_EMPTY(&pool->request_list) &&
            ((timed_out && pool->cur_threads > pool->min_threads) ||
             pool->cur_threads > pool->max_threads)) {
            break;                              /* retire */
        }
    }
    pool->cur_threads--;
    qemu_cond_broadcast(&pool->workers_gone);
    qemu_mutex_unlock(&pool->lock);     /* last touch of the pool */
    return NULL;
}


/* Start one worker; cur_threads and pending_spawns were already counted
 * under the lock. On failure, jobs are not lost (see the essay above):
 * with no worker alive, the spawn is retried later, and after
 * SPAWN_GIVE_UP_NS of failures the queued jobs complete with the error. */
static void spawn_worker(ThreadPool *pool)
{
    QemuThread thread;
    int ret = qemu_thread_create(&thread, "aio-worker", worker_thread, pool,
                                 QEMU_THREAD_DETACHED);

    if (ret == 0) {
        return;
    }
    qemu_mutex_lock(&pool->lock);
    pool->cur_threads--;
    pool->pending_spawns--;
    if (pool->cur_threads == 0 && !pool->stopping &&
        !QTAILQ_EMPTY(&pool->request_list)) {
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
    bool spawn;

    qemu_mutex_lock(&pool->lock);
    spawn = kick_locked(pool);
    qemu_mutex_unlock(&pool->lock);
    if (spawn) {
        spawn_worker(pool);
    }
}

/* ------------------------------------------------------------------ */
/* Submission and cancellation                                         */

BlockAIOCB *thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func,
                                   void *arg, BlockCompletionFunc *cb,
                                   void *opaque)
{
    ThreadPoolElement *req;
    bool spawn;

    assert(pool && func);
    if (!pool || !func) {
        return NULL;
    }
    req = qemu_aio_get(&thread_pool_aiocb_info, NULL, cb, opaque);
    req->pool = pool;
    req->func = func;
    req->arg = arg;
    req->state = THREAD_QUEUED;
    req->ret = -EINPROGRESS;

    qemu_mutex_lock(&pool->lock);
    QTAILQ_INSERT_TAIL(&pool->request_list, req, reqs);
    qatomic_inc(&pool->queued);
    spawn = kick_locked(pool);
    qemu_mutex_unlock(&pool->lock);
    if (spawn) {
        spawn_worker(pool);
    }
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

    assert(tpc.co);             /* coroutine context only */
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
        dequeue_locked(pool, req);
        complete(pool, req, -ECANCELED);
    }
    qemu_mutex_unlock(&pool->lock);
}

/* ------------------------------------------------------------------ */
/* Pools                                                               */

static ThreadPool *pool_create(AioContext *ctx, bool take_ref)
{
    ThreadPool *pool = aioloop__calloc(1, sizeof(*pool));

    if (!pool) {
        aioloop__oom("creating a thread pool");
    }
    pool->ctx = ctx;
    pool->owns_ctx_ref = take_ref;
    if (take_ref) {
        aio_context_ref(ctx);
    }
    pool->completion_bh = aioloop__bh_new_internal(ctx, completion_bh, pool,
                                                   "thread-pool completion");
    QSLIST_INIT(&pool->done_list);
    QSIMPLEQ_INIT(&pool->ready);
    qemu_mutex_init(&pool->lock);
    qemu_cond_init(&pool->workers_gone);
    QTAILQ_INIT(&pool->request_list);
    QLIST_INIT(&pool->idle_workers);
    pool->max_threads = DEFAULT_MAX_THREADS;
    pool->idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
    pool->spin_ns = DEFAULT_SPIN_NS;
    aio_timer_init(ctx, &pool->spawn_timer, QEMU_CLOCK_REALTIME, SCALE_NS,
                   spawn_retry_cb, pool);
    pool->max_spinners = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
    if (pool->max_spinners < 1) {
        pool->max_spinners = 1;
    }
    return pool;
}

ThreadPool *thread_pool_new(AioContext *ctx)
{
    return pool_create(ctx, true);
}

ThreadPool *aio_get_thread_pool(AioContext *ctx)
{
    ThreadPool *pool = qatomic_mb_read(&ctx->thread_pool), *seen;

    if (pool) {
        return pool;
    }
    pool = pool_create(ctx, false);
    seen = qatomic_cmpxchg(&ctx->thread_pool, NULL, pool);
    if (seen) {
        aioloop__thread_pool_destroy(pool);     /* lost the race */
        return seen;
    }
    return pool;
}

void aioloop__thread_pool_destroy(ThreadPool *pool)
{
    Worker *w;

    qemu_mutex_lock(&pool->lock);
    qatomic_set(&pool->stopping, true);
    fail_queued_locked(pool, -ECANCELED);
    while ((w = QLIST_FIRST(&pool->idle_workers))) {
        hand_locked(pool, w, NULL);
    }
    while (pool->cur_threads > 0) {
        qemu_cond_wait(&pool->workers_gone, &pool->lock);
    }
    timer_del(&pool->spawn_timer);
    qemu_mutex_unlock(&pool->lock);
    timer_deinit(&pool->spawn_timer);

    /* Every job is on done_list now: run the callbacks here. */
    completion_bh(pool);
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
        assert(pool->owns_ctx_ref);     /* not a context's own pool */
        aioloop__thread_pool_destroy(pool);
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
    pool->max_threads = max_threads;
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
                   "max >= 1 (min=%lld max=%lld)", (long long)min,
                   (long long)max);
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
