/*
 * io-uring.c - the io_uring backend, on liburing.
 *
 * Each state owns a ring of AIOLOOP_RAW_QUEUE_DEPTH submission entries
 * (the completion ring is twice that, so it cannot overflow: at most
 * depth requests are in flight) and an eventfd registered with the ring,
 * watched by the attached context with a busy-poll check on the
 * completion ring. Completions are read from the ring in user space.
 *
 * A request the queue gave us (luring_submit_reqs()) is in the
 * submission ring (prepared but not yet consumed by the kernel:
 * 'unsubmitted', which the queue reads through luring_waiting()) or in
 * the kernel. Once prepared, a request stays in the ring until the
 * kernel consumes it: if io_uring_enter() refuses (EAGAIN, EBUSY,
 * ENOMEM, EINTR) the next submission offers the same entries again.
 * Errors of a request itself arrive in its completion.
 *
 * Unlike Linux AIO, io_uring may complete a buffered read short without
 * having reached the end of the file; a short read is therefore
 * resubmitted for the rest, and only a read that returns 0 bytes is the
 * end of the file (the rest is zero-filled). A resubmission goes straight
 * back into the ring, where the request still holds its slot; it is
 * submitted with the rest once the completions have been processed.
 * -EAGAIN and -EINTR completions are resubmitted too, and so is
 * -ECANCELED: this backend never cancels a request in the kernel, but
 * the kernel cancels work it had punted to its io-wq when it cannot
 * start an io-wq worker (recent kernels give up after three attempts,
 * and an attempt fails while a signal is pending on the submitting
 * thread: a signal storm is enough, see tests/faults/test-signals.c),
 * so -ECANCELED means "not done, try again".
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
 * state registers a sleep hook (attach.h): the loop arms the
 * signal (clears IORING_CQ_EVENTFD_DISABLED in the shared ring) just
 * before it waits, and disarms it once awake. Work queued while the
 * signal was off raised IORING_SQ_TASKRUN without signalling; the arming
 * hook looks at that flag after a full barrier (pairing with the
 * kernel's ordered list insertion before it reads the CQ flags) and, if
 * it is up, schedules the completion BH so that the wait does not
 * sleep. Kernels without CQ flags (before 5.8) keep the signal always on.
 *
 * Only regular files and block devices come here (files_only): a read
 * of a pipe or a socket would stay in the kernel until data arrives,
 * where every other engine fails it with -ESPIPE. The queue gives those
 * to the thread pool instead.
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

/* A request's io_uring part: what earlier short reads transferred. */
typedef struct LuringPart {
    size_t done;                /* bytes read by earlier short reads */
    QEMUIOVector rest;          /* what remains after them (done > 0) */
} LuringPart;

_Static_assert(sizeof(LuringPart) <= RAW_ENGINE_AREA,
               "LuringPart must fit in a request's engine area");

struct LuringState {
    RawQueue q;                 /* first: the queue of every engine */
    struct io_uring ring;
    EventNotifier e;
    unsigned unsubmitted;       /* prepared in the ring, not consumed */
    unsigned setup;             /* IORING_SETUP_* of the ring */
    pid_t owner;                /* SINGLE_ISSUER: the thread, 0 = none yet */
    int broken;                 /* errno: re-creating the ring failed;
                                 * there is no ring any more */
    bool op_read;               /* IORING_OP_READ/WRITE exist (5.6) */
    AioSleepHook sleep_hook;    /* arms the eventfd around the loop's waits */
};

static inline LuringState *luring_of(RawQueue *q)
{
    return container_of(q, LuringState, q);
}

static inline LuringPart *luring_part(RawRequest *r)
{
    return RAW_ENGINE_PART(r, LuringPart);
}

/* ---- submission --------------------------------------------------------- */

static void luring_prep(LuringState *s, struct io_uring_sqe *sqe,
                        RawRequest *r)
{
    LuringPart *p = luring_part(r);
    QEMUIOVector *v = p->done ? &p->rest : r->qiov;
    uint64_t offset = r->offset + p->done;

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
    io_uring_sqe_set_data(sqe, r);
}

/* Submits what the ring holds: 0 once the kernel consumed all of it, or
 * the positive errno of a refusal (the entries stay for the next try). */
