/*
 * linux-aio-internal.h - what the tests may see of the Linux AIO engine
 * (linux-aio.c): the counters of its requests without eventfd, and the
 * knob that decides when a fd's requests go without it. Hidden symbols
 * of the static library; only with AIOLOOP_HAVE_LINUX_AIO.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_LINUX_AIO_INTERNAL_H
#define AIOLOOP_LINUX_AIO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <aioloop/raw-aio.h>

typedef struct LaioStats {
    uint64_t quiet;             /* requests submitted without eventfd */
    uint64_t stragglers;        /* times such a request was found still in
                                 * the kernel with the ring empty */
    uint64_t rescues;           /* passes of the rescue timer */
} LaioStats;

/* Copies @s's counters into @st. Loop thread of @s's context. */
void aioloop__laio_stats(LinuxAioState *s, LaioStats *st)
    __attribute__((visibility("hidden")));
/* After how many io_submit() calls in a row that completed inline a fd's
 * reads and writes go without eventfd (default 16); 0: every request,
 * flushes too, from the first (tests of the rescue path); UINT_MAX:
 * never. No effect on a state that reaps with io_getevents (no ring).
 * Loop thread of @s's context. */
void aioloop__laio_set_inline_after(LinuxAioState *s, unsigned n)
    __attribute__((visibility("hidden")));
/* Whether @s reads completions from the ring mapped by the kernel. */
bool aioloop__laio_has_ring(LinuxAioState *s)
    __attribute__((visibility("hidden")));

#endif /* AIOLOOP_LINUX_AIO_INTERNAL_H */
