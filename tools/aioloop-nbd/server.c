/*
 * server.c - aioloop-nbd's connections and requests, on aioloop.
 *
 * Threads. The main thread runs the main AioContext: the listening
 * sockets, signals, the connection count and shutdown. Connections are
 * served by workers: one per IOThread with --iothreads N (connections
 * handed out round-robin), else one worker on the main context. Each
 * worker has its own AioBlockBackend (a backend belongs to one context)
 * on the shared file descriptor. Everything of a connection happens in
 * its worker's thread, so its fields need no lock; the main thread and
 * the workers talk only through one-shot BHs.
 *
 * One connection. A receive coroutine does the handshake, then reads
 * requests one after the other (through a 64 KiB buffer, so one recv()
 * may bring many requests) and starts one coroutine per request (reads
 * and writes done in place need none: see conn_serve_in_place()); those
 * run concurrently (aio_block_co_submit), and each sends its reply under
 * the connection's CoMutex, so replies never interleave on the wire.
 * While it parses a batch the receive coroutine keeps the block backend
 * plugged, so the requests of one recv() go to the kernel in one
 * submission.
 *
 * Back-pressure. At most NBD_CONN_MAX_REQS requests (and about
 * NBD_CONN_MAX_BYTES of buffers) are in flight per connection; beyond
 * that the receive coroutine stops reading. A client that never reads
 * its replies therefore fills its socket, its request coroutines wait in
 * send, and the server stops reading from it: memory stays bounded and
 * every other connection goes on.
 *
 * Endings. A protocol violation, or a send that fails, shuts the socket
 * down (hard disconnect); NBD_CMD_DISC and end-of-file stop reading.
 * Either way the connection waits for its requests in flight (writes are
 * never abandoned half-way) before its socket is closed and its memory
 * freed. SIGTERM (or SIGINT, SIGHUP: read from a signalfd, see
 * on_signalfd()) stops accepting, stops reading, lets requests finish and
 * their replies go out (STOP_GRACE_MS for clients that do not read),
 * flushes the file and exits 0.
 *
 * The socket's read handler stays registered while the receive
 * coroutine waits for input, and is removed the first time it fires with
 * nobody waiting (the loop is level-triggered): no epoll_ctl() per
 * request.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "export.h"
#include "nbd-proto.h"
#include "server.h"

#define NBD_CONN_MAX_REQS   128
#define NBD_CONN_MAX_BYTES  (64u * 1024 * 1024)
#define NBD_RBUF_SIZE       (64 * 1024)
#define NBD_ZERO_BUF_SIZE   (1024 * 1024)
#define NBD_IN_PLACE_MAX    (128 * 1024)
#define NBD_HELD_MAX        64          /* replies held for one sendmsg() */
#define NBD_HELD_BYTES      (256 * 1024)
#define NBD_MAX_LISTEN      8
#define STOP_GRACE_MS       5000
#define ACCEPT_RETRY_MS     100

typedef struct NbdServer NbdServer;
typedef struct NbdConn NbdConn;

/* Request buffers of 4 KiB << class, kept for reuse per worker: malloc
 * and free of page-aligned buffers per request cost a brk() or mmap()
 * every few requests (strace: 2,400 brk per 50,000 reads at QD32). */
#define NBD_POOL_CLASSES    9       /* 4 KiB .. 1 MiB */
#define NBD_POOL_KEEP       64      /* buffers kept per class */

typedef struct NbdBufPool {
    void *free[NBD_POOL_CLASSES][NBD_POOL_KEEP];
    int nfree[NBD_POOL_CLASSES];
} NbdBufPool;

#define NBD_REQ_KEEP        256

typedef struct NbdReq NbdReq;

typedef struct NbdWorker {
    NbdServer *server;
    AioContext *ctx;
    IOThread *iothread;         /* NULL: the main context */
    AioBlockBackend *backend;
    QLIST_HEAD(, NbdConn) conns;    /* worker thread only */
    NbdBufPool pool;                /* worker thread only */
    NbdReq *req_free[NBD_REQ_KEEP];  /* worker thread only: kept for reuse
                                      * (calloc() per request was 1/4 of
                                      * our instructions at QD1) */
    int nreq_free;
    QemuSemaphore ready;
} NbdWorker;

struct NbdConn {
    NbdWorker *w;
    NbdServer *server;
    int fd;
    unsigned long id;
    NbdSession sess;
    Coroutine *recv_co;
    QEMUTimer *hs_timer;        /* handshake limit */

    CoMutex send_lock;          /* one reply on the wire at a time */
    Coroutine *send_waiter;     /* holder of send_lock waiting for POLLOUT */

    unsigned inflight;          /* requests not over (coroutines alive,
                                 * replies held) */
    uint64_t inflight_bytes;    /* their buffers */
    unsigned held;              /* replies of requests served in place by
                                 * recv_co, in outq, not yet sent */
    size_t held_bytes;          /* their read data */
    bool recv_wait_read;        /* recv_co yielded for input */
    bool recv_wait_req;         /* recv_co yielded for a request to end */
    bool read_registered;       /* the fd's read handler is set */
    bool plugged;               /* recv_co holds a plug of the backend */
    bool drained;               /* the last recv() left the socket empty */
    bool closing;               /* read no more requests */
    bool dead;                  /* the socket is shut down: no more sends */

    uint8_t *rbuf;              /* receive buffer, rbuf[rpos..rlen) unread */
    size_t rpos, rlen;
    QSIMPLEQ_HEAD(, NbdReq) outq;   /* replies built, not yet sent */
    QLIST_ENTRY(NbdConn) next;
};

struct NbdReq {
    NbdConn *c;
    NbdRequest r;
    uint32_t error;             /* preset NBD error: no I/O, just reply */
    const char *msg;
    void *buf;
    QEMUIOVector qiov;
    struct iovec iov[2];
    int iovcnt;
    bool sent;                  /* on the wire (or dropped: socket dead) */
    bool held;                  /* served by recv_co without a coroutine:
                                 * outq owns it, the flush frees it */
    bool in_place_tried;        /* rw_in_place() said no: the engine */
    QSIMPLEQ_ENTRY(NbdReq) next;    /* in the connection's outq */
    /* The reply header, once built (iov[0]; iov[1]: the read data). Last:
     * req_new() clears what comes before it. */
    uint8_t hdr[NBD_REPLY_HEADER_MAX];
};

