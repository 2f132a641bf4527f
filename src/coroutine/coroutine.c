/*
 * coroutine.c - coroutine lifecycle, switching and AioContext integration.
 *
 * Entering and yielding
 * ---------------------
 * Each thread has a "leader": a Coroutine without a stack that stands for
 * the thread's own stack. qemu_coroutine_enter(co) records the running
 * coroutine (or the leader) as co->caller and switches to co; yield
 * switches back to the caller; a coroutine whose function returns switches
 * back with COROUTINE_TERMINATE and its enterer recycles it. Coroutines
 * that aio_co_enter() asked to run while another coroutine of the same
 * context was running wait on that coroutine's co_queue_wakeup and are
 * entered by the enterer right after it yields, in order.
 *
 * The switch protocol (co_switch(), coroutine-int.h)
 * ---------------------------------------------------
 * Nothing runs in the enterer after a switch back unless there is work:
 * qemu_coroutine_enter() and qemu_coroutine_yield() end in a tail call to
 * the switch, whose exit is then their return (see co_switch() for why
 * that matters: one mispredicted return per switch otherwise). Everything
 * the old "after the switch" code did moved:
 *  - `running` = 0 of a yielding coroutine, which lets another thread
 *    enter it: stored by the switch itself once off the coroutine's stack
 *    (the `release` argument), as late as it can be and no later.
 *  - the current-coroutine pointer: set by the side that switches away
 *    (the yielder knows its caller).
 *  - recycling a coroutine that returned and entering the coroutines a
 *    yielder woke: the yielder hands them over in its thread's
 *    CoroutineThread (finished, handoff) and passes COROUTINE_HOOK; the
 *    switch then calls aioloop__co_switch_hook() in the enterer, before
 *    it returns. The hook enters hand-overs in a loop; one that hands
 *    over more while the loop runs adds them to its front (draining), so
 *    the stack does not grow with chains of wake-ups.
 * A yielder moves its wake-up list before the switch, while it still
 * owns it; after the release store it may run in another thread.
 *
 * Thread-local variables and migration
 * ------------------------------------
 * A coroutine may yield in one thread and be entered again in another
 * (aio_co_schedule to an IOThread). The compiler may keep the address of
 * a thread-local variable in a register across a call, which would be
 * wrong after such a migration, so the thread-locals are never used
 * across a switch that may resume in another thread: code after such a
 * switch (sanitizer builds) re-reads them through a noinline accessor,
 * and in the other builds no code follows the switch at all.
 *
 * Floating-point control state
 * ----------------------------
 * The asm switches keep the FP control registers (x86-64: MXCSR and the
 * x87 control word; aarch64: FPCR) per coroutine, and so does
 * swapcontext. A new coroutine, fresh or recycled, starts with the
 * control state of the thread that called qemu_coroutine_create(), taken
 * at that call: never with what the pool's previous user left set (its
 * fesetround() would otherwise leak into an unrelated coroutine).
 *
 * Stacks and the pool
 * -------------------
 * Stacks are mmap'd with a PROT_NONE guard of COROUTINE_GUARD_SIZE
 * (64 KiB) below them, so an overflow faults instead of corrupting memory
 * - even a frame of tens of KiB that touches its lowest address first,
 * which would jump a one-page guard; the library is also built with
 * -fstack-clash-protection where the compiler has it, so its own large
 * frames probe page by page. A terminated coroutine
 * keeps its stack and goes to a per-thread pool (up to POOL_MAX); its
 * machine state stays inside aioloop__co_main()'s loop, so entering the
 * recycled coroutine simply calls the new entry function. Create + enter
 * + return therefore costs no allocation and no system call in steady
 * state. A thread's pool is freed when the thread exits.
 *
 * Stack overflow reports
 * ----------------------
 * A fault in a guard kills the process with SIGSEGV, which alone says
 * nothing about coroutines. So the first coroutine stack installs a
 * SIGSEGV handler (SA_ONSTACK | SA_SIGINFO), remembering the handler that
 * was there before. On a fault it looks at the coroutine the faulting
 * thread runs (co_thread->current: a TLS load, async-signal-safe) and,
 * if the fault address lies in that coroutine's guard, writes
 * "aioloop: coroutine stack overflow in coroutine <address> (entry
 * <address>)" with write(2), restores the default action and returns:
 * the faulting instruction runs again and the process dies of SIGSEGV as
 * before (core dump included). Any other fault is not ours: it goes to
 * the previous handler (called as the kernel would, with or without
 * SA_SIGINFO), or, if that was SIG_DFL or SIG_IGN, to the default action
 * (a signal sent with kill() is re-raised, a real fault re-executed). An
 * application that installs its own SIGSEGV handler afterwards replaces
 * ours: it then gets every fault, overflows included, unreported.
 *
 * The handler cannot run on the stack that overflowed, so each thread
 * that runs coroutines gets an alternate signal stack (64 KiB plus a
 * guard page) when its coroutine state is created (co_thread_init(): the
 * first create or enter in that thread), unless the thread already has
 * one (the application's, a sanitizer's), which is then used as it is.
 * Ours is disabled and unmapped when the thread exits. The same step
 * unblocks SIGSEGV in the thread (see altstack_init()).
 *
 * Scheduling
 * ----------
 * aio_co_schedule() pushes the coroutine onto the context's lock-free
 * scheduled list (one CAS) and schedules the context's internal
 * co_schedule BH, which enters the coroutines in scheduling order from
 * that context's aio_poll(). co->scheduled catches double scheduling.
 *
 * Sanitizers
 * ----------
 * ASan must know which stack is in use (__sanitizer_start/finish_switch_
 * fiber) and TSan which fiber runs (__tsan_switch_to_fiber); every switch
 * goes through co_switch(), which tells them. There the release store
 * and the hook are done in C after the annotations (the asm is built
 * without them, coroutine-int.h), so sanitizer builds do not get the
 * tail-call speed. Valgrind must know
 * where each coroutine stack lies (VALGRIND_STACK_REGISTER), or it takes
 * a switch for a stack that grew by megabytes and reports bogus errors;
 * the stack is registered when it is mapped and deregistered when it is
 * unmapped, not per switch. The client requests are a few no-op
 * instructions outside valgrind and are compiled in only when meson found
 * <valgrind/valgrind.h> (AIOLOOP_HAVE_VALGRIND).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <aioloop/main-loop.h>
#include "coroutine-int.h"
#include "../util/alloc.h"
#include "../util/fault.h"
#include "../util/misuse.h"
#include "../util/relax.h"

#ifdef AIOLOOP_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef AIOLOOP_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

/* The QEMU-named qemu/coroutine_int.h gives Coroutine the size meson
 * measured (see src/meson.build); it must be this one. */
