/*
 * aioloop/coroutine.h - coroutines and their AioContext integration.
 *
 * A coroutine is a function with its own stack that can stop in the
 * middle (qemu_coroutine_yield()) and be continued later
 * (qemu_coroutine_enter()). Yield returns control to whoever entered the
 * coroutine; a coroutine whose function returns is recycled automatically.
 * Switching costs a few nanoseconds and no system call.
 *
 * Each coroutine remembers the AioContext it last ran in: aio_co_wake()
 * resumes it there, aio_co_schedule() moves it to another context, whose
 * aio_poll() then enters it.
 *
 * Functions marked coroutine_fn may only be called from coroutine context
 * (qemu_in_coroutine() is true).
 *
 * Stacks and overflows. Each coroutine has a 1 MiB stack with a 64 KiB
 * inaccessible guard below it (the library is built with
 * -fstack-clash-protection where the compiler supports it; build code
 * that runs in coroutines with it too, so that no large frame can jump
 * the guard). An overflow faults in the guard. The first coroutine stack
 * installs a process-wide SIGSEGV handler (SA_ONSTACK | SA_SIGINFO) that
 * chains to the handler installed before it: a fault in the guard of the
 * coroutine the faulting thread runs prints "aioloop: coroutine stack
 * overflow in coroutine <address> (entry <address>)..." on stderr, then
 * the default action of SIGSEGV ends the process (core dump included);
 * every other fault goes to the previous handler, or to the default
 * action if there was none. A handler the application installs after
 * the first coroutine replaces the library's and gets every fault,
 * overflows unreported. The handler runs on an alternate signal stack:
 * each thread that runs coroutines gets one (64 KiB) at its first
 * qemu_coroutine_create() or enter, unless it has one already (which is
 * then used), and SIGSEGV is unblocked in that thread (a fault while it
 * is blocked would kill the process without any handler anyway). The
 * library's alternate stack is released when the thread exits.
 *
 * Lifetime. A coroutine whose entry function returned is finished and
 * goes back to a per-thread pool: entering it again (qemu_coroutine_
 * enter(), aio_co_enter(), aio_co_wake()) or scheduling it
 * (aio_co_schedule()) aborts with a message naming the coroutine and its
 * entry function, in every build (NDEBUG included), until a later
 * qemu_coroutine_create() hands the same memory out as a new coroutine
 * (or the pool, when full, frees it).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_COROUTINE_H
#define AIOLOOP_COROUTINE_H

#include <stdbool.h>
#include <stdint.h>
#include <aioloop/aio.h>
#include <aioloop/queue.h>
#include <aioloop/thread.h>
#include <aioloop/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A coroutine (opaque). Created by qemu_coroutine_create(); freed
 * (recycled) automatically when its entry function returns. */
typedef struct Coroutine Coroutine;
/* A coroutine's entry function: runs in the coroutine with the opaque
 * given to qemu_coroutine_create(). */
typedef void coroutine_fn CoroutineEntry(void *opaque);

/**
 * qemu_coroutine_create - a new coroutine that will run @entry(@opaque)
 * when first entered. Stacks come from a per-thread pool, so create +
 * enter + return costs no allocation in steady state.
 * Floating-point control state (rounding mode, exception masks,
 * flush-to-zero) is per coroutine: the new coroutine starts with the
 * calling thread's, as it is at this call, even when its stack is
 * recycled from a coroutine that ended with another mode set; what it
 * sets later stays with it, and what its enterer sets stays with the
 * enterer.
 * Returns: the coroutine, never NULL (as in QEMU): when a new stack is
 * needed and cannot be mapped, the process aborts with "aioloop: cannot
 * allocate a coroutine stack: <reason>". Any thread.
 */
AIOLOOP_API Coroutine *qemu_coroutine_create(CoroutineEntry *entry,
                                             void *opaque);

/**
 * qemu_coroutine_enter - run @co until it yields or returns. @co must not
 * be running already, nor finished: entering an active coroutine, or one
 * whose entry function returned, aborts with a message naming it (see
 * "Lifetime" above). Its context becomes the calling thread's current
 * context.
 * Any thread (the coroutine runs in the calling thread).
 */
AIOLOOP_API void qemu_coroutine_enter(Coroutine *co);

/**
 * qemu_coroutine_enter_if_inactive - enter @co unless it is already
 * running (or waiting for a coroutine it entered). Any thread.
 */
AIOLOOP_API void qemu_coroutine_enter_if_inactive(Coroutine *co);

/**
 * qemu_coroutine_yield - return to whoever entered the current coroutine;
 * the next qemu_coroutine_enter() continues after this call.
 * Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_coroutine_yield(void);

/**
 * qemu_coroutine_self - the running coroutine, or NULL outside coroutines.
 * Any thread.
 */
AIOLOOP_API Coroutine *qemu_coroutine_self(void);

/** qemu_in_coroutine - whether the caller runs in a coroutine. Any thread. */
AIOLOOP_API bool qemu_in_coroutine(void);

