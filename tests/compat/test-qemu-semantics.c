/*
 * test-qemu-semantics.c - the behaviours QEMU code relies on (SPEC §2),
 * through aioloop's own headers: io_poll_ready is never re-entered by a
 * nested aio_poll(); a non-blocking aio_poll() on a polling context with
 * only poll handlers neither polls nor waits; QEMU_CLOCK_VIRTUAL follows
 * host time until taken over; qemu_init_main_loop() attaches to GLib's
 * default context; qemu_bh_delete() wakes the loop.
 *
 * Meson runs it once per fd monitor (AIOLOOP_FDMON=epoll, =poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <glib.h>
#include <fcntl.h>
#include <sys/eventfd.h>

#include "test.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void never_cb(void *opaque)
{
    CHECK(!"a deleted or cancelled BH ran");
}

/* ------------------------------------------------------------------ */
/* io_poll_ready is not re-entered by a nested aio_poll()              */

typedef struct {
    AioContext *ctx;
    EventNotifier poll_notifier;    /* io_poll always says ready */
    EventNotifier dummy;            /* only wakes the nested poll */
    int depth;
    int max_depth;
    int ready_calls;
    int dummy_reads;
    int poll_calls;
} NestData;

static NestData nest;

static void nest_read(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    if (e == &nest.dummy) {
        nest.dummy_reads++;
    }
}

static bool nest_poll_true(void *opaque)
{
    nest.poll_calls++;
    return true;
}

static bool nest_poll_false(void *opaque)
{
    return false;
}

static void nest_poll_ready(EventNotifier *e)
{
    nest.ready_calls++;
    nest.depth++;
    if (nest.depth > nest.max_depth) {
        nest.max_depth = nest.depth;
    }
    /* Wake the nested loop through the other notifier; the nested
     * aio_poll() must not call this function again through io_poll. */
    event_notifier_set(&nest.dummy);
    CHECK(aio_poll(nest.ctx, true));
    nest.depth--;
}

static void never_ready(EventNotifier *e)
{
    CHECK(!"io_poll_ready of a handler whose io_poll is false");
}

static void test_poll_ready_not_reentered_notifier(void)
{
    memset(&nest, 0, sizeof(nest));
    nest.ctx = aio_context_new(&error_abort);
    aio_context_set_poll_params(nest.ctx, 1000000, 2, 2, &error_abort);
    REQUIRE(event_notifier_init(&nest.poll_notifier, 1) == 0);
    REQUIRE(event_notifier_init(&nest.dummy, 0) == 0);
    aio_set_event_notifier_full(nest.ctx, &nest.poll_notifier, false,
                                nest_read, nest_poll_true, nest_poll_ready);
    aio_set_event_notifier_full(nest.ctx, &nest.dummy, false, nest_read,
                                nest_poll_false, never_ready);

    /* Zero poll window, every handler pollable: nothing happens, even
     * though poll_notifier is set (QEMU's test-nested-aio-poll). */
    CHECK(!aio_poll(nest.ctx, false));
    CHECK_EQ(nest.poll_calls, 0);

    /* The fd is readable: io_read runs, and polling starts to pay. */
    CHECK(aio_poll(nest.ctx, true));
    CHECK_EQ(nest.ready_calls, 0);

    /* Now io_poll reports ready: io_poll_ready runs, nests, and the
     * nested loop returns through the dummy notifier, not through it. */
    CHECK(aio_poll(nest.ctx, true));
    CHECK(aio_poll(nest.ctx, true));
    CHECK(nest.ready_calls >= 1);
    CHECK_EQ(nest.max_depth, 1);
    CHECK_EQ(nest.dummy_reads, nest.ready_calls);

    aio_set_event_notifier_full(nest.ctx, &nest.dummy, false, NULL, NULL,
                                NULL);
    aio_set_event_notifier_full(nest.ctx, &nest.poll_notifier, false, NULL,
                                NULL, NULL);
    event_notifier_cleanup(&nest.dummy);
    event_notifier_cleanup(&nest.poll_notifier);
    aio_context_unref(nest.ctx);
}

/* The same with an fd handler (aio_set_fd_handler_poll). */
typedef struct {
    AioContext *ctx;
    int efd;
    int wake[2];
    int depth, max_depth, ready_calls, wake_reads;
} FdNest;

static FdNest fdn;

