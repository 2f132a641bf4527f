/*
 * aioloop/rfifolock.h - a recursive, first-in-first-out fair lock with a
 * contention callback.
 *
 * Design
 * ------
 * aio_context_acquire()/aio_context_release() need a lock with three
 * properties a pthread mutex lacks:
 *
 *   recursive    the owner may take it again (callbacks run by aio_poll
 *                acquire the context the poller already holds);
 *   FIFO-fair    threads that had to wait get it in arrival order, so a
 *                busy loop thread that releases and re-acquires in a tight
 *                loop cannot starve another thread forever;
 *   contention   each time a thread is about to sleep waiting for it, a
 *   callback     user callback runs. The event loop passes one that wakes
 *                the owner if it sleeps in a blocking aio_poll(), which
 *                would otherwise hold the lock until some unrelated event
 *                arrived (the deadlock described by the AioContext seeds).
 *
 * It is also cheap when uncontended: acquire and release are each one
 * atomic operation, with no mutex and no system call, because aio_poll()
 * takes and drops the context lock on every iteration. The internal mutex
 * and condition variable are used only when a thread has to wait. The
 * protocol is described in src/util/rfifolock.c.
 *
 * Fairness caveat: FIFO order holds among threads that found the lock
 * contended and queued. A thread that arrives while nobody is queued may
 * take a just-released lock directly (that is the fast path); it never
 * overtakes a thread already queued.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_RFIFOLOCK_H
#define AIOLOOP_RFIFOLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <aioloop/compiler.h>
#include <aioloop/thread.h>

/* A recursive FIFO-fair lock (see above); the fields are the library's. */
typedef struct RFifoLock {
    uintptr_t owner;            /* owner's thread token, 0 = free; atomic */
    unsigned int nesting;       /* recursion depth; owner only */
    unsigned int waiters;       /* threads queued in the slow path; atomic */
    QemuMutex lock;             /* protects the tickets; waits on cond */
    QemuCond cond;              /* broadcast when a queued thread may go */
    unsigned int next_ticket;   /* ticket for the next queued thread; lock */
    unsigned int serving;       /* ticket allowed to take the lock; lock */
    void (*cb)(void *);         /* contention callback, may be NULL */
    void *cb_opaque;            /* the contention callback's argument */
} RFifoLock;

/*
 * rfifolock_init - initialise r, unlocked. cb, if not NULL, is called with
 * opaque by a thread that finds the lock held by another thread, each time
 * just before it sleeps waiting for it (so possibly several times per
 * acquisition). cb runs while an internal mutex of r is held: it must not
 * call back into r, and it must not block; waking another thread (for
 * instance with aio_notify() or event_notifier_set()) is what it is for.
 *
 * Any thread.
 */
AIOLOOP_API void rfifolock_init(RFifoLock *r, void (*cb)(void *),
                                void *opaque);

/*
 * rfifolock_destroy - release the resources of an unlocked RFifoLock that
 * no thread waits for. Destroying a held lock aborts.
 *
 * Any thread.
 */
AIOLOOP_API void rfifolock_destroy(RFifoLock *r);

/*
 * rfifolock_lock - acquire r. If the calling thread already owns it, the
 * nesting depth goes up by one and the call returns at once. Otherwise it
 * waits (calling the contention callback before each sleep) until every
 * thread queued before it has had its turn, then takes it.
 *
 * Any thread.
 */
AIOLOOP_API void rfifolock_lock(RFifoLock *r);

/*
 * rfifolock_unlock - undo one rfifolock_lock() by the calling thread; the
 * lock is released when the nesting depth drops to zero, and the first
 * queued thread, if any, gets it next. Calling it from a thread that does
 * not own r is a programming error: it prints a message and aborts.
 *
 * Any thread.
 */
AIOLOOP_API void rfifolock_unlock(RFifoLock *r);

/*
 * rfifolock_held_by_self - tell whether the calling thread owns r.
 *
 * Returns true if it does (at any nesting depth).
 *
 * Any thread.
 */
AIOLOOP_API bool rfifolock_held_by_self(RFifoLock *r);

#endif /* AIOLOOP_RFIFOLOCK_H */
