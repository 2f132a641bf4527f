/*
 * test-block-laio-quiet.c - Linux AIO requests without the eventfd
 * (src/block/linux-aio.c, "Requests without the eventfd").
 *
 * A fd whose reads and writes complete inside io_submit() (buffered
 * files, tmpfs) gets them submitted without IOCB_FLAG_RESFD once it has
 * shown that 16 times in a row; their completions are taken from the
 * ring, which the engine looks at after every io_submit(). A request
 * without eventfd that the kernel has not completed when the ring runs
 * empty is a straggler: every fd unlearns and a rescue timer reads the
 * ring until it has come back. These cases check that nothing is lost
 * or delivered twice either way, that the learning happens, and that a
 * straggler is found and rescued. A lost straggler is a hang (blocking
 * aio_poll() waits for it): the watchdog names the case.
 *
 * Requests that the callbacks submit and that complete inline are
 * delivered in the same call, up to 8 passes over the ring: a chain of
 * requests resubmitted from their callbacks must still let a bottom half
 * run. One aio_poll() may call the engine three times before that BH
 * (the io_poll handler's look at the ring, the process BH scheduled
 * before the BH, the call that scheduled it), so it runs within 24
 * completions at QD1.
 *
 * Flushes complete from a kernel work queue, nearly always after
 * io_submit() has returned: with every request without eventfd (the
 * knob aioloop__laio_set_inline_after(s, 0)), a flush is the straggler
 * these cases use. A case whose flushes all completed inline skips. So
 * do O_DIRECT reads of a file on a disk (AIOLOOP_TEST_DIR, the working
 * directory by default), given the fd number of a learned file.
 *
 * Linux AIO only (registered with AIOLOOP_TEST_ENGINE=linux-aio).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>

#include "block/engine-api.h"

#if AIOLOOP_HAVE_LINUX_AIO
#include "../../src/block/linux-aio-internal.h"

#define BLOCK   (4 * KiB)
#define NBLOCKS 64                      /* the file: 256 KiB of pattern */
#define SEED    7

/* A Linux AIO state on a new context, with its ring, and a file of
 * NBLOCKS blocks of pattern in @dir (opened with extra @flags). */
typedef struct Quiet {
    Eng e;
    AioContext *ctx;
    int fd;
} Quiet;

/* A submission that returned NULL leaves the case (its child). */
static void need_acb(BlockAIOCB *acb)
{
    if (!acb) {
        printf("#   a submission returned NULL\n");
        abort();
    }
}

static bool quiet_setup(Quiet *t)
{
    t->fd = tmp_file_in(test_dir(), 0);
    if (t->fd < 0 || !file_fill(t->fd, 0, NBLOCKS * BLOCK, SEED)) {
        printf("#   cannot make the file in %s\n", test_dir());
        return false;
    }
    t->ctx = new_ctx();
    eng_new(&t->e, t->ctx);
    return true;
}

static void quiet_teardown(Quiet *t)
{
    eng_free(&t->e);
    aio_context_unref(t->ctx);
    close(t->fd);
}

static LaioStats quiet_stats(Quiet *t)
{
    LaioStats st;

    aioloop__laio_stats(t->e.s, &st);
    return st;
}

/* @n reads of one block each on @fd, submitted between plug and unplug
 * (one io_submit()), block (@first + i * 7) % NBLOCKS for the i-th;
 * waits for all (blocking aio_poll()) and checks each ran once with the
 * pattern. Returns the number that did not. */
static int read_batch(Quiet *t, int fd, unsigned first, unsigned n)
{
    BlkReq r[32];
    int completed = 0, bad = 0;

    assert(n <= ARRAY_SIZE(r));
    eng_plug(&t->e, true);
    for (unsigned i = 0; i < n; i++) {
        uint64_t blk = (first + i * 7) % NBLOCKS;

        blk_req_init(&r[i], &completed, blk * BLOCK, BLOCK);
        r[i].acb = eng_submit(&t->e, fd, (int64_t)(blk * BLOCK / SECTOR),
                              &r[i].qiov, BLOCK / SECTOR, blk_req_cb, &r[i],
                              QEMU_AIO_READ);
        need_acb(r[i].acb);
    }
    eng_plug(&t->e, false);
    blk_wait(t->ctx, &completed, (int)n);
    while (aio_poll(t->ctx, false)) {
    }
    for (unsigned i = 0; i < n; i++) {
        if (blk_check_once(&r[i], 1, 0) != 0 ||
            !pattern_check(r[i].buf, BLOCK, SEED, r[i].off)) {
            bad++;
        }
        blk_req_free(&r[i]);
    }
    return bad;
}

