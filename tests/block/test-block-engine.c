/*
 * test-block-engine.c - the engine's own API (the sector-based callbacks
 * and byte-based coroutines of laio_*, luring_*, taio_*), unknown request
 * types, the engine a backend reports, and a context freed first with
 * requests queued (plugged), in flight and done - also when its thread
 * pool existed before the backend was attached (the order in which the
 * context's last unref lets its attachments go).
 *
 * On the one engine that AIOLOOP_TEST_ENGINE names (Meson runs the
 * program once per engine). Every request records how many times its
 * callback ran, so each case checks "completed exactly once" as well as
 * the result and the data. Waits have no time bound: a request that never
 * completes is a hang, which the harness's watchdog names.
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <sys/resource.h>

#include "engine-api.h"

/* ------------------------------------------------------------------ */
/* The engine's own API (sector-based callbacks, byte-based coroutines) */

static void test_engine_api(void)
{
    static int bs_storage;      /* any address: bs is opaque */
    BlockDriverState *bs = (BlockDriverState *)&bs_storage;
    AioContext *ctx = new_ctx();
    int fd = tmp_file_in(test_dir(), 0);
    int completed = 0;
    BlkReq w, r, p[2];
    Eng e;

    REQUIRE(fd >= 0);
    eng_new(&e, ctx);
    e.bs = bs;

    /* 8 sectors at sector 3, written and read back with callbacks. */
    blk_req_init(&w, &completed, 3 * SECTOR, 8 * SECTOR);
    blk_req_init(&r, &completed, 3 * SECTOR, 8 * SECTOR);
    pattern_fill(w.buf, 8 * SECTOR, 26, w.off);
    w.acb = eng_submit(&e, fd, 3, &w.qiov, 8, blk_req_cb, &w,
                       QEMU_AIO_WRITE);
    REQUIRE(w.acb);
    CHECK(w.acb->bs == bs);     /* stored in the AIOCB as given */
    CHECK_EQ(w.runs, 0);
    blk_wait(ctx, &completed, 1);
    CHECK_EQ(blk_check_once(&w, 1, 0), 0);
    CHECK(file_has_pattern(fd, 3 * SECTOR, 8 * SECTOR, 26));
    CHECK(file_is_zero(fd, 0, 3 * SECTOR));

    r.acb = eng_submit(&e, fd, 3, &r.qiov, 8, blk_req_cb, &r,
                       QEMU_AIO_READ);
    REQUIRE(r.acb);
    blk_wait(ctx, &completed, 2);
    CHECK_EQ(blk_check_once(&r, 1, 0), 0);
    CHECK(pattern_check(r.buf, 8 * SECTOR, 26, 3 * SECTOR));

    /* Plugged pair (sectors 20 and 21), then a flush with no vector. */
    eng_plug(&e, true);
    for (int i = 0; i < 2; i++) {
        blk_req_init(&p[i], &completed, (uint64_t)(20 + i) * SECTOR, SECTOR);
        pattern_fill(p[i].buf, SECTOR, 27, p[i].off);
        p[i].acb = eng_submit(&e, fd, 20 + i, &p[i].qiov, 1, blk_req_cb,
                              &p[i], QEMU_AIO_WRITE);
        REQUIRE(p[i].acb);
    }
    poll_idle(ctx, 10);
    CHECK_EQ(completed, 2);
    eng_plug(&e, false);
    blk_wait(ctx, &completed, 4);
    CHECK_EQ(blk_check_once(p, 2, 0), 0);
    CHECK(file_has_pattern(fd, 20 * SECTOR, 2 * SECTOR, 27));

    r.runs = 0;
    r.acb = eng_submit(&e, fd, 0, NULL, 0, blk_req_cb, &r, QEMU_AIO_FLUSH);
    REQUIRE(r.acb);
    blk_wait(ctx, &completed, 5);
    CHECK_EQ(blk_check_once(&r, 1, 0), 0);

    /* The coroutine API takes a byte offset. */
    memset(r.buf, 0xAA, 8 * SECTOR);
    CHECK_EQ(eng_co_rw(&e, ctx, fd, 3 * SECTOR, &r.qiov, QEMU_AIO_READ), 0);
    CHECK(pattern_check(r.buf, 8 * SECTOR, 26, 3 * SECTOR));

    /* Unknown types: NULL from the callback API, -EINVAL otherwise. */
    CHECK(eng_submit(&e, fd, 0, &r.qiov, 8, blk_req_cb, &r, 0x4) == NULL);
    CHECK_EQ(eng_co_rw(&e, ctx, fd, 0, &r.qiov, 0x4), -EINVAL);
    poll_idle(ctx, 5);
    CHECK_EQ(completed, 5);

    eng_free(&e);
    blk_req_free(&w);
    blk_req_free(&r);
    blk_req_free(&p[0]);
    blk_req_free(&p[1]);
    close(fd);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Unknown request types and engine identity                           */

static void test_unknown_type(void)
{
    static const int types[] = { 0, 0x4, 0x10, 0x40 };
    int completed = 0;
    BlkReq r;
    size_t i;
    Blk t;

    REQUIRE(blk_setup(&t));
    blk_req_init(&r, &completed, 0, 4 * KiB);
    for (i = 0; i < ARRAY_SIZE(types); i++) {
        CHECK(aio_block_submit(t.b, t.fd, 0, &r.qiov, types[i], blk_req_cb,
                               &r) == NULL);
        CHECK_EQ(co_io_run(&t, 0, &r.qiov, types[i]), -EINVAL);
    }
    poll_idle(t.ctx, 10);
    CHECK_EQ(r.runs, 0);
    CHECK_EQ(file_size(t.fd), 0);
    blk_req_free(&r);
    blk_teardown(&t);
}

static void test_engine_identity(void)
{
    const char *name = getenv("AIOLOOP_TEST_ENGINE");
    AioBlockBackend *b = aio_block_backend_new(blk_engine, &error_abort);

    CHECK_EQ(aio_block_backend_engine(b), blk_engine);
    CHECK(blk_engine != AIO_ENGINE_AUTO);
    if (name) {
        CHECK_EQ(aio_block_engine_parse(name), blk_engine);
    }
    CHECK_EQ(aio_block_engine_parse(aio_block_engine_name(blk_engine)),
             blk_engine);
    aio_block_backend_free(b);

    /* Names, aliases and nonsense. */
    CHECK(strcmp(aio_block_engine_name(AIO_ENGINE_AUTO), "auto") == 0);
    CHECK(strcmp(aio_block_engine_name(AIO_ENGINE_IO_URING), "io_uring") == 0);
    CHECK(strcmp(aio_block_engine_name(AIO_ENGINE_LINUX_AIO),
                 "linux-aio") == 0);
    CHECK(strcmp(aio_block_engine_name(AIO_ENGINE_THREADS), "threads") == 0);
    CHECK(strcmp(aio_block_engine_name((AioBlockEngine)42), "?") == 0);
    CHECK_EQ(aio_block_engine_parse("auto"), AIO_ENGINE_AUTO);
    CHECK_EQ(aio_block_engine_parse("uring"), AIO_ENGINE_IO_URING);
    CHECK_EQ(aio_block_engine_parse("libaio"), AIO_ENGINE_LINUX_AIO);
    CHECK_EQ(aio_block_engine_parse("native"), AIO_ENGINE_LINUX_AIO);
    CHECK_EQ(aio_block_engine_parse("thread"), AIO_ENGINE_THREADS);
    CHECK_EQ(aio_block_engine_parse("io-uring-ish"), -1);
    CHECK_EQ(aio_block_engine_parse(""), -1);
    CHECK_EQ(aio_block_engine_parse(NULL), -1);
}

/* The context goes first, with requests queued (plugged), in flight and
 * completed-but-undelivered on an attached backend: its last unref
 * delivers every one exactly once and detaches the backend, which its
 * owner then detaches again (nothing happens) and frees. */
static void test_context_unref_drains_attached(void)
{
    enum { N = 40 };
    BlkReq reqs[N];
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, N * 4096, 11));
    for (i = 0; i < N; i++) {
        if (i == N / 2) {
            aio_block_plug(t.b);        /* never unplugged */
        }
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4096, 4096);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_READ));
    }
    sleep_ms(20);                       /* let some complete in the kernel */
    CHECK_EQ(completed, 0);
    aio_context_unref(t.ctx);           /* the last reference */
    CHECK_EQ(completed, N);
    CHECK_EQ(blk_check_once(reqs, N, 0), 0);
    for (i = 0; i < N; i++) {
        CHECK(pattern_check(reqs[i].buf, 4096, 11, (uint64_t)i * 4096));
        blk_req_free(&reqs[i]);
    }
    aio_block_backend_detach(t.b, t.ctx);   /* freed context: not used */
    aio_block_backend_free(t.b);
    close(t.fd);
}

