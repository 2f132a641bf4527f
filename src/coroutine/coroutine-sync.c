/*
 * coroutine-sync.c - synchronisation for coroutines: CoMutex, CoQueue,
 * qemu_co_sleep_ns() and yield_until_fd_readable/writable().
 *
 * What
 * ----
 * Primitives that make a coroutine wait by yielding instead of blocking its
 * thread. Every wait has the same shape: the coroutine records itself
 * somewhere (a waiter list, a timer, an fd handler), yields back to its
 * event loop, and whoever ends the wait resumes it with aio_co_wake(),
 * which enters it in the context it last ran in (co->ctx).
 *
 * Why this shape
 * --------------
 * aio_co_wake() is the only resume operation used here. It does the right
 * thing from every caller: from the waiter's own loop thread outside a
 * coroutine it enters at once; from a coroutine of the same context it
 * defers the entry until the current coroutine yields (no nesting of
 * unrelated coroutines, no unbounded stack growth); from anywhere else it
 * goes through aio_co_schedule(), so the waiter resumes in its own context
 * and thread, not in the waker's.
 *
 * Waking a coroutine that has not finished yielding
 * ------------------------------------------------
 * A waiter publishes itself (under a lock), drops the lock, then yields.
 * A waker on another thread may pop it and call aio_co_wake() in between,
 * while the waiter is still running. That is safe, and here is why:
 *   - The waker is on another thread, so it is not running the waiter's
 *     context (a context is driven by one thread at a time: aio_poll()
 *     acquires it). aio_co_wake() therefore takes the aio_co_schedule()
 *     path: it only queues the waiter on its context and notifies it.
 *     The scheduled entry is made by that context's aio_poll(), in the
 *     thread that drives it - the very thread still executing the waiter.
 *     That thread reaches its loop again only after the waiter's yield
 *     has switched back to it, so the entry always follows the yield.
 *   - A waker on the same thread as the waiter can only run once the
 *     waiter has yielded (one thread runs one thing at a time).
 * Hence: publish, unlock, yield on the waiter side; pop (under the lock),
 * unlock, aio_co_wake() on the waker side. The waker never enters the
 * waiter directly (qemu_coroutine_enter) - that would be the bug.
 * This relies on the usual rule that the coroutines of one context run in
 * one thread at a time: the thread that drives (or holds) that context.
 * aio_co_enter() decides "same context" from the calling thread's current
 * context, and a thread outside aio_poll() that is not an IOThread counts
 * as the main context's; two such threads running main-context coroutines
 * at once break the rule (the waker would enter a waiter that may still
 * be running elsewhere, which coroutine.c reports and aborts on).
 *
 * The co_queue_next link
 * ----------------------
 * A waiting coroutine sits on a CoMutex's or a CoQueue's list through
 * Coroutine.co_queue_next. aio_co_wake() may reuse that same link (the
 * core's deferred-wakeup list), so a waker always removes the coroutine
 * from our list *before* waking it.
 *
 * Locks
 * -----
 * CoMutex.lock (a QemuMutex, held only for a few instructions, never
 * across a yield or a wake) protects locked, holder and waiters. A CoMutex
 * may thus be shared by coroutines of different contexts and threads.
 * CoQueue has no lock of its own: either one context's thread uses it, or
 * the CoMutex passed to qemu_co_queue_wait() protects it (waiters and
 * wakers hold that CoMutex while touching the queue).
 * The sleep timer and the fd handler belong to the coroutine's context and
 * are touched by that context's thread only.
 *
 * Invariants (CoMutex, under CoMutex.lock)
 *   - holder != NULL exactly when locked.
 *   - waiters is non-empty only while locked: unlock hands the mutex to
 *     the first waiter (holder = waiter, locked stays true) instead of
 *     releasing it, so a newcomer cannot barge past a queued coroutine.
 *     Ownership order is arrival order (FIFO), across threads too.
 *   - A coroutine on waiters is yielded or about to yield, and its
 *     holder != it; once popped it is the holder and exactly one wake is
 *     on its way.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coroutine-int.h"

/* ------------------------------------------------------------------ */
/* CoMutex                                                             */

void qemu_co_mutex_init(CoMutex *mutex)
{
    qemu_mutex_init(&mutex->lock);
    mutex->locked = false;
    mutex->holder = NULL;
    QSIMPLEQ_INIT(&mutex->waiters);
}

void qemu_co_mutex_destroy(CoMutex *mutex)
{
    assert(!mutex->locked);
    assert(QSIMPLEQ_EMPTY(&mutex->waiters));
    qemu_mutex_destroy(&mutex->lock);
}

void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self != NULL);
    qemu_mutex_lock(&mutex->lock);
    /* Recursive locking would deadlock: catch it. */
    assert(mutex->holder != self);

    if (!mutex->locked) {
        /* Free means nobody queues either (see the invariants). */
        assert(QSIMPLEQ_EMPTY(&mutex->waiters));
        mutex->locked = true;
        mutex->holder = self;
        qemu_mutex_unlock(&mutex->lock);
        return;
    }

    /* Publish ourselves, then yield outside the lock; an unlocker on
     * another thread may already pop us: see the header comment. */
    QSIMPLEQ_INSERT_TAIL(&mutex->waiters, self, co_queue_next);
    qemu_mutex_unlock(&mutex->lock);

    for (;;) {
        qemu_coroutine_yield();
        /* Retaking the internal mutex also orders the previous holder's
         * critical section before ours when it ran on another thread. */
        qemu_mutex_lock(&mutex->lock);
        if (mutex->holder == self) {
            break;
        }
        /* Entered by someone else than the unlocker: we are still on
         * waiters (only unlock pops, and it makes us holder in the same
         * step), so just wait again without re-queueing. */
        qemu_mutex_unlock(&mutex->lock);
    }
    assert(mutex->locked);
    qemu_mutex_unlock(&mutex->lock);
}

