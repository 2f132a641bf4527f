/*
 * test-faults-fd.c - the fd monitors when the kernel refuses: epoll_ctl()
 * failing with ENOMEM when a handler is added, replaced, re-enabled after
 * aio_disable_external(), or added to a context asleep in another thread;
 * and the wait itself (epoll_wait/epoll_pwait2/ppoll) returning EINTR or
 * an error.
 *
 * Contract checked: aio_set_fd_handler() has no error channel, so a
 * refused registration must not lose the handler silently - the context
 * moves to the ppoll monitor and every handler keeps running, exactly
 * once per readiness; an interrupted or failed wait is invisible to the
 * caller (a blocking aio_poll() returns only after progress, timers do
 * not fire early, nothing is lost). Runs once per fd monitor; the
 * epoll_ctl cases skip themselves under ppoll.
 *
 * SPDX-License-Identifier: MIT
 */
#include "faults-test.h"


static bool using_epoll(void)
{
    const char *m = getenv("AIOLOOP_FDMON");

    return !m || strcmp(m, "poll") != 0;
}

static bool on_poll(AioContext *ctx)
{
    return strcmp(aio_context_fdmon_name(ctx), "poll") == 0;
}

/* A pipe whose handler drains it and counts its runs. */
typedef struct {
    int fds[2];
    int runs;                   /* atomic */
    int other_runs;             /* atomic: the replaced callback */
    QemuSemaphore *sem;         /* posted per run, if set */
} Pipe;

static void pipe_cb(void *opaque)
{
    Pipe *p = opaque;

    drain_fd(p->fds[0]);
    qatomic_inc(&p->runs);
    if (p->sem) {
        qemu_sem_post(p->sem);
    }
}

static void pipe_other_cb(void *opaque)
{
    Pipe *p = opaque;

    drain_fd(p->fds[0]);
    qatomic_inc(&p->other_runs);
}

static void pipe_close(Pipe *p)
{
    close(p->fds[0]);
    close(p->fds[1]);
}

/* Polls @ctx until *@runs reaches @n (no time bound: the watchdog). */
static bool wait_runs(AioContext *ctx, int *runs, int n)
{
    poll_until(ctx, runs, n);
    return true;
}

/* ------------------------------------------------------------------ */
/* epoll_ctl refusals                                                  */

static void test_add_refused_falls_back(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CTL);
    AioContext *ctx;
    Pipe a = { .runs = 0 }, b = { .runs = 0 };

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    ctx = new_ctx();
    make_pipe(a.fds);
    make_pipe(b.fds);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_cb, NULL, &a);
    CHECK(!on_poll(ctx));

    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    aio_set_fd_handler(ctx, b.fds[0], false, pipe_cb, NULL, &b);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CTL) - hits0, 1);
    CHECK(on_poll(ctx));

    /* Both handlers work, once per readiness. */
    for (int round = 1; round <= 3; round++) {
        write_byte(a.fds[1]);
        write_byte(b.fds[1]);
        CHECK(wait_runs(ctx, &a.runs, round));
        CHECK(wait_runs(ctx, &b.runs, round));
    }
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(qatomic_read(&a.runs), 3);
    CHECK_EQ(qatomic_read(&b.runs), 3);

    aio_set_fd_handler(ctx, a.fds[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(ctx, b.fds[0], false, NULL, NULL, NULL);
    write_byte(a.fds[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(qatomic_read(&a.runs), 3);
    aio_context_unref(ctx);
    pipe_close(&a);
    pipe_close(&b);
}

/* Replacing a handler (EPOLL_CTL_MOD) refused: the new one runs, the old
 * one never again. */
static void test_replace_refused_falls_back(void)
{
    AioContext *ctx;
    Pipe a = { .runs = 0 };

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    ctx = new_ctx();
    make_pipe(a.fds);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_other_cb, NULL, &a);
    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_cb, NULL, &a);
    CHECK(on_poll(ctx));
    write_byte(a.fds[1]);
    CHECK(wait_runs(ctx, &a.runs, 1));
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(qatomic_read(&a.runs), 1);
    CHECK_EQ(qatomic_read(&a.other_runs), 0);
    aio_set_fd_handler(ctx, a.fds[0], false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    pipe_close(&a);
}

/* The fallback to ppoll must not need memory: with allocations failing
 * from the moment the handler's node exists, a refused registration
 * still ends up watched (before the fix, a failed allocation of the ppoll
 * state was ignored and the handler silently lost). */
static void test_fallback_needs_no_memory(void)
{
    AioloopFaultPlan oom = { .skip = 1, .count = -1, .err = ENOMEM,
                             .this_thread = true };
    unsigned long alloc0 = aioloop__fault_hits(AIOLOOP_FAULT_ALLOC);
    AioContext *ctx;
    Pipe a = { .runs = 0 };

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    ctx = new_ctx();
    make_pipe(a.fds);
    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOSPC);
    aioloop__fault_arm(AIOLOOP_FAULT_ALLOC, &oom);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_cb, NULL, &a);
    aioloop__fault_clear();
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_ALLOC) - alloc0, 0);
    CHECK(on_poll(ctx));
    write_byte(a.fds[1]);
    CHECK(wait_runs(ctx, &a.runs, 1));
    aio_set_fd_handler(ctx, a.fds[0], false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    pipe_close(&a);
}

