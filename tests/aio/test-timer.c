/*
 * test-timer.c - timers, single-threaded: deadline order (ties in arm
 * order), a random model of arms, moves, anticipations, deletes and
 * advances, timer state queries, the largest deadline, re-arming earlier
 * and later, and timer_mod_anticipate. (Callbacks: test-timer-callbacks.c;
 * clocks and timeouts: test-timer-clocks.c; lifetimes and lists:
 * test-timer-lists.c.)
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
/* Deadline order                                                      */

#define ORDER_N 1000
#define ORDER_DISTINCT 50

typedef struct {
    int index;
    int64_t deadline;
    int arm_rank;           /* position of its (last) arm */
    QEMUTimer timer;
} OrderTimer;

static int order_log[ORDER_N + 16];
static int order_logged;

static void order_cb(void *opaque)
{
    OrderTimer *ot = opaque;

    if (order_logged < (int)(sizeof(order_log) / sizeof(order_log[0]))) {
        order_log[order_logged] = ot->index;
    }
    order_logged++;
}

static void test_timer_deadline_order(void)
{
    AioContext *ctx = new_ctx();
    OrderTimer *t = calloc(ORDER_N, sizeof(*t));
    int64_t base = vnow();
    int64_t far = base + 1000LL * 1000 * 1000 * 1000;
    int i, k, out_of_order = 0, polls;

    REQUIRE(t != NULL);
    order_logged = 0;
    for (i = 0; i < ORDER_N; i++) {
        t[i].index = i;
        /* ORDER_DISTINCT deadlines, ORDER_N / ORDER_DISTINCT timers each */
        t[i].deadline = base + 1 + (int64_t)((i * 37) % ORDER_DISTINCT) * 1000;
        aio_timer_init(ctx, &t[i].timer, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                       order_cb, &t[i]);
    }
    /* A third of them is first armed far away, then moved: the move is
     * their arm for the tie order. */
    for (i = ORDER_N - 1; i >= 0; i--) {
        if (i % 3 == 0) {
            timer_mod_ns(&t[i].timer, far - i);
        }
    }
    /* Arm in a permuted order (7919 is prime, so k -> k*7919 % N is a
     * permutation), so that index, deadline and arm order all differ. */
    for (k = 0; k < ORDER_N; k++) {
        i = (int)(((long)k * 7919) % ORDER_N);
        t[i].arm_rank = k;
        timer_mod_ns(&t[i].timer, t[i].deadline);
    }
    for (i = 0; i < ORDER_N; i++) {
        CHECK_EQ(timer_expire_time_ns(&t[i].timer), t[i].deadline);
    }

    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(order_logged, 0);
    qemu_clock_advance_virtual_time(base + 1 + ORDER_DISTINCT * 1000);
    CHECK_EQ(order_logged, 0);      /* nothing fires outside aio_poll */

    /* The expired timers of a list all run in one aio_poll(). */
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(order_logged, ORDER_N);
    polls = drain(ctx);
    CHECK_EQ(polls, 0);
    CHECK_EQ(order_logged, ORDER_N);

    for (k = 1; k < order_logged && k < ORDER_N; k++) {
        OrderTimer *a = &t[order_log[k - 1]], *b = &t[order_log[k]];

        if (a->deadline > b->deadline ||
            (a->deadline == b->deadline && a->arm_rank >= b->arm_rank)) {
            if (out_of_order++ < 5) {
                printf("#   out of order at %d: timer %d (deadline +%lld, "
                       "armed %d) before timer %d (deadline +%lld, armed %d)\n",
                       k, a->index, (long long)(a->deadline - base),
                       a->arm_rank, b->index, (long long)(b->deadline - base),
                       b->arm_rank);
            }
        }
    }
    CHECK_EQ(out_of_order, 0);
    for (i = 0; i < ORDER_N; i++) {
        CHECK(!timer_pending(&t[i].timer));
        timer_deinit(&t[i].timer);
    }
    free(t);
    aio_context_unref(ctx);
}

/* Equal deadlines fire in the order of their last arm: a timer moved onto
 * an occupied deadline goes after the timers already there. */
static int tie_log[8];
static int tie_logged;

static void tie_cb(void *opaque)
{
    if (tie_logged < 8) {
        tie_log[tie_logged] = (int)(intptr_t)opaque;
    }
    tie_logged++;
}

