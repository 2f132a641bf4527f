/*
 * test-faults-block.c - the block backends (AioBlockBackend) under the
 * faults their set-up and their I/O can meet, on the engine that
 * AIOLOOP_TEST_ENGINE names (tests/block/test-block-faults.c covers the
 * submission refusals, EAGAIN/ENOMEM, in depth):
 *
 *   - the completion eventfd cannot be made: luring_init / the io_uring
 *     engine fail with an Error, laio_init with NULL and errno, the
 *     thread engine needs none, AIO_ENGINE_AUTO falls through to it;
 *   - allocation failure sweep over aio_block_backend_new();
 *   - epoll_ctl refusing the completion eventfd at attach: the context
 *     falls back to ppoll and every request still completes;
 *   - io_submit / io_uring_submit interrupted (EINTR): retried at once;
 *   - the thread backend's preadv/pwritev/fdatasync interrupted (EINTR:
 *     retried, never reported) or failing (EIO: that request alone gets
 *     -EIO);
 *   - the thread pool unable to start workers: requests wait for the
 *     retry, or complete with -EAGAIN after a second, exactly once;
 *   - coroutines doing I/O while all of the above happens at random.
 *
 * Every request is counted: each completes exactly once; data written is
 * read back and checked.
 *
 * SPDX-License-Identifier: MIT
 */
#include "faults-test.h"
#include "block/block-test.h"


#define NREQ 200

/* The submission site of this run's engine, or -1 (threads). */
static int submit_site = -1;

static bool error_says(Error *err, int errnum)
{
    const char *msg = err ? error_get_pretty(err) : "";

    if (!strstr(msg, strerror(errnum))) {
        printf("#   error '%s' does not say '%s'\n", msg, strerror(errnum));
        return false;
    }
    return true;
}

/* NREQ writes of 512 bytes (pattern @seed), then NREQ reads, on @t;
 * each completes once with 0 unless @want_err; returns how many got
 * something else than @want (printed). With @want_err, requests may
 * also fail with it: *@failed counts them. */
static int write_read_all(Blk *t, uint32_t seed, int want_err, int *failed)
{
    BlkReq *reqs = calloc(NREQ, sizeof(*reqs));
    int completed = 0, bad = 0, fails = 0;

    for (int i = 0; i < NREQ; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * SECTOR, SECTOR);
        pattern_fill(reqs[i].buf, SECTOR, seed, reqs[i].off);
        if (!blk_req_submit(t, &reqs[i], QEMU_AIO_WRITE)) {
            bad++;
        }
    }
    blk_wait(t->ctx, &completed, NREQ);     /* stranded ones: a hang */
    for (int i = 0; i < NREQ; i++) {
        if (reqs[i].runs != 1) {
            bad++;
        } else if (reqs[i].ret == want_err && want_err) {
            fails++;
        } else if (reqs[i].ret != 0) {
            printf("#   write %d: ret %d\n", i, reqs[i].ret);
            bad++;
        } else if (!file_has_pattern(t->fd, reqs[i].off, SECTOR, seed)) {
            bad++;
        }
    }
    completed = 0;
    for (int i = 0; i < NREQ; i++) {
        memset(reqs[i].buf, 0xAA, SECTOR);
        reqs[i].runs = 0;
        if (!blk_req_submit(t, &reqs[i], QEMU_AIO_READ)) {
            bad++;
        }
    }
    blk_wait(t->ctx, &completed, NREQ);
    for (int i = 0; i < NREQ; i++) {
        if (reqs[i].runs != 1) {
            bad++;
        } else if (reqs[i].ret == want_err && want_err) {
            fails++;
        } else if (reqs[i].ret != 0) {
            printf("#   read %d: ret %d\n", i, reqs[i].ret);
            bad++;
        }
        blk_req_free(&reqs[i]);
    }
    free(reqs);
    if (failed) {
        *failed = fails;
    }
    return bad;
}