static void fdn_read(void *opaque)
{
    uint64_t v;

    if (read(fdn.efd, &v, sizeof(v)) < 0) {
        /* empty: fine */
    }
}

static void fdn_wake_read(void *opaque)
{
    char c;

    if (read(fdn.wake[0], &c, 1) == 1) {
        fdn.wake_reads++;
    }
}

static bool fdn_poll(void *opaque)
{
    return true;
}

static bool fdn_poll_false(void *opaque)
{
    return false;
}

static void fdn_ready(void *opaque)
{
    fdn.ready_calls++;
    if (++fdn.depth > fdn.max_depth) {
        fdn.max_depth = fdn.depth;
    }
    CHECK(write(fdn.wake[1], "x", 1) == 1);
    CHECK(aio_poll(fdn.ctx, true));
    fdn.depth--;
}

static void test_poll_ready_not_reentered_fd(void)
{
    uint64_t one = 1;

    memset(&fdn, 0, sizeof(fdn));
    fdn.ctx = aio_context_new(&error_abort);
    aio_context_set_poll_params(fdn.ctx, 1000000, 2, 2, &error_abort);
    fdn.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(fdn.efd >= 0);
    REQUIRE(pipe2(fdn.wake, O_NONBLOCK | O_CLOEXEC) == 0);
    aio_set_fd_handler_poll(fdn.ctx, fdn.efd, false, fdn_read, NULL,
                            fdn_poll, fdn_ready, NULL);
    aio_set_fd_handler_poll(fdn.ctx, fdn.wake[0], false, fdn_wake_read,
                            NULL, fdn_poll_false, NULL, NULL);
    REQUIRE(write(fdn.efd, &one, sizeof(one)) == sizeof(one));

    CHECK(!aio_poll(fdn.ctx, false));           /* zero window: nothing */
    CHECK(aio_poll(fdn.ctx, true));             /* io_read via the fd */
    CHECK_EQ(fdn.ready_calls, 0);
    CHECK(aio_poll(fdn.ctx, true));             /* io_poll: ready, nests */
    CHECK(aio_poll(fdn.ctx, true));
    CHECK(fdn.ready_calls >= 1);
    CHECK_EQ(fdn.max_depth, 1);
    CHECK_EQ(fdn.wake_reads, fdn.ready_calls);

    aio_set_fd_handler(fdn.ctx, fdn.efd, false, NULL, NULL, NULL);
    aio_set_fd_handler(fdn.ctx, fdn.wake[0], false, NULL, NULL, NULL);
    close(fdn.efd);
    close(fdn.wake[0]);
    close(fdn.wake[1]);
    aio_context_unref(fdn.ctx);
}

/* ------------------------------------------------------------------ */
/* Non-blocking aio_poll() and the poll window                         */

static int nb_polls, nb_reads;

static bool nb_poll(void *opaque)
{
    nb_polls++;
    return true;
}

static void nb_read(EventNotifier *e)
{
    nb_reads++;
    event_notifier_test_and_clear(e);
}

