/*
 * test-block-iothread.c - a block backend that moves between threads.
 *
 * A backend is created in the main thread, attached to an IOThread's
 * context (from that thread), used there by coroutines, detached, then
 * attached to the main context and used from the main thread, then moved
 * to a second IOThread. For io_uring this exercises the single-issuer
 * ring: it is enabled by the first attach and re-created when a later
 * attach comes from another thread. Several IOThreads also run their own
 * backends at once on one shared file (different regions), which is the
 * multi-threaded case ThreadSanitizer checks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "block/block-test.h"


#define CHUNK   (16 * 1024)
#define NCHUNKS 32                      /* per round */
#define NCO     8                       /* coroutines per round */

/* One round of I/O: NCO coroutines write NCHUNKS chunks at @base, read
 * them back and verify, all in the context the backend is attached to. */
typedef struct Round {
    AioBlockBackend *b;
    AioContext *ctx;
    int fd;
    uint64_t base;
    uint32_t seed;
    int next;                           /* next chunk to take */
    int running;                        /* coroutines not finished */
    int errors;                         /* failed requests or data */
    QemuEvent done;                     /* set when the round is over */
} Round;

static void coroutine_fn round_co(void *opaque)
{
    Round *r = opaque;
    uint8_t *buf = aligned_buf(CHUNK);
    QEMUIOVector qiov;

    qemu_iovec_init_buf(&qiov, buf, CHUNK);
    while (r->next < NCHUNKS) {
        uint64_t pos = r->base + (uint64_t)r->next++ * CHUNK;

        pattern_fill(buf, CHUNK, r->seed, pos);
        if (aio_block_co_submit(r->b, r->fd, pos, &qiov, QEMU_AIO_WRITE) != 0) {
            r->errors++;
        }
        memset(buf, 0xAA, CHUNK);
        if (aio_block_co_submit(r->b, r->fd, pos, &qiov, QEMU_AIO_READ) != 0 ||
            !pattern_check(buf, CHUNK, r->seed, pos)) {
            r->errors++;
        }
        /* The coroutine stays in the backend's context. */
        if (qemu_coroutine_get_aio_context(qemu_coroutine_self()) != r->ctx) {
            r->errors++;
        }
    }
    free(buf);
    if (--r->running == 0) {
        qemu_event_set(&r->done);
    }
}

/* In the backend's context thread: attach, start the coroutines. */
static void round_start_bh(void *opaque)
{
    Round *r = opaque;

    aio_block_backend_attach(r->b, r->ctx);
    r->running = NCO;
    for (int i = 0; i < NCO; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(round_co, r));
    }
}

/* In the backend's context thread, after the round: detach. */
static void round_stop_bh(void *opaque)
{
    Round *r = opaque;

    aio_block_backend_detach(r->b, r->ctx);
    qemu_event_set(&r->done);
}

static void round_init(Round *r, AioBlockBackend *b, AioContext *ctx, int fd,
                       uint64_t base, uint32_t seed)
{
    memset(r, 0, sizeof(*r));
    r->b = b;
    r->ctx = ctx;
    r->fd = fd;
    r->base = base;
    r->seed = seed;
    qemu_event_init(&r->done, false);
}

/* Runs a round in an IOThread's context and waits for it. */
static void round_in_iothread(Round *r)
{
    aio_bh_schedule_oneshot(r->ctx, round_start_bh, r);
    qemu_event_wait(&r->done);
    qemu_event_reset(&r->done);
    aio_bh_schedule_oneshot(r->ctx, round_stop_bh, r);
    qemu_event_wait(&r->done);
}

/* Runs a round in the main thread's context. */
static void round_in_main(Round *r)
{
    /* From the context's own aio_poll(), so that the coroutines belong
     * to it. */
    aio_bh_schedule_oneshot(r->ctx, round_start_bh, r);
    aio_poll(r->ctx, true);
    while (r->running) {
        aio_poll(r->ctx, true);
    }
    aio_block_backend_detach(r->b, r->ctx);
}

static void test_move_between_threads(void)
{
    IOThread *io1 = iothread_create("blk-io1", &error_abort);
    IOThread *io2 = iothread_create("blk-io2", &error_abort);
    AioContext *main_ctx = new_ctx();
    AioBlockBackend *b = aio_block_backend_new(blk_engine, &error_abort);
    int fd = tmp_file_in(test_dir(), 0);
    Round r;

    REQUIRE(fd >= 0);
    CHECK_EQ(aio_block_backend_engine(b), blk_engine);

    round_init(&r, b, iothread_get_aio_context(io1), fd, 0, 1);
    round_in_iothread(&r);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.next, NCHUNKS);
    qemu_event_destroy(&r.done);

    round_init(&r, b, main_ctx, fd, NCHUNKS * CHUNK, 2);
    round_in_main(&r);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.next, NCHUNKS);
    qemu_event_destroy(&r.done);

    round_init(&r, b, iothread_get_aio_context(io2), fd, 2 * NCHUNKS * CHUNK, 3);
    round_in_iothread(&r);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.next, NCHUNKS);
    qemu_event_destroy(&r.done);

    /* Everything written in the three threads is in the file. */
    CHECK(file_has_pattern(fd, 0, NCHUNKS * CHUNK, 1));
    CHECK(file_has_pattern(fd, NCHUNKS * CHUNK, NCHUNKS * CHUNK, 2));
    CHECK(file_has_pattern(fd, 2 * NCHUNKS * CHUNK, NCHUNKS * CHUNK, 3));

    aio_block_backend_free(b);
    close(fd);
    iothread_destroy(io1);
    iothread_destroy(io2);
    aio_context_unref(main_ctx);
}

#define NTHREADS 3

static void test_concurrent_iothreads(void)
{
    IOThread *io[NTHREADS];
    AioBlockBackend *b[NTHREADS];
    Round r[NTHREADS];
    int fd = tmp_file_in(test_dir(), 0);

    REQUIRE(fd >= 0);
    for (int i = 0; i < NTHREADS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "blk-c%d", i);
        io[i] = iothread_create(name, &error_abort);
        b[i] = aio_block_backend_new(blk_engine, &error_abort);
        round_init(&r[i], b[i], iothread_get_aio_context(io[i]), fd,
                   (uint64_t)i * NCHUNKS * CHUNK, 10 + (uint32_t)i);
        aio_bh_schedule_oneshot(r[i].ctx, round_start_bh, &r[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        qemu_event_wait(&r[i].done);
        qemu_event_reset(&r[i].done);
        aio_bh_schedule_oneshot(r[i].ctx, round_stop_bh, &r[i]);
        qemu_event_wait(&r[i].done);
        CHECK_EQ(r[i].errors, 0);
        CHECK(file_has_pattern(fd, (uint64_t)i * NCHUNKS * CHUNK,
                               NCHUNKS * CHUNK, 10 + (uint32_t)i));
        qemu_event_destroy(&r[i].done);
        aio_block_backend_free(b[i]);
        iothread_destroy(io[i]);
    }
    close(fd);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();
    RUN(test_move_between_threads);
    RUN(test_concurrent_iothreads);
    return test_done();
}
