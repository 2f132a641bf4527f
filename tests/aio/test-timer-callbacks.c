/*
 * test-timer-callbacks.c - what timer callbacks may do: free, delete or
 * re-arm themselves, delete, free or deinit other due timers before
 * their turn, run a nested aio_poll() (the timers due with them are
 * visible and run there, each once), and arm timers that are already
 * due (they take their place in deadline order).
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
/* Callbacks that delete, free, re-arm, nest                           */

typedef struct {
    QEMUTimer *self;
    QEMUTimer *del_other;   /* timer_del this one */
    QEMUTimer *free_other;  /* timer_free this one */
    QEMUTimer *deinit_other;/* timer_deinit this one */
    bool free_self;
    bool del_self;
    bool rearm_then_del_self;
    int count;
} DelCtl;

static void del_cb(void *opaque)
{
    DelCtl *d = opaque;

    d->count++;
    if (d->del_other) {
        timer_del(d->del_other);
    }
    if (d->free_other) {
        timer_free(d->free_other);
        d->free_other = NULL;
    }
    if (d->deinit_other) {
        timer_deinit(d->deinit_other);
    }
    if (d->rearm_then_del_self) {
        timer_mod_ns(d->self, vnow());
        timer_del(d->self);
    }
    if (d->del_self) {
        timer_del(d->self);
    }
    if (d->free_self) {
        timer_free(d->self);
        d->self = NULL;
    }
}

static void test_timer_free_self_in_callback(void)
{
    AioContext *ctx = new_ctx();
    DelCtl d = { .free_self = true };
    int other = 0;
    QEMUTimer *after;
    int64_t base = vnow();

    d.self = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, del_cb, &d);
    after = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &other);
    timer_mod_ns(d.self, base + 10);
    timer_mod_ns(after, base + 10);     /* same deadline, armed after */
    qemu_clock_advance_virtual_time(base + 10);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(d.count, 1);
    CHECK(d.self == NULL);
    /* The loop goes on past the freed timer. */
    CHECK_EQ(other, 1);
    CHECK(!aio_poll(ctx, false));
    timer_free(after);
    aio_context_unref(ctx);
}

static void test_timer_del_self_in_callback(void)
{
    AioContext *ctx = new_ctx();
    DelCtl d = { .del_self = true, .rearm_then_del_self = true };
    QEMUTimer ts;
    int64_t base = vnow();

    aio_timer_init(ctx, &ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, del_cb, &d);
    d.self = &ts;
    timer_mod_ns(&ts, base + 10);
    qemu_clock_advance_virtual_time(base + 10);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(d.count, 1);
    CHECK(!timer_pending(&ts));
    CHECK_EQ(timer_expire_time_ns(&ts), -1);
    /* The re-arm (at the current time) was deleted: no second firing. */
    CHECK(!aio_poll(ctx, false));
    vadvance(100);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(d.count, 1);
    timer_deinit(&ts);
    aio_context_unref(ctx);
}

