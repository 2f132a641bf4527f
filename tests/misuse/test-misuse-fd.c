/*
 * test-misuse-fd.c - fd and event-notifier handlers given what they must
 * not get. Registered once per fd monitor (AIOLOOP_FDMON=epoll|poll).
 *
 * Outcomes checked (aio.h, aio_set_fd_handler() and neighbours):
 *   register a negative fd                  abort naming the fd ("not an
 *                                             open file descriptor")
 *   remove a negative fd                    no-op
 *   register an fd beyond the table that    abort naming the fd, before
 *     is not open (INT_MAX, 100000)           the table grows for it (the
 *                                             int doubling overflowed and
 *                                             hung at INT_MAX)
 *   register a high fd that is open         works (the table grows, in
 *     (near RLIMIT_NOFILE)                    size_t, without overflow)
 *   remove twice / remove an fd never       no-op; other contexts'
 *     registered (here or anywhere)           registrations untouched
 *   io_poll without io_read/io_poll_ready   abort naming the fd
 *   io_poll_ready without io_poll           ignored; io_read runs
 *   aio_enable_external() unbalanced        abort naming the context
 *     (also after balanced pairs)             (every build: below zero
 *                                             the count read "disabled")
 *   handlers left when the context is       freed with it; the fds stay
 *     freed, or added by a callback that      open and the caller's
 *     the freeing runs                        (nothing leaks)
 *   aio_set_event_notifier() with a         abort naming the notifier
 *     zero-filled or cleaned-up notifier
 *
 * Not here: an fd closed while registered (dup'ed or not), a never-open
 * fd inside the table, and the context's own descriptors (tests/regress).
 *
 * SPDX-License-Identifier: MIT
 */
#include <limits.h>

#include "misuse-test.h"

/* A context and a non-blocking pipe, for the cases that need both. */
typedef struct {
    AioContext *ctx;
    int fds[2];
    int reads, writes, polls, poll_readies;
} Fixture;

static void fixture_init(Fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->ctx = new_ctx();
    make_pipe(f->fds);
}

