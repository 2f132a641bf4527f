/*
 * test-walkers.c - aio_poll() passes that look at no handler. A
 * non-blocking pass takes no walk of the handler set when it has nothing
 * to look at: only the context's own notifier is registered, or every
 * handler is pollable and adaptive polling is on (such a pass runs no
 * io_poll). These cases check that the handler set behaves the same
 * across such passes: a handler added after one is looked at by the
 * next, a handler removed from a BH of such a pass is never called
 * again, and another thread replacing handlers while the loop alternates
 * both kinds of passes loses no BH and no readiness (ASan and TSan see
 * the frees and the counts).
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON=epoll and
 * AIOLOOP_FDMON=poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "aio-test.h"

typedef struct {
    AioContext *ctx;
    int fd;
    bool ready;             /* what io_poll answers */
    int polls;              /* io_poll calls */
    int poll_readies;       /* io_poll_ready calls */
    int reads;              /* io_read calls */
    bool removed;
    int late_calls;         /* calls after removal: must stay 0 */
} PollState;

static bool ps_poll(void *opaque)
{
    PollState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->polls++;
    return s->ready;
}

static void ps_poll_ready(void *opaque)
{
    PollState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->poll_readies++;
}

static void ps_read(void *opaque)
{
    PollState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->reads++;
}

static void ps_add(PollState *s)
{
    aio_set_fd_handler_poll(s->ctx, s->fd, false, ps_read, NULL, ps_poll,
                            ps_poll_ready, s);
}

static void ps_remove(PollState *s)
{
    aio_set_fd_handler(s->ctx, s->fd, false, NULL, NULL, NULL);
    s->removed = true;
}

static int new_eventfd(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0) {
        perror("eventfd");
        abort();
    }
    return fd;
}

static int bh_runs;

static void count_bh(void *opaque)
{
    (void)opaque;
    bh_runs++;
}

/* A pass with only the context's notifier, then a pollable handler: the
 * next pass polls it. */
static void test_handler_added_after_bh_only_pass(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh = aio_bh_new(ctx, count_bh, NULL);
    PollState s = { .ctx = ctx, .fd = new_eventfd(), .ready = true };

    bh_runs = 0;
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(bh_runs, 1);
    CHECK(!aio_poll(ctx, false));

    ps_add(&s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.polls, 1);
    CHECK_EQ(s.poll_readies, 1);

    /* With a BH in the same pass: both run. */
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(bh_runs, 2);
    CHECK_EQ(s.polls, 2);
    CHECK_EQ(s.poll_readies, 2);

    ps_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.polls, 2);
    CHECK_EQ(s.late_calls, 0);
    qemu_bh_delete(bh);
    aio_poll(ctx, false);
    close(s.fd);
    aio_context_unref(ctx);
}

static PollState *victim;

static void remove_victim_bh(void *opaque)
{
    (void)opaque;
    bh_runs++;
    if (victim && !victim->removed) {
        ps_remove(victim);
    }
}

/* Adaptive polling on, every handler pollable: a non-blocking pass runs
 * no io_poll (QEMU's rule) and takes no walk. A BH of such a pass that
 * removes a handler frees it at once; it is never called again, and a
 * later blocking pass (which walks) does not see it. */
static void test_remove_from_bh_of_pass_without_walk(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh = aio_bh_new(ctx, remove_victim_bh, NULL);
    PollState s = { .ctx = ctx, .fd = new_eventfd(), .ready = true };
    PollState other = { .ctx = ctx, .fd = new_eventfd(), .ready = false };
    Error *err = NULL;

    aio_context_set_poll_params(ctx, 1000000, 2, 2, &err);
    REQUIRE(!err);
    aio_notify_accept(ctx);     /* set_poll_params notified the loop */
    ps_add(&s);
    ps_add(&other);

    bh_runs = 0;
    victim = &s;
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(bh_runs, 1);
    CHECK(s.removed);
    CHECK_EQ(s.polls, 0);
    CHECK_EQ(other.polls, 0);

    /* A blocking pass (it walks): the other handler's eventfd is
     * readable, so it is dispatched (read, or io_poll_ready if a poll
     * window saw it first); the removed one is never called. */
    REQUIRE(eventfd_write(other.fd, 1) == 0);
    CHECK(aio_poll(ctx, true));
    CHECK(other.reads + other.poll_readies >= 1);
    CHECK_EQ(s.polls, 0);
    CHECK_EQ(s.late_calls, 0);

    victim = NULL;
    ps_remove(&other);
    qemu_bh_delete(bh);
    aio_poll(ctx, false);
    CHECK_EQ(other.late_calls, 0);
    close(s.fd);
    close(other.fd);
    aio_context_unref(ctx);
}

