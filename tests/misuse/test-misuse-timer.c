/*
 * test-misuse-timer.c - timers given what they must not get.
 *
 * Outcomes checked (timer.h):
 *   timer_mod*() on a deinitialised or      abort naming the timer and
 *     zero-filled timer                       its callback
 *   timer_mod() on a timer that was armed   abort naming the timer ("its
 *     when its context (its list) was freed   AioContext was freed")
 *   timer_del / timer_deinit / timer_free   no-op
 *     on such a timer, timer_deinit twice,
 *     timer_free(NULL), timer_del of a
 *     zero-filled timer
 *   timer_init_tl / aio_timer_init with a   abort naming the timer
 *     NULL list, NULL callback, scale <= 0
 *   a negative expire time (ns or ms)       a deadline in the past: the
 *                                             timer fires at the next
 *                                             aio_poll(), once
 *   timerlist_free() with timers armed      they are disarmed and
 *                                             detached
 *   qemu_clock_advance_virtual_time() to    the clock stays; the call
 *     an earlier time                         returns its value
 *
 * Not here: overflow of huge expire times and an invalid clock type
 * (tests/regress). Not detectable: timer_del/timer_mod
 * of a freed timer, or of an unarmed timer whose context was freed (its
 * list pointer dangles; deinitialise timers before the last unref).
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"

static void fire_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static int dummy_count;

/* ------------------------------------------------------------------ */
/* Arming what cannot be armed                                         */

enum { MOD_NS, MOD_SCALED, MOD_ANTICIPATE_NS, MOD_ANTICIPATE };

static void mod_with(QEMUTimer *ts, int how)
{
    switch (how) {
    case MOD_NS:
        timer_mod_ns(ts, 1000);
        break;
    case MOD_SCALED:
        timer_mod(ts, 1);
        break;
    case MOD_ANTICIPATE_NS:
        timer_mod_anticipate_ns(ts, 1000);
        break;
    default:
        timer_mod_anticipate(ts, 1);
        break;
    }
}

static void child_mod_deinit(void *opaque)
{
    AioContext *ctx = new_ctx();
    QEMUTimer ts;

    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_MS, fire_cb,
                   &dummy_count);
    timer_mod(&ts, 5);
    timer_deinit(&ts);
    death_expect("QEMUTimer %p (callback %p)", (void *)&ts,
                 (void *)(uintptr_t)fire_cb);
    mod_with(&ts, *(int *)opaque);
}

static void test_timer_mod_deinit_aborts(void)
{
    int how[] = { MOD_NS, MOD_SCALED, MOD_ANTICIPATE_NS, MOD_ANTICIPATE };

    for (size_t i = 0; i < ARRAY_SIZE(how); i++) {
        expect_abort(child_mod_deinit, &how[i], "timer_mod",
                     "was deinitialised (timer_deinit)");
    }
}

static void child_mod_zeroed(void *opaque)
{
    QEMUTimer ts = { 0 };

    death_expect("QEMUTimer %p ", (void *)&ts);
    mod_with(&ts, *(int *)opaque);
}

static void test_timer_mod_zeroed_aborts(void)
{
    int ns = MOD_NS, anticipate = MOD_ANTICIPATE_NS;

    expect_abort(child_mod_zeroed, &ns, "timer_mod", "is not initialised");
    expect_abort(child_mod_zeroed, &anticipate, "timer_mod",
                 "is not initialised");
}

static void child_mod_after_ctx_freed(void *opaque)
{
    AioContext *ctx = new_ctx();
    QEMUTimer *ts = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                  fire_cb, &dummy_count);

    (void)opaque;
    timer_mod_ns(ts, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000000000LL);
    aio_context_unref(ctx);         /* detaches the armed timer */
    death_expect("QEMUTimer %p (callback %p)", (void *)ts,
                 (void *)(uintptr_t)fire_cb);
    timer_mod_ns(ts, 1);
}

static void test_timer_rearm_after_context_freed_aborts(void)
{
    expect_abort(child_mod_after_ctx_freed, NULL, "timer_mod",
                 "was armed when its timer list (its AioContext) was freed");
}

/* ------------------------------------------------------------------ */
/* Disarming what is not armed                                         */

static void test_timer_detached_by_context_free(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer *ts = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                  fire_cb, &dummy_count);

    timer_mod_ns(ts, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000000000LL);
    CHECK(timer_pending(ts));
    aio_context_unref(ctx);
    CHECK(!timer_pending(ts));
    CHECK_EQ(timer_expire_time_ns(ts), -1);
    timer_del(ts);                  /* nothing to do */
    timer_deinit(ts);
    timer_free(ts);                 /* ASan: freed once, nothing else */
    CHECK_EQ(dummy_count, 0);
}

static void test_timer_disarm_noops(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer zeroed = { 0 }, ts;
    int fired = 0;

    timer_del(&zeroed);
    timer_deinit(&zeroed);
    timer_free(NULL);
    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, fire_cb, &fired);
    timer_del(&ts);                 /* never armed */
    timer_mod_ns(&ts, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 10);
    timer_del(&ts);
    timer_del(&ts);                 /* twice */
    timer_deinit(&ts);
    timer_deinit(&ts);              /* twice */
    CHECK(!timer_pending(&ts));
    qemu_clock_advance_virtual_time(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                                    100);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(fired, 0);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Initialisation                                                      */

