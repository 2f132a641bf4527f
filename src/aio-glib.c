/*
 * aio-glib.c - running an AioContext from a GLib main loop.
 *
 * aio_get_g_source() wraps the context in a GSource. The GSource follows
 * the same notify protocol as aio_poll(): prepare() sets bit 0 of
 * notify_me (seq_cst, pairs with aio_notify()) before it computes the
 * timeout, and check() clears it, so an aio_notify() from any thread
 * either writes the context's eventfd, which GLib is polling, or is seen
 * by prepare() as notified == true (timeout 0).
 *
 * What GLib polls: with the epoll monitor, just the epoll descriptor (it
 * becomes readable when any registered fd is ready, so GLib's own poll
 * stays O(1)); with the ppoll monitor, every handler's fd, re-synced from
 * the handler set whenever its generation changes.
 *
 * Lifetime: the context owns its one GSource and hands out references to
 * it. The source is attached to the context (attach.h, last of all its
 * attachments: AIO_ATTACH_ORDER_OUTER); when the context is freed the
 * attachment destroys the source and clears the source's back pointer,
 * so a caller still holding a reference keeps valid GSource memory whose
 * callbacks do nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include <glib.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "aio-internal.h"
#include "attach.h"
#include "fdmon/fdmon.h"

typedef struct AioGSource {
    GSource source;
    AioContext *ctx;            /* NULL once the context is gone */
    AioAttachment attachment;   /* on ctx while it lives; the context's
                                 * own reference to the source */
    gpointer epoll_tag;
    gpointer *fd_tags;
    int n_fd_tags;
    unsigned gen;
    bool synced;
} AioGSource;

static void drop_fd_tags(AioGSource *src)
{
    int i;

    for (i = 0; i < src->n_fd_tags; i++) {
        g_source_remove_unix_fd(&src->source, src->fd_tags[i]);
    }
    g_free(src->fd_tags);
    src->fd_tags = NULL;
    src->n_fd_tags = 0;
}

/* Make GLib poll what the context's fd monitor needs. */
static void sync_fds(AioGSource *src)
{
    AioContext *ctx = src->ctx;
    const FDMonOps *ops = qatomic_mb_read(&ctx->fdmon_ops);
    unsigned gen = qatomic_mb_read(&ctx->handler_gen);
    AioHandler *node;
    int fd = ops->get_poll_fd(ctx);
    int n = 0;

    if (fd >= 0) {
        if (!src->epoll_tag) {
            drop_fd_tags(src);
            src->epoll_tag = g_source_add_unix_fd(&src->source, fd, G_IO_IN);
        }
        return;
    }
    if (src->epoll_tag) {
        g_source_remove_unix_fd(&src->source, src->epoll_tag);
        src->epoll_tag = NULL;
        src->synced = false;
    }
    if (src->synced && src->gen == gen) {
        return;
    }
    drop_fd_tags(src);
    /* list_lock keeps nodes from being freed while we read them. */
    qemu_mutex_lock(&ctx->list_lock);
    for (node = ctx->handlers; node; node = node->next) {
        n++;
    }
    src->fd_tags = g_new0(gpointer, n ? n : 1);
    for (node = ctx->handlers; node; node = node->next) {
        int events = aioloop__handler_events(ctx, node);
        GIOCondition cond = (events & POLLIN ? G_IO_IN : 0) |
                            (events & POLLOUT ? G_IO_OUT : 0);

        /* A parked handler (closed while registered, see fdmon-poll.c)
         * would make GLib's poll report G_IO_NVAL for ever. */
        if (cond && !qatomic_read(&node->fd_closed)) {
            src->fd_tags[src->n_fd_tags++] =
                g_source_add_unix_fd(&src->source, node->fd, cond);
        }
    }
    src->gen = qatomic_mb_read(&ctx->handler_gen);
    src->synced = true;
    qemu_mutex_unlock(&ctx->list_lock);
}

