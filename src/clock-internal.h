/*
 * clock-internal.h - the library's own reading of the system clocks (the
 * thread pool's and block engines' deadlines, aio_poll()'s polling
 * budget, timer.c's QEMU_CLOCK_REALTIME/HOST). One clock_gettime() each,
 * inline.
 *
 * Not installed; not part of the API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_CLOCK_INTERNAL_H
#define AIOLOOP_CLOCK_INTERNAL_H

#include <stdint.h>
#include <time.h>

/* @id's time in ns. */
static inline int64_t aioloop__clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Monotonic time (QEMU_CLOCK_REALTIME) for the library's own use. */
static inline int64_t aioloop__now_ns(void)
{
    return aioloop__clock_ns(CLOCK_MONOTONIC);
}

#endif /* AIOLOOP_CLOCK_INTERNAL_H */