static void test_timer_tie_order_follows_last_arm(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer a, b, c;
    int64_t base = vnow();

    tie_logged = 0;
    aio_timer_init(ctx, &a, QEMU_CLOCK_VIRTUAL, SCALE_NS, tie_cb, (void *)1);
    aio_timer_init(ctx, &b, QEMU_CLOCK_VIRTUAL, SCALE_NS, tie_cb, (void *)2);
    aio_timer_init(ctx, &c, QEMU_CLOCK_VIRTUAL, SCALE_NS, tie_cb, (void *)3);
    timer_mod_ns(&a, base + 500);   /* armed first, elsewhere */
    timer_mod_ns(&b, base + 100);
    timer_mod_ns(&c, base + 100);
    timer_mod_ns(&a, base + 100);   /* moved last onto the tie */
    qemu_clock_advance_virtual_time(base + 100);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(tie_logged, 3);
    CHECK_EQ(tie_log[0], 2);
    CHECK_EQ(tie_log[1], 3);
    CHECK_EQ(tie_log[2], 1);
    timer_deinit(&a);
    timer_deinit(&b);
    timer_deinit(&c);
    aio_context_unref(ctx);
}

/* Random arms, moves, anticipations, deletes and advances on a few
 * hundred timers, checked against a plain model: each poll fires exactly
 * the timers whose deadline is reached, by deadline, ties in arm order
 * (every timer_mod_ns is an arm; an anticipate that changes nothing is
 * not). */
#define MODEL_N 300
#define MODEL_STEPS 20000

typedef struct {
    QEMUTimer timer;
    int index;
    int64_t deadline;           /* -1: not armed */
    uint64_t seq;
} ModelTimer;

static ModelTimer *model_t;
static int model_fired[MODEL_N * 2];
static int model_nfired;

static void model_cb(void *opaque)
{
    ModelTimer *m = opaque;

    if (model_nfired < MODEL_N * 2) {
        model_fired[model_nfired] = m->index;
    }
    model_nfired++;
}

