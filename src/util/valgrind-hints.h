/*
 * valgrind-hints.h - what the library tells valgrind's memcheck about
 * memory the kernel fills behind its back.
 *
 * Memcheck follows system calls, but not what the kernel writes later
 * through shared rings: data read by Linux AIO or io_uring and reaped in
 * user space looks uninitialised to it, and the AIO ring is larger than
 * the size it derives from io_setup's argument. Without these hints
 * `make check-valgrind` would report both as errors.
 *
 * The hints are valgrind client requests: a few instructions that do
 * nothing on a real CPU, behind a RUNNING_ON_VALGRIND test where a loop
 * would cost more. They are compiled in only when meson found the
 * valgrind headers (AIOLOOP_HAVE_VALGRIND); otherwise they are empty.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_VALGRIND_HINTS_H
#define AIOLOOP_VALGRIND_HINTS_H

#include <stddef.h>
#include <aioloop/iov.h>

#ifdef AIOLOOP_HAVE_VALGRIND
#include <valgrind/memcheck.h>

/* [addr, addr + len) is mapped and holds defined data. */
#define aioloop__vg_defined(addr, len) \
    ((void)VALGRIND_MAKE_MEM_DEFINED((addr), (len)))

/* The first @len bytes of @qiov were written by the kernel. */
static inline void aioloop__vg_iov_defined(QEMUIOVector *qiov, size_t len)
{
    if (!RUNNING_ON_VALGRIND) {
        return;
    }
    for (int i = 0; i < qiov->niov && len; i++) {
        size_t n = qiov->iov[i].iov_len < len ? qiov->iov[i].iov_len : len;

        aioloop__vg_defined(qiov->iov[i].iov_base, n);
        len -= n;
    }
}
#else
#define aioloop__vg_defined(addr, len) ((void)(addr), (void)(len))
static inline void aioloop__vg_iov_defined(QEMUIOVector *qiov, size_t len)
{
    (void)qiov;
    (void)len;
}
#endif

#endif /* AIOLOOP_VALGRIND_HINTS_H */
