/*
 * raw-aio-int.h - the inside of block I/O: the request, the shared
 * request queue, and the table of operations every engine fills in.
 *
 * A request goes down three layers and its completion comes back up:
 *
 *   block-backend.c  the public names: aio_block_* (AioBlockBackend) and
 *                    QEMU's laio_*, luring_*, taio_*; each a line or two
 *                    that calls the queue
 *   raw-request.c    the queue (RawQueue): checks a request, keeps those
 *                    not yet given to the engine, plugging, batching,
 *                    kernel refusals and back-off, deferred completions,
 *                    cancellation, the thread-pool path, attach/detach,
 *                    and delivery of results
 *   io-uring.c       the engines, one `const RawEngineOps` each: open and
 *   linux-aio.c      close a state, attach it to a context, take requests
 *   thread-aio.c     from the queue and give them to the kernel, and hand
 *                    each completion back to the queue
 *
 * Ownership of a request. It is the queue's while it waits in the local
 * queue (`pending`, counted by `in_queue`) or in the deferred-completion
 * list; the engine's from the moment its submit() took it until the
 * engine hands it back with aioloop__raw_complete() (both counted by
 * `in_flight`, which only raw-request.c writes); a thread-pool job's while
 * it runs there (`pool_acb`). An engine never touches the queue's fields:
 * it calls the queue's functions below.
 *
 * An engine that was not built (no liburing, no <linux/aio_abi.h>) is a
 * table whose open() fails with the reason (block-backend.c): no state
 * can exist, and nothing else of it is ever called.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RAW_AIO_INT_H
#define AIOLOOP_RAW_AIO_INT_H

#include <errno.h>
#include <stddef.h>
#include <aioloop/block-backend.h>
#include <aioloop/queue.h>
#include <aioloop/timer.h>
#include "../aio-internal.h"
#include "../attach.h"
#include "../clock-internal.h"

typedef struct RawQueue RawQueue;
typedef struct RawRequest RawRequest;
typedef struct RawEngineOps RawEngineOps;

/* The most an engine may keep in each request (RawEngineOps.request_size:
 * Linux AIO's struct iocb, io_uring's short-read continuation). */
#define RAW_ENGINE_AREA 64

/*
 * The request of every engine. A callback request is an AIOCB from
 * qemu_aio_get() (it starts with BlockAIOCB); a coroutine request lives
 * on the waiting coroutine's stack (RawCoRequest) and has 'co' set.
 */
struct RawRequest {
    BlockAIOCB common;          /* callback requests: from qemu_aio_get() */
    RawQueue *q;
    Coroutine *co;              /* the waiting coroutine, or NULL */
    QEMUIOVector *qiov;         /* NULL for a flush */
    uint64_t offset;
    int fd;
    int ret;                    /* -EINPROGRESS until delivered */
    int deferred_ret;           /* the result waiting in q->done */
    uint8_t type;               /* QEMU_AIO_READ/WRITE/FLUSH */
    bool queued;                /* in q->pending */
    bool in_pool;               /* runs in the thread pool, not the engine
                                 * (raw_start(), aioloop__raw_flush_in_pool()) */
    union {
        QTAILQ_ENTRY(RawRequest) next;  /* q->pending or q->done */
        RawRequest *spare_next;         /* q->spare */
    };
    BlockAIOCB *pool_acb;       /* the thread-pool job running it, or NULL */
};

/* Where a request's engine part starts: right after it, in a callback
 * request's allocation (AIOCBInfo.aiocb_size) as in RawCoRequest. */
#define RAW_REQUEST_HEAD \
    ((sizeof(RawRequest) + _Alignof(max_align_t) - 1) & \
     ~(_Alignof(max_align_t) - 1))

/* A coroutine request, on the waiting coroutine's stack. */
typedef struct RawCoRequest {
    RawRequest r;
    _Alignas(max_align_t) unsigned char part[RAW_ENGINE_AREA];
} RawCoRequest;

_Static_assert(offsetof(RawCoRequest, part) == RAW_REQUEST_HEAD,
               "the engine part follows the request");

/* The engine's part of @r (ops->request_size bytes, zero when the engine
 * first sees the request unless ops->prep_fills_part), as the engine's
 * type @T. */
#define RAW_ENGINE_PART(r, T) ((T *)(void *)((char *)(r) + RAW_REQUEST_HEAD))

/*
 * What an engine does. The queue calls these, in the loop thread of the
 * attached context except open and close. Optional ones may be NULL.
 */
