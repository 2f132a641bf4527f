/*
 * test-notify.c - waking a sleeping aio_poll() from other threads and from
 * signal handlers: aio_notify(), remembered notifications,
 * aio_notify_accept(), cross-thread and async-signal qemu_bh_schedule(),
 * and a schedule/run handshake stress that a single lost wake-up fails.
 *
 * A lost wake-up leaves a loop asleep: the harness's no-progress watchdog
 * fails that case by name (test.h). Helper threads act once the loop is
 * seen asleep in the fd monitor (wait_until_polling), not after a fixed
 * sleep; the stress cases run until their count or their time budget.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include "aio-test.h"


/* A helper thread that waits until the loop thread sleeps in the fd
 * monitor (when 'when_polling'), raises 'acted', then does one thing. */
enum {
    WAKE_NOTIFY, WAKE_SCHEDULE, WAKE_ONESHOT, WAKE_RAISE_SIGNAL,
    WAKE_KILL_THREAD,
};

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;             /* WAKE_SCHEDULE */
    int *count;             /* WAKE_ONESHOT: atomic_count_cb's counter */
    int action;
    bool when_polling;      /* wait until loop_tid sleeps in the monitor */
    int loop_tid;
    pthread_t target;       /* WAKE_KILL_THREAD */
    int acted;              /* atomic: set right before the action */
    QemuThread thread;
} Waker;

static void *waker_fn(void *opaque)
{
    Waker *w = opaque;

    if (w->when_polling) {
        wait_until_polling(w->loop_tid);
    }
    qatomic_mb_set(&w->acted, 1);
    switch (w->action) {
    case WAKE_NOTIFY:
        aio_notify(w->ctx);
        break;
    case WAKE_SCHEDULE:
        qemu_bh_schedule(w->bh);
        break;
    case WAKE_ONESHOT:
        aio_bh_schedule_oneshot(w->ctx, atomic_count_cb, w->count);
        break;
    case WAKE_RAISE_SIGNAL: {
        /* qemu_thread_create() starts threads with signals blocked. */
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        raise(SIGUSR1);
        break;
    }
    case WAKE_KILL_THREAD:
        pthread_kill(w->target, SIGUSR1);
        break;
    }
    return NULL;
}

static void waker_start(Waker *w)
{
    w->loop_tid = qemu_get_thread_id();
    start_thread(&w->thread, "waker", waker_fn, w);
}

/* ------------------------------------------------------------------ */

static void test_notify_wakes_blocking_poll(void)
{
    AioContext *ctx = new_ctx();
    Waker w = { .ctx = ctx, .action = WAKE_NOTIFY, .when_polling = true };
    bool progress;
    int i;

    CHECK(!aio_poll(ctx, false));
    for (i = 0; i < 5; i++) {
        qatomic_set(&w.acted, 0);
        waker_start(&w);
        progress = aio_poll(ctx, true);
        /* It slept until the notification, and nothing ran. */
        CHECK(qatomic_mb_read(&w.acted));
        CHECK(!progress);
        qemu_thread_join(&w.thread);
    }
    aio_context_unref(ctx);
}

static void test_notify_before_poll_is_remembered(void)
{
    AioContext *ctx = new_ctx();
    Waker w = { .ctx = ctx, .action = WAKE_NOTIFY };
    bool progress;

    /* Same thread. Nothing else could wake these blocking polls: a
     * forgotten notification is a hang, which the watchdog reports. */
    aio_notify(ctx);
    progress = aio_poll(ctx, true);
    CHECK(!progress);

    /* From another thread that is gone before the poll starts. */
    waker_start(&w);
    qemu_thread_join(&w.thread);
    progress = aio_poll(ctx, true);
    CHECK(!progress);

    /* Several notifications collapse into one: after it was consumed, a
     * blocking poll sleeps again until the next one. */
    aio_notify(ctx);
    aio_notify(ctx);
    aio_notify(ctx);
    CHECK(!aio_poll(ctx, true));
    w.when_polling = true;
    qatomic_set(&w.acted, 0);
    waker_start(&w);
    CHECK(!aio_poll(ctx, true));
    CHECK(qatomic_mb_read(&w.acted));
    qemu_thread_join(&w.thread);

    aio_context_unref(ctx);
}

static void test_notify_accept_clears_pending(void)
{
    AioContext *ctx = new_ctx();
    Waker w = { .ctx = ctx, .action = WAKE_NOTIFY, .when_polling = true };

    aio_notify(ctx);
    aio_notify_accept(ctx);
    /* Nothing pending now: the poll must wait for the waker. */
    waker_start(&w);
    CHECK(!aio_poll(ctx, true));
    CHECK(qatomic_mb_read(&w.acted));
    qemu_thread_join(&w.thread);

    /* A non-blocking poll also consumes a pending notification. */
    aio_notify(ctx);
    CHECK(!aio_poll(ctx, false));
    qatomic_set(&w.acted, 0);
    waker_start(&w);
    CHECK(!aio_poll(ctx, true));
    CHECK(qatomic_mb_read(&w.acted));
    qemu_thread_join(&w.thread);

    aio_context_unref(ctx);
}

