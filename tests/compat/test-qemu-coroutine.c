/*
 * test-qemu-coroutine.c - coroutines through QEMU's header names, in the
 * forms of one API level (built once per level): create/enter (the entry
 * argument moved from enter to create in QEMU 2.7), CoMutex, CoQueue
 * waits with no lock / a CoMutex / any lockable, qemu_co_enter_next and
 * _all, CoRwlock with upgrade and downgrade, QemuLockable, sleeping,
 * aio_co_schedule / aio_co_wake / aio_co_reschedule_self, and the
 * complete Coroutine type of qemu/coroutine_int.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/coroutine_int.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "block/aio.h"
#if AIOLOOP_QEMU_API >= 212
#include "qemu/lockable.h"
#endif
#include "iothread.h"

#include "test.h"

/* Create @entry and enter it once, in the level's spelling. */
static Coroutine *start(CoroutineEntry *entry, void *opaque)
{
    Coroutine *co;

#if AIOLOOP_QEMU_API < 207
    co = qemu_coroutine_create(entry);
    qemu_coroutine_enter(co, opaque);
#else
    co = qemu_coroutine_create(entry, opaque);
    qemu_coroutine_enter(co);
#endif
    return co;
}

/* Enter @co again (the argument of a later enter is ignored). */
static void resume(Coroutine *co)
{
#if AIOLOOP_QEMU_API < 207
    qemu_coroutine_enter(co, NULL);
#else
    qemu_coroutine_enter(co);
#endif
}

static void coroutine_fn yield_twice(void *opaque)
{
    int *steps = opaque;

    (*steps)++;
    qemu_coroutine_yield();
    (*steps)++;
    qemu_coroutine_yield();
    (*steps)++;
}

static void test_create_enter(void)
{
    int steps = 0;
    Coroutine *co = start(yield_twice, &steps);

    CHECK_EQ(steps, 1);
#if AIOLOOP_QEMU_API >= 208
    CHECK(!qemu_coroutine_entered(co));
#endif
    resume(co);
    CHECK_EQ(steps, 2);
#if AIOLOOP_QEMU_API >= 209
    qemu_coroutine_enter_if_inactive(co);
#else
    resume(co);
#endif
    CHECK_EQ(steps, 3);
    CHECK(!qemu_in_coroutine());
}

/* qemu/coroutine_int.h: Coroutine is complete, of the library's size. */
static void coroutine_fn c2_fn(void *opaque)
{
    qemu_coroutine_yield();
}

static void coroutine_fn c1_fn(void *opaque)
{
    resume(opaque);
}

static void test_coroutine_int_size(void)
{
    Coroutine *c1, *c2;
    Coroutine tmp;

    CHECK_EQ(sizeof(Coroutine), AIOLOOP_QEMU_COROUTINE_SIZE);
#if AIOLOOP_QEMU_API < 207
    c2 = qemu_coroutine_create(c2_fn);
    c1 = qemu_coroutine_create(c1_fn);
    qemu_coroutine_enter(c1, c2);
#else
    c2 = qemu_coroutine_create(c2_fn, NULL);
    c1 = qemu_coroutine_create(c1_fn, c2);
    qemu_coroutine_enter(c1);
#endif
    /* c1 terminated: nothing may touch it while c2 finishes. */
    tmp = *c1;
    memset(c1, 0xff, sizeof(Coroutine));
    resume(c2);
    *c1 = tmp;
}

/* ------------------------------------------------------------------ */
/* CoMutex and CoQueue                                                 */

static CoMutex mutex;
static CoQueue queue;
static int order[8], norder;

static void coroutine_fn queue_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_co_mutex_lock(&mutex);
#if AIOLOOP_QEMU_API < 209
    qemu_co_mutex_unlock(&mutex);
    qemu_co_queue_wait(&queue);
    qemu_co_mutex_lock(&mutex);
#else
    qemu_co_queue_wait(&queue, &mutex);     /* a CoMutex, or a lockable */
#endif
    order[norder++] = id;
    qemu_co_mutex_unlock(&mutex);
}

static void test_co_queue_forms(void)
{
    int i;

    qemu_co_mutex_init(&mutex);
    qemu_co_queue_init(&queue);
    norder = 0;
    for (i = 0; i < 3; i++) {
        start(queue_waiter, (void *)(intptr_t)i);
    }
    CHECK(!qemu_co_queue_empty(&queue));
#if AIOLOOP_QEMU_API >= 212
    CHECK(qemu_co_enter_next(&queue, NULL));
#else
    CHECK(qemu_co_enter_next(&queue));
#endif
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], 0);
#if AIOLOOP_QEMU_API >= 701
    qemu_co_enter_all(&queue, NULL);
#else
    qemu_co_queue_restart_all(&queue);
#endif
    CHECK_EQ(norder, 3);
    CHECK_EQ(order[1], 1);
    CHECK_EQ(order[2], 2);
    CHECK(qemu_co_queue_empty(&queue));
}

