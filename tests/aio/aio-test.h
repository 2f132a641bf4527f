/*
 * tests/aio/aio-test.h - helpers shared by the AioContext test programs
 * in tests/aio/, on top of the harness in tests/test.h.
 *
 *   UNDER_TSAN, UNDER_ASAN (from test.h) 1 under ThreadSanitizer /
 *                          AddressSanitizer, else 0
 *   watchdog_install(msg)  what a hang most likely means, for the
 *                          harness's no-progress watchdog (test.h)
 *   RUN(fn)                TEST(fn): the case in its own process
 *   new_ctx()              a new AioContext (aborts on failure)
 *   sleep_ms(), sleep_us() sleep the whole time, despite signals
 *   thread_sleeps_in_poll(tid), wait_until_polling(tid)
 *                          is / wait until thread tid is asleep in the
 *                          fd monitor (instead of sleeping and hoping)
 *   iothread_tid(io)       the kernel thread id of an IOThread
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
#include <sys/syscall.h>
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

/*
 * Whether /proc/.../syscall speaks this program's system call numbers:
 * the calling thread reads its own, which must show the read(2) in
 * progress. Not so under an emulator (qemu-user shows the host's).
 */
static inline bool proc_syscall_numbers_native(void)
{
    static int native = -1;         /* not known yet */

    if (native < 0) {
        char buf[64];
        int fd = open("/proc/thread-self/syscall", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

        if (fd >= 0) {
            close(fd);
        }
        buf[n > 0 ? n : 0] = '\0';
        native = n > 0 && strtol(buf, NULL, 10) == SYS_read;
    }
    return native;
}

/*
 * Whether thread @tid of this process (qemu_get_thread_id()) is asleep
 * in a system call that waits for events (ppoll, poll, epoll_pwait,
 * epoll_pwait2, epoll_wait, io_uring_enter): read from
 * /proc/self/task/TID/stat and .../syscall (where the system call numbers
 * are not ours, asleep at all is taken for it). false when it is not, or
 * when /proc cannot say (then callers proceed without the premise).
 */
static inline bool thread_sleeps_in_poll(int tid)
{
    static const long waits[] = {
#ifdef SYS_ppoll
        SYS_ppoll,
#endif
#ifdef SYS_poll
        SYS_poll,
#endif
#ifdef SYS_epoll_pwait
        SYS_epoll_pwait,
#endif
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
#ifdef SYS_io_uring_enter
        SYS_io_uring_enter,
#endif
        441,        /* epoll_pwait2, on every architecture */
    };
    char path[64], buf[256];
    const char *p;
    long nr;
    size_t i;
    FILE *f;
    int n;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    f = fopen(path, "r");
    if (!f) {
        return false;
    }
    n = (int)fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n > 0 ? n : 0] = '\0';
    p = strrchr(buf, ')');          /* the name may hold spaces */
    if (!p || p[1] != ' ' || p[2] != 'S') {
        return false;
    }
    if (!proc_syscall_numbers_native()) {
        return true;
    }
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
    f = fopen(path, "r");
    if (!f) {
        return false;
    }
    n = fscanf(f, "%ld", &nr);
    fclose(f);
    if (n != 1) {
        return false;
    }
    for (i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
        if (nr == waits[i]) {
            return true;
        }
    }
    return false;
}

/*
 * Waits until thread @tid sleeps in the fd monitor, so that what the
 * caller does next lands on a sleeping loop (a premise for coverage, not
 * for correctness: every check must hold whenever it acts). Gives up
 * after about 2 s of not seeing it (a loop that found work, /proc that
 * cannot tell, an emulator) and returns false; true once seen.
 */
static inline bool wait_until_polling(int tid)
{
    int i;

    for (i = 0; i < 2000; i++) {
        if (thread_sleeps_in_poll(tid)) {
            return true;
        }
        sleep_timespec((struct timespec) { 0, 1000 * 1000 });
    }
    return false;
}

typedef struct {
    int tid;
    QemuSemaphore done;
} IOThreadTid;

static inline void iothread_tid_bh(void *opaque)
{
    IOThreadTid *t = opaque;

    t->tid = qemu_get_thread_id();
    qemu_sem_post(&t->done);
}

/* The kernel thread id of @io's thread (asked with a BH that runs there;
 * for wait_until_polling()). */
static inline int iothread_tid(IOThread *io)
{
    IOThreadTid t = { .tid = 0 };

    qemu_sem_init(&t.done, 0);
    aio_bh_schedule_oneshot(iothread_get_aio_context(io), iothread_tid_bh, &t);
    qemu_sem_wait(&t.done);
    qemu_sem_destroy(&t.done);
    return t.tid;
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
