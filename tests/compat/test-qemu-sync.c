/*
 * test-qemu-sync.c - synchronisation and workers through QEMU's header
 * names, in the forms of one API level (built once per level): the
 * atomics' spellings (atomic_* before QEMU 5.2, qatomic_* after,
 * qatomic_set_mb from 8.1), QemuLockCnt (2.9 on) with its exact
 * semantics and under threads, the futex helpers, QemuSpin and
 * QemuRecMutex, RFifoLock, the thread pool with and without its pool
 * argument (8.1), Linux AIO's laio_init() forms, and util/aio-posix.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/thread.h"
#include "qemu/main-loop.h"
#include "block/aio.h"
#include "block/block.h"
#include "block/thread-pool.h"
#include "block/raw-aio.h"
#if AIOLOOP_QEMU_API >= 209
#include "qemu/futex.h"
#endif
#if AIOLOOP_QEMU_API >= 902
#include "qemu/lockcnt.h"
#endif
#if AIOLOOP_QEMU_API < 209
#include "qemu/rfifolock.h"
#endif
#include "util/aio-posix.h"

#include "test.h"

/* ------------------------------------------------------------------ */
/* Atomics                                                             */

static void test_atomics_spelling(void)
{
    int v = 0;
    void *p = NULL;

#if AIOLOOP_QEMU_API < 502
    atomic_set(&v, 1);
    CHECK_EQ(atomic_read(&v), 1);
    CHECK_EQ(atomic_fetch_inc(&v), 1);
    CHECK_EQ(atomic_fetch_add(&v, 3), 2);
    atomic_inc(&v);
    atomic_dec(&v);
    CHECK_EQ(atomic_xchg(&v, 9), 5);
    CHECK_EQ(atomic_cmpxchg(&v, 9, 10), 9);
    atomic_or(&v, 1);
    CHECK_EQ(atomic_mb_read(&v), 11);
    atomic_mb_set(&p, &v);
    CHECK(atomic_rcu_read(&p) == &v);
#else
    qatomic_set(&v, 1);
    CHECK_EQ(qatomic_read(&v), 1);
    CHECK_EQ(qatomic_fetch_inc(&v), 1);
    CHECK_EQ(qatomic_fetch_add(&v, 3), 2);
    qatomic_inc(&v);
    qatomic_dec(&v);
    CHECK_EQ(qatomic_xchg(&v, 9), 5);
    CHECK_EQ(qatomic_cmpxchg(&v, 9, 10), 9);
    qatomic_or(&v, 1);
#if AIOLOOP_QEMU_API >= 801
    qatomic_set_mb(&p, &v);
    CHECK_EQ(qatomic_read(&v), 11);
#else
    qatomic_mb_set(&p, &v);
    CHECK_EQ(qatomic_mb_read(&v), 11);
#endif
    CHECK(qatomic_rcu_read(&p) == &v);
#endif
    smp_mb();
    smp_wmb();
    smp_rmb();
}

/* ------------------------------------------------------------------ */
/* QemuLockCnt                                                         */

#if AIOLOOP_QEMU_API >= 209
static void test_lockcnt_semantics(void)
{
    QemuLockCnt lc;

    qemu_lockcnt_init(&lc);
    CHECK_EQ(qemu_lockcnt_count(&lc), 0);
    qemu_lockcnt_inc(&lc);
    qemu_lockcnt_inc(&lc);
    CHECK_EQ(qemu_lockcnt_count(&lc), 2);
    CHECK(!qemu_lockcnt_dec_if_lock(&lc));      /* not the last visitor */
    CHECK_EQ(qemu_lockcnt_count(&lc), 2);       /* nothing changed */
    CHECK(!qemu_lockcnt_dec_and_lock(&lc));     /* decremented, unlocked */
    CHECK_EQ(qemu_lockcnt_count(&lc), 1);
    CHECK(qemu_lockcnt_dec_if_lock(&lc));       /* last: 0 and locked */
    CHECK_EQ(qemu_lockcnt_count(&lc), 0);
    qemu_lockcnt_inc_and_unlock(&lc);           /* 1, unlocked */
    CHECK_EQ(qemu_lockcnt_count(&lc), 1);
    CHECK(qemu_lockcnt_dec_and_lock(&lc));      /* 0 and locked */
    qemu_lockcnt_unlock(&lc);
    /* The lock alone does not stop visitors while the count is up. */
    qemu_lockcnt_inc(&lc);
    qemu_lockcnt_lock(&lc);
    qemu_lockcnt_inc(&lc);
    CHECK_EQ(qemu_lockcnt_count(&lc), 2);
    qemu_lockcnt_unlock(&lc);
    qemu_lockcnt_dec(&lc);
    qemu_lockcnt_dec(&lc);
    qemu_lockcnt_destroy(&lc);
}

