/*
 * tests/aio/timer-test.h - helpers shared by the single-threaded timer
 * test programs (test-timer*.c): drain() (non-blocking polls until none
 * makes progress, bounded by a count), vnow()/vadvance() on the
 * application-driven virtual clock, and tcount_cb (counts firings).
 *
 * QEMU_CLOCK_VIRTUAL is process-global and only moves forward, so every
 * case reads its current value first and works relative to it; a case
 * that disables a clock re-enables it before it returns.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TIMER_TEST_H
#define AIOLOOP_TIMER_TEST_H

#include <aioloop.h>

#include "aio-test.h"


/* Runs non-blocking iterations until one makes no progress; returns how
 * many made progress (bounded so that a bug cannot spin forever). */
static inline int drain(AioContext *ctx)
{
    int n = 0;

    while (n < 10000 && aio_poll(ctx, false)) {
        n++;
    }
    return n;
}

static inline int64_t vnow(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

/* Advances the virtual clock by 'delta' ns; returns the new value. */
static inline int64_t vadvance(int64_t delta)
{
    return qemu_clock_advance_virtual_time(vnow() + delta);
}

/* Timer callback: increments the int that 'opaque' points to. */
static inline void tcount_cb(void *opaque)
{
    int *count = opaque;

    (*count)++;
}
#endif /* AIOLOOP_TIMER_TEST_H */
