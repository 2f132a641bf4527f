/*
 * aioloop/raw-aio.h - block I/O on file descriptors: Linux native AIO
 * (laio_*), io_uring (luring_*) and a thread-pool fallback (taio_*).
 *
 * The three backends have the same shape. A state is created once
 * (*_init), attached to the AioContext whose aio_poll() completes its
 * requests (*_attach_aio_context), and takes requests of three types:
 *
 *   QEMU_AIO_READ   read into a QEMUIOVector at an offset (preadv)
 *   QEMU_AIO_WRITE  write from a QEMUIOVector at an offset (pwritev)
 *   QEMU_AIO_FLUSH  make earlier completed writes durable (fdatasync);
 *                   the vector and offset are ignored
 *
 * Requests are submitted with a completion callback (*_submit, with the
 * offset and length in 512-byte sectors, as in QEMU) or from a coroutine
 * that waits for the result (*_co_submit, with a byte offset and the
 * vector's length). Either way the result is delivered exactly once, from
 * aio_poll() of the attached context, never from inside the submit call:
 *
 *   0         success: every byte was transferred; a read that reached
 *             the end of the file has the rest of its vector zero-filled
 *             and also succeeds
 *   -ENOSPC   a write that transferred fewer bytes than asked
 *   -ECANCELED the request was cancelled (bdrv_aio_cancel_async()) while
 *             it was still queued in the library
 *   -EINVAL   bad arguments (below); the file was not touched
 *   -errno    the system's error for that request alone (-EBADF, -EINVAL
 *             for misaligned O_DIRECT, -EIO, -ENOSPC, -EFBIG beyond
 *             RLIMIT_FSIZE...)
 *
 * Bad arguments. These checks hold in every build (release builds too)
 * and come before anything reaches the file:
 *   - an unknown @type: *_submit() returns NULL, *_co_submit() -EINVAL
 *     (the request cannot even be prepared);
 *   - a state that is not attached to a context: the same (there is no
 *     aio_poll() to deliver a result from);
 *   - a read or a write with a NULL @qiov or a vector with niov < 0 (or
 *     iov NULL and niov > 0); a byte offset above INT64_MAX or an offset
 *     plus length beyond it; a length above AIOLOOP_RAW_MAX_BYTES; in the
 *     sector API a negative @sector_num or one whose byte offset does not
 *     fit, a negative @nb_sectors, or @nb_sectors * 512 different from
 *     @qiov's size: the request completes with -EINVAL, delivered as
 *     every result is (from aio_poll(), to the callback or the coroutine;
 *     a coroutine request gets it at once);
 *   - a flush ignores its offset, sector count and vector, whatever they
 *     hold.
 * Segments of zero length are allowed, and so is a request of zero bytes
 * (it succeeds). A segment whose buffer is not writable memory gets the
 * kernel's -EFAULT.
 *
 * Files. The engines do positioned I/O (preadv/pwritev/fdatasync) and
 * report the same result for the same file on each of them:
 *   - regular files and block devices: the engine's kernel interface;
 *   - any other kind of fd (a pipe, FIFO, socket, character device,
 *     directory, eventfd...): the io_uring and Linux AIO engines give the
 *     request to the attached context's thread pool, as the thread engine
 *     does with every request, so the result is the system call's: -ESPIPE
 *     for a pipe, a socket or an eventfd (a flush there: -EINVAL),
 *     -EISDIR for reading a directory, -EBADF for writing one; /dev/null
 *     reads as end of file (the vector is zero-filled, 0) and takes every
 *     write;
 *   - a fd that is not open (closed, -1), an O_PATH fd, or a fd not open
 *     for the direction asked (a write on O_RDONLY): -EBADF.
 * Nothing ever waits inside a system call of the loop thread for data on
 * a pipe or a socket. The io_uring and Linux AIO engines learn a fd's
 * kind with one fstat() the first time they see its number and remember
 * it (a few fds per state) until a request on it fails with -EBADF or the
 * state is attached again; a number closed and reused for another kind
 * of file in between keeps the kind it had (its requests still complete,
 * but a pipe read may then wait for data, in the kernel).
 *
 * Queueing: requests beyond the kernel queue depth (128) wait in a local
 * queue and are submitted as slots free up; they are never failed with
 * EAGAIN. When the kernel refuses a submission as a whole (EAGAIN,
 * ENOMEM; io_uring also EBUSY) the state waits for completions, or backs
 * off (50 µs doubling to 10 ms) when nothing is in flight, and retries.
 * Linux AIO fails the first waiting request with the error after a second
 * of refusals with nothing in flight, and goes on with the next; io_uring
 * has already placed its requests in the ring and keeps retrying.
 *
 * Batching: between *_io_plug() and the matching *_io_unplug() (they
 * nest) requests are collected and submitted together on the last
 * unplug, or earlier when a full batch is waiting. While completion
 * callbacks run, the state batches the requests they submit in the same
 * way, so a loop that resubmits from its callbacks makes one system call
 * per batch rather than one per request.
 *
 * Threads: a state belongs to the thread that runs its attached
 * context's aio_poll(); every function except *_init and *_cleanup
 * (which any thread may call once the state is detached) must be called
 * from there ("Loop thread only" below means that thread). Different states
 * are independent and may be used from different threads.
 *
 * Completion callbacks may call aio_poll() on the attached context
 * (nested loops): no completion is lost or delivered twice. They must not
 * free their own state, nor detach it from inside a completion of the
 * kernel engines (that aborts with a message naming the state).
 *
 * Cancellation (bdrv_aio_cancel_async(), loop thread only): a request
 * still in the local queue (plugged, or beyond the queue depth) completes
 * with -ECANCELED; a request running in the thread pool that no worker
 * has started too; a request the kernel has completes normally.
 *
 * Misuse the signatures cannot report aborts with a message naming the
 * state: freeing a state that is still attached, attaching one that is
 * attached already (or to NULL), detaching it from another context than
 * its own, an unplug without a plug.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RAW_AIO_H
#define AIOLOOP_RAW_AIO_H

#include <stdint.h>
#include <aioloop/aio.h>
#include <aioloop/block-aio.h>
#include <aioloop/coroutine.h>
#include <aioloop/error.h>
#include <aioloop/iov.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Request types (QEMU's values). */
#define QEMU_AIO_READ   0x0001
#define QEMU_AIO_WRITE  0x0002
#define QEMU_AIO_FLUSH  0x0008

