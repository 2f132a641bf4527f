/*
 * test-block-reuse.c - callback requests kept for reuse.
 *
 * An engine's completion keeps a callback request (the AIOCB that
 * aio_block_submit() returned) on a spare list of its state when nobody
 * else holds it, and a later submission takes it from there instead of
 * allocating (raw-request.c, raw_request_new()). That must be invisible:
 * a request the caller still holds (qemu_aio_ref()) is never handed out
 * again and stays intact until the caller's qemu_aio_unref() frees it,
 * from any thread; coroutine requests (on their coroutine's stack) never
 * become spares; every submission gets a request of its own with its
 * own callback and result; spares go with their state (ASan's leak
 * check in each case's child, memcheck under make check-valgrind).
 * Spare memory is poisoned for ASan and memcheck, so a use of a request
 * after its completion in these runs is reported as a use after free.
 *
 * SPDX-License-Identifier: MIT
 */
#include "block/block-test.h"

#define DEPTH   32                      /* requests in flight */
#define ROUNDS  40                      /* chains per request slot */

/* ------------------------------------------------------------------ */
/* A request held past its completion                                 */

static void hold_hook(BlkReq *r)
{
    qemu_aio_ref(r->acb);               /* the caller's own reference */
}

static void test_held_request_not_reused(void)
{
    Blk t;
    BlkReq held, other[DEPTH];
    int completed = 0;

    REQUIRE(blk_setup(&t));
    blk_req_init(&held, &completed, 0, SECTOR);
    pattern_fill(held.buf, SECTOR, 1, 0);
    held.hook = hold_hook;              /* referenced inside its callback */
    REQUIRE(blk_req_submit(&t, &held, QEMU_AIO_WRITE));
    blk_wait(t.ctx, &completed, 1);
    CHECK_EQ(held.runs, 1);
    CHECK_EQ(held.ret, 0);
    /* Completed: only the caller's reference is left, and the request
     * is as its callback saw it. */
    CHECK_EQ(qatomic_read(&held.acb->refcnt), 1);
    CHECK(held.acb->opaque == &held);

    /* Many more requests, each completing before the next round: none
     * of them may get the held one's memory. */
    for (int round = 0; round < 4; round++) {
        int base = completed;

        for (int i = 0; i < DEPTH; i++) {
            blk_req_init(&other[i], &completed, (uint64_t)(i + 1) * SECTOR,
                         SECTOR);
            REQUIRE(blk_req_submit(&t, &other[i], QEMU_AIO_READ));
            CHECK(other[i].acb != held.acb);
        }
        blk_wait(t.ctx, &completed, base + DEPTH);
        CHECK_EQ(blk_check_once(other, DEPTH, 0), 0);
        for (int i = 0; i < DEPTH; i++) {
            blk_req_free(&other[i]);
        }
    }
    CHECK_EQ(qatomic_read(&held.acb->refcnt), 1);
    CHECK(held.acb->opaque == &held);
    CHECK(held.acb->cb == blk_req_cb);
    qemu_aio_unref(held.acb);           /* frees it */
    blk_req_free(&held);
    CHECK(file_has_pattern(t.fd, 0, SECTOR, 1));
    blk_teardown(&t);
}

/* The caller takes its reference right after submitting, before the
 * completion, and drops it only after more requests went through. */
