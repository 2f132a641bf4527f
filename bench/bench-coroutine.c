/*
 * bench-coroutine - what do coroutines cost? Three questions, each
 * answered with the median of BENCH_REPS batches (see bench.h).
 *
 * 1. A switch, in ns (one enter + one yield is two switches):
 *   coroutine.switch.aioloop        qemu_coroutine_enter() of a coroutine
 *                                   that loops on qemu_coroutine_yield()
 * beside, measured in the same run, the ways to switch stacks in C:
 *   coroutine.switch.swapcontext    swapcontext() ping-pong between two
 *                                   ucontexts (saves the signal mask: a
 *                                   system call per switch)
 *   coroutine.switch.sigsetjmp      QEMU's coroutine-ucontext switch:
 *                                   sigsetjmp(mine, 0) then
 *                                   siglongjmp(other, 1), on a stack
 *                                   started once with makecontext()
 *   coroutine.switch.asm-floor      a minimal x86-64 switch: the six
 *                                   callee-saved registers and the stack
 *                                   pointer, nothing else (x86-64 only)
 *   coroutine.switch.asm-abi-floor  the same plus what the ABI also asks a
 *                                   switch to preserve, the MXCSR and x87
 *                                   control words (the set aioloop's asm
 *                                   backend saves), reloaded only when
 *                                   their control bits differ: the
 *                                   sequence aioloop's switch is built on
 *   coroutine.switch.asm-abi-ret    the same set, both control words
 *                                   always reloaded, and "ret" instead of
 *                                   the floors' "pop; jmp *" (see the asm
 *                                   below): what those two choices cost
 * Target: aioloop <= 5 ns/switch. The aioloop figure adds to the
 * abi-floor what the API needs per switch: the current-coroutine and
 * context bookkeeping, the checks, the release store (see
 * src/coroutine/coroutine.c).
 *
 * Instruction counts, which a loaded machine does not disturb:
 *   BENCH_CO_SWITCHES=N bench-coroutine   does N enter+yield round trips
 * of the aioloop case and nothing else; run it under
 *   valgrind --tool=callgrind
 * for two values of N: the difference of the totals / (2 x the
 * difference of N) is the instructions per switch.
 *
 * 2. coroutine.create.aioloop: qemu_coroutine_create() of an empty
 *    function + qemu_coroutine_enter() (which runs it to its end), ns per
 *    coroutine. The per-thread pool should make this allocation-free; a
 *    note says whether every coroutine was a recycled one.
 *
 * 3. aio_co_schedule() across threads, us per round trip: a coroutine
 *    hops from the main AioContext (main thread) to an IOThread's context
 *    and back, aio_co_schedule(other, self); qemu_coroutine_yield();
 *   coroutine.schedule.aioloop       both threads sleep in aio_poll()
 *   coroutine.schedule.aioloop-poll  adaptive polling (max 50 us) on both
 *   coroutine.schedule.bh            the same hop done by two BHs, no
 *                                    coroutine: what aio_co_schedule()
 *                                    is built on (compare bench-wake)
 *   coroutine.schedule.bh-poll       ditto with polling
 * The main thread is pinned to the first CPU the process may use and the
 * IOThread to the second, as in bench-wake.
 *
 * SPDX-License-Identifier: MIT
 */
/* glibc's fortified siglongjmp (__longjmp_chk) aborts when it jumps to a
 * stack below the current one that is not a signal stack, which is what
 * a coroutine switch does; QEMU's coroutine-ucontext.c undefines it too. */
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_setaffinity_np, CPU_SET */
#endif
#include <aioloop/aio.h>
#include <aioloop/coroutine.h>
#include <aioloop/iothread.h>
#include <aioloop/main-loop.h>
#include <aioloop/thread.h>

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "bench.h"

#if defined(BENCH_CO_BACKEND_ASM) && defined(__aarch64__)
#define CO_BACKEND "asm (hand-written aarch64 switch)"
#elif defined(BENCH_CO_BACKEND_ASM)
#define CO_BACKEND "asm (hand-written x86-64 switch)"
#elif defined(BENCH_CO_BACKEND_UCONTEXT)
#define CO_BACKEND "ucontext (swapcontext)"
#else
#define CO_BACKEND "unknown (not told by bench/meson.build)"
#endif

