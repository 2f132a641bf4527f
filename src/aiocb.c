/*
 * aiocb.c - reference-counted asynchronous request headers.
 *
 * A BlockAIOCB starts every request structure; the backend's AIOCBInfo
 * says how big the whole structure is and how to cancel it. References
 * are atomic so that a request can be held by the submitting thread and
 * completed by a context running in an IOThread.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/block-aio.h>
#include <aioloop/main-loop.h>
#include "aio-internal.h"
#include "util/alloc.h"

void *qemu_aio_get(const AIOCBInfo *aiocb_info, BlockDriverState *bs,
                   BlockCompletionFunc *cb, void *opaque)
{
    size_t size = aiocb_info->aiocb_size;
    BlockAIOCB *acb;

    if (size < sizeof(BlockAIOCB)) {
        size = sizeof(BlockAIOCB);
    }
    acb = aioloop__calloc(1, size);
    if (!acb) {
        fprintf(stderr, "aioloop: out of memory allocating a %zu-byte "
                "request\n", size);
        abort();
    }
    acb->aiocb_info = aiocb_info;
    acb->bs = bs;
    acb->cb = cb;
    acb->opaque = opaque;
    acb->refcnt = 1;
    return acb;
}

void qemu_aio_ref(void *p)
{
    BlockAIOCB *acb = p;

    assert(qatomic_read(&acb->refcnt) > 0);
    qatomic_inc(&acb->refcnt);
}

void qemu_aio_unref(void *p)
{
    BlockAIOCB *acb = p;
    int old = qatomic_fetch_dec(&acb->refcnt);

    assert(old > 0);
    if (old == 1) {
        free(acb);
    }
}

void bdrv_aio_cancel_async(BlockAIOCB *acb)
{
    if (acb->aiocb_info->cancel_async) {
        acb->aiocb_info->cancel_async(acb);
    }
}

void bdrv_aio_cancel(BlockAIOCB *acb)
{
    AioContext *ctx = acb->aiocb_info->get_aio_context
                      ? acb->aiocb_info->get_aio_context(acb)
                      : qemu_get_aio_context();

    assert(ctx);
    qemu_aio_ref(acb);
    bdrv_aio_cancel_async(acb);
    /* The completion drops the request's own reference. */
    while (qatomic_read(&acb->refcnt) > 1) {
        aio_poll(ctx, true);
    }
    qemu_aio_unref(acb);
}
