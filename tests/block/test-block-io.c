/*
 * test-block-io.c - the block I/O backends of raw-aio.h through the
 * AioBlockBackend front end (block-backend.h), on the one engine that
 * AIOLOOP_TEST_ENGINE names (Meson runs the program once per engine):
 *
 *   - write then read back, with callbacks and from coroutines; results
 *     never delivered from inside the submit call;
 *   - vectored requests of 200 segments, read back with another
 *     segmentation, with guard bytes between segments;
 *   - O_DIRECT with 4 KiB aligned buffers and offsets (test dir, else
 *     /dev/shm);
 *   - reads that reach the end of the file: ret 0 and the rest of the
 *     vector zero-filled (also across segments, past a truncation);
 *   - a write cut short by RLIMIT_FSIZE: -ENOSPC;
 *   - 10,000 requests at once (far beyond the queue depth of 128), and
 *     2,000 coroutines at once;
 *   - nested plug/unplug holding every request until the last unplug;
 *   - completion callbacks that run nested aio_poll() loops while other
 *     requests complete and while the local queue refills;
 *   - moving the backend to another context while idle;
 *   - per-request errors (-EBADF, -EINVAL for misaligned O_DIRECT) mixed
 *     with good requests in one batch, and flush;
 *   - cancellation of queued requests (bdrv_aio_cancel_async and
 *     bdrv_aio_cancel);
 *   - the engine's own sector-based API (laio_/luring_/taio_*);
 *   - unknown request types.
 *
 * Every request records how many times its callback ran, so each case
 * checks "completed exactly once" as well as the result and the data.
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <sys/resource.h>

#include "block-test.h"


#define KiB 1024

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

/* ------------------------------------------------------------------ */
/* Far more requests than the queue depth                              */

#define MANY 10000

static void test_many_requests(void)
{
    BlkReq *reqs = calloc(MANY, sizeof(*reqs));
    int completed = 0, i, bad;
    Blk t;

    REQUIRE(reqs);
    REQUIRE(blk_setup(&t));

    /* 10,000 writes of 512 bytes, each to its own offset, submitted in a
     * scrambled order without polling in between. */
    for (i = 0; i < MANY; i++) {
        int slot = (int)(((long long)i * 7919) % MANY);

        blk_req_init(&reqs[i], &completed, (uint64_t)slot * SECTOR, SECTOR);
        pattern_fill(reqs[i].buf, SECTOR, 9, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    CHECK_EQ(completed, 0);     /* nothing completed inside a submit */
    blk_wait(t.ctx, &completed, MANY);
    poll_idle(t.ctx, 5);
    CHECK_EQ(completed, MANY);
    CHECK_EQ(blk_check_once(reqs, MANY, 0), 0);
    CHECK(file_has_pattern(t.fd, 0, (size_t)MANY * SECTOR, 9));

    /* 10,000 reads of the same places. */
    completed = 0;
    for (i = 0; i < MANY; i++) {
        memset(reqs[i].buf, 0xAA, SECTOR);
        reqs[i].runs = 0;
        reqs[i].ret = 1;
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_READ));
    }
    CHECK_EQ(completed, 0);
    blk_wait(t.ctx, &completed, MANY);
    poll_idle(t.ctx, 5);
    CHECK_EQ(completed, MANY);
    CHECK_EQ(blk_check_once(reqs, MANY, 0), 0);
    for (i = 0, bad = 0; i < MANY && bad < 3; i++) {
        if (!pattern_check(reqs[i].buf, SECTOR, 9, reqs[i].off)) {
            bad++;
        }
    }
    CHECK_EQ(bad, 0);

    for (i = 0; i < MANY; i++) {
        blk_req_free(&reqs[i]);
    }
    free(reqs);
    blk_teardown(&t);
}

/* 2,000 coroutines at once, each writing its sector and reading it back. */
#define MANY_CO 2000

typedef struct {
    Blk *t;
    uint64_t off;
    int wret, rret;
    bool data_ok;
    int *finished;
} CoRw;

static void coroutine_fn co_rw_entry(void *opaque)
{
    CoRw *c = opaque;
    uint8_t buf[SECTOR];
    QEMUIOVector q;

    qemu_iovec_init_buf(&q, buf, SECTOR);
    pattern_fill(buf, SECTOR, 10, c->off);
    c->wret = aio_block_co_submit(c->t->b, c->t->fd, c->off, &q,
                                  QEMU_AIO_WRITE);
    memset(buf, 0xAA, SECTOR);
    c->rret = aio_block_co_submit(c->t->b, c->t->fd, c->off, &q,
                                  QEMU_AIO_READ);
    c->data_ok = pattern_check(buf, SECTOR, 10, c->off);
    ++*c->finished;
}

