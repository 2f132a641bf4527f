/*
 * test-poll-params.c - adaptive busy polling: parameter validation,
 * cross-thread BHs with polling on, and handlers with an io_poll check
 * (aio_set_fd_handler_poll): io_poll is called, and io_poll_ready (or
 * io_read when it is NULL) runs when it returns true.
 *
 * Meson runs this program once per fd monitor. The cross-thread rounds
 * run until their count or the time budget (test_stress_end) and check
 * exact counts; a lost wake-up is a hang the harness's watchdog names.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "aio-test.h"


/* ------------------------------------------------------------------ */

static void expect_error(AioContext *ctx, int64_t max, int64_t grow,
                         int64_t shrink)
{
    Error *err = NULL;

    aio_context_set_poll_params(ctx, max, grow, shrink, &err);
    CHECK(err != NULL);
    if (err) {
        CHECK(error_get_pretty(err) != NULL);
        printf("#   (%lld, %lld, %lld): %s\n", (long long)max,
               (long long)grow, (long long)shrink, error_get_pretty(err));
        error_free(err);
    }
}

static void test_poll_params_validation(void)
{
    AioContext *ctx = new_ctx();
    Error *err = NULL;

    expect_error(ctx, -1, 0, 0);
    expect_error(ctx, 0, -1, 0);
    expect_error(ctx, 0, 0, -1);
    expect_error(ctx, -50000, -2, -2);

    aio_context_set_poll_params(ctx, 50000, 2, 2, &err);
    CHECK(err == NULL);
    aio_context_set_poll_params(ctx, 0, 0, 0, &err);
    CHECK(err == NULL);
    /* NULL errp is accepted for good and bad values alike. */
    aio_context_set_poll_params(ctx, 1000, 0, 0, NULL);
    aio_context_set_poll_params(ctx, -1, 0, 0, NULL);
    /* The context still works. */
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* A worker schedules a BH, waits until it ran, pauses, repeats, while
 * this thread runs aio_poll(ctx, true) with polling on, until 'iters'
 * round trips or the time budget 'end'. */
typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    int ran;                /* atomic */
    int iters;
    int scheduled;          /* written by the worker */
    int pause_us;
    int64_t end;
    int done;               /* atomic */
    QemuThread thread;
} Pinger;

static void pinger_cb(void *opaque)
{
    Pinger *p = opaque;

    qatomic_inc(&p->ran);
}

static void *pinger_fn(void *opaque)
{
    Pinger *p = opaque;
    int i;

    for (i = 0; i < p->iters && test_stress_more(p->end); i++) {
        if (p->pause_us) {
            sleep_us(p->pause_us * (i % 4));
        }
        p->scheduled++;
        qemu_bh_schedule(p->bh);
        while (qatomic_mb_read(&p->ran) != i + 1) {
            sched_yield();
        }
    }
    qatomic_mb_set(&p->done, 1);
    aio_notify(p->ctx);
    return NULL;
}

static void run_pinger(int64_t max_ns, int iters, int pause_us, int64_t end)
{
    AioContext *ctx = new_ctx();
    Pinger p = { .ctx = ctx, .iters = iters, .pause_us = pause_us,
                 .end = end };
    int64_t t0 = test_now_ns();

    aio_context_set_poll_params(ctx, max_ns, 0, 0, &error_abort);
    p.bh = aio_bh_new(ctx, pinger_cb, &p);
    REQUIRE(qemu_thread_create(&p.thread, "pinger", pinger_fn, &p,
                               QEMU_THREAD_JOINABLE) == 0);
    while (!qatomic_mb_read(&p.done)) {
        aio_poll(ctx, true);
    }
    qemu_thread_join(&p.thread);
    printf("#   max %lld ns: %d wake-ups in %.3f s\n", (long long)max_ns,
           p.scheduled, (double)(test_now_ns() - t0) / 1e9);
    CHECK_EQ(qatomic_read(&p.ran), p.scheduled);
    CHECK(!aio_poll(ctx, false));
    qemu_bh_delete(p.bh);
    aio_context_unref(ctx);
}

