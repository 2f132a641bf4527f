/*
 * io-uring.c - the io_uring backend, on liburing.
 *
 * Each state owns a ring of AIOLOOP_RAW_QUEUE_DEPTH submission entries
 * (the completion ring is twice that, so it cannot overflow: at most
 * depth requests are in flight) and an eventfd registered with the ring,
 * watched by the attached context with a busy-poll check on the
 * completion ring. Completions are read from the ring in user space.
 *
 * A request is in one of three places: the local queue (RawQueue
 * 'pending'), the submission ring (prepared but not yet consumed by the
 * kernel: 'unsubmitted'), or the kernel. Once prepared, a request stays
 * in the ring until the kernel consumes it: if io_uring_enter() refuses
 * (EAGAIN, EBUSY, ENOMEM, EINTR) the next submission offers the same
 * entries again. Errors of a request itself arrive in its completion.
 *
 * Unlike Linux AIO, io_uring may complete a buffered read short without
 * having reached the end of the file; a short read is therefore
 * resubmitted for the rest, and only a read that returns 0 bytes is the
 * end of the file (the rest is zero-filled). -EAGAIN and -EINTR
 * completions are resubmitted too, and so is -ECANCELED: this backend
 * never cancels a request in the kernel, but the kernel cancels work it
 * had punted to its io-wq when it cannot start an io-wq worker (recent
 * kernels give up after three attempts, and an attempt fails while a
 * signal is pending on the submitting thread: a signal storm is enough,
 * see tests/faults/test-signals.c), so -ECANCELED means "not done, try
 * again".
 *
 * Ring set-up: the state asks for the cheapest completion model the
 * kernel offers. Best is DEFER_TASKRUN (6.1): the kernel posts
 * completions only when the owning thread asks (io_uring_get_events()),
 * with no interrupt of the thread; it needs SINGLE_ISSUER, so the ring is
 * created disabled and enabled by the first attach, in the thread that
 * will use it, and re-created when a later attach comes from another
 * thread (the ring is idle then). Next is COOP_TASKRUN (5.19), then a
 * plain ring. With TASKRUN_FLAG the kernel raises IORING_SQ_TASKRUN when
 * completions wait for us to enter it; the eventfd fires when the first
 * of them is queued, and the busy-poll check looks at the flag too.
 *
 * The eventfd is armed only while the loop may sleep. A signal costs the
 * signalling thread (often an io-wq worker, on files that cannot read
 * without blocking) a wake-up of our thread, and costs us a spurious
 * loop iteration when we are awake anyway; and when we post completions
 * ourselves (io_uring_get_events(), or a submission that liburing
 * combines with it) the kernel would signal our own eventfd. So the
 * state registers a sleep hook (aio-internal.h): the loop arms the
 * signal (clears IORING_CQ_EVENTFD_DISABLED in the shared ring) just
 * before it waits, and disarms it once awake. Work queued while the
 * signal was off raised IORING_SQ_TASKRUN without signalling; the arming
 * hook looks at that flag after a full barrier (pairing with the
 * kernel's ordered list insertion before it reads the CQ flags) and, if
 * it is up, schedules the completion BH so that the wait does not
 * sleep. Kernels without CQ flags (before 5.8) keep the signal always on.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <liburing.h>

#include "raw-aio-int.h"
#include "../util/fault.h"
#include "../util/alloc.h"

#define LURING_DEPTH AIOLOOP_RAW_QUEUE_DEPTH

typedef struct LuringRequest {
    RawRequest req;             /* first: AIOCB of callback requests */
    size_t done;                /* bytes read by earlier short reads */
    QEMUIOVector rest;          /* what remains after them (done > 0) */
} LuringRequest;

struct LuringState {
    RawQueue q;
    struct io_uring ring;
    EventNotifier e;
    unsigned setup;             /* IORING_SETUP_* of the ring */
    pid_t owner;                /* SINGLE_ISSUER: the thread, 0 = none yet */
    int broken;                 /* errno: re-creating the ring failed */
    bool op_read;               /* IORING_OP_READ/WRITE exist (5.6) */
    bool op_fsync;              /* IORING_OP_FSYNC exists */
    AioSleepHook sleep_hook;    /* arms the eventfd around the loop's waits */
};

static const AIOCBInfo luring_aiocb_info =
    RAW_AIOCB_INFO(sizeof(LuringRequest));

static inline LuringState *luring_of(RawQueue *q)
{
    return container_of(q, LuringState, q);
}

/* ---- completions -------------------------------------------------------- */

/* Puts @lr back at the head of the local queue (resubmission). */
static void luring_requeue(LuringState *s, LuringRequest *lr)
{
    lr->req.queued = true;
    QTAILQ_INSERT_HEAD(&s->q.pending, &lr->req, next);
    s->q.in_queue++;
}

