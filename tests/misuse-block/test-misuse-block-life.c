/*
 * test-misuse-block-life.c - a block I/O state used out of order: before
 * it is attached, after its context ended, detached or freed with work
 * outstanding, attached twice, unplugged too often. On the engine
 * AIOLOOP_TEST_ENGINE names (run once per engine). The abort cases run
 * in a child (tests/util/death-test.h) and check the message.
 *
 * Documented outcomes (include/aioloop/raw-aio.h and block-backend.h):
 *
 *   case                                        outcome
 *   submit on a state never attached           NULL; a coroutine gets
 *                                               -EINVAL; nothing runs
 *   submit after the context ended             the same
 *   detach with requests in flight             each completes once,
 *                                               before detach returns
 *   detach with plugged requests               they are submitted and
 *                                               complete; the plug count
 *                                               is kept for the unplug
 *   detach twice; cleanup(NULL); free(NULL)    nothing happens
 *   context unref with requests in flight,     they complete, the state
 *   then cleanup                               is detached, cleanup works
 *   cleanup / aio_block_backend_free while     abort: "<fn>: <state> (0x..)
 *   attached                                   is still attached ..."
 *   attach while attached                      abort: "... is attached to
 *                                               a context already ..."
 *   attach to a NULL context                   abort: "... NULL context"
 *   detach from another context                abort: "... is attached to
 *                                               another context"
 *   unplug without a plug                      abort: "... unplugged
 *                                               more often than plugged"
 *   attach from a second thread that cannot    io_uring (ring bound to
 *   open any fd (RLIMIT_NOFILE 0)              the first thread): each
 *                                               request -EMFILE; others:
 *                                               requests succeed; detach
 *                                               and cleanup work, and an
 *                                               attach where fds can be
 *                                               opened works again
 *   detach from its own completion callback    Linux AIO, io_uring:
 *                                               abort ("... from inside
 *                                               its own completion
 *                                               callback"); threads: the
 *                                               state is detached there
 *
 * SPDX-License-Identifier: MIT
 */
#include "block/engine-api.h"
#include "util/death-test.h"

#define KiB 1024

/* The names the abort messages use for this engine's state. */
static const char *state_what(void)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return "an io_uring state";
    case AIO_ENGINE_LINUX_AIO:
        return "a Linux AIO state";
    default:
        return "a thread I/O state";
    }
}

static const char *fn_prefix(void)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return "luring_";
    case AIO_ENGINE_LINUX_AIO:
        return "laio_";
    default:
        return "taio_";
    }
}

/* Runs @fn in a child; checks that it aborted with a message naming the
 * state, the function @fn_name (NULL: the engine's prefix) and @what. */
static void check_aborts(void (*fn)(void *), const char *fn_name,
                         const char *what)
{
    DeathResult res;

    if (!death_run(fn, NULL, &res)) {
        CHECK(0);
        return;
    }
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, state_what()) != NULL);
    CHECK(strstr(res.err, fn_name ? fn_name : fn_prefix()) != NULL);
    CHECK(strstr(res.err, what) != NULL);
    printf("#   stderr: %s", res.err);
}

/* ------------------------------------------------------------------ */

static void test_submit_never_attached(void)
{
    uint8_t buf[SECTOR] = { 0 };
    QEMUIOVector q;
    Eng e;
    Blk t;

    REQUIRE(blk_setup(&t));
    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    eng_new(&e, NULL);
    CHECK_EQ(eng_rw(&e, t.fd, 0, &q, 1, QEMU_AIO_WRITE), RES_NULL);
    CHECK_EQ(eng_rw(&e, t.fd, 0, NULL, 0, QEMU_AIO_FLUSH), RES_NULL);
    CHECK_EQ(eng_co_rw(&e, t.ctx, t.fd, 0, &q, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(file_size(t.fd), 0);
    eng_free(&e);
    blk_teardown(&t);
}

static void test_submit_after_context_ended(void)
{
    uint8_t buf[SECTOR] = { 0 };
    AioContext *gone = new_ctx();
    QEMUIOVector q;
    Eng e;
    Blk t;

    REQUIRE(blk_setup(&t));
    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    eng_new(&e, gone);
    aio_context_unref(gone);
    e.ctx = NULL;
    CHECK_EQ(eng_rw(&e, t.fd, 0, &q, 1, QEMU_AIO_WRITE), RES_NULL);
    CHECK_EQ(eng_co_rw(&e, t.ctx, t.fd, 0, &q, QEMU_AIO_READ), -EINVAL);
    CHECK_EQ(file_size(t.fd), 0);
    eng_detach(&e, gone);           /* its context ended: nothing */
    eng_free(&e);
    blk_teardown(&t);
}

/* @n reads of the file by @e, one sector each, then a detach. */
static void detach_with_reads(bool plugged)
{
    enum { N = 300 };
    static uint8_t bufs[N][SECTOR];
    static QEMUIOVector qs[N];
    static EngRes res[N];
    Eng e;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, N * SECTOR, 9));
    eng_new(&e, t.ctx);
    if (plugged) {
        eng_plug(&e, true);
    }
    for (int i = 0; i < N; i++) {
        qemu_iovec_init_buf(&qs[i], bufs[i], SECTOR);
        res[i] = (EngRes){ 0, 1 };
        REQUIRE(eng_submit(&e, t.fd, i, &qs[i], 1, eng_res_cb, &res[i],
                           QEMU_AIO_READ));
    }
    eng_detach(&e, t.ctx);
    e.ctx = NULL;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(res[i].runs, 1);
        CHECK_EQ(res[i].ret, 0);
        CHECK(pattern_check(bufs[i], SECTOR, 9, (uint64_t)i * SECTOR));
    }
    /* Nothing more arrives, and the state works on another attach. */
    poll_idle(t.ctx, 5);
    eng_attach(&e, t.ctx);
    if (plugged) {
        eng_plug(&e, false);    /* the plug count was kept */
    }
    CHECK_EQ(eng_rw(&e, t.fd, 0, &qs[0], 1, QEMU_AIO_READ), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(res[i].runs, 1);
    }
    eng_free(&e);
    blk_teardown(&t);
}

