/*
 * thread-aio.c - the thread backend: every request runs as a job of the
 * attached context's thread pool (preadv/pwritev/fdatasync in a worker,
 * aioloop__raw_worker()). It has no kernel queue, so its depth is
 * unlimited and plugging only holds requests until the last unplug.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <limits.h>
#include <stdlib.h>

#include "raw-aio-int.h"
#include "../util/alloc.h"

struct ThreadAioState {
    RawQueue q;
};

static const AIOCBInfo taio_aiocb_info = RAW_AIOCB_INFO(sizeof(RawRequest));

/* Hands every queued request to the pool: nothing to refuse. */
static int taio_flush(RawQueue *q)
{
    RawRequest *r;

    while ((r = aioloop__raw_pop(q))) {
        aioloop__raw_submit_to_pool(q, r);
    }
    return 0;
}

static void taio_detach_queue(RawQueue *q, AioContext *ctx)
{
    taio_detach_aio_context(container_of(q, ThreadAioState, q), ctx);
}

ThreadAioState *aioloop__taio_try_init(void)
{
    ThreadAioState *s = aioloop__calloc(1, sizeof(*s));

    if (!s) {
        return NULL;
    }
    aioloop__raw_queue_init(&s->q, taio_flush, NULL, UINT_MAX, false,
                            taio_detach_queue, "a thread I/O state");
    return s;
}

ThreadAioState *taio_init(void)
{
    ThreadAioState *s = aioloop__taio_try_init();

    if (!s) {
        aioloop__oom("creating a thread-backend state");
    }
    return s;
}

void taio_cleanup(ThreadAioState *s)
{
    if (s) {
        aioloop__raw_queue_destroy(&s->q);
        free(s);
    }
}

void taio_attach_aio_context(ThreadAioState *s, AioContext *new_context)
{
    aioloop__raw_queue_attach(&s->q, new_context);
}

void taio_detach_aio_context(ThreadAioState *s, AioContext *old_context)
{
    if (!s->q.ctx) {
        return;     /* detached already, e.g. by its context's last unref */
    }
    aioloop__raw_queue_detach(&s->q, old_context);
}

BlockAIOCB *aioloop__taio_submit_bytes(BlockDriverState *bs, ThreadAioState *s,
                                       int fd, uint64_t offset,
                                       QEMUIOVector *qiov, int type,
                                       BlockCompletionFunc *cb, void *opaque)
{
    RawRequest *r = aioloop__raw_request_new(&taio_aiocb_info, &s->q, bs, fd,
                                             offset, qiov, type, cb, opaque);

    if (r) {
        aioloop__raw_enqueue(&s->q, r);
    }
    return r ? &r->common : NULL;
}

BlockAIOCB *taio_submit(BlockDriverState *bs, ThreadAioState *s, int fd,
                        int64_t sector_num, QEMUIOVector *qiov, int nb_sectors,
                        BlockCompletionFunc *cb, void *opaque, int type)
{
    uint64_t offset = aioloop__raw_sector_offset(sector_num, qiov, nb_sectors,
                                                 type);

    return aioloop__taio_submit_bytes(bs, s, fd, offset, qiov, type, cb,
                                      opaque);
}

int coroutine_fn taio_co_submit(BlockDriverState *bs, ThreadAioState *s,
                                int fd, uint64_t offset, QEMUIOVector *qiov,
                                int type)
{
    RawRequest r;

    (void)bs;
    if (!aioloop__raw_request_init(&r, &s->q, fd, offset, qiov, type)) {
        return -EINVAL;
    }
    r.co = qemu_coroutine_self();
    aioloop__raw_enqueue(&s->q, &r);
    return aioloop__raw_co_wait(&r);
}

void taio_io_plug(BlockDriverState *bs, ThreadAioState *s)
{
    (void)bs;
    aioloop__raw_plug(&s->q);
}

void taio_io_unplug(BlockDriverState *bs, ThreadAioState *s)
{
    (void)bs;
    aioloop__raw_unplug(&s->q);
}
