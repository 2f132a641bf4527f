/*
 * histogram.c - percentiles and bookkeeping of the latency histogram
 * (see histogram.h for the bucket layout).
 *
 * SPDX-License-Identifier: MIT
 */
#include "histogram.h"

#include <string.h>

void hist_init(Histogram *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint64_t hist_bucket_low(unsigned i)
{
    unsigned k, shift;

    if (i < HIST_LINEAR) {
        return i;
    }
    k = i - HIST_LINEAR;
    shift = k / HIST_HALF + 1;
    return (uint64_t)(HIST_HALF + k % HIST_HALF) << shift;
}

uint64_t hist_bucket_width(unsigned i)
{
    if (i < HIST_LINEAR) {
        return 1;
    }
    return 1ull << ((i - HIST_LINEAR) / HIST_HALF + 1);
}

uint64_t hist_percentile(const Histogram *h, double pct)
{
    uint64_t rank, seen = 0, v;
    double want;

    if (h->count == 0) {
        return 0;
    }
    if (pct <= 0) {
        return h->min;
    }
    if (pct >= 100) {
        return h->max;
    }
    want = pct / 100.0 * (double)h->count;
    rank = (uint64_t)want;
    if ((double)rank < want) {
        rank++;                 /* ceil, without libm */
    }
    if (rank < 1) {
        rank = 1;
    }
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            v = hist_bucket_low(i) + hist_bucket_width(i) / 2;
            if (v < h->min) {
                v = h->min;
            }
            if (v > h->max) {
                v = h->max;
            }
            return v;
        }
    }
    return h->max;
}

double hist_mean(const Histogram *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

void hist_merge(Histogram *dst, const Histogram *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        dst->bucket[i] += src->bucket[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}
