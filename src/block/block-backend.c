/*
 * block-backend.c - the public names of block I/O, each a line or two
 * over the shared request queue (raw-request.c):
 *
 *   - AioBlockBackend (aio_block_*): one interface over the engines,
 *     chosen at run time (AIO_ENGINE_AUTO takes the first the kernel
 *     accepts, in the order of 'engines' below);
 *   - QEMU's names: laio_* (Linux AIO), luring_* (io_uring), taio_*
 *     (threads). Their state types are the engine's state, whose first
 *     member is its RawQueue: a state pointer is a queue pointer.
 *   - the tables of the engines that were not built: their open() fails
 *     with the reason, so that the engine is refused at run time as a
 *     kernel without it would be.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/config.h>
#include "raw-aio-int.h"
#include "../util/alloc.h"

/* ---- engines that were not built ------------------------------------------ */

#if !AIOLOOP_HAVE_IO_URING
static int uring_missing_open(RawQueue *q, Error **errp)
{
    error_setg_errno(errp, ENOSYS, "io_uring is not available: aioloop was "
                     "built without liburing (apt-get install liburing-dev "
                     "and rebuild)");
    return -ENOSYS;
}

const RawEngineOps aioloop__io_uring_ops = {
    .name = "io_uring",
    .what = "an io_uring state",
    .engine = AIO_ENGINE_IO_URING,
    .state_size = sizeof(RawQueue),
    .open = uring_missing_open,
};
#endif

#if !AIOLOOP_HAVE_LINUX_AIO
static int laio_missing_open(RawQueue *q, Error **errp)
{
    error_setg_errno(errp, ENOSYS, "Linux AIO is not available: aioloop was "
                     "built without <linux/aio_abi.h> (apt-get install "
                     "linux-libc-dev and rebuild)");
    return -ENOSYS;
}

const RawEngineOps aioloop__linux_aio_ops = {
    .name = "linux-aio",
    .what = "a Linux AIO state",
    .engine = AIO_ENGINE_LINUX_AIO,
    .state_size = sizeof(RawQueue),
    .open = laio_missing_open,
};
#endif

/* ---- AioBlockBackend ------------------------------------------------------ */

/* The fallback order of AIO_ENGINE_AUTO. */
static const RawEngineOps *const engines[] = {
    &aioloop__io_uring_ops,
    &aioloop__linux_aio_ops,
    &aioloop__thread_ops,
};

/* The front end's handle on one engine state (the queue knows its
 * engine's table). */
struct AioBlockBackend {
    RawQueue *q;
};

const char *aio_block_engine_name(AioBlockEngine engine)
{
    if (engine == AIO_ENGINE_AUTO) {
        return "auto";
    }
    for (unsigned i = 0; i < ARRAY_SIZE(engines); i++) {
        if (engines[i]->engine == engine) {
            return engines[i]->name;
        }
    }
    return "?";
}

int aio_block_engine_parse(const char *name)
{
    static const struct { const char *name; AioBlockEngine engine; } alias[] = {
        { "auto", AIO_ENGINE_AUTO },
        { "uring", AIO_ENGINE_IO_URING },
        { "libaio", AIO_ENGINE_LINUX_AIO },
        { "native", AIO_ENGINE_LINUX_AIO },
        { "thread", AIO_ENGINE_THREADS },
    };

    if (!name) {
        return -1;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(engines); i++) {
        if (!strcmp(name, engines[i]->name)) {
            return (int)engines[i]->engine;
        }
    }
    for (unsigned i = 0; i < ARRAY_SIZE(alias); i++) {
        if (!strcmp(name, alias[i].name)) {
            return (int)alias[i].engine;
        }
    }
    return -1;
}

AioBlockBackend *aio_block_backend_new(AioBlockEngine engine, Error **errp)
{
    bool automatic = engine == AIO_ENGINE_AUTO;
    AioBlockBackend *b = aioloop__calloc(1, sizeof(*b));
    Error *err = NULL;

    if (!b) {
        error_setg_errno(errp, ENOMEM, "block backend");
        return NULL;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(engines) && !b->q; i++) {
        if (automatic || engines[i]->engine == engine) {
            /* AUTO reports the last engine's error only: the others
             * have a fallback. */
            error_free(err);
            err = NULL;
            b->q = aioloop__raw_open(engines[i], &err);
        }
    }
    if (b->q) {
        error_free(err);
        return b;
    }
    if (!err) {
        error_setg(&err, "unknown block I/O engine %d", (int)engine);
    }
    error_propagate(errp, err);
    free(b);
    return NULL;
}

AioBlockEngine aio_block_backend_engine(AioBlockBackend *b)
{
    return b->q->ops->engine;
}

void aio_block_backend_free(AioBlockBackend *b)
{
    if (b) {
        aioloop__raw_close(b->q, __func__);
        free(b);
    }
}

void aio_block_backend_attach(AioBlockBackend *b, AioContext *ctx)
{
    aioloop__raw_attach(b->q, ctx, __func__);
}

void aio_block_backend_detach(AioBlockBackend *b, AioContext *ctx)
{
    aioloop__raw_detach(b->q, ctx, __func__);
}

BlockAIOCB *aio_block_submit(AioBlockBackend *b, int fd, uint64_t offset,
                             QEMUIOVector *qiov, int type,
                             BlockCompletionFunc *cb, void *opaque)
{
    return aioloop__raw_submit(b->q, NULL, fd, offset, qiov, type, cb,
                               opaque);
}