#ifdef AIOLOOP_COROUTINE_SIZE_EXPECTED
_Static_assert(sizeof(struct Coroutine) == AIOLOOP_COROUTINE_SIZE_EXPECTED,
               "struct Coroutine changed size since meson measured it");
#endif

#define COROUTINE_STACK_SIZE (1 << 20)
#define COROUTINE_GUARD_SIZE (64 * 1024)    /* a multiple of the page size
                                             * (page_aligned() rounds up) */
#define ALTSTACK_SIZE (64 * 1024)
#define POOL_MAX 64

/* ------------------------------------------------------------------ */
/* Thread-local state, reached only through noinline accessors          */

typedef struct CoroutineThread {
    Coroutine *current;         /* running coroutine, NULL: the leader */
    Coroutine leader;
    QSLIST_HEAD(, Coroutine) pool;
    unsigned pool_size;
    const void *leader_stack_bottom;    /* ASan: the thread's own stack */
    size_t leader_stack_size;

    /* Handed from a coroutine that switches back to its enterer to the
     * enterer's aioloop__co_switch_hook(), in this thread: */
    struct CoroutineWaitList handoff;   /* coroutines it woke */
    Coroutine *finished;                /* it, if it terminated */
    /* The alternate signal stack we gave the thread (mapping, guard page
     * included), or NULL (see "Stack overflow reports"). */
    void *altstack;
    size_t altstack_size;
#ifndef AIOLOOP_CO_ASM_DIRECT
    int *release;               /* co_switch(): store 0 here once switched */
#endif
} CoroutineThread;

/* Allocated on first use; initial-exec, so that even in the shared
 * library reaching it is a load from the thread pointer, not a call. */
static __thread CoroutineThread *co_thread
    __attribute__((tls_model("initial-exec")));
static pthread_key_t co_thread_key;
static pthread_once_t co_thread_once = PTHREAD_ONCE_INIT;

static void coroutine_delete(Coroutine *co);

