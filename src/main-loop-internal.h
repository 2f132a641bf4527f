/*
 * main-loop-internal.h - which loop the calling thread runs, beyond the
 * core's own aio_poll() (aioloop__poll_ctx() in aio-internal.h): the
 * thread's IOThread (iothread.c), whether it is the main-loop thread
 * (main-loop.c), and the main loop's AsyncContext stack
 * (async-context.c). Read by coroutine.c on every qemu_coroutine_enter()
 * and by the QEMU-named "current context" calls. The loop core
 * (async.c, aio-posix.c) does not include it.
 *
 * Not installed; not part of the API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_MAIN_LOOP_INTERNAL_H
#define AIOLOOP_MAIN_LOOP_INTERNAL_H

#include "aio-internal.h"

/*
 * Each answer is a thread-local load or two, inline:
 *  aioloop__iothread_ctx(): the thread's home context: an IOThread's,
 *    in that IOThread, or one set with qemu_set_current_aio_context();
 *    else NULL (iothread.c);
 *  aioloop__in_main_thread(): whether this is the thread that created
 *    the main loop, which is still there (main-loop.c). That thread has
 *    aioloop__main_loop_gen_tls == aioloop__main_loop_gen (atomic; bumped
 *    by every creation and clean-up) and the context in
 *    aioloop__main_loop_ctx_tls; other threads never match.
 * Never read across a coroutine switch (a coroutine may move threads).
 * AIOLOOP_TLS_FAST: see aio-internal.h.
 */
extern __thread AioContext *aioloop__iothread_ctx_tls AIOLOOP_TLS_FAST;
extern __thread unsigned aioloop__main_loop_gen_tls AIOLOOP_TLS_FAST;
extern __thread AioContext *aioloop__main_loop_ctx_tls AIOLOOP_TLS_FAST;
extern unsigned aioloop__main_loop_gen __attribute__((visibility("hidden")));

static inline AioContext *aioloop__iothread_ctx(void)
{
    return aioloop__iothread_ctx_tls;
}

static inline bool aioloop__in_main_thread(void)
{
    return aioloop__main_loop_gen_tls == qatomic_read(&aioloop__main_loop_gen)
           && aioloop__main_loop_ctx_tls;
}

/* async-context.c: the AsyncContext stack of the main-loop thread.
 * aioloop__async_depth is its depth (atomic; written by that thread only).
 * aioloop__main_current_ctx(): the top of the stack on the main-loop
 * thread, else the main context (NULL before qemu_init_main_loop()).
 * aioloop__async_context_adjust(ctx): on the main-loop thread while a
 * level is pushed, maps "no context" and every context of the stack below
 * the top to the top; anything else is returned unchanged.
 * aioloop__async_context_cleanup(): qemu_cleanup_main_loop()'s part:
 * aborts while a level is pushed, else lets the stack go with the main
 * context it hangs on (an attachment: the levels' contexts are freed by
 * the main context's last unref). */
extern int aioloop__async_depth __attribute__((visibility("hidden")));
AioContext *aioloop__main_current_ctx(void);
AioContext *aioloop__async_context_adjust_slow(AioContext *ctx);
void aioloop__async_context_cleanup(void);
static inline AioContext *aioloop__async_context_adjust(AioContext *ctx)
{
    if (likely(qatomic_read(&aioloop__async_depth) == 0)) {
        return ctx;
    }
    return aioloop__async_context_adjust_slow(ctx);
}

#endif /* AIOLOOP_MAIN_LOOP_INTERNAL_H */
