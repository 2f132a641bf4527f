/*
 * test-thread.c - QemuMutex, QemuCond, QemuSemaphore, QemuEvent and
 * QemuThread.
 *
 * No check bounds how long anything takes (a loaded machine or a
 * sanitizer build may be slow): lower bounds are exact, because a timed
 * wait must never return early; a wait that must be woken waits without
 * a bound (a lost wake-up is a hang, which the harness's watchdog names);
 * timed waits that must time out ask for 100 ms, so that a unit mix-up
 * (100 s) is a hang too. Loops run until their count or the time budget.
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <sys/syscall.h>

#include <aioloop/atomic.h>
#include <aioloop/thread.h>

#include "test.h"

#define MS 1000000LL

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------ */
/* Mutex                                                               */

#define COUNT_THREADS 4
#define COUNT_ITERS 50000

static QemuMutex count_lock;
static long counter;

static void *count_thread(void *opaque)
{
    int i;

    for (i = 0; i < COUNT_ITERS; i++) {
        qemu_mutex_lock(&count_lock);
        counter++;
        qemu_mutex_unlock(&count_lock);
    }
    return opaque;
}

static void test_mutex_counting(void)
{
    QemuThread th[COUNT_THREADS];
    int i;

    qemu_mutex_init(&count_lock);
    counter = 0;
    for (i = 0; i < COUNT_THREADS; i++) {
        REQUIRE(qemu_thread_create(&th[i], "count", count_thread, NULL,
                                   QEMU_THREAD_JOINABLE) == 0);
    }
    for (i = 0; i < COUNT_THREADS; i++) {
        qemu_thread_join(&th[i]);
    }
    CHECK_EQ(counter, COUNT_THREADS * COUNT_ITERS);
    qemu_mutex_destroy(&count_lock);
}

static void *trylock_thread(void *opaque)
{
    int ret = qemu_mutex_trylock(opaque);

    if (ret == 0) {
        qemu_mutex_unlock(opaque);
    }
    return (void *)(intptr_t)ret;
}

static void test_mutex_trylock(void)
{
    QemuMutex m;
    QemuThread th;

    qemu_mutex_init(&m);
    CHECK_EQ(qemu_mutex_trylock(&m), 0);
    REQUIRE(qemu_thread_create(&th, "trylock", trylock_thread, &m,
                               QEMU_THREAD_JOINABLE) == 0);
    CHECK_EQ((intptr_t)qemu_thread_join(&th), -EBUSY);
    qemu_mutex_unlock(&m);

    REQUIRE(qemu_thread_create(&th, "trylock", trylock_thread, &m,
                               QEMU_THREAD_JOINABLE) == 0);
    CHECK_EQ((intptr_t)qemu_thread_join(&th), 0);
    qemu_mutex_destroy(&m);
}

/* ------------------------------------------------------------------ */
/* Condition variables                                                 */

typedef struct CondState {
    QemuMutex lock;
    QemuCond cond;
    int go;         /* predicate, under lock */
    int woken;      /* waiters past the wait, under lock */
    int waiting;    /* waiters inside the wait loop, under lock */
} CondState;

static void *cond_waiter(void *opaque)
{
    CondState *s = opaque;

    qemu_mutex_lock(&s->lock);
    s->waiting++;
    qemu_cond_broadcast(&s->cond);      /* tell main we are here */
    while (!s->go) {
        qemu_cond_wait(&s->cond, &s->lock);
    }
    s->go--;                            /* consume one unit */
    s->woken++;
    qemu_cond_broadcast(&s->cond);
    qemu_mutex_unlock(&s->lock);
    return NULL;
}

static void cond_state_init(CondState *s)
{
    memset(s, 0, sizeof(*s));
    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->cond);
}

static void cond_state_destroy(CondState *s)
{
    qemu_cond_destroy(&s->cond);
    qemu_mutex_destroy(&s->lock);
}

