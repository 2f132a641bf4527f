/*
 * test-timer-threads.c - timers across threads: a timer armed from another
 * thread wakes a loop sleeping in aio_poll() (with no deadline, with a far
 * one, on another clock), moving a deadline later or deleting it from
 * another thread while the loop sleeps, timer_del racing with expiry (at
 * most one firing per arm), many threads arming timers on one context,
 * qemu_clock_advance_virtual_time() from another thread waking a loop
 * with a virtual timer, and timers of an IOThread's context firing in
 * the IOThread.
 *
 * A lost wake-up would leave a loop asleep forever; every case has a
 * helper that, past a generous bound, records the failure and wakes the
 * loop with aio_notify() so that the program goes on (and the watchdog
 * is there for worse).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "aio-test.h"


/* How late a woken loop may be before we call the wake-up lost. */
#define SCALE_S_NS 1000000000LL

#define WAKE_BOUND_MS (UNDER_TSAN ? 3000 : 1000)

static int64_t rt_now(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/* Waits on a context with blocking aio_poll() until *flag is set; the
 * flag is set by a callback that runs in this thread or by the rescuer. */
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
    int delay_us;               /* before arming */
    int64_t armed_at;           /* REALTIME ns, when armed */
    int64_t deadline;           /* on the timer's clock */
    int fired;                  /* set by the timer callback */
    int64_t fired_at;           /* REALTIME ns */
    int done;                   /* loop exits when set */
    int rescued;                /* the loop had to be woken by force */
    QemuSemaphore fired_sem;
} Arm;

static void arm_timer_cb(void *opaque)
{
    Arm *a = opaque;

    a->fired_at = rt_now();
    qatomic_inc(&a->fired);
    qatomic_set(&a->done, 1);
    qemu_sem_post(&a->fired_sem);
}

static void *arm_thread(void *opaque)
{
    Arm *a = opaque;

    sleep_us(a->delay_us);
    a->armed_at = rt_now();
    a->deadline = qemu_clock_get_ns(a->clock) + 1000 * 1000;     /* +1 ms */
    timer_mod_ns(a->timer, a->deadline);
    if (qemu_sem_timedwait(&a->fired_sem, WAKE_BOUND_MS) != 0) {
        /* Lost wake-up: say so, and let the loop go. */
        qatomic_set(&a->rescued, 1);
        qatomic_set(&a->done, 1);
        while (!qatomic_read(&a->fired)) {
            aio_notify(a->ctx);
            if (qemu_sem_timedwait(&a->fired_sem, 10) == 0) {
                break;
            }
            if (qatomic_read(&a->done) == 2) {
                break;
            }
        }
    }
    return NULL;
}

/* One round: the loop sleeps in aio_poll(ctx, true) while another thread
 * arms 'timer' for +1 ms after 'delay_us'. Returns the wake latency in ns
 * past the deadline, or -1 on failure (already recorded). */
static int64_t cross_thread_arm_round(AioContext *ctx, QEMUTimer *timer,
                                      QEMUClockType clock, Arm *a,
                                      int delay_us)
{
    QemuThread th;
    int64_t late;

    a->ctx = ctx;
    a->timer = timer;
    a->clock = clock;
    a->delay_us = delay_us;
    a->fired = 0;
    a->done = 0;
    a->rescued = 0;
    start_thread(&th, "arm", arm_thread, a);
    while (!qatomic_read(&a->done)) {
        aio_poll(ctx, true);
    }
    qatomic_set(&a->done, 2);
    qemu_thread_join(&th);
    CHECK_EQ(a->rescued, 0);
    CHECK_EQ(a->fired, 1);
    if (a->rescued || a->fired != 1) {
        return -1;
    }
    /* Never early (on REALTIME, where we can compare). */
    if (clock == QEMU_CLOCK_REALTIME) {
        CHECK(a->fired_at >= a->deadline);
    }
    late = a->fired_at - a->armed_at - 1000 * 1000;
    CHECK(late < (int64_t)WAKE_BOUND_MS * 1000 * 1000);
    return late;
}

