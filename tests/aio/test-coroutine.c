/*
 * test-coroutine.c - coroutines on one thread: enter/yield ordering,
 * nesting (yield returns to whoever entered), qemu_coroutine_self /
 * qemu_in_coroutine / qemu_coroutine_entered / enter_if_inactive,
 * recycling through the pool, 10,000 live coroutines, deep stacks,
 * aio_co_wake / aio_co_schedule / aio_co_enter from the loop, a long
 * chain of wake-ups (entered in a loop, not nested), CoMutex
 * (contention, FIFO hand-over), CoQueue (order, wait with a lock),
 * qemu_co_sleep_ns on the virtual and real clocks, yield_until_fd_*,
 * the FPU control words kept per coroutine (x86-64), and death tests
 * (forked): the stack guard page, entering a running coroutine,
 * scheduling a coroutine twice.
 *
 * Unless a case says otherwise coroutines are entered from the main
 * thread, whose current context is the main loop's (qemu_init_main_loop()
 * runs first in main()), so they belong to qemu_get_aio_context().
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "aio-test.h"


#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static AioContext *main_ctx;

/* A trace of numbered steps, to check the order things ran in. */
typedef struct {
    int steps[64];
    int n;
} Trace;

static void trace_add(Trace *t, int step)
{
    if (t->n < (int)(sizeof(t->steps) / sizeof(t->steps[0]))) {
        t->steps[t->n] = step;
    }
    t->n++;
}

/* Checks that @t holds exactly @n steps equal to @want. */
static bool trace_is(const Trace *t, const int *want, int n)
{
    int i;

    if (t->n != n) {
        printf("#   trace has %d steps, want %d:", t->n, n);
    } else {
        for (i = 0; i < n && t->steps[i] == want[i]; i++) {
            /* compare */
        }
        if (i == n) {
            return true;
        }
        printf("#   trace differs at step %d:", i);
    }
    for (i = 0; i < t->n && i < 64; i++) {
        printf(" %d", t->steps[i]);
    }
    printf("\n");
    return false;
}

#define TRACE_IS(t, ...) do { \
    static const int trace__want[] = { __VA_ARGS__ }; \
    CHECK(trace_is((t), trace__want, \
                   (int)(sizeof(trace__want) / sizeof(trace__want[0])))); \
} while (0)

/* Runs aio_poll(ctx, false) until it reports no progress (at most
 * @max times); returns how many calls made progress. */
static int drain_ctx(AioContext *ctx, int max)
{
    int n = 0;

    while (n < max && aio_poll(ctx, false)) {
        n++;
    }
    return n;
}

/* Polls @ctx (blocking) until *@flag is nonzero; the watchdog bounds it. */
static void poll_until(AioContext *ctx, const int *flag)
{
    while (!qatomic_read(flag)) {
        aio_poll(ctx, true);
    }
}

/* Number of mappings of this process (a leaked coroutine stack is at
 * least one). */
static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int c, n = 0;

    if (!f) {
        return -1;
    }
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
    }
    fclose(f);
    return n;
}

/* ------------------------------------------------------------------ */
/* Enter / yield                                                       */

typedef struct {
    Trace *trace;
    int magic;
    int seen_magic;
} StepArg;

static void coroutine_fn step_co(void *opaque)
{
    StepArg *a = opaque;

    a->seen_magic = a->magic;
    trace_add(a->trace, 1);
    qemu_coroutine_yield();
    trace_add(a->trace, 3);
    qemu_coroutine_yield();
    trace_add(a->trace, 5);
}

static void test_enter_yield_order(void)
{
    Trace t = { .n = 0 };
    StepArg a = { .trace = &t, .magic = 0x5a5a, .seen_magic = 0 };
    Coroutine *co = qemu_coroutine_create(step_co, &a);

    REQUIRE(co != NULL);
    trace_add(&t, 0);
    qemu_coroutine_enter(co);
    trace_add(&t, 2);
    qemu_coroutine_enter(co);
    trace_add(&t, 4);
    qemu_coroutine_enter(co);       /* returns: recycled */
    trace_add(&t, 6);
    TRACE_IS(&t, 0, 1, 2, 3, 4, 5, 6);
    CHECK_EQ(a.seen_magic, 0x5a5a);
}

/*
 * Nesting. outer enters inner; inner's yield returns to outer. Later the
 * main thread enters inner directly: then inner's yield returns to main,
 * not to outer. Steps:
 *   main enters outer -> 10, outer enters inner -> 20, inner yields ->
 *   11 (in outer), outer yields -> 1 (main), main enters inner -> 21,
 *   inner yields -> 2 (main), main enters outer -> 12, outer enters
 *   inner -> 22, inner returns -> 13 (outer), outer returns -> 3 (main).
 */
typedef struct {
    Trace t;
    Coroutine *outer, *inner;
    int errors;
} Nest;

static void coroutine_fn nest_inner(void *opaque)
{
    Nest *n = opaque;

    trace_add(&n->t, 20);
    n->errors += qemu_coroutine_self() != n->inner;
    n->errors += !qemu_coroutine_entered(n->inner);
    n->errors += !qemu_coroutine_entered(n->outer);   /* waits for us */
    qemu_coroutine_yield();
    trace_add(&n->t, 21);
    n->errors += qemu_coroutine_self() != n->inner;
    n->errors += qemu_coroutine_entered(n->outer);    /* yielded to main */
    qemu_coroutine_yield();
    trace_add(&n->t, 22);
    n->errors += !qemu_coroutine_entered(n->outer);
}

static void coroutine_fn nest_outer(void *opaque)
{
    Nest *n = opaque;

    trace_add(&n->t, 10);
    qemu_coroutine_enter(n->inner);
    trace_add(&n->t, 11);
    n->errors += qemu_coroutine_self() != n->outer;
    n->errors += qemu_coroutine_entered(n->inner);    /* it yielded */
    qemu_coroutine_yield();
    trace_add(&n->t, 12);
    qemu_coroutine_enter(n->inner);                   /* it returns */
    trace_add(&n->t, 13);
    n->errors += qemu_coroutine_self() != n->outer;
}

