/*
 * test-block-faults.c - the block backends when the kernel refuses work,
 * using the library's fault injection (src/util/fault.h) to make the
 * submission system call (io_submit() or io_uring_submit(), for the
 * engine AIOLOOP_TEST_ENGINE names) or the set-up call fail:
 *
 *   - EAGAIN / ENOMEM for a few submission calls, with nothing in flight
 *     (the back-off path) and with requests in flight (the wait-for-
 *     completions path), 500 requests outstanding: nothing lost, nothing
 *     doubled, data intact;
 *   - every submission refused for 200 ms (cleared by a timer of the same
 *     context): the requests wait and then all succeed;
 *   - a single refusal of a small plugged batch (nothing left in the
 *     local queue afterwards);
 *   - a single refusal of one request behind requests in flight, with
 *     nothing else queued: the completions retry it;
 *   - a refusal that persists: Linux AIO fails the first waiting request
 *     after about a second and goes on; io_uring keeps retrying;
 *   - cancelling requests that wait in the local queue behind refusals;
 *   - coroutines waiting through refusals;
 *   - set-up faults: io_uring_queue_init() failing makes the io_uring
 *     engine fail with an Error and AIO_ENGINE_AUTO fall back; io_setup()
 *     failing makes laio_init() return NULL with errno set.
 *
 * Each case checks with aioloop__fault_hits() that the faults it asked for
 * were injected, so that a hook the library no longer reaches fails the
 * case rather than passing it vacuously. The thread engine makes no
 * submission system call: the program skips itself there.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fault.h"
#include "block-test.h"

/* The library's fault hook is off until a program turns it on: on from
 * the start, so that the per-site counters count the whole program. */
static void __attribute__((constructor)) block_faults_enable(void)
{
    aioloop__fault_enable();
}


#define NREQ 500
#define MS 1000000LL

/* The submission site of this run's engine. */
static AioloopFaultSite submit_site;

/* ------------------------------------------------------------------ */
/* A batch of NREQ writes with their completion records                */

typedef struct {
    Blk t;
    BlkReq reqs[NREQ];
    int completed;
} Batch;

/* Sets up @bt and prepares NREQ writes of 512 bytes at distinct offsets,
 * pattern @seed. */
static bool batch_init(Batch *bt, uint32_t seed)
{
    int i;

    if (!blk_setup(&bt->t)) {
        return false;
    }
    bt->completed = 0;
    for (i = 0; i < NREQ; i++) {
        blk_req_init(&bt->reqs[i], &bt->completed, (uint64_t)i * SECTOR,
                     SECTOR);
        pattern_fill(bt->reqs[i].buf, SECTOR, seed, bt->reqs[i].off);
    }
    return true;
}

static bool batch_submit(Batch *bt, int type)
{
    int i;

    for (i = 0; i < NREQ; i++) {
        if (!blk_req_submit(&bt->t, &bt->reqs[i], type)) {
            printf("#   submit %d returned NULL\n", i);
            return false;
        }
    }
    return true;
}

/* Checks the file with pread() and reads everything back through the
 * backend (no faults armed): pattern @seed everywhere. */
