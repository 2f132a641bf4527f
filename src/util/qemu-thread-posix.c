/*
 * qemu-thread-posix.c - QemuMutex, QemuCond, QemuSemaphore, QemuEvent and
 * QemuThread on POSIX threads and Linux futexes.
 *
 * Design
 * ------
 * Mutexes and condition variables are one-line wrappers; what they add is
 * policy. A pthread call that fails (other than pthread_create) means the
 * caller broke a rule - unlocking a mutex it does not own, destroying one
 * that is held - and carrying on would corrupt state silently, so we print
 * which function failed and why, and abort. EINTR is not a failure for
 * any of the calls used here (POSIX forbids it or the call restarts), so
 * nothing needs retrying except the futex wait, which loops anyway.
 *
 * Timed waits use absolute CLOCK_MONOTONIC deadlines: the condition
 * variables are created with pthread_condattr_setclock, so a wall-clock
 * step does not change how long anyone sleeps.
 *
 * The semaphore is a counter under a mutex with a condition variable
 * rather than a POSIX sem_t, because sem_timedwait() measures
 * CLOCK_REALTIME.
 *
 * QemuEvent protocol
 * ------------------
 * The whole event is one int (the futex word) with three values:
 *
 *     EV_FREE     not set, nobody sleeps
 *     EV_SET      set
 *     EV_WAITING  not set, and at least one thread is (about to be)
 *                 asleep in futex_wait on the word
 *
 *   set:   old = xchg(value, EV_SET); if old == EV_WAITING, futex_wake(all)
 *   reset: cmpxchg(value, EV_SET -> EV_FREE)
 *   wait:  loop { v = load_acquire(value); if v == EV_SET return;
 *                 if v == EV_FREE and !cmpxchg(EV_FREE -> EV_WAITING) retry;
 *                 futex_wait(value, EV_WAITING) }
 *
 * A waiter sleeps only after it has made the word EV_WAITING, and the
 * kernel's futex_wait re-checks the word atomically against that value,
 * so a set that lands in between makes the wait return at once: no lost
 * wake-up. A set that finds EV_FREE or EV_SET does not enter the kernel.
 *
 * Why set is an unconditional xchg rather than "read; exchange only if not
 * set": callers use the pattern "waiter: reset, check condition, wait /
 * setter: make condition true, set". If the setter could skip the write
 * after seeing EV_SET, a reset running concurrently might not synchronise
 * with the setter's write of the condition, and the waiter could check a
 * stale condition and then sleep on a freshly reset event. With an RMW on
 * both sides the modification order of the word decides: if the set comes
 * first, the reset's cmpxchg reads it (release -> acquire) and the waiter
 * sees the condition; if the reset comes first, the word ends EV_SET and
 * the wait returns. It costs one locked instruction and needs no fence,
 * which also keeps ThreadSanitizer able to follow it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <aioloop/atomic.h>
#include <aioloop/thread.h>
#include "alloc.h"
#include "futex.h"

/* A pthread call failed where failure means a programming error. */
static AIOLOOP_NORETURN void thread_die(const char *func, int err)
{
    fprintf(stderr, "aioloop: %s failed: %s\n", func, strerror(err));
    abort();
}

/* The same for a call on a QemuMutex, naming it: the usual mistakes
 * (unlocking a mutex the thread does not hold, locking it twice - both
 * detected in builds without NDEBUG - or destroying it while held) are
 * easier to find with the mutex's address. */
static AIOLOOP_NORETURN void mutex_die(const char *func, const char *call,
                                       const QemuMutex *mutex, int err)
{
    fprintf(stderr, "aioloop: %s: mutex %p: %s failed: %s\n", func,
            (const void *)mutex, call, strerror(err));
    abort();
}

/* The absolute CLOCK_MONOTONIC time ms milliseconds from now. */
static struct timespec deadline_after_ms(int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms > 0) {
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    return ts;
}

/* ------------------------------------------------------------------ */
/* Mutexes                                                             */

void qemu_mutex_init(QemuMutex *mutex)
{
    pthread_mutexattr_t attr;
    int err;

    err = pthread_mutexattr_init(&attr);
    if (err) {
        thread_die("pthread_mutexattr_init", err);
    }
#ifndef NDEBUG
    err = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (err) {
        thread_die("pthread_mutexattr_settype", err);
    }
#endif
    err = pthread_mutex_init(&mutex->lock, &attr);
    if (err) {
        thread_die("pthread_mutex_init", err);
    }
    pthread_mutexattr_destroy(&attr);
}

void qemu_mutex_destroy(QemuMutex *mutex)
{
    int err = pthread_mutex_destroy(&mutex->lock);

    if (err) {
        mutex_die(__func__, "pthread_mutex_destroy", mutex, err);
    }
}

