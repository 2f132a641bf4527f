/*
 * linux-aio.c - the Linux native AIO backend, on the io_setup/io_submit
 * system calls directly (no libaio).
 *
 * Each state owns one kernel AIO context of AIOLOOP_RAW_QUEUE_DEPTH
 * slots and an eventfd that the kernel signals on every completion
 * (IOCB_FLAG_RESFD). The eventfd is watched by the attached context,
 * with a busy-poll check for adaptive polling.
 *
 * Completions are read from the AIO ring the kernel maps into our address
 * space (the context id is its address): the kernel appends events and
 * moves 'tail' (we read it with acquire); we copy an event out and move
 * 'head' with release, which hands the slot back to the kernel. No
 * io_getevents call is needed. If the ring does not look like the layout
 * we know (magic, header size, incompatible features), the state falls
 * back to io_getevents with a zero timeout.
 *
 * Every event is taken off the ring before its callback runs, so a
 * callback that polls a nested loop continues from the next event:
 * nothing is delivered twice or lost.
 *
 * Submission errors: io_submit stops at the first iocb it cannot queue;
 * when that is the first of the batch it returns that iocb's error.
 * EAGAIN and ENOMEM are transient refusals (raw-request.c retries them);
 * any other error fails that request alone. IOCB_CMD_FDSYNC is refused
 * with EINVAL by kernels or file systems without it: the flush is then
 * run in the thread pool, as every later one.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>

#include "raw-aio-int.h"
#include "../util/fault.h"
#include "../util/alloc.h"
#include "../util/valgrind-hints.h"

#define LAIO_DEPTH AIOLOOP_RAW_QUEUE_DEPTH

/* The header of the AIO ring (fs/aio.c in the kernel; not in the uapi
 * headers, but ABI since it is mapped into user space). */
struct aio_ring {
    unsigned id;
    unsigned nr;                /* slots in io_events[] */
    unsigned head;              /* written by user space */
    unsigned tail;              /* written by the kernel */
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;     /* sizeof(struct aio_ring) */
    struct io_event io_events[];
};

#define AIO_RING_MAGIC 0xa10a10a1u

typedef struct LaioRequest {
    RawRequest req;             /* first: AIOCB of callback requests */
    struct iocb iocb;
} LaioRequest;

struct LinuxAioState {
    RawQueue q;
    aio_context_t kctx;
    struct aio_ring *ring;      /* NULL: reap with io_getevents */
    EventNotifier e;
    bool fdsync_ok;             /* IOCB_CMD_FDSYNC not refused yet */
    /* The io_getevents fallback's batch, consumed from ev_idx. */
    int ev_idx, ev_max;
    struct io_event events[LAIO_DEPTH];
};

static const AIOCBInfo laio_aiocb_info = RAW_AIOCB_INFO(sizeof(LaioRequest));

static inline LinuxAioState *laio_of(RawQueue *q)
{
    return container_of(q, LinuxAioState, q);
}

/* ---- completions -------------------------------------------------------- */

/* Takes the next completion event, if any, off the ring (or the
 * io_getevents batch). */
static bool laio_next_event(LinuxAioState *s, struct io_event *ev)
{
    struct aio_ring *ring = s->ring;

    if (ring) {
        unsigned head = qatomic_read(&ring->head);
        unsigned tail = qatomic_load_acquire(&ring->tail);

        if (head == tail) {
            return false;
        }
        *ev = ring->io_events[head];
        qatomic_store_release(&ring->head, head + 1 == ring->nr ? 0 : head + 1);
        return true;
    }
    if (s->ev_idx == s->ev_max) {
        struct timespec zero = { 0, 0 };
        long n;

        do {
            n = syscall(__NR_io_getevents, s->kctx, 0L, (long)LAIO_DEPTH,
                        s->events, &zero);
        } while (n < 0 && errno == EINTR);

        s->ev_idx = 0;
        s->ev_max = n > 0 ? (int)n : 0;
        if (!s->ev_max) {
            return false;
        }
    }
    *ev = s->events[s->ev_idx++];
    return true;
}

static void laio_process_completions(LinuxAioState *s)
{
    struct io_event ev;

    aioloop__raw_batch_begin(&s->q);
    while (laio_next_event(s, &ev)) {
        LaioRequest *lr = (LaioRequest *)(uintptr_t)ev.data;

        aioloop__raw_complete(&s->q, &lr->req,
                              aioloop__raw_result(&lr->req, ev.res));
    }
    aioloop__raw_batch_end(&s->q);
}

