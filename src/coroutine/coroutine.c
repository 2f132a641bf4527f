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
 * Thread-local variables and migration
 * ------------------------------------
 * A coroutine may yield in one thread and be entered again in another
 * (aio_co_schedule to an IOThread). The compiler may keep the address of
 * a thread-local variable in a register across a call, which would be
 * wrong after such a migration, so the thread-locals are only reached
 * through noinline accessors and never used across a switch.
 *
 * Stacks and the pool
 * -------------------
 * Stacks are mmap'd with a PROT_NONE guard page below them, so an
 * overflow faults instead of corrupting memory. A terminated coroutine
 * keeps its stack and goes to a per-thread pool (up to POOL_MAX); its
 * machine state stays inside aioloop__co_main()'s loop, so entering the
 * recycled coroutine simply calls the new entry function. Create + enter
 * + return therefore costs no allocation and no system call in steady
 * state. A thread's pool is freed when the thread exits.
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
 * goes through aioloop__co_switch(), which tells them. Valgrind must know
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <aioloop/main-loop.h>
#include "coroutine-int.h"
#include "../util/fault.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AIOLOOP_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define AIOLOOP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(AIOLOOP_ASAN)
#define AIOLOOP_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(AIOLOOP_TSAN)
#define AIOLOOP_TSAN 1
#endif
#ifdef AIOLOOP_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef AIOLOOP_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

#define COROUTINE_STACK_SIZE (1 << 20)
#define POOL_MAX 64

/* ------------------------------------------------------------------ */
/* Thread-local state, reached only through noinline accessors          */

typedef struct CoroutineThread {
    Coroutine *current;         /* running coroutine, NULL: the leader */
    Coroutine leader;
    QSLIST_HEAD(, Coroutine) pool;
    unsigned pool_size;
    bool initialized;
    const void *leader_stack_bottom;    /* ASan: the thread's own stack */
    size_t leader_stack_size;
} CoroutineThread;

static __thread CoroutineThread co_thread;
static pthread_key_t co_thread_key;
static pthread_once_t co_thread_once = PTHREAD_ONCE_INIT;

static void coroutine_delete(Coroutine *co);

static void co_thread_exit(void *opaque)
{
    CoroutineThread *t = opaque;
    Coroutine *co;

    while ((co = QSLIST_FIRST(&t->pool))) {
        QSLIST_REMOVE_HEAD(&t->pool, pool_next);
        coroutine_delete(co);
    }
    t->pool_size = 0;
    if (t->leader.backend) {
        aioloop__co_backend_delete(t->leader.backend);
        t->leader.backend = NULL;
    }
}

static void co_thread_key_init(void)
{
    pthread_key_create(&co_thread_key, co_thread_exit);
}

static void co_thread_init(CoroutineThread *t);

/*
 * The calling thread's state. Inline: callers use it only on one side of
 * a switch, or across a switch that provably resumes in the same thread
 * (an enterer waiting for the coroutine it entered). Code that may run in
 * a different thread after a switch uses co_thread_get_fresh().
 */
static inline CoroutineThread *co_thread_get(void)
{
    CoroutineThread *t = &co_thread;

    if (unlikely(!t->initialized)) {
        co_thread_init(t);
    }
    return t;
}

static __attribute__((noinline, unused)) CoroutineThread *
co_thread_get_fresh(void)
{
    __asm__ __volatile__("" : : : "memory");
    return co_thread_get();
}

static __attribute__((noinline)) void co_thread_init(CoroutineThread *t)
{
    {
        pthread_once(&co_thread_once, co_thread_key_init);
        pthread_setspecific(co_thread_key, t);
        QSLIST_INIT(&t->pool);
        t->leader.backend = aioloop__co_backend_new(NULL);
        QSIMPLEQ_INIT(&t->leader.co_queue_wakeup);
#ifdef AIOLOOP_TSAN
        t->leader.tsan_fiber = __tsan_get_current_fiber();
#endif
        t->initialized = true;
    }
}

/* ------------------------------------------------------------------ */
/* Switching                                                           */

