/*
 * test-timer-lists.c - timer lifetimes (new/free, init/deinit, armed at
 * the context's last unref), standalone timer lists and their notify
 * callback, timer list groups, and timers of the main context.
 *
 * Single-threaded, on the virtual clock unless a case is about a real
 * one. A blocking aio_poll() that never returns is a hang, which the
 * harness's no-progress watchdog fails by name.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "timer-test.h"

/* ------------------------------------------------------------------ */
/* Lifetimes                                                           */

static void test_timer_new_free_init_deinit(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUTimer *ts;
    QEMUTimer emb;
    int64_t base = vnow();

    timer_free(NULL);

    /* Unarmed, armed: freeing disarms. */
    ts = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    REQUIRE(ts != NULL);
    CHECK(!timer_pending(ts));
    timer_free(ts);
    ts = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    timer_mod_ns(ts, base + 10);
    timer_free(ts);
    ts = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS, tcount_cb, &count);
    timer_mod(ts, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 100000);
    timer_free(ts);
    CHECK_EQ(aio_compute_timeout(ctx), -1);
    qemu_clock_advance_virtual_time(base + 10);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);

    /* Embedded: deinit disarms; the memory can be reused. */
    memset(&emb, 0xa5, sizeof(emb));
    aio_timer_init(ctx, &emb, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    CHECK(!timer_pending(&emb));
    CHECK_EQ(timer_expire_time_ns(&emb), -1);
    timer_mod_ns(&emb, vnow() + 10);
    timer_deinit(&emb);
    memset(&emb, 0x5a, sizeof(emb));
    vadvance(10);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    /* Re-initialised: works as new. */
    aio_timer_init(ctx, &emb, QEMU_CLOCK_VIRTUAL, SCALE_US, tcount_cb, &count);
    timer_mod(&emb, vnow() / 1000 + 1);
    CHECK(timer_pending(&emb));
    vadvance(1000);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    timer_deinit(&emb);

    /* Many allocated timers armed and freed in a scrambled order. */
    {
        QEMUTimer *many[64];
        int i;

        base = vnow();
        for (i = 0; i < 64; i++) {
            many[i] = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                                    tcount_cb, &count);
            timer_mod_ns(many[i], base + 1 + (i * 29) % 64);
        }
        for (i = 0; i < 64; i += 2) {
            timer_free(many[(i * 5) % 64]);
            many[(i * 5) % 64] = NULL;
        }
        vadvance(100);
        drain(ctx);
        CHECK_EQ(count, 1 + 32);
        for (i = 0; i < 64; i++) {
            timer_free(many[i]);
        }
    }
    aio_context_unref(ctx);
}

static void test_timers_left_armed_at_unref(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUTimer *v, *rt;
    QEMUTimer emb;
    int64_t base = vnow();

    v = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    rt = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS, tcount_cb, &count);
    aio_timer_init(ctx, &emb, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    timer_mod_ns(v, base + 10);
    timer_mod_ns(&emb, base + 20);
    timer_mod_ns(rt, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000);
    aio_context_unref(ctx);

    /* Disarmed and detached. */
    CHECK(!timer_pending(v));
    CHECK(!timer_pending(rt));
    CHECK(!timer_pending(&emb));
    CHECK_EQ(timer_expire_time_ns(v), -1);
    CHECK_EQ(timer_expire_time_ns(&emb), -1);

    /* The clocks no longer know the freed lists: advancing the virtual
     * clock and toggling clocks (which wake contexts) touch nothing. */
    qemu_clock_advance_virtual_time(base + 1000);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);
    qemu_clock_enable(QEMU_CLOCK_REALTIME, false);
    qemu_clock_enable(QEMU_CLOCK_REALTIME, true);
    CHECK_EQ(count, 0);

    /* Other contexts are unaffected. */
    ctx = new_ctx();
    {
        QEMUTimer ok;

        aio_timer_init(ctx, &ok, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                       &count);
        timer_mod_ns(&ok, vnow());
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(count, 1);
        timer_deinit(&ok);
    }
    aio_context_unref(ctx);

    /* The detached timers' own memory is still theirs to release. */
    timer_free(v);
    timer_free(rt);
    timer_deinit(&emb);
}

