/*
 * test-async-context.c - the nested AsyncContext stack of the main loop
 * (async_context_push/pop, get_async_context_id, qemu_aio_wait,
 * qemu_bh_poll, and what main_loop_wait, qemu_bh_new,
 * qemu_get_current_aio_context and qemu_set_fd_handler do while pushed).
 *
 * The central case is the one QEMU introduced AsyncContexts for: inside a
 * completion callback, a "synchronous" read emulated with AIO (push,
 * submit, qemu_aio_wait until done, pop) must not run other requests'
 * callbacks nor the parent's bottom halves, fd handlers or timers; those
 * are held and run after the pop.
 *
 * The death tests fork; they run first, while the program has no other
 * threads. Every other case initialises the main loop and cleans it up,
 * so that ASan sees every context freed.
 *
 * Meson runs this program once per fd monitor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/config.h>
#if AIOLOOP_HAVE_GLIB
#include <glib.h>
#endif
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>

#include "aio-test.h"
#include "util/death-test.h"
#include "fd-count.h"


/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void begin(void)
{
    qemu_init_main_loop(&error_abort);
}

/* Leaves the stack balanced even after a failed REQUIRE, then frees the
 * main loop (and with it every level's context). */
static void end(void)
{
    while (get_async_context_id() > 0) {
        async_context_pop();
    }
    qemu_cleanup_main_loop();
}

/* A BH callback that records the id and context it ran in. */
typedef struct Rec {
    int runs;
    int id;
    AioContext *ctx;
    int *order;         /* optional: appends tag at order[(*order_len)++] */
    int *order_len;
    int tag;
} Rec;

static void rec_cb(void *opaque)
{
    Rec *r = opaque;

    r->runs++;
    r->id = get_async_context_id();
    r->ctx = qemu_get_current_aio_context();
    if (r->order) {
        r->order[(*r->order_len)++] = r->tag;
    }
}


/* ------------------------------------------------------------------ */
/* Misuse aborts with a clear message (death tests: run first)          */

static void pop_root(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_pop();
}

static void pop_twice(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    async_context_pop();
    async_context_pop();
}

static void test_pop_root_aborts(void)
{
    DeathResult res;

    REQUIRE(death_run(pop_root, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "async_context_pop") != NULL);
    CHECK(strstr(res.err, "root (id 0)") != NULL);

    REQUIRE(death_run(pop_twice, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "root (id 0)") != NULL);
}

static void pop_self_cb(void *opaque)
{
    (void)opaque;
    async_context_pop();        /* the level whose loop runs us */
}

static void pop_from_own_wait(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    qemu_bh_schedule(qemu_bh_new(pop_self_cb, NULL));
    qemu_aio_wait();
}

static void pop_from_own_bh_poll(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    qemu_bh_schedule(qemu_bh_new(pop_self_cb, NULL));
    qemu_bh_poll();
}

static void pop_from_flushed_bh(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    qemu_bh_schedule(qemu_bh_new(pop_self_cb, NULL));
    async_context_pop();        /* its flush runs pop_self_cb */
}

static void push_cb(void *opaque)
{
    (void)opaque;
    async_context_push();
}

static void push_in_flushed_bh(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    qemu_bh_schedule(qemu_bh_new(push_cb, NULL));
    async_context_pop();
}

static void test_pop_inside_own_callback_aborts(void)
{
    DeathResult res;

    REQUIRE(death_run(pop_from_own_wait, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "inside a callback of the AsyncContext being "
                 "popped (id 1)") != NULL);

    REQUIRE(death_run(pop_from_own_bh_poll, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "inside a callback") != NULL);

    REQUIRE(death_run(pop_from_flushed_bh, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "inside a callback") != NULL);

    REQUIRE(death_run(push_in_flushed_bh, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "a push without its pop") != NULL);
}

static void *push_thread(void *opaque)
{
    (void)opaque;
    async_context_push();
    return NULL;
}

static void push_from_other_thread(void *opaque)
{
    QemuThread t;

    (void)opaque;
    qemu_init_main_loop(&error_abort);
    start_thread(&t, "pusher", push_thread, NULL);
    qemu_thread_join(&t);
}

static void push_before_init(void *opaque)
{
    (void)opaque;
    async_context_push();
}

static void cleanup_while_pushed(void *opaque)
{
    (void)opaque;
    qemu_init_main_loop(&error_abort);
    async_context_push();
    qemu_cleanup_main_loop();
}

