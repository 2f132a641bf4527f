/*
 * aioloop/lockable.h - QemuLockable: "some lock" as one value.
 *
 * Design
 * ------
 * Functions that release a lock while they wait (qemu_co_queue_wait(),
 * a condition-variable-like pattern) work with any kind of lock the
 * caller holds: a QemuMutex, a QemuRecMutex, a QemuSpin or a CoMutex.
 * QEMU_MAKE_LOCKABLE(x) wraps a pointer to one of those in a QemuLockable
 * (the object and its lock/unlock functions), chosen at compile time from
 * the pointer's type with C11 _Generic; qemu_lockable_lock() and
 * qemu_lockable_unlock() then work on any of them. A NULL pointer gives a
 * NULL QemuLockable (no lock). These are QEMU's names (QEMU 2.12 on,
 * include/qemu/lockable.h).
 *
 * The QemuLockable is a compound literal: it lives until the end of the
 * block where QEMU_MAKE_LOCKABLE() appears, which covers a call it is
 * passed to (and a coroutine started within the block that uses it
 * before the block ends).
 *
 * The lock functions are small wrappers taking void *, so every call
 * goes through a function of the right type (no cast of function
 * pointers, which UBSan's -fsanitize=function would report).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_LOCKABLE_H
#define AIOLOOP_LOCKABLE_H

#include <stddef.h>
#include <aioloop/coroutine.h>
#include <aioloop/thread.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A lock or unlock function of a QemuLockable. */
typedef void QemuLockUnlockFunc(void *);

/* Some lock: the object and how to lock and unlock it. */
typedef struct QemuLockable {
    void *object;               /* the lock */
    QemuLockUnlockFunc *lock;   /* takes it */
    QemuLockUnlockFunc *unlock; /* releases it */
} QemuLockable;

/* The wrappers behind QEMU_MAKE_LOCKABLE() (one pair per lock type).
 * Any thread (the lock's rules; the CoMutex pair: coroutine context). */
static inline void aioloop_lockable_mutex_lock(void *x)
{
    qemu_mutex_lock((QemuMutex *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_mutex_unlock(void *x)
{
    qemu_mutex_unlock((QemuMutex *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_rec_mutex_lock(void *x)
{
    qemu_rec_mutex_lock((QemuRecMutex *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_rec_mutex_unlock(void *x)
{
    qemu_rec_mutex_unlock((QemuRecMutex *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_spin_lock(void *x)
{
    qemu_spin_lock((QemuSpin *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_spin_unlock(void *x)
{
    qemu_spin_unlock((QemuSpin *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_co_mutex_lock(void *x)
{
    qemu_co_mutex_lock((CoMutex *)x);
}
/* See aioloop_lockable_mutex_lock(). Any thread (the lock's rules). */
static inline void aioloop_lockable_co_mutex_unlock(void *x)
{
    qemu_co_mutex_unlock((CoMutex *)x);
}

/*
 * AIOLOOP_LOCKABLE_FN(x, op) - the wrapper of kind @op (lock or unlock)
 * for the type of @x, chosen at compile time. For QEMU_MAKE_LOCKABLE().
 */
#define AIOLOOP_LOCKABLE_FN(x, op) _Generic((x),                      \
    QemuMutex *: aioloop_lockable_mutex_##op,                         \
    QemuRecMutex *: aioloop_lockable_rec_mutex_##op,                  \
    QemuSpin *: aioloop_lockable_spin_##op,                           \
    CoMutex *: aioloop_lockable_co_mutex_##op)

/* AIOLOOP_LOCKABLE_AS_LOCK(x) - @x, or a dummy QemuMutex * when @x is
 * already a QemuLockable * or a void * (NULL), so that the unselected
 * branches of QEMU_MAKE_LOCKABLE_NONNULL() still type-check. */
#define AIOLOOP_LOCKABLE_AS_LOCK(x) _Generic((x),                     \
    QemuLockable *: (QemuMutex *)0,                                   \
    void *: (QemuMutex *)0,                                           \
    default: (x))

/*
 * QEMU_MAKE_LOCKABLE(x) - a QemuLockable * for @x, a QemuMutex *,
 * QemuRecMutex *, QemuSpin * or CoMutex *; NULL if @x is NULL. Another
 * pointer type does not compile. A QemuLockable * is passed through.
 * QEMU_MAKE_LOCKABLE_NONNULL(x) is the same for an @x known not to be
 * NULL.
 */
#define QEMU_MAKE_LOCKABLE_NONNULL(x) _Generic((x),                   \
    QemuLockable *: (QemuLockable *)(void *)(x),                      \
    void *: (QemuLockable *)NULL,                                     \
    default: &(QemuLockable) {                                        \
        (void *)(x),                                                  \
        AIOLOOP_LOCKABLE_FN(AIOLOOP_LOCKABLE_AS_LOCK(x), lock),       \
        AIOLOOP_LOCKABLE_FN(AIOLOOP_LOCKABLE_AS_LOCK(x), unlock) })
#define QEMU_MAKE_LOCKABLE(x) \
    aioloop_lockable_or_null((const void *)(x), QEMU_MAKE_LOCKABLE_NONNULL(x))

/* @lockable, or NULL when the lock @x it stands for is NULL (a function,
 * so that passing &some_mutex draws no "always true" warning).
 * Any thread. */
static inline QemuLockable *aioloop_lockable_or_null(const void *x,
                                                     QemuLockable *lockable)
{
    return x ? lockable : NULL;
}

/**
 * qemu_lockable_lock - take the lock @x stands for.
 * Any thread (coroutine context for a CoMutex).
 */
static inline void qemu_lockable_lock(QemuLockable *x)
{
    x->lock(x->object);
}

/**
 * qemu_lockable_unlock - release the lock @x stands for.
 * Any thread (the holder).
 */
static inline void qemu_lockable_unlock(QemuLockable *x)
{
    x->unlock(x->object);
}

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_LOCKABLE_H */