void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex)
{
    Coroutine *self __attribute__((unused)) = qemu_coroutine_self();
    Coroutine *next;

    assert(self != NULL);
    qemu_mutex_lock(&mutex->lock);
    assert(mutex->locked && mutex->holder == self);

    next = QSIMPLEQ_FIRST(&mutex->waiters);
    if (next) {
        /* Hand over: the mutex stays locked, now held by next. Unlink
         * before waking, since the wake may reuse co_queue_next. */
        QSIMPLEQ_REMOVE_HEAD(&mutex->waiters, co_queue_next);
        mutex->holder = next;
    } else {
        mutex->locked = false;
        mutex->holder = NULL;
    }
    qemu_mutex_unlock(&mutex->lock);

    /* Wake outside the internal mutex: aio_co_wake may take the target
     * context's locks and notify it. next resumes in its own context. */
    if (next) {
        aio_co_wake(next);
    }
}

/* ------------------------------------------------------------------ */
/* CoQueue                                                             */

void qemu_co_queue_init(CoQueue *queue)
{
    QSIMPLEQ_INIT(&queue->entries);
}

void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *lock)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self != NULL);
    /* Queue first, unlock second: a waker that takes @lock after us
     * must find us on the queue, or the wakeup would be lost. */
    QSIMPLEQ_INSERT_TAIL(&queue->entries, self, co_queue_next);
    if (lock) {
        qemu_co_mutex_unlock(lock);
    }
    qemu_coroutine_yield();
    if (lock) {
        qemu_co_mutex_lock(lock);
    }
}

bool qemu_co_queue_next(CoQueue *queue)
{
    Coroutine *next = QSIMPLEQ_FIRST(&queue->entries);

    if (!next) {
        return false;
    }
    QSIMPLEQ_REMOVE_HEAD(&queue->entries, co_queue_next);
    aio_co_wake(next);
    return true;
}

void qemu_co_queue_restart_all(CoQueue *queue)
{
    /* Take the current waiters off first: a woken coroutine may be
     * entered at once and wait on @queue again, and it must not be woken
     * a second time by this call (nor keep it looping forever). */
    QSIMPLEQ_HEAD(, Coroutine) woken = QSIMPLEQ_HEAD_INITIALIZER(woken);
    Coroutine *co;

    QSIMPLEQ_CONCAT(&woken, &queue->entries);
    while ((co = QSIMPLEQ_FIRST(&woken)) != NULL) {
        QSIMPLEQ_REMOVE_HEAD(&woken, co_queue_next);
        aio_co_wake(co);
    }
}

bool qemu_co_queue_empty(CoQueue *queue)
{
    return QSIMPLEQ_EMPTY(&queue->entries);
}

/* ------------------------------------------------------------------ */
/* Sleeping                                                            */

static void co_sleep_cb(void *opaque)
{
    /* The coroutine may run to completion inside this call (its frame,
     * which holds the timer, is then gone): touch nothing afterwards.
     * timer.c does not touch a fired timer after its callback. */
    aio_co_wake(opaque);
}

void coroutine_fn qemu_co_sleep_ns(QEMUClockType type, int64_t ns)
{
    Coroutine *self = qemu_coroutine_self();
    AioContext *ctx;
    QEMUTimer ts;
    int64_t deadline;

    assert(self != NULL);
    ctx = qemu_coroutine_get_aio_context(self);
    assert(ctx != NULL);

    aio_timer_init(ctx, &ts, type, SCALE_NS, co_sleep_cb, self);
    /* Saturated: a huge @ns sleeps until woken (INT64_MAX never fires). */
    if (__builtin_add_overflow(qemu_clock_get_ns(type), ns, &deadline)) {
        deadline = ns < 0 ? INT64_MIN : INT64_MAX;
    }
    timer_mod_ns(&ts, deadline);
    qemu_coroutine_yield();
    /* Already disarmed if it fired; disarms it if we were entered early. */
    timer_deinit(&ts);
}

/* ------------------------------------------------------------------ */
/* Waiting for a file descriptor                                       */

typedef struct FDYieldUntilData {
    AioContext *ctx;
    Coroutine *co;
    int fd;
} FDYieldUntilData;

static void fd_coroutine_enter(void *opaque)
{
    FDYieldUntilData *data = opaque;
    Coroutine *co = data->co;

    /* One-shot: remove the handler (safe from inside it), then wake.
     * data lives on the coroutine's stack and may be gone once the wake
     * returns, so it is read before. */
    aio_set_fd_handler(data->ctx, data->fd, false, NULL, NULL, NULL);
    aio_co_wake(co);
}

/* The fd must have no other handler in the coroutine's context: there is
 * one handler set per (fd, context), and this one replaces it. */
static void coroutine_fn yield_until_fd(int fd, bool writable)
{
    FDYieldUntilData data;

    data.co = qemu_coroutine_self();
    assert(data.co != NULL);
    data.ctx = qemu_coroutine_get_aio_context(data.co);
    assert(data.ctx != NULL);
    data.fd = fd;

    aio_set_fd_handler(data.ctx, fd, false,
                       writable ? NULL : fd_coroutine_enter,
                       writable ? fd_coroutine_enter : NULL,
                       &data);
    qemu_coroutine_yield();
}

void coroutine_fn yield_until_fd_readable(int fd)
{
    yield_until_fd(fd, false);
}

void coroutine_fn yield_until_fd_writable(int fd)
{
    yield_until_fd(fd, true);
}