static void wait_for_waiting(CondState *s, int n)
{
    while (s->waiting < n) {
        qemu_cond_wait(&s->cond, &s->lock);
    }
}

static void test_cond_signal(void)
{
    CondState s;
    QemuThread th[2];
    int i;

    cond_state_init(&s);
    for (i = 0; i < 2; i++) {
        REQUIRE(qemu_thread_create(&th[i], "cond", cond_waiter, &s,
                                   QEMU_THREAD_JOINABLE) == 0);
    }
    qemu_mutex_lock(&s.lock);
    wait_for_waiting(&s, 2);
    /* One unit and one signal: exactly one waiter gets through. */
    s.go = 1;
    qemu_cond_signal(&s.cond);
    while (s.woken < 1) {
        qemu_cond_wait(&s.cond, &s.lock);
    }
    qemu_mutex_unlock(&s.lock);
    sleep_ms(20);
    qemu_mutex_lock(&s.lock);
    CHECK_EQ(s.woken, 1);
    s.go = 1;
    qemu_cond_signal(&s.cond);
    qemu_mutex_unlock(&s.lock);
    for (i = 0; i < 2; i++) {
        qemu_thread_join(&th[i]);
    }
    CHECK_EQ(s.woken, 2);
    cond_state_destroy(&s);
}

static void test_cond_broadcast(void)
{
    enum { N = 5 };
    CondState s;
    QemuThread th[N];
    int i;

    cond_state_init(&s);
    for (i = 0; i < N; i++) {
        REQUIRE(qemu_thread_create(&th[i], "bcast", cond_waiter, &s,
                                   QEMU_THREAD_JOINABLE) == 0);
    }
    qemu_mutex_lock(&s.lock);
    wait_for_waiting(&s, N);
    s.go = N;
    qemu_cond_broadcast(&s.cond);
    qemu_mutex_unlock(&s.lock);
    for (i = 0; i < N; i++) {
        qemu_thread_join(&th[i]);
    }
    CHECK_EQ(s.woken, N);
    CHECK_EQ(s.go, 0);
    cond_state_destroy(&s);
}

static void test_cond_timedwait_timeout(void)
{
    QemuMutex m;
    QemuCond c;
    int64_t t0, elapsed;
    bool signalled;

    qemu_mutex_init(&m);
    qemu_cond_init(&c);
    qemu_mutex_lock(&m);
    t0 = test_now_ns();
    /* Retry spurious wake-ups: only a timeout ends this loop. */
    do {
        signalled = qemu_cond_timedwait(&c, &m, 100);
    } while (signalled);
    elapsed = test_now_ns() - t0;
    qemu_mutex_unlock(&m);
    CHECK(!signalled);
    CHECK(elapsed >= 100 * MS);

    /* ms <= 0 times out at once and the mutex is held again. */
    qemu_mutex_lock(&m);
    CHECK(!qemu_cond_timedwait(&c, &m, 0));
    CHECK_EQ(qemu_mutex_trylock(&m), -EBUSY);
    qemu_mutex_unlock(&m);
    qemu_cond_destroy(&c);
    qemu_mutex_destroy(&m);
}

typedef struct TimedSignal {
    CondState s;
    bool result;
} TimedSignal;

static void *timed_cond_waiter(void *opaque)
{
    TimedSignal *ts = opaque;

    qemu_mutex_lock(&ts->s.lock);
    ts->s.waiting = 1;
    qemu_cond_broadcast(&ts->s.cond);
    ts->result = true;
    while (!ts->s.go && ts->result) {
        /* An hour: the signal, not the timeout, must end the wait. */
        ts->result = qemu_cond_timedwait(&ts->s.cond, &ts->s.lock,
                                         3600 * 1000);
    }
    qemu_mutex_unlock(&ts->s.lock);
    return NULL;
}

