/*
 * co-rwlock.c - CoRwlock: a fair readers-writer lock for coroutines.
 *
 * State: owners (> 0: that many readers hold the lock; -1: a writer
 * holds it; 0: free) and a FIFO of tickets, one per waiting coroutine,
 * each on its waiter's stack. Both are protected by lock->lock, a
 * QemuMutex held for a few instructions only (never across a yield or a
 * wake-up), so coroutines of different contexts and threads may share a
 * CoRwlock.
 *
 * Fairness: a newcomer gets the lock at once only if nobody waits (so a
 * stream of readers cannot starve a queued writer). Whenever the state
 * changes (unlock, downgrade, an upgrade that has to queue), grant()
 * hands the lock to the head of the queue: one writer if the lock is
 * free, or every reader up to the next writer if no writer holds it.
 * The granter sets owners for them and marks their tickets granted, so a
 * woken waiter holds the lock as it returns; a waiter entered by anyone
 * else finds its ticket not granted and waits again.
 *
 * Waking: the granted coroutines are collected (through co_queue_next,
 * which they do not use while waiting here) and woken with aio_co_wake()
 * after the mutex is released: from a coroutine of the same context they
 * run when the current coroutine yields; from elsewhere they are
 * scheduled in their own context (see coroutine-sync.c on why waking a
 * coroutine that has not finished yielding is safe).
 *
 * Invariant (under lock->lock): tickets is non-empty only while the head
 * cannot be granted (owners == -1, or the head is a writer and
 * owners > 0).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "coroutine-int.h"

typedef QSIMPLEQ_HEAD(, Coroutine) WakeList;

/* Hand the lock to whoever heads the queue and may have it now. */
static void grant_locked(CoRwlock *lock, WakeList *wake)
{
    CoRwTicket *t;

    while ((t = QSIMPLEQ_FIRST(&lock->tickets))) {
        if (t->read) {
            if (lock->owners < 0) {
                break;
            }
            lock->owners++;
        } else {
            if (lock->owners != 0) {
                break;
            }
            lock->owners = -1;
        }
        QSIMPLEQ_REMOVE_HEAD(&lock->tickets, next);
        t->granted = true;
        QSIMPLEQ_INSERT_TAIL(wake, t->co, co_queue_next);
        if (!t->read) {
            break;
        }
    }
}

/* Release lock->lock, then wake the coroutines grant_locked() chose. */
static void unlock_and_wake(CoRwlock *lock, WakeList *wake)
{
    Coroutine *co;

    qemu_mutex_unlock(&lock->lock);
    while ((co = QSIMPLEQ_FIRST(wake))) {
        /* Unlink first: the wake may reuse co_queue_next. */
        QSIMPLEQ_REMOVE_HEAD(wake, co_queue_next);
        aio_co_wake(co);
    }
}

/* Queue @t (lock->lock held), release, and yield until it is granted. */
static void coroutine_fn wait_ticket(CoRwlock *lock, CoRwTicket *t,
                                     WakeList *wake)
{
    QSIMPLEQ_INSERT_TAIL(&lock->tickets, t, next);
    grant_locked(lock, wake);
    unlock_and_wake(lock, wake);
    for (;;) {
        bool granted;

        qemu_coroutine_yield();
        /* The mutex orders the granter's writes before our reads. */
        qemu_mutex_lock(&lock->lock);
        granted = t->granted;
        qemu_mutex_unlock(&lock->lock);
        if (granted) {
            return;
        }
    }
}

static Coroutine *self_or_die(const char *what)
{
    Coroutine *self = qemu_coroutine_self();

    if (!self) {
        fprintf(stderr, "aioloop: %s called outside a coroutine\n", what);
        abort();
    }
    return self;
}

void qemu_co_rwlock_init(CoRwlock *lock)
{
    qemu_mutex_init(&lock->lock);
    lock->owners = 0;
    QSIMPLEQ_INIT(&lock->tickets);
}

void qemu_co_rwlock_destroy(CoRwlock *lock)
{
    if (lock->owners != 0 || !QSIMPLEQ_EMPTY(&lock->tickets)) {
        fprintf(stderr, "aioloop: CoRwlock %p destroyed while held or "
                "waited for\n", (void *)lock);
        abort();
    }
    qemu_mutex_destroy(&lock->lock);
}

static void coroutine_fn take(CoRwlock *lock, bool read, const char *what)
{
    CoRwTicket t = { .read = read, .co = self_or_die(what) };
    WakeList wake = QSIMPLEQ_HEAD_INITIALIZER(wake);

    qemu_mutex_lock(&lock->lock);
    if (QSIMPLEQ_EMPTY(&lock->tickets) &&
        (read ? lock->owners >= 0 : lock->owners == 0)) {
        lock->owners = read ? lock->owners + 1 : -1;
        qemu_mutex_unlock(&lock->lock);
        return;
    }
    wait_ticket(lock, &t, &wake);
}

void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock)
{
    take(lock, true, __func__);
}

void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock)
{
    take(lock, false, __func__);
}

void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock)
{
    WakeList wake = QSIMPLEQ_HEAD_INITIALIZER(wake);

    self_or_die(__func__);
    qemu_mutex_lock(&lock->lock);
    if (lock->owners == 0) {
        qemu_mutex_unlock(&lock->lock);
        fprintf(stderr, "aioloop: CoRwlock %p unlocked while free\n",
                (void *)lock);
        abort();
    }
    lock->owners = lock->owners < 0 ? 0 : lock->owners - 1;
    grant_locked(lock, &wake);
    unlock_and_wake(lock, &wake);
}

void coroutine_fn qemu_co_rwlock_upgrade(CoRwlock *lock)
{
    CoRwTicket t = { .read = false, .co = self_or_die(__func__) };
    WakeList wake = QSIMPLEQ_HEAD_INITIALIZER(wake);

    qemu_mutex_lock(&lock->lock);
    assert(lock->owners > 0);
    if (lock->owners == 1 && QSIMPLEQ_EMPTY(&lock->tickets)) {
        lock->owners = -1;
        qemu_mutex_unlock(&lock->lock);
        return;
    }
    /* Give the read lock back and queue for the write lock: those who
     * waited before us go first, even if we were the only reader. */
    lock->owners--;
    wait_ticket(lock, &t, &wake);
}

void coroutine_fn qemu_co_rwlock_downgrade(CoRwlock *lock)
{
    WakeList wake = QSIMPLEQ_HEAD_INITIALIZER(wake);

    self_or_die(__func__);
    qemu_mutex_lock(&lock->lock);
    assert(lock->owners == -1);
    lock->owners = 1;
    grant_locked(lock, &wake);
    unlock_and_wake(lock, &wake);
}
