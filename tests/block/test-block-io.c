/*
 * test-block-io.c - the block I/O backends of raw-aio.h through the
 * AioBlockBackend front end (block-backend.h): write then read back, with
 * callbacks and from coroutines (results never delivered from inside the
 * submit call); vectored requests of 200 segments read back with another
 * segmentation, with guard bytes between segments; O_DIRECT with 4 KiB
 * aligned buffers and offsets (test dir, else /dev/shm); reads that reach
 * the end of the file (ret 0, the rest of the vector zero-filled, also
 * across segments and past a truncation); a write cut short by
 * RLIMIT_FSIZE (-ENOSPC). (Queue depth, plugging, nesting, moving:
 * test-block-queue.c; errors and cancellation: test-block-errors.c; the
 * engine's own API: test-block-engine.c.)
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
/* Write, then read back                                               */

static void test_write_read_cb(void)
{
    /* Neither the offset nor the length is sector-aligned: buffered I/O
     * takes any byte range. */
    const uint64_t off = 12345;
    const size_t len = 64 * KiB + 1000;
    int completed = 0;
    BlkReq w, r;
    Blk t;

    REQUIRE(blk_setup(&t));
    blk_req_init(&w, &completed, off, len);
    pattern_fill(w.buf, len, 1, off);
    REQUIRE(blk_req_submit(&t, &w, QEMU_AIO_WRITE));
    CHECK_EQ(w.runs, 0);        /* never from inside the submit call */
    blk_wait(t.ctx, &completed, 1);
    CHECK_EQ(w.runs, 1);
    CHECK_EQ(w.ret, 0);
    CHECK(file_has_pattern(t.fd, off, len, 1));
    CHECK_EQ(file_size(t.fd), (long long)(off + len));

    blk_req_init(&r, &completed, off, len);
    REQUIRE(blk_req_submit(&t, &r, QEMU_AIO_READ));
    CHECK_EQ(r.runs, 0);
    blk_wait(t.ctx, &completed, 2);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.ret, 0);
    CHECK(pattern_check(r.buf, len, 1, off));

    /* Nothing is delivered twice later on. */
    poll_idle(t.ctx, 10);
    CHECK_EQ(w.runs, 1);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(completed, 2);

    blk_req_free(&w);
    blk_req_free(&r);
    blk_teardown(&t);
}

/* One coroutine doing several requests in a row: write, read, flush,
 * overwrite part, read again. */
typedef struct {
    Blk *t;
    int step_ret[5];
    bool data_ok[2];
    bool done;
} CoSeq;

static void coroutine_fn co_seq_entry(void *opaque)
{
    CoSeq *s = opaque;
    const size_t len = 32 * KiB;
    uint8_t *buf = aligned_buf(len);
    QEMUIOVector q;

    qemu_iovec_init_buf(&q, buf, len);
    pattern_fill(buf, len, 2, 4096);
    s->step_ret[0] = aio_block_co_submit(s->t->b, s->t->fd, 4096, &q,
                                         QEMU_AIO_WRITE);
    memset(buf, 0xAA, len);
    s->step_ret[1] = aio_block_co_submit(s->t->b, s->t->fd, 4096, &q,
                                         QEMU_AIO_READ);
    s->data_ok[0] = pattern_check(buf, len, 2, 4096);
    s->step_ret[2] = aio_block_co_submit(s->t->b, s->t->fd, 0, NULL,
                                         QEMU_AIO_FLUSH);
    /* Overwrite the middle 8 KiB with another pattern. */
    qemu_iovec_init_buf(&q, buf, 8 * KiB);
    pattern_fill(buf, 8 * KiB, 3, 4096 + 8 * KiB);
    s->step_ret[3] = aio_block_co_submit(s->t->b, s->t->fd, 4096 + 8 * KiB,
                                         &q, QEMU_AIO_WRITE);
    qemu_iovec_init_buf(&q, buf, len);
    memset(buf, 0xAA, len);
    s->step_ret[4] = aio_block_co_submit(s->t->b, s->t->fd, 4096, &q,
                                         QEMU_AIO_READ);
    s->data_ok[1] = pattern_check(buf, 8 * KiB, 2, 4096) &&
                    pattern_check(buf + 8 * KiB, 8 * KiB, 3, 4096 + 8 * KiB) &&
                    pattern_check(buf + 16 * KiB, 16 * KiB, 2, 4096 + 16 * KiB);
    free(buf);
    s->done = true;
}