/**
 * qemu_coroutine_entered - whether @co has been entered and has not yet
 * yielded back (it is running, or waiting for a coroutine it entered).
 * Any thread.
 */
AIOLOOP_API bool qemu_coroutine_entered(Coroutine *co);

/**
 * qemu_coroutine_get_aio_context - the context @co last ran in (NULL if
 * it never ran in one). Any thread.
 */
AIOLOOP_API AioContext *qemu_coroutine_get_aio_context(Coroutine *co);

/**
 * aio_co_schedule - enter @co from @ctx's next aio_poll(), in the thread
 * running that loop. @co must be yielded, or be the caller about to
 * yield (see below), and not scheduled already
 * (scheduling it twice aborts with a message naming the first caller;
 * scheduling a finished coroutine aborts naming it).
 * A coroutine may schedule itself (to move to @ctx's thread) if it yields
 * right after: the other thread waits until it has switched out.
 * Any thread.
 */
AIOLOOP_API void aio_co_schedule(AioContext *ctx, Coroutine *co);

/**
 * aio_co_enter - enter @co in @ctx: at once if the caller runs @ctx's
 * loop outside a coroutine; after the current coroutine yields if called
 * from a coroutine of @ctx; else through aio_co_schedule().
 * Any thread.
 */
AIOLOOP_API void aio_co_enter(AioContext *ctx, Coroutine *co);

/**
 * aio_co_wake - aio_co_enter() on the context @co last ran in. The usual
 * way for a completion callback to resume the coroutine that waits for it.
 * Any thread.
 */
AIOLOOP_API void aio_co_wake(Coroutine *co);

/* ------------------------------------------------------------------ */
/* Synchronisation                                                     */

/* A queue of coroutines waiting for something. */
typedef struct CoQueue {
    QSIMPLEQ_HEAD(, Coroutine) entries;     /* the waiters, FIFO */
} CoQueue;

/* A mutex for coroutines: waiting yields instead of blocking the thread.
 * Fair (FIFO); may be taken by coroutines of different contexts. */
typedef struct CoMutex {
    QemuMutex lock;             /* protects the fields below */
    bool locked;                /* held by a coroutine */
    Coroutine *holder;          /* that coroutine, NULL when unlocked */
    QSIMPLEQ_HEAD(, Coroutine) waiters;     /* queued lockers, FIFO */
} CoMutex;

/** qemu_co_mutex_init - initialise @mutex, unlocked. Any thread. */
AIOLOOP_API void qemu_co_mutex_init(CoMutex *mutex);

/** qemu_co_mutex_destroy - release @mutex's resources (must be unlocked,
 * no waiters). Any thread. */
AIOLOOP_API void qemu_co_mutex_destroy(CoMutex *mutex);

/**
 * qemu_co_mutex_lock - take @mutex, yielding while another coroutine
 * holds it; waiters get it in arrival order, each resumed in its own
 * context. Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex);

/**
 * qemu_co_mutex_unlock - release @mutex, handing it to the first waiter.
 * Only by the holder. Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex);

/** qemu_co_queue_init - initialise an empty @queue. Any thread. */
AIOLOOP_API void qemu_co_queue_init(CoQueue *queue);

/**
 * qemu_co_queue_wait - wait on @queue until woken by qemu_co_queue_next()
 * or qemu_co_queue_restart_all(). If @lock is not NULL it is released
 * while waiting and taken again before returning.
 * Coroutine context only; @queue belongs to one context (the callers'
 * and wakers' context) unless a @lock protects it.
 */
AIOLOOP_API void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *lock);

/**
 * qemu_co_queue_next - wake the first waiter of @queue (FIFO).
 * Returns: true if one was woken. Loop thread of the queue's context,
 * inside or outside a coroutine.
 */
AIOLOOP_API bool qemu_co_queue_next(CoQueue *queue);

/** qemu_co_queue_restart_all - wake every waiter, in order. Same threads. */
AIOLOOP_API void qemu_co_queue_restart_all(CoQueue *queue);

/** qemu_co_queue_empty - whether nobody waits on @queue. Same threads. */
AIOLOOP_API bool qemu_co_queue_empty(CoQueue *queue);

/**
 * qemu_co_sleep_ns - sleep @ns nanoseconds on clock @type (a virtual
 * clock sleep ends when the application advances it), yielding to the
 * loop meanwhile. Coroutine context only, inside an AioContext.
 */
AIOLOOP_API void coroutine_fn qemu_co_sleep_ns(QEMUClockType type, int64_t ns);

/**
 * yield_until_fd_readable - yield until @fd is readable (or has an error
 * or hang-up), then return. yield_until_fd_writable() likewise.
 * Coroutine context only, inside an AioContext.
 */
AIOLOOP_API void coroutine_fn yield_until_fd_readable(int fd);

/**
 * yield_until_fd_writable - yield until @fd is writable (or has an error
 * or hang-up), then return.
 * Coroutine context only, inside an AioContext.
 */
AIOLOOP_API void coroutine_fn yield_until_fd_writable(int fd);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_COROUTINE_H */
