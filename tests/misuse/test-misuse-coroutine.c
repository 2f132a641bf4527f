/*
 * test-misuse-coroutine.c - coroutines, CoMutex and CoQueue given what
 * they must not get.
 *
 * Outcomes checked (coroutine.h); every report names the coroutine by
 * address and entry function, or the CoMutex / CoQueue by address:
 *   qemu_coroutine_yield outside a coroutine  abort
 *   entering a coroutine that is active       abort naming it ("re-entered
 *     (itself, or its caller)                   while active")
 *   aio_co_enter / aio_co_wake of itself      abort naming it
 *   qemu_coroutine_create(NULL)               abort
 *   aio_co_schedule twice                     abort naming it
 *   qemu_coroutine_enter of a scheduled one   abort naming it
 *   aio_co_schedule of an active coroutine    abort naming it when the
 *     that a nested aio_poll() then enters      loop enters it
 *   CoMutex unlock when unlocked, or by a     abort naming the mutex (and
 *     coroutine that does not hold it           holder and caller)
 *   CoMutex locked twice by its holder        abort (it would wait for
 *                                               itself forever)
 *   CoMutex lock/unlock outside a coroutine   abort naming the mutex
 *   qemu_co_mutex_destroy while held          abort naming the holder
 *   qemu_co_queue_wait outside a coroutine,   abort naming the queue
 *     on a zero-filled queue, or with a
 *     lock the caller does not hold
 *   qemu_co_queue_next / restart_all on an    false / no-op
 *     empty queue
 *   qemu_co_sleep_ns / yield_until_fd_*       abort ("outside a
 *     outside a coroutine, or in one that       coroutine" / "has no
 *     has no AioContext                         AioContext")
 *
 * Every death test here runs its coroutines in the forked child. Not
 * registered under ThreadSanitizer (single-threaded).
 * Not here: entering a finished coroutine and stack overflow diagnostics
 * (tests/regress).
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"

#define FN(f) ((void *)(uintptr_t)(f))

/* ------------------------------------------------------------------ */
/* Entering and yielding                                               */

static void child_yield_outside(void *opaque)
{
    (void)opaque;
    qemu_coroutine_yield();
}

static void test_yield_outside_coroutine_aborts(void)
{
    expect_abort(child_yield_outside, NULL, "qemu_coroutine_yield",
                 "called outside a coroutine");
}

static void coroutine_fn enter_self_co(void *opaque)
{
    (void)opaque;
    qemu_coroutine_enter(qemu_coroutine_self());
}

static void child_enter_self(void *opaque)
{
    Coroutine *co = qemu_coroutine_create(enter_self_co, NULL);

    (void)opaque;
    death_expect("coroutine %p (entry %p)", (void *)co, FN(enter_self_co));
    qemu_coroutine_enter(co);
}

static void test_enter_self_aborts(void)
{
    expect_abort(child_enter_self, NULL, "qemu_coroutine_enter",
                 "re-entered while active");
}

static void coroutine_fn enter_caller_inner(void *opaque)
{
    qemu_coroutine_enter(opaque);       /* the coroutine that entered us */
}

static void coroutine_fn enter_caller_outer(void *opaque)
{
    (void)opaque;
    qemu_coroutine_enter(qemu_coroutine_create(enter_caller_inner,
                                               qemu_coroutine_self()));
}

static void child_enter_caller(void *opaque)
{
    Coroutine *outer = qemu_coroutine_create(enter_caller_outer, NULL);

    (void)opaque;
    death_expect("coroutine %p (entry %p)", (void *)outer,
                 FN(enter_caller_outer));
    qemu_coroutine_enter(outer);
}

static void test_enter_active_caller_aborts(void)
{
    expect_abort(child_enter_caller, NULL, "qemu_coroutine_enter",
                 "re-entered while active");
}

static void coroutine_fn wake_self_co(void *opaque)
{
    (void)opaque;
    aio_co_wake(qemu_coroutine_self());
}

