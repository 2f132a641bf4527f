/*
 * test-fd-remove.c - removing fd handlers from inside handlers: a handler
 * that removes itself (and then closes its fd), one that removes another
 * ready handler before its turn, and many ready fds whose handlers each
 * remove themselves and their successor. No call may follow a removal.
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON=epoll and
 * AIOLOOP_FDMON=poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "fd-test.h"

static void test_fd_remove_self_in_handler(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    /* Read and write both ready: after the read handler removed the fd,
     * the write handler of the same iteration must not run either. */
    s = (FdState) { .ctx = ctx, .fd = fds[0], .remove_self = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, state_write, &s);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK(s.removed);
    CHECK_EQ(s.reads, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.late_calls, 0);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_remove_self_then_close(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;
    int i;

    /* The usual teardown: remove, close, and reuse the fd number. */
    for (i = 0; i < 20; i++) {
        make_pipe(fds);
        s = (FdState) { .ctx = ctx, .fd = fds[0], .remove_self = true };
        aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
        write_byte(fds[1]);
        CHECK(aio_poll(ctx, false));
        close(fds[0]);
        close(fds[1]);
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(s.reads, 1);
        CHECK_EQ(s.late_calls, 0);
    }
    aio_context_unref(ctx);
}

static void test_fd_remove_other_in_handler(void)
{
    AioContext *ctx = new_ctx();
    int a[2], b[2];
    FdState sa, sb;
    int round;

    for (round = 0; round < 10; round++) {
        make_pipe(a);
        make_pipe(b);
        sa = (FdState) { .ctx = ctx, .fd = a[0], .victim = &sb };
        sb = (FdState) { .ctx = ctx, .fd = b[0], .victim = &sa };
        /* Alternate the registration order. */
        if (round % 2) {
            aio_set_fd_handler(ctx, a[0], false, state_read, NULL, &sa);
            aio_set_fd_handler(ctx, b[0], false, state_read, NULL, &sb);
        } else {
            aio_set_fd_handler(ctx, b[0], false, state_read, NULL, &sb);
            aio_set_fd_handler(ctx, a[0], false, state_read, NULL, &sa);
        }
        write_byte(a[1]);
        write_byte(b[1]);
        CHECK(aio_poll(ctx, false));
        /* Both were ready; whichever ran first removed the other. */
        CHECK_EQ(sa.reads + sb.reads, 1);
        CHECK(sa.removed != sb.removed);
        CHECK_EQ(sa.late_calls + sb.late_calls, 0);
        /* The survivor still runs (its byte is still there). */
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(sa.reads + sb.reads, 2);
        CHECK_EQ(sa.late_calls + sb.late_calls, 0);
        if (!sa.removed) {
            fd_remove(&sa);
        }
        if (!sb.removed) {
            fd_remove(&sb);
        }
        CHECK(!aio_poll(ctx, false));
        close(a[0]);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    }
    aio_context_unref(ctx);
}

/* Many fds all ready; each handler removes itself and its successor in
 * a ring. Whatever order the backend reports them in, no handler runs
 * after its removal and all of them are gone after one iteration. */
#define KILLERS 16

static void test_fd_remove_many_others_in_handler(void)
{
    AioContext *ctx = new_ctx();
    static FdState s[KILLERS];
    int fds[KILLERS][2];
    int i, reads = 0, late = 0;

    for (i = 0; i < KILLERS; i++) {
        make_pipe(fds[i]);
        s[i] = (FdState) { .ctx = ctx, .fd = fds[i][0] };
        aio_set_fd_handler(ctx, fds[i][0], false, NULL, NULL, NULL);
    }
    for (i = 0; i < KILLERS; i++) {
        aio_set_fd_handler(ctx, fds[i][0], false, state_read, NULL, &s[i]);
        write_byte(fds[i][1]);
    }
    /* Ring: s[i] removes s[i+1] and itself. */
    for (i = 0; i < KILLERS; i++) {
        s[i].victim = &s[(i + 1) % KILLERS];
        s[i].remove_self = true;
    }
    CHECK(aio_poll(ctx, false));
    for (i = 0; i < KILLERS; i++) {
        reads += s[i].reads;
        late += s[i].late_calls;
    }
    CHECK_EQ(late, 0);
    /* Every handler that ran removed itself and its successor, so at
     * least half of them ran, and every one of them is gone now. */
    CHECK(reads >= KILLERS / 2);
    CHECK(!aio_poll(ctx, false));
    for (i = 0; i < KILLERS; i++) {
        CHECK(s[i].removed);
        CHECK(s[i].reads <= 1);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_fd_remove_self_in_handler);
    RUN(test_fd_remove_self_then_close);
    RUN(test_fd_remove_other_in_handler);
    RUN(test_fd_remove_many_others_in_handler);
    return test_done();
}