static void laio_process(RawQueue *q)
{
    laio_process_completions(laio_of(q));
}

static void laio_completion_cb(void *opaque)
{
    LinuxAioState *s = opaque;

    event_notifier_test_and_clear(&s->e);
    laio_process_completions(s);
}

static bool laio_poll_cb(void *opaque)
{
    LinuxAioState *s = opaque;
    struct aio_ring *ring = s->ring;

    if (ring) {
        return qatomic_read(&ring->head) != qatomic_read(&ring->tail);
    }
    return s->ev_idx < s->ev_max;
}

static void laio_poll_ready(void *opaque)
{
    laio_process_completions(opaque);
}

/* ---- submission --------------------------------------------------------- */

static void laio_prep(LinuxAioState *s, LaioRequest *lr)
{
    RawRequest *r = &lr->req;
    struct iocb *io = &lr->iocb;

    memset(io, 0, sizeof(*io));
    io->aio_data = (uintptr_t)lr;
    io->aio_fildes = (uint32_t)r->fd;
    io->aio_flags = IOCB_FLAG_RESFD;
    io->aio_resfd = (uint32_t)event_notifier_get_fd(&s->e);
    io->aio_offset = (int64_t)r->offset;
    if (r->type == QEMU_AIO_FLUSH) {
        io->aio_lio_opcode = IOCB_CMD_FDSYNC;
    } else if (r->qiov->niov == 1) {
        io->aio_lio_opcode = r->type == QEMU_AIO_READ ? IOCB_CMD_PREAD
                                                      : IOCB_CMD_PWRITE;
        io->aio_buf = (uintptr_t)r->qiov->iov[0].iov_base;
        io->aio_nbytes = r->qiov->iov[0].iov_len;
    } else {
        io->aio_lio_opcode = r->type == QEMU_AIO_READ ? IOCB_CMD_PREADV
                                                      : IOCB_CMD_PWRITEV;
        io->aio_buf = (uintptr_t)r->qiov->iov;
        io->aio_nbytes = (uint64_t)r->qiov->niov;
    }
}

static int laio_flush(RawQueue *q)
{
    LinuxAioState *s = laio_of(q);
    struct iocb *batch[LAIO_DEPTH];

    for (;;) {
        unsigned room = aioloop__raw_room(q);
        RawRequest *r;
        int n = 0;
        long ret;
        int err;

        if (!room || !q->in_queue) {
            return 0;
        }
        QTAILQ_FOREACH(r, &q->pending, next) {
            if ((unsigned)n == room) {
                break;
            }
            if (r->type == QEMU_AIO_FLUSH && !s->fdsync_ok) {
                break;
            }
            laio_prep(s, (LaioRequest *)r);
            batch[n++] = &((LaioRequest *)r)->iocb;
        }
        if (n == 0) {
            /* A flush at the head, and the kernel has no fdsync. */
            aioloop__raw_submit_to_pool(q, aioloop__raw_pop(q));
            continue;
        }

        err = AIOLOOP_FAULT(AIOLOOP_FAULT_IO_SUBMIT);
        if (err) {
            ret = -err;
        } else {
            ret = syscall(__NR_io_submit, s->kctx, (long)n, batch);
            if (ret < 0) {
                ret = -errno;
            }
        }
        if (ret > 0) {
            for (long i = 0; i < ret; i++) {
                aioloop__raw_pop(q);
            }
            q->in_flight += (unsigned)ret;
            aioloop__raw_accepted(q);
            if (laio_poll_cb(s)) {
                /* Completed inside io_submit() (page cache, tmpfs): have
                 * the next aio_poll() deliver it from the ring without
                 * waiting in the fd monitor and reading the eventfd. */
                qemu_bh_schedule(q->process_bh);
            }
            continue;
        }
        if (ret == -EINTR) {
            continue;
        }
        if (ret == 0 || ret == -EAGAIN || ret == -ENOMEM) {
            return ret == -ENOMEM ? ENOMEM : EAGAIN;
        }
        /* The head request's own error. */
        r = aioloop__raw_pop(q);
        if (r->type == QEMU_AIO_FLUSH && ret == -EINVAL) {
            s->fdsync_ok = false;
            aioloop__raw_submit_to_pool(q, r);
        } else {
            aioloop__raw_defer(q, r, (int)ret);
        }
    }
}

/* ---- the state ---------------------------------------------------------- */

