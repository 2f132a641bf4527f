/*
 * aioloop/thread.h - threads and the synchronisation primitives the event
 * loop is built from: mutexes, condition variables, semaphores, events.
 *
 * Design
 * ------
 * Thin, named wrappers around POSIX threads, with QEMU's names so code
 * written against QEMU's qemu/thread.h compiles unchanged. The types are
 * plain structs defined here, so callers embed them in their own structs
 * without allocating.
 *
 * Two policies hold throughout:
 *   - A failing pthread call other than thread creation means a
 *     programming error (destroying a locked mutex, unlocking one you do not
 *     hold, using an uninitialised object): the wrapper prints the function
 *     name and strerror() and aborts. So these functions return nothing.
 *     qemu_thread_create() is the exception: running out of threads
 *     (EAGAIN) is a resource condition a caller can handle, so it returns
 *     0 or -errno.
 *   - Every timed wait measures time on CLOCK_MONOTONIC, so changing the
 *     wall clock neither shortens nor stretches a timeout.
 *
 * QemuEvent is the one primitive not built on pthreads: a binary event
 * over a futex word. qemu_event_set() on an already-set event, or with no
 * thread waiting, costs one atomic instruction and no system call; only a
 * set that finds a sleeping waiter enters the kernel. See
 * src/util/qemu-thread-posix.c for the protocol.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_THREAD_H
#define AIOLOOP_THREAD_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <aioloop/compiler.h>

/* A non-recursive mutex (qemu_mutex_*). */
typedef struct QemuMutex {
    pthread_mutex_t lock;       /* the pthread mutex */
} QemuMutex;

/* A condition variable (qemu_cond_*). */
typedef struct QemuCond {
    pthread_cond_t cond;        /* uses CLOCK_MONOTONIC for timed waits */
} QemuCond;

/* A counting semaphore (qemu_sem_*). */
typedef struct QemuSemaphore {
    pthread_mutex_t lock;       /* protects count */
    pthread_cond_t cond;        /* signalled by post; CLOCK_MONOTONIC */
    unsigned int count;         /* units available */
} QemuSemaphore;

/* A binary event over a futex word (qemu_event_*). */
typedef struct QemuEvent {
    int value;                  /* futex word, atomic; see the .c file */
} QemuEvent;

/* A thread's identity (qemu_thread_*). */
typedef struct QemuThread {
    pthread_t thread;           /* the pthread */
} QemuThread;

/* QEMU_THREAD_JOINABLE / QEMU_THREAD_DETACHED - modes for
 * qemu_thread_create(). */
#define QEMU_THREAD_JOINABLE 0
#define QEMU_THREAD_DETACHED 1

/* ------------------------------------------------------------------ */
/* Mutexes                                                             */

/*
 * qemu_mutex_init - initialise a non-recursive mutex, unlocked. Builds
 * without NDEBUG use an error-checking mutex, so that unlocking a mutex
 * the thread does not hold, or relocking one it does, aborts instead of
 * corrupting state, with "aioloop: <function>: mutex 0x...: <pthread
 * call> failed: <reason>". With NDEBUG no outcome is defined for those.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_mutex_init(QemuMutex *mutex);

/*
 * qemu_mutex_destroy - release the resources of an unlocked mutex. It must
 * not be used again before another qemu_mutex_init(). Destroying a
 * locked mutex aborts with a message naming it where the C library
 * detects it (glibc does, in every build).
 *
 * Any thread.
 */
AIOLOOP_API void qemu_mutex_destroy(QemuMutex *mutex);

/*
 * qemu_mutex_lock - acquire the mutex, sleeping while another thread
 * holds it.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_mutex_lock(QemuMutex *mutex);

/*
 * qemu_mutex_trylock - acquire the mutex if it is free.
 *
 * Returns 0 when the mutex was acquired, -EBUSY when another thread holds
 * it.
 *
 * Any thread.
 */
AIOLOOP_API int qemu_mutex_trylock(QemuMutex *mutex);

/*
 * qemu_mutex_unlock - release a mutex the calling thread holds.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_mutex_unlock(QemuMutex *mutex);

/* ------------------------------------------------------------------ */
/* Condition variables                                                 */

/*
 * qemu_cond_init - initialise a condition variable whose timed waits use
 * CLOCK_MONOTONIC.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_cond_init(QemuCond *cond);

/*
 * qemu_cond_destroy - release a condition variable nobody waits on.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_cond_destroy(QemuCond *cond);

/*
 * qemu_cond_signal - wake at least one thread waiting on cond, if any.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_cond_signal(QemuCond *cond);

/*
 * qemu_cond_broadcast - wake every thread waiting on cond.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_cond_broadcast(QemuCond *cond);

/*
 * qemu_cond_wait - atomically release mutex (which the caller holds) and
 * sleep until cond is signalled; the mutex is held again on return.
 * Wake-ups may be spurious: wait in a loop that re-checks the predicate.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_cond_wait(QemuCond *cond, QemuMutex *mutex);

/*
 * qemu_cond_timedwait - like qemu_cond_wait(), but give up after ms
 * milliseconds (measured on CLOCK_MONOTONIC; ms <= 0 does not sleep).
 *
 * Returns false if the wait timed out, true if it ended otherwise (a
 * signal, a broadcast or a spurious wake-up). The mutex is held again on
 * return in both cases.
 *
 * Any thread.
 */
