/*
 * test-regress-timer.c - regressions in timers: expiry times that
 * overflow their scale and invalid clock types.
 *
 * Documented outcomes checked here (include/aioloop/timer.h, "Bad
 * input"):
 *  - timer_mod()/timer_mod_anticipate()/timer_expired() convert with
 *    saturation: too large is INT64_MAX ns, which never comes (the timer
 *    stays pending and never fires), too small is in the past (fires at
 *    the next aio_poll()). qemu_co_sleep_ns() saturates the same way.
 *  - A clock type outside [0, QEMU_CLOCK_MAX) aborts, naming the
 *    function, the value and the timer if there is one; so does a timer
 *    without a list or callback, or with a scale below 1.
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <limits.h>

#include "regress-test.h"

static void fired_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* A few non-blocking turns of the loop: whatever is due runs. */
static void turn(AioContext *ctx)
{
    for (int i = 0; i < 3; i++) {
        aio_poll(ctx, false);
    }
}

/* ------------------------------------------------------------------ */
/* Saturation                                                          */

/*
 * INT64_MAX / 1000 ms times 1,000,000 ns: before the fix the product
 * overflowed (UBSan: signed integer overflow), wrapped negative, was
 * clamped to 0 and the timer fired at once. Now it is INT64_MAX: never.
 */
static void test_timer_mod_ms_huge_expire_never_fires(void)
{
    AioContext *ctx = new_ctx();
    int fired = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 fired_cb, &fired);
    QEMUTimer *u = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_US,
                                 fired_cb, &fired);

    timer_mod(t, INT64_MAX / 1000);
    timer_mod(u, INT64_MAX);
    turn(ctx);
    CHECK_EQ(fired, 0);
    CHECK(timer_pending(t));
    CHECK(timer_pending(u));
    CHECK_EQ(timer_expire_time_ns(t), INT64_MAX);
    CHECK_EQ(timer_expire_time_ns(u), INT64_MAX);
    /* Never means a sleep without a deadline, not a busy loop. */
    CHECK(aio_compute_timeout(ctx) != 0);
    timer_free(t);
    timer_free(u);
    aio_context_unref(ctx);
}

/* The same through timer_mod_anticipate(), on an unarmed timer and on
 * one armed for later (which it must not move later). */
static void test_timer_mod_anticipate_huge_expire_never_fires(void)
{
    AioContext *ctx = new_ctx();
    int fired = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 fired_cb, &fired);

    timer_mod_anticipate(t, INT64_MAX / 1000);
    turn(ctx);
    CHECK_EQ(fired, 0);
    CHECK_EQ(timer_expire_time_ns(t), INT64_MAX);
    /* An earlier deadline still wins; a huge one changes nothing. */
    timer_mod_anticipate(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 100000);
    CHECK(timer_expire_time_ns(t) < INT64_MAX);
    timer_mod_anticipate(t, INT64_MAX / 2);
    CHECK(timer_expire_time_ns(t) < INT64_MAX);
    turn(ctx);
    CHECK_EQ(fired, 0);
    timer_free(t);
    aio_context_unref(ctx);
}

/* A hugely negative time is in the past: it fires at once (before the
 * fix: signed overflow, and a wrapped deadline far in the future). */
static void test_timer_mod_huge_negative_expire_fires_now(void)
{
    AioContext *ctx = new_ctx();
    int fired = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 fired_cb, &fired);

    timer_mod(t, INT64_MIN / 1000);
    turn(ctx);
    CHECK_EQ(fired, 1);
    timer_mod_anticipate(t, INT64_MIN / 999);
    turn(ctx);
    CHECK_EQ(fired, 2);
    timer_free(t);
    aio_context_unref(ctx);
}

/* timer_expired() scales the current time the same way (before the fix
 * INT64_MAX ms wrapped negative: "not expired" for any deadline). */
static void test_timer_expired_huge_current_time_saturates(void)
{
    AioContext *ctx = new_ctx();
    int fired = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_MS,
                                 fired_cb, &fired);

    timer_mod(t, 5);
    CHECK(timer_expired(t, INT64_MAX));
    CHECK(timer_expired(t, INT64_MAX / 3));
    CHECK(!timer_expired(t, INT64_MIN));
    CHECK(!timer_expired(t, 4));
    timer_free(t);
    aio_context_unref(ctx);
}

static void coroutine_fn sleeper(void *opaque)
{
    int *state = opaque;

    *state = 1;
    qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, INT64_MAX);
    *state = 2;
}

/* qemu_co_sleep_ns(INT64_MAX): before the fix now + INT64_MAX overflowed
 * and the coroutine woke at once. Now it sleeps until entered. */