static void test_ref_before_completion(void)
{
    Blk t;
    BlkReq reqs[DEPTH], more[DEPTH];
    int completed = 0;

    REQUIRE(blk_setup(&t));
    for (int i = 0; i < DEPTH; i++) {
        blk_req_init(&reqs[i], &completed, (uint64_t)i * SECTOR, SECTOR);
        REQUIRE(blk_req_submit(&t, &reqs[i], QEMU_AIO_READ));
        if (i % 2 == 0) {
            qemu_aio_ref(reqs[i].acb);
        }
    }
    blk_wait(t.ctx, &completed, DEPTH);
    CHECK_EQ(blk_check_once(reqs, DEPTH, 0), 0);
    for (int i = 0; i < DEPTH; i++) {
        blk_req_init(&more[i], &completed, (uint64_t)i * SECTOR, SECTOR);
        REQUIRE(blk_req_submit(&t, &more[i], QEMU_AIO_READ));
        for (int j = 0; j < DEPTH; j += 2) {
            CHECK(more[i].acb != reqs[j].acb);
        }
    }
    blk_wait(t.ctx, &completed, 2 * DEPTH);
    CHECK_EQ(blk_check_once(more, DEPTH, 0), 0);
    for (int i = 0; i < DEPTH; i++) {
        if (i % 2 == 0) {
            CHECK_EQ(qatomic_read(&reqs[i].acb->refcnt), 1);
            CHECK(reqs[i].acb->opaque == &reqs[i]);
            qemu_aio_unref(reqs[i].acb);
        }
        blk_req_free(&reqs[i]);
        blk_req_free(&more[i]);
    }
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* The reference dropped by another thread                             */

typedef struct Holder {
    BlockAIOCB *acb;
    QemuEvent go;                       /* main -> thread: unref now */
    QemuEvent done;                     /* thread -> main: dropped */
} Holder;

static void *holder_thread(void *opaque)
{
    Holder *h = opaque;

    qemu_event_wait(&h->go);
    qemu_aio_unref(h->acb);
    qemu_event_set(&h->done);
    return NULL;
}

static void test_ref_dropped_by_other_thread(void)
{
    Blk t;
    BlkReq held, other[DEPTH];
    Holder h;
    QemuThread th;
    int completed = 0, base;

    REQUIRE(blk_setup(&t));
    qemu_event_init(&h.go, false);
    qemu_event_init(&h.done, false);
    blk_req_init(&held, &completed, 0, SECTOR);
    held.hook = hold_hook;
    REQUIRE(blk_req_submit(&t, &held, QEMU_AIO_READ));
    blk_wait(t.ctx, &completed, 1);
    h.acb = held.acb;
    qemu_thread_create(&th, "holder", holder_thread, &h, QEMU_THREAD_JOINABLE);

    /* The thread drops its reference while requests complete here. */
    base = completed;
    for (int i = 0; i < DEPTH; i++) {
        blk_req_init(&other[i], &completed, (uint64_t)(i + 1) * SECTOR,
                     SECTOR);
        REQUIRE(blk_req_submit(&t, &other[i], QEMU_AIO_READ));
        if (i < DEPTH / 2) {
            CHECK(other[i].acb != held.acb);
        } else if (i == DEPTH / 2) {
            /* From here on the memory may be freed, and malloc may hand
             * it out again: no more comparisons. */
            qemu_event_set(&h.go);
        }
    }
    blk_wait(t.ctx, &completed, base + DEPTH);
    qemu_event_wait(&h.done);
    qemu_thread_join(&th);
    CHECK_EQ(blk_check_once(other, DEPTH, 0), 0);
    CHECK_EQ(held.runs, 1);
    for (int i = 0; i < DEPTH; i++) {
        blk_req_free(&other[i]);
    }
    blk_req_free(&held);
    qemu_event_destroy(&h.go);
    qemu_event_destroy(&h.done);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Chains: every callback submits the next request of its slot         */

typedef struct Chain {
    Blk *t;
    BlkReq r;
    int step;                           /* requests of this slot so far */
    int errors;
    int *live;                          /* slots still running */
} Chain;

static void chain_next(Chain *c);

static void chain_cb(void *opaque, int ret)
{
    Chain *c = opaque;
    uint64_t off = c->r.off;

    c->r.runs++;
    if (ret != 0) {
        c->errors++;
    }
    /* Odd steps read back what the even step before wrote (step counts
     * the request that just completed, from 1). */
    if (c->step % 2 == 0 &&
        !pattern_check(c->r.buf, SECTOR, (uint32_t)c->step - 2, off)) {
        c->errors++;
    }
    if (c->step == 2 * ROUNDS) {
        --*c->live;
        return;
    }
    chain_next(c);
}

static void chain_next(Chain *c)
{
    bool write = c->step % 2 == 0;
    BlockAIOCB *acb;

    if (write) {
        pattern_fill(c->r.buf, SECTOR, (uint32_t)c->step, c->r.off);
    } else {
        memset(c->r.buf, 0xAA, SECTOR);
    }
    c->step++;
    acb = aio_block_submit(c->t->b, c->t->fd, c->r.off, &c->r.qiov,
                           write ? QEMU_AIO_WRITE : QEMU_AIO_READ,
                           chain_cb, c);
    if (!acb || acb->opaque != c || acb->cb != chain_cb) {
        c->errors++;
    }
}

/* Callback requests submitted from callbacks, and coroutine requests in
 * the same batches: each gets its own request, callback and result. */
static void test_chains_with_coroutines(void)
{
    static Chain chains[DEPTH];
    Blk t;
    int live = DEPTH, finished = 0, errors = 0, runs = 0;
    CoIo cs[8];
    uint8_t *bufs[8];
    QEMUIOVector qs[8];

    REQUIRE(blk_setup(&t));
    REQUIRE(file_fill(t.fd, 0, (DEPTH + 8) * SECTOR, 99));
    for (int i = 0; i < DEPTH; i++) {
        Chain *c = &chains[i];

        memset(c, 0, sizeof(*c));
        c->t = &t;
        c->live = &live;
        blk_req_init(&c->r, &finished, (uint64_t)i * SECTOR, SECTOR);
        chain_next(c);
    }
    while (live) {
        /* Coroutine requests (on their stacks) among the chains. */
        int base = finished;

        for (int i = 0; i < 8; i++) {
            bufs[i] = aligned_buf(SECTOR);
            qemu_iovec_init_buf(&qs[i], bufs[i], SECTOR);
            cs[i] = (CoIo){ .b = t.b, .fd = t.fd,
                            .off = (uint64_t)(DEPTH + i) * SECTOR,
                            .qiov = &qs[i], .type = QEMU_AIO_READ, .ret = 1,
                            .completed = &finished };
            co_start(t.ctx, co_io_entry, &cs[i]);
        }
        while (finished < base + 8) {
            aio_poll(t.ctx, true);
        }
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(cs[i].ret, 0);
            CHECK(pattern_check(bufs[i], SECTOR, 99,
                                (uint64_t)(DEPTH + i) * SECTOR));
            qemu_iovec_destroy(&qs[i]);
            free(bufs[i]);
        }
        test_progress();
    }
    for (int i = 0; i < DEPTH; i++) {
        errors += chains[i].errors;
        runs += chains[i].r.runs;
        CHECK(file_has_pattern(t.fd, (uint64_t)i * SECTOR, SECTOR,
                               2 * ROUNDS - 2));
        blk_req_free(&chains[i].r);
    }
    CHECK_EQ(errors, 0);
    CHECK_EQ(runs, DEPTH * 2 * ROUNDS);
    blk_teardown(&t);
}

/* ------------------------------------------------------------------ */
/* Spares across attach, detach and free                               */

static void run_batch(Blk *t, int *completed)
{
    BlkReq reqs[DEPTH];
    int base = *completed;

    for (int i = 0; i < DEPTH; i++) {
        blk_req_init(&reqs[i], completed, (uint64_t)i * SECTOR, SECTOR);
        REQUIRE(blk_req_submit(t, &reqs[i], QEMU_AIO_READ));
    }
    blk_wait(t->ctx, completed, base + DEPTH);
    CHECK_EQ(blk_check_once(reqs, DEPTH, 0), 0);
    for (int i = 0; i < DEPTH; i++) {
        blk_req_free(&reqs[i]);
    }
}

/* A state keeps its spares while detached and moved to another context;
 * freeing it frees them (the child's leak check). */
static void test_spares_follow_the_state(void)
{
    Blk t;
    AioContext *ctx2 = new_ctx();
    int completed = 0;

    REQUIRE(blk_setup(&t));
    run_batch(&t, &completed);
    aio_block_backend_detach(t.b, t.ctx);
    aio_block_backend_attach(t.b, ctx2);
    aio_context_unref(t.ctx);
    t.ctx = ctx2;
    run_batch(&t, &completed);
    run_batch(&t, &completed);
    CHECK_EQ(completed, 3 * DEPTH);
    blk_teardown(&t);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();
    RUN(test_held_request_not_reused);
    RUN(test_ref_before_completion);
    RUN(test_ref_dropped_by_other_thread);
    RUN(test_chains_with_coroutines);
    RUN(test_spares_follow_the_state);
    return test_done();
}
