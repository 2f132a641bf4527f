/*
 * test-histogram - the latency histogram of aioloop-bench: every value
 * lands in a bucket that contains it, buckets are contiguous, and
 * percentiles come back within the promised 0.8 %.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "histogram.h"

static int cases, failures;

static void report(const char *name, int ok)
{
    cases++;
    if (!ok) {
        failures++;
    }
    printf("%sok %d - %s\n", ok ? "" : "not ", cases, name);
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int main(void)
{
    static Histogram h;
    static uint64_t vals[100000];
    uint64_t s = 88172645463325252ull;
    int ok = 1;

    /* Buckets tile [0, 2^HIST_MAX_BITS) without gaps or overlaps. */
    for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
        if (hist_bucket_low(i) + hist_bucket_width(i) !=
            hist_bucket_low(i + 1)) {
            printf("# bucket %u: [%" PRIu64 ", +%" PRIu64 ") next %" PRIu64
                   "\n", i, hist_bucket_low(i), hist_bucket_width(i),
                   hist_bucket_low(i + 1));
            ok = 0;
            break;
        }
    }
    ok = ok && hist_bucket_low(HIST_BUCKETS - 1) +
               hist_bucket_width(HIST_BUCKETS - 1) == 1ull << HIST_MAX_BITS;
    report("buckets are contiguous up to 2^HIST_MAX_BITS", ok);

    /* Each value's bucket contains it; widths stay within 1/64. */
    ok = 1;
    for (int i = 0; i < 1000000 && ok; i++) {
        uint64_t v = next(&s) >> (next(&s) % 64);
        unsigned b = hist_bucket_of(v);

        if (v >= 1ull << HIST_MAX_BITS) {
            ok = b == HIST_BUCKETS - 1;
        } else {
            ok = hist_bucket_low(b) <= v &&
                 v < hist_bucket_low(b) + hist_bucket_width(b) &&
                 (b < HIST_LINEAR ||
                  hist_bucket_width(b) * 64 <= hist_bucket_low(b));
        }
        if (!ok) {
            printf("# value %" PRIu64 " -> bucket %u\n", v, b);
        }
    }
    report("every value lies in its bucket", ok);

    /* Percentiles against the exact ones of a log-uniform sample. */
    hist_init(&h);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        vals[i] = 50 + (next(&s) >> (40 + next(&s) % 24));
        hist_record(&h, vals[i]);
    }
    qsort(vals, sizeof(vals) / sizeof(vals[0]), sizeof(vals[0]), cmp_u64);
    ok = hist_percentile(&h, 0) == vals[0] &&
         hist_percentile(&h, 100) == vals[99999] &&
         h.min == vals[0] && h.max == vals[99999] && h.count == 100000;
    {
        static const double pcts[] = { 1, 10, 50, 90, 99, 99.9, 99.99 };

        for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
            uint64_t exact = vals[(size_t)(pcts[i] * 1000 + 0.5) - 1];
            uint64_t got = hist_percentile(&h, pcts[i]);
            double err = (double)(got > exact ? got - exact : exact - got) /
                         (double)exact;

            if (err > 0.008) {
                printf("# p%g: %" PRIu64 " vs exact %" PRIu64 "\n", pcts[i],
                       got, exact);
                ok = 0;
            }
        }
    }
    report("percentiles within 0.8 %", ok);

    /* Small values are exact. */
    hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++) {
        hist_record(&h, v);
    }
    report("exact below 128 ns",
           hist_percentile(&h, 50) == 50 && hist_percentile(&h, 99) == 99 &&
           hist_percentile(&h, 1) == 1 && hist_mean(&h) == 50.5);

    /* Merging equals recording everything in one. */
    {
        static Histogram a, b, all;

        hist_init(&a);
        hist_init(&b);
        hist_init(&all);
        for (int i = 0; i < 10000; i++) {
            uint64_t v = next(&s) >> (30 + next(&s) % 30);

            hist_record(i % 3 ? &a : &b, v);
            hist_record(&all, v);
        }
        hist_merge(&a, &b);
        ok = a.count == all.count && a.sum == all.sum && a.min == all.min &&
             a.max == all.max;
        for (unsigned i = 0; i < HIST_BUCKETS && ok; i++) {
            ok = a.bucket[i] == all.bucket[i];
        }
        report("merge", ok);
    }

    printf("1..%d\n", cases);
    return failures ? 1 : 0;
}