/* Bytes of @n rounded up to whole pages. */
static size_t page_aligned(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

/* ------------------------------------------------------------------ */
/* Stack overflow reports (see the essay above)                        */

static struct sigaction segv_previous;     /* written once, before ours */
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;

/* async-signal-safe output to stderr: a string, a pointer, a number. */
static void segv_puts(const char *s)
{
    size_t n = strlen(s);

    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);

        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void segv_put_ptr(const void *p)
{
    char buf[2 + 2 * sizeof(uintptr_t) + 1];
    uintptr_t v = (uintptr_t)p;
    int i = sizeof(buf) - 1, start;

    buf[i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    buf[--i] = 'x';
    buf[--i] = '0';
    start = i;
    segv_puts(buf + start);
}

static void segv_put_dec(size_t v)
{
    char buf[24];
    int i = sizeof(buf) - 1;

    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    segv_puts(buf + i);
}

/* The default action for @sig, now: a fault is executed again (and kills
 * with the default action), a signal sent by someone is sent again. */
static void segv_default(int sig, siginfo_t *info)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };

    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (info->si_code <= 0) {
        raise(sig);     /* SI_USER, SI_TKILL...: not a fault */
    }
}

static void segv_handler(int sig, siginfo_t *info, void *uctx)
{
    int saved_errno = errno;
    CoroutineThread *t = co_thread;
    Coroutine *co = t ? t->current : NULL;
    uintptr_t addr = (uintptr_t)info->si_addr;

    if (co && co->stack && info->si_code > 0 &&
        addr < (uintptr_t)co->stack &&
        addr >= (uintptr_t)co->stack - COROUTINE_GUARD_SIZE) {
        segv_puts("aioloop: coroutine stack overflow in coroutine ");
        segv_put_ptr(co);
        segv_puts(" (entry ");
        segv_put_ptr((const void *)(uintptr_t)co->entry);
        segv_puts("): its ");
        segv_put_dec(co->stack_size);
        segv_puts("-byte stack ran into the guard below it\n");
        segv_default(sig, info);
    } else if (segv_previous.sa_flags & SA_SIGINFO) {
        segv_previous.sa_sigaction(sig, info, uctx);
    } else if (segv_previous.sa_handler == SIG_DFL ||
               segv_previous.sa_handler == SIG_IGN) {
        segv_default(sig, info);
    } else {
        segv_previous.sa_handler(sig);
    }
    errno = saved_errno;
}

static void segv_install(void)
{
    struct sigaction sa = { .sa_sigaction = segv_handler,
                            .sa_flags = SA_SIGINFO | SA_ONSTACK };

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, NULL, &segv_previous) == 0) {
        sigaction(SIGSEGV, &sa, NULL);
    }
}

/*
 * Gives the calling thread an alternate signal stack, unless it has one,
 * and unblocks SIGSEGV in it (qemu_thread_create() starts threads with
 * every signal blocked): a fault while SIGSEGV is blocked kills the
 * process without running any handler, so unblocking it changes nothing
 * else for faults, and only the delivery of a SIGSEGV sent with kill().
 */
static void altstack_init(CoroutineThread *t)
{
    size_t page = page_aligned(1), size = page_aligned(ALTSTACK_SIZE);
    stack_t old, ss;
    sigset_t segv;
    char *mem;

    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    pthread_sigmask(SIG_UNBLOCK, &segv, NULL);

#ifdef MINSIGSTKSZ
    if (size < page_aligned(4 * MINSIGSTKSZ)) {
        size = page_aligned(4 * MINSIGSTKSZ);
    }
#endif
    if (sigaltstack(NULL, &old) != 0 || !(old.ss_flags & SS_DISABLE)) {
        return;
    }
    mem = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) {
        return;                 /* no report then; nothing else changes */
    }
    if (mprotect(mem, page, PROT_NONE) != 0) {
        munmap(mem, size + page);
        return;
    }
    ss = (stack_t) { .ss_sp = mem + page, .ss_size = size, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, size + page);
        return;
    }
    t->altstack = mem;
    t->altstack_size = size + page;
}

static void altstack_exit(CoroutineThread *t)
{
    size_t page = page_aligned(1);
    stack_t cur, off = { .ss_flags = SS_DISABLE };

    if (!t->altstack) {
        return;
    }
    if (sigaltstack(NULL, &cur) == 0 &&
        cur.ss_sp == (char *)t->altstack + page) {
        sigaltstack(&off, NULL);
    }
    munmap(t->altstack, t->altstack_size);
    t->altstack = NULL;
}

