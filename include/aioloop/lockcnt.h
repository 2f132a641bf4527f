/*
 * aioloop/lockcnt.h - QemuLockCnt: a visitor count with a lock for the
 * one who frees.
 *
 * Design
 * ------
 * A list that many readers walk while one writer may retire nodes needs
 * to know when no reader is left on a retired node. QemuLockCnt pairs a
 * counter of "visitors" (readers inside a walk) with a mutex:
 *
 *   walker:   qemu_lockcnt_inc(&lc);  walk ...;  qemu_lockcnt_dec(&lc);
 *   remover:  unlink the node (atomically, readers may still see it);
 *             if (qemu_lockcnt_dec_if_lock(&lc)) {   - or, for a remover
 *                 free retired nodes;                   that is itself a
 *                 qemu_lockcnt_inc_and_unlock(&lc);     visitor, with
 *             }                                         dec_and_lock()
 *
 * The rule that makes it work: a visitor that arrives while the count
 * is zero and the mutex is held waits for the mutex to be released (so
 * it cannot see a node being freed); a visitor that arrives while the
 * count is already positive goes in at once, lock or no lock (the
 * holder then knows someone is walking and must not free). So the
 * count is zero *and* the lock held exactly while someone frees, and
 * walkers pay one atomic read-modify-write each way when nobody frees.
 *
 * These are QEMU's names and semantics (QEMU 2.9 on, include/qemu/
 * thread.h; qemu/lockcnt.h since 9.2). The implementation is one 32-bit
 * word updated with atomic compare-and-swap: the count and the lock's
 * state share it, so "decrement to zero and take the lock" is one
 * indivisible step, and a thread that must wait sleeps on the word with
 * a Linux futex (src/util/lockcnt.c explains the protocol). All
 * ordering goes through that word (acquire on taking the lock or a
 * count, release on giving them back), which ThreadSanitizer sees.
 *
 * Deadlocks: qemu_lockcnt_inc() may wait for the mutex, so it must not
 * be called by the thread that holds it (use qemu_lockcnt_inc_and_unlock()
 * instead), and two QemuLockCnts locked and inc'ed in opposite orders by
 * two threads can deadlock like two mutexes would.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_LOCKCNT_H
#define AIOLOOP_LOCKCNT_H

#include <stdbool.h>
#include <aioloop/compiler.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A visitor count and a lock (see above). The field is for the library:
 * bits 0-1 the lock's state, the count above them. Zero-filled memory
 * is a valid, unlocked QemuLockCnt with count 0. */
typedef struct QemuLockCnt {
    unsigned count;             /* the lock's state and the count */
} QemuLockCnt;

/**
 * qemu_lockcnt_init - initialise @lockcnt: count 0, unlocked.
 * Any thread.
 */
AIOLOOP_API void qemu_lockcnt_init(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_destroy - release @lockcnt's resources (nothing to free in
 * this implementation). It must be unlocked with count 0.
 * Any thread.
 */
AIOLOOP_API void qemu_lockcnt_destroy(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_inc - add a visitor. If the count is zero and the lock is
 * held (someone is freeing), wait until it is released; if the count is
 * already positive, go in at once. Must not be called by the lock's
 * holder (it would wait for itself).
 * Any thread.
 */
AIOLOOP_API void qemu_lockcnt_inc(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_dec - remove a visitor. Decrementing a zero count is a
 * programmer error (assertion). Never waits.
 * Any thread.
 */
AIOLOOP_API void qemu_lockcnt_dec(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_dec_and_lock - remove a visitor; if that leaves the count
 * at zero, take the lock in the same step (waiting for it if another
 * thread holds it: the count stays at 1 meanwhile, so visitors are not
 * held up) and return true. Returns false, without the lock, when other
 * visitors remain.
 * Any thread.
 */
AIOLOOP_API bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_dec_if_lock - if the caller is the only visitor (count 1),
 * make the count zero and take the lock in one step (waiting for the lock
 * if another thread holds it) and return true. Otherwise change nothing
 * and return false: the caller stays a visitor.
 * Any thread (a visitor).
 */
AIOLOOP_API bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_lock - take the lock. Visitors still come in while the
 * count is positive: check qemu_lockcnt_count() under the lock to know
 * whether anyone is walking. Not recursive.
 * Any thread.
 */
AIOLOOP_API void qemu_lockcnt_lock(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_unlock - release the lock, waking the threads waiting for
 * it (lockers, and visitors that found the count zero).
 * Any thread (the holder).
 */
AIOLOOP_API void qemu_lockcnt_unlock(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_inc_and_unlock - become a visitor and release the lock in
 * one step: no other thread can take the lock with the count at zero in
 * between (what qemu_lockcnt_unlock() + qemu_lockcnt_inc() would allow).
 * Any thread (the holder).
 */
AIOLOOP_API void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt);

/**
 * qemu_lockcnt_count - the number of visitors now. It may change at any
 * time; under the lock, "is it zero" is stable (a newcomer to a zero
 * count waits for the lock). An acquire load: when it reads zero, every
 * access of the visitors that have left happens before the caller's
 * next ones (what the caller may free, they no longer touch).
 * Any thread.
 */
AIOLOOP_API unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_LOCKCNT_H */