/* Non-blocking passes with only the notifier registered run their BHs,
 * and a handler that a BH of such a pass adds is polled by the next. */
static PollState *added;

static void add_handler_bh(void *opaque)
{
    (void)opaque;
    bh_runs++;
    if (added && !added->removed) {
        ps_add(added);
    }
}

static void test_handler_added_from_bh_of_pass_without_walk(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh = aio_bh_new(ctx, add_handler_bh, NULL);
    PollState s = { .ctx = ctx, .fd = new_eventfd(), .ready = true };

    bh_runs = 0;
    added = &s;
    qemu_bh_schedule(bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(bh_runs, 1);
    CHECK_EQ(s.polls, 0);       /* looked at before the BH ran */
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.polls, 1);
    CHECK_EQ(s.poll_readies, 1);
    added = NULL;
    ps_remove(&s);
    qemu_bh_delete(bh);
    aio_poll(ctx, false);
    CHECK_EQ(s.late_calls, 0);
    close(s.fd);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Another thread replaces handlers while the loop polls               */

typedef struct {
    AioContext *ctx;
    int fd;
    unsigned long swaps;    /* atomic */
    bool stop;              /* atomic */
} Swapper;

static bool never_ready(void *opaque)
{
    (void)opaque;
    return false;
}

static void noop(void *opaque)
{
    (void)opaque;
}

/* Registers, replaces and removes a pollable handler on its eventfd, so
 * that retirements meet walks (deferred frees) and passes without one. */
static void *swapper_main(void *opaque)
{
    Swapper *w = opaque;

    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        aio_set_fd_handler_poll(w->ctx, w->fd, false, noop, NULL,
                                never_ready, NULL, w);
        aio_set_fd_handler_poll(w->ctx, w->fd, false, noop, NULL,
                                never_ready, noop, w);
        aio_set_fd_handler(w->ctx, w->fd, false, NULL, NULL, NULL);
        __atomic_fetch_add(&w->swaps, 1, __ATOMIC_RELAXED);
        test_progress();
    }
    return NULL;
}

static void test_threads_replace_while_polling(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh = aio_bh_new(ctx, count_bh, NULL);
    Swapper w = { .ctx = ctx, .fd = new_eventfd() };
    PollState s = { .ctx = ctx, .fd = new_eventfd(), .ready = true };
    int64_t end = test_stress_end();
    bool mine = false;
    pthread_t t;
    int i;

    REQUIRE(pthread_create(&t, NULL, swapper_main, &w) == 0);
    bh_runs = 0;
    /* At least 1000 passes; then until the other thread has replaced
     * handlers 100 times or the time budget is spent. */
    for (i = 0; i < 200000; i++) {
        if (i >= 1000 &&
            (__atomic_load_n(&w.swaps, __ATOMIC_RELAXED) >= 100 ||
             !test_stress_more(end))) {
            break;
        }
        if (i % 64 == 0) {
            Error *err = NULL;

            /* Alternate passes without a walk (adaptive polling on, or
             * only the swapper's handler at times) and passes with one;
             * our own ready pollable handler comes and goes. */
            aio_context_set_poll_params(ctx, (i / 64) % 2 ? 1000000 : 0, 2,
                                        2, &err);
            REQUIRE(!err);
            if (!mine) {
                s.removed = false;
                ps_add(&s);
            } else {
                ps_remove(&s);
            }
            mine = !mine;
        }
        qemu_bh_schedule(bh);
        aio_poll(ctx, false);
        CHECK_EQ(bh_runs, i + 1);
        if (bh_runs != i + 1) {
            break;
        }
    }
    __atomic_store_n(&w.stop, true, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    if (mine) {
        ps_remove(&s);
    }
    /* Polled only while registered with adaptive polling off. */
    CHECK_EQ(s.late_calls, 0);
    CHECK_EQ(s.polls, s.poll_readies);
    qemu_bh_delete(bh);
    aio_poll(ctx, false);
    close(w.fd);
    close(s.fd);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_handler_added_after_bh_only_pass);
    RUN(test_remove_from_bh_of_pass_without_walk);
    RUN(test_handler_added_from_bh_of_pass_without_walk);
    RUN(test_threads_replace_while_polling);
    return test_done();
}
