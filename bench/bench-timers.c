/*
 * bench-timers - what do timers cost, in bulk, in the network-timeout
 * pattern, and how late does a short timer wake a sleeping loop?
 *
 * 1. A million timers (timers-1m.*). 1,000,000 timers are armed with
 *    pseudo-random deadlines, then every one is moved to a new random
 *    deadline (re-arm), then the loop runs until all have fired. Figures,
 *    in ns per timer, per phase (arm, rearm, fire) and their sum (total),
 *    each the median of MT_ROUNDS (3) rounds over the same timers (the
 *    first round also pays for growing the heaps); a system whose first
 *    round takes over 1 s (libevent, libuv) runs that round only, to keep
 *    the program under 20 s:
 *      aioloop      timer_mod_ns() on QEMU_CLOCK_VIRTUAL timers; fire:
 *                   qemu_clock_advance_virtual_time() past the last
 *                   deadline, then aio_poll(ctx, false) until all fired
 *      libev        ev_timer_start(); rearm: ev_timer_again() with the new
 *                   delay in repeat (libev's in-place move); fire:
 *                   ev_run(EVRUN_NOWAIT)
 *      libevent     evtimer_add() with a timeval; rearm: evtimer_add() on
 *                   the pending event; fire: event_base_loop(NONBLOCK)
 *      libuv        uv_timer_start() relative to the cached loop time
 *                   (no uv_update_time() in between, as libuv's
 *                   benchmark-million-timers); rearm: uv_timer_start() on
 *                   the active timer; fire: uv_run(UV_RUN_NOWAIT)
 *      glib-100k    g_timeout_add(); rearm: g_source_remove() +
 *                   g_timeout_add() (GLib cannot move a timeout); fire:
 *                   g_main_context_iteration(FALSE). Only 100,000 timers:
 *                   GLib's main context walks every source on each
 *                   iteration. aioloop-100k gives the matching figure.
 *    Every system gets the same deadline sequence (splitmix64, fixed seed)
 *    in microseconds, 1 us .. 200 ms ahead; libuv and GLib, which count in
 *    ms, get it rounded up to whole ms. The peers' clocks cannot be
 *    driven, so before their fire phase the program sleeps until the last
 *    deadline has passed (the sleep is not timed; aioloop needs none).
 *    Ratios: each peer / aioloop per phase (glib-100k / aioloop-100k).
 *    Target for aioloop: arm <= 20, rearm <= 20, fire <= 250 ns/timer.
 *
 * 2. Re-arming an armed timer (timer-rearm.*), the network-timeout
 *    pattern: one timer among RA_OTHERS armed timers (random deadlines 10 s
 *    to 60 s ahead) is moved to now + 30 s over and over; ns per re-arm,
 *    median of BENCH_REPS batches (bench.h):
 *      aioloop         timer_mod_ns(t, qemu_clock_get_ns(REALTIME) + 30 s),
 *                      the QEMU idiom, clock read included
 *      aioloop-cached  timer_mod_ns(t, now + 30 s + i) with now read once
 *                      per batch, like libev and libuv which use the
 *                      loop's cached time
 *      libev           ev_timer_again() (repeat = 30 s), on the loop's
 *                      cached time
 *      libev-now       ev_now_update() + ev_timer_again(): libev's way to
 *                      re-arm from the current time, one clock read each
 *      libuv           uv_timer_again() (repeat = 30 s), cached time
 *      libevent        evtimer_add() of 30 s on the pending event (libevent
 *                      reads its clock on every add outside callbacks)
 *    Ratios, like with like: libev, libuv / aioloop-cached (no clock
 *    read); libev-now, libevent / aioloop (a clock read per re-arm).
 *
 * 3. Wake-up lateness (timer-lateness.*): LATE_N blocking waits for a timer
 *    LATE_NS (100 us) ahead; lateness = time the callback runs (or the
 *    sleep returns) - deadline, median and p99 in us:
 *      aioloop      one QEMU_CLOCK_REALTIME timer, aio_poll(ctx, true)
 *      nanosleep    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), the
 *                   floor (the kernel's timer slack applies to both)
 *      aioloop-slack1ns, nanosleep-slack1ns
 *                   the same after prctl(PR_SET_TIMERSLACK, 1): without
 *                   the default 50 us slack the kernel may add to every
 *                   timed sleep, what remains is wake-up latency
 *      libev-100us  a 100 us ev_timer, ev_run(EVRUN_ONCE) (libev's epoll
 *                   backend waits in whole milliseconds)
 *      libuv-1ms    uv_timer_start() of 1 ms (libuv's resolution),
 *                   uv_run(UV_RUN_ONCE); deadline = call time + 1 ms.
 *                   libuv's loop time is truncated to whole ms, so its
 *                   timer may fire up to 1 ms early (then a note says so)
 *
 * Every benchmark checks its callbacks: none fires early, each fires once.
 * The whole program takes about 15 s and needs about 200 MB.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* PR_GET_TIMERSLACK */
#endif
#include <aioloop/aio.h>