static void batch_verify(Batch *bt, uint32_t seed)
{
    int i, bad = 0;
    bool ok;

    CHECK(file_has_pattern(bt->t.fd, 0, (size_t)NREQ * SECTOR, seed));
    bt->completed = 0;
    for (i = 0; i < NREQ; i++) {
        memset(bt->reqs[i].buf, 0xAA, SECTOR);
        bt->reqs[i].runs = 0;
        bt->reqs[i].ret = 1;
        ok = blk_req_submit(&bt->t, &bt->reqs[i], QEMU_AIO_READ);
        CHECK(ok);
        if (!ok) {
            return;
        }
    }
    blk_wait(bt->t.ctx, &bt->completed, NREQ);
    CHECK_EQ(blk_check_once(bt->reqs, NREQ, 0), 0);
    for (i = 0; i < NREQ && bad < 3; i++) {
        if (!pattern_check(bt->reqs[i].buf, SECTOR, seed, bt->reqs[i].off)) {
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
}

static void batch_fini(Batch *bt)
{
    int i;

    for (i = 0; i < NREQ; i++) {
        blk_req_free(&bt->reqs[i]);
    }
    blk_teardown(&bt->t);
}

/* ------------------------------------------------------------------ */
/* Transient refusals                                                  */

/*
 * @count submission calls fail with @err, armed before the first
 * submission (@busy false: nothing in flight, the back-off path) or after
 * all NREQ were submitted (@busy true: 128 in flight, the rest queued,
 * refills fail while completions arrive).
 */
static void transient(int err, int count, bool busy)
{
    Batch *bt = calloc(1, sizeof(*bt));
    unsigned long hits0 = aioloop__fault_hits(submit_site);

    REQUIRE(bt);
    REQUIRE(batch_init(bt, 30 + err));
    if (!busy) {
        aioloop__fault_inject(submit_site, 0, count, err);
    }
    aio_block_plug(bt->t.b);    /* one batch: starts at the unplug */
    REQUIRE(batch_submit(bt, QEMU_AIO_WRITE));
    aio_block_unplug(bt->t.b);
    if (busy) {
        aioloop__fault_inject(submit_site, 0, count, err);
    }
    blk_wait(bt->t.ctx, &bt->completed, NREQ);
    aioloop__fault_clear();
    poll_idle(bt->t.ctx, 10);

    CHECK_EQ(aioloop__fault_hits(submit_site) - hits0, count);
    CHECK_EQ(bt->completed, NREQ);
    CHECK_EQ(blk_check_once(bt->reqs, NREQ, 0), 0);
    batch_verify(bt, 30 + err);
    batch_fini(bt);
    free(bt);
}

static void test_eagain_idle(void) { transient(EAGAIN, 5, false); }
static void test_eagain_busy(void) { transient(EAGAIN, 5, true); }
static void test_enomem_idle(void) { transient(ENOMEM, 5, false); }
static void test_enomem_busy(void) { transient(ENOMEM, 5, true); }

/*
 * One refused submission of a plugged batch of three requests: all of
 * them fit in the kernel queue, so none is left in the local queue after
 * the refused call; the retry must still submit them.
 */
static void test_one_refusal_few_requests(void)
{
    unsigned long hits0 = aioloop__fault_hits(submit_site);
    int completed = 0, i;
    BlkReq reqs[3];
    Blk t;

    REQUIRE(blk_setup(&t));
    aioloop__fault_inject(submit_site, 0, 1, EAGAIN);
    aio_block_plug(t.b);
    for (i = 0; i < 3; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4096, 4096);
        pattern_fill(reqs[i].buf, 4096, 45, reqs[i].off);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    aio_block_unplug(t.b);
    /* Bounded: requests stranded by the refusal fail the case. */
    blk_wait(t.ctx, &completed, 3);
    aioloop__fault_clear();
    if (completed < 3) {
        printf("#   %d of 3 completed in 5 s after one refusal\n", completed);
    }
    poll_idle(t.ctx, 10);
    CHECK_EQ(aioloop__fault_hits(submit_site) - hits0, 1);
    if (completed == 3) {
        CHECK_EQ(blk_check_once(reqs, 3, 0), 0);
        CHECK(file_has_pattern(t.fd, 0, 3 * 4096, 45));
        for (i = 0; i < 3; i++) {
            blk_req_free(&reqs[i]);
        }
        blk_teardown(&t);
    }
    /* else: the requests are stranded; leak the state rather than
     * free it with requests in flight (an assertion). */
}

/*
 * Requests in flight, then one more whose submission is refused while
 * the local queue is otherwise empty (io_uring: it waits in the ring,
 * unsubmitted). The refusal waits for a completion; the completions of
 * the requests in flight must retry it even though nothing is queued
 * locally, or the last request is stranded (found by test-faults-mixed:
 * a coroutine's write that never completed).
 */
static void test_refusal_behind_in_flight(void)
{
    enum { N = 9 };
    unsigned long hits0 = aioloop__fault_hits(submit_site);
    int completed = 0, i;
    BlkReq reqs[N];
    Blk t;

    REQUIRE(blk_setup(&t));
    for (i = 0; i < N; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4096, 4096);
        pattern_fill(reqs[i].buf, 4096, 46, reqs[i].off);
    }
    /* Submitted at once; completions come only from aio_poll(). */
    for (i = 0; i < N - 1; i++) {
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    aioloop__fault_inject(submit_site, 0, 1, EAGAIN);
    REQUIRE(blk_req_submit(&t, &reqs[N - 1], QEMU_AIO_WRITE));
    CHECK_EQ(aioloop__fault_hits(submit_site) - hits0, 1);
    CHECK_EQ(completed, 0);
    /* Bounded: a stranded request fails the case. */
    blk_wait(t.ctx, &completed, N);
    aioloop__fault_clear();
    if (completed < N) {
        printf("#   %d of %d completed in 5 s\n", completed, N);
        return;                 /* stranded: leak (see above) */
    }
    poll_idle(t.ctx, 10);
    CHECK_EQ(blk_check_once(reqs, N, 0), 0);
    CHECK(file_has_pattern(t.fd, 0, N * 4096, 46));
    for (i = 0; i < N; i++) {
        blk_req_free(&reqs[i]);
    }
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Every submission refused for a while                                */

typedef struct {
    int *completed;
    int completed_at_clear;
    unsigned long hits_at_clear;
    bool fired;
} Clearer;

/* Timer: lift the refusal, noting how far things had got. */
static void clear_faults_cb(void *opaque)
{
    Clearer *c = opaque;

    c->hits_at_clear = aioloop__fault_hits(submit_site);
    c->completed_at_clear = *c->completed;
    aioloop__fault_clear();
    c->fired = true;
}

/*
 * All submissions fail with @err (count -1) from the start (@busy false)
 * or from right after the first batch went in (@busy true), until a timer
 * of the same context clears the fault 200 ms after the first refusal
 * (counted from the refusal, not from the arming: on a loaded machine the
 * first completions of a busy batch may come later than 200 ms, and the
 * backend's retries must have the window to show). The loop is only ever
 * blocking aio_poll(): the backend must retry by itself; its back-off
 * (at most 10 ms) puts the next retry before the clear whatever the
 * load, since overdue timers fire in deadline order.
 */
static void refused_for_a_while(int err, bool busy)
{
    Batch *bt = calloc(1, sizeof(*bt));
    unsigned long hits0 = aioloop__fault_hits(submit_site);
    Clearer c = { 0 };
    QEMUTimer *timer;

    REQUIRE(bt);
    REQUIRE(batch_init(bt, 40));
    c.completed = &bt->completed;
    timer = aio_timer_new(bt->t.ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                          clear_faults_cb, &c);
    if (!busy) {
        aioloop__fault_inject(submit_site, 0, -1, err);
    }
    REQUIRE(batch_submit(bt, QEMU_AIO_WRITE));
    if (busy) {
        aioloop__fault_inject(submit_site, 0, -1, err);
    }
    while (aioloop__fault_hits(submit_site) == hits0) {
        aio_poll(bt->t.ctx, true);
    }
    timer_mod(timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 200);
    blk_wait(bt->t.ctx, &bt->completed, NREQ);
    aioloop__fault_clear();
    poll_idle(bt->t.ctx, 10);

    CHECK(c.fired);
    /* The refusal was met more than once (the backend retried while it
     * lasted), and it held everything back (nothing at all when nothing
     * had been submitted, at most the first queue's worth otherwise). */
    printf("#   %lu refused submissions, %d completions before the clear\n",
           c.hits_at_clear - hits0, c.completed_at_clear);
    CHECK(c.hits_at_clear - hits0 >= 2);
    if (busy) {
        CHECK(c.completed_at_clear <= AIOLOOP_RAW_QUEUE_DEPTH);
    } else {
        CHECK_EQ(c.completed_at_clear, 0);
    }
    CHECK_EQ(bt->completed, NREQ);
    CHECK_EQ(blk_check_once(bt->reqs, NREQ, 0), 0);
    batch_verify(bt, 40);
    timer_free(timer);
    batch_fini(bt);
    free(bt);
}

static void test_refused_idle_then_cleared(void)
{
    refused_for_a_while(EAGAIN, false);
}

static void test_refused_busy_then_cleared(void)
{
    refused_for_a_while(ENOMEM, true);
}

/* A timer of our own that fires every 20 ms while the loop runs. */
typedef struct {
    QEMUTimer *timer;
    int ticks;
} Ticker;

static void ticker_count_cb(void *opaque)
{
    Ticker *k = opaque;

    k->ticks++;
    timer_mod(k->timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 20);
}

/*
 * A refusal that does not end. Linux AIO: after about a second with
 * nothing in flight the first waiting request fails with the error, and
 * the others go on. io_uring: its requests are in the ring already, so it
 * keeps retrying (the refused call is made again and again) and nothing
 * fails. Either way all is well once the fault is gone.
 *
 * "Retried all along" (a back-off of 10 ms at most) is checked against a
 * 20 ms ticker of our own on the same loop, not against the clock: a
 * loaded machine delays both alike. No wait has a time bound: a backend
 * that never gets going again is a hang (the watchdog).
 */
static void test_persistent_refusal(void)
{
    unsigned long hits0 = aioloop__fault_hits(submit_site), hits;
    bool laio = blk_engine == AIO_ENGINE_LINUX_AIO;
    Ticker k = { 0 };
    int completed = 0, done_refused, i;
    BlkReq reqs[3];
    int64_t t0, waited_ms;
    Blk t;

    REQUIRE(blk_setup(&t));
    for (i = 0; i < 3; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * 4096, 4096);
        pattern_fill(reqs[i].buf, 4096, 41, reqs[i].off);
    }
    aioloop__fault_inject(submit_site, 0, -1, EAGAIN);
    k.timer = aio_timer_new(t.ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                            ticker_count_cb, &k);
    timer_mod(k.timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 20);
    t0 = test_now_ns();
    for (i = 0; i < 3; i++) {
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_WRITE));
    }
    if (laio) {
        /* Until the first waiting request fails. */
        blk_wait(t.ctx, &completed, 1);
    } else {
        /* For 1.5 s (longer than Linux AIO's give-up time) and at least
         * 20 refused retries: none fails. */
        while (aioloop__fault_hits(submit_site) - hits0 < 20 ||
               test_now_ns() - t0 < 1500 * MS) {
            aio_poll(t.ctx, true);
        }
        CHECK_EQ(completed, 0);
    }
    waited_ms = (test_now_ns() - t0) / MS;
    hits = aioloop__fault_hits(submit_site) - hits0;
    done_refused = completed;
    timer_free(k.timer);
    aioloop__fault_clear();
    blk_wait(t.ctx, &completed, 3);
    poll_idle(t.ctx, 10);

    printf("#   %d completions after %lld ms of refusal, %lu refused "
           "submissions, %d ticks of a 20 ms timer\n", done_refused,
           (long long)waited_ms, hits, k.ticks);
    /* Retried all along: at least about as often as the 20 ms ticker. */
    CHECK(hits >= 20 || hits >= (unsigned long)k.ticks / 2);
    CHECK(hits >= 2);
    if (laio) {
        CHECK(waited_ms >= 500);    /* "about a second", not at once */
        CHECK_EQ(reqs[0].seq, 1);   /* the first waiting one failed */
        CHECK_EQ(blk_check_once(&reqs[0], 1, -EAGAIN), 0);
        CHECK_EQ(blk_check_once(&reqs[1], 2, 0), 0);
    } else {
        CHECK_EQ(blk_check_once(reqs, 3, 0), 0);
    }
    if (laio) {
        CHECK(file_is_zero(t.fd, 0, 4096));
        CHECK(file_has_pattern(t.fd, 4096, 2 * 4096, 41));
    } else {
        CHECK(file_has_pattern(t.fd, 0, 3 * 4096, 41));
    }
    for (i = 0; i < 3; i++) {
        blk_req_free(&reqs[i]);
    }
    blk_teardown(&t);
}

