/*
 * test-block-queue.c - many requests through one backend: 10,000 at once
 * (far beyond the queue depth of 128) and 2,000 coroutines at once;
 * nested plug/unplug holding every request until the last unplug;
 * completion callbacks that run nested aio_poll() loops while other
 * requests complete and while the local queue refills; and moving the
 * backend to another context while idle.
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
 * delivering. A nested loop that never sees them all is a hang, which
 * the harness's watchdog names.
 */
#define NDRAIN 300

typedef struct {
    AioContext *ctx;
    int nests;              /* callbacks that ran a nested loop */
    int nester_seq;         /* the completion number of the one that did */
    int in_nest;
    int completed_at_end;   /* *completed when its nested loop ended */
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
    blk_wait(d->ctx, r->completed, NDRAIN);
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

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_many_requests);
    RUN(test_many_coroutines);
    RUN(test_plug_nesting);
    RUN(test_nested_poll_in_callback);
    RUN(test_nested_poll_drains_queue);
    RUN(test_attach_detach);
    return test_done();
}