#include <errno.h>
#include <stdbool.h>
#include <sys/prctl.h>

#include "bench.h"

/* libev first, without its libevent-compatibility names (EVLOOP_*); then
 * libevent, whose EV_READ... macros override libev's enumerators of the
 * same names (the libev code below uses none of them). */
#ifdef HAVE_LIBEV
#define EV_COMPAT3 0
#include <ev.h>
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#endif

#define MT_N            1000000
#define MT_N_SMALL      100000          /* GLib, and aioloop beside it */
#define MT_WINDOW_US    200000          /* deadlines 1 us .. 200 ms ahead */
#define MT_ROUNDS       3
#define MT_ONE_ROUND_NS 1000000000ull   /* a first round this long: stop */
#define MT_SLACK_NS     10000000ull     /* after the last deadline: 10 ms */
#define MT_FIRE_MAX_NS  20000000000ull  /* a fire phase this long: broken */

#define RA_OTHERS       1000
#define RA_AHEAD_NS     30000000000ll   /* re-arm to now + 30 s */

#define LATE_N          1000
#define LATE_WARMUP     10
#define LATE_NS         100000ll        /* a timer 100 us ahead */

static uint64_t fired;          /* every timer callback increments it */

static _Noreturn void die_fmt(const char *name, const char *what,
                              uint64_t got, uint64_t want)
{
    fprintf(stderr, "%s: %s (%llu, expected %llu)\n", name, what,
            (unsigned long long)got, (unsigned long long)want);
    exit(1);
}

/* ------------------------------------------------------------------ */
/* The deadline sequence                                               */

static uint64_t rng_state;

static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t *mt_arm_us;     /* [MT_N] deadline of the arm phase, us */
static uint32_t *mt_rearm_us;   /* [MT_N] deadline of the re-arm phase */

static void make_deadlines(void)
{
    mt_arm_us = malloc(MT_N * sizeof(*mt_arm_us));
    mt_rearm_us = malloc(MT_N * sizeof(*mt_rearm_us));
    if (!mt_arm_us || !mt_rearm_us) {
        bench_die("out of memory");
    }
    rng_state = 0x74696d657273ull;      /* "timers" */
    for (int i = 0; i < MT_N; i++) {
        mt_arm_us[i] = 1 + (uint32_t)(splitmix64() % MT_WINDOW_US);
    }
    for (int i = 0; i < MT_N; i++) {
        mt_rearm_us[i] = 1 + (uint32_t)(splitmix64() % MT_WINDOW_US);
    }
}

#if defined(HAVE_LIBUV) || defined(HAVE_GLIB)
/* For the systems that count in milliseconds: round up. */
static inline uint32_t us_to_ms(uint32_t us)
{
    return (us + 999) / 1000;
}
#endif

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {
        .tv_sec = (time_t)(t / 1000000000ull),
        .tv_nsec = (long)(t % 1000000000ull),
    };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
        /* again */
    }
}

/* ------------------------------------------------------------------ */
/* 1. A million timers: the driver                                     */

typedef struct MtSystem {
    const char *name;
    int n;
    bool real_clock;    /* deadlines on a real clock: sleep before firing */
    void *state;
    void (*begin)(void *state);     /* untimed: refresh a cached time */
    void (*arm)(void *state, const uint32_t *us, int n);
    void (*rearm)(void *state, const uint32_t *us, int n);
    void (*fire)(void *state, int n);   /* run until fired == n */
} MtSystem;

typedef struct MtResult {
    double arm, rearm, fire, total;     /* ns per timer; 0: not measured */
} MtResult;

static uint64_t fire_start_ns;
static uint64_t fire_steps;             /* loop iterations of one fire */

/* Called once per loop iteration of a fire phase. */
static void fire_step(const char *name)
{
    fire_steps++;
    if ((fire_steps & 63) == 0 &&
        bench_now_ns() - fire_start_ns > MT_FIRE_MAX_NS) {
        die_fmt(name, "timers still not fired after 20 s, fired", fired, 0);
    }
}

static double median_of(double *v, int n)
{
    qsort(v, n, sizeof(*v), bench_cmp_double);
    return v[n / 2];
}

