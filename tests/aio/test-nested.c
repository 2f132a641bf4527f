/*
 * test-nested.c - aio_poll() called re-entrantly from inside callbacks:
 * from a BH, from an fd handler that consumed its event, and removal of a
 * handler inside the nested loop while the outer iteration still had it
 * ready.
 *
 * Meson runs this program once per fd monitor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>

#include "aio-test.h"


/* ------------------------------------------------------------------ */
/* Nested aio_poll from a BH                                           */

typedef struct {
    AioContext *ctx;
    QEMUBH *self;
    QEMUBH *to_schedule;    /* scheduled right before nesting */
    int *watch;             /* counter sampled before/after the nest */
    int count;
    int depth;
    int watch_before, watch_after;
    bool nested_ret;
    bool nested_blocking;
} Nester;

static void nester_bh(void *opaque)
{
    Nester *n = opaque;

    n->count++;
    n->depth++;
    if (n->to_schedule) {
        qemu_bh_schedule(n->to_schedule);
    }
    n->watch_before = n->watch ? *n->watch : 0;
    n->nested_ret = aio_poll(n->ctx, n->nested_blocking);
    n->watch_after = n->watch ? *n->watch : 0;
    n->depth--;
}

static void test_nested_poll_from_bh_runs_new_bh(void)
{
    AioContext *ctx = new_ctx();
    int other = 0;
    QEMUBH *other_bh = aio_bh_new(ctx, count_cb, &other);
    Nester n = { .ctx = ctx, .to_schedule = other_bh, .watch = &other };
    int blocking;

    n.self = aio_bh_new(ctx, nester_bh, &n);
    for (blocking = 0; blocking < 2; blocking++) {
        n.count = 0;
        other = 0;
        n.nested_blocking = blocking;
        qemu_bh_schedule(n.self);
        CHECK(aio_poll(ctx, false));
        /* The BH scheduled from the outer callback ran in the nested
         * call, which reported progress. */
        CHECK(n.nested_ret);
        CHECK_EQ(n.watch_before, 0);
        CHECK_EQ(n.watch_after, 1);
        /* The outer BH ran once: it is on the stack, not rescheduled. */
        CHECK_EQ(n.count, 1);
        CHECK_EQ(other, 1);
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(n.count, 1);
        CHECK_EQ(other, 1);
    }
    qemu_bh_delete(n.self);
    qemu_bh_delete(other_bh);
    aio_context_unref(ctx);
}

static void test_nested_poll_from_bh_runs_outer_ready_bh(void)
{
    AioContext *ctx = new_ctx();
    int other = 0;
    QEMUBH *other_bh = aio_bh_new(ctx, count_cb, &other);
    Nester n = { .ctx = ctx, .watch = &other };
    int round;

    n.self = aio_bh_new(ctx, nester_bh, &n);
    for (round = 0; round < 2; round++) {
        n.count = 0;
        other = 0;
        /* Both ready in the same outer iteration, in either order. */
        if (round) {
            qemu_bh_schedule(other_bh);
            qemu_bh_schedule(n.self);
        } else {
            qemu_bh_schedule(n.self);
            qemu_bh_schedule(other_bh);
        }
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(n.count, 1);
        CHECK_EQ(other, 1);             /* never twice */
        if (n.watch_before == 0) {
            /* The other BH was still ready when the nested call started:
             * the nested call ran it. */
            CHECK(n.nested_ret);
            CHECK_EQ(n.watch_after, 1);
        } else {
            CHECK(!n.nested_ret);
        }
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(other, 1);
        CHECK_EQ(n.count, 1);
    }
    qemu_bh_delete(n.self);
    qemu_bh_delete(other_bh);
    aio_context_unref(ctx);
}

static void test_nested_poll_from_bh_nothing_ready(void)
{
    AioContext *ctx = new_ctx();
    Nester n = { .ctx = ctx };

    n.self = aio_bh_new(ctx, nester_bh, &n);
    qemu_bh_schedule(n.self);
    CHECK(aio_poll(ctx, false));
    CHECK(!n.nested_ret);
    CHECK_EQ(n.count, 1);
    CHECK(!aio_poll(ctx, false));
    qemu_bh_delete(n.self);
    aio_context_unref(ctx);
}

/* A BH that reschedules itself and nests: the nested call runs it again
 * (it was rescheduled), up to a depth limit. */
typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
    int depth, max_depth, count;
} Recurser;

static void recurser_bh(void *opaque)
{
    Recurser *r = opaque;

    r->count++;
    if (r->depth < r->max_depth) {
        r->depth++;
        qemu_bh_schedule(r->bh);
        aio_poll(r->ctx, false);
        r->depth--;
    }
}

static void test_nested_poll_rescheduled_bh_runs_again(void)
{
    AioContext *ctx = new_ctx();
    Recurser r = { .ctx = ctx, .max_depth = 10 };

    r.bh = aio_bh_new(ctx, recurser_bh, &r);
    qemu_bh_schedule(r.bh);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(r.count, 11);
    CHECK_EQ(r.depth, 0);
    CHECK(!aio_poll(ctx, false));
    qemu_bh_delete(r.bh);
    aio_context_unref(ctx);
}