static void test_timer_random_model(void)
{
    AioContext *ctx = new_ctx();
    uint64_t seq = 0, rng = 88172645463325252ULL;
    int64_t now = vnow();
    int step, i, mismatches = 0, fired_total = 0;

    model_t = calloc(MODEL_N, sizeof(*model_t));
    REQUIRE(model_t != NULL);
    for (i = 0; i < MODEL_N; i++) {
        model_t[i].index = i;
        model_t[i].deadline = -1;
        aio_timer_init(ctx, &model_t[i].timer, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                       model_cb, &model_t[i]);
    }
    for (step = 0; step < MODEL_STEPS && mismatches == 0; step++) {
        unsigned op;
        ModelTimer *m;
        int64_t d;

        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        op = (unsigned)(rng % 100);
        m = &model_t[(rng >> 8) % MODEL_N];
        d = now + (int64_t)((rng >> 24) % 64);     /* many ties */
        if (op < 50) {
            timer_mod_ns(&m->timer, d);
            m->deadline = d;
            m->seq = seq++;
        } else if (op < 65) {
            timer_mod_anticipate_ns(&m->timer, d);
            if (m->deadline < 0 || d < m->deadline) {
                m->deadline = d;
                m->seq = seq++;
            }
        } else if (op < 85) {
            timer_del(&m->timer);
            m->deadline = -1;
        } else {
            int expected[MODEL_N], ne = 0, j, k;

            now = qemu_clock_advance_virtual_time(
                now + (int64_t)((rng >> 32) % 40));
            /* Expected: armed, deadline <= now, by (deadline, seq). */
            for (j = 0; j < MODEL_N; j++) {
                if (model_t[j].deadline >= 0 && model_t[j].deadline <= now) {
                    expected[ne++] = j;
                }
            }
            for (j = 1; j < ne; j++) {
                int x = expected[j];

                for (k = j - 1; k >= 0; k--) {
                    ModelTimer *a = &model_t[expected[k]], *b = &model_t[x];

                    if (a->deadline < b->deadline ||
                        (a->deadline == b->deadline && a->seq < b->seq)) {
                        break;
                    }
                    expected[k + 1] = expected[k];
                }
                expected[k + 1] = x;
            }
            model_nfired = 0;
            CHECK(aio_poll(ctx, false) == (ne > 0));
            if (model_nfired != ne) {
                printf("#   step %d: %d fired, %d expected\n", step,
                       model_nfired, ne);
                mismatches++;
            } else {
                for (j = 0; j < ne; j++) {
                    if (model_fired[j] != expected[j]) {
                        printf("#   step %d: firing %d was timer %d, "
                               "expected %d\n", step, j, model_fired[j],
                               expected[j]);
                        mismatches++;
                        break;
                    }
                }
            }
            for (j = 0; j < ne; j++) {
                model_t[expected[j]].deadline = -1;
            }
            fired_total += ne;
        }
        /* The queries agree with the model for the touched timer. */
        if (timer_expire_time_ns(&m->timer) != m->deadline ||
            timer_pending(&m->timer) != (m->deadline >= 0)) {
            printf("#   step %d: timer %d expire %lld, model %lld\n", step,
                   m->index, (long long)timer_expire_time_ns(&m->timer),
                   (long long)m->deadline);
            mismatches++;
        }
    }
    printf("#   %d steps, %d firings checked\n", step, fired_total);
    CHECK_EQ(mismatches, 0);
    CHECK(fired_total > 1000);
    for (i = 0; i < MODEL_N; i++) {
        timer_deinit(&model_t[i].timer);
    }
    free(model_t);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* State queries, re-arming                                            */

static void test_timer_state_queries(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUTimer *ts = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                                  tcount_cb, &count);
    int64_t base = vnow();

    REQUIRE(ts != NULL);
    /* Never armed. */
    CHECK(!timer_pending(ts));
    CHECK_EQ(timer_expire_time_ns(ts), -1);
    CHECK(!timer_expired(ts, base));
    CHECK(!timer_expired(ts, INT64_MAX));

    /* Armed. */
    timer_mod_ns(ts, base + 1000);
    CHECK(timer_pending(ts));
    CHECK_EQ(timer_expire_time_ns(ts), base + 1000);
    CHECK(!timer_expired(ts, base));
    CHECK(!timer_expired(ts, base + 999));
    CHECK(timer_expired(ts, base + 1000));
    CHECK(timer_expired(ts, base + 5000));
    CHECK_EQ(count, 0);             /* never runs inside timer_mod */

    /* Not yet due. */
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    CHECK(timer_pending(ts));

    /* Fired: no longer armed. */
    qemu_clock_advance_virtual_time(base + 1000);
    CHECK(timer_pending(ts));       /* due, but only aio_poll fires it */
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK(!timer_pending(ts));
    CHECK_EQ(timer_expire_time_ns(ts), -1);
    CHECK(!timer_expired(ts, base + 5000));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);             /* once per arm */

    /* Deleted before its deadline: never fires. */
    timer_mod_ns(ts, base + 2000);
    CHECK(timer_pending(ts));
    timer_del(ts);
    CHECK(!timer_pending(ts));
    CHECK_EQ(timer_expire_time_ns(ts), -1);
    CHECK(!timer_expired(ts, base + 5000));
    qemu_clock_advance_virtual_time(base + 3000);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    /* Deleted after its deadline passed but before aio_poll. */
    timer_mod_ns(ts, base + 2500);  /* already in the past */
    CHECK(timer_expired(ts, base + 3000));
    timer_del(ts);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    /* Deleting an unarmed timer is harmless, twice too. */
    timer_del(ts);
    timer_del(ts);
    CHECK(!timer_pending(ts));

    /* A deadline in the past fires at the next aio_poll. */
    timer_mod_ns(ts, base);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 2);

    timer_free(ts);
    aio_context_unref(ctx);
}

/* The largest deadline: armed (pending, on the list), never due. */
static void test_timer_max_deadline(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimerListGroup *tlg = aio_get_timer_list_group(ctx);
    int count = 0;
    QEMUTimer ts;

    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);
    timer_mod_ns(&ts, INT64_MAX);
    CHECK(timer_pending(&ts));
    CHECK_EQ(timer_expire_time_ns(&ts), INT64_MAX);
    CHECK(timerlist_has_timers(tlg->tl[QEMU_CLOCK_VIRTUAL]));
    CHECK(aio_compute_timeout(ctx) != 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    timer_del(&ts);
    CHECK(!timer_pending(&ts));
    CHECK(!timerlist_has_timers(tlg->tl[QEMU_CLOCK_VIRTUAL]));
    timer_deinit(&ts);
    aio_context_unref(ctx);
}