static void co_thread_exit(void *opaque)
{
    CoroutineThread *t = opaque;
    Coroutine *co;

    while ((co = QSLIST_FIRST(&t->pool))) {
        QSLIST_REMOVE_HEAD(&t->pool, pool_next);
        coroutine_delete(co);
    }
    t->pool_size = 0;
    aioloop__co_backend_delete(t->leader.backend);
    altstack_exit(t);
    free(t);
    co_thread = NULL;   /* a later destructor may start over */
}

static void co_thread_key_init(void)
{
    pthread_key_create(&co_thread_key, co_thread_exit);
}

static CoroutineThread *co_thread_init(void);

/*
 * The calling thread's state. Inline: callers use it only on one side of
 * a switch, or across a switch that provably resumes in the same thread
 * (an enterer waiting for the coroutine it entered). Code that may run in
 * a different thread after a switch uses co_thread_get_fresh().
 */
static inline CoroutineThread *co_thread_get(void)
{
    CoroutineThread *t = co_thread;

    if (unlikely(!t)) {
        t = co_thread_init();
    }
    return t;
}

static __attribute__((noinline, unused)) CoroutineThread *
co_thread_get_fresh(void)
{
    __asm__ __volatile__("" : : : "memory");
    return co_thread_get();
}

static __attribute__((noinline)) CoroutineThread *co_thread_init(void)
{
    CoroutineThread *t = calloc(1, sizeof(*t));

    if (!t) {
        aioloop__oom("the coroutine thread state");
    }
    pthread_once(&co_thread_once, co_thread_key_init);
    pthread_setspecific(co_thread_key, t);
    QSLIST_INIT(&t->pool);
    t->leader.backend = aioloop__co_backend_new(NULL);
    QSIMPLEQ_INIT(&t->leader.co_queue_wakeup);
    QSIMPLEQ_INIT(&t->handoff);
#ifdef AIOLOOP_TSAN
    t->leader.tsan_fiber = __tsan_get_current_fiber();
#endif
    altstack_init(t);
    co_thread = t;
    return t;
}

/* ------------------------------------------------------------------ */
/* Switching                                                           */

/*
 * Switch from @from (running) to @to. Once off @from's stack, 0 is stored
 * to *@release (unless NULL) with release order: a yielding coroutine
 * passes its `running` flag, which another thread waits for before it
 * enters the coroutine again. An @action with COROUTINE_HOOK makes the
 * resumed side (the enterer) run aioloop__co_switch_hook() first.
 * Returns the action of the switch that resumed @from.
 *
 * With AIOLOOP_CO_ASM_DIRECT all of that is the asm's, and callers end
 * in a tail call to this: the asm's exit then returns straight to their
 * caller through an indirect jump. Any code after the switch would end
 * in a "ret" that the CPU's return-stack predictor gets wrong every time
 * (it predicts the call made on the other stack), one mispredicted
 * branch per switch.
 */
static inline CoroutineAction co_switch(Coroutine *from, Coroutine *to,
                                        CoroutineAction action, int *release)
{
#ifdef AIOLOOP_CO_ASM_DIRECT
    return (CoroutineAction)aioloop__asm_switch(&from->sp, to->sp, action,
                                                release);
#else
    CoroutineAction ret;
    CoroutineThread *t = co_thread_get_fresh();

    /* A switch never changes threads: the resumed side finds it in t.
     * Written before the sanitizer hand-over below: from there on, TSan
     * attributes this thread's accesses to the fiber we switch to. */
    t->release = release;
#ifdef AIOLOOP_ASAN
    const void *bottom = to->stack ? (char *)to->stack : t->leader_stack_bottom;
    size_t size = to->stack ? to->stack_size : t->leader_stack_size;

    /* A terminating coroutine's fake stack can go (NULL save slot). */
    __sanitizer_start_switch_fiber(
        (action & ~COROUTINE_HOOK) == COROUTINE_TERMINATE ? NULL
        : &from->asan_fake_stack, bottom, size);
#endif
#ifdef AIOLOOP_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ret = aioloop__co_backend_switch(from, to, action);
    /* Possibly another thread than before the switch: fresh t. */
    t = co_thread_get_fresh();
#ifdef AIOLOOP_ASAN
    {
        const void *old_bottom;
        size_t old_size;

        __sanitizer_finish_switch_fiber(from->asan_fake_stack, &old_bottom,
                                        &old_size);
        /* Coming back to the leader tells us where the thread stack is. */
        if (from->stack && !t->leader_stack_bottom) {
            t->leader_stack_bottom = old_bottom;
            t->leader_stack_size = old_size;
        }
    }
#endif
    if (t->release) {
        qatomic_store_release(t->release, 0);
        t->release = NULL;
    }
    if (ret & COROUTINE_HOOK) {
        ret = (CoroutineAction)aioloop__co_switch_hook(ret);
    }
    return ret;
#endif
}