#define SIDE_STACK_SIZE (256 * 1024)

static void *side_stack_new(void)
{
    void *p = mmap(NULL, SIDE_STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

    if (p == MAP_FAILED) {
        bench_die("mmap of a stack failed");
    }
    return p;
}

static void side_stack_free(void *p)
{
    munmap(p, SIDE_STACK_SIZE);
}

/* ------------------------------------------------------------------ */
/* Placement (as in bench-wake)                                        */

static int cpu_a = -1, cpu_b = -1;

static void choose_cpus(void)
{
    bench_pin_pair(&cpu_a, &cpu_b, "main thread", "IOThread");
}

/* ------------------------------------------------------------------ */
/* 1. Switch: aioloop                                                  */

static void coroutine_fn yield_loop(void *opaque)
{
    bool *stop = opaque;

    while (!*stop) {
        qemu_coroutine_yield();
    }
}

static void run_aio_switch(void *opaque, uint64_t n)
{
    Coroutine *co = opaque;

    for (uint64_t i = 0; i < n; i++) {
        qemu_coroutine_enter(co);
    }
}

static double bench_aio_switch(void)
{
    bool stop = false;
    Coroutine *co = qemu_coroutine_create(yield_loop, &stop);
    double r;

    qemu_coroutine_enter(co);           /* now parked in its yield */
    r = bench_measure(run_aio_switch, co) / 2;
    stop = true;
    qemu_coroutine_enter(co);           /* returns: recycled */
    bench_report("coroutine.switch.aioloop", r, "ns/switch");
    return r;
}

/* ------------------------------------------------------------------ */
/* 1. Switch: swapcontext                                              */

static ucontext_t uc_main, uc_side;

static void uc_side_fn(void)
{
    for (;;) {
        swapcontext(&uc_side, &uc_main);
    }
}

static void run_swapcontext(void *opaque BENCH_UNUSED, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        swapcontext(&uc_main, &uc_side);
    }
}

static double bench_swapcontext(void)
{
    void *stack = side_stack_new();
    double r;

    if (getcontext(&uc_side) != 0) {
        bench_die("getcontext failed");
    }
    uc_side.uc_stack.ss_sp = stack;
    uc_side.uc_stack.ss_size = SIDE_STACK_SIZE;
    uc_side.uc_link = NULL;
    makecontext(&uc_side, uc_side_fn, 0);
    r = bench_measure(run_swapcontext, NULL) / 2;
    /* The side context stays parked in swapcontext(); drop its stack. */
    side_stack_free(stack);
    bench_report("coroutine.switch.swapcontext", r, "ns/switch");
    return r;
}

/* ------------------------------------------------------------------ */
/* 1. Switch: sigsetjmp/siglongjmp, QEMU's coroutine-ucontext way      */

static sigjmp_buf sj_main, sj_side;

/* QEMU's qemu_coroutine_switch(): save here, jump there. */
static __attribute__((noinline)) void sj_switch(sigjmp_buf from,
                                                sigjmp_buf to)
{
    if (!sigsetjmp(from, 0)) {
        siglongjmp(to, 1);
    }
}

static void sj_side_fn(void)
{
    /* The first switch returns to the creator (as QEMU's
     * coroutine_trampoline does); every later one answers a ping. */
    for (;;) {
        sj_switch(sj_side, sj_main);
    }
}

static void run_sigsetjmp(void *opaque BENCH_UNUSED, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        sj_switch(sj_main, sj_side);
    }
}

static double bench_sigsetjmp(void)
{
    ucontext_t uc_creator, uc_start;
    void *stack = side_stack_new();
    double r;

    if (getcontext(&uc_start) != 0) {
        bench_die("getcontext failed");
    }
    uc_start.uc_stack.ss_sp = stack;
    uc_start.uc_stack.ss_size = SIDE_STACK_SIZE;
    uc_start.uc_link = NULL;
    makecontext(&uc_start, sj_side_fn, 0);
    /* Run the side until its first sigsetjmp; it jumps back here. */
    if (!sigsetjmp(sj_main, 0)) {
        swapcontext(&uc_creator, &uc_start);
    }
    r = bench_measure(run_sigsetjmp, NULL) / 2;
    side_stack_free(stack);
    bench_report("coroutine.switch.sigsetjmp", r, "ns/switch");
    return r;
}