static void test_many_coroutines(void)
{
    CoRw *cs = calloc(MANY_CO, sizeof(*cs));
    int finished = 0, bad = 0, i;
    Blk t;

    REQUIRE(cs);
    REQUIRE(blk_setup(&t));
    for (i = 0; i < MANY_CO; i++) {
        cs[i] = (CoRw){ .t = &t, .off = (uint64_t)i * SECTOR, .wret = 1,
                        .rret = 1, .finished = &finished };
        co_start(t.ctx, co_rw_entry, &cs[i]);
    }
    while (finished < MANY_CO) {
        aio_poll(t.ctx, true);
    }
    for (i = 0; i < MANY_CO; i++) {
        if (cs[i].wret != 0 || cs[i].rret != 0 || !cs[i].data_ok) {
            if (bad++ < 5) {
                printf("#   coroutine %d: write %d, read %d, data %s\n", i,
                       cs[i].wret, cs[i].rret, cs[i].data_ok ? "ok" : "bad");
            }
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(file_has_pattern(t.fd, 0, (size_t)MANY_CO * SECTOR, 10));
    free(cs);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Plug / unplug                                                       */

#define NPLUG 16

static void test_plug_nesting(void)
{
    BlkReq reqs[NPLUG];
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    aio_block_plug(t.b);
    aio_block_plug(t.b);
    for (i = 0; i < NPLUG; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4 * KiB, 4 * KiB);
        pattern_fill(reqs[i].buf, 4 * KiB, 11, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }

    /* Held: nothing completes, and nothing reached the file (the thread
     * backend holds them too rather than handing them to workers). */
    poll_idle(t.ctx, 20);
    CHECK_EQ(completed, 0);
    CHECK_EQ(file_size(t.fd), 0);

    /* The inner unplug still holds them. */
    aio_block_unplug(t.b);
    poll_idle(t.ctx, 20);
    CHECK_EQ(completed, 0);
    CHECK_EQ(file_size(t.fd), 0);

    /* The outer one submits them all. */
    aio_block_unplug(t.b);
    CHECK_EQ(completed, 0);     /* the unplug itself delivers nothing */
    blk_wait(t.ctx, &completed, NPLUG);
    poll_idle(t.ctx, 5);
    CHECK_EQ(completed, NPLUG);
    CHECK_EQ(blk_check_once(reqs, NPLUG, 0), 0);
    CHECK(file_has_pattern(t.fd, 0, NPLUG * 4 * KiB, 11));

    /* A coroutine request inside a plugged section is held as well, and
     * completes after the unplug. */
    {
        CoIo c = { .b = t.b, .fd = t.fd, .off = 0, .qiov = &reqs[0].qiov,
                   .type = QEMU_AIO_READ, .ret = 1 };

        memset(reqs[0].buf, 0xAA, 4 * KiB);
        aio_block_plug(t.b);
        co_start(t.ctx, co_io_entry, &c);
        poll_idle(t.ctx, 20);
        CHECK(!c.done);
        CHECK(bytes_are(reqs[0].buf, 4 * KiB, 0xAA, "buffer while plugged"));
        aio_block_unplug(t.b);
        while (!c.done) {
            aio_poll(t.ctx, true);
        }
        CHECK_EQ(c.ret, 0);
        CHECK(pattern_check(reqs[0].buf, 4 * KiB, 11, 0));
    }

    for (i = 0; i < NPLUG; i++) {
        blk_req_free(&reqs[i]);
    }
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Nested aio_poll() from completion callbacks                         */

#define NOTHERS 8

typedef struct {
    Blk *t;
    BlkReq *child;          /* submitted by the callback, then waited for */
    int child_type;
    int depth;              /* of the nesting, for the record */
    int end_completed;      /* *completed when the callback returned */
    int child_runs_at_end;
} Nest;

/* Hook: submit the child request and run a nested loop until it is done. */
static void nest_hook(BlkReq *r)
{
    Nest *n = r->user;

    if (!n->child) {
        n->end_completed = *r->completed;
        return;
    }
    if (!blk_req_submit(n->t, n->child, n->child_type)) {
        printf("#   submit from a callback returned NULL\n");
        return;
    }
    while (n->child->runs == 0) {
        aio_poll(n->t->ctx, true);
    }
    n->child_runs_at_end = n->child->runs;
    n->end_completed = *r->completed;
}

static void test_nested_poll_in_callback(void)
{
    BlkReq a, b, c, others[NOTHERS];
    Nest na, nb, nc;
    int completed = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    /* A's callback submits B and waits for it; B's submits C and waits. */
    blk_req_init(&a, &completed, 0, 4 * KiB);
    blk_req_init(&b, &completed, 64 * KiB, 4 * KiB);
    blk_req_init(&c, &completed, 128 * KiB, 4 * KiB);
    pattern_fill(a.buf, 4 * KiB, 12, a.off);
    pattern_fill(b.buf, 4 * KiB, 12, b.off);
    pattern_fill(c.buf, 4 * KiB, 12, c.off);
    na = (Nest){ .t = &t, .child = &b, .child_type = QEMU_AIO_WRITE };
    nb = (Nest){ .t = &t, .child = &c, .child_type = QEMU_AIO_WRITE };
    nc = (Nest){ .t = &t };
    a.hook = b.hook = c.hook = nest_hook;
    a.user = &na;
    b.user = &nb;
    c.user = &nc;

    /* Others in flight together with A, so that their completions arrive
     * while A's and B's callbacks are nested in aio_poll(). */
    aio_block_plug(t.b);
    REQUIRE(blk_req_submit(&t, &a, QEMU_AIO_WRITE));
    for (i = 0; i < NOTHERS; i++) {
        blk_req_init(&others[i], &completed, (uint64_t)(i + 1) * 4 * KiB,
                     4 * KiB);
        pattern_fill(others[i].buf, 4 * KiB, 12, others[i].off);
        REQUIRE(blk_req_submit(&t, &others[i], QEMU_AIO_WRITE));
    }
    aio_block_unplug(t.b);

    blk_wait(t.ctx, &completed, NOTHERS + 3);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, NOTHERS + 3);
    CHECK_EQ(blk_check_once(&a, 1, 0), 0);
    CHECK_EQ(blk_check_once(&b, 1, 0), 0);
    CHECK_EQ(blk_check_once(&c, 1, 0), 0);
    CHECK_EQ(blk_check_once(others, NOTHERS, 0), 0);
    /* Completion order: C's callback inside B's, B's inside A's; each
     * outer callback ended after its child's had run. */
    CHECK(a.seq < b.seq);
    CHECK(b.seq < c.seq);
    CHECK_EQ(na.child_runs_at_end, 1);
    CHECK_EQ(nb.child_runs_at_end, 1);
    CHECK(na.end_completed >= b.seq);
    CHECK(nb.end_completed >= c.seq);
    CHECK(file_has_pattern(t.fd, 0, (NOTHERS + 1) * 4 * KiB, 12));
    CHECK(file_has_pattern(t.fd, 64 * KiB, 4 * KiB, 12));
    CHECK(file_has_pattern(t.fd, 128 * KiB, 4 * KiB, 12));

    blk_req_free(&a);
    blk_req_free(&b);
    blk_req_free(&c);
    for (i = 0; i < NOTHERS; i++) {
        blk_req_free(&others[i]);
    }
    blk_teardown(&t);
}

/*
 * The first callback to run waits, in a nested loop, for all the other
 * requests: 300 of them, so most are still in the local queue beyond the
 * queue depth and must be submitted from inside the nested loop, and
 * some had completed in the kernel already when the outer loop started
 * delivering. The nested loop gives up after DRAIN_LIMIT_MS (a failure,
 * reported by the case) instead of hanging, so that the outer loop can
 * still deliver everything and the later cases run.
 */
#define NDRAIN 300
#define DRAIN_LIMIT_MS 5000

typedef struct {
    AioContext *ctx;
    int nests;              /* callbacks that ran a nested loop */
    int nester_seq;         /* the completion number of the one that did */
    int in_nest;
    int completed_at_end;   /* *completed when its nested loop ended */
    bool gave_up;
} Drain;

static void drain_hook(BlkReq *r)
{
    Drain *d = r->user;

    if (d->nests || d->in_nest) {
        return;
    }
    d->nests++;
    d->nester_seq = r->seq;
    d->in_nest = 1;
    d->gave_up = !blk_wait_ms(d->ctx, r->completed, NDRAIN, DRAIN_LIMIT_MS);
    d->in_nest = 0;
    d->completed_at_end = *r->completed;
}

static void test_nested_poll_drains_queue(void)
{
    BlkReq *reqs = calloc(NDRAIN, sizeof(*reqs));
    Drain d = { 0 };
    int completed = 0, i;
    Blk t;

    REQUIRE(reqs);
    REQUIRE(blk_setup(&t));
    d.ctx = t.ctx;
    for (i = 0; i < NDRAIN; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * SECTOR, SECTOR);
        pattern_fill(reqs[i].buf, SECTOR, 13, reqs[i].off);
        reqs[i].hook = drain_hook;
        reqs[i].user = &d;
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    blk_wait(t.ctx, &completed, NDRAIN);
    poll_idle(t.ctx, 10);
    CHECK_EQ(completed, NDRAIN);
    CHECK_EQ(blk_check_once(reqs, NDRAIN, 0), 0);
    /* The first callback nested, and its loop saw all the others. */
    CHECK_EQ(d.nests, 1);
    CHECK_EQ(d.nester_seq, 1);
    if (d.gave_up) {
        printf("#   the nested loop saw %d of %d completions in %d ms\n",
               d.completed_at_end, NDRAIN, DRAIN_LIMIT_MS);
    }
    CHECK(!d.gave_up);
    CHECK_EQ(d.completed_at_end, NDRAIN);
    CHECK(file_has_pattern(t.fd, 0, NDRAIN * SECTOR, 13));

    for (i = 0; i < NDRAIN; i++) {
        blk_req_free(&reqs[i]);
    }
    free(reqs);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Moving to another context                                           */

/* Write and read back 8 KiB at @off through @ctx, with a callback;
 * checks everything. */
static void roundtrip_on(Blk *t, AioContext *ctx, uint64_t off, uint32_t seed)
{
    int completed = 0;
    BlkReq w, r;
    bool ok;

    blk_req_init(&w, &completed, off, 8 * KiB);
    blk_req_init(&r, &completed, off, 8 * KiB);
    pattern_fill(w.buf, 8 * KiB, seed, off);
    ok = blk_req_submit(t, &w, QEMU_AIO_WRITE);
    CHECK(ok);
    if (ok) {
        blk_wait(ctx, &completed, 1);
        CHECK_EQ(blk_check_once(&w, 1, 0), 0);
        ok = blk_req_submit(t, &r, QEMU_AIO_READ);
        CHECK(ok);
    }
    if (ok) {
        blk_wait(ctx, &completed, 2);
        CHECK_EQ(blk_check_once(&r, 1, 0), 0);
    }
    CHECK(pattern_check(r.buf, 8 * KiB, seed, off));
    blk_req_free(&w);
    blk_req_free(&r);
}

static void test_attach_detach(void)
{
    AioContext *ctx2 = new_ctx();
    int completed = 0;
    BlkReq w;
    uint8_t *buf = aligned_buf(8 * KiB);
    QEMUIOVector q;
    CoIo c;
    Blk t;

    REQUIRE(blk_setup(&t));
    roundtrip_on(&t, t.ctx, 0, 14);

    aio_block_backend_detach(t.b, t.ctx);
    aio_block_backend_attach(t.b, ctx2);

    /* Completions now come from ctx2 only: polling ctx1 delivers none. */
    blk_req_init(&w, &completed, 64 * KiB, 8 * KiB);
    pattern_fill(w.buf, 8 * KiB, 15, w.off);
    REQUIRE(blk_req_submit(&t, &w, QEMU_AIO_WRITE));
    poll_idle(t.ctx, 20);
    CHECK_EQ(w.runs, 0);
    blk_wait(ctx2, &completed, 1);
    CHECK_EQ(blk_check_once(&w, 1, 0), 0);
    roundtrip_on(&t, ctx2, 128 * KiB, 16);

    /* A coroutine of ctx2 reads what ctx1's requests wrote. */
    qemu_iovec_init_buf(&q, buf, 8 * KiB);
    c = (CoIo){ .b = t.b, .fd = t.fd, .off = 0, .qiov = &q,
                .type = QEMU_AIO_READ, .ret = 1 };
    co_start(ctx2, co_io_entry, &c);
    while (!c.done) {
        aio_poll(ctx2, true);
    }
    CHECK_EQ(c.ret, 0);
    CHECK(pattern_check(buf, 8 * KiB, 14, 0));

    /* And back. */
    aio_block_backend_detach(t.b, ctx2);
    aio_block_backend_attach(t.b, t.ctx);
    roundtrip_on(&t, t.ctx, 192 * KiB, 17);
    CHECK(file_has_pattern(t.fd, 64 * KiB, 8 * KiB, 15));

    blk_req_free(&w);
    free(buf);
    blk_teardown(&t);
    aio_context_unref(ctx2);
}

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

/* ------------------------------------------------------------------ */
/* The engine's own API (sector-based callbacks, byte-based coroutines) */

/* Thin dispatchers to laio_*, luring_* or taio_* for blk_engine. */
static void *raw_init(void)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return luring_init(&error_abort);
    case AIO_ENGINE_LINUX_AIO:
        return laio_init();
    default:
        return taio_init();
    }
}

static void raw_attach(void *s, AioContext *ctx, bool attach)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        attach ? luring_attach_aio_context(s, ctx)
               : luring_detach_aio_context(s, ctx);
        break;
    case AIO_ENGINE_LINUX_AIO:
        attach ? laio_attach_aio_context(s, ctx)
               : laio_detach_aio_context(s, ctx);
        break;
    default:
        attach ? taio_attach_aio_context(s, ctx)
               : taio_detach_aio_context(s, ctx);
        break;
    }
}

