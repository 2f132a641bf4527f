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
 * (qemu_in_coroutine() is true); those below abort with a message when
 * called outside one.
 *
 * Misuse that would corrupt state (an unlock by a coroutine that does not
 * hold the CoMutex, a coroutine entered while active) aborts in every
 * build with one line on stderr that names the coroutine by address and
 * entry function ("coroutine 0x... (entry 0x...)"), or the CoMutex or
 * CoQueue by address: "aioloop: <function>: <what>".
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
 * allocate a coroutine stack: <reason>". A NULL @entry aborts with a
 * message. Any thread.
 */
AIOLOOP_API Coroutine *qemu_coroutine_create(CoroutineEntry *entry,
                                             void *opaque);

/**
 * qemu_coroutine_enter - run @co until it yields or returns. @co must not
 * be running already, nor finished: entering an active coroutine (itself,
 * or one waiting for a coroutine it entered: "re-entered while active"),
 * one whose entry function returned (see "Lifetime" above), or one that
 * aio_co_schedule() scheduled and its loop has not entered yet aborts
 * with a message naming it. Its context becomes the calling thread's
 * current context.
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
 * Coroutine context only (outside one: abort with a message).
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
 * (scheduling it twice, or scheduling a finished coroutine, aborts with a
 * message naming it). A coroutine may schedule itself (to move to @ctx's
 * thread) if it yields right after: the other thread waits until it has
 * switched out. A coroutine still active in the thread when @ctx's loop
 * enters it (scheduled from a coroutine it entered, which then polls
 * @ctx) aborts with a message naming it ("re-entered while active").
 * Any thread.
 */
AIOLOOP_API void aio_co_schedule(AioContext *ctx, Coroutine *co);

/**
 * aio_co_enter - enter @co in @ctx: at once if the caller runs @ctx's
 * loop outside a coroutine; after the current coroutine yields if called
 * from a coroutine of @ctx; else through aio_co_schedule(). A coroutine
 * that enters (or wakes) itself this way aborts with a message naming it.
 * Any thread.
 */
AIOLOOP_API void aio_co_enter(AioContext *ctx, Coroutine *co);

/**
 * aio_co_wake - aio_co_enter() on the context @co last ran in. The usual
 * way for a completion callback to resume the coroutine that waits for it.
 * Any thread.
 */
AIOLOOP_API void aio_co_wake(Coroutine *co);

/**
 * aio_co_reschedule_self - move the calling coroutine to @new_ctx: unless
 * it already runs there, it is scheduled on @new_ctx (aio_co_schedule())
 * and yields; it returns in @new_ctx's thread, from that context's
 * aio_poll().
 * Coroutine context only.
 */
AIOLOOP_API void coroutine_fn aio_co_reschedule_self(AioContext *new_ctx);

/**
 * qemu_coroutine_set_entry_arg - change the argument @co's entry function
 * will receive, before @co first runs (QEMU up to 2.7 passed it to the
 * first qemu_coroutine_enter(); the QEMU-named headers use this for that
 * API level). Once @co has started it changes nothing the running entry
 * function sees.
 * Any thread (the one about to enter @co).
 */
AIOLOOP_API void qemu_coroutine_set_entry_arg(Coroutine *co, void *opaque);

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

/** qemu_co_mutex_destroy - release @mutex's resources. Destroying it while
 * a coroutine holds it aborts with a message naming the mutex and the
 * holder. Any thread. */
AIOLOOP_API void qemu_co_mutex_destroy(CoMutex *mutex);

/**
 * qemu_co_mutex_lock - take @mutex, yielding while another coroutine
 * holds it; waiters get it in arrival order, each resumed in its own
 * context. Not recursive: locking it again from its holder aborts with a
 * message naming the mutex and the coroutine (it would wait for itself
 * forever). Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex);

/**
 * qemu_co_mutex_unlock - release @mutex, handing it to the first waiter.
 * Only by the holder: unlocking a mutex that is not locked, or that
 * another coroutine holds, aborts with a message naming the mutex, the
 * holder and the caller, in every build. Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex);

/** qemu_co_queue_init - initialise an empty @queue. Any thread. */
AIOLOOP_API void qemu_co_queue_init(CoQueue *queue);

/**
 * qemu_co_queue_wait - wait on @queue until woken by qemu_co_queue_next()
 * or qemu_co_queue_restart_all(). If @lock is not NULL it is released
 * while waiting and taken again before returning.
 * Coroutine context only; @queue belongs to one context (the callers'
 * and wakers' context) unless a @lock protects it. @lock must be held by
 * the caller (see qemu_co_mutex_unlock()). A zero-filled @queue
 * (qemu_co_queue_init() forgotten) aborts with a message naming it.
 */
AIOLOOP_API void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *lock);

/**
 * qemu_co_queue_next - wake the first waiter of @queue (FIFO).
 * Returns: true if one was woken, false on an empty queue. Loop thread of
 * the queue's context, inside or outside a coroutine.
 */
AIOLOOP_API bool qemu_co_queue_next(CoQueue *queue);

/** qemu_co_queue_restart_all - wake every waiter, in order. Same threads. */
AIOLOOP_API void qemu_co_queue_restart_all(CoQueue *queue);

/** qemu_co_queue_empty - whether nobody waits on @queue. Same threads. */
AIOLOOP_API bool qemu_co_queue_empty(CoQueue *queue);

struct QemuLockable;