static void child_wake_self(void *opaque)
{
    Coroutine *co = qemu_coroutine_create(wake_self_co, NULL);

    (void)opaque;
    if (qemu_init_main_loop(NULL) < 0) {
        _exit(77);
    }
    death_expect("coroutine %p (entry %p)", (void *)co, FN(wake_self_co));
    qemu_coroutine_enter(co);           /* in the main context */
}

static void test_aio_co_wake_self_aborts(void)
{
    expect_abort(child_wake_self, NULL, "aio_co_enter", "enters itself");
}

static void child_create_null(void *opaque)
{
    (void)opaque;
    qemu_coroutine_create(NULL, NULL);
}

static void test_create_null_entry_aborts(void)
{
    expect_abort(child_create_null, NULL, "qemu_coroutine_create",
                 "NULL entry function");
}

/* ------------------------------------------------------------------ */
/* Scheduling                                                          */

static void coroutine_fn yield_once_co(void *opaque)
{
    (void)opaque;
    qemu_coroutine_yield();
}

static void child_schedule(void *opaque)
{
    AioContext *ctx = new_ctx();
    Coroutine *co = qemu_coroutine_create(yield_once_co, NULL);

    qemu_coroutine_enter(co);
    death_expect("coroutine %p (entry %p)", (void *)co, FN(yield_once_co));
    aio_co_schedule(ctx, co);
    if (*(int *)opaque) {
        qemu_coroutine_enter(co);
    } else {
        aio_co_schedule(ctx, co);
    }
}

static void test_double_schedule_aborts(void)
{
    int twice = 0;

    expect_abort(child_schedule, &twice, "aio_co_schedule",
                 "already scheduled");
}

static void test_enter_while_scheduled_aborts(void)
{
    int enter = 1;

    expect_abort(child_schedule, &enter, "qemu_coroutine_enter",
                 "entered while scheduled by 'aio_co_schedule'");
}

typedef struct {
    AioContext *ctx;
    Coroutine *outer;
} ScheduleActive;

static void coroutine_fn schedule_caller_inner(void *opaque)
{
    ScheduleActive *s = opaque;

    /* The outer coroutine is active (it waits for us); scheduling it is
     * allowed (it may have yielded by the time the loop enters it), but
     * a nested loop that enters it now would recurse. */
    aio_co_schedule(s->ctx, s->outer);
    aio_poll(s->ctx, false);
}

static void coroutine_fn schedule_caller_outer(void *opaque)
{
    ScheduleActive *s = opaque;

    s->outer = qemu_coroutine_self();
    death_expect("coroutine %p (entry %p)", (void *)s->outer,
                 FN(schedule_caller_outer));
    qemu_coroutine_enter(qemu_coroutine_create(schedule_caller_inner, s));
}

static void child_schedule_active(void *opaque)
{
    ScheduleActive s = { .ctx = new_ctx() };

    (void)opaque;
    qemu_coroutine_enter(qemu_coroutine_create(schedule_caller_outer, &s));
}

static void test_schedule_active_then_nested_poll_aborts(void)
{
    expect_abort(child_schedule_active, NULL, "qemu_coroutine_enter",
                 "re-entered while active");
}

/* ------------------------------------------------------------------ */
/* CoMutex                                                             */

typedef struct {
    CoMutex m;
    Coroutine *holder;
    int how;
} MutexCase;

enum { MX_UNLOCK_UNLOCKED, MX_LOCK_TWICE, MX_UNLOCK_OTHER, MX_DESTROY_HELD };

static void coroutine_fn mutex_holder_co(void *opaque)
{
    MutexCase *mc = opaque;

    qemu_co_mutex_lock(&mc->m);
    mc->holder = qemu_coroutine_self();
    if (mc->how == MX_LOCK_TWICE) {
        death_expect("CoMutex %p locked twice by coroutine %p (entry %p)",
                     (void *)&mc->m, (void *)mc->holder,
                     FN(mutex_holder_co));
        qemu_co_mutex_lock(&mc->m);
    }
    qemu_coroutine_yield();         /* holding it */
}

static void coroutine_fn mutex_intruder_co(void *opaque)
{
    MutexCase *mc = opaque;

    death_expect("CoMutex %p is held by coroutine %p, not by the caller, "
                 "coroutine %p", (void *)&mc->m, (void *)mc->holder,
                 (void *)qemu_coroutine_self());
    qemu_co_mutex_unlock(&mc->m);
}

