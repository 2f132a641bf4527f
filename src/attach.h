/*
 * attach.h - what a client of the loop core hangs on an AioContext.
 *
 * The core (async.c, aio-posix.c) knows its clients - the thread pool,
 * the GSource, the block I/O states - only through the two mechanisms
 * of this header; it includes none of their headers and calls none of
 * their functions by name:
 *
 *   attachments  an object that dies or lets go of the context when the
 *                context's last reference goes (AioAttachment);
 *   sleep hooks  a backend that arms its wake-up source only while the
 *                loop may sleep (AioSleepHook).
 *
 * Not installed; not part of the API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ATTACH_H
#define AIOLOOP_ATTACH_H

#include <stdbool.h>
#include <aioloop/queue.h>
#include "aio-internal.h"

/* ------------------------------------------------------------------ */
/* Attachments                                                          */

/*
 * An object attached to a context. When the context's last reference
 * goes (aio_context_unref()), the core calls each attachment's
 * context_ends() while everything of the context still works (BHs,
 * handlers, timers, aio_poll()), in increasing @order, before it frees
 * anything of its own. context_ends() must remove the attachment
 * (aioloop__attachment_remove()); it may attach others, which are called
 * in their turn (the list is kept sorted by @order, so an attachment
 * added meanwhile with a lower @order than the current one runs next).
 *
 * The order constants below are the contract between clients: each
 * phase may still use what the later phases provide.
 */
enum {
    /*
     * Objects that belong to someone else and only use the context:
     * a block I/O state (its owner frees it with *_cleanup()). Its
     * context_ends() completes every request of the object (callbacks
     * run, from aio_poll() of the dying context) and detaches it; the
     * object itself stays its owner's. Such requests may run on the
     * context's thread pool, hence first.
     */
    AIO_ATTACH_ORDER_USERS = 100,
    /*
     * Services the context owns and offers to the phases above: its own
     * thread pool. Its context_ends() cancels queued jobs, waits for the
     * running ones and runs every pending completion callback, which
     * needs the pool's completion BH and the context's timers: both are
     * freed only after every attachment is gone.
     */
    AIO_ATTACH_ORDER_SERVICES = 200,
    /*
     * The context's presence in outer loops: its GSource. Last, so that
     * nothing of the phases above runs on a context GLib no longer
     * dispatches.
     */
    AIO_ATTACH_ORDER_OUTER = 300,
};

typedef struct AioAttachment {
    void (*context_ends)(struct AioAttachment *a, AioContext *ctx);
    int order;                  /* AIO_ATTACH_ORDER_* */
    /* For aioloop__attachment_find(): what the attachment is to its
     * client (an address of the client's), or NULL. */
    const void *key;
    /* Debug builds print "<what> still attached when its AioContext was
     * freed" before context_ends() when @what is set: for objects whose
     * owner should have detached them (block I/O states). NULL for the
     * context's own services, which die with it by design. */
    const char *what;
    QLIST_ENTRY(AioAttachment) next;    /* ctx->attachments, attach_lock */
} AioAttachment;

/* Attach @a (its fields set) to @ctx, in @a->order. Any thread holding
 * a reference to @ctx. */
void aioloop__attachment_add(AioContext *ctx, AioAttachment *a);

/* Detach @a from @ctx (it must be attached to @ctx). Any thread holding
 * a reference to @ctx; context_ends() of @a itself. */
void aioloop__attachment_remove(AioContext *ctx, AioAttachment *a);

/* The attachment of @ctx whose key is @key, or NULL. It stays attached
 * only as long as its client keeps it so: the caller serialises with
 * the client's own add and remove. Any thread. */
AioAttachment *aioloop__attachment_find(AioContext *ctx, const void *key);

/* ------------------------------------------------------------------ */
/* Sleep hooks                                                          */

/*
 * For a backend whose completions can signal an fd the loop watches
 * (io_uring's registered eventfd), but whose signal costs the
 * signalling thread a wake-up and the loop a spurious iteration when
 * the loop is awake anyway. The loop calls prepare() each time it is
 * about to wait on its fd monitor (blocking or not, aio_poll() or the
 * GSource) and finish() once the wait is over:
 *
 *   prepare(opaque)  arm the signal, then (after a full barrier) look
 *                    whether work is already waiting that no signal
 *                    announced; if so, schedule a bottom half that
 *                    handles it (aioloop__bh_schedule_local(): the loop
 *                    looks at its BHs after the hooks, before it
 *                    sleeps), so that the wait does not sleep.
 *   finish(opaque)   disarm the signal: the loop is awake and will see
 *                    the work through its own calls.
 *
 * Both run in the loop thread with the context held, between
 * walk_begin/walk_end or in the GSource callbacks. add/remove: the
 * context's holder (attach/detach of a backend).
 */
typedef struct AioSleepHook {
    void (*prepare)(void *opaque);
    void (*finish)(void *opaque);
    void *opaque;
    QLIST_ENTRY(AioSleepHook) next;
} AioSleepHook;

static inline void aioloop__sleep_hook_add(AioContext *ctx,
                                           AioSleepHook *hook)
{
    QLIST_INSERT_HEAD(&ctx->sleep_hooks, hook, next);
}

static inline void aioloop__sleep_hook_remove(AioSleepHook *hook)
{
    QLIST_REMOVE(hook, next);
}

static inline void aioloop__sleep_hooks_prepare(AioContext *ctx)
{
    AioSleepHook *h;

    QLIST_FOREACH(h, &ctx->sleep_hooks, next) {
        h->prepare(h->opaque);
    }
}

static inline void aioloop__sleep_hooks_finish(AioContext *ctx)
{
    AioSleepHook *h;

    QLIST_FOREACH(h, &ctx->sleep_hooks, next) {
        h->finish(h->opaque);
    }
}

#endif /* AIOLOOP_ATTACH_H */
