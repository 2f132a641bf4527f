/*
 * bench-bh - what does one bottom half cost, scheduled and dispatched on
 * one thread, including the aio_poll() pass that runs it?
 *
 * Figures, in ns per BH (median of BENCH_REPS batches, see bench.h):
 *   bh.aioloop          loop { qemu_bh_schedule(bh); aio_poll(ctx, false); }
 *   bh.aioloop-self     the BH re-schedules itself from its callback and
 *                       the loop only calls aio_poll(ctx, false)
 *   bh.libevent         event_active() on a user event +
 *                       event_base_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK)
 *   bh.libuv-idle       uv_idle_start(); uv_run(UV_RUN_NOWAIT), the idle
 *                       callback stops its handle
 *   bh.libuv-async      uv_async_send(); uv_run(UV_RUN_NOWAIT)
 *   bh.glib             g_idle_add(); g_main_context_iteration(NULL, FALSE)
 * and the ratio of each peer to bh.aioloop. Every benchmark checks that
 * its callback ran once per operation.
 *
 * All peers run single-threaded with their defaults (libevent without
 * evthread_use_pthreads()), which is their cheapest configuration.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/aio.h>

#include "bench.h"

#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#endif

static uint64_t bh_calls;

static void check_calls(const char *name, uint64_t want)
{
    if (bh_calls != want) {
        fprintf(stderr, "%s: callback ran %llu times for %llu operations\n",
                name, (unsigned long long)bh_calls, (unsigned long long)want);
        exit(1);
    }
}

/* ------------------------------------------------------------------ */
/* aioloop                                                             */

typedef struct {
    AioContext *ctx;
    QEMUBH *bh;
} AioBench;

static void aio_count_cb(void *opaque BENCH_UNUSED)
{
    bh_calls++;
}

static void aio_self_cb(void *opaque)
{
    AioBench *b = opaque;

    bh_calls++;
    qemu_bh_schedule(b->bh);
}

static void run_aioloop(void *opaque, uint64_t n)
{
    AioBench *b = opaque;

    bh_calls = 0;
    for (uint64_t i = 0; i < n; i++) {
        qemu_bh_schedule(b->bh);
        aio_poll(b->ctx, false);
    }
    check_calls("bh.aioloop", n);
}

static void run_aioloop_self(void *opaque, uint64_t n)
{
    AioBench *b = opaque;

    bh_calls = 0;
    qemu_bh_schedule(b->bh);
    for (uint64_t i = 0; i < n; i++) {
        aio_poll(b->ctx, false);
    }
    qemu_bh_cancel(b->bh);
    check_calls("bh.aioloop-self", n);
}

static void bench_aioloop(double *plain, double *self)
{
    AioBench b;

    b.ctx = aio_context_new(NULL);
    if (!b.ctx) {
        bench_die("aio_context_new failed");
    }

    b.bh = aio_bh_new(b.ctx, aio_count_cb, &b);
    *plain = bench_measure(run_aioloop, &b);
    bench_report("bh.aioloop", *plain, "ns/op");
    qemu_bh_delete(b.bh);

    b.bh = aio_bh_new(b.ctx, aio_self_cb, &b);
    *self = bench_measure(run_aioloop_self, &b);
    bench_report("bh.aioloop-self", *self, "ns/op");
    qemu_bh_delete(b.bh);

    aio_poll(b.ctx, false);     /* let the deleted BHs be reclaimed */
    aio_context_unref(b.ctx);
}

/* ------------------------------------------------------------------ */
/* libevent                                                            */

#ifdef HAVE_LIBEVENT
typedef struct {
    struct event_base *base;
    struct event *ev;
} EvBench;

static void libevent_cb(evutil_socket_t fd BENCH_UNUSED,
                        short what BENCH_UNUSED,
                        void *opaque BENCH_UNUSED)
{
    bh_calls++;
}

