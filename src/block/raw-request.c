/*
 * raw-request.c - the request queue every block engine shares.
 *
 * A request enters through aioloop__raw_submit() (callback) or
 * aioloop__raw_co_submit() (coroutine). It is checked first: a request
 * that could damage data or that no system call would accept (bad
 * offset, length or vector; see raw-aio.h) never reaches the engine and
 * completes with -EINVAL. For an engine that does regular files and
 * block devices only, the fd's kind decides whether the engine or the
 * thread pool runs it (raw_fd_kind()). Then it waits in the local queue
 * ('pending') until nothing holds the queue back (a plug, a batch of
 * completion callbacks, a kernel refusal) and a slot is free; raw_flush()
 * offers the head of the queue to the engine's submit(), or hands a
 * request that runs in the pool to a pool job. The engine hands every
 * request it took back with aioloop__raw_complete(); the pool's
 * completion comes back through raw_pool_done(). A request that finishes
 * without the kernel (a check or submission error, a cancellation) is
 * delivered from the done BH, never inside the call that submitted it.
 *
 * Refusals. When the kernel refuses a submission as a whole (EAGAIN,
 * ENOMEM, EBUSY), the queue is 'blocked': a completion unblocks it and
 * submits again; with nothing in the kernel, a timer retries after a
 * back-off that doubles from 50 µs to 10 ms, and an engine that
 * 'fails_head' (Linux AIO) fails the first waiting request after a
 * second of refusals and goes on with the next.
 *
 * Everything here runs in the attached context's thread, except
 * aioloop__raw_open() and aioloop__raw_close() (any thread; the state is
 * detached) and the pool job, aioloop__raw_worker() (thread-aio.c),
 * which touches only its request's file and buffers. The counters
 * in_flight and in_queue are the queue's alone: in_flight is written by
 * raw_took() and aioloop__raw_retire() (raw-aio-int.h, inline for the
 * engines' completion loops), in_queue by raw_enqueue_tail() and
 * raw_unqueue().
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <aioloop/thread-pool.h>
#include "raw-aio-int.h"
#include "../aiocb-internal.h"
#include "../util/alloc.h"
#include "../util/valgrind-hints.h"

/* Refusals with nothing in flight are retried after a back-off that
 * doubles from the first to the last value; after REFUSAL_LIMIT_NS of them
 * an engine that fails_head fails the request at the head. */
#define BACKOFF_FIRST_NS    (50 * 1000)
#define BACKOFF_MAX_NS      (10 * 1000 * 1000)
#define REFUSAL_LIMIT_NS    (1000 * 1000 * 1000)

static void raw_flush(RawQueue *q);

/* Misuse the API cannot report: say what and whose, then abort. */
static AIOLOOP_NORETURN void raw_die(RawQueue *q, const char *fn,
                                     const char *what)
{
    fprintf(stderr, "aioloop: %s: %s (%p) %s\n", fn, q->ops->what,
            (void *)q, what);
    abort();
}

/* ---- the counters --------------------------------------------------------- */

/* @n requests went to the engine or a pool job. */
static inline void raw_took(RawQueue *q, unsigned n)
{
    q->in_flight += n;
}

static inline void raw_enqueue_tail(RawQueue *q, RawRequest *r)
{
    r->queued = true;
    QTAILQ_INSERT_TAIL(&q->pending, r, next);
    q->in_queue++;
}

static inline void raw_unqueue(RawQueue *q, RawRequest *r)
{
    QTAILQ_REMOVE(&q->pending, r, next);
    r->queued = false;
    q->in_queue--;
}

/* Removes and returns the head of the local queue. */
static inline RawRequest *raw_pop(RawQueue *q)
{
    RawRequest *r = QTAILQ_FIRST(&q->pending);

    raw_unqueue(q, r);
    return r;
}

/* Slots free for more requests. */
static inline unsigned raw_room(const RawQueue *q)
{
    return q->in_flight < q->depth ? q->depth - q->in_flight : 0;
}