/* A flush on @fd and a read of block @blk behind it, in one io_submit();
 * waits for both. Returns the number that did not complete right. */
static int flush_and_read(Quiet *t, unsigned blk)
{
    EngRes f = { 0, 0 };
    BlkReq r;
    int completed = 0, bad = 0;

    blk_req_init(&r, &completed, (uint64_t)blk * BLOCK, BLOCK);
    eng_plug(&t->e, true);
    need_acb(eng_submit(&t->e, t->fd, 0, NULL, 0, eng_res_cb, &f,
                        QEMU_AIO_FLUSH));
    r.acb = eng_submit(&t->e, t->fd, (int64_t)blk * BLOCK / SECTOR, &r.qiov,
                       BLOCK / SECTOR, blk_req_cb, &r, QEMU_AIO_READ);
    need_acb(r.acb);
    eng_plug(&t->e, false);
    while (f.runs == 0 || completed == 0) {
        aio_poll(t->ctx, true);
    }
    while (aio_poll(t->ctx, false)) {
    }
    if (f.runs != 1 || f.ret != 0) {
        printf("#   flush: %d runs, result %d\n", f.runs, f.ret);
        bad++;
    }
    if (blk_check_once(&r, 1, 0) != 0 ||
        !pattern_check(r.buf, BLOCK, SEED, r.off)) {
        bad++;
    }
    blk_req_free(&r);
    return bad;
}

/* ------------------------------------------------------------------ */

/* A buffered file completes inline: after the learning its reads go
 * without eventfd, and no straggler is ever found. */
static void test_inline_reads_go_quiet(void)
{
    Quiet t;
    LaioStats st;
    int bad = 0;

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    for (unsigned round = 0; round < 40; round++) {
        bad += read_batch(&t, t.fd, round, 8);
    }
    CHECK_EQ(bad, 0);
    st = quiet_stats(&t);
    printf("#   %llu of 320 reads without eventfd\n",
           (unsigned long long)st.quiet);
    /* 16 batches to learn, the other 24 without eventfd. */
    CHECK_EQ(st.quiet, 24 * 8);
    CHECK_EQ(st.stragglers, 0);
    CHECK_EQ(st.rescues, 0);
    quiet_teardown(&t);
}

/* More completions than the ring has slots, in batches as large as the
 * queue: the head wraps around, several times, without losing or
 * repeating an event. */
static void test_ring_wraps(void)
{
    Quiet t;
    int bad = 0;

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    for (unsigned round = 0; round < 100; round++) {
        bad += read_batch(&t, t.fd, round * 3, 32);
        test_progress();
    }
    CHECK_EQ(bad, 0);
    CHECK(quiet_stats(&t).quiet > 0);
    quiet_teardown(&t);
}

/* Every request without eventfd: a flush that completes after
 * io_submit() returned is found and rescued by the timer, with the read
 * beside it; nothing else could wake the blocking aio_poll(). */
static void test_straggler_rescued(void)
{
    Quiet t;
    LaioStats st;
    int bad = 0;
    unsigned i;

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    aioloop__laio_set_inline_after(t.e.s, 0);
    for (i = 0; i < 50; i++) {
        bad += flush_and_read(&t, i);
        st = quiet_stats(&t);
        if (st.stragglers >= 3) {
            break;
        }
    }
    CHECK_EQ(bad, 0);
    st = quiet_stats(&t);
    CHECK_EQ(st.quiet, 2 * (i < 50 ? i + 1 : 50));
    printf("#   %u rounds: %llu stragglers, %llu rescue passes\n",
           i < 50 ? i + 1 : 50, (unsigned long long)st.stragglers,
           (unsigned long long)st.rescues);
    quiet_teardown(&t);
    if (st.stragglers == 0) {
        SKIP_CASE("every flush completed inside io_submit()");
    }
    CHECK(st.rescues >= st.stragglers);
}