static void test_cond_timedwait_signalled(void)
{
    TimedSignal ts;
    QemuThread th;

    cond_state_init(&ts.s);
    REQUIRE(qemu_thread_create(&th, "tcond", timed_cond_waiter, &ts,
                               QEMU_THREAD_JOINABLE) == 0);
    qemu_mutex_lock(&ts.s.lock);
    wait_for_waiting(&ts.s, 1);
    ts.s.go = 1;
    qemu_cond_signal(&ts.s.cond);
    qemu_mutex_unlock(&ts.s.lock);
    qemu_thread_join(&th);
    CHECK(ts.result);
    cond_state_destroy(&ts.s);
}

/* ------------------------------------------------------------------ */
/* Semaphores                                                          */

static void test_sem_basic(void)
{
    QemuSemaphore sem;
    int64_t t0, elapsed;

    qemu_sem_init(&sem, 2);
    qemu_sem_wait(&sem);
    CHECK_EQ(qemu_sem_timedwait(&sem, 0), 0);   /* second unit */
    CHECK_EQ(qemu_sem_timedwait(&sem, 0), -1);  /* none left */

    t0 = test_now_ns();
    CHECK_EQ(qemu_sem_timedwait(&sem, 100), -1);
    elapsed = test_now_ns() - t0;
    CHECK(elapsed >= 100 * MS);

    qemu_sem_post(&sem);
    qemu_sem_post(&sem);
    CHECK_EQ(qemu_sem_timedwait(&sem, 1000), 0);
    qemu_sem_wait(&sem);
    CHECK_EQ(qemu_sem_timedwait(&sem, 0), -1);
    qemu_sem_destroy(&sem);
}

typedef struct SemPost {
    QemuSemaphore sem;
    int waiter_tid;
} SemPost;

/* Posts once the waiter sleeps (or is not seen to within ~2 s). */
static void *sem_poster(void *opaque)
{
    SemPost *sp = opaque;

    test_wait_blocked(sp->waiter_tid);
    qemu_sem_post(&sp->sem);
    return NULL;
}

static void test_sem_cross_thread(void)
{
    SemPost sp = { .waiter_tid = test_gettid() };
    QemuThread th;

    qemu_sem_init(&sp.sem, 0);
    REQUIRE(qemu_thread_create(&th, "post", sem_poster, &sp,
                               QEMU_THREAD_JOINABLE) == 0);
    /* An hour: posted, not a timeout. */
    CHECK_EQ(qemu_sem_timedwait(&sp.sem, 3600 * 1000), 0);
    qemu_thread_join(&th);

    REQUIRE(qemu_thread_create(&th, "post", sem_poster, &sp,
                               QEMU_THREAD_JOINABLE) == 0);
    qemu_sem_wait(&sp.sem);
    qemu_thread_join(&th);
    CHECK_EQ(qemu_sem_timedwait(&sp.sem, 0), -1);
    qemu_sem_destroy(&sp.sem);
}

/* Two semaphores bouncing a token: every post is consumed exactly once. */
typedef struct PingPong {
    QemuSemaphore ping, pong;
    int rounds;
    int value;
} PingPong;

static void *ponger(void *opaque)
{
    PingPong *pp = opaque;
    int i;

    for (i = 0; i < pp->rounds; i++) {
        qemu_sem_wait(&pp->ping);
        pp->value++;            /* ordered by the semaphores */
        qemu_sem_post(&pp->pong);
    }
    return NULL;
}

static void test_sem_ping_pong(void)
{
    PingPong pp = { .rounds = 2000 };
    QemuThread th;
    int i;

    qemu_sem_init(&pp.ping, 0);
    qemu_sem_init(&pp.pong, 0);
    REQUIRE(qemu_thread_create(&th, "pong", ponger, &pp,
                               QEMU_THREAD_JOINABLE) == 0);
    for (i = 0; i < pp.rounds; i++) {
        pp.value++;
        qemu_sem_post(&pp.ping);
        qemu_sem_wait(&pp.pong);
    }
    qemu_thread_join(&th);
    CHECK_EQ(pp.value, 2 * pp.rounds);
    qemu_sem_destroy(&pp.ping);
    qemu_sem_destroy(&pp.pong);
}

