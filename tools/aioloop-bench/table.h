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
 * A row may carry the spread of its ratio (lowest and highest over
 * repeated, interleaved runs): a "spread" column then appears. A row may
 * be for reference only (a peer with its default options beside the same
 * peer tuned): it is shown, marked "ref", and left out of the
 * conclusion. Footnotes (which options each peer ran with...) print
 * under the rows.
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
    char peer[48];
    char theirs[64];            /* formatted, or why there is none */
    double ratio;               /* > 1: aioloop ahead; 0: none */
    double ratio_lo, ratio_hi;  /* spread over runs; 0: none */
    bool reference;             /* shown, not counted in the conclusion */
} AiobRow;

/* What aiob_table_add_ex() adds to a row. */
typedef struct AiobRowExtra {
    double ratio_lo, ratio_hi;  /* the ratio's spread; 0: none */
    bool reference;             /* not counted in the conclusion */
} AiobRowExtra;

#define AIOB_TABLE_MAX_FOOTNOTES 16

typedef struct AiobTable {
    char title[200];
    char note[512];             /* optional line under the title */
    AiobRow *rows;
    size_t n, cap;
    char *footnotes[AIOB_TABLE_MAX_FOOTNOTES];  /* under the rows */
    size_t nfootnotes;
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

/* aiob_table_add_ex - aiob_table_add() with a spread and/or the
 * reference mark (@x may be NULL). */
void aiob_table_add_ex(AiobTable *t, const char *figure, double ours,
                       const char *peer, double theirs, const char *unit,
                       AiobSense sense, const char *why,
                       const AiobRowExtra *x);

/* aiob_table_footnote - a line printed under the rows (at most
 * AIOB_TABLE_MAX_FOOTNOTES; later ones are dropped). */
void aiob_table_footnote(AiobTable *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* aiob_table_print - the title, the rows and the conclusion on @f. */
void aiob_table_print(FILE *f, const AiobTable *t);

/* aiob_table_summary - the conclusion line alone (no newline), e.g.
 * "aioloop ahead in 9 of 11 comparisons (median 1.9x); behind: ...",
 * over the rows that are not for reference only. */
void aiob_table_summary(const AiobTable *t, char *buf, size_t len);

/* aiob_format_value - @v in @unit for people: "44.5 ns", "68.9 us",
 * "812k IOPS", "2.37 us". Returns @buf. */
const char *aiob_format_value(double v, const char *unit, char *buf,
                              size_t len);

/* aiob_table_free - release the rows and footnotes. */
void aiob_table_free(AiobTable *t);

#endif /* AIOB_TABLE_H */
