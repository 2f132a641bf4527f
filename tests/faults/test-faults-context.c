/*
 * test-faults-context.c - creating the event-loop objects when the
 * system refuses: event notifiers, AioContexts, IOThreads and the main
 * loop, under injected eventfd/pipe2/epoll_create/pthread_create
 * failures and an allocation-failure sweep (fail the Nth allocation, for
 * every N until the constructor succeeds).
 *
 * Contract checked: the error reaches the caller as documented (-errno
 * from event_notifier_init, NULL with the Error set and errno from
 * aio_context_new, NULL with the Error from iothread_create, -errno with
 * the Error from qemu_init_main_loop); nothing leaks (descriptors are
 * counted here; memory is LSan's job in the ASan build); an epoll that
 * cannot be created is not an error (the context runs on ppoll); and an
 * object built after the faults works (BH, timer and fd handler each run
 * exactly once).
 *
 * Registered once per fd monitor, like the tests in tests/aio/.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/config.h>
#if AIOLOOP_HAVE_GLIB
#include <glib.h>
#endif
#include "faults-test.h"


/* ------------------------------------------------------------------ */
/* A context that works                                                */

typedef struct {
    int bh, timer, fd;
    int fds[2];
} Work;

static void work_fd_cb(void *opaque)
{
    Work *w = opaque;

    drain_fd(w->fds[0]);
    w->fd++;
}

static void work_timer_cb(void *opaque)
{
    Work *w = opaque;

    w->timer++;
}

/* A BH, a 1 ms timer and a readable pipe on @ctx: each runs once. */
static bool ctx_works(AioContext *ctx)
{
    Work w = { 0 };
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                 work_timer_cb, &w);

    make_pipe(w.fds);
    aio_set_fd_handler(ctx, w.fds[0], false, work_fd_cb, NULL, &w);
    aio_bh_schedule_oneshot(ctx, count_cb, &w.bh);
    timer_mod(t, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1);
    write_byte(w.fds[1]);
    while (!w.bh || !w.timer || !w.fd) {        /* no bound: watchdog */
        aio_poll(ctx, true);
    }
    aio_poll(ctx, false);
    aio_set_fd_handler(ctx, w.fds[0], false, NULL, NULL, NULL);
    timer_free(t);
    close(w.fds[0]);
    close(w.fds[1]);
    if (w.bh != 1 || w.timer != 1 || w.fd != 1) {
        printf("#   bh %d, timer %d, fd %d (want 1 each)\n", w.bh, w.timer,
               w.fd);
        return false;
    }
    return true;
}

static bool using_epoll(void)
{
    const char *m = getenv("AIOLOOP_FDMON");

    return !m || strcmp(m, "poll") != 0;
}

/* Whether @err's message ends with strerror(@errnum). */
static bool error_says(Error *err, int errnum)
{
    const char *msg = err ? error_get_pretty(err) : "";
    const char *want = strerror(errnum);
    size_t n = strlen(msg), w = strlen(want);

    if (n < w || strcmp(msg + n - w, want) != 0) {
        printf("#   error '%s' does not end with '%s'\n", msg, want);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Event notifiers                                                     */

static void test_notifier_eventfd_emfile(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_EVENTFD);
    int fds0 = test_count_fds();
    EventNotifier e;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, EMFILE);
    CHECK_EQ(event_notifier_init(&e, 1), -EMFILE);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EVENTFD) - hits0, 1);
    /* Left uninitialised, safe to clean up, nothing open. */
    CHECK_EQ(e.rfd, -1);
    CHECK_EQ(e.wfd, -1);
    CHECK_EQ(event_notifier_get_fd(&e), -1);
    CHECK_EQ(event_notifier_set(&e), -EBADF);
    event_notifier_cleanup(&e);
    CHECK_EQ(test_count_fds(), fds0);

    /* Only one call failed: the next works. */
    REQUIRE(event_notifier_init(&e, 1) == 0);
    CHECK(e.rfd == e.wfd);
    CHECK(event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    CHECK_EQ(test_count_fds(), fds0);
}

/* ENOSYS (no eventfd) is not a failure: the pipe fallback is used. */
static void test_notifier_eventfd_enosys_uses_pipe(void)
{
    int fds0 = test_count_fds();
    EventNotifier e;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, ENOSYS);
    REQUIRE(event_notifier_init(&e, 0) == 0);
    CHECK(e.rfd != e.wfd);
    CHECK(!event_notifier_test_and_clear(&e));
    CHECK_EQ(event_notifier_set(&e), 0);
    CHECK(event_notifier_test_and_clear(&e));
    event_notifier_cleanup(&e);
    CHECK_EQ(test_count_fds(), fds0);
}

