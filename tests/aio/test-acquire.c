/*
 * test-acquire.c - aio_context_acquire()/release(): recursion, mutual
 * exclusion between threads, FIFO order, and QEMU 2.4's deadlock: a
 * thread that wants a context whose owner sleeps in a blocking aio_poll()
 * must get it promptly (the sleeper is woken), including when it asks
 * right as the owner is about to enter aio_poll().
 *
 * "Promptly" has no time bound here: an acquire that is never granted (the
 * sleeper is not woken) is a deadlock, a hang the harness's no-progress
 * watchdog fails by name. The racing loops run until their count or the
 * time budget (test_stress_end).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "aio-test.h"

/* Acquires in another thread and reports through a semaphore. */
typedef struct {
    AioContext *ctx;
    QemuSemaphore started;
    QemuSemaphore got;
    QemuSemaphore may_release;
    int order;              /* position in 'acquire_order' */
    int tid;                /* kernel thread id, set before 'started' */
    QemuThread thread;
} Acquirer;

static int acquire_order;   /* atomic */

static void *acquirer_fn(void *opaque)
{
    Acquirer *a = opaque;

    a->tid = qemu_get_thread_id();
    qemu_sem_post(&a->started);
    aio_context_acquire(a->ctx);
    a->order = qatomic_fetch_inc(&acquire_order);
    qemu_sem_post(&a->got);
    qemu_sem_wait(&a->may_release);
    aio_context_release(a->ctx);
    return NULL;
}

static void acquirer_start(Acquirer *a, AioContext *ctx)
{
    a->ctx = ctx;
    qemu_sem_init(&a->started, 0);
    qemu_sem_init(&a->got, 0);
    qemu_sem_init(&a->may_release, 0);
    start_thread(&a->thread, "test", acquirer_fn, a);
    qemu_sem_wait(&a->started);
}

/* Waits until thread @tid sleeps in the kernel: after 'started', the
 * only place an Acquirer can sleep is its acquire (which queues it before
 * it sleeps). No time bound: it gets there (or the watchdog says not). */
static bool wait_until_blocked(int tid)
{
    char path[64], buf[512];

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    for (;;) {
        FILE *f = fopen(path, "r");
        char *paren;
        size_t n;

        if (!f) {
            return false;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        paren = strrchr(buf, ')');
        if (paren && paren[1] == ' ' && (paren[2] == 'S' || paren[2] == 'D')) {
            return true;
        }
        sleep_ms(1);
    }
}

static void acquirer_finish(Acquirer *a)
{
    qemu_sem_post(&a->may_release);
    qemu_thread_join(&a->thread);
    qemu_sem_destroy(&a->started);
    qemu_sem_destroy(&a->got);
    qemu_sem_destroy(&a->may_release);
}

/* ------------------------------------------------------------------ */

static void test_release_by_non_owner_aborts(void)
{
    pid_t pid;
    int status;

    fflush(stdout);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        AioContext *ctx;

        /* Quiet the expected abort message. */
        if (!freopen("/dev/null", "w", stderr)) {
            _exit(2);
        }
        ctx = aio_context_new(NULL);
        if (!ctx) {
            _exit(3);
        }
        aio_context_release(ctx);
        _exit(0);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGABRT);
}

static void test_acquire_recursive(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, atomic_count_cb, &count);
    Acquirer a;

    aio_context_acquire(ctx);
    aio_context_acquire(ctx);
    aio_context_acquire(ctx);
    /* aio_poll() works while the caller holds the context. */
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false) == false);
    CHECK_EQ(count, 1);
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(count, 2);
    aio_context_release(ctx);
    aio_context_release(ctx);

    /* Still held one level: another thread must wait. */
    acquirer_start(&a, ctx);
    CHECK_EQ(qemu_sem_timedwait(&a.got, 100), -1);
    aio_context_release(ctx);
    qemu_sem_wait(&a.got);
    acquirer_finish(&a);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_acquire_excludes_other_thread(void)
{
    AioContext *ctx = new_ctx();
    Acquirer a;
    int round;

    for (round = 0; round < 3; round++) {
        aio_context_acquire(ctx);
        acquirer_start(&a, ctx);
        CHECK_EQ(qemu_sem_timedwait(&a.got, 100), -1);
        aio_context_release(ctx);
        qemu_sem_wait(&a.got);
        /* Now the other thread owns it: aio_poll here would have to wait
         * too; check ownership from the outside instead. */
        acquirer_finish(&a);
    }
    /* Free again: this thread takes it without waiting. */
    aio_context_acquire(ctx);
    aio_context_release(ctx);
    aio_context_unref(ctx);
}

