/*
 * aioloop/main-loop.h - the process-wide main context.
 *
 * A program that wants QEMU's main-loop API gets one AioContext that every
 * thread can reach: qemu_init_main_loop() creates it, main_loop_wait()
 * turns it, and qemu_bh_new() / qemu_set_fd_handler() hang work on it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_MAIN_LOOP_H
#define AIOLOOP_MAIN_LOOP_H

#include <aioloop/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * qemu_init_main_loop - create the main AioContext.
 * Returns: 0 on success (also when already initialised), -errno with
 * @errp set on failure.
 * Any thread (call once, before other threads use the main loop).
 */
AIOLOOP_API int qemu_init_main_loop(Error **errp);

/**
 * qemu_cleanup_main_loop - free the main context (aioloop extension).
 * After it, qemu_get_aio_context() returns NULL until the next
 * qemu_init_main_loop(). No thread may be using the main loop.
 * Main thread only.
 */
AIOLOOP_API void qemu_cleanup_main_loop(void);

/**
 * qemu_get_aio_context - the main AioContext, or NULL before
 * qemu_init_main_loop(). Any thread.
 */
AIOLOOP_API AioContext *qemu_get_aio_context(void);

/**
 * qemu_get_current_aio_context - the context of the calling IOThread, or
 * the main context when called from any other thread. Any thread.
 */
AIOLOOP_API AioContext *qemu_get_current_aio_context(void);

/**
 * qemu_bh_new_full - a bottom half on the main context (see aio_bh_new()).
 * qemu_bh_new(cb, opaque) names it after @cb. The main loop must be
 * initialised. Any thread.
 */
AIOLOOP_API QEMUBH *qemu_bh_new_full(QEMUBHFunc *cb, void *opaque,
                                     const char *name);
/** qemu_bh_new - qemu_bh_new_full() named after @cb. Any thread. */
#define qemu_bh_new(cb, opaque) qemu_bh_new_full((cb), (opaque), #cb)

/**
 * qemu_set_fd_handler - aio_set_fd_handler() on the main context, not
 * external. Any thread.
 */
AIOLOOP_API void qemu_set_fd_handler(int fd, IOHandler *fd_read,
                                     IOHandler *fd_write, void *opaque);

/**
 * main_loop_wait - one iteration of the main loop: aio_poll() on the main
 * context, blocking unless @nonblocking.
 * Main thread only.
 */
AIOLOOP_API void main_loop_wait(int nonblocking);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_MAIN_LOOP_H */
