/*
 * tests/faults/faults-test.h - helpers of the fault-injection programs,
 * on top of tests/aio/aio-test.h and the library's fault hook
 * (src/util/fault.h, includable through aioloop_fi_dep), turned on for
 * the whole program.
 *
 *   FRUN(fn)            RUN(fn), then prints the faults the case injected,
 *                       per site ("#   injected: epoll_ctl=1 alloc=3"),
 *                       and disarms every site
 *   fault_summary()     main(): the program's totals, per site, with the
 *                       calls that reached each site (AIOLOOP_TEST_FORK=0)
 *   test_count_fds()          descriptors open in the process (leak checks)
 *   poll_until()        blocking aio_poll() until a counter reaches a
 *                       value or a time limit passes (a ticker timer keeps
 *                       the loop turning), so no case can hang
 *   Counter             a per-request record: callbacks counted, so that
 *                       every case can check "exactly once"
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FAULTS_TEST_H
#define AIOLOOP_FAULTS_TEST_H

#include "fault.h"
#include "aio/aio-test.h"
#include "fd-count.h"

/* The library's fault hook is off until a program turns it on: on from
 * the start, so that the per-site counters count the whole program. */
static void __attribute__((constructor)) faults__enable(void)
{
    aioloop__fault_enable();
}

#define MS 1000000LL

static unsigned long faults__before[AIOLOOP_FAULT_SITE_MAX];

static inline void faults_snapshot(void)
{
    for (int i = 0; i < AIOLOOP_FAULT_SITE_MAX; i++) {
        faults__before[i] = aioloop__fault_hits((AioloopFaultSite)i);
    }
}

/* Prints the faults injected since faults_snapshot(). */
static inline void faults_print_case(void)
{
    char line[512];
    int len = snprintf(line, sizeof(line), "#   injected:");
    bool any = false;

    for (int i = 0; i < AIOLOOP_FAULT_SITE_MAX; i++) {
        unsigned long d = aioloop__fault_hits((AioloopFaultSite)i) -
                          faults__before[i];

        if (d && len < (int)sizeof(line)) {
            len += snprintf(line + len, sizeof(line) - len, " %s=%lu",
                            aioloop__fault_site_name((AioloopFaultSite)i), d);
            any = true;
        }
    }
    printf("%s%s\n", line, any ? "" : " none");
}

/* After a case, in its process: prints its injections and disarms every
 * site (a case that leaves early arms nothing for the code after it). */
static inline void faults_case_after(void)
{
    aioloop__fault_clear();
    faults_print_case();
}

/* RUN() with the case's injections printed. */
#define FRUN(fn) do { \
    test_set_case_hooks(faults_snapshot, faults_case_after); \
    RUN(fn); \
} while (0)

/* The program's totals: "# fault totals: site=hits/calls ...". Only
 * when the cases ran in this process (AIOLOOP_TEST_FORK=0); otherwise
 * each case's own line says what it injected. */
static inline void fault_summary(void)
{
    if (test__fork_enabled()) {
        return;
    }
    printf("# fault totals (injected/calls):");
    for (int i = 0; i < AIOLOOP_FAULT_SITE_MAX; i++) {
        unsigned long h = aioloop__fault_hits((AioloopFaultSite)i);

        if (h) {
            printf(" %s=%lu/%lu",
                   aioloop__fault_site_name((AioloopFaultSite)i), h,
                   aioloop__fault_calls((AioloopFaultSite)i));
        }
    }
    printf("\n");
}


/* A timer that re-arms itself every 10 ms, so that a blocking aio_poll()
 * returns now and then even when nothing else happens. */
static inline void faults_ticker_cb(void *opaque)
{
    QEMUTimer **timer = opaque;

    timer_mod(*timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10);
}

/* Blocking aio_poll(@ctx) until *@counter (read atomically) reaches @n,
 * with a 10 ms ticker (an injected fault may legitimately cost a
 * wake-up). No time bound: a count that never gets there is a hang,
 * which the harness's watchdog names; each step of it is progress. */
static inline void poll_until(AioContext *ctx, int *counter, int n)
{
    QEMUTimer *timer = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                     faults_ticker_cb, &timer);
    int last = qatomic_read(counter);

    faults_ticker_cb(&timer);
    while (qatomic_read(counter) < n) {
        aio_poll(ctx, true);
        if (qatomic_read(counter) != last) {
            last = qatomic_read(counter);
            test_progress();
        }
    }
    timer_free(timer);
}

/* A request's completion record. */
typedef struct Counter {
    int runs;                   /* atomic: callbacks so far */
    int ret;                    /* what the last one got */
    int *total;                 /* atomic: shared over a group, optional */
} Counter;

static inline void counter_cb(void *opaque, int ret)
{
    Counter *c = opaque;

    c->ret = ret;
    qatomic_inc(&c->runs);
    if (c->total) {
        qatomic_inc(c->total);
    }
}

/* How many of @n records did not run exactly once; prints the first few. */
static inline int counters_not_once(const Counter *c, int n)
{
    int bad = 0;

    for (int i = 0; i < n; i++) {
        if (qatomic_read(&c[i].runs) != 1) {
            if (bad < 5) {
                printf("#   request %d: %d callbacks (ret %d)\n", i,
                       qatomic_read(&c[i].runs), c[i].ret);
            }
            bad++;
        }
    }
    return bad;
}

#endif /* AIOLOOP_FAULTS_TEST_H */