static int luring_enter(LuringState *s)
{
    while (s->unsubmitted) {
        int err = AIOLOOP_FAULT(AIOLOOP_FAULT_URING_SUBMIT);
        /* With GETEVENTS, the same io_uring_enter() also posts what
         * completed by then as task work, which on a DEFER_TASKRUN ring
         * would otherwise wait for a second io_uring_enter() from the
         * completion BH (strace, aioloop-nbd QD1 reads from the page
         * cache of an ext4 file: 1.07 io_uring_enter and 0.06 eventfd
         * reads per request before, 1.00 and 0 now). A read the kernel
         * hands to its io-wq (a tmpfs file: no IOCB_NOWAIT there) is
         * not done yet and still comes through the BH. */
        int ret = err ? -err : io_uring_submit_and_get_events(&s->ring);

        if (ret > 0) {
            s->unsubmitted -= (unsigned)ret < s->unsubmitted
                              ? (unsigned)ret : s->unsubmitted;
            continue;
        }
        if (ret == -EINTR) {
            continue;
        }
        /* Nothing consumed: EAGAIN, EBUSY, ENOMEM or (should never
         * happen) another error. Retry after a completion or a
         * back-off. */
        return ret == -ENOMEM ? ENOMEM : ret == -EBUSY ? EBUSY : EAGAIN;
    }
    return 0;
}

/* RawEngineOps.submit: @reqs into the ring, then the ring to the kernel. */
static int luring_submit_reqs(RawQueue *q, RawRequest **reqs, unsigned n,
                              unsigned *taken)
{
    LuringState *s = luring_of(q);
    unsigned i;

    if (s->broken) {
        *taken = 0;             /* each request fails with the error */
        return n ? -s->broken : 0;
    }
    for (i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

        if (!sqe) {
            break;              /* the queue offers the rest again */
        }
        luring_prep(s, sqe, reqs[i]);
    }
    *taken = i;
    s->unsubmitted += i;
    return luring_enter(s);
}

/* RawEngineOps.waiting */
static unsigned luring_waiting(RawQueue *q)
{
    return luring_of(q)->unsubmitted;
}

/* Puts @r, which holds its slot still, back into the ring; the queue
 * submits it after the completions (raw_waiting()). */
static void luring_resubmit(LuringState *s, RawRequest *r)
{
    /* Each request in flight has a ring entry of its own: @r's was
     * consumed when the kernel took it. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

    assert(sqe);
    luring_prep(s, sqe, r);
    s->unsubmitted++;
}

/* ---- completions -------------------------------------------------------- */

/* Handles the completion @res of @r: true when @r is finished with
 * @*ret, false when it must be resubmitted. */
static bool luring_complete(RawRequest *r, int res, int *ret)
{
    LuringPart *p = luring_part(r);

    if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
        return false;
    }
    if (r->type == QEMU_AIO_READ && res > 0 &&
        p->done + (size_t)res < r->qiov->size) {
        /* Short, but not at the end of the file: read the rest. */
        p->done += (size_t)res;
        if (p->rest.iov) {
            qemu_iovec_reset(&p->rest);
        } else {
            qemu_iovec_init(&p->rest, r->qiov->niov);
        }
        qemu_iovec_concat(&p->rest, r->qiov, p->done,
                          r->qiov->size - p->done);
        return false;
    }
    if (p->rest.iov) {
        qemu_iovec_destroy(&p->rest);
    }
    if (res >= 0) {
        res += (int)p->done;    /* 0 for writes: they are not resubmitted */
    }
    *ret = aioloop__raw_result(r, res);
    return true;
}

/* RawEngineOps.process */
static void luring_process(RawQueue *q)
{
    LuringState *s = luring_of(q);
    struct io_uring_cqe *cqe;

    aioloop__raw_batch_begin(q);
    if (IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_TASKRUN) {
        /* Post what the kernel holds. Retried on EINTR: the eventfd
         * signal that brought us here is consumed already. */
        while (io_uring_get_events(&s->ring) == -EINTR) {
        }
    }
    while (io_uring_cq_ready(&s->ring) &&
           io_uring_peek_cqe(&s->ring, &cqe) == 0 && cqe) {
        RawRequest *r = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        int ret;

        /* Off the ring before the callback, which may poll a nested
         * loop that continues with the next completion. */
        io_uring_cqe_seen(&s->ring, cqe);
        if (luring_complete(r, res, &ret)) {
            aioloop__raw_complete(q, r, ret);
        } else {
            luring_resubmit(s, r);
        }
    }
    aioloop__raw_batch_end(q);
}

