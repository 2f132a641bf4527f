/*
 * test-fd-kinds.c - what else can be watched: event notifiers (also set
 * before registration, and external ones), a thousand idle fds, regular
 * files (epoll refuses them with EPERM: the context falls back to ppoll)
 * and /dev/null.
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
/* Event notifiers                                                     */

typedef struct {
    EventNotifier e;
    int count;
    int cleared;            /* test_and_clear() returned true */
    bool clear;
} NotifierState;

static void notifier_read(EventNotifier *e)
{
    NotifierState *n = container_of(e, NotifierState, e);

    n->count++;
    if (n->clear && event_notifier_test_and_clear(e)) {
        n->cleared++;
    }
}

static void test_event_notifier(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 0) == 0);
    CHECK(event_notifier_get_fd(&n.e) >= 0);
    aio_set_event_notifier(ctx, &n.e, false, notifier_read);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 0);

    CHECK_EQ(event_notifier_set(&n.e), 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    CHECK_EQ(n.cleared, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);

    /* Two sets before the loop runs: one call, one clear. */
    event_notifier_set(&n.e);
    event_notifier_set(&n.e);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(n.count, 2);
    CHECK_EQ(n.cleared, 2);
    CHECK(!aio_poll(ctx, false));

    /* A handler that does not clear runs again (level-triggered). */
    n.clear = false;
    event_notifier_set(&n.e);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);
    CHECK(event_notifier_test_and_clear(&n.e));
    CHECK(!event_notifier_test_and_clear(&n.e));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);

    /* Removed: setting it runs nothing. */
    aio_set_event_notifier(ctx, &n.e, false, NULL);
    event_notifier_set(&n.e);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

static void test_event_notifier_initially_set(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 1) == 0);
    aio_set_event_notifier(ctx, &n.e, false, notifier_read);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    CHECK_EQ(n.cleared, 1);
    CHECK(!aio_poll(ctx, false));
    aio_set_event_notifier(ctx, &n.e, false, NULL);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

static void test_event_notifier_external(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 0) == 0);
    aio_set_event_notifier(ctx, &n.e, true, notifier_read);
    aio_disable_external(ctx);
    event_notifier_set(&n.e);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 0);
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    aio_set_event_notifier(ctx, &n.e, true, NULL);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Many fds                                                            */

#define MANY 1000

static int many_counts[MANY];

static void many_read(void *opaque)
{
    int *count = opaque;

    (*count)++;
}

static bool raise_fd_limit(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return false;
    }
    if (rl.rlim_cur >= want) {
        return true;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        return false;
    }
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void test_fd_many(void)
{
    AioContext *ctx;
    static int efd[MANY];
    const int pick[] = { 0, 537, MANY - 1 };
    unsigned p;
    int i;

    if (!raise_fd_limit(MANY + 64)) {
        SKIP_CASE("RLIMIT_NOFILE is below 1064 and cannot be raised");
    }
    ctx = new_ctx();
    memset(many_counts, 0, sizeof(many_counts));
    for (i = 0; i < MANY; i++) {
        efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        REQUIRE(efd[i] >= 0);
        aio_set_fd_handler(ctx, efd[i], false, many_read, NULL,
                           &many_counts[i]);
    }
    CHECK(!aio_poll(ctx, false));
    for (p = 0; p < ARRAY_SIZE(pick); p++) {
        uint64_t one = 1, val;
        int sum = 0;

        REQUIRE(write(efd[pick[p]], &one, sizeof(one)) == sizeof(one));
        CHECK(aio_poll(ctx, true));
        for (i = 0; i < MANY; i++) {
            sum += many_counts[i];
        }
        CHECK_EQ(many_counts[pick[p]], 1);
        CHECK_EQ(sum, 1);
        REQUIRE(read(efd[pick[p]], &val, sizeof(val)) == sizeof(val));
        many_counts[pick[p]] = 0;
        CHECK(!aio_poll(ctx, false));
    }
    CHECK(strcmp(aio_context_fdmon_name(ctx), requested_fdmon()) == 0);
    for (i = 0; i < MANY; i++) {
        aio_set_fd_handler(ctx, efd[i], false, NULL, NULL, NULL);
        close(efd[i]);
    }
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Regular files: epoll refuses them (EPERM), the context falls back.  */

static int open_temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/aioloop-test-fd-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd >= 0) {
        unlink(path);
        if (write(fd, "data", 4) != 4) {
            close(fd);
            return -1;
        }
        lseek(fd, 0, SEEK_SET);
    }
    return fd;
}

static void test_fd_regular_file(void)
{
    AioContext *ctx = new_ctx();
    int file = open_temp_file();
    int p[2];
    FdState sf, sp;

    REQUIRE(file >= 0);
    make_pipe(p);
    /* A pipe registered before the fallback must survive it. */
    sp = (FdState) { .ctx = ctx, .fd = p[0], .consume = true };
    aio_set_fd_handler(ctx, p[0], false, state_read, NULL, &sp);
    CHECK(!aio_poll(ctx, false));

    sf = (FdState) { .ctx = ctx, .fd = file };
    aio_set_fd_handler(ctx, file, false, state_read, NULL, &sf);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sf.reads, 1);
    CHECK(aio_poll(ctx, true));     /* a regular file is always ready */
    CHECK_EQ(sf.reads, 2);
    printf("#   fd monitor after registering a regular file: %s\n",
           aio_context_fdmon_name(ctx));
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);

    /* The pipe still works, with and without the file registered. */
    write_byte(p[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sp.reads, 1);
    CHECK_EQ(sf.reads, 3);
    fd_remove(&sf);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.reads, 3);
    write_byte(p[1]);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(sp.reads, 2);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.late_calls, 0);

    fd_remove(&sp);
    close(p[0]);
    close(p[1]);
    close(file);
    aio_context_unref(ctx);
}

static void test_fd_regular_file_write(void)
{
    AioContext *ctx = new_ctx();
    int file = open_temp_file();
    FdState sf;

    REQUIRE(file >= 0);
    sf = (FdState) { .ctx = ctx, .fd = file, .remove_self = false };
    aio_set_fd_handler(ctx, file, false, NULL, state_write, &sf);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sf.writes, 1);
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);
    fd_remove(&sf);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.writes, 1);
    close(file);
    aio_context_unref(ctx);
}

/* /dev/null is a character device that epoll also refuses. */
static void test_fd_dev_null(void)
{
    AioContext *ctx = new_ctx();
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    FdState s;

    if (fd < 0) {
        aio_context_unref(ctx);
        SKIP_CASE("cannot open /dev/null");
    }
    s = (FdState) { .ctx = ctx, .fd = fd };
    aio_set_fd_handler(ctx, fd, false, state_read, NULL, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    close(fd);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_event_notifier);
    RUN(test_event_notifier_initially_set);
    RUN(test_event_notifier_external);
    RUN(test_fd_many);
    RUN(test_fd_regular_file);
    RUN(test_fd_regular_file_write);
    RUN(test_fd_dev_null);
    return test_done();
}
