/*
 * test-timer-threads.c - timers armed, moved and deleted from other
 * threads while the loop sleeps: a timer armed from another thread wakes
 * a loop sleeping in aio_poll() (with no deadline, with a far one, on
 * another clock), moving a deadline later or deleting it from another
 * thread while the loop sleeps, qemu_clock_advance_virtual_time() and
 * qemu_clock_enable() from another thread waking a loop with a virtual
 * timer, a nested blocking aio_poll() running a timer due with the
 * running one, and timers of an IOThread's context firing in the
 * IOThread. (Races of timer_del/timer_free with expiry, and many arming
 * threads: test-timer-races.c.)
 *
 * A lost wake-up leaves a loop asleep with nothing else to wake it: the
 * harness's no-progress watchdog fails the case by name. No check bounds
 * how late a wake-up may be (that measures the machine); "never early"
 * and "exactly once" are checked. Helper threads act once the loop is
 * seen asleep (wait_until_polling), and a check that needs a helper to
 * beat a real-time deadline verifies that it did, or retries the round.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "aio-test.h"


#define SCALE_S_NS 1000000000LL
#define MS 1000000LL

static int64_t rt_now(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/* Waits on a context with blocking aio_poll() until *flag is set by a
 * callback that runs in this thread. */
static void poll_until(AioContext *ctx, int *flag)
{
    while (!qatomic_read(flag)) {
        aio_poll(ctx, true);
    }
}

/* ------------------------------------------------------------------ */
/* Cross-thread timer_mod wakes a sleeping loop                        */

typedef struct {
    AioContext *ctx;
    QEMUTimer *timer;           /* the timer the arming thread arms */
    QEMUClockType clock;
    int delay_us;               /* before arming; -1: once the loop sleeps */
    int loop_tid;
    int64_t armed_at;           /* REALTIME ns, when armed */
    int64_t deadline;           /* on the timer's clock */
    int fired;                  /* set by the timer callback */
    int64_t fired_at;           /* REALTIME ns */
    int done;                   /* loop exits when set */
} Arm;

static void arm_timer_cb(void *opaque)
{
    Arm *a = opaque;

    a->fired_at = rt_now();
    qatomic_inc(&a->fired);
    qatomic_set(&a->done, 1);
}

static void *arm_thread(void *opaque)
{
    Arm *a = opaque;

    if (a->delay_us < 0) {
        wait_until_polling(a->loop_tid);
    } else {
        sleep_us(a->delay_us);
    }
    a->armed_at = rt_now();
    a->deadline = qemu_clock_get_ns(a->clock) + 1000 * 1000;     /* +1 ms */
    timer_mod_ns(a->timer, a->deadline);
    return NULL;
}

/* One round: the loop sleeps in aio_poll(ctx, true) while another thread
 * arms 'timer' for +1 ms (after 'delay_us', or once the loop sleeps if
 * -1). Nothing else can wake the loop: a lost wake-up is a hang. Returns
 * the wake latency past the deadline in ns (a figure, not a check), or
 * -1 if the round failed (recorded). */
static int64_t cross_thread_arm_round(AioContext *ctx, QEMUTimer *timer,
                                      QEMUClockType clock, Arm *a,
                                      int delay_us)
{
    QemuThread th;

    a->ctx = ctx;
    a->timer = timer;
    a->clock = clock;
    a->delay_us = delay_us;
    a->loop_tid = qemu_get_thread_id();
    a->fired = 0;
    a->done = 0;
    start_thread(&th, "arm", arm_thread, a);
    while (!qatomic_read(&a->done)) {
        aio_poll(ctx, true);
    }
    qemu_thread_join(&th);
    CHECK_EQ(a->fired, 1);
    if (a->fired != 1) {
        return -1;
    }
    /* Never early (on REALTIME, where we can compare). */
    if (clock == QEMU_CLOCK_REALTIME) {
        CHECK(a->fired_at >= a->deadline);
    }
    test_progress();
    return a->fired_at - a->armed_at - 1000 * 1000;
}

