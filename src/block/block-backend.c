/*
 * block-backend.c - AioBlockBackend: one interface over the io_uring,
 * Linux AIO and thread backends, chosen at run time (AIO_ENGINE_AUTO
 * takes the first the kernel accepts).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raw-aio-int.h"
#include "../util/alloc.h"

struct AioBlockBackend {
    AioBlockEngine engine;
    union {
        LuringState *uring;
        LinuxAioState *laio;
        ThreadAioState *taio;
    } u;
};

static const char *const engine_names[] = {
    [AIO_ENGINE_AUTO] = "auto",
    [AIO_ENGINE_IO_URING] = "io_uring",
    [AIO_ENGINE_LINUX_AIO] = "linux-aio",
    [AIO_ENGINE_THREADS] = "threads",
};

const char *aio_block_engine_name(AioBlockEngine engine)
{
    if ((unsigned)engine >= sizeof(engine_names) / sizeof(engine_names[0])) {
        return "?";
    }
    return engine_names[engine];
}

int aio_block_engine_parse(const char *name)
{
    static const struct { const char *name; AioBlockEngine engine; } alias[] = {
        { "uring", AIO_ENGINE_IO_URING },
        { "libaio", AIO_ENGINE_LINUX_AIO },
        { "native", AIO_ENGINE_LINUX_AIO },
        { "thread", AIO_ENGINE_THREADS },
    };

    if (!name) {
        return -1;
    }
    for (unsigned i = 0; i < sizeof(engine_names) / sizeof(engine_names[0]); i++) {
        if (!strcmp(name, engine_names[i])) {
            return (int)i;
        }
    }
    for (unsigned i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        if (!strcmp(name, alias[i].name)) {
            return (int)alias[i].engine;
        }
    }
    return -1;
}

AioBlockBackend *aio_block_backend_new(AioBlockEngine engine, Error **errp)
{
    AioBlockBackend *b = aioloop__calloc(1, sizeof(*b));
    bool automatic = engine == AIO_ENGINE_AUTO;

    if (!b) {
        error_setg_errno(errp, ENOMEM, "block backend");
        return NULL;
    }
    if (automatic || engine == AIO_ENGINE_IO_URING) {
        b->u.uring = luring_init(automatic ? NULL : errp);
        if (b->u.uring) {
            b->engine = AIO_ENGINE_IO_URING;
            return b;
        }
    }
    if (automatic || engine == AIO_ENGINE_LINUX_AIO) {
        b->u.laio = laio_init();
        if (b->u.laio) {
            b->engine = AIO_ENGINE_LINUX_AIO;
            return b;
        }
        if (!automatic) {
            error_setg_errno(errp, errno, "Linux AIO is not available "
                             "(io_setup)");
        }
    }
    if (automatic || engine == AIO_ENGINE_THREADS) {
        b->u.taio = aioloop__taio_try_init();
        if (!b->u.taio) {
            error_setg_errno(errp, ENOMEM, "thread I/O state");
            free(b);
            return NULL;
        }
        b->engine = AIO_ENGINE_THREADS;
        return b;
    }
    if ((unsigned)engine > AIO_ENGINE_THREADS) {
        error_setg(errp, "unknown block I/O engine %d", (int)engine);
    }
    free(b);
    return NULL;
}

AioBlockEngine aio_block_backend_engine(AioBlockBackend *b)
{
    return b->engine;
}

void aio_block_backend_free(AioBlockBackend *b)
{
    if (!b) {
        return;
    }
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        luring_cleanup(b->u.uring);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_cleanup(b->u.laio);
        break;
    default:
        taio_cleanup(b->u.taio);
        break;
    }
    free(b);
}

void aio_block_backend_attach(AioBlockBackend *b, AioContext *ctx)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        luring_attach_aio_context(b->u.uring, ctx);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_attach_aio_context(b->u.laio, ctx);
        break;
    default:
        taio_attach_aio_context(b->u.taio, ctx);
        break;
    }
}

void aio_block_backend_detach(AioBlockBackend *b, AioContext *ctx)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        luring_detach_aio_context(b->u.uring, ctx);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_detach_aio_context(b->u.laio, ctx);
        break;
    default:
        taio_detach_aio_context(b->u.taio, ctx);
        break;
    }
}

BlockAIOCB *aio_block_submit(AioBlockBackend *b, int fd, uint64_t offset,
                             QEMUIOVector *qiov, int type,
                             BlockCompletionFunc *cb, void *opaque)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        return aioloop__luring_submit_bytes(NULL, b->u.uring, fd, offset,
                                            qiov, type, cb, opaque);
    case AIO_ENGINE_LINUX_AIO:
        return aioloop__laio_submit_bytes(NULL, b->u.laio, fd, offset, qiov,
                                          type, cb, opaque);
    default:
        return aioloop__taio_submit_bytes(NULL, b->u.taio, fd, offset, qiov,
                                          type, cb, opaque);
    }
}

int coroutine_fn aio_block_co_submit(AioBlockBackend *b, int fd,
                                     uint64_t offset, QEMUIOVector *qiov,
                                     int type)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        return luring_co_submit(NULL, b->u.uring, fd, offset, qiov, type);
    case AIO_ENGINE_LINUX_AIO:
        return laio_co_submit(NULL, b->u.laio, fd, offset, qiov, type);
    default:
        return taio_co_submit(NULL, b->u.taio, fd, offset, qiov, type);
    }
}

void aio_block_plug(AioBlockBackend *b)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        luring_io_plug(NULL, b->u.uring);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_io_plug(NULL, b->u.laio);
        break;
    default:
        taio_io_plug(NULL, b->u.taio);
        break;
    }
}

void aio_block_unplug(AioBlockBackend *b)
{
    switch (b->engine) {
    case AIO_ENGINE_IO_URING:
        luring_io_unplug(NULL, b->u.uring);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_io_unplug(NULL, b->u.laio);
        break;
    default:
        taio_io_unplug(NULL, b->u.taio);
        break;
    }
}
