/*
 * rfifolock-internal.h - the library's own entry into rfifolock.c. Not
 * installed; not part of the ABI (hidden, aioloop__ prefix).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RFIFOLOCK_INTERNAL_H
#define AIOLOOP_RFIFOLOCK_INTERNAL_H

#include <aioloop/rfifolock.h>

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
