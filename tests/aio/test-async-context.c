/*
 * test-async-context.c - the nested AsyncContext stack of the main loop
 * (async_context_push/pop, get_async_context_id): misuse that aborts with
 * a message (death tests), ids and the current context while nested, the
 * order levels run in, and bottom halves held while a level is pushed and
 * flushed by its pop (also a thread-pool completion already queued), and
 * a stack per main loop (its levels live as long as its main context).
 * The qcow2 scenario: test-async-context-qcow2.c; fd handlers, timers,
 * coroutines, qemu_aio_wait and leftovers: test-async-context-held.c.
 *
 * Every case initialises the main loop and cleans it up (begin/end in
 * async-context-test.h), so that ASan sees every context freed. Meson
 * runs this program once per fd monitor.
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

#include "async-context-test.h"
#include "util/death-test.h"

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

/* The stack hangs on the main context it was pushed on: a reference to
 * that context held past qemu_cleanup_main_loop() keeps its levels
 * alive, and the next main loop pushes levels of its own, not those.
 * Dropping the old reference then frees the old levels (ASan: nothing
 * leaks, nothing is used after it is freed). */
static void test_stack_per_main_loop(void)
{
    AioContext *old_main, *old_level, *new_level;
    Rec r = { 0 };
    QEMUBH *bh;

    begin();
    old_main = qemu_get_aio_context();
    aio_context_ref(old_main);
    async_context_push();
    old_level = qemu_get_current_aio_context();
    CHECK(old_level != old_main);
    async_context_pop();
    qemu_cleanup_main_loop();

    begin();
    async_context_push();
    new_level = qemu_get_current_aio_context();
    CHECK(new_level != old_level);
    CHECK(new_level != qemu_get_aio_context());
    bh = qemu_bh_new(rec_cb, &r);
    qemu_bh_schedule(bh);
    async_context_pop();                /* flushes the level's BHs */
    CHECK_EQ(r.runs, 1);
    CHECK_EQ(r.id, 1);
    CHECK(r.ctx == new_level);
    qemu_bh_delete(bh);
    aio_context_unref(old_main);        /* the old main loop and its level */
    async_context_push();
    CHECK(qemu_get_current_aio_context() == new_level);
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

    RUN(test_pop_root_aborts);
    RUN(test_pop_inside_own_callback_aborts);
    RUN(test_wrong_thread_and_lifecycle_abort);
    RUN(test_root_context);
    RUN(test_nesting_three_deep);
    RUN(test_nested_levels_run_in_order);
    RUN(test_parent_bh_held_until_pop);
    RUN(test_pop_flushes_child_bhs);
    RUN(test_pop_flushes_queued_completion);
    RUN(test_stack_per_main_loop);
    return test_done();
}
