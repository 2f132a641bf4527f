/*
 * report.h - the results of an "aioloop-bench io" run, as text for
 * people or as one JSON object (--json; the fields are listed in
 * "aioloop-bench io --help").
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_REPORT_H
#define AIOB_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "histogram.h"

typedef struct IoReport {
    /* What ran */
    const char *engine;             /* the engine used */
    const char *engine_requested;
    const char *engine_fallback;    /* why not the requested one, or NULL */
    const char *rw;
    unsigned rwmixread;
    uint64_t bs;
    unsigned iodepth;
    bool direct;
    const char *file;
    bool scratch;                   /* file created for the run */
    uint64_t size;
    unsigned batch;
    bool coroutines;
    bool iothread;
    int64_t poll_max_ns;            /* -1: the library's default */
    bool verify;

    /* What happened */
    uint64_t elapsed_ns;
    uint64_t ios, reads, writes, bytes;
    uint64_t cpu_user_ns, cpu_sys_ns;
    uint64_t errors, verify_errors;
    const Histogram *lat;
} IoReport;

/* report_io_text - the human-readable report on @f. */
void report_io_text(FILE *f, const IoReport *r);

/* report_io_json - one JSON object and a newline on @f. */
void report_io_json(FILE *f, const IoReport *r);

/* report_json_string - @s as a JSON string literal (quotes included). */
void report_json_string(FILE *f, const char *s);

#endif /* AIOB_REPORT_H */
