/*
 * tests/regress/regress-test.h - helpers of the regression programs of
 * bad-input defects (one program per area, each case named after the defect it
 * reproduces), on top of tests/aio/aio-test.h, tests/util/death-test.h
 * and the library's fault hook (src/util/fault.h, includable through
 * aioloop_fi_dep, turned on for the whole program), whose per-site call counters let a case count the fd
 * monitor's waits: a busy spin shows as thousands of waits, a loop that
 * sleeps as a handful, whatever the machine's speed.
 *
 *   using_epoll(), on_poll()    which fd monitor this run asked for / uses
 *   fdmon_waits()               epoll_wait/ppoll calls so far (any thread)
 *   poll_through_timer()        blocking aio_poll() until a timer @ms ahead
 *                               fired; returns the fd-monitor waits it took
 *   death_expect_abort()        run fn in a child: it must die of SIGABRT
 *                               with every given string in its stderr
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_REGRESS_TEST_H
#define AIOLOOP_REGRESS_TEST_H

#include <stdarg.h>

#include "fault.h"
#include "aio/aio-test.h"
#include "util/death-test.h"

/* The library's fault hook is off until a program turns it on: on from
 * the start, so that the per-site counters count the whole program. */
static void __attribute__((constructor)) regress__enable_faults(void)
{
    aioloop__fault_enable();
}

/* A wait of the loop that sleeps until its timer costs one or two fd
 * monitor calls; a spinning loop makes one per pass. */
#define SPIN_WAITS 20

static inline bool using_epoll(void)
{
    const char *m = getenv("AIOLOOP_FDMON");

    return !m || strcmp(m, "poll") != 0;
}

static inline bool on_poll(AioContext *ctx)
{
    return strcmp(aio_context_fdmon_name(ctx), "poll") == 0;
}

static inline unsigned long fdmon_waits(void)
{
    return aioloop__fault_calls(AIOLOOP_FAULT_FDMON_WAIT);
}

static inline void regress_set_flag(void *opaque)
{
    qatomic_set((bool *)opaque, true);
}

/*
 * Blocking aio_poll() until a REALTIME timer @ms ahead has fired.
 * Returns the fd-monitor waits that took: a loop that sleeps needs a few,
 * one that spins (a descriptor reported ready for ever) thousands.
 */
static inline unsigned long poll_through_timer(AioContext *ctx, int ms)
{
    bool fired = false;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 regress_set_flag, &fired);
    unsigned long w0 = fdmon_waits();

    timer_mod(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + ms);
    while (!qatomic_read(&fired)) {
        aio_poll(ctx, true);
        test_progress();
    }
    timer_free(t);
    return fdmon_waits() - w0;
}

/*
 * Runs fn(opaque) in a child that must die of SIGABRT with each of the
 * NULL-terminated strings in its stderr; prints what it saw otherwise.
 * Returns whether it did.
 */
static inline bool death_expect_abort(void (*fn)(void *), void *opaque, ...)
{
    static DeathResult res;     /* 8 KiB: not on a coroutine's stack */
    bool ok;
    va_list ap;
    const char *s;

    if (!death_run(fn, opaque, &res)) {
        printf("#   death_run: cannot fork\n");
        return false;
    }
    ok = died_of(&res, SIGABRT);
    if (!ok) {
        printf("#   expected SIGABRT, got status 0x%x\n", res.status);
    }
    va_start(ap, opaque);
    while ((s = va_arg(ap, const char *))) {
        if (!strstr(res.err, s)) {
            printf("#   stderr lacks \"%s\"\n", s);
            ok = false;
        }
    }
    va_end(ap);
    if (!ok) {
        printf("#   child's stderr: %s\n", res.err);
    }
    return ok;
}

#endif /* AIOLOOP_REGRESS_TEST_H */
