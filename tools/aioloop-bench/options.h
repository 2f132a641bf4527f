/*
 * options.h - command-line handling shared by the aioloop-bench
 * subcommands, and the options of "aioloop-bench io".
 *
 * Every usage error ends the program the same way: one line
 * "aioloop-bench: <what is wrong>" on stderr and exit status 2
 * (aiob_usage_error()). Exit status 1 is kept for a run that went wrong
 * (I/O errors, verification mismatches).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_OPTIONS_H
#define AIOB_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <aioloop/block-backend.h>

#define AIOB_NAME       "aioloop-bench"
#define AIOB_EXIT_FAIL  1       /* the run failed: I/O or verify errors */
#define AIOB_EXIT_USAGE 2       /* bad command line or unusable file */

/* aiob_usage_error - print "aioloop-bench: <fmt...>" and exit(2). */
void aiob_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* aiob_fail - print "aioloop-bench: <fmt...>" and exit(1). */
void aiob_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* aiob_note - print "aioloop-bench: <fmt...>" on stderr and go on. */
void aiob_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * aiob_parse_size - a byte count: digits with an optional binary suffix
 * k, m, g or t (any case; "k", "K", "KiB", "kb" are all 1024), e.g.
 * "4k", "256m", "4096". Returns false for anything else or on overflow.
 */
bool aiob_parse_size(const char *s, uint64_t *out);

/* aiob_parse_uint - a decimal integer in [@min, @max]. */
bool aiob_parse_uint(const char *s, uint64_t min, uint64_t max,
                     uint64_t *out);

/* aiob_parse_seconds - a positive duration: a decimal number of seconds
 * with an optional unit "s", "ms", "m" (minutes): "5", "2.5", "500ms". */
bool aiob_parse_seconds(const char *s, double *out);

/* aiob_format_size - @bytes as "4 KiB", "256 MiB", "1000 B" (exact
 * when possible, else one decimal) into @buf. Returns @buf. */
const char *aiob_format_size(uint64_t bytes, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* aioloop-bench io                                                    */

typedef enum IoRw {
    IO_RW_READ,
    IO_RW_WRITE,
    IO_RW_RANDREAD,
    IO_RW_RANDWRITE,
    IO_RW_RANDRW,
} IoRw;

typedef struct IoOptions {
    AioBlockEngine engine;      /* requested; AUTO means io_uring first */
    IoRw rw;
    unsigned rwmixread;         /* percent of reads for randrw */
    uint64_t bs;
    unsigned iodepth;
    uint64_t size;              /* 0: the file's size, else 256 MiB */
    double runtime_s;           /* 0 with count: no time limit */
    uint64_t count;             /* 0: until runtime_s */
    bool direct;
    const char *file;           /* NULL: a scratch file in the cwd */
    unsigned batch;             /* 0: off; else ready slots per plug */
    bool coroutines;
    bool iothread;
    int64_t poll_max_ns;        /* -1: the library's default */
    bool verify;
    bool json;
    bool quiet;
} IoOptions;

/* io_rw_name - "randread", ... */
const char *io_rw_name(IoRw rw);

/* io_rw_is_random, io_rw_reads, io_rw_writes - properties of @rw. */
bool io_rw_is_random(IoRw rw);
bool io_rw_reads(IoRw rw);
bool io_rw_writes(IoRw rw);

/*
 * io_parse_options - fill @o from the arguments after "io" (argv[0] is
 * "io"). Prints the help and exits 0 for --help; usage errors exit 2.
 * Checks that need the file (size < bs with the file's own size) are
 * left to the caller.
 */
void io_parse_options(int argc, char **argv, IoOptions *o);

/* io_print_help - the help text of "aioloop-bench io". */
void io_print_help(FILE *f);

#endif /* AIOB_OPTIONS_H */