/* A visitor that finds the count zero and the lock held waits for the
 * unlock; one that finds the count positive goes in at once. */
typedef struct {
    QemuLockCnt lc;
    int entered;                /* atomic */
} WaitData;

static void *late_visitor(void *opaque)
{
    WaitData *d = opaque;

    qemu_lockcnt_inc(&d->lc);
    qatomic_set(&d->entered, 1);
    qemu_lockcnt_dec(&d->lc);
    return NULL;
}

static void test_lockcnt_inc_waits_for_freer(void)
{
    WaitData d = { .entered = 0 };
    QemuThread th;
    int i;

    qemu_lockcnt_init(&d.lc);
    qemu_lockcnt_lock(&d.lc);           /* freeing, count 0 */
    REQUIRE(qemu_thread_create(&th, "visitor", late_visitor, &d,
                               QEMU_THREAD_JOINABLE) == 0);
    for (i = 0; i < 50; i++) {          /* give it time to come in */
        g_usleep(1000);
        CHECK_EQ(qatomic_read(&d.entered), 0);
    }
    qemu_lockcnt_unlock(&d.lc);
    qemu_thread_join(&th);
    CHECK_EQ(qatomic_read(&d.entered), 1);
    CHECK_EQ(qemu_lockcnt_count(&d.lc), 0);
}

/*
 * The pattern QemuLockCnt exists for: walkers read a shared pointer
 * under a count, a writer swaps it and frees the old object only when it
 * is the last visitor (dec_if_lock) or when a later visitor leaves last
 * (dec_and_lock). An object is poisoned when freed; a walker that reads
 * a poisoned object fails the case. Exact accounting at the end.
 */
#define WALKERS 3

typedef struct {
    int magic;                  /* 42 while live */
    int id;
} Obj;

static QemuLockCnt walk_lc;
static Obj *current;            /* atomic; under walk_lc for reclaim */
static Obj *retired[4096];      /* under the lock */
static int nretired, nfreed, ncreated;
static bool stop;               /* atomic */
static int walks;               /* atomic */
static int saw_freed;           /* atomic: a walker read a freed object */

static void reclaim_locked(void)
{
    while (nretired > 0) {
        Obj *o = retired[--nretired];

        o->magic = 0;
        g_free(o);
        nfreed++;
    }
}

static void *walker(void *opaque)
{
    while (!qatomic_read(&stop)) {
        Obj *o;

        qemu_lockcnt_inc(&walk_lc);
        o = qatomic_rcu_read(&current);
        if (o->magic != 42) {
            qatomic_set(&saw_freed, 1);
            qatomic_set(&stop, true);
        }
        if (qemu_lockcnt_dec_and_lock(&walk_lc)) {
            reclaim_locked();           /* last visitor out frees */
            qemu_lockcnt_unlock(&walk_lc);
        }
        qatomic_inc(&walks);
        test_progress();
    }
    return NULL;
}