static void test_nested(void)
{
    Nest n = { .t = { .n = 0 }, .errors = 0 };

    n.outer = qemu_coroutine_create(nest_outer, &n);
    n.inner = qemu_coroutine_create(nest_inner, &n);
    REQUIRE(n.outer && n.inner && n.outer != n.inner);

    qemu_coroutine_enter(n.outer);
    trace_add(&n.t, 1);
    CHECK(qemu_coroutine_self() == NULL);
    CHECK(!qemu_coroutine_entered(n.outer));
    CHECK(!qemu_coroutine_entered(n.inner));
    qemu_coroutine_enter(n.inner);
    trace_add(&n.t, 2);
    CHECK(qemu_coroutine_self() == NULL);
    qemu_coroutine_enter(n.outer);
    trace_add(&n.t, 3);
    TRACE_IS(&n.t, 10, 20, 11, 1, 21, 2, 12, 22, 13, 3);
    CHECK_EQ(n.errors, 0);
}

/* Three levels deep: each yield returns one level up, and a coroutine
 * re-entered by a different caller yields to that caller. */
typedef struct {
    Trace t;
    Coroutine *co[3];
} Chain;

static Chain *chain;

static void coroutine_fn chain_co(void *opaque)
{
    int level = (int)(intptr_t)opaque;

    trace_add(&chain->t, 100 + level);
    switch (level) {
    case 0:
        qemu_coroutine_enter(chain->co[1]);     /* 1 yields to us */
        trace_add(&chain->t, 110);
        qemu_coroutine_enter(chain->co[1]);     /* 1 returns */
        trace_add(&chain->t, 120);
        break;
    case 1:
        qemu_coroutine_enter(chain->co[2]);     /* 2 yields to us */
        trace_add(&chain->t, 111);
        qemu_coroutine_yield();
        trace_add(&chain->t, 121);
        qemu_coroutine_enter(chain->co[2]);     /* 2 returns */
        trace_add(&chain->t, 131);
        break;
    default:
        qemu_coroutine_yield();
        trace_add(&chain->t, 130);
        break;
    }
}

static void test_nested_chain(void)
{
    Chain c = { .t = { .n = 0 } };
    int i;

    chain = &c;
    for (i = 0; i < 3; i++) {
        c.co[i] = qemu_coroutine_create(chain_co, (void *)(intptr_t)i);
    }
    qemu_coroutine_enter(c.co[0]);
    trace_add(&c.t, 0);
    TRACE_IS(&c.t, 100, 101, 102, 111, 110, 121, 130, 131, 120, 0);
    chain = NULL;
}

/* ------------------------------------------------------------------ */
/* self / in_coroutine / entered / enter_if_inactive                    */

typedef struct {
    Coroutine *co;
    Coroutine *self_seen[2];
    bool in_seen[2];
    bool entered_seen[2];
    int runs;
} SelfArg;

static void coroutine_fn self_co(void *opaque)
{
    SelfArg *a = opaque;

    a->self_seen[0] = qemu_coroutine_self();
    a->in_seen[0] = qemu_in_coroutine();
    a->entered_seen[0] = qemu_coroutine_entered(a->co);
    a->runs++;
    /* Entering ourselves "if inactive" must do nothing. */
    qemu_coroutine_enter_if_inactive(a->co);
    qemu_coroutine_yield();
    a->self_seen[1] = qemu_coroutine_self();
    a->in_seen[1] = qemu_in_coroutine();
    a->entered_seen[1] = qemu_coroutine_entered(a->co);
    a->runs++;
}

static void test_self_and_entered(void)
{
    SelfArg a = { .runs = 0 };

    CHECK(qemu_coroutine_self() == NULL);
    CHECK(!qemu_in_coroutine());

    a.co = qemu_coroutine_create(self_co, &a);
    REQUIRE(a.co != NULL);
    CHECK(!qemu_coroutine_entered(a.co));           /* before */
    qemu_coroutine_enter(a.co);
    CHECK_EQ(a.runs, 1);                            /* enter_if_inactive
                                                       did not re-run it */
    CHECK(a.self_seen[0] == a.co);
    CHECK(a.in_seen[0]);
    CHECK(a.entered_seen[0]);                       /* while running */
    CHECK(!qemu_coroutine_entered(a.co));           /* yielded */
    CHECK(qemu_coroutine_self() == NULL);
    CHECK(!qemu_in_coroutine());

    /* enter_if_inactive on a yielded coroutine enters it. */
    qemu_coroutine_enter_if_inactive(a.co);
    CHECK_EQ(a.runs, 2);
    CHECK(a.self_seen[1] == a.co);
    CHECK(a.in_seen[1]);
    CHECK(a.entered_seen[1]);
    CHECK(qemu_coroutine_self() == NULL);
    CHECK(!qemu_in_coroutine());
}

/* inner tries enter_if_inactive on outer, which is waiting for it. */
typedef struct {
    Coroutine *outer, *inner;
    int outer_runs, inner_runs;
} IfInactive;

static void coroutine_fn ifin_inner(void *opaque)
{
    IfInactive *s = opaque;

    s->inner_runs++;
    qemu_coroutine_enter_if_inactive(s->outer);     /* active: no-op */
    qemu_coroutine_enter_if_inactive(s->inner);     /* itself: no-op */
    s->inner_runs++;
}

static void coroutine_fn ifin_outer(void *opaque)
{
    IfInactive *s = opaque;

    s->outer_runs++;
    qemu_coroutine_enter(s->inner);
    s->outer_runs++;
    qemu_coroutine_yield();
    s->outer_runs++;
}

