/*
 * test-glib.c - running an AioContext from a GLib main loop through
 * aio_get_g_source(): BHs and fd handlers dispatched by
 * g_main_context_iteration(), the reference the call returns, and a
 * cross-thread qemu_bh_schedule() waking a blocking iteration.
 *
 * Built only with GLib. Meson runs it once per fd monitor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>

#include "aio-test.h"


/* An AioContext attached to a private GMainContext. */
typedef struct {
    AioContext *ctx;
    GMainContext *gctx;
    GSource *src;
} Attached;

static void attach(Attached *a)
{
    a->ctx = aio_context_new(&error_abort);
    a->gctx = g_main_context_new();
    a->src = aio_get_g_source(a->ctx);
    g_source_attach(a->src, a->gctx);
}

static void detach(Attached *a)
{
    g_source_destroy(a->src);
    g_source_unref(a->src);
    g_main_context_unref(a->gctx);
    aio_context_unref(a->ctx);
}

/* Iterate non-blocking until nothing is dispatched (bounded). */
static void flush(GMainContext *gctx)
{
    int i;

    for (i = 0; i < 100 && g_main_context_iteration(gctx, FALSE); i++) {
        /* again */
    }
}

/* ------------------------------------------------------------------ */

static void test_glib_bh(void)
{
    Attached a;
    int count = 0;
    QEMUBH *bh;

    attach(&a);
    REQUIRE(a.src != NULL);
    bh = aio_bh_new(a.ctx, atomic_count_cb, &count);
    flush(a.gctx);
    CHECK_EQ(count, 0);

    qemu_bh_schedule(bh);
    g_main_context_iteration(a.gctx, FALSE);
    CHECK_EQ(count, 1);
    flush(a.gctx);
    CHECK_EQ(count, 1);

    /* Blocking iteration: the BH is ready, so it returns after it ran. */
    qemu_bh_schedule(bh);
    CHECK(g_main_context_iteration(a.gctx, TRUE));
    CHECK_EQ(count, 2);

    /* One-shots too. */
    aio_bh_schedule_oneshot(a.ctx, atomic_count_cb, &count);
    CHECK(g_main_context_iteration(a.gctx, TRUE));
    CHECK_EQ(count, 3);

    qemu_bh_delete(bh);
    flush(a.gctx);
    detach(&a);
}

static void test_glib_keeps_fd_monitor(void)
{
    Attached a;
    const char *want = getenv("AIOLOOP_FDMON");

    /* Documented: the GSource works with either fd monitor (GLib polls
     * the epoll fd, or every handler's fd); requesting it does not
     * switch the context's monitor. */
    attach(&a);
    printf("#   fd monitor with a GSource: %s\n",
           aio_context_fdmon_name(a.ctx));
    CHECK(strcmp(aio_context_fdmon_name(a.ctx),
                 want && strcmp(want, "poll") == 0 ? "poll" : "epoll") == 0);
    detach(&a);
}

typedef struct {
    int fd;
    int reads;
} PipeState;

