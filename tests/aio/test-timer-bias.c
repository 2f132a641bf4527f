/*
 * test-timer-bias.c - re-arming timers from the loop thread and from
 * others at once. The loop thread re-arms without a lock (the list is
 * biased to it, src/timer.c); another thread takes the list's spinlock
 * and revokes that bias first. Checked here: a re-arm from another
 * thread that makes a deadline earlier wakes the loop asleep in
 * aio_poll() (the timer moved up to the root, or the root itself moved
 * earlier); the owner's lock-free re-arms racing with other threads'
 * re-arms, deletions and past-deadline arms keep the heap valid and lose
 * or double no firing; the bias follows the thread that runs the loop
 * and comes back after another thread took it; a list biased to a
 * thread that exited keeps working, also for a new thread that inherits
 * the exited one's record, and in a forked child.
 *
 * Registered twice: as is, and with AIOLOOP_TIMER_BIAS=0 (every thread
 * takes the spinlock); the checks of who owns the bias apply to the
 * first only. A wake-up that does not come within half the harness's
 * no-progress window (WAKE_BOUND_MS: 30 s by default, longer under
 * sanitizers or AIOLOOP_TEST_STALL_SECS) is reported lost, and the loop
 * is woken with aio_notify() so that the program goes on. The stress
 * rounds stop at their count or their time budget (test_stress_more()),
 * whichever comes first.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include <sys/wait.h>

#include "aio-test.h"
#include "../../src/timer-internal.h"

#define FAR_NS (3600LL * 1000000000LL)      /* an hour ahead */
#define WAKE_BOUND_MS (test__stall_secs() * 500)