static void test_enter_if_inactive(void)
{
    IfInactive s = { .outer_runs = 0 };

    s.outer = qemu_coroutine_create(ifin_outer, &s);
    s.inner = qemu_coroutine_create(ifin_inner, &s);
    qemu_coroutine_enter(s.outer);
    CHECK_EQ(s.inner_runs, 2);
    CHECK_EQ(s.outer_runs, 2);
    qemu_coroutine_enter_if_inactive(s.outer);      /* yielded: enters */
    CHECK_EQ(s.outer_runs, 3);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

static void coroutine_fn count_co(void *opaque)
{
    int *n = opaque;

    (*n)++;
}

static void test_recycle(void)
{
    Coroutine *first, *co;
    int runs = 0, same = 0, maps_before, maps_after;
    int i;

    /* Warm the pool up, then create + enter + return many times: the
     * mappings must not grow (a leaked stack is a mapping). */
    for (i = 0; i < 100; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(count_co, &runs));
    }
    maps_before = count_maps();
    first = qemu_coroutine_create(count_co, &runs);
    qemu_coroutine_enter(first);
    for (i = 0; i < 1000; i++) {
        co = qemu_coroutine_create(count_co, &runs);
        same += co == first;
        qemu_coroutine_enter(co);
    }
    maps_after = count_maps();
    CHECK_EQ(runs, 1101);
    printf("#   mappings before %d, after %d; the same Coroutine came back "
           "%d times of 1000\n", maps_before, maps_after, same);
    CHECK(maps_before > 0);
    CHECK(maps_after - maps_before < 32);
}

/* 10,000 coroutines yielded at once, each with its own stack. */
/* TSan keeps a fiber (a thread state) per coroutine: fewer there. */
#define MANY (UNDER_TSAN ? 1000 : 10000)

typedef struct {
    int index;
    int order;              /* when it finished */
    bool stack_ok;
    Coroutine *co;
} ManyArg;

static int many_finished;

static void coroutine_fn many_co(void *opaque)
{
    ManyArg *a = opaque;
    volatile int local[16];
    int i;

    for (i = 0; i < 16; i++) {
        local[i] = a->index * 16 + i;
    }
    qemu_coroutine_yield();
    a->stack_ok = true;
    for (i = 0; i < 16; i++) {
        a->stack_ok &= local[i] == a->index * 16 + i;
    }
    a->order = many_finished++;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a;
    uintptr_t y = (uintptr_t)*(void *const *)b;

    return x < y ? -1 : x > y;
}

static void test_many_live(void)
{
    ManyArg *args = calloc(MANY, sizeof(*args));
    Coroutine **sorted = calloc(MANY, sizeof(*sorted));
    int i, dups = 0, bad_stack = 0, bad_order = 0;

    REQUIRE(args && sorted);
    many_finished = 0;
    for (i = 0; i < MANY; i++) {
        args[i].index = i;
        args[i].order = -1;
        args[i].co = qemu_coroutine_create(many_co, &args[i]);
        sorted[i] = args[i].co;
        qemu_coroutine_enter(args[i].co);
    }
    qsort(sorted, MANY, sizeof(*sorted), cmp_ptr);
    for (i = 1; i < MANY; i++) {
        dups += sorted[i] == sorted[i - 1];
    }
    CHECK_EQ(dups, 0);
    CHECK_EQ(many_finished, 0);
    for (i = MANY - 1; i >= 0; i--) {               /* reverse order */
        qemu_coroutine_enter(args[i].co);
    }
    CHECK_EQ(many_finished, MANY);
    for (i = 0; i < MANY; i++) {
        bad_stack += !args[i].stack_ok;
        bad_order += args[i].order != MANY - 1 - i;
    }
    CHECK_EQ(bad_stack, 0);
    CHECK_EQ(bad_order, 0);
    free(args);
    free(sorted);
}

/* Recursion with 1 KiB of locals a frame, 64 frames deep; the same
 * function on the thread's stack gives the expected sum. */
static unsigned long __attribute__((noinline)) deep(int depth)
{
    volatile unsigned char buf[1024];
    unsigned long sum = 0;
    size_t i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)(i * 31 + depth);
    }
    if (depth > 0) {
        sum = deep(depth - 1);
    }
    for (i = 0; i < sizeof(buf); i++) {
        sum += buf[i];
    }
    return sum;
}

/* One 64 KiB frame. */
static unsigned long __attribute__((noinline)) big_frame(int seed)
{
    volatile unsigned char buf[64 * 1024];
    unsigned long sum = 0;
    size_t i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)(i * 7 + seed);
    }
    for (i = 0; i < sizeof(buf); i++) {
        sum += buf[i];
    }
    return sum;
}

typedef struct {
    unsigned long deep_sum, big_sum;
} DeepArg;

static void coroutine_fn deep_co(void *opaque)
{
    DeepArg *a = opaque;

    a->deep_sum = deep(63);
    qemu_coroutine_yield();                 /* survives a switch too */
    a->big_sum = big_frame(5);
}

static void test_deep_stack(void)
{
    DeepArg a = { 0, 0 };
    Coroutine *co = qemu_coroutine_create(deep_co, &a);

    qemu_coroutine_enter(co);
    CHECK_EQ(a.deep_sum, deep(63));
    qemu_coroutine_enter(co);
    CHECK_EQ(a.big_sum, big_frame(5));
}

/* ------------------------------------------------------------------ */
/* AioContext integration                                              */

typedef struct {
    AioContext *ctx_seen[2];
    int step;
    bool in_loop_thread;
    Coroutine *co;
} WakeArg;

static void coroutine_fn wake_co(void *opaque)
{
    WakeArg *a = opaque;

    a->ctx_seen[0] = qemu_coroutine_get_aio_context(qemu_coroutine_self());
    a->step = 1;
    qemu_coroutine_yield();
    a->ctx_seen[1] = qemu_coroutine_get_aio_context(qemu_coroutine_self());
    a->step = 2;
}

static void wake_bh(void *opaque)
{
    WakeArg *a = opaque;

    aio_co_wake(a->co);
}

