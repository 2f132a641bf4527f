/*
 * alloc.h - the library's heap allocation, and what it does when memory
 * runs out.
 *
 * Every malloc/calloc/realloc/strdup/posix_memalign of the library goes
 * through these wrappers, so that the tests can make any of them fail
 * (fault site AIOLOOP_FAULT_ALLOC, see fault.h). Until a test turns the
 * hook on they are the plain libc calls behind one branch not taken.
 *
 * Out-of-memory policy
 * --------------------
 * The library does not abort on allocation failure by default, as
 * g_malloc would: it decides per call site, by what the caller can be
 * told.
 *
 *  1. A constructor with an error channel reports ENOMEM and leaves
 *     nothing behind (no leak, no half-built object):
 *       aio_context_new, iothread_create, aio_block_backend_new,
 *       luring_init (Error ** set, NULL returned);
 *       qemu_init_main_loop (-ENOMEM / the context's errno);
 *       laio_init, taio_init (NULL, errno = ENOMEM);
 *       qemu_thread_create (-ENOMEM).
 *     Whatever these build internally (the context's notifier handler,
 *     timer lists, internal BHs, fd table, ppoll state) is allocated
 *     through fallible internal variants for that reason.
 *  2. Work that has an asynchronous error channel reports ENOMEM there:
 *     a thread-pool worker that cannot be started (its ThreadStart) is a
 *     failed spawn, handled like pthread_create's EAGAIN (thread-pool.c:
 *     retried, then the queued jobs complete with the error).
 *  3. Everything else has no way to say "failed" in its QEMU signature
 *     and aborts with a message that names what could not be allocated:
 *     aio_bh_new / aio_bh_schedule_oneshot, aio_set_fd_handler (and the
 *     event-notifier variants), timer_new / timer_mod's heap growth,
 *     thread_pool_new / aio_get_thread_pool, qemu_aio_get (so every
 *     submit_aio), qemu_coroutine_create (its stack: mmap), the ppoll
 *     monitor's arrays, QEMUIOVector growth, a backend's attach (its
 *     internal BHs), async_context_push (its level stack and context),
 *     Error objects themselves, and GLib's allocations (g_new aborts). These are small, bounded allocations; a caller
 *     cannot recover from them sensibly, and pretending to succeed would
 *     lose a request, which the contract forbids.
 *
 * The wrappers set errno to ENOMEM when the fault hook fails them, as
 * libc does.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ALLOC_H
#define AIOLOOP_ALLOC_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/compiler.h>
#include "fault.h"

static inline void *aioloop__malloc(size_t size)
{
    if (AIOLOOP_FAULT(AIOLOOP_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size);
}

static inline void *aioloop__calloc(size_t n, size_t size)
{
    if (AIOLOOP_FAULT(AIOLOOP_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, size);
}

/* On failure @ptr is untouched (still owned by the caller). */
static inline void *aioloop__realloc(void *ptr, size_t size)
{
    if (AIOLOOP_FAULT(AIOLOOP_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, size);
}

static inline char *aioloop__strdup(const char *s)
{
    if (AIOLOOP_FAULT(AIOLOOP_FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return strdup(s);
}

/* Returns 0 or ENOMEM/EINVAL, as posix_memalign does. */
static inline int aioloop__posix_memalign(void **ptr, size_t align,
                                          size_t size)
{
    if (AIOLOOP_FAULT(AIOLOOP_FAULT_ALLOC)) {
        return ENOMEM;
    }
    return posix_memalign(ptr, align, size);
}

/* Policy 3 above: say what could not be allocated (@fmt, printf-like,
 * without a newline), then abort. Every such abort goes through here, so
 * that they all print the same "aioloop: out of memory: " prefix. */
static inline AIOLOOP_NORETURN AIOLOOP_PRINTF(1, 2)
void aioloop__oom(const char *fmt, ...)
{
    va_list ap;

    fputs("aioloop: out of memory: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

#endif /* AIOLOOP_ALLOC_H */