#if AIOLOOP_QEMU_API >= 212
/* A QemuMutex (not a CoMutex) released while waiting; 7.2's flags. */
static QemuMutex plain_lock;

static void coroutine_fn plain_waiter(void *opaque)
{
    int id = (int)(intptr_t)opaque;

    qemu_mutex_lock(&plain_lock);
#if AIOLOOP_QEMU_API >= 702
    if (id == 9) {
        qemu_co_queue_wait_flags(&queue, &plain_lock, CO_QUEUE_WAIT_FRONT);
    } else {
        qemu_co_queue_wait(&queue, &plain_lock);
    }
#else
    qemu_co_queue_wait(&queue, &plain_lock);
#endif
    order[norder++] = id;
    qemu_mutex_unlock(&plain_lock);
}

static void test_co_queue_lockable(void)
{
    QemuLockable *l;
    CoMutex *none = NULL;

    qemu_mutex_init(&plain_lock);
    qemu_co_queue_init(&queue);
    norder = 0;
    start(plain_waiter, (void *)(intptr_t)1);
    start(plain_waiter, (void *)(intptr_t)9);
    qemu_mutex_lock(&plain_lock);
    CHECK(qemu_co_enter_next(&queue, &plain_lock));
    CHECK(qemu_co_enter_next(&queue, &plain_lock));
    CHECK(!qemu_co_enter_next(&queue, &plain_lock));
    qemu_mutex_unlock(&plain_lock);
    CHECK_EQ(norder, 2);
#if AIOLOOP_QEMU_API >= 702
    CHECK_EQ(order[0], 9);          /* CO_QUEUE_WAIT_FRONT */
#else
    CHECK_EQ(order[0], 1);
#endif
    l = QEMU_MAKE_LOCKABLE(&plain_lock);
    qemu_lockable_lock(l);
    qemu_lockable_unlock(l);
    CHECK(QEMU_MAKE_LOCKABLE(none) == NULL);
    qemu_mutex_destroy(&plain_lock);
}
#endif

/* ------------------------------------------------------------------ */
/* CoRwlock                                                            */

static CoRwlock rw;
static int readers_in, writer_in;

static void coroutine_fn reader(void *opaque)
{
    qemu_co_rwlock_rdlock(&rw);
    readers_in++;
    CHECK(!writer_in);
    qemu_coroutine_yield();
    readers_in--;
    qemu_co_rwlock_unlock(&rw);
}

static void coroutine_fn writer(void *opaque)
{
    qemu_co_rwlock_wrlock(&rw);
    CHECK(!readers_in && !writer_in);
    writer_in = 1;
    qemu_coroutine_yield();
    writer_in = 0;
    qemu_co_rwlock_unlock(&rw);
    *(bool *)opaque = true;
}

static void test_rwlock(void)
{
    bool wdone = false;
    Coroutine *r1, *r2, *w, *r3;

    qemu_co_rwlock_init(&rw);
    r1 = start(reader, NULL);
    r2 = start(reader, NULL);
    CHECK_EQ(readers_in, 2);        /* readers share */
    w = start(writer, &wdone);
    CHECK(!writer_in);              /* the writer waits */
    r3 = start(reader, NULL);
    CHECK_EQ(readers_in, 2);        /* fair: behind the writer */
    resume(r1);
    resume(r2);                     /* last reader out: the writer in */
    CHECK(writer_in);
    resume(w);                      /* writer out: r3 in */
    CHECK(wdone);
    CHECK_EQ(readers_in, 1);
    resume(r3);
    CHECK_EQ(readers_in, 0);
}

#if AIOLOOP_QEMU_API >= 210
static void coroutine_fn upgrader(void *opaque)
{
    qemu_co_rwlock_rdlock(&rw);
    qemu_coroutine_yield();
    qemu_co_rwlock_upgrade(&rw);        /* waits behind the writer */
    CHECK(!writer_in);
    qemu_co_rwlock_unlock(&rw);
    *(bool *)opaque = true;
}

static void coroutine_fn downgrader(void *opaque)
{
    qemu_co_rwlock_wrlock(&rw);
    qemu_co_rwlock_downgrade(&rw);      /* lets queued readers in */
    qemu_co_rwlock_unlock(&rw);
    *(bool *)opaque = true;
}

static void test_rwlock_upgrade_downgrade(void)
{
    bool up_done = false, w_done = false, down_done = false;
    Coroutine *up, *w, *r;

    qemu_co_rwlock_init(&rw);
    up = start(upgrader, &up_done);
    w = start(writer, &w_done);
    resume(up);                 /* sole reader, but a writer queued */
    CHECK(!up_done);
    CHECK(writer_in);
    resume(w);                  /* the writer leaves: upgrader goes on */
    CHECK(w_done);
    CHECK(up_done);

    /* Downgrade: a reader queued behind the writer comes in at once. */
    qemu_co_rwlock_init(&rw);
    up = start(reader, NULL);           /* holds a read lock */
    start(downgrader, &down_done);      /* queued writer */
    r = start(reader, NULL);            /* queued reader */
    resume(up);                         /* out: writer in, downgrades */
    CHECK(down_done);
    CHECK_EQ(readers_in, 1);            /* the queued reader got in */
    resume(r);                          /* and leaves */
    CHECK_EQ(readers_in, 0);
}
#endif

