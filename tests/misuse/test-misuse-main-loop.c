/*
 * test-misuse-main-loop.c - the main loop and the AsyncContext stack
 * used out of order.
 *
 * Outcomes checked (main-loop.h, async-context.h, timer.h):
 *   qemu_bh_new, qemu_bh_poll,            abort: "the main loop is not
 *     qemu_set_fd_handler, main_loop_wait,   initialised (call
 *     qemu_aio_wait, timer_new before        qemu_init_main_loop()
 *     qemu_init_main_loop() or after         first)"
 *     qemu_cleanup_main_loop()
 *   qemu_get_aio_context(),                NULL, NULL, 0
 *     qemu_get_current_aio_context(),
 *     get_async_context_id() before init
 *   qemu_init_main_loop() twice            0, the same context
 *   qemu_cleanup_main_loop() twice, or     no-op
 *     without init
 *   qemu_cleanup_main_loop() from another  abort ("other than the
 *     thread                                 main-loop thread")
 *   async_context_pop() without a push     abort ("nothing to pop")
 *   async_context_push() when no context   abort naming the level and
 *     can be made for the level (fds)        the cause
 *   64 levels pushed and popped            works; the ids follow
 *   qemu_init_main_loop() with no          -EMFILE, errp set; a later
 *     descriptor left                        init succeeds
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"
#include "fd-count.h"

#define NOT_INIT "the main loop is not initialised"

static void nop_cb(void *opaque)
{
    (void)opaque;
}

static void nop_timer_cb(void *opaque)
{
    (void)opaque;
}

/* ------------------------------------------------------------------ */
/* Before qemu_init_main_loop()                                        */

enum {
    BEFORE_BH_NEW, BEFORE_BH_POLL, BEFORE_SET_FD, BEFORE_WAIT, BEFORE_AIO_WAIT,
    BEFORE_TIMER_NEW,
};

static void call_main_loop_api(int which)
{
    switch (which) {
    case BEFORE_BH_NEW:
        qemu_bh_new(nop_cb, NULL);
        break;
    case BEFORE_BH_POLL:
        qemu_bh_poll();
        break;
    case BEFORE_SET_FD:
        qemu_set_fd_handler(0, nop_cb, NULL, NULL);
        break;
    case BEFORE_WAIT:
        main_loop_wait(1);
        break;
    case BEFORE_AIO_WAIT:
        qemu_aio_wait();
        break;
    default:
        timer_new_ns(QEMU_CLOCK_REALTIME, nop_timer_cb, NULL);
        break;
    }
}

static void child_before_init(void *opaque)
{
    call_main_loop_api(*(int *)opaque);
}

static void child_after_cleanup(void *opaque)
{
    if (qemu_init_main_loop(NULL) < 0) {
        _exit(77);
    }
    qemu_cleanup_main_loop();
    call_main_loop_api(*(int *)opaque);
}

static void expect_not_init(int which, const char *func)
{
    expect_abort(child_before_init, &which, func, NOT_INIT);
}

static void test_bh_new_before_init_aborts(void)
{
    expect_not_init(BEFORE_BH_NEW, "qemu_bh_new");
}

static void test_bh_poll_before_init_aborts(void)
{
    expect_not_init(BEFORE_BH_POLL, "qemu_bh_poll");
}

static void test_set_fd_handler_before_init_aborts(void)
{
    expect_not_init(BEFORE_SET_FD, "qemu_set_fd_handler");
}

static void test_main_loop_wait_before_init_aborts(void)
{
    expect_not_init(BEFORE_WAIT, "main_loop_wait");
}

static void test_aio_wait_before_init_aborts(void)
{
    expect_not_init(BEFORE_AIO_WAIT, "qemu_aio_wait");
}

static void test_timer_new_before_init_aborts(void)
{
    expect_not_init(BEFORE_TIMER_NEW, "timer_new");
}

static void test_use_after_cleanup_aborts(void)
{
    int bh = BEFORE_BH_NEW, wait = BEFORE_WAIT;

    expect_abort(child_after_cleanup, &bh, "qemu_bh_new", NOT_INIT);
    expect_abort(child_after_cleanup, &wait, "main_loop_wait", NOT_INIT);
}

static void test_getters_before_init(void)
{
    CHECK(qemu_get_aio_context() == NULL);
    CHECK(qemu_get_current_aio_context() == NULL);
    CHECK_EQ(get_async_context_id(), 0);
}

/* ------------------------------------------------------------------ */
/* init / cleanup out of order                                         */

static void test_init_twice_same_context(void)
{
    AioContext *ctx;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    ctx = qemu_get_aio_context();
    CHECK(ctx != NULL);
    CHECK_EQ(qemu_init_main_loop(&error_abort), 0);
    CHECK(qemu_get_aio_context() == ctx);
    qemu_cleanup_main_loop();
}