static void test_notify_many_collapse_into_one(void)
{
    AioContext *ctx = new_ctx();
    int i;

    /* Many notifications with nobody sleeping; then exactly one
     * remembered wake-up. (Cost is measured in bench/, not here.) */
    for (i = 0; i < 100000; i++) {
        aio_notify(ctx);
    }
    CHECK(!aio_poll(ctx, true));
    CHECK(!aio_poll(ctx, false));
    /* Nothing left over: the next blocking poll sleeps until woken. */
    {
        Waker w = { .ctx = ctx, .action = WAKE_NOTIFY,
                    .when_polling = true };

        waker_start(&w);
        CHECK(!aio_poll(ctx, true));
        CHECK(qatomic_mb_read(&w.acted));
        qemu_thread_join(&w.thread);
    }
    aio_context_unref(ctx);
}

static void test_bh_schedule_cross_thread_wakes_poll(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, atomic_count_cb, &count);
    Waker w = { .ctx = ctx, .bh = bh, .action = WAKE_SCHEDULE };
    int i;

    for (i = 0; i < 10; i++) {
        /* Now, or once the loop sleeps. */
        w.when_polling = i % 2;
        qatomic_set(&w.acted, 0);
        waker_start(&w);
        /* A blocking poll returns only once the BH ran (or was notified:
         * then the BH must run in a following call). */
        while (qatomic_read(&count) == i) {
            if (aio_poll(ctx, true)) {
                CHECK_EQ(qatomic_read(&count), i + 1);
            }
        }
        CHECK(qatomic_mb_read(&w.acted));
        CHECK_EQ(qatomic_read(&count), i + 1);
        qemu_thread_join(&w.thread);
    }
    /* The first-return case precisely: a sleeping poll woken by a
     * cross-thread schedule returns true with the BH run. */
    w.when_polling = true;
    qatomic_set(&w.acted, 0);
    waker_start(&w);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(qatomic_read(&count), 11);
    qemu_thread_join(&w.thread);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_oneshot_cross_thread_wakes_poll(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    Waker w = { .ctx = ctx, .action = WAKE_ONESHOT, .count = &count,
                .when_polling = true };
    int i;

    /* aio_bh_schedule_oneshot() is "Any thread" too. */
    for (i = 0; i < 5; i++) {
        qatomic_set(&w.acted, 0);
        waker_start(&w);
        CHECK(aio_poll(ctx, true));
        CHECK(qatomic_mb_read(&w.acted));
        CHECK_EQ(qatomic_read(&count), i + 1);
        qemu_thread_join(&w.thread);
    }
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* Signal handlers. */
static QEMUBH *signal_bh;
static volatile sig_atomic_t signal_handled;

static void sigusr1_handler(int sig)
{
    (void)sig;
    qemu_bh_schedule(signal_bh);
    signal_handled = 1;
}

static void install_sigusr1(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sigusr1_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;            /* no SA_RESTART: the poll sees EINTR */
    sigaction(SIGUSR1, &sa, NULL);
}

static void test_bh_schedule_from_signal_handler(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    Waker w = { .ctx = ctx, .when_polling = true };
    sigset_t set;
    int i;

    signal_bh = aio_bh_new(ctx, atomic_count_cb, &count);
    install_sigusr1();
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    /* Signal delivered to the polling thread itself: its wait is
     * interrupted by the handler that schedules the BH. */
    for (i = 0; i < 3; i++) {
        w.action = WAKE_KILL_THREAD;
        w.target = pthread_self();
        qatomic_set(&w.acted, 0);
        signal_handled = 0;
        waker_start(&w);
        while (qatomic_read(&count) == 2 * i) {
            aio_poll(ctx, true);
        }
        CHECK(signal_handled);
        CHECK_EQ(qatomic_read(&count), 2 * i + 1);
        qemu_thread_join(&w.thread);

        /* Signal handled on another thread while this one sleeps. */
        w.action = WAKE_RAISE_SIGNAL;
        qatomic_set(&w.acted, 0);
        waker_start(&w);
        while (qatomic_read(&count) == 2 * i + 1) {
            aio_poll(ctx, true);
        }
        CHECK(qatomic_mb_read(&w.acted));
        CHECK_EQ(qatomic_read(&count), 2 * i + 2);
        qemu_thread_join(&w.thread);
    }
    CHECK(!aio_poll(ctx, false));

    signal(SIGUSR1, SIG_IGN);
    qemu_bh_delete(signal_bh);
    signal_bh = NULL;
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Stress: STRESS_THREADS threads each schedule their own BH, wait until
 * it ran, and schedule again, while this thread runs aio_poll(ctx, true),
 * until each did AIOLOOP_STRESS_ITERS round trips (default 1,000,000) or
 * the time budget (test_stress_end) ran out. Every schedule is matched by
 * exactly one run, so the totals are exact; a lost wake-up leaves the loop
 * asleep and the worker waiting, no BH runs any more, and the harness's
 * progress watchdog fails the case. */
#define STRESS_THREADS 4

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    unsigned ran;           /* atomic: incremented by the BH */
    unsigned scheduled;     /* written by the worker only */
    unsigned iters;
    QemuThread thread;
} StressWorker;

static unsigned stress_total;       /* atomic */
static unsigned stress_workers_done; /* atomic */
static int stress_stop;             /* atomic: the time budget ran out */

static void stress_cb(void *opaque)
{
    StressWorker *s = opaque;

    qatomic_inc(&stress_total);
    qatomic_inc(&s->ran);
}

static void *stress_worker_fn(void *opaque)
{
    StressWorker *s = opaque;
    unsigned i;

    for (i = 0; i < s->iters && !qatomic_read(&stress_stop); i++) {
        unsigned spins = 0;

        s->scheduled++;
        qemu_bh_schedule(s->bh);
        while (qatomic_mb_read(&s->ran) != i + 1) {
            if (++spins > 64) {
                sched_yield();
            }
        }
    }
    qatomic_inc(&stress_workers_done);
    aio_notify(s->ctx);
    return NULL;
}

static unsigned stress_iters(void)
{
    const char *env = getenv("AIOLOOP_STRESS_ITERS");

    if (env && *env) {
        return (unsigned)strtoul(env, NULL, 10);
    }
    return 1000000;
}

static void test_stress_cross_thread_schedule(void)
{
    AioContext *ctx = new_ctx();
    StressWorker w[STRESS_THREADS];
    unsigned iters = stress_iters();
    unsigned long long polls = 0, progress_polls = 0, total_scheduled = 0;
    int64_t t0 = test_now_ns(), end = test_stress_end();
    int i;

    qatomic_set(&stress_total, 0);
    qatomic_set(&stress_workers_done, 0);
    qatomic_set(&stress_stop, 0);
    for (i = 0; i < STRESS_THREADS; i++) {
        w[i] = (StressWorker) { .ctx = ctx, .iters = iters };
        w[i].bh = aio_bh_new(ctx, stress_cb, &w[i]);
    }
    for (i = 0; i < STRESS_THREADS; i++) {
        REQUIRE(qemu_thread_create(&w[i].thread, "stress", stress_worker_fn,
                                   &w[i], QEMU_THREAD_JOINABLE) == 0);
    }
    while (qatomic_mb_read(&stress_workers_done) < STRESS_THREADS) {
        polls++;
        if (aio_poll(ctx, true)) {
            progress_polls++;
            if (!test_stress_more(end)) {
                qatomic_set(&stress_stop, 1);
            }
        }
    }
    for (i = 0; i < STRESS_THREADS; i++) {
        qemu_thread_join(&w[i].thread);
    }
    /* Nothing is left to run: every schedule ran before its worker went
     * on, and the workers are gone. */
    CHECK(!aio_poll(ctx, false));

    for (i = 0; i < STRESS_THREADS; i++) {
        total_scheduled += w[i].scheduled;
    }
    printf("#   %d threads: %llu schedules, %u callbacks, %llu polls "
           "(%llu with progress), %.2f s\n", STRESS_THREADS, total_scheduled,
           qatomic_mb_read(&stress_total), polls, progress_polls,
           (double)(test_now_ns() - t0) / 1e9);
    CHECK_EQ(qatomic_mb_read(&stress_total), total_scheduled);
    CHECK(total_scheduled > 0);     /* the budget ends after a BH ran */
    for (i = 0; i < STRESS_THREADS; i++) {
        CHECK_EQ(qatomic_mb_read(&w[i].ran), w[i].scheduled);
        CHECK(w[i].scheduled <= iters);
        qemu_bh_delete(w[i].bh);
    }
    aio_context_unref(ctx);
}

/* Threads notify at random moments while the loop sleeps and wakes; each
 * ends with a one-shot BH. The loop must see every one-shot (no lost
 * wake-up whatever the interleaving of notify_me and notified). */
typedef struct {
    AioContext *ctx;
    unsigned n;
    unsigned sent;
    int64_t end;            /* the time budget */
    int *done;
    QemuThread thread;
} Notifier;

static void *notifier_fn(void *opaque)
{
    Notifier *n = opaque;
    unsigned i;

    for (i = 0; i < n->n; i++) {
        aio_notify(n->ctx);
        if (i % 16 == 0) {
            sched_yield();
            if (!test_stress_more(n->end)) {
                i++;
                break;
            }
        }
    }
    n->sent = i;
    aio_bh_schedule_oneshot(n->ctx, atomic_count_cb, n->done);
    return NULL;
}

static void test_stress_concurrent_notify(void)
{
    AioContext *ctx = new_ctx();
    Notifier n[3];
    int done = 0;
    unsigned long long polls = 0, sent = 0;
    int64_t end = test_stress_end();
    int i;

    /* Each sends 100,000 notifications or stops at the time budget;
     * every one of them ends with its one-shot. */
    for (i = 0; i < 3; i++) {
        n[i] = (Notifier) { .ctx = ctx, .done = &done, .n = 100000,
                            .end = end };
        REQUIRE(qemu_thread_create(&n[i].thread, "notifier", notifier_fn,
                                   &n[i], QEMU_THREAD_JOINABLE) == 0);
    }
    while (qatomic_read(&done) < 3) {
        aio_poll(ctx, true);
        polls++;
    }
    for (i = 0; i < 3; i++) {
        qemu_thread_join(&n[i].thread);
        sent += n[i].sent;
    }
    printf("#   %llu notifications, %llu blocking polls\n", sent, polls);
    CHECK_EQ(qatomic_read(&done), 3);
    /* Leftover notifications make at most one more poll return early. */
    aio_poll(ctx, false);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* A notification that arrives while aio_poll() is already awake (woken
 * by a kick: a timer moved earlier from another thread) must still make
 * it return. aio_poll() used to load 'notified' for its result and then
 * clear it in a second step: an aio_notify() landing between the two was
 * cleared without being reported, and the blocking aio_poll() slept on.
 * Found by the Spin model (tests/model/aio-notify.pml, BUG_WOKEN_RACE).
 * The window is a few instructions wide: this is a stress test that
 * catches the bug in some runs, not in every one. A lost notification
 * leaves the loop asleep (the kicks do not make it return): the case
 * waits for it without a bound, and the harness's watchdog reports it. */

typedef struct {
    AioContext *ctx;
    QEMUTimer *timer;
    int stop;               /* atomic */
    unsigned returns;       /* atomic: aio_poll() calls that returned */
    QemuThread poller, kicker;
} KickedLoop;

static void *kicked_poller_fn(void *opaque)
{
    KickedLoop *k = opaque;

    while (!qatomic_mb_read(&k->stop)) {
        aio_poll(k->ctx, true);
        qatomic_inc(&k->returns);
    }
    return NULL;
}

static void never_cb(void *opaque)
{
    (void)opaque;
}

/* Keeps the loop iterating without progress: each timer_mod() moves the
 * far-away deadline earlier, which kicks the sleeping loop. */
static void *kicker_fn(void *opaque)
{
    KickedLoop *k = opaque;
    int64_t deadline = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                       3600LL * 1000 * 1000 * 1000;

    while (!qatomic_mb_read(&k->stop)) {
        timer_mod_ns(k->timer, deadline--);
    }
    return NULL;
}

static void test_notify_while_awake_not_lost(void)
{
    AioContext *ctx = new_ctx();
    KickedLoop k = { .ctx = ctx };
    int64_t end = test_stress_end();
    unsigned long notifies = 0;

    k.timer = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS, never_cb,
                            NULL);
    start_thread(&k.poller, "poller", kicked_poller_fn, &k);
    start_thread(&k.kicker, "kicker", kicker_fn, &k);
    while (test_stress_more(end)) {
        unsigned before = qatomic_mb_read(&k.returns);
        int64_t until = test_now_ns() + (int64_t)(rand() % 20000);

        /* Land at a random point of the loop's kicked iterations. */
        while (test_now_ns() < until) {
            /* spin */
        }
        aio_notify(ctx);
        notifies++;
        /* The notified loop returns, however long that takes here. */
        while (qatomic_mb_read(&k.returns) == before) {
            sched_yield();
        }
    }
    qatomic_mb_set(&k.stop, 1);
    qemu_thread_join(&k.kicker);
    aio_notify(ctx);
    qemu_thread_join(&k.poller);
    printf("#   %lu notifications, %u returns\n", notifies,
           qatomic_read(&k.returns));
    timer_free(k.timer);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);

    RUN(test_notify_wakes_blocking_poll);
    RUN(test_notify_before_poll_is_remembered);
    RUN(test_notify_accept_clears_pending);
    RUN(test_notify_many_collapse_into_one);
    RUN(test_bh_schedule_cross_thread_wakes_poll);
    RUN(test_oneshot_cross_thread_wakes_poll);
    RUN(test_bh_schedule_from_signal_handler);
    RUN(test_stress_cross_thread_schedule);
    RUN(test_stress_concurrent_notify);
    RUN(test_notify_while_awake_not_lost);
    return test_done();
}