static void test_aio_co_wake_from_bh(void)
{
    WakeArg a = { .step = 0 };

    a.co = qemu_coroutine_create(wake_co, &a);
    qemu_coroutine_enter(a.co);
    REQUIRE(a.step == 1);
    CHECK(a.ctx_seen[0] == main_ctx);
    CHECK(qemu_coroutine_get_aio_context(a.co) == main_ctx);

    aio_bh_schedule_oneshot(main_ctx, wake_bh, &a);
    CHECK_EQ(a.step, 1);                    /* nothing runs before poll */
    CHECK(aio_poll(main_ctx, false));
    /* The BH runs in main_ctx's loop outside a coroutine: aio_co_wake
     * enters at once. */
    CHECK_EQ(a.step, 2);
    CHECK(a.ctx_seen[1] == main_ctx);
    CHECK(!aio_poll(main_ctx, false));
}

/* The same on a private context: the coroutine's first entry comes
 * through aio_co_schedule(ctx), so ctx is the context it last ran in. */
static void test_aio_co_wake_private_ctx(void)
{
    AioContext *ctx = new_ctx();
    WakeArg a = { .step = 0 };
    int i;

    a.co = qemu_coroutine_create(wake_co, &a);
    aio_co_schedule(ctx, a.co);
    CHECK_EQ(a.step, 0);
    CHECK(aio_poll(ctx, false));
    REQUIRE(a.step == 1);
    CHECK(a.ctx_seen[0] == ctx);
    CHECK(qemu_coroutine_get_aio_context(a.co) == ctx);

    aio_bh_schedule_oneshot(ctx, wake_bh, &a);
    for (i = 0; i < 10 && a.step == 1; i++) {
        aio_poll(ctx, false);
    }
    CHECK_EQ(a.step, 2);
    CHECK(a.ctx_seen[1] == ctx);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

typedef struct {
    AioContext *ctx;
    Trace t;
    int done;
} SchedArg;

static void coroutine_fn resched_self_co(void *opaque)
{
    SchedArg *a = opaque;

    trace_add(&a->t, 1);
    qemu_coroutine_yield();                 /* main schedules us */
    trace_add(&a->t, 3);
    aio_co_schedule(a->ctx, qemu_coroutine_self());
    qemu_coroutine_yield();                 /* we scheduled ourselves */
    trace_add(&a->t, 5);
    a->done = 1;
}

static void test_aio_co_schedule_same_ctx(void)
{
    SchedArg a = { .ctx = main_ctx, .t = { .n = 0 }, .done = 0 };
    Coroutine *co = qemu_coroutine_create(resched_self_co, &a);

    qemu_coroutine_enter(co);
    trace_add(&a.t, 2);
    aio_co_schedule(main_ctx, co);
    CHECK_EQ(a.t.n, 2);                     /* not before aio_poll */
    CHECK(aio_poll(main_ctx, false));       /* entering is progress */
    trace_add(&a.t, 4);
    CHECK(!a.done);
    CHECK(aio_poll(main_ctx, true));        /* scheduled: no sleep */
    CHECK(a.done);
    trace_add(&a.t, 6);
    TRACE_IS(&a.t, 1, 2, 3, 4, 5, 6);
    CHECK(!aio_poll(main_ctx, false));
}

/* aio_co_schedule() to a private context: the first entry comes from
 * that context's aio_poll(), which then owns the coroutine. */
static void coroutine_fn where_co(void *opaque)
{
    AioContext **seen = opaque;

    *seen = qemu_coroutine_get_aio_context(qemu_coroutine_self());
}

static void test_aio_co_schedule_private_ctx(void)
{
    AioContext *ctx = new_ctx();
    AioContext *seen = NULL;
    Coroutine *co = qemu_coroutine_create(where_co, &seen);

    aio_co_schedule(ctx, co);
    CHECK(!aio_poll(main_ctx, false));      /* not main_ctx's business */
    CHECK(seen == NULL);
    CHECK(aio_poll(ctx, false));
    CHECK(seen == ctx);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* aio_co_enter() from outside a coroutine of the loop's thread enters at
 * once; from a coroutine of the same context, after that one yields. */
typedef struct {
    Trace t;
    Coroutine *a, *b;
} EnterArg;

static void coroutine_fn enter_b(void *opaque)
{
    EnterArg *e = opaque;

    trace_add(&e->t, 20);
    qemu_coroutine_yield();
    trace_add(&e->t, 21);
}

static void coroutine_fn enter_a(void *opaque)
{
    EnterArg *e = opaque;

    trace_add(&e->t, 10);
    aio_co_enter(main_ctx, e->b);
    trace_add(&e->t, 11);                   /* b has not run yet */
    qemu_coroutine_yield();
    trace_add(&e->t, 12);
}

static void test_aio_co_enter(void)
{
    EnterArg e = { .t = { .n = 0 } };

    e.a = qemu_coroutine_create(enter_a, &e);
    e.b = qemu_coroutine_create(enter_b, &e);
    aio_co_enter(main_ctx, e.b);            /* at once */
    trace_add(&e.t, 1);
    qemu_coroutine_enter(e.a);              /* a yields, then b runs */
    trace_add(&e.t, 2);
    drain_ctx(main_ctx, 10);
    aio_co_enter(main_ctx, e.a);
    trace_add(&e.t, 3);
    TRACE_IS(&e.t, 20, 1, 10, 11, 21, 2, 12, 3);
}

/*
 * A chain of wake-ups: each coroutine creates the next, wakes it with
 * aio_co_enter() and returns, so each is entered by its enterer after the
 * previous one ends. Entered from a coroutine (1 MiB stack), the chain
 * must run in a loop, not one nested frame per link: CHAIN links of
 * nesting would overflow that stack.
 */
#define CHAIN 50000

typedef struct {
    int ran;
    int wrong_self;
    Coroutine *expected;    /* the link that must run next */
} ChainArg;

static void coroutine_fn chain_link(void *opaque)
{
    ChainArg *c = opaque;

    c->wrong_self += qemu_coroutine_self() != c->expected;
    if (++c->ran < CHAIN) {
        c->expected = qemu_coroutine_create(chain_link, c);
        aio_co_enter(main_ctx, c->expected);
    }
}

static void coroutine_fn chain_head(void *opaque)
{
    ChainArg *c = opaque;

    c->expected = qemu_coroutine_create(chain_link, c);
    qemu_coroutine_enter(c->expected);
}

static void test_wakeup_chain_runs_in_a_loop(void)
{
    ChainArg c = { 0 };

    qemu_coroutine_enter(qemu_coroutine_create(chain_head, &c));
    CHECK_EQ(c.ran, CHAIN);
    CHECK_EQ(c.wrong_self, 0);
}

/* ------------------------------------------------------------------ */
/* CoMutex                                                             */

#define MUTEX_COS   100
#define MUTEX_ITERS 10

typedef struct {
    CoMutex lock;
    int counter;            /* protected by lock; read, yield, write */
    int holders;
    int max_holders;
    int done;
    int next_id;
} MutexTest;

static void coroutine_fn mutex_co(void *opaque)
{
    MutexTest *m = opaque;
    /* Odd-numbered coroutines sleep 0 ns, the others reschedule
     * themselves: either way the loop re-enters them from a BH/timer. */
    int id = m->next_id++;
    int i;

    for (i = 0; i < MUTEX_ITERS; i++) {
        int v;

        qemu_co_mutex_lock(&m->lock);
        if (++m->holders > m->max_holders) {
            m->max_holders = m->holders;
        }
        v = m->counter;
        if (id % 2) {
            qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 0);
        } else {
            aio_co_schedule(main_ctx, qemu_coroutine_self());
            qemu_coroutine_yield();
        }
        m->counter = v + 1;
        m->holders--;
        qemu_co_mutex_unlock(&m->lock);
    }
    m->done++;
}

static void coroutine_fn lock_unlock_co(void *opaque)
{
    MutexTest *m = opaque;

    qemu_co_mutex_lock(&m->lock);
    m->counter++;
    qemu_co_mutex_unlock(&m->lock);
    m->done++;
}

static void test_co_mutex_contention(void)
{
    MutexTest m = { .counter = 0 };
    int i;

    qemu_co_mutex_init(&m.lock);
    for (i = 0; i < MUTEX_COS; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(mutex_co, &m));
    }
    CHECK(m.done < MUTEX_COS);
    while (m.done < MUTEX_COS) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(m.counter, MUTEX_COS * MUTEX_ITERS);
    CHECK_EQ(m.max_holders, 1);
    CHECK_EQ(m.holders, 0);

    /* Unlocked now: lock + unlock completes without yielding. */
    m.done = 0;
    qemu_coroutine_enter(qemu_coroutine_create(lock_unlock_co, &m));
    CHECK_EQ(m.done, 1);
    CHECK_EQ(m.counter, MUTEX_COS * MUTEX_ITERS + 1);
    drain_ctx(main_ctx, 100);
    qemu_co_mutex_destroy(&m.lock);
}