static void test_wrong_thread_and_lifecycle_abort(void)
{
    DeathResult res;

    REQUIRE(death_run(push_from_other_thread, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "async_context_push") != NULL);
    CHECK(strstr(res.err, "main-loop thread") != NULL);

    REQUIRE(death_run(push_before_init, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "not initialised") != NULL);

    REQUIRE(death_run(cleanup_while_pushed, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "qemu_cleanup_main_loop") != NULL);
    CHECK(strstr(res.err, "id 1 is still pushed") != NULL);
}

/* ------------------------------------------------------------------ */
/* Ids, current context, nesting                                       */

static void test_root_context(void)
{
    AioContext *root;

    CHECK_EQ(get_async_context_id(), 0);        /* before init, too */
    begin();
    root = qemu_get_aio_context();
    CHECK_EQ(get_async_context_id(), 0);
    CHECK(qemu_get_current_aio_context() == root);
    end();
}

static void test_nesting_three_deep(void)
{
    AioContext *root, *lv[4];

    begin();
    root = qemu_get_aio_context();
    lv[0] = root;
    for (int k = 1; k <= 3; k++) {
        async_context_push();
        CHECK_EQ(get_async_context_id(), k);
        lv[k] = qemu_get_current_aio_context();
        CHECK(lv[k] != NULL);
        for (int j = 0; j < k; j++) {
            CHECK(lv[k] != lv[j]);
        }
        CHECK(qemu_get_aio_context() == root);  /* always the main one */
    }
    for (int k = 3; k >= 1; k--) {
        CHECK(qemu_get_current_aio_context() == lv[k]);
        async_context_pop();
        CHECK_EQ(get_async_context_id(), k - 1);
        CHECK(qemu_get_current_aio_context() == lv[k - 1]);
    }
    /* The same depth is the same context again. */
    async_context_push();
    CHECK(qemu_get_current_aio_context() == lv[1]);
    async_context_push();
    CHECK(qemu_get_current_aio_context() == lv[2]);
    async_context_pop();
    async_context_pop();
    CHECK_EQ(get_async_context_id(), 0);
    end();
}

/* One BH per level, each created while its level is current: each runs
 * only while its own level is current, deepest first. */
static void test_nested_levels_run_in_order(void)
{
    Rec r[4];
    QEMUBH *bh[4];
    AioContext *lv[4];
    int order[8], order_len = 0;

    begin();
    memset(r, 0, sizeof(r));
    for (int k = 0; k <= 3; k++) {
        if (k > 0) {
            async_context_push();
        }
        lv[k] = qemu_get_current_aio_context();
        r[k].order = order;
        r[k].order_len = &order_len;
        r[k].tag = k;
        bh[k] = qemu_bh_new(rec_cb, &r[k]);
        qemu_bh_schedule(bh[k]);
    }

    /* Level 3: only its BH. */
    main_loop_wait(true);
    CHECK_EQ(r[3].runs, 1);
    CHECK_EQ(r[2].runs + r[1].runs + r[0].runs, 0);
    CHECK_EQ(r[3].id, 3);
    CHECK(r[3].ctx == lv[3]);
    async_context_pop();
    CHECK_EQ(r[2].runs + r[1].runs + r[0].runs, 0);     /* pop runs none */

    /* Level 2: popped without a wait, its BH runs in the pop's flush,
     * still as level 2. */
    async_context_pop();
    CHECK_EQ(r[2].runs, 1);
    CHECK_EQ(r[2].id, 2);
    CHECK(r[2].ctx == lv[2]);
    CHECK_EQ(r[1].runs + r[0].runs, 0);

    /* Level 1 */
    CHECK(qemu_bh_poll() != 0);
    CHECK_EQ(r[1].runs, 1);
    CHECK_EQ(r[1].id, 1);
    CHECK_EQ(r[0].runs, 0);
    async_context_pop();

    /* Root */
    CHECK_EQ(r[0].runs, 0);
    main_loop_wait(true);
    CHECK_EQ(r[0].runs, 1);
    CHECK_EQ(r[0].id, 0);
    CHECK(r[0].ctx == lv[0]);

    REQUIRE(order_len == 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(order[i], 3 - i);
    }
    for (int k = 0; k <= 3; k++) {
        qemu_bh_delete(bh[k]);
    }
    end();
}

/* ------------------------------------------------------------------ */
/* Bottom halves: held while pushed, flushed by pop                    */