/* A learned fd whose request becomes a straggler unlearns: the next
 * requests carry the eventfd again (the straggler's completion is still
 * delivered). The flush is made a straggler with the knob, then the
 * default comes back for the reads. */
static void test_straggler_unlearns(void)
{
    Quiet t;
    LaioStats before, after;
    int bad = 0;

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    for (unsigned round = 0; round < 20; round++) {
        bad += read_batch(&t, t.fd, round, 4);
    }
    before = quiet_stats(&t);
    CHECK_EQ(before.quiet, 4 * 4);      /* rounds 17 to 20 */
    for (unsigned i = 0; i < 50 && !quiet_stats(&t).stragglers; i++) {
        aioloop__laio_set_inline_after(t.e.s, 0);
        bad += flush_and_read(&t, i);
        aioloop__laio_set_inline_after(t.e.s, 16);
    }
    after = quiet_stats(&t);
    if (after.stragglers == 0) {
        CHECK_EQ(bad, 0);
        quiet_teardown(&t);
        SKIP_CASE("every flush completed inside io_submit()");
    }
    /* Unlearned: the next 16 batches carry the eventfd. */
    for (unsigned round = 0; round < 16; round++) {
        bad += read_batch(&t, t.fd, round, 4);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(quiet_stats(&t).quiet, after.quiet);
    bad += read_batch(&t, t.fd, 0, 4);
    CHECK_EQ(bad, 0);
    CHECK_EQ(quiet_stats(&t).quiet, after.quiet + 4);
    quiet_teardown(&t);
}

/* The fd number of a learned file reused for an O_DIRECT file on a disk:
 * its reads go without eventfd and complete after io_submit() returns;
 * they are found as stragglers and rescued, every fd unlearns, and
 * learning then takes 32 calls instead of 16. */
static void test_fd_reused_for_slow_file(void)
{
    Quiet t;
    LaioStats st;
    int bad = 0, slow, saved;
    const char *dir = test_dir();
    unsigned round;

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    slow = tmp_file_in(dir, O_DIRECT);
    if (slow < 0) {
        quiet_teardown(&t);
        SKIP_CASE("no O_DIRECT in AIOLOOP_TEST_DIR");
    }
    REQUIRE(file_fill(slow, 0, NBLOCKS * BLOCK, SEED));
    REQUIRE(fdatasync(slow) == 0);
    for (round = 0; round < 17; round++) {
        bad += read_batch(&t, t.fd, round, 4);
    }
    CHECK_EQ(quiet_stats(&t).quiet, 4);
    saved = dup(t.fd);
    REQUIRE(saved >= 0);
    /* Same fd number, another file: the engine cannot tell. */
    REQUIRE(dup2(slow, t.fd) == t.fd);
    bad += read_batch(&t, t.fd, 0, 4);
    st = quiet_stats(&t);
    CHECK_EQ(st.quiet, 8);
    REQUIRE(dup2(saved, t.fd) == t.fd);
    close(saved);
    close(slow);
    if (st.stragglers == 0) {
        CHECK_EQ(bad, 0);
        quiet_teardown(&t);
        SKIP_CASE("O_DIRECT reads in AIOLOOP_TEST_DIR complete inside "
                  "io_submit() (tmpfs?)");
    }
    CHECK(st.rescues >= 1);
    for (round = 0; round < 32; round++) {
        bad += read_batch(&t, t.fd, round, 4);
    }
    CHECK_EQ(quiet_stats(&t).quiet, 8);  /* learning again, for 32 */
    bad += read_batch(&t, t.fd, 0, 4);
    CHECK_EQ(quiet_stats(&t).quiet, 12);
    CHECK_EQ(bad, 0);
    quiet_teardown(&t);
}

/* Detaching drains: a straggler's completion still arrives (through the
 * rescue timer) and the timer goes with the context. */
static void test_detach_with_straggler(void)
{
    Quiet t;
    EngRes f = { 0, 0 };

    REQUIRE(quiet_setup(&t));
    if (!aioloop__laio_has_ring(t.e.s)) {
        quiet_teardown(&t);
        SKIP_CASE("the kernel's AIO ring has a layout we do not know");
    }
    aioloop__laio_set_inline_after(t.e.s, 0);
    REQUIRE(eng_submit(&t.e, t.fd, 0, NULL, 0, eng_res_cb, &f,
                       QEMU_AIO_FLUSH));
    eng_detach(&t.e, t.ctx);
    t.e.ctx = NULL;
    CHECK_EQ(f.runs, 1);
    CHECK_EQ(f.ret, 0);
    /* Attached again, to another context: learning starts over. */
    {
        AioContext *ctx2 = new_ctx();

        aio_context_unref(t.ctx);
        t.ctx = ctx2;
        eng_attach(&t.e, ctx2);
        CHECK_EQ(read_batch(&t, t.fd, 0, 8), 0);
    }
    quiet_teardown(&t);
}

/* A chain of reads, each submitted by the previous one's callback. */
typedef struct Chain {
    Quiet *t;
    BlkReq r;
    int completed;
    int left;
    int bad;
    int bh_at;                  /* completions when the BH ran; -1 */
    int scheduled_at;           /* completions when it was scheduled */
} Chain;

static void chain_bh(void *opaque)
{
    Chain *c = opaque;

    c->bh_at = c->completed;
}

static void chain_cb(void *opaque, int ret)
{
    Chain *c = opaque;
    uint64_t blk = (uint64_t)c->completed * 5 % NBLOCKS;

    c->completed++;
    if (ret != 0 || !pattern_check(c->r.buf, BLOCK, SEED, c->r.off)) {
        c->bad++;
    }
    if (c->completed == 100) {
        c->scheduled_at = c->completed;
        aio_bh_schedule_oneshot(c->t->ctx, chain_bh, c);
    }
    if (--c->left == 0) {
        return;
    }
    c->r.off = blk * BLOCK;
    memset(c->r.buf, 0xAA, BLOCK);
    need_acb(eng_submit(&c->t->e, c->t->fd, (int64_t)(blk * BLOCK / SECTOR),
                        &c->r.qiov, BLOCK / SECTOR, chain_cb, c,
                        QEMU_AIO_READ));
}

/* A QD1 chain on a fd that completes inline: every callback's request
 * is in the ring before control returns to aio_poll(); a bottom half
 * scheduled from a callback still runs within 3 x 8 completions. */
static void test_passes_bounded(void)
{
    Quiet t;
    Chain c = { .t = &t, .left = 300, .bh_at = -1 };

    REQUIRE(quiet_setup(&t));
    blk_req_init(&c.r, &c.completed, 0, BLOCK);
    c.completed = 0;
    need_acb(eng_submit(&t.e, t.fd, 0, &c.r.qiov, BLOCK / SECTOR, chain_cb,
                        &c, QEMU_AIO_READ));
    while (c.left) {
        aio_poll(t.ctx, true);
    }
    CHECK_EQ(c.completed, 300);
    CHECK_EQ(c.bad, 0);
    CHECK(c.bh_at >= c.scheduled_at);
    printf("#   the BH ran after %d more completions\n",
           c.bh_at - c.scheduled_at);
    CHECK(c.bh_at - c.scheduled_at <= 3 * 8);
    blk_req_free(&c.r);
    quiet_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    blk_test_init();
    if (blk_engine != AIO_ENGINE_LINUX_AIO) {
        test_skip_all("Linux AIO only");
    }
    RUN(test_inline_reads_go_quiet);
    RUN(test_ring_wraps);
    RUN(test_straggler_rescued);
    RUN(test_straggler_unlearns);
    RUN(test_fd_reused_for_slow_file);
    RUN(test_detach_with_straggler);
    RUN(test_passes_bounded);
    return test_done();
}

#else /* !AIOLOOP_HAVE_LINUX_AIO */

int main(void)
{
    test_skip_all("aioloop was built without Linux AIO");
}

#endif