static void raw_cleanup(void *s)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        luring_cleanup(s);
        break;
    case AIO_ENGINE_LINUX_AIO:
        laio_cleanup(s);
        break;
    default:
        taio_cleanup(s);
        break;
    }
}

static BlockAIOCB *raw_submit(BlockDriverState *bs, void *s, int fd,
                              int64_t sector, QEMUIOVector *q, int nb,
                              BlockCompletionFunc *cb, void *opaque, int type)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        return luring_submit(bs, s, fd, sector, q, nb, cb, opaque, type);
    case AIO_ENGINE_LINUX_AIO:
        return laio_submit(bs, s, fd, sector, q, nb, cb, opaque, type);
    default:
        return taio_submit(bs, s, fd, sector, q, nb, cb, opaque, type);
    }
}

static void raw_plug(BlockDriverState *bs, void *s, bool plug)
{
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        plug ? luring_io_plug(bs, s) : luring_io_unplug(bs, s);
        break;
    case AIO_ENGINE_LINUX_AIO:
        plug ? laio_io_plug(bs, s) : laio_io_unplug(bs, s);
        break;
    default:
        plug ? taio_io_plug(bs, s) : taio_io_unplug(bs, s);
        break;
    }
}

typedef struct {
    BlockDriverState *bs;
    void *s;
    int fd;
    uint64_t off;
    QEMUIOVector *q;
    int type;
    int ret;
    bool done;
} RawCo;