static void test_lockcnt_reclaim_threads(void)
{
    QemuThread th[WALKERS];
    int rounds = UNDER_TSAN ? 2000 : 20000, i;

    qemu_lockcnt_init(&walk_lc);
    current = g_new0(Obj, 1);
    current->magic = 42;
    ncreated = 1;
    for (i = 0; i < WALKERS; i++) {
        REQUIRE(qemu_thread_create(&th[i], "walker", walker, NULL,
                                   QEMU_THREAD_JOINABLE) == 0);
    }
    /* Until @rounds swaps and the walkers have walked a while (on a
     * loaded machine they may start late). */
    for (i = 0; (i < rounds || qatomic_read(&walks) < rounds) &&
                !qatomic_read(&stop); i++) {
        Obj *o = g_new0(Obj, 1), *old;

        o->magic = 42;
        o->id = i;
        ncreated++;
        qemu_lockcnt_inc(&walk_lc);
        old = qatomic_xchg(&current, o);
        qemu_lockcnt_lock(&walk_lc);
        if (nretired == (int)G_N_ELEMENTS(retired) || i % 5000 == 4999) {
            /* Nobody leaves last while we hold a count: wait. */
            qemu_lockcnt_unlock(&walk_lc);
            while (!qemu_lockcnt_dec_if_lock(&walk_lc)) {
                g_usleep(10);
            }
            reclaim_locked();
            qemu_lockcnt_inc_and_unlock(&walk_lc);
            qemu_lockcnt_lock(&walk_lc);
        }
        retired[nretired++] = old;
        qemu_lockcnt_unlock(&walk_lc);
        if (qemu_lockcnt_dec_if_lock(&walk_lc)) {
            reclaim_locked();
            qemu_lockcnt_unlock(&walk_lc);
        } else {
            qemu_lockcnt_dec(&walk_lc);
        }
        test_progress();
    }
    qatomic_set(&stop, true);
    for (i = 0; i < WALKERS; i++) {
        qemu_thread_join(&th[i]);
    }
    qemu_lockcnt_lock(&walk_lc);
    CHECK_EQ(qemu_lockcnt_count(&walk_lc), 0);
    reclaim_locked();
    qemu_lockcnt_unlock(&walk_lc);
    CHECK_EQ(qatomic_read(&saw_freed), 0);
    CHECK_EQ(nfreed, ncreated - 1);     /* all but the current one */
    CHECK(qatomic_read(&walks) > 0);
    g_free(current);
    qemu_lockcnt_destroy(&walk_lc);
}

/* The futex helpers of qemu/futex.h. */
static int futex_word;

static void *futex_waker(void *opaque)
{
    g_usleep(2000);
    qatomic_set(&futex_word, 1);
#if AIOLOOP_QEMU_API >= 1001
    qemu_futex_wake_all(&futex_word);
#else
    qemu_futex_wake(&futex_word, INT_MAX);
#endif
    return NULL;
}

static void test_futex(void)
{
    QemuThread th;

    REQUIRE(qemu_thread_create(&th, "waker", futex_waker, NULL,
                               QEMU_THREAD_JOINABLE) == 0);
    while (qatomic_read(&futex_word) == 0) {
        qemu_futex_wait(&futex_word, 0);
    }
    qemu_thread_join(&th);
    CHECK_EQ(futex_word, 1);
}
#endif

static void test_spin_and_rec_mutex(void)
{
#if AIOLOOP_QEMU_API >= 500
    QemuMutex m;
    int i, n = 0;
#endif
    QemuSpin spin;
    QemuRecMutex rec;

#if AIOLOOP_QEMU_API >= 500
    qemu_mutex_init(&m);
    {
        QEMU_LOCK_GUARD(&m);
        CHECK(qemu_mutex_trylock(&m) != 0);     /* held by the guard */
    }
    CHECK_EQ(qemu_mutex_trylock(&m), 0);        /* released at '}' */
    qemu_mutex_unlock(&m);
    for (i = 0; i < 3; i++) {
        WITH_QEMU_LOCK_GUARD(&m) {
            CHECK(qemu_mutex_trylock(&m) != 0);
            n++;
        }
    }
    CHECK_EQ(n, 3);
    CHECK_EQ(qemu_mutex_trylock(&m), 0);
    qemu_mutex_unlock(&m);
    qemu_mutex_destroy(&m);
#endif
    qemu_spin_init(&spin);
    CHECK(!qemu_spin_trylock(&spin));       /* false: taken by us */
    CHECK(qemu_spin_locked(&spin));
    CHECK(qemu_spin_trylock(&spin));        /* true: busy */
    qemu_spin_unlock(&spin);
    CHECK(!qemu_spin_locked(&spin));
    qemu_rec_mutex_init(&rec);
    qemu_rec_mutex_lock(&rec);
    qemu_rec_mutex_lock(&rec);
    qemu_rec_mutex_unlock(&rec);
    qemu_rec_mutex_unlock(&rec);
    qemu_rec_mutex_destroy(&rec);
#if AIOLOOP_QEMU_API < 209
    {
        RFifoLock l;

        rfifolock_init(&l, NULL, NULL);
        rfifolock_lock(&l);
        rfifolock_lock(&l);
        rfifolock_unlock(&l);
        rfifolock_unlock(&l);
        rfifolock_destroy(&l);
    }
#endif
}

