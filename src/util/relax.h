/*
 * util/relax.h - cpu_relax(), the busy-wait hint of the library's spin
 * loops (thread-pool workers, coroutine migration, the timer list's
 * biased lock).
 *
 * Not installed; not part of the API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_UTIL_RELAX_H
#define AIOLOOP_UTIL_RELAX_H

/* Busy-wait hint for spin loops. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

#endif /* AIOLOOP_UTIL_RELAX_H */
