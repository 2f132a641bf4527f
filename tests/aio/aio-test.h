/*
 * tests/aio/aio-test.h - helpers shared by the AioContext test programs
 * in tests/aio/, on top of the harness in tests/test.h.
 *
 *   UNDER_TSAN             (from test.h) 1 under ThreadSanitizer, else 0
 *   watchdog_install(msg)  what a hang most likely means, for the
 *                          harness's no-progress watchdog (test.h)
 *   RUN(fn)                TEST(fn): the case in its own process
 *   new_ctx()              a new AioContext (aborts on failure)
 *   sleep_ms(), sleep_us() sleep the whole time, despite signals
 *   start_thread()         a joinable QemuThread, or abort
 *   count_cb, atomic_count_cb   BH callbacks that count their runs
 *   make_pipe(), write_byte(), drain_fd()   non-blocking pipe helpers
 *
 * Unused static inline helpers cost nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_AIO_TEST_H
#define AIOLOOP_AIO_TEST_H

#include <aioloop.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* What the watchdog prints after "# watchdog: <case> hung". */
#define WATCHDOG_HUNG         ""
#define WATCHDOG_LOST_WAKEUP  " (lost wake-up?)"
#define WATCHDOG_DEADLOCK     " (deadlock?)"

/* Names what a hang of this program most likely is (one of WATCHDOG_*);
 * the harness's progress watchdog (test.h) prints it. */
static inline void watchdog_install(const char *why)
{
    test__stall_why = why;
}

/* A case: TEST() runs it in its own process under the harness's
 * no-progress watchdog (test.h). */
#define RUN(fn) TEST(fn)

/* A new AioContext; aborts if it cannot be made. */
static inline AioContext *new_ctx(void)
{
    return aio_context_new(&error_abort);
}

/* Sleeps for all of 'ts', resuming after signals. */
static inline void sleep_timespec(struct timespec ts)
{
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        /* retry with the remainder */
    }
}

/* Sleeps 'ms' milliseconds. */
static inline void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    sleep_timespec(ts);
}

/* Sleeps 'us' microseconds. */
static inline void sleep_us(int us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000L };

    sleep_timespec(ts);
}

/* Starts a joinable thread named 'name' running fn(arg); aborts if it
 * cannot be created. */
static inline void start_thread(QemuThread *t, const char *name,
                                void *(*fn)(void *), void *arg)
{
    int ret = qemu_thread_create(t, name, fn, arg, QEMU_THREAD_JOINABLE);

    if (ret != 0) {
        printf("# qemu_thread_create(%s): %s\n", name, strerror(-ret));
        abort();
    }
}

/* BH callback: increments the int that 'opaque' points to (one thread). */
static inline void count_cb(void *opaque)
{
    int *count = opaque;

    (*count)++;
}

/* BH callback: atomically increments the int that 'opaque' points to,
 * for counters that other threads read or that run in other threads. */
static inline void atomic_count_cb(void *opaque)
{
    int *count = opaque;

    qatomic_inc(count);
}

/* A non-blocking, close-on-exec pipe; aborts on failure. */
static inline void make_pipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        perror("pipe2");
        abort();
    }
}

/* Writes one byte to 'fd'; aborts on failure. */
static inline void write_byte(int fd)
{
    char c = 'x';

    if (write(fd, &c, 1) != 1) {
        perror("write");
        abort();
    }
}

/* Reads whatever is available on a non-blocking fd; returns the number
 * of bytes. */
static inline int drain_fd(int fd)
{
    char buf[4096];
    int total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        total += (int)n;
    }
    return total;
}

/* Records where and in which "current context" it ran. */
typedef struct {
    QemuSemaphore done;
    QemuThread runner;      /* the thread the callback ran in */
    AioContext *current;
    int runs;
} Probe;

static inline void probe_cb(void *opaque)
{
    Probe *p = opaque;

    qemu_thread_get_self(&p->runner);
    p->current = qemu_get_current_aio_context();
    p->runs++;
    qemu_sem_post(&p->done);
}

#endif /* AIOLOOP_AIO_TEST_H */