static void coroutine_fn mutex_unlock_free_co(void *opaque)
{
    MutexCase *mc = opaque;

    death_expect("CoMutex %p is not locked (unlock by coroutine %p)",
                 (void *)&mc->m, (void *)qemu_coroutine_self());
    qemu_co_mutex_unlock(&mc->m);
}

static void child_mutex(void *opaque)
{
    MutexCase mc = { .how = *(int *)opaque };

    qemu_co_mutex_init(&mc.m);
    if (mc.how == MX_UNLOCK_UNLOCKED) {
        qemu_coroutine_enter(qemu_coroutine_create(mutex_unlock_free_co,
                                                   &mc));
        return;
    }
    qemu_coroutine_enter(qemu_coroutine_create(mutex_holder_co, &mc));
    if (mc.how == MX_UNLOCK_OTHER) {
        qemu_coroutine_enter(qemu_coroutine_create(mutex_intruder_co, &mc));
    } else if (mc.how == MX_DESTROY_HELD) {
        death_expect("CoMutex %p destroyed while held by coroutine %p",
                     (void *)&mc.m, (void *)mc.holder);
        qemu_co_mutex_destroy(&mc.m);
    }
}

static void test_co_mutex_unlock_unlocked_aborts(void)
{
    int how = MX_UNLOCK_UNLOCKED;

    expect_abort(child_mutex, &how, "qemu_co_mutex_unlock", NULL);
}

static void test_co_mutex_unlock_by_non_holder_aborts(void)
{
    int how = MX_UNLOCK_OTHER;

    expect_abort(child_mutex, &how, "qemu_co_mutex_unlock", NULL);
}

static void test_co_mutex_lock_twice_aborts(void)
{
    int how = MX_LOCK_TWICE;

    expect_abort(child_mutex, &how, "qemu_co_mutex_lock",
                 "it would wait for itself");
}

static void test_co_mutex_destroy_held_aborts(void)
{
    int how = MX_DESTROY_HELD;

    expect_abort(child_mutex, &how, "qemu_co_mutex_destroy", NULL);
}

static void child_mutex_outside(void *opaque)
{
    CoMutex m;

    qemu_co_mutex_init(&m);
    death_expect("CoMutex %p: called outside a coroutine", (void *)&m);
    if (*(int *)opaque) {
        qemu_co_mutex_unlock(&m);
    } else {
        qemu_co_mutex_lock(&m);
    }
}

static void test_co_mutex_outside_coroutine_aborts(void)
{
    int lock = 0, unlock = 1;

    expect_abort(child_mutex_outside, &lock, "qemu_co_mutex_lock", NULL);
    expect_abort(child_mutex_outside, &unlock, "qemu_co_mutex_unlock", NULL);
}

/* ------------------------------------------------------------------ */
/* CoQueue                                                             */

static void child_queue_outside(void *opaque)
{
    CoQueue q;

    (void)opaque;
    qemu_co_queue_init(&q);
    death_expect("CoQueue %p: called outside a coroutine", (void *)&q);
    qemu_co_queue_wait(&q, NULL);
}

static void test_co_queue_wait_outside_aborts(void)
{
    expect_abort(child_queue_outside, NULL, "qemu_co_queue_wait", NULL);
}

static void coroutine_fn queue_wait_co(void *opaque)
{
    qemu_co_queue_wait(opaque, NULL);
}

static void child_queue_zeroed(void *opaque)
{
    CoQueue q;

    (void)opaque;
    memset(&q, 0, sizeof(q));
    death_expect("CoQueue %p is not initialised", (void *)&q);
    qemu_coroutine_enter(qemu_coroutine_create(queue_wait_co, &q));
}

static void test_co_queue_wait_zeroed_aborts(void)
{
    expect_abort(child_queue_zeroed, NULL, "qemu_co_queue_wait", NULL);
}

typedef struct {
    CoQueue q;
    CoMutex m;
} QueueLock;

