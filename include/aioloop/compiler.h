/*
 * aioloop/compiler.h - compiler helpers shared by every aioloop header.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_COMPILER_H
#define AIOLOOP_COMPILER_H

#include <stddef.h>

/* Marks a declaration as part of the exported ABI. The library is built
 * with -fvisibility=hidden, so anything without this stays internal. */
#if defined(AIOLOOP_BUILDING)
#define AIOLOOP_API __attribute__((visibility("default")))
#else
#define AIOLOOP_API
#endif

/* Marker for functions that may only be called from coroutine context
 * (QEMU's spelling, kept for source compatibility). */
#ifndef coroutine_fn
#define coroutine_fn
#endif

/* Checks the arguments of a printf-like function: argument fmt_idx is the
 * format, the variable arguments start at arg_idx (1-based). */
#define AIOLOOP_PRINTF(fmt_idx, arg_idx) \
    __attribute__((format(printf, fmt_idx, arg_idx)))
/* Marks a function that never returns (it aborts or exits). */
#define AIOLOOP_NORETURN __attribute__((noreturn))
/* Makes the compiler warn when a caller ignores the function's result. */
#define AIOLOOP_WARN_UNUSED __attribute__((warn_unused_result))

/* likely(x) / unlikely(x) - the condition x, with a hint to the compiler
 * that it is usually true / usually false. */
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* container_of: from a pointer to a member back to its enclosing struct. */
#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* ARRAY_SIZE: the number of elements of the array x (not a pointer). */
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif

#ifndef QEMU_ALIGN_UP
/* QEMU_ALIGN_DOWN(n, m) / QEMU_ALIGN_UP(n, m) - n rounded down / up to a
 * multiple of m (m > 0, need not be a power of two). */
#define QEMU_ALIGN_DOWN(n, m) ((n) / (m) * (m))
#define QEMU_ALIGN_UP(n, m)   QEMU_ALIGN_DOWN((n) + (m) - 1, (m))
#endif

#endif /* AIOLOOP_COMPILER_H */