static void test_cross_thread_mod_wakes_idle_loop(void)
{
    AioContext *ctx = new_ctx();
    Arm a = { 0 };
    QEMUTimer ts;
    int i;
    int64_t worst = 0;

    aio_timer_init(ctx, &ts, QEMU_CLOCK_REALTIME, SCALE_NS, arm_timer_cb, &a);
    /* Different delays: the arm lands before, while and after the loop
     * goes to sleep with no deadline at all. */
    for (i = 0; i < 20; i++) {
        int64_t late = cross_thread_arm_round(ctx, &ts, QEMU_CLOCK_REALTIME,
                                              &a, i % 5 == 4 ? -1 :
                                              (i % 5) * 2000);

        if (late < 0) {
            printf("#   round %d failed\n", i);
            break;
        }
        if (late > worst) {
            worst = late;
        }
        CHECK(!timer_pending(&ts));
    }
    printf("#   worst lateness past the deadline: %lld us\n",
           (long long)worst / 1000);
    timer_deinit(&ts);
    aio_context_unref(ctx);
}

static void far_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

/* The loop sleeps for a far deadline (an hour: a loop that missed the
 * wake-up would still be asleep when the watchdog fires); an earlier one
 * armed from another thread, on the same clock or another, must wake
 * it. */
static void test_cross_thread_earlier_deadline_wakes_loop(void)
{
    static const QEMUClockType clocks[] = {
        QEMU_CLOCK_REALTIME, QEMU_CLOCK_HOST, QEMU_CLOCK_VIRTUAL_RT,
    };
    AioContext *ctx = new_ctx();
    Arm a = { 0 };
    QEMUTimer far, near;
    int far_count = 0;
    size_t c;

    aio_timer_init(ctx, &far, QEMU_CLOCK_REALTIME, SCALE_NS, far_cb,
                   &far_count);
    timer_mod_ns(&far, rt_now() + 3600 * SCALE_S_NS);
    for (c = 0; c < sizeof(clocks) / sizeof(clocks[0]); c++) {
        int i;

        aio_timer_init(ctx, &near, clocks[c], SCALE_NS, arm_timer_cb, &a);
        for (i = 0; i < 5; i++) {
            if (cross_thread_arm_round(ctx, &near, clocks[c], &a,
                                       i % 2 ? -1 : i * 1000) < 0) {
                printf("#   clock %d round %d failed\n", (int)clocks[c], i);
                break;
            }
        }
        timer_deinit(&near);
    }
    CHECK_EQ(far_count, 0);
    CHECK(timer_pending(&far));
    timer_deinit(&far);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Moving later / deleting from another thread while the loop sleeps   */

typedef struct {
    AioContext *ctx;
    QEMUTimer timer;
    int loop_tid;
    int64_t first;              /* the deadline the loop sleeps for */
    int64_t later;              /* the moved deadline (move) */
    int64_t acted_at;           /* REALTIME ns, right after the move/del */
    int64_t fired_at;
    int fired;
    int stop;
    bool del;                   /* delete instead of moving later */
} Mover;

static void mover_cb(void *opaque)
{
    Mover *m = opaque;

    m->fired_at = rt_now();
    qatomic_inc(&m->fired);
    qatomic_set(&m->stop, 1);
}

static void mover_stop_bh(void *opaque)
{
    qatomic_set(&((Mover *)opaque)->stop, 1);
}

static void *mover_thread(void *opaque)
{
    Mover *m = opaque;

    wait_until_polling(m->loop_tid);
    if (m->del) {
        timer_del(&m->timer);
        m->acted_at = rt_now();
        /* Let the old deadline pass; then end the loop with a BH (the
         * drain after it would run a timer that is wrongly still due). */
        while (rt_now() <= m->first) {
            sleep_us((int)((m->first - rt_now()) / 1000) + 1);
        }
        aio_bh_schedule_oneshot(m->ctx, mover_stop_bh, m);
    } else {
        timer_mod_ns(&m->timer, m->later);
        m->acted_at = rt_now();
    }
    return NULL;
}

/* One round, the first deadline @margin_ms away; false if the mover
 * acted only after it (the premise of the round), true if the round was
 * checked. */
static bool move_or_delete_round(AioContext *ctx, Mover *m, bool del,
                                 int margin_ms)
{
    QemuThread th;

    m->fired = 0;
    m->stop = 0;
    m->del = del;
    m->loop_tid = qemu_get_thread_id();
    m->first = rt_now() + margin_ms * MS;
    m->later = m->first + 60 * MS;
    timer_mod_ns(&m->timer, m->first);
    start_thread(&th, del ? "deleter" : "mover", mover_thread, m);
    poll_until(ctx, &m->stop);
    qemu_thread_join(&th);
    while (aio_poll(ctx, false)) {
    }
    if (m->acted_at >= m->first) {
        timer_del(&m->timer);
        return false;
    }
    if (del) {
        /* Deleted while the loop slept for it: never fires. */
        CHECK_EQ(m->fired, 0);
        CHECK(!timer_pending(&m->timer));
    } else {
        /* Moved later: fires once, not before the new deadline. */
        CHECK_EQ(m->fired, 1);
        CHECK(m->fired_at >= m->later);
        printf("#   moved-later timer fired %lld us after its new "
               "deadline\n", (long long)(m->fired_at - m->later) / 1000);
    }
    return true;
}

static void test_cross_thread_move_later_and_delete(void)
{
    AioContext *ctx = new_ctx();
    Mover m = { .ctx = ctx };
    int del;

    /* The loop sleeps for +100 ms; another thread moves the timer 60 ms
     * later, or deletes it, as soon as the loop sleeps. A round where
     * that thread acted only after the first deadline proves nothing:
     * again, with twice the margin. */
    aio_timer_init(ctx, &m.timer, QEMU_CLOCK_REALTIME, SCALE_NS, mover_cb, &m);
    for (del = 0; del <= 1; del++) {
        int margin_ms = 100;

        while (!move_or_delete_round(ctx, &m, del, margin_ms)) {
            margin_ms = margin_ms < 3200 ? margin_ms * 2 : margin_ms;
            if (!test_late_round(del ? "the timer was deleted after its "
                                 "deadline" : "the timer was moved after "
                                 "its first deadline")) {
                goto out;
            }
        }
    }
out:
    timer_deinit(&m.timer);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Virtual clock advanced from another thread                          */

typedef struct {
    AioContext *ctx;
    int loop_tid;
    int64_t deadline;
    int64_t seen;               /* virtual time in the callback */
    int fired;
    int done;
    int fired_before_advance;
    int advanced;
} VAdv;

static void vadv_cb(void *opaque)
{
    VAdv *v = opaque;

    v->seen = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    if (!qatomic_read(&v->advanced)) {
        qatomic_inc(&v->fired_before_advance);
    }
    qatomic_inc(&v->fired);
    qatomic_set(&v->done, 1);
}

static void *vadv_thread(void *opaque)
{
    VAdv *v = opaque;

    wait_until_polling(v->loop_tid);
    /* Short of the deadline: must not fire. */
    qemu_clock_advance_virtual_time(v->deadline - 1);
    wait_until_polling(v->loop_tid);
    qatomic_set(&v->advanced, 1);
    qemu_clock_advance_virtual_time(v->deadline);
    return NULL;
}

static void test_virtual_advance_from_thread_wakes_loop(void)
{
    AioContext *ctx = new_ctx();
    VAdv v = { .ctx = ctx };
    QEMUTimer ts;
    QemuThread th;
    int i;

    v.loop_tid = qemu_get_thread_id();
    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, vadv_cb, &v);
    for (i = 0; i < 10; i++) {
        v.fired = 0;
        v.done = 0;
        v.advanced = 0;
        /* Far in virtual time: a loop that sleeps for it without being
         * woken by the advance would sleep for 1000 s of real time (and
         * the watchdog names the case). */
        v.deadline = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                     1000LL * 1000 * 1000 * 1000;
        timer_mod_ns(&ts, v.deadline);
        start_thread(&th, "advance", vadv_thread, &v);
        while (!qatomic_read(&v.done)) {
            aio_poll(ctx, true);
        }
        qemu_thread_join(&th);
        CHECK_EQ(v.fired, 1);
        CHECK_EQ(v.fired_before_advance, 0);
        CHECK(v.seen >= v.deadline);
        if (v.fired != 1) {
            break;
        }
        test_progress();
    }
    timer_deinit(&ts);
    aio_context_unref(ctx);
}

/* A loop sleeps (no deadline: the clock is disabled) with a virtual
 * timer already due; re-enabling the clock from another thread wakes it
 * and the timer fires. */
static void *enable_thread(void *opaque)
{
    VAdv *v = opaque;

    wait_until_polling(v->loop_tid);
    qatomic_set(&v->advanced, 1);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    return NULL;
}

static void test_clock_enable_from_thread_wakes_loop(void)
{
    AioContext *ctx = new_ctx();
    VAdv v = { .ctx = ctx };
    QEMUTimer ts;
    QemuThread th;
    int64_t timeout;

    v.loop_tid = qemu_get_thread_id();
    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, vadv_cb, &v);
    v.deadline = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    timer_mod_ns(&ts, v.deadline);          /* due now */
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    timeout = aio_compute_timeout(ctx);
    start_thread(&th, "enable", enable_thread, &v);
    while (!qatomic_read(&v.done)) {
        aio_poll(ctx, true);
    }
    qemu_thread_join(&th);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);    /* whatever happened */
    CHECK_EQ(timeout, -1);
    CHECK_EQ(v.fired, 1);
    CHECK_EQ(v.fired_before_advance, 0);
    timer_deinit(&ts);
    aio_context_unref(ctx);
}