static void test_timer_del_other_in_callback(void)
{
    AioContext *ctx = new_ctx();
    DelCtl d = { 0 };
    int n_del = 0, n_free = 0, n_deinit = 0, n_later = 0, n_before = 0;
    QEMUTimer first, deleted, deinited, later, before;
    QEMUTimer *freed;
    int64_t base = vnow();

    aio_timer_init(ctx, &before, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                   &n_before);
    aio_timer_init(ctx, &first, QEMU_CLOCK_VIRTUAL, SCALE_NS, del_cb, &d);
    aio_timer_init(ctx, &deleted, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                   &n_del);
    aio_timer_init(ctx, &deinited, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                   &n_deinit);
    aio_timer_init(ctx, &later, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                   &n_later);
    freed = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                          &n_free);
    d.self = &first;
    d.del_other = &deleted;
    d.free_other = freed;
    d.deinit_other = &deinited;

    /* 'before' shares the deadline but was armed first: it fires. The
     * others share it too but were armed after 'first': its callback
     * removes them before their turn. */
    timer_mod_ns(&before, base + 10);
    timer_mod_ns(&first, base + 10);
    timer_mod_ns(&deleted, base + 10);
    timer_mod_ns(freed, base + 10);
    timer_mod_ns(&deinited, base + 10);
    timer_mod_ns(&later, base + 20);
    qemu_clock_advance_virtual_time(base + 20);
    CHECK(aio_poll(ctx, false));
    drain(ctx);
    CHECK_EQ(n_before, 1);
    CHECK_EQ(d.count, 1);
    CHECK_EQ(n_del, 0);
    CHECK_EQ(n_free, 0);
    CHECK_EQ(n_deinit, 0);
    CHECK_EQ(n_later, 1);
    CHECK(!timer_pending(&deleted));

    /* A deleted timer can be armed again and fires normally. */
    timer_mod_ns(&deleted, vnow());
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n_del, 1);
    /* So can a deinit'ed one after a fresh init. */
    aio_timer_init(ctx, &deinited, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb,
                   &n_deinit);
    timer_mod_ns(&deinited, vnow());
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n_deinit, 1);

    timer_deinit(&before);
    timer_deinit(&first);
    timer_deinit(&deleted);
    timer_deinit(&deinited);
    timer_deinit(&later);
    aio_context_unref(ctx);
}

/* Re-arms itself 'step' ns ahead while 'remaining' > 0. */
typedef struct {
    QEMUTimer ts;
    int64_t step;
    int remaining;
    int count;
} Rearm;

static void rearm_cb(void *opaque)
{
    Rearm *r = opaque;

    r->count++;
    if (r->remaining > 0) {
        r->remaining--;
        timer_mod_ns(&r->ts, vnow() + r->step);
    }
}

static void test_timer_rearm_self_in_callback(void)
{
    AioContext *ctx = new_ctx();
    Rearm r = { .step = 100, .remaining = 1000 };
    int i;

    aio_timer_init(ctx, &r.ts, QEMU_CLOCK_VIRTUAL, SCALE_NS, rearm_cb, &r);
    timer_mod_ns(&r.ts, vnow() + 100);
    CHECK(!aio_poll(ctx, false));
    for (i = 1; i <= 10; i++) {
        vadvance(100);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(r.count, i);       /* once per arm: once per advance */
        CHECK(timer_pending(&r.ts));
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(r.count, i);
        CHECK_EQ(aio_compute_timeout(ctx), 100);
    }
    /* Advancing by several steps at once: the re-armed deadline is
     * relative to the (new) clock, so exactly one more firing. */
    vadvance(1000);
    drain(ctx);
    CHECK_EQ(r.count, 11);

    /* Re-armed for a deadline already reached: it fires again (a new
     * arm), and the poll loop terminates. */
    r.step = 0;
    r.remaining = 5;
    timer_mod_ns(&r.ts, vnow());
    drain(ctx);
    CHECK_EQ(r.count, 11 + 6);
    CHECK(!timer_pending(&r.ts));
    CHECK(!aio_poll(ctx, false));

    timer_deinit(&r.ts);
    aio_context_unref(ctx);
}

typedef struct {
    AioContext *ctx;
    int count;
    int nested_polls;
    int nested_progress;
    int *other_count;
    int other_seen;         /* *other_count after the nested poll */
} Nest;

static void nest_cb(void *opaque)
{
    Nest *n = opaque;

    n->count++;
    if (n->count == 1) {
        n->nested_polls++;
        if (aio_poll(n->ctx, false)) {
            n->nested_progress++;
        }
        n->other_seen = n->other_count ? *n->other_count : -1;
    }
}

