/*
 * rfifolock.c - recursive FIFO lock with a contention callback.
 *
 * Design
 * ------
 * The lock is the word `owner`: 0 when free, otherwise the owning thread's
 * token (the address of a thread-local variable, unique among live
 * threads). `nesting` counts recursive acquisitions and is touched only by
 * the owner, so it needs no atomics: ownership passes from one thread to
 * the next through the release store of `owner` in unlock and the acquire
 * CAS that takes it, which orders the old owner's accesses before the new
 * owner's.
 *
 * Fast path (no contention): lock is "owner == me? nesting++" or, when
 * nobody is queued (waiters == 0), one CAS of owner from 0 to me. Unlock is
 * "--nesting; store owner = 0; load waiters" and nothing more when waiters
 * is 0. No mutex, no system call.
 *
 * Slow path (queueing): under the internal mutex a thread increments
 * `waiters` and draws a ticket. It may take the lock only when its ticket
 * is the one being served and owner is 0; otherwise it runs the contention
 * callback and sleeps on the condition variable. Tickets are served in
 * order, and fast-path newcomers back off while anyone is queued, so
 * queued threads get the lock in arrival order.
 *
 * The wake-up handshake is Dekker's pattern on two words, using only
 * sequentially consistent operations (no standalone fences, so
 * ThreadSanitizer follows it):
 *
 *     waiter (mutex held)              unlocker
 *     waiters++            (A)         owner = 0            (C)
 *     CAS owner 0 -> me    (B)         if (waiters > 0)     (D)
 *     else: sleep on cond                  broadcast under the mutex
 *
 * In the single total order of seq_cst operations, either A comes before
 * D - then the unlocker sees the waiter and broadcasts, and since the
 * waiter holds the mutex from A until cond_wait releases it, the
 * broadcast cannot slip in before the waiter sleeps - or D comes before
 * A, so C comes before B and the waiter's CAS finds the lock free (or
 * taken by a thread whose own unlock will go through the same handshake).
 * A queued thread whose ticket is not yet served does not CAS; it relies
 * on the served thread's eventual unlock, which sees waiters > 0 because
 * the queued thread incremented it under the mutex before the served
 * thread left the slow path.
 *
 * Invariants:
 *   - owner != 0 exactly when some thread holds the lock, and then
 *     nesting >= 1 (written by that thread only).
 *   - waiters == number of threads between "waiters++" and "waiters--"
 *     in rfifolock_lock's slow path.
 *   - serving <= next_ticket (mod 2^32), both under `lock`.
 *   - The contention callback runs with `lock` held.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>

#include <aioloop/atomic.h>
#include <aioloop/rfifolock.h>
#include "rfifolock-internal.h"

/* Its address identifies the calling thread; it is never read or written.
 * Initial-exec: taking its address is an add to the thread pointer, even
 * in the shared library (the default model there calls __tls_get_addr,
 * twice per aio_poll(): acquire and release). One byte of the static TLS
 * area; see AIOLOOP_TLS_FAST in aio-internal.h. */
__thread char aioloop__rfifolock_token
    __attribute__((visibility("hidden"), tls_model("initial-exec")));

static inline uintptr_t self_token(void)
{
    return aioloop__rfifolock_self();
}

void rfifolock_init(RFifoLock *r, void (*cb)(void *), void *opaque)
{
    r->owner = 0;
    r->nesting = 0;
    r->waiters = 0;
    qemu_mutex_init(&r->lock);
    qemu_cond_init(&r->cond);
    r->next_ticket = 0;
    r->serving = 0;
    r->cb = cb;
    r->cb_opaque = opaque;
}

void rfifolock_destroy(RFifoLock *r)
{
    if (qatomic_mb_read(&r->owner) != 0 || qatomic_mb_read(&r->waiters) != 0) {
        fprintf(stderr, "aioloop: rfifolock_destroy: lock %p is held or "
                "has waiters\n", (void *)r);
        abort();
    }
    qemu_cond_destroy(&r->cond);
    qemu_mutex_destroy(&r->lock);
}