static void run_libevent(void *opaque, uint64_t n)
{
    EvBench *b = opaque;

    bh_calls = 0;
    for (uint64_t i = 0; i < n; i++) {
        event_active(b->ev, EV_READ, 0);
        event_base_loop(b->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    check_calls("bh.libevent", n);
}

static double bench_libevent(void)
{
    EvBench b;
    double r;

    b.base = event_base_new();
    b.ev = event_new(b.base, -1, 0, libevent_cb, NULL);
    if (!b.base || !b.ev) {
        bench_die("libevent setup failed");
    }
    r = bench_measure(run_libevent, &b);
    bench_report("bh.libevent", r, "ns/op");
    event_free(b.ev);
    event_base_free(b.base);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* libuv                                                               */

#ifdef HAVE_LIBUV
typedef struct {
    uv_loop_t loop;
    uv_idle_t idle;
    uv_async_t async;
} UvBench;

static void luv_idle_cb(uv_idle_t *h)
{
    bh_calls++;
    uv_idle_stop(h);
}

static void luv_async_cb(uv_async_t *h BENCH_UNUSED)
{
    bh_calls++;
}

static void run_libuv_idle(void *opaque, uint64_t n)
{
    UvBench *b = opaque;

    bh_calls = 0;
    for (uint64_t i = 0; i < n; i++) {
        uv_idle_start(&b->idle, luv_idle_cb);
        uv_run(&b->loop, UV_RUN_NOWAIT);
    }
    check_calls("bh.libuv-idle", n);
}

static void run_libuv_async(void *opaque, uint64_t n)
{
    UvBench *b = opaque;

    bh_calls = 0;
    for (uint64_t i = 0; i < n; i++) {
        uv_async_send(&b->async);
        uv_run(&b->loop, UV_RUN_NOWAIT);
    }
    check_calls("bh.libuv-async", n);
}

static void bench_libuv(double *idle, double *async)
{
    UvBench b;

    if (uv_loop_init(&b.loop) < 0 || uv_idle_init(&b.loop, &b.idle) < 0) {
        bench_die("libuv setup failed");
    }
    *idle = bench_measure(run_libuv_idle, &b);
    bench_report("bh.libuv-idle", *idle, "ns/op");
    uv_close((uv_handle_t *)&b.idle, NULL);

    if (uv_async_init(&b.loop, &b.async, luv_async_cb) < 0) {
        bench_die("uv_async_init failed");
    }
    *async = bench_measure(run_libuv_async, &b);
    bench_report("bh.libuv-async", *async, "ns/op");
    uv_close((uv_handle_t *)&b.async, NULL);

    uv_run(&b.loop, UV_RUN_DEFAULT);    /* finish the closes */
    uv_loop_close(&b.loop);
}
#endif

/* ------------------------------------------------------------------ */
/* GLib                                                                */

#ifdef HAVE_GLIB
static gboolean glib_idle_cb(gpointer opaque BENCH_UNUSED)
{
    bh_calls++;
    return G_SOURCE_REMOVE;
}

static void run_glib(void *opaque BENCH_UNUSED, uint64_t n)
{
    bh_calls = 0;
    for (uint64_t i = 0; i < n; i++) {
        g_idle_add(glib_idle_cb, NULL);
        g_main_context_iteration(NULL, FALSE);
    }
    check_calls("bh.glib", n);
}

static double bench_glib(void)
{
    double r = bench_measure(run_glib, NULL);

    bench_report("bh.glib", r, "ns/op");
    return r;
}
#endif

int main(void)
{
    double aio = 0, aio_self = 0;
    double levent = 0, uv_idle = 0, uv_async = 0, glib = 0;

    printf("# bh: one BH schedule + dispatch, one thread; "
           "median of %d batches of %llu ms\n",
           BENCH_REPS, BENCH_BATCH_NS / 1000000);
    bench_aioloop(&aio, &aio_self);

#ifdef HAVE_LIBEVENT
    levent = bench_libevent();
#else
    bench_skipped("bh.libevent", "install libevent-dev");
#endif
#ifdef HAVE_LIBUV
    bench_libuv(&uv_idle, &uv_async);
#else
    bench_skipped("bh.libuv-idle", "install libuv1-dev");
    bench_skipped("bh.libuv-async", "install libuv1-dev");
#endif
#ifdef HAVE_GLIB
    glib = bench_glib();
#else
    bench_skipped("bh.glib", "install libglib2.0-dev");
#endif

    bench_ratio("bh", "aioloop-self", aio_self, "aioloop", aio);
    bench_ratio("bh", "libevent", levent, "aioloop", aio);
    bench_ratio("bh", "libuv-idle", uv_idle, "aioloop", aio);
    bench_ratio("bh", "libuv-async", uv_async, "aioloop", aio);
    bench_ratio("bh", "glib", glib, "aioloop", aio);
    return 0;
}
