/*
 * test-main-loop.c - the process-wide main context: qemu_init_main_loop,
 * qemu_bh_new, qemu_set_fd_handler, main_loop_wait and
 * qemu_cleanup_main_loop.
 *
 * Meson runs this program once per fd monitor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>

#include "aio-test.h"


/* ------------------------------------------------------------------ */

static void test_main_loop_init(void)
{
    AioContext *ctx;

    CHECK(qemu_get_aio_context() == NULL);
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    ctx = qemu_get_aio_context();
    REQUIRE(ctx != NULL);
    /* Again: success, same context. */
    CHECK_EQ(qemu_init_main_loop(NULL), 0);
    CHECK(qemu_get_aio_context() == ctx);
    CHECK(qemu_get_current_aio_context() == ctx);
}

static void test_main_loop_bh(void)
{
    int count = 0;
    QEMUBH *bh;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    bh = qemu_bh_new(count_cb, &count);
    REQUIRE(bh != NULL);
    main_loop_wait(true);               /* non-blocking: nothing to do */
    CHECK_EQ(count, 0);

    qemu_bh_schedule(bh);
    main_loop_wait(true);
    CHECK_EQ(count, 1);
    main_loop_wait(true);
    CHECK_EQ(count, 1);

    qemu_bh_schedule(bh);
    main_loop_wait(false);              /* blocking: a BH is ready */
    CHECK_EQ(count, 2);

    /* It is the main context's BH: aio_poll on that context runs it. */
    qemu_bh_schedule(bh);
    CHECK(aio_poll(qemu_get_aio_context(), false));
    CHECK_EQ(count, 3);

    qemu_bh_delete(bh);
    main_loop_wait(true);
    CHECK_EQ(count, 3);
}

static int pipe_fd;
static int pipe_reads;

static void pipe_read(void *opaque)
{
    char buf[64];

    CHECK(opaque == &pipe_fd);
    while (read(pipe_fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }
    pipe_reads++;
}

static void test_main_loop_fd_handler(void)
{
    int p[2];

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    pipe_fd = p[0];
    pipe_reads = 0;
    qemu_set_fd_handler(p[0], pipe_read, NULL, &pipe_fd);
    main_loop_wait(true);
    CHECK_EQ(pipe_reads, 0);

    REQUIRE(write(p[1], "x", 1) == 1);
    main_loop_wait(false);              /* blocking: the fd is ready */
    CHECK_EQ(pipe_reads, 1);
    main_loop_wait(true);
    CHECK_EQ(pipe_reads, 1);

    REQUIRE(write(p[1], "x", 1) == 1);
    main_loop_wait(true);
    CHECK_EQ(pipe_reads, 1 + 1);

    /* qemu_set_fd_handler is not external: disabling externals on the
     * main context does not stop it. */
    aio_disable_external(qemu_get_aio_context());
    REQUIRE(write(p[1], "x", 1) == 1);
    main_loop_wait(true);
    CHECK_EQ(pipe_reads, 3);
    aio_enable_external(qemu_get_aio_context());

    qemu_set_fd_handler(p[0], NULL, NULL, NULL);
    REQUIRE(write(p[1], "x", 1) == 1);
    main_loop_wait(true);
    CHECK_EQ(pipe_reads, 3);
    close(p[0]);
    close(p[1]);
}

static void test_main_loop_cleanup_and_reinit(void)
{
    int count = 0;
    QEMUBH *bh;

    qemu_cleanup_main_loop();
    CHECK(qemu_get_aio_context() == NULL);

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    REQUIRE(qemu_get_aio_context() != NULL);
    bh = qemu_bh_new(count_cb, &count);
    qemu_bh_schedule(bh);
    main_loop_wait(false);
    CHECK_EQ(count, 1);
    qemu_bh_delete(bh);
    qemu_cleanup_main_loop();
    CHECK(qemu_get_aio_context() == NULL);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_main_loop_init);
    RUN(test_main_loop_bh);
    RUN(test_main_loop_fd_handler);
    RUN(test_main_loop_cleanup_and_reinit);
    return test_done();
}