/* ------------------------------------------------------------------ */
/* Events                                                              */

typedef struct EventState {
    QemuEvent ev;
    int data;           /* written before set, read after wait */
    int done;           /* atomic */
    int tid;            /* atomic: the waiter's, once it runs */
} EventState;

static void *event_waiter(void *opaque)
{
    EventState *es = opaque;

    qatomic_mb_set(&es->tid, test_gettid());
    qemu_event_wait(&es->ev);
    qatomic_set(&es->done, es->data);
    return NULL;
}

static void test_event_basic(void)
{
    QemuEvent ev;

    /* A wait that blocked here would never end: the watchdog. */
    qemu_event_init(&ev, true);
    qemu_event_wait(&ev);               /* set: returns at once */
    qemu_event_wait(&ev);               /* wait does not reset */
    qemu_event_set(&ev);                /* set twice: fine */
    qemu_event_reset(&ev);
    qemu_event_reset(&ev);              /* reset twice: fine */
    qemu_event_set(&ev);
    qemu_event_wait(&ev);
    qemu_event_destroy(&ev);
}

static void test_event_cross_thread(void)
{
    EventState es = { .data = 0 };
    QemuThread th;

    qemu_event_init(&es.ev, false);
    REQUIRE(qemu_thread_create(&th, "evwait", event_waiter, &es,
                               QEMU_THREAD_JOINABLE) == 0);
    while (!qatomic_mb_read(&es.tid)) {
        sleep_ms(1);
    }
    test_wait_blocked(es.tid);           /* asleep in the futex */
    CHECK_EQ(qatomic_read(&es.done), 0);
    es.data = 42;                        /* published by the set */
    qemu_event_set(&es.ev);
    qemu_thread_join(&th);
    CHECK_EQ(es.done, 42);
    qemu_event_destroy(&es.ev);
}

/* Ping-pong with the reset / check / wait pattern: no lost wake-ups. */
typedef struct EventPingPong {
    QemuEvent to_worker, to_main;
    int turn;           /* atomic: whose move (0 main, 1 worker, 2 stop) */
    int rounds;
    int worker_rounds;  /* the worker's count of its moves */
} EventPingPong;

static void *event_ponger(void *opaque)
{
    EventPingPong *p = opaque;

    for (;;) {
        int turn;

        for (;;) {
            qemu_event_reset(&p->to_worker);
            turn = qatomic_mb_read(&p->turn);
            if (turn != 0) {
                break;
            }
            qemu_event_wait(&p->to_worker);
        }
        if (turn == 2) {
            break;
        }
        p->worker_rounds++;
        qatomic_mb_set(&p->turn, 0);
        qemu_event_set(&p->to_main);
    }
    return NULL;
}