struct RawEngineOps {
    const char *name;           /* "io_uring", "linux-aio", "threads" */
    const char *what;           /* "an io_uring state", for messages */
    AioBlockEngine engine;
    size_t state_size;          /* the engine's state, RawQueue first */
    size_t request_size;        /* its part of every request (at most
                                 * RAW_ENGINE_AREA) */
    unsigned depth;             /* requests in flight at once */
    /* After a second of refusals with nothing in flight, fail the first
     * waiting request with the refusal and go on (Linux AIO); otherwise
     * keep retrying (io_uring: its requests are in the ring already). */
    bool fails_head;
    /* The engine does regular files and block devices only; requests on
     * any other fd (pipe, socket, character device, directory...) run in
     * the thread pool, which answers as preadv/pwritev/fdatasync do. */
    bool files_only;
    /* submit() writes the whole of its part of a request before anything
     * reads it (Linux AIO's iocb): the queue does not zero it first. */
    bool prep_fills_part;

    /* Sets up the engine's part of the new state @q (zero-filled; the
     * queue's part is set up). Returns 0, or -errno with @errp set and
     * nothing left to close. Required. */
    int (*open)(RawQueue *q, Error **errp);
    /* Frees what open() made. @q is detached and idle. */
    void (*close)(RawQueue *q);
    /* Called after the queue's own attach, and before its detach. */
    void (*attach)(RawQueue *q, AioContext *ctx);
    void (*detach)(RawQueue *q, AioContext *ctx);
    /*
     * Gives the kernel @reqs[0..n) (the head of the local queue, at most
     * the free slots; n may be 0) and whatever the engine still holds
     * from earlier calls. Sets *@taken to how many of @reqs the engine
     * took: they are the engine's now (the queue counts them in flight),
     * to be handed back through aioloop__raw_complete(). Returns:
     *   0         the kernel has everything the engine holds; if
     *             *taken < n, the queue calls again with the rest (if
     *             nothing was taken, the engine has just decided that
     *             the first request runs in the pool, e.g. a flush the
     *             kernel refused: aioloop__raw_flush_in_pool());
     *   > 0       a positive errno: the kernel refuses for now (EAGAIN,
     *             ENOMEM, EBUSY); the queue retries after a completion
     *             or a back-off; the engine keeps what it took;
     *   < 0       -errno: @reqs[*taken] fails with it, alone.
     * NULL: the engine has no kernel queue; every request runs in the
     * thread pool (the thread engine).
     */
    int (*submit)(RawQueue *q, RawRequest **reqs, unsigned n,
                  unsigned *taken);
    /* Requests taken by submit() that the kernel has not accepted yet
     * (io_uring: ring entries behind a refusal, resubmissions). NULL:
     * never any. */
    unsigned (*waiting)(RawQueue *q);
    /* Hands back the completions the kernel has posted. Called by the
     * queue's process BH (aioloop__raw_batch_begin()). Required with
     * submit. */
    void (*process)(RawQueue *q);
};

/* The engines, in the order AIO_ENGINE_AUTO tries them. */
extern const RawEngineOps aioloop__io_uring_ops;
extern const RawEngineOps aioloop__linux_aio_ops;
extern const RawEngineOps aioloop__thread_ops;

/* A fd whose kind a state remembers (raw-request.c, raw_fd_kind()). */
typedef struct RawFdKind {
    int fd;                     /* -1: empty */
    bool file;                  /* regular file or block device */
} RawFdKind;

#define RAW_FD_KINDS 8          /* remembered fds per state */

/*
 * The queue: the part of every engine state (its first member) that does
 * not depend on the kernel interface. Loop thread of the attached
 * context only; written only by raw-request.c.
 */
struct RawQueue {
    const RawEngineOps *ops;
    AioContext *ctx;            /* attached context, or NULL */
    unsigned depth;             /* ops->depth */
    bool pool_only;             /* !ops->submit: every request to the pool */
    bool files_only;            /* ops->files_only */
    unsigned in_flight;         /* the engine's or a pool job's */
    unsigned in_queue;          /* requests in 'pending' */
    unsigned plugged;           /* *_io_plug() nesting */
    unsigned batching;          /* completion-processing nesting */
    bool blocked;               /* refused: wait for a completion */
    bool batch_scheduled;       /* batch_bh is scheduled */
    bool flush_in_pool;         /* the engine cannot flush: the pool does */
    int64_t refused_since;      /* first refusal with nothing in flight */
    int64_t backoff_ns;
    QTAILQ_HEAD(, RawRequest) pending;
    QTAILQ_HEAD(, RawRequest) done;
    QEMUBH *done_bh;            /* delivers 'done' */
    QEMUBH *batch_bh;           /* submits a batch a nested loop waits on */
    QEMUBH *process_bh;         /* continues completions in a nested loop */
    QEMUTimer retry_timer;
    RawFdKind fd_kinds[RAW_FD_KINDS];   /* files_only engines */
    /* Callback requests kept for reuse (raw_request_new()), linked
     * through spare_next: an engine's completion that leaves nobody else
     * holding the request puts it here instead of freeing it. */
    RawRequest *spare;
    unsigned nspare;
    AIOCBInfo aiocb_info;       /* of its callback requests */
    /* The context ends first: drain and detach (attach.h,
     * AIO_ATTACH_ORDER_USERS). */
    AioAttachment attachment;
};

