/*
 * raw-aio-int.h - what the three block backends share.
 *
 * RawRequest is the request of every backend. A callback request is an
 * AIOCB from qemu_aio_get() (RawRequest starts with BlockAIOCB; a backend
 * embeds RawRequest first in its own, larger request). A coroutine
 * request lives on the waiting coroutine's stack and its 'co' is set.
 *
 * RawQueue is the part of a state that does not depend on the kernel
 * interface: the local queue of requests not yet given to the kernel,
 * the plug count, the in-flight count, the deferred-completion list
 * (requests that finish without the kernel: submission errors and
 * cancellations are delivered from a BH, never inside the submit call),
 * the batch that collects submissions made by completion callbacks, and
 * the back-off timer for kernel refusals (EAGAIN, ENOMEM).
 *
 * A backend provides flush(): give the kernel what the local queue holds
 * (as much as fits) and report a refusal. RawQueue calls it when a
 * request is added and nothing holds it back, on the last unplug, after
 * completions, and when the back-off timer fires.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RAW_AIO_INT_H
#define AIOLOOP_RAW_AIO_INT_H

#include <assert.h>
#include <errno.h>
#include <aioloop/block-backend.h>
#include <aioloop/queue.h>
#include <aioloop/timer.h>
#include "../aio-internal.h"

typedef struct RawQueue RawQueue;
typedef struct RawRequest RawRequest;

struct RawRequest {
    BlockAIOCB common;          /* callback requests: from qemu_aio_get() */
    RawQueue *q;
    Coroutine *co;              /* the waiting coroutine, or NULL */
    QEMUIOVector *qiov;         /* NULL for a flush */
    uint64_t offset;
    int fd;
    int type;                   /* QEMU_AIO_READ/WRITE/FLUSH */
    int ret;                    /* -EINPROGRESS until delivered */
    int deferred_ret;           /* the result waiting in q->done */
    bool queued;                /* in q->pending */
    QTAILQ_ENTRY(RawRequest) next;   /* q->pending or q->done */
    BlockAIOCB *pool_acb;       /* a thread-pool job running it, or NULL */
};

/* Backend hook: submit from q->pending; returns 0, or the positive errno
 * of a transient refusal (EAGAIN, ENOMEM...) after which nothing more
 * can be submitted now. Requests that fail on their own are completed by
 * the backend (aioloop__raw_defer()). */
typedef int RawFlushFn(RawQueue *q);

/* Backend hook: deliver the completions the kernel has posted. */
typedef void RawProcessFn(RawQueue *q);

struct RawQueue {
    AioContext *ctx;            /* attached context, or NULL */
    RawFlushFn *flush;
    RawProcessFn *process;
    unsigned depth;             /* kernel slots */
    unsigned in_flight;         /* requests in the kernel (or a pool) */
    unsigned in_queue;          /* requests in 'pending' */
    unsigned unsubmitted;       /* counted in flight, but not yet consumed
                                 * by the kernel (io_uring's ring) */
    unsigned plugged;           /* *_io_plug() nesting */
    unsigned batching;          /* completion-processing nesting */
    bool blocked;               /* refused: wait for a completion */
    bool may_fail_head;         /* a persistent refusal fails the head */
    int64_t refused_since;      /* first refusal with nothing in flight */
    int64_t backoff_ns;
    QTAILQ_HEAD(, RawRequest) pending;
    QTAILQ_HEAD(, RawRequest) done;
    QEMUBH *done_bh;            /* delivers 'done' */
    QEMUBH *batch_bh;           /* submits a batch a nested loop waits on */
    QEMUBH *process_bh;         /* continues completions in a nested loop */
    QEMUTimer retry_timer;
    bool timer_inited;
    /* The backend's detach function, called with the context when the
     * context ends first (AioAttachment); the backend's own detach must
     * do nothing for a queue that is no longer attached. */
    void (*detach)(RawQueue *q, AioContext *ctx);
    AioAttachment attachment;
};

/* The AIOCBInfo shared by the backends' callback requests; @size is the
 * backend's request size. */
#define RAW_AIOCB_INFO(size) { \
    .cancel_async = aioloop__raw_cancel_async, \
    .get_aio_context = aioloop__raw_get_aio_context, \
    .aiocb_size = (size), \
}

void aioloop__raw_cancel_async(BlockAIOCB *acb);
AioContext *aioloop__raw_get_aio_context(BlockAIOCB *acb);

/* Sets up @q (detached) for a backend with @depth kernel slots, whose
 * detach function is @detach and which the context's notice calls
 * @what ("an io_uring state"). */
void aioloop__raw_queue_init(RawQueue *q, RawFlushFn *flush,
                             RawProcessFn *process, unsigned depth,
                             bool may_fail_head,
                             void (*detach)(RawQueue *q, AioContext *ctx),
                             const char *what);
/* Frees what init allocated; @q must be detached and idle (assertion). */
void aioloop__raw_queue_destroy(RawQueue *q);
void aioloop__raw_queue_attach(RawQueue *q, AioContext *ctx);
void aioloop__raw_queue_detach(RawQueue *q, AioContext *ctx);

/* Fills @r for a request; returns false for an unknown @type. */
bool aioloop__raw_request_init(RawRequest *r, RawQueue *q, int fd,
                               uint64_t offset, QEMUIOVector *qiov, int type);