/* Handles one completion: true when @lr is finished with @*ret. */
static bool luring_complete(LuringState *s, LuringRequest *lr, int res,
                            int *ret)
{
    RawRequest *r = &lr->req;

    if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
        luring_requeue(s, lr);
        return false;
    }
    if (r->type == QEMU_AIO_READ && res > 0 &&
        lr->done + (size_t)res < r->qiov->size) {
        /* Short, but not at the end of the file: read the rest. */
        lr->done += (size_t)res;
        if (lr->rest.iov) {
            qemu_iovec_reset(&lr->rest);
        } else {
            qemu_iovec_init(&lr->rest, r->qiov->niov);
        }
        qemu_iovec_concat(&lr->rest, r->qiov, lr->done,
                          r->qiov->size - lr->done);
        luring_requeue(s, lr);
        return false;
    }
    if (lr->rest.iov) {
        qemu_iovec_destroy(&lr->rest);
    }
    if (res >= 0) {
        res += (int)lr->done;   /* 0 for writes: they are not resubmitted */
    }
    *ret = aioloop__raw_result(r, res);
    return true;
}

static void luring_process_completions(LuringState *s)
{
    struct io_uring_cqe *cqe;

    aioloop__raw_batch_begin(&s->q);
    if (IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_TASKRUN) {
        /* Post what the kernel holds. Retried on EINTR: the eventfd
         * signal that brought us here is consumed already. */
        while (io_uring_get_events(&s->ring) == -EINTR) {
        }
    }
    while (io_uring_cq_ready(&s->ring) &&
           io_uring_peek_cqe(&s->ring, &cqe) == 0 && cqe) {
        LuringRequest *lr = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        int ret;

        /* Off the ring before the callback, which may poll a nested
         * loop that continues with the next completion. */
        io_uring_cqe_seen(&s->ring, cqe);
        if (luring_complete(s, lr, res, &ret)) {
            aioloop__raw_complete(&s->q, &lr->req, ret);
        } else {
            s->q.in_flight--;           /* requeued for the rest */
        }
    }
    aioloop__raw_batch_end(&s->q);
}

static void luring_process(RawQueue *q)
{
    luring_process_completions(luring_of(q));
}

static void luring_completion_cb(void *opaque)
{
    LuringState *s = opaque;

    event_notifier_test_and_clear(&s->e);
    luring_process_completions(s);
}

/* Arms (@on) or disarms the eventfd signal; see the top of the file. */
static inline void luring_evfd_arm(LuringState *s, bool on)
{
    unsigned *flags = s->ring.cq.kflags;

    if (!flags) {
        return;                 /* no CQ flags before 5.8: always armed */
    }
    IO_URING_WRITE_ONCE(*flags, on ? *flags & ~IORING_CQ_EVENTFD_DISABLED
                                   : *flags | IORING_CQ_EVENTFD_DISABLED);
}

static void luring_sleep_prepare(void *opaque)
{
    LuringState *s = opaque;

    luring_evfd_arm(s, true);
    atomic_thread_fence(memory_order_seq_cst);
    if ((IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_TASKRUN) ||
        io_uring_cq_ready(&s->ring)) {
        /* Queued while the signal was off: handle it now. */
        aioloop__bh_schedule_local(s->q.process_bh);
    }
}

static void luring_sleep_finish(void *opaque)
{
    luring_evfd_arm(opaque, false);
}

static bool luring_poll_cb(void *opaque)
{
    LuringState *s = opaque;

    return io_uring_cq_ready(&s->ring) > 0 ||
           (IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_TASKRUN);
}

static void luring_poll_ready(void *opaque)
{
    luring_process_completions(opaque);
}

/* ---- submission --------------------------------------------------------- */

static void luring_prep(LuringState *s, struct io_uring_sqe *sqe,
                        LuringRequest *lr)
{
    RawRequest *r = &lr->req;
    QEMUIOVector *v = lr->done ? &lr->rest : r->qiov;
    uint64_t offset = r->offset + lr->done;

    if (r->type == QEMU_AIO_FLUSH) {
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
    } else if (v->niov == 1 && s->op_read) {
        if (r->type == QEMU_AIO_READ) {
            io_uring_prep_read(sqe, r->fd, v->iov[0].iov_base,
                               (unsigned)v->iov[0].iov_len, offset);
        } else {
            io_uring_prep_write(sqe, r->fd, v->iov[0].iov_base,
                                (unsigned)v->iov[0].iov_len, offset);
        }
    } else if (r->type == QEMU_AIO_READ) {
        io_uring_prep_readv(sqe, r->fd, v->iov, (unsigned)v->niov, offset);
    } else {
        io_uring_prep_writev(sqe, r->fd, v->iov, (unsigned)v->niov, offset);
    }
    io_uring_sqe_set_data(sqe, lr);
}

