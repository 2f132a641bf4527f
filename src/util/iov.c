/*
 * iov.c - QEMUIOVector: building scatter/gather lists and copying bytes
 * in and out of them.
 *
 * Design
 * ------
 * Three copy operations (to a flat buffer, from one, fill) share one
 * walker, iov_walk(), that finds the element holding `offset`, then
 * visits consecutive (element pointer, length) chunks until `bytes` are
 * covered or the vector ends. Clamping happens there once, so every
 * operation agrees on what "past the end" means.
 *
 * Ownership is encoded in nalloc: >= 0 for an array we allocated (its
 * capacity), -1 for one we merely point at (the caller's array, or the
 * in-struct local_iov of qemu_iovec_init_buf). Only owned arrays are
 * grown, reset or freed.
 *
 * Invariants: size == iov_size(iov, niov); 0 <= niov <= nalloc when
 * owned.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/iov.h>
#include "alloc.h"
#include "misuse.h"

/* A programming error in the caller (or no memory left): say which rule,
 * name the vector, and stop. */
static AIOLOOP_NORETURN void iov_misuse(const char *func,
                                        const QEMUIOVector *qiov,
                                        const char *what)
{
    aioloop__misuse(func, "vector %p: %s", (const void *)qiov, what);
}

size_t iov_size(const struct iovec *iov, unsigned int iov_cnt)
{
    size_t total = 0;
    unsigned int i;

    for (i = 0; i < iov_cnt; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

void qemu_iovec_init(QEMUIOVector *qiov, int alloc_hint)
{
    if (alloc_hint < 1) {
        alloc_hint = 1;
    }
    qiov->iov = aioloop__malloc((size_t)alloc_hint * sizeof(struct iovec));
    if (!qiov->iov) {
        iov_misuse("qemu_iovec_init", qiov, "out of memory");
    }
    qiov->niov = 0;
    qiov->nalloc = alloc_hint;
    qiov->size = 0;
}

void qemu_iovec_init_external(QEMUIOVector *qiov, struct iovec *iov, int niov)
{
    size_t size = 0;
    int i;

    /* A negative count would read far past the array; a total that
     * wraps would understate what the elements cover. */
    if (niov < 0 || (niov > 0 && !iov)) {
        aioloop__misuse("qemu_iovec_init_external", "vector %p: invalid "
                        "array %p with %d elements", (void *)qiov,
                        (void *)iov, niov);
    }
    for (i = 0; i < niov; i++) {
        if (iov[i].iov_len > SIZE_MAX - size) {
            aioloop__misuse("qemu_iovec_init_external", "vector %p: the "
                            "total size of its %d elements overflows",
                            (void *)qiov, niov);
        }
        size += iov[i].iov_len;
    }
    qiov->iov = iov;
    qiov->niov = niov;
    qiov->nalloc = -1;
    qiov->size = size;
}

void qemu_iovec_init_buf(QEMUIOVector *qiov, void *buf, size_t len)
{
    qiov->local_iov.iov_base = buf;
    qiov->local_iov.iov_len = len;
    qiov->iov = &qiov->local_iov;
    qiov->niov = 1;
    qiov->nalloc = -1;
    qiov->size = len;
}

void qemu_iovec_add(QEMUIOVector *qiov, void *base, size_t len)
{
    if (qiov->nalloc < 0) {
        iov_misuse("qemu_iovec_add", qiov, "it does not own its array "
                   "(qemu_iovec_init_external or _init_buf)");
    }
    if (len > SIZE_MAX - qiov->size) {
        aioloop__misuse("qemu_iovec_add", "vector %p: adding %zu bytes to "
                        "%zu overflows its total size", (void *)qiov, len,
                        qiov->size);
    }
    if (qiov->niov == qiov->nalloc) {
        int nalloc;
        struct iovec *grown;

        if (qiov->nalloc > INT32_MAX / 2) {
            iov_misuse("qemu_iovec_add", qiov, "too many elements");
        }
        /* From 0 after qemu_iovec_destroy(): growable again. */
        nalloc = qiov->nalloc ? qiov->nalloc * 2 : 1;
        grown = aioloop__realloc(qiov->iov,
                                 (size_t)nalloc * sizeof(struct iovec));
        if (!grown) {
            iov_misuse("qemu_iovec_add", qiov, "out of memory");
        }
        qiov->iov = grown;
        qiov->nalloc = nalloc;
    }
    qiov->iov[qiov->niov].iov_base = base;
    qiov->iov[qiov->niov].iov_len = len;
    qiov->niov++;
    qiov->size += len;
}

void qemu_iovec_concat(QEMUIOVector *dst, QEMUIOVector *src,
                       size_t soffset, size_t sbytes)
{
    int i;

    if (dst == src) {
        iov_misuse("qemu_iovec_concat", dst, "dst and src are the same vector");
    }
    if (soffset > src->size || sbytes > src->size - soffset) {
        iov_misuse("qemu_iovec_concat", dst, "range beyond the end of src");
    }
    for (i = 0; i < src->niov && sbytes > 0; i++) {
        size_t len = src->iov[i].iov_len;
        size_t take;

        if (soffset >= len) {
            soffset -= len;
            continue;
        }
        take = len - soffset;
        if (take > sbytes) {
            take = sbytes;
        }
        qemu_iovec_add(dst, (char *)src->iov[i].iov_base + soffset, take);
        sbytes -= take;
        soffset = 0;
    }
}

void qemu_iovec_reset(QEMUIOVector *qiov)
{
    if (qiov->nalloc < 0) {
        iov_misuse("qemu_iovec_reset", qiov, "it does not own its array "
                   "(qemu_iovec_init_external or _init_buf)");
    }
    qiov->niov = 0;
    qiov->size = 0;
}

void qemu_iovec_destroy(QEMUIOVector *qiov)
{
    if (qiov->nalloc >= 0) {
        free(qiov->iov);
    }
    qiov->iov = NULL;
    qiov->niov = 0;
    qiov->nalloc = 0;
    qiov->size = 0;
}

/* ------------------------------------------------------------------ */
/* Copying                                                             */

typedef enum {
    IOV_TO_BUF,
    IOV_FROM_BUF,
    IOV_FILL,
} IovOp;

/*
 * Applies op to the bytes [offset, offset + bytes) of qiov, clamped to its
 * end; buf is the flat side (unused by IOV_FILL). Returns the byte count
 * handled.
 */
static size_t iov_walk(QEMUIOVector *qiov, size_t offset, IovOp op,
                       void *buf, int fillc, size_t bytes)
{
    char *flat = buf;
    size_t done = 0;
    int i;

    for (i = 0; i < qiov->niov && done < bytes; i++) {
        size_t len = qiov->iov[i].iov_len;
        char *base = qiov->iov[i].iov_base;
        size_t chunk;

        if (offset >= len) {
            offset -= len;
            continue;
        }
        chunk = len - offset;
        if (chunk > bytes - done) {
            chunk = bytes - done;
        }
        switch (op) {
        case IOV_TO_BUF:
            memcpy(flat + done, base + offset, chunk);
            break;
        case IOV_FROM_BUF:
            memcpy(base + offset, flat + done, chunk);
            break;
        case IOV_FILL:
            memset(base + offset, fillc, chunk);
            break;
        }
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t qemu_iovec_to_buf(QEMUIOVector *qiov, size_t offset,
                         void *buf, size_t bytes)
{
    return iov_walk(qiov, offset, IOV_TO_BUF, buf, 0, bytes);
}

size_t qemu_iovec_from_buf(QEMUIOVector *qiov, size_t offset,
                           const void *buf, size_t bytes)
{
    /* The walker only reads the flat side for IOV_FROM_BUF. */
    return iov_walk(qiov, offset, IOV_FROM_BUF, (void *)(uintptr_t)buf, 0,
                    bytes);
}

size_t qemu_iovec_memset(QEMUIOVector *qiov, size_t offset,
                         int fillc, size_t bytes)
{
    return iov_walk(qiov, offset, IOV_FILL, NULL, fillc, bytes);
}