int coroutine_fn aio_block_co_submit(AioBlockBackend *b, int fd,
                                     uint64_t offset, QEMUIOVector *qiov,
                                     int type)
{
    return aioloop__raw_co_submit(b->q, fd, offset, qiov, type);
}

void aio_block_plug(AioBlockBackend *b)
{
    aioloop__raw_plug(b->q);
}

void aio_block_unplug(AioBlockBackend *b)
{
    aioloop__raw_unplug(b->q, __func__);
}

/* ---- QEMU's names ----------------------------------------------------------- */

/* The queue of a state of the engine @ops (every state starts with it). */
static inline RawQueue *raw_q(void *state, const RawEngineOps *ops)
{
    RawQueue *q = state;

    assert(!q || q->ops == ops);
    (void)ops;
    return q;
}

#define LAIO(s) raw_q((s), &aioloop__linux_aio_ops)
#define LURING(s) raw_q((s), &aioloop__io_uring_ops)
#define TAIO(s) raw_q((s), &aioloop__thread_ops)

LinuxAioState *laio_init(void)
{
    return (LinuxAioState *)aioloop__raw_open(&aioloop__linux_aio_ops, NULL);
}

void laio_cleanup(LinuxAioState *s)
{
    aioloop__raw_close(LAIO(s), __func__);
}

void laio_attach_aio_context(LinuxAioState *s, AioContext *new_context)
{
    aioloop__raw_attach(LAIO(s), new_context, __func__);
}

void laio_detach_aio_context(LinuxAioState *s, AioContext *old_context)
{
    aioloop__raw_detach(LAIO(s), old_context, __func__);
}

BlockAIOCB *laio_submit(BlockDriverState *bs, LinuxAioState *s, int fd,
                        int64_t sector_num, QEMUIOVector *qiov, int nb_sectors,
                        BlockCompletionFunc *cb, void *opaque, int type)
{
    return aioloop__raw_submit_sectors(LAIO(s), bs, fd, sector_num, qiov,
                                       nb_sectors, cb, opaque, type);
}

int coroutine_fn laio_co_submit(BlockDriverState *bs, LinuxAioState *s,
                                int fd, uint64_t offset, QEMUIOVector *qiov,
                                int type)
{
    return aioloop__raw_co_submit(LAIO(s), fd, offset, qiov, type);
}

void laio_io_plug(BlockDriverState *bs, LinuxAioState *s)
{
    aioloop__raw_plug(LAIO(s));
}

void laio_io_unplug(BlockDriverState *bs, LinuxAioState *s)
{
    aioloop__raw_unplug(LAIO(s), __func__);
}

LuringState *luring_init(Error **errp)
{
    return (LuringState *)aioloop__raw_open(&aioloop__io_uring_ops, errp);
}

void luring_cleanup(LuringState *s)
{
    aioloop__raw_close(LURING(s), __func__);
}

void luring_attach_aio_context(LuringState *s, AioContext *new_context)
{
    aioloop__raw_attach(LURING(s), new_context, __func__);
}

void luring_detach_aio_context(LuringState *s, AioContext *old_context)
{
    aioloop__raw_detach(LURING(s), old_context, __func__);
}

BlockAIOCB *luring_submit(BlockDriverState *bs, LuringState *s, int fd,
                          int64_t sector_num, QEMUIOVector *qiov,
                          int nb_sectors, BlockCompletionFunc *cb,
                          void *opaque, int type)
{
    return aioloop__raw_submit_sectors(LURING(s), bs, fd, sector_num, qiov,
                                       nb_sectors, cb, opaque, type);
}

int coroutine_fn luring_co_submit(BlockDriverState *bs, LuringState *s,
                                  int fd, uint64_t offset, QEMUIOVector *qiov,
                                  int type)
{
    return aioloop__raw_co_submit(LURING(s), fd, offset, qiov, type);
}

void luring_io_plug(BlockDriverState *bs, LuringState *s)
{
    aioloop__raw_plug(LURING(s));
}

void luring_io_unplug(BlockDriverState *bs, LuringState *s)
{
    aioloop__raw_unplug(LURING(s), __func__);
}

ThreadAioState *taio_init(void)
{
    return (ThreadAioState *)aioloop__raw_open(&aioloop__thread_ops, NULL);
}

void taio_cleanup(ThreadAioState *s)
{
    aioloop__raw_close(TAIO(s), __func__);
}

void taio_attach_aio_context(ThreadAioState *s, AioContext *new_context)
{
    aioloop__raw_attach(TAIO(s), new_context, __func__);
}

void taio_detach_aio_context(ThreadAioState *s, AioContext *old_context)
{
    aioloop__raw_detach(TAIO(s), old_context, __func__);
}

BlockAIOCB *taio_submit(BlockDriverState *bs, ThreadAioState *s, int fd,
                        int64_t sector_num, QEMUIOVector *qiov, int nb_sectors,
                        BlockCompletionFunc *cb, void *opaque, int type)
{
    return aioloop__raw_submit_sectors(TAIO(s), bs, fd, sector_num, qiov,
                                       nb_sectors, cb, opaque, type);
}

int coroutine_fn taio_co_submit(BlockDriverState *bs, ThreadAioState *s,
                                int fd, uint64_t offset, QEMUIOVector *qiov,
                                int type)
{
    return aioloop__raw_co_submit(TAIO(s), fd, offset, qiov, type);
}

void taio_io_plug(BlockDriverState *bs, ThreadAioState *s)
{
    aioloop__raw_plug(TAIO(s));
}

void taio_io_unplug(BlockDriverState *bs, ThreadAioState *s)
{
    aioloop__raw_unplug(TAIO(s), __func__);
}