static void test_timer_nested_poll_in_callback(void)
{
    AioContext *ctx = new_ctx();
    Nest n = { .ctx = ctx };
    int other = 0;
    QEMUTimer a, b;
    int64_t base = vnow();

    /* Alone: the nested poll has nothing to do and must not fire the
     * timer that is running again. */
    aio_timer_init(ctx, &a, QEMU_CLOCK_VIRTUAL, SCALE_NS, nest_cb, &n);
    timer_mod_ns(&a, base + 10);
    qemu_clock_advance_virtual_time(base + 10);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    CHECK_EQ(n.nested_polls, 1);
    CHECK_EQ(n.nested_progress, 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);

    /* With another timer due at the same time: each fires exactly once,
     * whichever poll runs the second one. */
    n.count = 0;
    n.nested_polls = 0;
    n.other_count = &other;
    aio_timer_init(ctx, &b, QEMU_CLOCK_VIRTUAL, SCALE_NS, tcount_cb, &other);
    base = vnow();
    timer_mod_ns(&a, base + 10);
    timer_mod_ns(&b, base + 10);
    qemu_clock_advance_virtual_time(base + 10);
    CHECK(aio_poll(ctx, false));
    drain(ctx);
    CHECK_EQ(n.count, 1);
    CHECK_EQ(other, 1);
    printf("#   nested poll made progress: %d, saw the other timer run: %d\n",
           n.nested_progress, n.other_seen);
    CHECK(n.nested_progress == n.other_seen);

    timer_deinit(&a);
    timer_deinit(&b);
    aio_context_unref(ctx);
}

/* Timers due together with the one whose callback runs are still armed
 * and due inside that callback: the queries say so, aio_compute_timeout
 * is 0, and a nested aio_poll runs them (the nested call runs other
 * ready work), each once. With 1 and with 40 other timers. */
#define NEST_MAX_OTHERS 40

typedef struct {
    AioContext *ctx;
    QEMUTimer others[NEST_MAX_OTHERS];
    int counts[NEST_MAX_OTHERS];
    int n_others;
    int64_t deadline;
    int first_count;
    bool first_pending, last_pending, last_expired;
    int64_t first_expire, last_expire;
    int64_t timeout_in_cb;
    int nested_progress;
    int others_run_in_cb;
} NestDue;

static int nest_due_sum(NestDue *nd)
{
    int i, sum = 0;

    for (i = 0; i < nd->n_others; i++) {
        sum += nd->counts[i];
    }
    return sum;
}

static void nest_due_first_cb(void *opaque)
{
    NestDue *nd = opaque;
    QEMUTimer *last = &nd->others[nd->n_others - 1];
    int i;

    nd->first_count++;
    nd->first_pending = timer_pending(&nd->others[0]);
    nd->first_expire = timer_expire_time_ns(&nd->others[0]);
    nd->last_pending = timer_pending(last);
    nd->last_expire = timer_expire_time_ns(last);
    nd->last_expired = timer_expired(last, vnow());
    nd->timeout_in_cb = aio_compute_timeout(nd->ctx);
    for (i = 0; i < 1000 && nest_due_sum(nd) < nd->n_others; i++) {
        nd->nested_progress += aio_poll(nd->ctx, false);
    }
    nd->others_run_in_cb = nest_due_sum(nd);
}