static void test_acquire_fifo_order(void)
{
    AioContext *ctx = new_ctx();
    Acquirer a[3];
    int i;

    qatomic_set(&acquire_order, 0);
    aio_context_acquire(ctx);
    for (i = 0; i < 3; i++) {
        acquirer_start(&a[i], ctx);
        /* Let it reach the wait queue before the next one starts. */
        CHECK(wait_until_blocked(a[i].tid));
    }
    aio_context_release(ctx);
    for (i = 0; i < 3; i++) {
        qemu_sem_wait(&a[i].got);
        CHECK_EQ(a[i].order, i);
        qemu_sem_post(&a[i].may_release);
    }
    for (i = 0; i < 3; i++) {
        qemu_thread_join(&a[i].thread);
        qemu_sem_destroy(&a[i].started);
        qemu_sem_destroy(&a[i].got);
        qemu_sem_destroy(&a[i].may_release);
    }
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* The held loop: the IOThread loop of QEMU 2.4,
 *
 *     while (!stop) {
 *         aio_context_acquire(ctx);
 *         while (aio_poll(ctx, true) && !stop) { }
 *         aio_context_release(ctx);
 *     }
 *
 * holds the context while it sleeps. Another thread's
 * aio_context_acquire() must wake it (the poll returns without progress,
 * the loop releases) instead of waiting for an event that never comes. */

typedef struct {
    AioContext *ctx;
    int stop;               /* atomic */
    unsigned entering;      /* atomic: bumped right before aio_poll() */
    unsigned polls;         /* atomic */
    bool hold;              /* hold the context around the inner loop */
    int tid;                /* atomic: the loop thread's id, once running */
    QemuThread thread;
} PollLoop;

static void *poll_loop_fn(void *opaque)
{
    PollLoop *l = opaque;

    qatomic_mb_set(&l->tid, qemu_get_thread_id());
    while (!qatomic_mb_read(&l->stop)) {
        if (l->hold) {
            aio_context_acquire(l->ctx);
            /* Check stop in the inner loop too (QEMU 2.4's IOThread did):
             * the stop notification may be consumed by an aio_poll() that
             * also ran a BH and so returns true. */
            do {
                qatomic_inc(&l->entering);
                qatomic_inc(&l->polls);
            } while (aio_poll(l->ctx, true) && !qatomic_mb_read(&l->stop));
            aio_context_release(l->ctx);
        } else {
            qatomic_inc(&l->entering);
            aio_poll(l->ctx, true);
            qatomic_inc(&l->polls);
        }
    }
    return NULL;
}

static void poll_loop_start(PollLoop *l, AioContext *ctx, bool hold)
{
    *l = (PollLoop) { .ctx = ctx, .hold = hold };
    start_thread(&l->thread, "test", poll_loop_fn, l);
    while (!qatomic_mb_read(&l->tid)) {
        sched_yield();
    }
}

static void poll_loop_stop(PollLoop *l)
{
    qatomic_mb_set(&l->stop, 1);
    aio_notify(l->ctx);
    qemu_thread_join(&l->thread);
}

/* Acquire from this thread, measuring how long it took. */
static int64_t timed_acquire(AioContext *ctx)
{
    int64_t t0 = test_now_ns();

    aio_context_acquire(ctx);
    return test_now_ns() - t0;
}

typedef struct {
    QemuThread self;
    int ran_here;           /* atomic */
    int ran_elsewhere;      /* atomic */
} WhereBH;

static void where_bh_cb(void *opaque)
{
    WhereBH *w = opaque;

    if (qemu_thread_is_self(&w->self)) {
        qatomic_inc(&w->ran_here);
    } else {
        qatomic_inc(&w->ran_elsewhere);
    }
}

static void test_acquire_while_owner_sleeps_in_poll(void)
{
    AioContext *ctx = new_ctx();
    PollLoop l;
    WhereBH w = { 0 };
    QEMUBH *bh = aio_bh_new(ctx, where_bh_cb, &w);
    int64_t worst = 0;
    int i;

    qemu_thread_get_self(&w.self);
    poll_loop_start(&l, ctx, true);
    for (i = 0; i < 20; i++) {
        int64_t took;

        /* Once the loop sleeps in its blocking aio_poll(), holding the
         * context: only our acquire can wake it. */
        wait_until_polling(l.tid);
        took = timed_acquire(ctx);
        worst = took > worst ? took : worst;

        /* We own it now: work scheduled runs only where we poll. */
        qemu_bh_schedule(bh);
        CHECK(aio_poll(ctx, false));
        aio_context_release(ctx);
    }
    CHECK_EQ(qatomic_read(&w.ran_here), 20);
    CHECK_EQ(qatomic_read(&w.ran_elsewhere), 0);

    /* The loop still runs work once we let go. */
    qemu_bh_schedule(bh);
    while (qatomic_read(&w.ran_elsewhere) == 0) {
        sleep_ms(1);
    }
    poll_loop_stop(&l);
    printf("#   worst acquire: %lld us\n", (long long)(worst / 1000));
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_acquire_race_with_poll_entry(void)
{
    AioContext *ctx = new_ctx();
    PollLoop l;
    int64_t worst = 0, end = test_stress_end();
    int iters = 1000;
    int i;

    unsigned held_seen = 0;

    poll_loop_start(&l, ctx, true);
    for (i = 0; i < iters && test_stress_more(end); i++) {
        int64_t took;

        /* Wait until the loop has taken the context again since we last
         * held it (it bumps 'entering' while holding it, right before
         * aio_poll()), then race its entry into aio_poll(). */
        while (qatomic_mb_read(&l.entering) == held_seen) {
            sched_yield();
        }
        took = timed_acquire(ctx);
        worst = took > worst ? took : worst;
        /* Stable while we hold the context. */
        held_seen = qatomic_mb_read(&l.entering);
        aio_context_release(ctx);
    }
    poll_loop_stop(&l);
    printf("#   %d races, worst acquire %lld us, %u loop polls\n", i,
           (long long)(worst / 1000), qatomic_read(&l.polls));
    aio_context_unref(ctx);
}

static void test_acquire_while_unheld_poll_sleeps(void)
{
    AioContext *ctx = new_ctx();
    PollLoop l;
    WhereBH w = { 0 };
    QEMUBH *bh = aio_bh_new(ctx, where_bh_cb, &w);
    int i;

    /* The loop does not hold the context; aio_poll() releases it while
     * sleeping, so acquire is immediate, and the loop cannot dispatch
     * while we hold it. */
    qemu_thread_get_self(&w.self);
    poll_loop_start(&l, ctx, false);
    for (i = 0; i < 20; i++) {
        wait_until_polling(l.tid);
        aio_context_acquire(ctx);
        qemu_bh_schedule(bh);
        /* The schedule woke the loop, which must now wait for us (given
         * 20 ms to get it wrong, in some rounds). */
        sleep_ms(i % 4 == 0 ? 20 : 0);
        CHECK(aio_poll(ctx, false));
        aio_context_release(ctx);
    }
    CHECK_EQ(qatomic_read(&w.ran_here), 20);
    CHECK_EQ(qatomic_read(&w.ran_elsewhere), 0);

    qemu_bh_schedule(bh);
    while (qatomic_read(&w.ran_elsewhere) == 0) {
        sleep_ms(1);
    }
    poll_loop_stop(&l);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

/* Two threads both run the held loop on one context while a third
 * schedules work: nobody may starve, every BH runs. */
static void test_two_pollers_share_context(void)
{
    AioContext *ctx = new_ctx();
    PollLoop l1, l2;
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, atomic_count_cb, &count);
    int64_t end = test_stress_end();
    int i, n = 2000;

    poll_loop_start(&l1, ctx, true);
    poll_loop_start(&l2, ctx, true);
    for (i = 0; i < n && test_stress_more(end); i++) {
        qemu_bh_schedule(bh);
        while (qatomic_read(&count) == i) {
            sched_yield();
        }
    }
    CHECK_EQ(qatomic_read(&count), i);
    poll_loop_stop(&l1);
    poll_loop_stop(&l2);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

/* A BH scheduled right before aio_context_acquire(): the schedule wakes
 * the held loop, and the acquire's contention wake-up lands in the same
 * loop iteration, which also runs the BH. That aio_poll() returns true
 * (progress), so the held loop polls again - it must not sleep while the
 * acquirer is queued, since nothing else would wake it. aio_poll() used
 * to sleep: the one contention wake-up had been consumed. Found by the
 * Spin model (tests/model/aio-notify.pml, BUG_EDGE_CONTENTION). A
 * regression leaves the acquire waiting for ever: the watchdog. */

static void test_acquire_when_wakeup_also_runs_bh(void)
{
    AioContext *ctx = new_ctx();
    PollLoop l;
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, atomic_count_cb, &count);
    int i, iters = 200;
    int64_t worst = 0, end = test_stress_end();

    poll_loop_start(&l, ctx, true);
    for (i = 0; i < iters && test_stress_more(end); i++) {
        int64_t took;

        /* Once the loop sleeps again in its held aio_poll() (every other
         * round), or 200 us later, wherever it is then. */
        if (i % 2) {
            sleep_us(200);
        } else {
            wait_until_polling(l.tid);
        }
        qemu_bh_schedule(bh);
        took = timed_acquire(ctx);
        worst = took > worst ? took : worst;
        aio_context_release(ctx);
    }
    poll_loop_stop(&l);
    printf("#   %d acquires, worst %lld us, %d BH runs\n", i,
           (long long)(worst / 1000), qatomic_read(&count));
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

/* The other side of the case above: a caller that holds the context and
 * polls on whatever aio_poll() returns (waiting for its own event while
 * another thread is queued for the context) gets one early false return,
 * then sleeps until its event; it must not spin. Found by the Spin model
 * (BUG_LEVEL_CONTENTION: a contention check with no memory makes every
 * aio_poll() return at once). */
static void set_flag_cb(void *opaque)
{
    qatomic_mb_set((int *)opaque, 1);
}

static void test_held_wait_sleeps_while_contended(void)
{
    AioContext *ctx = new_ctx();
    int done = 0, polls = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 set_flag_cb, &done);
    Acquirer a;

    aio_context_acquire(ctx);
    acquirer_start(&a, ctx);
    CHECK(wait_until_blocked(a.tid));
    timer_mod(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 100);
    while (!qatomic_mb_read(&done)) {
        aio_poll(ctx, true);
        polls++;
        if (polls > 1000) {
            break;
        }
    }
    printf("#   %d polls while waiting 100 ms\n", polls);
    CHECK(polls <= 3);
    aio_context_release(ctx);
    qemu_sem_wait(&a.got);
    acquirer_finish(&a);
    timer_free(t);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_DEADLOCK);

    RUN(test_release_by_non_owner_aborts);
    RUN(test_acquire_recursive);
    RUN(test_acquire_excludes_other_thread);
    RUN(test_acquire_fifo_order);
    RUN(test_acquire_while_owner_sleeps_in_poll);
    RUN(test_acquire_race_with_poll_entry);
    RUN(test_acquire_while_unheld_poll_sleeps);
    RUN(test_two_pollers_share_context);
    RUN(test_acquire_when_wakeup_also_runs_bh);
    RUN(test_held_wait_sleeps_while_contended);
    return test_done();
}