/* The callback APIs' sector_num and nb_sectors count BDRV_SECTOR_SIZE
 * (512-byte) sectors, defined in <aioloop/iov.h>. */

/* The kernel queue depth of every state: requests in flight at once. */
#define AIOLOOP_RAW_QUEUE_DEPTH 128

/* The longest request, in bytes (2 GiB - 64 KiB): the most that one
 * read or write system call moves on Linux, whatever the page size.
 * Longer requests complete with -EINVAL; split them. */
#define AIOLOOP_RAW_MAX_BYTES 0x7fff0000u

/* ------------------------------------------------------------------ */
/* Linux native AIO (io_setup/io_submit, completions through an eventfd
 * and reaped from the AIO ring in user space). Built when
 * <linux/aio_abi.h> was found (AIOLOOP_HAVE_LINUX_AIO, the usual case on
 * Linux); otherwise laio_init() always fails with ENOSYS. Requests on
 * files other than regular files and block devices run in the thread
 * pool (see "Files" above). */

/* A Linux AIO state (opaque): laio_init() to laio_cleanup(). */
typedef struct LinuxAioState LinuxAioState;

/**
 * laio_init - create a Linux AIO state: one kernel AIO context of
 * AIOLOOP_RAW_QUEUE_DEPTH requests and its eventfd.
 * Returns: the state, not yet attached to a context; NULL with errno set
 * when the kernel refuses (EAGAIN: the system-wide fs.aio-max-nr limit
 * is reached; ENOSYS: no AIO in this kernel; EMFILE...).
 * Any thread.
 */
AIOLOOP_API LinuxAioState *laio_init(void);

/**
 * laio_cleanup - free @s, which must be detached (detaching completes
 * every request); freeing a state that is still attached aborts with a
 * message naming it. NULL is ignored.
 * Any thread, once detached.
 */
AIOLOOP_API void laio_cleanup(LinuxAioState *s);

