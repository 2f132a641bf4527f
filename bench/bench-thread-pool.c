/*
 * bench-thread-pool - what does it cost to run a job in a worker thread
 * and get its completion back in the event loop's thread?
 *
 * Throughput, in ns per job: TP_JOBS empty jobs per figure, submitted so
 * that about TP_WINDOW are in flight (after each loop iteration the main
 * thread tops the window up again), every completion delivered back to the
 * main thread's loop. Median of BENCH_REPS batches of TP_JOBS / BENCH_REPS
 * jobs, after a warm-up batch; a configuration too slow for that gets
 * smaller batches, with a note. TP_WORKERS workers for everybody:
 *   threadpool.throughput.aioloop        thread_pool_submit_aio() on a
 *                                        thread_pool_new() pool limited to
 *                                        TP_WORKERS workers (default spin
 *                                        10 us), completions via
 *                                        aio_poll(ctx, true)
 *   threadpool.throughput.aioloop-nospin the same with worker spin 0
 *   threadpool.throughput.aioloop-max64  the pool's default limits (up to
 *                                        64 workers, spin 10 us)
 *   threadpool.throughput.libuv          uv_queue_work() with
 *                                        UV_THREADPOOL_SIZE=TP_WORKERS;
 *                                        after_work callbacks via
 *                                        uv_run(UV_RUN_ONCE)
 *   threadpool.throughput.glib           GThreadPool of TP_WORKERS threads
 *                                        (not exclusive); each job attaches
 *                                        an idle source to the main
 *                                        thread's GMainContext, whose
 *                                        callback is the completion
 *                                        (g_main_context_iteration)
 * These run unpinned.
 *
 * Latency at queue depth 1, in us per round trip: submit one job, wait for
 * its completion with blocking loop iterations, repeat (median of
 * BENCH_REPS batches, see bench.h):
 *   threadpool.qd1.aioloop               TP_WORKERS workers, spin 10 us
 *   threadpool.qd1.aioloop-poll          the same with adaptive polling on
 *                                        the completion side
 *                                        (aio_context_set_poll_params
 *                                        max 50 us)
 *   threadpool.qd1.aioloop-nospin        worker spin 0: every job wakes a
 *                                        sleeping worker
 *   threadpool.qd1.aioloop-poll-nospin   adaptive polling, worker spin 0
 *   threadpool.qd1.libuv, threadpool.qd1.glib   the peers as above
 * threadpool.qd1.* run unpinned: the scheduler places the threads, as for
 * a real program, and the figures depend on whether it puts the worker on
 * the loop thread's CPU (a wake-up is then a cheap context switch) or not
 * (in a VM, a cross-CPU wake-up costs tens of us, see bench-wake). So the
 * same figures are repeated with fixed placements (the job pins its
 * worker when it first runs there):
 *   threadpool.qd1.cross-cpu.*  main thread on one CPU, workers on another:
 *                               every wake-up crosses CPUs and only
 *                               spinning avoids them
 *   threadpool.qd1.same-cpu.*   everything on one CPU: wake-ups are
 *                               context switches, the loop's and pool's
 *                               own costs show (no -poll variants: polling
 *                               on a shared CPU only delays the worker)
 *
 * Ratios: each peer / aioloop, and what the worker's spin and adaptive
 * polling buy (aioloop-nospin / aioloop, aioloop / aioloop-poll, ...).
 * After each figure a note gives the fastest batch, how many CPUs the
 * process kept busy while it was measured and, for aioloop, how many
 * workers the pool had at the end.
 *
 * With an argument, only the figures whose name contains it run
 * ("qd1.same-cpu", or "throughput.aioloop$" for a name ending so).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_setaffinity_np, CPU_SET */
#endif
#include <aioloop/aio.h>
#include <aioloop/atomic.h>
#include <aioloop/compiler.h>
#include <aioloop/thread-pool.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/resource.h>

#include "bench.h"

#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#endif

#define TP_JOBS         1000000 /* jobs per throughput figure */
#define TP_WINDOW       2048    /* jobs in flight in the throughput runs */
#define TP_WORKERS      2       /* worker threads, for everybody */
#define TP_SPIN_NS      10000   /* aioloop's default worker spin */
#define TP_IDLE_NS      (10LL * 1000 * 1000 * 1000)
#define TP_POLL_NS      50000   /* adaptive polling of the completion side */
#define TP_MAX_BATCH_NS 250e6   /* cap on one throughput batch */