/* ------------------------------------------------------------------ */
/* Sleeping and contexts                                               */

static void coroutine_fn sleeper(void *opaque)
{
#if AIOLOOP_QEMU_API < 212
    co_aio_sleep_ns(qemu_get_aio_context(), QEMU_CLOCK_REALTIME, 2000000);
#else
    qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 2000000);
#endif
    *(bool *)opaque = true;
}

static void test_sleep(void)
{
    bool done = false;
    int64_t t0;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    t0 = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    start(sleeper, &done);
    while (!done) {
        aio_poll(qemu_get_aio_context(), true);
    }
    CHECK(qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - t0 >= 2000000);
}

#if AIOLOOP_QEMU_API >= 402
/* Wakeable sleeps: a long sleep ended early by qemu_co_sleep_wake(). */
#if AIOLOOP_QEMU_API >= 601
static QemuCoSleep sleep_w;
#else
static QemuCoSleepState *sleep_state;
#endif
static bool woke;

static void coroutine_fn long_sleeper(void *opaque)
{
#if AIOLOOP_QEMU_API >= 601
    qemu_co_sleep_ns_wakeable(&sleep_w, QEMU_CLOCK_REALTIME,
                              3600 * NANOSECONDS_PER_SECOND);
#else
    qemu_co_sleep_ns_wakeable(QEMU_CLOCK_REALTIME,
                              3600 * NANOSECONDS_PER_SECOND, &sleep_state);
    CHECK(sleep_state == NULL);
#endif
    woke = true;
}

static void test_wakeable_sleep(void)
{
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    start(long_sleeper, NULL);
    CHECK(!woke);
#if AIOLOOP_QEMU_API >= 601
    REQUIRE(sleep_w.to_wake != NULL);
    qemu_co_sleep_wake(&sleep_w);
    qemu_co_sleep_wake(&sleep_w);       /* a second wake does nothing */
#else
    REQUIRE(sleep_state != NULL);
    qemu_co_sleep_wake(sleep_state);
#endif
    while (!woke) {
        aio_poll(qemu_get_aio_context(), true);
    }
    /* The timer is gone with the sleep: nothing left to run. */
    CHECK(!aio_poll(qemu_get_aio_context(), false));
}
#endif

#if AIOLOOP_QEMU_API >= 209
static AioContext *seen_ctx;        /* where it ran in between */
static bool hop_done;               /* atomic */

static void coroutine_fn hop(void *opaque)
{
    AioContext *other = opaque;

#if AIOLOOP_QEMU_API >= 502
    aio_co_reschedule_self(other);
#else
    aio_co_schedule(other, qemu_coroutine_self());
    qemu_coroutine_yield();
#endif
    seen_ctx = qemu_get_current_aio_context();
#if AIOLOOP_QEMU_API >= 502
    aio_co_reschedule_self(qemu_get_aio_context());
#else
    aio_co_schedule(qemu_get_aio_context(), qemu_coroutine_self());
    qemu_coroutine_yield();
#endif
    CHECK(qemu_get_current_aio_context() == qemu_get_aio_context());
    qatomic_store_release(&hop_done, true);
}

static void test_schedule_between_contexts(void)
{
    IOThread *t = iothread_new();
    AioContext *ctx = iothread_get_aio_context(t);
    Coroutine *co;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    co = qemu_coroutine_create(hop, ctx);
    aio_co_enter(qemu_get_aio_context(), co);
    /* It ran in the IOThread, then came back and finished here. */
    while (!qatomic_load_acquire(&hop_done)) {
        aio_poll(qemu_get_aio_context(), true);
    }
    CHECK(seen_ctx == ctx);
    iothread_join(t);
}
#endif

int main(void)
{
    printf("# AIOLOOP_QEMU_API=%d\n", AIOLOOP_QEMU_API);
    TEST(test_create_enter);
    TEST(test_coroutine_int_size);
    TEST(test_co_queue_forms);
#if AIOLOOP_QEMU_API >= 212
    TEST(test_co_queue_lockable);
#endif
    TEST(test_rwlock);
#if AIOLOOP_QEMU_API >= 210
    TEST(test_rwlock_upgrade_downgrade);
#endif
    TEST(test_sleep);
#if AIOLOOP_QEMU_API >= 402
    TEST(test_wakeable_sleep);
#endif
#if AIOLOOP_QEMU_API >= 209
    TEST(test_schedule_between_contexts);
#endif
    return test_done();
}