static void test_co_sleep_ns_huge_never_wakes(void)
{
    AioContext *ctx = new_ctx();
    int state = 0;
    Coroutine *co = qemu_coroutine_create(sleeper, &state);

    aio_co_enter(ctx, co);
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(state, 1);
    turn(ctx);
    CHECK_EQ(state, 1);
    /* Woken early by its owner: the sleep ends, the timer is disarmed. */
    aio_co_wake(co);
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(state, 2);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Invalid clock types and timers                                      */

static AioContext *death_ctx(void)
{
    return new_ctx();
}

static void aio_timer_new_child(void *opaque)
{
    int fired = 0;

    aio_timer_new(death_ctx(), (QEMUClockType)(intptr_t)opaque, SCALE_MS,
                  fired_cb, &fired);
    fprintf(stderr, "survived\n");
}

/*
 * Before the fix ctx->tlg.tl[type] was read out of bounds: a wild list
 * pointer (a crash later, or silent corruption), no message. Now every
 * entry point aborts naming the value.
 */
static void test_aio_timer_new_invalid_clock_aborts_naming_it(void)
{
    CHECK(death_expect_abort(aio_timer_new_child, (void *)(intptr_t)7,
                             "aio_timer_new", "invalid clock type 7", NULL));
    CHECK(death_expect_abort(aio_timer_new_child, (void *)(intptr_t)-1,
                             "aio_timer_new", "invalid clock type -1", NULL));
    CHECK(death_expect_abort(aio_timer_new_child,
                             (void *)(intptr_t)QEMU_CLOCK_MAX,
                             "aio_timer_new", "invalid clock type", NULL));
}

static QEMUTimer init_timer;

static void aio_timer_init_child(void *opaque)
{
    int fired = 0;

    (void)opaque;
    aio_timer_init(death_ctx(), &init_timer, (QEMUClockType)42, SCALE_NS,
                   fired_cb, &fired);
    fprintf(stderr, "survived\n");
}

static void test_aio_timer_init_invalid_clock_aborts_naming_timer(void)
{
    char name[64];

    snprintf(name, sizeof(name), "QEMUTimer %p", (void *)&init_timer);
    CHECK(death_expect_abort(aio_timer_init_child, NULL, "aio_timer_init",
                             name, "invalid clock type 42", NULL));
}

static void timer_new_child(void *opaque)
{
    int fired = 0;

    (void)opaque;
    if (qemu_init_main_loop(NULL) < 0) {
        _exit(3);
    }
    timer_new_ms((QEMUClockType)9, fired_cb, &fired);
    fprintf(stderr, "survived\n");
}

static void test_timer_new_invalid_clock_aborts_naming_it(void)
{
    CHECK(death_expect_abort(timer_new_child, NULL, "timer_new",
                             "invalid clock type 9", NULL));
}

static void clock_calls_child(void *opaque)
{
    switch ((int)(intptr_t)opaque) {
    case 0:
        timerlist_new((QEMUClockType)5, NULL, NULL);
        break;
    case 1:
        fprintf(stderr, "%d\n", qemu_clock_is_enabled((QEMUClockType)-3));
        break;
    case 2:
        qemu_clock_enable((QEMUClockType)4, false);
        break;
    default:
        fprintf(stderr, "%lld\n",
                (long long)qemu_clock_get_ns((QEMUClockType)100));
        break;
    }
    fprintf(stderr, "survived\n");
}

/* The clock functions themselves: out-of-bounds reads and writes of the
 * clock table before the fix (an assertion only in qemu_clock_enable(),
 * gone with NDEBUG). */
static void test_clock_functions_invalid_clock_abort_naming_it(void)
{
    CHECK(death_expect_abort(clock_calls_child, (void *)0, "timerlist_new",
                             "invalid clock type 5", NULL));
    CHECK(death_expect_abort(clock_calls_child, (void *)1,
                             "qemu_clock_is_enabled", "invalid clock type -3",
                             NULL));
    CHECK(death_expect_abort(clock_calls_child, (void *)2,
                             "qemu_clock_enable", "invalid clock type 4",
                             NULL));
    CHECK(death_expect_abort(clock_calls_child, (void *)3,
                             "qemu_clock_get_ns", "invalid clock type 100",
                             NULL));
}

static void bad_timer_child(void *opaque)
{
    AioContext *ctx = death_ctx();
    QEMUTimerList *tl = aio_get_timer_list_group(ctx)->tl[0];
    int fired = 0;

    switch ((int)(intptr_t)opaque) {
    case 0:
        timer_init_tl(&init_timer, NULL, SCALE_MS, fired_cb, &fired);
        break;
    case 1:
        timer_init_tl(&init_timer, tl, SCALE_MS, NULL, &fired);
        break;
    case 2:
        timer_init_tl(&init_timer, tl, 0, fired_cb, &fired);
        break;
    default:
        timer_new_tl(tl, -5, fired_cb, &fired);
        break;
    }
    fprintf(stderr, "survived\n");
}

/* A timer without a list or callback, or with a scale below 1: before
 * the fix an assertion (a broken timer with NDEBUG, which crashed or
 * fired wrongly later); now an abort naming the timer, in every build. */
static void test_timer_without_list_callback_or_scale_aborts_naming_it(void)
{
    char name[64];

    snprintf(name, sizeof(name), "QEMUTimer %p", (void *)&init_timer);
    CHECK(death_expect_abort(bad_timer_child, (void *)0, "timer_init_tl",
                             name, "no timer list", NULL));
    CHECK(death_expect_abort(bad_timer_child, (void *)1, "timer_init_tl",
                             name, "no callback", NULL));
    CHECK(death_expect_abort(bad_timer_child, (void *)2, "timer_init_tl",
                             name, "scale", NULL));
    CHECK(death_expect_abort(bad_timer_child, (void *)3, "timer_new_tl",
                             "scale -5", NULL));
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* QEMU_CLOCK_VIRTUAL follows host time unless taken over: these
     * cases drive it themselves (every case's process inherits this). */
    qemu_clock_take_over_virtual();
    RUN(test_timer_mod_ms_huge_expire_never_fires);
    RUN(test_timer_mod_anticipate_huge_expire_never_fires);
    RUN(test_timer_mod_huge_negative_expire_fires_now);
    RUN(test_timer_expired_huge_current_time_saturates);
    RUN(test_co_sleep_ns_huge_never_wakes);
    RUN(test_aio_timer_new_invalid_clock_aborts_naming_it);
    RUN(test_aio_timer_init_invalid_clock_aborts_naming_timer);
    RUN(test_timer_new_invalid_clock_aborts_naming_it);
    RUN(test_clock_functions_invalid_clock_abort_naming_it);
    RUN(test_timer_without_list_callback_or_scale_aborts_naming_it);
    return test_done();
}
