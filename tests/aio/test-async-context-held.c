/*
 * test-async-context-held.c - the AsyncContext stack beyond bottom
 * halves: the parent's coroutines, fd handlers and timers held while a
 * level is pushed, qemu_aio_wait() waiting for progress (not ended by a
 * bare notification), work left over by a popped level waiting for the
 * same depth, other threads seeing the root, and balance (thousands of
 * push/pop cycles reuse levels: no context or fd per push; cleanup and
 * re-init).
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
#include "fd-count.h"

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
    int waiter_tid;
} Waker;

/* Once the waiter sleeps: a bare notification; once it sleeps again (or
 * is seen to stay asleep), the BH it waits for. */
static void *notify_then_schedule(void *opaque)
{
    Waker *w = opaque;

    wait_until_polling(w->waiter_tid);
    aio_notify(w->ctx);             /* a wake-up with no callback */
    wait_until_polling(w->waiter_tid);
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
    w.waiter_tid = qemu_get_thread_id();
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
    int fds_before, fds_warm, fds_after;
    Rec r = { 0 };

    /* One main loop first: with GLib, attaching it creates GLib's default
     * context, whose wake-up descriptor lives as long as the process. */
    begin();
    end();
    fds_before = test_count_fds();
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
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_parent_coroutine_held);
    RUN(test_fd_handlers_and_timers);
    RUN(test_qemu_aio_wait_waits_for_progress);
    RUN(test_leftovers_wait_for_same_depth);
    RUN(test_other_threads_see_the_root);
    RUN(test_many_push_pop_cycles);
    RUN(test_cleanup_and_reinit);
    return test_done();
}
