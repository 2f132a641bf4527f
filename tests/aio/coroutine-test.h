/*
 * tests/aio/coroutine-test.h - helpers shared by the single-threaded
 * coroutine test programs (test-coroutine*.c): UNDER_ASAN, main_ctx (the
 * main loop's context, which coroutines entered from the main thread
 * belong to: coroutine_test_init() makes it), Trace/TRACE_IS (the order
 * numbered steps ran in), drain_ctx, poll_until and count_maps.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_COROUTINE_TEST_H
#define AIOLOOP_COROUTINE_TEST_H

#include <aioloop.h>
#include <aioloop/coroutine.h>

#include "aio-test.h"

static AioContext *main_ctx __attribute__((unused));

/* A trace of numbered steps, to check the order things ran in. */
typedef struct {
    int steps[64];
    int n;
} Trace;

static inline void trace_add(Trace *t, int step)
{
    if (t->n < (int)(sizeof(t->steps) / sizeof(t->steps[0]))) {
        t->steps[t->n] = step;
    }
    t->n++;
}

/* Checks that @t holds exactly @n steps equal to @want. */
static inline bool trace_is(const Trace *t, const int *want, int n)
{
    int i;

    if (t->n != n) {
        printf("#   trace has %d steps, want %d:", t->n, n);
    } else {
        for (i = 0; i < n && t->steps[i] == want[i]; i++) {
            /* compare */
        }
        if (i == n) {
            return true;
        }
        printf("#   trace differs at step %d:", i);
    }
    for (i = 0; i < t->n && i < 64; i++) {
        printf(" %d", t->steps[i]);
    }
    printf("\n");
    return false;
}

#define TRACE_IS(t, ...) do { \
    static const int trace__want[] = { __VA_ARGS__ }; \
    CHECK(trace_is((t), trace__want, \
                   (int)(sizeof(trace__want) / sizeof(trace__want[0])))); \
} while (0)

/* Runs aio_poll(ctx, false) until it reports no progress (at most
 * @max times); returns how many calls made progress. */
static inline int drain_ctx(AioContext *ctx, int max)
{
    int n = 0;

    while (n < max && aio_poll(ctx, false)) {
        n++;
    }
    return n;
}

/* Polls @ctx (blocking) until *@flag is nonzero; the watchdog bounds it. */
static inline void poll_until(AioContext *ctx, const int *flag)
{
    while (!qatomic_read(flag)) {
        aio_poll(ctx, true);
    }
}

/* Number of mappings of this process (a leaked coroutine stack is at
 * least one). */
static inline int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int c, n = 0;

    if (!f) {
        return -1;
    }
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
    }
    fclose(f);
    return n;
}


/* For main(), before the cases: the main loop, whose context main_ctx is
 * (each case inherits it through fork). Skips the program if it cannot
 * be made. */
static inline void coroutine_test_init(void)
{
    /* QEMU_CLOCK_VIRTUAL follows host time unless taken over: these cases
     * drive it themselves (every case's process inherits this). */
    qemu_clock_take_over_virtual();
    if (qemu_init_main_loop(NULL) < 0) {
        test_skip_all("cannot create the main loop");
    }
    main_ctx = qemu_get_aio_context();
}

#endif /* AIOLOOP_COROUTINE_TEST_H */
