/*
 * test-block-errors.c - per-request errors (-EBADF, -EINVAL for
 * misaligned O_DIRECT) mixed with good requests in one batch, with
 * callbacks and from a coroutine; flush; and cancellation of queued,
 * in-flight and plugged requests (bdrv_aio_cancel_async and
 * bdrv_aio_cancel).
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

#include "block-test.h"

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/*
 * One plugged batch mixing good requests with requests that the kernel
 * fails: each gets its own result, and the good ones are all done.
 */
static void test_err_bad_fd(void)
{
    BlkReq good[3], ro_write, wo_read, closed_write, closed_flush;
    int completed = 0, ro, wo, closed, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 64 * KiB, 18));
    ro = reopen_fd(t.fd, O_RDONLY);
    wo = reopen_fd(t.fd, O_WRONLY);
    REQUIRE(ro >= 0 && wo >= 0);
    closed = unused_fd();

    for (i = 0; i < 3; i++) {
        blk_req_init(&good[i], &completed, (uint64_t)(i + 1) * 8 * KiB,
                     4 * KiB);
        pattern_fill(good[i].buf, 4 * KiB, 19, good[i].off);
    }
    blk_req_init(&ro_write, &completed, 0, 4 * KiB);
    pattern_fill(ro_write.buf, 4 * KiB, 19, 0);
    blk_req_init(&wo_read, &completed, 0, 4 * KiB);
    blk_req_init(&closed_write, &completed, 0, 4 * KiB);
    blk_req_init(&closed_flush, &completed, 0, 0);

    aio_block_plug(t.b);
    REQUIRE(blk_req_submit(&t, &good[0], QEMU_AIO_WRITE));
    ro_write.acb = aio_block_submit(t.b, ro, 0, &ro_write.qiov,
                                    QEMU_AIO_WRITE, blk_req_cb, &ro_write);
    REQUIRE(blk_req_submit(&t, &good[1], QEMU_AIO_WRITE));
    wo_read.acb = aio_block_submit(t.b, wo, 0, &wo_read.qiov,
                                   QEMU_AIO_READ, blk_req_cb, &wo_read);
    closed_write.acb = aio_block_submit(t.b, closed, 0, &closed_write.qiov,
                                        QEMU_AIO_WRITE, blk_req_cb,
                                        &closed_write);
    closed_flush.acb = aio_block_submit(t.b, closed, 0, NULL, QEMU_AIO_FLUSH,
                                        blk_req_cb, &closed_flush);
    REQUIRE(blk_req_submit(&t, &good[2], QEMU_AIO_WRITE));
    aio_block_unplug(t.b);
    REQUIRE(ro_write.acb && wo_read.acb && closed_write.acb &&
            closed_flush.acb);

    blk_wait(t.ctx, &completed, 7);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, 7);
    CHECK_EQ(blk_check_once(good, 3, 0), 0);
    CHECK_EQ(blk_check_once(&ro_write, 1, -EBADF), 0);
    CHECK_EQ(blk_check_once(&wo_read, 1, -EBADF), 0);
    CHECK_EQ(blk_check_once(&closed_write, 1, -EBADF), 0);
    CHECK_EQ(blk_check_once(&closed_flush, 1, -EBADF), 0);
    CHECK(bytes_are(wo_read.buf, 4 * KiB, 0xAA, "buffer of a failed read"));
    for (i = 0; i < 3; i++) {
        CHECK(file_has_pattern(t.fd, good[i].off, 4 * KiB, 19));
    }
    /* The failed write left the old data. */
    CHECK(file_has_pattern(t.fd, 0, 4 * KiB, 18));


    for (i = 0; i < 3; i++) {
        blk_req_free(&good[i]);
    }
    blk_req_free(&ro_write);
    blk_req_free(&wo_read);
    blk_req_free(&closed_write);
    blk_req_free(&closed_flush);
    close(ro);
    close(wo);
    blk_teardown(&t);
}

/*
 * The same failures from coroutines: aio_block_co_submit() returns the
 * error, and the request is finished with when it returns (nothing is
 * delivered later to the coroutine, whose stack held the request). Run
 * near the end: a stale delivery aborts the program.
 */
static void test_err_bad_fd_co(void)
{
    uint8_t buf[SECTOR] = { 0 };        /* written (to -EBADF) first */
    int ro, i;
    QEMUIOVector q;
    Blk t, bad;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 4 * KiB, 18));
    ro = reopen_fd(t.fd, O_RDONLY);
    REQUIRE(ro >= 0);
    qemu_iovec_init_buf(&q, buf, sizeof(buf));
    bad = t;
    for (i = 0; i < 3; i++) {
        bad.fd = unused_fd();
        CHECK_EQ(co_io_run(&bad, 0, &q, QEMU_AIO_READ), -EBADF);
        bad.fd = ro;
        CHECK_EQ(co_io_run(&bad, 0, &q, QEMU_AIO_WRITE), -EBADF);
        /* A good request afterwards, from a new coroutine. */
        memset(buf, 0xAA, sizeof(buf));
        CHECK_EQ(co_io_run(&t, 0, &q, QEMU_AIO_READ), 0);
        CHECK(pattern_check(buf, sizeof(buf), 18, 0));
    }
    poll_idle(t.ctx, 10);
    close(ro);
    blk_teardown(&t);
}