/* Flags of qemu_co_queue_wait_impl(): CO_QUEUE_WAIT_FRONT queues the
 * waiter first instead of last (QEMU 7.2 on). */
typedef enum {
    CO_QUEUE_WAIT_FRONT = 0x1,
} CoQueueWaitFlags;

/**
 * qemu_co_queue_wait_impl - qemu_co_queue_wait() with any lock.
 * @queue: the queue to wait on.
 * @lock: a QemuLockable (QEMU_MAKE_LOCKABLE() in <aioloop/lockable.h>) or
 *        NULL; released while waiting and taken again before returning.
 * @flags: CO_QUEUE_WAIT_FRONT to wait at the head of the queue.
 * Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_queue_wait_impl(CoQueue *queue,
                                                      struct QemuLockable *lock,
                                                      CoQueueWaitFlags flags);

/**
 * qemu_co_enter_next_impl - wake the first waiter of @queue, releasing
 * @lock (may be NULL) around the wake-up so that the waiter can take it.
 * Returns: true if a waiter was woken.
 * Loop thread of the queue's context, outside or inside a coroutine.
 */
AIOLOOP_API bool qemu_co_enter_next_impl(CoQueue *queue,
                                         struct QemuLockable *lock);

/**
 * qemu_co_enter_all_impl - wake every waiter of @queue, in order,
 * releasing @lock (may be NULL) around the wake-ups.
 * Loop thread of the queue's context, outside or inside a coroutine.
 */
AIOLOOP_API void qemu_co_enter_all_impl(CoQueue *queue,
                                        struct QemuLockable *lock);

/* One coroutine waiting for a CoRwlock (on its stack). For the library. */
typedef struct CoRwTicket {
    bool read;                  /* wants a read lock */
    bool granted;               /* the lock was handed to it */
    Coroutine *co;              /* the waiter */
    QSIMPLEQ_ENTRY(CoRwTicket) next;    /* CoRwlock.tickets */
} CoRwTicket;

/* A readers-writer lock for coroutines: any number of readers or one
 * writer. Fair: lockers are served in arrival order (a reader that comes
 * after a waiting writer waits behind it), consecutive readers together.
 * Waiting yields. May be shared by coroutines of different contexts. */
typedef struct CoRwlock {
    QemuMutex lock;             /* protects owners and tickets; never held
                                   across a yield or a wake-up */
    int owners;                 /* readers holding it, or -1: a writer */
    QSIMPLEQ_HEAD(, CoRwTicket) tickets;    /* waiters, FIFO */
} CoRwlock;

/** qemu_co_rwlock_init - initialise @lock, free. Any thread. */
AIOLOOP_API void qemu_co_rwlock_init(CoRwlock *lock);

/**
 * qemu_co_rwlock_destroy - release @lock's resources (an aioloop
 * extension; QEMU has none). It must be free with nobody waiting.
 * Any thread.
 */
AIOLOOP_API void qemu_co_rwlock_destroy(CoRwlock *lock);

/**
 * qemu_co_rwlock_rdlock - take a read lock, yielding while a writer holds
 * the lock or anyone waits before us. Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock);

/**
 * qemu_co_rwlock_wrlock - take the write lock, yielding while anyone
 * holds the lock or waits before us. Coroutine context only.
 */
AIOLOOP_API void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock);

/**
 * qemu_co_rwlock_unlock - release a read or the write lock, handing the
 * lock to the waiters at the head of the queue (one writer, or all the
 * readers up to the next writer). Coroutine context only (the holder).
 */
AIOLOOP_API void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock);

/**
 * qemu_co_rwlock_upgrade - turn the caller's read lock into the write
 * lock. At once if the caller is the only reader and nobody waits;
 * otherwise (fairness) the read lock is released and the caller waits
 * for the write lock behind those already queued, yielding.
 * Coroutine context only (a reader).
 */
AIOLOOP_API void coroutine_fn qemu_co_rwlock_upgrade(CoRwlock *lock);

/**
 * qemu_co_rwlock_downgrade - turn the caller's write lock into a read
 * lock, letting the readers at the head of the queue in with it. Never
 * yields. Coroutine context only (the writer).
 */
AIOLOOP_API void coroutine_fn qemu_co_rwlock_downgrade(CoRwlock *lock);

/**
 * qemu_co_sleep_ns - sleep @ns nanoseconds on clock @type (a virtual
 * clock sleep ends when the application advances it), yielding to the
 * loop meanwhile. Coroutine context only, inside an AioContext: called
 * outside a coroutine, or in a coroutine that never ran from an event
 * loop (no AioContext would wake it), it aborts with a message naming the
 * coroutine.
 */
AIOLOOP_API void coroutine_fn qemu_co_sleep_ns(QEMUClockType type, int64_t ns);

/**
 * yield_until_fd_readable - yield until @fd is readable (or has an error
 * or hang-up), then return. yield_until_fd_writable() likewise.
 * Coroutine context only, inside an AioContext (else abort with a
 * message, as for qemu_co_sleep_ns()).
 */
AIOLOOP_API void coroutine_fn yield_until_fd_readable(int fd);

/**
 * yield_until_fd_writable - yield until @fd is writable (or has an error
 * or hang-up), then return.
 * Coroutine context only, inside an AioContext (else abort with a
 * message, as for qemu_co_sleep_ns()).
 */
AIOLOOP_API void coroutine_fn yield_until_fd_writable(int fd);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_COROUTINE_H */
