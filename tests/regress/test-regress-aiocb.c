/*
 * test-regress-aiocb.c - regressions in request control blocks:
 * bdrv_aio_cancel() of an AIOCB from inside its own completion
 * callback, on the thread pool and on each block engine.
 *
 * Documented outcome checked here (include/aioloop/block-aio.h):
 * bdrv_aio_cancel() called from inside the request's own completion
 * callback, or from anything that callback calls in its thread (a nested
 * aio_poll() included), returns at once and does nothing: the request has
 * completed, and the callback runs exactly once with its real result.
 * Before the fix it polled the context for ever, waiting for the
 * reference that the running callback's caller drops afterwards: each
 * case then hangs until the harness's watchdog kills it.
 *
 * The engine cases skip, with the library's reason, where the kernel
 * refuses the engine (io_uring disabled, no Linux AIO). Meson runs this
 * program once per fd monitor (AIOLOOP_FDMON): the engines' completion
 * notifiers are fd handlers of the context.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/block-backend.h>
#include <aioloop/raw-aio.h>
#include <aioloop/thread-pool.h>
#include <fcntl.h>
#include <limits.h>

#include "regress-test.h"

#define LEN 4096

typedef struct Req {
    BlockAIOCB *acb;
    int runs;
    int ret;
    bool cancel_returned;
    /* Nested case: this callback polls until @other completes, and
     * @other's callback cancels this request. */
    AioContext *ctx;
    struct Req *other;
} Req;

static void cancel_self_cb(void *opaque, int ret)
{
    Req *r = opaque;

    r->runs++;
    r->ret = ret;
    bdrv_aio_cancel_async(r->acb);      /* harmless as well */
    bdrv_aio_cancel(r->acb);
    r->cancel_returned = true;
}

static int job_value(void *arg)
{
    return (int)(intptr_t)arg;
}

static void wait_runs(AioContext *ctx, Req *r)
{
    while (r->runs == 0) {
        aio_poll(ctx, true);
        test_progress();
    }
}

/* ------------------------------------------------------------------ */
/* The thread pool                                                     */

static void test_pool_cancel_own_aiocb_in_callback_returns(void)
{
    AioContext *ctx = new_ctx();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    Req r = { 0 };

    r.acb = thread_pool_submit_aio(pool, job_value, (void *)(intptr_t)7,
                                   cancel_self_cb, &r);
    wait_runs(ctx, &r);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.ret, 7);
    CHECK(r.cancel_returned);
    /* Nothing else is pending or runs twice. */
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(r.runs, 1);
    aio_context_unref(ctx);
}

static void cancel_other_cb(void *opaque, int ret)
{
    Req *r = opaque;

    r->runs++;
    r->ret = ret;
    /* The other request's callback is running further up this stack. */
    bdrv_aio_cancel(r->other->acb);
    r->cancel_returned = true;
}

static void poll_for_other_cb(void *opaque, int ret)
{
    Req *r = opaque;

    r->runs++;
    r->ret = ret;
    /* The second request completes inside this callback's nested loop. */
    r->other->acb = thread_pool_submit_aio(aio_get_thread_pool(r->ctx),
                                           job_value, (void *)(intptr_t)2,
                                           cancel_other_cb, r->other);
    while (r->other->runs == 0) {
        aio_poll(r->ctx, true);
        test_progress();
    }
}

/* A callback that polls a nested loop, in which a second request's
 * callback cancels the first: the first one's callback is running,
 * further up the same stack, so that cancel returns at once too. */
