/*
 * test-coroutine-lock.c - coroutine locks on one thread: CoMutex under
 * contention and its FIFO hand-over, CoQueue wake-up order and waiting
 * with a CoMutex held.
 *
 * Unless a case says otherwise coroutines are entered from the main
 * thread, whose current context is the main loop's (coroutine_test_init()
 * runs first in main()), so they belong to qemu_get_aio_context().
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "coroutine-test.h"

/* ------------------------------------------------------------------ */
/* CoMutex                                                             */

#define MUTEX_COS   100
#define MUTEX_ITERS 10

typedef struct {
    CoMutex lock;
    int counter;            /* protected by lock; read, yield, write */
    int holders;
    int max_holders;
    int done;
    int next_id;
} MutexTest;

static void coroutine_fn mutex_co(void *opaque)
{
    MutexTest *m = opaque;
    /* Odd-numbered coroutines sleep 0 ns, the others reschedule
     * themselves: either way the loop re-enters them from a BH/timer. */
    int id = m->next_id++;
    int i;

    for (i = 0; i < MUTEX_ITERS; i++) {
        int v;

        qemu_co_mutex_lock(&m->lock);
        if (++m->holders > m->max_holders) {
            m->max_holders = m->holders;
        }
        v = m->counter;
        if (id % 2) {
            qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 0);
        } else {
            aio_co_schedule(main_ctx, qemu_coroutine_self());
            qemu_coroutine_yield();
        }
        m->counter = v + 1;
        m->holders--;
        qemu_co_mutex_unlock(&m->lock);
    }
    m->done++;
}

static void coroutine_fn lock_unlock_co(void *opaque)
{
    MutexTest *m = opaque;

    qemu_co_mutex_lock(&m->lock);
    m->counter++;
    qemu_co_mutex_unlock(&m->lock);
    m->done++;
}

static void test_co_mutex_contention(void)
{
    MutexTest m = { .counter = 0 };
    int i;

    qemu_co_mutex_init(&m.lock);
    for (i = 0; i < MUTEX_COS; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(mutex_co, &m));
    }
    CHECK(m.done < MUTEX_COS);
    while (m.done < MUTEX_COS) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(m.counter, MUTEX_COS * MUTEX_ITERS);
    CHECK_EQ(m.max_holders, 1);
    CHECK_EQ(m.holders, 0);

    /* Unlocked now: lock + unlock completes without yielding. */
    m.done = 0;
    qemu_coroutine_enter(qemu_coroutine_create(lock_unlock_co, &m));
    CHECK_EQ(m.done, 1);
    CHECK_EQ(m.counter, MUTEX_COS * MUTEX_ITERS + 1);
    drain_ctx(main_ctx, 100);
    qemu_co_mutex_destroy(&m.lock);
}

/* Waiters get the mutex in arrival order. */
typedef struct {
    CoMutex lock;
    Trace t;
    int done;
} FifoTest;

static FifoTest *fifo;

static void coroutine_fn fifo_holder(void *opaque)
{
    qemu_co_mutex_lock(&fifo->lock);
    trace_add(&fifo->t, 0);
    qemu_coroutine_yield();
    qemu_co_mutex_unlock(&fifo->lock);
    fifo->done++;
}

static void coroutine_fn fifo_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_co_mutex_lock(&fifo->lock);
    trace_add(&fifo->t, id);
    qemu_co_mutex_unlock(&fifo->lock);
    fifo->done++;
}

static void test_co_mutex_fifo(void)
{
    FifoTest f = { .t = { .n = 0 }, .done = 0 };
    Coroutine *holder;
    int i;

    fifo = &f;
    qemu_co_mutex_init(&f.lock);
    holder = qemu_coroutine_create(fifo_holder, NULL);
    qemu_coroutine_enter(holder);
    for (i = 1; i <= 6; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(fifo_waiter,
                                                   (void *)(intptr_t)i));
    }
    CHECK_EQ(f.done, 0);                    /* all wait for the holder */
    qemu_coroutine_enter(holder);
    while (f.done < 7) {
        aio_poll(main_ctx, true);
    }
    TRACE_IS(&f.t, 0, 1, 2, 3, 4, 5, 6);
    drain_ctx(main_ctx, 100);
    qemu_co_mutex_destroy(&f.lock);
    fifo = NULL;
}

/* ------------------------------------------------------------------ */
/* CoQueue                                                             */

typedef struct {
    CoQueue q;
    CoMutex lock;
    Trace t;
    int done;
    bool holding;           /* who holds lock, for the lock variant */
    int errors;
} QueueTest;

static QueueTest *qt;

