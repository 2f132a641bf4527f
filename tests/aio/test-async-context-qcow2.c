/*
 * test-async-context-qcow2.c - the case QEMU introduced AsyncContexts
 * for: inside a completion callback, a "synchronous" read emulated with
 * AIO (push, submit, qemu_aio_wait until done, pop) must not run other
 * requests' callbacks nor the parent's bottom halves, fd handlers or
 * timers; those are held and run after the pop. With a thread-pool job,
 * with block reads through a backend attached to the level, and with the
 * nested read in a coroutine.
 *
 * Every case initialises the main loop and cleans it up (begin/end in
 * async-context-test.h), so that ASan sees every context freed. Meson
 * runs this program once per fd monitor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>

#include "async-context-test.h"

/* ------------------------------------------------------------------ */
/* The qcow2 scenario                                                  */

/*
 * Request A (root thread pool) completes; its callback emulates a
 * synchronous read: push, submit request C to the pool of the pushed
 * level, qemu_aio_wait() until C completes, pop. Meanwhile request B of
 * the root pool has finished and its completion is queued, a root BH is
 * scheduled, a main-loop fd handler is ready and a main-loop timer has
 * expired: none of them may run before the pop. They all run afterwards.
 */
typedef struct Qcow2 {
    AioContext *root, *child;
    bool nested;                /* inside A's push .. pop */
    QemuSemaphore b_go;
    int b_func_done;            /* atomic */
    int a_runs, b_runs, c_runs, bh_runs, fd_runs, timer_runs;
    int b_ret, c_ret;
    int c_id;
    AioContext *c_ctx;
    QEMUBH *parent_bh;
    QEMUTimer *timer;
    int pipe[2];
    int bad;                    /* a parent callback ran while nested */
} Qcow2;

static Qcow2 q2;

static int a_fn(void *opaque)
{
    (void)opaque;
    return 0;
}

static int b_fn(void *opaque)
{
    Qcow2 *s = opaque;

    qemu_sem_wait(&s->b_go);            /* finish while A's callback runs */
    qatomic_set(&s->b_func_done, 1);
    return 7;
}

static int c_fn(void *opaque)
{
    (void)opaque;
    return 42;
}

static void b_cb(void *opaque, int ret)
{
    Qcow2 *s = opaque;

    s->bad += s->nested;
    s->b_runs++;
    s->b_ret = ret;
}

static void c_cb(void *opaque, int ret)
{
    Qcow2 *s = opaque;

    s->c_runs++;
    s->c_ret = ret;
    s->c_id = get_async_context_id();
    s->c_ctx = qemu_get_current_aio_context();
}

static void parent_bh_cb(void *opaque)
{
    Qcow2 *s = opaque;

    s->bad += s->nested;
    s->bh_runs++;
}

static void parent_fd_cb(void *opaque)
{
    Qcow2 *s = opaque;

    s->bad += s->nested;
    s->fd_runs++;
    drain_fd(s->pipe[0]);
}

static void parent_timer_cb(void *opaque)
{
    Qcow2 *s = opaque;

    s->bad += s->nested;
    s->timer_runs++;
}

/* Emulated synchronous read, inside a completion callback of the root. */
static void a_cb(void *opaque, int ret)
{
    Qcow2 *s = opaque;

    CHECK_EQ(ret, 0);
    CHECK_EQ(get_async_context_id(), 0);
    s->a_runs++;

    /* Let B finish and wait until its completion is queued on the root
     * (the pool's completion BH scheduled: the root's timeout drops to 0;
     * nothing else is pending there yet). */
    qemu_sem_post(&s->b_go);
    while (!qatomic_read(&s->b_func_done) ||
           aio_compute_timeout(s->root) != 0) {
        sleep_us(100);
    }
    /* More parent work, all ready now. */
    qemu_bh_schedule(s->parent_bh);
    write_byte(s->pipe[1]);
    timer_mod_ns(s->timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));

    s->nested = true;
    async_context_push();
    CHECK_EQ(get_async_context_id(), 1);
    s->child = qemu_get_current_aio_context();
    CHECK(s->child != s->root);
    thread_pool_submit_aio(aio_get_thread_pool(s->child), c_fn, NULL,
                           c_cb, s);
    while (!s->c_runs) {
        qemu_aio_wait();
    }
    /* Nothing of the parent runs at this level, whatever loop we turn. */
    main_loop_wait(true);
    qemu_bh_poll();
    CHECK_EQ(s->b_runs + s->bh_runs + s->fd_runs + s->timer_runs, 0);
    async_context_pop();
    s->nested = false;
    CHECK_EQ(get_async_context_id(), 0);
    CHECK_EQ(s->b_runs + s->bh_runs + s->fd_runs + s->timer_runs, 0);
}

