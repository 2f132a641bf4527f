/*
 * rfifolock-internal.h - the library's own entry into rfifolock.c. Not
 * installed; not part of the ABI (hidden, aioloop__ prefix).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RFIFOLOCK_INTERNAL_H
#define AIOLOOP_RFIFOLOCK_INTERNAL_H

#include <stdint.h>
#include <aioloop/atomic.h>
#include <aioloop/compiler.h>
#include <aioloop/rfifolock.h>

/* The calling thread's token: the address of this thread-local byte
 * (never read or written). Initial-exec: taking its address is an add to
 * the thread pointer, even in the shared library (one byte of the static
 * TLS area; see AIOLOOP_TLS_FAST in aio-internal.h). */
extern __thread char aioloop__rfifolock_token
    __attribute__((visibility("hidden"), tls_model("initial-exec")));

static inline uintptr_t aioloop__rfifolock_self(void)
{
    return (uintptr_t)&aioloop__rfifolock_token;
}

/* The out-of-line halves of the inline fast paths below (rfifolock.c):
 * queue for the lock; wake the queued threads after a release; report a
 * release of an AioContext's lock by a thread that does not hold it. */
void aioloop__rfifolock_lock_slow(RFifoLock *r, uintptr_t self);
void aioloop__rfifolock_wake(RFifoLock *r);
AIOLOOP_NORETURN __attribute__((cold))
void aioloop__rfifolock_unlock_ctx_misuse(RFifoLock *r, uintptr_t owner);

/*
 * aioloop__rfifolock_lock_inline - aioloop__rfifolock_lock() inlined into
 * its caller (aio_poll(), which takes and releases the context on every
 * call): the fast path, with the same loads, CAS and orderings as
 * described in rfifolock.c; queueing stays out of line.
 *
 * Any thread.
 */
static inline void aioloop__rfifolock_lock_inline(RFifoLock *r)
{
    uintptr_t self = aioloop__rfifolock_self();
    uintptr_t expected = 0;

    /* Only this thread can have stored `self`, so a relaxed load that
     * reads it proves ownership. */
    if (qatomic_read(&r->owner) == self) {
        r->nesting++;
        return;
    }
    /* Fast path: nobody queued and the lock free. seq_cst (free on x86):
     * the event loop orders its handler-list loads after it. Pairs with the
     * release half of (C) in the previous owner's unlock. */
    if (likely(qatomic_read(&r->waiters) == 0 &&
               __atomic_compare_exchange_n(&r->owner, &expected, self, false,
                                           __ATOMIC_SEQ_CST,
                                           __ATOMIC_RELAXED))) {
        r->nesting = 1;
        return;
    }
    aioloop__rfifolock_lock_slow(r, self);
}

/*
 * aioloop__rfifolock_unlock_ctx_inline - aioloop__rfifolock_unlock_ctx()
 * inlined into its caller: the same steps (C) and (D) of rfifolock.c;
 * waking queued threads and the misuse report stay out of line.
 *
 * Any thread (the owner).
 */
static inline void aioloop__rfifolock_unlock_ctx_inline(RFifoLock *r)
{
    uintptr_t owner = qatomic_read(&r->owner);

    if (unlikely(owner != aioloop__rfifolock_self())) {
        aioloop__rfifolock_unlock_ctx_misuse(r, owner);
    }
    if (--r->nesting > 0) {
        return;
    }
    /* (C): pairs with (B) in rfifolock_lock_slow() and with the fast-path
     * CAS; releases our critical section to the next owner. */
    qatomic_mb_set(&r->owner, 0);
    /* (D): pairs with (A) in rfifolock_lock_slow(). */
    if (unlikely(qatomic_mb_read(&r->waiters) > 0)) {
        aioloop__rfifolock_wake(r);
    }
}

/*
 * aioloop__rfifolock_lock - rfifolock_lock() under a hidden name, so that
 * the library's own hot callers (aio_poll(), aio_context_acquire()) reach
 * it with a direct call instead of through the shared library's PLT.
 *
 * Any thread.
 */
void aioloop__rfifolock_lock(RFifoLock *r);

/*
 * aioloop__rfifolock_unlock_ctx - rfifolock_unlock() of an AioContext's
 * lock, for aio_context_release(): the same code on the same path, but a
 * release by a thread that does not hold the lock is reported as
 * "aioloop: aio_context_release: AioContext <address> is ...", naming the
 * context, which is the argument of the lock's contention callback
 * (r->cb_opaque; see aio_context_new()). Costs nothing over
 * rfifolock_unlock(): only the report differs.
 *
 * Any thread (the owner).
 */
void aioloop__rfifolock_unlock_ctx(RFifoLock *r);

/*
 * aioloop__rfifolock_nested_and_contended - whether the calling thread,
 * which holds @r, holds it more than once (its caller took it too) while
 * another thread is queued for it. The load of the queue is seq_cst: it
 * pairs with the queued thread's seq_cst increment (step (A) in
 * rfifolock.c) that precedes its contention callback, so a caller that
 * announced something (aio_poll()'s notify_me) before asking either sees
 * the thread queued or is seen by that callback. For aio_poll(), which
 * must not sleep holding the context of a thread queued for it.
 *
 * Any thread (the owner).
 */
bool aioloop__rfifolock_nested_and_contended(RFifoLock *r);

#endif /* AIOLOOP_RFIFOLOCK_INTERNAL_H */
