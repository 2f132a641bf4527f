/*
 * aioloop/thread-pool.h - run blocking work in worker threads.
 *
 * A ThreadPool runs ThreadPoolFunc jobs in worker threads and delivers
 * each job's return value to its completion callback in the pool's
 * AioContext, from that context's aio_poll(), never in a worker. Every
 * AioContext has one pool, created on first use (aio_get_thread_pool());
 * a coroutine can wait for a job with thread_pool_submit_co();
 * standalone pools come from thread_pool_new().
 *
 * Workers are spawned on demand, when a job arrives and no worker is idle,
 * up to max_threads (default 64); a worker that stays idle for the idle
 * timeout (default 10 s) exits while more than min_threads (default 0)
 * remain. Before it sleeps, an idle worker watches the queue for a short
 * while (default 10 µs), so that bursts of jobs do not pay a wake-up each
 * - unless it runs on the CPU the last job was submitted from, where
 * watching would only keep the submitting thread off the CPU.
 *
 * Costs: submitting takes no lock and makes no system call unless a
 * sleeping worker must be woken or a new one started; completions come
 * back through one bottom half scheduled once per batch. Requests are
 * recycled: the thread that runs completions keeps up to 2048 finished
 * ones (about 200 KiB) for its next submissions, freed when it exits.
 *
 * Cancellation: a job no worker has taken is removed and completes with
 * -ECANCELED without running; a running job completes normally; a
 * finished job is unaffected. Every job completes exactly once.
 *
 * Workers that cannot be started (pthread_create fails with EAGAIN, or
 * memory runs out) lose no job: an existing worker takes the queue, or,
 * with no worker alive, the start is retried with a back-off from a
 * timer of the pool's context (so that context must keep polling, as it
 * does to get completions) and by later submissions. If starting has
 * failed for one second with no worker alive, the queued jobs complete
 * with that error (-EAGAIN, -ENOMEM) as their ret, without running.
 *
 * Freeing a pool (thread_pool_free(), or the last unref of its context)
 * cancels the jobs still queued, waits for the running ones, and runs
 * every pending completion callback (with -ECANCELED for the cancelled
 * ones) before it returns: nothing is lost and nothing leaks.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_THREAD_POOL_H
#define AIOLOOP_THREAD_POOL_H

#include <aioloop/aio.h>
#include <aioloop/block-aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A pool of worker threads (opaque), completing jobs in one AioContext. */
typedef struct ThreadPool ThreadPool;
/* A job: runs in a worker thread with the opaque given at submission; its
 * return value is the completion's ret. */
typedef int ThreadPoolFunc(void *opaque);

/**
 * thread_pool_new - a standalone pool completing jobs in @ctx.
 * The pool holds a reference to @ctx. Returns: the pool (allocation
 * failure aborts; so does a NULL @ctx, with a message). Any thread.
 */
AIOLOOP_API ThreadPool *thread_pool_new(AioContext *ctx);

/**
 * thread_pool_free - free @pool: cancels queued jobs, waits for running
 * ones, runs all pending completion callbacks, joins the workers. A job
 * submitted by one of those callbacks completes at once with -ECANCELED
 * and its callback runs too, before this returns. NULL is ignored. The
 * own pool of a context (aio_get_thread_pool()) is freed with its
 * context: passing it here aborts with a message naming pool and
 * context. The pool's context thread, outside its callbacks.
 */
AIOLOOP_API void thread_pool_free(ThreadPool *pool);

/**
 * thread_pool_submit_aio - run @func(@arg) in a worker, then call
 * @cb(@opaque, ret) from the pool context's aio_poll() with the value
 * @func returned (or -ECANCELED). @cb may be NULL.
 * Returns: the request, to cancel it with bdrv_aio_cancel(_async)(); it
 * stays valid until its callback has run (take a reference with
 * qemu_aio_ref() to keep it longer). Cancelling it twice, or after it
 * completed (while a reference keeps it), changes nothing: it completes
 * once. A NULL @pool or @func is a programmer error: builds without
 * NDEBUG abort with a message naming the pool and the callback; NDEBUG
 * builds return NULL, with nothing queued (the callback never runs).
 * Submitted while the pool is being
 * freed (from a callback that thread_pool_free() or the context's last
 * unref runs), the job does not run: it completes with -ECANCELED and its
 * callback runs before the free returns.
 * Any thread.
 */
AIOLOOP_API BlockAIOCB *thread_pool_submit_aio(ThreadPool *pool,
                                               ThreadPoolFunc *func,
                                               void *arg,
                                               BlockCompletionFunc *cb,
                                               void *opaque);

/**
 * thread_pool_submit_co - run @func(@arg) in a worker while the calling
 * coroutine yields; it is resumed (in its own context) with the value
 * @func returned.
 * Returns: @func's return value.
 * Coroutine context only: called outside a coroutine it aborts with a
 * message, before anything is submitted.
 */
AIOLOOP_API int coroutine_fn thread_pool_submit_co(ThreadPool *pool,
                                                   ThreadPoolFunc *func,
                                                   void *arg);

/**
 * thread_pool_submit - run @func(@arg) in a worker with no completion
 * callback (the result is dropped). Its completion still counts as
 * progress of the pool's context, as in QEMU: a blocking aio_poll() there
 * returns true once the job is done. A NULL @pool or @func: as for
 * thread_pool_submit_aio() (abort, or nothing queued with NDEBUG).
 * Any thread.
 */
AIOLOOP_API void thread_pool_submit(ThreadPool *pool, ThreadPoolFunc *func,
                                    void *arg);

/**
 * thread_pool_set_params - worker limits of @pool.
 * @pool: the pool.
 * @min_threads: workers kept when idle (>= 0); @max_threads: at most this
 * many (>= 1 and >= @min_threads); @idle_timeout_ns: how long an idle
 * surplus worker waits before it exits (> 0); @spin_ns: how long an idle
 * worker watches the queue before sleeping (>= 0, 0 = never).
 * Workers are woken as the queue needs them: while about as many as the
 * process has CPUs keep taking short jobs, queued jobs wait for them
 * rather than wake more; jobs that block (run longer than about 50 us)
 * get further workers, up to @max_threads, without any new submission.
 * Returns: 0, or -EINVAL (nothing changed) on a bad value.
 * Any thread.
 */
AIOLOOP_API int thread_pool_set_params(ThreadPool *pool, int min_threads,
                                       int max_threads,
                                       int64_t idle_timeout_ns,
                                       int64_t spin_ns);

/**
 * aio_context_set_thread_pool_params - QEMU's spelling: set min and max
 * workers of @ctx's pool (keeping its timeouts). @errp is set on a bad
 * value (min < 0, max < 1, min > max, max > INT_MAX); nothing changes
 * then.
 * Any thread.
 */
AIOLOOP_API void aio_context_set_thread_pool_params(AioContext *ctx,
                                                    int64_t min, int64_t max,
                                                    Error **errp);

/**
 * thread_pool_stats - counters for tests and monitoring: workers alive
 * now, and idle among them. Any thread.
 */
AIOLOOP_API void thread_pool_stats(ThreadPool *pool, int *cur_threads,
                                   int *idle_threads);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_THREAD_POOL_H */