/* ------------------------------------------------------------------ */
/* Placement                                                           */

/*
 * The main thread is pinned directly. Workers belong to the libraries, so
 * the job function places them: when placement_gen changed since the
 * worker last looked, it pins itself to worker_cpu (or releases itself to
 * every CPU of the process when worker_cpu is -1). That costs two loads
 * per job, the same for every library.
 */
static int cpu_a = -1, cpu_b = -1;
static cpu_set_t all_cpus;
static int worker_cpu = -1;             /* atomic */
static int placement_gen = 1;           /* atomic */
static __thread int my_placement_gen;

static void pin_self(int cpu)
{
    cpu_set_t set;

    if (cpu < 0) {
        set = all_cpus;
    } else {
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
    }
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static inline void worker_placement(void)
{
    int gen = qatomic_load_acquire(&placement_gen);

    if (unlikely(my_placement_gen != gen)) {
        my_placement_gen = gen;
        pin_self(qatomic_read(&worker_cpu));
    }
}

/* Pin the main thread to @main_cpu and (lazily) the workers to
 * @workers_cpu; -1 means every CPU of the process. */
static void place(int main_cpu, int workers_cpu)
{
    pin_self(main_cpu);
    qatomic_set(&worker_cpu, workers_cpu);
    qatomic_store_release(&placement_gen, placement_gen + 1);
}

static void choose_cpus(void)
{
    if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus) < 0) {
        bench_die("sched_getaffinity failed");
    }
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &all_cpus)) {
            if (cpu_a < 0) {
                cpu_a = i;
            } else {
                cpu_b = i;
                break;
            }
        }
    }
    printf("# %d CPUs available; throughput and qd1 figures unpinned",
           CPU_COUNT(&all_cpus));
    if (cpu_b >= 0) {
        printf(", qd1.cross-cpu: main thread on CPU %d, workers on CPU %d, "
               "qd1.same-cpu: all on CPU %d\n", cpu_a, cpu_b, cpu_a);
    } else {
        printf(" (one CPU: no cross-cpu figures)\n");
    }
}

/* ------------------------------------------------------------------ */
/* Measuring                                                           */

/* With an argument, only the figures whose name contains it are run
 * ("word$": whose name ends with word). */
static const char *filter;