struct NbdServer {
    const NbdServerOptions *o;
    NbdFile file;
    NbdExport exp;
    char uri[512];
    AioContext *ctx;            /* the main context */
    NbdWorker *workers;
    int nworkers, next_worker;
    int lfds[NBD_MAX_LISTEN];
    int nlfds;
    bool accepting;             /* listening fd handlers are set */
    unsigned nconns;            /* main thread only */
    unsigned long served;
    bool stopping, done;
    QEMUBH *stop_bh;
    int sigfd;                  /* SIGTERM, SIGINT, SIGHUP (signalfd) */
    QEMUTimer *grace_timer, *retry_timer;
    void *zero_buf;             /* NBD_ZERO_BUF_SIZE zeroes, never written */
    int in_place[2];            /* IN_PLACE_* for reads, for writes;
                                 * atomic (lowered by any worker when
                                 * RWF_NOWAIT is refused) */
};

static void server_update_accept(NbdServer *s);

static void logv(const NbdServer *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logv(const NbdServer *s, const char *fmt, ...)
{
    va_list ap;

    if (!s->o->verbose) {
        return;
    }
    va_start(ap, fmt);
    fputs("aioloop-nbd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- socket I/O of a connection (worker thread) ------------------------- */

static void conn_readable(void *opaque);
static void conn_writable(void *opaque);
static void coroutine_fn conn_flush_held(NbdConn *c);
static void req_done(NbdReq *q);

static void conn_set_handlers(NbdConn *c)
{
    aio_set_fd_handler(c->w->ctx, c->fd, false,
                       c->read_registered ? conn_readable : NULL,
                       c->send_waiter ? conn_writable : NULL, c);
}

static void conn_readable(void *opaque)
{
    NbdConn *c = opaque;

    if (c->recv_wait_read) {
        c->recv_wait_read = false;
        qemu_coroutine_enter(c->recv_co);   /* may free c */
    } else {
        /* Nobody waits: stop watching (level-triggered, it would fire
         * on every iteration) until somebody waits again. This may be a
         * hang-up, which comes here and not to the write handler: a
         * sender waiting for room retries once (and sees EPIPE). */
        Coroutine *co = c->send_waiter;

        c->read_registered = false;
        c->send_waiter = NULL;
        conn_set_handlers(c);
        if (co) {
            qemu_coroutine_enter(co);
        }
    }
}

static void conn_writable(void *opaque)
{
    NbdConn *c = opaque;
    Coroutine *co = c->send_waiter;

    c->send_waiter = NULL;
    conn_set_handlers(c);
    if (co) {
        qemu_coroutine_enter(co);
    }
}

static void conn_unplug(NbdConn *c)
{
    if (c->plugged) {
        c->plugged = false;
        aio_block_unplug(c->w->backend);
    }
}

/* Yields until the socket is readable (or shut down). recv_co only. */
static void coroutine_fn conn_wait_readable(NbdConn *c)
{
    conn_flush_held(c);         /* the replies of this batch */
    conn_unplug(c);             /* submit what this batch queued */
    if (!c->read_registered) {
        c->read_registered = true;
        conn_set_handlers(c);
    }
    c->recv_wait_read = true;
    qemu_coroutine_yield();
}

/*
 * Hard disconnect: no more bytes either way. A sender waiting for room
 * is woken to find the socket dead: a socket we shut down while its peer
 * holds our unread data reports only POLLHUP, which the loop gives to
 * the read handler, never POLLOUT.
 */
static void conn_shutdown(NbdConn *c)
{
    Coroutine *co = c->send_waiter;

    c->dead = true;
    c->closing = true;
    shutdown(c->fd, SHUT_RDWR);
    if (co) {
        c->send_waiter = NULL;
        conn_set_handlers(c);
        /* Entered from the next aio_poll(), never from here: callers
         * (a timer, a BH walking the connections) may not see c freed
         * under them. Nothing else enters it: send_waiter is cleared. */
        aio_co_schedule(c->w->ctx, co);
    }
}

/*
 * Reads exactly @len bytes into @dst (NULL: read and drop them).
 * Returns 0, or -1 on end-of-file or error. recv_co only.
 */
static int coroutine_fn conn_read(NbdConn *c, void *dst, size_t len)
{
    uint8_t *d = dst;

    while (len > 0) {
        size_t avail = c->rlen - c->rpos;
        ssize_t n;

        if (avail > 0) {
            size_t k = avail < len ? avail : len;

            if (d) {
                memcpy(d, c->rbuf + c->rpos, k);
                d += k;
            }
            c->rpos += k;
            len -= k;
            continue;
        }
        c->rpos = c->rlen = 0;
        if (c->drained) {
            /* The last recv() emptied the socket: wait first rather
             * than pay for a recv() that says EAGAIN. */
            c->drained = false;
            conn_wait_readable(c);
            continue;
        }
        if (d && len >= NBD_RBUF_SIZE) {
            n = recv(c->fd, d, len, MSG_DONTWAIT);     /* straight in */
            if (n > 0) {
                d += n;
                len -= (size_t)n;
            }
        } else {
            n = recv(c->fd, c->rbuf, NBD_RBUF_SIZE, MSG_DONTWAIT);
            if (n > 0) {
                c->rlen = (size_t)n;
                c->drained = n < NBD_RBUF_SIZE;
            }
        }
        if (n > 0) {
            if (!c->plugged && c->sess.transmission) {
                c->plugged = true;
                aio_block_plug(c->w->backend);
            }
            continue;
        }
        if (n == 0) {
            return -1;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            conn_wait_readable(c);
            continue;
        }
        return -1;
    }
    return 0;
}

/* Sends @iov (modified) under send_lock. Returns 0 or -1 (the socket is
 * then shut down). */
static int coroutine_fn conn_send_locked(NbdConn *c, struct iovec *iov,
                                         int cnt)
{
    while (cnt > 0) {
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
        ssize_t n;

        if (c->dead) {
            return -1;
        }
        n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->send_waiter = qemu_coroutine_self();
                conn_set_handlers(c);
                qemu_coroutine_yield();
                continue;
            }
            conn_shutdown(c);
            return -1;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/*
 * Sends every reply in c->outq, as few sendmsg() calls as the iovec
 * limit allows, marking each sent (or dropped, once the socket is dead)
 * and taking it off the queue; replies queued while this waits for the
 * socket go out too. Under send_lock.
 */
#define NBD_FLUSH_IOV 128

static void coroutine_fn conn_flush_locked(NbdConn *c)
{
    while (!QSIMPLEQ_EMPTY(&c->outq)) {
        struct iovec iov[NBD_FLUSH_IOV];
        NbdReq *q, *last = NULL;
        int cnt = 0;
        bool end;

        QSIMPLEQ_FOREACH(q, &c->outq, next) {
            if (cnt + q->iovcnt > NBD_FLUSH_IOV) {
                break;
            }
            memcpy(iov + cnt, q->iov, (size_t)q->iovcnt * sizeof(*iov));
            cnt += q->iovcnt;
            last = q;
        }
        conn_send_locked(c, iov, cnt);      /* fails only when dead */
        do {
            q = QSIMPLEQ_FIRST(&c->outq);
            QSIMPLEQ_REMOVE_HEAD(&c->outq, next);
            q->sent = true;
            end = q == last;
            if (q->held) {
                c->held--;
                c->held_bytes -= q->iovcnt > 1 ? q->iov[1].iov_len : 0;
                req_done(q);
            }
        } while (!end);
    }
}

/* Sends the replies recv_co holds (and any other queued). recv_co only,
 * before it waits for anything: those requests are over but for their
 * reply. */
static void coroutine_fn conn_flush_held(NbdConn *c)
{
    if (c->held == 0) {
        return;
    }
    qemu_co_mutex_lock(&c->send_lock);
    conn_flush_locked(c);
    qemu_co_mutex_unlock(&c->send_lock);
}

static int coroutine_fn conn_send(NbdConn *c, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    int ret;

    qemu_co_mutex_lock(&c->send_lock);
    ret = conn_send_locked(c, &iov, 1);
    qemu_co_mutex_unlock(&c->send_lock);
    return ret;
}

/* ---- requests ----------------------------------------------------------- */

typedef struct FileJob {
    const NbdFile *file;
    uint64_t off, len;
    bool may_unmap;
    bool discard;               /* punch a hole, else zero the range */
} FileJob;

static int file_job(void *opaque)
{
    FileJob *j = opaque;

    return j->discard ? nbd_file_discard(j->file, j->off, j->len)
                      : nbd_file_zero(j->file, j->off, j->len, j->may_unmap);
}

static int coroutine_fn do_flush(NbdConn *c)
{
    return aio_block_co_submit(c->w->backend, c->server->file.fd, 0, NULL,
                               QEMU_AIO_FLUSH);
}

/* Writes zeroes from the shared zero buffer, 1 MiB at a time. */
static int coroutine_fn write_zero_data(NbdConn *c, uint64_t off,
                                        uint64_t len)
{
    NbdServer *s = c->server;

    while (len > 0) {
        size_t n = len < NBD_ZERO_BUF_SIZE ? (size_t)len : NBD_ZERO_BUF_SIZE;
        QEMUIOVector qiov;
        int ret;

        qemu_iovec_init_buf(&qiov, s->zero_buf, n);
        ret = aio_block_co_submit(c->w->backend, s->file.fd, off, &qiov,
                                  QEMU_AIO_WRITE);
        if (ret < 0) {
            return ret;
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int coroutine_fn do_write_zeroes(NbdConn *c, const NbdRequest *r)
{
    NbdServer *s = c->server;
    FileJob j = { .file = &s->file, .off = r->offset, .len = r->len,
                  .may_unmap = s->o->discard &&
                               !(r->flags & NBD_CMD_FLAG_NO_HOLE) };
    int ret = thread_pool_submit_co(aio_get_thread_pool(c->w->ctx),
                                    file_job, &j);

    if (ret == -ENOTSUP) {
        if (r->flags & NBD_CMD_FLAG_FAST_ZERO) {
            return -ENOTSUP;    /* no faster than writing: say so */
        }
        ret = write_zero_data(c, r->offset, r->len);
    }
    return ret;
}

static int coroutine_fn do_trim(NbdConn *c, const NbdRequest *r)
{
    NbdServer *s = c->server;
    FileJob j = { .file = &s->file, .off = r->offset, .len = r->len,
                  .discard = true };
    int ret;

    if (!s->o->discard) {
        return 0;               /* --discard=ignore: a trim is a hint */
    }
    ret = thread_pool_submit_co(aio_get_thread_pool(c->w->ctx), file_job, &j);
    return ret == -ENOTSUP ? 0 : ret;
}

static int pool_class(uint32_t len)
{
    int k = 0;

    while (k < NBD_POOL_CLASSES && (4096u << k) < len) {
        k++;
    }
    return k;                   /* NBD_POOL_CLASSES: too big to pool */
}

/* A 4096-aligned buffer of at least @len bytes, or NULL. */
static void *buf_get(NbdWorker *w, uint32_t len)
{
    int k = pool_class(len);
    void *p;

    if (k < NBD_POOL_CLASSES && w->pool.nfree[k] > 0) {
        return w->pool.free[k][--w->pool.nfree[k]];
    }
    if (posix_memalign(&p, 4096, k < NBD_POOL_CLASSES ? 4096u << k : len)) {
        return NULL;
    }
    return p;
}

static void buf_put(NbdWorker *w, void *p, uint32_t len)
{
    int k = pool_class(len);

    if (k < NBD_POOL_CLASSES && w->pool.nfree[k] < NBD_POOL_KEEP) {
        w->pool.free[k][w->pool.nfree[k]++] = p;
    } else {
        free(p);
    }
}

static void pool_free(NbdBufPool *pool)
{
    int k;

    for (k = 0; k < NBD_POOL_CLASSES; k++) {
        while (pool->nfree[k] > 0) {
            free(pool->free[k][--pool->nfree[k]]);
        }
    }
}

/* A cleared request (but for its reply header), or NULL. */
static NbdReq *req_new(NbdWorker *w)
{
    NbdReq *q = w->nreq_free > 0 ? w->req_free[--w->nreq_free] :
                malloc(sizeof(*q));

    if (q) {
        memset(q, 0, offsetof(NbdReq, hdr));
    }
    return q;
}

static void req_free(NbdReq *q)
{
    NbdWorker *w = q->c->w;

    if (q->buf) {
        buf_put(w, q->buf, q->r.len);
    }
    if (w->nreq_free < NBD_REQ_KEEP) {
        w->req_free[w->nreq_free++] = q;
    } else {
        free(q);
    }
}

/*
 * Reads and writes in place (--in-place=auto). The engines are there so
 * that a call that may wait for a device does not hold the loop; a call
 * that cannot wait needs none of them. On a file in memory (tmpfs, ramfs)
 * a read or write is a copy: done in place whatever the engine. (io_uring
 * would hand each one to its io-wq, tmpfs having no IOCB_NOWAIT: a thread
 * hop per request, as in our pool.) On a file read through the page
 * cache, with the thread engine, preadv2(RWF_NOWAIT) does the copy when
 * the data is cached and fails with EAGAIN when it would wait. Such
 * requests (up to NBD_IN_PLACE_MAX bytes, so that no request holds the
 * loop long) run in the connection's thread, and the reply follows at
 * once: with the thread engine, per request two futex calls, an eventfd
 * write and read and a loop wake-up fewer (strace, QD1: 9 system calls
 * per read before, 4 now). Anything else (a miss, O_DIRECT on a device,
 * a short transfer, an error) goes to the engine, which does it again
 * and reports what it finds.
 */
enum {
    IN_PLACE_NEVER,             /* always the engine */
    IN_PLACE_NOWAIT,            /* page cache: RWF_NOWAIT, else the engine */
    IN_PLACE_ALWAYS,            /* a file in memory */
};

/* Returns true when @q's transfer was done in place, entirely. */
static bool rw_in_place(NbdConn *c, NbdReq *q, int type)
{
    NbdServer *s = c->server;
    int *modep = &s->in_place[type == QEMU_AIO_READ ? 0 : 1];
    int mode = __atomic_load_n(modep, __ATOMIC_RELAXED);
    int flags = 0;
    ssize_t n;

    if (mode == IN_PLACE_NEVER || q->r.len > NBD_IN_PLACE_MAX) {
        return false;
    }
#ifdef RWF_NOWAIT
    if (mode == IN_PLACE_NOWAIT) {
        flags = RWF_NOWAIT;
    }
#else
    if (mode == IN_PLACE_NOWAIT) {
        return false;
    }
#endif
    n = type == QEMU_AIO_READ ?
        preadv2(s->file.fd, q->qiov.iov, q->qiov.niov, (off_t)q->r.offset,
                flags) :
        pwritev2(s->file.fd, q->qiov.iov, q->qiov.niov, (off_t)q->r.offset,
                 flags);
    if (n == (ssize_t)q->r.len) {
        return true;
    }
    if (n < 0 && flags && (errno == EOPNOTSUPP || errno == ENOSYS ||
                           errno == EINVAL)) {
        /* No RWF_NOWAIT for this direction here (ext4 has it for
         * buffered reads, not for buffered writes): stop asking. */
        __atomic_store_n(modep, IN_PLACE_NEVER, __ATOMIC_RELAXED);
    }
    return false;
}

/* A read or write of @q's buffer. */
static int coroutine_fn do_rw(NbdConn *c, NbdReq *q, int type)
{
    if (!q->in_place_tried && rw_in_place(c, q, type)) {
        return 0;
    }
    return aio_block_co_submit(c->w->backend, c->server->file.fd,
                               q->r.offset, &q->qiov, type);
}

/* Builds @q's reply (header, then the read data if any) and queues it. */
static void req_queue_reply(NbdReq *q, uint32_t error)
{
    NbdConn *c = q->c;
    size_t hlen = nbd_reply_header(&c->sess, &q->r, error, q->msg, q->hdr);

    q->iov[0] = (struct iovec){ .iov_base = q->hdr, .iov_len = hlen };
    q->iovcnt = 1;
    if (!error && q->r.type == NBD_CMD_READ) {
        q->iov[1] = (struct iovec){ .iov_base = q->buf, .iov_len = q->r.len };
        q->iovcnt = 2;
    }
    QSIMPLEQ_INSERT_TAIL(&c->outq, q, next);
}

/* @q is over, its reply sent (or dropped): the accounting, and recv_co
 * woken if it waits for a request to end (from a request coroutine: it
 * runs after that one yields or ends). */
static void req_done(NbdReq *q)
{
    NbdConn *c = q->c;

    c->inflight--;
    c->inflight_bytes -= q->buf ? q->r.len : 0;
    req_free(q);
    if (c->recv_wait_req) {
        c->recv_wait_req = false;
        aio_co_wake(c->recv_co);
    }
}

/* The life of one request: the I/O, the reply, the accounting. */
static void coroutine_fn req_co(void *opaque)
{
    NbdReq *q = opaque;
    NbdConn *c = q->c;
    NbdRequest *r = &q->r;
    int ret = 0;
    uint32_t error = q->error;

    if (!error) {
        switch (r->type) {
        case NBD_CMD_READ:
            ret = do_rw(c, q, QEMU_AIO_READ);
            break;
        case NBD_CMD_WRITE:
            ret = do_rw(c, q, QEMU_AIO_WRITE);
            break;
        case NBD_CMD_FLUSH:
            ret = do_flush(c);
            break;
        case NBD_CMD_TRIM:
            ret = do_trim(c, r);
            break;
        case NBD_CMD_WRITE_ZEROES:
            ret = do_write_zeroes(c, r);
            break;
        }
        if (ret == 0 && (r->flags & NBD_CMD_FLAG_FUA) &&
            r->type != NBD_CMD_READ && r->type != NBD_CMD_FLUSH) {
            ret = do_flush(c);
        }
        error = nbd_error_from_errno(ret);
        if (ret < 0) {
            q->msg = strerror(-ret);
        }
    }
    req_queue_reply(q, error);
    if (c->inflight > 1) {
        /* Others are in flight and may finish in this same loop pass:
         * come back after them, so that one sendmsg() carries all the
         * replies ready by then (at QD1 the reply goes out at once). */
        aio_co_schedule(c->w->ctx, qemu_coroutine_self());
        qemu_coroutine_yield();
    }
    if (!q->sent) {
        qemu_co_mutex_lock(&c->send_lock);
        if (!q->sent) {
            conn_flush_locked(c);
        }
        qemu_co_mutex_unlock(&c->send_lock);
    }
    req_done(q);
}

/* recv_co waits until a request ends. */
static void coroutine_fn conn_wait_req(NbdConn *c)
{
    unsigned before = c->inflight;

    conn_flush_held(c);
    if (c->inflight < before) {
        return;                 /* the flush ended some: look again */
    }
    conn_unplug(c);
    c->recv_wait_req = true;
    qemu_coroutine_yield();
}

/*
 * Serves @q in recv_co when it can be done in place (see rw_in_place()):
 * a read or write without FUA. No coroutine, no CoMutex round trip: the
 * reply is queued and held, and recv_co sends the replies it holds in
 * one sendmsg() before it waits for anything (more input, a request to
 * end) or when NBD_HELD_MAX/NBD_HELD_BYTES are reached. At QD1 that is
 * at once, after the request (the receive buffer is empty); when a
 * recv() brought many requests, their replies go out together (strace,
 * QD32 in place: one sendmsg() per request before). Returns false, with
 * nothing done, when @q needs a coroutine.
 */
static bool coroutine_fn conn_serve_in_place(NbdConn *c, NbdReq *q)
{
    int type;

    if (q->error || !q->buf ||
        (q->r.type == NBD_CMD_WRITE && (q->r.flags & NBD_CMD_FLAG_FUA))) {
        return false;
    }
    type = q->r.type == NBD_CMD_READ ? QEMU_AIO_READ : QEMU_AIO_WRITE;
    q->in_place_tried = true;
    if (!rw_in_place(c, q, type)) {
        return false;
    }
    c->inflight++;
    c->inflight_bytes += q->r.len;
    q->held = true;
    req_queue_reply(q, 0);
    c->held++;
    c->held_bytes += q->iovcnt > 1 ? q->iov[1].iov_len : 0;
    if (c->held >= NBD_HELD_MAX || c->held_bytes >= NBD_HELD_BYTES) {
        conn_flush_held(c);
    }
    return true;
}

/* Starts the coroutine of @q (its payload already read). */
static void conn_start_req(NbdConn *c, NbdReq *q)
{
    c->inflight++;
    c->inflight_bytes += q->buf ? q->r.len : 0;
    qemu_coroutine_enter(qemu_coroutine_create(req_co, q));
}

/* ---- the receive coroutine ------------------------------------------------ */

static void hs_timeout(void *opaque)
{
    NbdConn *c = opaque;

    if (!c->sess.transmission) {
        logv(c->server, "client %lu: handshake not done in time", c->id);
        conn_shutdown(c);
    }
}

/* The handshake. Returns 0 on entering transmission, -1 to close. */
static int coroutine_fn conn_handshake(NbdConn *c)
{
    uint8_t greet[NBD_GREETING_LEN], in[NBD_OPTION_HEADER_LEN];
    NbdOut *out = malloc(sizeof(*out));
    uint8_t *data = NULL;
    int ret = -1;

    if (!out) {
        return -1;
    }
    nbd_greeting(greet);
    if (conn_send(c, greet, sizeof(greet)) < 0 ||
        conn_read(c, in, NBD_CLIENT_FLAGS_LEN) < 0 ||
        nbd_client_flags(&c->sess, in) < 0) {
        goto out;
    }
    for (;;) {
        NbdOption opt;
        NbdOptAction act;

        if (conn_read(c, in, NBD_OPTION_HEADER_LEN) < 0 ||
            nbd_option_header(in, &opt) < 0) {
            goto out;
        }
        free(data);
        data = NULL;
        if (opt.len <= NBD_MAX_OPTION_DATA) {
            data = malloc(opt.len ? opt.len : 1);
            if (!data || conn_read(c, data, opt.len) < 0) {
                goto out;
            }
        } else if (opt.option == NBD_OPT_EXPORT_NAME ||
                   conn_read(c, NULL, opt.len) < 0) {
            goto out;           /* cannot refuse EXPORT_NAME: hang up */
        }
        act = nbd_option(&c->sess, &opt, data, out);
        if (out->len && conn_send(c, out->buf, out->len) < 0) {
            goto out;
        }
        if (act == NBD_OPT_TRANSMISSION) {
            ret = 0;
            break;
        }
        if (act == NBD_OPT_CLOSE) {
            break;
        }
    }
out:
    free(data);
    free(out);
    return ret;
}

/* Reads requests and starts them until the client leaves or errs. */
static void coroutine_fn conn_transmission(NbdConn *c)
{
    NbdServer *s = c->server;

    for (;;) {
        uint8_t in[NBD_REQUEST_LEN];
        NbdRequest r;
        NbdCheck ck;
        NbdReq *q;

        while (!c->closing && (c->inflight >= NBD_CONN_MAX_REQS ||
                               c->inflight_bytes >= NBD_CONN_MAX_BYTES)) {
            conn_wait_req(c);
        }
        if (c->closing || conn_read(c, in, sizeof(in)) < 0) {
            return;
        }
        if (nbd_request_parse(in, &r) < 0) {
            logv(s, "client %lu: bad request magic, disconnecting", c->id);
            conn_shutdown(c);
            return;
        }
        ck = nbd_request_check(&c->sess, &r);
        if (ck.action == NBD_REQ_DISCONNECT) {
            return;
        }
        if (ck.action == NBD_REQ_HANGUP) {
            logv(s, "client %lu: %s, disconnecting", c->id, ck.msg);
            conn_shutdown(c);
            return;
        }
        q = req_new(c->w);
        if (!q) {
            conn_shutdown(c);
            return;
        }
        q->c = c;
        q->r = r;
        if (ck.action == NBD_REQ_FAIL) {
            q->error = ck.error;
            q->msg = ck.msg;
            if (ck.payload && conn_read(c, NULL, ck.payload) < 0) {
                req_free(q);
                return;
            }
        } else if (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) {
            q->buf = buf_get(c->w, r.len);
            if (!q->buf) {
                q->error = NBD_ENOMEM;
                q->msg = "out of memory";
                if (ck.payload && conn_read(c, NULL, ck.payload) < 0) {
                    req_free(q);
                    return;
                }
            } else {
                qemu_iovec_init_buf(&q->qiov, q->buf, r.len);
                if (ck.payload && conn_read(c, q->buf, ck.payload) < 0) {
                    req_free(q);
                    return;
                }
            }
        }
        if (!conn_serve_in_place(c, q)) {
            conn_start_req(c, q);
        }
    }
}

static void server_conn_gone(void *opaque);

static void coroutine_fn conn_co(void *opaque)
{
    NbdConn *c = opaque;
    NbdWorker *w = c->w;
    NbdServer *s = c->server;

    if (conn_handshake(c) == 0) {
        timer_del(c->hs_timer);
        logv(s, "client %lu: transmission (%s replies)", c->id,
             c->sess.structured ? "structured" : "simple");
        conn_transmission(c);
    }
    c->closing = true;
    conn_flush_held(c);
    conn_unplug(c);
    while (c->inflight > 0) {
        conn_wait_req(c);
    }
    c->read_registered = false;
    aio_set_fd_handler(w->ctx, c->fd, false, NULL, NULL, NULL);
    timer_free(c->hs_timer);
    close(c->fd);
    QLIST_REMOVE(c, next);
    logv(s, "client %lu: gone", c->id);
    free(c->rbuf);
    free(c);
    aio_bh_schedule_oneshot(s->ctx, server_conn_gone, s);
}

/* BH on the worker: the connection's life starts. */
static void conn_start(void *opaque)
{
    NbdConn *c = opaque;
    NbdServer *s = c->server;

    QLIST_INSERT_HEAD(&c->w->conns, c, next);
    c->hs_timer = aio_timer_new(c->w->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                hs_timeout, c);
    if (s->o->handshake_limit > 0) {
        timer_mod(c->hs_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                  (int64_t)s->o->handshake_limit * 1000);
    }
    if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
        conn_shutdown(c);       /* accepted just before the stop */
    }
    c->recv_co = qemu_coroutine_create(conn_co, c);
    qemu_coroutine_enter(c->recv_co);
}

/* BH on the worker: the server stops; read no more requests. */
static void worker_stop(void *opaque)
{
    NbdWorker *w = opaque;
    NbdConn *c, *next;

    QLIST_FOREACH_SAFE(c, &w->conns, next, next) {
        c->closing = true;
        if (!c->sess.transmission) {
            conn_shutdown(c);
        } else {
            shutdown(c->fd, SHUT_RD);   /* wakes a reader; replies go on */
        }
        if (c->recv_wait_req) {
            c->recv_wait_req = false;
            qemu_coroutine_enter(c->recv_co);   /* may free c */
        }
    }
}

/* BH on the worker: the grace period is over; drop every client. */
static void worker_kill(void *opaque)
{
    NbdWorker *w = opaque;
    NbdConn *c, *next;

    QLIST_FOREACH_SAFE(c, &w->conns, next, next) {
        conn_shutdown(c);       /* may end c's coroutines and free c */
    }
}

/* ---- the main thread: accepting, counting, stopping ---------------------- */

static void server_check_done(NbdServer *s)
{
    if (s->nconns == 0 &&
        (s->stopping || (!s->o->persistent && s->served > 0))) {
        s->done = true;
    }
}

static void server_conn_gone(void *opaque)
{
    NbdServer *s = opaque;

    s->nconns--;
    server_check_done(s);
    server_update_accept(s);
}

static void on_accept(void *opaque);

static bool accept_allowed(const NbdServer *s)
{
    return !s->stopping && !s->done &&
           (s->o->shared == 0 || s->nconns < (unsigned)s->o->shared);
}

static void server_update_accept(NbdServer *s)
{
    bool want = accept_allowed(s) && !timer_pending(s->retry_timer);
    int i;

    if (want == s->accepting) {
        return;
    }
    s->accepting = want;
    for (i = 0; i < s->nlfds; i++) {
        aio_set_fd_handler(s->ctx, s->lfds[i], false,
                           want ? on_accept : NULL, NULL, s);
    }
}

static void accept_retry(void *opaque)
{
    server_update_accept(opaque);
}

static void accept_one(NbdServer *s, int lfd)
{
    NbdConn *c;
    NbdWorker *w;
    int fd, one = 1;

    while (accept_allowed(s)) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of fds or memory: listen again a little later. */
                logv(s, "accept: %s; retrying in %d ms", strerror(errno),
                     ACCEPT_RETRY_MS);
                timer_mod(s->retry_timer,
                          qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                          ACCEPT_RETRY_MS);
                server_update_accept(s);
            }
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c) {
            c->rbuf = malloc(NBD_RBUF_SIZE);
        }
        if (!c || !c->rbuf) {
            if (c) {
                free(c);
            }
            close(fd);
            continue;
        }
        w = &s->workers[s->next_worker];
        s->next_worker = (s->next_worker + 1) % s->nworkers;
        c->w = w;
        c->server = s;
        c->fd = fd;
        c->id = ++s->served;
        nbd_session_init(&c->sess, &s->exp);
        qemu_co_mutex_init(&c->send_lock);
        QSIMPLEQ_INIT(&c->outq);
        s->nconns++;
        logv(s, "client %lu: connected (%u now)", c->id, s->nconns);
        aio_bh_schedule_oneshot(w->ctx, conn_start, c);
    }
    server_update_accept(s);
}

static void on_accept(void *opaque)
{
    NbdServer *s = opaque;
    int i;

    for (i = 0; i < s->nlfds; i++) {
        accept_one(s, s->lfds[i]);
    }
}

static void stop_grace_over(void *opaque)
{
    NbdServer *s = opaque;
    int i;

    for (i = 0; i < s->nworkers; i++) {
        aio_bh_schedule_oneshot(s->workers[i].ctx, worker_kill,
                                &s->workers[i]);
    }
}

static void server_stop(void *opaque)
{
    NbdServer *s = opaque;
    int i;

    if (s->stopping) {
        return;
    }
    __atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
    logv(s, "stopping: %u clients to finish", s->nconns);
    server_update_accept(s);
    for (i = 0; i < s->nworkers; i++) {
        aio_bh_schedule_oneshot(s->workers[i].ctx, worker_stop,
                                &s->workers[i]);
    }
    timer_mod(s->grace_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + STOP_GRACE_MS);
    server_check_done(s);
}

/* The stop signals come as data on a signalfd, read by the loop like any
 * other fd: no handler interrupts whatever code happens to run (a request
 * coroutine, a system call), so nothing depends on what is safe inside a
 * signal handler, and a signal is never held back by a sanitizer's
 * deferred delivery (ThreadSanitizer queues a handler on the coroutine
 * that was running, which may never run again). */
static void on_signalfd(void *opaque)
{
    NbdServer *s = opaque;
    struct signalfd_siginfo si[4];

    while (read(s->sigfd, si, sizeof(si)) > 0) {
        /* drained: one stop is enough whatever arrived */
    }
    server_stop(s);
}

/* Blocks the stop signals in this thread, and so in every thread it
 * creates from now on, and opens the signalfd that receives them. They
 * stay blocked until the process exits: a second SIGTERM during the
 * shutdown changes nothing. Returns 0 or -1 (errno set). */
static int stop_signals_open(NbdServer *s)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    errno = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (errno) {
        return -1;
    }
    s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return s->sigfd < 0 ? -1 : 0;
}

/* ---- set-up and tear-down ----------------------------------------------- */

static int listen_unix(NbdServer *s, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "aioloop-nbd: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);           /* a stale socket of an earlier run */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "aioloop-nbd: cannot listen on %s: %s\n", path,
                strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    s->lfds[s->nlfds++] = fd;
    snprintf(s->uri, sizeof(s->uri), "nbd+unix:///%s?socket=%s",
             s->o->export_name, path);
    return 0;
}

static int listen_tcp(NbdServer *s, const char *addr, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    int err, bound_port = -1, one = 1;

    err = getaddrinfo(addr, port, &hints, &res);
    if (err) {
        fprintf(stderr, "aioloop-nbd: %s:%s: %s\n", addr, port,
                gai_strerror(err));
        return -1;
    }
    for (ai = res; ai && s->nlfds < NBD_MAX_LISTEN; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bound_port > 0 && ai->ai_family == AF_INET6) {
            /* -p 0: every address on the port the first one got. */
            ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port =
                htons((uint16_t)bound_port);
        } else if (bound_port > 0) {
            ((struct sockaddr_in *)ai->ai_addr)->sin_port =
                htons((uint16_t)bound_port);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
            listen(fd, SOMAXCONN) < 0) {
            fprintf(stderr, "aioloop-nbd: cannot listen on %s:%s: %s\n",
                    addr, port, strerror(errno));
            close(fd);
            continue;
        }
        if (bound_port < 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);

            getsockname(fd, (struct sockaddr *)&ss, &sl);
            bound_port = ntohs(ss.ss_family == AF_INET6 ?
                               ((struct sockaddr_in6 *)&ss)->sin6_port :
                               ((struct sockaddr_in *)&ss)->sin_port);
        }
        s->lfds[s->nlfds++] = fd;
    }
    freeaddrinfo(res);
    if (s->nlfds == 0) {
        return -1;
    }
    snprintf(s->uri, sizeof(s->uri), "nbd://%s%s%s:%d/%s",
             strchr(addr, ':') ? "[" : "", addr, strchr(addr, ':') ? "]" : "",
             bound_port, s->o->export_name);
    return 0;
}