/* The same with the context's thread pool created before the backend is
 * attached: its last unref drains the backend (whose requests may run on
 * that pool) before the pool goes, whatever the order in which the two
 * attached themselves. Were the pool freed first, the requests it still
 * queued would complete with -ECANCELED. */
static void test_context_unref_pool_made_first(void)
{
    enum { N = 40 };
    BlkReq reqs[N];
    int completed = 0, i;
    Blk t;

    t.fd = tmp_file_in(test_dir(), 0);
    REQUIRE(t.fd >= 0);
    t.ctx = new_ctx();
    REQUIRE(aio_get_thread_pool(t.ctx) != NULL);
    t.b = aio_block_backend_new(blk_engine, &error_abort);
    aio_block_backend_attach(t.b, t.ctx);
    REQUIRE(file_fill(t.fd, 0, N * 4096, 13));
    for (i = 0; i < N; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4096, 4096);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_READ));
    }
    CHECK_EQ(completed, 0);
    aio_context_unref(t.ctx);           /* the last reference */
    CHECK_EQ(completed, N);
    CHECK_EQ(blk_check_once(reqs, N, 0), 0);
    for (i = 0; i < N; i++) {
        CHECK(pattern_check(reqs[i].buf, 4096, 13, (uint64_t)i * 4096));
        blk_req_free(&reqs[i]);
    }
    aio_block_backend_detach(t.b, t.ctx);   /* freed context: not used */
    aio_block_backend_free(t.b);
    close(t.fd);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_engine_identity);
    RUN(test_engine_api);
    RUN(test_unknown_type);
    RUN(test_context_unref_drains_attached);
    RUN(test_context_unref_pool_made_first);
    return test_done();
}
