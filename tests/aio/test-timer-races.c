/*
 * test-timer-races.c - timers touched from other threads racing with
 * their expiry: timer_del() racing with expiry in an IOThread (at most one
 * firing per arm, and none after the delete returned), timer_free()
 * racing with expiry (the library no longer touches a freed timer:
 * ASan/TSan builds check), and many threads arming timers on one context
 * (each fires exactly once, never early).
 *
 * Stress loops run until their round count or the time budget
 * (test_stress_end); the counts they check are exact. A lost wake-up is a
 * hang, which the harness's watchdog names.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "aio-test.h"


static int64_t rt_now(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/* ------------------------------------------------------------------ */
/* timer_del racing with expiry                                        */

#define RACE_ROUNDS 2000

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
static void loop_barrier(Race *r)
{
    aio_bh_schedule_oneshot(r->ctx, barrier_bh, r);
    qemu_sem_wait(&r->barrier);
}

static void test_cross_thread_del_races_expiry(void)
{
    IOThread *io = iothread_create("timer-race", &error_abort);
    Race *r = calloc(1, sizeof(*r));
    unsigned int seed = 12345;
    int64_t end = test_stress_end();
    int i, rounds, multi = 0, fired_rounds = 0, total;

    REQUIRE(r != NULL);
    r->ctx = iothread_get_aio_context(io);
    qemu_sem_init(&r->barrier, 0);
    r->timer = aio_timer_new(r->ctx, QEMU_CLOCK_REALTIME, SCALE_NS, race_cb, r);
    for (i = 0; i < RACE_ROUNDS && test_stress_more(end); i++) {
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
        loop_barrier(r);
    }
    rounds = i;
    /* Nothing is armed any more: nothing fires later (looked at 5 ms
     * later: a check that load can only make miss a bug). */
    total = qatomic_read(&r->total);
    sleep_ms(5);
    loop_barrier(r);
    CHECK_EQ(qatomic_read(&r->total), total);
    CHECK(!timer_pending(r->timer));
    timer_free(r->timer);
    iothread_destroy(io);

    for (i = 0; i < rounds; i++) {
        multi += r->fires[i] > 1;
        fired_rounds += r->fires[i] == 1;
    }
    printf("#   %d arms: %d fired before their timer_del, %d did not\n",
           rounds, fired_rounds, rounds - fired_rounds - multi);
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
    int64_t end = test_stress_end();
    int i;

    free_race_fired = 0;
    for (i = 0; i < RACE_ROUNDS && test_stress_more(end); i++) {
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
           i, free_race_fired);
    CHECK(free_race_fired <= i);
}

/* ------------------------------------------------------------------ */
/* Many threads arming timers on one context                           */

#define ARM_THREADS 4
#define ARM_PER_THREAD 500

typedef struct {
    AioContext *ctx;
    QEMUTimer *timers;          /* ARM_PER_THREAD of them per thread */
    int *fired;                 /* one counter per timer */
    int total;                  /* shared */
    int early;                  /* shared */
    int threads_done;           /* loop thread only: fleet_done_bh runs */
    int64_t *deadlines;
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
    qatomic_inc(&f->total);
}

typedef struct {
    Fleet *f;
    int first;
    int n;                      /* timers this thread armed */
    int64_t end;                /* the time budget */
} FleetArg;

static void fleet_done_bh(void *opaque)
{
    ((Fleet *)opaque)->threads_done++;
}

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
        fa->n++;
        if (i % 16 == 0) {
            sleep_us(50);
            if (!test_stress_more(fa->end)) {
                break;
            }
        }
    }
    /* Tells (and wakes) the loop: this thread's arms are all made. */
    aio_bh_schedule_oneshot(fa->f->ctx, fleet_done_bh, fa->f);
    return NULL;
}

static void test_many_threads_arm_one_context(void)
{
    int n = ARM_THREADS * ARM_PER_THREAD, armed = 0;
    Fleet f = { .ctx = new_ctx() };
    FleetArg args[ARM_THREADS];
    QemuThread th[ARM_THREADS];
    int64_t end = test_stress_end();
    int i, t, wrong = 0, never_armed_fired = 0;

    f.timers = calloc(n, sizeof(*f.timers));
    f.fired = calloc(n, sizeof(*f.fired));
    f.deadlines = calloc(n, sizeof(*f.deadlines));
    REQUIRE(f.timers && f.fired && f.deadlines);
    for (i = 0; i < n; i++) {
        fleet_ids[i].f = &f;
        fleet_ids[i].index = i;
        aio_timer_init(f.ctx, &f.timers[i], QEMU_CLOCK_REALTIME, SCALE_NS,
                       fleet_cb, &fleet_ids[i]);
    }
    for (t = 0; t < ARM_THREADS; t++) {
        args[t] = (FleetArg) { .f = &f, .first = t * ARM_PER_THREAD,
                               .end = end };
        start_thread(&th[t], "fleet", fleet_thread, &args[t]);
    }
    /* The loop starts with nothing armed: only the arms (and, at the
     * end, each thread's one-shot BH) wake it. Once the threads are done
     * it waits for the timers they armed (a lost wake-up: the watchdog). */
    for (;;) {
        if (f.threads_done == ARM_THREADS) {
            armed = 0;
            for (t = 0; t < ARM_THREADS; t++) {
                armed += args[t].n;
            }
            if (qatomic_read(&f.total) >= armed) {
                break;
            }
        }
        aio_poll(f.ctx, true);
    }
    for (t = 0; t < ARM_THREADS; t++) {
        qemu_thread_join(&th[t]);
    }
    while (aio_poll(f.ctx, false)) {
    }
    for (t = 0; t < ARM_THREADS; t++) {
        for (i = args[t].first; i < args[t].first + ARM_PER_THREAD; i++) {
            if (i < args[t].first + args[t].n) {
                wrong += f.fired[i] != 1;
            } else {
                never_armed_fired += f.fired[i] != 0;
            }
        }
    }
    for (i = 0; i < n; i++) {
        CHECK(!timer_pending(&f.timers[i]));
        timer_deinit(&f.timers[i]);
    }
    printf("#   %d timers armed from %d threads, %d fired\n", armed,
           ARM_THREADS, f.total);
    CHECK_EQ(f.total, armed);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(never_armed_fired, 0);
    CHECK_EQ(f.early, 0);
    free(f.timers);
    free(f.fired);
    free(f.deadlines);
    aio_context_unref(f.ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);

    RUN(test_cross_thread_del_races_expiry);
    RUN(test_cross_thread_free_races_expiry);
    RUN(test_many_threads_arm_one_context);
    return test_done();
}