/* ------------------------------------------------------------------ */
/* The queue's entry points for the public names (block-backend.c).    */
/* @fn is the public function's name, for messages.                    */

/* A new state of @ops's engine, detached: NULL with @errp and errno set
 * when the engine cannot be opened (errno: the reason; ENOMEM). */
RawQueue *aioloop__raw_open(const RawEngineOps *ops, Error **errp);
/* Frees @q (NULL: nothing); aborts naming @q if it is still attached. */
void aioloop__raw_close(RawQueue *q, const char *fn);
/* Attaches @q to @ctx; aborts if @q is attached already. */
void aioloop__raw_attach(RawQueue *q, AioContext *ctx, const char *fn);
/* Completes every request of @q (plugged ones too), then detaches it
 * from @ctx; nothing if @q is not attached. Aborts when called from
 * inside @q's completion processing. */
void aioloop__raw_detach(RawQueue *q, AioContext *ctx, const char *fn);

/* A callback request at byte @offset: NULL for an unknown @type or a
 * detached @q; bad arguments complete with -EINVAL (raw-aio.h). */
BlockAIOCB *aioloop__raw_submit(RawQueue *q, BlockDriverState *bs, int fd,
                                uint64_t offset, QEMUIOVector *qiov,
                                int type, BlockCompletionFunc *cb,
                                void *opaque);
/* The same in 512-byte sectors (QEMU's *_submit()). */
BlockAIOCB *aioloop__raw_submit_sectors(RawQueue *q, BlockDriverState *bs,
                                        int fd, int64_t sector_num,
                                        QEMUIOVector *qiov, int nb_sectors,
                                        BlockCompletionFunc *cb,
                                        void *opaque, int type);
/* Submits and waits (yields); the result. */
int coroutine_fn aioloop__raw_co_submit(RawQueue *q, int fd, uint64_t offset,
                                        QEMUIOVector *qiov, int type);

void aioloop__raw_plug(RawQueue *q);
/* Aborts naming @q on an unplug without a plug. */
void aioloop__raw_unplug(RawQueue *q, const char *fn);

/* ------------------------------------------------------------------ */
/* The queue's functions for the engines                               */

/* Delivers @ret to @r's coroutine or callback (and frees a callback
 * request). The callback may free @r's queue: nothing of it is used
 * after. (The queue's; engines call aioloop__raw_complete().) */
void aioloop__raw_deliver(RawRequest *r, int ret);

/* A request the engine or a pool job had came back: its slot is free, so
 * a refusal may be over. (The queue's: the only decrement of in_flight.) */
static inline void aioloop__raw_retire(RawQueue *q)
{
    q->in_flight--;
    q->blocked = false;
}

/* Retires a request the engine took and delivers @ret; a callback
 * request nobody else holds is kept for reuse. Only between
 * aioloop__raw_batch_begin() and _end(), where no callback can free @q. */
void aioloop__raw_complete(RawQueue *q, RawRequest *r, int ret);
/* Around an engine's completion processing: requests submitted by the
 * callbacks are batched and submitted at the end of the outermost; and
 * while a callback runs, the process BH is scheduled, so that a nested
 * aio_poll() delivers the completions already posted (whose signal was
 * consumed) instead of waiting for one that will not come. */
void aioloop__raw_batch_begin(RawQueue *q);
void aioloop__raw_batch_end(RawQueue *q);
/* Completions are ready although no signal will announce them: have the
 * next aio_poll() process them (engine->process). The _before_sleep
 * variant is for a sleep hook's prepare() (no wake-up needed). */
void aioloop__raw_process_soon(RawQueue *q);
void aioloop__raw_process_before_sleep(RawQueue *q);
/* The kernel cannot flush for this engine: flushes run in the pool. */
void aioloop__raw_flush_in_pool(RawQueue *q);
/* The result of a request from the kernel's byte count or -errno @res:
 * a short read is zero-filled and succeeds, a short write is -ENOSPC. */
int aioloop__raw_result(RawRequest *r, long long res);

/* ------------------------------------------------------------------ */
/* The thread-pool path (thread-aio.c)                                 */

/* The pool job of a request: its preadv/pwritev/fdatasync in a worker,
 * with the result aioloop__raw_result() would give. */
int aioloop__raw_worker(void *opaque);

#endif /* AIOLOOP_RAW_AIO_INT_H */
