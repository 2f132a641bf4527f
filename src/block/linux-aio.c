/*
 * linux-aio.c - the Linux native AIO backend, on the io_setup/io_submit
 * system calls directly (no libaio).
 *
 * Each state owns one kernel AIO context of AIOLOOP_RAW_QUEUE_DEPTH
 * slots and an eventfd that the kernel signals on the completion of a
 * request submitted with IOCB_FLAG_RESFD. The eventfd is watched by the
 * attached context, with a busy-poll check for adaptive polling.
 *
 * Requests without the eventfd. Signalling the eventfd costs the kernel
 * a reference on it per request (at io_submit) and, per completion, a
 * locked wake-up of its wait queue, which runs the epoll callback of the
 * fd monitor: about a tenth of the CPU time per I/O on tmpfs, where the
 * read itself is a copy. And it is useless when the request completes
 * inside io_submit() (tmpfs, page-cache reads and writes: the kernel
 * does them in the submitting call): the queue looks at the ring right
 * after io_submit() and has the next aio_poll() take the events from it
 * (aioloop__raw_process_soon()). So the state learns, per fd, whether its
 * reads and writes complete inline: after LAIO_INLINE_AFTER io_submit()
 * calls in a row in which every request of the fd completed before the
 * call returned, its reads and writes go without IOCB_FLAG_RESFD. Flushes
 * always carry it (the kernel runs them from a work queue).
 *
 * Such a request that does not complete inline after all (a fd number
 * reused for a slow file, a page that has to be read from a disk) is a
 * straggler: nothing would wake the loop for it. laio_watch(), after
 * every submission and every pass over the ring, counts the requests
 * without eventfd still in the kernel; if there are some and the ring is
 * empty, every fd unlearns (their next requests carry the eventfd
 * again, and learning takes twice as many calls as before, up to
 * LAIO_INLINE_AFTER_MAX) and a rescue timer reads the ring after 20 us, then after twice
 * as long each time it finds a straggler still out, at most every 1 ms,
 * until none is left. The cost of a straggler is that latency, once.
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
 * Submission: the queue offers the head of its local queue
 * (laio_submit_reqs()); io_submit takes a prefix of the batch and stops
 * at the first iocb it cannot queue; when that is the first of the batch
 * it returns that iocb's error. EAGAIN and ENOMEM are transient refusals
 * (the queue retries them); any other error fails that request alone.
 * IOCB_CMD_FDSYNC is refused with EINVAL by kernels or file systems
 * without it: that flush and every later one then run in the thread
 * pool.
 *
 * Only regular files and block devices come here (files_only): on a
 * pipe, a socket or a terminal, io_submit() would wait inside the system
 * call, in the loop thread, until data arrives. The queue gives those to
 * the thread pool instead.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>

#include "raw-aio-int.h"
#include "linux-aio-internal.h"
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

/* io_submit() calls in a row in which a fd's requests all completed
 * inline before its reads and writes go without the eventfd. */
#define LAIO_INLINE_AFTER   16
#define LAIO_INLINE_AFTER_MAX 65536     /* after many stragglers */
#define LAIO_FD_SLOTS       8       /* fds remembered, by fd number */
#define LAIO_RESCUE_FIRST_NS (20 * 1000)
#define LAIO_RESCUE_MAX_NS  (1000 * 1000)
/* Passes over the ring in one call of laio_process() while the requests
 * the callbacks submit complete inline. */
#define LAIO_PASSES         8

/* What the state learned about one fd number. */
typedef struct LaioFd {
    int fd;                     /* -1: empty */
    unsigned inline_runs;       /* io_submit() calls in a row inline */
    unsigned seen;              /* the last call that counted it */
} LaioFd;