/*
 * aio_enable_external() puts the external handlers back into the epoll
 * set; if that is refused the handler must not stay unwatched (before
 * the fix it did: the refusal was ignored and the handler never ran).
 */
static void test_reenable_external_refused(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CTL);
    AioContext *ctx;
    Pipe a = { .runs = 0 };

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    ctx = new_ctx();
    make_pipe(a.fds);
    aio_set_fd_handler(ctx, a.fds[0], true, pipe_cb, NULL, &a);
    aio_disable_external(ctx);
    write_byte(a.fds[1]);
    aio_poll(ctx, false);
    CHECK_EQ(qatomic_read(&a.runs), 0);

    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    aio_enable_external(ctx);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CTL) - hits0, 1);
    CHECK(on_poll(ctx));
    CHECK(wait_runs(ctx, &a.runs, 1));
    CHECK_EQ(qatomic_read(&a.runs), 1);

    aio_set_fd_handler(ctx, a.fds[0], true, NULL, NULL, NULL);
    aio_context_unref(ctx);
    pipe_close(&a);
}

/* The handler is added from this thread to an IOThread's context while
 * the IOThread sleeps in epoll_wait(): the switch to ppoll must wake it,
 * and the handler run there. */
static void test_refused_while_asleep(void)
{
    QemuSemaphore sem;
    Pipe a = { .runs = 0, .sem = &sem };
    IOThread *it;
    AioContext *ctx;

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    qemu_sem_init(&sem, 0);
    it = iothread_create("faults-fd", &error_abort);
    ctx = iothread_get_aio_context(it);
    make_pipe(a.fds);
    wait_until_polling(iothread_tid(it));   /* asleep in epoll_wait */

    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_cb, NULL, &a);
    CHECK(on_poll(ctx));
    write_byte(a.fds[1]);
    qemu_sem_wait(&sem);
    wait_until_polling(iothread_tid(it));   /* asleep again, in ppoll */
    write_byte(a.fds[1]);
    qemu_sem_wait(&sem);
    CHECK_EQ(qatomic_read(&a.runs), 2);

    aio_set_fd_handler(ctx, a.fds[0], false, NULL, NULL, NULL);
    iothread_destroy(it);
    pipe_close(&a);
    qemu_sem_destroy(&sem);
}

/* ------------------------------------------------------------------ */
/* Interrupted and failed waits                                        */

typedef struct {
    AioContext *ctx;
    int loop_tid;
    int bh_runs;                /* atomic */
} Remote;

/* Schedules a BH once the loop sleeps (past its failing waits). */
static void *remote_bh_thread(void *opaque)
{
    Remote *r = opaque;

    wait_until_polling(r->loop_tid);
    aio_bh_schedule_oneshot(r->ctx, atomic_count_cb, &r->bh_runs);
    return NULL;
}

typedef struct {
    int runs;
    int64_t armed_ns, fired_ns;
} TimerRec;