static void test_parent_bh_held_until_pop(void)
{
    Rec parent = { 0 }, child = { 0 };
    QEMUBH *pbh, *cbh;

    begin();
    pbh = qemu_bh_new(rec_cb, &parent);
    qemu_bh_schedule(pbh);

    async_context_push();
    cbh = qemu_bh_new(rec_cb, &child);
    qemu_bh_schedule(cbh);
    main_loop_wait(true);
    CHECK_EQ(child.runs, 1);
    CHECK_EQ(parent.runs, 0);

    qemu_bh_schedule(cbh);
    CHECK(qemu_bh_poll() != 0);
    CHECK_EQ(child.runs, 2);
    CHECK_EQ(qemu_bh_poll(), 0);            /* the parent's is held */
    main_loop_wait(true);
    CHECK_EQ(parent.runs, 0);

    /* The parent's BH scheduled again while pushed still runs once. */
    qemu_bh_schedule(pbh);
    async_context_pop();
    CHECK_EQ(parent.runs, 0);               /* pop does not run the parent */
    main_loop_wait(true);
    CHECK_EQ(parent.runs, 1);
    CHECK_EQ(parent.id, 0);
    main_loop_wait(true);
    CHECK_EQ(parent.runs, 1);
    CHECK_EQ(child.runs, 2);

    qemu_bh_delete(pbh);
    qemu_bh_delete(cbh);
    end();
}

typedef struct Chain {
    Rec first, second, idle, oneshot;
    QEMUBH *second_bh;
} Chain;

static void chain_first_cb(void *opaque)
{
    Chain *c = opaque;

    rec_cb(&c->first);
    qemu_bh_schedule(c->second_bh);         /* runs in the next round */
}

static void test_pop_flushes_child_bhs(void)
{
    Chain c;
    Rec parent = { 0 };
    QEMUBH *pbh, *first, *idle;
    AioContext *child;

    begin();
    memset(&c, 0, sizeof(c));
    pbh = qemu_bh_new(rec_cb, &parent);
    qemu_bh_schedule(pbh);

    async_context_push();
    child = qemu_get_current_aio_context();
    first = qemu_bh_new(chain_first_cb, &c);
    c.second_bh = qemu_bh_new(rec_cb, &c.second);
    idle = qemu_bh_new(rec_cb, &c.idle);
    qemu_bh_schedule(first);
    qemu_bh_schedule_idle(idle);
    aio_bh_schedule_oneshot(child, rec_cb, &c.oneshot);

    async_context_pop();
    CHECK_EQ(get_async_context_id(), 0);
    CHECK_EQ(c.first.runs, 1);
    CHECK_EQ(c.second.runs, 1);             /* scheduled by a flushed BH */
    CHECK_EQ(c.idle.runs, 1);
    CHECK_EQ(c.oneshot.runs, 1);
    /* ... all before the switch back to the parent */
    CHECK_EQ(c.first.id, 1);
    CHECK_EQ(c.second.id, 1);
    CHECK_EQ(c.idle.id, 1);
    CHECK(c.first.ctx == child);
    CHECK(c.second.ctx == child);
    CHECK_EQ(parent.runs, 0);

    main_loop_wait(true);
    CHECK_EQ(parent.runs, 1);
    CHECK_EQ(c.first.runs, 1);

    qemu_bh_delete(pbh);
    qemu_bh_delete(first);
    qemu_bh_delete(c.second_bh);
    qemu_bh_delete(idle);
    end();
}

typedef struct Queued {
    int func_done;          /* atomic */
    int cb_runs, cb_id, cb_ret;
} Queued;

static int queued_fn(void *opaque)
{
    Queued *q = opaque;

    qatomic_set(&q->func_done, 1);
    return 5;
}

static void queued_cb(void *opaque, int ret)
{
    Queued *q = opaque;

    q->cb_runs++;
    q->cb_ret = ret;
    q->cb_id = get_async_context_id();
}

/* A thread-pool result already queued on the level (its completion BH
 * scheduled) is delivered by the pop's flush, as the level's. */
static void test_pop_flushes_queued_completion(void)
{
    Queued q = { 0 };
    AioContext *child;

    begin();
    async_context_push();
    child = qemu_get_current_aio_context();
    thread_pool_submit_aio(aio_get_thread_pool(child), queued_fn, &q,
                           queued_cb, &q);
    while (!qatomic_read(&q.func_done) || aio_compute_timeout(child) != 0) {
        sleep_us(100);
    }
    CHECK_EQ(q.cb_runs, 0);
    async_context_pop();
    CHECK_EQ(q.cb_runs, 1);
    CHECK_EQ(q.cb_ret, 5);
    CHECK_EQ(q.cb_id, 1);
    end();
}

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

