/*
 * test-regress-fd.c - regressions in the fd handler set and the fd
 * monitors.
 *
 * Documented outcomes checked here (include/aioloop/aio.h):
 *  - A descriptor closed while another descriptor (a dup, a fork child,
 *    SCM_RIGHTS) keeps its open file alive stays in the kernel's epoll
 *    set after its handler is removed (EPOLL_CTL_DEL fails with EBADF).
 *    Its events name a (fd, generation) pair that no live handler has:
 *    they are dropped, never dispatched and never dereferenced, and the
 *    epoll set is rebuilt without the stale registration, so it stops
 *    waking the loop (no spin, no use-after-free).
 *  - Adding or updating a handler on a descriptor that is not open
 *    aborts with a message naming the descriptor, on both monitors
 *    (epoll: EBADF from epoll_ctl, no silent move to ppoll).
 *  - A handler whose descriptor is closed while it is registered is not
 *    called again and does not wake the loop, on both monitors (epoll
 *    forgets a closed descriptor; ppoll sees POLLNVAL once and parks the
 *    handler); removing it works as usual, and a new handler on the same
 *    number watches the new file.
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>

#include "regress-test.h"

typedef struct {
    int fd;
    int reads;
    bool drain;
} Reader;

static void reader_cb(void *opaque)
{
    Reader *r = opaque;

    r->reads++;
    if (r->drain) {
        drain_fd(r->fd);
    }
}

/* A descriptor number that is not open, far above the ones a new
 * context takes (the lowest free numbers). */
static int closed_fd_number(void)
{
    int fd = fcntl(1, F_DUPFD_CLOEXEC, 700);

    if (fd < 0) {
        perror("F_DUPFD");
        abort();
    }
    close(fd);
    return fd;
}

/* ------------------------------------------------------------------ */
/* Stale epoll registrations                                           */

/*
 * The reproducer: the read end is closed while a dup keeps the
 * pipe open, the handler removed, the pipe written. Before the fix epoll
 * reported the write with a pointer to the freed handler node: ASan
 * heap-use-after-free in aioloop__add_ready_handler, a spin otherwise.
 */
