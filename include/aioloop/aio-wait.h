/*
 * aioloop/aio-wait.h - wait for a condition while event loops run
 * (QEMU's AIO_WAIT_WHILE and aio_wait_kick).
 *
 * Design
 * ------
 * Synchronous code often has to wait for asynchronous work: "submit,
 * then wait until the completion callback has set done". Waiting must
 * keep an event loop turning, or the completion never comes. So
 *
 *     AIO_WAIT_WHILE(ctx, !req.done);
 *
 * evaluates the condition and, while it holds, runs a blocking
 * aio_poll() on the right loop:
 *   - @ctx itself when the caller runs @ctx's loop
 *     (qemu_get_current_aio_context() == @ctx): the completion comes
 *     from that very loop;
 *   - otherwise the caller's own loop (qemu_get_current_aio_context(): the
 *     main context for the main thread; @ctx if the caller has none),
 *     while @ctx's owner (an IOThread) does the work. The work's side
 *     must then call aio_wait_kick() after changing what the condition
 *     reads: that wakes every waiter, which evaluates the condition again.
 *
 * aio_wait_kick() costs one atomic load when nobody waits. A waiter is
 * counted in its AioWait (num_waiters, QEMU's field) before it first
 * evaluates the condition, and kickers read the count after changing the
 * state (both sequentially consistent), so a kick is never lost: either
 * the kicker sees the waiter and notifies its loop (aio_notify(), which
 * is remembered if the loop is not asleep yet), or the waiter's next
 * evaluation sees the new state. Waking is aio_notify(), not a BH, so a
 * kick is not progress for the woken loop.
 *
 * QEMU before 9.0 made the caller hold @ctx (aio_context_acquire) and
 * released it while the main loop ran; the QEMU-named headers keep that
 * for those API levels (AIO_WAIT_WHILE_INTERNAL with unlock = true).
 * aioloop's aio_poll() needs no lock, so the plain forms here release
 * nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_AIO_WAIT_H
#define AIOLOOP_AIO_WAIT_H

#include <stdbool.h>
#include <aioloop/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The waiters of one kind of event. num_waiters counts the threads in
 * AIO_WAIT_WHILE on it (atomic; QEMU's field). Zero-filled is empty. */
typedef struct AioWait {
    unsigned num_waiters;       /* threads in AIO_WAIT_WHILE on it */
} AioWait;

/* The AioWait of AIO_WAIT_WHILE() and aio_wait_kick() (QEMU 3.1 on has
 * only this one). */
AIOLOOP_API extern AioWait global_aio_wait;

/* One waiter, on the waiting thread's stack, between aio_wait_begin()
 * and aio_wait_end(). The fields are for the library. */
typedef struct AioWaitWaiter {
    AioWait *wait;              /* what the wait is kicked through */
    AioContext *ctx;            /* the context given to the wait */
    AioContext *poll_ctx;       /* the loop it runs */
    bool unlock;                /* release ctx around polls (QEMU < 9.0) */
    struct AioWaitWaiter *next; /* the registry, under its lock */
} AioWaitWaiter;

/**
 * aio_wait_begin - register the calling thread as a waiter on @wait
 * (the part of AIO_WAIT_WHILE() before the condition is first read).
 * @w: the waiter, on the caller's stack.
 * @wait: what the wait is kicked through (&global_aio_wait).
 * @ctx: the context whose work is waited for; NULL: the caller's own.
 * @unlock: release @ctx once around each poll of another loop (QEMU
 *          before 9.0, where the caller held @ctx); the caller must then
 *          hold @ctx exactly once.
 * Aborts with a message when there is no loop to run (@ctx NULL and no
 * main loop or home context).
 * Any thread.
 */
AIOLOOP_API void aio_wait_begin(AioWaitWaiter *w, AioWait *wait,
                                AioContext *ctx, bool unlock);

/**
 * aio_wait_poll - one blocking aio_poll() of the waiter's loop (see the
 * header comment); returns when a callback ran or a kick came.
 * Any thread (the one that called aio_wait_begin()).
 */
AIOLOOP_API void aio_wait_poll(AioWaitWaiter *w);

/**
 * aio_wait_end - unregister a waiter of aio_wait_begin().
 * Any thread (the one that called aio_wait_begin()).
 */
AIOLOOP_API void aio_wait_end(AioWaitWaiter *w);

/*
 * AIO_WAIT_WHILE_INTERNAL(wait, ctx, cond, unlock) - the macro behind the
 * others: while @cond is true, run a loop (see the header comment).
 * Evaluates to true if it waited at least once.
 */
#define AIO_WAIT_WHILE_INTERNAL(wait, ctx, cond, unlock) __extension__ ({ \
    bool aioloop_waited_ = false;                                         \
    AioWaitWaiter aioloop_waiter_;                                        \
    aio_wait_begin(&aioloop_waiter_, (wait), (ctx), (unlock));            \
    while ((cond)) {                                                      \
        aio_wait_poll(&aioloop_waiter_);                                  \
        aioloop_waited_ = true;                                           \
    }                                                                     \
    aio_wait_end(&aioloop_waiter_);                                       \
    aioloop_waited_;                                                      \
})

/*
 * AIO_WAIT_WHILE(ctx, cond) - wait while @cond is true, running @ctx's
 * loop if the caller runs it, else the caller's own loop until
 * aio_wait_kick() (see the header comment). @ctx may be NULL (the
 * caller's loop). Evaluates to true if it waited. AIO_WAIT_WHILE_UNLOCKED
 * is the same (QEMU's name for callers that do not hold @ctx).
 * Any thread with a loop to run.
 */
#define AIO_WAIT_WHILE(ctx, cond) \
    AIO_WAIT_WHILE_INTERNAL(&global_aio_wait, (ctx), cond, false)
#define AIO_WAIT_WHILE_UNLOCKED(ctx, cond) \
    AIO_WAIT_WHILE_INTERNAL(&global_aio_wait, (ctx), cond, false)

/**
 * aio_wait_kick - wake every AIO_WAIT_WHILE() waiter so that it evaluates
 * its condition again. Call it after changing what a waiter's condition
 * reads. One atomic load when nobody waits.
 * Any thread.
 */
AIOLOOP_API void aio_wait_kick(void);

/**
 * aio_wait_kick_on - aio_wait_kick() for the waiters of @wait (QEMU 2.12
 * to 3.0 passed an AioWait to both sides).
 * Any thread.
 */
AIOLOOP_API void aio_wait_kick_on(AioWait *wait);

/**
 * aio_wait_bh_oneshot - run @cb(@opaque) in @ctx's loop (a one-shot BH)
 * and wait until it has run, with AIO_WAIT_WHILE(). From @ctx's own loop
 * thread the BH runs from the wait's own aio_poll().
 * Any thread with a loop to run.
 */
AIOLOOP_API void aio_wait_bh_oneshot(AioContext *ctx, QEMUBHFunc *cb,
                                     void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_AIO_WAIT_H */