/* Waiters get the mutex in arrival order. */
typedef struct {
    CoMutex lock;
    Trace t;
    int done;
} FifoTest;

static FifoTest *fifo;

static void coroutine_fn fifo_holder(void *opaque)
{
    qemu_co_mutex_lock(&fifo->lock);
    trace_add(&fifo->t, 0);
    qemu_coroutine_yield();
    qemu_co_mutex_unlock(&fifo->lock);
    fifo->done++;
}

static void coroutine_fn fifo_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_co_mutex_lock(&fifo->lock);
    trace_add(&fifo->t, id);
    qemu_co_mutex_unlock(&fifo->lock);
    fifo->done++;
}

static void test_co_mutex_fifo(void)
{
    FifoTest f = { .t = { .n = 0 }, .done = 0 };
    Coroutine *holder;
    int i;

    fifo = &f;
    qemu_co_mutex_init(&f.lock);
    holder = qemu_coroutine_create(fifo_holder, NULL);
    qemu_coroutine_enter(holder);
    for (i = 1; i <= 6; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(fifo_waiter,
                                                   (void *)(intptr_t)i));
    }
    CHECK_EQ(f.done, 0);                    /* all wait for the holder */
    qemu_coroutine_enter(holder);
    while (f.done < 7) {
        aio_poll(main_ctx, true);
    }
    TRACE_IS(&f.t, 0, 1, 2, 3, 4, 5, 6);
    drain_ctx(main_ctx, 100);
    qemu_co_mutex_destroy(&f.lock);
    fifo = NULL;
}

/* ------------------------------------------------------------------ */
/* CoQueue                                                             */

typedef struct {
    CoQueue q;
    CoMutex lock;
    Trace t;
    int done;
    bool holding;           /* who holds lock, for the lock variant */
    int errors;
} QueueTest;

static QueueTest *qt;

static void coroutine_fn queue_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_co_queue_wait(&qt->q, NULL);
    trace_add(&qt->t, id);
    qt->done++;
}

static void coroutine_fn queue_next_from_co(void *opaque)
{
    int before = qt->t.n;

    /* Woken from a coroutine: the waiter runs after we yield/return. */
    qt->errors += !qemu_co_queue_next(&qt->q);
    qt->errors += qt->t.n != before;
    trace_add(&qt->t, 100);
}

static void test_co_queue_order(void)
{
    QueueTest s = { .t = { .n = 0 }, .done = 0, .errors = 0 };
    int i;

    qt = &s;
    qemu_co_queue_init(&s.q);
    CHECK(qemu_co_queue_empty(&s.q));
    CHECK(!qemu_co_queue_next(&s.q));       /* nobody to wake */
    for (i = 0; i < 7; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(queue_waiter,
                                                   (void *)(intptr_t)i));
    }
    CHECK(!qemu_co_queue_empty(&s.q));
    CHECK_EQ(s.t.n, 0);

    CHECK(qemu_co_queue_next(&s.q));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0);
    CHECK(qemu_co_queue_next(&s.q));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1);

    qemu_coroutine_enter(qemu_coroutine_create(queue_next_from_co, NULL));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1, 100, 2);
    CHECK_EQ(s.errors, 0);
    CHECK(!qemu_co_queue_empty(&s.q));

    qemu_co_queue_restart_all(&s.q);
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1, 100, 2, 3, 4, 5, 6);
    CHECK_EQ(s.done, 7);
    CHECK(qemu_co_queue_empty(&s.q));
    CHECK(!qemu_co_queue_next(&s.q));
    qemu_co_queue_restart_all(&s.q);        /* empty: harmless */
    qt = NULL;
}

