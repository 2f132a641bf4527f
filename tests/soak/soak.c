/*
 * soak.c - aioloop-soak: the whole library under load for a set time.
 *
 *   aioloop-soak [SECONDS]     (default: $SOAK_TIME, else 60)
 *   SOAK_DIR   where the block scratch file goes (default: .)
 *   SOAK_SEED  random seed (default: 1)
 *   SOAK_INJECT  break something on purpose halfway through, to show that
 *              the checks catch it: lost, dup, error, fd, hang, data
 *
 * Threads: the main loop (main thread, main_loop_wait) and three
 * IOThreads run the work; two driver threads start operations from
 * outside any loop (one-shot and reusable BHs, timers, pool jobs); a
 * clock thread moves QEMU_CLOCK_VIRTUAL forward; the watchdog thread
 * (soak-watchdog.c) ends the program if anything stops. Each loop also
 * has a "tick" timer whose callback starts work from inside the loop
 * (cross-loop BHs, its own BHs, timers, pool bursts with cancellation,
 * backend moves), and completions start more work in turn.
 *
 * The run: after SECONDS, soak_stop() stops new operations; the control
 * timer on the main loop then waits until the stop gate is empty, the
 * drivers and every coroutine have finished, each loop's tick has
 * stopped and no kind has anything in flight; then it stops the pings
 * and waits for the last ones. The main loop then returns, and the
 * teardown frees everything, IOThreads and the main loop included.
 *
 * Pass criteria, each printed: no operation lost (started - completed)
 * or completed twice, no error (wrong thread, wrong value, data
 * mismatch), as many file descriptors open after the teardown as at the
 * start and no more at the end of the run than after warm-up, and
 * resident memory at the end of the run at most RSS_SLACK_MIB above its
 * value at a third of the run (not checked under sanitizers, whose
 * allocators hold freed memory in quarantine).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"
#include "fd-count.h"

#define NDRIVERS 2
#define NHOPPERS 16
#define PER_ENGINE 2
#define RSS_SLACK_MIB 16
#define CONTROL_NS (20 * 1000000)

Loop soak_loops[SOAK_NLOOPS];
static __thread Loop *tls_loop;

enum { PH_RUN, PH_DRAIN, PH_DRAIN_PINGS, PH_DONE };

static struct {
    int seconds;
    const char *dir;
    uint64_t seed;
    const char *inject;
} cfg;

static int phase;                   /* main thread */
static int64_t t_start, t_stop, t_drained;
static QEMUTimer control;
static QemuThread drivers[NDRIVERS];
static int drivers_alive;           /* atomic */
static QemuThread vclock_thread;
static int vclock_stop;             /* atomic */

static struct {
    long rss_start, rss_third, rss_end;    /* KiB */
    int fd_start, fd_warm, fd_max, fd_end_run, fd_final;
    int64_t last_sample;
} res;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

int64_t soak_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void soak_sleep_us(int us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        /* the rest */
    }
}

/* Not inlined, and opaque to the optimiser: a coroutine that moved to
 * another thread must read that thread's variable, not an address
 * computed before the move. */
__attribute__((noinline)) Loop *soak_cur_loop(void)
{
    __asm__ __volatile__("" : : : "memory");
    return tls_loop;
}

void soak_set_cur_loop(Loop *l)
{
    tls_loop = l;
}

Loop *soak_random_loop(Rng *r)
{
    return &soak_loops[rng_below(r, SOAK_NLOOPS)];
}

void soak_expect_loop(Loop *l, const char *where)
{
    Loop *cur = soak_cur_loop();

    if (cur != l) {
        soak_error("%s: ran in %s, expected loop %s", where,
                   cur ? cur->name : "a non-loop thread", l->name);
    }
    if (qemu_get_current_aio_context() != l->ctx) {
        soak_error("%s: qemu_get_current_aio_context() is not %s's", where,
                   l->name);
    }
    qatomic_inc(&l->progress);
}


/* Resident set size now, in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;

    if (!f) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long peak_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void start_thread(QemuThread *t, const char *name,
                         void *(*fn)(void *), void *arg)
{
    int ret = qemu_thread_create(t, name, fn, arg, QEMU_THREAD_JOINABLE);

    if (ret) {
        printf("soak: cannot start thread %s: %s\n", name, strerror(-ret));
        exit(1);
    }
}

/* ------------------------------------------------------------------ */
/* Work generators                                                     */

