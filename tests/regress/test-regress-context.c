/*
 * test-regress-context.c - regressions in the context itself: its own
 * descriptors used as the caller's, event notifiers cleaned up while
 * registered and the adaptive-polling arithmetic.
 *
 * Documented outcomes checked here:
 *  - aio_set_fd_handler() on a descriptor number that is the context's
 *    own (its event notifier, its epoll set; a stale number the caller
 *    closed and the context then got) aborts naming the descriptor and
 *    the context; removing handlers of such a number does nothing, so
 *    cross-thread wake-ups keep working (include/aioloop/aio.h).
 *  - event_notifier_cleanup() of a notifier still registered with a
 *    context aborts naming the notifier and the context, in every build;
 *    removing a notifier that is not initialised does nothing, and
 *    registering one aborts naming it (include/aioloop/event-notifier.h).
 *  - aio_context_set_poll_params() accepts any non-negative values: the
 *    poll window grows by saturating arithmetic up to max_ns and never
 *    overflows (include/aioloop/aio.h).
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <limits.h>

#include "regress-test.h"

#define MAX_SCAN 1024

/* The descriptors open now: open[fd] for fd < MAX_SCAN. */
static void open_fds(bool open[MAX_SCAN])
{
    for (int fd = 0; fd < MAX_SCAN; fd++) {
        open[fd] = fcntl(fd, F_GETFD) >= 0;
    }
}

/*
 * A new context, and the number of the descriptor of kind @kind
 * ("eventfd", "eventpoll") it opened: found in /proc/self/fd among the
 * descriptors that appeared with it. -1 if there is none.
 */
static AioContext *ctx_with_fd(const char *kind, int *fd_out)
{
    static bool before[MAX_SCAN];
    char want[64], link[128], path[64];
    AioContext *ctx;

    snprintf(want, sizeof(want), "anon_inode:[%s]", kind);
    open_fds(before);
    ctx = new_ctx();
    *fd_out = -1;
    for (int fd = 0; fd < MAX_SCAN; fd++) {
        ssize_t n;

        if (before[fd] || fcntl(fd, F_GETFD) < 0) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = '\0';
            if (strcmp(link, want) == 0) {
                *fd_out = fd;
                break;
            }
        }
    }
    return ctx;
}

static void noop_read(void *opaque)
{
    (void)opaque;
}

/* ------------------------------------------------------------------ */
/* The context's own descriptors                                       */

static void register_own_fd_child(void *opaque)
{
    const char *kind = opaque;
    AioContext *ctx;
    int fd;

    ctx = ctx_with_fd(kind, &fd);
    fprintf(stderr, "own fd %d\n", fd);
    aio_set_fd_handler(ctx, fd, false, noop_read, NULL, NULL);
    fprintf(stderr, "survived\n");
}

/*
 * A stale descriptor number that the context got for its eventfd,
 * registered as the caller's: before the fix the caller's node replaced
 * the context's notifier handler (and its removal then killed every
 * cross-thread wake-up). Now it aborts naming the descriptor.
 */
static void test_context_eventfd_registered_as_user_fd_aborts_naming_it(void)
{
    CHECK(death_expect_abort(register_own_fd_child, "eventfd",
                             "aio_set_fd_handler", "belongs to AioContext",
                             NULL));
}

/* The same with the number of the context's epoll set (before the fix:
 * EINVAL from epoll_ctl, and the context moved to ppoll for good). */
static void test_context_epoll_fd_registered_as_user_fd_aborts_naming_it(void)
{
    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: the context has no epoll set");
    }
    CHECK(death_expect_abort(register_own_fd_child, "eventpoll",
                             "aio_set_fd_handler", "belongs to AioContext",
                             NULL));
}

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    int delay_ms;
} Waker;

static void *waker_thread(void *opaque)
{
    Waker *w = opaque;

    /* Most likely after the loop went to sleep: what needs the eventfd. */
    sleep_ms(w->delay_ms);
    qemu_bh_schedule(w->bh);
    return NULL;
}

/*
 * Removing "the caller's" handler of the context's eventfd number: before
 * the fix that removed the context's own notifier handler, and a loop
 * asleep was never woken by another thread again (this case then hangs
 * until the harness's watchdog). Now it is a no-op.
 */