/* qemu_co_queue_wait(q, lock) releases lock while waiting and holds it
 * again when it returns. */
static void coroutine_fn locked_waiter(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);
    qt->errors += qt->holding;
    qt->holding = true;
    trace_add(&qt->t, 1);
    qt->holding = false;
    qemu_co_queue_wait(&qt->q, &qt->lock);
    qt->errors += qt->holding;              /* we hold it again */
    qt->holding = true;
    trace_add(&qt->t, 4);
    qemu_coroutine_yield();                 /* still holding it */
    trace_add(&qt->t, 6);
    qt->holding = false;
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void coroutine_fn locked_other(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);          /* free: waiter released it */
    qt->errors += qt->holding;
    qt->holding = true;
    trace_add(&qt->t, 2);
    qemu_co_queue_next(&qt->q);             /* waiter needs the lock */
    trace_add(&qt->t, 3);
    qt->holding = false;
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void coroutine_fn locked_late(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);          /* waits for the waiter */
    qt->errors += qt->holding;
    trace_add(&qt->t, 7);
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void test_co_queue_wait_with_lock(void)
{
    QueueTest s = { .t = { .n = 0 }, .done = 0, .errors = 0 };
    Coroutine *waiter;

    qt = &s;
    qemu_co_queue_init(&s.q);
    qemu_co_mutex_init(&s.lock);
    waiter = qemu_coroutine_create(locked_waiter, NULL);
    qemu_coroutine_enter(waiter);           /* waits, lock released */
    CHECK(!qemu_co_queue_empty(&s.q));
    qemu_coroutine_enter(qemu_coroutine_create(locked_other, NULL));
    drain_ctx(main_ctx, 100);
    /* The waiter got the lock back after locked_other unlocked and
     * yielded while holding it. */
    TRACE_IS(&s.t, 1, 2, 3, 4);
    CHECK_EQ(s.done, 1);
    qemu_coroutine_enter(qemu_coroutine_create(locked_late, NULL));
    trace_add(&s.t, 5);
    qemu_coroutine_enter(waiter);
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 1, 2, 3, 4, 5, 6, 7);
    CHECK_EQ(s.done, 3);
    CHECK_EQ(s.errors, 0);
    CHECK(qemu_co_queue_empty(&s.q));
    qemu_co_mutex_destroy(&s.lock);
    qt = NULL;
}

/* ------------------------------------------------------------------ */
/* Sleeping                                                            */

typedef struct {
    QEMUClockType type;
    int64_t ns;
    int64_t start, end;     /* on the clock slept on */
    int done;
    Trace *trace;
    int id;
} SleepArg;

static void coroutine_fn sleep_co(void *opaque)
{
    SleepArg *a = opaque;

    a->start = qemu_clock_get_ns(a->type);
    qemu_co_sleep_ns(a->type, a->ns);
    a->end = qemu_clock_get_ns(a->type);
    if (a->trace) {
        trace_add(a->trace, a->id);
    }
    a->done = 1;
}

static void test_co_sleep_virtual(void)
{
    Trace t = { .n = 0 };
    SleepArg longer = { QEMU_CLOCK_VIRTUAL, 5 * SCALE_MS, 0, 0, 0, &t, 2 };
    SleepArg shorter = { QEMU_CLOCK_VIRTUAL, 2 * SCALE_MS, 0, 0, 0, &t, 1 };
    int64_t real0 = test_now_ns();
    int64_t v0 = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int i;

    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &longer));
    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &shorter));
    CHECK(!longer.done && !shorter.done);
    CHECK(longer.start == v0 && shorter.start == v0);

    /* The virtual clock stands still: nothing wakes. */
    for (i = 0; i < 5; i++) {
        aio_poll(main_ctx, false);
    }
    CHECK(!longer.done && !shorter.done);

    /* Just short of the first deadline. */
    qemu_clock_advance_virtual_time(v0 + 2 * SCALE_MS - 1);
    drain_ctx(main_ctx, 100);
    CHECK(!shorter.done);

    qemu_clock_advance_virtual_time(v0 + 2 * SCALE_MS);
    poll_until(main_ctx, &shorter.done);
    CHECK(!longer.done);
    CHECK(shorter.end >= v0 + 2 * SCALE_MS);

    qemu_clock_advance_virtual_time(v0 + 5 * SCALE_MS - 1);
    drain_ctx(main_ctx, 100);
    CHECK(!longer.done);
    qemu_clock_advance_virtual_time(v0 + 5 * SCALE_MS);
    poll_until(main_ctx, &longer.done);
    CHECK(longer.end >= v0 + 5 * SCALE_MS);
    TRACE_IS(&t, 1, 2);

    /* No real sleeping: 5 virtual ms took well under a real second. */
    CHECK(test_now_ns() - real0 < 1000LL * SCALE_MS);
    CHECK(!aio_poll(main_ctx, false));
}

static void test_co_sleep_realtime(void)
{
    SleepArg a = { QEMU_CLOCK_REALTIME, 3 * SCALE_MS, 0, 0, 0, NULL, 0 };
    int64_t t0 = test_now_ns();

    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &a));
    CHECK(!a.done);
    poll_until(main_ctx, &a.done);
    CHECK(a.end - a.start >= 3 * SCALE_MS);
    CHECK(test_now_ns() - t0 >= 3 * SCALE_MS);
    CHECK(test_now_ns() - t0 < 2000LL * SCALE_MS);
}

/* ------------------------------------------------------------------ */
/* yield_until_fd_readable / writable                                  */

typedef struct {
    int fd;
    int step;
    int got;
} FdArg;

static void coroutine_fn fd_reader_co(void *opaque)
{
    FdArg *a = opaque;

    a->step = 1;
    yield_until_fd_readable(a->fd);
    a->step = 2;
    a->got = drain_fd(a->fd);
    a->step = 3;
}

