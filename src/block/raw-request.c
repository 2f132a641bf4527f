/*
 * raw-request.c - the request life cycle the block backends share: the
 * local queue, plugging and batching, kernel refusals with back-off,
 * deferred completions, cancellation, results, and the thread-pool path.
 *
 * Everything here runs in the attached context's thread, except
 * aioloop__raw_worker(), which runs in a pool worker and touches only the
 * request's file and buffers (handed over by the pool's queue lock).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/uio.h>

#include <aioloop/thread-pool.h>
#include "raw-aio-int.h"
#include "../aiocb-internal.h"
#include "../util/fault.h"
#include "../util/valgrind-hints.h"

/* Refusals with nothing in flight are retried after a back-off that
 * doubles from the first to the last value; after REFUSAL_LIMIT_NS of them
 * a backend that can (Linux AIO) fails the request at the head. */
#define BACKOFF_FIRST_NS    (50 * 1000)
#define BACKOFF_MAX_NS      (10 * 1000 * 1000)
#define REFUSAL_LIMIT_NS    (1000 * 1000 * 1000)

/* ---- results ---------------------------------------------------------- */

int aioloop__raw_result(RawRequest *r, long long res)
{
    if (res < 0) {
        return (int)res;
    }
    if (r->type == QEMU_AIO_READ) {
        /* Filled through the kernel's ring: tell memcheck. */
        aioloop__vg_iov_defined(r->qiov, (size_t)res);
    }
    if (r->type == QEMU_AIO_FLUSH || (size_t)res == r->qiov->size) {
        return 0;
    }
    if (r->type == QEMU_AIO_READ) {
        /* The file ended: the rest reads as zeroes. */
        qemu_iovec_memset(r->qiov, (size_t)res, 0, r->qiov->size - (size_t)res);
        return 0;
    }
    return -ENOSPC;
}

void aioloop__raw_finish(RawRequest *r, int ret)
{
    r->ret = ret;
    if (r->co) {
        /* The coroutine owns @r (on its stack): do not touch it after
         * waking. It is never running here: completions are delivered
         * from aio_poll(), not from inside the submission. */
        if (!qemu_coroutine_entered(r->co)) {
            aio_co_wake(r->co);
        }
        return;
    }
    aioloop__aiocb_complete(&r->common, ret);
}

/* ---- requests ----------------------------------------------------------- */

bool aioloop__raw_request_init(RawRequest *r, RawQueue *q, int fd,
                               uint64_t offset, QEMUIOVector *qiov, int type)
{
    if (type != QEMU_AIO_READ && type != QEMU_AIO_WRITE &&
        type != QEMU_AIO_FLUSH) {
        return false;
    }
    assert(type == QEMU_AIO_FLUSH || qiov);
    r->q = q;
    r->co = NULL;
    r->fd = fd;
    r->offset = type == QEMU_AIO_FLUSH ? 0 : offset;
    r->qiov = type == QEMU_AIO_FLUSH ? NULL : qiov;
    r->type = type;
    r->ret = -EINPROGRESS;
    r->queued = false;
    r->pool_acb = NULL;
    return true;
}

RawRequest *aioloop__raw_request_new(const AIOCBInfo *info, RawQueue *q,
                                     BlockDriverState *bs, int fd,
                                     uint64_t offset, QEMUIOVector *qiov,
                                     int type, BlockCompletionFunc *cb,
                                     void *opaque)
{
    RawRequest *r;

    if (type != QEMU_AIO_READ && type != QEMU_AIO_WRITE &&
        type != QEMU_AIO_FLUSH) {
        return NULL;
    }
    assert(cb);
    r = qemu_aio_get(info, bs, cb, opaque);
    aioloop__raw_request_init(r, q, fd, offset, qiov, type);
    return r;
}

int coroutine_fn aioloop__raw_co_wait(RawRequest *r)
{
    if (r->ret == -EINPROGRESS) {
        qemu_coroutine_yield();
    }
    assert(r->ret != -EINPROGRESS);
    return r->ret;
}

