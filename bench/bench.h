/*
 * bench.h - the small harness every aioloop benchmark shares.
 *
 * A benchmark is a function that performs @n operations; the harness finds
 * an @n that makes one batch last about BENCH_BATCH_NS, runs BENCH_REPS
 * such batches and reports the median time per operation. The median of
 * several batches (rather than the best) is what every figure reports: it
 * is robust against one batch that was disturbed by another process, yet
 * does not flatter a measurement that only sometimes hits a fast path.
 * With the defaults a figure costs about 0.4 s (0.35 s of measuring).
 *
 * Output lines have the form "name: value unit"; lines starting with '#'
 * are notes for humans.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_BENCH_H
#define AIOLOOP_BENCH_H

#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_REPS      7

/*
 * Quick mode (environment AIOLOOP_BENCH_QUICK=1, set by
 * "aioloop-bench compare --quick", which is what "make bench" runs):
 * batches of 15 ms instead of 50 ms, calibrated on 3 ms instead of
 * 10 ms; programs with fixed-size batches may shrink them too
 * (bench_quick()). Figures get noisier, not biased: still the median.
 */
static inline int bench_quick(void)
{
    static int quick = -1;

    if (quick < 0) {
        const char *q = getenv("AIOLOOP_BENCH_QUICK");

        quick = q && *q && strcmp(q, "0") != 0;
    }
    return quick;
}

#define BENCH_BATCH_NS  (bench_quick() ? 15000000ull : 50000000ull)
#define BENCH_CALIB_NS  (bench_quick() ? 3000000ull : 10000000ull)

/* Marks a callback parameter the benchmark does not need. */
#define BENCH_UNUSED __attribute__((unused))

/* Performs @n operations of the measured kind. */
typedef void BenchFn(void *opaque, uint64_t n);

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_time_batch(BenchFn *fn, void *opaque, uint64_t n)
{
    uint64_t t0 = bench_now_ns();

    fn(opaque, n);
    return bench_now_ns() - t0;
}

/* The fastest batch of the last bench_measure(), in ns per operation. */
static double bench_last_best;

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/*
 * bench_measure - median nanoseconds per operation of @fn over BENCH_REPS
 * batches of about BENCH_BATCH_NS each.
 */
static inline double bench_measure(BenchFn *fn, void *opaque)
{
    double per_op[BENCH_REPS];
    uint64_t n = 1, t;

    /* Calibrate: grow n until one batch takes BENCH_CALIB_NS. This also
     * warms caches, the branch predictor and the CPU frequency. */
    for (;;) {
        t = bench_time_batch(fn, opaque, n);
        if (t >= BENCH_CALIB_NS) {
            break;
        }
        n *= t < BENCH_CALIB_NS / 16 ? 8 : 2;
    }
    n = (uint64_t)((double)n * (double)BENCH_BATCH_NS / (double)t) + 1;

    for (int i = 0; i < BENCH_REPS; i++) {
        t = bench_time_batch(fn, opaque, n);
        per_op[i] = (double)t / (double)n;
    }
    qsort(per_op, BENCH_REPS, sizeof(per_op[0]), bench_cmp_double);
    bench_last_best = per_op[0];
    return per_op[BENCH_REPS / 2];
}

/* Print one figure. ns is converted to @unit ("ns/op", "us/..."). */
static inline void bench_report(const char *name, double ns, const char *unit)
{
    double v = ns;

    if (strncmp(unit, "us", 2) == 0) {
        v = ns / 1000.0;
    } else if (strncmp(unit, "ms", 2) == 0) {
        v = ns / 1e6;
    }
    printf("%s: %.*f %s\n", name, v < 10 ? 3 : v < 100 ? 2 : 1, v, unit);
    fflush(stdout);
}

/* Print "prefix.ratio.num/den: x" when both figures exist (> 0). */
static inline void bench_ratio(const char *prefix, const char *num_name,
                               double num, const char *den_name, double den)
{
    if (num > 0 && den > 0) {
        printf("%s.ratio.%s/%s: %.2f x\n", prefix, num_name, den_name,
               num / den);
        fflush(stdout);
    }
}

static inline void bench_skipped(const char *name, const char *why)
{
    printf("%s: skipped (%s)\n", name, why);
    fflush(stdout);
}

static inline void bench_die(const char *what)
{
    fprintf(stderr, "bench: %s\n", what);
    exit(1);
}


/* Pin the calling thread to @cpu (nothing if @cpu < 0). */
static inline void bench_pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0) {
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The first two CPUs the process may use, for cross-CPU figures; both -1
 * when there is only one. See also bench_pin_pair(). */
static inline void bench_pick_cpus(int *a, int *b)
{
    cpu_set_t set;

    *a = *b = -1;
    if (sched_getaffinity(0, sizeof(set), &set) < 0) {
        return;
    }
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            if (*a < 0) {
                *a = i;
            } else {
                *b = i;
                break;
            }
        }
    }
    if (*b < 0) {
        *a = -1;
    }
}

/* Pick two CPUs into *a, *b, pin the calling thread to *a and say so,
 * naming the two threads @name_a and @name_b. */
static inline void bench_pin_pair(int *a, int *b, const char *name_a,
                                  const char *name_b)
{
    bench_pick_cpus(a, b);
    if (*b < 0) {
        printf("# only one CPU available: threads not pinned\n");
        return;
    }
    bench_pin(*a);
    printf("# %s pinned to CPU %d, %s to CPU %d\n", name_a, *a, name_b, *b);
}

#endif /* AIOLOOP_BENCH_H */
