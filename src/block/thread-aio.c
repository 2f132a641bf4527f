/*
 * thread-aio.c - block I/O in the thread pool: the thread engine, and
 * the path the kernel engines take for what their kernel interface
 * cannot do (a file that is not a regular file or a block device, a
 * flush the kernel refuses).
 *
 * A request runs as a job of the attached context's thread pool:
 * preadv, pwritev or fdatasync in a worker (aioloop__raw_worker()). The
 * thread engine has no kernel queue: its table has no submit(), so the
 * queue hands every request to the pool (raw-request.c), with no limit on
 * how many run at once; plugging only holds requests until the last
 * unplug. Its results are those of the system calls: on a pipe or a
 * socket -ESPIPE, reading a directory -EISDIR, and so on.
 *
 * The worker touches only its request's file and buffers, which the
 * pool's queue lock hands over; the result goes back to the loop thread
 * through the pool's completion.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <sys/uio.h>

#include "raw-aio-int.h"
#include "../util/fault.h"

/* The tests' fault hook for the worker's system calls: -1 with
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
        return -ENOSPC;         /* short, as the kernel engines report it */
    }
    return raw_worker_rest(r, (size_t)n);
}

static int taio_open(RawQueue *q, Error **errp)
{
    return 0;                   /* the pool is the context's, made on use */
}

const RawEngineOps aioloop__thread_ops = {
    .name = "threads",
    .what = "a thread I/O state",
    .engine = AIO_ENGINE_THREADS,
    .state_size = sizeof(RawQueue),
    .depth = UINT_MAX,
    .open = taio_open,
};
