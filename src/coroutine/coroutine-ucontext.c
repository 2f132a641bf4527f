/*
 * coroutine-ucontext.c - the portable context switch, on ucontext.
 *
 * makecontext/swapcontext work on every POSIX-ish libc, at the price of
 * a system call per switch (swapcontext saves and restores the signal
 * mask). aioloop uses it where no hand-written switch exists, or when
 * the coroutine_backend option asks for it. makecontext passes only int
 * arguments, so the Coroutine pointer travels as two halves. The action
 * code is written into the resumed side's backend before the switch.
 *
 * swapcontext also switches the floating-point environment, so each
 * coroutine has its own. A coroutine that is (re)created gets its
 * creator's: aioloop__co_backend_set_fpenv() records it with
 * fegetenv() and the coroutine installs it with fesetenv() when it
 * first runs again (in the trampoline, or on return from the switch
 * that parked it in the pool).
 *
 * SPDX-License-Identifier: MIT
 */
#include <fenv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "coroutine-int.h"

struct CoroutineBackend {
    ucontext_t uc;
    CoroutineAction action;     /* set by whoever switches to us */
    bool fenv_pending;          /* install fenv when we run next */
    fenv_t fenv;
};

/* Called by the side that just resumed, with its own backend. */
static void apply_fenv(CoroutineBackend *b)
{
    if (b->fenv_pending) {
        b->fenv_pending = false;
        fesetenv(&b->fenv);
    }
}

void aioloop__co_backend_set_fpenv(Coroutine *co)
{
    fegetenv(&co->backend->fenv);
    co->backend->fenv_pending = true;
}

static void co_trampoline(int lo, int hi)
{
    uintptr_t p = ((uintptr_t)(unsigned)hi << 32) | (uintptr_t)(unsigned)lo;
    Coroutine *co = (Coroutine *)p;

    apply_fenv(co->backend);
    aioloop__co_main(co);
}

CoroutineBackend *aioloop__co_backend_new(Coroutine *co)
{
    CoroutineBackend *b = calloc(1, sizeof(*b));
    uintptr_t p = (uintptr_t)co;

    if (!b || getcontext(&b->uc) != 0) {
        fprintf(stderr, "aioloop: cannot create a coroutine context\n");
        abort();
    }
    if (!co) {
        return b;
    }
    b->uc.uc_link = NULL;
    b->uc.uc_stack.ss_sp = co->stack;
    b->uc.uc_stack.ss_size = co->stack_size;
    b->uc.uc_stack.ss_flags = 0;
    makecontext(&b->uc, (void (*)(void))co_trampoline, 2,
                (int)(uint32_t)p, (int)(uint32_t)((uint64_t)p >> 32));
    return b;
}

void aioloop__co_backend_delete(CoroutineBackend *b)
{
    free(b);
}

CoroutineAction aioloop__co_backend_switch(Coroutine *from_co,
                                           Coroutine *to_co,
                                           CoroutineAction action)
{
    CoroutineBackend *from = from_co->backend, *to = to_co->backend;

    to->action = action;
    if (swapcontext(&from->uc, &to->uc) != 0) {
        fprintf(stderr, "aioloop: swapcontext failed\n");
        abort();
    }
    apply_fenv(from);
    return from->action;
}