static CoroutineAction co_switch(Coroutine *from, Coroutine *to,
                                 CoroutineAction action)
{
    CoroutineAction ret;
#ifdef AIOLOOP_ASAN
    CoroutineThread *t = co_thread_get_fresh();
    const void *bottom = to->stack ? (char *)to->stack : t->leader_stack_bottom;
    size_t size = to->stack ? to->stack_size : t->leader_stack_size;

    /* A terminating coroutine's fake stack can go (NULL save slot). */
    __sanitizer_start_switch_fiber(action == COROUTINE_TERMINATE ? NULL
                                   : &from->asan_fake_stack, bottom, size);
#endif
#ifdef AIOLOOP_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ret = aioloop__co_backend_switch(from->backend, to->backend, action);
#ifdef AIOLOOP_ASAN
    {
        const void *old_bottom;
        size_t old_size;
        CoroutineThread *t2 = co_thread_get_fresh();

        __sanitizer_finish_switch_fiber(from->asan_fake_stack, &old_bottom,
                                        &old_size);
        /* Coming back to the leader tells us where the thread stack is. */
        if (!from->stack) {
            (void)old_bottom;
        } else if (!t2->leader_stack_bottom) {
            t2->leader_stack_bottom = old_bottom;
            t2->leader_stack_size = old_size;
        }
    }
#endif
    return ret;
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
    for (;;) {
        co->entry(co->entry_arg);
        /* Back to whoever entered us; if recycled, we resume here with a
         * new entry function. */
        co_switch(co, qatomic_read(&co->caller), COROUTINE_TERMINATE);
    }
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

static Coroutine *coroutine_new(void)
{
    long page = sysconf(_SC_PAGESIZE);
    Coroutine *co = calloc(1, sizeof(*co));
    char *mem;

    if (!co) {
        goto oom;
    }
    int fault = AIOLOOP_FAULT(AIOLOOP_FAULT_CO_STACK);  /* test build */
    if (fault) {
        errno = fault;
        mem = MAP_FAILED;
    } else {
        mem = mmap(NULL, COROUTINE_STACK_SIZE + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    }
    if (mem == MAP_FAILED) {
        free(co);
        goto oom;
    }
    /* The guard page: an overflow faults here. */
    if (mprotect(mem, page, PROT_NONE) != 0) {
        munmap(mem, COROUTINE_STACK_SIZE + page);
        free(co);
        goto oom;
    }
    co->stack = mem + page;
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
    fprintf(stderr, "aioloop: cannot allocate a coroutine stack: %s\n",
            strerror(errno));
    abort();
}

static void coroutine_delete(Coroutine *co)
{
    long page = sysconf(_SC_PAGESIZE);

#ifdef AIOLOOP_TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
#endif
#ifdef AIOLOOP_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(co->valgrind_stack_id);
#endif
    aioloop__co_backend_delete(co->backend);
    munmap((char *)co->stack - page, co->stack_size + page);
    free(co);
}

Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque)
{
    CoroutineThread *t = co_thread_get();
    Coroutine *co = QSLIST_FIRST(&t->pool);

    assert(entry);
    if (co) {
        QSLIST_REMOVE_HEAD(&t->pool, pool_next);
        t->pool_size--;
    } else {
        co = coroutine_new();
    }
    co->entry = entry;
    co->entry_arg = opaque;
    qatomic_set(&co->caller, NULL);
    qatomic_set(&co->ctx, NULL);
    qatomic_set(&co->scheduled, NULL);
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
 * aio_co_enter() schedules them instead.
 */
AioContext *aioloop__current_ctx(void)
{
    AioContext *ctx = aioloop__poll_ctx();

    if (!ctx) {
        ctx = aioloop__iothread_ctx();
    }
    if (!ctx && aioloop__in_main_thread()) {
        ctx = qemu_get_aio_context();
    }
    /* While an AsyncContext is pushed, the main-loop thread works for the
     * top of the stack even inside a lower level's loop. */
    return aioloop__async_context_adjust(ctx);
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

static void coroutine_enter_in(AioContext *ctx, Coroutine *co)
{
    CoroutineThread *t = co_thread_get();
    Coroutine *self = t->current ? t->current : &t->leader;
    QSIMPLEQ_HEAD(, Coroutine) pending = QSIMPLEQ_HEAD_INITIALIZER(pending);

    QSIMPLEQ_INSERT_TAIL(&pending, co, co_queue_next);
    while (!QSIMPLEQ_EMPTY(&pending)) {
        Coroutine *to = QSIMPLEQ_FIRST(&pending);
        const char *sched = qatomic_read(&to->scheduled);
        CoroutineAction ret;

        QSIMPLEQ_REMOVE_HEAD(&pending, co_queue_next);
        if (sched) {
            fprintf(stderr, "aioloop: coroutine entered while scheduled by "
                    "'%s'\n", sched);
            abort();
        }
        if (qatomic_load_acquire(&to->running)) {
            /* Legal only while it finishes yielding in another thread
             * after scheduling itself here (pairs with the release below
             * in that thread); from this thread it is a bug. */
            if (in_chain(self, to)) {
                fprintf(stderr, "aioloop: coroutine re-entered while "
                        "active\n");
                abort();
            }
            /* A few instructions normally; if the other thread lost its
             * CPU mid-switch (both on one CPU), give it the CPU back. */
            for (int spins = 0; qatomic_load_acquire(&to->running); spins++) {
                if (spins < 100) {
                    cpu_relax();
                } else {
                    sched_yield();
                }
            }
        }
        qatomic_set(&to->running, 1);
        qatomic_set(&to->caller, self);
        if (ctx) {
            qatomic_set(&to->ctx, ctx);
        }
        t->current = to;
        ret = co_switch(self, to, COROUTINE_ENTER);
        /* Back in the thread that entered `to` (a coroutine never moves
         * while it waits for one it entered), and `to` is off its stack. */
        t->current = self == &t->leader ? NULL : self;

        /* Coroutines `to` woke while it ran go first, in order. */
        if (!QSIMPLEQ_EMPTY(&to->co_queue_wakeup)) {
            QSIMPLEQ_CONCAT(&to->co_queue_wakeup, &pending);
            QSIMPLEQ_CONCAT(&pending, &to->co_queue_wakeup);
        }
        if (ret == COROUTINE_TERMINATE) {
            qatomic_set(&to->caller, NULL);
            qatomic_set(&to->running, 0);
            coroutine_release(to);
        } else {
            /* Last touch of `to`: another thread may enter it as soon as
             * this is seen (pairs with the acquire loads above). */
            qatomic_store_release(&to->running, 0);
        }
    }
}

void qemu_coroutine_enter(Coroutine *co)
{
    coroutine_enter_in(aioloop__current_ctx(), co);
}

void qemu_coroutine_enter_if_inactive(Coroutine *co)
{
    if (!qemu_coroutine_entered(co)) {
        qemu_coroutine_enter(co);
    }
}

void coroutine_fn qemu_coroutine_yield(void)
{
    CoroutineThread *t = co_thread_get();
    Coroutine *self = t->current;
    Coroutine *to;

    if (!self) {
        fprintf(stderr, "aioloop: qemu_coroutine_yield outside a coroutine\n");
        abort();
    }
    to = qatomic_read(&self->caller);
    qatomic_set(&self->caller, NULL);
    t->current = to == &t->leader ? NULL : to;
    co_switch(self, to, COROUTINE_YIELD);
    /* Possibly in another thread now: do not reuse t. */
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
    const char *old = qatomic_cmpxchg(&co->scheduled, NULL, __func__);

    if (old) {
        fprintf(stderr, "aioloop: coroutine was already scheduled in '%s'\n",
                old);
        abort();
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

    if (ctx && ctx != aioloop__current_ctx()) {
        aio_co_schedule(ctx, co);
        return;
    }
    t = co_thread_get();
    if (t->current) {
        /* Entered once the running coroutine yields (coroutine_enter_in). */
        assert(t->current != co);
        QSIMPLEQ_INSERT_TAIL(&t->current->co_queue_wakeup, co, co_queue_next);
    } else {
        coroutine_enter_in(ctx, co);
    }
}

void aio_co_wake(Coroutine *co)
{
    aio_co_enter(qatomic_read(&co->ctx), co);
}