/* Requests the engine took but the kernel has not accepted yet. */
static inline unsigned raw_engine_waiting(RawQueue *q)
{
    return q->ops->waiting ? q->ops->waiting(q) : 0;
}

/* Requests not yet accepted by the kernel, here or in the engine. */
static inline bool raw_waiting(RawQueue *q)
{
    return q->in_queue || raw_engine_waiting(q);
}

/* Has the submission of a batch a nested loop may wait on scheduled
 * (once per batch, not per request: the flag follows the BH). */
static inline void raw_schedule_batch(RawQueue *q)
{
    if (!q->batch_scheduled) {
        q->batch_scheduled = true;
        qemu_bh_schedule(q->batch_bh);
    }
}

static inline void raw_cancel_batch(RawQueue *q)
{
    if (q->batch_scheduled) {
        q->batch_scheduled = false;
        qemu_bh_cancel(q->batch_bh);
    }
}

/* Submits now if nothing holds the queue back. */
static inline void raw_kick(RawQueue *q)
{
    if (q->blocked || !raw_waiting(q)) {
        return;
    }
    if ((q->plugged || q->batching) && q->in_queue < raw_room(q)) {
        /* Hold the batch. A callback that polls a nested loop for what
         * it just submitted gets it submitted by the BH. */
        if (q->batching && !q->plugged) {
            raw_schedule_batch(q);
        }
        return;
    }
    raw_flush(q);
}

/* ---- fd kinds ------------------------------------------------------------ */

/*
 * For an engine that does regular files and block devices only: 1 when
 * @fd is one, 0 for any other kind of file (the pool runs the request,
 * and answers as preadv/pwritev/fdatasync do: -ESPIPE for a pipe or a
 * socket, -EISDIR for reading a directory...), or -errno when @fd is not
 * open. One fstat() per fd number, remembered in a small table; an entry
 * is forgotten when a request on its fd fails with -EBADF (the fd was
 * closed) and on every attach.
 */
static int raw_fd_kind(RawQueue *q, int fd)
{
    RawFdKind *k;
    struct stat st;

    if (fd < 0) {
        return -EBADF;
    }
    k = &q->fd_kinds[(unsigned)fd % RAW_FD_KINDS];
    if (likely(k->fd == fd)) {
        return k->file;
    }
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    k->fd = fd;
    k->file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
    return k->file;
}

static void raw_fd_forget(RawQueue *q, int fd)
{
    RawFdKind *k = &q->fd_kinds[(unsigned)fd % RAW_FD_KINDS];

    if (fd >= 0 && k->fd == fd) {
        k->fd = -1;
    }
}

static void raw_fd_forget_all(RawQueue *q)
{
    for (unsigned i = 0; i < RAW_FD_KINDS; i++) {
        q->fd_kinds[i].fd = -1;
    }
}

/* ---- results ------------------------------------------------------------- */

int aioloop__raw_result(RawRequest *r, long long res)
{
    size_t size;

    if (res < 0) {
        return (int)res;
    }
    if (r->type == QEMU_AIO_FLUSH) {
        return 0;
    }
    size = r->qiov->size;
    if (r->type == QEMU_AIO_READ) {
        /* Filled through the kernel's ring: tell memcheck. */
        aioloop__vg_iov_defined(r->qiov, (size_t)res < size ? (size_t)res
                                                            : size);
    }
    if ((size_t)res >= size) {
        return 0;
    }
    if (r->type == QEMU_AIO_READ) {
        /* The file ended: the rest reads as zeroes. */
        qemu_iovec_memset(r->qiov, (size_t)res, 0, size - (size_t)res);
        return 0;
    }
    return -ENOSPC;
}

/* Records @ret in @r; wakes @r's coroutine and returns true, or returns
 * false for a callback request (whose callback the caller runs). */
