/*
 * test-bh.c - bottom halves: run-once, rescheduling, cancel, delete (also
 * from callbacks), idle BHs, one-shot BHs and the leaked-BH report.
 *
 * Single-threaded. A blocking aio_poll() that never returns is a hang,
 * which the harness's no-progress watchdog fails by name.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "aio-test.h"


/* Runs non-blocking iterations until one makes no progress; returns how
 * many made progress (bounded so that a bug cannot spin forever). */
static int drain(AioContext *ctx)
{
    int n = 0;

    while (n < 1000 && aio_poll(ctx, false)) {
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ */

static void test_poll_empty_context(void)
{
    AioContext *ctx = new_ctx();

    REQUIRE(ctx != NULL);
    CHECK(!aio_poll(ctx, false));
    CHECK(!aio_poll(ctx, false));
    CHECK(!aio_pending(ctx));
    aio_context_unref(ctx);
}

static void test_bh_runs_once(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    REQUIRE(bh != NULL);
    qemu_bh_schedule(bh);
    qemu_bh_schedule(bh);
    CHECK_EQ(count, 0);             /* never run inside schedule */
    CHECK(aio_pending(ctx));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK(!aio_pending(ctx));

    /* Scheduling again after it ran runs it again, once. */
    qemu_bh_schedule(bh);
    qemu_bh_schedule(bh);
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 2);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 2);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_bh_poll_return_value(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    CHECK_EQ(aio_bh_poll(ctx), 0);
    qemu_bh_schedule(bh);
    CHECK(aio_bh_poll(ctx) != 0);
    CHECK_EQ(count, 1);
    CHECK_EQ(aio_bh_poll(ctx), 0);
    CHECK_EQ(count, 1);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_bh_blocking_poll_runs_scheduled(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    qemu_bh_schedule(bh);
    /* A BH is ready: a blocking poll must not sleep. */
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(count, 1);
    CHECK(!aio_poll(ctx, false));
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

/* A BH that reschedules itself while 'remaining' > 0. */
typedef struct {
    QEMUBH *bh;
    int count;
    int remaining;
} SelfResched;

static void self_resched_cb(void *opaque)
{
    SelfResched *s = opaque;

    s->count++;
    if (s->remaining > 0) {
        s->remaining--;
        qemu_bh_schedule(s->bh);
    }
}

static void test_bh_reschedule_from_callback_runs_next_poll(void)
{
    AioContext *ctx = new_ctx();
    SelfResched s = { .remaining = 5 };
    int i;

    s.bh = aio_bh_new(ctx, self_resched_cb, &s);
    qemu_bh_schedule(s.bh);
    /* One step per aio_poll, never more. */
    for (i = 1; i <= 6; i++) {
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(s.count, i);
    }
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.count, 6);

    /* Same with blocking polls: each returns after one step. */
    s.count = 0;
    s.remaining = 3;
    qemu_bh_schedule(s.bh);
    for (i = 1; i <= 4; i++) {
        CHECK(aio_poll(ctx, true));
        CHECK_EQ(s.count, i);
    }
    CHECK(!aio_poll(ctx, false));

    qemu_bh_delete(s.bh);
    aio_context_unref(ctx);
}

static void test_bh_self_rescheduling_does_not_starve(void)
{
    AioContext *ctx = new_ctx();
    SelfResched s = { .remaining = 1000000 };
    int other = 0;
    QEMUBH *other_bh = aio_bh_new(ctx, count_cb, &other);

    s.bh = aio_bh_new(ctx, self_resched_cb, &s);
    qemu_bh_schedule(s.bh);
    qemu_bh_schedule(other_bh);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(other, 1);
    CHECK_EQ(s.count, 2);           /* one step per poll */
    CHECK(aio_poll(ctx, true));     /* still ready: must not sleep */
    CHECK_EQ(s.count, 3);
    CHECK_EQ(other, 1);

    /* Stop it: cancel undoes the pending schedule. */
    qemu_bh_cancel(s.bh);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.count, 3);

    qemu_bh_delete(s.bh);
    qemu_bh_delete(other_bh);
    aio_context_unref(ctx);
}

/* A BH whose callback schedules another BH: that one runs next poll. */
typedef struct {
    QEMUBH *target;
    int count;
} Chain;

static void chain_cb(void *opaque)
{
    Chain *c = opaque;

    c->count++;
    qemu_bh_schedule(c->target);
}

static void test_bh_scheduled_from_other_bh_runs_next_poll(void)
{
    AioContext *ctx = new_ctx();
    int second = 0;
    Chain c = { 0 };
    QEMUBH *first;

    c.target = aio_bh_new(ctx, count_cb, &second);
    first = aio_bh_new(ctx, chain_cb, &c);
    qemu_bh_schedule(first);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(c.count, 1);
    CHECK_EQ(second, 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(c.count, 1);
    CHECK_EQ(second, 1);
    CHECK(!aio_poll(ctx, false));

    qemu_bh_delete(first);
    qemu_bh_delete(c.target);
    aio_context_unref(ctx);
}

static void test_bh_cancel(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    /* Cancel of a BH that was never scheduled is harmless. */
    qemu_bh_cancel(bh);
    CHECK(!aio_poll(ctx, false));

    qemu_bh_schedule(bh);
    qemu_bh_cancel(bh);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    /* The BH stays usable after a cancel. */
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_bh_schedule_then_delete(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    qemu_bh_schedule(bh);
    qemu_bh_delete(bh);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);

    /* Delete of a BH that was never scheduled. */
    bh = aio_bh_new(ctx, count_cb, &count);
    qemu_bh_delete(bh);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 0);

    /* Delete right before the context goes away: nothing leaks (ASan). */
    bh = aio_bh_new(ctx, count_cb, &count);
    qemu_bh_schedule(bh);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
    CHECK_EQ(count, 0);
}

typedef struct {
    QEMUBH *bh;
    int count;
} SelfDelete;

static void self_delete_cb(void *opaque)
{
    SelfDelete *s = opaque;

    s->count++;
    qemu_bh_delete(s->bh);
}

static void self_delete_resched_cb(void *opaque)
{
    SelfDelete *s = opaque;

    s->count++;
    /* Schedule, then delete: the deletion wins. */
    qemu_bh_schedule(s->bh);
    qemu_bh_delete(s->bh);
}

static void test_bh_delete_in_own_callback(void)
{
    AioContext *ctx = new_ctx();
    SelfDelete s = { 0 };

    s.bh = aio_bh_new(ctx, self_delete_cb, &s);
    qemu_bh_schedule(s.bh);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(s.count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.count, 1);

    s.count = 0;
    s.bh = aio_bh_new(ctx, self_delete_resched_cb, &s);
    qemu_bh_schedule(s.bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.count, 1);

    /* Self-deletion followed immediately by the context's last unref. */
    s.count = 0;
    s.bh = aio_bh_new(ctx, self_delete_cb, &s);
    qemu_bh_schedule(s.bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.count, 1);
    aio_context_unref(ctx);
}

/* A ring of BHs: each deletes the next one (if still alive) and itself.
 * Every BH ends up deleted and none runs after it was deleted. */
#define RING 100

typedef struct {
    QEMUBH *bh[RING];
    bool deleted[RING];
    int ran[RING];
    int ran_after_delete;
    int alive;
} Ring;

typedef struct {
    Ring *ring;
    int idx;
} RingMember;

static void ring_delete(Ring *r, int i)
{
    if (!r->deleted[i]) {
        r->deleted[i] = true;
        r->alive--;
        qemu_bh_delete(r->bh[i]);
    }
}

static void ring_cb(void *opaque)
{
    RingMember *m = opaque;
    Ring *r = m->ring;

    if (r->deleted[m->idx]) {
        r->ran_after_delete++;
    }
    r->ran[m->idx]++;
    ring_delete(r, (m->idx + 1) % RING);
    ring_delete(r, m->idx);
}

static void test_bh_delete_ring(void)
{
    AioContext *ctx = new_ctx();
    static Ring r;
    static RingMember m[RING];
    int i, ran = 0;

    memset(&r, 0, sizeof(r));
    r.alive = RING;
    for (i = 0; i < RING; i++) {
        m[i].ring = &r;
        m[i].idx = i;
        r.bh[i] = aio_bh_new(ctx, ring_cb, &m[i]);
    }
    for (i = 0; i < RING; i++) {
        qemu_bh_schedule(r.bh[i]);
    }
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(r.ran_after_delete, 0);
    CHECK_EQ(r.alive, 0);
    for (i = 0; i < RING; i++) {
        CHECK(r.ran[i] <= 1);
        ran += r.ran[i];
    }
    /* Each BH that ran deleted at most one other before it could run. */
    CHECK(ran >= RING / 2);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(r.ran_after_delete, 0);
    aio_context_unref(ctx);
}

/* A BH that deletes another, already scheduled BH from its callback. */
typedef struct {
    QEMUBH *victim;
    int *victim_count;
    int seen_at_delete;
    int count;
} Killer;

static void killer_cb(void *opaque)
{
    Killer *k = opaque;

    k->count++;
    if (k->victim) {
        k->seen_at_delete = *k->victim_count;
        qemu_bh_delete(k->victim);
        k->victim = NULL;
    }
}

static void test_bh_delete_other_from_callback(void)
{
    AioContext *ctx = new_ctx();
    int victim_count = 0;
    Killer k = { .victim_count = &victim_count };
    QEMUBH *killer = aio_bh_new(ctx, killer_cb, &k);

    /* Both pending in the same iteration: the killer deletes the victim
     * from its callback, whichever of the two the loop reaches first. */
    k.victim = aio_bh_new(ctx, count_cb, &victim_count);
    qemu_bh_schedule(killer);
    qemu_bh_schedule(k.victim);
    CHECK(aio_poll(ctx, false));
    /* Order is not promised: the victim may have run before the killer,
     * never after. */
    CHECK_EQ(victim_count, k.seen_at_delete);
    CHECK_EQ(k.count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(victim_count, k.seen_at_delete);

    qemu_bh_delete(killer);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Idle BHs                                                            */

static void test_bh_idle_not_progress(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    qemu_bh_schedule_idle(bh);
    CHECK_EQ(count, 0);
    CHECK(!aio_poll(ctx, false));   /* ran, but no progress */
    CHECK_EQ(count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_compute_timeout(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);
    int64_t t;

    CHECK_EQ(aio_compute_timeout(ctx), -1);

    qemu_bh_schedule_idle(bh);
    t = aio_compute_timeout(ctx);
    printf("#   timeout with an idle BH pending: %lld ns\n", (long long)t);
    CHECK(t > 0);
    CHECK(t <= 10 * 1000 * 1000);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    qemu_bh_schedule(bh);
    CHECK_EQ(aio_compute_timeout(ctx), 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 2);
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    /* Cancelled: nothing pending any more. */
    qemu_bh_schedule(bh);
    qemu_bh_cancel(bh);
    CHECK(aio_compute_timeout(ctx) != 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(aio_compute_timeout(ctx), -1);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void test_bh_idle_blocking_poll(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);
    bool progress;

    /* The poll sleeps for the idle BH's timeout (test_compute_timeout
     * checks it), then runs it; a poll that slept for ever is a hang. */
    qemu_bh_schedule_idle(bh);
    progress = aio_poll(ctx, true);
    CHECK(!progress);
    CHECK_EQ(count, 1);

    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* One-shot BHs                                                        */

static void test_bh_oneshot(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    int i;

    aio_bh_schedule_oneshot(ctx, count_cb, &count);
    CHECK_EQ(count, 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 1);

    /* Several at once: each runs exactly once. */
    for (i = 0; i < 10; i++) {
        aio_bh_schedule_oneshot(ctx, count_cb, &count);
    }
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 11);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(count, 11);

    /* A one-shot that never ran is freed with the context (ASan). */
    aio_bh_schedule_oneshot(ctx, count_cb, &count);
    aio_context_unref(ctx);
}

typedef struct {
    AioContext *ctx;
    int count;
} OneshotChain;

static void oneshot_chain_cb(void *opaque)
{
    OneshotChain *c = opaque;

    if (++c->count < 5) {
        aio_bh_schedule_oneshot(c->ctx, oneshot_chain_cb, c);
    }
}

static void test_bh_oneshot_from_callback(void)
{
    AioContext *ctx = new_ctx();
    OneshotChain c = { .ctx = ctx };
    int i;

    aio_bh_schedule_oneshot(ctx, oneshot_chain_cb, &c);
    for (i = 1; i <= 5; i++) {
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(c.count, i);
    }
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(c.count, 5);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Context lifetime                                                    */

static void test_context_ref_unref(void)
{
    AioContext *ctx = new_ctx();
    int count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &count);

    aio_context_ref(ctx);
    aio_context_unref(ctx);
    /* Still alive: the first reference remains. */
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(count, 1);
    qemu_bh_delete(bh);
    CHECK_EQ(drain(ctx), 0);
    aio_context_unref(ctx);
}

static void test_many_contexts(void)
{
    AioContext *ctx[16];
    int counts[16] = { 0 };
    QEMUBH *bh[16];
    int i;

    for (i = 0; i < 16; i++) {
        ctx[i] = new_ctx();
        REQUIRE(ctx[i] != NULL);
        bh[i] = aio_bh_new(ctx[i], count_cb, &counts[i]);
    }
    qemu_bh_schedule(bh[3]);
    /* A context runs its own BHs only. */
    for (i = 0; i < 16; i++) {
        if (i != 3) {
            CHECK(!aio_poll(ctx[i], false));
        }
    }
    CHECK_EQ(counts[3], 0);
    CHECK(aio_poll(ctx[3], false));
    CHECK_EQ(counts[3], 1);
    for (i = 0; i < 16; i++) {
        CHECK_EQ(counts[i], i == 3 ? 1 : 0);
        qemu_bh_delete(bh[i]);
        aio_context_unref(ctx[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Leaked-BH report                                                    */

static void __attribute__((unused)) leaky_bh_cb(void *opaque)
{
    (void)opaque;
}

static void test_leaked_bh_is_reported(void)
{
#ifdef NDEBUG
    SKIP_CASE("built with NDEBUG: leaked BHs are not reported");
#else
    int pipefd[2];
    pid_t pid;
    char buf[4096];
    size_t len = 0;
    int status;

    REQUIRE(pipe(pipefd) == 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        AioContext *ctx;

        close(pipefd[0]);
        if (dup2(pipefd[1], STDERR_FILENO) < 0) {
            _exit(2);
        }
        close(pipefd[1]);
        ctx = aio_context_new(NULL);
        if (!ctx) {
            _exit(3);
        }
        aio_bh_new(ctx, leaky_bh_cb, NULL);
        aio_context_unref(ctx);
        fflush(stderr);
        _exit(0);
    }
    close(pipefd[1]);
    for (;;) {
        ssize_t n = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len == sizeof(buf) - 1) {
            break;
        }
    }
    buf[len] = '\0';
    close(pipefd[0]);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    /* A report, not an abort. */
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    printf("#   child's stderr: %s%s", buf,
           len && buf[len - 1] == '\n' ? "" : "\n");
    CHECK(strstr(buf, "leaky_bh_cb") != NULL);
#endif
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_poll_empty_context);
    RUN(test_bh_runs_once);
    RUN(test_bh_poll_return_value);
    RUN(test_bh_blocking_poll_runs_scheduled);
    RUN(test_bh_reschedule_from_callback_runs_next_poll);
    RUN(test_bh_self_rescheduling_does_not_starve);
    RUN(test_bh_scheduled_from_other_bh_runs_next_poll);
    RUN(test_bh_cancel);
    RUN(test_bh_schedule_then_delete);
    RUN(test_bh_delete_in_own_callback);
    RUN(test_bh_delete_ring);
    RUN(test_bh_delete_other_from_callback);
    RUN(test_bh_idle_not_progress);
    RUN(test_compute_timeout);
    RUN(test_bh_idle_blocking_poll);
    RUN(test_bh_oneshot);
    RUN(test_bh_oneshot_from_callback);
    RUN(test_context_ref_unref);
    RUN(test_many_contexts);
    RUN(test_leaked_bh_is_reported);
    return test_done();
}