/* BH on a worker: attach (or detach) its block backend in its thread. */
static void worker_attach(void *opaque)
{
    NbdWorker *w = opaque;

    aio_block_backend_attach(w->backend, w->ctx);
    qemu_sem_post(&w->ready);
}

static void worker_detach(void *opaque)
{
    NbdWorker *w = opaque;

    aio_block_backend_detach(w->backend, w->ctx);
}

static int workers_start(NbdServer *s)
{
    int n = s->o->iothreads > 0 ? s->o->iothreads : 1;
    int i;

    s->workers = calloc((size_t)n, sizeof(*s->workers));
    if (!s->workers) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        NbdWorker *w = &s->workers[i];
        Error *err = NULL;
        char id[32];

        w->server = s;
        QLIST_INIT(&w->conns);
        qemu_sem_init(&w->ready, 0);
        w->backend = aio_block_backend_new(s->o->engine, &err);
        if (!w->backend) {
            fprintf(stderr, "aioloop-nbd: --aio=%s: %s\n",
                    aio_block_engine_name(s->o->engine),
                    error_get_pretty(err));
            error_free(err);
            return -1;
        }
        if (s->o->iothreads > 0) {
            snprintf(id, sizeof(id), "nbd-io%d", i);
            w->iothread = iothread_create(id, &err);
            if (!w->iothread) {
                fprintf(stderr, "aioloop-nbd: %s\n", error_get_pretty(err));
                error_free(err);
                aio_block_backend_free(w->backend);
                w->backend = NULL;
                return -1;
            }
            w->ctx = iothread_get_aio_context(w->iothread);
            aio_bh_schedule_oneshot(w->ctx, worker_attach, w);
            qemu_sem_wait(&w->ready);
        } else {
            w->ctx = s->ctx;
            aio_block_backend_attach(w->backend, w->ctx);
        }
        s->nworkers = i + 1;
    }
    /* See rw_in_place(). RWF_NOWAIT only in place of the thread engine:
     * io_uring tries without waiting itself, and Linux AIO waits in
     * io_submit() without O_DIRECT anyway. */
    if (!s->o->no_in_place) {
        s->in_place[0] = s->file.in_memory ? IN_PLACE_ALWAYS :
                         !s->file.direct &&
                         aio_block_backend_engine(s->workers[0].backend) ==
                         AIO_ENGINE_THREADS ? IN_PLACE_NOWAIT :
                         IN_PLACE_NEVER;
        s->in_place[1] = s->in_place[0];
    }
    logv(s, "engine %s, %d %s%s", aio_block_engine_name(
             aio_block_backend_engine(s->workers[0].backend)),
         n, s->o->iothreads > 0 ? "IOThreads" : "main-loop worker",
         s->in_place[0] == IN_PLACE_ALWAYS ? ", reads and writes in place" :
         s->in_place[0] == IN_PLACE_NOWAIT ? ", cached data in place" : "");
    return 0;
}