static void test_notifier_pipe_fails_too(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_PIPE);
    int fds0 = test_count_fds();
    EventNotifier e;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, EINVAL);
    aioloop__fault_inject(AIOLOOP_FAULT_PIPE, 0, 1, ENFILE);
    CHECK_EQ(event_notifier_init(&e, 0), -ENFILE);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_PIPE) - hits0, 1);
    CHECK_EQ(e.rfd, -1);
    event_notifier_cleanup(&e);
    CHECK_EQ(test_count_fds(), fds0);
}

/* ------------------------------------------------------------------ */
/* Contexts                                                            */

static void test_ctx_eventfd_fails(void)
{
    int fds0 = test_count_fds();
    Error *err = NULL;
    AioContext *ctx;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, EMFILE);
    errno = 0;
    ctx = aio_context_new(&err);
    CHECK_EQ(errno, EMFILE);
    CHECK(ctx == NULL);
    REQUIRE(err != NULL);
    printf("#   %s\n", error_get_pretty(err));
    CHECK(error_says(err, EMFILE));
    error_free(err);
    CHECK_EQ(test_count_fds(), fds0);

    /* errp may be NULL. */
    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, ENFILE);
    CHECK(aio_context_new(NULL) == NULL);
    CHECK_EQ(test_count_fds(), fds0);

    ctx = aio_context_new(&error_abort);
    CHECK(ctx_works(ctx));
    aio_context_unref(ctx);
    CHECK_EQ(test_count_fds(), fds0);
}

/* No epoll: the context falls back to ppoll and works. */
static void test_ctx_epoll_create_fails(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CREATE);
    int fds0 = test_count_fds();
    AioContext *ctx;

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: epoll_create is never called");
    }
    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CREATE, 0, 1, EMFILE);
    ctx = aio_context_new(&error_abort);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_EPOLL_CREATE) - hits0, 1);
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);
    CHECK(ctx_works(ctx));
    aio_context_unref(ctx);
    CHECK_EQ(test_count_fds(), fds0);
}

/* epoll_ctl refusing the context's own notifier at creation: ppoll. */
static void test_ctx_epoll_ctl_fails(void)
{
    AioContext *ctx;

    if (!using_epoll()) {
        SKIP_CASE("AIOLOOP_FDMON=poll: no epoll_ctl");
    }
    aioloop__fault_inject(AIOLOOP_FAULT_EPOLL_CTL, 0, 1, ENOMEM);
    ctx = aio_context_new(&error_abort);
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);
    CHECK(ctx_works(ctx));
    aio_context_unref(ctx);
}

/*
 * Fails allocation number N (of the calling thread) for N = 0, 1, ...
 * until @ctor succeeds without meeting the fault. Each failure must be
 * reported (checked by @failed) and leave no descriptor open; the object
 * built at the end must work (@ok) before @dtor frees it. Returns the
 * number of allocations @ctor makes.
 */
typedef void *CtorFn(Error **errp);

static int alloc_sweep(CtorFn *ctor, bool (*ok)(void *obj),
                       void (*dtor)(void *obj), bool want_errno)
{
    for (unsigned n = 0; n < 200; n++) {
        AioloopFaultPlan plan = { .skip = n, .count = 1, .err = ENOMEM,
                                  .this_thread = true };
        unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_ALLOC);
        int fds0 = test_count_fds(), saved;
        Error *err = NULL;
        void *obj;

        aioloop__fault_arm(AIOLOOP_FAULT_ALLOC, &plan);
        errno = 0;
        obj = ctor(&err);
        saved = errno;
        aioloop__fault_clear_site(AIOLOOP_FAULT_ALLOC);
        if (aioloop__fault_hits(AIOLOOP_FAULT_ALLOC) == hits0) {
            CHECK(obj != NULL);
            CHECK(err == NULL);
            if (obj) {
                CHECK(ok(obj));
                dtor(obj);
            }
            error_free(err);
            return (int)n;
        }
        if (obj || !err || !error_says(err, ENOMEM) ||
            (want_errno && saved != ENOMEM) || test_count_fds() != fds0) {
            printf("#   allocation %u failed: object %p, error '%s', errno "
                   "%d, fds %d -> %d\n", n, obj,
                   err ? error_get_pretty(err) : "(none)", saved, fds0,
                   test_count_fds());
            CHECK(0);
            if (obj) {
                dtor(obj);
            }
            error_free(err);
            return -1;
        }
        error_free(err);
    }
    CHECK(0);                   /* never succeeded */
    return -1;
}

static void *ctx_ctor(Error **errp)
{
    return aio_context_new(errp);
}

static bool ctx_ok(void *obj)
{
    return ctx_works(obj);
}

static void ctx_dtor(void *obj)
{
    aio_context_unref(obj);
}