static void coroutine_fn queue_wait_unheld_co(void *opaque)
{
    QueueLock *ql = opaque;

    death_expect("CoMutex %p is not locked", (void *)&ql->m);
    qemu_co_queue_wait(&ql->q, &ql->m);     /* m not taken first */
}

static void child_queue_unheld_lock(void *opaque)
{
    QueueLock ql;

    (void)opaque;
    qemu_co_queue_init(&ql.q);
    qemu_co_mutex_init(&ql.m);
    qemu_coroutine_enter(qemu_coroutine_create(queue_wait_unheld_co, &ql));
}

static void test_co_queue_wait_unheld_lock_aborts(void)
{
    expect_abort(child_queue_unheld_lock, NULL, "qemu_co_mutex_unlock", NULL);
}

static void test_co_queue_wake_empty_is_noop(void)
{
    CoQueue q;

    qemu_co_queue_init(&q);
    CHECK(qemu_co_queue_empty(&q));
    CHECK(!qemu_co_queue_next(&q));
    qemu_co_queue_restart_all(&q);
    CHECK(qemu_co_queue_empty(&q));
}

/* ------------------------------------------------------------------ */
/* Waiting without an event loop                                       */

enum { W_SLEEP, W_READABLE, W_WRITABLE };

static void coroutine_fn wait_co(void *opaque)
{
    switch (*(int *)opaque) {
    case W_SLEEP:
        qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 1000);
        break;
    case W_READABLE:
        yield_until_fd_readable(0);
        break;
    default:
        yield_until_fd_writable(1);
        break;
    }
}

static const char *const wait_func[] = {
    "qemu_co_sleep_ns", "yield_until_fd_readable", "yield_until_fd_writable",
};

static void child_wait_outside(void *opaque)
{
    wait_co(opaque);
}

static void child_wait_no_context(void *opaque)
{
    /* No main loop, no aio_poll(), no IOThread: the coroutine runs in no
     * AioContext. */
    Coroutine *co = qemu_coroutine_create(wait_co, opaque);

    death_expect("coroutine %p (entry %p) has no AioContext", (void *)co,
                 FN(wait_co));
    qemu_coroutine_enter(co);
}

static void test_co_sleep_outside_coroutine_aborts(void)
{
    int how = W_SLEEP;

    expect_abort(child_wait_outside, &how, wait_func[how],
                 "called outside a coroutine");
}

static void test_yield_until_fd_outside_coroutine_aborts(void)
{
    int readable = W_READABLE, writable = W_WRITABLE;

    expect_abort(child_wait_outside, &readable, wait_func[readable],
                 "fd 0: called outside a coroutine");
    expect_abort(child_wait_outside, &writable, wait_func[writable],
                 "fd 1: called outside a coroutine");
}

static void test_co_wait_without_context_aborts(void)
{
    for (int how = W_SLEEP; how <= W_WRITABLE; how++) {
        expect_abort(child_wait_no_context, &how, wait_func[how], NULL);
    }
}

int main(void)
{
    TEST(test_yield_outside_coroutine_aborts);
    TEST(test_enter_self_aborts);
    TEST(test_enter_active_caller_aborts);
    TEST(test_aio_co_wake_self_aborts);
    TEST(test_create_null_entry_aborts);
    TEST(test_double_schedule_aborts);
    TEST(test_enter_while_scheduled_aborts);
    TEST(test_schedule_active_then_nested_poll_aborts);
    TEST(test_co_mutex_unlock_unlocked_aborts);
    TEST(test_co_mutex_unlock_by_non_holder_aborts);
    TEST(test_co_mutex_lock_twice_aborts);
    TEST(test_co_mutex_destroy_held_aborts);
    TEST(test_co_mutex_outside_coroutine_aborts);
    TEST(test_co_queue_wait_outside_aborts);
    TEST(test_co_queue_wait_zeroed_aborts);
    TEST(test_co_queue_wait_unheld_lock_aborts);
    TEST(test_co_queue_wake_empty_is_noop);
    TEST(test_co_sleep_outside_coroutine_aborts);
    TEST(test_yield_until_fd_outside_coroutine_aborts);
    TEST(test_co_wait_without_context_aborts);
    return test_done();
}
