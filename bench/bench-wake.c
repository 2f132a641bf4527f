/*
 * bench-wake - what does it cost to wake another thread's event loop and
 * be woken back? A ping-pong between two threads, each running its own
 * loop; figures in us per round trip (median of BENCH_REPS batches, see
 * bench.h).
 *
 *   wake.aioloop         two AioContexts, thread A's BH schedules a BH on
 *                        B's context and B's BH schedules A's; both
 *                        threads sleep in aio_poll(ctx, true)
 *   wake.aioloop-poll    the same with adaptive polling (max 50 us) on
 *                        both contexts
 * Floors, what the hardware and kernel can do at best:
 *   wake.eventfd-floor   two eventfds, blocking read() / write()
 *   wake.futex-floor     two futex words, FUTEX_WAIT / FUTEX_WAKE
 *   wake.busy-poll-floor two atomic words, both threads spinning
 * Peers' cross-thread wake-ups:
 *   wake.libuv           uv_async_send() ping-pong between two loops
 *   wake.glib            an idle source attached to the other thread's
 *                        GMainContext (g_source_attach() wakes it)
 *   wake.libevent        evthread_use_pthreads(); event_active() on a user
 *                        event of the other thread's event_base
 * Ratios: aioloop/eventfd-floor (target <= 1.1), aioloop-poll/busy-poll-
 * floor (target <= 2), and each peer / aioloop.
 *
 * Thread A runs on one CPU and thread B on another (pinned, see
 * choose_cpus()), so every wake-up crosses CPUs. After each figure a note
 * gives the fastest batch and how many CPUs the process kept busy while
 * it was measured. Two more figures pin both threads to the same CPU:
 *   wake.same-cpu.aioloop, wake.same-cpu.eventfd-floor
 * there a wake-up is a plain context switch, much cheaper than a cross-CPU
 * one in a VM, so the loop's own overhead shows more clearly.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_setaffinity_np, CPU_SET */
#endif
#include <aioloop/aio.h>
#include <aioloop/atomic.h>
#include <aioloop/thread.h>

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#include <event2/thread.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#endif

/*
 * Placement. Left to the scheduler, the two threads sometimes share a CPU
 * (a wake-up is then a same-CPU context switch) and sometimes not (the
 * wake-up crosses CPUs and may have to bring an idle CPU out of its sleep
 * state), and the figures jump between the two regimes from run to run.
 * So thread A (main) is pinned to the first CPU the process may use and
 * thread B to the second: every figure is a cross-CPU wake-up, the case of
 * an IOThread talking to the main loop, and the only one in which busy
 * polling makes sense.
 */
static int cpu_a = -1, cpu_b = -1;

static void choose_cpus(void)
{
    bench_pin_pair(&cpu_a, &cpu_b, "thread A", "thread B");
}

typedef struct {
    void *(*fn)(void *);
    void *arg;
} ThreadStart;

static void *thread_b_trampoline(void *opaque)
{
    ThreadStart start = *(ThreadStart *)opaque;

    free(opaque);
    bench_pin(cpu_b);
    return start.fn(start.arg);
}