AIOLOOP_API bool qemu_cond_timedwait(QemuCond *cond, QemuMutex *mutex, int ms);

/* ------------------------------------------------------------------ */
/* Counting semaphores                                                 */

/*
 * qemu_sem_init - initialise a counting semaphore with init units
 * (init >= 0).
 *
 * Any thread.
 */
AIOLOOP_API void qemu_sem_init(QemuSemaphore *sem, int init);

/*
 * qemu_sem_destroy - release a semaphore nobody waits on.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_sem_destroy(QemuSemaphore *sem);

/*
 * qemu_sem_post - add one unit and wake one waiter, if any.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_sem_post(QemuSemaphore *sem);

/*
 * qemu_sem_wait - take one unit, sleeping until one is available.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_sem_wait(QemuSemaphore *sem);

/*
 * qemu_sem_timedwait - take one unit, sleeping at most ms milliseconds
 * (CLOCK_MONOTONIC) for one to become available; ms <= 0 only tries.
 *
 * Returns 0 when a unit was taken, -1 when the time ran out first.
 *
 * Any thread.
 */
AIOLOOP_API int qemu_sem_timedwait(QemuSemaphore *sem, int ms);

/* ------------------------------------------------------------------ */
/* Events                                                              */

/*
 * qemu_event_init - initialise a binary event, set if init is true.
 * An event is either set or free; waiting on a set event returns at once.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_event_init(QemuEvent *ev, bool init);

/*
 * qemu_event_destroy - release an event nobody waits on.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_event_destroy(QemuEvent *ev);

/*
 * qemu_event_set - set the event and wake every thread waiting for it.
 * Everything the caller wrote before the set is visible to a thread whose
 * qemu_event_wait() returns because of it. Costs one atomic operation and
 * no system call unless a thread is sleeping in qemu_event_wait().
 *
 * Any thread, async-signal-safe.
 */
AIOLOOP_API void qemu_event_set(QemuEvent *ev);

/*
 * qemu_event_reset - make a set event free again (no effect on a free
 * one). The usual pattern is: reset; check the condition; if not yet true,
 * qemu_event_wait(). A set that races with the reset is never lost: either
 * the waiter's check sees the setter's condition, or the wait returns.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_event_reset(QemuEvent *ev);

/*
 * qemu_event_wait - return once the event is set, sleeping until then.
 * It does not reset the event.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_event_wait(QemuEvent *ev);

/* ------------------------------------------------------------------ */
/* Threads                                                             */

/*
 * qemu_thread_create - start a thread running start_routine(arg).
 *
 * name is shown by debuggers and ps; names longer than 15 bytes are
 * truncated (a Linux limit); NULL leaves the default. mode is
 * QEMU_THREAD_JOINABLE (the thread must later be passed to
 * qemu_thread_join()) or QEMU_THREAD_DETACHED (its resources are freed
 * when it returns). The new thread starts with every signal blocked, so
 * that signals aimed at the process are handled by the application's own
 * threads, not by library workers; it may unblock what it needs.
 *
 * Returns 0 on success, with *thread identifying the new thread; or
 * -errno (-EAGAIN when the system is out of threads, -ENOMEM) with
 * nothing started. Unlike QEMU's, which cannot fail, this returns int.
 *
 * Any thread.
 */
AIOLOOP_API int qemu_thread_create(QemuThread *thread, const char *name,
                                   void *(*start_routine)(void *),
                                   void *arg, int mode);

/*
 * qemu_thread_join - wait for a joinable thread to finish and release it.
 * A thread cannot join itself.
 *
 * Returns the value its start routine returned.
 *
 * Any thread.
 */
AIOLOOP_API void *qemu_thread_join(QemuThread *thread);

/*
 * qemu_thread_get_self - store the identity of the calling thread in
 * *thread.
 *
 * Any thread.
 */
AIOLOOP_API void qemu_thread_get_self(QemuThread *thread);

/*
 * qemu_thread_is_self - tell whether thread identifies the calling
 * thread.
 *
 * Returns true if it does.
 *
 * Any thread.
 */
AIOLOOP_API bool qemu_thread_is_self(QemuThread *thread);

/*
 * qemu_get_thread_id - the kernel's id of the calling thread (gettid),
 * as shown by ps -L and /proc.
 *
 * Returns the thread id.
 *
 * Any thread, async-signal-safe.
 */