/* ---- deferred completions --------------------------------------------- */

void aioloop__raw_defer(RawQueue *q, RawRequest *r, int ret)
{
    /* Not r->ret: a coroutine request must still look in progress, or
     * its coroutine would return (and its stack, which holds @r, go)
     * before the BH delivers it. */
    r->deferred_ret = ret;
    QTAILQ_INSERT_TAIL(&q->done, r, next);
    qemu_bh_schedule(q->done_bh);
}

static void raw_done_bh(void *opaque)
{
    RawQueue *q = opaque;
    RawRequest *r;

    /* Take each request off the list before its callback, which may poll
     * (and so re-enter this BH) or submit more. */
    while ((r = QTAILQ_FIRST(&q->done))) {
        QTAILQ_REMOVE(&q->done, r, next);
        aioloop__report_progress(q->ctx);
        aioloop__raw_finish(r, r->deferred_ret);
    }
}

void aioloop__raw_cancel_async(BlockAIOCB *acb)
{
    RawRequest *r = (RawRequest *)acb;
    RawQueue *q = r->q;

    if (r->queued) {
        QTAILQ_REMOVE(&q->pending, r, next);
        r->queued = false;
        q->in_queue--;
        aioloop__raw_defer(q, r, -ECANCELED);
    } else if (r->pool_acb) {
        bdrv_aio_cancel_async(r->pool_acb);
    }
    /* In the kernel: it completes normally. */
}

AioContext *aioloop__raw_get_aio_context(BlockAIOCB *acb)
{
    return ((RawRequest *)acb)->q->ctx;
}

/* ---- submission policy ---------------------------------------------------- */

/* Requests not yet accepted by the kernel: in the local queue, or (io_uring)
 * in the ring behind a refused submission. */
static inline bool raw_waiting(const RawQueue *q)
{
    return q->in_queue || q->unsubmitted;
}

static void raw_flush(RawQueue *q)
{
    int err = q->flush(q);

    if (err) {
        aioloop__raw_refused(q, err);
    }
}

void aioloop__raw_kick(RawQueue *q)
{
    if (!raw_waiting(q) || q->blocked) {
        return;
    }
    if ((q->plugged || q->batching) && q->in_queue < aioloop__raw_room(q)) {
        /* Hold the batch. A callback that polls a nested loop for what
         * it just submitted gets it submitted by the BH. */
        if (q->batching && !q->plugged) {
            qemu_bh_schedule(q->batch_bh);
        }
        return;
    }
    raw_flush(q);
}

static void raw_batch_bh(void *opaque)
{
    RawQueue *q = opaque;

    if (raw_waiting(q) && !q->blocked && !q->plugged) {
        raw_flush(q);
    }
}

static void raw_process_bh(void *opaque)
{
    RawQueue *q = opaque;

    q->process(q);
}

void aioloop__raw_batch_begin(RawQueue *q)
{
    q->batching++;
    qemu_bh_schedule(q->process_bh);
}

void aioloop__raw_batch_end(RawQueue *q)
{
    assert(q->batching > 0);
    qemu_bh_cancel(q->process_bh);     /* everything posted was delivered */
    if (--q->batching == 0) {
        /* A completion cleared a refusal: retry what waits, including
         * ring entries with nothing queued locally behind them. */
        if (raw_waiting(q)) {
            qemu_bh_cancel(q->batch_bh);
            aioloop__raw_kick(q);
        }
    } else if (raw_waiting(q) && !q->plugged && !q->blocked) {
        /* A nested loop ended its processing while an outer one is still
         * in a callback: slots may have freed up for queued requests that
         * this nested loop (or a deeper one) waits for. */
        qemu_bh_schedule(q->batch_bh);
    }
}

void aioloop__raw_enqueue(RawQueue *q, RawRequest *r)
{
    assert(q->ctx);
    r->queued = true;
    QTAILQ_INSERT_TAIL(&q->pending, r, next);
    q->in_queue++;
    aioloop__raw_kick(q);
}