static gboolean aio_ctx_prepare(GSource *source, gint *timeout)
{
    AioGSource *src = (AioGSource *)source;
    AioContext *ctx = src->ctx;
    int64_t t;

    if (!ctx) {
        *timeout = -1;
        return FALSE;
    }
    /* Pairs with aio_notify(): see async.c. */
    qatomic_or(&ctx->notify_me, 1);
    sync_fds(src);
    aioloop__sleep_hooks_prepare(ctx);
    t = aio_compute_timeout(ctx);
    if (qatomic_mb_read(&ctx->notified)) {
        t = 0;
    }
    if (t < 0) {
        *timeout = -1;
    } else {
        int64_t ms = (t + 999999) / 1000000;    /* never early */
        *timeout = ms > INT_MAX ? INT_MAX : (gint)ms;
    }
    return t == 0;
}

static gboolean aio_ctx_check(GSource *source)
{
    AioGSource *src = (AioGSource *)source;
    AioContext *ctx = src->ctx;
    int i;

    if (!ctx) {
        return FALSE;
    }
    qatomic_and(&ctx->notify_me, ~1u);
    aioloop__sleep_hooks_finish(ctx);
    if (src->epoll_tag &&
        g_source_query_unix_fd(source, src->epoll_tag)) {
        return TRUE;
    }
    for (i = 0; i < src->n_fd_tags; i++) {
        if (g_source_query_unix_fd(source, src->fd_tags[i])) {
            return TRUE;
        }
    }
    return qatomic_mb_read(&ctx->notified) || aio_compute_timeout(ctx) == 0;
}

static gboolean aio_ctx_dispatch(GSource *source, GSourceFunc callback,
                                 gpointer user_data)
{
    AioGSource *src = (AioGSource *)source;

    (void)callback;
    (void)user_data;
    if (src->ctx) {
        aio_dispatch(src->ctx);
    }
    return G_SOURCE_CONTINUE;
}

static void aio_ctx_finalize(GSource *source)
{
    AioGSource *src = (AioGSource *)source;

    g_free(src->fd_tags);
    src->fd_tags = NULL;
}

static GSourceFuncs aio_source_funcs = {
    .prepare = aio_ctx_prepare,
    .check = aio_ctx_check,
    .dispatch = aio_ctx_dispatch,
    .finalize = aio_ctx_finalize,
};

/* The context's last unref: destroy its source (which detaches it from
 * GLib) and drop the context's reference. */
static void gsource_context_ends(AioAttachment *a, AioContext *ctx)
{
    AioGSource *src = container_of(a, AioGSource, attachment);

    aioloop__attachment_remove(ctx, a);
    src->ctx = NULL;
    g_source_destroy(&src->source);
    g_source_unref(&src->source);
}

/* Serialises the look-up and creation of a context's source (rare: a
 * program asks once per context). */
static pthread_mutex_t gsource_lock = PTHREAD_MUTEX_INITIALIZER;

GSource *aio_get_g_source(AioContext *ctx)
{
    AioAttachment *a;
    AioGSource *src;

    pthread_mutex_lock(&gsource_lock);
    a = aioloop__attachment_find(ctx, &aio_source_funcs);
    if (a) {
        src = container_of(a, AioGSource, attachment);
    } else {
        src = (AioGSource *)g_source_new(&aio_source_funcs, sizeof(*src));
        src->ctx = ctx;
        g_source_set_name(&src->source, "aioloop AioContext");
        /* The context's own reference (g_source_new's). */
        src->attachment = (AioAttachment) {
            .context_ends = gsource_context_ends,
            .order = AIO_ATTACH_ORDER_OUTER,
            .key = &aio_source_funcs,
        };
        aioloop__attachment_add(ctx, &src->attachment);
    }
    g_source_ref(&src->source);     /* the caller's */
    pthread_mutex_unlock(&gsource_lock);
    return &src->source;
}