/* A callback request of @size bytes, or NULL for an unknown @type. */
RawRequest *aioloop__raw_request_new(const AIOCBInfo *info, RawQueue *q,
                                     BlockDriverState *bs, int fd,
                                     uint64_t offset, QEMUIOVector *qiov,
                                     int type, BlockCompletionFunc *cb,
                                     void *opaque);

/* Adds @r to the local queue and submits what may be submitted now. */
void aioloop__raw_enqueue(RawQueue *q, RawRequest *r);
/* Waits (yields) for the coroutine request @r; returns its result. */
int coroutine_fn aioloop__raw_co_wait(RawRequest *r);

void aioloop__raw_plug(RawQueue *q);
void aioloop__raw_unplug(RawQueue *q);

/* Submits now if nothing holds the queue back. */
void aioloop__raw_kick(RawQueue *q);
/* Around a backend's completion processing: requests submitted by the
 * callbacks are batched and submitted at the end of the outermost; and
 * while a callback runs, the process BH is scheduled, so that a nested
 * aio_poll() delivers the completions already posted (whose eventfd
 * signal was consumed) instead of waiting for a signal that will not
 * come. Each completion delivered inside counts as loop progress. */
void aioloop__raw_batch_begin(RawQueue *q);
void aioloop__raw_batch_end(RawQueue *q);

/* The backend got a transient refusal @err from the kernel. */
void aioloop__raw_refused(RawQueue *q, int err);
/* The backend's submission went through: forget earlier refusals. */
static inline void aioloop__raw_accepted(RawQueue *q)
{
    q->refused_since = 0;
    q->backoff_ns = 0;
}

/* Removes the head of the local queue (the caller submits it). */
static inline RawRequest *aioloop__raw_pop(RawQueue *q)
{
    RawRequest *r = QTAILQ_FIRST(&q->pending);

    if (r) {
        QTAILQ_REMOVE(&q->pending, r, next);
        r->queued = false;
        q->in_queue--;
    }
    return r;
}

/* Kernel slots free for more submissions. */
static inline unsigned aioloop__raw_room(const RawQueue *q)
{
    return q->in_flight < q->depth ? q->depth - q->in_flight : 0;
}

/* The result of a request from the kernel's byte count or -errno @res:
 * a short read is zero-filled and succeeds, a short write is -ENOSPC. */
int aioloop__raw_result(RawRequest *r, long long res);
/* Delivers @ret to @r's callback or coroutine (and frees a callback
 * request). */
void aioloop__raw_finish(RawRequest *r, int ret);
/* Completes @r with @ret later, from the queue's BH. */
void aioloop__raw_defer(RawQueue *q, RawRequest *r, int ret);

/* Retires a request the kernel completed and delivers @ret. */
static inline void aioloop__raw_complete(RawQueue *q, RawRequest *r, int ret)
{
    q->in_flight--;
    q->blocked = false;
    aioloop__report_progress(q->ctx);
    aioloop__raw_finish(r, ret);
}

/* Runs @r in the attached context's thread pool (preadv, pwritev or
 * fdatasync in a worker); counts it in flight until it completes. */
void aioloop__raw_submit_to_pool(RawQueue *q, RawRequest *r);
/* The worker's job: does @opaque's (a RawRequest) I/O and returns its
 * result (as aioloop__raw_result() would). */
int aioloop__raw_worker(void *opaque);

/* taio_init() that returns NULL (errno ENOMEM) instead of aborting, for
 * aio_block_backend_new(), which reports it through its Error. */
ThreadAioState *aioloop__taio_try_init(void);

/* Byte-offset callback submission of each backend (block-backend.c). */
BlockAIOCB *aioloop__laio_submit_bytes(BlockDriverState *bs, LinuxAioState *s,
                                       int fd, uint64_t offset,
                                       QEMUIOVector *qiov, int type,
                                       BlockCompletionFunc *cb, void *opaque);
BlockAIOCB *aioloop__luring_submit_bytes(BlockDriverState *bs, LuringState *s,
                                         int fd, uint64_t offset,
                                         QEMUIOVector *qiov, int type,
                                         BlockCompletionFunc *cb,
                                         void *opaque);
BlockAIOCB *aioloop__taio_submit_bytes(BlockDriverState *bs, ThreadAioState *s,
                                       int fd, uint64_t offset,
                                       QEMUIOVector *qiov, int type,
                                       BlockCompletionFunc *cb, void *opaque);

/* The byte offset of a sector-based request, checking that the vector
 * holds @nb_sectors sectors (assertion). */
static inline uint64_t aioloop__raw_sector_offset(int64_t sector_num,
                                                  QEMUIOVector *qiov,
                                                  int nb_sectors, int type)
{
    assert(sector_num >= 0 || type == QEMU_AIO_FLUSH);
    assert(type == QEMU_AIO_FLUSH || !qiov ||
           qiov->size == (size_t)nb_sectors << BDRV_SECTOR_BITS);
    (void)qiov;
    (void)nb_sectors;
    (void)type;
    return sector_num > 0 ? (uint64_t)sector_num << BDRV_SECTOR_BITS : 0;
}

#endif /* AIOLOOP_RAW_AIO_INT_H */