static void test_nonblocking_zero_window(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    EventNotifier e;
    int count = 0;
    QEMUBH *bh;

    nb_polls = nb_reads = 0;
    REQUIRE(event_notifier_init(&e, 1) == 0);
    aio_set_event_notifier_full(ctx, &e, false, nb_read, nb_poll, NULL);

    /* Polling off (aio_context_new()'s default): a non-blocking call asks
     * io_poll once instead of the fd monitor. */
    CHECK(aio_poll(ctx, false));
    CHECK(nb_polls > 0);

    /* Polling on: a non-blocking call has no poll window, and every
     * handler can be polled, so it neither polls nor waits on fds... */
    aio_context_set_poll_params(ctx, 1000000, 0, 0, &error_abort);
    nb_polls = nb_reads = 0;
    event_notifier_set(&e);
    while (aio_poll(ctx, false)) {
        count++;
        REQUIRE(count < 10);
    }
    CHECK_EQ(nb_polls, 0);
    CHECK_EQ(nb_reads, 0);
    /* ... but BHs still run... */
    bh = aio_bh_new(ctx, never_cb, NULL);
    qemu_bh_schedule(bh);
    qemu_bh_cancel(bh);
    qemu_bh_delete(bh);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(nb_polls + nb_reads, 0);
    /* ... and a blocking call sees the fd. */
    CHECK(aio_poll(ctx, true));
    CHECK(nb_reads + nb_polls > 0);

    /* A handler without io_poll needs the fd monitor: then the
     * non-blocking call waits (zero timeout) on every fd. */
    {
        EventNotifier plain;

        REQUIRE(event_notifier_init(&plain, 1) == 0);
        aio_set_event_notifier(ctx, &plain, false, nb_read);
        nb_reads = 0;
        CHECK(aio_poll(ctx, false));
        CHECK(nb_reads >= 1);
        aio_set_event_notifier(ctx, &plain, false, NULL);
        event_notifier_cleanup(&plain);
    }
    aio_set_event_notifier_full(ctx, &e, false, NULL, NULL, NULL);
    event_notifier_cleanup(&e);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* QEMU_CLOCK_VIRTUAL                                                  */


static void test_virtual_follows_host_time(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    int64_t v0 = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int64_t r0 = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    QEMUTimer t;
    int fired = 0;

    CHECK(!qemu_clock_virtual_is_driven());
    /* It runs: it is the host's monotonic time. */
    CHECK(v0 >= r0 - 1000000000LL && v0 <= r0 + 1000000000LL);
    sleep_ms(5);
    CHECK(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) >= v0 + 5000000LL);

    /* A timer on it fires by itself, from a blocking aio_poll(). */
    aio_timer_init(ctx, &t, QEMU_CLOCK_VIRTUAL, SCALE_NS, count_cb, &fired);
    timer_mod(&t, v0 + 20000000LL);
    while (!fired) {
        aio_poll(ctx, true);
    }
    CHECK_EQ(fired, 1);
    CHECK(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) >= v0 + 20000000LL);
    timer_deinit(&t);
    aio_context_unref(ctx);
}

static void test_virtual_take_over(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    int64_t before = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int64_t frozen = qemu_clock_take_over_virtual();
    QEMUTimer t;
    int fired = 0;

    CHECK(qemu_clock_virtual_is_driven());
    CHECK(frozen >= before);
    sleep_ms(5);
    CHECK_EQ(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), frozen);
    CHECK_EQ(qemu_clock_take_over_virtual(), frozen);  /* once only */

    aio_timer_init(ctx, &t, QEMU_CLOCK_VIRTUAL, SCALE_NS, count_cb, &fired);
    timer_mod(&t, frozen + 1000);
    sleep_ms(2);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(fired, 0);
    CHECK_EQ(qemu_clock_advance_virtual_time(frozen + 999), frozen + 999);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(qemu_clock_advance_virtual_time(frozen + 1000), frozen + 1000);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(fired, 1);
    /* Never backwards. */
    CHECK_EQ(qemu_clock_advance_virtual_time(frozen), frozen + 1000);
    timer_deinit(&t);
    aio_context_unref(ctx);
}

static void test_virtual_advance_takes_over(void)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int64_t after;

    CHECK(!qemu_clock_virtual_is_driven());
    after = qemu_clock_advance_virtual_time(now + 1000000000LL);
    CHECK(qemu_clock_virtual_is_driven());
    CHECK_EQ(after, now + 1000000000LL);
    sleep_ms(2);
    CHECK_EQ(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL), after);
}

/* ------------------------------------------------------------------ */
/* The main loop and GLib                                              */

static void test_main_loop_in_glib_default_context(void)
{
    int ran = 0;
    QEMUBH *bh;
    QEMUTimer t;
    int fired = 0;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    while (g_main_context_iteration(NULL, false)) {
    }
    bh = qemu_bh_new(count_cb, &ran);
    qemu_bh_schedule(bh);
    /* GLib's default context runs the main loop's BHs... */
    CHECK(g_main_context_iteration(NULL, true));
    CHECK_EQ(ran, 1);
    /* ... and its timers, sleeping until they are due. */
    aio_timer_init(qemu_get_aio_context(), &t, QEMU_CLOCK_REALTIME,
                   SCALE_MS, count_cb, &fired);
    timer_mod(&t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 10);
    while (!fired) {
        g_main_context_iteration(NULL, true);
    }
    CHECK_EQ(fired, 1);
    timer_deinit(&t);
    qemu_bh_delete(bh);
    while (g_main_context_iteration(NULL, false)) {
    }
    qemu_cleanup_main_loop();
    /* Detached with the context: GLib's default context is idle. */
    CHECK(!g_main_context_iteration(NULL, false));
}

/* ------------------------------------------------------------------ */
/* qemu_bh_delete() wakes the loop                                     */

