/*
 * test-coroutine-abi.c - what a coroutine switch must keep, checked on
 * the machine rather than trusted to the compiler:
 *  - every callee-saved register (x86-64: rbx rbp r12-r15; AArch64:
 *    x19-x29 and d8-d15) survives an enter, a yield, the end of a
 *    coroutine, and a yield whose enterer has woken coroutines to enter
 *    first (the switch's post-switch hook), on both sides;
 *  - the floating-point control state (rounding mode here) is per
 *    coroutine: what a coroutine sets stays with it, what its enterer
 *    sets stays with the enterer, also when the coroutine moves to an
 *    IOThread and back;
 *  - a new coroutine starts with its creator's rounding mode, taken at
 *    qemu_coroutine_create(), whether its stack is fresh or recycled from
 *    the pool after a coroutine that ended with another mode set.
 * The register cases need a hand-written helper per architecture and
 * skip elsewhere; the rest is portable <fenv.h>.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>
#include <aioloop/iothread.h>
#include <fenv.h>

#include "aio-test.h"


static AioContext *main_ctx;

/* ------------------------------------------------------------------ */
/* Callee-saved registers                                              */

/*
 * uint64_t regs_call(void (*fn)(void *), void *arg, uint64_t seed):
 * loads seed + 1, seed + 2, ... into the callee-saved registers, calls
 * fn(arg), and returns a mask with bit i set when the i-th register no
 * longer holds its value (x86-64: rbx rbp r12 r13 r14 r15; AArch64:
 * x19..x28, then x29, then d8..d15). It preserves the caller's values
 * itself, as a function must.
 */
uint64_t regs_call(void (*fn)(void *), void *arg, uint64_t seed);

#if defined(__x86_64__)
#define HAVE_REGS_CALL 1
#define REGS_COUNT 6
/* rcx = seed + k; bit b of eax if it differs from reg. */
#define X86_CHECK(reg, k, b) \
    "    leaq " #k "(%rdx), %rcx\n" \
    "    xorq %" #reg ", %rcx\n" \
    "    negq %rcx\n" \
    "    sbbl %ecx, %ecx\n" \
    "    andl $" #b ", %ecx\n" \
    "    orl %ecx, %eax\n"
__asm__(
    ".text\n"
    ".globl regs_call\n"
    ".type regs_call, @function\n"
    "regs_call:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    pushq %rdx\n"              /* the seed; the stack is now aligned */
    "    leaq 1(%rdx), %rbx\n"
    "    leaq 2(%rdx), %rbp\n"
    "    leaq 3(%rdx), %r12\n"
    "    leaq 4(%rdx), %r13\n"
    "    leaq 5(%rdx), %r14\n"
    "    leaq 6(%rdx), %r15\n"
    "    movq %rdi, %rax\n"
    "    movq %rsi, %rdi\n"
    "    call *%rax\n"
    "    movq (%rsp), %rdx\n"
    "    xorl %eax, %eax\n"
    X86_CHECK(rbx, 1, 0x1)
    X86_CHECK(rbp, 2, 0x2)
    X86_CHECK(r12, 3, 0x4)
    X86_CHECK(r13, 4, 0x8)
    X86_CHECK(r14, 5, 0x10)
    X86_CHECK(r15, 6, 0x20)
    "    popq %rdx\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size regs_call, .-regs_call\n"
);
#elif defined(__aarch64__)
#define HAVE_REGS_CALL 1
#define REGS_COUNT 19
#define A64_SET_X(reg, k)   "    add " #reg ", x2, #" #k "\n"
#define A64_SET_D(reg, k)   "    add x9, x2, #" #k "\n    fmov " #reg ", x9\n"
/* x10 = (reg != seed + k); x0 |= x10 << b */
#define A64_CHECK_X(reg, k, b) \
    "    add x9, x2, #" #k "\n" \
    "    cmp " #reg ", x9\n" \
    "    cset x10, ne\n" \
    "    orr x0, x0, x10, lsl #" #b "\n"
#define A64_CHECK_D(reg, k, b) \
    "    add x9, x2, #" #k "\n" \
    "    fmov x11, " #reg "\n" \
    "    cmp x11, x9\n" \
    "    cset x10, ne\n" \
    "    orr x0, x0, x10, lsl #" #b "\n"