/* ------------------------------------------------------------------ */
/* 1. Switch: the asm floors (x86-64)                                  */

#if defined(__x86_64__)
/*
 * Each switch(save, load) pushes the callee-saved registers, stores the
 * stack pointer in *save, loads @load and pops the other side's
 * registers. Two things matter for speed, both measured on the machine
 * this was written on (Intel, KVM):
 *  - The floors leave through "pop %rcx; jmp *%rcx" rather than "ret":
 *    in a ping-pong every ret lands somewhere other than where the
 *    matching call came from, so the return stack buffer mispredicts it
 *    every time (about 7 ns), while the indirect jmp's target is learnt
 *    by the branch predictor.
 *  - ldmxcsr stalls the pipeline: executed on every switch it costs
 *    little behind a mispredicted ret but about 30-50 ns per switch with
 *    the jmp exit. The control bits (MXCSR 6-15, the x87 control word)
 *    are what the ABI makes callee-saved and they are almost always the
 *    same on both sides, so the ABI floor compares them and reloads only
 *    when they differ. The stores (stmxcsr, fnstcw) cost nothing; the
 *    two halves are read back separately because one 8-byte load of two
 *    smaller fresh stores defeats store forwarding (+4 ns).
 *
 *   bench_asm_switch          rbx rbp r12-r15 + rsp (the floor)
 *   bench_asm_abi_switch      + MXCSR and x87 control word, reloaded
 *                             when they differ
 *   bench_asm_abi_ret_switch  + MXCSR and x87 control word always
 *                             reloaded, ret: aioloop's sequence
 *
 * A new stack is prepared so that the first switch pops zeroes (and
 * default control words), then continues into bench_asm_start with the
 * function in r13 and its argument in r12.
 */
void bench_asm_switch(void **save, void *load);
void bench_asm_abi_switch(void **save, void *load);
void bench_asm_abi_ret_switch(void **save, void *load);
void bench_asm_start(void);

#define ASM_FN(name) \
    ".globl " name "\n" ".hidden " name "\n" ".type " name ", @function\n" \
    name ":\n"
#define ASM_SAVE_GPRS \
    "    pushq %rbp\n" "    pushq %rbx\n" "    pushq %r12\n" \
    "    pushq %r13\n" "    pushq %r14\n" "    pushq %r15\n"
#define ASM_LOAD_GPRS \
    "    popq %r15\n" "    popq %r14\n" "    popq %r13\n" \
    "    popq %r12\n" "    popq %rbx\n" "    popq %rbp\n"
#define ASM_SAVE_CW \
    "    subq $8, %rsp\n" "    stmxcsr (%rsp)\n" "    fnstcw 4(%rsp)\n"
#define ASM_LOAD_CW \
    "    ldmxcsr (%rsp)\n" "    fldcw 4(%rsp)\n" "    addq $8, %rsp\n"
#define ASM_SWAP_SP \
    "    movq %rsp, (%rdi)\n" "    movq %rsi, %rsp\n"
#define ASM_JMP_BACK \
    "    popq %rcx\n" "    jmp *%rcx\n"
/* Remember this side's control words in eax/cx before the stack moves,
 * compare after; 3: reload (rare), 4: done. */
#define ASM_SAVE_CW_KEEP \
    ASM_SAVE_CW "    movl (%rsp), %eax\n" "    movzwl 4(%rsp), %ecx\n"
#define ASM_LOAD_CW_IF_CHANGED \
    "    xorl (%rsp), %eax\n" "    testl $0xffc0, %eax\n" "    jnz 3f\n" \
    "    cmpw 4(%rsp), %cx\n" "    jne 3f\n" \
    "4:  addq $8, %rsp\n"
#define ASM_RELOAD_CW_OUT_OF_LINE \
    "3:  ldmxcsr (%rsp)\n" "    fldcw 4(%rsp)\n" "    jmp 4b\n"

