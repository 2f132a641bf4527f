/*
 * co-queue-lockable.c - CoQueue waits and wake-ups that release any lock
 * (a QemuLockable: QemuMutex, QemuRecMutex, QemuSpin or CoMutex), QEMU's
 * qemu_co_queue_wait() / qemu_co_enter_next() / qemu_co_enter_all() of
 * 2.12 on.
 *
 * The rules are coroutine-sync.c's for qemu_co_queue_wait(): the waiter
 * queues itself before it releases the lock, so a waker that takes the
 * lock after the release finds it on the queue; the waker unlinks a
 * waiter before it wakes it (the wake may reuse co_queue_next). The
 * wakers here release the caller's lock around the wake-up, as QEMU's
 * do, so that a waiter entered at once can take it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>

#include <aioloop/lockable.h>
#include "coroutine-int.h"

void coroutine_fn qemu_co_queue_wait_impl(CoQueue *queue, QemuLockable *lock,
                                          CoQueueWaitFlags flags)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self != NULL);
    if (flags & CO_QUEUE_WAIT_FRONT) {
        QSIMPLEQ_INSERT_HEAD(&queue->entries, self, co_queue_next);
    } else {
        QSIMPLEQ_INSERT_TAIL(&queue->entries, self, co_queue_next);
    }
    if (lock) {
        qemu_lockable_unlock(lock);
    }
    qemu_coroutine_yield();
    if (lock) {
        qemu_lockable_lock(lock);
    }
}

bool qemu_co_enter_next_impl(CoQueue *queue, QemuLockable *lock)
{
    Coroutine *next = QSIMPLEQ_FIRST(&queue->entries);

    if (!next) {
        return false;
    }
    QSIMPLEQ_REMOVE_HEAD(&queue->entries, co_queue_next);
    if (lock) {
        qemu_lockable_unlock(lock);
    }
    aio_co_wake(next);
    if (lock) {
        qemu_lockable_lock(lock);
    }
    return true;
}

void qemu_co_enter_all_impl(CoQueue *queue, QemuLockable *lock)
{
    /* Only those waiting now: a woken waiter that waits again is not
     * woken a second time by this call. */
    QSIMPLEQ_HEAD(, Coroutine) woken = QSIMPLEQ_HEAD_INITIALIZER(woken);
    Coroutine *co;

    QSIMPLEQ_CONCAT(&woken, &queue->entries);
    if (QSIMPLEQ_EMPTY(&woken)) {
        return;
    }
    if (lock) {
        qemu_lockable_unlock(lock);
    }
    while ((co = QSIMPLEQ_FIRST(&woken)) != NULL) {
        QSIMPLEQ_REMOVE_HEAD(&woken, co_queue_next);
        aio_co_wake(co);
    }
    if (lock) {
        qemu_lockable_lock(lock);
    }
}