void qemu_mutex_lock(QemuMutex *mutex)
{
    int err = pthread_mutex_lock(&mutex->lock);

    if (err) {
        mutex_die(__func__, "pthread_mutex_lock", mutex, err);
    }
}

int qemu_mutex_trylock(QemuMutex *mutex)
{
    int err = pthread_mutex_trylock(&mutex->lock);

    if (err == 0) {
        return 0;
    }
    if (err == EBUSY) {
        return -EBUSY;
    }
    mutex_die(__func__, "pthread_mutex_trylock", mutex, err);
}

void qemu_mutex_unlock(QemuMutex *mutex)
{
    int err = pthread_mutex_unlock(&mutex->lock);

    if (err) {
        mutex_die(__func__, "pthread_mutex_unlock", mutex, err);
    }
}

/* ------------------------------------------------------------------ */
/* Condition variables                                                 */

/* pthread_cond_init with a CLOCK_MONOTONIC clock; shared with the
 * semaphore. */
static void monotonic_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int err;

    err = pthread_condattr_init(&attr);
    if (err) {
        thread_die("pthread_condattr_init", err);
    }
    err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (err) {
        thread_die("pthread_condattr_setclock", err);
    }
    err = pthread_cond_init(cond, &attr);
    if (err) {
        thread_die("pthread_cond_init", err);
    }
    pthread_condattr_destroy(&attr);
}

/* Waits on cond until the absolute monotonic deadline; false on timeout. */
static bool cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                            const struct timespec *deadline)
{
    int err = pthread_cond_timedwait(cond, mutex, deadline);

    if (err == ETIMEDOUT) {
        return false;
    }
    if (err) {
        thread_die("pthread_cond_timedwait", err);
    }
    return true;
}

void qemu_cond_init(QemuCond *cond)
{
    monotonic_cond_init(&cond->cond);
}

void qemu_cond_destroy(QemuCond *cond)
{
    int err = pthread_cond_destroy(&cond->cond);

    if (err) {
        thread_die("pthread_cond_destroy", err);
    }
}

void qemu_cond_signal(QemuCond *cond)
{
    int err = pthread_cond_signal(&cond->cond);

    if (err) {
        thread_die("pthread_cond_signal", err);
    }
}

void qemu_cond_broadcast(QemuCond *cond)
{
    int err = pthread_cond_broadcast(&cond->cond);

    if (err) {
        thread_die("pthread_cond_broadcast", err);
    }
}

void qemu_cond_wait(QemuCond *cond, QemuMutex *mutex)
{
    int err = pthread_cond_wait(&cond->cond, &mutex->lock);

    if (err) {
        thread_die("pthread_cond_wait", err);
    }
}

bool qemu_cond_timedwait(QemuCond *cond, QemuMutex *mutex, int ms)
{
    struct timespec deadline = deadline_after_ms(ms);

    return cond_wait_until(&cond->cond, &mutex->lock, &deadline);
}

/* ------------------------------------------------------------------ */
/* Semaphores                                                          */

static void sem_lock(QemuSemaphore *sem)
{
    int err = pthread_mutex_lock(&sem->lock);

    if (err) {
        thread_die("pthread_mutex_lock", err);
    }
}

static void sem_unlock(QemuSemaphore *sem)
{
    int err = pthread_mutex_unlock(&sem->lock);

    if (err) {
        thread_die("pthread_mutex_unlock", err);
    }
}

void qemu_sem_init(QemuSemaphore *sem, int init)
{
    int err;

    if (init < 0) {
        fprintf(stderr, "aioloop: qemu_sem_init: negative count %d\n", init);
        abort();
    }
    err = pthread_mutex_init(&sem->lock, NULL);
    if (err) {
        thread_die("pthread_mutex_init", err);
    }
    monotonic_cond_init(&sem->cond);
    sem->count = (unsigned int)init;
}

void qemu_sem_destroy(QemuSemaphore *sem)
{
    int err;

    err = pthread_cond_destroy(&sem->cond);
    if (err) {
        thread_die("pthread_cond_destroy", err);
    }
    err = pthread_mutex_destroy(&sem->lock);
    if (err) {
        thread_die("pthread_mutex_destroy", err);
    }
}

void qemu_sem_post(QemuSemaphore *sem)
{
    int err;

    sem_lock(sem);
    if (sem->count == UINT_MAX) {
        fprintf(stderr, "aioloop: qemu_sem_post: count overflow\n");
        abort();
    }
    sem->count++;
    err = pthread_cond_signal(&sem->cond);
    if (err) {
        thread_die("pthread_cond_signal", err);
    }
    sem_unlock(sem);
}

void qemu_sem_wait(QemuSemaphore *sem)
{
    int err;

    sem_lock(sem);
    while (sem->count == 0) {
        err = pthread_cond_wait(&sem->cond, &sem->lock);
        if (err) {
            thread_die("pthread_cond_wait", err);
        }
    }
    sem->count--;
    sem_unlock(sem);
}