static void test_detach_with_requests_in_flight(void)
{
    detach_with_reads(false);
}

static void test_detach_with_plugged_requests(void)
{
    detach_with_reads(true);
}

static void test_double_detach_and_null_frees(void)
{
    Eng e;
    Blk t;

    REQUIRE(blk_setup(&t));
    eng_new(&e, t.ctx);
    eng_detach(&e, t.ctx);
    eng_detach(&e, t.ctx);
    e.ctx = NULL;
    eng_free(&e);
    eng_cleanup(NULL);
    aio_block_backend_free(NULL);
    blk_teardown(&t);
}

static void test_context_end_then_cleanup(void)
{
    uint8_t buf[4 * KiB];
    QEMUIOVector q;
    AioContext *ctx = new_ctx();
    EngRes r = { 0, 1 };
    int fd = tmp_file_in(test_dir(), 0);
    Eng e;

    REQUIRE(fd >= 0);
    REQUIRE(file_fill(fd, 0, sizeof(buf), 4));
    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    eng_new(&e, ctx);
    REQUIRE(eng_submit(&e, fd, 0, &q, 8, eng_res_cb, &r, QEMU_AIO_READ));
    aio_context_unref(ctx);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.ret, 0);
    CHECK(pattern_check(buf, sizeof(buf), 4, 0));
    e.ctx = NULL;
    eng_free(&e);
    close(fd);
}

/* ---- aborts ------------------------------------------------------------ */

static void die_cleanup_attached(void *opaque)
{
    Eng e;

    eng_new(&e, new_ctx());
    eng_cleanup(e.s);
}

static void test_cleanup_while_attached_aborts(void)
{
    check_aborts(die_cleanup_attached, NULL, "is still attached");
}

static void die_backend_free_attached(void *opaque)
{
    AioBlockBackend *b = aio_block_backend_new(blk_engine, &error_abort);

    aio_block_backend_attach(b, new_ctx());
    aio_block_backend_free(b);
}

static void test_backend_free_while_attached_aborts(void)
{
    check_aborts(die_backend_free_attached, "aio_block_backend_free",
                 "is still attached");
}

static void die_attach_twice(void *opaque)
{
    Eng e;

    eng_new(&e, new_ctx());
    eng_attach(&e, new_ctx());
}

static void test_attach_twice_aborts(void)
{
    check_aborts(die_attach_twice, NULL, "attached to a context already");
}

static void die_attach_null(void *opaque)
{
    Eng e;

    eng_new(&e, NULL);
    eng_attach(&e, NULL);
}

static void test_attach_null_context_aborts(void)
{
    check_aborts(die_attach_null, NULL, "NULL context");
}

static void die_detach_other(void *opaque)
{
    Eng e;

    eng_new(&e, new_ctx());
    eng_detach(&e, new_ctx());
}

static void test_detach_from_other_context_aborts(void)
{
    check_aborts(die_detach_other, NULL, "attached to another context");
}

static void die_unplug(void *opaque)
{
    Eng e;

    eng_new(&e, new_ctx());
    eng_plug(&e, true);
    eng_plug(&e, false);
    eng_plug(&e, false);
}

static void die_backend_unplug(void *opaque)
{
    AioBlockBackend *b = aio_block_backend_new(blk_engine, &error_abort);

    aio_block_unplug(b);
}

static void test_unplug_without_plug_aborts(void)
{
    check_aborts(die_unplug, NULL, "unplugged more often than plugged");
    check_aborts(die_backend_unplug, "aio_block_unplug",
                 "unplugged more often than plugged");
}

/* A completion callback that detaches its own state. */
typedef struct SelfDetach {
    Eng *e;
    AioContext *ctx;
    int runs;
    int ret;
} SelfDetach;

static void self_detach_cb(void *opaque, int ret)
{
    SelfDetach *d = opaque;

    d->runs++;
    d->ret = ret;
    eng_detach(d->e, d->ctx);
}