__asm__(
    ".text\n"
    ".globl regs_call\n"
    ".type regs_call, %function\n"
    "regs_call:\n"
    "    stp x29, x30, [sp, #-176]!\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    str x2, [sp, #160]\n"
    A64_SET_X(x19, 1) A64_SET_X(x20, 2) A64_SET_X(x21, 3)
    A64_SET_X(x22, 4) A64_SET_X(x23, 5) A64_SET_X(x24, 6)
    A64_SET_X(x25, 7) A64_SET_X(x26, 8) A64_SET_X(x27, 9)
    A64_SET_X(x28, 10) A64_SET_X(x29, 11)
    A64_SET_D(d8, 12) A64_SET_D(d9, 13) A64_SET_D(d10, 14)
    A64_SET_D(d11, 15) A64_SET_D(d12, 16) A64_SET_D(d13, 17)
    A64_SET_D(d14, 18) A64_SET_D(d15, 19)
    "    mov x9, x0\n"
    "    mov x0, x1\n"
    "    blr x9\n"
    "    ldr x2, [sp, #160]\n"
    "    mov x0, #0\n"
    A64_CHECK_X(x19, 1, 0) A64_CHECK_X(x20, 2, 1) A64_CHECK_X(x21, 3, 2)
    A64_CHECK_X(x22, 4, 3) A64_CHECK_X(x23, 5, 4) A64_CHECK_X(x24, 6, 5)
    A64_CHECK_X(x25, 7, 6) A64_CHECK_X(x26, 8, 7) A64_CHECK_X(x27, 9, 8)
    A64_CHECK_X(x28, 10, 9) A64_CHECK_X(x29, 11, 10)
    A64_CHECK_D(d8, 12, 11) A64_CHECK_D(d9, 13, 12)
    A64_CHECK_D(d10, 14, 13) A64_CHECK_D(d11, 15, 14)
    A64_CHECK_D(d12, 16, 15) A64_CHECK_D(d13, 17, 16)
    A64_CHECK_D(d14, 18, 17) A64_CHECK_D(d15, 19, 18)
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp x29, x30, [sp], #176\n"
    "    ret\n"
    ".size regs_call, .-regs_call\n"
);
#endif

#ifdef HAVE_REGS_CALL
#define SEED_MAIN_1 0x1111000000000000ull
#define SEED_MAIN_2 0x2222000000000000ull
#define SEED_CO     0x3333000000000000ull

typedef struct {
    bool wake_first;            /* wake `other` before yielding */
    Coroutine *other;
    uint64_t co_mask;           /* the coroutine's registers after re-entry */
    bool other_ran;
} RegsArg;

static void enter_thunk(void *co)
{
    qemu_coroutine_enter(co);
}

static void yield_thunk(void *opaque)
{
    RegsArg *a = opaque;

    if (a->wake_first) {
        /* Queued behind us: our yield switches back through the hook,
         * which enters it before our enterer continues. */
        aio_co_enter(main_ctx, a->other);
    }
    qemu_coroutine_yield();
}

static void coroutine_fn other_co(void *opaque)
{
    RegsArg *a = opaque;

    /* Disturb what registers we can from C: a call and some floats. */
    volatile double x = 1.5;

    a->other_ran = x * 3.0 == 4.5;
}

static void coroutine_fn regs_co(void *opaque)
{
    RegsArg *a = opaque;

    a->co_mask = regs_call(yield_thunk, a, SEED_CO);
}

static void regs_case(bool wake_first)
{
    RegsArg a = { .wake_first = wake_first };
    Coroutine *co = qemu_coroutine_create(regs_co, &a);
    uint64_t first, second;

    a.other = qemu_coroutine_create(other_co, &a);
    /* Enter: the coroutine fills its registers with its own values and
     * yields (through the hook when wake_first). */
    first = regs_call(enter_thunk, co, SEED_MAIN_1);
    /* Enter again: it checks its values, and ends. */
    second = regs_call(enter_thunk, co, SEED_MAIN_2);
    CHECK_EQ(first, 0);
    CHECK_EQ(second, 0);
    CHECK_EQ(a.co_mask, 0);
    CHECK(!qemu_coroutine_entered(co));
    if (wake_first) {
        CHECK(a.other_ran);
    } else {
        qemu_coroutine_enter(a.other);      /* not to leak it */
    }
    printf("#   %d registers checked on each side\n", REGS_COUNT);
}