void aioloop__raw_plug(RawQueue *q)
{
    q->plugged++;
}

void aioloop__raw_unplug(RawQueue *q)
{
    assert(q->plugged > 0);
    if (--q->plugged == 0) {
        aioloop__raw_kick(q);
    }
}

void aioloop__raw_refused(RawQueue *q, int err)
{
    int64_t now;

    q->blocked = true;
    if (q->in_flight > q->unsubmitted) {
        return;                 /* a completion unblocks and retries */
    }
    now = aioloop__now_ns();
    if (!q->refused_since) {
        q->refused_since = now;
    }
    if (q->may_fail_head && now - q->refused_since >= REFUSAL_LIMIT_NS) {
        RawRequest *r = aioloop__raw_pop(q);

        if (r) {
            aioloop__raw_defer(q, r, -err);
        }
        aioloop__raw_accepted(q);
    }
    q->backoff_ns = q->backoff_ns ? q->backoff_ns * 2 : BACKOFF_FIRST_NS;
    if (q->backoff_ns > BACKOFF_MAX_NS) {
        q->backoff_ns = BACKOFF_MAX_NS;
    }
    timer_mod_ns(&q->retry_timer,
                 qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + q->backoff_ns);
}

static void raw_retry_timer(void *opaque)
{
    RawQueue *q = opaque;

    q->blocked = false;
    aioloop__raw_kick(q);
}

/* ---- the thread-pool path ---------------------------------------------- */

static void raw_pool_done(void *opaque, int ret)
{
    RawRequest *r = opaque;
    RawQueue *q = r->q;

    r->pool_acb = NULL;
    q->in_flight--;
    q->blocked = false;
    aioloop__raw_kick(q);
    aioloop__raw_finish(r, ret);       /* last: the callback may free @q */
}

void aioloop__raw_submit_to_pool(RawQueue *q, RawRequest *r)
{
    q->in_flight++;
    r->pool_acb = thread_pool_submit_aio(aio_get_thread_pool(q->ctx),
                                         aioloop__raw_worker, r,
                                         raw_pool_done, r);
}

/* The test build's fault hook for the worker's system calls: -1 with
 * errno set to behave as if the call failed, 0 to make it. */
static inline ssize_t fault_io(void)
{
    int err = AIOLOOP_FAULT(AIOLOOP_FAULT_THREAD_IO);

    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* Finishes a transfer that the first preadv/pwritev left short (a read
 * that stopped early, or either one interrupted before it transferred
 * anything), after @done bytes, one segment piece at a time. */
static int raw_worker_rest(RawRequest *r, size_t done)
{
    QEMUIOVector *qiov = r->qiov;
    size_t skip = done;

    for (int i = 0; i < qiov->niov; i++) {
        char *base = qiov->iov[i].iov_base;
        size_t len = qiov->iov[i].iov_len;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        base += skip;
        len -= skip;
        skip = 0;
        while (len > 0) {
            off_t pos = (off_t)(r->offset + done);
            ssize_t n = fault_io();

            if (!n) {
                n = r->type == QEMU_AIO_READ ? pread(r->fd, base, len, pos)
                                             : pwrite(r->fd, base, len, pos);
            }
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -errno;
            }
            if (n == 0) {
                if (r->type == QEMU_AIO_READ) {
                    qemu_iovec_memset(qiov, done, 0, qiov->size - done);
                    return 0;
                }
                return -ENOSPC;
            }
            base += n;
            len -= (size_t)n;
            done += (size_t)n;
        }
    }
    return 0;
}