/* ------------------------------------------------------------------ */
/* Thread pool                                                         */

static int work(void *opaque)
{
    return qatomic_fetch_inc((int *)opaque) + 100;
}

static void done_cb(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

static void coroutine_fn co_submit(void *opaque)
{
    int *n = opaque;
    int ret;

#if AIOLOOP_QEMU_API >= 801
    ret = thread_pool_submit_co(work, n);
#else
    ret = thread_pool_submit_co(aio_get_thread_pool(qemu_get_aio_context()),
                                work, n);
#endif
    CHECK_EQ(ret, 101);
    qatomic_inc(n);
}

static void test_thread_pool_forms(void)
{
    AioContext *ctx;
    int n = 0, ret = -EINPROGRESS;
    BlockAIOCB *acb;
    Coroutine *co;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    ctx = qemu_get_aio_context();
#if AIOLOOP_QEMU_API >= 801
    acb = thread_pool_submit_aio(work, &n, done_cb, &ret);
#else
    acb = thread_pool_submit_aio(aio_get_thread_pool(ctx), work, &n,
                                 done_cb, &ret);
#endif
    CHECK(acb != NULL);
    while (ret == -EINPROGRESS) {
        aio_poll(ctx, true);
    }
    CHECK_EQ(ret, 100);
#if AIOLOOP_QEMU_API < 207
    co = qemu_coroutine_create(co_submit);
    qemu_coroutine_enter(co, &n);
#else
    co = qemu_coroutine_create(co_submit, &n);
    qemu_coroutine_enter(co);
#endif
    while (qatomic_read(&n) < 3) {
        aio_poll(ctx, true);
    }
#if AIOLOOP_QEMU_API >= 1000
    thread_pool_submit_aio(work, &n, NULL, NULL);
#elif AIOLOOP_QEMU_API >= 801
    thread_pool_submit(work, &n);
#else
    thread_pool_submit(aio_get_thread_pool(ctx), work, &n);
#endif
    while (qatomic_read(&n) < 4) {
        aio_poll(ctx, true);
    }
}

/* ------------------------------------------------------------------ */
/* Linux AIO, util/aio-posix.h                                         */

static void test_laio_init_forms(void)
{
#if AIOLOOP_HAVE_LINUX_AIO
    LinuxAioState *s;
#if AIOLOOP_QEMU_API >= 400
    Error *err = NULL;

    s = laio_init(&err);
    if (!s) {
        printf("# %s\n", error_get_pretty(err));
        error_free(err);
        SKIP_CASE("Linux AIO refused by the kernel");
    }
#else
    s = laio_init();
    if (!s) {
        SKIP_CASE("Linux AIO refused by the kernel");
    }
#endif
    laio_cleanup(s);
#else
    SKIP_CASE("built without Linux AIO");
#endif
}

static void test_fdmon_identity(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    const char *name = aio_context_fdmon_name(ctx);

    if (strcmp(name, "poll") == 0) {
        CHECK(ctx->fdmon_ops == &fdmon_poll_ops);
        CHECK(ctx->fdmon_ops != &fdmon_epoll_ops);
    } else {
        CHECK(ctx->fdmon_ops == &fdmon_epoll_ops);
        CHECK(ctx->fdmon_ops != &fdmon_poll_ops);
    }
    CHECK(&fdmon_io_uring_ops == NULL);
    aio_context_unref(ctx);
}

int main(void)
{
    printf("# AIOLOOP_QEMU_API=%d\n", AIOLOOP_QEMU_API);
    TEST(test_atomics_spelling);
#if AIOLOOP_QEMU_API >= 209
    TEST(test_lockcnt_semantics);
    TEST(test_lockcnt_inc_waits_for_freer);
    TEST(test_lockcnt_reclaim_threads);
    TEST(test_futex);
#endif
    TEST(test_spin_and_rec_mutex);
    TEST(test_thread_pool_forms);
    TEST(test_laio_init_forms);
    TEST(test_fdmon_identity);
    return test_done();
}
