/*
 * test-fd.c - file-descriptor handlers on one thread: level-triggered
 * read and write handlers on pipes, socketpairs and eventfds, EOF, read
 * and write on one fd, updates that replace a registration, is_external
 * nesting, and the fd monitor name. (Removal inside handlers:
 * test-fd-remove.c; event notifiers, many fds, regular files:
 * test-fd-kinds.c.)
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

/* ------------------------------------------------------------------ */

static void test_fdmon_name(void)
{
    AioContext *ctx = new_ctx();
    const char *name = aio_context_fdmon_name(ctx);

    REQUIRE(name != NULL);
    printf("#   requested %s, got %s\n", requested_fdmon(), name);
    CHECK(strcmp(name, requested_fdmon()) == 0);
    aio_context_unref(ctx);
}

static void level_triggered_read(int fds[2])
{
    AioContext *ctx = new_ctx();
    FdState s = { .ctx = ctx, .fd = fds[0] };

    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    CHECK_EQ(s.reads, 0);           /* never inside the registration */
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);

    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    /* Level-triggered: runs again while data remains. */
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(s.reads, 3);

    /* Consume: no longer ready. */
    s.consume = true;
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 4);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 4);

    /* Ready again after another write. */
    write_byte(fds[1]);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 5);
    CHECK(!aio_poll(ctx, false));

    /* Removed: data no longer calls it. */
    fd_remove(&s);
    write_byte(fds[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 5);
    CHECK_EQ(s.late_calls, 0);

    aio_context_unref(ctx);
}

static void test_fd_read_pipe(void)
{
    int fds[2];

    make_pipe(fds);
    level_triggered_read(fds);
    close(fds[0]);
    close(fds[1]);
}

static void test_fd_read_socketpair(void)
{
    int fds[2];

    make_socketpair(fds);
    level_triggered_read(fds);
    close(fds[0]);
    close(fds[1]);
}

static void test_fd_read_eof(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s = { 0 };

    /* A pipe whose writer closed is readable (EOF) until removed. */
    make_pipe(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0], .consume = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    close(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    close(fds[0]);
    aio_context_unref(ctx);
}

static void test_fd_write_socket(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;
    char buf[4096];
    int filled = 0;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0] };
    memset(buf, 'y', sizeof(buf));
    aio_set_fd_handler(ctx, fds[0], false, NULL, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.writes, 1);
    CHECK(aio_poll(ctx, true));     /* still writable: must not sleep */
    CHECK_EQ(s.writes, 2);
    CHECK_EQ(s.reads, 0);

    /* Full socket: not writable, the handler stops running. */
    while (write(fds[0], buf, sizeof(buf)) > 0) {
        filled++;
    }
    CHECK(filled > 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.writes, 2);

    /* Drained by the peer: writable again. */
    drain_fd(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.writes, 3);

    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.writes, 3);
    CHECK_EQ(s.late_calls, 0);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_read_and_write_same_fd(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0], .consume = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1);

    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 2);

    fd_remove(&s);
    write_byte(fds[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 2);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_update_replaces(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0] };
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    /* Second registration replaces the first: only other_read runs. */
    aio_set_fd_handler(ctx, fds[0], false, other_read, NULL, &s);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1000);

    /* Update to write-only: the read handler is gone. */
    s.writes = 0;
    aio_set_fd_handler(ctx, fds[0], false, NULL, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1);

    /* And back to read-only: writability no longer calls anything. */
    s.writes = 0;
    s.consume = true;
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    CHECK(aio_poll(ctx, false));    /* the byte is still there */
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 0);
    CHECK(!aio_poll(ctx, false));

    /* A new opaque takes effect too. */
    {
        FdState t = { .ctx = ctx, .fd = fds[0], .consume = true };

        aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &t);
        write_byte(fds[1]);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(t.reads, 1);
        CHECK_EQ(s.reads, 1);
        fd_remove(&t);
    }
    /* Removing an fd that has no handler is harmless. */
    aio_set_fd_handler(ctx, fds[0], false, NULL, NULL, NULL);
    CHECK(!aio_poll(ctx, false));
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_external(void)
{
    AioContext *ctx = new_ctx();
    int ext[2], internal[2];
    FdState se, si;

    make_pipe(ext);
    make_pipe(internal);
    se = (FdState) { .ctx = ctx, .fd = ext[0], .consume = true };
    si = (FdState) { .ctx = ctx, .fd = internal[0], .consume = true };
    aio_set_fd_handler(ctx, ext[0], true, state_read, NULL, &se);
    aio_set_fd_handler(ctx, internal[0], false, state_read, NULL, &si);
    CHECK(!aio_external_disabled(ctx));

    aio_disable_external(ctx);
    aio_disable_external(ctx);
    CHECK(aio_external_disabled(ctx));
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 0);

    /* Non-external handlers still run while external ones are off. */
    write_byte(internal[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(si.reads, 1);
    CHECK_EQ(se.reads, 0);

    aio_enable_external(ctx);
    CHECK(aio_external_disabled(ctx));  /* nested: still disabled */
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 0);

    aio_enable_external(ctx);
    CHECK(!aio_external_disabled(ctx));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(se.reads, 1);
    CHECK(!aio_poll(ctx, false));

    /* Data that arrived while disabled is seen once enabled again, by a
     * blocking poll too. */
    aio_disable_external(ctx);
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(se.reads, 2);

    /* An external handler registered while disabled stays off too. */
    aio_set_fd_handler(ctx, ext[0], false, NULL, NULL, NULL);
    aio_disable_external(ctx);
    aio_set_fd_handler(ctx, ext[0], true, state_read, NULL, &se);
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 2);
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(se.reads, 3);

    fd_remove(&se);
    fd_remove(&si);
    close(ext[0]);
    close(ext[1]);
    close(internal[0]);
    close(internal[1]);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_fdmon_name);
    RUN(test_fd_read_pipe);
    RUN(test_fd_read_socketpair);
    RUN(test_fd_read_eof);
    RUN(test_fd_write_socket);
    RUN(test_fd_read_and_write_same_fd);
    RUN(test_fd_update_replaces);
    RUN(test_fd_external);
    return test_done();
}
