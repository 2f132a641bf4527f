/*
 * test-coroutine-aio.c - coroutines and the event loop, one thread:
 * aio_co_wake from a BH (main and private contexts), aio_co_schedule,
 * aio_co_enter, a long chain of wake-ups (entered in a loop, not
 * nested), qemu_co_sleep_ns on the virtual and real clocks, and
 * yield_until_fd_readable/writable.
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
/* AioContext integration                                              */

typedef struct {
    AioContext *ctx_seen[2];
    int step;
    bool in_loop_thread;
    Coroutine *co;
} WakeArg;

static void coroutine_fn wake_co(void *opaque)
{
    WakeArg *a = opaque;

    a->ctx_seen[0] = qemu_coroutine_get_aio_context(qemu_coroutine_self());
    a->step = 1;
    qemu_coroutine_yield();
    a->ctx_seen[1] = qemu_coroutine_get_aio_context(qemu_coroutine_self());
    a->step = 2;
}

static void wake_bh(void *opaque)
{
    WakeArg *a = opaque;

    aio_co_wake(a->co);
}

static void test_aio_co_wake_from_bh(void)
{
    WakeArg a = { .step = 0 };

    a.co = qemu_coroutine_create(wake_co, &a);
    qemu_coroutine_enter(a.co);
    REQUIRE(a.step == 1);
    CHECK(a.ctx_seen[0] == main_ctx);
    CHECK(qemu_coroutine_get_aio_context(a.co) == main_ctx);

    aio_bh_schedule_oneshot(main_ctx, wake_bh, &a);
    CHECK_EQ(a.step, 1);                    /* nothing runs before poll */
    CHECK(aio_poll(main_ctx, false));
    /* The BH runs in main_ctx's loop outside a coroutine: aio_co_wake
     * enters at once. */
    CHECK_EQ(a.step, 2);
    CHECK(a.ctx_seen[1] == main_ctx);
    CHECK(!aio_poll(main_ctx, false));
}

/* The same on a private context: the coroutine's first entry comes
 * through aio_co_schedule(ctx), so ctx is the context it last ran in. */
