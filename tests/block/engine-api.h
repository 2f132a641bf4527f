/*
 * tests/block/engine-api.h - one request at a time through the engine's
 * own QEMU-named API (laio_*, luring_*, taio_* for blk_engine) and
 * through AioBlockBackend, returning the result the request got. For the
 * programs that check what bad input gets (regression and misuse tests).
 *
 *   eng_new(), eng_free()      a state of blk_engine, attached or not
 *   eng_plug()                 *_io_plug() or *_io_unplug()
 *   eng_rw()                   *_submit() (sectors, callback) and wait:
 *                              the callback's result, RES_NULL when the
 *                              submit returned NULL (the callback must
 *                              then never run)
 *   eng_co_rw()                *_co_submit() (bytes) from a coroutine
 *   blk_rw(), blk_co_rw()      the same through aio_block_submit() and
 *                              aio_block_co_submit() on any fd
 *
 * Every wait is a blocking aio_poll() loop: a request that never
 * completes is a hang the harness's watchdog names.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TESTS_ENGINE_API_H
#define AIOLOOP_TESTS_ENGINE_API_H

#include "block-test.h"

/* eng_rw()/blk_rw(): the submit call returned NULL. */
#define RES_NULL 1000

/* A state of blk_engine, the context it is attached to (or NULL) and
 * the BlockDriverState handed to every call (NULL unless a test sets
 * it: the engines only store it in the AIOCB). */
typedef struct Eng {
    void *s;
    AioContext *ctx;
    BlockDriverState *bs;
} Eng;

static inline void *eng_init(void)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return luring_init(&error_abort);
    case AIO_ENGINE_LINUX_AIO:
        return laio_init();
    default:
        return taio_init();
    }
}

static inline void eng_attach(Eng *e, AioContext *ctx)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        luring_attach_aio_context(e->s, ctx);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_attach_aio_context(e->s, ctx);
        break;
    default:
        taio_attach_aio_context(e->s, ctx);
        break;
    }
    e->ctx = ctx;
}

static inline void eng_detach(Eng *e, AioContext *ctx)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        luring_detach_aio_context(e->s, ctx);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_detach_aio_context(e->s, ctx);
        break;
    default:
        taio_detach_aio_context(e->s, ctx);
        break;
    }
}

static inline void eng_cleanup(void *s)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        luring_cleanup(s);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_cleanup(s);
        break;
    default:
        taio_cleanup(s);
        break;
    }
}

/* A state on a new context (@ctx NULL: detached). */
static inline void eng_new(Eng *e, AioContext *ctx)
{
    e->s = eng_init();
    e->ctx = NULL;
    e->bs = NULL;
    if (!e->s) {
        printf("#   %s: cannot create a state: %s\n",
               aio_block_engine_name(blk_engine), strerror(errno));
        abort();
    }
    if (ctx) {
        eng_attach(e, ctx);
    }
}

static inline void eng_free(Eng *e)
{
    if (e->ctx) {
        eng_detach(e, e->ctx);
    }
    eng_cleanup(e->s);
}

static inline BlockAIOCB *eng_submit(Eng *e, int fd, int64_t sector,
                                     QEMUIOVector *q, int nb,
                                     BlockCompletionFunc *cb, void *opaque,
                                     int type)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return luring_submit(e->bs, e->s, fd, sector, q, nb, cb, opaque, type);
    case AIO_ENGINE_LINUX_AIO:
        return laio_submit(e->bs, e->s, fd, sector, q, nb, cb, opaque, type);
    default:
        return taio_submit(e->bs, e->s, fd, sector, q, nb, cb, opaque, type);
    }
}

/* *_io_plug() (@plug) or *_io_unplug(). */
static inline void eng_plug(Eng *e, bool plug)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        plug ? luring_io_plug(e->bs, e->s) : luring_io_unplug(e->bs, e->s);
        break;
    case AIO_ENGINE_LINUX_AIO:
        plug ? laio_io_plug(e->bs, e->s) : laio_io_unplug(e->bs, e->s);
        break;
    default:
        plug ? taio_io_plug(e->bs, e->s) : taio_io_unplug(e->bs, e->s);
        break;
    }
}