static void tick_cb(void *opaque)
{
    Loop *l = opaque;
    Rng *r = &l->rng;
    uint32_t n;

    soak_expect_loop(l, "tick");
    if (soak_is_stopping()) {
        qatomic_set(&l->tick_stopped, 1);
        return;
    }
    n = 1 + rng_below(r, 4);
    for (uint32_t i = 0; i < n; i++) {
        switch (rng_below(r, 16)) {
        case 0: case 1: case 2:
            bh_any_step(r);
            break;
        case 3: case 4:
            bh_reuse_step(r);
            break;
        case 5:
            bh_loop_step(l);
            break;
        case 6: case 7: case 8: case 9:
            timer_any_step(r);
            break;
        case 10: case 11:
            pool_any_step(r);
            break;
        case 12:
            pool_loop_step(l);
            break;
        case 13:
            blk_loop_step(l);
            break;
        default:
            break;
        }
    }
    timer_mod_ns(&l->tick, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 200000 +
                 rng_below(r, 1800000));
}

static void *driver_main(void *opaque)
{
    Rng r;

    rng_seed(&r, cfg.seed * 100 + (uintptr_t)opaque);
    while (!soak_is_stopping()) {
        for (int i = 0; i < 8; i++) {
            switch (rng_below(&r, 10)) {
            case 0: case 1: case 2:
                bh_any_step(&r);
                break;
            case 3: case 4:
                bh_reuse_step(&r);
                break;
            case 5: case 6: case 7:
                timer_any_step(&r);
                break;
            default:
                pool_any_step(&r);
                break;
            }
        }
        soak_sleep_us(20 + (int)rng_below(&r, 200));
    }
    qatomic_dec(&drivers_alive);
    return NULL;
}

/* Virtual time runs at twice real time, in 0.5 ms steps. */
static void *vclock_main(void *opaque)
{
    while (!qatomic_read(&vclock_stop)) {
        soak_sleep_us(250);
        qemu_clock_advance_virtual_time(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                                        500000);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Fault injection (SOAK_INJECT): each must make the run fail          */

static void hang_bh(void *opaque)
{
    int *secs = opaque;

    soak_sleep_us(*secs * 1000000);
}

static void inject(void)
{
    static SoakOp op;
    static int hang_secs;

    if (!strcmp(cfg.inject, "lost")) {
        soak_op_start(&op, K_BH_ONESHOT);           /* never completed */
    } else if (!strcmp(cfg.inject, "dup")) {
        soak_op_start(&op, K_BH_ONESHOT);
        soak_op_done(&op, K_BH_ONESHOT, "injected");
        soak_op_done(&op, K_BH_ONESHOT, "injected");
    } else if (!strcmp(cfg.inject, "error")) {
        soak_error("injected error");
    } else if (!strcmp(cfg.inject, "fd")) {
        if (dup(0) < 0) {
            perror("dup");
        }
    } else if (!strcmp(cfg.inject, "hang")) {
        hang_secs = SOAK_SANITIZED ? 70 : 20;
        aio_bh_schedule_oneshot(soak_loops[1].ctx, hang_bh, &hang_secs);
    } else if (!strcmp(cfg.inject, "data")) {
        blk_inject_corruption();
    } else {
        printf("soak: unknown SOAK_INJECT '%s'\n", cfg.inject);
        exit(2);
    }
    printf("soak: injected '%s'\n", cfg.inject);
}

/* ------------------------------------------------------------------ */
/* The control timer: samples, the end of the run, the drain           */

static void sample(int64_t now)
{
    int fds = test_count_fds();

    if (fds > res.fd_max) {
        res.fd_max = fds;
    }
    if (!res.rss_third && now - t_start >= (int64_t)cfg.seconds * 1000000000 / 3) {
        res.rss_third = rss_kib();
        res.fd_warm = fds;
    }
}

static bool drained(void)
{
    if (qatomic_mb_read(&drivers_alive) || !soak_gate_idle() || co_alive()) {
        return false;
    }
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        if (!qatomic_read(&soak_loops[i].tick_stopped)) {
            return false;
        }
    }
    for (int k = 0; k < K_MAX; k++) {
        if (k != K_PING && soak_in_flight((SoakKind)k)) {
            return false;
        }
    }
    return true;
}

static void control_cb(void *opaque)
{
    int64_t now = soak_now_ns();

    soak_expect_loop(&soak_loops[0], "control");
    switch (phase) {
    case PH_RUN:
        if (now - res.last_sample >= 1000000000) {
            res.last_sample = now;
            sample(now);
        }
        if (cfg.inject && now - t_start >= (int64_t)cfg.seconds * 500000000) {
            inject();
            cfg.inject = NULL;
        }
        if (now - t_start >= (int64_t)cfg.seconds * 1000000000) {
            t_stop = now;
            res.rss_end = rss_kib();
            soak_stop();
            phase = PH_DRAIN;
            watchdog_set_phase("drain");
            printf("soak: %d s done, %llu operations completed; draining\n",
                   cfg.seconds, (unsigned long long)soak_total_completed());
        }
        break;
    case PH_DRAIN:
        if (drained()) {
            watchdog_stop_pings();
            phase = PH_DRAIN_PINGS;
        }
        break;
    case PH_DRAIN_PINGS:
        if (!soak_in_flight(K_PING)) {
            t_drained = now;
            phase = PH_DONE;
            return;
        }
        break;
    }
    timer_mod_ns(&control, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + CONTROL_NS);
}

/* ------------------------------------------------------------------ */
/* Setup and teardown                                                  */

typedef struct SetLoop {
    Loop *l;
    QemuEvent done;
} SetLoop;

static void set_loop_bh(void *opaque)
{
    SetLoop *s = opaque;

    soak_set_cur_loop(s->l);
    qemu_event_set(&s->done);
}

static void loops_setup(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        Loop *l = &soak_loops[i];

        l->idx = i;
        rng_seed(&l->rng, cfg.seed * 31 + (uint64_t)i);
        if (i == 0) {
            snprintf(l->name, sizeof(l->name), "main");
            l->ctx = qemu_get_aio_context();
            soak_set_cur_loop(l);
        } else {
            snprintf(l->name, sizeof(l->name), "io%d", i);
            l->iothread = iothread_create(l->name, &error_abort);
            l->ctx = iothread_get_aio_context(l->iothread);
        }
    }
    /* Each IOThread learns which Loop it is before any work arrives. */
    for (int i = 1; i < SOAK_NLOOPS; i++) {
        SetLoop s = { .l = &soak_loops[i] };

        qemu_event_init(&s.done, false);
        aio_bh_schedule_oneshot(soak_loops[i].ctx, set_loop_bh, &s);
        qemu_event_wait(&s.done);
        qemu_event_destroy(&s.done);
    }
}