static void test_err_misaligned_odirect(void)
{
    const char *why = NULL, *dir;
    BlkReq good, bad_off, bad_buf, bad_len;
    uint8_t *mis = aligned_buf(2 * ALIGN);
    QEMUIOVector q;
    int completed = 0, n = 0, bits;
    Blk t;

    dir = odirect_dir(ODIRECT_OK | ODIRECT_REJECTS_OFFSET, &bits, &why);
    if (!dir) {
        free(mis);
        SKIP_CASE(why);
    }
    REQUIRE(blk_setup_in(&t, dir, O_DIRECT));
    {
        uint8_t *data = aligned_buf(16 * KiB);

        pattern_fill(data, 16 * KiB, 20, 0);
        REQUIRE(pwrite(t.fd, data, 16 * KiB, 0) == 16 * KiB);
        free(data);
    }

    blk_req_init(&good, &completed, 4 * KiB, 4 * KiB);
    blk_req_init(&bad_off, &completed, 4 * KiB + 1, 4 * KiB);
    blk_req_init(&bad_len, &completed, 0, 100);
    pattern_fill(bad_len.buf, 100, 21, 0);
    /* A misaligned buffer: same vector, one byte into an aligned one. */
    blk_req_init(&bad_buf, &completed, 0, 0);
    qemu_iovec_init_buf(&bad_buf.qiov, mis + 1, 4 * KiB);
    memset(mis, 0xAA, 2 * ALIGN);

    aio_block_plug(t.b);
    REQUIRE(blk_req_submit(&t, &bad_off, QEMU_AIO_READ));
    n++;
    REQUIRE(blk_req_submit(&t, &good, QEMU_AIO_READ));
    n++;
    REQUIRE(blk_req_submit(&t, &bad_len, QEMU_AIO_WRITE));
    n++;
    if (bits & ODIRECT_REJECTS_BUFFER) {
        REQUIRE(blk_req_submit(&t, &bad_buf, QEMU_AIO_READ));
        n++;
    } else {
        printf("#   %s accepts misaligned O_DIRECT buffers: not tested\n",
               dir);
    }
    aio_block_unplug(t.b);
    blk_wait(t.ctx, &completed, n);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, n);

    CHECK_EQ(blk_check_once(&good, 1, 0), 0);
    CHECK(pattern_check(good.buf, 4 * KiB, 20, 4 * KiB));
    CHECK_EQ(blk_check_once(&bad_off, 1, -EINVAL), 0);
    CHECK_EQ(blk_check_once(&bad_len, 1, -EINVAL), 0);
    if (bits & ODIRECT_REJECTS_BUFFER) {
        CHECK_EQ(blk_check_once(&bad_buf, 1, -EINVAL), 0);
    }
    CHECK(file_has_pattern(t.fd, 0, 16 * KiB, 20));

    /* From a coroutine. */
    qemu_iovec_init_buf(&q, good.buf, 4 * KiB);
    CHECK_EQ(co_io_run(&t, 512 + 3, &q, QEMU_AIO_READ), -EINVAL);
    CHECK_EQ(co_io_run(&t, 8 * KiB, &q, QEMU_AIO_READ), 0);
    CHECK(pattern_check(good.buf, 4 * KiB, 20, 8 * KiB));

    blk_req_free(&good);
    blk_req_free(&bad_off);
    blk_req_free(&bad_len);
    qemu_iovec_destroy(&bad_buf.qiov);
    free(bad_buf.buf);
    free(mis);
    blk_teardown(&t);
}