static void test_cross_thread_mod_wakes_idle_loop(void)
{
    AioContext *ctx = new_ctx();
    Arm a = { 0 };
    QEMUTimer ts;
    int i;
    int64_t worst = 0;

    qemu_sem_init(&a.fired_sem, 0);
    aio_timer_init(ctx, &ts, QEMU_CLOCK_REALTIME, SCALE_NS, arm_timer_cb, &a);
    /* Different delays: the arm lands before, while and after the loop
     * goes to sleep with no deadline at all. */
    for (i = 0; i < 20; i++) {
        int64_t late = cross_thread_arm_round(ctx, &ts, QEMU_CLOCK_REALTIME,
                                              &a, (i % 5) * 2000);

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
    qemu_sem_destroy(&a.fired_sem);
    aio_context_unref(ctx);
}

static void far_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

/* The loop sleeps for a far deadline (10 s); an earlier one armed from
 * another thread, on the same clock or another, must wake it. */
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

    qemu_sem_init(&a.fired_sem, 0);
    aio_timer_init(ctx, &far, QEMU_CLOCK_REALTIME, SCALE_NS, far_cb,
                   &far_count);
    timer_mod_ns(&far, rt_now() + 10LL * 1000 * 1000 * 1000);
    for (c = 0; c < sizeof(clocks) / sizeof(clocks[0]); c++) {
        int i;

        aio_timer_init(ctx, &near, clocks[c], SCALE_NS, arm_timer_cb, &a);
        for (i = 0; i < 5; i++) {
            if (cross_thread_arm_round(ctx, &near, clocks[c], &a,
                                       5000 + i * 1000) < 0) {
                printf("#   clock %d round %d failed\n", (int)clocks[c], i);
                break;
            }
        }
        timer_deinit(&near);
    }
    CHECK_EQ(far_count, 0);
    CHECK(timer_pending(&far));
    timer_deinit(&far);
    qemu_sem_destroy(&a.fired_sem);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Moving later / deleting from another thread while the loop sleeps   */

typedef struct {
    AioContext *ctx;
    QEMUTimer timer;
    int64_t deadline;           /* the latest deadline set, REALTIME ns */
    int64_t fired_at;
    int fired;
    int stop;
    bool del;                   /* delete instead of moving later */
    QemuSemaphore fired_sem;
} Mover;

static void mover_cb(void *opaque)
{
    Mover *m = opaque;

    m->fired_at = rt_now();
    qatomic_inc(&m->fired);
    qatomic_set(&m->stop, 1);
    qemu_sem_post(&m->fired_sem);
}

static void mover_stop_bh(void *opaque)
{
    qatomic_set(&((Mover *)opaque)->stop, 1);
}

static void *mover_thread(void *opaque)
{
    Mover *m = opaque;

    sleep_ms(5);
    if (m->del) {
        timer_del(&m->timer);
        /* The old deadline passes; then end the loop with a BH. */
        sleep_ms(320);
        aio_bh_schedule_oneshot(m->ctx, mover_stop_bh, m);
    } else {
        int64_t later = rt_now() + 360 * 1000 * 1000;

        qatomic_set(&m->deadline, later);
        timer_mod_ns(&m->timer, later);
        /* Rescue a loop that never wakes. */
        if (qemu_sem_timedwait(&m->fired_sem, 360 + WAKE_BOUND_MS) != 0) {
            aio_bh_schedule_oneshot(m->ctx, mover_stop_bh, m);
        }
    }
    return NULL;
}

static void test_cross_thread_move_later_and_delete(void)
{
    AioContext *ctx = new_ctx();
    Mover m = { .ctx = ctx };
    QemuThread th;
    int64_t t0;

    /* Moved (after ~5 ms) from +300 ms to +365 ms while the loop sleeps
     * for +300 ms: it fires once, not before the new deadline. The wide
     * margins keep the premise (the move happens before the first
     * deadline) true on a loaded machine. */
    qemu_sem_init(&m.fired_sem, 0);
    aio_timer_init(ctx, &m.timer, QEMU_CLOCK_REALTIME, SCALE_NS, mover_cb, &m);
    t0 = rt_now();
    m.deadline = t0 + 300 * 1000 * 1000;
    timer_mod_ns(&m.timer, m.deadline);
    start_thread(&th, "mover", mover_thread, &m);
    poll_until(ctx, &m.stop);
    qemu_thread_join(&th);
    CHECK_EQ(m.fired, 1);
    CHECK(m.fired_at >= m.deadline);
    printf("#   moved-later timer fired %lld us after its new deadline\n",
           (long long)(m.fired_at - m.deadline) / 1000);
    CHECK(m.fired_at - m.deadline < (int64_t)WAKE_BOUND_MS * 1000 * 1000);
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(m.fired, 1);

    /* Deleted while the loop sleeps for it: never fires. */
    m.fired = 0;
    m.stop = 0;
    m.del = true;
    timer_mod_ns(&m.timer, rt_now() + 300 * 1000 * 1000);
    start_thread(&th, "deleter", mover_thread, &m);
    poll_until(ctx, &m.stop);
    qemu_thread_join(&th);
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(m.fired, 0);
    CHECK(!timer_pending(&m.timer));

    timer_deinit(&m.timer);
    qemu_sem_destroy(&m.fired_sem);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* timer_del racing with expiry                                        */

#define RACE_ROUNDS (UNDER_TSAN ? 300 : 2000)

typedef struct {
    AioContext *ctx;
    QEMUTimer *timer;
    int gen;                    /* the arm being made, read by the cb */
    unsigned char fires[RACE_ROUNDS];
    int total;
    int bad_gen;
    QemuSemaphore barrier;
} Race;

static void race_cb(void *opaque)
{
    Race *r = opaque;
    int g = qatomic_read(&r->gen);

    if (g < 0 || g >= RACE_ROUNDS) {
        qatomic_inc(&r->bad_gen);
        return;
    }
    r->fires[g]++;              /* loop thread only */
    qatomic_inc(&r->total);
}

static void barrier_bh(void *opaque)
{
    qemu_sem_post(&((Race *)opaque)->barrier);
}

/* Returns once every callback the loop had started has returned. */
static bool loop_barrier(Race *r)
{
    aio_bh_schedule_oneshot(r->ctx, barrier_bh, r);
    return qemu_sem_timedwait(&r->barrier, 5000) == 0;
}

static void test_cross_thread_del_races_expiry(void)
{
    IOThread *io = iothread_create("timer-race", &error_abort);
    Race *r = calloc(1, sizeof(*r));
    unsigned int seed = 12345;
    int i, multi = 0, fired_rounds = 0, total;

    REQUIRE(r != NULL);
    r->ctx = iothread_get_aio_context(io);
    qemu_sem_init(&r->barrier, 0);
    r->timer = aio_timer_new(r->ctx, QEMU_CLOCK_REALTIME, SCALE_NS, race_cb, r);
    for (i = 0; i < RACE_ROUNDS; i++) {
        int wait_ns;

        seed = seed * 1103515245u + 12345u;
        qatomic_set(&r->gen, i);
        /* Deadline 0..60 us away; delete 0..60 us later. */
        timer_mod_ns(r->timer, rt_now() + (int)((seed >> 8) % 60000));
        wait_ns = (int)((seed >> 20) % 60);
        if (wait_ns > 2) {
            sleep_us(wait_ns);
        }
        timer_del(r->timer);
        if (!loop_barrier(r)) {
            CHECK(!"the IOThread did not run a BH within 5 s");
            break;
        }
    }
    /* Nothing is armed any more: nothing fires later. */
    total = qatomic_read(&r->total);
    sleep_ms(5);
    REQUIRE(loop_barrier(r));
    CHECK_EQ(qatomic_read(&r->total), total);
    CHECK(!timer_pending(r->timer));
    timer_free(r->timer);
    iothread_destroy(io);

    for (i = 0; i < RACE_ROUNDS; i++) {
        multi += r->fires[i] > 1;
        fired_rounds += r->fires[i] == 1;
    }
    printf("#   %d arms: %d fired before their timer_del, %d did not\n",
           RACE_ROUNDS, fired_rounds, RACE_ROUNDS - fired_rounds - multi);
    CHECK_EQ(multi, 0);             /* at most one firing per arm */
    CHECK_EQ(r->bad_gen, 0);
    CHECK_EQ(fired_rounds, total);  /* the counts add up */
    qemu_sem_destroy(&r->barrier);
    free(r);
}

/* timer_free() from another thread racing with expiry: the library must
 * not touch the timer once timer_free() has it (ASan/TSan builds check);
 * the callback uses only its opaque, which stays valid. */
static int free_race_fired;

static void free_race_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

static void test_cross_thread_free_races_expiry(void)
{
    IOThread *io = iothread_create("timer-free-race", &error_abort);
    AioContext *ctx = iothread_get_aio_context(io);
    unsigned int seed = 4242;
    int i, rounds = RACE_ROUNDS;

    free_race_fired = 0;
    for (i = 0; i < rounds; i++) {
        QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                     free_race_cb, &free_race_fired);
        int wait_us;

        seed = seed * 1103515245u + 12345u;
        timer_mod_ns(t, rt_now() + (int)((seed >> 8) % 40000));
        wait_us = (int)((seed >> 20) % 40);
        if (wait_us > 2) {
            sleep_us(wait_us);
        }
        timer_free(t);
    }
    iothread_destroy(io);
    printf("#   %d timers freed racing their expiry, %d fired first\n",
           rounds, free_race_fired);
    CHECK(free_race_fired <= rounds);
}

/* ------------------------------------------------------------------ */
/* Many threads arming timers on one context                           */

#define ARM_THREADS 4
#define ARM_PER_THREAD (UNDER_TSAN ? 100 : 500)

typedef struct {
    AioContext *ctx;
    QEMUTimer *timers;          /* ARM_PER_THREAD of them per thread */
    int *fired;                 /* one counter per timer */
    int base;
    int total;                  /* shared */
    int early;                  /* shared */
    int64_t *deadlines;
    int rescued;
    QemuSemaphore all_fired;
} Fleet;

typedef struct {
    Fleet *f;
    int index;
} FleetTimer;

static FleetTimer fleet_ids[ARM_THREADS * ARM_PER_THREAD];

static void fleet_cb(void *opaque)
{
    FleetTimer *ft = opaque;
    Fleet *f = ft->f;

    if (rt_now() < qatomic_read(&f->deadlines[ft->index])) {
        qatomic_inc(&f->early);
    }
    f->fired[ft->index]++;          /* loop thread only */
    if (qatomic_fetch_inc(&f->total) + 1 == ARM_THREADS * ARM_PER_THREAD) {
        qemu_sem_post(&f->all_fired);
    }
}

/* Rescues the loop if the timers do not all fire within 5 s (lost
 * wake-up), recording it. */
static void *fleet_rescuer(void *opaque)
{
    Fleet *f = opaque;

    if (qemu_sem_timedwait(&f->all_fired, 5000 + WAKE_BOUND_MS) != 0 &&
        qatomic_cmpxchg(&f->rescued, 0, 1) == 0) {
        while (qatomic_read(&f->rescued) == 1) {
            aio_notify(f->ctx);
            sleep_ms(1);
        }
    }
    return NULL;
}

typedef struct {
    Fleet *f;
    int first;
} FleetArg;

static void *fleet_thread(void *opaque)
{
    FleetArg *fa = opaque;
    unsigned int seed = (unsigned int)fa->first * 7919u + 1;
    int i;

    for (i = fa->first; i < fa->first + ARM_PER_THREAD; i++) {
        int64_t d;

        seed = seed * 1103515245u + 12345u;
        d = rt_now() + (int64_t)((seed >> 8) % 2000) * 1000;   /* < 2 ms */
        qatomic_set(&fa->f->deadlines[i], d);
        timer_mod_ns(&fa->f->timers[i], d);
        if (i % 16 == 0) {
            sleep_us(50);
        }
    }
    return NULL;
}

static void test_many_threads_arm_one_context(void)
{
    int n = ARM_THREADS * ARM_PER_THREAD;
    Fleet f = { .ctx = new_ctx() };
    FleetArg args[ARM_THREADS];
    QemuThread th[ARM_THREADS], rescuer;
    int i, t, wrong = 0, rescued;

    f.timers = calloc(n, sizeof(*f.timers));
    f.fired = calloc(n, sizeof(*f.fired));
    f.deadlines = calloc(n, sizeof(*f.deadlines));
    REQUIRE(f.timers && f.fired && f.deadlines);
    qemu_sem_init(&f.all_fired, 0);
    for (i = 0; i < n; i++) {
        fleet_ids[i].f = &f;
        fleet_ids[i].index = i;
        aio_timer_init(f.ctx, &f.timers[i], QEMU_CLOCK_REALTIME, SCALE_NS,
                       fleet_cb, &fleet_ids[i]);
    }
    for (t = 0; t < ARM_THREADS; t++) {
        args[t].f = &f;
        args[t].first = t * ARM_PER_THREAD;
        start_thread(&th[t], "fleet", fleet_thread, &args[t]);
    }
    start_thread(&rescuer, "rescuer", fleet_rescuer, &f);
    /* The loop starts with nothing armed: only the arms wake it. */
    while (qatomic_read(&f.total) < n && !qatomic_read(&f.rescued)) {
        aio_poll(f.ctx, true);
    }
    for (t = 0; t < ARM_THREADS; t++) {
        qemu_thread_join(&th[t]);
    }
    rescued = qatomic_xchg(&f.rescued, 2);  /* also stops the rescuer */
    qemu_sem_post(&f.all_fired);            /* in case it still waits */
    qemu_thread_join(&rescuer);
    while (aio_poll(f.ctx, false)) {
    }
    for (i = 0; i < n; i++) {
        wrong += f.fired[i] != 1;
        CHECK(!timer_pending(&f.timers[i]));
        timer_deinit(&f.timers[i]);
    }
    printf("#   %d timers armed from %d threads, %d fired\n", n, ARM_THREADS,
           f.total);
    CHECK_EQ(f.total, n);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(f.early, 0);
    CHECK_EQ(rescued, 0);
    qemu_sem_destroy(&f.all_fired);
    free(f.timers);
    free(f.fired);
    free(f.deadlines);
    aio_context_unref(f.ctx);
}

/* ------------------------------------------------------------------ */
/* Virtual clock advanced from another thread                          */

typedef struct {
    AioContext *ctx;
    int64_t deadline;
    int64_t seen;               /* virtual time in the callback */
    int fired;
    int done;
    int rescued;
    int fired_before_advance;
    int advanced;
    QemuSemaphore sem;
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
    qemu_sem_post(&v->sem);
}

static void *vadv_thread(void *opaque)
{
    VAdv *v = opaque;

    sleep_ms(5);
    /* Short of the deadline: must not fire. */
    qemu_clock_advance_virtual_time(v->deadline - 1);
    sleep_ms(5);
    qatomic_set(&v->advanced, 1);
    qemu_clock_advance_virtual_time(v->deadline);
    if (qemu_sem_timedwait(&v->sem, WAKE_BOUND_MS) != 0) {
        qatomic_set(&v->rescued, 1);
        qatomic_set(&v->done, 1);
        aio_notify(v->ctx);
    }
    return NULL;
}

static void test_virtual_advance_from_thread_wakes_loop(void)
{
    AioContext *ctx = new_ctx();
    VAdv v = { .ctx = ctx };
    QEMUTimer ts;
    QemuThread th;
    int i;

    qemu_sem_init(&v.sem, 0);
    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, vadv_cb, &v);
    for (i = 0; i < 10; i++) {
        v.fired = 0;
        v.done = 0;
        v.advanced = 0;
        /* Far in virtual time: a loop that sleeps for it without being
         * woken by the advance would sleep for 1000 s of real time. */
        v.deadline = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                     1000LL * 1000 * 1000 * 1000;
        timer_mod_ns(&ts, v.deadline);
        start_thread(&th, "advance", vadv_thread, &v);
        while (!qatomic_read(&v.done)) {
            aio_poll(ctx, true);
        }
        qemu_thread_join(&th);
        CHECK_EQ(v.rescued, 0);
        CHECK_EQ(v.fired, 1);
        CHECK_EQ(v.fired_before_advance, 0);
        CHECK(v.seen >= v.deadline);
        if (v.rescued || v.fired != 1) {
            break;
        }
    }
    timer_deinit(&ts);
    qemu_sem_destroy(&v.sem);
    aio_context_unref(ctx);
}