static void laio_detach_queue(RawQueue *q, AioContext *ctx)
{
    laio_detach_aio_context(laio_of(q), ctx);
}

LinuxAioState *laio_init(void)
{
    LinuxAioState *s = aioloop__calloc(1, sizeof(*s));
    struct aio_ring *ring;
    int err;

    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    err = event_notifier_init(&s->e, 0);
    if (err < 0) {
        free(s);
        errno = -err;
        return NULL;
    }
    err = AIOLOOP_FAULT(AIOLOOP_FAULT_IO_SETUP);
    if (err || syscall(__NR_io_setup, (long)LAIO_DEPTH, &s->kctx) < 0) {
        err = err ? err : errno;
        event_notifier_cleanup(&s->e);
        free(s);
        errno = err;
        return NULL;
    }
    ring = (struct aio_ring *)(uintptr_t)s->kctx;
    if (ring->magic == AIO_RING_MAGIC && ring->incompat_features == 0 &&
        ring->header_length == sizeof(struct aio_ring) && ring->nr > 0) {
        s->ring = ring;
        /* The kernel rounds the ring up; memcheck knows only the part
         * io_setup's argument asked for. */
        aioloop__vg_defined(ring, sizeof(*ring) +
                            ring->nr * sizeof(struct io_event));
    }
    s->fdsync_ok = true;
    aioloop__raw_queue_init(&s->q, laio_flush, laio_process, LAIO_DEPTH, true,
                            laio_detach_queue, "a Linux AIO state");
    return s;
}

void laio_cleanup(LinuxAioState *s)
{
    if (!s) {
        return;
    }
    aioloop__raw_queue_destroy(&s->q);
    syscall(__NR_io_destroy, s->kctx);
    event_notifier_cleanup(&s->e);
    free(s);
}

void laio_attach_aio_context(LinuxAioState *s, AioContext *new_context)
{
    aioloop__raw_queue_attach(&s->q, new_context);
    aio_set_fd_handler_poll(new_context, event_notifier_get_fd(&s->e), false,
                            laio_completion_cb, NULL, laio_poll_cb,
                            laio_poll_ready, s);
}

void laio_detach_aio_context(LinuxAioState *s, AioContext *old_context)
{
    if (!s->q.ctx) {
        return;     /* detached already, e.g. by its context's last unref */
    }
    aio_set_fd_handler(old_context, event_notifier_get_fd(&s->e), false,
                       NULL, NULL, NULL);
    aioloop__raw_queue_detach(&s->q, old_context);
}

BlockAIOCB *aioloop__laio_submit_bytes(BlockDriverState *bs, LinuxAioState *s,
                                       int fd, uint64_t offset,
                                       QEMUIOVector *qiov, int type,
                                       BlockCompletionFunc *cb, void *opaque)
{
    RawRequest *r = aioloop__raw_request_new(&laio_aiocb_info, &s->q, bs, fd,
                                             offset, qiov, type, cb, opaque);

    if (r) {
        aioloop__raw_enqueue(&s->q, r);
    }
    return r ? &r->common : NULL;
}

BlockAIOCB *laio_submit(BlockDriverState *bs, LinuxAioState *s, int fd,
                        int64_t sector_num, QEMUIOVector *qiov, int nb_sectors,
                        BlockCompletionFunc *cb, void *opaque, int type)
{
    uint64_t offset = aioloop__raw_sector_offset(sector_num, qiov, nb_sectors,
                                                 type);

    return aioloop__laio_submit_bytes(bs, s, fd, offset, qiov, type, cb,
                                      opaque);
}

int coroutine_fn laio_co_submit(BlockDriverState *bs, LinuxAioState *s,
                                int fd, uint64_t offset, QEMUIOVector *qiov,
                                int type)
{
    LaioRequest lr;

    (void)bs;
    if (!aioloop__raw_request_init(&lr.req, &s->q, fd, offset, qiov, type)) {
        return -EINVAL;
    }
    lr.req.co = qemu_coroutine_self();
    aioloop__raw_enqueue(&s->q, &lr.req);
    return aioloop__raw_co_wait(&lr.req);
}

void laio_io_plug(BlockDriverState *bs, LinuxAioState *s)
{
    (void)bs;
    aioloop__raw_plug(&s->q);
}

void laio_io_unplug(BlockDriverState *bs, LinuxAioState *s)
{
    (void)bs;
    aioloop__raw_unplug(&s->q);
}