static void test_ctx_alloc_sweep(void)
{
    int n = alloc_sweep(ctx_ctor, ctx_ok, ctx_dtor, true);

    printf("#   aio_context_new makes %d allocations, each failure "
           "reported\n", n);
    /* The context, the ppoll state, the timer lists, the coroutine BH,
     * the notifier's handler and the fd table at least. */
    CHECK(n >= 8);
}

/* ------------------------------------------------------------------ */
/* IOThreads                                                           */

typedef struct {
    QemuSemaphore done;
    int runs;
} Remote;

static void remote_cb(void *opaque)
{
    Remote *r = opaque;

    qatomic_inc(&r->runs);
    qemu_sem_post(&r->done);
}

static void *io_ctor(Error **errp)
{
    return iothread_create("faults-io", errp);
}

/* A BH scheduled from here runs in the IOThread, once. */
static bool io_ok(void *obj)
{
    Remote r = { .runs = 0 };
    bool ok;

    qemu_sem_init(&r.done, 0);
    aio_bh_schedule_oneshot(iothread_get_aio_context(obj), remote_cb, &r);
    qemu_sem_wait(&r.done);
    ok = qatomic_read(&r.runs) == 1;
    qemu_sem_destroy(&r.done);
    return ok;
}

static void io_dtor(void *obj)
{
    iothread_destroy(obj);
}

static void test_iothread_alloc_sweep(void)
{
    int n = alloc_sweep(io_ctor, io_ok, io_dtor, false);

    printf("#   iothread_create makes %d allocations, each failure "
           "reported\n", n);
    CHECK(n >= 10);
}

static void test_iothread_thread_create_fails(void)
{
    unsigned long hits0 = aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE);
    unsigned long calls0;
    int fds0 = test_count_fds();
    Error *err = NULL;
    IOThread *it;

    aioloop__fault_inject(AIOLOOP_FAULT_THREAD_CREATE, 0, 1, EAGAIN);
    it = iothread_create("faults-io", &err);
    CHECK(it == NULL);
    CHECK_EQ(aioloop__fault_hits(AIOLOOP_FAULT_THREAD_CREATE) - hits0, 1);
    REQUIRE(err != NULL);
    printf("#   %s\n", error_get_pretty(err));
    CHECK(error_says(err, EAGAIN));
    error_free(err);
    CHECK_EQ(test_count_fds(), fds0);

    /* The IOThread's notifier cannot be made: same, no thread started. */
    calls0 = aioloop__fault_calls(AIOLOOP_FAULT_THREAD_CREATE);
    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, EMFILE);
    err = NULL;
    it = iothread_create(NULL, &err);
    CHECK(it == NULL);
    CHECK(err && error_says(err, EMFILE));
    error_free(err);
    CHECK_EQ(aioloop__fault_calls(AIOLOOP_FAULT_THREAD_CREATE), calls0);
    CHECK_EQ(test_count_fds(), fds0);

    it = iothread_create("faults-io", &error_abort);
    CHECK(io_ok(it));
    iothread_destroy(it);
}

/* ------------------------------------------------------------------ */
/* The main loop                                                       */

static void test_main_loop_init_fails(void)
{
    int fds0 = test_count_fds();
    Error *err = NULL;
    AioContext *ctx;

    aioloop__fault_inject(AIOLOOP_FAULT_EVENTFD, 0, 1, EMFILE);
    CHECK_EQ(qemu_init_main_loop(&err), -EMFILE);
    CHECK(qemu_get_aio_context() == NULL);
    CHECK(err && error_says(err, EMFILE));
    error_free(err);
    err = NULL;

    aioloop__fault_inject(AIOLOOP_FAULT_ALLOC, 0, 1, ENOMEM);
    CHECK_EQ(qemu_init_main_loop(&err), -ENOMEM);
    CHECK(qemu_get_aio_context() == NULL);
    CHECK(err && error_says(err, ENOMEM));
    error_free(err);
    CHECK_EQ(test_count_fds(), fds0);

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    ctx = qemu_get_aio_context();
    REQUIRE(ctx != NULL);
    CHECK(ctx_works(ctx));
    qemu_cleanup_main_loop();
    CHECK_EQ(test_count_fds(), fds0);
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
    FRUN(test_notifier_eventfd_emfile);
    FRUN(test_notifier_eventfd_enosys_uses_pipe);
    FRUN(test_notifier_pipe_fails_too);
    FRUN(test_ctx_eventfd_fails);
    FRUN(test_ctx_epoll_create_fails);
    FRUN(test_ctx_epoll_ctl_fails);
    FRUN(test_ctx_alloc_sweep);
    FRUN(test_iothread_alloc_sweep);
    FRUN(test_iothread_thread_create_fails);
    FRUN(test_main_loop_init_fails);
    fault_summary();
    return test_done();
}