static void start_thread(QemuThread *t, const char *name,
                         void *(*fn)(void *), void *arg)
{
    ThreadStart *start = malloc(sizeof(*start));

    if (!start) {
        bench_die("out of memory");
    }
    start->fn = fn;
    start->arg = arg;
    if (qemu_thread_create(t, name, thread_b_trampoline, start,
                           QEMU_THREAD_JOINABLE) < 0) {
        bench_die("qemu_thread_create failed");
    }
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * Measure @fn and print the figure, followed by a note with the fastest
 * batch and how many CPUs the process kept busy meanwhile (2.0: both
 * threads spin all the time; less: they sleep between some wake-ups).
 */
static double measure_wake(const char *name, BenchFn *fn, void *opaque)
{
    double cpu0 = cpu_seconds();
    uint64_t t0 = bench_now_ns();
    double r = bench_measure(fn, opaque);
    double wall = (double)(bench_now_ns() - t0) / 1e9;

    bench_report(name, r, "us/roundtrip");
    printf("# %s: best batch %.3f us; %.2f CPUs busy while measuring\n",
           name, bench_last_best / 1000.0, (cpu_seconds() - cpu0) / wall);
    return r;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    barrier();
#endif
}

/* ------------------------------------------------------------------ */
/* aioloop                                                             */

typedef struct {
    AioContext *ctx_a, *ctx_b;
    QEMUBH *bh_a, *bh_b;
    uint64_t remaining;         /* round trips left; thread A only */
    bool done;                  /* thread A only */
    int stop;                   /* atomic: thread B exits */
    QemuThread thread;
} AioWake;

/* Runs in thread B: answer the ping. */
static void aio_pong_cb(void *opaque)
{
    AioWake *w = opaque;

    qemu_bh_schedule(w->bh_a);
}

/* Runs in thread A: the pong arrived; ping again or finish. */
static void aio_ping_cb(void *opaque)
{
    AioWake *w = opaque;

    if (--w->remaining) {
        qemu_bh_schedule(w->bh_b);
    } else {
        w->done = true;
    }
}

static void *aio_thread_b(void *opaque)
{
    AioWake *w = opaque;

    while (!qatomic_load_acquire(&w->stop)) {
        aio_poll(w->ctx_b, true);
    }
    return NULL;
}

static void run_aioloop(void *opaque, uint64_t n)
{
    AioWake *w = opaque;

    w->remaining = n;
    w->done = false;
    qemu_bh_schedule(w->bh_b);
    while (!w->done) {
        aio_poll(w->ctx_a, true);
    }
}

static double bench_aioloop(const char *name, bool polling)
{
    AioWake w = { 0 };
    double r;

    w.ctx_a = aio_context_new(NULL);
    w.ctx_b = aio_context_new(NULL);
    if (!w.ctx_a || !w.ctx_b) {
        bench_die("aio_context_new failed");
    }
    if (polling) {
        aio_context_set_poll_params(w.ctx_a, 50000, 0, 0, &error_abort);
        aio_context_set_poll_params(w.ctx_b, 50000, 0, 0, &error_abort);
    }
    w.bh_a = aio_bh_new(w.ctx_a, aio_ping_cb, &w);
    w.bh_b = aio_bh_new(w.ctx_b, aio_pong_cb, &w);
    start_thread(&w.thread, "bench-wake-b", aio_thread_b, &w);

    r = measure_wake(name, run_aioloop, &w);

    qatomic_store_release(&w.stop, 1);
    aio_notify(w.ctx_b);
    qemu_thread_join(&w.thread);
    qemu_bh_delete(w.bh_a);
    qemu_bh_delete(w.bh_b);
    aio_poll(w.ctx_a, false);
    aio_poll(w.ctx_b, false);
    aio_context_unref(w.ctx_a);
    aio_context_unref(w.ctx_b);
    return r;
}

/* ------------------------------------------------------------------ */
/* Floor: eventfd                                                      */

typedef struct {
    int to_b, to_a;             /* eventfds: ping (A->B), pong (B->A) */
    QemuThread thread;
} EfdWake;

static void efd_write(int fd, uint64_t v)
{
    while (write(fd, &v, sizeof(v)) < 0) {
        if (errno != EINTR) {
            bench_die("eventfd write failed");
        }
    }
}

static uint64_t efd_read(int fd)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) < 0) {
        if (errno != EINTR) {
            bench_die("eventfd read failed");
        }
    }
    return v;
}

static void *efd_thread_b(void *opaque)
{
    EfdWake *w = opaque;

    while (efd_read(w->to_b) == 1) {
        efd_write(w->to_a, 1);
    }
    return NULL;                /* a value > 1 means stop */
}

static void run_eventfd(void *opaque, uint64_t n)
{
    EfdWake *w = opaque;

    for (uint64_t i = 0; i < n; i++) {
        efd_write(w->to_b, 1);
        efd_read(w->to_a);
    }
}