static void test_epoll_event_after_close_of_dup_no_uaf(void)
{
    AioContext *ctx = new_ctx();
    Reader r = { 0 }, k = { 0 };
    int p[2], keep;
    unsigned long waits;

    make_pipe(p);
    keep = dup(p[0]);
    REQUIRE(keep >= 0);
    r.fd = p[0];
    aio_set_fd_handler(ctx, p[0], false, reader_cb, NULL, &r);
    close(p[0]);
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    write_byte(p[1]);

    waits = poll_through_timer(ctx, 20);
    printf("#   fd-monitor waits through a 20 ms timer: %lu\n", waits);
    CHECK(waits < SPIN_WAITS);
    CHECK_EQ(r.reads, 0);
    /* The stale registration stopped firing: nothing is pending though
     * the pipe still holds the byte. */
    CHECK(!aio_pending(ctx));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(strcmp(aio_context_fdmon_name(ctx), using_epoll() ? "epoll"
                                                               : "poll"), 0);

    /* The open file still works through the descriptor that kept it. */
    k.fd = keep;
    k.drain = true;
    aio_set_fd_handler(ctx, keep, false, reader_cb, NULL, &k);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(k.reads, 1);
    CHECK_EQ(r.reads, 0);
    aio_set_fd_handler(ctx, keep, false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(keep);
    close(p[1]);
}

/*
 * The number of the closed descriptor is reused for another pipe, which
 * gets a handler of its own: the old file's stale registration (same fd
 * number, older generation) must neither reach the new handler nor the
 * freed node, and the new pipe must still be watched once the stale one
 * is gone.
 */
static void test_epoll_stale_registration_of_reused_fd_number_not_dispatched(void)
{
    AioContext *ctx = new_ctx();
    Reader old = { 0 }, cur = { 0 };
    int a[2], b[2], keep, num;
    unsigned long waits;

    make_pipe(a);
    make_pipe(b);
    keep = dup(a[0]);
    REQUIRE(keep >= 0);
    num = a[0];
    old.fd = num;
    aio_set_fd_handler(ctx, num, false, reader_cb, NULL, &old);
    close(num);
    aio_set_fd_handler(ctx, num, false, NULL, NULL, NULL);
    /* Another file under the same number, with its own handler. */
    REQUIRE(dup3(b[0], num, O_CLOEXEC) == num);
    close(b[0]);
    cur.fd = num;
    cur.drain = true;
    aio_set_fd_handler(ctx, num, false, reader_cb, NULL, &cur);

    write_byte(a[1]);               /* the old file only */
    waits = poll_through_timer(ctx, 20);
    printf("#   fd-monitor waits through a 20 ms timer: %lu\n", waits);
    CHECK(waits < SPIN_WAITS);
    CHECK_EQ(cur.reads, 0);
    CHECK_EQ(old.reads, 0);

    write_byte(b[1]);               /* the new file: its handler runs */
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(cur.reads, 1);
    CHECK_EQ(old.reads, 0);
    CHECK(!aio_poll(ctx, false));

    aio_set_fd_handler(ctx, num, false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(num);
    close(keep);
    close(a[1]);
    close(b[1]);
}

/*
 * The rebuild of the epoll set that drops a stale registration may itself
 * be refused (no memory, no descriptor for the new set): the context then
 * moves to ppoll, which polls descriptors by number and cannot see the
 * stale registration; every live handler is still watched.
 */
static void test_epoll_stale_registration_rebuild_refused_falls_back(void)
{
    AioContext *ctx;
    Reader r = { 0 }, live = { 0 };
    int p[2], q[2], keep;
    unsigned long waits;

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll set");
    }
    ctx = new_ctx();
    make_pipe(p);
    make_pipe(q);
    keep = dup(p[0]);
    REQUIRE(keep >= 0);
    live.fd = q[0];
    live.drain = true;
    aio_set_fd_handler(ctx, q[0], false, reader_cb, NULL, &live);
    r.fd = p[0];
    aio_set_fd_handler(ctx, p[0], false, reader_cb, NULL, &r);
    close(p[0]);
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    write_byte(p[1]);

    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CREATE, 0, -1, EMFILE);
    waits = poll_through_timer(ctx, 20);
    aioloop__fault_clear();
    printf("#   fd-monitor waits through a 20 ms timer: %lu\n", waits);
    CHECK(waits < SPIN_WAITS);
    CHECK(on_poll(ctx));
    CHECK_EQ(r.reads, 0);

    write_byte(q[1]);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(live.reads, 1);
    aio_set_fd_handler(ctx, q[0], false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(keep);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* ------------------------------------------------------------------ */
/* Descriptors that are not open                                       */

/*
 * A handler whose descriptor is closed while it is registered: before
 * the fix ppoll reported POLLNVAL, which fdmon-poll masked away, so a
 * blocking aio_poll() spun (993 ms of CPU in a 1 s wait). Now the handler
 * is parked: not called, not polled, on both monitors.
 */
static void test_ppoll_closed_fd_handler_parked_no_spin(void)
{
    AioContext *ctx = new_ctx();
    Reader r = { 0 }, again = { 0 };
    int p[2], q[2], num;
    unsigned long waits;

    make_pipe(p);
    num = p[0];
    r.fd = num;
    aio_set_fd_handler(ctx, num, false, reader_cb, NULL, &r);
    close(p[0]);
    close(p[1]);

    waits = poll_through_timer(ctx, 20);
    printf("#   fd-monitor waits through a 20 ms timer: %lu\n", waits);
    CHECK(waits < SPIN_WAITS);
    waits = poll_through_timer(ctx, 20);
    CHECK(waits < SPIN_WAITS);
    CHECK_EQ(r.reads, 0);
    CHECK_EQ(strcmp(aio_context_fdmon_name(ctx), using_epoll() ? "epoll"
                                                               : "poll"), 0);

    /* Removal works as usual; the number, reused, is watched afresh. */
    aio_set_fd_handler(ctx, num, false, NULL, NULL, NULL);
    make_pipe(q);
    if (q[0] != num) {
        REQUIRE(dup3(q[0], num, O_CLOEXEC) == num);
        close(q[0]);
    }
    again.fd = num;
    again.drain = true;
    aio_set_fd_handler(ctx, num, false, reader_cb, NULL, &again);
    write_byte(q[1]);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(again.reads, 1);
    CHECK_EQ(r.reads, 0);
    aio_set_fd_handler(ctx, num, false, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(num);
    close(q[1]);
}

static void add_closed_fd_child(void *opaque)
{
    AioContext *ctx = new_ctx();
    Reader r = { 0 };

    aio_set_fd_handler(ctx, *(int *)opaque, false, reader_cb, NULL, &r);
    /* Only reached without the fix: show what happened instead. */
    fprintf(stderr, "survived: fd monitor %s\n", aio_context_fdmon_name(ctx));
}

/*
 * A handler on a descriptor that was never open: before the fix epoll
 * refused it with EBADF and the context silently moved to ppoll for good
 * (where it then spun on POLLNVAL); now both monitors abort with a
 * message that names the descriptor.
 */
static void test_handler_on_never_open_fd_aborts_naming_it(void)
{
    int fd = closed_fd_number();
    char name[32];

    snprintf(name, sizeof(name), "fd %d", fd);
    CHECK(death_expect_abort(add_closed_fd_child, &fd, "aio_set_fd_handler",
                             name, "not an open", NULL));
}

static void update_closed_fd_child(void *opaque)
{
    AioContext *ctx = new_ctx();
    Reader r = { 0 };
    int p[2];

    (void)opaque;
    make_pipe(p);
    aio_set_fd_handler(ctx, p[0], false, reader_cb, NULL, &r);
    close(p[0]);
    fprintf(stderr, "fd %d closed\n", p[0]);
    aio_set_fd_handler(ctx, p[0], false, reader_cb, reader_cb, &r);
    fprintf(stderr, "survived: fd monitor %s\n", aio_context_fdmon_name(ctx));
}

/* Updating the handler of a descriptor closed while registered (epoll:
 * EPOLL_CTL_MOD fails with EBADF) aborts the same way. */
static void test_update_of_closed_fd_aborts_naming_it(void)
{
    CHECK(death_expect_abort(update_closed_fd_child, NULL,
                             "aio_set_fd_handler", "not an open", NULL));
}

/*
 * aio_enable_external() puts external handlers back into the epoll set.
 * One whose descriptor was closed meanwhile gets EBADF there: before the
 * fix that moved the context to ppoll for good (and ppoll then spun on
 * POLLNVAL). Now the handler stays parked and the context on epoll.
 */
static void test_enable_external_with_closed_fd_stays_on_epoll(void)
{
    AioContext *ctx = new_ctx();
    Reader r = { 0 }, live = { 0 };
    int p[2], q[2];
    unsigned long waits;

    make_pipe(p);
    make_pipe(q);
    r.fd = p[0];
    aio_set_fd_handler(ctx, p[0], true, reader_cb, NULL, &r);
    live.fd = q[0];
    live.drain = true;
    aio_set_fd_handler(ctx, q[0], true, reader_cb, NULL, &live);
    aio_disable_external(ctx);
    close(p[0]);
    aio_enable_external(ctx);
    CHECK_EQ(strcmp(aio_context_fdmon_name(ctx), using_epoll() ? "epoll"
                                                               : "poll"), 0);
    waits = poll_through_timer(ctx, 20);
    printf("#   fd-monitor waits through a 20 ms timer: %lu\n", waits);
    CHECK(waits < SPIN_WAITS);
    CHECK_EQ(r.reads, 0);

    write_byte(q[1]);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(live.reads, 1);
    aio_set_fd_handler(ctx, p[0], true, NULL, NULL, NULL);
    aio_set_fd_handler(ctx, q[0], true, NULL, NULL, NULL);
    aio_context_unref(ctx);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    RUN(test_epoll_event_after_close_of_dup_no_uaf);
    RUN(test_epoll_stale_registration_of_reused_fd_number_not_dispatched);
    RUN(test_epoll_stale_registration_rebuild_refused_falls_back);
    RUN(test_ppoll_closed_fd_handler_parked_no_spin);
    RUN(test_handler_on_never_open_fd_aborts_naming_it);
    RUN(test_update_of_closed_fd_aborts_naming_it);
    RUN(test_enable_external_with_closed_fd_stays_on_epoll);
    return test_done();
}