/* A callback waits in a nested blocking aio_poll() for another timer
 * that is due at the same time (QEMU's AIO_WAIT_WHILE pattern): the
 * nested call must run it, not sleep (nothing else would wake it: the
 * watchdog names a hang). */
typedef struct {
    AioContext *ctx;
    int b_fired;
    int waited_ok;
    int a_runs;
} NestWait;

static void nest_wait_b_cb(void *opaque)
{
    qatomic_inc(&((NestWait *)opaque)->b_fired);
}

static void nest_wait_a_cb(void *opaque)
{
    NestWait *w = opaque;

    w->a_runs++;
    while (!qatomic_read(&w->b_fired)) {
        aio_poll(w->ctx, true);
    }
    w->waited_ok = qatomic_read(&w->b_fired) > 0;
}

static void test_nested_blocking_poll_runs_due_timer(void)
{
    AioContext *ctx = new_ctx();
    NestWait w = { .ctx = ctx };
    QEMUTimer a, b;
    int64_t d = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 10;

    aio_timer_init(ctx, &a, QEMU_CLOCK_VIRTUAL, SCALE_NS, nest_wait_a_cb, &w);
    aio_timer_init(ctx, &b, QEMU_CLOCK_VIRTUAL, SCALE_NS, nest_wait_b_cb, &w);
    timer_mod_ns(&a, d);
    timer_mod_ns(&b, d);            /* same deadline, armed after a */
    qemu_clock_advance_virtual_time(d);
    CHECK(aio_poll(ctx, false));
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(w.a_runs, 1);
    CHECK_EQ(w.waited_ok, 1);
    CHECK_EQ(w.b_fired, 1);
    timer_deinit(&a);
    timer_deinit(&b);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* IOThread                                                            */

static void sem_post_bh(void *opaque)
{
    qemu_sem_post(opaque);
}

static void test_timer_fires_in_iothread(void)
{
    IOThread *io = iothread_create("timer-io", &error_abort);
    AioContext *ctx = iothread_get_aio_context(io);
    Probe p = { .runs = 0 };
    QemuSemaphore bar;
    QEMUTimer *rt, *v;
    int64_t armed;

    qemu_sem_init(&p.done, 0);
    qemu_sem_init(&bar, 0);

    /* REALTIME, armed from this thread for +1 ms: the sleeping IOThread
     * has nothing else to wake it. */
    rt = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS, probe_cb, &p);
    armed = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1;
    timer_mod(rt, armed);
    qemu_sem_wait(&p.done);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(p.current == ctx);
    CHECK_EQ(p.runs, 1);

    /* VIRTUAL (1000 s ahead), the clock advanced from this thread. Not
     * before the advance (looked at 2 ms later: a check that cannot fail
     * by load, only miss a bug). */
    v = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, probe_cb, &p);
    timer_mod_ns(v, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 1000 * SCALE_S_NS);
    sleep_ms(2);
    CHECK_EQ(p.runs, 1);
    qemu_clock_advance_virtual_time(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                                    1000 * SCALE_S_NS);
    qemu_sem_wait(&p.done);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(p.current == ctx);
    CHECK_EQ(p.runs, 2);

    /* Let the callbacks return before freeing their timers. */
    aio_bh_schedule_oneshot(ctx, sem_post_bh, &bar);
    qemu_sem_wait(&bar);
    timer_free(rt);
    timer_free(v);
    iothread_destroy(io);
    CHECK_EQ(p.runs, 2);
    qemu_sem_destroy(&bar);
    qemu_sem_destroy(&p.done);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    /* QEMU_CLOCK_VIRTUAL follows host time unless taken over: these
     * cases drive it themselves (every case's process inherits this). */
    qemu_clock_take_over_virtual();

    RUN(test_cross_thread_mod_wakes_idle_loop);
    RUN(test_cross_thread_earlier_deadline_wakes_loop);
    RUN(test_cross_thread_move_later_and_delete);
    RUN(test_virtual_advance_from_thread_wakes_loop);
    RUN(test_clock_enable_from_thread_wakes_loop);
    RUN(test_nested_blocking_poll_runs_due_timer);
    RUN(test_timer_fires_in_iothread);
    return test_done();
}