/* One request's completion record. */
typedef struct EngRes {
    int runs;
    int ret;
} EngRes;

static inline void eng_res_cb(void *opaque, int ret)
{
    EngRes *r = opaque;

    r->runs++;
    r->ret = ret;
}

/* Waits for @r's callback (blocking aio_poll), then checks that it ran
 * once and that nothing more arrives. */
static inline int eng_res_wait(AioContext *ctx, EngRes *r)
{
    while (r->runs == 0) {
        aio_poll(ctx, true);
    }
    while (aio_poll(ctx, false)) {
    }
    if (r->runs != 1) {
        printf("#   the callback ran %d times\n", r->runs);
        return -10000;
    }
    return r->ret;
}

/* *_submit() of one request and its result (RES_NULL: NULL returned).
 * Also checks that no callback ran inside the submit call. */
static inline int eng_rw(Eng *e, int fd, int64_t sector, QEMUIOVector *q,
                         int nb, int type)
{
    EngRes r = { 0, 0 };
    BlockAIOCB *acb = eng_submit(e, fd, sector, q, nb, eng_res_cb, &r, type);

    if (r.runs) {
        printf("#   the callback ran inside the submit call\n");
        return -10001;
    }
    if (!acb) {
        if (e->ctx) {
            while (aio_poll(e->ctx, false)) {
            }
        }
        return r.runs ? -10002 : RES_NULL;
    }
    return eng_res_wait(e->ctx, &r);
}

typedef struct EngCo {
    Eng *e;
    int fd;
    uint64_t off;
    QEMUIOVector *q;
    int type;
    int ret;
    bool done;
} EngCo;

static inline void coroutine_fn eng_co_entry(void *opaque)
{
    EngCo *c = opaque;
    Eng *e = c->e;

    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        c->ret = luring_co_submit(e->bs, e->s, c->fd, c->off, c->q, c->type);
        break;
    case AIO_ENGINE_LINUX_AIO:
        c->ret = laio_co_submit(e->bs, e->s, c->fd, c->off, c->q, c->type);
        break;
    default:
        c->ret = taio_co_submit(e->bs, e->s, c->fd, c->off, c->q, c->type);
        break;
    }
    c->done = true;
}

/* *_co_submit() from a coroutine of @ctx; its result. */
static inline int eng_co_rw(Eng *e, AioContext *ctx, int fd, uint64_t off,
                            QEMUIOVector *q, int type)
{
    EngCo c = { .e = e, .fd = fd, .off = off, .q = q, .type = type };

    co_start(ctx, eng_co_entry, &c);
    while (!c.done) {
        aio_poll(ctx, true);
    }
    return c.ret;
}

/* aio_block_submit() of one request on @fd and its result. */
static inline int blk_rw(Blk *t, int fd, uint64_t off, QEMUIOVector *q,
                         int type)
{
    EngRes r = { 0, 0 };
    BlockAIOCB *acb = aio_block_submit(t->b, fd, off, q, type, eng_res_cb,
                                       &r);

    if (r.runs) {
        printf("#   the callback ran inside the submit call\n");
        return -10001;
    }
    if (!acb) {
        while (aio_poll(t->ctx, false)) {
        }
        return r.runs ? -10002 : RES_NULL;
    }
    return eng_res_wait(t->ctx, &r);
}

/* aio_block_co_submit() of one request on @fd; its result. */
static inline int blk_co_rw(Blk *t, int fd, uint64_t off, QEMUIOVector *q,
                            int type)
{
    Blk other = *t;

    other.fd = fd;
    return co_io_run(&other, off, q, type);
}

#endif /* AIOLOOP_TESTS_ENGINE_API_H */