static void coroutine_fn fd_writer_co(void *opaque)
{
    FdArg *a = opaque;

    a->step = 1;
    yield_until_fd_writable(a->fd);
    a->step = 2;
    write_byte(a->fd);
    a->step = 3;
}

static void test_yield_until_fd(void)
{
    FdArg a = { .step = 0 };
    int p[2];
    int i;

    make_pipe(p);
    a.fd = p[0];
    qemu_coroutine_enter(qemu_coroutine_create(fd_reader_co, &a));
    CHECK_EQ(a.step, 1);
    for (i = 0; i < 5; i++) {
        aio_poll(main_ctx, false);
    }
    CHECK_EQ(a.step, 1);                    /* empty pipe: still waiting */
    write_byte(p[1]);
    write_byte(p[1]);
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(a.got, 2);
    /* The coroutine is gone: its fd handler must be too. */
    write_byte(p[1]);
    CHECK(!aio_poll(main_ctx, false));
    CHECK_EQ(drain_fd(p[0]), 1);

    /* Hang-up counts as readable. */
    a.step = 0;
    a.got = -1;
    qemu_coroutine_enter(qemu_coroutine_create(fd_reader_co, &a));
    CHECK_EQ(a.step, 1);
    close(p[1]);
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(a.got, 0);
    CHECK(!aio_poll(main_ctx, false));
    close(p[0]);

    /* An empty pipe is writable. */
    make_pipe(p);
    a.fd = p[1];
    a.step = 0;
    qemu_coroutine_enter(qemu_coroutine_create(fd_writer_co, &a));
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(drain_fd(p[0]), 1);
    CHECK(!aio_poll(main_ctx, false));
    close(p[0]);
    close(p[1]);
}

/* ------------------------------------------------------------------ */
/* FPU control state is per coroutine (x86-64)                         */

#if defined(__x86_64__)
#define MXCSR_RC_MASK   0x6000u
#define MXCSR_RC_UP     0x4000u
#define MXCSR_RC_ZERO   0x6000u
#define X87_RC_MASK     0x0c00u
#define X87_RC_UP       0x0800u
#define X87_RC_ZERO     0x0c00u

static unsigned get_mxcsr(void)
{
    unsigned v;

    __asm__ __volatile__("stmxcsr %0" : "=m"(v));
    return v;
}

static void set_mxcsr(unsigned v)
{
    __asm__ __volatile__("ldmxcsr %0" : : "m"(v));
}

static unsigned short get_x87cw(void)
{
    unsigned short v;

    __asm__ __volatile__("fnstcw %0" : "=m"(v));
    return v;
}

static void set_x87cw(unsigned short v)
{
    __asm__ __volatile__("fldcw %0" : : "m"(v));
}

/* Sets the rounding mode of both units (what fesetround() does). */
static void set_rounding(unsigned mxcsr_rc, unsigned short x87_rc)
{
    set_mxcsr((get_mxcsr() & ~MXCSR_RC_MASK) | mxcsr_rc);
    set_x87cw((unsigned short)((get_x87cw() & ~X87_RC_MASK) | x87_rc));
}

typedef struct {
    unsigned mxcsr_after;
    unsigned short x87_after;
} FpuArg;

static void coroutine_fn fpu_co(void *opaque)
{
    FpuArg *a = opaque;

    set_rounding(MXCSR_RC_UP, X87_RC_UP);
    qemu_coroutine_yield();
    a->mxcsr_after = get_mxcsr();
    a->x87_after = get_x87cw();
    /* Return with our mode set: the caller must get its own back. */
}

static void coroutine_fn fpu_probe_co(void *opaque)
{
    *(unsigned *)opaque = get_mxcsr();
}

static void test_fpu_control_preserved(void)
{
    unsigned mxcsr0 = get_mxcsr();
    unsigned short x870 = get_x87cw();
    FpuArg a = { 0, 0 };
    Coroutine *co = qemu_coroutine_create(fpu_co, &a);

    qemu_coroutine_enter(co);
    /* The coroutine's mode did not leak to us. */
    CHECK_EQ(get_mxcsr() & MXCSR_RC_MASK, mxcsr0 & MXCSR_RC_MASK);
    CHECK_EQ(get_x87cw() & X87_RC_MASK, x870 & X87_RC_MASK);

    /* Ours (toward zero) does not leak into it either. */
    set_rounding(MXCSR_RC_ZERO, X87_RC_ZERO);
    qemu_coroutine_enter(co);
    CHECK_EQ(a.mxcsr_after & MXCSR_RC_MASK, MXCSR_RC_UP);
    CHECK_EQ(a.x87_after & X87_RC_MASK, X87_RC_UP);
    CHECK_EQ(get_mxcsr() & MXCSR_RC_MASK, MXCSR_RC_ZERO);
    CHECK_EQ(get_x87cw() & X87_RC_MASK, X87_RC_ZERO);

    set_mxcsr(mxcsr0);
    set_x87cw(x870);

    /* A new coroutine, recycled from the one that ended with its own
     * mode set (fpu_co above), starts with ours (qemu_coroutine_create()
     * promises it; test-coroutine-abi.c tests it on every architecture). */
    {
        unsigned first_mxcsr = 0;
        Coroutine *next = qemu_coroutine_create(fpu_probe_co, &first_mxcsr);

        qemu_coroutine_enter(next);
        printf("#   a coroutine %s the finished one starts with MXCSR "
               "rounding %#x (ours %#x)\n",
               next == co ? "recycled from" : "created after",
               first_mxcsr & MXCSR_RC_MASK, mxcsr0 & MXCSR_RC_MASK);
        CHECK_EQ(first_mxcsr & MXCSR_RC_MASK, mxcsr0 & MXCSR_RC_MASK);
    }
}
#else
static void test_fpu_control_preserved(void)
{
    SKIP_CASE("x86-64 only");
}
#endif

/* ------------------------------------------------------------------ */
/* Death tests (forked)                                                */

typedef struct {
    int status;
    char err[8192];         /* the child's stderr, truncated */
} Child;