static void fixture_fini(Fixture *f)
{
    aio_set_fd_handler(f->ctx, f->fds[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(f->ctx, f->fds[1], false, NULL, NULL, NULL);
    aio_context_unref(f->ctx);
    close(f->fds[0]);
    close(f->fds[1]);
}

static void read_cb(void *opaque)
{
    Fixture *f = opaque;

    drain_fd(f->fds[0]);
    f->reads++;
}

static bool poll_cb(void *opaque)
{
    ((Fixture *)opaque)->polls++;
    return false;
}

static void poll_ready_cb(void *opaque)
{
    ((Fixture *)opaque)->poll_readies++;
}

/* Polls @ctx without blocking until @counter moves (at most 100 times). */
static bool poll_for(AioContext *ctx, int *counter)
{
    int before = *counter;

    for (int i = 0; i < 100 && *counter == before; i++) {
        aio_poll(ctx, false);
    }
    return *counter != before;
}

/* ------------------------------------------------------------------ */
/* Bad descriptor numbers                                              */

static void child_register_negative(void *opaque)
{
    AioContext *ctx = new_ctx();
    int dummy = 0;

    (void)opaque;
    aio_set_fd_handler(ctx, -1, false, misuse_count_cb, NULL, &dummy);
}

static void child_register_negative_poll(void *opaque)
{
    AioContext *ctx = new_ctx();
    Fixture f = { 0 };

    (void)opaque;
    aio_set_fd_handler_poll(ctx, -5, false, read_cb, NULL, poll_cb, NULL, &f);
}

static void test_fd_negative_register_aborts(void)
{
    expect_abort(child_register_negative, NULL, "aio_set_fd_handler",
                 "fd -1 is not an open file descriptor");
    expect_abort(child_register_negative_poll, NULL,
                 "aio_set_fd_handler_poll",
                 "fd -5 is not an open file descriptor");
}

static void test_fd_negative_remove_is_noop(void)
{
    Fixture f;

    fixture_init(&f);
    aio_set_fd_handler(f.ctx, -1, false, NULL, NULL, NULL);
    aio_set_fd_handler_poll(f.ctx, INT_MIN, true, NULL, NULL, NULL, NULL,
                            NULL);
    CHECK(!aio_poll(f.ctx, false));
    /* The context still works. */
    aio_set_fd_handler(f.ctx, f.fds[0], false, read_cb, NULL, &f);
    write_byte(f.fds[1]);
    CHECK(poll_for(f.ctx, &f.reads));
    fixture_fini(&f);
}

static void child_register_not_open(void *opaque)
{
    int fd = *(int *)opaque;
    AioContext *ctx = new_ctx();
    int dummy = 0;

    death_expect("fd %d ", fd);
    aio_set_fd_handler(ctx, fd, false, misuse_count_cb, NULL, &dummy);
}

static void test_fd_not_open_beyond_table_aborts(void)
{
    int huge = INT_MAX, big = 100000;

    /* Not open: the table would have grown by gigabytes (and the old
     * doubling in int overflowed) for a number that cannot be watched. */
    expect_abort(child_register_not_open, &huge, "aio_set_fd_handler",
                 "is not an open file descriptor");
    REQUIRE(fcntl(big, F_GETFD) < 0 && errno == EBADF);
    expect_abort(child_register_not_open, &big, "aio_set_fd_handler",
                 "is not an open file descriptor");
}

static void test_fd_high_open_fd_works(void)
{
    struct rlimit rl;
    Fixture f;
    int high;

    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        SKIP_CASE("cannot raise RLIMIT_NOFILE to its hard limit");
    }
    high = rl.rlim_max > (1 << 20) ? (1 << 20) - 1 : (int)rl.rlim_max - 1;
    if (high < 1000) {
        SKIP_CASE("the hard limit on open files is too low for a high fd");
    }
    fixture_init(&f);
    if (dup2(f.fds[0], high) != high) {
        fixture_fini(&f);
        SKIP_CASE("dup2 to a high fd failed");
    }
    printf("#   fd %d\n", high);
    aio_set_fd_handler(f.ctx, high, false, read_cb, NULL, &f);
    write_byte(f.fds[1]);
    CHECK(poll_for(f.ctx, &f.reads));
    aio_set_fd_handler(f.ctx, high, false, NULL, NULL, NULL);
    close(high);
    fixture_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Removal                                                             */

static void test_fd_remove_twice_is_noop(void)
{
    Fixture f;

    fixture_init(&f);
    aio_set_fd_handler(f.ctx, f.fds[0], false, read_cb, NULL, &f);
    aio_set_fd_handler(f.ctx, f.fds[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(f.ctx, f.fds[0], false, NULL, NULL, NULL);
    write_byte(f.fds[1]);
    CHECK(!aio_poll(f.ctx, false));
    CHECK_EQ(f.reads, 0);
    /* Registering again after the double removal works. */
    aio_set_fd_handler(f.ctx, f.fds[0], false, read_cb, NULL, &f);
    CHECK(poll_for(f.ctx, &f.reads));
    fixture_fini(&f);
}

static void test_fd_remove_unregistered_is_noop(void)
{
    AioContext *other = new_ctx();
    int spare[2];
    Fixture f;

    fixture_init(&f);
    make_pipe(spare);
    aio_set_fd_handler(f.ctx, f.fds[0], false, read_cb, NULL, &f);
    /* Registered on f.ctx, not on other; spare nowhere. */
    aio_set_fd_handler(other, f.fds[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(other, spare[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(f.ctx, spare[0], false, NULL, NULL, NULL);
    CHECK(!aio_poll(other, false));
    write_byte(f.fds[1]);
    CHECK(poll_for(f.ctx, &f.reads));       /* untouched */
    aio_context_unref(other);
    close(spare[0]);
    close(spare[1]);
    fixture_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Callback combinations                                               */

/* io_poll that does the work itself, as QEMU's dataplane did before
 * io_poll_ready existed (6.1): legal in QEMU, so not misuse. The loop
 * calls it while polling and counts a true return as progress; removing
 * the handler takes all callbacks NULL. */
static bool poll_work_cb(void *opaque)
{
    Fixture *f = opaque;

    f->polls++;
    return f->polls == 1;       /* "did work" once */
}

static void test_fd_poll_alone_does_the_work(void)
{
    Fixture f;

    fixture_init(&f);
    aio_set_fd_handler_poll(f.ctx, f.fds[0], false, NULL, NULL, poll_work_cb,
                            NULL, &f);
    /* A non-blocking poll asks io_poll once; its "ready" is progress. */
    CHECK(aio_poll(f.ctx, false));
    CHECK_EQ(f.polls, 1);
    CHECK_EQ(f.reads, 0);
    /* io_poll with io_write only is accepted as well. */
    aio_set_fd_handler_poll(f.ctx, f.fds[1], false, NULL, read_cb,
                            poll_work_cb, NULL, &f);
    aio_set_fd_handler_poll(f.ctx, f.fds[0], false, NULL, NULL, NULL, NULL,
                            NULL);
    aio_set_fd_handler_poll(f.ctx, f.fds[1], false, NULL, NULL, NULL, NULL,
                            NULL);
    f.polls = 0;
    CHECK(!aio_poll(f.ctx, false));
    CHECK_EQ(f.polls, 0);       /* removed: never asked again */
    fixture_fini(&f);
}

static void test_fd_poll_ready_without_poll_ignored(void)
{
    Fixture f;

    fixture_init(&f);
    aio_context_set_poll_params(f.ctx, 1000 * 1000, 0, 0, &error_abort);
    aio_set_fd_handler_poll(f.ctx, f.fds[0], false, read_cb, NULL, NULL,
                            poll_ready_cb, &f);
    write_byte(f.fds[1]);
    CHECK(aio_poll(f.ctx, true));
    CHECK_EQ(f.reads, 1);
    CHECK_EQ(f.poll_readies, 0);
    fixture_fini(&f);
}

/* ------------------------------------------------------------------ */
/* External handlers                                                   */

static void child_enable_unbalanced(void *opaque)
{
    AioContext *ctx = new_ctx();
    int pairs = *(int *)opaque;

    for (int i = 0; i < pairs; i++) {
        aio_disable_external(ctx);
    }
    for (int i = 0; i < pairs; i++) {
        aio_enable_external(ctx);
    }
    death_expect("AioContext %p:", (void *)ctx);
    aio_enable_external(ctx);
}

static void test_enable_external_unbalanced_aborts(void)
{
    int none = 0;

    expect_abort(child_enable_unbalanced, &none, "aio_enable_external",
                 "not disabled");
}

static void test_enable_external_extra_after_pairs_aborts(void)
{
    int pairs = 3;
    Fixture f;

    /* Balanced pairs work: the external handler runs again after them. */
    fixture_init(&f);
    aio_set_fd_handler(f.ctx, f.fds[0], true, read_cb, NULL, &f);
    for (int i = 0; i < pairs; i++) {
        aio_disable_external(f.ctx);
    }
    write_byte(f.fds[1]);
    CHECK(!aio_poll(f.ctx, false));
    for (int i = 0; i < pairs; i++) {
        CHECK(aio_external_disabled(f.ctx));
        aio_enable_external(f.ctx);
    }
    CHECK(!aio_external_disabled(f.ctx));
    CHECK(poll_for(f.ctx, &f.reads));
    fixture_fini(&f);
    /* One more enable than disables. */
    expect_abort(child_enable_unbalanced, &pairs, "aio_enable_external",
                 "not disabled");
}

/* ------------------------------------------------------------------ */
/* Handlers and the context's end                                      */

static void test_handlers_freed_with_context(void)
{
    AioContext *ctx2;
    Fixture f;

    fixture_init(&f);
    aio_set_fd_handler(f.ctx, f.fds[0], false, read_cb, NULL, &f);
    aio_set_fd_handler(f.ctx, f.fds[1], true, NULL, read_cb, &f);
    aio_context_unref(f.ctx);       /* with both handlers registered */
    /* The descriptors are still the caller's, and usable elsewhere. */
    CHECK(fcntl(f.fds[0], F_GETFD) >= 0);
    CHECK(fcntl(f.fds[1], F_GETFD) >= 0);
    ctx2 = new_ctx();
    aio_set_fd_handler(ctx2, f.fds[0], false, read_cb, NULL, &f);
    write_byte(f.fds[1]);
    CHECK(poll_for(ctx2, &f.reads));
    aio_set_fd_handler(ctx2, f.fds[0], false, NULL, NULL, NULL);
    aio_context_unref(ctx2);
    close(f.fds[0]);
    close(f.fds[1]);
}

typedef struct {
    Fixture f;
    int ret;
    int completions;
    int oneshots;
} Dying;

static int nop_work(void *opaque)
{
    (void)opaque;
    return 7;
}

static void oneshot_cb(void *opaque)
{
    ((Dying *)opaque)->oneshots++;
}

/* A completion that the context's last unref runs: it hangs more work
 * on the dying context. */
static void register_on_dying_cb(void *opaque, int ret)
{
    Dying *d = opaque;

    d->completions++;
    d->ret = ret;
    aio_set_fd_handler(d->f.ctx, d->f.fds[0], false, read_cb, NULL, &d->f);
    aio_bh_schedule_oneshot(d->f.ctx, oneshot_cb, d);
}

static void test_handler_added_while_context_dies(void)
{
    Dying d = { 0 };

    fixture_init(&d.f);
    thread_pool_submit_aio(aio_get_thread_pool(d.f.ctx), nop_work, NULL,
                           register_on_dying_cb, &d);
    aio_context_unref(d.f.ctx);     /* runs the completion */
    CHECK_EQ(d.completions, 1);
    CHECK(d.ret == 7 || d.ret == -ECANCELED);
    CHECK_EQ(d.oneshots, 0);        /* freed unrun with the context */
    CHECK(fcntl(d.f.fds[0], F_GETFD) >= 0);
    close(d.f.fds[0]);
    close(d.f.fds[1]);
}

/* ------------------------------------------------------------------ */
/* Event notifiers                                                     */

static void en_cb(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
}

static void child_register_notifier(void *opaque)
{
    AioContext *ctx = new_ctx();
    EventNotifier zeroed = { 0 }, cleaned;
    EventNotifier *e = &zeroed;

    if (*(int *)opaque) {
        if (event_notifier_init(&cleaned, 0) < 0) {
            _exit(77);
        }
        event_notifier_cleanup(&cleaned);
        e = &cleaned;
    }
    death_expect("EventNotifier %p", (void *)e);
    aio_set_event_notifier(ctx, e, false, en_cb);
}

static void test_notifier_zeroed_register_aborts(void)
{
    int cleaned = 0;

    expect_abort(child_register_notifier, &cleaned, "aio_set_event_notifier",
                 "is not initialised");
}

static void test_notifier_cleaned_register_aborts(void)
{
    int cleaned = 1;

    expect_abort(child_register_notifier, &cleaned, "aio_set_event_notifier",
                 "is not initialised");
}

int main(void)
{
    printf("# fd monitor: %s\n", getenv("AIOLOOP_FDMON") ?
           getenv("AIOLOOP_FDMON") : "default");
    TEST(test_fd_negative_register_aborts);
    TEST(test_fd_negative_remove_is_noop);
    TEST(test_fd_not_open_beyond_table_aborts);
    TEST(test_fd_high_open_fd_works);
    TEST(test_fd_remove_twice_is_noop);
    TEST(test_fd_remove_unregistered_is_noop);
    TEST(test_fd_poll_alone_does_the_work);
    TEST(test_fd_poll_ready_without_poll_ignored);
    TEST(test_enable_external_unbalanced_aborts);
    TEST(test_enable_external_extra_after_pairs_aborts);
    TEST(test_handlers_freed_with_context);
    TEST(test_handler_added_while_context_dies);
    TEST(test_notifier_zeroed_register_aborts);
    TEST(test_notifier_cleaned_register_aborts);
    return test_done();
}