static void timer_rec_cb(void *opaque)
{
    TimerRec *t = opaque;

    t->runs++;
    t->fired_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/*
 * @count waits fail with @err at once. A BH scheduled from another
 * thread, a 30 ms timer and a readable pipe each run once; every
 * blocking aio_poll() returns true (made progress), none returns early
 * without; the timer does not fire before its deadline.
 */
static void waits_fail(int err, int count)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_FDMON_WAIT);
    AioContext *ctx = new_ctx();
    Remote r = { .ctx = ctx, .loop_tid = qemu_get_thread_id() };
    TimerRec tr = { 0 };
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                 timer_rec_cb, &tr);
    Pipe a = { .runs = 0 };
    QemuThread th;
    int falses = 0, calls = 0;

    make_pipe(a.fds);
    aio_set_fd_handler(ctx, a.fds[0], false, pipe_cb, NULL, &a);
    aioloop__fault_inject(AIOLOOP_FAULT_FDMON_WAIT, 0, count, err);
    tr.armed_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    timer_mod_ns(t, tr.armed_ns + 30 * MS);
    start_thread(&th, "faults-bh", remote_bh_thread, &r);

    while (!qatomic_read(&r.bh_runs) || !tr.runs) {
        calls++;
        if (!aio_poll(ctx, true)) {
            falses++;
        }
    }
    qemu_thread_join(&th);
    write_byte(a.fds[1]);
    while (!qatomic_read(&a.runs)) {
        calls++;
        if (!aio_poll(ctx, true)) {
            falses++;
        }
    }
    while (aio_poll(ctx, false)) {
    }
    printf("#   %d blocking aio_poll() calls, %lu failed waits\n", calls,
           aioloop__fault_hits(AIOLOOP_FAULT_FDMON_WAIT) - hits0);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_FDMON_WAIT) - hits0,
             (unsigned long)count);
    CHECK_EQ(qatomic_read(&r.bh_runs), 1);
    CHECK_EQ(tr.runs, 1);
    CHECK(tr.fired_ns - tr.armed_ns >= 30 * MS);
    CHECK_EQ(qatomic_read(&a.runs), 1);
    CHECK_EQ(falses, 0);

    aio_set_fd_handler(ctx, a.fds[0], false, NULL, NULL, NULL);
    timer_free(t);
    aio_context_unref(ctx);
    pipe_close(&a);
}

static void test_wait_eintr(void)
{
    waits_fail(EINTR, 200);
}

static void test_wait_enomem(void)
{
    waits_fail(ENOMEM, 50);
}

/* Random EINTRs (30%) on the waits of a loop that runs 200 BHs scheduled
 * from another thread and 50 timers: each runs once. */
typedef struct {
    AioContext *ctx;
    int runs[200];
} Many;

static void many_bh_cb(void *opaque)
{
    qatomic_inc((int *)opaque);
}

static void *many_thread(void *opaque)
{
    Many *m = opaque;

    for (int i = 0; i < 200; i++) {
        aio_bh_schedule_oneshot(m->ctx, many_bh_cb, &m->runs[i]);
        if (i % 10 == 0) {
            sleep_us(200);
        }
    }
    return NULL;
}

static void test_wait_random_eintr(void)
{
    Many *m = calloc(1, sizeof(*m));
    TimerRec tr[50] = { { 0 } };
    QEMUTimer *t[50];
    QemuThread th;
    int bad = 0, timers_done = 0;

    REQUIRE(m);
    m->ctx = new_ctx();
    for (int i = 0; i < 50; i++) {
        t[i] = aio_timer_new(m->ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                             timer_rec_cb, &tr[i]);
        tr[i].armed_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
        timer_mod_ns(t[i], tr[i].armed_ns + (i % 10 + 1) * MS);
    }
    aioloop__fault_inject_random(AIOLOOP_FAULT_FDMON_WAIT, 300000, 9, EINTR);
    start_thread(&th, "faults-many", many_thread, m);
    for (;;) {
        int bhs = 0;

        timers_done = 0;
        for (int i = 0; i < 200; i++) {
            bhs += qatomic_read(&m->runs[i]) > 0;
        }
        for (int i = 0; i < 50; i++) {
            timers_done += tr[i].runs > 0;
        }
        if (bhs == 200 && timers_done == 50) {
            break;
        }
        aio_poll(m->ctx, true);
    }
    qemu_thread_join(&th);
    aioloop__fault_clear_site(AIOLOOP_FAULT_FDMON_WAIT);
    while (aio_poll(m->ctx, false)) {
    }
    for (int i = 0; i < 200; i++) {
        bad += qatomic_read(&m->runs[i]) != 1;
    }
    for (int i = 0; i < 50; i++) {
        bad += tr[i].runs != 1;
        bad += tr[i].fired_ns - tr[i].armed_ns < (i % 10 + 1) * MS;
        timer_free(t[i]);
    }
    CHECK_EQ(bad, 0);
    aio_context_unref(m->ctx);
    free(m);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    FRUN(test_add_refused_falls_back);
    FRUN(test_replace_refused_falls_back);
    FRUN(test_fallback_needs_no_memory);
    FRUN(test_reenable_external_refused);
    FRUN(test_refused_while_asleep);
    FRUN(test_wait_eintr);
    FRUN(test_wait_enomem);
    FRUN(test_wait_random_eintr);
    fault_summary();
    return test_done();
}