static void test_aio_co_wake_private_ctx(void)
{
    AioContext *ctx = new_ctx();
    WakeArg a = { .step = 0 };
    int i;

    a.co = qemu_coroutine_create(wake_co, &a);
    aio_co_schedule(ctx, a.co);
    CHECK_EQ(a.step, 0);
    CHECK(aio_poll(ctx, false));
    REQUIRE(a.step == 1);
    CHECK(a.ctx_seen[0] == ctx);
    CHECK(qemu_coroutine_get_aio_context(a.co) == ctx);

    aio_bh_schedule_oneshot(ctx, wake_bh, &a);
    for (i = 0; i < 10 && a.step == 1; i++) {
        aio_poll(ctx, false);
    }
    CHECK_EQ(a.step, 2);
    CHECK(a.ctx_seen[1] == ctx);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

typedef struct {
    AioContext *ctx;
    Trace t;
    int done;
} SchedArg;

static void coroutine_fn resched_self_co(void *opaque)
{
    SchedArg *a = opaque;

    trace_add(&a->t, 1);
    qemu_coroutine_yield();                 /* main schedules us */
    trace_add(&a->t, 3);
    aio_co_schedule(a->ctx, qemu_coroutine_self());
    qemu_coroutine_yield();                 /* we scheduled ourselves */
    trace_add(&a->t, 5);
    a->done = 1;
}

static void test_aio_co_schedule_same_ctx(void)
{
    SchedArg a = { .ctx = main_ctx, .t = { .n = 0 }, .done = 0 };
    Coroutine *co = qemu_coroutine_create(resched_self_co, &a);

    qemu_coroutine_enter(co);
    trace_add(&a.t, 2);
    aio_co_schedule(main_ctx, co);
    CHECK_EQ(a.t.n, 2);                     /* not before aio_poll */
    CHECK(aio_poll(main_ctx, false));       /* entering is progress */
    trace_add(&a.t, 4);
    CHECK(!a.done);
    CHECK(aio_poll(main_ctx, true));        /* scheduled: no sleep */
    CHECK(a.done);
    trace_add(&a.t, 6);
    TRACE_IS(&a.t, 1, 2, 3, 4, 5, 6);
    CHECK(!aio_poll(main_ctx, false));
}

/* aio_co_schedule() to a private context: the first entry comes from
 * that context's aio_poll(), which then owns the coroutine. */
static void coroutine_fn where_co(void *opaque)
{
    AioContext **seen = opaque;

    *seen = qemu_coroutine_get_aio_context(qemu_coroutine_self());
}

static void test_aio_co_schedule_private_ctx(void)
{
    AioContext *ctx = new_ctx();
    AioContext *seen = NULL;
    Coroutine *co = qemu_coroutine_create(where_co, &seen);

    aio_co_schedule(ctx, co);
    CHECK(!aio_poll(main_ctx, false));      /* not main_ctx's business */
    CHECK(seen == NULL);
    CHECK(aio_poll(ctx, false));
    CHECK(seen == ctx);
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* aio_co_enter() from outside a coroutine of the loop's thread enters at
 * once; from a coroutine of the same context, after that one yields. */
typedef struct {
    Trace t;
    Coroutine *a, *b;
} EnterArg;

static void coroutine_fn enter_b(void *opaque)
{
    EnterArg *e = opaque;

    trace_add(&e->t, 20);
    qemu_coroutine_yield();
    trace_add(&e->t, 21);
}

static void coroutine_fn enter_a(void *opaque)
{
    EnterArg *e = opaque;

    trace_add(&e->t, 10);
    aio_co_enter(main_ctx, e->b);
    trace_add(&e->t, 11);                   /* b has not run yet */
    qemu_coroutine_yield();
    trace_add(&e->t, 12);
}

static void test_aio_co_enter(void)
{
    EnterArg e = { .t = { .n = 0 } };

    e.a = qemu_coroutine_create(enter_a, &e);
    e.b = qemu_coroutine_create(enter_b, &e);
    aio_co_enter(main_ctx, e.b);            /* at once */
    trace_add(&e.t, 1);
    qemu_coroutine_enter(e.a);              /* a yields, then b runs */
    trace_add(&e.t, 2);
    drain_ctx(main_ctx, 10);
    aio_co_enter(main_ctx, e.a);
    trace_add(&e.t, 3);
    TRACE_IS(&e.t, 20, 1, 10, 11, 21, 2, 12, 3);
}

/*
 * A chain of wake-ups: each coroutine creates the next, wakes it with
 * aio_co_enter() and returns, so each is entered by its enterer after the
 * previous one ends. Entered from a coroutine (1 MiB stack), the chain
 * must run in a loop, not one nested frame per link: CHAIN links of
 * nesting would overflow that stack.
 */
#define CHAIN 50000

typedef struct {
    int ran;
    int wrong_self;
    Coroutine *expected;    /* the link that must run next */
} ChainArg;

static void coroutine_fn chain_link(void *opaque)
{
    ChainArg *c = opaque;

    c->wrong_self += qemu_coroutine_self() != c->expected;
    if (++c->ran < CHAIN) {
        c->expected = qemu_coroutine_create(chain_link, c);
        aio_co_enter(main_ctx, c->expected);
    }
}

static void coroutine_fn chain_head(void *opaque)
{
    ChainArg *c = opaque;

    c->expected = qemu_coroutine_create(chain_link, c);
    qemu_coroutine_enter(c->expected);
}

static void test_wakeup_chain_runs_in_a_loop(void)
{
    ChainArg c = { 0 };

    qemu_coroutine_enter(qemu_coroutine_create(chain_head, &c));
    CHECK_EQ(c.ran, CHAIN);
    CHECK_EQ(c.wrong_self, 0);
}

/* ------------------------------------------------------------------ */
/* Sleeping                                                            */

typedef struct {
    QEMUClockType type;
    int64_t ns;
    int64_t start, end;     /* on the clock slept on */
    int done;
    Trace *trace;
    int id;
} SleepArg;

static void coroutine_fn sleep_co(void *opaque)
{
    SleepArg *a = opaque;

    a->start = qemu_clock_get_ns(a->type);
    qemu_co_sleep_ns(a->type, a->ns);
    a->end = qemu_clock_get_ns(a->type);
    if (a->trace) {
        trace_add(a->trace, a->id);
    }
    a->done = 1;
}

/* Virtual sleeps of 2000 and 5000 s: a sleep that waited in real time
 * would hang (the watchdog names it), so none of the waits here has to
 * be measured. */
#define VSEC (1000LL * SCALE_MS)

static void test_co_sleep_virtual(void)
{
    Trace t = { .n = 0 };
    SleepArg longer = { QEMU_CLOCK_VIRTUAL, 5000 * VSEC, 0, 0, 0, &t, 2 };
    SleepArg shorter = { QEMU_CLOCK_VIRTUAL, 2000 * VSEC, 0, 0, 0, &t, 1 };
    int64_t v0 = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int i;

    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &longer));
    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &shorter));
    CHECK(!longer.done && !shorter.done);
    CHECK(longer.start == v0 && shorter.start == v0);

    /* The virtual clock stands still: nothing wakes. */
    for (i = 0; i < 5; i++) {
        aio_poll(main_ctx, false);
    }
    CHECK(!longer.done && !shorter.done);

    /* Just short of the first deadline. */
    qemu_clock_advance_virtual_time(v0 + 2000 * VSEC - 1);
    drain_ctx(main_ctx, 100);
    CHECK(!shorter.done);

    qemu_clock_advance_virtual_time(v0 + 2000 * VSEC);
    poll_until(main_ctx, &shorter.done);
    CHECK(!longer.done);
    CHECK(shorter.end >= v0 + 2000 * VSEC);

    qemu_clock_advance_virtual_time(v0 + 5000 * VSEC - 1);
    drain_ctx(main_ctx, 100);
    CHECK(!longer.done);
    qemu_clock_advance_virtual_time(v0 + 5000 * VSEC);
    poll_until(main_ctx, &longer.done);
    CHECK(longer.end >= v0 + 5000 * VSEC);
    TRACE_IS(&t, 1, 2);
    CHECK(!aio_poll(main_ctx, false));
}