AIOLOOP_API int qemu_get_thread_id(void);

/* ------------------------------------------------------------------ */
/* Recursive mutexes and spinlocks (QEMU 2.7/2.8 on)                   */

/* A recursive mutex (qemu_rec_mutex_*): the holder may lock it again and
 * must unlock it as many times. */
typedef struct QemuRecMutex {
    pthread_mutex_t lock;       /* a PTHREAD_MUTEX_RECURSIVE mutex */
} QemuRecMutex;

/* A spinlock (qemu_spin_*): one word, taken with an atomic exchange; for
 * critical sections of a few instructions that never sleep. */
typedef struct QemuSpin {
    int value;                  /* 1 while held, atomic */
} QemuSpin;

/* Aborts with the name of the failed call (see "Design" above).
 * Any thread. */
static inline AIOLOOP_NORETURN void aioloop_rec_mutex_fail(const char *what,
                                                           int err)
{
    fprintf(stderr, "aioloop: %s failed: %s\n", what, strerror(err));
    abort();
}

/*
 * qemu_rec_mutex_init - initialise a recursive mutex, unlocked.
 *
 * Any thread.
 */
static inline void qemu_rec_mutex_init(QemuRecMutex *mutex)
{
    pthread_mutexattr_t attr;
    int err;

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    err = pthread_mutex_init(&mutex->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (err) {
        aioloop_rec_mutex_fail("qemu_rec_mutex_init", err);
    }
}

/*
 * qemu_rec_mutex_destroy - release an unlocked recursive mutex.
 *
 * Any thread.
 */
static inline void qemu_rec_mutex_destroy(QemuRecMutex *mutex)
{
    int err = pthread_mutex_destroy(&mutex->lock);

    if (err) {
        aioloop_rec_mutex_fail("qemu_rec_mutex_destroy", err);
    }
}

/*
 * qemu_rec_mutex_lock - take the mutex (again, if the caller holds it).
 *
 * Any thread.
 */
static inline void qemu_rec_mutex_lock(QemuRecMutex *mutex)
{
    int err = pthread_mutex_lock(&mutex->lock);

    if (err) {
        aioloop_rec_mutex_fail("qemu_rec_mutex_lock", err);
    }
}

/*
 * qemu_rec_mutex_trylock - take the mutex if it is free or held by the
 * caller. Returns 0 when taken, -EBUSY when another thread holds it.
 *
 * Any thread.
 */
static inline int qemu_rec_mutex_trylock(QemuRecMutex *mutex)
{
    return pthread_mutex_trylock(&mutex->lock) == 0 ? 0 : -16 /* EBUSY */;
}

/*
 * qemu_rec_mutex_unlock - release one level of the mutex.
 *
 * Any thread (the holder).
 */
static inline void qemu_rec_mutex_unlock(QemuRecMutex *mutex)
{
    int err = pthread_mutex_unlock(&mutex->lock);

    if (err) {
        aioloop_rec_mutex_fail("qemu_rec_mutex_unlock", err);
    }
}

/*
 * qemu_spin_init - initialise a spinlock, free. qemu_spin_destroy() has
 * nothing to release.
 *
 * Any thread.
 */
static inline void qemu_spin_init(QemuSpin *spin)
{
    __atomic_store_n(&spin->value, 0, __ATOMIC_RELAXED);
}

/* qemu_spin_destroy - nothing to release (QEMU 5.1 on). Any thread. */
static inline void qemu_spin_destroy(QemuSpin *spin)
{
    (void)spin;
}

/*
 * qemu_spin_lock - take the spinlock, spinning (read-only) while another
 * thread holds it. Acquire order.
 *
 * Any thread.
 */
static inline void qemu_spin_lock(QemuSpin *spin)
{
    while (__atomic_exchange_n(&spin->value, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&spin->value, __ATOMIC_RELAXED)) {
            sched_yield();
        }
    }
}

/*
 * qemu_spin_trylock - take the spinlock if free. Returns true if it was
 * *busy* (QEMU's convention: false means "locked by this call").
 *
 * Any thread.
 */
static inline bool qemu_spin_trylock(QemuSpin *spin)
{
    return __atomic_exchange_n(&spin->value, 1, __ATOMIC_ACQUIRE);
}

/* qemu_spin_locked - whether the spinlock is held. Any thread. */
static inline bool qemu_spin_locked(QemuSpin *spin)
{
    return __atomic_load_n(&spin->value, __ATOMIC_RELAXED);
}

/* qemu_spin_unlock - release the spinlock (release order).
 * Any thread (the holder). */
static inline void qemu_spin_unlock(QemuSpin *spin)
{
    __atomic_store_n(&spin->value, 0, __ATOMIC_RELEASE);
}

#endif /* AIOLOOP_THREAD_H */
