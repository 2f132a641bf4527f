/*
 * test-iothread.c - IOThreads: create/destroy, work handed to an
 * IOThread's context runs in that thread, qemu_get_current_aio_context()
 * inside and outside, destroy runs the BHs already scheduled, fd handlers
 * on an IOThread, acquiring an IOThread's context, repeated
 * create/destroy without leaking memory or descriptors, and adaptive
 * polling on by default.
 *
 * Waits for the IOThread have no time bound: an IOThread that never runs
 * what it was given is a hang, which the harness's watchdog names.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "aio-test.h"
#include "fd-count.h"


/* ------------------------------------------------------------------ */

static void test_iothread_create_destroy(void)
{
    IOThread *io = iothread_create("io0", &error_abort);
    AioContext *ctx;

    REQUIRE(io != NULL);
    ctx = iothread_get_aio_context(io);
    CHECK(ctx != NULL);
    CHECK(iothread_get_id(io) != NULL);
    CHECK(iothread_get_id(io) && strcmp(iothread_get_id(io), "io0") == 0);
    iothread_destroy(io);

    /* NULL id is allowed. */
    io = iothread_create(NULL, NULL);
    REQUIRE(io != NULL);
    CHECK(iothread_get_id(io) == NULL);
    iothread_destroy(io);
}

static void test_iothread_bh_runs_in_iothread(void)
{
    IOThread *io1, *io2;
    AioContext *main_ctx, *ctx1, *ctx2;
    QemuThread first_runner = { 0 };
    Probe p = { .runs = 0 };
    int i;

    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    main_ctx = qemu_get_aio_context();
    REQUIRE(main_ctx != NULL);
    CHECK(qemu_get_current_aio_context() == main_ctx);

    io1 = iothread_create("io1", &error_abort);
    io2 = iothread_create("io2", &error_abort);
    ctx1 = iothread_get_aio_context(io1);
    ctx2 = iothread_get_aio_context(io2);
    CHECK(ctx1 != ctx2);
    CHECK(ctx1 != main_ctx);
    qemu_sem_init(&p.done, 0);

    for (i = 0; i < 5; i++) {
        aio_bh_schedule_oneshot(ctx1, probe_cb, &p);
        qemu_sem_wait(&p.done);
        CHECK(!qemu_thread_is_self(&p.runner));
        CHECK(p.current == ctx1);
        if (i == 0) {
            first_runner = p.runner;
        } else {
            /* Always the same thread. */
            CHECK(pthread_equal(first_runner.thread, p.runner.thread));
        }
    }
    aio_bh_schedule_oneshot(ctx2, probe_cb, &p);
    qemu_sem_wait(&p.done);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(!pthread_equal(first_runner.thread, p.runner.thread));
    CHECK(p.current == ctx2);
    CHECK_EQ(p.runs, 6);

    /* Outside any IOThread: the main context. */
    CHECK(qemu_get_current_aio_context() == main_ctx);

    iothread_destroy(io1);
    iothread_destroy(io2);
    qemu_sem_destroy(&p.done);
    qemu_cleanup_main_loop();
}

static void test_iothread_destroy_runs_scheduled_bhs(void)
{
    int round;

    for (round = 0; round < 5; round++) {
        IOThread *io = iothread_create("drain", &error_abort);
        AioContext *ctx = iothread_get_aio_context(io);
        int count = 0;
        QEMUBH *bh;
        int i;

        /* Keep the context past destroy to delete our own BH. */
        aio_context_ref(ctx);
        bh = aio_bh_new(ctx, atomic_count_cb, &count);
        for (i = 0; i < 100; i++) {
            aio_bh_schedule_oneshot(ctx, atomic_count_cb, &count);
        }
        qemu_bh_schedule(bh);
        iothread_destroy(io);
        CHECK_EQ(qatomic_read(&count), 101);
        qemu_bh_delete(bh);
        aio_context_unref(ctx);
    }
}

typedef struct {
    int fd;
    int reads;              /* atomic */
    QemuSemaphore sem;
} IoFd;