struct LinuxAioState {
    RawQueue q;                 /* first: the queue of every engine */
    aio_context_t kctx;
    struct aio_ring *ring;      /* NULL: reap with io_getevents */
    EventNotifier e;
    uint32_t resfd;             /* e's fd, signalled by completions */
    /* Requests without eventfd (laio_prep()); ring only. */
    unsigned inline_after;      /* LAIO_INLINE_AFTER, doubled by each
                                 * straggler; 0: always, UINT_MAX: never
                                 * (aioloop__laio_set_inline_after) */
    unsigned quiet_in_flight;   /* requests without eventfd in the kernel */
    LaioFd fds[LAIO_FD_SLOTS];
    unsigned submit_calls;      /* io_submit() calls that took requests */
    QEMUTimer rescue;           /* reads the ring for stragglers */
    int64_t rescue_ns;          /* its next delay; 0: none armed */
    LaioStats stats;
    /* The io_getevents fallback's batch, consumed from ev_idx. */
    int ev_idx, ev_max;
    struct io_event events[LAIO_DEPTH];
};

_Static_assert(sizeof(struct iocb) <= RAW_ENGINE_AREA,
               "struct iocb must fit in a request's engine area");

static inline LinuxAioState *laio_of(RawQueue *q)
{
    return container_of(q, LinuxAioState, q);
}

static inline struct iocb *laio_iocb(RawRequest *r)
{
    return RAW_ENGINE_PART(r, struct iocb);
}

static inline LaioFd *laio_fd(LinuxAioState *s, int fd)
{
    return &s->fds[(unsigned)fd % LAIO_FD_SLOTS];
}

/* Every fd carries the eventfd again until it has shown anew that its
 * requests complete inline. */
static void laio_unlearn(LinuxAioState *s)
{
    for (unsigned i = 0; i < LAIO_FD_SLOTS; i++) {
        s->fds[i].fd = -1;
        s->fds[i].inline_runs = 0;
    }
}

/* Events posted in the ring and not taken yet. */
static inline unsigned laio_ring_avail(const struct aio_ring *ring)
{
    unsigned head = qatomic_read(&ring->head);
    unsigned tail = qatomic_load_acquire(&ring->tail);

    return tail >= head ? tail - head : tail + ring->nr - head;
}

static void laio_process(RawQueue *q);

/*
 * After a submission or a pass over the ring: make sure that something
 * will deliver what the kernel has or will have. Events in the ring: the
 * next aio_poll() takes them (no signal needed, none may come). Requests
 * without eventfd still in the kernel and an empty ring: stragglers; the
 * rescue timer looks for them.
 */
static void laio_watch(LinuxAioState *s)
{
    if (!s->quiet_in_flight) {
        s->rescue_ns = 0;               /* no straggler left */
    }
    if (laio_ring_avail(s->ring)) {
        aioloop__raw_process_soon(&s->q);
        return;
    }
    if (!s->quiet_in_flight) {
        return;
    }
    if (!s->rescue_ns) {
        s->rescue_ns = LAIO_RESCUE_FIRST_NS;
        s->stats.stragglers++;
        laio_unlearn(s);
        /* A device that completes most requests inline but not all must
         * not cost a straggler every 17 calls: learning takes twice as
         * long after each. */
        if (s->inline_after <= LAIO_INLINE_AFTER_MAX / 2) {
            s->inline_after *= 2;
        }
    }
    if (!timer_pending(&s->rescue)) {
        timer_mod_ns(&s->rescue, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                                 s->rescue_ns);
    }
}

