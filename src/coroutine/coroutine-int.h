/*
 * coroutine-int.h - the inside of a Coroutine, shared by the core
 * (coroutine.c), the switch backends and the synchronisation primitives.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_COROUTINE_INT_H
#define AIOLOOP_COROUTINE_INT_H

#include <aioloop/coroutine.h>
#include "../aio-internal.h"

/* Saved machine state of a coroutine that is not running; one per
 * backend (coroutine-asm-x86_64.c or coroutine-ucontext.c). */
typedef struct CoroutineBackend CoroutineBackend;

struct Coroutine {
    CoroutineEntry *entry;
    void *entry_arg;
    Coroutine *caller;          /* who entered us; NULL when not entered */
    /* 1 from the moment it is entered until its enterer runs again, i.e.
     * until it has completely switched out (atomic). Another thread that
     * enters it through aio_co_schedule() waits for 0 first: the
     * coroutine may still be on its way out of qemu_coroutine_yield(). */
    int running;
    AioContext *ctx;            /* context it last ran in (atomic) */

    /* Set by aio_co_schedule() (its caller's name) until the scheduled
     * entry happens; catches double scheduling. Atomic. */
    const char *scheduled;

    /* Links. A coroutine is on at most one of these at a time. */
    QSIMPLEQ_ENTRY(Coroutine) co_queue_next;    /* CoQueue / CoMutex / wakeup */
    QSLIST_ENTRY(Coroutine) co_scheduled_next;  /* ctx->scheduled_coroutines */
    QSLIST_ENTRY(Coroutine) pool_next;          /* per-thread free pool */

    /* Coroutines to enter after this one yields (aio_co_enter from a
     * coroutine of the same context). Owned by the running thread. */
    QSIMPLEQ_HEAD(, Coroutine) co_queue_wakeup;

    /* Stack and machine state. */
    void *stack;                /* mmap'd, lowest page is the guard */
    size_t stack_size;          /* usable bytes above the guard */
    CoroutineBackend *backend;

    /* Sanitizer bookkeeping (unused unless built with ASan/TSan). */
    void *asan_fake_stack;
    void *tsan_fiber;
    unsigned valgrind_stack_id; /* AIOLOOP_HAVE_VALGRIND builds */
};

/* What a switch reports back to the side that resumes. */
typedef enum {
    COROUTINE_YIELD = 1,
    COROUTINE_TERMINATE = 2,
    COROUTINE_ENTER = 3,
} CoroutineAction;

/* Backend interface. */
CoroutineBackend *aioloop__co_backend_new(Coroutine *co);
void aioloop__co_backend_delete(CoroutineBackend *b);
/* Switch machine state from @from to @to; returns the action the other
 * side passed when it switched back to @from. (coroutine.c's co_switch()
 * adds the sanitizer annotations.) The asm backend is called inline. */
#ifdef AIOLOOP_CO_BACKEND_ASM
struct CoroutineBackend {
    void *sp;                   /* saved stack pointer while switched out */
};

long aioloop__asm_switch(void **save_sp, void *load_sp, long action);

static inline CoroutineAction aioloop__co_backend_switch(
    CoroutineBackend *from, CoroutineBackend *to, CoroutineAction action)
{
    return (CoroutineAction)aioloop__asm_switch(&from->sp, to->sp, action);
}
#else
CoroutineAction aioloop__co_backend_switch(CoroutineBackend *from,
                                           CoroutineBackend *to,
                                           CoroutineAction action);
#endif

/* Called on the new stack by the backend when a coroutine first runs. */
void aioloop__co_main(Coroutine *co) __attribute__((noreturn));

/* coroutine.c: the context a freshly entered coroutine belongs to. */
AioContext *aioloop__current_ctx(void);

#endif /* AIOLOOP_COROUTINE_INT_H */