/*
 * Requests waiting in the local queue behind a refused submission can be
 * cancelled: 500 submitted while every submission is refused, so at least
 * 372 of them are in the local queue whichever the backend; two of those
 * are cancelled, then the refusal ends (timer, 100 ms later).
 */
static void test_cancel_while_refused(void)
{
    static const int victims[2] = { 250, NREQ - 1 };
    Batch *bt = calloc(1, sizeof(*bt));
    unsigned long hits0 = aioloop__fault_hits(submit_site);
    Clearer c = { 0 };
    QEMUTimer *timer;
    int i, bad = 0;

    REQUIRE(bt);
    REQUIRE(batch_init(bt, 42));
    c.completed = &bt->completed;
    timer = aio_timer_new(bt->t.ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                          clear_faults_cb, &c);
    aioloop__fault_inject(submit_site, 0, -1, EAGAIN);
    REQUIRE(batch_submit(bt, QEMU_AIO_WRITE));
    /* Let the backend meet the refusal a few times, then cancel. */
    poll_idle(bt->t.ctx, 20);
    CHECK_EQ(bt->completed, 0);
    for (i = 0; i < 2; i++) {
        bdrv_aio_cancel_async(bt->reqs[victims[i]].acb);
    }
    timer_mod(timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 100);
    blk_wait(bt->t.ctx, &bt->completed, NREQ);
    aioloop__fault_clear();
    poll_idle(bt->t.ctx, 10);

    CHECK(c.fired);
    CHECK(c.hits_at_clear - hits0 >= 2);
    for (i = 0; i < NREQ; i++) {
        BlkReq *r = &bt->reqs[i];
        bool victim = i == victims[0] || i == victims[1];

        if (r->runs != 1 || r->ret != (victim ? -ECANCELED : 0) ||
            !(victim ? file_is_zero(bt->t.fd, r->off, SECTOR)
                     : file_has_pattern(bt->t.fd, r->off, SECTOR, 42))) {
            if (bad++ < 5) {
                printf("#   request %d: %d callbacks, ret %d\n", i, r->runs,
                       r->ret);
            }
        }
    }
    CHECK_EQ(bad, 0);
    timer_free(timer);
    if (bt->completed < NREQ) {
        printf("#   %d of %d completed after the fault was cleared\n",
               bt->completed, NREQ);
        return;                 /* stranded: leak (see above) */
    }
    batch_fini(bt);
    free(bt);
}