static void test_qcow2_sync_read_thread_pool(void)
{
    Qcow2 *s = &q2;
    ThreadPool *pool;

    begin();
    memset(s, 0, sizeof(*s));
    s->root = qemu_get_aio_context();
    qemu_sem_init(&s->b_go, 0);
    make_pipe(s->pipe);
    s->parent_bh = qemu_bh_new(parent_bh_cb, s);
    s->timer = timer_new_ns(QEMU_CLOCK_REALTIME, parent_timer_cb, s);
    qemu_set_fd_handler(s->pipe[0], parent_fd_cb, NULL, s);

    pool = aio_get_thread_pool(s->root);
    thread_pool_submit_aio(pool, a_fn, NULL, a_cb, s);
    thread_pool_submit_aio(pool, b_fn, s, b_cb, s);
    while (!(s->a_runs && s->b_runs && s->bh_runs && s->fd_runs &&
             s->timer_runs)) {
        main_loop_wait(false);
    }
    CHECK_EQ(s->bad, 0);
    CHECK_EQ(s->a_runs, 1);
    CHECK_EQ(s->b_runs, 1);
    CHECK_EQ(s->b_ret, 7);
    CHECK_EQ(s->c_runs, 1);
    CHECK_EQ(s->c_ret, 42);
    CHECK_EQ(s->c_id, 1);
    CHECK(s->c_ctx == s->child);
    CHECK_EQ(s->bh_runs, 1);
    CHECK_EQ(s->fd_runs, 1);
    CHECK_EQ(s->timer_runs, 1);

    qemu_set_fd_handler(s->pipe[0], NULL, NULL, NULL);
    timer_free(s->timer);
    qemu_bh_delete(s->parent_bh);
    close(s->pipe[0]);
    close(s->pipe[1]);
    qemu_sem_destroy(&s->b_go);
    end();
}

/* The same with block reads: the nested read goes through a backend
 * attached to the pushed level, while a read of a backend attached to the
 * root is in flight; on every engine the kernel allows. */
#define BLK_FILE_SIZE (64 * 1024)
#define BLK_READ_SIZE 4096

typedef struct BlkRead {
    bool nested;
    int fd;
    AioBlockBackend *root_be, *child_be;
    unsigned char *root_buf, *child_buf;
    QEMUIOVector root_qiov, child_qiov;
    int root_runs, child_runs, root_ret, child_ret;
    int trigger_runs;
    int bad;
} BlkRead;

static unsigned char pattern_byte(uint64_t off)
{
    return (unsigned char)(off * 7 + (off >> 12) + 1);
}

static bool buf_matches(const unsigned char *buf, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != pattern_byte(off + i)) {
            return false;
        }
    }
    return true;
}

static void blk_root_cb(void *opaque, int ret)
{
    BlkRead *s = opaque;

    s->bad += s->nested;
    s->root_runs++;
    s->root_ret = ret;
}

static void blk_child_cb(void *opaque, int ret)
{
    BlkRead *s = opaque;

    s->child_runs++;
    s->child_ret = ret;
}

static void blk_trigger_cb(void *opaque, int ret)
{
    BlkRead *s = opaque;
    AioContext *child;

    (void)ret;
    s->trigger_runs++;
    /* Another request of the root, in flight through the nested read. */
    aio_block_submit(s->root_be, s->fd, 0, &s->root_qiov, QEMU_AIO_READ,
                     blk_root_cb, s);

    s->nested = true;
    async_context_push();
    child = qemu_get_current_aio_context();
    aio_block_backend_attach(s->child_be, child);
    aio_block_submit(s->child_be, s->fd, 2 * BLK_READ_SIZE, &s->child_qiov,
                     QEMU_AIO_READ, blk_child_cb, s);
    while (!s->child_runs) {
        qemu_aio_wait();
    }
    /* Give the root's read time to finish in the kernel, so that its
     * completion is really there and held (not needed for correctness). */
    sleep_ms(5);
    main_loop_wait(true);
    CHECK_EQ(s->root_runs, 0);
    aio_block_backend_detach(s->child_be, child);
    async_context_pop();
    s->nested = false;
    CHECK_EQ(s->root_runs, 0);
}

