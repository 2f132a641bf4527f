/*
 * test-timer-heap.c - the timer heap under in-place moves, one thread:
 * heap order after many re-arms up and down (checked after every
 * operation against the list's invariants, then by the firing order
 * against a reference model), equal deadlines after a re-arm (a re-armed
 * timer goes after the timers armed before it for the same deadline,
 * whatever direction it came from), re-arms that land where the timer
 * already is (no other timer moves), re-arms of the root, anticipation,
 * scales and saturation on moved timers.
 *
 * Deadlines are on QEMU_CLOCK_REALTIME: far in the past (small values,
 * all due, so one aio_poll() fires them all in heap order) or far ahead
 * (never due during the test). No sleeping, no clock driving.
 *
 * The cross-thread side of re-arming (the owner's lock-free path, its
 * revocation, wake-ups) is tests/aio/test-timer-bias.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "aio-test.h"
#include "../../src/timer-internal.h"

#define FAR_NS (3600LL * 1000000000LL)      /* an hour ahead */

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static QEMUTimerList *rt_list(AioContext *ctx)
{
    return aio_get_timer_list_group(ctx)->tl[QEMU_CLOCK_REALTIME];
}

/* Checks the list's invariants; prints what broke. */
static bool heap_ok(AioContext *ctx, const char *when)
{
    char why[256];

    if (!aioloop__timerlist_check(rt_list(ctx), why, sizeof(why))) {
        printf("#   heap broken %s: %s\n", when, why);
        return false;
    }
    return true;
}

/* Firing order: each callback appends its timer's number. */
typedef struct {
    int *order;
    int n;
} Fired;

static Fired fired;

typedef struct {
    int id;
} Tag;

static void record_cb(void *opaque)
{
    fired.order[fired.n++] = ((Tag *)opaque)->id;
}

/* ------------------------------------------------------------------ */
/* Many random moves, checked against a model                          */

#define RND_N       2000
#define RND_OPS     60000
#define RND_SPAN    64              /* past deadlines 1..64: many ties */

typedef struct {
    int64_t deadline;               /* -1: not armed */
    uint64_t seq;                   /* model's arm order */
} ModelTimer;

static ModelTimer model[RND_N];
static uint64_t model_seq;

/* A deadline for operation @op: mostly past (fires), some far ahead
 * (stays), some next to the current one (small moves), some equal. */
static int64_t pick_deadline(int64_t now, int64_t cur)
{
    switch (rng() % 8) {
    case 0:
        return now + FAR_NS + (int64_t)(rng() % 1000);
    case 1:
        return cur > 0 ? cur : 1;                       /* same */
    case 2:
        return cur > 1 && cur < RND_SPAN ? cur + 1 : 2; /* just later */
    case 3:
        return cur > 1 && cur <= RND_SPAN ? cur - 1 : 1; /* just earlier */
    default:
        return 1 + (int64_t)(rng() % RND_SPAN);
    }
}