static void nest_due_other_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_timer_due_timers_visible_and_run_in_nested_poll(void)
{
    static const int sizes[] = { 1, NEST_MAX_OTHERS };
    size_t z;

    for (z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        AioContext *ctx = new_ctx();
        NestDue *nd = calloc(1, sizeof(*nd));
        QEMUTimer first;
        int i;

        REQUIRE(nd != NULL);
        nd->ctx = ctx;
        nd->n_others = sizes[z];
        nd->deadline = vnow() + 10;
        aio_timer_init(ctx, &first, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                       nest_due_first_cb, nd);
        timer_mod_ns(&first, nd->deadline);
        for (i = 0; i < nd->n_others; i++) {
            aio_timer_init(ctx, &nd->others[i], QEMU_CLOCK_VIRTUAL, SCALE_NS,
                           nest_due_other_cb, &nd->counts[i]);
            timer_mod_ns(&nd->others[i], nd->deadline);
        }
        qemu_clock_advance_virtual_time(nd->deadline);
        CHECK(aio_poll(ctx, false));
        drain(ctx);
        printf("#   %d other timers: %d ran in the nested polls; in the "
               "callback: pending %d/%d, expire %lld/%lld, timeout %lld\n",
               nd->n_others, nd->others_run_in_cb, nd->first_pending,
               nd->last_pending, (long long)nd->first_expire,
               (long long)nd->last_expire, (long long)nd->timeout_in_cb);
        CHECK_EQ(nd->first_count, 1);
        CHECK(nd->first_pending);
        CHECK(nd->last_pending);
        CHECK_EQ(nd->first_expire, nd->deadline);
        CHECK_EQ(nd->last_expire, nd->deadline);
        CHECK(nd->last_expired);
        CHECK_EQ(nd->timeout_in_cb, 0);
        CHECK_EQ(nd->others_run_in_cb, nd->n_others);
        CHECK(nd->nested_progress > 0);
        for (i = 0; i < nd->n_others; i++) {
            CHECK_EQ(nd->counts[i], 1);     /* once, nested or not */
            timer_deinit(&nd->others[i]);
        }
        timer_deinit(&first);
        free(nd);
        aio_context_unref(ctx);
    }
}

/* A callback arms timers that are already due: they take their place in
 * deadline order among the timers still waiting in this aio_poll. */
static int armcb_log[16];
static int armcb_logged;
static QEMUTimer armcb_t[6];        /* A B C X Y Z */
static int64_t armcb_base;

static void armcb_cb(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    if (armcb_logged < 16) {
        armcb_log[armcb_logged] = id;
    }
    armcb_logged++;
    if (id == 0) {                              /* A */
        timer_mod_ns(&armcb_t[3], armcb_base + 15); /* X: before B */
        timer_mod_ns(&armcb_t[4], armcb_base + 20); /* Y: tie, after C */
        timer_mod_ns(&armcb_t[5], armcb_base + 25); /* Z: not due */
    }
}

static void test_timer_armed_in_callback_keeps_deadline_order(void)
{
    AioContext *ctx = new_ctx();
    static const int expected[] = { 0, 3, 1, 2, 4 };   /* A X B C Y */
    int i;

    armcb_logged = 0;
    armcb_base = vnow();
    for (i = 0; i < 6; i++) {
        aio_timer_init(ctx, &armcb_t[i], QEMU_CLOCK_VIRTUAL, SCALE_NS,
                       armcb_cb, (void *)(intptr_t)i);
    }
    timer_mod_ns(&armcb_t[0], armcb_base + 10);
    timer_mod_ns(&armcb_t[1], armcb_base + 20);
    timer_mod_ns(&armcb_t[2], armcb_base + 20);
    qemu_clock_advance_virtual_time(armcb_base + 20);
    CHECK(aio_poll(ctx, false));
    drain(ctx);
    printf("#   order:");
    for (i = 0; i < armcb_logged && i < 16; i++) {
        printf(" %c", "ABCXYZ"[armcb_log[i]]);
    }
    printf(" (expected A X B C Y)\n");
    CHECK_EQ(armcb_logged, 5);
    for (i = 0; i < 5 && i < armcb_logged; i++) {
        CHECK_EQ(armcb_log[i], expected[i]);
    }
    CHECK(timer_pending(&armcb_t[5]));
    qemu_clock_advance_virtual_time(armcb_base + 25);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(armcb_logged, 6);
    for (i = 0; i < 6; i++) {
        timer_deinit(&armcb_t[i]);
    }
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* These cases drive QEMU_CLOCK_VIRTUAL themselves. */
    qemu_clock_take_over_virtual();

    RUN(test_timer_free_self_in_callback);
    RUN(test_timer_del_self_in_callback);
    RUN(test_timer_del_other_in_callback);
    RUN(test_timer_rearm_self_in_callback);
    RUN(test_timer_nested_poll_in_callback);
    RUN(test_timer_due_timers_visible_and_run_in_nested_poll);
    RUN(test_timer_armed_in_callback_keeps_deadline_order);
    return test_done();
}