static void iofd_read(void *opaque)
{
    IoFd *s = opaque;
    char buf[64];

    while (read(s->fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }
    qatomic_inc(&s->reads);
    qemu_sem_post(&s->sem);
}

typedef struct {
    AioContext *ctx;
    int fd;
    QemuSemaphore done;
} RemoveReq;

static void remove_fd_bh(void *opaque)
{
    RemoveReq *r = opaque;

    aio_set_fd_handler(r->ctx, r->fd, false, NULL, NULL, NULL);
    qemu_sem_post(&r->done);
}

static void test_iothread_fd_handler(void)
{
    IOThread *io = iothread_create("fd", &error_abort);
    AioContext *ctx = iothread_get_aio_context(io);
    IoFd s;
    RemoveReq r;
    int p[2];
    int i;

    REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    s.fd = p[0];
    s.reads = 0;
    qemu_sem_init(&s.sem, 0);
    /* Registered from this thread while the IOThread sleeps. */
    aio_set_fd_handler(ctx, p[0], false, iofd_read, NULL, &s);
    for (i = 0; i < 10; i++) {
        REQUIRE(write(p[1], "x", 1) == 1);
        qemu_sem_wait(&s.sem);
    }
    CHECK_EQ(qatomic_read(&s.reads), 10);

    /* Remove it from the loop thread, where no late call can follow. */
    r.ctx = ctx;
    r.fd = p[0];
    qemu_sem_init(&r.done, 0);
    aio_bh_schedule_oneshot(ctx, remove_fd_bh, &r);
    qemu_sem_wait(&r.done);
    REQUIRE(write(p[1], "x", 1) == 1);
    /* Not called any more (looked at for 100 ms: load can only make
     * this miss a bug, not fail). */
    CHECK_EQ(qemu_sem_timedwait(&s.sem, 100), -1);
    CHECK_EQ(qatomic_read(&s.reads), 10);

    iothread_destroy(io);
    qemu_sem_destroy(&r.done);
    qemu_sem_destroy(&s.sem);
    close(p[0]);
    close(p[1]);
}

static void test_iothread_acquire_context(void)
{
    IOThread *io = iothread_create("acq", &error_abort);
    AioContext *ctx = iothread_get_aio_context(io);
    int count = 0;
    int i;

    /* The IOThread sleeps in aio_poll(); taking its context must not
     * wait for an event that never comes (a hang: the watchdog). */
    for (i = 0; i < 10; i++) {
        aio_context_acquire(ctx);
        /* While held, the IOThread cannot run our BH; we run it. */
        aio_bh_schedule_oneshot(ctx, atomic_count_cb, &count);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(qatomic_read(&count), i + 1);
        aio_context_release(ctx);
    }
    iothread_destroy(io);
}

static void test_iothread_create_destroy_many(void)
{
    int fds_before = test_count_fds();
    int fds_after;
    int i, count = 0;

    for (i = 0; i < 50; i++) {
        IOThread *io = iothread_create("many", &error_abort);
        AioContext *ctx = iothread_get_aio_context(io);

        REQUIRE(io != NULL);
        if (i % 2) {
            aio_bh_schedule_oneshot(ctx, atomic_count_cb, &count);
        }
        iothread_destroy(io);
    }
    CHECK_EQ(qatomic_read(&count), 25);
    fds_after = test_count_fds();
    printf("#   open fds before %d, after %d\n", fds_before, fds_after);
    CHECK_EQ(fds_after, fds_before);
}

static void test_iothreads_concurrently(void)
{
    IOThread *io[4];
    int counts[4] = { 0 };
    int i, j;

    for (i = 0; i < 4; i++) {
        io[i] = iothread_create("multi", &error_abort);
    }
    for (j = 0; j < 1000; j++) {
        for (i = 0; i < 4; i++) {
            aio_bh_schedule_oneshot(iothread_get_aio_context(io[i]),
                                    atomic_count_cb, &counts[i]);
        }
    }
    for (i = 0; i < 4; i++) {
        iothread_destroy(io[i]);
        CHECK_EQ(qatomic_read(&counts[i]), 1000);
    }
}

/*
 * IOThreads poll adaptively by default (QEMU's poll-max-ns of 32768 ns):
 * when the IOThread's waits are short, aio_poll() busy-polls the handlers'
 * io_poll before it sleeps. Ping-pong BHs with this thread (short waits)
 * while a pollable handler that never has work counts its io_poll calls
 * between one BH and the next. Polling off, io_poll is asked at most once
 * per loop iteration, and only when work turns up while the loop
 * announces a sleep; polling on, it is asked over and over within a poll
 * window.
 */
typedef struct {
    int efd;
    int since_bh;               /* io_poll calls since the last BH */
    int max_between;            /* the most seen between two BHs */
    int done;                   /* atomic: BHs run */
} IdlePoll;

static bool idle_poll_cb(void *opaque)
{
    IdlePoll *p = opaque;

    qatomic_set(&p->since_bh, qatomic_read(&p->since_bh) + 1);
    return false;
}

static void idle_read_cb(void *opaque)
{
    (void)opaque;
}

/* In the IOThread, as io_poll is. */
static void idle_bh(void *opaque)
{
    IdlePoll *p = opaque;

    if (qatomic_read(&p->since_bh) > qatomic_read(&p->max_between)) {
        qatomic_set(&p->max_between, qatomic_read(&p->since_bh));
    }
    qatomic_set(&p->since_bh, 0);
    qatomic_inc(&p->done);
}

/* Returns the most io_poll calls seen between two of @rounds BHs (fewer
 * if the time budget @end comes first; *done says how many). The first
 * two rounds are not counted: the calls before them may come from the
 * settings in force before the caller changed them (an iteration reads
 * the poll limit when it starts). */
static int ping_pong(AioContext *ctx, IdlePoll *p, int rounds, int64_t end,
                     int *done)
{
    int i;

    qatomic_set(&p->done, 0);
    for (i = 0; i < rounds && (i < 3 || test_stress_more(end)); i++) {
        if (i == 2) {
            qatomic_set(&p->max_between, 0);
        }
        aio_bh_schedule_oneshot(ctx, idle_bh, p);
        /* Acquire: the BH's writes happen before our next use. */
        while (qatomic_load_acquire(&p->done) != i + 1) {
            /* spin: the IOThread's wait for the next BH stays short */
        }
    }
    *done = i;
    return qatomic_read(&p->max_between);
}

static void test_iothread_polls_by_default(void)
{
    enum { ROUNDS = 20000 };
    IOThread *io = iothread_create("io-poll", &error_abort);
    AioContext *ctx = iothread_get_aio_context(io);
    IdlePoll p = { .efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    int64_t half = (test_stress_end() - test_now_ns()) / 2;
    int on, off, on_rounds, off_rounds;

    /* Each half of the time budget, or 20,000 rounds. */
    REQUIRE(p.efd >= 0);
    aio_set_fd_handler_poll(ctx, p.efd, false, idle_read_cb, NULL,
                            idle_poll_cb, NULL, &p);
    on = ping_pong(ctx, &p, ROUNDS, test_now_ns() + half, &on_rounds);
    aio_context_set_poll_params(ctx, 0, 0, 0, &error_abort);
    off = ping_pong(ctx, &p, ROUNDS, test_now_ns() + half, &off_rounds);
    printf("#   most io_poll calls between two BHs: %d polling by default "
           "(%d rounds), %d with polling off (%d rounds)\n", on, on_rounds,
           off, off_rounds);
    CHECK(on >= 20);
    CHECK(on > 4 * off);
    aio_set_fd_handler(ctx, p.efd, false, NULL, NULL, NULL);
    iothread_destroy(io);
    close(p.efd);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_iothread_create_destroy);
    RUN(test_iothread_bh_runs_in_iothread);
    RUN(test_iothread_destroy_runs_scheduled_bhs);
    RUN(test_iothread_fd_handler);
    RUN(test_iothread_acquire_context);
    RUN(test_iothread_create_destroy_many);
    RUN(test_iothreads_concurrently);
    RUN(test_iothread_polls_by_default);
    return test_done();
}
