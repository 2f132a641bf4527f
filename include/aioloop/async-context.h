/*
 * aioloop/async-context.h - nested AsyncContexts of the main loop.
 *
 * Some code has to wait synchronously for its own asynchronous work while
 * it runs inside a callback of the main loop: a qcow2-style driver whose
 * metadata update issues a "synchronous" read that is really a request
 * plus a wait. If that wait ran the main loop, other requests' callbacks
 * would run in the middle of the update and see half-changed state. An
 * AsyncContext is a fence against that: push one, submit the work under
 * it, wait with qemu_aio_wait() (which runs only the pushed context's
 * callbacks), pop.
 *
 *     async_context_push();
 *     AioContext *ctx = qemu_get_current_aio_context();
 *     thread_pool_submit_aio(aio_get_thread_pool(ctx), read_fn, &rd,
 *                            read_done, &rd);
 *     while (!rd.done) {
 *         qemu_aio_wait();
 *     }
 *     async_context_pop();
 *
 * The stack. AsyncContexts form a stack on the main-loop thread (the
 * thread that called qemu_init_main_loop()). The bottom, id 0, is the main
 * AioContext, qemu_get_aio_context(). Level k (id k) is an AioContext of
 * its own, created by the first push to depth k and reused by every later
 * push to depth k, until qemu_cleanup_main_loop() frees it: the same depth
 * always means the same context. The top of the stack is the *current*
 * AsyncContext.
 *
 * What belongs to a level. Work belongs to the AioContext it was hung on,
 * so a level owns: bottom halves created with qemu_bh_new() while it is
 * current; requests submitted to aio_get_thread_pool() of its context;
 * block requests of backends attached to its context; fd handlers and
 * timers put on its context with aio_set_fd_handler() / aio_timer_new();
 * coroutines entered on the main-loop thread while it is current (a
 * coroutine belongs to the context it was last entered in). Reach the
 * level's context with qemu_get_current_aio_context(). The main-loop
 * conveniences that are not BHs stay on the main context whatever the
 * depth: qemu_set_fd_handler() and timer_new() always register on
 * qemu_get_aio_context(), so a registration made while pushed stays valid
 * (and can be removed) after the pop; qemu_get_aio_context() itself is
 * always the main context.
 *
 * Isolation. main_loop_wait(), qemu_bh_poll() and qemu_aio_wait() run the
 * current level's context only. Everything that belongs to the levels
 * below - bottom halves, fd and event-notifier handlers, timers, thread
 * pool and block completions, coroutines woken with aio_co_wake() - is
 * held, never lost: it stays pending on its own context and runs from
 * that context's loop once the levels above it are popped (typically in
 * the next main_loop_wait(), or when the callback that pushed returns to
 * the main loop). The stack does not stop an explicit aio_poll() on a
 * named context: aio_poll(qemu_get_aio_context(), ...) while pushed runs
 * the main context's callbacks.
 *
 * Pop. async_context_pop() first runs the current level's bottom halves
 * until none is scheduled: a BH scheduled by one of them runs too, and so
 * does what is already queued behind a BH (thread-pool results, the
 * thread block engine's, scheduled coroutines); completions still waiting
 * behind a file descriptor (Linux AIO or io_uring events not yet reaped)
 * are not. Then it makes the parent current; the parent's held work is
 * not run by the pop itself. Anything of the popped level that is still
 * outstanding (a request not finished, a BH scheduled later from another
 * thread) stays with that level's context and runs the next time the
 * stack is at that depth again, as in QEMU's original, where completions
 * were matched to the context id. So wait for your own requests before
 * you pop, and detach a block backend you attached to the level first.
 *
 * Threads. The stack belongs to the main-loop thread. Other threads (an
 * IOThread, a thread-pool worker, any thread of the program) never see it:
 * for them qemu_get_current_aio_context() is their IOThread's context or
 * the main context, and qemu_bh_new() from them creates a BH on the main
 * context. Push and pop from any other thread abort.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ASYNC_CONTEXT_H
#define AIOLOOP_ASYNC_CONTEXT_H

#include <aioloop/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * async_context_push - enter a new AsyncContext one level deeper.
 *
 * The new level's AioContext becomes current: qemu_get_current_aio_context()
 * returns it on the main-loop thread, qemu_bh_new() creates BHs on it,
 * and main_loop_wait(), qemu_bh_poll() and qemu_aio_wait() run it alone.
 * Callbacks already scheduled or pending in the levels below are held
 * until this level is popped. get_async_context_id() grows by one.
 * May be called from inside any callback (also from a level's own
 * callbacks, to nest deeper). Aborts with a message when called from a
 * thread other than the main-loop thread, before qemu_init_main_loop(),
 * or when the level's context cannot be created (no memory or file
 * descriptors).
 * Main thread only (the thread that called qemu_init_main_loop()).
 */
AIOLOOP_API void async_context_push(void);

/**
 * async_context_pop - leave the current AsyncContext for its parent.
 *
 * Runs the current level's bottom halves until none is scheduled (so none
 * is lost; a BH that keeps rescheduling itself makes this loop forever,
 * as in QEMU), then makes the parent level current and decrements
 * get_async_context_id(). The parent's held callbacks run from its loop
 * afterwards; pop itself does not run them. Work of the popped level that
 * is still outstanding stays with it (see the header comment).
 * Aborts with a message when there is nothing to pop (the current context
 * is the root, id 0: an unbalanced push/pop), when called from a thread
 * other than the main-loop thread, from inside a callback that the popped
 * level's own innermost aio_poll() (main_loop_wait(), qemu_aio_wait()),
 * qemu_bh_poll() or pop flush is running, or when one of the flushed BHs
 * leaves a push without its pop.
 * Main thread only (the thread that called qemu_init_main_loop()).
 */
AIOLOOP_API void async_context_pop(void);

/**
 * get_async_context_id - the id of the current AsyncContext: 0 for the
 * root (the main context, also before qemu_init_main_loop()), otherwise
 * its depth in the stack (1 after one push, 2 after two...).
 * Main thread only (another thread reads a snapshot of the
 * main-loop thread's depth).
 */
AIOLOOP_API int get_async_context_id(void);

/**
 * qemu_aio_wait - wait for and run callbacks of the current AsyncContext.
 *
 * Runs aio_poll() on the current level's context, blocking, until at least
 * one callback of that context ran: a bottom half (not an idle one), an
 * fd or event-notifier handler, a timer, a thread-pool or block
 * completion, a coroutine. A wake-up with no callback (aio_notify()) does
 * not end the wait. Callbacks of the levels below stay held. Typical use:
 * "while (!done) qemu_aio_wait();". With nothing of the current context
 * that can ever complete, it waits forever.
 * The main loop must be initialised (else abort with a message).
 * Main thread only (the thread that called qemu_init_main_loop()).
 */
AIOLOOP_API void qemu_aio_wait(void);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_ASYNC_CONTEXT_H */