/* Runs fn() in a child with stderr captured; false if fork failed. */
static bool run_child(void (*fn)(void), Child *c)
{
    int p[2];
    pid_t pid;
    size_t len = 0;
    ssize_t n;
    char sink[4096];

    fflush(stdout);
    fflush(stderr);
    if (pipe(p) < 0) {
        return false;
    }
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };

        setrlimit(RLIMIT_CORE, &no_core);
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        alarm(10);
        fn();
        _exit(0);                           /* it survived */
    }
    close(p[1]);
    for (;;) {
        if (len < sizeof(c->err) - 1) {
            n = read(p[0], c->err + len, sizeof(c->err) - 1 - len);
        } else {
            n = read(p[0], sink, sizeof(sink));
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (len < sizeof(c->err) - 1) {
            len += (size_t)n;
        }
    }
    c->err[len] = '\0';
    close(p[0]);
    while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR) {
        /* retry */
    }
    return true;
}

/* Prints the first line of the child's stderr that contains @needle, or
 * the first line. */
static void print_child_line(const Child *c, const char *needle)
{
    const char *s = needle ? strstr(c->err, needle) : NULL;
    const char *start, *end;

    if (!s) {
        s = c->err;
    }
    start = s;
    while (start > c->err && start[-1] != '\n') {
        start--;
    }
    end = strchr(start, '\n');
    printf("#   child: %.*s\n", end ? (int)(end - start) : (int)strlen(start),
           start);
}

static volatile int overflow_limit = INT_MAX;

static unsigned long __attribute__((noinline)) recurse_forever(int depth)
{
    volatile unsigned char buf[256];    /* < a page: touches every page */
    unsigned long sum = 0;
    size_t i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)depth;
    }
    if (depth < overflow_limit) {
        sum = recurse_forever(depth + 1);
    }
    for (i = 0; i < sizeof(buf); i++) {
        sum += buf[i];
    }
    return sum;
}

static volatile unsigned long overflow_sink;

static void coroutine_fn overflow_co(void *opaque)
{
    overflow_sink = recurse_forever(0);
}

static void child_overflow(void)
{
    qemu_coroutine_enter(qemu_coroutine_create(overflow_co, NULL));
}

static void test_stack_overflow_hits_guard(void)
{
    Child c;

    REQUIRE(run_child(child_overflow, &c));
    if (WIFSIGNALED(c.status)) {
        printf("#   child killed by signal %d\n", WTERMSIG(c.status));
    } else {
        printf("#   child exited with status %d\n", WEXITSTATUS(c.status));
    }
    if (UNDER_ASAN) {
        /* ASan's SEGV handler reports the overflow and exits nonzero. */
        print_child_line(&c, "ERROR: AddressSanitizer");
        CHECK(WIFSIGNALED(c.status) ||
              (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
               strstr(c.err, "AddressSanitizer: stack-overflow") != NULL));
    } else if (UNDER_TSAN) {
        /* Not run under TSan by the suite; by hand, TSan's SEGV handler
         * reports the fault on the guard page and exits nonzero. */
        print_child_line(&c, "ERROR: ThreadSanitizer");
        CHECK(WIFSIGNALED(c.status) ||
              (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
               strstr(c.err, "ThreadSanitizer: stack-overflow") != NULL));
    } else {
        CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGSEGV);
    }
}

static void coroutine_fn enter_self_co(void *opaque)
{
    qemu_coroutine_enter(qemu_coroutine_self());
}

static void child_enter_running(void)
{
    qemu_coroutine_enter(qemu_coroutine_create(enter_self_co, NULL));
}

static void test_enter_running_aborts(void)
{
    Child c;

    REQUIRE(run_child(child_enter_running, &c));
    print_child_line(&c, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK(c.err[0] != '\0');                /* with a message */
}

static void coroutine_fn yield_once_co(void *opaque)
{
    qemu_coroutine_yield();
}

static void child_double_schedule(void)
{
    /* A private context: the child must not touch the parent's (their
     * epoll and eventfd are shared across fork). */
    AioContext *ctx = new_ctx();
    Coroutine *co = qemu_coroutine_create(yield_once_co, NULL);

    qemu_coroutine_enter(co);
    aio_co_schedule(ctx, co);
    aio_co_schedule(ctx, co);
}

static void test_double_schedule_aborts(void)
{
    Child c;

    REQUIRE(run_child(child_double_schedule, &c));
    print_child_line(&c, "aio_co_schedule");
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    /* The message names the first caller: aio_co_schedule. */
    CHECK(strstr(c.err, "aio_co_schedule") != NULL);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* QEMU_CLOCK_VIRTUAL follows host time unless taken over: these
     * cases drive it themselves (every case's process inherits this). */
    qemu_clock_take_over_virtual();
    if (qemu_init_main_loop(NULL) < 0) {
        test_skip_all("cannot create the main loop");
    }
    main_ctx = qemu_get_aio_context();

    RUN(test_enter_yield_order);
    RUN(test_nested);
    RUN(test_nested_chain);
    RUN(test_self_and_entered);
    RUN(test_enter_if_inactive);
    RUN(test_recycle);
    RUN(test_many_live);
    RUN(test_deep_stack);
    RUN(test_aio_co_wake_from_bh);
    RUN(test_aio_co_wake_private_ctx);
    RUN(test_aio_co_schedule_same_ctx);
    RUN(test_aio_co_schedule_private_ctx);
    RUN(test_aio_co_enter);
    RUN(test_wakeup_chain_runs_in_a_loop);
    RUN(test_co_mutex_contention);
    RUN(test_co_mutex_fifo);
    RUN(test_co_queue_order);
    RUN(test_co_queue_wait_with_lock);
    RUN(test_co_sleep_virtual);
    RUN(test_co_sleep_realtime);
    RUN(test_yield_until_fd);
    RUN(test_fpu_control_preserved);
    RUN(test_stack_overflow_hits_guard);
    RUN(test_enter_running_aborts);
    RUN(test_double_schedule_aborts);

    qemu_cleanup_main_loop();
    return test_done();
}