static void test_cleanup_twice_is_noop(void)
{
    QEMUBH *bh;
    int runs = 0;

    qemu_cleanup_main_loop();               /* never initialised */
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    qemu_cleanup_main_loop();
    qemu_cleanup_main_loop();               /* twice */
    CHECK(qemu_get_aio_context() == NULL);
    /* And it can start again. */
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    bh = qemu_bh_new(misuse_count_cb, &runs);
    qemu_bh_schedule(bh);
    main_loop_wait(0);
    CHECK_EQ(runs, 1);
    qemu_bh_delete(bh);
    qemu_cleanup_main_loop();
}

static void *cleanup_thread(void *opaque)
{
    (void)opaque;
    qemu_cleanup_main_loop();
    return NULL;
}

static void child_cleanup_other_thread(void *opaque)
{
    QemuThread t;

    (void)opaque;
    if (qemu_init_main_loop(NULL) < 0) {
        _exit(77);
    }
    start_thread(&t, "cleaner", cleanup_thread, NULL);
    qemu_thread_join(&t);
}

static void test_cleanup_from_other_thread_aborts(void)
{
    expect_abort(child_cleanup_other_thread, NULL, "qemu_cleanup_main_loop",
                 "other than the main-loop thread");
}

/* ------------------------------------------------------------------ */
/* The AsyncContext stack                                              */

static void child_pop_without_push(void *opaque)
{
    if (qemu_init_main_loop(NULL) < 0) {
        _exit(77);
    }
    if (*(int *)opaque) {
        async_context_push();
        async_context_pop();
    }
    async_context_pop();
}

static void test_pop_without_push_aborts(void)
{
    int none = 0, balanced = 1;

    expect_abort(child_pop_without_push, &none, "async_context_pop",
                 "nothing to pop");
    expect_abort(child_pop_without_push, &balanced, "async_context_pop",
                 "nothing to pop");
}

static void child_push_without_fds(void *opaque)
{
    int lowest;

    (void)opaque;
    if (qemu_init_main_loop(NULL) < 0 || (lowest = dup(0)) < 0) {
        _exit(77);
    }
    close(lowest);
    /* Room for a few levels' descriptors, then none. */
    limit_fds((rlim_t)lowest + 5);
    for (int i = 0; i < 1000; i++) {
        async_context_push();
    }
}

static void test_push_without_fds_aborts(void)
{
    expect_abort(child_push_without_fds, NULL, "async_context_push",
                 "cannot create the context of level");
}

static void test_deep_push_pop(void)
{
    enum { DEPTH = 64 };
    int runs[DEPTH] = { 0 };
    QEMUBH *bhs[DEPTH];

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    for (int i = 0; i < DEPTH; i++) {
        async_context_push();
        CHECK_EQ(get_async_context_id(), i + 1);
        bhs[i] = qemu_bh_new(misuse_count_cb, &runs[i]);
        qemu_bh_schedule(bhs[i]);
    }
    for (int i = DEPTH - 1; i >= 0; i--) {
        async_context_pop();            /* flushes the level's BH */
        CHECK_EQ(runs[i], 1);
        CHECK_EQ(get_async_context_id(), i);
        qemu_bh_delete(bhs[i]);
    }
    qemu_cleanup_main_loop();
}

static void test_init_out_of_fds(void)
{
    int before = test_count_fds(), lowest, ret;
    Error *err = NULL;
    struct rlimit rl;

    REQUIRE(before > 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0);
    lowest = dup(0);
    REQUIRE(lowest >= 0);
    close(lowest);
    REQUIRE(limit_fds((rlim_t)lowest) == 0);
    ret = qemu_init_main_loop(&err);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK_EQ(ret, -EMFILE);
    CHECK(qemu_get_aio_context() == NULL);
    REQUIRE(err != NULL);
    printf("#   %s\n", error_get_pretty(err));
    error_free(err);
    CHECK_EQ(test_count_fds(), before);
    CHECK_EQ(qemu_init_main_loop(&error_abort), 0);
    qemu_cleanup_main_loop();
}

int main(void)
{
    TEST(test_bh_new_before_init_aborts);
    TEST(test_bh_poll_before_init_aborts);
    TEST(test_set_fd_handler_before_init_aborts);
    TEST(test_main_loop_wait_before_init_aborts);
    TEST(test_aio_wait_before_init_aborts);
    TEST(test_timer_new_before_init_aborts);
    TEST(test_use_after_cleanup_aborts);
    TEST(test_getters_before_init);
    TEST(test_init_twice_same_context);
    TEST(test_cleanup_twice_is_noop);
    TEST(test_cleanup_from_other_thread_aborts);
    TEST(test_pop_without_push_aborts);
    TEST(test_push_without_fds_aborts);
    TEST(test_deep_push_pop);
    TEST(test_init_out_of_fds);
    return test_done();
}