static int luring_flush(RawQueue *q)
{
    LuringState *s = luring_of(q);

    if (s->broken) {
        RawRequest *r;

        while ((r = aioloop__raw_pop(q))) {
            aioloop__raw_defer(q, r, -s->broken);
        }
        return 0;
    }
    for (;;) {
        int ret, err;

        /* Move what fits from the local queue into the ring. */
        while (q->in_queue && aioloop__raw_room(q)) {
            RawRequest *r = QTAILQ_FIRST(&q->pending);
            struct io_uring_sqe *sqe;

            if (r->type == QEMU_AIO_FLUSH && !s->op_fsync) {
                aioloop__raw_submit_to_pool(q, aioloop__raw_pop(q));
                continue;
            }
            sqe = io_uring_get_sqe(&s->ring);
            if (!sqe) {
                break;
            }
            aioloop__raw_pop(q);
            luring_prep(s, sqe, (LuringRequest *)r);
            q->in_flight++;
            q->unsubmitted++;
        }
        if (!q->unsubmitted) {
            return 0;
        }

        err = AIOLOOP_FAULT(AIOLOOP_FAULT_URING_SUBMIT);
        ret = err ? -err : io_uring_submit(&s->ring);
        if (ret > 0) {
            q->unsubmitted -= (unsigned)ret < q->unsubmitted
                              ? (unsigned)ret : q->unsubmitted;
            aioloop__raw_accepted(q);
            continue;
        }
        if (ret == -EINTR) {
            continue;
        }
        /* Nothing consumed: EAGAIN, EBUSY, ENOMEM or (should never
         * happen) another error. The entries stay in the ring; retry
         * after a completion or a back-off. */
        return ret == -ENOMEM ? ENOMEM : ret == -EBUSY ? EBUSY : EAGAIN;
    }
}

/* ---- the state ---------------------------------------------------------- */

/* Ring set-ups, cheapest completion model first. */
static const unsigned luring_setups[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
        IORING_SETUP_TASKRUN_FLAG,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

/* Creates the ring with the best set-up the kernel accepts and registers
 * the eventfd. A SINGLE_ISSUER ring is created disabled unless @enable,
 * which binds it to the calling thread. Returns 0 or -errno. */
static int luring_ring_open(LuringState *s, bool enable)
{
    int ret = -EINVAL;

    for (unsigned i = 0; i < sizeof(luring_setups) / sizeof(luring_setups[0]); i++) {
        struct io_uring_params p;
        bool single = luring_setups[i] & IORING_SETUP_SINGLE_ISSUER;

        memset(&p, 0, sizeof(p));
        p.flags = luring_setups[i] | (single && !enable ? IORING_SETUP_R_DISABLED : 0);
        ret = io_uring_queue_init_params(LURING_DEPTH, &s->ring, &p);
        if (ret == -EINVAL) {
            continue;                   /* an older kernel: next set-up */
        }
        if (ret < 0) {
            return ret;
        }
        do {
            /* Older kernels quiesce the ring here, interruptibly. */
            ret = io_uring_register_eventfd(&s->ring,
                                            event_notifier_get_fd(&s->e));
        } while (ret == -EINTR);
        if (ret < 0) {
            io_uring_queue_exit(&s->ring);
            return ret;
        }
        s->setup = luring_setups[i];
        s->owner = single && enable ? gettid() : 0;
        return 0;
    }
    return ret;
}

/* Makes the ring usable from the calling thread (attach time). */
static void luring_ring_bind(LuringState *s)
{
    pid_t self;
    int ret;

    if (!(s->setup & IORING_SETUP_SINGLE_ISSUER) || s->broken) {
        return;
    }
    self = gettid();
    if (s->owner == self) {
        return;
    }
    if (!s->owner) {
        /* liburing 2.3 declares io_uring_enable_rings() but does not
         * export it: make the registration call directly. */
        do {
            ret = (int)syscall(__NR_io_uring_register, s->ring.ring_fd,
                               IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        } while (ret < 0 && errno == EINTR);
        if (ret == 0) {
            s->owner = self;
            return;
        }
    }
    /* Bound to another thread (or enabling failed): the ring is idle,
     * make a new one here. */
    io_uring_queue_exit(&s->ring);
    ret = luring_ring_open(s, true);
    if (ret < 0) {
        /* Requests fail with the error instead of being lost. */
        s->broken = -ret;
    }
}

static void luring_probe_ops(LuringState *s)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);

    /* Kernels without the probe (before 5.6) have READV/WRITEV/FSYNC,
     * which every io_uring kernel has, but not READ/WRITE. */
    s->op_read = p && io_uring_opcode_supported(p, IORING_OP_READ) &&
                 io_uring_opcode_supported(p, IORING_OP_WRITE);
    s->op_fsync = !p || io_uring_opcode_supported(p, IORING_OP_FSYNC);
    if (p) {
        io_uring_free_probe(p);
    }
}