static bool wanted(const char *name)
{
    size_t fl, nl;

    if (!filter) {
        return true;
    }
    fl = strlen(filter);
    nl = strlen(name);
    if (fl > 0 && filter[fl - 1] == '$') {
        return fl - 1 <= nl &&
               memcmp(name + nl - (fl - 1), filter, fl - 1) == 0;
    }
    return strstr(name, filter) != NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * Median ns per job of BENCH_REPS batches of TP_JOBS / BENCH_REPS jobs,
 * after a warm-up batch (which also spawns the workers). A configuration
 * so slow that a batch would last more than TP_MAX_BATCH_NS gets smaller
 * batches, with a note, to keep the program's run time bounded.
 */
static double measure_fixed(const char *name, BenchFn *fn, void *opaque)
{
    uint64_t n = TP_JOBS / BENCH_REPS / (bench_quick() ? 4 : 1), warm = n / 4;
    double per_op[BENCH_REPS], warm_ns;

    warm_ns = (double)bench_time_batch(fn, opaque, warm) / (double)warm;
    if (warm_ns * (double)n > TP_MAX_BATCH_NS) {
        n = (uint64_t)(TP_MAX_BATCH_NS / warm_ns) + 1;
        printf("# %s: slow (%.0f ns/job warming up): batches cut to %llu "
               "jobs\n", name, warm_ns, (unsigned long long)n);
    }
    for (int i = 0; i < BENCH_REPS; i++) {
        per_op[i] = (double)bench_time_batch(fn, opaque, n) / (double)n;
    }
    qsort(per_op, BENCH_REPS, sizeof(per_op[0]), bench_cmp_double);
    bench_last_best = per_op[0];
    return per_op[BENCH_REPS / 2];
}

/*
 * Measure @fn (throughput if @fixed, else through bench_measure()) and
 * print the figure and a note. @pool, if not NULL, is asked how many
 * workers it has at the end.
 */
static double measure(const char *name, bool fixed, BenchFn *fn,
                      void *opaque, ThreadPool *pool)
{
    const char *unit = fixed ? "ns/job" : "us/roundtrip";
    double cpu0 = cpu_seconds(), r, wall;
    uint64_t t0 = bench_now_ns();

    r = fixed ? measure_fixed(name, fn, opaque) : bench_measure(fn, opaque);
    wall = (double)(bench_now_ns() - t0) / 1e9;

    bench_report(name, r, unit);
    printf("# %s: best batch %.3f %s; %.2f CPUs busy while measuring",
           name, fixed ? bench_last_best : bench_last_best / 1000.0,
           fixed ? "ns" : "us", (cpu_seconds() - cpu0) / wall);
    if (pool) {
        int cur;

        thread_pool_stats(pool, &cur, NULL);
        printf("; %d workers", cur);
    }
    printf("\n");
    fflush(stdout);
    return r;
}

/* ------------------------------------------------------------------ */
/* aioloop                                                             */

typedef struct {
    AioContext *ctx;
    ThreadPool *pool;
    uint64_t done;              /* completions seen; main thread only */
} AioTp;

static int aio_job(void *arg BENCH_UNUSED)
{
    worker_placement();
    return 0;
}

static void aio_done_cb(void *opaque, int ret)
{
    AioTp *t = opaque;

    if (unlikely(ret != 0)) {
        bench_die("aioloop: job failed");
    }
    t->done++;
}

static void run_aio_throughput(void *opaque, uint64_t n)
{
    AioTp *t = opaque;
    uint64_t submitted = 0, base = t->done, end = base + n;

    while (t->done < end) {
        while (submitted < n && base + submitted - t->done < TP_WINDOW) {
            thread_pool_submit_aio(t->pool, aio_job, NULL, aio_done_cb, t);
            submitted++;
        }
        aio_poll(t->ctx, true);
    }
}

static void run_aio_qd1(void *opaque, uint64_t n)
{
    AioTp *t = opaque;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t want = t->done + 1;

        thread_pool_submit_aio(t->pool, aio_job, NULL, aio_done_cb, t);
        while (t->done < want) {
            aio_poll(t->ctx, true);
        }
    }
}

/*
 * One aioloop figure. @max_threads 0 keeps the pool's default limits;
 * @spin_ns is the worker spin, @poll_ns the completion side's adaptive
 * polling (0: off).
 */
static double bench_aioloop(const char *name, bool throughput,
                            int max_threads, int64_t spin_ns, int64_t poll_ns)
{
    AioTp t = { 0 };
    double r;

    if (!wanted(name)) {
        return 0;
    }

    t.ctx = aio_context_new(&error_abort);
    t.pool = thread_pool_new(t.ctx);
    if (max_threads > 0 &&
        thread_pool_set_params(t.pool, 0, max_threads, TP_IDLE_NS,
                               spin_ns) < 0) {
        bench_die("thread_pool_set_params failed");
    }
    if (poll_ns) {
        aio_context_set_poll_params(t.ctx, poll_ns, 0, 0, &error_abort);
    }
    r = measure(name, throughput,
                throughput ? run_aio_throughput : run_aio_qd1, &t, t.pool);
    thread_pool_free(t.pool);
    while (aio_poll(t.ctx, false)) {
        /* drain */
    }
    aio_context_unref(t.ctx);
    return r;
}

/* ------------------------------------------------------------------ */
/* libuv                                                               */

#ifdef HAVE_LIBUV
typedef struct {
    uv_loop_t loop;
    uint64_t done;              /* main thread only */
    unsigned nfree;
    uv_work_t *free[TP_WINDOW];
    uv_work_t reqs[TP_WINDOW];
} UvTp;

static void uv_job(uv_work_t *req BENCH_UNUSED)
{
    worker_placement();
}

static void uv_done_cb(uv_work_t *req, int status)
{
    UvTp *t = req->data;

    if (unlikely(status != 0)) {
        bench_die("libuv: job failed");
    }
    t->free[t->nfree++] = req;
    t->done++;
}

static void uv_submit(UvTp *t)
{
    uv_work_t *req = t->free[--t->nfree];

    if (uv_queue_work(&t->loop, req, uv_job, uv_done_cb) < 0) {
        bench_die("uv_queue_work failed");
    }
}