static void test_polling_cross_thread_bh(void)
{
    int64_t third = (test_stress_end() - test_now_ns()) / 3;

    /* Each setting gets a third of the time budget. */
    run_pinger(50 * 1000, 5000, 0, test_now_ns() + third);      /* 50 us */
    run_pinger(50 * 1000, 500, 30, test_now_ns() + third);  /* around it */
    run_pinger(10 * 1000 * 1000, 5000, 0, test_now_ns() + third); /* 10 ms */
}

static void test_polling_idle_context_blocks(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;

    /* With polling on and nothing to do, a non-blocking poll still
     * returns at once with no progress, and a pending one-shot runs. */
    aio_context_set_poll_params(ctx, 1000 * 1000, 0, 0, &error_abort);
    CHECK(!aio_poll(ctx, false));
    aio_bh_schedule_oneshot(ctx, atomic_count_cb, &count);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(count, 1);
    /* A notification wakes a blocking poll (after polling gave up). */
    aio_notify(ctx);
    CHECK(!aio_poll(ctx, true));
    aio_context_unref(ctx);
}

/* A handler whose work shows up in a flag (like a shared-memory ring)
 * and, as a fallback, on an eventfd. */
typedef struct {
    AioContext *ctx;
    int efd;
    int flag;               /* atomic: work available */
    int poll_calls;         /* atomic */
    int poll_true;          /* atomic: io_poll returned true */
    int ready_calls;        /* io_poll_ready */
    int read_calls;         /* io_read */
    int handled;            /* atomic: work items consumed */
} Ring;

static bool ring_poll(void *opaque)
{
    Ring *r = opaque;
    bool busy = qatomic_mb_read(&r->flag) != 0;

    qatomic_inc(&r->poll_calls);
    if (busy) {
        qatomic_inc(&r->poll_true);
    }
    return busy;
}

