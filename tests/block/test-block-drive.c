/*
 * test-block-drive.c - block completions reach the loop however it is
 * driven: blocking aio_poll() over many sleep/wake cycles, a spin of
 * non-blocking aio_poll() (through the busy-poll checks, and through the
 * fd monitor when a handler without a poll check forces it), a nested
 * blocking aio_poll() inside a completion callback, and a GMainContext
 * running the context's GSource.
 *
 * These matter because a backend may keep its wake-up signal off while
 * the loop is awake (io_uring arms its eventfd only around the loop's
 * waits, see src/block/io-uring.c): any way of waiting that forgot to arm
 * it would sleep through a completion. The blocking waits here have no
 * ticking timer that would hide such a bug: a missed wake-up hangs, and
 * the harness's no-progress watchdog fails the case by name. Spins of
 * non-blocking polls have no bound either: one that never sees the
 * completion is a hang too.
 *
 * SPDX-License-Identifier: MIT
 */
#include "block-test.h"
#if AIOLOOP_HAVE_GLIB
#include <glib.h>
#endif

/* Submits a 4 KiB read at @off of @t's file into @r. */
static bool read_one(Blk *t, BlkReq *r, int *completed, uint64_t off)
{
    blk_req_init(r, completed, off, 4096);
    return blk_req_submit(t, r, QEMU_AIO_READ);
}

/* Non-blocking aio_poll() until *@completed reaches @n. */
static void spin_until(AioContext *ctx, int *completed, int n)
{
    while (*completed < n) {
        aio_poll(ctx, false);
    }
}

/* Many rounds of one request and a blocking wait: each round the loop
 * goes to sleep with the request in flight and must be woken. */
static void test_blocking_cycles(void)
{
    const int rounds = 2000;
    int64_t end = test_stress_end();
    int completed = 0, i;
    Blk t;

    /* 2000 rounds, or fewer if the time budget runs out first. */
    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 64 * 4096, 7));
    for (i = 0; i < rounds && (i == 0 || test_stress_more(end)); i++) {
        BlkReq r;

        REQUIRE(read_one(&t, &r, &completed, (uint64_t)(i % 64) * 4096));
        blk_wait(t.ctx, &completed, i + 1);
        CHECK_EQ(r.runs, 1);
        CHECK_EQ(r.ret, 0);
        CHECK(pattern_check(r.buf, 4096, 7, (uint64_t)(i % 64) * 4096));
        blk_req_free(&r);
    }
    CHECK_EQ(completed, i);
    blk_teardown(&t);
}

static void nop_read(void *opaque)
{
    (void)opaque;
}

/* Rounds of one request and a spin of non-blocking aio_poll(). With
 * @fd_wait, a pipe handler without a busy-poll check makes each look go
 * through the fd monitor instead of the poll checks. */
static void spin_rounds(bool fd_wait)
{
    const int rounds = 300;
    int completed = 0, i, p[2];
    Blk t;

    REQUIRE(pipe(p) == 0);
    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 16 * 4096, 8));
    if (fd_wait) {
        aio_set_fd_handler(t.ctx, p[0], false, nop_read, NULL, NULL);
    }
    for (i = 0; i < rounds; i++) {
        BlkReq r;

        REQUIRE(read_one(&t, &r, &completed, (uint64_t)(i % 16) * 4096));
        if (i % 2) {
            /* Sleep first: the completion is queued before the spin. */
            sleep_ms(1);
        }
        spin_until(t.ctx, &completed, i + 1);
        CHECK_EQ(r.runs, 1);
        CHECK_EQ(r.ret, 0);
        blk_req_free(&r);
    }
    if (fd_wait) {
        aio_set_fd_handler(t.ctx, p[0], false, NULL, NULL, NULL);
    }
    blk_teardown(&t);
    close(p[0]);
    close(p[1]);
}

static void test_spin_poll_checks(void) { spin_rounds(false); }
static void test_spin_fd_monitor(void) { spin_rounds(true); }

/* A callback that submits a second request and waits for it with a
 * nested blocking aio_poll(), then the outer loop goes back to sleep
 * for a third one. */
typedef struct {
    Blk *t;
    BlkReq inner;
    int inner_done;
    bool waited;
} Nest;

static void nest_hook(BlkReq *outer)
{
    Nest *n = outer->user;

    outer->hook = NULL;
    if (!read_one(n->t, &n->inner, &n->inner_done, 4096)) {
        return;
    }
    blk_wait(n->t->ctx, &n->inner_done, 1);
    n->waited = true;
}

static void test_nested_blocking_wait(void)
{
    int completed = 0;
    BlkReq outer, last;
    Nest n = { 0 };
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 4 * 4096, 9));
    n.t = &t;
    REQUIRE(read_one(&t, &outer, &completed, 0));
    outer.hook = nest_hook;
    outer.user = &n;
    blk_wait(t.ctx, &completed, 1);
    CHECK(n.waited);
    CHECK_EQ(n.inner.runs, 1);
    CHECK_EQ(n.inner.ret, 0);
    CHECK(pattern_check(n.inner.buf, 4096, 9, 4096));

    /* Back in the outer loop: it must still be woken. */
    REQUIRE(read_one(&t, &last, &completed, 8192));
    blk_wait(t.ctx, &completed, 2);
    CHECK_EQ(last.runs, 1);
    CHECK(pattern_check(last.buf, 4096, 9, 8192));
    CHECK_EQ(outer.runs, 1);
    blk_req_free(&outer);
    blk_req_free(&n.inner);
    blk_req_free(&last);
    blk_teardown(&t);
}

#if AIOLOOP_HAVE_GLIB
/* The context run by a GMainContext through its GSource only. */
static void test_gsource_loop(void)
{
    GMainContext *gctx = g_main_context_new();
    GSource *src;
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 16 * 4096, 10));
    src = aio_get_g_source(t.ctx);
    g_source_attach(src, gctx);
    for (i = 0; i < 200; i++) {
        BlkReq r;

        REQUIRE(read_one(&t, &r, &completed, (uint64_t)(i % 16) * 4096));
        while (completed < i + 1) {
            /* Mostly blocking iterations, in which GLib sleeps in poll()
             * on the context's fd: a missed wake-up hangs (watchdog). */
            g_main_context_iteration(gctx, i % 4 != 3);
        }
        CHECK_EQ(r.runs, 1);
        CHECK_EQ(r.ret, 0);
        blk_req_free(&r);
    }
    g_source_destroy(src);
    g_source_unref(src);
    g_main_context_unref(gctx);
    blk_teardown(&t);
}
#else
static void test_gsource_loop(void)
{
    SKIP_CASE("built without GLib");
}
#endif

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_blocking_cycles);
    RUN(test_spin_poll_checks);
    RUN(test_spin_fd_monitor);
    RUN(test_nested_blocking_wait);
    RUN(test_gsource_loop);
    return test_done();
}