/* Queue behind earlier waiters and take the lock in ticket order. */
void aioloop__rfifolock_lock_slow(RFifoLock *r, uintptr_t self)
{
    unsigned int ticket;

    qemu_mutex_lock(&r->lock);
    /* (A): pairs with (D), the waiters load in rfifolock_unlock(). It also
     * turns away fast-path newcomers, which keeps the queue FIFO. */
    qatomic_inc(&r->waiters);
    ticket = r->next_ticket++;
    for (;;) {
        if (r->serving == ticket) {
            uintptr_t expected = 0;

            /* (B): pairs with (C), the owner store in rfifolock_unlock().
             * Acquires the previous owner's critical section. */
            if (__atomic_compare_exchange_n(&r->owner, &expected, self,
                                            false, __ATOMIC_SEQ_CST,
                                            __ATOMIC_SEQ_CST)) {
                break;
            }
        }
        if (r->cb) {
            r->cb(r->cb_opaque);
        }
        qemu_cond_wait(&r->cond, &r->lock);
    }
    r->serving++;
    qatomic_dec(&r->waiters);
    /* Waiters with later tickets wait for our unlock: it sees them in
     * `waiters` and broadcasts. */
    qemu_mutex_unlock(&r->lock);
    r->nesting = 1;
}

void aioloop__rfifolock_lock(RFifoLock *r)
{
    aioloop__rfifolock_lock_inline(r);
}

void rfifolock_lock(RFifoLock *r)
{
    aioloop__rfifolock_lock(r);
}

/* A release by a thread that does not own @r: name @what @obj and stop. */
static AIOLOOP_NORETURN __attribute__((noinline, cold))
void unlock_not_owner(const char *func, const char *what, const void *obj,
                      uintptr_t owner)
{
    fprintf(stderr, "aioloop: %s: %s %p is %s\n", func, what, obj,
            owner ? "held by another thread"
                  : "not held (a release without its acquire)");
    abort();
}

static inline __attribute__((always_inline))
void unlock_common(RFifoLock *r, bool is_ctx)
{
    uintptr_t owner = qatomic_read(&r->owner);

    if (unlikely(owner != self_token())) {
        if (is_ctx) {
            unlock_not_owner("aio_context_release", "AioContext",
                             r->cb_opaque, owner);
        }
        unlock_not_owner("rfifolock_unlock", "lock", r, owner);
    }
    if (--r->nesting > 0) {
        return;
    }
    /* (C): pairs with (B) in rfifolock_lock_slow() and with the fast-path
     * CAS; releases our critical section to the next owner. */
    qatomic_mb_set(&r->owner, 0);
    /* (D): pairs with (A) in rfifolock_lock_slow(). */
    if (qatomic_mb_read(&r->waiters) > 0) {
        aioloop__rfifolock_wake(r);
    }
}

void aioloop__rfifolock_wake(RFifoLock *r)
{
    qemu_mutex_lock(&r->lock);
    qemu_cond_broadcast(&r->cond);
    qemu_mutex_unlock(&r->lock);
}

void aioloop__rfifolock_unlock_ctx_misuse(RFifoLock *r, uintptr_t owner)
{
    unlock_not_owner("aio_context_release", "AioContext", r->cb_opaque,
                     owner);
}

void rfifolock_unlock(RFifoLock *r)
{
    unlock_common(r, false);
}

void aioloop__rfifolock_unlock_ctx(RFifoLock *r)
{
    unlock_common(r, true);
}

bool aioloop__rfifolock_nested_and_contended(RFifoLock *r)
{
    /* nesting: written by the owner only, and the caller is the owner.
     * waiters: seq_cst, see the header. */
    return r->nesting > 1 && qatomic_mb_read(&r->waiters) > 0;
}

bool rfifolock_held_by_self(RFifoLock *r)
{
    return qatomic_read(&r->owner) == self_token();
}