static void test_flush(void)
{
    BlkReq w[4], fl[2];
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    for (i = 0; i < 4; i++) {
        blk_req_init(&w[i], &completed, (uint64_t)i * 16 * KiB, 16 * KiB);
        pattern_fill(w[i].buf, 16 * KiB, 22, w[i].off);
        REQUIRE(blk_req_submit(&t, &w[i], QEMU_AIO_WRITE));
    }
    blk_wait(t.ctx, &completed, 4);
    CHECK_EQ(blk_check_once(w, 4, 0), 0);

    /* A flush without a vector, and one whose vector and offset are
     * ignored. */
    blk_req_init(&fl[0], &completed, 0, 0);
    blk_req_init(&fl[1], &completed, 0, 4 * KiB);
    fl[0].acb = aio_block_submit(t.b, t.fd, 0, NULL, QEMU_AIO_FLUSH,
                                 blk_req_cb, &fl[0]);
    fl[1].acb = aio_block_submit(t.b, t.fd, 12345, &fl[1].qiov,
                                 QEMU_AIO_FLUSH, blk_req_cb, &fl[1]);
    REQUIRE(fl[0].acb && fl[1].acb);
    CHECK_EQ(fl[0].runs + fl[1].runs, 0);
    blk_wait(t.ctx, &completed, 6);
    poll_idle(t.ctx, 5);
    CHECK_EQ(completed, 6);
    CHECK_EQ(blk_check_once(fl, 2, 0), 0);
    CHECK(bytes_are(fl[1].buf, 4 * KiB, 0xAA, "vector of a flush"));
    CHECK_EQ(file_size(t.fd), 64 * KiB);
    CHECK(file_has_pattern(t.fd, 0, 64 * KiB, 22));

    CHECK_EQ(co_io_run(&t, 0, NULL, QEMU_AIO_FLUSH), 0);

    for (i = 0; i < 4; i++) {
        blk_req_free(&w[i]);
    }
    blk_req_free(&fl[0]);
    blk_req_free(&fl[1]);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                        */

#define NCANCEL 8

/* A request cancelled while plugged never runs: -ECANCELED; the others
 * complete normally; each exactly once, and none inside the cancel. */
static void test_cancel_queued(void)
{
    BlkReq reqs[NCANCEL];
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    aio_block_plug(t.b);
    for (i = 0; i < NCANCEL; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4 * KiB, 4 * KiB);
        pattern_fill(reqs[i].buf, 4 * KiB, 23, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    bdrv_aio_cancel_async(reqs[3].acb);
    CHECK_EQ(completed, 0);     /* not from inside the cancel call */
    aio_block_unplug(t.b);
    blk_wait(t.ctx, &completed, NCANCEL);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, NCANCEL);
    for (i = 0; i < NCANCEL; i++) {
        CHECK_EQ(blk_check_once(&reqs[i], 1, i == 3 ? -ECANCELED : 0), 0);
        if (i == 3) {
            CHECK(file_is_zero(t.fd, reqs[i].off, 4 * KiB));
        } else {
            CHECK(file_has_pattern(t.fd, reqs[i].off, 4 * KiB, 23));
        }
    }
    for (i = 0; i < NCANCEL; i++) {
        blk_req_free(&reqs[i]);
    }
    blk_teardown(&t);
}

/*
 * Cancelling requests that may or may not have started (300 submitted,
 * the last 20 cancelled at once): each completes exactly once, with 0 and
 * its data written, or with -ECANCELED and nothing written.
 */
#define NCANCEL_MANY 300

static void test_cancel_in_flight(void)
{
    BlkReq *reqs = calloc(NCANCEL_MANY, sizeof(*reqs));
    int completed = 0, cancelled = 0, i;
    Blk t;

    REQUIRE(reqs);
    REQUIRE(blk_setup(&t));
    for (i = 0; i < NCANCEL_MANY; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4 * KiB, 4 * KiB);
        pattern_fill(reqs[i].buf, 4 * KiB, 24, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    for (i = NCANCEL_MANY - 20; i < NCANCEL_MANY; i++) {
        bdrv_aio_cancel_async(reqs[i].acb);
    }
    CHECK_EQ(completed, 0);
    blk_wait(t.ctx, &completed, NCANCEL_MANY);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, NCANCEL_MANY);
    for (i = 0; i < NCANCEL_MANY; i++) {
        BlkReq *r = &reqs[i];

        CHECK_EQ(r->runs, 1);
        if (r->ret == -ECANCELED) {
            cancelled++;
            CHECK(i >= NCANCEL_MANY - 20);
            CHECK(file_is_zero(t.fd, r->off, 4 * KiB));
        } else {
            CHECK_EQ(r->ret, 0);
            CHECK(file_has_pattern(t.fd, r->off, 4 * KiB, 24));
        }
    }
    printf("#   %d of 20 cancelled before they started\n", cancelled);
    for (i = 0; i < NCANCEL_MANY; i++) {
        blk_req_free(&reqs[i]);
    }
    free(reqs);
    blk_teardown(&t);
}

/* bdrv_aio_cancel() of a request held by a plug returns once its callback
 * has run with -ECANCELED; the others wait for the unplug. */
static void test_cancel_sync_plugged(void)
{
    BlkReq reqs[4];
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    aio_block_plug(t.b);
    for (i = 0; i < 4; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4 * KiB, 4 * KiB);
        pattern_fill(reqs[i].buf, 4 * KiB, 25, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    bdrv_aio_cancel(reqs[1].acb);
    CHECK_EQ(blk_check_once(&reqs[1], 1, -ECANCELED), 0);
    CHECK_EQ(completed, 1);
    CHECK_EQ(file_size(t.fd), 0);
    aio_block_unplug(t.b);
    blk_wait(t.ctx, &completed, 4);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, 4);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(blk_check_once(&reqs[i], 1, i == 1 ? -ECANCELED : 0), 0);
    }
    CHECK(file_is_zero(t.fd, 4 * KiB, 4 * KiB));
    CHECK(file_has_pattern(t.fd, 8 * KiB, 8 * KiB, 25));
    for (i = 0; i < 4; i++) {
        blk_req_free(&reqs[i]);
    }
    blk_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_err_bad_fd);
    RUN(test_err_misaligned_odirect);
    RUN(test_flush);
    RUN(test_cancel_queued);
    RUN(test_cancel_in_flight);
    RUN(test_cancel_sync_plugged);
    RUN(test_err_bad_fd_co);
    return test_done();
}