static void test_pool_cancel_of_aiocb_completing_up_the_stack_returns(void)
{
    AioContext *ctx = new_ctx();
    Req outer = { .ctx = ctx }, inner = { .ctx = ctx };

    outer.other = &inner;
    inner.other = &outer;
    outer.acb = thread_pool_submit_aio(aio_get_thread_pool(ctx), job_value,
                                       (void *)(intptr_t)1,
                                       poll_for_other_cb, &outer);
    wait_runs(ctx, &outer);
    CHECK_EQ(outer.runs, 1);
    CHECK_EQ(inner.runs, 1);
    CHECK_EQ(outer.ret, 1);
    CHECK_EQ(inner.ret, 2);
    CHECK(inner.cancel_returned);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* The block engines                                                   */

/* An unlinked file of LEN bytes in AIOLOOP_TEST_DIR (default "."). */
static int scratch_file(void)
{
    const char *dir = getenv("AIOLOOP_TEST_DIR");
    char path[PATH_MAX], buf[LEN];
    int fd;

    snprintf(path, sizeof(path), "%s/aioloop-regress-XXXXXX",
             dir && *dir ? dir : ".");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    unlink(path);
    memset(buf, 0x5a, sizeof(buf));
    if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void engine_cancel_own_aiocb(AioBlockEngine engine, int type)
{
    static char reason[256];
    Error *err = NULL;
    AioBlockBackend *b = aio_block_backend_new(engine, &err);
    AioContext *ctx;
    QEMUIOVector qiov;
    void *buf;
    Req r = { 0 };
    int fd;

    if (!b) {
        snprintf(reason, sizeof(reason), "%s unavailable: %s",
                 aio_block_engine_name(engine), error_get_pretty(err));
        error_free(err);
        SKIP_CASE(reason);
    }
    fd = scratch_file();
    REQUIRE(fd >= 0);
    REQUIRE(posix_memalign(&buf, 4096, LEN) == 0);
    memset(buf, 0, LEN);
    qemu_iovec_init_buf(&qiov, buf, LEN);
    ctx = new_ctx();
    aio_block_backend_attach(b, ctx);

    r.acb = aio_block_submit(b, fd, 0, &qiov, type, cancel_self_cb, &r);
    REQUIRE(r.acb);
    wait_runs(ctx, &r);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.ret, 0);
    CHECK(r.cancel_returned);
    if (type == QEMU_AIO_READ) {
        CHECK_EQ(((unsigned char *)buf)[LEN - 1], 0x5a);
    }
    while (aio_poll(ctx, false)) {
    }
    CHECK_EQ(r.runs, 1);

    aio_block_backend_detach(b, ctx);
    aio_block_backend_free(b);
    aio_context_unref(ctx);
    qemu_iovec_destroy(&qiov);
    free(buf);
    close(fd);
}

static void test_threads_engine_cancel_own_aiocb_in_callback_returns(void)
{
    engine_cancel_own_aiocb(AIO_ENGINE_THREADS, QEMU_AIO_READ);
}

static void test_linux_aio_cancel_own_aiocb_in_callback_returns(void)
{
    engine_cancel_own_aiocb(AIO_ENGINE_LINUX_AIO, QEMU_AIO_READ);
}

static void test_io_uring_cancel_own_aiocb_in_callback_returns(void)
{
    engine_cancel_own_aiocb(AIO_ENGINE_IO_URING, QEMU_AIO_READ);
}

/* A flush (no buffer) on each engine that is available, for good
 * measure: the same completion path. */
static void test_engines_cancel_own_flush_in_callback_returns(void)
{
    engine_cancel_own_aiocb(AIO_ENGINE_AUTO, QEMU_AIO_FLUSH);
}

int main(void)
{
    watchdog_install(WATCHDOG_DEADLOCK);
    RUN(test_pool_cancel_own_aiocb_in_callback_returns);
    RUN(test_pool_cancel_of_aiocb_completing_up_the_stack_returns);
    RUN(test_threads_engine_cancel_own_aiocb_in_callback_returns);
    RUN(test_linux_aio_cancel_own_aiocb_in_callback_returns);
    RUN(test_io_uring_cancel_own_aiocb_in_callback_returns);
    RUN(test_engines_cancel_own_flush_in_callback_returns);
    return test_done();
}
