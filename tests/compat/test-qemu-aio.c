/*
 * test-qemu-aio.c - the AioContext API through QEMU's header names, in
 * the forms of one API level (meson builds it once per level, with
 * -DAIOLOOP_QEMU_API=N): bottom halves, fd and event-notifier handlers
 * with their era's argument lists, timers and clocks, the main loop
 * under GLib, qemu_bh_delete()'s wake-up, AIO_WAIT_WHILE and the
 * current-context calls.
 *
 * SPDX-License-Identifier: MIT
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "qapi/error.h"
#include "qemu/timer.h"
#include "qemu/main-loop.h"
#include "qemu/error-report.h"
#include "qemu/event_notifier.h"
#if AIOLOOP_QEMU_API >= 212
#include "block/aio-wait.h"
#endif
#include "sysemu/iothread.h"
#include "iothread.h"

#include "test.h"

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */

static void test_bh_forms(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    int n = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &n);

    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n, 1);
    qemu_bh_delete(bh);
#if AIOLOOP_QEMU_API >= 208
    aio_bh_schedule_oneshot(ctx, count_cb, &n);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n, 2);
#endif
#if AIOLOOP_QEMU_API >= 801
    {
        /* 8.1: aio_bh_new_full() takes a re-entrancy guard. */
        MemReentrancyGuard guard = { .engaged_in_io = false };

        bh = aio_bh_new_full(ctx, count_cb, &n, "named", &guard);
        qemu_bh_schedule(bh);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(n, 3);
        CHECK(!guard.engaged_in_io);    /* restored after the callback */
        qemu_bh_delete(bh);
        bh = aio_bh_new_guarded(ctx, count_cb, &n, &guard);
        qemu_bh_schedule(bh);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(n, 4);
        qemu_bh_delete(bh);
    }
#elif AIOLOOP_QEMU_API >= 601
    bh = aio_bh_new_full(ctx, count_cb, &n, "named");
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n, 3);
    qemu_bh_delete(bh);
#endif
    aio_context_unref(ctx);
}

#if AIOLOOP_QEMU_API >= 801
static MemReentrancyGuard seen_guard;
static bool engaged_inside;

static void guard_cb(void *opaque)
{
    engaged_inside = seen_guard.engaged_in_io;
}

static void test_bh_guarded(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    QEMUBH *bh = aio_bh_new_guarded(ctx, guard_cb, NULL, &seen_guard);

    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK(engaged_inside);
    CHECK(!seen_guard.engaged_in_io);
    qemu_bh_delete(bh);
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    bh = qemu_bh_new_guarded(guard_cb, NULL, &seen_guard);
    engaged_inside = false;
    qemu_bh_schedule(bh);
    CHECK(aio_poll(qemu_get_aio_context(), false));
    CHECK(engaged_inside);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}
#endif

/* Deleted from its own callback under GLib: QEMU 5.0 on wakes the loop
 * (one more dispatch), earlier releases do not. */
static QEMUBH *self_bh;
static int self_runs;

static void delete_self_cb(void *opaque)
{
    self_runs++;
    qemu_bh_delete(self_bh);
    self_bh = NULL;
}

