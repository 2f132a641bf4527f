/*
 * test-event-notifier.c - EventNotifier on both backends (eventfd and the
 * pipe fallback, forced through a test hook), descriptor exhaustion, and
 * a set from another thread waking poll().
 *
 * SPDX-License-Identifier: MIT
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <aioloop/event-notifier.h>
#include <aioloop/thread.h>
#include "../../src/util/event-notifier-internal.h"

#include "test.h"
#include "death-test.h"

#define MS 1000000LL

/* Is fd readable right now (or within timeout_ms)? */
static bool readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int n;

    do {
        n = poll(&pfd, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    return n == 1 && (pfd.revents & POLLIN);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* ------------------------------------------------------------------ */
/* Cases run once per backend                                          */

static void check_backend(EventNotifier *e, bool pipe_backend)
{
    if (pipe_backend) {
        CHECK(event_notifier_get_fd(e) != event_notifier_get_wfd(e));
    } else {
        CHECK_EQ(event_notifier_get_fd(e), event_notifier_get_wfd(e));
    }
}

static void case_set_and_clear(bool pipe_backend)
{
    EventNotifier e;
    int fd;

    aioloop__event_notifier_force_pipe(pipe_backend);
    REQUIRE(event_notifier_init(&e, 0) == 0);
    check_backend(&e, pipe_backend);
    fd = event_notifier_get_fd(&e);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(event_notifier_get_wfd(&e), F_GETFL) & O_NONBLOCK);

    CHECK(!readable(fd, 0));                     /* not before set */
    CHECK(!event_notifier_test_and_clear(&e));
    CHECK_EQ(event_notifier_set(&e), 0);
    CHECK(readable(fd, 0));                      /* POLLIN after set */
    CHECK(event_notifier_test_and_clear(&e));
    CHECK(!readable(fd, 0));
    CHECK(!event_notifier_test_and_clear(&e));

    /* Sets coalesce: two sets, one event. */
    CHECK_EQ(event_notifier_set(&e), 0);
    CHECK_EQ(event_notifier_set(&e), 0);
    CHECK(event_notifier_test_and_clear(&e));
    CHECK(!event_notifier_test_and_clear(&e));
    CHECK(!readable(fd, 0));

    event_notifier_cleanup(&e);
    aioloop__event_notifier_force_pipe(false);
}

static void case_init_active(bool pipe_backend)
{
    EventNotifier e;

    aioloop__event_notifier_force_pipe(pipe_backend);
    REQUIRE(event_notifier_init(&e, 1) == 0);
    CHECK(readable(event_notifier_get_fd(&e), 0));
    CHECK(event_notifier_test_and_clear(&e));
    CHECK(!event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    aioloop__event_notifier_force_pipe(false);
}

/* Far more sets than a pipe can buffer: EAGAIN must count as "set". */
static void case_many_sets(bool pipe_backend)
{
    EventNotifier e;
    int i, failures = 0;

    aioloop__event_notifier_force_pipe(pipe_backend);
    REQUIRE(event_notifier_init(&e, 0) == 0);
    for (i = 0; i < 20000; i++) {
        if (event_notifier_set(&e) != 0) {
            failures++;
        }
    }
    CHECK_EQ(failures, 0);
    CHECK(event_notifier_test_and_clear(&e));    /* drains everything */
    CHECK(!readable(event_notifier_get_fd(&e), 0));
    CHECK(!event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    aioloop__event_notifier_force_pipe(false);
}

static void case_cleanup_twice(bool pipe_backend)
{
    EventNotifier e;
    int rfd, wfd;

    aioloop__event_notifier_force_pipe(pipe_backend);
    REQUIRE(event_notifier_init(&e, 1) == 0);
    rfd = event_notifier_get_fd(&e);
    wfd = event_notifier_get_wfd(&e);
    event_notifier_cleanup(&e);
    CHECK(!fd_is_open(rfd));
    CHECK(!fd_is_open(wfd));
    CHECK_EQ(event_notifier_get_fd(&e), -1);
    CHECK_EQ(event_notifier_set(&e), -EBADF);
    CHECK(!event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);                  /* second time: no-op */
    aioloop__event_notifier_force_pipe(false);
}

typedef struct Setter {
    EventNotifier *e;
    int poller_tid;
    int ret;
} Setter;

/* Sets the notifier once the poller sleeps (or is not seen to). */
static void *setter_thread(void *opaque)
{
    Setter *s = opaque;

    test_wait_blocked(s->poller_tid);
    s->ret = event_notifier_set(s->e);
    return NULL;
}

static void case_cross_thread_wakes_poll(bool pipe_backend)
{
    EventNotifier e;
    Setter s = { .e = &e, .poller_tid = test_gettid(), .ret = -1 };
    QemuThread th;

    aioloop__event_notifier_force_pipe(pipe_backend);
    REQUIRE(event_notifier_init(&e, 0) == 0);
    REQUIRE(qemu_thread_create(&th, "setter", setter_thread, &s,
                               QEMU_THREAD_JOINABLE) == 0);
    /* No bound: a set that does not wake poll() is a hang (watchdog). */
    CHECK(readable(event_notifier_get_fd(&e), -1));
    qemu_thread_join(&th);
    CHECK_EQ(s.ret, 0);
    CHECK(event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    aioloop__event_notifier_force_pipe(false);
}

#define BOTH(name)                                                      \
    static void test_##name##_eventfd(void) { case_##name(false); }     \
    static void test_##name##_pipe(void) { case_##name(true); }

BOTH(set_and_clear)
BOTH(init_active)
BOTH(many_sets)
BOTH(cleanup_twice)
BOTH(cross_thread_wakes_poll)

/* ------------------------------------------------------------------ */

static void test_zeroed_cleanup(void)
{
    EventNotifier e;

    memset(&e, 0, sizeof(e));
    event_notifier_cleanup(&e);                  /* uninitialised: no-op */
    CHECK_EQ(event_notifier_get_fd(&e), -1);
    CHECK_EQ(event_notifier_set(&e), -EBADF);
}

static void test_init_fd(void)
{
    EventNotifier e;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    REQUIRE(fd >= 0);
    CHECK_EQ(event_notifier_init_fd(&e, -1), -EINVAL);
    event_notifier_cleanup(&e);                  /* uninitialised: no-op */
    REQUIRE(event_notifier_init_fd(&e, fd) == 0);
    CHECK_EQ(event_notifier_get_fd(&e), fd);
    CHECK_EQ(event_notifier_get_wfd(&e), fd);
    CHECK_EQ(event_notifier_set(&e), 0);
    CHECK(readable(fd, 0));
    CHECK(event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);                  /* takes fd with it */
    CHECK(!fd_is_open(fd));
}

/* In a child: fill the descriptor table, then both backends must fail
 * with -EMFILE and leave the notifier uninitialised. Exit code = the
 * number of the first failed check, 0 if all passed. */
static void exhaust_fds(void *opaque)
{
    struct rlimit rl = { 64, 64 };
    EventNotifier e;
    int ret;

    /* Valgrind refuses to change RLIMIT_NOFILE (EPERM) but enforces its
     * own limit: fill the table up to that one instead. */
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && !UNDER_VALGRIND) {
        _exit(10);
    }
    while (open("/dev/null", O_RDONLY) >= 0 || errno == EINTR) {
    }
    if (errno != EMFILE) {
        _exit(11);
    }
    ret = event_notifier_init(&e, 0);
    if (ret != -EMFILE) {
        _exit(1);
    }
    if (e.initialized || event_notifier_get_fd(&e) != -1) {
        _exit(2);
    }
    event_notifier_cleanup(&e);                  /* harmless */
    aioloop__event_notifier_force_pipe(true);
    ret = event_notifier_init(&e, 1);
    if (ret != -EMFILE) {
        _exit(3);
    }
    event_notifier_cleanup(&e);
    /* Free one slot: a pipe needs two, so the pipe backend still fails
     * cleanly, without leaking the half it got. */
    close(20);
    ret = event_notifier_init(&e, 0);
    if (ret != -EMFILE) {
        _exit(4);
    }
    if (fcntl(20, F_GETFD) >= 0) {
        _exit(5);                                /* nothing leaked there */
    }
    /* Free two: now it works. */
    close(21);
    ret = event_notifier_init(&e, 0);
    if (ret != 0) {
        _exit(6);
    }
    event_notifier_cleanup(&e);
    _exit(0);
}

static void test_emfile(void)
{
    DeathResult res;

    REQUIRE(death_run(exhaust_fds, NULL, &res));
    if (!WIFEXITED(res.status)) {
        printf("#   child died: status %d\n", res.status);
    } else if (WEXITSTATUS(res.status) != 0) {
        printf("#   child failed check %d\n", WEXITSTATUS(res.status));
    }
    CHECK(exited_with(&res, 0));
}

int main(void)
{
    TEST(test_set_and_clear_eventfd);
    TEST(test_set_and_clear_pipe);
    TEST(test_init_active_eventfd);
    TEST(test_init_active_pipe);
    TEST(test_many_sets_eventfd);
    TEST(test_many_sets_pipe);
    TEST(test_cleanup_twice_eventfd);
    TEST(test_cleanup_twice_pipe);
    TEST(test_cross_thread_wakes_poll_eventfd);
    TEST(test_cross_thread_wakes_poll_pipe);
    TEST(test_zeroed_cleanup);
    TEST(test_init_fd);
    TEST(test_emfile);
    return test_done();
}