static inline bool raw_deliver_co(RawRequest *r, int ret)
{
    if (unlikely(ret == -EBADF)) {
        raw_fd_forget(r->q, r->fd);
    }
    r->ret = ret;
    if (!r->co) {
        return false;
    }
    /* The coroutine owns @r (on its stack): do not touch it after
     * waking. It is never running here: completions are delivered from
     * aio_poll(), not from inside the submission. */
    if (!qemu_coroutine_entered(r->co)) {
        aio_co_wake(r->co);
    }
    return true;
}

void aioloop__raw_deliver(RawRequest *r, int ret)
{
    if (!raw_deliver_co(r, ret)) {
        aioloop__aiocb_complete(&r->common, ret);
    }
}

/* ---- callback requests: allocation and reuse ------------------------------ */

/*
 * A callback request costs a calloc() and a free() through qemu_aio_get()
 * and qemu_aio_unref(): at QD32, about 400 of the 850 user-space
 * instructions per I/O (glibc's calloc() does not use the thread cache).
 * So the engines' completions (aioloop__raw_complete()) keep the request
 * on a spare list of the state when nobody else holds it, and the next
 * submission takes it from there. A request the caller still holds
 * (qemu_aio_ref()) is left to the caller's qemu_aio_unref(), which frees
 * it as any AIOCB. Spares are retired memory to ASan and memcheck.
 */
#define RAW_SPARE_MAX AIOLOOP_RAW_QUEUE_DEPTH

static RawRequest *raw_request_new(RawQueue *q, BlockDriverState *bs,
                                   BlockCompletionFunc *cb, void *opaque)
{
    RawRequest *r = q->spare;

    if (!r) {
        return qemu_aio_get(&q->aiocb_info, bs, cb, opaque); /* zero-filled */
    }
    aioloop__mem_reuse(r, q->aiocb_info.aiocb_size);
    q->spare = r->spare_next;
    q->nspare--;
    r->common = (BlockAIOCB){
        .aiocb_info = &q->aiocb_info,
        .bs = bs,
        .cb = cb,
        .opaque = opaque,
        .refcnt = 1,
    };
    /* The rest of RawRequest is set by raw_request_init() or before it
     * is read (deferred_ret, next); the engine's part starts zeroed
     * unless the engine fills it itself (prep_fills_part). */
    if (q->ops->request_size && !q->ops->prep_fills_part) {
        memset(RAW_ENGINE_PART(r, char), 0, q->ops->request_size);
    }
    return r;
}

/* Keeps @r, whose callback has run and whose last reference was the
 * request's own (aioloop__aiocb_complete_keep() left it to us), for reuse;
 * frees it when the spare list is full. */
static void raw_request_keep(RawQueue *q, RawRequest *r)
{
    if (q->nspare >= RAW_SPARE_MAX) {
        free(r);
        return;
    }
    r->spare_next = q->spare;
    q->spare = r;
    q->nspare++;
    aioloop__mem_retire(r, q->aiocb_info.aiocb_size);
}

static void raw_free_spares(RawQueue *q)
{
    RawRequest *r;

    while ((r = q->spare)) {
        aioloop__mem_reuse(r, q->aiocb_info.aiocb_size);
        q->spare = r->spare_next;
        free(r);
    }
    q->nspare = 0;
}

void aioloop__raw_complete(RawQueue *q, RawRequest *r, int ret)
{
    assert(q->batching);        /* no callback can free @q (raw_detach) */
    aioloop__raw_retire(q);
    aioloop__report_progress(q->ctx);
    if (!raw_deliver_co(r, ret)) {
        bool reusable;

        aioloop__aiocb_complete_keep(&r->common, ret, &reusable);
        if (reusable) {
            raw_request_keep(q, r);
        }
    }
}

/* ---- deferred completions ------------------------------------------------ */

/* Completes @r with @ret later, from the queue's BH. */
static void raw_defer(RawQueue *q, RawRequest *r, int ret)
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
        aioloop__raw_deliver(r, r->deferred_ret);
    }
}