int aioloop__raw_worker(void *opaque)
{
    RawRequest *r = opaque;
    QEMUIOVector *qiov = r->qiov;
    ssize_t n;

    if (r->type == QEMU_AIO_FLUSH) {
        int ret;

        /* EINTR: nothing was lost, the data is not known to be stable:
         * ask again (a worker that unblocked signals can see it). */
        do {
            ret = (int)fault_io();
            if (!ret) {
                ret = fdatasync(r->fd);
            }
        } while (ret < 0 && errno == EINTR);
        return ret < 0 ? -errno : 0;
    }
    n = fault_io();
    if (n) {
        /* injected */
    } else if (r->type == QEMU_AIO_READ) {
        n = preadv(r->fd, qiov->iov, qiov->niov, (off_t)r->offset);
    } else {
        n = pwritev(r->fd, qiov->iov, qiov->niov, (off_t)r->offset);
    }
    if (n == (ssize_t)qiov->size) {
        return 0;
    }
    if (n < 0) {
        if (errno != EINTR) {
            return -errno;
        }
        n = 0;
    } else if (r->type == QEMU_AIO_WRITE) {
        return -ENOSPC;         /* short, as the kernel backends report it */
    }
    return raw_worker_rest(r, (size_t)n);
}

/* ---- set-up ------------------------------------------------------------- */

void aioloop__raw_queue_init(RawQueue *q, RawFlushFn *flush,
                             RawProcessFn *process, unsigned depth,
                             bool may_fail_head,
                             void (*detach)(RawQueue *q, AioContext *ctx),
                             const char *what)
{
    q->detach = detach;
    q->attachment.what = what;
    q->ctx = NULL;
    q->flush = flush;
    q->process = process;
    q->depth = depth;
    q->in_flight = q->in_queue = q->unsubmitted = 0;
    q->plugged = q->batching = 0;
    q->blocked = false;
    q->may_fail_head = may_fail_head;
    q->refused_since = q->backoff_ns = 0;
    QTAILQ_INIT(&q->pending);
    QTAILQ_INIT(&q->done);
    q->done_bh = q->batch_bh = q->process_bh = NULL;
    q->timer_inited = false;
}

/* The context ends with @q attached: finish every request (plugged
 * ones too: nobody is left to unplug), then detach. */
static void raw_drain_detach(AioAttachment *a, AioContext *ctx)
{
    RawQueue *q = container_of(a, RawQueue, attachment);

    q->plugged = 0;
    aioloop__raw_kick(q);
    while (q->in_flight || q->in_queue || !QTAILQ_EMPTY(&q->done)) {
        aio_poll(ctx, true);
    }
    q->detach(q, ctx);
}

void aioloop__raw_queue_attach(RawQueue *q, AioContext *ctx)
{
    assert(!q->ctx);
    q->ctx = ctx;
    q->done_bh = aioloop__bh_new_internal(ctx, raw_done_bh, q,
                                          "block I/O deferred completions");
    q->batch_bh = aioloop__bh_new_internal(ctx, raw_batch_bh, q,
                                           "block I/O batch submission");
    q->process_bh = aioloop__bh_new_internal(ctx, raw_process_bh, q,
                                             "block I/O completions");
    aio_timer_init(ctx, &q->retry_timer, QEMU_CLOCK_REALTIME, SCALE_NS,
                   raw_retry_timer, q);
    q->timer_inited = true;
    q->attachment.drain_detach = raw_drain_detach;
    aioloop__attachment_add(ctx, &q->attachment);
}

void aioloop__raw_queue_detach(RawQueue *q, AioContext *ctx)
{
    assert(q->ctx == ctx);
    (void)ctx;
    assert(!q->in_flight && !q->in_queue && QTAILQ_EMPTY(&q->done));
    aioloop__attachment_remove(&q->attachment);
    qemu_bh_delete(q->done_bh);
    qemu_bh_delete(q->batch_bh);
    qemu_bh_delete(q->process_bh);
    q->done_bh = q->batch_bh = q->process_bh = NULL;
    timer_del(&q->retry_timer);
    timer_deinit(&q->retry_timer);
    q->timer_inited = false;
    q->blocked = false;
    aioloop__raw_accepted(q);
    q->ctx = NULL;
}

void aioloop__raw_queue_destroy(RawQueue *q)
{
    assert(!q->ctx);
    assert(!q->in_flight && !q->in_queue && QTAILQ_EMPTY(&q->done));
    (void)q;
}