static void run_uv_throughput(void *opaque, uint64_t n)
{
    UvTp *t = opaque;
    uint64_t submitted = 0, end = t->done + n;

    while (t->done < end) {
        while (submitted < n && t->nfree > 0) {
            uv_submit(t);
            submitted++;
        }
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

static void run_uv_qd1(void *opaque, uint64_t n)
{
    UvTp *t = opaque;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t want = t->done + 1;

        uv_submit(t);
        while (t->done < want) {
            uv_run(&t->loop, UV_RUN_ONCE);
        }
    }
}

static double bench_libuv(const char *name, bool throughput)
{
    UvTp *t;
    double r;

    if (!wanted(name)) {
        return 0;
    }
    t = calloc(1, sizeof(*t));
    if (!t || uv_loop_init(&t->loop) < 0) {
        bench_die("libuv setup failed");
    }
    for (unsigned i = 0; i < TP_WINDOW; i++) {
        t->reqs[i].data = t;
        t->free[t->nfree++] = &t->reqs[i];
    }
    r = measure(name, throughput,
                throughput ? run_uv_throughput : run_uv_qd1, t, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&t->loop) < 0) {
        bench_die("uv_loop_close failed");
    }
    free(t);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* GLib                                                                */

#ifdef HAVE_GLIB
typedef struct {
    GMainContext *ctx;
    GThreadPool *pool;
    uint64_t done;              /* main thread only */
} GTp;

static gboolean glib_done_cb(gpointer opaque)
{
    GTp *t = opaque;

    t->done++;
    return G_SOURCE_REMOVE;
}

/* Runs in a worker: the (empty) job, then hand the completion back. */
static void glib_job(gpointer data, gpointer user_data BENCH_UNUSED)
{
    GTp *t = data;
    GSource *src;

    worker_placement();
    src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, glib_done_cb, t, NULL);
    g_source_attach(src, t->ctx);       /* wakes the main thread */
    g_source_unref(src);
}

static void glib_submit(GTp *t)
{
    GError *err = NULL;

    if (!g_thread_pool_push(t->pool, t, &err)) {
        bench_die("g_thread_pool_push failed");
    }
}

static void run_glib_throughput(void *opaque, uint64_t n)
{
    GTp *t = opaque;
    uint64_t submitted = 0, base = t->done, end = base + n;

    while (t->done < end) {
        while (submitted < n && base + submitted - t->done < TP_WINDOW) {
            glib_submit(t);
            submitted++;
        }
        g_main_context_iteration(t->ctx, TRUE);
    }
}

static void run_glib_qd1(void *opaque, uint64_t n)
{
    GTp *t = opaque;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t want = t->done + 1;

        glib_submit(t);
        while (t->done < want) {
            g_main_context_iteration(t->ctx, TRUE);
        }
    }
}

static double bench_glib(const char *name, bool throughput)
{
    GTp t = { 0 };
    GError *err = NULL;
    double r;

    if (!wanted(name)) {
        return 0;
    }

    t.ctx = g_main_context_new();
    t.pool = g_thread_pool_new(glib_job, NULL, TP_WORKERS, FALSE, &err);
    if (!t.pool) {
        bench_die("g_thread_pool_new failed");
    }
    r = measure(name, throughput,
                throughput ? run_glib_throughput : run_glib_qd1, &t, NULL);
    g_thread_pool_free(t.pool, FALSE, TRUE);
    while (g_main_context_iteration(t.ctx, FALSE)) {
        /* drain */
    }
    g_main_context_unref(t.ctx);
    return r;
}
#endif

/* ------------------------------------------------------------------ */

typedef struct {
    double aio, aio_poll, aio_nospin, aio_poll_nospin, uv, glib;
} Qd1;

/*
 * The queue-depth-1 figures under the current placement. Adaptive polling
 * only makes sense when the loop thread and the worker have a CPU each
 * (@poll); the variant with both polling and no worker spin only in the
 * unpinned set (@all).
 */