static void test_registers_survive_switches(void)
{
    regs_case(false);
}

static void test_registers_survive_hook(void)
{
    regs_case(true);
}
#else
static void test_registers_survive_switches(void)
{
    SKIP_CASE("no register probe for this architecture");
}

static void test_registers_survive_hook(void)
{
    SKIP_CASE("no register probe for this architecture");
}
#endif

/* ------------------------------------------------------------------ */
/* Floating-point rounding mode                                        */

#if defined(FE_UPWARD) && defined(FE_DOWNWARD) && defined(FE_TOWARDZERO) && \
    defined(FE_TONEAREST)
#define HAVE_ROUNDING 1

static const char *mode_name(int mode)
{
    switch (mode) {
    case FE_UPWARD: return "upward";
    case FE_DOWNWARD: return "downward";
    case FE_TOWARDZERO: return "toward zero";
    case FE_TONEAREST: return "to nearest";
    default: return "?";
    }
}

static uint64_t bits_of(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

/*
 * The rounding mode double arithmetic actually uses (on x86-64 that is
 * the SSE unit's MXCSR, while fegetround() reads the x87 control word),
 * told apart by the last bit of three quotients:
 *            1/3    -1/3   1/10
 *   upward   ...6   ...5   ...a
 *   downward ...5   ...6   ...9
 *   zero     ...5   ...5   ...9
 *   nearest  ...5   ...5   ...a
 * -1 if none matches.
 */
static int arith_rounding(void)
{
    volatile double one = 1.0, three = 3.0, ten = 10.0;
    bool third_up = bits_of(one / three) == 0x3fd5555555555556ull;
    bool neg_third_down = bits_of(-one / three) == 0xbfd5555555555556ull;
    bool tenth_up = bits_of(one / ten) == 0x3fb999999999999aull;

    if (third_up && !neg_third_down && tenth_up) {
        return FE_UPWARD;
    }
    if (!third_up && neg_third_down && !tenth_up) {
        return FE_DOWNWARD;
    }
    if (!third_up && !neg_third_down) {
        return tenth_up ? FE_TONEAREST : FE_TOWARDZERO;
    }
    return -1;
}

/* The mode, if fegetround() and the arithmetic agree on it; else -1. */
static int rounding(void)
{
    int mode = fegetround(), arith = arith_rounding();

    if (mode != arith) {
        printf("#   fegetround() says %s, the arithmetic rounds %s\n",
               mode_name(mode), mode_name(arith));
        return -1;
    }
    return mode;
}

typedef struct {
    int seen_at_start;
    int seen_after_yield;
    int set_to;                 /* what the coroutine sets, -1: nothing */
} RoundArg;

static void coroutine_fn round_co(void *opaque)
{
    RoundArg *a = opaque;

    a->seen_at_start = rounding();
    if (a->set_to >= 0) {
        fesetround(a->set_to);
        qemu_coroutine_yield();
        a->seen_after_yield = rounding();
    }
    /* Returns with its own mode set: it goes back to the pool so. */
}

static void test_rounding_per_coroutine(void)
{
    RoundArg a = { -1, -1, FE_TOWARDZERO };
    int saved = fegetround();
    Coroutine *co;

    fesetround(FE_UPWARD);
    co = qemu_coroutine_create(round_co, &a);
    qemu_coroutine_enter(co);
    CHECK_EQ(a.seen_at_start, FE_UPWARD);
    /* Its toward-zero did not leak to us. */
    CHECK_EQ(rounding(), FE_UPWARD);
    /* Our downward does not leak into it. */
    fesetround(FE_DOWNWARD);
    qemu_coroutine_enter(co);
    CHECK_EQ(a.seen_after_yield, FE_TOWARDZERO);
    CHECK_EQ(rounding(), FE_DOWNWARD);
    fesetround(saved);
}

static void test_new_coroutine_gets_creators_rounding(void)
{
    RoundArg a = { -1, -1, FE_UPWARD }, b = { -1, -1, -1 };
    int saved = fegetround();
    Coroutine *first, *second;

    /* A coroutine that ends with "upward" set goes to the pool... */
    fesetround(FE_TONEAREST);
    first = qemu_coroutine_create(round_co, &a);
    qemu_coroutine_enter(first);
    qemu_coroutine_enter(first);
    CHECK_EQ(a.seen_after_yield, FE_UPWARD);
    /* ...and the next one created here is that one, recycled: it starts
     * with our "toward zero", taken when it was created, even though we
     * enter it with "downward" set. */
    fesetround(FE_TOWARDZERO);
    second = qemu_coroutine_create(round_co, &b);
    fesetround(FE_DOWNWARD);
    qemu_coroutine_enter(second);
    printf("#   the second coroutine is %s\n",
           second == first ? "the first one, recycled" : "a fresh one");
    CHECK(second == first);     /* the pool hands the last one back */
    CHECK_EQ(b.seen_at_start, FE_TOWARDZERO);
    CHECK_EQ(rounding(), FE_DOWNWARD);

    /* A fresh stack (the pool is empty while these are alive) too. */
    {
        enum { N = 3 };
        RoundArg r[N];
        Coroutine *c[N];

        fesetround(FE_UPWARD);
        for (int i = 0; i < N; i++) {
            r[i] = (RoundArg){ -1, -1, FE_DOWNWARD };
            c[i] = qemu_coroutine_create(round_co, &r[i]);
            qemu_coroutine_enter(c[i]);     /* parked in its yield */
        }
        for (int i = 0; i < N; i++) {
            CHECK_EQ(r[i].seen_at_start, FE_UPWARD);
            qemu_coroutine_enter(c[i]);
            CHECK_EQ(r[i].seen_after_yield, FE_DOWNWARD);
        }
        CHECK_EQ(rounding(), FE_UPWARD);
    }
    fesetround(saved);
}

/* A coroutine keeps its mode when it moves to an IOThread and back; the
 * IOThread keeps its own. */
typedef struct {
    AioContext *io_ctx;
    int in_iothread;            /* the coroutine's mode there */
    int back_home;
    int iothread_own;           /* the IOThread's mode after the visit */
    bool done;
} HopArg;

static void coroutine_fn hop_co(void *opaque)
{
    HopArg *h = opaque;

    fesetround(FE_TOWARDZERO);
    aio_co_schedule(h->io_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    h->in_iothread = rounding();
    aio_co_schedule(main_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    h->back_home = rounding();
    qatomic_set(&h->done, true);
}

static void iothread_mode_bh(void *opaque)
{
    HopArg *h = opaque;

    h->iothread_own = rounding();
    qatomic_store_release(&h->done, true);    /* pairs with the acquire */
}

static void test_rounding_moves_with_coroutine(void)
{
    HopArg h = { .in_iothread = -1, .back_home = -1, .iothread_own = -1 };
    int saved = fegetround();
    /* Created with our mode at this point, which it inherits. */
    IOThread *it = iothread_create("abi-iothread", &error_abort);

    h.io_ctx = iothread_get_aio_context(it);
    fesetround(FE_UPWARD);
    qemu_coroutine_enter(qemu_coroutine_create(hop_co, &h));
    while (!qatomic_read(&h.done)) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(h.in_iothread, FE_TOWARDZERO);
    CHECK_EQ(h.back_home, FE_TOWARDZERO);
    CHECK_EQ(rounding(), FE_UPWARD);
    /* The IOThread kept the mode it started with. */
    qatomic_set(&h.done, false);
    aio_bh_schedule_oneshot(h.io_ctx, iothread_mode_bh, &h);
    while (!qatomic_load_acquire(&h.done)) {
        sleep_ms(1);
    }
    CHECK_EQ(h.iothread_own, saved);
    iothread_destroy(it);
    fesetround(saved);
}
#endif

#ifndef HAVE_ROUNDING
static void test_rounding_per_coroutine(void)
{
    SKIP_CASE("<fenv.h> lacks the four rounding modes");
}

static void test_new_coroutine_gets_creators_rounding(void)
{
    SKIP_CASE("<fenv.h> lacks the four rounding modes");
}

static void test_rounding_moves_with_coroutine(void)
{
    SKIP_CASE("<fenv.h> lacks the four rounding modes");
}
#endif

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    if (qemu_init_main_loop(NULL) < 0) {
        test_skip_all("cannot create the main loop");
    }
    main_ctx = qemu_get_aio_context();

    RUN(test_registers_survive_switches);
    RUN(test_registers_survive_hook);
    RUN(test_rounding_per_coroutine);
    RUN(test_new_coroutine_gets_creators_rounding);
    RUN(test_rounding_moves_with_coroutine);

    qemu_cleanup_main_loop();
    return test_done();
}