static void test_context_eventfd_removed_as_user_fd_keeps_cross_thread_wakeups(void)
{
    AioContext *ctx;
    int fd, ran = 0;
    Waker w;

    ctx = ctx_with_fd("eventfd", &fd);
    REQUIRE(fd >= 0);
    aio_set_fd_handler(ctx, fd, false, NULL, NULL, NULL);
    w.ctx = ctx;
    w.bh = aio_bh_new(ctx, atomic_count_cb, &ran);
    for (int round = 1; round <= 3; round++) {
        QemuThread t;

        w.delay_ms = 20 * round;
        start_thread(&t, "waker", waker_thread, &w);
        while (qatomic_read(&ran) < round) {
            aio_poll(ctx, true);
        }
        qemu_thread_join(&t);
        test_progress();
    }
    CHECK_EQ(qatomic_read(&ran), 3);
    qemu_bh_delete(w.bh);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Event notifiers cleaned up while registered                         */

static void notifier_cb(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
}

static void cleanup_registered_child(void *opaque)
{
    AioContext *ctx = new_ctx();
    EventNotifier *e = opaque;

    if (event_notifier_init(e, 0) < 0) {
        _exit(3);
    }
    aio_set_event_notifier(ctx, e, false, notifier_cb);
    event_notifier_cleanup(e);
    fprintf(stderr, "cleanup returned\n");
    /* What the caller does next; before the fix: "fd >= 0" assertion,
     * and with NDEBUG a registration that can never be removed. */
    aio_set_event_notifier(ctx, e, false, NULL);
    fprintf(stderr, "survived\n");
}

/*
 * Before the fix the cleanup closed the descriptor under the handler, the
 * removal then failed an opaque "fd >= 0" assertion, and with NDEBUG the
 * registration could never be removed. Now the cleanup aborts with a
 * message naming the notifier and the context.
 */
static void test_event_notifier_cleanup_while_registered_aborts_naming_it(void)
{
    static EventNotifier e;
    char name[64];

    snprintf(name, sizeof(name), "EventNotifier %p", (void *)&e);
    CHECK(death_expect_abort(cleanup_registered_child, &e,
                             "event_notifier_cleanup", name,
                             "still registered with AioContext", NULL));
}

/* The right order works, and afterwards removing the (uninitialised)
 * notifier again does nothing; a context freed with a notifier still
 * registered lets the notifier be cleaned up. */
static void test_event_notifier_removed_then_cleaned_up_ok(void)
{
    AioContext *ctx = new_ctx(), *other = new_ctx();
    EventNotifier e, f;
    int ran = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &ran);

    REQUIRE(event_notifier_init(&e, 1) == 0);
    REQUIRE(event_notifier_init(&f, 0) == 0);
    aio_set_event_notifier(ctx, &e, false, notifier_cb);
    CHECK(aio_poll(ctx, true));
    aio_set_event_notifier(ctx, &e, false, NULL);
    event_notifier_cleanup(&e);
    aio_set_event_notifier(ctx, &e, false, NULL);
    event_notifier_cleanup(&e);

    /* Registered with a context that is then freed: nothing holds it. */
    aio_set_event_notifier(other, &f, false, notifier_cb);
    aio_context_unref(other);
    event_notifier_cleanup(&f);

    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(ran, 1);
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
}

static void register_uninitialised_child(void *opaque)
{
    AioContext *ctx = new_ctx();

    aio_set_event_notifier(ctx, opaque, false, notifier_cb);
    fprintf(stderr, "survived\n");
}

/* Registering a notifier that is not initialised: before the fix an
 * opaque "fd >= 0" assertion (ignored with NDEBUG); now a message naming
 * the notifier. */
static void test_uninitialised_event_notifier_registration_aborts_naming_it(void)
{
    static EventNotifier e = { .rfd = -1, .wfd = -1, .initialized = false };
    char name[64];

    snprintf(name, sizeof(name), "EventNotifier %p", (void *)&e);
    CHECK(death_expect_abort(register_uninitialised_child, &e,
                             "aio_set_event_notifier", name,
                             "not initialised", NULL));
}

/* ------------------------------------------------------------------ */
/* Adaptive polling arithmetic                                         */

static bool count_poll(void *opaque)
{
    (*(int *)opaque)++;
    return false;
}

/*
 * max_ns = grow = INT64_MAX: the second growth step multiplied 4000 ns by
 * INT64_MAX (signed overflow, UBSan) and the window went negative every
 * other wait, which turned polling off. Now the window saturates at
 * max_ns: once grown, every blocking wait polls until its timer.
 */
static void test_poll_params_int64_max_growth_saturates(void)
{
    AioContext *ctx = new_ctx();
    int p[2], polls = 0;

    aio_context_set_poll_params(ctx, INT64_MAX, INT64_MAX, 0, &error_abort);
    make_pipe(p);
    aio_set_fd_handler_poll(ctx, p[0], false, noop_read, NULL, count_poll,
                            NULL, &polls);
    for (int round = 0; round < 8; round++) {
        int before = polls;

        poll_through_timer(ctx, 2);
        if (round >= 2 && polls == before) {
            printf("#   round %d: no busy polling\n", round);
            CHECK(polls > before);
        }
    }
    /* Shrinking from the top is as safe. */
    aio_context_set_poll_params(ctx, 1000, INT64_MAX, INT64_MAX,
                                &error_abort);
    for (int round = 0; round < 3; round++) {
        poll_through_timer(ctx, 2);
    }
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    RUN(test_context_eventfd_registered_as_user_fd_aborts_naming_it);
    RUN(test_context_epoll_fd_registered_as_user_fd_aborts_naming_it);
    RUN(test_context_eventfd_removed_as_user_fd_keeps_cross_thread_wakeups);
    RUN(test_event_notifier_cleanup_while_registered_aborts_naming_it);
    RUN(test_event_notifier_removed_then_cleaned_up_ok);
    RUN(test_uninitialised_event_notifier_registration_aborts_naming_it);
    RUN(test_poll_params_int64_max_growth_saturates);
    return test_done();
}
