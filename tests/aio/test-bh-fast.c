/*
 * test-bh-fast.c - the short paths of a non-blocking aio_poll() pass and
 * of aio_bh_poll(). A non-blocking pass that takes no walk of the handler
 * set (only the context's own notifier, or every handler pollable with
 * adaptive polling on) only accepts notifications, runs BHs and runs
 * timers; aio_bh_poll() looks at the list head before exchanging it and
 * returns at once when it is empty and no outer slice is pending.
 *
 * These cases check what those paths must keep: a BH scheduled by
 * another thread while the loop takes them is never lost (each schedule
 * waits for its run, so a lost one hangs the case: the watchdog), on a
 * bare context, with a pollable handler and adaptive polling, and with a
 * handler that makes the pass take the general path; a nested pass with
 * an empty list still runs the outer pass's pending BHs; a BH that
 * reschedules itself runs once per pass; a kick is consumed; timers run;
 * another thread deleting BHs that are being scheduled and run loses or
 * frees nothing twice (ASan and TSan watch).
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON=epoll and
 * AIOLOOP_FDMON=poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "aio-test.h"

/* ------------------------------------------------------------------ */
/* A BH scheduled by another thread is never lost                      */

enum {
    SETUP_BARE,             /* only the context's notifier */
    SETUP_POLLING,          /* a pollable handler, adaptive polling on */
    SETUP_GENERAL,          /* a pollable handler, polling off: a walk */
};

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    unsigned long rounds;   /* schedules to make */
    unsigned long runs;     /* atomic: written by the loop's BH */
    int stop;               /* atomic: the loop gave up (time budget) */
    unsigned long made;     /* schedules made; the scheduler's until
                             * joined */
} Pinger;

static void pinger_bh(void *opaque)
{
    Pinger *p = opaque;

    __atomic_store_n(&p->runs, p->runs + 1, __ATOMIC_RELEASE);
}