/* A loop sleeps (no deadline: the clock is disabled) with a virtual
 * timer already due; re-enabling the clock from another thread wakes it
 * and the timer fires. */
static void *enable_thread(void *opaque)
{
    VAdv *v = opaque;

    sleep_ms(10);
    qatomic_set(&v->advanced, 1);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    if (qemu_sem_timedwait(&v->sem, WAKE_BOUND_MS) != 0) {
        qatomic_set(&v->rescued, 1);
        qatomic_set(&v->done, 1);
        aio_notify(v->ctx);
    }
    return NULL;
}

static void test_clock_enable_from_thread_wakes_loop(void)
{
    AioContext *ctx = new_ctx();
    VAdv v = { .ctx = ctx };
    QEMUTimer ts;
    QemuThread th;
    int64_t timeout;

    qemu_sem_init(&v.sem, 0);
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
    CHECK_EQ(v.rescued, 0);
    CHECK_EQ(v.fired, 1);
    CHECK_EQ(v.fired_before_advance, 0);
    timer_deinit(&ts);
    qemu_sem_destroy(&v.sem);
    aio_context_unref(ctx);
}

/* A callback waits in a nested blocking aio_poll() for another timer
 * that is due at the same time (QEMU's AIO_WAIT_WHILE pattern): the
 * nested call must run it, not sleep. A rescuer thread ends the wait
 * (and records the failure) if it does not. */