/* ---- cancellation -------------------------------------------------------- */

static void raw_cancel_async(BlockAIOCB *acb)
{
    RawRequest *r = (RawRequest *)acb;
    RawQueue *q = r->q;

    if (r->queued) {
        raw_unqueue(q, r);
        raw_defer(q, r, -ECANCELED);
    } else if (r->pool_acb) {
        bdrv_aio_cancel_async(r->pool_acb);
    }
    /* The engine's: it completes normally. */
}

static AioContext *raw_get_aio_context(BlockAIOCB *acb)
{
    return ((RawRequest *)acb)->q->ctx;
}

/* ---- the thread-pool path ------------------------------------------------ */

static void raw_pool_done(void *opaque, int ret)
{
    RawRequest *r = opaque;
    RawQueue *q = r->q;

    r->pool_acb = NULL;
    aioloop__raw_retire(q);
    raw_kick(q);
    aioloop__raw_deliver(r, ret);       /* last: the callback may free @q */
}

static void raw_pool_submit(RawQueue *q, RawRequest *r)
{
    raw_took(q, 1);
    r->pool_acb = thread_pool_submit_aio(aio_get_thread_pool(q->ctx),
                                         aioloop__raw_worker, r,
                                         raw_pool_done, r);
}

void aioloop__raw_flush_in_pool(RawQueue *q)
{
    RawRequest *r;

    q->flush_in_pool = true;
    QTAILQ_FOREACH(r, &q->pending, next) {
        if (r->type == QEMU_AIO_FLUSH) {
            r->in_pool = true;
        }
    }
}

/* ---- submission policy --------------------------------------------------- */

static inline void raw_accepted(RawQueue *q)
{
    q->refused_since = 0;
    q->backoff_ns = 0;
}

/* The kernel refused a submission (positive errno @err). */
static void raw_refused(RawQueue *q, int err)
{
    int64_t now;

    q->blocked = true;
    if (q->in_flight > raw_engine_waiting(q)) {
        return;                 /* a completion unblocks and retries */
    }
    now = aioloop__now_ns();
    if (!q->refused_since) {
        q->refused_since = now;
    }
    if (q->ops->fails_head && q->in_queue &&
        now - q->refused_since >= REFUSAL_LIMIT_NS) {
        raw_defer(q, raw_pop(q), -err);
        raw_accepted(q);
    }
    q->backoff_ns = q->backoff_ns ? q->backoff_ns * 2 : BACKOFF_FIRST_NS;
    if (q->backoff_ns > BACKOFF_MAX_NS) {
        q->backoff_ns = BACKOFF_MAX_NS;
    }
    timer_mod_ns(&q->retry_timer,
                 qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + q->backoff_ns);
}

/*
 * Gives the engine (or the pool) what waits, as much as fits, until the
 * queue is empty, the slots are full, or the kernel refuses.
 */
static void raw_flush(RawQueue *q)
{
    RawRequest *batch[AIOLOOP_RAW_QUEUE_DEPTH];

    if (q->pool_only) {
        while (q->in_queue && raw_room(q)) {
            raw_pool_submit(q, raw_pop(q));
        }
        return;
    }
    for (;;) {
        unsigned room = raw_room(q), n = 0, taken = 0;
        unsigned limit = room < ARRAY_SIZE(batch) ? room : ARRAY_SIZE(batch);
        RawRequest *r;
        int err;

        /* The head of the queue, up to the first request for the pool. */
        for (r = QTAILQ_FIRST(&q->pending); r && n < limit && !r->in_pool;
             r = QTAILQ_NEXT(r, next)) {
            batch[n++] = r;
        }
        if (n == 0 && room && q->in_queue) {
            raw_pool_submit(q, raw_pop(q));     /* the head's turn */
            continue;
        }
        if (n == 0 && !raw_engine_waiting(q)) {
            return;             /* nothing to give, or no free slot */
        }
        err = q->ops->submit(q, batch, n, &taken);
        assert(taken <= n);
        for (unsigned i = 0; i < taken; i++) {
            raw_pop(q);
        }
        raw_took(q, taken);
        if (err > 0) {
            raw_refused(q, err);
            return;
        }
        if (err < 0) {
            raw_defer(q, raw_pop(q), err);  /* it fails alone */
            continue;
        }
        raw_accepted(q);
        if (n == 0) {
            return;             /* the engine's own backlog went in */
        }
        /* Nothing taken without an error: the engine moved the head to
         * the pool (see RawEngineOps.submit). */
        assert(taken || QTAILQ_FIRST(&q->pending)->in_pool);
    }
}