/* 50 coroutines submitting while 3 submissions are refused. */
#define NCO 50

static void test_co_through_refusals(void)
{
    unsigned long hits0 = aioloop__fault_hits(submit_site);
    CoIo cs[NCO];
    uint8_t *bufs[NCO];
    QEMUIOVector qs[NCO];
    int finished = 0, bad = 0, i;
    Blk t;

    REQUIRE(blk_setup(&t));
    aioloop__fault_inject(submit_site, 0, 3, EAGAIN);
    co_writes_start(&t, cs, bufs, qs, NCO, 43, &finished);
    blk_wait(t.ctx, &finished, NCO);
    aioloop__fault_clear();

    CHECK_EQ(aioloop__fault_hits(submit_site) - hits0, 3);
    for (i = 0; i < NCO; i++) {
        if (cs[i].ret != 0 && bad++ < 5) {
            printf("#   coroutine %d: %s %d\n", i,
                   cs[i].done ? "returned" : "still waiting, ret", cs[i].ret);
        }
    }
    CHECK_EQ(bad, 0);
    if (finished < NCO) {
        printf("#   %d of %d coroutines finished\n", finished, NCO);
        return;                 /* stranded: leak (see above) */
    }
    for (i = 0; i < NCO; i++) {
        free(bufs[i]);
    }
    CHECK(file_has_pattern(t.fd, 0, NCO * SECTOR, 43));
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Set-up faults                                                       */

/* One write + read round trip on a new backend of engine @e. */
static bool backend_works(AioBlockEngine e)
{
    AioBlockBackend *b = aio_block_backend_new(e, &error_abort);
    AioContext *ctx = new_ctx();
    int fd = tmp_file_in(test_dir(), 0);
    CoIo c = { .b = b, .fd = fd, .type = QEMU_AIO_WRITE, .ret = 1 };
    uint8_t buf[SECTOR];
    QEMUIOVector q;
    bool ok;

    aio_block_backend_attach(b, ctx);
    pattern_fill(buf, SECTOR, 44, 0);
    qemu_iovec_init_buf(&q, buf, SECTOR);
    c.qiov = &q;
    co_start(ctx, co_io_entry, &c);
    while (!c.done) {
        aio_poll(ctx, true);
    }
    ok = c.ret == 0 && file_has_pattern(fd, 0, SECTOR, 44);
    aio_block_backend_detach(b, ctx);
    aio_block_backend_free(b);
    aio_context_unref(ctx);
    close(fd);
    return ok;
}

static void test_uring_init_fault(void)
{
    unsigned long hits0;
    Error *err = NULL;
    AioBlockBackend *b;

    /* Only meaningful where io_uring works without the fault. */
    b = aio_block_backend_new(AIO_ENGINE_IO_URING, &err);
    if (!b) {
        error_free(err);
        SKIP_CASE("io_uring unavailable here");
    }
    aio_block_backend_free(b);
    /* Without the fault, AUTO picks io_uring first. */
    b = aio_block_backend_new(AIO_ENGINE_AUTO, &error_abort);
    CHECK_EQ(aio_block_backend_engine(b), AIO_ENGINE_IO_URING);
    aio_block_backend_free(b);

    hits0 = aioloop__fault_hits(AIOLOOP_FAULT_URING_INIT);
    aioloop__fault_inject(AIOLOOP_FAULT_URING_INIT, 0, -1, ENOSYS);
    b = aio_block_backend_new(AIO_ENGINE_IO_URING, &err);
    CHECK(b == NULL);
    CHECK(err != NULL);
    if (err) {
        printf("#   io_uring error: %s\n", error_get_pretty(err));
        CHECK(strlen(error_get_pretty(err)) > 0);
        error_free(err);
        err = NULL;
    }
    aio_block_backend_free(b);
    CHECK(luring_init(&err) == NULL);
    CHECK(err != NULL);
    error_free(err);
    err = NULL;

    /* AUTO falls back to an engine that works. */
    b = aio_block_backend_new(AIO_ENGINE_AUTO, &err);
    CHECK(b != NULL);
    CHECK(err == NULL);
    if (b) {
        AioBlockEngine e = aio_block_backend_engine(b);

        printf("#   auto fell back to %s\n", aio_block_engine_name(e));
        CHECK(e == AIO_ENGINE_LINUX_AIO || e == AIO_ENGINE_THREADS);
        aio_block_backend_free(b);
        CHECK(backend_works(e));
    }
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_URING_INIT) - hits0 >= 3);
    aioloop__fault_clear();

    /* And io_uring works again once the fault is gone. */
    CHECK(backend_works(AIO_ENGINE_IO_URING));
}