static void self_detach_run(void *opaque)
{
    uint8_t buf[SECTOR];
    QEMUIOVector q;
    Eng e;
    Blk t;
    SelfDetach d = { .e = &e };

    if (!blk_setup(&t) || !file_fill(t.fd, 0, SECTOR, 5)) {
        _exit(3);
    }
    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    eng_new(&e, t.ctx);
    d.ctx = t.ctx;
    if (!eng_submit(&e, t.fd, 0, &q, 1, self_detach_cb, &d, QEMU_AIO_READ)) {
        _exit(4);
    }
    while (!d.runs) {
        aio_poll(t.ctx, true);
    }
    /* Only the thread engine gets here. */
    e.ctx = NULL;
    if (d.ret != 0 || !pattern_check(buf, SECTOR, 5, 0)) {
        _exit(5);
    }
    eng_free(&e);               /* detached: no abort */
    blk_teardown(&t);
}

static void test_detach_from_own_callback(void)
{
    DeathResult res;

    if (blk_engine != AIO_ENGINE_THREADS) {
        check_aborts(self_detach_run, NULL,
                     "from inside its own completion callback");
        return;
    }
    REQUIRE(death_run(self_detach_run, NULL, &res));
    CHECK(exited_with(&res, 0));
    if (res.err[0]) {
        printf("#   stderr: %s", res.err);
    }
}

/* Attached again from a second thread that cannot open a single fd
 * (RLIMIT_NOFILE 0). io_uring binds its ring to the first thread that
 * attaches it (DEFER_TASKRUN kernels) and must make a new ring for
 * another: when it cannot, each request fails with that error, and
 * detach and cleanup still work. The other engines need no new fd. */
typedef struct Rebind {
    Eng *e;
    int fd;
    int ret_cb, ret_co;
} Rebind;

static void *rebind_thread(void *opaque)
{
    Rebind *rb = opaque;
    AioContext *ctx = new_ctx();        /* its fds first */
    struct rlimit old, none = { 0, 0 };
    uint8_t buf[SECTOR];
    QEMUIOVector q;

    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    getrlimit(RLIMIT_NOFILE, &old);
    none.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_NOFILE, &none);
    eng_attach(rb->e, ctx);
    rb->ret_cb = eng_rw(rb->e, rb->fd, 0, &q, 1, QEMU_AIO_READ);
    rb->ret_co = eng_co_rw(rb->e, ctx, rb->fd, 0, &q, QEMU_AIO_READ);
    eng_detach(rb->e, ctx);
    setrlimit(RLIMIT_NOFILE, &old);
    aio_context_unref(ctx);
    return NULL;
}

static void test_attach_in_thread_without_fds(void)
{
    Rebind rb = { 0 };
    QemuThread th;
    Eng e;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, SECTOR, 8));
    eng_new(&e, t.ctx);
    {
        uint8_t buf[SECTOR];
        QEMUIOVector q;

        qemu_iovec_init_buf(&q, buf, sizeof(buf));
        CHECK_EQ(eng_rw(&e, t.fd, 0, &q, 1, QEMU_AIO_READ), 0);
    }
    eng_detach(&e, t.ctx);
    rb.e = &e;
    rb.fd = t.fd;
    start_thread(&th, "rebind", rebind_thread, &rb);
    qemu_thread_join(&th);
    printf("#   from the other thread: %d (callback), %d (coroutine)\n",
           rb.ret_cb, rb.ret_co);
    if (blk_engine == AIO_ENGINE_IO_URING && rb.ret_cb != 0) {
        CHECK_EQ(rb.ret_cb, -EMFILE);   /* the ring could not be re-made */
        CHECK_EQ(rb.ret_co, -EMFILE);
    } else {
        CHECK_EQ(rb.ret_cb, 0);
        CHECK_EQ(rb.ret_co, 0);
    }
    /* Attached where fds can be opened, it works again. */
    eng_attach(&e, t.ctx);
    {
        uint8_t buf[SECTOR];
        QEMUIOVector q;

        qemu_iovec_init_buf(&q, buf, sizeof(buf));
        CHECK_EQ(eng_rw(&e, t.fd, 0, &q, 1, QEMU_AIO_READ), 0);
        CHECK(pattern_check(buf, SECTOR, 8, 0));
        CHECK_EQ(eng_co_rw(&e, t.ctx, t.fd, 0, &q, QEMU_AIO_READ), 0);
    }
    eng_free(&e);
    blk_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_submit_never_attached);
    RUN(test_submit_after_context_ended);
    RUN(test_detach_with_requests_in_flight);
    RUN(test_detach_with_plugged_requests);
    RUN(test_double_detach_and_null_frees);
    RUN(test_context_end_then_cleanup);
    RUN(test_cleanup_while_attached_aborts);
    RUN(test_backend_free_while_attached_aborts);
    RUN(test_attach_twice_aborts);
    RUN(test_attach_null_context_aborts);
    RUN(test_detach_from_other_context_aborts);
    RUN(test_unplug_without_plug_aborts);
    RUN(test_detach_from_own_callback);
    RUN(test_attach_in_thread_without_fds);
    return test_done();
}
