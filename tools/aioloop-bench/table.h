/*
 * table.h - the comparison table "aioloop-bench compare" prints: one
 * section per question, one row per (figure, peer) pair, and one line
 * of conclusion under each section.
 *
 *   figure                          aioloop    peer                 peer   ratio
 *   BH schedule + dispatch          44.5 ns    libuv (idle)       146 ns   3.28x
 *
 * The ratio is always "how many times better aioloop is": the peer's
 * time over ours for a cost, our rate over the peer's for a rate. Above
 * 1 aioloop is ahead, below 1 it is behind.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_TABLE_H
#define AIOB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum AiobSense {
    AIOB_LOWER_IS_BETTER,       /* a cost: ns, us, CPU per I/O */
    AIOB_HIGHER_IS_BETTER,      /* a rate: IOPS */
} AiobSense;

typedef struct AiobRow {
    char figure[64];
    char ours[24];              /* formatted, or "-" */
    char peer[40];
    char theirs[64];            /* formatted, or why there is none */
    double ratio;               /* > 1: aioloop ahead; 0: none */
} AiobRow;

typedef struct AiobTable {
    char title[200];
    char note[512];             /* optional line under the title */
    AiobRow *rows;
    size_t n, cap;
} AiobTable;

/* aiob_table_init - an empty table titled @title. */
void aiob_table_init(AiobTable *t, const char *title);

/*
 * aiob_table_add - a row comparing @ours with @peer's @theirs, both in
 * @unit (a benchmark unit such as "ns/op", "us/roundtrip", "IOPS",
 * "ns/io"). A value < 0 means "not measured": @why (may be NULL) is
 * shown instead of the peer's value, and the row has no ratio.
 */
void aiob_table_add(AiobTable *t, const char *figure, double ours,
                    const char *peer, double theirs, const char *unit,
                    AiobSense sense, const char *why);

/* aiob_table_print - the title, the rows and the conclusion on @f. */
void aiob_table_print(FILE *f, const AiobTable *t);

/* aiob_table_summary - the conclusion line alone (no newline), e.g.
 * "aioloop ahead in 9 of 11 comparisons (median 1.9x); behind: ...". */
void aiob_table_summary(const AiobTable *t, char *buf, size_t len);

/* aiob_format_value - @v in @unit for people: "44.5 ns", "68.9 us",
 * "812k IOPS", "2.37 us". Returns @buf. */
const char *aiob_format_value(double v, const char *unit, char *buf,
                              size_t len);

/* aiob_table_free - release the rows. */
void aiob_table_free(AiobTable *t);

#endif /* AIOB_TABLE_H */