static void raw_batch_bh(void *opaque)
{
    RawQueue *q = opaque;

    q->batch_scheduled = false;
    if (raw_waiting(q) && !q->blocked && !q->plugged) {
        raw_flush(q);
    }
}

static void raw_process_bh(void *opaque)
{
    RawQueue *q = opaque;

    q->ops->process(q);
}

void aioloop__raw_process_soon(RawQueue *q)
{
    qemu_bh_schedule(q->process_bh);
}

void aioloop__raw_process_before_sleep(RawQueue *q)
{
    aioloop__bh_schedule_local(q->process_bh);
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
         * what the engine holds with nothing queued here behind it. */
        raw_cancel_batch(q);
        raw_kick(q);
    } else if (raw_waiting(q) && !q->plugged && !q->blocked) {
        /* A nested loop ended its processing while an outer one is still
         * in a callback: slots may have freed up for queued requests that
         * this nested loop (or a deeper one) waits for. */
        raw_schedule_batch(q);
    }
}

static void raw_retry_timer(void *opaque)
{
    RawQueue *q = opaque;

    q->blocked = false;
    raw_kick(q);
}

void aioloop__raw_plug(RawQueue *q)
{
    q->plugged++;
}

void aioloop__raw_unplug(RawQueue *q, const char *fn)
{
    if (!q->plugged) {
        raw_die(q, fn, "was unplugged more often than plugged");
    }
    if (--q->plugged == 0) {
        raw_kick(q);
    }
}

/* ---- requests ------------------------------------------------------------ */

static inline bool raw_type_ok(int type)
{
    return type == QEMU_AIO_READ || type == QEMU_AIO_WRITE ||
           type == QEMU_AIO_FLUSH;
}

/* The argument checks of raw-aio.h: 0 or -EINVAL. */
static int raw_check(const RawRequest *r)
{
    const QEMUIOVector *qiov = r->qiov;

    if (r->type == QEMU_AIO_FLUSH) {
        return 0;
    }
    if (!qiov || qiov->niov < 0 || (qiov->niov > 0 && !qiov->iov) ||
        qiov->size > AIOLOOP_RAW_MAX_BYTES ||
        r->offset > (uint64_t)INT64_MAX - qiov->size) {
        return -EINVAL;
    }
    return 0;
}

static void raw_request_init(RawRequest *r, RawQueue *q, int fd,
                             uint64_t offset, QEMUIOVector *qiov, int type)
{
    r->q = q;
    r->co = NULL;
    r->fd = fd;
    r->offset = type == QEMU_AIO_FLUSH ? 0 : offset;
    r->qiov = type == QEMU_AIO_FLUSH ? NULL : qiov;
    r->type = (uint8_t)type;            /* one of the three (raw_type_ok) */
    r->ret = -EINPROGRESS;
    r->queued = false;
    r->in_pool = false;
    r->pool_acb = NULL;
}

/* Checks @r (or takes the error @err found earlier) and queues it.
 * Returns 0, or the error; then @r was not queued. */