static void ring_consume(Ring *r)
{
    uint64_t v;

    if (qatomic_xchg(&r->flag, 0)) {
        qatomic_inc(&r->handled);
    }
    if (read(r->efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing written (found by polling) */
    }
}

static void ring_ready(void *opaque)
{
    Ring *r = opaque;

    r->ready_calls++;
    ring_consume(r);
}

static void ring_read(void *opaque)
{
    Ring *r = opaque;

    r->read_calls++;
    ring_consume(r);
}

static void test_io_poll_nonblocking(void)
{
    AioContext *ctx = new_ctx();
    Ring r = { .ctx = ctx };
    uint64_t one = 1;

    r.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(r.efd >= 0);
    aio_set_fd_handler_poll(ctx, r.efd, false, ring_read, NULL, ring_poll,
                            ring_ready, &r);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(r.ready_calls + r.read_calls, 0);

    /* Work visible only through io_poll: a non-blocking aio_poll asks
     * io_poll, and io_poll_ready runs. */
    qatomic_set(&r.flag, 1);
    CHECK(aio_poll(ctx, false));
    CHECK(qatomic_read(&r.poll_calls) > 0);
    CHECK(qatomic_read(&r.poll_true) > 0);
    CHECK_EQ(r.ready_calls, 1);
    CHECK_EQ(r.read_calls, 0);
    CHECK_EQ(qatomic_read(&r.handled), 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(r.ready_calls, 1);

    /* Work signalled on the fd only (io_poll cannot see it): a
     * non-blocking poll may rely on io_poll alone, but a blocking one
     * waits on the fd and runs io_read. */
    REQUIRE(write(r.efd, &one, sizeof(one)) == sizeof(one));
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(r.read_calls, 1);
    CHECK_EQ(r.ready_calls, 1);
    CHECK(!aio_poll(ctx, false));

    /* io_poll_ready == NULL: io_read runs instead. */
    aio_set_fd_handler_poll(ctx, r.efd, false, ring_read, NULL, ring_poll,
                            NULL, &r);
    r.read_calls = r.ready_calls = 0;
    qatomic_set(&r.flag, 1);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(r.read_calls, 1);
    CHECK_EQ(r.ready_calls, 0);
    CHECK(!aio_poll(ctx, false));

    /* Removed: io_poll is no longer called. */
    aio_set_fd_handler(ctx, r.efd, false, NULL, NULL, NULL);
    qatomic_set(&r.poll_calls, 0);
    qatomic_set(&r.flag, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(qatomic_read(&r.poll_calls), 0);
    CHECK_EQ(r.read_calls, 1);
    close(r.efd);
    aio_context_unref(ctx);
}

/* Another thread raises the flag, and only later (as a fallback, so that
 * a loop asleep in the fd monitor is woken) writes the eventfd. With
 * polling on, the loop should see the flag through io_poll before the
 * write in most rounds; it runs 300 rounds or (after 20) until the time
 * budget. */
typedef struct {
    Ring *r;
    int rounds;
    int64_t end;
    int flag_to_write_us;
    int done;               /* atomic */
    QemuThread thread;
} Producer;

static void *producer_fn(void *opaque)
{
    Producer *p = opaque;
    uint64_t one = 1;
    int i;

    for (i = 0; i < p->rounds; i++) {
        int64_t deadline;

        if (i >= 20 && !test_stress_more(p->end)) {
            p->rounds = i;
            break;
        }
        /* A pause of 50 to 250 us, spinning: a thread that sleeps may wake
         * long after the loop's poll window on a loaded machine. */
        deadline = test_now_ns() + (50 + 100 * (i % 3)) * 1000LL;
        while (test_now_ns() < deadline) {
            /* spin */
        }
        qatomic_mb_set(&p->r->flag, 1);
        deadline = test_now_ns() + p->flag_to_write_us * 1000LL;
        while (qatomic_mb_read(&p->r->handled) != i + 1 &&
               test_now_ns() < deadline) {
            sched_yield();
        }
        if (qatomic_mb_read(&p->r->handled) != i + 1) {
            if (write(p->r->efd, &one, sizeof(one)) != sizeof(one)) {
                abort();
            }
        }
        while (qatomic_mb_read(&p->r->handled) != i + 1) {
            sched_yield();
        }
    }
    qatomic_mb_set(&p->done, 1);
    aio_notify(p->r->ctx);
    return NULL;
}

/* One set of producer rounds on a fresh context; returns whether io_poll
 * ever saw the flag up (the premise of the check), after checking that
 * then io_poll_ready ran. */
static bool io_poll_during_polling_rounds(void)
{
    AioContext *ctx = new_ctx();
    Ring r = { .ctx = ctx };
    Producer p = { .r = &r, .rounds = 300, .end = test_stress_end(),
                   .flag_to_write_us = 20000 };
    int ready, reads, seen;

    r.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r.efd < 0) {
        CHECK(r.efd >= 0);
        aio_context_unref(ctx);
        return true;
    }
    /* Windows of up to half a second: they cover the gap between two
     * rounds (and the one between the flag and the write) even when the
     * producer gets the CPU late. */
    aio_context_set_poll_params(ctx, 500 * 1000 * 1000, 0, 0, &error_abort);
    aio_set_fd_handler_poll(ctx, r.efd, false, ring_read, NULL, ring_poll,
                            ring_ready, &r);
    start_thread(&p.thread, "producer", producer_fn, &p);
    while (!qatomic_mb_read(&p.done)) {
        aio_poll(ctx, true);
    }
    qemu_thread_join(&p.thread);
    ready = r.ready_calls;
    reads = r.read_calls;
    seen = qatomic_read(&r.poll_true);
    /* p.rounds is final: the producer is joined. */
    printf("#   %d rounds: %d via io_poll_ready, %d via io_read, "
           "%d io_poll calls, %d saw the flag\n", p.rounds, ready, reads,
           qatomic_read(&r.poll_calls), seen);
    CHECK_EQ(qatomic_read(&r.handled), p.rounds);
    CHECK(qatomic_read(&r.poll_calls) > 0);
    /* Whenever io_poll found the work, io_poll_ready ran. */
    if (seen > 0) {
        CHECK(ready > 0);
    }
    aio_set_fd_handler(ctx, r.efd, false, NULL, NULL, NULL);
    close(r.efd);
    aio_context_unref(ctx);
    return seen > 0;
}

/* Polling finds the work: io_poll sees the flag and io_poll_ready runs.
 * Adaptive polling only polls while the loop's waits stay short: on a
 * loaded machine the loop may not be polling in any of the rounds (the
 * work then arrives through io_read, after the fallback write), which
 * proves nothing either way; such a set of rounds is run again. That
 * polling happens at all is checked by count in test-iothread.c. */
static void test_io_poll_during_polling(void)
{
    while (!io_poll_during_polling_rounds()) {
        if (!test_late_round("io_poll never ran while the work was "
                             "there (the loop was not polling)")) {
            return;
        }
    }
}

static void test_polling_off_with_handler_lacking_io_poll(void)
{
    AioContext *ctx = new_ctx();
    Ring r = { .ctx = ctx };
    int other = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t one = 1;
    int count = 0;

    /* One handler without io_poll: polling is not used, but everything
     * still works through the fds and BHs. */
    r.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(r.efd >= 0 && other >= 0);
    aio_context_set_poll_params(ctx, 1000 * 1000, 0, 0, &error_abort);
    aio_set_fd_handler_poll(ctx, r.efd, false, ring_read, NULL, ring_poll,
                            ring_ready, &r);
    aio_set_fd_handler(ctx, other, false, atomic_count_cb, NULL, &count);
    REQUIRE(write(other, &one, sizeof(one)) == sizeof(one));
    CHECK(aio_poll(ctx, true));
    CHECK(count >= 1);
    aio_set_fd_handler(ctx, other, false, NULL, NULL, NULL);
    REQUIRE(write(r.efd, &one, sizeof(one)) == sizeof(one));
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(r.read_calls, 1);
    aio_set_fd_handler(ctx, r.efd, false, NULL, NULL, NULL);
    close(other);
    close(r.efd);
    aio_context_unref(ctx);
}

/* A poll window capped by a timer: the window grows until the timer's
 * timeout caps it, the poller (reading the clock only every few rounds)
 * gives up when the timeout has passed, and the timer then fires, never
 * before its deadline, as the only progress of that aio_poll(). The
 * handler's io_poll() never says ready. */
typedef struct {
    QEMUTimer *timer;
    int64_t deadline;       /* QEMU_CLOCK_REALTIME ns */
    int fired;
    int early;              /* fired before the deadline */
} CappedTimer;

static void capped_timer_cb(void *opaque)
{
    CappedTimer *t = opaque;

    if (qemu_clock_get_ns(QEMU_CLOCK_REALTIME) < t->deadline) {
        t->early++;
    }
    t->fired++;
}

static void test_poll_window_capped_by_timer(void)
{
    AioContext *ctx = new_ctx();
    Ring r = { .ctx = ctx };
    CappedTimer t = { 0 };
    int rounds, polled_rounds = 0;

    r.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(r.efd >= 0);
    /* 10 ms: above the 2 ms timers, so the timeout caps the window. */
    aio_context_set_poll_params(ctx, 10 * 1000 * 1000, 0, 0, &error_abort);
    aio_set_fd_handler_poll(ctx, r.efd, false, ring_read, NULL, ring_poll,
                            ring_ready, &r);
    t.timer = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                            capped_timer_cb, &t);
    for (rounds = 0; rounds < 20; rounds++) {
        int before = qatomic_read(&r.poll_calls);

        t.deadline = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 2000000;
        timer_mod(t.timer, t.deadline);
        /* timer_mod() notifies the context: the first aio_poll() may
         * return false, woken by it. */
        while (t.fired == rounds) {
            aio_poll(ctx, true);
        }
        CHECK_EQ(t.fired, rounds + 1);
        if (qatomic_read(&r.poll_calls) > before) {
            polled_rounds++;
        }
        test_progress();
    }
    CHECK_EQ(t.early, 0);
    CHECK_EQ(r.poll_true, 0);
    CHECK_EQ(r.ready_calls, 0);
    CHECK_EQ(r.read_calls, 0);
    /* Whether a round polled depends on timing (a loaded machine may
     * reach the deadline before the window opens); said, not checked. */
    printf("#   %d of %d rounds busy-polled before their timer\n",
           polled_rounds, rounds);
    timer_free(t.timer);
    aio_set_fd_handler(ctx, r.efd, false, NULL, NULL, NULL);
    close(r.efd);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);

    RUN(test_poll_params_validation);
    RUN(test_polling_cross_thread_bh);
    RUN(test_polling_idle_context_blocks);
    RUN(test_io_poll_nonblocking);
    RUN(test_io_poll_during_polling);
    RUN(test_polling_off_with_handler_lacking_io_poll);
    RUN(test_poll_window_capped_by_timer);
    return test_done();
}
