/*
 * main-loop.c - the process-wide main AioContext.
 *
 * QEMU programs reach one main loop from everywhere: qemu_bh_new(),
 * qemu_set_fd_handler() and main_loop_wait() all act on the context that
 * qemu_init_main_loop() created. The pointer is published with a seq_cst
 * store so threads started afterwards see a fully built context.
 *
 * On the main-loop thread, qemu_bh_new() and main_loop_wait() act on the
 * current AsyncContext instead (the top of the stack of async-context.c,
 * which is the main context unless a level is pushed);
 * qemu_set_fd_handler() always uses the main context.
 *
 * GLib: when the library is built with GLib, qemu_init_main_loop()
 * attaches the main context's GSource to GLib's default main context, as
 * QEMU's does, so that g_main_context_iteration(NULL, ...) and a GMainLoop
 * on the default context run the main loop's BHs, handlers and timers.
 * The context owns its source: freeing the context (qemu_cleanup_main_loop)
 * destroys it, which detaches it from GLib.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <pthread.h>

#include <aioloop/main-loop.h>
#include "main-loop-internal.h"
#if AIOLOOP_HAVE_GLIB
#include <glib.h>
#endif
#include "util/misuse.h"

/* The main loop must exist for @func to have a context to act on. */
static AioContext *main_ctx_or_die(const char *func, AioContext *ctx)
{
    if (unlikely(!ctx)) {
        aioloop__misuse(func, "the main loop is not initialised (call "
                        "qemu_init_main_loop() first)");
    }
    return ctx;
}

static AioContext *main_ctx;        /* atomic */
/* Bumped by every creation and clean-up of the main loop (atomic); the
 * creating thread keeps the value in its own copy (main-loop-internal.h). */
unsigned aioloop__main_loop_gen;
__thread unsigned aioloop__main_loop_gen_tls;
__thread AioContext *aioloop__main_loop_ctx_tls;

int qemu_init_main_loop(Error **errp)
{
    AioContext *ctx;

    if (qatomic_mb_read(&main_ctx)) {
        return 0;
    }
    ctx = aio_context_new(errp);
    if (!ctx) {
        return errno > 0 ? -errno : -ENOMEM;    /* aio_context_new's errno */
    }
    if (qatomic_cmpxchg(&main_ctx, NULL, ctx) != NULL) {
        aio_context_unref(ctx);     /* lost a race with another init */
        return 0;
    }
    aioloop__main_loop_ctx_tls = ctx;
    aioloop__main_loop_gen_tls = qatomic_fetch_inc(&aioloop__main_loop_gen) + 1;
#if AIOLOOP_HAVE_GLIB
    {
        GSource *src = aio_get_g_source(ctx);

        g_source_attach(src, NULL);     /* GLib's default main context */
        g_source_unref(src);
    }
#endif
    return 0;
}

void qemu_cleanup_main_loop(void)
{
    AioContext *ctx;

    /* Another thread would free the contexts under the main-loop
     * thread, which keeps polling them. Once cleaned up, nothing is
     * left: a second call does nothing. */
    if (unlikely(qatomic_mb_read(&main_ctx) && !aioloop__in_main_thread())) {
        aioloop__misuse("qemu_cleanup_main_loop", "called from a thread "
                        "other than the main-loop thread (the one that "
                        "called qemu_init_main_loop())");
    }
    aioloop__async_context_cleanup();       /* the stack's own contexts */
    ctx = qatomic_xchg(&main_ctx, NULL);

    if (ctx) {
        qatomic_inc(&aioloop__main_loop_gen);
        aio_context_unref(ctx);
    }
}

AioContext *qemu_get_aio_context(void)
{
    return qatomic_mb_read(&main_ctx);
}

QEMUBH *qemu_bh_new_full(QEMUBHFunc *cb, void *opaque, const char *name)
{
    AioContext *ctx = main_ctx_or_die("qemu_bh_new",
                                      aioloop__main_current_ctx());

    return aio_bh_new_full(ctx, cb, opaque, name);
}

void qemu_set_fd_handler(int fd, IOHandler *fd_read, IOHandler *fd_write,
                         void *opaque)
{
    AioContext *ctx = main_ctx_or_die("qemu_set_fd_handler",
                                      qemu_get_aio_context());

    aio_set_fd_handler(ctx, fd, false, fd_read, fd_write, opaque);
}

void main_loop_wait(int nonblocking)
{
    AioContext *ctx = main_ctx_or_die("main_loop_wait",
                                      aioloop__main_current_ctx());

    aio_poll(ctx, !nonblocking);
}