static int64_t rt_now(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

static QEMUTimerList *rt_list(AioContext *ctx)
{
    return aio_get_timer_list_group(ctx)->tl[QEMU_CLOCK_REALTIME];
}

static bool heap_ok(AioContext *ctx)
{
    char why[256];

    if (!aioloop__timerlist_check(rt_list(ctx), why, sizeof(why))) {
        printf("#   heap broken: %s\n", why);
        return false;
    }
    return true;
}

static void sem_cb(void *opaque)
{
    qemu_sem_post(opaque);
}

static void count_fired_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

/* ------------------------------------------------------------------ */
/* A re-arm from another thread wakes the sleeping loop                */

#define WAKE_ROUNDS 40
#define WAKE_OTHERS 100

typedef struct {
    AioContext *ctx;
    QEMUTimer *t;
    QemuSemaphore go, fired;
    int rounds;
    int lost;               /* rounds whose wake-up did not come */
    int done;               /* the current round is over (loop exits) */
} Waker;

static void waker_fired_cb(void *opaque)
{
    Waker *w = opaque;

    qatomic_set(&w->done, 1);
    qemu_sem_post(&w->fired);
}

static void *waker_thread(void *opaque)
{
    Waker *w = opaque;

    for (int r = 0; r < w->rounds; r++) {
        qemu_sem_wait(&w->go);
        sleep_us(500 + (r % 4) * 500);      /* the loop is likely asleep */
        timer_mod_ns(w->t, rt_now() + 100 * 1000);
        if (qemu_sem_timedwait(&w->fired, WAKE_BOUND_MS) != 0) {
            w->lost++;                      /* let the loop go on */
            qatomic_set(&w->done, 1);
            aio_notify(w->ctx);
        }
        test_progress();
    }
    return NULL;
}

static void test_cross_thread_rearm_wakes_loop(void)
{
    AioContext *ctx = new_ctx();
    QEMUTimer t, others[WAKE_OTHERS];
    int others_fired = 0;
    Waker w = { .ctx = ctx, .t = &t, .rounds = WAKE_ROUNDS };
    QemuThread th;
    int64_t now = rt_now();

    qemu_sem_init(&w.go, 0);
    qemu_sem_init(&w.fired, 0);
    aio_timer_init(ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS, waker_fired_cb,
                   &w);
    for (int i = 0; i < WAKE_OTHERS; i++) {
        aio_timer_init(ctx, &others[i], QEMU_CLOCK_REALTIME, SCALE_NS,
                       count_fired_cb, &others_fired);
        timer_mod_ns(&others[i], now + 2 * FAR_NS + i);
    }
    start_thread(&th, "waker", waker_thread, &w);
    for (int r = 0; r < WAKE_ROUNDS; r++) {
        /* Parked by the loop thread (its own re-arm): even rounds as the
         * root, odd rounds deep in the heap. The other thread's re-arm
         * then moves the root earlier, or moves the timer up to it. */
        timer_mod_ns(&t, rt_now() + (r % 2 ? 3 : 1) * FAR_NS);
        CHECK_EQ(t.heap_index == 3, r % 2 == 0);
        qatomic_set(&w.done, 0);
        qemu_sem_post(&w.go);
        while (!qatomic_read(&w.done)) {
            aio_poll(ctx, true);
        }
    }
    qemu_thread_join(&th);
    CHECK_EQ(w.lost, 0);
    CHECK_EQ(others_fired, 0);
    CHECK(heap_ok(ctx));
    printf("#   %d rounds, %d wake-ups lost; revocations %u\n", WAKE_ROUNDS,
           w.lost, aioloop__timerlist_revocations(rt_list(ctx)));
    for (int i = 0; i < WAKE_OTHERS; i++) {
        timer_deinit(&others[i]);
    }
    timer_deinit(&t);
    qemu_sem_destroy(&w.go);
    qemu_sem_destroy(&w.fired);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* The owner and other threads re-arming at once                       */

#define STRESS_HELPERS 3
#define STRESS_OWN 64
#define STRESS_MOVERS 16

typedef struct {
    AioContext *ctx;
    int id;
    unsigned iters;
    QEMUTimer past;         /* armed in the past, waited for, again */
    QemuSemaphore past_sem;
    QEMUTimer movers[STRESS_MOVERS];  /* re-armed far ahead, deleted */
    uint64_t rng;
    int lost;
} Helper;

static unsigned stress_done;          /* helpers finished (atomic) */

static uint64_t next_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *helper_thread(void *opaque)
{
    Helper *h = opaque;
    int64_t end = test_stress_end();

    for (unsigned i = 0; i < h->iters && test_stress_more(end); i++) {
        for (int j = 0; j < 4; j++) {
            QEMUTimer *m = &h->movers[next_rng(&h->rng) % STRESS_MOVERS];
            uint64_t x = next_rng(&h->rng);

            if (x % 8 == 0) {
                timer_del(m);
            } else {
                timer_mod_ns(m, rt_now() + FAR_NS + (int64_t)(x % 1000000));
            }
        }
        /* A past deadline: fires at the loop's next look, which the arm
         * itself must cause (the loop may sleep for an hour). */
        timer_mod_ns(&h->past, rt_now() - 1);
        if (qemu_sem_timedwait(&h->past_sem, WAKE_BOUND_MS) != 0) {
            h->lost++;
            aio_notify(h->ctx);
            qemu_sem_wait(&h->past_sem);
        }
        test_progress();
    }
    qatomic_inc(&stress_done);
    aio_notify(h->ctx);
    return NULL;
}

static void owner_and_others(unsigned backoff, bool busy_owner)
{
    AioContext *ctx = new_ctx();
    Helper h[STRESS_HELPERS];
    QemuThread th[STRESS_HELPERS];
    QEMUTimer own[STRESS_OWN];
    int own_fired = 0;
    unsigned iters = UNDER_TSAN ? 300 : 3000, polls = 0;
    uint64_t rng = 0x6f776e6572ull;     /* "owner" */
    bool biased_at_start = aioloop__timerlist_biased_to_self(rt_list(ctx));

    aioloop__timer_bias_backoff(backoff);
    qatomic_set(&stress_done, 0);
    for (int i = 0; i < STRESS_OWN; i++) {
        aio_timer_init(ctx, &own[i], QEMU_CLOCK_REALTIME, SCALE_NS,
                       count_fired_cb, &own_fired);
        timer_mod_ns(&own[i], rt_now() + FAR_NS + i);
    }
    for (int k = 0; k < STRESS_HELPERS; k++) {
        h[k] = (Helper) { .ctx = ctx, .id = k, .iters = iters,
                          .rng = 0x68656c70ull + k };
        qemu_sem_init(&h[k].past_sem, 0);
        aio_timer_init(ctx, &h[k].past, QEMU_CLOCK_REALTIME, SCALE_NS, sem_cb,
                       &h[k].past_sem);
        for (int j = 0; j < STRESS_MOVERS; j++) {
            aio_timer_init(ctx, &h[k].movers[j], QEMU_CLOCK_REALTIME,
                           SCALE_NS, count_fired_cb, &own_fired);
        }
    }
    for (int k = 0; k < STRESS_HELPERS; k++) {
        start_thread(&th[k], "helper", helper_thread, &h[k]);
    }
    /* The loop thread re-arms its own timers between looks: up, down,
     * in place, the root, and sometimes deletes one. A busy owner does
     * so all the time, so that revocations meet its critical sections. */
    while (qatomic_read(&stress_done) < STRESS_HELPERS) {
        for (int j = 0; j < (busy_owner ? 64 : 8); j++) {
            uint64_t x = next_rng(&rng);
            QEMUTimer *t = &own[x % STRESS_OWN];

            if (x % 16 == 0) {
                timer_del(t);
            } else {
                timer_mod_ns(t, rt_now() + FAR_NS + (int64_t)(x % 100000));
            }
        }
        aio_poll(ctx, !busy_owner);
        polls++;
    }
    for (int k = 0; k < STRESS_HELPERS; k++) {
        qemu_thread_join(&th[k]);
    }
    CHECK(heap_ok(ctx));
    CHECK_EQ(own_fired, 0);
    for (int k = 0; k < STRESS_HELPERS; k++) {
        CHECK_EQ(h[k].lost, 0);
        CHECK(!timer_pending(&h[k].past));
        for (int j = 0; j < STRESS_MOVERS; j++) {
            timer_deinit(&h[k].movers[j]);
        }
        timer_deinit(&h[k].past);
        qemu_sem_destroy(&h[k].past_sem);
    }
    printf("#   %d helpers x %u past arms, %u polls; biased to the loop "
           "thread at start: %s; revocations %u\n", STRESS_HELPERS, iters,
           polls, biased_at_start ? "yes" : "no",
           aioloop__timerlist_revocations(rt_list(ctx)));
    if (aioloop__timer_bias_enabled()) {
        /* The creator owns a new list; the helpers took it away. */
        CHECK(biased_at_start);
        CHECK(aioloop__timerlist_revocations(rt_list(ctx)) > 0);
    } else {
        CHECK(!biased_at_start);
        CHECK_EQ(aioloop__timerlist_revocations(rt_list(ctx)), 0);
    }
    for (int i = 0; i < STRESS_OWN; i++) {
        timer_deinit(&own[i]);
    }
    aio_context_unref(ctx);
}

static void test_owner_and_others_rearm_at_once(void)
{
    owner_and_others(12, false);
}

/* The same with the bias given back at every run of the loop, which
 * never sleeps and re-arms all the time: the helpers revoke the bias as
 * often as they can (a membarrier each), in the middle of the owner's
 * re-arms. */
static void test_owner_and_others_eager_rebias(void)
{
    owner_and_others(0, true);
}

/* ------------------------------------------------------------------ */
/* The bias follows the loop thread, and comes back                    */

typedef struct {
    AioContext *ctx;
    QemuSemaphore step, ack;
    int phase;              /* set by the main thread before each step */
    int runs_to_bias[2];    /* aio_poll() runs until biased, per phase */
    int fired;
} Looper;

/* Polls until the REALTIME list is biased to this thread (or 64 runs). */
static int poll_until_biased(Looper *l)
{
    for (int n = 1; n <= 64; n++) {
        aio_poll(l->ctx, false);
        if (aioloop__timerlist_biased_to_self(rt_list(l->ctx))) {
            return n;
        }
    }
    return -1;
}

static void *looper_thread(void *opaque)
{
    Looper *l = opaque;

    l->runs_to_bias[0] = poll_until_biased(l);
    qemu_sem_post(&l->ack);
    qemu_sem_wait(&l->step);        /* the main thread re-armed a timer */
    l->runs_to_bias[1] = aioloop__timerlist_biased_to_self(rt_list(l->ctx))
                         ? 0 : poll_until_biased(l);
    qemu_sem_post(&l->ack);
    return NULL;
}

static void test_bias_follows_loop_thread(void)
{
    Looper l = { .ctx = new_ctx() };
    QEMUTimer t;
    QemuThread th;

    if (!aioloop__timer_bias_enabled()) {
        aio_context_unref(l.ctx);
        SKIP_CASE("timer lists are not biased in this process "
                  "(AIOLOOP_TIMER_BIAS=0 or no membarrier)");
    }
    qemu_sem_init(&l.step, 0);
    qemu_sem_init(&l.ack, 0);
    aio_timer_init(l.ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS, count_fired_cb,
                   &l.fired);
    timer_mod_ns(&t, rt_now() + FAR_NS);
    CHECK(aioloop__timerlist_biased_to_self(rt_list(l.ctx)));  /* creator */
    start_thread(&th, "looper", looper_thread, &l);
    qemu_sem_wait(&l.ack);
    CHECK(!aioloop__timerlist_biased_to_self(rt_list(l.ctx)));
    /* Taken from the loop thread by this one, then given back. */
    timer_mod_ns(&t, rt_now() + 2 * FAR_NS);
    qemu_sem_post(&l.step);
    qemu_sem_wait(&l.ack);
    qemu_thread_join(&th);
    printf("#   runs until the loop thread owned the list: %d, then %d "
           "after a re-arm from another thread\n", l.runs_to_bias[0],
           l.runs_to_bias[1]);
    CHECK(l.runs_to_bias[0] >= 1);
    CHECK(l.runs_to_bias[1] >= 1);     /* revoked by the re-arm above */
    CHECK(aioloop__timerlist_revocations(rt_list(l.ctx)) >= 2);
    CHECK_EQ(timer_expire_time_ns(&t) > rt_now() + FAR_NS, 1);
    CHECK(heap_ok(l.ctx));
    CHECK_EQ(l.fired, 0);
    timer_deinit(&t);
    qemu_sem_destroy(&l.step);
    qemu_sem_destroy(&l.ack);
    aio_context_unref(l.ctx);
}

/* ------------------------------------------------------------------ */
/* Owners that exited                                                  */

typedef struct {
    AioContext *ctx;        /* made by the thread, or given to it */
    QEMUTimer *t;
    QemuSemaphore fired;    /* posted by the timer */
    bool biased;            /* the thread found the list biased to it */
} Maker;

/* Creates a context (its lists are biased to this thread) and arms a
 * timer far ahead, then exits. */
static void *maker_thread(void *opaque)
{
    Maker *m = opaque;

    m->ctx = new_ctx();
    aio_timer_init(m->ctx, m->t, QEMU_CLOCK_REALTIME, SCALE_NS, sem_cb,
                   &m->fired);
    timer_mod_ns(m->t, rt_now() + FAR_NS);
    m->biased = aioloop__timerlist_biased_to_self(rt_list(m->ctx));
    return NULL;
}

/* Makes a context of its own (taking a thread record, maybe the exited
 * maker's), then re-arms the maker's timer, which the exited maker's
 * list may now let it do without a lock. */
static void *heir_thread(void *opaque)
{
    Maker *m = opaque;
    AioContext *mine = new_ctx();

    m->biased = aioloop__timerlist_biased_to_self(rt_list(m->ctx));
    for (int i = 0; i < 1000; i++) {
        timer_mod_ns(m->t, rt_now() + FAR_NS + i);
    }
    aio_context_unref(mine);
    return NULL;
}

static void test_owner_exited(void)
{
    QEMUTimer t;
    Maker m = { .t = &t };
    QemuThread th;

    qemu_sem_init(&m.fired, 0);
    start_thread(&th, "maker", maker_thread, &m);
    qemu_thread_join(&th);
    CHECK_EQ(m.biased, aioloop__timer_bias_enabled());
    /* The exited thread's record went back for reuse; a new thread's
     * first context takes it, and with it the maker's lists. */
    start_thread(&th, "heir", heir_thread, &m);
    qemu_thread_join(&th);
    CHECK_EQ(m.biased, aioloop__timer_bias_enabled());
    /* This thread now takes the list over (revoking the heir's bias,
     * which exited too) and runs it. */
    timer_mod_ns(&t, rt_now() - 1);
    while (qemu_sem_timedwait(&m.fired, 0) != 0) {
        aio_poll(m.ctx, true);
    }
    CHECK(!timer_pending(&t));
    CHECK(heap_ok(m.ctx));
    timer_deinit(&t);
    aio_context_unref(m.ctx);
    qemu_sem_destroy(&m.fired);
}

static void test_forked_child_takes_list(void)
{
    QEMUTimer t;
    Maker m = { .t = &t };
    QemuThread th;
    pid_t pid;
    int status = 0;

    qemu_sem_init(&m.fired, 0);
    start_thread(&th, "maker", maker_thread, &m);
    qemu_thread_join(&th);
    fflush(stdout);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* The child's only thread revokes the exited maker's bias. */
        bool fired = false;

        timer_mod_ns(&t, rt_now() - 1);
        for (int i = 0; i < 100 && !fired; i++) {
            aio_poll(m.ctx, false);
            fired = qemu_sem_timedwait(&m.fired, 0) == 0;
        }
        _exit(fired && !timer_pending(&t) && heap_ok(m.ctx) ? 0 : 1);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    timer_deinit(&t);
    aio_context_unref(m.ctx);
    qemu_sem_destroy(&m.fired);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    RUN(test_cross_thread_rearm_wakes_loop);
    RUN(test_owner_and_others_rearm_at_once);
    RUN(test_owner_and_others_eager_rebias);
    RUN(test_bias_follows_loop_thread);
    RUN(test_owner_exited);
    RUN(test_forked_child_takes_list);
    return test_done();
}