/**
 * laio_attach_aio_context - deliver @s's completions from
 * aio_poll(@new_context) from now on. @s must not be attached, and
 * @new_context must not be NULL (either aborts with a message).
 * Loop thread of @new_context.
 */
AIOLOOP_API void laio_attach_aio_context(LinuxAioState *s,
                                         AioContext *new_context);

/**
 * laio_detach_aio_context - stop delivering @s's completions from
 * @old_context, the context it is attached to. Requests still queued
 * (plugged ones too: the plug count is kept) or in flight are completed
 * first, by aio_poll(@old_context), so nothing is lost. Does nothing if
 * @s is no longer attached: the last aio_context_unref() of a context
 * detaches the states still attached to it (after completing their
 * requests in the same way), and @old_context may then be a freed
 * pointer, which is not used. Aborts with a message naming @s when
 * @old_context is not its context, or when called from inside one of
 * @s's completion callbacks (Linux AIO, io_uring).
 * Loop thread of @old_context.
 */
AIOLOOP_API void laio_detach_aio_context(LinuxAioState *s,
                                         AioContext *old_context);

/**
 * laio_submit - start a request; @cb(@opaque, ret) runs once when it is
 * done, from aio_poll() of the attached context.
 * @bs: opaque to the library, stored in the AIOCB (may be NULL).
 * @s: the state, attached to a context.
 * @fd: the file (see "Files" above); @sector_num, @nb_sectors: position
 * and length in 512-byte sectors (@nb_sectors must match @qiov's size;
 * both are ignored for QEMU_AIO_FLUSH, where @qiov may be NULL).
 * @type: QEMU_AIO_READ, QEMU_AIO_WRITE or QEMU_AIO_FLUSH.
 * @qiov: the buffers; it and they must stay valid until the callback.
 * @cb, @opaque: the completion callback (may be NULL) and its argument.
 * Returns: the request's AIOCB (for bdrv_aio_cancel_async()), valid until
 * the callback returns; NULL only for an unknown @type or a detached @s
 * (then nothing happens). Bad arguments complete with -EINVAL (see "Bad
 * arguments" above).
 * Loop thread only.
 */
AIOLOOP_API BlockAIOCB *laio_submit(BlockDriverState *bs, LinuxAioState *s,
                                    int fd, int64_t sector_num,
                                    QEMUIOVector *qiov, int nb_sectors,
                                    BlockCompletionFunc *cb, void *opaque,
                                    int type);

/**
 * laio_co_submit - submit a request of @qiov->size bytes at byte @offset
 * and wait (yield) until it completes.
 * Returns: 0, -ENOSPC, -ECANCELED or -errno (see above); -EINVAL for an
 * unknown @type, a detached @s or bad arguments (see "Bad arguments").
 * Coroutine context only, in a coroutine of the attached context.
 */
AIOLOOP_API int coroutine_fn laio_co_submit(BlockDriverState *bs,
                                            LinuxAioState *s, int fd,
                                            uint64_t offset,
                                            QEMUIOVector *qiov, int type);

/**
 * laio_io_plug - start (or nest) a batch: submissions are held until the
 * matching laio_io_unplug().
 * Loop thread only.
 */
AIOLOOP_API void laio_io_plug(BlockDriverState *bs, LinuxAioState *s);

/**
 * laio_io_unplug - end one level of batching; the last one submits what
 * was held. An unplug without a plug aborts with a message.
 * Loop thread only.
 */
AIOLOOP_API void laio_io_unplug(BlockDriverState *bs, LinuxAioState *s);

/* ------------------------------------------------------------------ */
/* io_uring (liburing). Built when liburing was found
 * (AIOLOOP_HAVE_IO_URING); otherwise luring_init() always fails (ENOSYS,
 * with the reason in @errp). Requests on files other than regular files
 * and block devices run in the thread pool (see "Files" above). */

/* An io_uring state (opaque): luring_init() to luring_cleanup(). */
typedef struct LuringState LuringState;

/**
 * luring_init - create an io_uring state (a ring of
 * AIOLOOP_RAW_QUEUE_DEPTH entries and its eventfd).
 * Returns: the state, not yet attached; NULL with @errp set when io_uring
 * cannot be used: the kernel lacks or disables it (kernel.io_uring_disabled,
 * seccomp), the library was built without liburing, or resources ran out.
 * The caller then falls back to laio_init() or taio_init().
 * Any thread.
 */