/* ------------------------------------------------------------------ */
/* Other held work: coroutines, fd handlers, timers                    */

static int co_steps;

static void coroutine_fn co_two_steps(void *opaque)
{
    (void)opaque;
    co_steps = 1;
    qemu_coroutine_yield();
    co_steps = 2;
}

static void push_and_wake_cb(void *opaque)
{
    Coroutine *co = opaque;

    async_context_push();
    /* We are inside the root's loop, but the root's coroutine belongs to
     * a held level now: scheduled, not entered. */
    aio_co_wake(co);
    CHECK_EQ(co_steps, 1);
    main_loop_wait(true);
    qemu_bh_poll();
    CHECK_EQ(co_steps, 1);
    async_context_pop();
    CHECK_EQ(co_steps, 1);
}

static void test_parent_coroutine_held(void)
{
    Coroutine *co;
    QEMUBH *bh;

    begin();
    co_steps = 0;
    co = qemu_coroutine_create(co_two_steps, NULL);
    qemu_coroutine_enter(co);               /* belongs to the root now */
    CHECK_EQ(co_steps, 1);
    CHECK(qemu_coroutine_get_aio_context(co) == qemu_get_aio_context());

    bh = qemu_bh_new(push_and_wake_cb, co);
    qemu_bh_schedule(bh);
    main_loop_wait(true);                   /* runs the BH only */
    CHECK_EQ(co_steps, 1);
    main_loop_wait(true);                   /* the woken coroutine */
    CHECK_EQ(co_steps, 2);
    qemu_bh_delete(bh);
    end();
}

typedef struct FdCount {
    int fd;
    int runs;
} FdCount;

static void fd_count_cb(void *opaque)
{
    FdCount *f = opaque;

    drain_fd(f->fd);
    f->runs++;
}