/* ------------------------------------------------------------------ */
/* Timer lists and groups                                              */

typedef struct {
    int calls;
    QEMUClockType last_type;
} NotifyRec;

static void list_notify_cb(void *opaque, QEMUClockType type)
{
    NotifyRec *n = opaque;

    n->calls++;
    n->last_type = type;
}

static void test_timerlist_standalone(void)
{
    NotifyRec nr = { 0 };
    QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_VIRTUAL, list_notify_cb, &nr);
    int count1 = 0, count2 = 0;
    QEMUTimer *t1, *t2;
    QEMUTimer t3;
    int64_t base = vnow();
    int calls;

    REQUIRE(tl != NULL);
    CHECK(timerlist_get_clock(tl) == QEMU_CLOCK_VIRTUAL);
    CHECK(!timerlist_has_timers(tl));
    CHECK_EQ(timerlist_deadline_ns(tl), -1);
    CHECK(!timerlist_run_timers(tl));

    t1 = timer_new_tl(tl, SCALE_NS, tcount_cb, &count1);
    t2 = timer_new_tl(tl, SCALE_US, tcount_cb, &count2);
    CHECK_EQ(nr.calls, 0);

    timer_mod_ns(t1, base + 1000);
    CHECK(nr.calls >= 1);           /* first deadline: earlier than none */
    CHECK(nr.last_type == QEMU_CLOCK_VIRTUAL);
    CHECK(timerlist_has_timers(tl));
    CHECK_EQ(timerlist_deadline_ns(tl), 1000);

    calls = nr.calls;
    timer_mod_ns(t2, base + 2000);  /* later: the earliest is unchanged */
    CHECK_EQ(nr.calls, calls);
    CHECK_EQ(timerlist_deadline_ns(tl), 1000);
    CHECK_EQ(timer_expire_time_ns(t2), base + 2000);

    timer_mod_ns(t1, base + 500);   /* earlier: notified */
    CHECK(nr.calls > calls);
    CHECK_EQ(timerlist_deadline_ns(tl), 500);

    CHECK(!timerlist_run_timers(tl));
    qemu_clock_advance_virtual_time(base + 1500);
    CHECK_EQ(timerlist_deadline_ns(tl), 0);
    CHECK(timerlist_run_timers(tl));
    CHECK_EQ(count1, 1);
    CHECK_EQ(count2, 0);
    CHECK_EQ(timerlist_deadline_ns(tl), 500);
    CHECK(!timerlist_run_timers(tl));
    timer_free(t2);     /* before its list goes */
    CHECK(!timerlist_has_timers(tl));
    CHECK_EQ(timerlist_deadline_ns(tl), -1);

    /* timerlist_free with armed timers: disarmed and detached. */
    timer_init_tl(&t3, tl, SCALE_NS, tcount_cb, &count1);
    timer_mod_ns(&t3, base + 1600);
    timer_mod_ns(t1, base + 1700);
    timerlist_free(tl);
    CHECK(!timer_pending(&t3));
    CHECK(!timer_pending(t1));
    qemu_clock_advance_virtual_time(base + 2000);
    CHECK_EQ(count1, 1);
    timer_free(t1);
    timer_deinit(&t3);
}