static MtResult mt_run(MtSystem *sys)
{
    double arm[MT_ROUNDS], rearm[MT_ROUNDS], fire[MT_ROUNDS],
           total[MT_ROUNDS];
    uint64_t max_steps = 0;
    MtResult res;
    char name[96];
    int r, rounds = MT_ROUNDS;

    for (r = 0; r < rounds; r++) {
        uint64_t t0, t1, t2, t3, t4;

        fired = 0;
        fire_steps = 0;
        sys->begin(sys->state);
        t0 = bench_now_ns();
        sys->arm(sys->state, mt_arm_us, sys->n);
        t1 = bench_now_ns();
        sys->rearm(sys->state, mt_rearm_us, sys->n);
        t2 = bench_now_ns();
        if (fired != 0) {
            die_fmt(sys->name, "timers fired before the loop ran", fired, 0);
        }
        if (sys->real_clock) {
            sleep_until_ns(t2 + MT_WINDOW_US * 1000ull + MT_SLACK_NS);
        }
        t3 = fire_start_ns = bench_now_ns();
        sys->fire(sys->state, sys->n);
        t4 = bench_now_ns();
        if (fired != (uint64_t)sys->n) {
            die_fmt(sys->name, "wrong number of callbacks", fired, sys->n);
        }
        if (fire_steps > max_steps) {
            max_steps = fire_steps;
        }
        arm[r] = (double)(t1 - t0) / sys->n;
        rearm[r] = (double)(t2 - t1) / sys->n;
        fire[r] = (double)(t4 - t3) / sys->n;
        total[r] = arm[r] + rearm[r] + fire[r];
        if (r == 0 && (t2 - t0) + (t4 - t3) > MT_ONE_ROUND_NS) {
            rounds = 1;         /* slow system: keep the program short */
        }
    }
    res.arm = median_of(arm, rounds);
    res.rearm = median_of(rearm, rounds);
    res.fire = median_of(fire, rounds);
    res.total = median_of(total, rounds);

    snprintf(name, sizeof(name), "timers-1m.arm.%s", sys->name);
    bench_report(name, res.arm, "ns/timer");
    snprintf(name, sizeof(name), "timers-1m.rearm.%s", sys->name);
    bench_report(name, res.rearm, "ns/timer");
    snprintf(name, sizeof(name), "timers-1m.fire.%s", sys->name);
    bench_report(name, res.fire, "ns/timer");
    snprintf(name, sizeof(name), "timers-1m.total.%s", sys->name);
    bench_report(name, res.total, "ns/timer");
    printf("# %s: %d timers, %d round%s, all three phases %.1f ms; "
           "fire took %llu loop iteration(s) at most\n", sys->name, sys->n,
           rounds, rounds > 1 ? "s (median)" : "", res.total * sys->n / 1e6,
           (unsigned long long)max_steps);
    fflush(stdout);
    return res;
}

static void mt_ratios(const char *peer, const MtResult *p, const char *base,
                      const MtResult *b)
{
    bench_ratio("timers-1m.arm", peer, p->arm, base, b->arm);
    bench_ratio("timers-1m.rearm", peer, p->rearm, base, b->rearm);
    bench_ratio("timers-1m.fire", peer, p->fire, base, b->fire);
    bench_ratio("timers-1m.total", peer, p->total, base, b->total);
}

/* ------------------------------------------------------------------ */
/* 1. aioloop                                                          */

typedef struct {
    AioContext *ctx;
    QEMUTimer *timers;
    int64_t base;           /* virtual time at the start of the round */
} AioMt;

static void aio_mt_cb(void *opaque BENCH_UNUSED)
{
    fired++;
}

