/*
 * test-rfifolock.c - the recursive FIFO lock behind aio_context_acquire.
 *
 * Covers recursion, mutual exclusion under contention, FIFO hand-over
 * among queued threads (including that a releasing thread which asks
 * again goes to the back of the queue), the contention callback, and that
 * unlocking a lock one does not own aborts.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/atomic.h>
#include <aioloop/rfifolock.h>
#include <aioloop/thread.h>

#include "test.h"
#include "death-test.h"

#define MS 1000000LL

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Spins (politely) until *p >= want. No time bound: a count that never
 * gets there is a hang, which the harness's watchdog names. */
static bool wait_until_at_least(unsigned int *p, unsigned int want)
{
    while (qatomic_load_acquire(p) < want) {
        sleep_ms(1);
    }
    return true;
}

static void *lock_and_report(void *opaque)
{
    RFifoLock *r = opaque;
    bool held;

    rfifolock_lock(r);
    held = rfifolock_held_by_self(r);
    rfifolock_unlock(r);
    return (void *)(intptr_t)held;
}

static void test_recursion(void)
{
    RFifoLock r;
    QemuThread th;

    rfifolock_init(&r, NULL, NULL);
    CHECK(!rfifolock_held_by_self(&r));
    rfifolock_lock(&r);
    rfifolock_lock(&r);
    rfifolock_lock(&r);
    CHECK(rfifolock_held_by_self(&r));
    rfifolock_unlock(&r);
    CHECK(rfifolock_held_by_self(&r));
    rfifolock_unlock(&r);
    CHECK(rfifolock_held_by_self(&r));
    rfifolock_unlock(&r);
    CHECK(!rfifolock_held_by_self(&r));

    /* Fully released: another thread gets it without waiting for us. */
    REQUIRE(qemu_thread_create(&th, "rfifo", lock_and_report, &r,
                               QEMU_THREAD_JOINABLE) == 0);
    CHECK(qemu_thread_join(&th) == (void *)1);
    CHECK(!rfifolock_held_by_self(&r));
    rfifolock_destroy(&r);
}

/* ------------------------------------------------------------------ */

/* Every contended hand-over of a FIFO lock may wait for a descheduled
 * thread: each thread stops at EXCL_ITERS or at the time budget, and the
 * counter must equal the sum of what they did. */

#define EXCL_THREADS 4
#define EXCL_ITERS 100000

typedef struct Excl {
    RFifoLock lock;
    long counter;       /* under lock, deliberately plain */
    int inside;         /* under lock: detects two owners at once */
    int overlaps;
    int64_t end;        /* the time budget */
    long done[EXCL_THREADS];    /* each thread's own count */
    int next;           /* atomic: hands out the slots of done[] */
} Excl;

static void *excl_thread(void *opaque)
{
    Excl *e = opaque;
    int me = qatomic_fetch_inc(&e->next);
    int i;

    for (i = 0; i < EXCL_ITERS; i++) {
        if ((i & 255) == 255 && !test_stress_more(e->end)) {
            break;
        }
        rfifolock_lock(&e->lock);
        if ((i & 7) == 0) {
            rfifolock_lock(&e->lock);       /* some nesting in the mix */
        }
        if (e->inside++) {
            e->overlaps++;
        }
        e->counter++;
        e->inside--;
        if ((i & 7) == 0) {
            rfifolock_unlock(&e->lock);
        }
        rfifolock_unlock(&e->lock);
    }
    e->done[me] = i;
    return NULL;
}

static void test_mutual_exclusion(void)
{
    Excl e = { .counter = 0, .end = test_stress_end() };
    QemuThread th[EXCL_THREADS];
    long total = 0;
    int i;

    rfifolock_init(&e.lock, NULL, NULL);
    for (i = 0; i < EXCL_THREADS; i++) {
        REQUIRE(qemu_thread_create(&th[i], "excl", excl_thread, &e,
                                   QEMU_THREAD_JOINABLE) == 0);
    }
    for (i = 0; i < EXCL_THREADS; i++) {
        qemu_thread_join(&th[i]);
    }
    for (i = 0; i < EXCL_THREADS; i++) {
        total += e.done[i];
    }
    printf("#   %ld lock/unlock rounds in %d threads\n", total, EXCL_THREADS);
    CHECK_EQ(e.counter, total);
    CHECK_EQ(e.overlaps, 0);
    rfifolock_destroy(&e.lock);
}

/* ------------------------------------------------------------------ */

#define FIFO_THREADS 4

typedef struct Fifo {
    RFifoLock lock;
    int order[FIFO_THREADS + 1];    /* under lock */
    int n;                          /* under lock */
    unsigned int cb_calls;          /* atomic */
} Fifo;

typedef struct FifoArg {
    Fifo *f;
    int id;
} FifoArg;

static void fifo_contention_cb(void *opaque)
{
    Fifo *f = opaque;

    qatomic_inc(&f->cb_calls);
}

static void *fifo_thread(void *opaque)
{
    FifoArg *a = opaque;

    rfifolock_lock(&a->f->lock);
    a->f->order[a->f->n++] = a->id;
    rfifolock_unlock(&a->f->lock);
    return NULL;
}