static void test_timerlistgroup(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimerListGroup *ctg = aio_get_timer_list_group(ctx);
    QEMUTimerListGroup own;
    NotifyRec nr = { 0 };
    int count = 0, type;
    QEMUTimer v, rt;
    int64_t base = vnow(), d, rt_deadline, before, after;

    REQUIRE(ctg != NULL);
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        REQUIRE(ctg->tl[type] != NULL);
        CHECK((int)timerlist_get_clock(ctg->tl[type]) == type);
    }
    CHECK_EQ(timerlistgroup_deadline_ns(ctg), -1);

    /* The context's timers live on its group's lists. */
    aio_timer_init(ctx, &v, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    timer_mod_ns(&v, base + 300);
    CHECK(timerlist_has_timers(ctg->tl[QEMU_CLOCK_VIRTUAL]));
    CHECK(!timerlist_has_timers(ctg->tl[QEMU_CLOCK_REALTIME]));
    CHECK_EQ(timerlistgroup_deadline_ns(ctg), 300);
    timer_del(&v);
    timer_deinit(&v);

    /* A group of our own. */
    timerlistgroup_init(&own, list_notify_cb, &nr);
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        REQUIRE(own.tl[type] != NULL);
        CHECK((int)timerlist_get_clock(own.tl[type]) == type);
    }
    timer_init_tl(&v, own.tl[QEMU_CLOCK_VIRTUAL], SCALE_NS, tcount_cb, &count);
    timer_init_tl(&rt, own.tl[QEMU_CLOCK_REALTIME], SCALE_NS, tcount_cb,
                  &count);
    rt_deadline = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                  3600LL * 1000 * 1000 * 1000;
    timer_mod_ns(&rt, rt_deadline);
    CHECK(nr.calls >= 1);
    CHECK(nr.last_type == QEMU_CLOCK_REALTIME);
    /* The time left, as read before and after (no slack for speed). */
    before = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    d = timerlistgroup_deadline_ns(&own);
    after = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    CHECK(d >= rt_deadline - after && d <= rt_deadline - before);
    timer_mod_ns(&v, base + 40);
    CHECK(nr.last_type == QEMU_CLOCK_VIRTUAL);
    CHECK_EQ(timerlistgroup_deadline_ns(&own), 40);
    CHECK(!timerlistgroup_run_timers(&own));
    qemu_clock_advance_virtual_time(base + 40);
    CHECK_EQ(timerlistgroup_deadline_ns(&own), 0);
    CHECK(timerlistgroup_run_timers(&own));
    CHECK_EQ(count, 1);
    CHECK(!timerlistgroup_run_timers(&own));
    /* Not the context's: its aio_poll has nothing to do with them. */
    timer_mod_ns(&v, vnow());
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    timer_del(&v);
    timer_del(&rt);
    timer_deinit(&v);
    timer_deinit(&rt);
    timerlistgroup_deinit(&own);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* The main context                                                    */

static void test_timer_new_main_context(void)
{
    QEMUTimerListGroup *tlg;
    int count = 0;
    QEMUTimer *t;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    t = timer_new_ns(QEMU_CLOCK_VIRTUAL, tcount_cb, &count);
    REQUIRE(t != NULL);
    timer_mod_ns(t, vnow() + 10);
    tlg = aio_get_timer_list_group(qemu_get_aio_context());
    CHECK(timerlist_has_timers(tlg->tl[QEMU_CLOCK_VIRTUAL]));
    vadvance(10);
    CHECK(aio_poll(qemu_get_aio_context(), false));
    CHECK_EQ(count, 1);
    timer_free(t);

    t = timer_new_ms(QEMU_CLOCK_VIRTUAL, tcount_cb, &count);
    timer_mod(t, vnow() / SCALE_MS + 2);
    CHECK_EQ(timer_expire_time_ns(t), (vnow() / SCALE_MS + 2) * SCALE_MS);
    vadvance(2 * SCALE_MS);
    main_loop_wait(true);
    CHECK_EQ(count, 2);
    timer_free(t);

    t = timer_new_us(QEMU_CLOCK_VIRTUAL, tcount_cb, &count);
    timer_mod(t, 5);
    CHECK_EQ(timer_expire_time_ns(t), 5000);
    timer_free(t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* These cases drive QEMU_CLOCK_VIRTUAL themselves. */
    qemu_clock_take_over_virtual();

    RUN(test_timer_new_free_init_deinit);
    RUN(test_timers_left_armed_at_unref);
    RUN(test_timerlist_standalone);
    RUN(test_timerlistgroup);
    RUN(test_timer_new_main_context);
    return test_done();
}