static void luring_detach_queue(RawQueue *q, AioContext *ctx)
{
    luring_detach_aio_context(luring_of(q), ctx);
}

LuringState *luring_init(Error **errp)
{
    LuringState *s = aioloop__calloc(1, sizeof(*s));
    int ret;

    if (!s) {
        error_setg_errno(errp, ENOMEM, "io_uring state");
        return NULL;
    }
    ret = event_notifier_init(&s->e, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "io_uring completion eventfd");
        free(s);
        return NULL;
    }
    ret = AIOLOOP_FAULT(AIOLOOP_FAULT_URING_INIT);
    ret = ret ? -ret : luring_ring_open(s, false);
    if (ret < 0) {
        if (ret == -EPERM || ret == -ENOSYS) {
            error_setg_errno(errp, -ret, "io_uring is not available in this "
                             "kernel or is disabled (kernel.io_uring_disabled, "
                             "seccomp)");
        } else {
            error_setg_errno(errp, -ret, "io_uring_queue_init");
        }
        event_notifier_cleanup(&s->e);
        free(s);
        return NULL;
    }
    luring_probe_ops(s);
    aioloop__raw_queue_init(&s->q, luring_flush, luring_process, LURING_DEPTH,
                            false, luring_detach_queue, "an io_uring state");
    return s;
}

void luring_cleanup(LuringState *s)
{
    if (!s) {
        return;
    }
    aioloop__raw_queue_destroy(&s->q);
    io_uring_queue_exit(&s->ring);
    event_notifier_cleanup(&s->e);
    free(s);
}

void luring_attach_aio_context(LuringState *s, AioContext *new_context)
{
    luring_ring_bind(s);
    aioloop__raw_queue_attach(&s->q, new_context);
    s->sleep_hook.prepare = luring_sleep_prepare;
    s->sleep_hook.finish = luring_sleep_finish;
    s->sleep_hook.opaque = s;
    aioloop__sleep_hook_add(new_context, &s->sleep_hook);
    aio_set_fd_handler_poll(new_context, event_notifier_get_fd(&s->e), false,
                            luring_completion_cb, NULL, luring_poll_cb,
                            luring_poll_ready, s);
}

void luring_detach_aio_context(LuringState *s, AioContext *old_context)
{
    if (!s->q.ctx) {
        return;     /* detached already, e.g. by its context's last unref */
    }
    aio_set_fd_handler(old_context, event_notifier_get_fd(&s->e), false,
                       NULL, NULL, NULL);
    aioloop__sleep_hook_remove(&s->sleep_hook);
    luring_evfd_arm(s, true);           /* the default, for the next one */
    aioloop__raw_queue_detach(&s->q, old_context);
}

BlockAIOCB *aioloop__luring_submit_bytes(BlockDriverState *bs, LuringState *s,
                                         int fd, uint64_t offset,
                                         QEMUIOVector *qiov, int type,
                                         BlockCompletionFunc *cb, void *opaque)
{
    RawRequest *r = aioloop__raw_request_new(&luring_aiocb_info, &s->q, bs,
                                             fd, offset, qiov, type, cb,
                                             opaque);

    if (r) {
        aioloop__raw_enqueue(&s->q, r);
    }
    return r ? &r->common : NULL;
}

BlockAIOCB *luring_submit(BlockDriverState *bs, LuringState *s, int fd,
                          int64_t sector_num, QEMUIOVector *qiov,
                          int nb_sectors, BlockCompletionFunc *cb,
                          void *opaque, int type)
{
    uint64_t offset = aioloop__raw_sector_offset(sector_num, qiov, nb_sectors,
                                                 type);

    return aioloop__luring_submit_bytes(bs, s, fd, offset, qiov, type, cb,
                                        opaque);
}

int coroutine_fn luring_co_submit(BlockDriverState *bs, LuringState *s,
                                  int fd, uint64_t offset, QEMUIOVector *qiov,
                                  int type)
{
    LuringRequest lr;

    (void)bs;
    memset(&lr.rest, 0, sizeof(lr.rest));
    lr.done = 0;
    if (!aioloop__raw_request_init(&lr.req, &s->q, fd, offset, qiov, type)) {
        return -EINVAL;
    }
    lr.req.co = qemu_coroutine_self();
    aioloop__raw_enqueue(&s->q, &lr.req);
    return aioloop__raw_co_wait(&lr.req);
}

void luring_io_plug(BlockDriverState *bs, LuringState *s)
{
    (void)bs;
    aioloop__raw_plug(&s->q);
}

void luring_io_unplug(BlockDriverState *bs, LuringState *s)
{
    (void)bs;
    aioloop__raw_unplug(&s->q);
}