static void workers_stop(NbdServer *s)
{
    int i;

    for (i = 0; i < s->nworkers; i++) {
        NbdWorker *w = &s->workers[i];

        if (w->iothread) {
            /* Runs before the thread exits (iothread_destroy() runs the
             * BHs scheduled before it). */
            aio_bh_schedule_oneshot(w->ctx, worker_detach, w);
            iothread_destroy(w->iothread);
        } else if (w->backend) {
            aio_block_backend_detach(w->backend, w->ctx);
        }
        aio_block_backend_free(w->backend);
        pool_free(&w->pool);
        while (w->nreq_free > 0) {
            free(w->req_free[--w->nreq_free]);
        }
        qemu_sem_destroy(&w->ready);
    }
    free(s->workers);
}

int nbd_server_run(const NbdServerOptions *o)
{
    NbdServer srv = { .o = o }, *s = &srv;
    char why[512];
    int ret, i, status = 1;

    ret = nbd_file_open(&s->file, o->file, o->read_only, o->cache_none, why,
                        sizeof(why));
    if (ret < 0) {
        fprintf(stderr, "aioloop-nbd: %s\n", why);
        return 1;
    }
    s->exp = (NbdExport){
        .name = o->export_name,
        .description = o->description,
        .size = s->file.size,
        .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                  NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN,
        .min_block = s->file.align,
        .pref_block = s->file.align > 4096 ? s->file.align : 4096,
        .max_payload = NBD_MAX_PAYLOAD,
    };
    if (o->read_only) {
        s->exp.tflags |= NBD_FLAG_READ_ONLY;
    } else {
        s->exp.tflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                         NBD_FLAG_SEND_FAST_ZERO;
    }
    if (posix_memalign(&s->zero_buf, 4096, NBD_ZERO_BUF_SIZE)) {
        fprintf(stderr, "aioloop-nbd: out of memory\n");
        goto out_file;
    }
    memset(s->zero_buf, 0, NBD_ZERO_BUF_SIZE);

    if ((o->socket_path ? listen_unix(s, o->socket_path)
                        : listen_tcp(s, o->bind_addr, o->port)) < 0) {
        goto out_listen;
    }
    if (o->print_uri) {
        printf("%s\n", s->uri);
        fflush(stdout);
    }
    if (o->fork) {
        pid_t pid = fork();

        if (pid < 0) {
            perror("aioloop-nbd: fork");
            goto out_listen;
        }
        if (pid > 0) {
            /* The sockets listen already: clients queue until the
             * child accepts. */
            if (o->pid_file) {
                FILE *f = fopen(o->pid_file, "w");

                if (f) {
                    fprintf(f, "%d\n", (int)pid);
                    fclose(f);
                }
            }
            _exit(0);
        }
        setsid();
    } else if (o->pid_file) {
        FILE *f = fopen(o->pid_file, "w");

        if (!f) {
            fprintf(stderr, "aioloop-nbd: %s: %s\n", o->pid_file,
                    strerror(errno));
            goto out_listen;
        }
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }

    /* Before any thread exists (the context's, the workers', the pool's):
     * they all inherit the blocked stop signals. */
    signal(SIGPIPE, SIG_IGN);
    if (stop_signals_open(s) < 0) {
        perror("aioloop-nbd: signalfd");
        goto out_listen;
    }
    s->ctx = aio_context_new(&error_fatal);
    aio_set_fd_handler(s->ctx, s->sigfd, false, on_signalfd, NULL, s);
    s->stop_bh = aio_bh_new(s->ctx, server_stop, s);
    s->grace_timer = aio_timer_new(s->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                   stop_grace_over, s);
    s->retry_timer = aio_timer_new(s->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                   accept_retry, s);
    if (workers_start(s) < 0) {
        goto out_workers;
    }
    logv(s, "serving %s (%llu bytes, %s, alignment %u) at %s", o->file,
         (unsigned long long)s->file.size,
         o->cache_none ? "cache=none" : "cache=writeback", s->file.align,
         s->uri);
    server_update_accept(s);
    while (!s->done) {
        aio_poll(s->ctx, true);
    }
    status = 0;
    logv(s, "served %lu clients", s->served);

out_workers:
    for (i = 0; i < s->nlfds; i++) {
        aio_set_fd_handler(s->ctx, s->lfds[i], false, NULL, NULL, NULL);
    }
    aio_set_fd_handler(s->ctx, s->sigfd, false, NULL, NULL, NULL);
    close(s->sigfd);
    workers_stop(s);
    timer_free(s->grace_timer);
    timer_free(s->retry_timer);
    qemu_bh_delete(s->stop_bh);
    aio_context_unref(s->ctx);
out_listen:
    for (i = 0; i < s->nlfds; i++) {
        close(s->lfds[i]);
    }
    if (o->socket_path && s->nlfds > 0) {
        unlink(o->socket_path);
    }
    if (o->pid_file && status == 0) {
        unlink(o->pid_file);
    }
    free(s->zero_buf);
out_file:
    if (nbd_file_close(&s->file, o->read_only) < 0 && status == 0) {
        fprintf(stderr, "aioloop-nbd: flushing %s failed\n", o->file);
        status = 1;
    }
    return status;
}