static void loops_teardown(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        timer_deinit(&soak_loops[i].tick);
    }
    for (int i = 1; i < SOAK_NLOOPS; i++) {
        iothread_destroy(soak_loops[i].iothread);
        soak_loops[i].iothread = NULL;
    }
}

static int parse_seconds(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : getenv("SOAK_TIME");
    char *end;
    long v;

    if (!s || !*s) {
        return 60;
    }
    v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 1000000) {
        fprintf(stderr, "usage: %s [SECONDS]  (SOAK_TIME, SOAK_DIR, "
                "SOAK_SEED in the environment)\n", argv[0]);
        exit(2);
    }
    return (int)v;
}

static const char *build_kind(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return "ASan";
#elif defined(__SANITIZE_THREAD__)
    return "TSan";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return "ASan";
#elif __has_feature(thread_sanitizer)
    return "TSan";
#else
    return "plain";
#endif
#else
    return "plain";
#endif
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int stall = SOAK_SANITIZED ? 60 : 15;
    int64_t phase_limit = (int64_t)(SOAK_SANITIZED ? 120 : 20) * 1000000000;
    const char *seed = getenv("SOAK_SEED");
    bool fail = false;
    long growth;
    int nengines;

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The clock thread drives QEMU_CLOCK_VIRTUAL (it follows host time
     * unless taken over). */
    qemu_clock_take_over_virtual();
    cfg.seconds = parse_seconds(argc, argv);
    cfg.dir = getenv("SOAK_DIR") && *getenv("SOAK_DIR") ? getenv("SOAK_DIR") : ".";
    cfg.seed = seed ? strtoull(seed, NULL, 0) : 1;
    cfg.inject = getenv("SOAK_INJECT") && *getenv("SOAK_INJECT") ?
                 getenv("SOAK_INJECT") : NULL;

    /* One main loop first: with GLib, attaching it to GLib's default
     * context creates that context, whose wake-up descriptor lives as
     * long as the process (not ours to close). The count starts after. */
    qemu_init_main_loop(&error_abort);
    qemu_cleanup_main_loop();
    res.fd_start = test_count_fds();
    res.rss_start = rss_kib();
    soak_account_init();
    qemu_init_main_loop(&error_abort);
    loops_setup();
    printf("soak: %d s, %s build, seed %llu; loops: main + %d IOThreads; "
           "%d drivers, %d hopping coroutines\n", cfg.seconds, build_kind(),
           (unsigned long long)cfg.seed, SOAK_NLOOPS - 1, NDRIVERS, NHOPPERS);

    bh_setup();
    timer_setup();
    pool_setup();
    nengines = blk_setup(cfg.dir, PER_ENGINE);
    co_setup(NHOPPERS);

    t_start = soak_now_ns();
    res.last_sample = t_start;
    watchdog_start(stall, phase_limit);
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        Loop *l = &soak_loops[i];

        aio_timer_init(l->ctx, &l->tick, QEMU_CLOCK_REALTIME, SCALE_NS, tick_cb, l);
        timer_mod_ns(&l->tick, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000000);
    }
    aio_timer_init(qemu_get_aio_context(), &control, QEMU_CLOCK_REALTIME,
                   SCALE_NS, control_cb, NULL);
    timer_mod_ns(&control, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + CONTROL_NS);
    drivers_alive = NDRIVERS;
    for (uintptr_t i = 0; i < NDRIVERS; i++) {
        start_thread(&drivers[i], "soak-driver", driver_main, (void *)i);
    }
    start_thread(&vclock_thread, "soak-vclock", vclock_main, NULL);

    while (phase != PH_DONE) {
        main_loop_wait(false);
    }

    /* Drained: nothing in flight, nothing will start. */
    res.fd_end_run = test_count_fds();
    watchdog_set_phase("teardown");
    for (int i = 0; i < NDRIVERS; i++) {
        qemu_thread_join(&drivers[i]);
    }
    qatomic_set(&vclock_stop, 1);
    qemu_thread_join(&vclock_thread);
    timer_deinit(&control);

    watchdog_set_phase("teardown: block");
    blk_teardown();
    watchdog_set_phase("teardown: timers, BHs, coroutines");
    timer_teardown();
    bh_teardown();
    co_teardown();
    watchdog_set_phase("teardown: IOThreads");
    loops_teardown();
    watchdog_set_phase("teardown: main loop");
    qemu_cleanup_main_loop();
    watchdog_stop();
    res.fd_final = test_count_fds();

    /* The report. */
    printf("\nsoak: ran %.1f s, drained in %.2f s; %d block engines\n",
           (t_stop - t_start) / 1e9, (t_drained - t_stop) / 1e9, nengines);
    soak_print_table();
    co_report();
    blk_report();
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        printf("loop %-5s: %llu callbacks, %llu pings\n", soak_loops[i].name,
               (unsigned long long)qatomic_read(&soak_loops[i].progress),
               (unsigned long long)qatomic_read(&soak_loops[i].pings));
    }

    {
        uint64_t lost = 0, dups = soak_total_dups(), total = 0;

        for (int k = 0; k < K_MAX; k++) {
            lost += soak_in_flight((SoakKind)k);
            total += soak_completed((SoakKind)k);
        }
        printf("operations: %llu completed, %llu lost, %llu duplicates, "
               "%llu errors\n", (unsigned long long)total,
               (unsigned long long)lost, (unsigned long long)dups,
               (unsigned long long)soak_errors());
        fail |= lost || dups || soak_errors();
    }

    growth = res.rss_end - res.rss_third;
    printf("memory: peak RSS %ld MiB (ru_maxrss); RSS at start %ld MiB, "
           "at 1/3 of the run %ld MiB, at the end of the run %ld MiB: "
           "growth %+ld KiB ", peak_rss_kib() / 1024, res.rss_start / 1024,
           res.rss_third / 1024, res.rss_end / 1024, growth);
    if (SOAK_SANITIZED) {
        printf("(not checked under a sanitizer)\n");
    } else {
        printf("(limit %d MiB)\n", RSS_SLACK_MIB);
        fail |= growth > (long)RSS_SLACK_MIB * 1024;
    }

    printf("fds: start %d, after warm-up %d, max during the run %d, end of "
           "run %d, after teardown %d\n", res.fd_start, res.fd_warm,
           res.fd_max, res.fd_end_run, res.fd_final);
    if (res.fd_final != res.fd_start) {
        printf("soak: fd count after teardown differs from the start\n");
        fail = true;
    }
    if (res.fd_end_run > res.fd_warm) {
        printf("soak: more fds open at the end of the run than after warm-up\n");
        fail = true;
    }
    printf("soak: %s\n", fail ? "FAIL" : "PASS");
    return fail ? 1 : 0;
}