typedef struct {
    QEMUBH *bh;
    QemuSemaphore go;
    EventNotifier fallback;
    bool main_returned;         /* atomic */
} DeleteData;

static int fallback_reads;

static void fallback_read(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    fallback_reads++;
}

static void *delete_thread(void *opaque)
{
    DeleteData *d = opaque;
    int i;

    qemu_sem_wait(&d->go);
    sleep_ms(20);       /* let the main thread fall asleep */
    qemu_bh_delete(d->bh);
    /* If the main thread was not asleep yet, nothing wakes it: end its
     * wait after a while (the case then skips: premise not met). */
    for (i = 0; i < 200 && !qatomic_load_acquire(&d->main_returned); i++) {
        sleep_ms(10);
    }
    if (!qatomic_load_acquire(&d->main_returned)) {
        event_notifier_set(&d->fallback);
    }
    return NULL;
}

static void test_bh_delete_wakes_aio_poll(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    DeleteData d = { 0 };
    QemuThread th;
    bool progress;

    /* A handler so that the blocking aio_poll() has something to sleep
     * on; it runs only if the deleting thread came too early. */
    REQUIRE(event_notifier_init(&d.fallback, 0) == 0);
    aio_set_event_notifier(ctx, &d.fallback, false, fallback_read);
    while (aio_poll(ctx, false)) {
    }
    fallback_reads = 0;
    d.bh = aio_bh_new(ctx, never_cb, NULL);
    qemu_sem_init(&d.go, 0);
    REQUIRE(qemu_thread_create(&th, "deleter", delete_thread, &d,
                               QEMU_THREAD_JOINABLE) == 0);
    qemu_sem_post(&d.go);
    /* Returns when the other thread deletes the BH: a wake-up, not
     * progress, and the fallback notifier did not fire. */
    progress = aio_poll(ctx, true);
    qatomic_store_release(&d.main_returned, true);
    qemu_thread_join(&th);
    qemu_sem_destroy(&d.go);
    aio_set_event_notifier(ctx, &d.fallback, false, NULL);
    event_notifier_cleanup(&d.fallback);
    aio_context_unref(ctx);
    if (fallback_reads) {
        SKIP_CASE("the BH was deleted before aio_poll() slept (machine busy)");
    }
    CHECK(!progress);
}

static int deleting_runs;

static void delete_self_cb(void *opaque)
{
    QEMUBH **bh = opaque;

    deleting_runs++;
    qemu_bh_delete(*bh);
    *bh = NULL;
}

static void delete_self_quiet_cb(void *opaque)
{
    QEMUBH **bh = opaque;

    deleting_runs++;
    qemu_bh_delete_quiet(*bh);
    *bh = NULL;
}

static void test_bh_delete_wakes_glib(void)
{
    AioContext *ctx = aio_context_new(&error_abort);
    GSource *src = aio_get_g_source(ctx);
    QEMUBH *bh;

    g_source_attach(src, NULL);
    g_source_unref(src);
    while (g_main_context_iteration(NULL, false)) {
    }

    /* Deleted from its own callback: the wake-up makes GLib dispatch
     * the context once more, then it is idle (QEMU 5.0 on). */
    deleting_runs = 0;
    bh = aio_bh_new(ctx, delete_self_cb, &bh);
    qemu_bh_schedule(bh);
    g_main_context_iteration(NULL, true);
    CHECK_EQ(deleting_runs, 1);
    CHECK(bh == NULL);
    CHECK(g_main_context_iteration(NULL, false));
    CHECK(!g_main_context_iteration(NULL, false));

    /* The quiet delete (QEMU before 5.0): no extra iteration. */
    bh = aio_bh_new(ctx, delete_self_quiet_cb, &bh);
    qemu_bh_schedule(bh);
    g_main_context_iteration(NULL, true);
    CHECK_EQ(deleting_runs, 2);
    CHECK(!g_main_context_iteration(NULL, false));
    aio_context_unref(ctx);
}

int main(void)
{
    TEST(test_poll_ready_not_reentered_notifier);
    TEST(test_poll_ready_not_reentered_fd);
    TEST(test_nonblocking_zero_window);
    TEST(test_virtual_follows_host_time);
    TEST(test_virtual_take_over);
    TEST(test_virtual_advance_takes_over);
    TEST(test_main_loop_in_glib_default_context);
    TEST(test_bh_delete_wakes_aio_poll);
    TEST(test_bh_delete_wakes_glib);
    return test_done();
}