static void bench_qd1(const char *prefix, Qd1 *q, bool poll, bool all)
{
    char name[96];

#define NAME(s) (snprintf(name, sizeof(name), "%s.%s", prefix, s), name)
    q->aio = bench_aioloop(NAME("aioloop"), false, TP_WORKERS, TP_SPIN_NS, 0);
    if (poll) {
        q->aio_poll = bench_aioloop(NAME("aioloop-poll"), false, TP_WORKERS,
                                    TP_SPIN_NS, TP_POLL_NS);
    }
    q->aio_nospin = bench_aioloop(NAME("aioloop-nospin"), false, TP_WORKERS,
                                  0, 0);
    if (all) {
        q->aio_poll_nospin = bench_aioloop(NAME("aioloop-poll-nospin"), false,
                                           TP_WORKERS, 0, TP_POLL_NS);
    }
#ifdef HAVE_LIBUV
    q->uv = bench_libuv(NAME("libuv"), false);
#else
    if (wanted(NAME("libuv"))) {
        bench_skipped(name, "install libuv1-dev");
    }
#endif
#ifdef HAVE_GLIB
    q->glib = bench_glib(NAME("glib"), false);
#else
    if (wanted(NAME("glib"))) {
        bench_skipped(name, "install libglib2.0-dev");
    }
#endif
#undef NAME
}

static void qd1_ratios(const char *prefix, const Qd1 *q)
{
    bench_ratio(prefix, "libuv", q->uv, "aioloop", q->aio);
    bench_ratio(prefix, "glib", q->glib, "aioloop", q->aio);
    bench_ratio(prefix, "libuv", q->uv, "aioloop-poll", q->aio_poll);
    bench_ratio(prefix, "glib", q->glib, "aioloop-poll", q->aio_poll);
    bench_ratio(prefix, "aioloop-nospin", q->aio_nospin, "aioloop", q->aio);
    bench_ratio(prefix, "aioloop", q->aio, "aioloop-poll", q->aio_poll);
    bench_ratio(prefix, "aioloop-poll-nospin", q->aio_poll_nospin,
                "aioloop-poll", q->aio_poll);
}

int main(int argc, char **argv)
{
    char workers[16];
    double aio, aio_nospin, aio64, uv = 0, glib = 0;
    Qd1 qd1 = { 0 }, cross = { 0 }, same = { 0 };

    filter = argc > 1 ? argv[1] : NULL;
    /* libuv sizes its (process-wide) pool on first use. */
    snprintf(workers, sizeof(workers), "%d", TP_WORKERS);
    setenv("UV_THREADPOOL_SIZE", workers, 1);

    printf("# threadpool: empty jobs run by %d workers, completions back "
           "in the loop thread\n# throughput: %d jobs per figure, %d in "
           "flight; qd1: us per round trip, median of %d batches\n",
           TP_WORKERS, TP_JOBS, TP_WINDOW, BENCH_REPS);
    choose_cpus();

    aio = bench_aioloop("threadpool.throughput.aioloop", true, TP_WORKERS,
                        TP_SPIN_NS, 0);
    aio_nospin = bench_aioloop("threadpool.throughput.aioloop-nospin", true,
                               TP_WORKERS, 0, 0);
    aio64 = bench_aioloop("threadpool.throughput.aioloop-max64", true, 0,
                          0, 0);
#ifdef HAVE_LIBUV
    uv = bench_libuv("threadpool.throughput.libuv", true);
#else
    bench_skipped("threadpool.throughput.libuv", "install libuv1-dev");
#endif
#ifdef HAVE_GLIB
    glib = bench_glib("threadpool.throughput.glib", true);
#else
    bench_skipped("threadpool.throughput.glib", "install libglib2.0-dev");
#endif

    bench_qd1("threadpool.qd1", &qd1, true, true);
    if (cpu_b >= 0) {
        place(cpu_a, cpu_b);
        bench_qd1("threadpool.qd1.cross-cpu", &cross, true, false);
        place(cpu_a, cpu_a);
        bench_qd1("threadpool.qd1.same-cpu", &same, false, false);
        place(-1, -1);
    }

    bench_ratio("threadpool.throughput", "libuv", uv, "aioloop", aio);
    bench_ratio("threadpool.throughput", "glib", glib, "aioloop", aio);
    bench_ratio("threadpool.throughput", "aioloop-nospin", aio_nospin,
                "aioloop", aio);
    bench_ratio("threadpool.throughput", "aioloop-max64", aio64, "aioloop",
                aio);
    qd1_ratios("threadpool.qd1", &qd1);
    qd1_ratios("threadpool.qd1.cross-cpu", &cross);
    qd1_ratios("threadpool.qd1.same-cpu", &same);
    return 0;
}