enum { INIT_NULL_LIST, INIT_NULL_CB, INIT_ZERO_SCALE, INIT_NEG_SCALE };

static void child_bad_init(void *opaque)
{
    AioContext *ctx = new_ctx();
    QEMUTimer ts;

    death_expect("QEMUTimer %p:", (void *)&ts);
    switch (*(int *)opaque) {
    case INIT_NULL_LIST:
        timer_init_tl(&ts, NULL, SCALE_NS, fire_cb, &dummy_count);
        break;
    case INIT_NULL_CB:
        aio_timer_init(ctx, &ts, QEMU_CLOCK_REALTIME, SCALE_NS, NULL, NULL);
        break;
    case INIT_ZERO_SCALE:
        aio_timer_init(ctx, &ts, QEMU_CLOCK_REALTIME, 0, fire_cb,
                       &dummy_count);
        break;
    default:
        aio_timer_init(ctx, &ts, QEMU_CLOCK_REALTIME, -SCALE_MS, fire_cb,
                       &dummy_count);
        break;
    }
}

static void test_timer_init_null_list_aborts(void)
{
    int how = INIT_NULL_LIST;

    expect_abort(child_bad_init, &how, "timer_init_tl",
                 "no timer list (NULL)");
}

static void test_timer_init_null_callback_aborts(void)
{
    int how = INIT_NULL_CB;

    expect_abort(child_bad_init, &how, "timer_init_tl",
                 "no callback (NULL)");
}

static void test_timer_init_bad_scale_aborts(void)
{
    int zero = INIT_ZERO_SCALE, negative = INIT_NEG_SCALE;

    expect_abort(child_bad_init, &zero, "timer_init_tl",
                 "a scale below 1 ns (scale 0)");
    expect_abort(child_bad_init, &negative, "timer_init_tl",
                 "a scale below 1 ns (scale -1000000)");
}

/* ------------------------------------------------------------------ */
/* Odd values that are not errors                                      */

static void test_timer_negative_expire_fires_next_poll(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer ns, ms, ant;
    int fired = 0;

    aio_timer_init(ctx, &ns, QEMU_CLOCK_REALTIME, SCALE_NS, fire_cb, &fired);
    aio_timer_init(ctx, &ms, QEMU_CLOCK_REALTIME, SCALE_MS, fire_cb, &fired);
    aio_timer_init(ctx, &ant, QEMU_CLOCK_HOST, SCALE_US, fire_cb, &fired);
    timer_mod_ns(&ns, -5);
    timer_mod(&ms, -5);
    timer_mod_anticipate(&ant, -1);
    /* In the past: clamped to 0, fired by the next aio_poll(). */
    CHECK_EQ(timer_expire_time_ns(&ns), 0);
    CHECK_EQ(timer_expire_time_ns(&ms), 0);
    CHECK(timer_expired(&ms, 0));
    CHECK_EQ(aio_compute_timeout(ctx), 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(fired, 3);
    CHECK(!aio_poll(ctx, false));   /* once */
    CHECK_EQ(fired, 3);
    timer_deinit(&ns);
    timer_deinit(&ms);
    timer_deinit(&ant);
    aio_context_unref(ctx);
}

static void test_timerlist_free_detaches_armed(void)
{
    QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_VIRTUAL, NULL, NULL);
    QEMUTimer a, b;
    int fired = 0;

    timer_init_tl(&a, tl, SCALE_NS, fire_cb, &fired);
    timer_init_tl(&b, tl, SCALE_NS, fire_cb, &fired);
    timer_mod_ns(&a, 10);
    timer_mod_ns(&b, 20);
    CHECK(timerlist_has_timers(tl));
    timerlist_free(tl);
    CHECK(!timer_pending(&a));
    CHECK(!timer_pending(&b));
    timer_del(&a);
    timer_deinit(&b);
    CHECK_EQ(fired, 0);
}

static void test_virtual_clock_backwards_ignored(void)
{
    int64_t now = qemu_clock_advance_virtual_time(
        qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + 1000);

    CHECK_EQ(qemu_clock_advance_virtual_time(now - 500), now);
    CHECK_EQ(qemu_clock_advance_virtual_time(INT64_MIN), now);
    CHECK_EQ(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), now);
}

int main(void)
{
    TEST(test_timer_mod_deinit_aborts);
    TEST(test_timer_mod_zeroed_aborts);
    TEST(test_timer_rearm_after_context_freed_aborts);
    TEST(test_timer_detached_by_context_free);
    TEST(test_timer_disarm_noops);
    TEST(test_timer_init_null_list_aborts);
    TEST(test_timer_init_null_callback_aborts);
    TEST(test_timer_init_bad_scale_aborts);
    TEST(test_timer_negative_expire_fires_next_poll);
    TEST(test_timerlist_free_detaches_armed);
    TEST(test_virtual_clock_backwards_ignored);
    return test_done();
}