static void coroutine_fn raw_co_entry(void *opaque)
{
    RawCo *c = opaque;

    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        c->ret = luring_co_submit(c->bs, c->s, c->fd, c->off, c->q, c->type);
        break;
    case AIO_ENGINE_LINUX_AIO:
        c->ret = laio_co_submit(c->bs, c->s, c->fd, c->off, c->q, c->type);
        break;
    default:
        c->ret = taio_co_submit(c->bs, c->s, c->fd, c->off, c->q, c->type);
        break;
    }
    c->done = true;
}

static int raw_co_run(AioContext *ctx, RawCo *c)
{
    co_start(ctx, raw_co_entry, c);
    while (!c->done) {
        aio_poll(ctx, true);
    }
    return c->ret;
}

static void test_engine_api(void)
{
    static int bs_storage;      /* any address: bs is opaque */
    BlockDriverState *bs = (BlockDriverState *)&bs_storage;
    AioContext *ctx = new_ctx();
    int fd = tmp_file_in(test_dir(), 0);
    int completed = 0;
    BlkReq w, r, p[2];
    RawCo c;
    void *s;

    REQUIRE(fd >= 0);
    s = raw_init();
    REQUIRE(s);
    raw_attach(s, ctx, true);

    /* 8 sectors at sector 3, written and read back with callbacks. */
    blk_req_init(&w, &completed, 3 * SECTOR, 8 * SECTOR);
    blk_req_init(&r, &completed, 3 * SECTOR, 8 * SECTOR);
    pattern_fill(w.buf, 8 * SECTOR, 26, w.off);
    w.acb = raw_submit(bs, s, fd, 3, &w.qiov, 8, blk_req_cb, &w,
                       QEMU_AIO_WRITE);
    REQUIRE(w.acb);
    CHECK(w.acb->bs == bs);     /* stored in the AIOCB as given */
    CHECK_EQ(w.runs, 0);
    blk_wait(ctx, &completed, 1);
    CHECK_EQ(blk_check_once(&w, 1, 0), 0);
    CHECK(file_has_pattern(fd, 3 * SECTOR, 8 * SECTOR, 26));
    CHECK(file_is_zero(fd, 0, 3 * SECTOR));

    r.acb = raw_submit(bs, s, fd, 3, &r.qiov, 8, blk_req_cb, &r,
                       QEMU_AIO_READ);
    REQUIRE(r.acb);
    blk_wait(ctx, &completed, 2);
    CHECK_EQ(blk_check_once(&r, 1, 0), 0);
    CHECK(pattern_check(r.buf, 8 * SECTOR, 26, 3 * SECTOR));

    /* Plugged pair (sectors 20 and 21), then a flush with no vector. */
    raw_plug(bs, s, true);
    for (int i = 0; i < 2; i++) {
        blk_req_init(&p[i], &completed, (uint64_t)(20 + i) * SECTOR, SECTOR);
        pattern_fill(p[i].buf, SECTOR, 27, p[i].off);
        p[i].acb = raw_submit(bs, s, fd, 20 + i, &p[i].qiov, 1, blk_req_cb,
                              &p[i], QEMU_AIO_WRITE);
        REQUIRE(p[i].acb);
    }
    poll_idle(ctx, 10);
    CHECK_EQ(completed, 2);
    raw_plug(bs, s, false);
    blk_wait(ctx, &completed, 4);
    CHECK_EQ(blk_check_once(p, 2, 0), 0);
    CHECK(file_has_pattern(fd, 20 * SECTOR, 2 * SECTOR, 27));

    r.runs = 0;
    r.acb = raw_submit(bs, s, fd, 0, NULL, 0, blk_req_cb, &r, QEMU_AIO_FLUSH);
    REQUIRE(r.acb);
    blk_wait(ctx, &completed, 5);
    CHECK_EQ(blk_check_once(&r, 1, 0), 0);

    /* The coroutine API takes a byte offset. */
    memset(r.buf, 0xAA, 8 * SECTOR);
    c = (RawCo){ .bs = bs, .s = s, .fd = fd, .off = 3 * SECTOR, .q = &r.qiov,
                 .type = QEMU_AIO_READ, .ret = 1 };
    CHECK_EQ(raw_co_run(ctx, &c), 0);
    CHECK(pattern_check(r.buf, 8 * SECTOR, 26, 3 * SECTOR));

    /* Unknown types: NULL from the callback API, -EINVAL otherwise. */
    CHECK(raw_submit(bs, s, fd, 0, &r.qiov, 8, blk_req_cb, &r, 0x4) == NULL);
    c = (RawCo){ .bs = bs, .s = s, .fd = fd, .q = &r.qiov, .type = 0x4,
                 .ret = 1 };
    CHECK_EQ(raw_co_run(ctx, &c), -EINVAL);
    poll_idle(ctx, 5);
    CHECK_EQ(completed, 5);

    raw_attach(s, ctx, false);
    raw_cleanup(s);
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

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_engine_identity);
    RUN(test_write_read_cb);
    RUN(test_write_read_co);
    RUN(test_vectored_cb);
    RUN(test_vectored_co);
    RUN(test_odirect_aligned);
    RUN(test_short_read_eof_cb);
    RUN(test_short_read_eof_co);
    RUN(test_read_past_truncate);
    RUN(test_short_write_enospc);
    RUN(test_many_requests);
    RUN(test_many_coroutines);
    RUN(test_plug_nesting);
    RUN(test_nested_poll_in_callback);
    RUN(test_nested_poll_drains_queue);
    RUN(test_attach_detach);
    RUN(test_err_bad_fd);
    RUN(test_err_misaligned_odirect);
    RUN(test_flush);
    RUN(test_cancel_queued);
    RUN(test_cancel_in_flight);
    RUN(test_engine_api);
    RUN(test_unknown_type);
    RUN(test_context_unref_drains_attached);
    /* Last, as a failure here may end the program: a plugged request's
     * cancellation that never completes (watchdog), a stale completion
     * delivered to a finished coroutine (abort). */
    RUN(test_cancel_sync_plugged);
    RUN(test_err_bad_fd_co);
    return test_done();
}
