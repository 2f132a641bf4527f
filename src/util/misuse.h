/*
 * misuse.h - how the library stops on a programming error it detects.
 *
 * Some mistakes cannot be reported to the caller: the QEMU signature
 * returns nothing (qemu_bh_delete, aio_set_fd_handler, timer_mod...), or
 * carrying on would corrupt memory or lose work that the caller believes
 * is queued. For those the library prints one line and aborts:
 *
 *     aioloop: <function>: <what went wrong, naming the object>
 *
 * The object is named so that the line alone points at the bug: a BH by
 * its debug name, a coroutine by its address and entry function, an fd by
 * its number, a timer by its address and callback, a context, pool,
 * mutex or request by its address. The checks that call this hold in
 * every build, NDEBUG included, wherever they guard memory or data (an
 * assert() that vanishes in a release build would let the mistake
 * through silently, which is worse than the abort).
 *
 * Bad *input* that the API can report (a negative parameter with an
 * Error ** or an int result) is not misuse: it gets -EINVAL or errp.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_MISUSE_H
#define AIOLOOP_MISUSE_H

#include <stdint.h>
#include <aioloop/compiler.h>

/* Prints "aioloop: <func>: <formatted message>" as one line on stderr
 * and aborts. Cold: callers keep it out of their fast paths. */
AIOLOOP_NORETURN AIOLOOP_PRINTF(2, 3) __attribute__((cold))
void aioloop__misuse(const char *func, const char *fmt, ...);

/* A function pointer printed with %p (ISO C has no conversion for them). */
#define AIOLOOP_FN_PTR(fn) ((void *)(uintptr_t)(fn))

#endif /* AIOLOOP_MISUSE_H */