static int cmp_model(const void *a, const void *b)
{
    const ModelTimer *x = &model[*(const int *)a];
    const ModelTimer *y = &model[*(const int *)b];

    if (x->deadline != y->deadline) {
        return x->deadline < y->deadline ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void test_random_moves_keep_heap_order(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer *t = calloc(RND_N, sizeof(*t));
    Tag *tags = calloc(RND_N, sizeof(*tags));
    int *expect = calloc(RND_N, sizeof(*expect));
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    int nexpect = 0, i, op;
    bool ok = true;

    REQUIRE(t && tags && expect);
    fired = (Fired) { .order = calloc(RND_N, sizeof(int)) };
    REQUIRE(fired.order);
    rng_state = 0x68656170ull;          /* "heap" */
    printf("#   seed %#llx, %d timers, %d operations\n",
           (unsigned long long)rng_state, RND_N, RND_OPS);
    model_seq = 0;
    for (i = 0; i < RND_N; i++) {
        tags[i].id = i;
        model[i] = (ModelTimer) { .deadline = -1 };
        aio_timer_init(ctx, &t[i], QEMU_CLOCK_REALTIME, SCALE_NS, record_cb,
                       &tags[i]);
    }
    for (op = 0; op < RND_OPS && ok; op++) {
        int k = (int)(rng() % RND_N);
        ModelTimer *m = &model[k];
        int64_t d = pick_deadline(now, m->deadline);
        unsigned kind = (unsigned)(rng() % 16);

        if (kind == 0) {
            timer_del(&t[k]);
            m->deadline = -1;
        } else if (kind == 1) {
            /* Anticipate: moves only earlier (or arms). */
            timer_mod_anticipate_ns(&t[k], d);
            if (m->deadline < 0 || d < m->deadline) {
                *m = (ModelTimer) { .deadline = d, .seq = model_seq++ };
            }
        } else {
            timer_mod_ns(&t[k], d);
            *m = (ModelTimer) { .deadline = d, .seq = model_seq++ };
        }
        if (timer_expire_time_ns(&t[k]) != m->deadline) {
            printf("#   op %d: timer %d reads %lld, model %lld\n", op, k,
                   (long long)timer_expire_time_ns(&t[k]),
                   (long long)m->deadline);
            ok = false;
        }
        if (op % 7 == 0 || op > RND_OPS - 50) {
            char when[64];

            snprintf(when, sizeof(when), "after operation %d", op);
            ok = ok && heap_ok(ctx, when);
        }
        if (op % 4096 == 0) {
            test_progress();
        }
    }
    CHECK(ok);

    /* Every past timer fires, in (deadline, arm order). */
    for (i = 0; i < RND_N; i++) {
        if (model[i].deadline >= 0 && model[i].deadline <= RND_SPAN) {
            expect[nexpect++] = i;
        }
    }
    qsort(expect, nexpect, sizeof(*expect), cmp_model);
    aio_poll(ctx, false);
    CHECK_EQ(fired.n, nexpect);
    for (i = 0; i < nexpect && i < fired.n; i++) {
        if (fired.order[i] != expect[i]) {
            printf("#   firing %d: timer %d (%lld, seq %llu), expected %d "
                   "(%lld, seq %llu)\n", i, fired.order[i],
                   (long long)model[fired.order[i]].deadline,
                   (unsigned long long)model[fired.order[i]].seq, expect[i],
                   (long long)model[expect[i]].deadline,
                   (unsigned long long)model[expect[i]].seq);
            CHECK(0);
            break;
        }
    }
    CHECK(heap_ok(ctx, "after firing"));
    /* The far ones are still armed, the others not. */
    for (i = 0; i < RND_N; i++) {
        CHECK_EQ(timer_pending(&t[i]), model[i].deadline > RND_SPAN);
        timer_deinit(&t[i]);
    }
    aio_context_unref(ctx);
    free(fired.order);
    free(expect);
    free(tags);
    free(t);
}

/* ------------------------------------------------------------------ */
/* Re-arms that land in place                                          */

#define IP_N 40

/*
 * Timers armed with increasing deadlines never move, so timer i sits at
 * heap index 3 + i (the root is 3; the children of index k are 4k - 8 to
 * 4k - 5). Timer 2 (index 5) has the root (timer 0) as its parent and
 * timers 9..12 (indices 12..15) as its children.
 */
static void arm_increasing(AioContext *ctx, QEMUTimer *t, Tag *tags)
{
    for (int i = 0; i < IP_N; i++) {
        tags[i].id = i;
        aio_timer_init(ctx, &t[i], QEMU_CLOCK_REALTIME, SCALE_NS, record_cb,
                       &tags[i]);
        timer_mod_ns(&t[i], 100 * (i + 1));
    }
}

static bool indices_are(QEMUTimer *t, int moved, int moved_index)
{
    for (int i = 0; i < IP_N; i++) {
        int want = i == moved ? moved_index : 3 + i;

        if (t[i].heap_index != want) {
            printf("#   timer %d at index %d, expected %d\n", i,
                   t[i].heap_index, want);
            return false;
        }
    }
    return true;
}

static void test_rearm_in_place(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer t[IP_N];
    Tag tags[IP_N];
    int order[IP_N];

    fired = (Fired) { .order = order };
    arm_increasing(ctx, t, tags);
    CHECK(indices_are(t, -1, 0));
    CHECK(heap_ok(ctx, "after the arms"));

    /* Later, still before every child (timer 9 is at 1000): stays. */
    timer_mod_ns(&t[2], 999);
    CHECK(indices_are(t, -1, 0));
    /* Earlier, still after the parent (timer 0 at 100): stays. */
    timer_mod_ns(&t[2], 101);
    CHECK(indices_are(t, -1, 0));
    /* Equal to the parent's: stays below it (the parent came first). */
    timer_mod_ns(&t[2], 100);
    CHECK(indices_are(t, -1, 0));
    /* A leaf (timer 30, index 33, parent index 10 = timer 7 at 800),
     * later and earlier within its window: stays. */
    timer_mod_ns(&t[30], 5000);
    CHECK(indices_are(t, -1, 0));
    timer_mod_ns(&t[30], 801);
    CHECK(indices_are(t, -1, 0));
    CHECK(heap_ok(ctx, "after the moves in place"));
    timer_mod_ns(&t[30], 3100);     /* back where it was */
    timer_mod_ns(&t[2], 300);
    CHECK(heap_ok(ctx, "after moving back"));

    /* Equal to a child's (timer 9 at 1000, armed first): passes it. */
    timer_mod_ns(&t[2], 1000);
    CHECK_EQ(t[9].heap_index, 5);
    CHECK(t[2].heap_index != 5);
    CHECK(heap_ok(ctx, "after passing an equal child"));
    /* Before the root: becomes the root. */
    timer_mod_ns(&t[20], 50);
    CHECK_EQ(t[20].heap_index, 3);
    CHECK(heap_ok(ctx, "after moving to the root"));

    aio_poll(ctx, false);
    CHECK_EQ(fired.n, IP_N);
    /* 20 (50), 0 (100), 1 (200), 3 (400) ... 8 (900), 9 (1000), 2 (1000,
     * re-armed after 9 was armed), 10 (1100) ... */
    if (fired.n == IP_N) {
        CHECK_EQ(order[0], 20);
        CHECK_EQ(order[1], 0);
        CHECK_EQ(order[2], 1);
        CHECK_EQ(order[3], 3);
        CHECK_EQ(order[8], 8);
        CHECK_EQ(order[9], 9);
        CHECK_EQ(order[10], 2);
        CHECK_EQ(order[11], 10);
    }
    for (int i = 0; i < IP_N; i++) {
        timer_deinit(&t[i]);
    }
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Equal deadlines after a re-arm                                      */

#define TIE_N 3

/* Arms A, B, C (timers 0..2) at the given deadlines, in that order, runs
 * @moves, fires, and compares the order with @want (a string of ids). */
typedef void MovesFn(QEMUTimer *t);

static void tie_case(const int64_t deadline[TIE_N], MovesFn *moves,
                     const char *want, const char *what)
{
    AioContext *ctx = new_ctx();
    QEMUTimer t[TIE_N];
    Tag tags[TIE_N];
    int order[TIE_N];
    char got[TIE_N + 1] = "";

    fired = (Fired) { .order = order };
    for (int i = 0; i < TIE_N; i++) {
        tags[i].id = i;
        aio_timer_init(ctx, &t[i], QEMU_CLOCK_REALTIME, SCALE_NS, record_cb,
                       &tags[i]);
        timer_mod_ns(&t[i], deadline[i]);
    }
    moves(t);
    CHECK(heap_ok(ctx, what));
    aio_poll(ctx, false);
    for (int i = 0; i < fired.n && i < TIE_N; i++) {
        got[i] = (char)('A' + order[i]);
    }
    got[fired.n < TIE_N ? fired.n : TIE_N] = '\0';
    if (strcmp(got, want) != 0) {
        printf("#   %s: fired %s, expected %s\n", what, got, want);
        CHECK(0);
    }
    for (int i = 0; i < TIE_N; i++) {
        timer_deinit(&t[i]);
    }
    aio_context_unref(ctx);
}

static void rearm_a_same(QEMUTimer *t)
{
    timer_mod_ns(&t[0], 10);            /* A is the root */
}

static void rearm_b_same(QEMUTimer *t)
{
    timer_mod_ns(&t[1], 10);            /* B below the root */
}

static void b_away_and_back(QEMUTimer *t)
{
    timer_mod_ns(&t[1], 11);
    timer_mod_ns(&t[1], 10);
}

static void c_earlier_into_group(QEMUTimer *t)
{
    timer_mod_ns(&t[2], 10);            /* from 20 down to the tie */
}

static void a_later_into_group(QEMUTimer *t)
{
    timer_mod_ns(&t[0], 10);            /* from 5 up to the tie */
}

static void anticipate_keeps_order(QEMUTimer *t)
{
    timer_mod_anticipate_ns(&t[0], 10); /* no earlier: no re-arm */
    timer_mod_anticipate_ns(&t[1], 12); /* later: no re-arm */
}

static void deleted_and_rearmed(QEMUTimer *t)
{
    timer_del(&t[0]);
    timer_mod_ns(&t[0], 10);
}

static void test_ties_after_rearm(void)
{
    static const int64_t same[TIE_N] = { 10, 10, 10 };
    static const int64_t c_later[TIE_N] = { 10, 10, 20 };
    static const int64_t a_earlier[TIE_N] = { 5, 10, 10 };

    tie_case(same, rearm_a_same, "BCA", "A re-armed to its own deadline");
    tie_case(same, rearm_b_same, "ACB", "B re-armed to its own deadline");
    tie_case(same, b_away_and_back, "ACB", "B later and back");
    tie_case(c_later, c_earlier_into_group, "ABC", "C earlier to the tie");
    tie_case(a_earlier, a_later_into_group, "BCA", "A later to the tie");
    tie_case(same, anticipate_keeps_order, "ABC", "anticipate, no move");
    tie_case(same, deleted_and_rearmed, "BCA", "A deleted and re-armed");
}

/* ------------------------------------------------------------------ */
/* The root, scales and saturation on moved timers                     */

static void test_rearm_root_and_scales(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimerList *tl = rt_list(ctx);
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    QEMUTimer root, other, ms;
    Tag tags[3] = { { 0 }, { 1 }, { 2 } };
    int order[3];

    fired = (Fired) { .order = order };
    aio_timer_init(ctx, &root, QEMU_CLOCK_REALTIME, SCALE_NS, record_cb,
                   &tags[0]);
    aio_timer_init(ctx, &other, QEMU_CLOCK_REALTIME, SCALE_NS, record_cb,
                   &tags[1]);
    aio_timer_init(ctx, &ms, QEMU_CLOCK_REALTIME, SCALE_MS, record_cb,
                   &tags[2]);
    timer_mod_ns(&root, now + FAR_NS);
    timer_mod_ns(&other, now + 2 * FAR_NS);
    CHECK_EQ(root.heap_index, 3);
    /* The root, later but before the other: stays, first deadline moves. */
    timer_mod_ns(&root, now + FAR_NS + 1000);
    CHECK_EQ(root.heap_index, 3);
    CHECK(timerlist_deadline_ns(tl) > FAR_NS / 2);
    CHECK(heap_ok(ctx, "after the root moved later"));
    /* Past the other: the other becomes the root. */
    timer_mod_ns(&root, now + 3 * FAR_NS);
    CHECK_EQ(other.heap_index, 3);
    CHECK(timerlist_deadline_ns(tl) > FAR_NS);
    CHECK(heap_ok(ctx, "after the root moved past the other"));
    /* Saturation: a millisecond timer at INT64_MAX ms never expires. */
    timer_mod(&ms, INT64_MAX);
    CHECK_EQ(timer_expire_time_ns(&ms), INT64_MAX);
    /* Moved from there to the past (1 ms since boot): fires first. */
    timer_mod(&ms, 1);
    CHECK_EQ(timer_expire_time_ns(&ms), 1000000);
    CHECK_EQ(ms.heap_index, 3);
    /* A negative time is the past too. */
    timer_mod_ns(&root, -5);
    CHECK_EQ(timer_expire_time_ns(&root), 0);
    CHECK_EQ(root.heap_index, 3);
    CHECK(heap_ok(ctx, "after the moves to the past"));
    CHECK_EQ(timerlist_deadline_ns(tl), 0);
    aio_poll(ctx, false);
    CHECK_EQ(fired.n, 2);
    if (fired.n == 2) {
        CHECK_EQ(order[0], 0);
        CHECK_EQ(order[1], 2);
    }
    /* Back to INT64_MAX: armed, never due, not a deadline to wait for
     * (the other one is). */
    timer_mod(&ms, INT64_MAX / 2);
    CHECK_EQ(timer_expire_time_ns(&ms), INT64_MAX);
    timer_del(&other);
    CHECK(timer_pending(&ms));
    CHECK(timerlist_has_timers(tl));
    CHECK(heap_ok(ctx, "with only a timer at INT64_MAX"));
    timer_deinit(&root);
    timer_deinit(&other);
    timer_deinit(&ms);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    RUN(test_random_moves_keep_heap_order);
    RUN(test_rearm_in_place);
    RUN(test_ties_after_rearm);
    RUN(test_rearm_root_and_scales);
    return test_done();
}