static void aio_mt_begin(void *state)
{
    AioMt *s = state;

    s->base = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

static void aio_mt_arm(void *state, const uint32_t *us, int n)
{
    AioMt *s = state;

    for (int i = 0; i < n; i++) {
        timer_mod_ns(&s->timers[i], s->base + (int64_t)us[i] * 1000);
    }
}

static void aio_mt_fire(void *state, int n)
{
    AioMt *s = state;

    qemu_clock_advance_virtual_time(s->base + (MT_WINDOW_US + 1) * 1000ll);
    while (fired < (uint64_t)n) {
        aio_poll(s->ctx, false);
        fire_step("aioloop");
    }
}

static MtResult mt_aioloop(const char *name, int n)
{
    MtSystem sys = {
        .name = name, .n = n, .real_clock = false,
        .begin = aio_mt_begin, .arm = aio_mt_arm, .rearm = aio_mt_arm,
        .fire = aio_mt_fire,
    };
    AioMt s;
    MtResult r;

    s.ctx = aio_context_new(NULL);
    s.timers = calloc(n, sizeof(*s.timers));
    if (!s.ctx || !s.timers) {
        bench_die("aioloop setup failed");
    }
    for (int i = 0; i < n; i++) {
        aio_timer_init(s.ctx, &s.timers[i], QEMU_CLOCK_VIRTUAL, SCALE_NS,
                       aio_mt_cb, NULL);
    }
    sys.state = &s;
    r = mt_run(&sys);
    for (int i = 0; i < n; i++) {
        timer_deinit(&s.timers[i]);
    }
    aio_context_unref(s.ctx);
    free(s.timers);
    return r;
}

/* ------------------------------------------------------------------ */
/* 1. libev                                                            */

#ifdef HAVE_LIBEV
typedef struct {
    struct ev_loop *loop;
    ev_timer *timers;
} LevMt;

static void lev_mt_cb(struct ev_loop *loop BENCH_UNUSED,
                      ev_timer *w BENCH_UNUSED, int revents BENCH_UNUSED)
{
    fired++;
}

static void lev_mt_begin(void *state)
{
    LevMt *s = state;

    ev_now_update(s->loop);
}

static void lev_mt_arm(void *state, const uint32_t *us, int n)
{
    LevMt *s = state;

    for (int i = 0; i < n; i++) {
        ev_timer_set(&s->timers[i], us[i] * 1e-6, 0.);
        ev_timer_start(s->loop, &s->timers[i]);
    }
}

static void lev_mt_rearm(void *state, const uint32_t *us, int n)
{
    LevMt *s = state;

    for (int i = 0; i < n; i++) {
        /* ev_timer_again() moves an active timer to now + repeat in
         * place; repeat is read only then and when the timer fires. */
        s->timers[i].repeat = us[i] * 1e-6;
        ev_timer_again(s->loop, &s->timers[i]);
        s->timers[i].repeat = 0.;
    }
}

static void lev_mt_fire(void *state, int n)
{
    LevMt *s = state;

    while (fired < (uint64_t)n) {
        ev_run(s->loop, EVRUN_NOWAIT);
        fire_step("libev");
    }
}

static MtResult mt_libev(void)
{
    MtSystem sys = {
        .name = "libev", .n = MT_N, .real_clock = true,
        .begin = lev_mt_begin, .arm = lev_mt_arm, .rearm = lev_mt_rearm,
        .fire = lev_mt_fire,
    };
    LevMt s;
    MtResult r;

    s.loop = ev_loop_new(EVFLAG_AUTO);
    s.timers = calloc(MT_N, sizeof(*s.timers));
    if (!s.loop || !s.timers) {
        bench_die("libev setup failed");
    }
    for (int i = 0; i < MT_N; i++) {
        ev_init(&s.timers[i], lev_mt_cb);
    }
    sys.state = &s;
    r = mt_run(&sys);
    ev_loop_destroy(s.loop);
    free(s.timers);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* 1. libevent                                                         */

#ifdef HAVE_LIBEVENT
typedef struct {
    struct event_base *base;
    char *events;           /* n struct events of event_size bytes */
    size_t event_size;
} LeMt;

static void le_mt_cb(evutil_socket_t fd BENCH_UNUSED, short what BENCH_UNUSED,
                     void *opaque BENCH_UNUSED)
{
    fired++;
}

static inline struct event *le_event(LeMt *s, int i)
{
    return (struct event *)(void *)(s->events + (size_t)i * s->event_size);
}

static void le_mt_begin(void *state BENCH_UNUSED)
{
}

static void le_mt_arm(void *state, const uint32_t *us, int n)
{
    LeMt *s = state;

    for (int i = 0; i < n; i++) {
        struct timeval tv = {
            .tv_sec = us[i] / 1000000,
            .tv_usec = us[i] % 1000000,
        };

        evtimer_add(le_event(s, i), &tv);
    }
}

static void le_mt_fire(void *state, int n)
{
    LeMt *s = state;

    while (fired < (uint64_t)n) {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        fire_step("libevent");
    }
}

static MtResult mt_libevent(void)
{
    MtSystem sys = {
        .name = "libevent", .n = MT_N, .real_clock = true,
        .begin = le_mt_begin, .arm = le_mt_arm, .rearm = le_mt_arm,
        .fire = le_mt_fire,
    };
    LeMt s;
    MtResult r;

    s.base = event_base_new();
    s.event_size = event_get_struct_event_size();
    s.events = calloc(MT_N, s.event_size);
    if (!s.base || !s.events) {
        bench_die("libevent setup failed");
    }
    for (int i = 0; i < MT_N; i++) {
        evtimer_assign(le_event(&s, i), s.base, le_mt_cb, NULL);
    }
    sys.state = &s;
    r = mt_run(&sys);
    event_base_free(s.base);
    free(s.events);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* 1. libuv                                                            */

#ifdef HAVE_LIBUV
typedef struct {
    uv_loop_t loop;
    uv_timer_t *timers;
} UvMt;

static void luv_mt_cb(uv_timer_t *t BENCH_UNUSED)
{
    fired++;
}

static void luv_mt_begin(void *state)
{
    UvMt *s = state;

    uv_update_time(&s->loop);
}

static void luv_mt_arm(void *state, const uint32_t *us, int n)
{
    UvMt *s = state;

    for (int i = 0; i < n; i++) {
        uv_timer_start(&s->timers[i], luv_mt_cb, us_to_ms(us[i]), 0);
    }
}

static void luv_mt_fire(void *state, int n)
{
    UvMt *s = state;

    while (fired < (uint64_t)n) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        fire_step("libuv");
    }
}

static MtResult mt_libuv(void)
{
    MtSystem sys = {
        .name = "libuv", .n = MT_N, .real_clock = true,
        .begin = luv_mt_begin, .arm = luv_mt_arm, .rearm = luv_mt_arm,
        .fire = luv_mt_fire,
    };
    UvMt *s = calloc(1, sizeof(*s));
    MtResult r;

    if (!s || uv_loop_init(&s->loop) < 0 ||
        !(s->timers = calloc(MT_N, sizeof(*s->timers)))) {
        bench_die("libuv setup failed");
    }
    for (int i = 0; i < MT_N; i++) {
        uv_timer_init(&s->loop, &s->timers[i]);
    }
    sys.state = s;
    r = mt_run(&sys);
    for (int i = 0; i < MT_N; i++) {
        uv_close((uv_handle_t *)&s->timers[i], NULL);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);   /* finish the closes */
    uv_loop_close(&s->loop);
    free(s->timers);
    free(s);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* 1. GLib                                                             */

#ifdef HAVE_GLIB
typedef struct {
    guint *ids;
} GlMt;

static gboolean glib_mt_cb(gpointer opaque BENCH_UNUSED)
{
    fired++;
    return G_SOURCE_REMOVE;
}

static void glib_mt_begin(void *state BENCH_UNUSED)
{
}

static void glib_mt_arm(void *state, const uint32_t *us, int n)
{
    GlMt *s = state;

    for (int i = 0; i < n; i++) {
        s->ids[i] = g_timeout_add(us_to_ms(us[i]), glib_mt_cb, NULL);
    }
}

static void glib_mt_rearm(void *state, const uint32_t *us, int n)
{
    GlMt *s = state;

    for (int i = 0; i < n; i++) {
        g_source_remove(s->ids[i]);
        s->ids[i] = g_timeout_add(us_to_ms(us[i]), glib_mt_cb, NULL);
    }
}

static void glib_mt_fire(void *state BENCH_UNUSED, int n)
{
    while (fired < (uint64_t)n) {
        g_main_context_iteration(NULL, FALSE);
        fire_step("glib");
    }
}

static MtResult mt_glib(void)
{
    MtSystem sys = {
        .name = "glib-100k", .n = MT_N_SMALL, .real_clock = true,
        .begin = glib_mt_begin, .arm = glib_mt_arm, .rearm = glib_mt_rearm,
        .fire = glib_mt_fire,
    };
    GlMt s;
    MtResult r;

    s.ids = calloc(MT_N_SMALL, sizeof(*s.ids));
    if (!s.ids) {
        bench_die("out of memory");
    }
    sys.state = &s;
    r = mt_run(&sys);
    free(s.ids);
    return r;
}
#endif

static void bench_million_timers(void)
{
    MtResult aio, aio_small, none = { 0, 0, 0, 0 };
    MtResult lev = none, levent = none, uv = none, glib = none;

    printf("# timers-1m: arm %d timers at random deadlines (1 us .. %d ms), "
           "move each to a new one, fire all; ns per timer, median of %d "
           "rounds (1 if the first takes over %.0f s)\n", MT_N,
           MT_WINDOW_US / 1000, MT_ROUNDS, MT_ONE_ROUND_NS / 1e9);
    printf("# target for aioloop: arm <= 20, rearm <= 20, "
           "fire <= 250 ns/timer\n");
    aio = mt_aioloop("aioloop", MT_N);
    aio_small = mt_aioloop("aioloop-100k", MT_N_SMALL);
#ifdef HAVE_LIBEV
    lev = mt_libev();
#else
    bench_skipped("timers-1m.libev", "install libev-dev");
#endif
#ifdef HAVE_LIBEVENT
    levent = mt_libevent();
#else
    bench_skipped("timers-1m.libevent", "install libevent-dev");
#endif
#ifdef HAVE_LIBUV
    uv = mt_libuv();
#else
    bench_skipped("timers-1m.libuv", "install libuv1-dev");
#endif
#ifdef HAVE_GLIB
    glib = mt_glib();
#else
    bench_skipped("timers-1m.glib-100k", "install libglib2.0-dev");
#endif
    mt_ratios("libev", &lev, "aioloop", &aio);
    mt_ratios("libevent", &levent, "aioloop", &aio);
    mt_ratios("libuv", &uv, "aioloop", &aio);
    mt_ratios("glib-100k", &glib, "aioloop-100k", &aio_small);
}

/* ------------------------------------------------------------------ */
/* 2. Re-arming an armed timer                                         */

/* Delays of the other timers: 10 s .. 60 s, in ns (each system's
 * figures take about 1 s: none of them may expire meanwhile). */
static int64_t ra_other_ns(void)
{
    return 10000000000ll + (int64_t)(splitmix64() % 50000000000ull);
}

static void ra_check(const char *name)
{
    if (fired != 0) {
        die_fmt(name, "a timer 10 s or more ahead fired", fired, 0);
    }
}

typedef struct {
    AioContext *ctx;
    QEMUTimer others[RA_OTHERS];
    QEMUTimer t;
} AioRa;

static void run_aio_rearm(void *opaque, uint64_t n)
{
    AioRa *b = opaque;

    for (uint64_t i = 0; i < n; i++) {
        timer_mod_ns(&b->t, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                            RA_AHEAD_NS);
    }
}

static void run_aio_rearm_cached(void *opaque, uint64_t n)
{
    AioRa *b = opaque;
    int64_t d = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + RA_AHEAD_NS;

    for (uint64_t i = 0; i < n; i++) {
        timer_mod_ns(&b->t, d + (int64_t)i);
    }
}

static void ra_aioloop(double *idiom, double *cached)
{
    AioRa *b = calloc(1, sizeof(*b));
    int64_t now;

    if (!b || !(b->ctx = aio_context_new(NULL))) {
        bench_die("aioloop setup failed");
    }
    fired = 0;
    now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    for (int i = 0; i < RA_OTHERS; i++) {
        aio_timer_init(b->ctx, &b->others[i], QEMU_CLOCK_REALTIME, SCALE_NS,
                       aio_mt_cb, NULL);
        timer_mod_ns(&b->others[i], now + ra_other_ns());
    }
    aio_timer_init(b->ctx, &b->t, QEMU_CLOCK_REALTIME, SCALE_NS, aio_mt_cb,
                   NULL);
    timer_mod_ns(&b->t, now + RA_AHEAD_NS);
    aio_poll(b->ctx, false);

    *idiom = bench_measure(run_aio_rearm, b);
    bench_report("timer-rearm.aioloop", *idiom, "ns/op");
    *cached = bench_measure(run_aio_rearm_cached, b);
    bench_report("timer-rearm.aioloop-cached", *cached, "ns/op");

    aio_poll(b->ctx, false);
    ra_check("timer-rearm.aioloop");
    for (int i = 0; i < RA_OTHERS; i++) {
        timer_deinit(&b->others[i]);
    }
    timer_deinit(&b->t);
    aio_context_unref(b->ctx);
    free(b);
}

#ifdef HAVE_LIBEV
typedef struct {
    struct ev_loop *loop;
    ev_timer others[RA_OTHERS];
    ev_timer t;
} LevRa;

static void run_lev_rearm(void *opaque, uint64_t n)
{
    LevRa *b = opaque;

    for (uint64_t i = 0; i < n; i++) {
        ev_timer_again(b->loop, &b->t);
    }
}

static void run_lev_rearm_now(void *opaque, uint64_t n)
{
    LevRa *b = opaque;

    for (uint64_t i = 0; i < n; i++) {
        ev_now_update(b->loop);
        ev_timer_again(b->loop, &b->t);
    }
}

static double ra_libev(double *now)
{
    LevRa *b = calloc(1, sizeof(*b));
    double r;

    if (!b || !(b->loop = ev_loop_new(EVFLAG_AUTO))) {
        bench_die("libev setup failed");
    }
    fired = 0;
    for (int i = 0; i < RA_OTHERS; i++) {
        ev_timer_init(&b->others[i], lev_mt_cb, ra_other_ns() * 1e-9, 0.);
        ev_timer_start(b->loop, &b->others[i]);
    }
    ev_timer_init(&b->t, lev_mt_cb, 0., RA_AHEAD_NS * 1e-9);
    ev_timer_again(b->loop, &b->t);
    ev_run(b->loop, EVRUN_NOWAIT);

    r = bench_measure(run_lev_rearm, b);
    bench_report("timer-rearm.libev", r, "ns/op");
    *now = bench_measure(run_lev_rearm_now, b);
    bench_report("timer-rearm.libev-now", *now, "ns/op");

    ev_run(b->loop, EVRUN_NOWAIT);
    ra_check("timer-rearm.libev");
    ev_loop_destroy(b->loop);
    free(b);
    return r;
}
#endif

#ifdef HAVE_LIBUV
typedef struct {
    uv_loop_t loop;
    uv_timer_t others[RA_OTHERS];
    uv_timer_t t;
} UvRa;

static void run_luv_rearm(void *opaque, uint64_t n)
{
    UvRa *b = opaque;

    for (uint64_t i = 0; i < n; i++) {
        uv_timer_again(&b->t);
    }
}

static double ra_libuv(void)
{
    UvRa *b = calloc(1, sizeof(*b));
    double r;

    if (!b || uv_loop_init(&b->loop) < 0) {
        bench_die("libuv setup failed");
    }
    fired = 0;
    for (int i = 0; i < RA_OTHERS; i++) {
        uv_timer_init(&b->loop, &b->others[i]);
        uv_timer_start(&b->others[i], luv_mt_cb,
                       (uint64_t)(ra_other_ns() / 1000000), 0);
    }
    uv_timer_init(&b->loop, &b->t);
    uv_timer_start(&b->t, luv_mt_cb, RA_AHEAD_NS / 1000000,
                   RA_AHEAD_NS / 1000000);
    uv_run(&b->loop, UV_RUN_NOWAIT);

    r = bench_measure(run_luv_rearm, b);
    bench_report("timer-rearm.libuv", r, "ns/op");

    uv_run(&b->loop, UV_RUN_NOWAIT);
    ra_check("timer-rearm.libuv");
    for (int i = 0; i < RA_OTHERS; i++) {
        uv_close((uv_handle_t *)&b->others[i], NULL);
    }
    uv_close((uv_handle_t *)&b->t, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    free(b);
    return r;
}
#endif

#ifdef HAVE_LIBEVENT
typedef struct {
    struct event_base *base;
    struct event *others[RA_OTHERS];
    struct event *t;
} LeRa;

static void run_le_rearm(void *opaque, uint64_t n)
{
    LeRa *b = opaque;
    const struct timeval tv = { .tv_sec = RA_AHEAD_NS / 1000000000ll };

    for (uint64_t i = 0; i < n; i++) {
        evtimer_add(b->t, &tv);
    }
}

static double ra_libevent(void)
{
    LeRa *b = calloc(1, sizeof(*b));
    struct timeval tv = { .tv_sec = RA_AHEAD_NS / 1000000000ll };
    double r;

    if (!b || !(b->base = event_base_new())) {
        bench_die("libevent setup failed");
    }
    fired = 0;
    for (int i = 0; i < RA_OTHERS; i++) {
        int64_t d = ra_other_ns() / 1000;
        struct timeval otv = {
            .tv_sec = (time_t)(d / 1000000),
            .tv_usec = (suseconds_t)(d % 1000000),
        };

        b->others[i] = evtimer_new(b->base, le_mt_cb, NULL);
        evtimer_add(b->others[i], &otv);
    }
    b->t = evtimer_new(b->base, le_mt_cb, NULL);
    evtimer_add(b->t, &tv);
    event_base_loop(b->base, EVLOOP_NONBLOCK);

    r = bench_measure(run_le_rearm, b);
    bench_report("timer-rearm.libevent", r, "ns/op");

    event_base_loop(b->base, EVLOOP_NONBLOCK);
    ra_check("timer-rearm.libevent");
    for (int i = 0; i < RA_OTHERS; i++) {
        event_free(b->others[i]);
    }
    event_free(b->t);
    event_base_free(b->base);
    free(b);
    return r;
}
#endif

static void bench_rearm(void)
{
    double aio = 0, aio_cached = 0, lev = 0, lev_now = 0, uv = 0, levent = 0;

    printf("# timer-rearm: move one timer (among %d armed ones) to "
           "now + 30 s; median of %d batches of %llu ms\n", RA_OTHERS,
           BENCH_REPS, BENCH_BATCH_NS / 1000000);
    rng_state = 0x726561726dull;        /* "rearm" */
    ra_aioloop(&aio, &aio_cached);
#ifdef HAVE_LIBEV
    lev = ra_libev(&lev_now);
#else
    bench_skipped("timer-rearm.libev", "install libev-dev");
    bench_skipped("timer-rearm.libev-now", "install libev-dev");
#endif
#ifdef HAVE_LIBUV
    uv = ra_libuv();
#else
    bench_skipped("timer-rearm.libuv", "install libuv1-dev");
#endif
#ifdef HAVE_LIBEVENT
    levent = ra_libevent();
#else
    bench_skipped("timer-rearm.libevent", "install libevent-dev");
#endif
    bench_ratio("timer-rearm", "aioloop", aio, "aioloop-cached", aio_cached);
    bench_ratio("timer-rearm", "libev", lev, "aioloop-cached", aio_cached);
    bench_ratio("timer-rearm", "libev-now", lev_now, "aioloop", aio);
    bench_ratio("timer-rearm", "libuv", uv, "aioloop-cached", aio_cached);
    bench_ratio("timer-rearm", "libevent", levent, "aioloop", aio);
}

/* ------------------------------------------------------------------ */
/* 3. Wake-up lateness                                                 */

static int64_t late[LATE_N];
static uint64_t late_fire_ns;       /* when the last callback ran */

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sort late[], report median and p99. A wake before the deadline is an
 * error unless @may_be_early (then it is reported in a note). */
static void late_report(const char *sys, bool may_be_early)
{
    char name[96];

    qsort(late, LATE_N, sizeof(late[0]), cmp_int64);
    if (late[0] < 0 && !may_be_early) {
        fprintf(stderr, "timer-lateness.%s: woke %lld ns before the "
                "deadline\n", sys, (long long)-late[0]);
        exit(1);
    }
    snprintf(name, sizeof(name), "timer-lateness.%s.median", sys);
    bench_report(name, (double)late[LATE_N / 2], "us");
    snprintf(name, sizeof(name), "timer-lateness.%s.p99", sys);
    bench_report(name, (double)late[LATE_N * 99 / 100], "us");
    if (late[0] < 0) {
        printf("# %s: earliest callback %.1f us before the deadline\n", sys,
               (double)-late[0] / 1000.0);
    }
}

static void aio_late_cb(void *opaque BENCH_UNUSED)
{
    late_fire_ns = bench_now_ns();
    fired++;
}

static void late_aioloop(const char *sys)
{
    AioContext *ctx = aio_context_new(NULL);
    QEMUTimer t;

    if (!ctx) {
        bench_die("aio_context_new failed");
    }
    aio_timer_init(ctx, &t, QEMU_CLOCK_REALTIME, SCALE_NS, aio_late_cb, NULL);
    for (int i = -LATE_WARMUP; i < LATE_N; i++) {
        int64_t deadline = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + LATE_NS;

        fired = 0;
        timer_mod_ns(&t, deadline);
        while (!fired) {
            aio_poll(ctx, true);
        }
        if (fired != 1) {
            die_fmt("timer-lateness.aioloop", "callbacks", fired, 1);
        }
        if (i >= 0) {
            late[i] = (int64_t)late_fire_ns - deadline;
        }
    }
    timer_deinit(&t);
    aio_context_unref(ctx);
    late_report(sys, false);
}

static void late_nanosleep(const char *sys)
{
    for (int i = -LATE_WARMUP; i < LATE_N; i++) {
        uint64_t deadline = bench_now_ns() + LATE_NS;

        sleep_until_ns(deadline);
        if (i >= 0) {
            late[i] = (int64_t)(bench_now_ns() - deadline);
        }
    }
    late_report(sys, false);
}

#ifdef HAVE_LIBEV
static void lev_late_cb(struct ev_loop *loop BENCH_UNUSED,
                        ev_timer *w BENCH_UNUSED, int revents BENCH_UNUSED)
{
    late_fire_ns = bench_now_ns();
    fired++;
}

static void late_libev(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer t;

    if (!loop) {
        bench_die("libev setup failed");
    }
    ev_init(&t, lev_late_cb);
    for (int i = -LATE_WARMUP; i < LATE_N; i++) {
        uint64_t deadline;

        ev_now_update(loop);
        deadline = bench_now_ns() + LATE_NS;
        fired = 0;
        ev_timer_set(&t, LATE_NS * 1e-9, 0.);
        ev_timer_start(loop, &t);
        while (!fired) {
            ev_run(loop, EVRUN_ONCE);
        }
        if (i >= 0) {
            late[i] = (int64_t)(late_fire_ns - deadline);
        }
    }
    ev_loop_destroy(loop);
    late_report("libev-100us", false);
}
#endif

#ifdef HAVE_LIBUV
static void luv_late_cb(uv_timer_t *t BENCH_UNUSED)
{
    late_fire_ns = bench_now_ns();
    fired++;
}

static void late_libuv(void)
{
    uv_loop_t loop;
    uv_timer_t t;

    if (uv_loop_init(&loop) < 0 || uv_timer_init(&loop, &t) < 0) {
        bench_die("libuv setup failed");
    }
    for (int i = -LATE_WARMUP; i < LATE_N; i++) {
        uint64_t deadline;

        uv_update_time(&loop);
        deadline = bench_now_ns() + 1000000;
        fired = 0;
        uv_timer_start(&t, luv_late_cb, 1, 0);
        while (!fired) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        if (i >= 0) {
            late[i] = (int64_t)(late_fire_ns - deadline);
        }
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    late_report("libuv-1ms", true);
}
#endif

static void bench_lateness(void)
{
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);

    printf("# timer-lateness: %d blocking waits for a timer 100 us ahead, "
           "callback time - deadline; this thread's timer slack: %d ns\n",
           LATE_N, slack);
    late_aioloop("aioloop");
    late_nanosleep("nanosleep");
    if (prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0) {
        late_aioloop("aioloop-slack1ns");
        late_nanosleep("nanosleep-slack1ns");
        prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
    } else {
        bench_skipped("timer-lateness.aioloop-slack1ns",
                      "prctl(PR_SET_TIMERSLACK) failed");
    }
#ifdef HAVE_LIBEV
    late_libev();
#else
    bench_skipped("timer-lateness.libev-100us", "install libev-dev");
#endif
#ifdef HAVE_LIBUV
    late_libuv();
#else
    bench_skipped("timer-lateness.libuv-1ms", "install libuv1-dev");
#endif
}

/* ------------------------------------------------------------------ */

int main(void)
{
    uint64_t t0 = bench_now_ns();

    /* The million-timer runs drive QEMU_CLOCK_VIRTUAL themselves (it
     * follows host time unless taken over). */
    qemu_clock_take_over_virtual();

    printf("# peers:");
#ifdef HAVE_LIBEV
    printf(" libev %d.%d", ev_version_major(), ev_version_minor());
#endif
#ifdef HAVE_LIBEVENT
    printf(" libevent %s", event_get_version());
#endif
#ifdef HAVE_LIBUV
    printf(" libuv %s", uv_version_string());
#endif
#ifdef HAVE_GLIB
    printf(" GLib %u.%u.%u", glib_major_version, glib_minor_version,
           glib_micro_version);
#endif
    printf("\n");

#ifdef HAVE_LIBEVENT
    /* libev.so exports a libevent emulation (event_add()...): the
     * executable must link libevent before libev, or libevent's calls
     * resolve to libev's and crash. */
    if (strncmp(event_get_version(), "libev", 5) == 0) {
        bench_die("libev's libevent emulation shadows libevent: link "
                  "libevent before libev");
    }
#endif
    make_deadlines();
    bench_million_timers();
    free(mt_arm_us);
    free(mt_rearm_us);
    bench_rearm();
    bench_lateness();
    printf("# bench-timers: %.1f s in all\n",
           (double)(bench_now_ns() - t0) / 1e9);
    return 0;
}
