/*
 * valgrind-hints.h - what the library tells valgrind's memcheck about
 * memory the kernel fills behind its back, and what it tells memcheck
 * and ASan about memory it keeps for reuse.
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

/*
 * Memory the library keeps for reuse instead of freeing it (block
 * requests, raw-request.c): while it waits to be reused, ASan and
 * memcheck treat any access as they would an access to freed memory.
 * aioloop__mem_retire() when it goes on the spare list,
 * aioloop__mem_reuse() when it comes off (contents undefined).
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AIOLOOP_MEM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(AIOLOOP_MEM_ASAN)
#define AIOLOOP_MEM_ASAN 1
#endif
#ifdef AIOLOOP_MEM_ASAN
#include <sanitizer/asan_interface.h>
#endif

static inline void aioloop__mem_retire(void *addr, size_t len)
{
#ifdef AIOLOOP_MEM_ASAN
    __asan_poison_memory_region(addr, len);
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
    (void)VALGRIND_MAKE_MEM_NOACCESS(addr, len);
#endif
    (void)addr;
    (void)len;
}

static inline void aioloop__mem_reuse(void *addr, size_t len)
{
#ifdef AIOLOOP_MEM_ASAN
    __asan_unpoison_memory_region(addr, len);
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
    (void)VALGRIND_MAKE_MEM_UNDEFINED(addr, len);
#endif
    (void)addr;
    (void)len;
}

#endif /* AIOLOOP_VALGRIND_HINTS_H */