/* One flush through the backend; returns its result. */
static int flush_once(Blk *t)
{
    int completed = 0;
    BlkReq r;
    int ret;

    blk_req_init(&r, &completed, 0, 0);
    r.acb = aio_block_submit(t->b, t->fd, 0, NULL, QEMU_AIO_FLUSH,
                             blk_req_cb, &r);
    if (!r.acb) {
        return 1;
    }
    blk_wait(t->ctx, &completed, 1);
    ret = r.runs == 1 ? r.ret : 2;
    blk_req_free(&r);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                              */

static void test_eventfd_fails(void)
{
    int fds0 = test_count_fds();
    Error *err = NULL;
    AioBlockBackend *b;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, -1, EMFILE);
    b = aio_block_backend_new(blk_engine, &err);
    if (blk_engine == AIO_ENGINE_THREADS) {
        CHECK(b != NULL);       /* no eventfd needed */
        aio_block_backend_free(b);
        CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EVENTFD) -
                 faults__before[AIOLOOP_FAULT_EVENTFD], 0);
    } else {
        CHECK(b == NULL);
        CHECK(err && error_says(err, EMFILE));
        if (err) {
            printf("#   %s\n", error_get_pretty(err));
        }
        error_free(err);
        err = NULL;
    }
    if (blk_engine == AIO_ENGINE_LINUX_AIO) {
        errno = 0;
        CHECK(laio_init() == NULL);
        CHECK_EQ(errno, EMFILE);
    }
    if (blk_engine == AIO_ENGINE_IO_URING) {
        CHECK(luring_init(&err) == NULL);
        CHECK(err && error_says(err, EMFILE));
        error_free(err);
        err = NULL;
    }
    /* AUTO: neither kernel engine can start; threads can. */
    b = aio_block_backend_new(AIO_ENGINE_AUTO, &err);
    CHECK(b != NULL);
    CHECK(err == NULL);
    if (b) {
        CHECK_EQ(aio_block_backend_engine(b), AIO_ENGINE_THREADS);
        aio_block_backend_free(b);
    }
    aioloop__fault_clear();
    CHECK_EQ(test_count_fds(), fds0);
}

static void test_alloc_sweep(void)
{
    int fds0 = test_count_fds();

    for (unsigned n = 0; n < 100; n++) {
        AioloopFaultPlan plan = { .skip = n, .count = 1, .err = ENOMEM,
                                  .this_thread = true };
        unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_ALLOC);
        Error *err = NULL;
        AioBlockBackend *b;

        aioloop__fault_arm(AIOLOOP_FAULT_ALLOC, &plan);
        b = aio_block_backend_new(blk_engine, &err);
        aioloop__fault_clear_site(AIOLOOP_FAULT_ALLOC);
        if (aioloop__fault_hits(AIOLOOP_FAULT_ALLOC) == hits0) {
            CHECK(b != NULL);
            printf("#   aio_block_backend_new(%s) makes %u allocations\n",
                   aio_block_engine_name(blk_engine), n);
            CHECK(n >= 2);
            aio_block_backend_free(b);
            CHECK_EQ(test_count_fds(), fds0);
            return;
        }
        CHECK(b == NULL);
        CHECK(err && error_says(err, ENOMEM));
        CHECK_EQ(test_count_fds(), fds0);
        error_free(err);
        if (b) {
            aio_block_backend_free(b);
            return;
        }
    }
    CHECK(0);
}

/* The completion eventfd refused by epoll at attach: ppoll, I/O works. */
static void test_attach_epoll_ctl_fails(void)
{
    const char *m = getenv("AIOLOOP_FDMON");
    Blk t;

    if (blk_engine == AIO_ENGINE_THREADS) {
        SKIP_CASE("the thread engine registers no descriptor");
    }
    if (m && strcmp(m, "poll") == 0) {
        SKIP_CASE("AIOLOOP_FDMON=poll");
    }
    t.fd = tmp_file_in(test_dir(), 0);
    REQUIRE(t.fd >= 0);
    t.ctx = new_ctx();
    t.b = aio_block_backend_new(blk_engine, &error_abort);
    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    aio_block_backend_attach(t.b, t.ctx);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CTL) -
             faults__before[AIOLOOP_FAULT_EPOLL_CTL], 1);
    CHECK(strcmp(aio_context_fdmon_name(t.ctx), "poll") == 0);
    CHECK_EQ(write_read_all(&t, 50, 0, NULL), 0);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Interrupted and failing system calls                                */

static void test_submit_eintr(void)
{
    Blk t;
    int64_t t0;

    if (submit_site < 0) {
        SKIP_CASE("the thread engine makes no submission system call");
    }
    REQUIRE(blk_setup(&t));
    aioloop__fault_inject((AioloopFaultSite)submit_site, 0, 20, EINTR);
    t0 = test_now_ns();
    CHECK_EQ(write_read_all(&t, 51, 0, NULL), 0);
    printf("#   %d requests in %lld us\n", 2 * NREQ,
           (long long)(test_now_ns() - t0) / 1000);
    /* Retried at once: no back-off timer involved. */
    CHECK_EQ(aioloop__fault_hits((AioloopFaultSite)submit_site) -
             faults__before[submit_site], 20);
    blk_teardown(&t);
}