static void test_write_read_co(void)
{
    CoSeq s = { 0 };
    Blk t;
    int i;

    REQUIRE(blk_setup(&t));
    s.t = &t;
    co_start(t.ctx, co_seq_entry, &s);
    while (!s.done) {
        aio_poll(t.ctx, true);
    }
    for (i = 0; i < 5; i++) {
        CHECK_EQ(s.step_ret[i], 0);
    }
    CHECK(s.data_ok[0]);
    CHECK(s.data_ok[1]);
    CHECK(file_has_pattern(t.fd, 4096 + 8 * KiB, 8 * KiB, 3));
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Vectored requests of many segments                                  */

#define NSEG 200
#define GAP 16                  /* guard bytes between segments */
#define GUARD 0x5A

/* Segment @i's length in the write (@alt false) or the read vector. */
static size_t seg_len(int i, bool alt)
{
    int k = alt ? NSEG - 1 - i : i;

    return 1 + (size_t)((k * 7919) % 3000);
}

/*
 * Builds in @q the NSEG segments of one segmentation over @mem, with GAP
 * guard bytes (GUARD) before each segment. Returns the vector's size.
 */
static size_t build_vector(QEMUIOVector *q, uint8_t *mem, bool alt)
{
    size_t pos = 0;
    int i;

    qemu_iovec_init(q, NSEG);
    for (i = 0; i < NSEG; i++) {
        memset(mem + pos, GUARD, GAP);
        pos += GAP;
        qemu_iovec_add(q, mem + pos, seg_len(i, alt));
        pos += seg_len(i, alt);
    }
    memset(mem + pos, GUARD, GAP);
    return q->size;
}

/* Whether the segments of @q hold pattern @seed for file offset @off and
 * every guard byte of @mem is intact. */
static bool vector_check(QEMUIOVector *q, uint8_t *mem, uint32_t seed,
                         uint64_t off)
{
    uint64_t pos = off;
    int i;

    for (i = 0; i < q->niov; i++) {
        uint8_t *guard = (uint8_t *)q->iov[i].iov_base - GAP;

        if (!bytes_are(guard, GAP, GUARD, "guard before a segment") ||
            !pattern_check(q->iov[i].iov_base, q->iov[i].iov_len, seed, pos)) {
            printf("#   (segment %d)\n", i);
            return false;
        }
        pos += q->iov[i].iov_len;
    }
    return bytes_are(mem + (pos - off) + (size_t)q->niov * GAP, GAP, GUARD,
                     "guard after the last segment");
}

static void vectored(bool use_co)
{
    const uint64_t off = 3 * SECTOR + 7;
    size_t cap = (size_t)NSEG * (3000 + GAP) + GAP;
    uint8_t *wmem = aligned_buf(cap), *rmem = aligned_buf(cap);
    QEMUIOVector wq, rq;
    size_t size;
    int completed = 0;
    BlkReq w, r;
    Blk t;

    REQUIRE(blk_setup(&t));
    size = build_vector(&wq, wmem, false);
    REQUIRE(build_vector(&rq, rmem, true) == size);
    /* Fill the write segments with the pattern of their file offsets. */
    {
        uint64_t pos = off;
        for (int i = 0; i < wq.niov; i++) {
            pattern_fill(wq.iov[i].iov_base, wq.iov[i].iov_len, 4, pos);
            pos += wq.iov[i].iov_len;
        }
    }
    for (int i = 0; i < rq.niov; i++) {
        memset(rq.iov[i].iov_base, 0xAA, rq.iov[i].iov_len);
    }

    if (use_co) {
        CHECK_EQ(co_io_run(&t, off, &wq, QEMU_AIO_WRITE), 0);
        CHECK(file_has_pattern(t.fd, off, size, 4));
        CHECK_EQ(co_io_run(&t, off, &rq, QEMU_AIO_READ), 0);
    } else {
        /* BlkReq with an external vector: only the record is used. */
        blk_req_init(&w, &completed, off, 0);
        blk_req_init(&r, &completed, off, 0);
        w.acb = aio_block_submit(t.b, t.fd, off, &wq, QEMU_AIO_WRITE,
                                 blk_req_cb, &w);
        REQUIRE(w.acb);
        blk_wait(t.ctx, &completed, 1);
        CHECK_EQ(blk_check_once(&w, 1, 0), 0);
        CHECK(file_has_pattern(t.fd, off, size, 4));
        r.acb = aio_block_submit(t.b, t.fd, off, &rq, QEMU_AIO_READ,
                                 blk_req_cb, &r);
        REQUIRE(r.acb);
        blk_wait(t.ctx, &completed, 2);
        CHECK_EQ(blk_check_once(&r, 1, 0), 0);
        blk_req_free(&w);
        blk_req_free(&r);
    }
    CHECK(vector_check(&rq, rmem, 4, off));
    printf("#   %d segments, %zu bytes\n", rq.niov, size);

    qemu_iovec_destroy(&wq);
    qemu_iovec_destroy(&rq);
    free(wmem);
    free(rmem);
    blk_teardown(&t);
}

static void test_vectored_cb(void) { vectored(false); }
static void test_vectored_co(void) { vectored(true); }

/* ------------------------------------------------------------------ */
/* O_DIRECT                                                            */

#define DIO_REQS 16

static void test_odirect_aligned(void)
{
    const char *why = NULL, *dir;
    uint8_t *seg[2 * DIO_REQS];
    BlkReq w[DIO_REQS];
    QEMUIOVector rq;
    int completed = 0, bits, i;
    Blk t;

    dir = odirect_dir(ODIRECT_OK, &bits, &why);
    if (!dir) {
        SKIP_CASE(why);
    }
    REQUIRE(blk_setup_in(&t, dir, O_DIRECT));

    /* 16 writes of 8 KiB, each from two separate aligned 4 KiB buffers,
     * at 8 KiB-aligned offsets, submitted together. */
    for (i = 0; i < DIO_REQS; i++) {
        uint64_t off = (uint64_t)i * 8 * KiB;

        blk_req_init(&w[i], &completed, off, 0);
        qemu_iovec_init(&w[i].qiov, 2);
        seg[2 * i] = aligned_buf(4 * KiB);
        seg[2 * i + 1] = aligned_buf(4 * KiB);
        pattern_fill(seg[2 * i], 4 * KiB, 5, off);
        pattern_fill(seg[2 * i + 1], 4 * KiB, 5, off + 4 * KiB);
        qemu_iovec_add(&w[i].qiov, seg[2 * i], 4 * KiB);
        qemu_iovec_add(&w[i].qiov, seg[2 * i + 1], 4 * KiB);
        REQUIRE(blk_req_submit(&t, &w[i], QEMU_AIO_WRITE));
    }
    blk_wait(t.ctx, &completed, DIO_REQS);
    CHECK_EQ(blk_check_once(w, DIO_REQS, 0), 0);
    CHECK(file_has_pattern(t.fd, 0, DIO_REQS * 8 * KiB, 5));

    /* Read it all back from a coroutine in one 32-segment vector. */
    qemu_iovec_init(&rq, 2 * DIO_REQS);
    for (i = 0; i < 2 * DIO_REQS; i++) {
        memset(seg[i], 0xAA, 4 * KiB);
        qemu_iovec_add(&rq, seg[i], 4 * KiB);
    }
    CHECK_EQ(co_io_run(&t, 0, &rq, QEMU_AIO_READ), 0);
    for (i = 0; i < 2 * DIO_REQS; i++) {
        CHECK(pattern_check(seg[i], 4 * KiB, 5, (uint64_t)i * 4 * KiB));
    }
    qemu_iovec_destroy(&rq);
    for (i = 0; i < DIO_REQS; i++) {
        blk_req_free(&w[i]);
        free(seg[2 * i]);
        free(seg[2 * i + 1]);
    }
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Reads at and past the end of the file                               */

/* One read of [off, off + sum of @lens) into @nseg buffers prefilled
 * with 0xAA, with a callback (@use_co false) or from a coroutine.
 * Returns the result; the data is left in @bufs. */
static int read_segments(Blk *t, bool use_co, uint64_t off, uint8_t **bufs,
                         const size_t *lens, int nseg)
{
    QEMUIOVector q;
    int completed = 0, ret, i;
    BlkReq r;

    qemu_iovec_init(&q, nseg);
    for (i = 0; i < nseg; i++) {
        memset(bufs[i], 0xAA, lens[i]);
        qemu_iovec_add(&q, bufs[i], lens[i]);
    }
    if (use_co) {
        ret = co_io_run(t, off, &q, QEMU_AIO_READ);
    } else {
        blk_req_init(&r, &completed, off, 0);
        r.acb = aio_block_submit(t->b, t->fd, off, &q, QEMU_AIO_READ,
                                 blk_req_cb, &r);
        if (!r.acb) {
            printf("#   aio_block_submit returned NULL\n");
            ret = 1;
        } else {
            blk_wait(t->ctx, &completed, 1);
            poll_idle(t->ctx, 2);
            ret = r.runs == 1 ? r.ret : 1000 + r.runs;
        }
        blk_req_free(&r);
    }
    qemu_iovec_destroy(&q);
    return ret;
}

static void short_read_eof(bool use_co)
{
    uint8_t *b[3] = { aligned_buf(4096), aligned_buf(4096), aligned_buf(4096) };
    size_t one[1] = { 4096 };
    size_t three[3] = { 700, 700, 2696 };   /* EOF inside the 2nd */
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, 1000, 6));

    /* 4096 bytes at 0 of a 1000-byte file. */
    CHECK_EQ(read_segments(&t, use_co, 0, b, one, 1), 0);
    CHECK(pattern_check(b[0], 1000, 6, 0));
    CHECK(zero_check(b[0] + 1000, 4096 - 1000));

    /* The same over three segments: the fill crosses segments. */
    CHECK_EQ(read_segments(&t, use_co, 0, b, three, 3), 0);
    CHECK(pattern_check(b[0], 700, 6, 0));
    CHECK(pattern_check(b[1], 300, 6, 700));
    CHECK(zero_check(b[1] + 300, 400));
    CHECK(zero_check(b[2], 2696));

    /* Starting exactly at the end, and entirely past it. */
    CHECK_EQ(read_segments(&t, use_co, 1000, b, one, 1), 0);
    CHECK(zero_check(b[0], 4096));
    CHECK_EQ(read_segments(&t, use_co, 8192, b, one, 1), 0);
    CHECK(zero_check(b[0], 4096));
    CHECK_EQ(read_segments(&t, use_co, 1ull << 40, b, three, 3), 0);
    CHECK(zero_check(b[0], 700));
    CHECK(zero_check(b[1], 700));
    CHECK(zero_check(b[2], 2696));

    /* Reads never change the file. */
    CHECK_EQ(file_size(t.fd), 1000);
    for (int i = 0; i < 3; i++) {
        free(b[i]);
    }
    blk_teardown(&t);
}