int qemu_sem_timedwait(QemuSemaphore *sem, int ms)
{
    struct timespec deadline = deadline_after_ms(ms);
    int ret = 0;

    sem_lock(sem);
    while (sem->count == 0) {
        if (!cond_wait_until(&sem->cond, &sem->lock, &deadline)) {
            /* Timed out; a post may still have slipped in just now. */
            if (sem->count == 0) {
                ret = -1;
            }
            break;
        }
    }
    if (ret == 0) {
        sem->count--;
    }
    sem_unlock(sem);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Events                                                              */

enum {
    EV_FREE = 0,
    EV_SET = 1,
    EV_WAITING = 2,
};

void qemu_event_init(QemuEvent *ev, bool init)
{
    ev->value = init ? EV_SET : EV_FREE;
}

void qemu_event_destroy(QemuEvent *ev)
{
    if (qatomic_read(&ev->value) == EV_WAITING) {
        fprintf(stderr, "aioloop: qemu_event_destroy: threads still wait\n");
        abort();
    }
}

void qemu_event_set(QemuEvent *ev)
{
    /* Release: publishes the caller's writes to whoever sees EV_SET (the
     * load_acquire in qemu_event_wait, the cmpxchg in qemu_event_reset). */
    if (qatomic_xchg(&ev->value, EV_SET) == EV_WAITING) {
        aioloop__futex_wake_all(&ev->value);
    }
}

void qemu_event_reset(QemuEvent *ev)
{
    int expected = EV_SET;

    /* An RMW, not a plain store: see "Why set is an unconditional xchg"
     * above. Pairs with the xchg in qemu_event_set(). */
    __atomic_compare_exchange_n(&ev->value, &expected, EV_FREE, false,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

void qemu_event_wait(QemuEvent *ev)
{
    for (;;) {
        /* Pairs with the xchg in qemu_event_set(). */
        int v = qatomic_load_acquire(&ev->value);

        if (v == EV_SET) {
            return;
        }
        if (v == EV_FREE &&
            qatomic_cmpxchg(&ev->value, EV_FREE, EV_WAITING) != EV_FREE) {
            continue;   /* it changed under us (perhaps set): re-read */
        }
        aioloop__futex_wait(&ev->value, EV_WAITING);
    }
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */

/* What the new thread needs before it calls the user's routine. */
typedef struct ThreadStart {
    void *(*start_routine)(void *);
    void *arg;
    char name[16];              /* Linux allows 15 bytes plus the NUL */
} ThreadStart;

static void *thread_trampoline(void *opaque)
{
    ThreadStart *start = opaque;
    void *(*start_routine)(void *) = start->start_routine;
    void *arg = start->arg;

    /* Named from inside: the creator may not touch a detached thread that
     * could already have exited. A failure only loses a debugging aid. */
    if (start->name[0]) {
        pthread_setname_np(pthread_self(), start->name);
    }
    free(start);
    return start_routine(arg);
}

int qemu_thread_create(QemuThread *thread, const char *name,
                       void *(*start_routine)(void *), void *arg, int mode)
{
    ThreadStart *start;
    pthread_attr_t attr;
    sigset_t all, old;
    int err;

    start = aioloop__malloc(sizeof(*start));
    if (!start) {
        return -ENOMEM;
    }
    start->start_routine = start_routine;
    start->arg = arg;
    start->name[0] = '\0';
    if (name) {
        snprintf(start->name, sizeof(start->name), "%s", name);
    }

    err = pthread_attr_init(&attr);
    if (err) {
        free(start);
        return -err;
    }
    if (mode == QEMU_THREAD_DETACHED) {
        err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (err) {
            thread_die("pthread_attr_setdetachstate", err);
        }
    }

    /* The new thread inherits our signal mask: block everything for the
     * duration of the call, then put our own mask back. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = AIOLOOP_FAULT(AIOLOOP_FAULT_THREAD_CREATE);
    if (!err) {
        err = pthread_create(&thread->thread, &attr, thread_trampoline, start);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    pthread_attr_destroy(&attr);
    if (err) {
        free(start);
        return -err;
    }
    return 0;
}

void *qemu_thread_join(QemuThread *thread)
{
    void *ret;
    int err = pthread_join(thread->thread, &ret);

    if (err) {
        thread_die("pthread_join", err);
    }
    return ret;
}

void qemu_thread_get_self(QemuThread *thread)
{
    thread->thread = pthread_self();
}

bool qemu_thread_is_self(QemuThread *thread)
{
    return pthread_equal(pthread_self(), thread->thread);
}

int qemu_get_thread_id(void)
{
    return (int)syscall(SYS_gettid);
}
