/*
 * aioloop/iov.h - scatter/gather vectors for block I/O (QEMUIOVector).
 *
 * Design
 * ------
 * A QEMUIOVector is a growable array of struct iovec plus the total byte
 * count, the shape readv/writev, Linux AIO and io_uring all take. It never
 * owns the data buffers, only (sometimes) the array describing them:
 *
 *   qemu_iovec_init          owns a heap array; qemu_iovec_add grows it.
 *   qemu_iovec_init_external borrows the caller's array (nalloc == -1);
 *                            adding to it is a programming error.
 *   qemu_iovec_init_buf      one element stored inside the struct itself
 *                            (local_iov): no allocation at all, for the
 *                            common single-buffer request. Because iov
 *                            then points into the struct, such a vector
 *                            must not be copied by value or moved.
 *
 * The copy helpers (to_buf, from_buf, memset) work on a byte range given
 * by an offset into the vector; they clamp the range to the vector's end
 * and return how many bytes they handled, so "offset past the end" is 0
 * bytes, not an error.
 *
 * Allocation failure (growing the array: a few bytes per element) aborts
 * with a message; callers are not expected to recover from it. So does
 * misuse, naming the vector ("aioloop: <function>: vector 0x...: ..."):
 * growing a borrowed array, a total size that would pass SIZE_MAX, a
 * negative element count.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_IOV_H
#define AIOLOOP_IOV_H

#include <stddef.h>
#include <sys/uio.h>
#include <aioloop/compiler.h>

/* BDRV_SECTOR_BITS / BDRV_SECTOR_SIZE - log2 and size of the 512-byte
 * sector the sector-based block APIs count in. */
#define BDRV_SECTOR_BITS 9
#define BDRV_SECTOR_SIZE (1ULL << BDRV_SECTOR_BITS)

/* A scatter/gather vector (see above). Initialise it with one of the
 * qemu_iovec_init*() calls; read the fields, change them only through
 * the functions below. */
typedef struct QEMUIOVector {
    struct iovec *iov;          /* the elements */
    int niov;                   /* elements in use */
    int nalloc;                 /* capacity of an owned array; -1: not owned */
    size_t size;                /* sum of the elements' lengths */
    struct iovec local_iov;     /* storage used by qemu_iovec_init_buf */
} QEMUIOVector;

/*
 * iov_size - the total length of iov_cnt elements of iov.
 *
 * Returns the sum of their iov_len.
 *
 * Any thread.
 */
AIOLOOP_API size_t iov_size(const struct iovec *iov, unsigned int iov_cnt);

/*
 * qemu_iovec_init - make qiov an empty vector owning an array with room
 * for alloc_hint elements (it grows as needed; 0 is fine). Release it
 * with qemu_iovec_destroy().
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint);

/*
 * qemu_iovec_init_external - make qiov describe niov elements of the
 * caller's array iov, without copying or owning it; iov must outlive
 * qiov. Such a vector cannot grow (qemu_iovec_add aborts). A negative
 * niov, a NULL iov with niov > 0, or elements whose lengths add up past
 * SIZE_MAX abort with a message.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_init_external(QEMUIOVector *qiov,
                                          struct iovec *iov, int niov);

/*
 * qemu_iovec_init_buf - make qiov describe the single buffer buf of len
 * bytes, using storage inside qiov (no allocation). Do not copy qiov by
 * value afterwards. qemu_iovec_destroy() is allowed and does nothing
 * more than forget it.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf,
                                     size_t len);

/*
 * qemu_iovec_add - append the buffer base of len bytes to a vector made
 * by qemu_iovec_init(), growing its array if needed (aborts if memory
 * runs out). Appending to an external or init_buf vector aborts, and so
 * does a len that takes the total size past SIZE_MAX.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len);

/*
 * qemu_iovec_concat - append to dst the byte range [soffset, soffset +
 * sbytes) of src, as new elements pointing into src's buffers (no data is
 * copied). The range must lie within src (aborts otherwise, also when
 * soffset + sbytes would wrap around); dst must be growable (made by
 * qemu_iovec_init) and must not be src.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                                   size_t soffset, size_t sbytes);

/*
 * qemu_iovec_reset - empty a growable vector, keeping its array for
 * reuse. Aborts on external or init_buf vectors.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_reset(QEMUIOVector *qiov);

/*
 * qemu_iovec_destroy - free the array of a vector made by
 * qemu_iovec_init(); for other vectors only forget the elements. The
 * data buffers are never freed. qiov may be re-initialised afterwards;
 * destroying it again does nothing, and a destroyed vector is empty and
 * growable (qemu_iovec_add works on it, as after qemu_iovec_init(qiov,
 * 0); destroy it again when done).
 *
 * Any thread.
 */
AIOLOOP_API void qemu_iovec_destroy(QEMUIOVector *qiov);

/*
 * qemu_iovec_to_buf - copy bytes bytes starting offset bytes into qiov
 * to buf.
 *
 * Returns the number of bytes copied: bytes, clamped to what qiov holds
 * past offset (0 when offset >= qiov->size).
 *
 * Any thread.
 */
AIOLOOP_API size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                                     void *buf, size_t bytes);

/*
 * qemu_iovec_from_buf - copy bytes bytes from buf into qiov, starting
 * offset bytes into it.
 *
 * Returns the number of bytes copied, clamped like qemu_iovec_to_buf().
 *
 * Any thread.
 */
AIOLOOP_API size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                                       const void *buf, size_t bytes);

/*
 * qemu_iovec_memset - fill bytes bytes of qiov, starting offset bytes
 * into it, with the byte value fillc.
 *
 * Returns the number of bytes filled, clamped like qemu_iovec_to_buf().
 *
 * Any thread.
 */
AIOLOOP_API size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset,
                                     int fillc, size_t bytes);

#endif /* AIOLOOP_IOV_H */