typedef struct {
    AioContext *ctx;
    int b_fired;
    int rescued;
    int waited_ok;
    int a_runs;
    QemuSemaphore done;
} NestWait;

static void nest_wait_b_cb(void *opaque)
{
    qatomic_inc(&((NestWait *)opaque)->b_fired);
}

static void nest_wait_a_cb(void *opaque)
{
    NestWait *w = opaque;

    w->a_runs++;
    while (!qatomic_read(&w->b_fired) && !qatomic_read(&w->rescued)) {
        aio_poll(w->ctx, true);
    }
    w->waited_ok = qatomic_read(&w->b_fired) > 0;
    qemu_sem_post(&w->done);
}

static void *nest_wait_rescuer(void *opaque)
{
    NestWait *w = opaque;

    if (qemu_sem_timedwait(&w->done, WAKE_BOUND_MS) != 0) {
        qatomic_set(&w->rescued, 1);
        do {
            aio_notify(w->ctx);
        } while (qemu_sem_timedwait(&w->done, 1) != 0);
    }
    return NULL;
}

static void test_nested_blocking_poll_runs_due_timer(void)
{
    AioContext *ctx = new_ctx();
    NestWait w = { .ctx = ctx };
    QEMUTimer a, b;
    QemuThread th;
    int64_t d = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 10;

    qemu_sem_init(&w.done, 0);
    aio_timer_init(ctx, &a, QEMU_CLOCK_VIRTUAL, SCALE_NS, nest_wait_a_cb, &w);
    aio_timer_init(ctx, &b, QEMU_CLOCK_VIRTUAL, SCALE_NS, nest_wait_b_cb, &w);
    timer_mod_ns(&a, d);
    timer_mod_ns(&b, d);            /* same deadline, armed after a */
    qemu_clock_advance_virtual_time(d);
    start_thread(&th, "rescuer", nest_wait_rescuer, &w);
    CHECK(aio_poll(ctx, false));
    qemu_thread_join(&th);
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(w.a_runs, 1);
    CHECK_EQ(w.rescued, 0);
    CHECK_EQ(w.waited_ok, 1);
    CHECK_EQ(w.b_fired, 1);
    timer_deinit(&a);
    timer_deinit(&b);
    qemu_sem_destroy(&w.done);
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

    /* REALTIME, armed from this thread for +1 ms. */
    rt = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS, probe_cb, &p);
    armed = rt_now();
    timer_mod(rt, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1);
    REQUIRE(qemu_sem_timedwait(&p.done, 5000) == 0);
    CHECK(rt_now() - armed < 1000LL * 1000 * 1000);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(p.current == ctx);
    CHECK_EQ(p.runs, 1);

    /* VIRTUAL (1000 s ahead), the clock advanced from this thread. */
    v = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, probe_cb, &p);
    timer_mod_ns(v, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 1000 * SCALE_S_NS);
    sleep_ms(2);
    CHECK_EQ(p.runs, 1);
    qemu_clock_advance_virtual_time(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                                    1000 * SCALE_S_NS);
    REQUIRE(qemu_sem_timedwait(&p.done, 5000) == 0);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(p.current == ctx);
    CHECK_EQ(p.runs, 2);

    /* Let the callbacks return before freeing their timers. */
    aio_bh_schedule_oneshot(ctx, sem_post_bh, &bar);
    REQUIRE(qemu_sem_timedwait(&bar, 5000) == 0);
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
    RUN(test_cross_thread_del_races_expiry);
    RUN(test_cross_thread_free_races_expiry);
    RUN(test_many_threads_arm_one_context);
    RUN(test_virtual_advance_from_thread_wakes_loop);
    RUN(test_clock_enable_from_thread_wakes_loop);
    RUN(test_nested_blocking_poll_runs_due_timer);
    RUN(test_timer_fires_in_iothread);
    return test_done();
}