static void pipe_read(void *opaque)
{
    PipeState *s = opaque;
    char buf[64];

    while (read(s->fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }
    s->reads++;
}

typedef struct {
    int fd;                 /* write end */
    QEMUBH *bh;             /* or a BH to schedule */
    int loop_tid;           /* acts once this thread sleeps in poll */
    int acted;              /* atomic */
    QemuThread thread;
} Actor;

static void *actor_fn(void *opaque)
{
    Actor *act = opaque;

    wait_until_polling(act->loop_tid);
    qatomic_mb_set(&act->acted, 1);
    if (act->bh) {
        qemu_bh_schedule(act->bh);
    } else if (write(act->fd, "x", 1) != 1) {
        abort();
    }
    return NULL;
}

static void actor_start(Actor *act)
{
    qatomic_set(&act->acted, 0);
    act->loop_tid = qemu_get_thread_id();
    start_thread(&act->thread, "actor", actor_fn, act);
}

static void test_glib_fd_handler(void)
{
    Attached a;
    int p[2];
    PipeState s;
    Actor act = { 0 };
    int i;

    attach(&a);
    REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    s = (PipeState) { .fd = p[0] };
    aio_set_fd_handler(a.ctx, p[0], false, pipe_read, NULL, &s);
    flush(a.gctx);
    CHECK_EQ(s.reads, 0);

    /* Ready before the iteration. */
    REQUIRE(write(p[1], "x", 1) == 1);
    CHECK(g_main_context_iteration(a.gctx, TRUE));
    CHECK_EQ(s.reads, 1);
    flush(a.gctx);
    CHECK_EQ(s.reads, 1);

    /* Made ready by another thread while the iteration sleeps. */
    act.fd = p[1];
    for (i = 0; i < 3; i++) {
        actor_start(&act);
        while (s.reads == i + 1) {
            g_main_context_iteration(a.gctx, TRUE);
        }
        CHECK(qatomic_mb_read(&act.acted));
        CHECK_EQ(s.reads, i + 2);
        qemu_thread_join(&act.thread);
    }

    aio_set_fd_handler(a.ctx, p[0], false, NULL, NULL, NULL);
    REQUIRE(write(p[1], "x", 1) == 1);
    flush(a.gctx);
    CHECK_EQ(s.reads, 4);
    close(p[0]);
    close(p[1]);
    detach(&a);
}

static void test_glib_source_is_new_reference(void)
{
    Attached a;
    GSource *again;
    int count = 0;
    QEMUBH *bh;

    attach(&a);
    bh = aio_bh_new(a.ctx, atomic_count_cb, &count);
    /* A second call returns a reference the caller owns; dropping it
     * leaves the attached source working. */
    again = aio_get_g_source(a.ctx);
    REQUIRE(again != NULL);
    g_source_unref(again);
    again = aio_get_g_source(a.ctx);
    g_source_unref(again);

    qemu_bh_schedule(bh);
    CHECK(g_main_context_iteration(a.gctx, TRUE));
    CHECK_EQ(count, 1);
    /* Our own first reference, too: attach keeps the source alive. */
    qemu_bh_delete(bh);
    flush(a.gctx);
    detach(&a);
}

static void test_glib_cross_thread_bh_wakes_iteration(void)
{
    Attached a;
    int count = 0;
    QEMUBH *bh;
    Actor act = { 0 };
    int i;

    attach(&a);
    bh = aio_bh_new(a.ctx, atomic_count_cb, &count);
    act.bh = bh;
    flush(a.gctx);
    for (i = 0; i < 5; i++) {
        actor_start(&act);
        while (qatomic_read(&count) == i) {
            g_main_context_iteration(a.gctx, TRUE);
        }
        CHECK(qatomic_mb_read(&act.acted));
        CHECK_EQ(qatomic_read(&count), i + 1);
        qemu_thread_join(&act.thread);
    }
    qemu_bh_delete(bh);
    flush(a.gctx);
    detach(&a);
}

static void test_glib_and_aio_poll_mixed(void)
{
    Attached a;
    int count = 0;
    QEMUBH *bh;

    /* The context can still be run with aio_poll() directly while it is
     * attached to a GMainContext (not at the same time). */
    attach(&a);
    bh = aio_bh_new(a.ctx, atomic_count_cb, &count);
    qemu_bh_schedule(bh);
    CHECK(aio_poll(a.ctx, false));
    CHECK_EQ(count, 1);
    qemu_bh_schedule(bh);
    g_main_context_iteration(a.gctx, FALSE);
    CHECK_EQ(count, 2);
    qemu_bh_schedule(bh);
    CHECK(aio_poll(a.ctx, true));
    CHECK_EQ(count, 3);
    qemu_bh_delete(bh);
    flush(a.gctx);
    detach(&a);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);

    RUN(test_glib_bh);
    RUN(test_glib_keeps_fd_monitor);
    RUN(test_glib_fd_handler);
    RUN(test_glib_source_is_new_reference);
    RUN(test_glib_cross_thread_bh_wakes_iteration);
    RUN(test_glib_and_aio_poll_mixed);
    return test_done();
}