static void luring_completion_cb(void *opaque)
{
    LuringState *s = opaque;

    event_notifier_test_and_clear(&s->e);
    luring_process(&s->q);
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
        aioloop__raw_process_before_sleep(&s->q);
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
    LuringState *s = opaque;

    luring_process(&s->q);
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

    for (unsigned i = 0; i < ARRAY_SIZE(luring_setups); i++) {
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

    if (s->broken) {
        /* An earlier attach could not make a ring: try again here. */
        ret = luring_ring_open(s, true);
        s->broken = ret < 0 ? -ret : 0;
        return;
    }
    if (!(s->setup & IORING_SETUP_SINGLE_ISSUER)) {
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
        /* Requests fail with the error instead of being lost; nothing
         * may touch the ring's memory any more (luring_attach() registers
         * no handler, luring_close() has nothing to exit). */
        s->broken = -ret;
    }
}

/* Which operations the kernel has (a flush it lacks runs in the pool). */
static void luring_probe_ops(LuringState *s)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);

    /* Kernels without the probe (before 5.6) have READV/WRITEV/FSYNC,
     * which every io_uring kernel has, but not READ/WRITE. */
    s->op_read = p && io_uring_opcode_supported(p, IORING_OP_READ) &&
                 io_uring_opcode_supported(p, IORING_OP_WRITE);
    if (p && !io_uring_opcode_supported(p, IORING_OP_FSYNC)) {
        aioloop__raw_flush_in_pool(&s->q);
    }
    if (p) {
        io_uring_free_probe(p);
    }
}

static int luring_open(RawQueue *q, Error **errp)
{
    LuringState *s = luring_of(q);
    int ret;

    ret = event_notifier_init(&s->e, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "io_uring completion eventfd");
        return ret;
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
        return ret;
    }
    luring_probe_ops(s);
    return 0;
}

static void luring_close(RawQueue *q)
{
    LuringState *s = luring_of(q);

    if (!s->broken) {
        io_uring_queue_exit(&s->ring);
    }
    event_notifier_cleanup(&s->e);
}

static void luring_attach(RawQueue *q, AioContext *ctx)
{
    LuringState *s = luring_of(q);

    luring_ring_bind(s);
    if (s->broken) {
        return;             /* no ring: requests fail in submit() */
    }
    s->sleep_hook.prepare = luring_sleep_prepare;
    s->sleep_hook.finish = luring_sleep_finish;
    s->sleep_hook.opaque = s;
    aioloop__sleep_hook_add(ctx, &s->sleep_hook);
    aio_set_fd_handler_poll(ctx, event_notifier_get_fd(&s->e), false,
                            luring_completion_cb, NULL, luring_poll_cb,
                            luring_poll_ready, s);
}

static void luring_detach(RawQueue *q, AioContext *ctx)
{
    LuringState *s = luring_of(q);

    if (s->broken) {
        return;             /* luring_attach() registered nothing */
    }
    aio_set_fd_handler(ctx, event_notifier_get_fd(&s->e), false,
                       NULL, NULL, NULL);
    aioloop__sleep_hook_remove(&s->sleep_hook);
    luring_evfd_arm(s, true);           /* the default, for the next one */
}

const RawEngineOps aioloop__io_uring_ops = {
    .name = "io_uring",
    .what = "an io_uring state",
    .engine = AIO_ENGINE_IO_URING,
    .state_size = sizeof(LuringState),
    .request_size = sizeof(LuringPart),
    .depth = LURING_DEPTH,
    .files_only = true,
    .open = luring_open,
    .close = luring_close,
    .attach = luring_attach,
    .detach = luring_detach,
    .submit = luring_submit_reqs,
    .waiting = luring_waiting,
    .process = luring_process,
};
