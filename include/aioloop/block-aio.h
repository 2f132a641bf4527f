/*
 * aioloop/block-aio.h - asynchronous request control blocks (AIOCBs).
 *
 * Every asynchronous request of the thread pool and the block backends is
 * a BlockAIOCB: a reference-counted header, embedded at the start of a
 * larger, backend-specific structure of AIOCBInfo.aiocb_size bytes. The
 * completion callback receives the request's result as @ret (0 or a
 * positive count on success, -errno on failure, -ECANCELED when it was
 * cancelled before it started).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_BLOCK_AIO_H
#define AIOLOOP_BLOCK_AIO_H

#include <stddef.h>
#include <aioloop/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BlockAIOCB BlockAIOCB;
/* A request's completion callback: opaque as given at submission, ret the
 * result (see above). Runs once, from aio_poll() of the request's
 * context. */
typedef void BlockCompletionFunc(void *opaque, int ret);

/* What a kind of request (a backend) does with its AIOCBs: shared by all
 * the requests of that kind, passed to qemu_aio_get(). */
typedef struct AIOCBInfo {
    /* Request cancellation; the request still completes exactly once
     * (with -ECANCELED if it had not started). May be NULL. */
    void (*cancel_async)(BlockAIOCB *acb);
    /* The context whose aio_poll() completes the request. */
    AioContext *(*get_aio_context)(BlockAIOCB *acb);
    size_t aiocb_size;          /* bytes qemu_aio_get() allocates */
} AIOCBInfo;

/* The header of every asynchronous request; backends embed it first in
 * their own request structure. */
struct BlockAIOCB {
    const AIOCBInfo *aiocb_info;  /* the request's kind */
    BlockDriverState *bs;       /* as given at submission; never used */
    BlockCompletionFunc *cb;    /* the completion callback, may be NULL */
    void *opaque;               /* the callback's argument */
    int refcnt;                 /* atomic */
};

/**
 * qemu_aio_get - allocate an AIOCB of @aiocb_info->aiocb_size bytes
 * (at least sizeof(BlockAIOCB)), zero-filled, with one reference, and
 * fill its header. Returns: the AIOCB (allocation failure aborts).
 * Any thread.
 */
AIOLOOP_API void *qemu_aio_get(const AIOCBInfo *aiocb_info,
                               BlockDriverState *bs,
                               BlockCompletionFunc *cb, void *opaque);

/** qemu_aio_ref - take a reference to the AIOCB @p. Any thread. */
AIOLOOP_API void qemu_aio_ref(void *p);

/** qemu_aio_unref - drop a reference; the last one frees @p. Any thread. */
AIOLOOP_API void qemu_aio_unref(void *p);

/**
 * bdrv_aio_cancel_async - ask for @acb to be cancelled and return at once.
 * A request no worker or device has started completes with -ECANCELED
 * without running; one already running completes normally; either way its
 * callback runs exactly once, later, from its context's aio_poll().
 * Any thread that may poll the request's context.
 */
AIOLOOP_API void bdrv_aio_cancel_async(BlockAIOCB *acb);

/**
 * bdrv_aio_cancel - cancel @acb and wait until its callback has run, by
 * calling aio_poll() on the request's context (get_aio_context, else the
 * main context), i.e. until only the caller's references remain: the
 * caller must not hold extra references of its own (qemu_aio_ref), or it
 * waits forever; use bdrv_aio_cancel_async() then. Do not call it from
 * inside a callback of a context that another thread is polling at the
 * same time.
 * Called from inside @acb's own completion callback (or from anything
 * that callback calls in its thread, nested loops included), it returns
 * at once and does nothing: the request has completed, with the result
 * the callback is handling (the thread pool and the io_uring, Linux AIO
 * and threads engines alike). QEMU would wait for ever there.
 * The request's context thread, or any thread allowed to poll it.
 */
AIOLOOP_API void bdrv_aio_cancel(BlockAIOCB *acb);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_BLOCK_AIO_H */