static void test_qcow2_sync_read_block(void)
{
    static const AioBlockEngine engines[] = {
        AIO_ENGINE_IO_URING, AIO_ENGINE_LINUX_AIO, AIO_ENGINE_THREADS,
    };
    char path[] = "./test-async-context-XXXXXX";
    unsigned char *data;
    int ran = 0;

    begin();
    {
        int fd = mkstemp(path);

        REQUIRE(fd >= 0);
        unlink(path);
        data = malloc(BLK_FILE_SIZE);
        REQUIRE(data != NULL);
        for (size_t i = 0; i < BLK_FILE_SIZE; i++) {
            data[i] = pattern_byte(i);
        }
        REQUIRE(pwrite(fd, data, BLK_FILE_SIZE, 0) == BLK_FILE_SIZE);
        free(data);

        for (size_t e = 0; e < ARRAY_SIZE(engines); e++) {
            BlkRead s;
            Error *err = NULL;

            memset(&s, 0, sizeof(s));
            s.fd = fd;
            s.root_be = aio_block_backend_new(engines[e], &err);
            if (!s.root_be) {
                printf("# %s unavailable: %s\n",
                       aio_block_engine_name(engines[e]),
                       error_get_pretty(err));
                error_free(err);
                continue;
            }
            s.child_be = aio_block_backend_new(engines[e], &error_abort);
            s.root_buf = calloc(1, BLK_READ_SIZE);
            s.child_buf = calloc(1, BLK_READ_SIZE);
            REQUIRE(s.root_buf && s.child_buf);
            qemu_iovec_init_buf(&s.root_qiov, s.root_buf, BLK_READ_SIZE);
            qemu_iovec_init_buf(&s.child_qiov, s.child_buf, BLK_READ_SIZE);
            aio_block_backend_attach(s.root_be, qemu_get_aio_context());

            thread_pool_submit_aio(aio_get_thread_pool(qemu_get_aio_context()),
                                   a_fn, NULL, blk_trigger_cb, &s);
            while (!(s.trigger_runs && s.root_runs)) {
                main_loop_wait(false);
            }
            CHECK_EQ(s.bad, 0);
            CHECK_EQ(s.trigger_runs, 1);
            CHECK_EQ(s.child_runs, 1);
            CHECK_EQ(s.child_ret, 0);
            CHECK(buf_matches(s.child_buf, 2 * BLK_READ_SIZE, BLK_READ_SIZE));
            CHECK_EQ(s.root_runs, 1);
            CHECK_EQ(s.root_ret, 0);
            CHECK(buf_matches(s.root_buf, 0, BLK_READ_SIZE));

            aio_block_backend_detach(s.root_be, qemu_get_aio_context());
            aio_block_backend_free(s.root_be);
            aio_block_backend_free(s.child_be);
            qemu_iovec_destroy(&s.root_qiov);
            qemu_iovec_destroy(&s.child_qiov);
            free(s.root_buf);
            free(s.child_buf);
            ran++;
        }
        close(fd);
    }
    CHECK(ran > 0);     /* the thread engine is always there */
    end();
}

/* The nested read from a coroutine: created and entered inside a root
 * callback after the push, it belongs to the pushed level, and
 * thread_pool_submit_co() on the level's pool wakes it from the level's
 * loop. */
typedef struct CoRead {
    bool nested;
    int co_ret, co_done, co_id;
    AioContext *co_ctx;
    int other_runs, bad;
} CoRead;

static void coroutine_fn co_read(void *opaque)
{
    CoRead *s = opaque;

    s->co_ret = thread_pool_submit_co(
        aio_get_thread_pool(qemu_get_current_aio_context()), c_fn, NULL);
    s->co_id = get_async_context_id();
    s->co_ctx = qemu_get_current_aio_context();
    s->co_done = 1;
}

static void co_other_cb(void *opaque, int ret)
{
    CoRead *s = opaque;

    (void)ret;
    s->bad += s->nested;
    s->other_runs++;
}

static void co_trigger_cb(void *opaque)
{
    CoRead *s = opaque;
    AioContext *root = qemu_get_aio_context();

    /* Another request of the root, completing during the nested read. */
    thread_pool_submit_aio(aio_get_thread_pool(root), a_fn, NULL,
                           co_other_cb, s);
    s->nested = true;
    async_context_push();
    qemu_coroutine_enter(qemu_coroutine_create(co_read, s));
    CHECK(!s->co_done);                     /* waits for the pool */
    while (!s->co_done) {
        qemu_aio_wait();
    }
    async_context_pop();
    s->nested = false;
}

static void test_nested_read_in_coroutine(void)
{
    CoRead s;
    QEMUBH *bh;

    begin();
    memset(&s, 0, sizeof(s));
    bh = qemu_bh_new(co_trigger_cb, &s);
    qemu_bh_schedule(bh);
    main_loop_wait(true);
    CHECK_EQ(s.co_done, 1);
    CHECK_EQ(s.co_ret, 42);
    CHECK_EQ(s.co_id, 1);
    CHECK(s.co_ctx != qemu_get_aio_context());
    while (!s.other_runs) {
        main_loop_wait(false);
    }
    CHECK_EQ(s.other_runs, 1);
    CHECK_EQ(s.bad, 0);
    qemu_bh_delete(bh);
    end();
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_qcow2_sync_read_thread_pool);
    RUN(test_qcow2_sync_read_block);
    RUN(test_nested_read_in_coroutine);
    return test_done();
}