/* A BH deleted inside a nested loop while the outer slice still holds it
 * (scheduled, not yet reached). */
typedef struct {
    AioContext *ctx;
    QEMUBH *victim;
    int *victim_count;
    int seen_at_delete;
    int count;
} NestDeleter;

static void nest_deleter_bh(void *opaque)
{
    NestDeleter *d = opaque;

    d->count++;
    if (d->victim) {
        d->seen_at_delete = *d->victim_count;
        qemu_bh_delete(d->victim);
        d->victim = NULL;
        aio_poll(d->ctx, false);
    }
}

static void test_nested_poll_after_deleting_pending_bh(void)
{
    AioContext *ctx = new_ctx();
    int victim_count = 0;
    NestDeleter d = { .ctx = ctx, .victim_count = &victim_count };
    QEMUBH *deleter = aio_bh_new(ctx, nest_deleter_bh, &d);
    int round;

    for (round = 0; round < 2; round++) {
        victim_count = 0;
        d.count = 0;
        d.victim = aio_bh_new(ctx, count_cb, &victim_count);
        if (round) {
            qemu_bh_schedule(d.victim);
            qemu_bh_schedule(deleter);
        } else {
            qemu_bh_schedule(deleter);
            qemu_bh_schedule(d.victim);
        }
        CHECK(aio_poll(ctx, false));
        /* It may have run before the deleter, never after. */
        CHECK_EQ(victim_count, d.seen_at_delete);
        CHECK_EQ(d.count, 1);
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(victim_count, d.seen_at_delete);
    }
    qemu_bh_delete(deleter);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Nested aio_poll from an fd handler                                  */

typedef struct {
    AioContext *ctx;
    int fd;
    int calls;
    int spurious;           /* called with nothing to read */
    int late_calls;         /* called after its removal */
    bool removed;
    bool nest;              /* consume, then aio_poll(ctx, false) */
    bool nested_ret;
    int *watch;
    int watch_before, watch_after;
    QEMUBH *schedule_before_nest;
} NestFd;

static void nestfd_read(void *opaque)
{
    NestFd *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->calls++;
    if (drain_fd(s->fd) == 0) {
        s->spurious++;
    }
    if (s->nest) {
        s->nest = false;                    /* one level */
        if (s->schedule_before_nest) {
            qemu_bh_schedule(s->schedule_before_nest);
        }
        s->watch_before = s->watch ? *s->watch : 0;
        s->nested_ret = aio_poll(s->ctx, false);
        s->watch_after = s->watch ? *s->watch : 0;
    }
}

static void nestfd_register(NestFd *s)
{
    aio_set_fd_handler(s->ctx, s->fd, false, nestfd_read, NULL, s);
}

static void nestfd_remove(NestFd *s)
{
    aio_set_fd_handler(s->ctx, s->fd, false, NULL, NULL, NULL);
    s->removed = true;
}

static void test_nested_poll_from_fd_handler_runs_bh(void)
{
    AioContext *ctx = new_ctx();
    int p[2];
    int bh_count = 0;
    QEMUBH *bh = aio_bh_new(ctx, count_cb, &bh_count);
    NestFd s;

    make_pipe(p);
    s = (NestFd) { .ctx = ctx, .fd = p[0], .nest = true,
                   .schedule_before_nest = bh, .watch = &bh_count };
    nestfd_register(&s);
    write_byte(p[1]);
    CHECK(aio_poll(ctx, false));
    /* The handler consumed its event first: the nested call ran the BH
     * only, not the handler again. */
    CHECK_EQ(s.calls, 1);
    CHECK(s.nested_ret);
    CHECK_EQ(s.watch_after, 1);
    CHECK_EQ(bh_count, 1);
    CHECK_EQ(s.spurious, 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.calls, 1);
    nestfd_remove(&s);
    qemu_bh_delete(bh);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

static void test_nested_poll_from_fd_handler_runs_other_fd(void)
{
    AioContext *ctx = new_ctx();
    int a[2], b[2];
    NestFd sa, sb;
    int round;

    for (round = 0; round < 4; round++) {
        make_pipe(a);
        make_pipe(b);
        sa = (NestFd) { .ctx = ctx, .fd = a[0], .nest = true };
        sb = (NestFd) { .ctx = ctx, .fd = b[0] };
        sa.watch = &sb.calls;
        if (round % 2) {
            nestfd_register(&sa);
            nestfd_register(&sb);
        } else {
            nestfd_register(&sb);
            nestfd_register(&sa);
        }
        write_byte(a[1]);
        write_byte(b[1]);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(sa.calls, 1);
        /* b consumes its byte, so it runs exactly once: in the nested
         * call if it had not run yet, else before it. */
        CHECK_EQ(sb.calls, 1);
        CHECK_EQ(sa.spurious + sb.spurious, 0);
        if (sa.watch_before == 0) {
            CHECK(sa.nested_ret);
            CHECK_EQ(sa.watch_after, 1);
        } else {
            CHECK(!sa.nested_ret);
        }
        CHECK(!aio_poll(ctx, false));
        nestfd_remove(&sa);
        nestfd_remove(&sb);
        close(a[0]);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    }
    aio_context_unref(ctx);
}

/* Removal inside a nested loop. Every pipe is ready; the first handler
 * that runs consumes its byte, schedules a BH that removes every other
 * handler, and nests. Handlers the outer iteration had found ready must
 * not be called after the BH removed them. */
#define NREMOVE 8

typedef struct {
    AioContext *ctx;
    NestFd s[NREMOVE];
    QEMUBH *remover;
    bool removal_done;
    int nests;
} RemoveAll;

static RemoveAll remove_all;

static void remove_all_bh(void *opaque)
{
    RemoveAll *r = opaque;
    int i;

    for (i = 0; i < NREMOVE; i++) {
        if (!r->s[i].removed) {
            nestfd_remove(&r->s[i]);
        }
    }
    r->removal_done = true;
}

static void remove_all_read(void *opaque)
{
    NestFd *s = opaque;
    RemoveAll *r = &remove_all;

    if (s->removed) {
        s->late_calls++;
    }
    s->calls++;
    if (!r->removal_done && r->nests == 0) {
        r->nests++;
        drain_fd(s->fd);
        qemu_bh_schedule(r->remover);
        s->nested_ret = aio_poll(r->ctx, false);
        /* The nested call ran the remover. */
        s->watch_after = r->removal_done;
    }
}

static void test_remove_in_nested_poll(void)
{
    AioContext *ctx = new_ctx();
    RemoveAll *r = &remove_all;
    int fds[NREMOVE][2];
    int i, round, late, calls;

    for (round = 0; round < 4; round++) {
        memset(r, 0, sizeof(*r));
        r->ctx = ctx;
        r->remover = aio_bh_new(ctx, remove_all_bh, r);
        for (i = 0; i < NREMOVE; i++) {
            int idx = round % 2 ? NREMOVE - 1 - i : i;

            make_pipe(fds[idx]);
            r->s[idx] = (NestFd) { .ctx = ctx, .fd = fds[idx][0] };
            aio_set_fd_handler(ctx, fds[idx][0], false, remove_all_read,
                               NULL, &r->s[idx]);
            write_byte(fds[idx][1]);
        }
        CHECK(aio_poll(ctx, false));
        CHECK(r->removal_done);
        late = calls = 0;
        for (i = 0; i < NREMOVE; i++) {
            late += r->s[i].late_calls;
            calls += r->s[i].calls;
            CHECK(r->s[i].removed);
            if (r->s[i].watch_after) {
                CHECK(r->s[i].nested_ret);
            }
        }
        CHECK_EQ(late, 0);
        CHECK(calls >= 1);
        CHECK(!aio_poll(ctx, false));
        for (i = 0; i < NREMOVE; i++) {
            CHECK_EQ(r->s[i].late_calls, 0);
            close(fds[i][0]);
            close(fds[i][1]);
        }
        qemu_bh_delete(r->remover);
    }
    aio_context_unref(ctx);
}

/* Removal of the handler that is on the stack, inside its own nested
 * loop, then re-registration of a different handler for the same fd. */
typedef struct {
    AioContext *ctx;
    int fd;
    int calls;
    int replacement_calls;
    bool nested;
} SelfNest;

static void replacement_read(void *opaque)
{
    SelfNest *s = opaque;

    s->replacement_calls++;
    drain_fd(s->fd);
}

static void self_nest_read(void *opaque)
{
    SelfNest *s = opaque;

    s->calls++;
    if (!s->nested) {
        s->nested = true;
        aio_set_fd_handler(s->ctx, s->fd, false, NULL, NULL, NULL);
        /* The byte is still there, but nobody is registered. */
        aio_poll(s->ctx, false);
        aio_set_fd_handler(s->ctx, s->fd, false, replacement_read, NULL, s);
        /* Now the replacement is: it runs in this nested call. */
        aio_poll(s->ctx, false);
    }
}

static void test_replace_own_handler_in_nested_poll(void)
{
    AioContext *ctx = new_ctx();
    int p[2];
    SelfNest s;

    make_pipe(p);
    s = (SelfNest) { .ctx = ctx, .fd = p[0] };
    aio_set_fd_handler(ctx, p[0], false, self_nest_read, NULL, &s);
    write_byte(p[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.replacement_calls, 1);
    CHECK(!aio_poll(ctx, false));
    write_byte(p[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.replacement_calls, 2);
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_nested_poll_from_bh_runs_new_bh);
    RUN(test_nested_poll_from_bh_runs_outer_ready_bh);
    RUN(test_nested_poll_from_bh_nothing_ready);
    RUN(test_nested_poll_rescheduled_bh_runs_again);
    RUN(test_nested_poll_after_deleting_pending_bh);
    RUN(test_nested_poll_from_fd_handler_runs_bh);
    RUN(test_nested_poll_from_fd_handler_runs_other_fd);
    RUN(test_remove_in_nested_poll);
    RUN(test_replace_own_handler_in_nested_poll);
    return test_done();
}