static void test_io_setup_fault(void)
{
    unsigned long hits0;
    LinuxAioState *s;
    Error *err = NULL;
    AioBlockBackend *b;
    int saved;

    s = laio_init();
    if (!s) {
        SKIP_CASE("Linux AIO unavailable here");
    }
    laio_cleanup(s);

    /* One refused io_setup(): laio_init() fails with its errno... */
    hits0 = aioloop__fault_hits(AIOLOOP_FAULT_IO_SETUP);
    aioloop__fault_inject(AIOLOOP_FAULT_IO_SETUP, 0, 1, EAGAIN);
    errno = 0;
    s = laio_init();
    saved = errno;
    CHECK(s == NULL);
    CHECK_EQ(saved, EAGAIN);
    laio_cleanup(s);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_IO_SETUP) - hits0, 1);
    /* ...and only that one. */
    s = laio_init();
    CHECK(s != NULL);
    laio_cleanup(s);

    /* The named engine reports it through an Error. */
    aioloop__fault_inject(AIOLOOP_FAULT_IO_SETUP, 0, 1, EMFILE);
    b = aio_block_backend_new(AIO_ENGINE_LINUX_AIO, &err);
    CHECK(b == NULL);
    CHECK(err != NULL);
    if (err) {
        printf("#   linux-aio error: %s\n", error_get_pretty(err));
        CHECK(strlen(error_get_pretty(err)) > 0);
        error_free(err);
        err = NULL;
    }
    aio_block_backend_free(b);

    /* With io_uring and Linux AIO both refused, AUTO ends up on threads. */
    aioloop__fault_inject(AIOLOOP_FAULT_URING_INIT, 0, -1, ENOSYS);
    aioloop__fault_inject(AIOLOOP_FAULT_IO_SETUP, 0, -1, EAGAIN);
    b = aio_block_backend_new(AIO_ENGINE_AUTO, &err);
    CHECK(b != NULL);
    CHECK(err == NULL);
    if (b) {
        CHECK_EQ(aio_block_backend_engine(b), AIO_ENGINE_THREADS);
        aio_block_backend_free(b);
    }
    CHECK(aioloop__fault_hits(AIOLOOP_FAULT_IO_SETUP) - hits0 >= 3);
    aioloop__fault_clear();
    CHECK(backend_works(AIO_ENGINE_THREADS));
    CHECK(backend_works(AIO_ENGINE_LINUX_AIO));
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();
    switch (blk_engine) {
    case AIO_ENGINE_IO_URING:
        submit_site = AIOLOOP_FAULT_URING_SUBMIT;
        break;
    case AIO_ENGINE_LINUX_AIO:
        submit_site = AIOLOOP_FAULT_IO_SUBMIT;
        break;
    default:
        test_skip_all("the thread backend makes no submission system call");
    }

    RUN(test_eagain_idle);
    RUN(test_eagain_busy);
    RUN(test_enomem_idle);
    RUN(test_enomem_busy);
    RUN(test_one_refusal_few_requests);
    RUN(test_refusal_behind_in_flight);
    RUN(test_refused_idle_then_cleared);
    RUN(test_refused_busy_then_cleared);
    RUN(test_persistent_refusal);
    RUN(test_cancel_while_refused);
    RUN(test_co_through_refusals);
    RUN(test_uring_init_fault);
    RUN(test_io_setup_fault);
    return test_done();
}