static void test_bh_delete_wakes_per_era(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    GSource *src = aio_get_g_source(ctx);

    g_source_attach(src, NULL);
    g_source_unref(src);
    while (g_main_context_iteration(NULL, false)) {
    }
    self_bh = aio_bh_new(ctx, delete_self_cb, NULL);
    qemu_bh_schedule(self_bh);
    g_main_context_iteration(NULL, true);
    CHECK_EQ(self_runs, 1);
#if AIOLOOP_QEMU_API >= 500
    CHECK(g_main_context_iteration(NULL, false));
#endif
    CHECK(!g_main_context_iteration(NULL, false));
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Handlers                                                            */

static int reads, polls, readies;

static void en_read(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    reads++;
}

static void fd_read(void *opaque)
{
    char buf[8];

    if (read(*(int *)opaque, buf, sizeof(buf)) > 0) {
        reads++;
    }
}

#if AIOLOOP_QEMU_API >= 209
static bool io_poll_yes(void *opaque)
{
    polls++;
    return true;
}
#endif
#if AIOLOOP_QEMU_API >= 700
static void en_ready(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    readies++;
}

static void fd_ready(void *opaque)
{
    fd_read(opaque);
    readies++;
}
#endif

/* Register @e with the level's aio_set_event_notifier(). */
static void set_notifier(AioContext *ctx, EventNotifier *e,
                         EventNotifierHandler *rd, bool with_poll)
{
#if AIOLOOP_QEMU_API >= 801
    aio_set_event_notifier(ctx, e, rd, with_poll ? io_poll_yes : NULL,
                           with_poll ? en_ready : NULL);
#elif AIOLOOP_QEMU_API >= 700
    aio_set_event_notifier(ctx, e, false, rd, with_poll ? io_poll_yes : NULL,
                           with_poll ? en_ready : NULL);
#elif AIOLOOP_QEMU_API >= 209
    aio_set_event_notifier(ctx, e, false, rd, with_poll ? io_poll_yes : NULL);
#else
    (void)with_poll;
    aio_set_event_notifier(ctx, e, false, rd);
#endif
}

/* Register @fd with the level's aio_set_fd_handler(). */
static void set_fd(AioContext *ctx, int *fd, IOHandler *rd, bool with_poll)
{
#if AIOLOOP_QEMU_API >= 801
    aio_set_fd_handler(ctx, *fd, rd, NULL, with_poll ? io_poll_yes : NULL,
                       with_poll ? fd_ready : NULL, fd);
#elif AIOLOOP_QEMU_API >= 700
    aio_set_fd_handler(ctx, *fd, false, rd, NULL,
                       with_poll ? io_poll_yes : NULL,
                       with_poll ? fd_ready : NULL, fd);
#elif AIOLOOP_QEMU_API >= 209
    aio_set_fd_handler(ctx, *fd, false, rd, NULL,
                       with_poll ? io_poll_yes : NULL, fd);
#else
    (void)with_poll;
    aio_set_fd_handler(ctx, *fd, false, rd, NULL, fd);
#endif
}

static void test_handler_forms(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    EventNotifier e;
    int p[2];

    reads = polls = readies = 0;
    REQUIRE(event_notifier_init(&e, 0) == 0);
    REQUIRE(qemu_pipe(p) == 0);
    REQUIRE(qemu_set_nonblock(p[0]) == 0);
    set_notifier(ctx, &e, en_read, false);
    set_fd(ctx, &p[0], fd_read, false);
    CHECK(!aio_poll(ctx, false));
    event_notifier_set(&e);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(reads, 1);
    CHECK(write(p[1], "x", 1) == 1);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(reads, 2);
    set_notifier(ctx, &e, NULL, false);
    set_fd(ctx, &p[0], NULL, false);
    event_notifier_set(&e);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(reads, 2);

#if AIOLOOP_QEMU_API >= 209
    /* With io_poll: a non-blocking poll on a context that does not poll
     * adaptively asks io_poll, which says ready; with io_poll_ready
     * (7.0 on) that runs, else io_read. */
    set_notifier(ctx, &e, en_read, true);
    polls = reads = readies = 0;
    CHECK(aio_poll(ctx, false));
    CHECK(polls > 0);
#if AIOLOOP_QEMU_API >= 700
    CHECK_EQ(readies, 1);
    CHECK_EQ(reads, 0);
#else
    CHECK_EQ(reads, 1);
#endif
    set_notifier(ctx, &e, NULL, true);
    set_fd(ctx, &p[0], fd_read, true);
    polls = reads = readies = 0;
    CHECK(aio_poll(ctx, false));
    CHECK(polls > 0);
    set_fd(ctx, &p[0], NULL, true);
#endif
    event_notifier_cleanup(&e);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

#if AIOLOOP_QEMU_API < 801
/* is_external, and aio_disable_external() (gone in QEMU 8.1). */
static void test_external(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    EventNotifier e;

    reads = 0;
    REQUIRE(event_notifier_init(&e, 1) == 0);
#if AIOLOOP_QEMU_API >= 700
    aio_set_event_notifier(ctx, &e, true, en_read, NULL, NULL);
#elif AIOLOOP_QEMU_API >= 209
    aio_set_event_notifier(ctx, &e, true, en_read, NULL);
#else
    aio_set_event_notifier(ctx, &e, true, en_read);
#endif
    aio_disable_external(ctx);
    CHECK(aio_external_disabled(ctx));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(reads, 0);
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(reads, 1);
    set_notifier(ctx, &e, NULL, false);
    event_notifier_cleanup(&e);
    aio_context_unref(ctx);
}
#endif

/* ------------------------------------------------------------------ */
/* Clocks and timers                                                   */

static void test_clocks_and_timers(void)
{
    AioContext *ctx;
    QEMUTimer t;
    int fired = 0;
    int64_t v0;

#if AIOLOOP_QEMU_API >= 1002
    qemu_init_clocks(NULL);
#elif AIOLOOP_QEMU_API >= 209
    init_clocks(NULL);
#else
    init_clocks();
#endif
    ctx = aio_context_new(&error_abort);
    /* QEMU_CLOCK_VIRTUAL runs with host time, as in QEMU's tests: a
     * 20 ms timer fires from blocking polls, nobody advancing it. */
    v0 = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    aio_timer_init(ctx, &t, QEMU_CLOCK_VIRTUAL, SCALE_MS, count_cb, &fired);
    timer_mod(&t, v0 / SCALE_MS + 20);
    while (!fired) {
        aio_poll(ctx, true);
    }
    /* Not before its deadline (v0 rounded down to ms, plus 20 ms). */
    CHECK(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) >= (v0 / SCALE_MS + 20) *
                                                  SCALE_MS);
    timer_del(&t);
#if AIOLOOP_QEMU_API >= 301
    aio_timer_init_with_attrs(ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS,
                              QEMU_TIMER_ATTR_EXTERNAL, count_cb, &fired);
    timer_mod(&t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(fired, 2);
    {
        QEMUTimer *nt = aio_timer_new_with_attrs(ctx, QEMU_CLOCK_REALTIME,
                                                 SCALE_MS, 0, count_cb,
                                                 &fired);
        timer_mod(nt, 0);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(fired, 3);
        timer_free(nt);
    }
#endif
    CHECK_EQ(qemu_soonest_timeout(-1, 5), 5);
    CHECK_EQ(qemu_soonest_timeout(7, 5), 5);
    CHECK_EQ(qemu_timeout_ns_to_ms(1), 1);
    CHECK_EQ(qemu_timeout_ns_to_ms(-1), -1);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* The main loop, GLib, current contexts                               */

static void test_main_loop_glib(void)
{
    int n = 0;
    QEMUBH *bh;

    REQUIRE(qemu_init_main_loop(&error_fatal) == 0);
    while (g_main_context_iteration(NULL, false)) {
    }
    bh = qemu_bh_new(count_cb, &n);
    qemu_bh_schedule(bh);
    CHECK(g_main_context_iteration(NULL, true));
    CHECK_EQ(n, 1);
    qemu_bh_delete(bh);
#if AIOLOOP_QEMU_API >= 208
    CHECK(qemu_get_current_aio_context() == qemu_get_aio_context());
    CHECK(in_aio_context_home_thread(qemu_get_aio_context()));
#endif
    main_loop_wait(true);
}

#if AIOLOOP_QEMU_API >= 601
static void test_set_current_context(void)
{
    AioContext *ctx = aio_context_new(&error_abort);

    qemu_set_current_aio_context(ctx);
    CHECK(qemu_get_current_aio_context() == ctx);
    CHECK(in_aio_context_home_thread(ctx));
    qemu_set_current_aio_context(NULL);
    aio_context_unref(ctx);
}
#endif

static void test_iothread_helpers(void)
{
    IOThread *t = iothread_new();
    AioContext *ctx = iothread_get_aio_context(t);
    IOThread *named = iothread_create("named", &error_abort);

    CHECK(ctx != NULL);
    aio_context_ref(ctx);
    iothread_join(t);
    aio_context_unref(ctx);
    iothread_destroy(named);
}

#if AIOLOOP_QEMU_API >= 212
/* AIO_WAIT_WHILE: wait in the main loop for work an IOThread does. */
static bool work_done;
#if AIOLOOP_QEMU_API < 301
static AioWait test_wait;
#endif

static void work_bh(void *opaque)
{
    qatomic_set(&work_done, true);
#if AIOLOOP_QEMU_API < 301
    aio_wait_kick(&test_wait);
#else
    aio_wait_kick();
#endif
}

static void test_aio_wait_while(void)
{
    IOThread *t = iothread_new();
    AioContext *ctx = iothread_get_aio_context(t);
    bool waited;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    aio_bh_schedule_oneshot(ctx, work_bh, NULL);
#if AIOLOOP_QEMU_API < 301
    aio_context_acquire(ctx);
    waited = AIO_WAIT_WHILE(&test_wait, ctx, !qatomic_read(&work_done));
    aio_context_release(ctx);
#elif AIOLOOP_QEMU_API < 900
    aio_context_acquire(ctx);
    waited = AIO_WAIT_WHILE(ctx, !qatomic_read(&work_done));
    aio_context_release(ctx);
#else
    waited = AIO_WAIT_WHILE(ctx, !qatomic_read(&work_done));
#endif
    (void)waited;
    CHECK(qatomic_read(&work_done));
#if AIOLOOP_QEMU_API >= 301
    /* Run a BH in the IOThread and wait for it. */
    {
        int n = 0;

        aio_wait_bh_oneshot(ctx, count_cb, &n);
        CHECK_EQ(n, 1);
    }
#endif
#if AIOLOOP_QEMU_API >= 702
    qatomic_set(&work_done, false);
    aio_bh_schedule_oneshot(ctx, work_bh, NULL);
    AIO_WAIT_WHILE_UNLOCKED(NULL, !qatomic_read(&work_done));
    CHECK(qatomic_read(&work_done));
#endif
    iothread_join(t);
}
#endif

static void test_main_loop_notifier(void)
{
    EventNotifier e;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    REQUIRE(event_notifier_init(&e, 1) == 0);
    reads = 0;
#if AIOLOOP_QEMU_API < 206
    CHECK_EQ(event_notifier_set_handler(&e, en_read), 0);
#elif AIOLOOP_QEMU_API < 209
    CHECK_EQ(event_notifier_set_handler(&e, false, en_read), 0);
#else
    event_notifier_set_handler(&e, en_read);
#endif
    CHECK(aio_poll(qemu_get_aio_context(), true));
    CHECK_EQ(reads, 1);
#if AIOLOOP_QEMU_API < 206
    event_notifier_set_handler(&e, NULL);
#elif AIOLOOP_QEMU_API < 209
    event_notifier_set_handler(&e, false, NULL);
#else
    event_notifier_set_handler(&e, NULL);
#endif
    event_notifier_cleanup(&e);
#if AIOLOOP_QEMU_API >= 900
    aio_context_set_aio_params(qemu_get_aio_context(), 32);
#elif AIOLOOP_QEMU_API >= 601
    {
        Error *err = NULL;

        aio_context_set_aio_params(qemu_get_aio_context(), 32, &error_abort);
        aio_context_set_aio_params(qemu_get_aio_context(), -1, &err);
        CHECK(err != NULL);
        error_free(err);
    }
#endif
}

static void test_errors(void)
{
    Error *err = NULL;

    error_setg(&err, "first %d", 1);
    error_reportf_err(err, "prefix %s: ", "x");
    err = NULL;
    error_setg_errno(&err, EINVAL, "second");
    CHECK(strstr(error_get_pretty(err), "second") != NULL);
    error_free_or_abort(&err);
    CHECK(err == NULL);
    info_report("info %d", 3);
}

int main(void)
{
    printf("# AIOLOOP_QEMU_API=%d\n", AIOLOOP_QEMU_API);
    TEST(test_bh_forms);
#if AIOLOOP_QEMU_API >= 801
    TEST(test_bh_guarded);
#endif
    TEST(test_bh_delete_wakes_per_era);
    TEST(test_handler_forms);
#if AIOLOOP_QEMU_API < 801
    TEST(test_external);
#endif
    TEST(test_clocks_and_timers);
    TEST(test_main_loop_glib);
#if AIOLOOP_QEMU_API >= 601
    TEST(test_set_current_context);
#endif
    TEST(test_iothread_helpers);
#if AIOLOOP_QEMU_API >= 212
    TEST(test_aio_wait_while);
#endif
    TEST(test_main_loop_notifier);
    TEST(test_errors);
    return test_done();
}
