/*
 * aioloop/block-backend.h - one interface over the three block I/O
 * engines of <aioloop/raw-aio.h>, with run-time fallback.
 *
 * An aioloop extension (QEMU has no equivalent): programs that want
 * "io_uring if the kernel allows it, else Linux AIO, else threads" ask for
 * AIO_ENGINE_AUTO and use one set of calls with byte offsets. The
 * semantics (results, queueing, batching, threads, nesting) are those of
 * raw-aio.h.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_BLOCK_BACKEND_H
#define AIOLOOP_BLOCK_BACKEND_H

#include <stdint.h>
#include <aioloop/raw-aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The block I/O engine an AioBlockBackend runs on. */
typedef enum AioBlockEngine {
    AIO_ENGINE_AUTO = 0,        /* io_uring, else linux-aio, else threads */
    AIO_ENGINE_IO_URING,        /* io_uring (luring_*) */
    AIO_ENGINE_LINUX_AIO,       /* Linux native AIO (laio_*) */
    AIO_ENGINE_THREADS,         /* the thread pool (taio_*) */
} AioBlockEngine;

/* A block I/O backend (opaque): one of the three engine states behind one
 * interface. Created by aio_block_backend_new(), freed by
 * aio_block_backend_free(). */
typedef struct AioBlockBackend AioBlockBackend;

/**
 * aio_block_engine_name - "auto", "io_uring", "linux-aio" or "threads".
 * Returns: a static string ("?" for a value out of range). Any thread.
 */
AIOLOOP_API const char *aio_block_engine_name(AioBlockEngine engine);

/**
 * aio_block_engine_parse - the engine called @name (as printed by
 * aio_block_engine_name(); "libaio" and "native" are accepted for
 * linux-aio, "uring" for io_uring, "thread" for threads).
 * Returns: the engine, or -1 for an unknown or NULL name. Any thread.
 */
AIOLOOP_API int aio_block_engine_parse(const char *name);

/**
 * aio_block_backend_new - create a backend on @engine.
 * AIO_ENGINE_AUTO tries io_uring, then Linux AIO, then threads, and
 * fails only when memory runs out; a named engine also fails if the
 * kernel refuses it.
 * Returns: the backend, not yet attached; NULL with @errp set when the
 * named engine is unavailable or memory ran out (nothing is leaked).
 * Any thread.
 */
AIOLOOP_API AioBlockBackend *aio_block_backend_new(AioBlockEngine engine,
                                                   Error **errp);

/**
 * aio_block_backend_engine - the engine @b runs on (never AUTO).
 * Any thread.
 */
AIOLOOP_API AioBlockEngine aio_block_backend_engine(AioBlockBackend *b);

/**
 * aio_block_backend_free - free @b (detached, idle; as laio_cleanup()).
 * NULL is ignored. Any thread, once detached.
 */
AIOLOOP_API void aio_block_backend_free(AioBlockBackend *b);

/** aio_block_backend_attach - as laio_attach_aio_context().
 * Loop thread of @ctx. */
AIOLOOP_API void aio_block_backend_attach(AioBlockBackend *b, AioContext *ctx);

/** aio_block_backend_detach - as laio_detach_aio_context().
 * Loop thread of @ctx. */
AIOLOOP_API void aio_block_backend_detach(AioBlockBackend *b, AioContext *ctx);

/**
 * aio_block_submit - start a request of @qiov->size bytes at byte
 * @offset of @fd (@qiov and @offset are ignored for QEMU_AIO_FLUSH, and
 * @qiov may then be NULL); @cb(@opaque, ret) runs once, from aio_poll()
 * of the attached context.
 * Returns: the AIOCB, valid until the callback returns; NULL only for an
 * unknown @type or a detached @b. Bad arguments and files complete as
 * raw-aio.h says ("Bad arguments", "Files"). Loop thread only.
 */
AIOLOOP_API BlockAIOCB *aio_block_submit(AioBlockBackend *b, int fd,
                                         uint64_t offset, QEMUIOVector *qiov,
                                         int type, BlockCompletionFunc *cb,
                                         void *opaque);

/**
 * aio_block_co_submit - submit and wait, as laio_co_submit().
 * Returns: 0 or -errno (-EINVAL for an unknown @type, a detached @b or
 * bad arguments). Coroutine context only.
 */
AIOLOOP_API int coroutine_fn aio_block_co_submit(AioBlockBackend *b, int fd,
                                                 uint64_t offset,
                                                 QEMUIOVector *qiov,
                                                 int type);

/** aio_block_plug - as laio_io_plug(). Loop thread only. */
AIOLOOP_API void aio_block_plug(AioBlockBackend *b);

/** aio_block_unplug - as laio_io_unplug(). Loop thread only. */
AIOLOOP_API void aio_block_unplug(AioBlockBackend *b);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_BLOCK_BACKEND_H */