static void test_fifo_order(void)
{
    Fifo f = { .n = 0 };
    FifoArg args[FIFO_THREADS];
    QemuThread th[FIFO_THREADS];
    int i;

    rfifolock_init(&f.lock, fifo_contention_cb, &f);
    rfifolock_lock(&f.lock);
    /* Queue the threads one at a time: each is started only after the
     * previous one is counted as a waiter (it drew its ticket under the
     * lock's mutex, which the next one needs to queue). */
    for (i = 0; i < FIFO_THREADS; i++) {
        args[i].f = &f;
        args[i].id = i;
        REQUIRE(qemu_thread_create(&th[i], "fifo", fifo_thread, &args[i],
                                   QEMU_THREAD_JOINABLE) == 0);
        REQUIRE(wait_until_at_least(&f.lock.waiters, (unsigned)i + 1));
    }
    /* Each queued thread runs the callback before it first sleeps. */
    CHECK(wait_until_at_least(&f.cb_calls, FIFO_THREADS));

    /* Release and immediately ask again: we must go behind the queue. */
    rfifolock_unlock(&f.lock);
    rfifolock_lock(&f.lock);
    f.order[f.n++] = 99;
    rfifolock_unlock(&f.lock);

    for (i = 0; i < FIFO_THREADS; i++) {
        qemu_thread_join(&th[i]);
    }
    CHECK_EQ(f.n, FIFO_THREADS + 1);
    for (i = 0; i < FIFO_THREADS; i++) {
        CHECK_EQ(f.order[i], i);
    }
    CHECK_EQ(f.order[FIFO_THREADS], 99);
    CHECK_EQ(qatomic_read(&f.lock.waiters), 0);
    rfifolock_destroy(&f.lock);
}

/* ------------------------------------------------------------------ */

typedef struct CbState {
    RFifoLock lock;
    unsigned int calls;     /* atomic */
    void *seen_opaque;      /* written by the callback (under r's mutex) */
} CbState;

static void record_cb(void *opaque)
{
    CbState *s = opaque;

    s->seen_opaque = opaque;
    qatomic_inc(&s->calls);
}

static void *cb_locker(void *opaque)
{
    CbState *s = opaque;

    rfifolock_lock(&s->lock);
    rfifolock_unlock(&s->lock);
    return NULL;
}

static void test_contention_callback(void)
{
    CbState s = { .calls = 0 };
    QemuThread th;

    rfifolock_init(&s.lock, record_cb, &s);

    /* Uncontended use, recursion included, never calls it. */
    rfifolock_lock(&s.lock);
    rfifolock_lock(&s.lock);
    rfifolock_unlock(&s.lock);
    rfifolock_unlock(&s.lock);
    CHECK_EQ(qatomic_read(&s.calls), 0);

    /* A second thread blocking on it does. */
    rfifolock_lock(&s.lock);
    REQUIRE(qemu_thread_create(&th, "cb", cb_locker, &s,
                               QEMU_THREAD_JOINABLE) == 0);
    CHECK(wait_until_at_least(&s.calls, 1));
    rfifolock_unlock(&s.lock);
    qemu_thread_join(&th);
    CHECK(qatomic_read(&s.calls) >= 1);
    CHECK(s.seen_opaque == &s);
    rfifolock_destroy(&s.lock);
}

/* ------------------------------------------------------------------ */
/* Death tests                                                         */

static void unlock_unheld(void *opaque)
{
    RFifoLock r;

    rfifolock_init(&r, NULL, NULL);
    rfifolock_unlock(&r);
}

typedef struct Holder {
    RFifoLock lock;
    QemuSemaphore locked, finish;
} Holder;

static void *holder_thread(void *opaque)
{
    Holder *h = opaque;

    rfifolock_lock(&h->lock);
    qemu_sem_post(&h->locked);
    qemu_sem_wait(&h->finish);
    rfifolock_unlock(&h->lock);
    return NULL;
}

static void unlock_other_owner(void *opaque)
{
    Holder h;
    QemuThread th;

    rfifolock_init(&h.lock, NULL, NULL);
    qemu_sem_init(&h.locked, 0);
    qemu_sem_init(&h.finish, 0);
    if (qemu_thread_create(&th, "holder", holder_thread, &h,
                           QEMU_THREAD_JOINABLE) != 0) {
        _exit(3);
    }
    qemu_sem_wait(&h.locked);
    rfifolock_unlock(&h.lock);      /* not ours: must abort here */
    qemu_sem_post(&h.finish);
    qemu_thread_join(&th);
}

static void test_unlock_by_non_owner_aborts(void)
{
    DeathResult res;

    REQUIRE(death_run(unlock_unheld, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "rfifolock_unlock") != NULL);

    REQUIRE(death_run(unlock_other_owner, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "held by another thread") != NULL);
}

int main(void)
{
    TEST(test_recursion);
    TEST(test_mutual_exclusion);
    TEST(test_fifo_order);
    TEST(test_contention_callback);
    TEST(test_unlock_by_non_owner_aborts);
    return test_done();
}