static double bench_eventfd(const char *name)
{
    EfdWake w;
    double r;

    w.to_b = eventfd(0, EFD_CLOEXEC);
    w.to_a = eventfd(0, EFD_CLOEXEC);
    if (w.to_b < 0 || w.to_a < 0) {
        bench_die("eventfd failed");
    }
    start_thread(&w.thread, "bench-efd-b", efd_thread_b, &w);
    r = measure_wake(name, run_eventfd, &w);
    efd_write(w.to_b, 2);
    qemu_thread_join(&w.thread);
    close(w.to_b);
    close(w.to_a);
    return r;
}

/* ------------------------------------------------------------------ */
/* Floors: futex and busy-poll                                         */

/*
 * Two sequence words: A bumps ping and waits for pong to match, B waits for
 * ping to move and bumps pong. In the futex flavour every bump is followed
 * by FUTEX_WAKE and every wait that finds the word unchanged sleeps in
 * FUTEX_WAIT; in the busy flavour both sides spin.
 */
typedef struct {
    uint32_t ping __attribute__((aligned(64)));
    uint32_t pong __attribute__((aligned(64)));
    int stop;
    bool spin;
    QemuThread thread;
} SeqWake;

static void futex_wait(uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wait until *addr != old; returns the new value. */
static uint32_t seq_wait(SeqWake *w, uint32_t *addr, uint32_t old)
{
    uint32_t v;

    while ((v = qatomic_load_acquire(addr)) == old) {
        if (w->spin) {
            cpu_relax();
        } else {
            futex_wait(addr, old);
        }
    }
    return v;
}

static void seq_bump(SeqWake *w, uint32_t *addr)
{
    qatomic_store_release(addr, qatomic_read(addr) + 1);
    if (!w->spin) {
        futex_wake(addr);
    }
}

static void *seq_thread_b(void *opaque)
{
    SeqWake *w = opaque;
    uint32_t seen = 0;

    for (;;) {
        seen = seq_wait(w, &w->ping, seen);
        if (qatomic_load_acquire(&w->stop)) {
            return NULL;
        }
        seq_bump(w, &w->pong);
    }
}

static void run_seq(void *opaque, uint64_t n)
{
    SeqWake *w = opaque;

    for (uint64_t i = 0; i < n; i++) {
        uint32_t old = qatomic_read(&w->pong);

        seq_bump(w, &w->ping);
        seq_wait(w, &w->pong, old);
    }
}

static double bench_seq(const char *name, bool spin)
{
    SeqWake w = { .spin = spin };
    double r;

    start_thread(&w.thread, "bench-seq-b", seq_thread_b, &w);
    r = measure_wake(name, run_seq, &w);
    qatomic_store_release(&w.stop, 1);
    seq_bump(&w, &w.ping);
    qemu_thread_join(&w.thread);
    return r;
}

/* ------------------------------------------------------------------ */
/* libuv                                                               */

#ifdef HAVE_LIBUV
typedef struct {
    uv_loop_t loop_a, loop_b;
    uv_async_t async_a, async_b;
    uint64_t remaining;         /* thread A only */
    int stop;                   /* atomic */
    QemuThread thread;
} UvWake;

static void luv_pong_cb(uv_async_t *h)
{
    UvWake *w = h->data;

    if (qatomic_load_acquire(&w->stop)) {
        uv_close((uv_handle_t *)h, NULL);   /* loop_b then has no handles */
    } else {
        uv_async_send(&w->async_a);
    }
}

static void luv_ping_cb(uv_async_t *h)
{
    UvWake *w = h->data;

    if (--w->remaining) {
        uv_async_send(&w->async_b);
    } else {
        uv_stop(&w->loop_a);
    }
}

static void *luv_thread_b(void *opaque)
{
    UvWake *w = opaque;

    uv_run(&w->loop_b, UV_RUN_DEFAULT);
    return NULL;
}

static void run_libuv(void *opaque, uint64_t n)
{
    UvWake *w = opaque;

    w->remaining = n;
    uv_async_send(&w->async_b);
    uv_run(&w->loop_a, UV_RUN_DEFAULT);
}

static double bench_libuv(void)
{
    UvWake w = { 0 };
    double r;

    if (uv_loop_init(&w.loop_a) < 0 || uv_loop_init(&w.loop_b) < 0 ||
        uv_async_init(&w.loop_a, &w.async_a, luv_ping_cb) < 0 ||
        uv_async_init(&w.loop_b, &w.async_b, luv_pong_cb) < 0) {
        bench_die("libuv setup failed");
    }
    w.async_a.data = &w;
    w.async_b.data = &w;
    start_thread(&w.thread, "bench-uv-b", luv_thread_b, &w);
    r = measure_wake("wake.libuv", run_libuv, &w);

    qatomic_store_release(&w.stop, 1);
    uv_async_send(&w.async_b);
    qemu_thread_join(&w.thread);
    uv_close((uv_handle_t *)&w.async_a, NULL);
    uv_run(&w.loop_a, UV_RUN_DEFAULT);
    uv_loop_close(&w.loop_a);
    uv_loop_close(&w.loop_b);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* GLib                                                                */

#ifdef HAVE_GLIB
typedef struct {
    GMainContext *ctx_a, *ctx_b;
    uint64_t remaining;         /* thread A only */
    bool done;                  /* thread A only */
    int stop;                   /* atomic */
    QemuThread thread;
} GWake;

static void glib_idle_on(GMainContext *ctx, GSourceFunc fn, void *data)
{
    GSource *src = g_idle_source_new();

    g_source_set_callback(src, fn, data, NULL);
    g_source_attach(src, ctx);  /* wakes ctx's thread if it sleeps */
    g_source_unref(src);
}

static gboolean glib_ping_cb(gpointer opaque);

static gboolean glib_pong_cb(gpointer opaque)
{
    GWake *w = opaque;

    glib_idle_on(w->ctx_a, glib_ping_cb, w);
    return G_SOURCE_REMOVE;
}

static gboolean glib_ping_cb(gpointer opaque)
{
    GWake *w = opaque;

    if (--w->remaining) {
        glib_idle_on(w->ctx_b, glib_pong_cb, w);
    } else {
        w->done = true;
    }
    return G_SOURCE_REMOVE;
}

static void *glib_thread_b(void *opaque)
{
    GWake *w = opaque;

    while (!qatomic_load_acquire(&w->stop)) {
        g_main_context_iteration(w->ctx_b, TRUE);
    }
    return NULL;
}

static void run_glib(void *opaque, uint64_t n)
{
    GWake *w = opaque;

    w->remaining = n;
    w->done = false;
    glib_idle_on(w->ctx_b, glib_pong_cb, w);
    while (!w->done) {
        g_main_context_iteration(w->ctx_a, TRUE);
    }
}

static double bench_glib(void)
{
    GWake w = { 0 };
    double r;

    w.ctx_a = g_main_context_new();
    w.ctx_b = g_main_context_new();
    start_thread(&w.thread, "bench-glib-b", glib_thread_b, &w);
    r = measure_wake("wake.glib", run_glib, &w);

    qatomic_store_release(&w.stop, 1);
    g_main_context_wakeup(w.ctx_b);
    qemu_thread_join(&w.thread);
    g_main_context_unref(w.ctx_a);
    g_main_context_unref(w.ctx_b);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* libevent                                                            */

#ifdef HAVE_LIBEVENT
typedef struct {
    struct event_base *base_a, *base_b;
    struct event *ev_a, *ev_b;
    uint64_t remaining;         /* thread A only */
    QemuThread thread;
} EvWake;

static void lev_pong_cb(evutil_socket_t fd BENCH_UNUSED,
                        short what BENCH_UNUSED, void *opaque)
{
    EvWake *w = opaque;

    event_active(w->ev_a, EV_READ, 0);
}

static void lev_ping_cb(evutil_socket_t fd BENCH_UNUSED,
                        short what BENCH_UNUSED, void *opaque)
{
    EvWake *w = opaque;

    if (--w->remaining) {
        event_active(w->ev_b, EV_READ, 0);
    } else {
        event_base_loopbreak(w->base_a);
    }
}

static void *lev_thread_b(void *opaque)
{
    EvWake *w = opaque;

    event_base_loop(w->base_b, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void run_libevent(void *opaque, uint64_t n)
{
    EvWake *w = opaque;

    w->remaining = n;
    event_active(w->ev_b, EV_READ, 0);
    event_base_loop(w->base_a, EVLOOP_NO_EXIT_ON_EMPTY);
}

static double bench_libevent(void)
{
    EvWake w = { 0 };
    double r;

    if (evthread_use_pthreads() < 0) {
        bench_die("evthread_use_pthreads failed");
    }
    w.base_a = event_base_new();
    w.base_b = event_base_new();
    if (!w.base_a || !w.base_b) {
        bench_die("event_base_new failed");
    }
    w.ev_a = event_new(w.base_a, -1, 0, lev_ping_cb, &w);
    w.ev_b = event_new(w.base_b, -1, 0, lev_pong_cb, &w);
    start_thread(&w.thread, "bench-ev-b", lev_thread_b, &w);
    r = measure_wake("wake.libevent", run_libevent, &w);

    event_base_loopbreak(w.base_b);     /* B sleeps inside its loop now */
    qemu_thread_join(&w.thread);
    event_free(w.ev_a);
    event_free(w.ev_b);
    event_base_free(w.base_a);
    event_base_free(w.base_b);
    return r;
}
#endif

int main(void)
{
    double aio, aio_poll_r, efd, fut, busy;
    double uv = 0, glib = 0, levent = 0;
    double same_aio = 0, same_efd = 0;

    printf("# wake: cross-thread ping-pong, us per round trip; "
           "median of %d batches of %llu ms\n",
           BENCH_REPS, BENCH_BATCH_NS / 1000000);
    choose_cpus();
    aio = bench_aioloop("wake.aioloop", false);
    aio_poll_r = bench_aioloop("wake.aioloop-poll", true);
    efd = bench_eventfd("wake.eventfd-floor");
    fut = bench_seq("wake.futex-floor", false);
    if (cpu_b >= 0) {
        busy = bench_seq("wake.busy-poll-floor", true);
    } else {
        busy = 0;
        bench_skipped("wake.busy-poll-floor", "needs two CPUs");
    }

#ifdef HAVE_LIBUV
    uv = bench_libuv();
#else
    bench_skipped("wake.libuv", "install libuv1-dev");
#endif
#ifdef HAVE_GLIB
    glib = bench_glib();
#else
    bench_skipped("wake.glib", "install libglib2.0-dev");
#endif
#ifdef HAVE_LIBEVENT
    levent = bench_libevent();
#else
    bench_skipped("wake.libevent", "install libevent-dev");
#endif

    /* Both threads on one CPU: the kernel's wake-up is then a cheap
     * context switch, and the loop's own overhead is easier to see. */
    if (cpu_b >= 0) {
        int saved = cpu_b;

        cpu_b = cpu_a;
        same_aio = bench_aioloop("wake.same-cpu.aioloop", false);
        same_efd = bench_eventfd("wake.same-cpu.eventfd-floor");
        cpu_b = saved;
    }

    bench_ratio("wake", "aioloop", aio, "eventfd-floor", efd);
    bench_ratio("wake", "aioloop", aio, "futex-floor", fut);
    bench_ratio("wake", "aioloop-poll", aio_poll_r, "busy-poll-floor", busy);
    bench_ratio("wake.same-cpu", "aioloop", same_aio, "eventfd-floor",
                same_efd);
    bench_ratio("wake", "libuv", uv, "aioloop", aio);
    bench_ratio("wake", "glib", glib, "aioloop", aio);
    bench_ratio("wake", "libevent", levent, "aioloop", aio);
    return 0;
}