void aioloop__co_main(Coroutine *co)
{
#ifdef AIOLOOP_ASAN
    {
        const void *bottom;
        size_t size;
        CoroutineThread *t = co_thread_get_fresh();

        __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
        if (!t->leader_stack_bottom) {
            t->leader_stack_bottom = bottom;
            t->leader_stack_size = size;
        }
    }
#endif
    /* The switch that started us was an enter: nothing to release. */
    for (;;) {
        CoroutineThread *t;
        Coroutine *caller;

        co->entry(co->entry_arg);
        /* Back to whoever entered us, which recycles us (the hook); if
         * created again, we resume here with a new entry function. */
        t = co_thread_get_fresh();
        caller = qatomic_read(&co->caller);
        t->current = caller == &t->leader ? NULL : caller;
        QSIMPLEQ_CONCAT(&t->handoff, &co->co_queue_wakeup);
        t->finished = co;
        co_switch(co, caller, COROUTINE_TERMINATE | COROUTINE_HOOK, NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

static Coroutine *coroutine_new(void)
{
    size_t guard = page_aligned(COROUTINE_GUARD_SIZE);
    Coroutine *co = aioloop__calloc(1, sizeof(*co));
    char *mem;

    if (!co) {
        goto oom;
    }
    pthread_once(&segv_once, segv_install);
    int fault = AIOLOOP_FAULT(AIOLOOP_FAULT_CO_STACK);  /* tests only */
    if (fault) {
        errno = fault;
        mem = MAP_FAILED;
    } else {
        mem = mmap(NULL, COROUTINE_STACK_SIZE + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    }
    if (mem == MAP_FAILED) {
        free(co);
        goto oom;
    }
    /* The guard: an overflow faults here. */
    if (mprotect(mem, guard, PROT_NONE) != 0) {
        munmap(mem, COROUTINE_STACK_SIZE + guard);
        free(co);
        goto oom;
    }
    co->stack = mem + guard;
    co->stack_size = COROUTINE_STACK_SIZE;
#ifdef AIOLOOP_HAVE_VALGRIND
    co->valgrind_stack_id = VALGRIND_STACK_REGISTER(
        co->stack, (char *)co->stack + co->stack_size);
#endif
    QSIMPLEQ_INIT(&co->co_queue_wakeup);
    co->backend = aioloop__co_backend_new(co);
#ifdef AIOLOOP_TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
#endif
    return co;

oom:
    aioloop__oom("cannot allocate a coroutine stack: %s", strerror(errno));
}

static void coroutine_delete(Coroutine *co)
{
    size_t guard = page_aligned(COROUTINE_GUARD_SIZE);

#ifdef AIOLOOP_TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(co->valgrind_stack_id);
#endif
    aioloop__co_backend_delete(co->backend);
    munmap((char *)co->stack - guard, co->stack_size + guard);
    free(co);
}

Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque)
{
    CoroutineThread *t = co_thread_get();
    Coroutine *co = QSLIST_FIRST(&t->pool);

    if (unlikely(!entry)) {
        aioloop__misuse("qemu_coroutine_create", "NULL entry function");
    }
    if (co) {
        QSLIST_REMOVE_HEAD(&t->pool, pool_next);
        t->pool_size--;
    } else {
        co = coroutine_new();
    }
    co->entry = entry;
    co->entry_arg = opaque;
    /* A new coroutine starts with our FP control state, not with what
     * the pooled coroutine's previous user left set. */
    aioloop__co_backend_set_fpenv(co);
    qatomic_set(&co->caller, NULL);
    qatomic_set(&co->ctx, NULL);
    qatomic_set(&co->scheduled, NULL);
    qatomic_set(&co->running, 0);       /* no longer COROUTINE_FINISHED */
    return co;
}

static void coroutine_release(Coroutine *co)
{
    CoroutineThread *t = co_thread_get();

    if (t->pool_size < POOL_MAX) {
        QSLIST_INSERT_HEAD(&t->pool, co, pool_next);
        t->pool_size++;
    } else {
        coroutine_delete(co);
    }
}

/* ------------------------------------------------------------------ */
/* Entering and yielding                                               */

/*
 * The context whose loop the calling thread runs: the one it is inside
 * aio_poll() of, else its IOThread's, else the main context if this is
 * the thread that initialised the main loop. NULL for any other thread:
 * such a thread must not enter coroutines of a context directly, so
 * aio_co_enter() schedules them instead. A few thread-local loads (see
 * aio-internal.h and main-loop-internal.h): this runs on every
 * qemu_coroutine_enter().
 * current_ctx_base() leaves out the AsyncContext stack (current_ctx()).
 */
static inline AioContext *current_ctx_base(void)
{
    AioContext *ctx = aioloop__poll_ctx();

    if (!ctx) {
        ctx = aioloop__iothread_ctx();
    }
    if (!ctx && aioloop__in_main_thread()) {
        ctx = aioloop__main_loop_ctx_tls;   /* = qemu_get_aio_context() */
    }
    return ctx;
}

static inline AioContext *current_ctx(void)
{
    /* While an AsyncContext is pushed, the main-loop thread works for the
     * top of the stack even inside a lower level's loop. */
    return aioloop__async_context_adjust(current_ctx_base());
}

/* Whether @co is @self or one of the coroutines waiting, in this thread,
 * for @self to yield (entering it again would be recursion). */
static bool in_chain(Coroutine *self, Coroutine *co)
{
    for (; self; self = qatomic_read(&self->caller)) {
        if (self == co) {
            return true;
        }
    }
    return false;
}

static __attribute__((noreturn, noinline)) void finished_abort(
    const char *who, Coroutine *co)
{
    fprintf(stderr, "aioloop: %s: coroutine %p (entry %p, opaque %p) has "
            "finished: its entry function returned and the coroutine was "
            "freed for reuse; create a new one\n", who, (void *)co,
            (void *)(uintptr_t)co->entry, co->entry_arg);
    abort();
}

/* The unusual cases of entering @co from @self: report a bug, or wait
 * until @co has finished switching out in another thread. The checks are
 * not assertions: they hold with NDEBUG. */
static __attribute__((noinline)) void enter_check(Coroutine *self,
                                                  Coroutine *co)
{
    const char *sched = qatomic_read(&co->scheduled);

    if (qatomic_load_acquire(&co->running) == COROUTINE_FINISHED) {
        finished_abort("qemu_coroutine_enter", co);
    }
    if (sched) {
        aioloop__misuse("qemu_coroutine_enter", "coroutine %p (entry %p) "
                        "entered while scheduled by '%s'", (void *)co,
                        AIOLOOP_FN_PTR(co->entry), sched);
    }
    if (qatomic_load_acquire(&co->running)) {
        /* Legal only while it finishes yielding in another thread after
         * scheduling itself here (pairs with the release store of the
         * switch out of it in that thread); from this thread it is a
         * bug. */
        if (in_chain(self, co)) {
            aioloop__misuse("qemu_coroutine_enter", "coroutine %p (entry %p) "
                            "re-entered while active", (void *)co,
                            AIOLOOP_FN_PTR(co->entry));
        }
        /* A few instructions normally; if the other thread lost its CPU
         * mid-switch (both on one CPU), give it the CPU back. */
        for (int spins = 0; qatomic_load_acquire(&co->running); spins++) {
            if (spins < 100) {
                cpu_relax();
            } else {
                sched_yield();
            }
        }
    }
}

/*
 * Enter @co, which belongs to @ctx from now on unless @ctx is NULL. Ends
 * in a tail call to the switch (see co_switch()): nothing may follow it.
 * What the enterer must do after @co switches back (recycle it if it
 * terminated, enter the coroutines it woke) is aioloop__co_switch_hook()'s
 * job, and @co's `running` flag is cleared by the switch out of it.
 */
static inline __attribute__((always_inline)) void
co_enter(CoroutineThread *t, AioContext *ctx, Coroutine *co)
{
    Coroutine *self = t->current ? t->current : &t->leader;

    qatomic_set(&co->running, 1);
    qatomic_set(&co->caller, self);
    if (ctx) {
        qatomic_set(&co->ctx, ctx);
    }
    t->current = co;
    co_switch(self, co, COROUTINE_ENTER, NULL);
}

/* co_enter() after the checks of the unusual cases, out of line so that
 * the common path makes no call (and saves no registers) before its
 * tail call to the switch. */
static __attribute__((noinline)) void coroutine_enter_slow(AioContext *ctx,
                                                           Coroutine *co)
{
    CoroutineThread *t = co_thread_get();

    enter_check(t->current ? t->current : &t->leader, co);
    co_enter(t, ctx, co);
}

static inline __attribute__((always_inline)) void
coroutine_enter_in(AioContext *ctx, Coroutine *co)
{
    CoroutineThread *t = co_thread;

    if (unlikely(!t || qatomic_read(&co->scheduled) ||
                 qatomic_load_acquire(&co->running))) {
        coroutine_enter_slow(ctx, co);
        return;
    }
    co_enter(t, ctx, co);
}

long aioloop__co_switch_hook(long action)
{
    /* Runs in the enterer right after the switch back, in its thread. */
    CoroutineThread *t = co_thread_get();
    Coroutine *self = t->current ? t->current : &t->leader;
    Coroutine *done = t->finished;
    struct CoroutineWaitList pending;
    AioContext *ctx;

    if (done) {
        /* Off its stack now: recycle it. */
        t->finished = NULL;
        qatomic_set(&done->caller, NULL);
        qatomic_set(&done->running, COROUTINE_FINISHED);
        coroutine_release(done);
    }
    if (QSIMPLEQ_EMPTY(&t->handoff)) {
        return action & ~COROUTINE_HOOK;
    }
    if (self->draining) {
        /* We are already entering a hand-over, further up this stack:
         * these go first, in order (as if the coroutine that woke them
         * had been entered by that loop, which it was). */
        QSIMPLEQ_CONCAT(&t->handoff, self->draining);
        QSIMPLEQ_CONCAT(self->draining, &t->handoff);
        return action & ~COROUTINE_HOOK;
    }
    /* Enter them one by one; those they wake are handed to this loop
     * through the branch above, so the stack does not grow with chains
     * of wake-ups. The context is the thread's current one: aio_co_enter()
     * queued them only if they belong to it (or to none). */
    QSIMPLEQ_INIT(&pending);
    QSIMPLEQ_CONCAT(&pending, &t->handoff);
    self->draining = &pending;
    ctx = current_ctx();
    while (!QSIMPLEQ_EMPTY(&pending)) {
        Coroutine *co = QSIMPLEQ_FIRST(&pending);

        QSIMPLEQ_REMOVE_HEAD(&pending, co_queue_next);
        coroutine_enter_in(ctx, co);
    }
    self->draining = NULL;
    return action & ~COROUTINE_HOOK;
}

/* qemu_coroutine_enter() while an AsyncContext is pushed: out of line,
 * so that the common path makes no call before its tail call. */
static __attribute__((noinline)) void coroutine_enter_async(Coroutine *co)
{
    coroutine_enter_in(current_ctx(), co);
}

void qemu_coroutine_enter(Coroutine *co)
{
    if (unlikely(qatomic_read(&aioloop__async_depth))) {
        coroutine_enter_async(co);
        return;
    }
    coroutine_enter_in(current_ctx_base(), co);
}

void qemu_coroutine_enter_if_inactive(Coroutine *co)
{
    if (!qemu_coroutine_entered(co)) {
        qemu_coroutine_enter(co);
    }
}

static __attribute__((noreturn, noinline)) void yield_outside(void)
{
    aioloop__misuse("qemu_coroutine_yield", "called outside a coroutine");
}

void coroutine_fn qemu_coroutine_yield(void)
{
    /* A thread running a coroutine has its state already. */
    CoroutineThread *t = co_thread;
    Coroutine *self = t ? t->current : NULL;
    Coroutine *to;
    CoroutineAction action = COROUTINE_YIELD;

    if (unlikely(!self)) {
        yield_outside();
    }
    to = qatomic_read(&self->caller);
    qatomic_set(&self->caller, NULL);
    t->current = to == &t->leader ? NULL : to;
    if (unlikely(!QSIMPLEQ_EMPTY(&self->co_queue_wakeup))) {
        /* Ours to move while we run; the enterer enters them. */
        QSIMPLEQ_CONCAT(&t->handoff, &self->co_queue_wakeup);
        action |= COROUTINE_HOOK;
    }
    /* Tail call. When entered again we return from here, possibly in
     * another thread: nothing may follow (t would be stale). */
    co_switch(self, to, action, &self->running);
}

Coroutine *qemu_coroutine_self(void)
{
    return co_thread_get()->current;
}

bool qemu_in_coroutine(void)
{
    return co_thread_get()->current != NULL;
}

bool qemu_coroutine_entered(Coroutine *co)
{
    return qatomic_read(&co->caller) != NULL;
}

AioContext *qemu_coroutine_get_aio_context(Coroutine *co)
{
    return qatomic_read(&co->ctx);
}

/* ------------------------------------------------------------------ */
/* AioContext integration                                              */

void aioloop__co_schedule_bh(void *opaque)
{
    AioContext *ctx = opaque;
    QSLIST_HEAD(, Coroutine) lifo, fifo = QSLIST_HEAD_INITIALIZER(fifo);
    Coroutine *co;

    QSLIST_MOVE_ATOMIC(&lifo, &ctx->scheduled_coroutines);
    while ((co = QSLIST_FIRST(&lifo))) {
        QSLIST_REMOVE_HEAD(&lifo, co_scheduled_next);
        QSLIST_INSERT_HEAD(&fifo, co, co_scheduled_next);
    }
    while ((co = QSLIST_FIRST(&fifo))) {
        QSLIST_REMOVE_HEAD(&fifo, co_scheduled_next);
        qatomic_set(&co->scheduled, NULL);
        coroutine_enter_in(ctx, co);
        aioloop__report_progress(ctx);
        aio_context_unref(ctx);     /* taken by aio_co_schedule() */
    }
}

void aio_co_schedule(AioContext *ctx, Coroutine *co)
{
    const char *old;

    if (qatomic_read(&co->running) == COROUTINE_FINISHED) {
        finished_abort(__func__, co);
    }
    old = qatomic_cmpxchg(&co->scheduled, NULL, __func__);

    if (old) {
        aioloop__misuse("aio_co_schedule", "coroutine %p (entry %p) was "
                        "already scheduled in '%s'", (void *)co,
                        AIOLOOP_FN_PTR(co->entry), old);
    }
    /* Keep the context alive until the coroutine has been entered. */
    aio_context_ref(ctx);
    QSLIST_INSERT_HEAD_ATOMIC(&ctx->scheduled_coroutines, co,
                              co_scheduled_next);
    qemu_bh_schedule(ctx->co_schedule_bh);
}

void aio_co_enter(AioContext *ctx, Coroutine *co)
{
    CoroutineThread *t;

    if (ctx && ctx != current_ctx()) {
        aio_co_schedule(ctx, co);
        return;
    }
    t = co_thread_get();
    if (t->current) {
        /* Entered once the running coroutine yields (coroutine_enter_in);
         * a coroutine that enters itself would run again after its own
         * yield, as if woken: a bug in every build. */
        if (unlikely(t->current == co)) {
            aioloop__misuse("aio_co_enter", "coroutine %p (entry %p) "
                            "re-entered while active (it enters itself)",
                            (void *)co, AIOLOOP_FN_PTR(co->entry));
        }
        QSIMPLEQ_INSERT_TAIL(&t->current->co_queue_wakeup, co, co_queue_next);
    } else {
        coroutine_enter_in(ctx, co);
    }
}

void aio_co_wake(Coroutine *co)
{
    aio_co_enter(qatomic_read(&co->ctx), co);
}

void coroutine_fn aio_co_reschedule_self(AioContext *new_ctx)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self && new_ctx);
    if (qatomic_read(&self->ctx) == new_ctx && current_ctx() == new_ctx) {
        return;
    }
    /* Scheduling ourselves is allowed when we yield right after: the
     * other context's thread waits until we have switched out. */
    aio_co_schedule(new_ctx, self);
    qemu_coroutine_yield();
}

void qemu_coroutine_set_entry_arg(Coroutine *co, void *opaque)
{
    /* Read by aioloop__co_main() when the entry function starts. */
    co->entry_arg = opaque;
}