static void test_event_ping_pong(void)
{
    EventPingPong p = { .rounds = 5000 };
    QemuThread th;
    int64_t end = test_stress_end();
    int i;

    qemu_event_init(&p.to_worker, false);
    qemu_event_init(&p.to_main, false);
    REQUIRE(qemu_thread_create(&th, "evpong", event_ponger, &p,
                               QEMU_THREAD_JOINABLE) == 0);
    /* 5000 rounds, or fewer if the time budget runs out first. */
    for (i = 0; i < p.rounds && (i == 0 || test_stress_more(end)); i++) {
        qatomic_mb_set(&p.turn, 1);
        qemu_event_set(&p.to_worker);
        for (;;) {
            qemu_event_reset(&p.to_main);
            if (qatomic_mb_read(&p.turn) == 0) {
                break;
            }
            qemu_event_wait(&p.to_main);
        }
    }
    qatomic_mb_set(&p.turn, 2);
    qemu_event_set(&p.to_worker);
    qemu_thread_join(&th);
    CHECK_EQ(p.worker_rounds, i);       /* every move seen exactly once */
    qemu_event_destroy(&p.to_worker);
    qemu_event_destroy(&p.to_main);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */

typedef struct ThreadInfo {
    QemuThread *creator_view;   /* the creator's handle for us */
    QemuThread main_thread;
    bool is_self_creator_view;
    bool is_self_main;
    bool is_self_own;
    int tid;
    char name[32];
    bool sigusr1_blocked;
    QemuSemaphore started;
} ThreadInfo;

static void *info_thread(void *opaque)
{
    ThreadInfo *info = opaque;
    QemuThread me;
    sigset_t mask;

    qemu_thread_get_self(&me);
    info->is_self_own = qemu_thread_is_self(&me);
    info->is_self_main = qemu_thread_is_self(&info->main_thread);
    info->tid = qemu_get_thread_id();
    pthread_getname_np(pthread_self(), info->name, sizeof(info->name));
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    info->sigusr1_blocked = sigismember(&mask, SIGUSR1);
    /* The creator's handle is complete once create returned: wait. */
    qemu_sem_wait(&info->started);
    info->is_self_creator_view = qemu_thread_is_self(info->creator_view);
    return (void *)0x1234;
}

static void test_thread_create_join(void)
{
    ThreadInfo info;
    QemuThread th;

    memset(&info, 0, sizeof(info));
    qemu_sem_init(&info.started, 0);
    info.creator_view = &th;
    qemu_thread_get_self(&info.main_thread);
    CHECK(qemu_thread_is_self(&info.main_thread));

    CHECK_EQ(qemu_thread_create(&th, "a-very-long-thread-name", info_thread,
                                &info, QEMU_THREAD_JOINABLE), 0);
    CHECK(!qemu_thread_is_self(&th));
    qemu_sem_post(&info.started);
    CHECK(qemu_thread_join(&th) == (void *)0x1234);

    CHECK(info.is_self_own);
    CHECK(info.is_self_creator_view);
    CHECK(!info.is_self_main);
    CHECK(info.tid > 0);
    CHECK(info.tid != qemu_get_thread_id());
    CHECK_EQ(qemu_get_thread_id(), getpid());  /* main thread's tid */
    CHECK(strcmp(info.name, "a-very-long-thr") == 0);   /* 15 bytes */
    CHECK(info.sigusr1_blocked);
    qemu_sem_destroy(&info.started);
}

static void *detached_thread(void *opaque)
{
    qemu_sem_post(opaque);
    return NULL;
}

/* Never destroyed: a detached thread may still be inside qemu_sem_post()
 * when the waiter returns, and nothing can tell when it is out (no join).
 * It holds no memory; the case's process ends with it. */
static QemuSemaphore detached_sem;

static void test_thread_detached(void)
{
    QemuThread th;
    int i;

    qemu_sem_init(&detached_sem, 0);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(qemu_thread_create(&th, NULL, detached_thread, &detached_sem,
                                    QEMU_THREAD_DETACHED), 0);
    }
    for (i = 0; i < 4; i++) {
        qemu_sem_wait(&detached_sem);
    }
}

int main(void)
{
    TEST(test_mutex_counting);
    TEST(test_mutex_trylock);
    TEST(test_cond_signal);
    TEST(test_cond_broadcast);
    TEST(test_cond_timedwait_timeout);
    TEST(test_cond_timedwait_signalled);
    TEST(test_sem_basic);
    TEST(test_sem_cross_thread);
    TEST(test_sem_ping_pong);
    TEST(test_event_basic);
    TEST(test_event_cross_thread);
    TEST(test_event_ping_pong);
    TEST(test_thread_create_join);
    TEST(test_thread_detached);
    return test_done();
}