static void test_co_sleep_realtime(void)
{
    SleepArg a = { QEMU_CLOCK_REALTIME, 3 * SCALE_MS, 0, 0, 0, NULL, 0 };
    int64_t t0 = test_now_ns();

    qemu_coroutine_enter(qemu_coroutine_create(sleep_co, &a));
    CHECK(!a.done);
    poll_until(main_ctx, &a.done);
    /* Never shorter than asked (no upper bound: that is the machine). */
    CHECK(a.end - a.start >= 3 * SCALE_MS);
    CHECK(test_now_ns() - t0 >= 3 * SCALE_MS);
}

/* ------------------------------------------------------------------ */
/* yield_until_fd_readable / writable                                  */

typedef struct {
    int fd;
    int step;
    int got;
} FdArg;

static void coroutine_fn fd_reader_co(void *opaque)
{
    FdArg *a = opaque;

    a->step = 1;
    yield_until_fd_readable(a->fd);
    a->step = 2;
    a->got = drain_fd(a->fd);
    a->step = 3;
}

static void coroutine_fn fd_writer_co(void *opaque)
{
    FdArg *a = opaque;

    a->step = 1;
    yield_until_fd_writable(a->fd);
    a->step = 2;
    write_byte(a->fd);
    a->step = 3;
}

static void test_yield_until_fd(void)
{
    FdArg a = { .step = 0 };
    int p[2];
    int i;

    make_pipe(p);
    a.fd = p[0];
    qemu_coroutine_enter(qemu_coroutine_create(fd_reader_co, &a));
    CHECK_EQ(a.step, 1);
    for (i = 0; i < 5; i++) {
        aio_poll(main_ctx, false);
    }
    CHECK_EQ(a.step, 1);                    /* empty pipe: still waiting */
    write_byte(p[1]);
    write_byte(p[1]);
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(a.got, 2);
    /* The coroutine is gone: its fd handler must be too. */
    write_byte(p[1]);
    CHECK(!aio_poll(main_ctx, false));
    CHECK_EQ(drain_fd(p[0]), 1);

    /* Hang-up counts as readable. */
    a.step = 0;
    a.got = -1;
    qemu_coroutine_enter(qemu_coroutine_create(fd_reader_co, &a));
    CHECK_EQ(a.step, 1);
    close(p[1]);
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(a.got, 0);
    CHECK(!aio_poll(main_ctx, false));
    close(p[0]);

    /* An empty pipe is writable. */
    make_pipe(p);
    a.fd = p[1];
    a.step = 0;
    qemu_coroutine_enter(qemu_coroutine_create(fd_writer_co, &a));
    for (i = 0; i < 100 && a.step != 3; i++) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(a.step, 3);
    CHECK_EQ(drain_fd(p[0]), 1);
    CHECK(!aio_poll(main_ctx, false));
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    coroutine_test_init();

    RUN(test_aio_co_wake_from_bh);
    RUN(test_aio_co_wake_private_ctx);
    RUN(test_aio_co_schedule_same_ctx);
    RUN(test_aio_co_schedule_private_ctx);
    RUN(test_aio_co_enter);
    RUN(test_wakeup_chain_runs_in_a_loop);
    RUN(test_co_sleep_virtual);
    RUN(test_co_sleep_realtime);
    RUN(test_yield_until_fd);
    return test_done();
}