__asm__(
    ".text\n"
    ASM_FN("bench_asm_switch")
    ASM_SAVE_GPRS ASM_SWAP_SP ASM_LOAD_GPRS ASM_JMP_BACK
    ".size bench_asm_switch, .-bench_asm_switch\n"
    ASM_FN("bench_asm_abi_switch")
    ASM_SAVE_GPRS ASM_SAVE_CW_KEEP ASM_SWAP_SP ASM_LOAD_CW_IF_CHANGED
    ASM_LOAD_GPRS ASM_JMP_BACK ASM_RELOAD_CW_OUT_OF_LINE
    ".size bench_asm_abi_switch, .-bench_asm_abi_switch\n"
    ASM_FN("bench_asm_abi_ret_switch")
    ASM_SAVE_GPRS ASM_SAVE_CW ASM_SWAP_SP ASM_LOAD_CW ASM_LOAD_GPRS
    "    ret\n"
    ".size bench_asm_abi_ret_switch, .-bench_asm_abi_ret_switch\n"
    ASM_FN("bench_asm_start")
    "    movq %r12, %rdi\n"
    "    call *%r13\n"
    "    ud2\n"
    ".size bench_asm_start, .-bench_asm_start\n"
);

typedef enum { ASM_MINIMAL, ASM_ABI, ASM_ABI_RET } AsmKind;

typedef struct {
    void *main_sp, *side_sp;
    AsmKind kind;
} AsmPair;

/* Both sides call the switch directly, so each loop is its own. */
static void asm_side_fn(void *opaque)
{
    AsmPair *p = opaque;

    switch (p->kind) {
    case ASM_MINIMAL:
        for (;;) {
            bench_asm_switch(&p->side_sp, p->main_sp);
        }
    case ASM_ABI:
        for (;;) {
            bench_asm_abi_switch(&p->side_sp, p->main_sp);
        }
    case ASM_ABI_RET:
        for (;;) {
            bench_asm_abi_ret_switch(&p->side_sp, p->main_sp);
        }
    }
    abort();
}

static void run_asm(void *opaque, uint64_t n)
{
    AsmPair *p = opaque;

    for (uint64_t i = 0; i < n; i++) {
        bench_asm_switch(&p->main_sp, p->side_sp);
    }
}

static void run_asm_abi(void *opaque, uint64_t n)
{
    AsmPair *p = opaque;

    for (uint64_t i = 0; i < n; i++) {
        bench_asm_abi_switch(&p->main_sp, p->side_sp);
    }
}

static void run_asm_abi_ret(void *opaque, uint64_t n)
{
    AsmPair *p = opaque;

    for (uint64_t i = 0; i < n; i++) {
        bench_asm_abi_ret_switch(&p->main_sp, p->side_sp);
    }
}

static double bench_asm(const char *name, AsmKind kind)
{
    static BenchFn *const run[] = {
        [ASM_MINIMAL] = run_asm,
        [ASM_ABI] = run_asm_abi,
        [ASM_ABI_RET] = run_asm_abi_ret,
    };
    AsmPair p = { .kind = kind };
    void *stack = side_stack_new();
    uintptr_t top = ((uintptr_t)stack + SIDE_STACK_SIZE) & ~(uintptr_t)15;
    /* Slots popped by the first switch, low to high: [control words]
     * r15 r14 r13 r12 rbx rbp return-address. Afterwards the stack
     * pointer is top - 16: aligned for bench_asm_start's call. */
    uintptr_t slots = kind == ASM_MINIMAL ? 7 : 8;
    uint64_t *sp = (uint64_t *)(top - 16 - 8 * slots);
    uint64_t *r = sp;
    double res;

    if (kind != ASM_MINIMAL) {
        *r++ = 0x1f80 | ((uint64_t)0x037f << 32);   /* MXCSR, x87 CW */
    }
    r[0] = 0;                                       /* r15 */
    r[1] = 0;                                       /* r14 */
    r[2] = (uint64_t)(uintptr_t)asm_side_fn;        /* r13: function */
    r[3] = (uint64_t)(uintptr_t)&p;                 /* r12: argument */
    r[4] = 0;                                       /* rbx */
    r[5] = 0;                                       /* rbp */
    r[6] = (uint64_t)(uintptr_t)bench_asm_start;
    p.side_sp = sp;

    res = bench_measure(run[kind], &p) / 2;
    /* The side stays parked in its switch; drop its stack. */
    side_stack_free(stack);
    bench_report(name, res, "ns/switch");
    return res;
}
#endif