/* One schedule at a time; the next only once the loop ran the last. */
static void *scheduler_main(void *opaque)
{
    Pinger *p = opaque;

    for (unsigned long i = 0; i < p->rounds; i++) {
        qemu_bh_schedule(p->bh);
        p->made = i + 1;
        while (__atomic_load_n(&p->runs, __ATOMIC_ACQUIRE) == i) {
            if (__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

static bool always_false(void *opaque)
{
    (void)opaque;
    return false;
}

static void nothing(void *opaque)
{
    (void)opaque;
}

static void cross_thread_schedules(int setup)
{
    AioContext *ctx = new_ctx();
    Pinger p = { .ctx = ctx, .rounds = 20000 };
    int fd = -1;
    int64_t end = test_stress_end();
    unsigned long seen = 0;
    pthread_t t;

    if (setup != SETUP_BARE) {
        Error *err = NULL;

        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(fd >= 0);
        aio_set_fd_handler_poll(ctx, fd, false, nothing, NULL, always_false,
                                NULL, NULL);
        aio_context_set_poll_params(ctx, setup == SETUP_POLLING ? 100000 : 0,
                                    0, 0, &err);
        REQUIRE(!err);
    }
    p.bh = aio_bh_new(ctx, pinger_bh, &p);
    REQUIRE(pthread_create(&t, NULL, scheduler_main, &p) == 0);
    /* Non-blocking passes only: a schedule the pass missed must be found
     * by a later pass, never dropped. Until every round ran, or the time
     * budget is spent with at least 1000 rounds. */
    for (;;) {
        unsigned long runs;

        aio_poll(ctx, false);
        runs = __atomic_load_n(&p.runs, __ATOMIC_RELAXED);
        if (runs != seen) {
            seen = runs;
            test_progress();
        }
        if (runs == p.rounds || (runs >= 1000 && !test_stress_more(end))) {
            break;
        }
    }
    __atomic_store_n(&p.stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    /* The scheduler may stop after a schedule that has not run yet (the
     * time budget): joined, it is on the list, and one more pass runs it.
     * Every other schedule ran before the next was made. */
    aio_poll(ctx, false);
    CHECK_EQ(p.runs, p.made);
    CHECK(p.runs >= 1000);
    qemu_bh_delete(p.bh);
    if (fd >= 0) {
        aio_set_fd_handler(ctx, fd, false, NULL, NULL, NULL);
        close(fd);
    }
    aio_poll(ctx, false);
    aio_context_unref(ctx);
}

static void test_cross_thread_schedule_bare_context(void)
{
    cross_thread_schedules(SETUP_BARE);
}

static void test_cross_thread_schedule_adaptive_polling(void)
{
    cross_thread_schedules(SETUP_POLLING);
}

static void test_cross_thread_schedule_general_pass(void)
{
    cross_thread_schedules(SETUP_GENERAL);
}

/* ------------------------------------------------------------------ */
/* A nested pass with an empty list runs the outer pass's pending BHs  */

typedef struct {
    AioContext *ctx;
    QEMUBH *a, *b, *c;
    int order[8];
    int n;
    bool nested_progress;
} Nest;

static Nest nest;

static void nest_a(void *opaque)
{
    (void)opaque;
    nest.order[nest.n++] = 'a';
    /* b and c were taken off ctx->bh_list with a by the outer pass: the
     * list is empty, yet this nested pass must run them. */
    nest.nested_progress = aio_poll(nest.ctx, false);
}

static void nest_b(void *opaque)
{
    (void)opaque;
    nest.order[nest.n++] = 'b';
}

static void nest_c(void *opaque)
{
    (void)opaque;
    nest.order[nest.n++] = 'c';
}

static void test_nested_pass_runs_outer_slice(void)
{
    nest = (Nest) { .ctx = new_ctx() };
    nest.a = aio_bh_new(nest.ctx, nest_a, NULL);
    nest.b = aio_bh_new(nest.ctx, nest_b, NULL);
    nest.c = aio_bh_new(nest.ctx, nest_c, NULL);
    qemu_bh_schedule(nest.a);
    qemu_bh_schedule(nest.b);
    qemu_bh_schedule(nest.c);
    CHECK(aio_poll(nest.ctx, false));
    CHECK(nest.nested_progress);
    CHECK_EQ(nest.n, 3);
    CHECK_EQ(nest.order[0], 'a');
    CHECK_EQ(nest.order[1], 'b');
    CHECK_EQ(nest.order[2], 'c');
    /* Nothing left, nothing run twice. */
    CHECK(!aio_poll(nest.ctx, false));
    CHECK_EQ(nest.n, 3);
    qemu_bh_delete(nest.a);
    qemu_bh_delete(nest.b);
    qemu_bh_delete(nest.c);
    aio_poll(nest.ctx, false);
    aio_context_unref(nest.ctx);
}

/* ------------------------------------------------------------------ */
/* Self-rescheduling, kicks and timers on the short pass               */

static int self_runs;
static QEMUBH *self_bh;

static void self_bh_cb(void *opaque)
{
    (void)opaque;
    if (++self_runs < 5) {
        qemu_bh_schedule(self_bh);
    }
}

static void test_self_rescheduling_once_per_pass(void)
{
    AioContext *ctx = new_ctx();
    int i;

    self_runs = 0;
    self_bh = aio_bh_new(ctx, self_bh_cb, NULL);
    qemu_bh_schedule(self_bh);
    for (i = 1; i <= 5; i++) {
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(self_runs, i);
    }
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(self_runs, 5);
    qemu_bh_delete(self_bh);
    aio_poll(ctx, false);
    aio_context_unref(ctx);
}

static int timer_runs;

static void timer_cb(void *opaque)
{
    (void)opaque;
    timer_runs++;
}

/* A timer armed in the past runs on the short pass, and a notification
 * is consumed there: a blocking pass that follows is not woken by it
 * (it would return false at once, the timer not run) but sleeps until
 * its timer expires. */
static void test_short_pass_timers_and_notifications(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                 timer_cb, NULL);

    timer_runs = 0;
    timer_mod(t, 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(timer_runs, 1);
    CHECK(!aio_poll(ctx, false));

    aio_notify(ctx);
    CHECK(!aio_poll(ctx, false));       /* consumed, not progress */
    timer_mod(t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 2000000);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(timer_runs, 2);
    timer_free(t);
    aio_poll(ctx, false);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Another thread schedules and deletes BHs while the loop runs them   */

typedef struct {
    AioContext *ctx;
    unsigned long runs;     /* atomic */
    unsigned long made;     /* atomic */
    int stop;               /* atomic */
} Churn;

static void churn_bh(void *opaque)
{
    Churn *c = opaque;

    __atomic_fetch_add(&c->runs, 1, __ATOMIC_RELAXED);
}

/* New BH, schedule, maybe schedule again, delete: the loop frees it
 * whenever it takes it off, having run it at most once. */
static void *churn_main(void *opaque)
{
    Churn *c = opaque;
    unsigned long i;

    for (i = 0; !__atomic_load_n(&c->stop, __ATOMIC_RELAXED); i++) {
        QEMUBH *bh = aio_bh_new(c->ctx, churn_bh, c);

        qemu_bh_schedule(bh);
        if (i % 3 == 0) {
            qemu_bh_schedule(bh);
        }
        if (i % 5 == 0) {
            sched_yield();
        }
        qemu_bh_delete(bh);
        __atomic_fetch_add(&c->made, 1, __ATOMIC_RELAXED);
        if (i % 256 == 0) {
            test_progress();
        }
    }
    return NULL;
}

static void test_cross_thread_delete_while_polling(void)
{
    Churn c = { .ctx = new_ctx() };
    int64_t end = test_stress_end();
    pthread_t t;
    unsigned long passes = 0;

    REQUIRE(pthread_create(&t, NULL, churn_main, &c) == 0);
    while (passes < 1000 ||
           (__atomic_load_n(&c.made, __ATOMIC_RELAXED) < 20000 &&
            test_stress_more(end))) {
        aio_poll(c.ctx, false);
        passes++;
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    aio_poll(c.ctx, false);     /* frees the last deleted ones */
    CHECK(c.runs <= c.made);
    /* The context frees nothing left behind: every BH was deleted and
     * taken off (a leak would be reported by the unref in debug builds
     * and by ASan). */
    aio_context_unref(c.ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_cross_thread_schedule_bare_context);
    RUN(test_cross_thread_schedule_adaptive_polling);
    RUN(test_cross_thread_schedule_general_pass);
    RUN(test_nested_pass_runs_outer_slice);
    RUN(test_self_rescheduling_once_per_pass);
    RUN(test_short_pass_timers_and_notifications);
    RUN(test_cross_thread_delete_while_polling);
    return test_done();
}
