/*
 * test-coroutine.c - coroutines on one thread: enter/yield ordering,
 * nesting (yield returns to whoever entered), qemu_coroutine_self /
 * qemu_in_coroutine / qemu_coroutine_entered / enter_if_inactive,
 * recycling through the pool, 10,000 live coroutines, deep stacks, and
 * the FPU control words kept per coroutine (x86-64). (With the loop:
 * test-coroutine-aio.c; CoMutex/CoQueue: test-coroutine-lock.c; misuse:
 * test-coroutine-death.c.)
 *
 * Unless a case says otherwise coroutines are entered from the main
 * thread, whose current context is the main loop's (coroutine_test_init()
 * runs first in main()), so they belong to qemu_get_aio_context().
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "coroutine-test.h"

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

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    coroutine_test_init();

    RUN(test_enter_yield_order);
    RUN(test_nested);
    RUN(test_nested_chain);
    RUN(test_self_and_entered);
    RUN(test_enter_if_inactive);
    RUN(test_recycle);
    RUN(test_many_live);
    RUN(test_deep_stack);
    RUN(test_fpu_control_preserved);
    return test_done();
}