/* ------------------------------------------------------------------ */
/* 2. Create + enter + terminate                                       */

static void coroutine_fn empty_co(void *opaque BENCH_UNUSED)
{
}

typedef struct {
    Coroutine *first;           /* the first coroutine created */
    uint64_t fresh;             /* how many differed from it */
} CreateRun;

static void run_create(void *opaque, uint64_t n)
{
    CreateRun *c = opaque;

    for (uint64_t i = 0; i < n; i++) {
        Coroutine *co = qemu_coroutine_create(empty_co, NULL);

        if (co != c->first) {
            c->fresh++;
            if (!c->first) {
                c->first = co;
            }
        }
        qemu_coroutine_enter(co);
    }
}

static void bench_create(void)
{
    CreateRun c = { 0 };
    double r;

    /* Terminated coroutines go to the front of the pool, so a pool in
     * steady state hands out the same one every time. */
    r = bench_measure(run_create, &c);
    bench_report("coroutine.create.aioloop", r, "ns/coroutine");
    if (c.fresh <= 1) {
        printf("# coroutine.create.aioloop: every create returned the same "
               "pooled coroutine (no allocation)\n");
    } else {
        printf("# coroutine.create.aioloop: %llu creates returned another "
               "coroutine than the first (pool misses?)\n",
               (unsigned long long)c.fresh - 1);
    }
}

/* ------------------------------------------------------------------ */
/* 3. aio_co_schedule round trip between two threads                   */

typedef struct {
    AioContext *home, *other;   /* main context, IOThread's context */
    uint64_t remaining;         /* touched by the coroutine only */
    bool done;                  /* main thread only */
    QEMUBH *bh_home, *bh_other; /* the BH flavour */
    QemuSemaphore pinned;
} Hop;

static void coroutine_fn hop_co(void *opaque)
{
    Hop *h = opaque;

    while (h->remaining) {
        aio_co_schedule(h->other, qemu_coroutine_self());
        qemu_coroutine_yield();
        /* In the IOThread now. */
        aio_co_schedule(h->home, qemu_coroutine_self());
        qemu_coroutine_yield();
        /* Back in the main thread. */
        h->remaining--;
    }
    h->done = true;
}

static void run_hop(void *opaque, uint64_t n)
{
    Hop *h = opaque;

    h->remaining = n;
    h->done = false;
    qemu_coroutine_enter(qemu_coroutine_create(hop_co, h));
    while (!h->done) {
        aio_poll(h->home, true);
    }
}

/* The BH flavour: home's BH schedules other's and vice versa. */
static void hop_home_bh(void *opaque)
{
    Hop *h = opaque;

    if (--h->remaining) {
        qemu_bh_schedule(h->bh_other);
    } else {
        h->done = true;
    }
}

static void hop_other_bh(void *opaque)
{
    Hop *h = opaque;

    qemu_bh_schedule(h->bh_home);
}

static void run_hop_bh(void *opaque, uint64_t n)
{
    Hop *h = opaque;

    h->remaining = n;
    h->done = false;
    qemu_bh_schedule(h->bh_other);
    while (!h->done) {
        aio_poll(h->home, true);
    }
}

static void pin_iothread_bh(void *opaque)
{
    Hop *h = opaque;

    bench_pin(cpu_b);
    qemu_sem_post(&h->pinned);
}

static void set_polling(Hop *h, bool on)
{
    aio_context_set_poll_params(h->home, on ? 50000 : 0, 0, 0, &error_abort);
    aio_context_set_poll_params(h->other, on ? 50000 : 0, 0, 0, &error_abort);
}

static double measure_hop(const char *name, BenchFn *fn, Hop *h)
{
    double r = bench_measure(fn, h);

    bench_report(name, r, "us/roundtrip");
    printf("# %s: best batch %.3f us\n", name, bench_last_best / 1000.0);
    return r;
}