static int raw_start(RawQueue *q, RawRequest *r, int err)
{
    if (!err) {
        err = raw_check(r);
    }
    if (q->pool_only) {
        r->in_pool = true;
    } else if (!err && q->files_only) {
        int kind = raw_fd_kind(q, r->fd);

        if (kind < 0) {
            err = kind;
        } else {
            r->in_pool = !kind;
        }
    }
    if (r->type == QEMU_AIO_FLUSH && q->flush_in_pool) {
        r->in_pool = true;
    }
    if (err) {
        return err;
    }
    raw_enqueue_tail(q, r);
    raw_kick(q);
    return 0;
}

static BlockAIOCB *raw_submit(RawQueue *q, BlockDriverState *bs, int fd,
                              uint64_t offset, QEMUIOVector *qiov, int type,
                              BlockCompletionFunc *cb, void *opaque, int err)
{
    RawRequest *r;

    if (!raw_type_ok(type) || !q->ctx) {
        return NULL;            /* nothing to prepare, nowhere to deliver */
    }
    r = raw_request_new(q, bs, cb, opaque);
    raw_request_init(r, q, fd, offset, qiov, type);
    err = raw_start(q, r, err);
    if (err) {
        raw_defer(q, r, err);
    }
    return &r->common;
}

BlockAIOCB *aioloop__raw_submit(RawQueue *q, BlockDriverState *bs, int fd,
                                uint64_t offset, QEMUIOVector *qiov,
                                int type, BlockCompletionFunc *cb,
                                void *opaque)
{
    return raw_submit(q, bs, fd, offset, qiov, type, cb, opaque, 0);
}

BlockAIOCB *aioloop__raw_submit_sectors(RawQueue *q, BlockDriverState *bs,
                                        int fd, int64_t sector_num,
                                        QEMUIOVector *qiov, int nb_sectors,
                                        BlockCompletionFunc *cb,
                                        void *opaque, int type)
{
    uint64_t offset = 0;
    int err = 0;

    if (type != QEMU_AIO_FLUSH) {
        if (sector_num < 0 || sector_num > (INT64_MAX >> BDRV_SECTOR_BITS) ||
            nb_sectors < 0 || !qiov ||
            qiov->size != (uint64_t)nb_sectors << BDRV_SECTOR_BITS) {
            err = -EINVAL;
        } else {
            offset = (uint64_t)sector_num << BDRV_SECTOR_BITS;
        }
    }
    return raw_submit(q, bs, fd, offset, qiov, type, cb, opaque, err);
}

int coroutine_fn aioloop__raw_co_submit(RawQueue *q, int fd, uint64_t offset,
                                        QEMUIOVector *qiov, int type)
{
    RawCoRequest c;
    RawRequest *r = &c.r;
    int err;

    if (!raw_type_ok(type) || !q->ctx) {
        return -EINVAL;
    }
    if (!q->ops->prep_fills_part) {
        memset(c.part, 0, q->ops->request_size);
    }
    raw_request_init(r, q, fd, offset, qiov, type);
    r->co = qemu_coroutine_self();
    err = raw_start(q, r, 0);
    if (err) {
        return err;
    }
    if (r->ret == -EINPROGRESS) {
        qemu_coroutine_yield();
    }
    assert(r->ret != -EINPROGRESS);
    return r->ret;
}

/* ---- the state ----------------------------------------------------------- */

RawQueue *aioloop__raw_open(const RawEngineOps *ops, Error **errp)
{
    RawQueue *q = aioloop__calloc(1, ops->state_size);
    int ret;

    if (!q) {
        error_setg_errno(errp, ENOMEM, "%s state", ops->name);
        errno = ENOMEM;
        return NULL;
    }
    assert(ops->request_size <= RAW_ENGINE_AREA);
    q->ops = ops;
    q->aiocb_info = (AIOCBInfo){
        .cancel_async = raw_cancel_async,
        .get_aio_context = raw_get_aio_context,
        .aiocb_size = ops->request_size ? RAW_REQUEST_HEAD + ops->request_size
                                        : sizeof(RawRequest),
    };
    q->depth = ops->depth;
    q->pool_only = !ops->submit;
    q->files_only = ops->files_only;
    QTAILQ_INIT(&q->pending);
    QTAILQ_INIT(&q->done);
    q->attachment.what = ops->what;
    raw_fd_forget_all(q);
    ret = ops->open(q, errp);
    if (ret < 0) {
        free(q);
        errno = -ret;
        return NULL;
    }
    return q;
}

