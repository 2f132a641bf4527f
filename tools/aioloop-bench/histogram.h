/*
 * histogram.h - a log-linear latency histogram with nanosecond input.
 *
 * Values below 2^HIST_SUB_BITS ns get one bucket each (exact). Above,
 * every power-of-two range [2^k, 2^(k+1)) is cut into 2^(HIST_SUB_BITS-1)
 * equal buckets, so a bucket is at most 1/64 of its lower bound wide and
 * a percentile read back at the bucket's middle is within 0.8 % of the
 * true value. Values from 2^HIST_MAX_BITS ns (about 18 minutes) up land
 * in the last bucket; min, max, sum and count are kept exactly.
 *
 * Recording is a count-leading-zeros, two shifts and an increment: cheap
 * enough for every I/O of a run. A histogram is plain memory (about
 * 18 KiB) owned by one thread; hist_merge() combines them afterwards.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_HISTOGRAM_H
#define AIOB_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS   7
#define HIST_MAX_BITS   40
#define HIST_LINEAR     (1u << HIST_SUB_BITS)          /* exact buckets */
#define HIST_HALF       (1u << (HIST_SUB_BITS - 1))    /* per octave */
#define HIST_BUCKETS    (HIST_LINEAR + \
                         (HIST_MAX_BITS - HIST_SUB_BITS) * HIST_HALF)

typedef struct Histogram {
    uint64_t count;
    uint64_t sum;               /* ns; wraps only after ~584 years */
    uint64_t min;               /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
} Histogram;

/* hist_init - make @h empty. */
void hist_init(Histogram *h);

/* hist_bucket_of - the bucket index of @ns (clamped to the last one). */
static inline unsigned hist_bucket_of(uint64_t ns)
{
    unsigned msb, shift;

    if (ns < HIST_LINEAR) {
        return (unsigned)ns;
    }
    if (ns >= (1ull << HIST_MAX_BITS)) {
        return HIST_BUCKETS - 1;
    }
    msb = 63u - (unsigned)__builtin_clzll(ns);
    shift = msb - (HIST_SUB_BITS - 1);      /* ns >> shift in [HALF, LINEAR) */
    return HIST_LINEAR + (shift - 1) * HIST_HALF +
           (unsigned)(ns >> shift) - HIST_HALF;
}

/* hist_record - count one value of @ns nanoseconds. */
static inline void hist_record(Histogram *h, uint64_t ns)
{
    h->bucket[hist_bucket_of(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns < h->min) {
        h->min = ns;
    }
    if (ns > h->max) {
        h->max = ns;
    }
}

/* hist_bucket_low, hist_bucket_width - the range of bucket @i in ns. */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_width(unsigned i);

/*
 * hist_percentile - the value below or at which @pct percent (0..100) of
 * the recorded values lie: the middle of the bucket holding the value of
 * rank ceil(pct/100 * count), clamped to [min, max]. 0 when empty;
 * pct <= 0 gives min, pct >= 100 gives max.
 */
uint64_t hist_percentile(const Histogram *h, double pct);

/* hist_mean - the mean in ns (0 when empty). */
double hist_mean(const Histogram *h);

/* hist_merge - add the values of @src to @dst. */
void hist_merge(Histogram *dst, const Histogram *src);

#endif /* AIOB_HISTOGRAM_H */