static void bench_schedule(double *co, double *co_poll, double *bh,
                           double *bh_poll)
{
    Hop h = { 0 };
    IOThread *it;

    if (qemu_init_main_loop(&error_abort) < 0) {
        bench_die("qemu_init_main_loop failed");
    }
    it = iothread_create("bench-co-iothread", &error_abort);
    if (!it) {
        bench_die("iothread_create failed");
    }
    h.home = qemu_get_aio_context();
    h.other = iothread_get_aio_context(it);
    qemu_sem_init(&h.pinned, 0);
    aio_bh_schedule_oneshot(h.other, pin_iothread_bh, &h);
    qemu_sem_wait(&h.pinned);
    qemu_sem_destroy(&h.pinned);

    set_polling(&h, false);
    *co = measure_hop("coroutine.schedule.aioloop", run_hop, &h);
    set_polling(&h, true);
    *co_poll = measure_hop("coroutine.schedule.aioloop-poll", run_hop, &h);

    h.bh_home = aio_bh_new(h.home, hop_home_bh, &h);
    h.bh_other = aio_bh_new(h.other, hop_other_bh, &h);
    set_polling(&h, false);
    *bh = measure_hop("coroutine.schedule.bh", run_hop_bh, &h);
    set_polling(&h, true);
    *bh_poll = measure_hop("coroutine.schedule.bh-poll", run_hop_bh, &h);
    set_polling(&h, false);

    /* Deleting bh_other from here is safe: it is not scheduled (the last
     * pong has run) and iothread_destroy() flushes its context. */
    qemu_bh_delete(h.bh_home);
    qemu_bh_delete(h.bh_other);
    iothread_destroy(it);
    aio_poll(h.home, false);
    qemu_cleanup_main_loop();
}

/* BENCH_CO_SWITCHES=N: only N round trips of the aioloop switch. */
static bool count_only(void)
{
    const char *env = getenv("BENCH_CO_SWITCHES");
    bool stop = false;
    Coroutine *co;

    if (!env || !*env) {
        return false;
    }
    co = qemu_coroutine_create(yield_loop, &stop);
    qemu_coroutine_enter(co);
    run_aio_switch(co, strtoull(env, NULL, 10));
    stop = true;
    qemu_coroutine_enter(co);
    printf("# %s enter+yield round trips done\n", env);
    return true;
}

int main(void)
{
    double aio, swapc, sj, asm_floor = 0, abi_floor = 0, abi_ret = 0;
    double sched, sched_poll, sched_bh, sched_bh_poll;

    if (count_only()) {
        return 0;
    }

    printf("# coroutine: median of %d batches of %llu ms\n",
           BENCH_REPS, BENCH_BATCH_NS / 1000000);
    printf("# backend: %s\n", CO_BACKEND);
    choose_cpus();

    aio = bench_aio_switch();
    swapc = bench_swapcontext();
    sj = bench_sigsetjmp();
#if defined(__x86_64__)
    asm_floor = bench_asm("coroutine.switch.asm-floor", ASM_MINIMAL);
    abi_floor = bench_asm("coroutine.switch.asm-abi-floor", ASM_ABI);
    abi_ret = bench_asm("coroutine.switch.asm-abi-ret", ASM_ABI_RET);
#else
    bench_skipped("coroutine.switch.asm-floor", "x86-64 only");
    bench_skipped("coroutine.switch.asm-abi-floor", "x86-64 only");
    bench_skipped("coroutine.switch.asm-abi-ret", "x86-64 only");
#endif
    printf("# coroutine.switch.aioloop: target <= 5 ns/switch: %s\n",
           aio <= 5.0 ? "met" : "missed");

    bench_create();

    bench_schedule(&sched, &sched_poll, &sched_bh, &sched_bh_poll);

    bench_ratio("coroutine.switch", "aioloop", aio, "asm-floor", asm_floor);
    bench_ratio("coroutine.switch", "aioloop", aio, "asm-abi-floor",
                abi_floor);
    bench_ratio("coroutine.switch", "aioloop", aio, "asm-abi-ret", abi_ret);
    bench_ratio("coroutine.switch", "swapcontext", swapc, "aioloop", aio);
    bench_ratio("coroutine.switch", "sigsetjmp", sj, "aioloop", aio);
    bench_ratio("coroutine.schedule", "aioloop", sched, "bh", sched_bh);
    bench_ratio("coroutine.schedule", "aioloop-poll", sched_poll, "bh-poll",
                sched_bh_poll);
    return 0;
}
