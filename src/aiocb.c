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
#include "util/misuse.h"

void *qemu_aio_get(const AIOCBInfo *aiocb_info, BlockDriverState *bs,
                   BlockCompletionFunc *cb, void *opaque)
{
    size_t size;
    BlockAIOCB *acb;

    if (unlikely(!aiocb_info)) {
        aioloop__misuse("qemu_aio_get", "NULL AIOCBInfo (callback %p)",
                        AIOLOOP_FN_PTR(cb));
    }
    size = aiocb_info->aiocb_size;
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

/*
 * A count that is already 0 (or below) means the request was never
 * allocated by qemu_aio_get() (a zero-filled or embedded header) or has
 * been released: unref would free memory that is not the library's, or
 * free it twice. Every build checks; once the memory is really freed
 * and reused, nothing can be checked (ASan reports the use after free).
 */
static AIOLOOP_NORETURN void aiocb_no_reference(const char *func,
                                                BlockAIOCB *acb, int old)
{
    aioloop__misuse(func, "request %p has no reference left (refcnt %d): "
                    "released already, or not from qemu_aio_get()",
                    (void *)acb, old);
}

void qemu_aio_ref(void *p)
{
    BlockAIOCB *acb = p;
    int old = qatomic_fetch_inc(&acb->refcnt);

    if (unlikely(old <= 0)) {
        aiocb_no_reference("qemu_aio_ref", acb, old);
    }
}

void qemu_aio_unref(void *p)
{
    BlockAIOCB *acb = p;
    int old = qatomic_fetch_dec(&acb->refcnt);

    if (unlikely(old <= 0)) {
        aiocb_no_reference("qemu_aio_unref", acb, old);
    }
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