static void test_timer_rearm_later_and_earlier(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUTimer ts;
    int64_t base = vnow();

    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);

    /* Moved later: nothing at the old deadline. */
    timer_mod_ns(&ts, base + 100);
    timer_mod_ns(&ts, base + 300);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 300);
    CHECK_EQ(aio_compute_timeout(ctx), 300);
    qemu_clock_advance_virtual_time(base + 100);
    CHECK_EQ(aio_compute_timeout(ctx), 200);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    qemu_clock_advance_virtual_time(base + 299);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    qemu_clock_advance_virtual_time(base + 300);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK(!aio_poll(ctx, false));

    /* Moved earlier: fires at the new deadline, not again at the old. */
    base = vnow();
    timer_mod_ns(&ts, base + 1000);
    timer_mod_ns(&ts, base + 50);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 50);
    CHECK_EQ(aio_compute_timeout(ctx), 50);
    qemu_clock_advance_virtual_time(base + 49);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    qemu_clock_advance_virtual_time(base + 50);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 2);
    qemu_clock_advance_virtual_time(base + 1000);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 2);
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    /* Many moves of one arm: still one firing. */
    base = vnow();
    for (int i = 0; i < 100; i++) {
        timer_mod_ns(&ts, base + 1 + (i * 13) % 97);
    }
    qemu_clock_advance_virtual_time(base + 200);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 3);
    CHECK(!aio_poll(ctx, false));

    timer_deinit(&ts);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* timer_mod_anticipate                                                */

static void test_timer_mod_anticipate(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUTimer ts, us;
    int64_t base = vnow();

    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &count);

    /* Arms an unarmed timer. */
    timer_mod_anticipate_ns(&ts, base + 500);
    CHECK(timer_pending(&ts));
    CHECK_EQ(timer_expire_time_ns(&ts), base + 500);
    /* Never later. */
    timer_mod_anticipate_ns(&ts, base + 800);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 500);
    timer_mod_anticipate_ns(&ts, base + 500);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 500);
    /* Earlier. */
    timer_mod_anticipate_ns(&ts, base + 300);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 300);
    CHECK_EQ(aio_compute_timeout(ctx), 300);
    qemu_clock_advance_virtual_time(base + 300);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    /* Not left armed at the later time. */
    qemu_clock_advance_virtual_time(base + 800);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    /* After firing it is unarmed: anticipate arms it again, later. */
    timer_mod_anticipate_ns(&ts, base + 900);
    CHECK_EQ(timer_expire_time_ns(&ts), base + 900);
    timer_del(&ts);

    /* In the timer's scale. */
    aio_timer_init(ctx, &us, QEMU_CLOCK_VIRTUAL, SCALE_US, tcount_cb, &count);
    base = vnow() / 1000 + 1000;        /* in us, in the future */
    timer_mod_anticipate(&us, base + 5);
    CHECK_EQ(timer_expire_time_ns(&us), (base + 5) * 1000);
    timer_mod_anticipate(&us, base + 10);
    CHECK_EQ(timer_expire_time_ns(&us), (base + 5) * 1000);
    timer_mod_anticipate(&us, base + 2);
    CHECK_EQ(timer_expire_time_ns(&us), (base + 2) * 1000);
    timer_mod_anticipate_ns(&us, (base + 2) * 1000 - 1);
    CHECK_EQ(timer_expire_time_ns(&us), (base + 2) * 1000 - 1);
    timer_del(&us);
    CHECK(!aio_poll(ctx, false));

    timer_deinit(&ts);
    timer_deinit(&us);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* QEMU_CLOCK_VIRTUAL follows host time unless taken over: these
     * cases drive it themselves (every case's process inherits this). */
    qemu_clock_take_over_virtual();

    RUN(test_timer_deadline_order);
    RUN(test_timer_tie_order_follows_last_arm);
    RUN(test_timer_random_model);
    RUN(test_timer_state_queries);
    RUN(test_timer_max_deadline);
    RUN(test_timer_rearm_later_and_earlier);
    RUN(test_timer_mod_anticipate);
    return test_done();
}