static void laio_rescue_cb(void *opaque)
{
    LinuxAioState *s = opaque;

    s->stats.rescues++;
    s->rescue_ns *= 2;
    if (s->rescue_ns > LAIO_RESCUE_MAX_NS) {
        s->rescue_ns = LAIO_RESCUE_MAX_NS;
    }
    laio_process(&s->q);
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

static void laio_process(RawQueue *q)
{
    LinuxAioState *s = laio_of(q);
    struct io_event ev;

    for (unsigned pass = 1;; pass++) {
        aioloop__raw_batch_begin(q);
        while (laio_next_event(s, &ev)) {
            RawRequest *r = (RawRequest *)(uintptr_t)ev.data;

            if (!(laio_iocb(r)->aio_flags & IOCB_FLAG_RESFD)) {
                s->quiet_in_flight--;
            }
            aioloop__raw_complete(q, r, aioloop__raw_result(r, ev.res));
        }
        aioloop__raw_batch_end(q);
        /* What the callbacks submitted (at the end of the batch) may have
         * completed inside io_submit() already (tmpfs, page cache): take
         * it now instead of in the next aio_poll(), for which the watch
         * scheduled the process BH. At most LAIO_PASSES passes, so that
         * the context's other handlers and timers wait no longer than
         * that many round trips. */
        if (pass >= LAIO_PASSES || !s->ring || !laio_ring_avail(s->ring)) {
            break;
        }
    }
    if (unlikely(s->quiet_in_flight || s->rescue_ns)) {
        laio_watch(s);
    }
}

static void laio_completion_cb(void *opaque)
{
    LinuxAioState *s = opaque;

    event_notifier_test_and_clear(&s->e);
    laio_process(&s->q);
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
    LinuxAioState *s = opaque;

    laio_process(&s->q);
}

/* ---- submission --------------------------------------------------------- */

static struct iocb *laio_prep(LinuxAioState *s, RawRequest *r)
{
    struct iocb *io = laio_iocb(r);

    memset(io, 0, sizeof(*io));
    io->aio_data = (uintptr_t)r;
    io->aio_fildes = (uint32_t)r->fd;
    io->aio_offset = (int64_t)r->offset;
    if (r->type == QEMU_AIO_FLUSH) {
        io->aio_lio_opcode = IOCB_CMD_FDSYNC;
        if (s->inline_after) {          /* else: tests, everything quiet */
            io->aio_flags = IOCB_FLAG_RESFD;
            io->aio_resfd = s->resfd;
        }
        return io;
    }
    {
        LaioFd *f = laio_fd(s, r->fd);

        if (s->inline_after &&
            (f->fd != r->fd || f->inline_runs < s->inline_after)) {
            io->aio_flags = IOCB_FLAG_RESFD;
            io->aio_resfd = s->resfd;
        }
    }
    if (r->qiov->niov == 1) {
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
    return io;
}

/* After io_submit() took @batch[0..taken): counts the requests without
 * eventfd, and learns whether the fds' requests complete inline, from
 * the events posted during the call (@before: the ring's tail before it;
 * a completion of an older request may pass for one of these: the
 * watch catches what the guess gets wrong). */
static void laio_learn(LinuxAioState *s, struct iocb **batch, unsigned taken,
                       unsigned before)
{
    unsigned after = qatomic_load_acquire(&s->ring->tail);
    unsigned posted = after >= before ? after - before
                                      : after + s->ring->nr - before;
    bool all_inline = posted >= taken;
    unsigned call = ++s->submit_calls;

    for (unsigned i = 0; i < taken; i++) {
        struct iocb *io = batch[i];
        LaioFd *f;

        if (!(io->aio_flags & IOCB_FLAG_RESFD)) {
            s->quiet_in_flight++;
            s->stats.quiet++;
        }
        if (io->aio_lio_opcode == IOCB_CMD_FDSYNC) {
            continue;
        }
        f = laio_fd(s, (int)io->aio_fildes);
        if (f->fd != (int)io->aio_fildes) {
            f->fd = (int)io->aio_fildes;
            f->inline_runs = 0;
        } else if (f->seen == call) {
            continue;                   /* once per call */
        }
        f->seen = call;
        if (!all_inline) {
            f->inline_runs = 0;
        } else if (f->inline_runs < UINT_MAX) {
            f->inline_runs++;
        }
    }
}

/* RawEngineOps.submit: one io_submit() of @reqs. */
static int laio_submit_reqs(RawQueue *q, RawRequest **reqs, unsigned n,
                            unsigned *taken)
{
    LinuxAioState *s = laio_of(q);
    struct iocb *batch[LAIO_DEPTH];
    long ret;

    *taken = 0;
    if (n == 0) {
        return 0;               /* nothing held back here */
    }
    unsigned before = 0;

    for (unsigned i = 0; i < n; i++) {
        batch[i] = laio_prep(s, reqs[i]);
    }
    if (s->ring) {
        before = qatomic_load_acquire(&s->ring->tail);
    }
    do {
        int err = AIOLOOP_FAULT(AIOLOOP_FAULT_IO_SUBMIT);

        if (err) {
            ret = -err;
        } else {
            ret = syscall(__NR_io_submit, s->kctx, (long)n, batch);
            if (ret < 0) {
                ret = -errno;
            }
        }
    } while (ret == -EINTR);

    if (ret > 0) {
        *taken = (unsigned)ret;
        if (s->ring) {
            laio_learn(s, batch, *taken, before);
            /* Completed inside io_submit() (page cache, tmpfs): have the
             * next aio_poll() deliver it from the ring without waiting in
             * the fd monitor and reading the eventfd; requests without
             * eventfd still out: the rescue timer. */
            laio_watch(s);
        } else if (laio_poll_cb(s)) {
            aioloop__raw_process_soon(q);
        }
        return 0;
    }
    if (ret == 0 || ret == -EAGAIN || ret == -ENOMEM) {
        return ret == -ENOMEM ? ENOMEM : EAGAIN;
    }
    /* The first request's own error. */
    if (reqs[0]->type == QEMU_AIO_FLUSH && ret == -EINVAL) {
        aioloop__raw_flush_in_pool(q);      /* no IOCB_CMD_FDSYNC here */
        return 0;
    }
    return (int)ret;
}

/* ---- the state ---------------------------------------------------------- */

static int laio_open(RawQueue *q, Error **errp)
{
    LinuxAioState *s = laio_of(q);
    struct aio_ring *ring;
    int err;

    err = event_notifier_init(&s->e, 0);
    if (err < 0) {
        error_setg_errno(errp, -err, "Linux AIO completion eventfd");
        return err;
    }
    s->resfd = (uint32_t)event_notifier_get_fd(&s->e);
    err = AIOLOOP_FAULT(AIOLOOP_FAULT_IO_SETUP);
    if (err || syscall(__NR_io_setup, (long)LAIO_DEPTH, &s->kctx) < 0) {
        err = err ? err : errno;
        error_setg_errno(errp, err, "Linux AIO is not available (io_setup)");
        event_notifier_cleanup(&s->e);
        return -err;
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
    /* Without the ring, every request carries the eventfd. */
    s->inline_after = s->ring ? LAIO_INLINE_AFTER : UINT_MAX;
    laio_unlearn(s);
    return 0;
}

static void laio_close(RawQueue *q)
{
    LinuxAioState *s = laio_of(q);

    syscall(__NR_io_destroy, s->kctx);
    event_notifier_cleanup(&s->e);
}

static void laio_attach(RawQueue *q, AioContext *ctx)
{
    LinuxAioState *s = laio_of(q);

    aio_timer_init(ctx, &s->rescue, QEMU_CLOCK_REALTIME, SCALE_NS,
                   laio_rescue_cb, s);
    s->rescue_ns = 0;
    laio_unlearn(s);
    aio_set_fd_handler_poll(ctx, event_notifier_get_fd(&s->e), false,
                            laio_completion_cb, NULL, laio_poll_cb,
                            laio_poll_ready, s);
}

static void laio_detach(RawQueue *q, AioContext *ctx)
{
    LinuxAioState *s = laio_of(q);

    aio_set_fd_handler(ctx, event_notifier_get_fd(&s->e), false,
                       NULL, NULL, NULL);
    assert(!s->quiet_in_flight);        /* drained */
    timer_del(&s->rescue);
    timer_deinit(&s->rescue);
    s->rescue_ns = 0;
}

void aioloop__laio_stats(LinuxAioState *s, LaioStats *st)
{
    *st = s->stats;
}

void aioloop__laio_set_inline_after(LinuxAioState *s, unsigned n)
{
    if (s->ring) {
        s->inline_after = n;
    }
}

bool aioloop__laio_has_ring(LinuxAioState *s)
{
    return s->ring != NULL;
}

const RawEngineOps aioloop__linux_aio_ops = {
    .name = "linux-aio",
    .what = "a Linux AIO state",
    .engine = AIO_ENGINE_LINUX_AIO,
    .state_size = sizeof(LinuxAioState),
    .request_size = sizeof(struct iocb),
    .depth = LAIO_DEPTH,
    .fails_head = true,
    .files_only = true,
    .prep_fills_part = true,            /* laio_prep() clears the iocb */
    .open = laio_open,
    .close = laio_close,
    .attach = laio_attach,
    .detach = laio_detach,
    .submit = laio_submit_reqs,
    .process = laio_process,
};