static void timer_count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_fd_handlers_and_timers(void)
{
    int p[2], q[2], r[2];
    FdCount fp = { 0 }, fq = { 0 }, fr = { 0 };
    int root_timer_runs = 0, child_timer_runs = 0;
    QEMUTimer *root_timer, *child_timer;
    AioContext *child;

    begin();
    make_pipe(p);
    make_pipe(q);
    make_pipe(r);
    fp.fd = p[0];
    fq.fd = q[0];
    fr.fd = r[0];
    qemu_set_fd_handler(p[0], fd_count_cb, NULL, &fp);

    async_context_push();
    child = qemu_get_current_aio_context();
    /* qemu_set_fd_handler and timer_new stay on the main context. */
    qemu_set_fd_handler(q[0], fd_count_cb, NULL, &fq);
    root_timer = timer_new_ns(QEMU_CLOCK_REALTIME, timer_count_cb,
                              &root_timer_runs);
    /* What is put on the level's context runs at the level. */
    aio_set_fd_handler(child, r[0], false, fd_count_cb, NULL, &fr);
    child_timer = aio_timer_new(child, QEMU_CLOCK_REALTIME, SCALE_NS,
                                timer_count_cb, &child_timer_runs);

    write_byte(p[1]);
    write_byte(q[1]);
    timer_mod_ns(root_timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
    main_loop_wait(true);
    CHECK_EQ(fp.runs + fq.runs + root_timer_runs, 0);

    write_byte(r[1]);
    qemu_aio_wait();
    CHECK_EQ(fr.runs, 1);
    timer_mod_ns(child_timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
    qemu_aio_wait();
    CHECK_EQ(child_timer_runs, 1);
    CHECK_EQ(fp.runs + fq.runs + root_timer_runs, 0);

    async_context_pop();
    CHECK_EQ(fp.runs + fq.runs + root_timer_runs, 0);
    main_loop_wait(true);
    CHECK_EQ(fp.runs, 1);
    CHECK_EQ(fq.runs, 1);
    CHECK_EQ(root_timer_runs, 1);
    CHECK_EQ(fr.runs, 1);

    /* Registrations made while pushed are removed on the main context. */
    qemu_set_fd_handler(q[0], NULL, NULL, NULL);
    qemu_set_fd_handler(p[0], NULL, NULL, NULL);
    aio_set_fd_handler(child, r[0], false, NULL, NULL, NULL);
    write_byte(q[1]);
    main_loop_wait(true);
    CHECK_EQ(fq.runs, 1);

    timer_free(root_timer);
    timer_free(child_timer);
    for (int i = 0; i < 2; i++) {
        close(p[i]);
        close(q[i]);
        close(r[i]);
    }
    end();
}

/* ------------------------------------------------------------------ */
/* qemu_aio_wait                                                       */

typedef struct Waker {
    AioContext *ctx;
    QEMUBH *bh;
} Waker;

static void *notify_then_schedule(void *opaque)
{
    Waker *w = opaque;

    sleep_ms(20);
    aio_notify(w->ctx);             /* a wake-up with no callback */
    sleep_ms(20);
    qemu_bh_schedule(w->bh);
    return NULL;
}

static void test_qemu_aio_wait_waits_for_progress(void)
{
    Rec root = { 0 }, child = { 0 };
    QEMUBH *rbh;
    Waker w;
    QemuThread t;

    begin();
    /* At the root it waits on the main context. */
    rbh = qemu_bh_new(rec_cb, &root);
    qemu_bh_schedule(rbh);
    qemu_aio_wait();
    CHECK_EQ(root.runs, 1);

    async_context_push();
    w.ctx = qemu_get_current_aio_context();
    w.bh = qemu_bh_new(rec_cb, &child);
    qemu_bh_schedule(rbh);                  /* held */
    start_thread(&t, "waker", notify_then_schedule, &w);
    qemu_aio_wait();                        /* not ended by the notify */
    CHECK_EQ(child.runs, 1);
    CHECK_EQ(child.id, 1);
    CHECK_EQ(root.runs, 1);
    qemu_thread_join(&t);
    async_context_pop();
    qemu_aio_wait();
    CHECK_EQ(root.runs, 2);

    qemu_bh_delete(rbh);
    qemu_bh_delete(w.bh);
    end();
}

/* ------------------------------------------------------------------ */
/* Leftovers of a popped level, other threads                          */

typedef struct Late {
    QemuSemaphore go;
    int func_done;          /* atomic */
    int cb_runs, cb_id;
    Rec bh;
} Late;

static int late_fn(void *opaque)
{
    Late *l = opaque;

    qemu_sem_wait(&l->go);
    qatomic_set(&l->func_done, 1);
    return 0;
}

static void late_cb(void *opaque, int ret)
{
    Late *l = opaque;

    (void)ret;
    l->cb_runs++;
    l->cb_id = get_async_context_id();
}

/* Work of level 1 still outstanding at its pop stays with level 1 (the
 * same context at the next push to depth 1), as completions matched by
 * id did in QEMU. */
static void test_leftovers_wait_for_same_depth(void)
{
    Late l;
    AioContext *lv1;
    QEMUBH *bh;

    begin();
    memset(&l, 0, sizeof(l));
    qemu_sem_init(&l.go, 0);
    async_context_push();
    lv1 = qemu_get_current_aio_context();
    thread_pool_submit_aio(aio_get_thread_pool(lv1), late_fn, &l, late_cb, &l);
    bh = qemu_bh_new(rec_cb, &l.bh);
    async_context_pop();                    /* the job is still running */

    qemu_sem_post(&l.go);
    while (!qatomic_read(&l.func_done)) {
        sleep_us(100);
    }
    qemu_bh_schedule(bh);                   /* a level-1 BH, from the root */
    for (int i = 0; i < 5; i++) {
        sleep_ms(1);
        main_loop_wait(true);
    }
    CHECK_EQ(l.cb_runs, 0);
    CHECK_EQ(l.bh.runs, 0);

    async_context_push();
    CHECK(qemu_get_current_aio_context() == lv1);
    while (!(l.cb_runs && l.bh.runs)) {
        qemu_aio_wait();
    }
    CHECK_EQ(l.cb_runs, 1);
    CHECK_EQ(l.cb_id, 1);
    CHECK_EQ(l.bh.runs, 1);
    CHECK_EQ(l.bh.id, 1);
    async_context_pop();

    qemu_bh_delete(bh);
    qemu_sem_destroy(&l.go);
    end();
}

typedef struct Other {
    AioContext *seen_current;
    int seen_id;
    QEMUBH *bh;
    Rec rec;
} Other;

static void *other_thread(void *opaque)
{
    Other *o = opaque;

    o->seen_current = qemu_get_current_aio_context();
    o->seen_id = get_async_context_id();
    o->bh = qemu_bh_new(rec_cb, &o->rec);
    qemu_bh_schedule(o->bh);
    return NULL;
}

/* The stack is the main-loop thread's: another thread sees the main
 * context as its current one, and its qemu_bh_new() BHs are the main
 * context's (held while pushed). */
static void test_other_threads_see_the_root(void)
{
    Other o;
    QemuThread t;

    begin();
    memset(&o, 0, sizeof(o));
    async_context_push();
    start_thread(&t, "other", other_thread, &o);
    qemu_thread_join(&t);
    CHECK(o.seen_current == qemu_get_aio_context());
    CHECK_EQ(o.seen_id, 1);                 /* a snapshot of the depth */
    main_loop_wait(true);
    CHECK_EQ(o.rec.runs, 0);
    async_context_pop();
    main_loop_wait(true);
    CHECK_EQ(o.rec.runs, 1);
    CHECK(o.rec.ctx == qemu_get_aio_context());
    qemu_bh_delete(o.bh);
    end();
}

/* ------------------------------------------------------------------ */
/* Balance and resources                                               */

static void test_many_push_pop_cycles(void)
{
    int fds_before = test_count_fds(), fds_warm, fds_after;
    Rec r = { 0 };

    REQUIRE(fds_before >= 0);
    begin();
    for (int depth = 1; depth <= 5; depth++) {          /* warm up */
        async_context_push();
    }
    for (int depth = 5; depth >= 1; depth--) {
        async_context_pop();
    }
    fds_warm = test_count_fds();

    for (int i = 0; i < 2000; i++) {
        int depth = 1 + i % 5;
        QEMUBH *bh;

        for (int k = 0; k < depth; k++) {
            async_context_push();
        }
        REQUIRE(get_async_context_id() == depth);
        bh = qemu_bh_new(rec_cb, &r);
        qemu_bh_schedule(bh);
        qemu_aio_wait();
        qemu_bh_delete(bh);
        for (int k = 0; k < depth; k++) {
            async_context_pop();
        }
        REQUIRE(get_async_context_id() == 0);
    }
    CHECK_EQ(r.runs, 2000);
    /* Levels are reused: no context (nor fd) per push. */
    CHECK_EQ(test_count_fds(), fds_warm);
    end();
    fds_after = test_count_fds();
    CHECK_EQ(fds_after, fds_before);
}

static void test_cleanup_and_reinit(void)
{
    Rec r = { 0 };
    QEMUBH *bh;

    begin();
    async_context_push();
    async_context_push();
    async_context_pop();
    async_context_pop();
    end();

    begin();
    CHECK_EQ(get_async_context_id(), 0);
    async_context_push();
    CHECK(qemu_get_current_aio_context() != qemu_get_aio_context());
    bh = qemu_bh_new(rec_cb, &r);
    qemu_bh_schedule(bh);
    qemu_aio_wait();
    CHECK_EQ(r.runs, 1);
    qemu_bh_delete(bh);
    async_context_pop();
    end();
}

int main(void)
{
#if AIOLOOP_HAVE_GLIB
    /* qemu_init_main_loop() attaches to GLib's default main context,
     * whose wake-up descriptor then stays open for the life of the
     * process: create it now, so that the cases that count descriptors
     * around a main loop's life count it on both sides. */
    g_main_context_default();
#endif
    watchdog_install(WATCHDOG_HUNG);

    /* Forking tests first: no other thread exists yet. */
    RUN(test_pop_root_aborts);
    RUN(test_pop_inside_own_callback_aborts);
    RUN(test_wrong_thread_and_lifecycle_abort);

    RUN(test_root_context);
    RUN(test_nesting_three_deep);
    RUN(test_nested_levels_run_in_order);
    RUN(test_parent_bh_held_until_pop);
    RUN(test_pop_flushes_child_bhs);
    RUN(test_pop_flushes_queued_completion);
    RUN(test_qcow2_sync_read_thread_pool);
    RUN(test_qcow2_sync_read_block);
    RUN(test_nested_read_in_coroutine);
    RUN(test_parent_coroutine_held);
    RUN(test_fd_handlers_and_timers);
    RUN(test_qemu_aio_wait_waits_for_progress);
    RUN(test_leftovers_wait_for_same_depth);
    RUN(test_other_threads_see_the_root);
    RUN(test_many_push_pop_cycles);
    RUN(test_cleanup_and_reinit);
    return test_done();
}