AIOLOOP_API LuringState *luring_init(Error **errp);

/** luring_cleanup - as laio_cleanup(). Any thread, once detached. */
AIOLOOP_API void luring_cleanup(LuringState *s);

/** luring_attach_aio_context - as laio_attach_aio_context().
 * Loop thread of @new_context. */
AIOLOOP_API void luring_attach_aio_context(LuringState *s,
                                           AioContext *new_context);

/** luring_detach_aio_context - as laio_detach_aio_context().
 * Loop thread of @old_context. */
AIOLOOP_API void luring_detach_aio_context(LuringState *s,
                                           AioContext *old_context);

/** luring_submit - as laio_submit(). Loop thread only. */
AIOLOOP_API BlockAIOCB *luring_submit(BlockDriverState *bs, LuringState *s,
                                      int fd, int64_t sector_num,
                                      QEMUIOVector *qiov, int nb_sectors,
                                      BlockCompletionFunc *cb, void *opaque,
                                      int type);

/** luring_co_submit - as laio_co_submit(). Coroutine context only. */
AIOLOOP_API int coroutine_fn luring_co_submit(BlockDriverState *bs,
                                              LuringState *s, int fd,
                                              uint64_t offset,
                                              QEMUIOVector *qiov, int type);

/** luring_io_plug - as laio_io_plug(). Loop thread only. */
AIOLOOP_API void luring_io_plug(BlockDriverState *bs, LuringState *s);

/** luring_io_unplug - as laio_io_unplug(). Loop thread only. */
AIOLOOP_API void luring_io_unplug(BlockDriverState *bs, LuringState *s);

/* ------------------------------------------------------------------ */
/* Thread backend: preadv/pwritev/fdatasync in the attached context's
 * thread pool (<aioloop/thread-pool.h>). Works on every file and kernel;
 * a worker continues a short read until the end of the file; a short
 * write is -ENOSPC, as with the kernel backends. There is no kernel
 * queue: every request goes to the pool. */

/* A thread-backend state (opaque): taio_init() to taio_cleanup(). */
typedef struct ThreadAioState ThreadAioState;

/**
 * taio_init - create a thread-backend state.
 * Returns: the state, not yet attached; NULL with errno ENOMEM when
 * memory runs out.
 * Any thread.
 */
AIOLOOP_API ThreadAioState *taio_init(void);

/** taio_cleanup - as laio_cleanup(). Any thread, once detached. */
AIOLOOP_API void taio_cleanup(ThreadAioState *s);

/** taio_attach_aio_context - as laio_attach_aio_context(); requests run
 * in aio_get_thread_pool(@new_context). Loop thread of @new_context. */
AIOLOOP_API void taio_attach_aio_context(ThreadAioState *s,
                                         AioContext *new_context);

/** taio_detach_aio_context - as laio_detach_aio_context().
 * Loop thread of @old_context. */
AIOLOOP_API void taio_detach_aio_context(ThreadAioState *s,
                                         AioContext *old_context);

/** taio_submit - as laio_submit(). Loop thread only. */
AIOLOOP_API BlockAIOCB *taio_submit(BlockDriverState *bs, ThreadAioState *s,
                                    int fd, int64_t sector_num,
                                    QEMUIOVector *qiov, int nb_sectors,
                                    BlockCompletionFunc *cb, void *opaque,
                                    int type);

/** taio_co_submit - as laio_co_submit(). Coroutine context only. */
AIOLOOP_API int coroutine_fn taio_co_submit(BlockDriverState *bs,
                                            ThreadAioState *s, int fd,
                                            uint64_t offset,
                                            QEMUIOVector *qiov, int type);

/** taio_io_plug - as laio_io_plug(). Loop thread only. */
AIOLOOP_API void taio_io_plug(BlockDriverState *bs, ThreadAioState *s);

/** taio_io_unplug - as laio_io_unplug(). Loop thread only. */
AIOLOOP_API void taio_io_unplug(BlockDriverState *bs, ThreadAioState *s);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_RAW_AIO_H */