static void test_short_read_eof_cb(void) { short_read_eof(false); }
static void test_short_read_eof_co(void) { short_read_eof(true); }

static void test_read_past_truncate(void)
{
    uint8_t *b[1] = { aligned_buf(16 * KiB) };
    size_t four[1] = { 4 * KiB }, sixteen[1] = { 16 * KiB };
    int completed = 0;
    BlkReq w;
    Blk t;

    REQUIRE(blk_setup(&t));
    blk_req_init(&w, &completed, 0, 64 * KiB);
    pattern_fill(w.buf, 64 * KiB, 7, 0);
    REQUIRE(blk_req_submit(&t, &w, QEMU_AIO_WRITE));
    blk_wait(t.ctx, &completed, 1);
    CHECK_EQ(blk_check_once(&w, 1, 0), 0);
    REQUIRE(ftruncate(t.fd, 8 * KiB) == 0);

    /* Wholly past the new end: the old data must not come back. */
    CHECK_EQ(read_segments(&t, false, 32 * KiB, b, four, 1), 0);
    CHECK(zero_check(b[0], 4 * KiB));
    CHECK_EQ(read_segments(&t, true, 32 * KiB, b, four, 1), 0);
    CHECK(zero_check(b[0], 4 * KiB));

    /* Straddling it: 4 KiB of data, then zeros. */
    CHECK_EQ(read_segments(&t, false, 4 * KiB, b, sixteen, 1), 0);
    CHECK(pattern_check(b[0], 4 * KiB, 7, 4 * KiB));
    CHECK(zero_check(b[0] + 4 * KiB, 12 * KiB));
    CHECK_EQ(read_segments(&t, true, 4 * KiB, b, sixteen, 1), 0);
    CHECK(pattern_check(b[0], 4 * KiB, 7, 4 * KiB));
    CHECK(zero_check(b[0] + 4 * KiB, 12 * KiB));

    blk_req_free(&w);
    free(b[0]);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* A write cut short: -ENOSPC                                          */

/*
 * RLIMIT_FSIZE stops writes at LIMIT; a 16 KiB write 4 KiB before it
 * transfers 4 KiB only. The limit is far above any log file this
 * program's output might go to.
 */
#define FSIZE_LIMIT (64ll << 20)

static void test_short_write_enospc(void)
{
    struct rlimit old, lim;
    void (*old_sig)(int);
    int completed = 0, ret;
    BlkReq w;
    Blk t;

    REQUIRE(blk_setup(&t));
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < (rlim_t)FSIZE_LIMIT) {
        blk_teardown(&t);
        SKIP_CASE("RLIMIT_FSIZE already below 64 MiB");
    }
    lim = old;
    lim.rlim_cur = FSIZE_LIMIT;
    old_sig = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);

    blk_req_init(&w, &completed, FSIZE_LIMIT - 4 * KiB, 16 * KiB);
    pattern_fill(w.buf, 16 * KiB, 8, w.off);
    if (blk_req_submit(&t, &w, QEMU_AIO_WRITE)) {
        blk_wait(t.ctx, &completed, 1);
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_sig);

    CHECK_EQ(blk_check_once(&w, 1, -ENOSPC), 0);
    /* What did get written is there, and nothing beyond the limit. */
    CHECK_EQ(file_size(t.fd), FSIZE_LIMIT);
    CHECK(file_has_pattern(t.fd, FSIZE_LIMIT - 4 * KiB, 4 * KiB, 8));

    /* The coroutine path reports the same. */
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    signal(SIGXFSZ, SIG_IGN);
    ret = co_io_run(&t, w.off, &w.qiov, QEMU_AIO_WRITE);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_sig);
    CHECK_EQ(ret, -ENOSPC);

    blk_req_free(&w);
    blk_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_write_read_cb);
    RUN(test_write_read_co);
    RUN(test_vectored_cb);
    RUN(test_vectored_co);
    RUN(test_odirect_aligned);
    RUN(test_short_read_eof_cb);
    RUN(test_short_read_eof_co);
    RUN(test_read_past_truncate);
    RUN(test_short_write_enospc);
    return test_done();
}