static void coroutine_fn queue_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_co_queue_wait(&qt->q, NULL);
    trace_add(&qt->t, id);
    qt->done++;
}

static void coroutine_fn queue_next_from_co(void *opaque)
{
    int before = qt->t.n;

    /* Woken from a coroutine: the waiter runs after we yield/return. */
    qt->errors += !qemu_co_queue_next(&qt->q);
    qt->errors += qt->t.n != before;
    trace_add(&qt->t, 100);
}

static void test_co_queue_order(void)
{
    QueueTest s = { .t = { .n = 0 }, .done = 0, .errors = 0 };
    int i;

    qt = &s;
    qemu_co_queue_init(&s.q);
    CHECK(qemu_co_queue_empty(&s.q));
    CHECK(!qemu_co_queue_next(&s.q));       /* nobody to wake */
    for (i = 0; i < 7; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(queue_waiter,
                                                   (void *)(intptr_t)i));
    }
    CHECK(!qemu_co_queue_empty(&s.q));
    CHECK_EQ(s.t.n, 0);

    CHECK(qemu_co_queue_next(&s.q));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0);
    CHECK(qemu_co_queue_next(&s.q));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1);

    qemu_coroutine_enter(qemu_coroutine_create(queue_next_from_co, NULL));
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1, 100, 2);
    CHECK_EQ(s.errors, 0);
    CHECK(!qemu_co_queue_empty(&s.q));

    qemu_co_queue_restart_all(&s.q);
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 0, 1, 100, 2, 3, 4, 5, 6);
    CHECK_EQ(s.done, 7);
    CHECK(qemu_co_queue_empty(&s.q));
    CHECK(!qemu_co_queue_next(&s.q));
    qemu_co_queue_restart_all(&s.q);        /* empty: harmless */
    qt = NULL;
}

/* qemu_co_queue_wait(q, lock) releases lock while waiting and holds it
 * again when it returns. */
static void coroutine_fn locked_waiter(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);
    qt->errors += qt->holding;
    qt->holding = true;
    trace_add(&qt->t, 1);
    qt->holding = false;
    qemu_co_queue_wait(&qt->q, &qt->lock);
    qt->errors += qt->holding;              /* we hold it again */
    qt->holding = true;
    trace_add(&qt->t, 4);
    qemu_coroutine_yield();                 /* still holding it */
    trace_add(&qt->t, 6);
    qt->holding = false;
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void coroutine_fn locked_other(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);          /* free: waiter released it */
    qt->errors += qt->holding;
    qt->holding = true;
    trace_add(&qt->t, 2);
    qemu_co_queue_next(&qt->q);             /* waiter needs the lock */
    trace_add(&qt->t, 3);
    qt->holding = false;
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void coroutine_fn locked_late(void *opaque)
{
    qemu_co_mutex_lock(&qt->lock);          /* waits for the waiter */
    qt->errors += qt->holding;
    trace_add(&qt->t, 7);
    qemu_co_mutex_unlock(&qt->lock);
    qt->done++;
}

static void test_co_queue_wait_with_lock(void)
{
    QueueTest s = { .t = { .n = 0 }, .done = 0, .errors = 0 };
    Coroutine *waiter;

    qt = &s;
    qemu_co_queue_init(&s.q);
    qemu_co_mutex_init(&s.lock);
    waiter = qemu_coroutine_create(locked_waiter, NULL);
    qemu_coroutine_enter(waiter);           /* waits, lock released */
    CHECK(!qemu_co_queue_empty(&s.q));
    qemu_coroutine_enter(qemu_coroutine_create(locked_other, NULL));
    drain_ctx(main_ctx, 100);
    /* The waiter got the lock back after locked_other unlocked and
     * yielded while holding it. */
    TRACE_IS(&s.t, 1, 2, 3, 4);
    CHECK_EQ(s.done, 1);
    qemu_coroutine_enter(qemu_coroutine_create(locked_late, NULL));
    trace_add(&s.t, 5);
    qemu_coroutine_enter(waiter);
    drain_ctx(main_ctx, 100);
    TRACE_IS(&s.t, 1, 2, 3, 4, 5, 6, 7);
    CHECK_EQ(s.done, 3);
    CHECK_EQ(s.errors, 0);
    CHECK(qemu_co_queue_empty(&s.q));
    qemu_co_mutex_destroy(&s.lock);
    qt = NULL;
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    coroutine_test_init();

    RUN(test_co_mutex_contention);
    RUN(test_co_mutex_fifo);
    RUN(test_co_queue_order);
    RUN(test_co_queue_wait_with_lock);
    return test_done();
}