static void test_thread_io_eintr(void)
{
    unsigned long hits;
    Blk t;

    if (blk_engine != AIO_ENGINE_THREADS) {
        SKIP_CASE("only the thread engine calls preadv/pwritev itself");
    }
    REQUIRE(blk_setup(&t));
    /* Half the calls interrupted, flushes included: none reports it. */
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_IO, 500000, 3, EINTR);
    CHECK_EQ(write_read_all(&t, 52, 0, NULL), 0);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(flush_once(&t), 0);
    }
    aioloop__fault_clear();
    hits = aioloop__fault_hits(AIOLOOP_FAULT_THREAD_IO) -
           faults__before[AIOLOOP_FAULT_THREAD_IO];
    printf("#   %lu interrupted calls\n", hits);
    CHECK(hits >= 100);

    /* A flush interrupted every time for a while (fdatasync EINTR was
     * once returned to the caller as -EINTR). */
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_IO, 0, 5, EINTR);
    CHECK_EQ(flush_once(&t), 0);
    blk_teardown(&t);
}

static void test_thread_io_eio(void)
{
    int failed = -1;
    Blk t;

    if (blk_engine != AIO_ENGINE_THREADS) {
        SKIP_CASE("only the thread engine calls preadv/pwritev itself");
    }
    REQUIRE(blk_setup(&t));
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_IO, 10, 3, EIO);
    CHECK_EQ(write_read_all(&t, 53, -EIO, &failed), 0);
    CHECK_EQ(failed, 3);
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_IO, 0, 1, EIO);
    CHECK_EQ(flush_once(&t), -EIO);
    CHECK_EQ(flush_once(&t), 0);
    blk_teardown(&t);
}

/* Workers that cannot be started: the thread engine's requests (and the
 * kernel engines' pool fallbacks) wait, then go through. */
static void test_pool_spawn_fails(void)
{
    int completed = 0;
    BlkReq r;
    Blk t;

    REQUIRE(blk_setup(&t));
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, 3, EAGAIN);
    CHECK_EQ(write_read_all(&t, 54, 0, NULL), 0);
    if (blk_engine != AIO_ENGINE_THREADS) {
        blk_teardown(&t);
        SKIP_CASE("requests of this engine do not need workers");
    }
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) -
             faults__before[AIOLOOP_FAULT_THREAD_CREATE], 3);
    blk_teardown(&t);

    /* With no worker ever starting, a request fails with -EAGAIN after a
     * second, once. (A fresh context: its pool has no worker.) */
    REQUIRE(blk_setup(&t));
    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, -1, EAGAIN);
    blk_req_init(&r, &completed, 0, SECTOR);
    REQUIRE(blk_req_submit(&t, &r, QEMU_AIO_WRITE));
    blk_wait(t.ctx, &completed, 1);
    aioloop__fault_clear();
    poll_idle(t.ctx, 10);
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.ret, -EAGAIN);
    CHECK(file_is_zero(t.fd, 0, SECTOR));
    blk_req_free(&r);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Coroutines through random faults                                    */

static void test_co_random_faults(void)
{
    enum { NCO = 64 };
    CoIo cs[NCO];
    uint8_t *bufs[NCO];
    QEMUIOVector qs[NCO];
    int finished = 0, bad = 0;
    Blk t;

    REQUIRE(blk_setup(&t));
    if (submit_site >= 0) {
        aioloop__fault_inject_random((AioloopFaultSite)submit_site, 300000,
                                     11, EAGAIN);
    }
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_IO, 300000, 12, EINTR);
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_CREATE, 300000, 13,
                                 EAGAIN);
    aioloop__fault_inject_random(AIOLOOP_FAULT_FDMON_WAIT, 100000, 14, EINTR);
    co_writes_start(&t, cs, bufs, qs, NCO, 55, &finished);
    blk_wait(t.ctx, &finished, NCO);
    aioloop__fault_clear();
    poll_idle(t.ctx, 10);
    for (int i = 0; i < NCO; i++) {
        if (!cs[i].done || cs[i].ret != 0) {
            if (bad++ < 5) {
                printf("#   coroutine %d: done %d, ret %d\n", i, cs[i].done,
                       cs[i].ret);
            }
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(finished, NCO);
    if (finished < NCO) {
        return;                 /* stranded: leak rather than assert */
    }
    CHECK(file_has_pattern(t.fd, 0, NCO * SECTOR, 55));
    for (int i = 0; i < NCO; i++) {
        free(bufs[i]);
    }
    blk_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();
    if (blk_engine == AIO_ENGINE_IO_URING) {
        submit_site = AIOLOOP_FAULT_URING_SUBMIT;
    } else if (blk_engine == AIO_ENGINE_LINUX_AIO) {
        submit_site = AIOLOOP_FAULT_IO_SUBMIT;
    }
    FRUN(test_eventfd_fails);
    FRUN(test_alloc_sweep);
    FRUN(test_attach_epoll_ctl_fails);
    FRUN(test_submit_eintr);
    FRUN(test_thread_io_eintr);
    FRUN(test_thread_io_eio);
    FRUN(test_pool_spawn_fails);
    FRUN(test_co_random_faults);
    fault_summary();
    return test_done();
}