void aioloop__raw_close(RawQueue *q, const char *fn)
{
    if (!q) {
        return;
    }
    if (q->ctx) {
        raw_die(q, fn, "is still attached to a context: detach it first");
    }
    assert(!q->in_flight && !q->in_queue && QTAILQ_EMPTY(&q->done));
    if (q->ops->close) {
        q->ops->close(q);
    }
    raw_free_spares(q);
    free(q);
}

/* Completes every request of @q, plugged ones too (the plug count is
 * kept for the owner's unplug). */
static void raw_drain(RawQueue *q)
{
    unsigned plugged = q->plugged;

    q->plugged = 0;
    raw_kick(q);
    while (q->in_flight || q->in_queue || !QTAILQ_EMPTY(&q->done)) {
        aio_poll(q->ctx, true);
    }
    q->plugged += plugged;
}

static void raw_detach_idle(RawQueue *q, AioContext *ctx)
{
    assert(!q->in_flight && !q->in_queue && QTAILQ_EMPTY(&q->done));
    if (q->ops->detach) {
        q->ops->detach(q, ctx);
    }
    aioloop__attachment_remove(ctx, &q->attachment);
    qemu_bh_delete(q->done_bh);
    qemu_bh_delete(q->batch_bh);
    q->batch_scheduled = false;
    qemu_bh_delete(q->process_bh);
    q->done_bh = q->batch_bh = q->process_bh = NULL;
    timer_del(&q->retry_timer);
    timer_deinit(&q->retry_timer);
    q->blocked = false;
    raw_accepted(q);
    q->ctx = NULL;
}

/* The context ends with @q attached (its last unref). */
static void raw_context_ends(AioAttachment *a, AioContext *ctx)
{
    RawQueue *q = container_of(a, RawQueue, attachment);

    raw_drain(q);
    raw_detach_idle(q, ctx);
}

void aioloop__raw_attach(RawQueue *q, AioContext *ctx, const char *fn)
{
    if (!ctx) {
        raw_die(q, fn, "cannot be attached to a NULL context");
    }
    if (q->ctx) {
        raw_die(q, fn, "is attached to a context already: detach it first");
    }
    q->ctx = ctx;
    q->done_bh = aioloop__bh_new_internal(ctx, raw_done_bh, q,
                                          "block I/O deferred completions");
    q->batch_bh = aioloop__bh_new_internal(ctx, raw_batch_bh, q,
                                           "block I/O batch submission");
    q->process_bh = aioloop__bh_new_internal(ctx, raw_process_bh, q,
                                             "block I/O completions");
    aio_timer_init(ctx, &q->retry_timer, QEMU_CLOCK_REALTIME, SCALE_NS,
                   raw_retry_timer, q);
    q->attachment.context_ends = raw_context_ends;
    q->attachment.order = AIO_ATTACH_ORDER_USERS;
    aioloop__attachment_add(ctx, &q->attachment);
    raw_fd_forget_all(q);
    if (q->ops->attach) {
        q->ops->attach(q, ctx);
    }
}

void aioloop__raw_detach(RawQueue *q, AioContext *ctx, const char *fn)
{
    if (!q->ctx) {
        return;     /* detached already, e.g. by its context's last unref */
    }
    if (ctx != q->ctx) {
        raw_die(q, fn, "is attached to another context");
    }
    if (q->batching) {
        raw_die(q, fn, "cannot be detached from inside its own completion "
                "callback");
    }
    raw_drain(q);
    raw_detach_idle(q, ctx);
}
