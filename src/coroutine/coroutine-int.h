/*
 * coroutine-int.h - the inside of a Coroutine, shared by the core
 * (coroutine.c), the switch backends and the synchronisation primitives.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_COROUTINE_INT_H
#define AIOLOOP_COROUTINE_INT_H

#include <aioloop/coroutine.h>
#include "../main-loop-internal.h"

/* Saved machine state of a coroutine that is not running, for the
 * ucontext backend (coroutine-ucontext.c); the asm backends keep only a
 * stack pointer, in the Coroutine itself (sp). */
typedef struct CoroutineBackend CoroutineBackend;

QSIMPLEQ_HEAD(CoroutineWaitList, Coroutine);

struct Coroutine {
    CoroutineEntry *entry;
    void *entry_arg;
    Coroutine *caller;          /* who entered us; NULL when not entered */
    /* 1 from the moment it is entered until the switch out of it has
     * left its stack (that switch stores 0 with release order).
     * Another thread that enters it through aio_co_schedule() waits for
     * 0 first (with acquire): it may still be on its way out of
     * qemu_coroutine_yield(). COROUTINE_FINISHED once its entry function
     * returned (set when it is recycled, back to 0 when it is created
     * again): entering it then aborts. Any nonzero value sends an enter
     * to the slow path, so the check costs the fast path nothing. */
    int running;
    AioContext *ctx;            /* context it last ran in (atomic) */

    /* Set by aio_co_schedule() (its caller's name) until the scheduled
     * entry happens; catches double scheduling. Atomic. */
    const char *scheduled;

#ifdef AIOLOOP_CO_BACKEND_ASM
    /* Saved stack pointer while switched out: the machine state is on
     * the coroutine's stack (one load from the switch, no indirection). */
    void *sp;
#endif

    /* Links. A coroutine is on at most one of these at a time. */
    QSIMPLEQ_ENTRY(Coroutine) co_queue_next;    /* CoQueue / CoMutex / wakeup */
    QSLIST_ENTRY(Coroutine) co_scheduled_next;  /* ctx->scheduled_coroutines */
    QSLIST_ENTRY(Coroutine) pool_next;          /* per-thread free pool */

    /* Coroutines to enter after this one yields (aio_co_enter from a
     * coroutine of the same context). Owned by the running thread. */
    QSIMPLEQ_HEAD(, Coroutine) co_queue_wakeup;

    /* While this coroutine (or a leader) enters the coroutines that one
     * it entered handed over (aioloop__co_switch_hook()), the ones still
     * to enter; a nested hand-over goes to the front. Running thread. */
    struct CoroutineWaitList *draining;

    /* Stack and machine state. */
    void *stack;                /* mmap'd above a guard of
                                 * COROUTINE_GUARD_SIZE bytes */
    size_t stack_size;          /* usable bytes above the guard */
    CoroutineBackend *backend;  /* ucontext backend; NULL with asm */

    /* Sanitizer bookkeeping (unused unless built with ASan/TSan). */
    void *asan_fake_stack;
    void *tsan_fiber;
    unsigned valgrind_stack_id; /* AIOLOOP_HAVE_VALGRIND builds */
};

/* Sanitizer builds: the switch goes through C so that ASan and TSan are
 * told about every stack change (coroutine.c's co_switch()). */
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

/*
 * AIOLOOP_CO_ASM_DIRECT: the asm switch does the whole switch protocol
 * itself (the release store and the post-switch hook below), so that
 * qemu_coroutine_enter() and qemu_coroutine_yield() can end in a tail
 * call to it. Off in sanitizer builds, where C code must run around every
 * switch, and with the ucontext backend.
 */
#if defined(AIOLOOP_CO_BACKEND_ASM) && !defined(AIOLOOP_ASAN) && \
    !defined(AIOLOOP_TSAN)
#define AIOLOOP_CO_ASM_DIRECT 1
#endif

/* Coroutine.running of a coroutine whose entry function returned. */
#define COROUTINE_FINISHED 2

/* What a switch reports back to the side that resumes. */
typedef enum {
    COROUTINE_YIELD = 1,
    COROUTINE_TERMINATE = 2,
    COROUTINE_ENTER = 3,
    /* Flag: the resumed side (an enterer) has work to do before it
     * returns: call aioloop__co_switch_hook(). The asm tests this bit. */
    COROUTINE_HOOK = 0x10,
} CoroutineAction;

/*
 * The post-switch hook, run by the enterer right after a coroutine it
 * entered switched back with COROUTINE_HOOK (it terminated, or it woke
 * coroutines with aio_co_enter() while it ran). Returns @action without
 * the flag. Called from the asm switch (AIOLOOP_CO_ASM_DIRECT) or from
 * coroutine.c's co_switch().
 */
long aioloop__co_switch_hook(long action);

/* Backend interface. new() prepares @co (NULL: a thread's own stack) to
 * start in aioloop__co_main() and returns its backend state, if any. */
CoroutineBackend *aioloop__co_backend_new(Coroutine *co);
void aioloop__co_backend_delete(CoroutineBackend *b);
/* Give the not yet started (or recycled, parked in aioloop__co_main())
 * @co the calling thread's floating-point control state (rounding mode,
 * exception masks, flush-to-zero), so that it starts with its
 * creator's. */
void aioloop__co_backend_set_fpenv(Coroutine *co);

/*
 * Switch machine state from @from to @to; returns the action the other
 * side passed when it switched back to @from.
 *
 * The asm backends (coroutine-asm-x86_64.c, coroutine-asm-aarch64.c)
 * implement aioloop__asm_switch(save_sp, load_sp, action, release):
 * save the callee-saved state on the current stack and the stack
 * pointer in *save_sp, load load_sp and restore the other side; then,
 * already on the other stack, store 0 to *release (a release store)
 * unless release is NULL; then, with AIOLOOP_CO_ASM_DIRECT, call
 * aioloop__co_switch_hook(action) if action has COROUTINE_HOOK; return
 * action to the resumed side. Called inline, no wrapper frame.
 */
#ifdef AIOLOOP_CO_BACKEND_ASM
long aioloop__asm_switch(void **save_sp, void *load_sp, long action,
                         int *release);

static inline CoroutineAction aioloop__co_backend_switch(
    Coroutine *from, Coroutine *to, CoroutineAction action)
{
    return (CoroutineAction)aioloop__asm_switch(&from->sp, to->sp, action,
                                                NULL);
}
#else
CoroutineAction aioloop__co_backend_switch(Coroutine *from, Coroutine *to,
                                           CoroutineAction action);
#endif

/* Called on the new stack by the backend when a coroutine first runs. */
void aioloop__co_main(Coroutine *co) __attribute__((noreturn));

#endif /* AIOLOOP_COROUTINE_INT_H */
