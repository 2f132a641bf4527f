/*
 * aioloop/main-loop.h - the process-wide main context.
 *
 * A program that wants QEMU's main-loop API gets one AioContext that every
 * thread can reach: qemu_init_main_loop() creates it, main_loop_wait()
 * turns it, and qemu_bh_new() / qemu_set_fd_handler() hang work on it.
 *
 * The thread that called qemu_init_main_loop() is the main-loop thread.
 * On it, main_loop_wait(), qemu_bh_poll() and qemu_bh_new() act on the
 * *current AsyncContext* (<aioloop/async-context.h>): the main context,
 * unless async_context_push() has made a nested level current.
 *
 * Before qemu_init_main_loop() (or after qemu_cleanup_main_loop()) the
 * functions that need the main context - qemu_bh_new(), qemu_bh_poll(),
 * qemu_set_fd_handler(), main_loop_wait(), qemu_aio_wait(), timer_new() -
 * abort with "aioloop: <function>: the main loop is not initialised
 * (call qemu_init_main_loop() first)"; the getters return NULL (and
 * get_async_context_id() 0).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_MAIN_LOOP_H
#define AIOLOOP_MAIN_LOOP_H

#include <aioloop/aio.h>
#include <aioloop/async-context.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * qemu_init_main_loop - create the main AioContext.
 *
 * When the library is built with GLib (AIOLOOP_HAVE_GLIB), the main
 * context's GSource (aio_get_g_source()) is attached to GLib's default
 * main context, as QEMU does: g_main_context_iteration(NULL, ...) or a
 * GMainLoop on the default context then runs the main loop's bottom
 * halves, handlers and timers too. qemu_cleanup_main_loop() detaches it.
 * Returns: 0 on success (also when already initialised: the context
 * stays the same), -errno with @errp set on failure (-EMFILE when no
 * descriptor is left); nothing is left behind then and a later call may
 * succeed.
 * Any thread (call once, before other threads use the main loop).
 */
AIOLOOP_API int qemu_init_main_loop(Error **errp);

/**
 * qemu_cleanup_main_loop - free the main context (aioloop extension).
 * Also frees the contexts of the AsyncContext levels (reporting their
 * leaked BHs like any context's); aborts with a message if a level is
 * still pushed. After it, qemu_get_aio_context() returns NULL until the
 * next qemu_init_main_loop(). No thread may be using the main loop.
 * Without a main loop (never initialised, or cleaned up already) it does
 * nothing. From a thread other than the one that called
 * qemu_init_main_loop() it aborts with a message.
 * Main thread only.
 */
AIOLOOP_API void qemu_cleanup_main_loop(void);

/**
 * qemu_get_aio_context - the main AioContext, or NULL before
 * qemu_init_main_loop(). Always the main context (the root of the
 * AsyncContext stack), whatever is pushed. Any thread.
 */
AIOLOOP_API AioContext *qemu_get_aio_context(void);

/**
 * qemu_get_current_aio_context - the context whose loop the calling
 * thread runs: its home context if it has one (an IOThread's context in
 * that IOThread, or one set with qemu_set_current_aio_context()); on the
 * main-loop thread, the current AsyncContext's (the main context unless a
 * level is pushed, then the pushed level's); in any other thread, the
 * main context. NULL before qemu_init_main_loop() (except with a home
 * context).
 * Any thread.
 */
AIOLOOP_API AioContext *qemu_get_current_aio_context(void);

/**
 * qemu_set_current_aio_context - make @ctx the calling thread's home
 * context: qemu_get_current_aio_context() returns it from now on, and
 * coroutines the thread enters outside aio_poll() belong to it (QEMU 6.1+
 * names this for a thread that runs a context's loop itself). The caller
 * keeps its own reference to @ctx and must not free it while it is set.
 * Aborts with a message if the thread already has one (an IOThread's, or
 * an earlier call's). NULL forgets the home context of a thread that set
 * one (not in an IOThread).
 * Any thread (about itself).
 */
AIOLOOP_API void qemu_set_current_aio_context(AioContext *ctx);

/**
 * qemu_bh_new_full - a bottom half on the main loop (see aio_bh_new()).
 * On the main-loop thread the BH belongs to the current AsyncContext (the
 * main context unless a level is pushed) for its whole life: scheduled
 * later, it still runs only from that level's loop. From any other thread
 * it belongs to the main context. qemu_bh_new(cb, opaque) names it after
 * @cb. The main loop must be initialised.
 * Any thread.
 */
AIOLOOP_API QEMUBH *qemu_bh_new_full(QEMUBHFunc *cb, void *opaque,
                                     const char *name);
/** qemu_bh_new - qemu_bh_new_full() named after @cb. Any thread. */
#define qemu_bh_new(cb, opaque) qemu_bh_new_full((cb), (opaque), #cb)

/**
 * qemu_set_fd_handler - aio_set_fd_handler() on the main context, not
 * external. Always the main context, even while an AsyncContext level is
 * pushed: the handler then waits (level-triggered, nothing is lost) until
 * the stack is back at the root. For a handler that runs inside a nested
 * wait, use aio_set_fd_handler(qemu_get_current_aio_context(), ...).
 * Any thread.
 */
AIOLOOP_API void qemu_set_fd_handler(int fd, IOHandler *fd_read,
                                     IOHandler *fd_write, void *opaque);

/**
 * main_loop_wait - one iteration of the main loop: aio_poll() on the
 * current AsyncContext's context (the main context unless a level is
 * pushed), blocking unless @nonblocking. While a level is pushed, only
 * that level's callbacks run; the main context's are held.
 * Main thread only.
 */
AIOLOOP_API void main_loop_wait(int nonblocking);

/**
 * qemu_bh_poll - run the bottom halves of the current AsyncContext that
 * are scheduled now (aio_bh_poll() on its context; the main context
 * unless a level is pushed). A BH scheduled by one of them runs in the
 * next call.
 * Returns: nonzero if a BH other than an idle one ran (or a library BH
 * ran a completion callback), else 0.
 * Main thread only.
 */
AIOLOOP_API int qemu_bh_poll(void);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_MAIN_LOOP_H */
