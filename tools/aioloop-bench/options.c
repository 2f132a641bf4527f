/*
 * options.c - parsing numbers, sizes and the options of
 * "aioloop-bench io".
 *
 * SPDX-License-Identifier: MIT
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Messages                                                            */

static void aiob_vmessage(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

static void aiob_vmessage(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs(AIOB_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void aiob_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    aiob_vmessage(fmt, ap);
    va_end(ap);
    exit(AIOB_EXIT_USAGE);
}

void aiob_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    aiob_vmessage(fmt, ap);
    va_end(ap);
    exit(AIOB_EXIT_FAIL);
}

void aiob_note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    aiob_vmessage(fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Numbers                                                             */

/* Parse leading decimal digits of @s into *@v; *@end after them.
 * Returns false without digits or on overflow. */
static bool parse_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t x = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p)) {
        return false;
    }
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');

        if (x > (UINT64_MAX - d) / 10) {
            return false;
        }
        x = x * 10 + d;
    }
    *v = x;
    *end = p;
    return true;
}

bool aiob_parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *p;
    unsigned shift = 0;

    if (!s || !parse_digits(s, &v, &p)) {
        return false;
    }
    switch (tolower((unsigned char)*p)) {
    case 'k': shift = 10; p++; break;
    case 'm': shift = 20; p++; break;
    case 'g': shift = 30; p++; break;
    case 't': shift = 40; p++; break;
    default: break;
    }
    if (shift && tolower((unsigned char)*p) == 'i') {
        p++;
    }
    if (tolower((unsigned char)*p) == 'b') {
        p++;
    }
    if (*p != '\0') {
        return false;
    }
    if (shift && v > (UINT64_MAX >> shift)) {
        return false;
    }
    *out = v << shift;
    return true;
}

bool aiob_parse_uint(const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    uint64_t v;
    const char *p;

    if (!s || !parse_digits(s, &v, &p) || *p != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool aiob_parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    if (!s || !(isdigit((unsigned char)*s) || *s == '.')) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s) {
        return false;
    }
    if (strcmp(end, "ms") == 0) {
        v /= 1000.0;
    } else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) {
        v *= 60.0;
    } else if (strcmp(end, "s") != 0 && *end != '\0') {
        return false;
    }
    if (!(v > 0) || v > 1e9) {
        return false;
    }
    *out = v;
    return true;
}

const char *aiob_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    uint64_t whole = bytes;

    while (u + 1 < ARRAY_SIZE(units) && whole >= 1024 && whole % 1024 == 0) {
        whole /= 1024;
        u++;
    }
    if (u > 0 || bytes < 1024) {
        snprintf(buf, len, "%llu %s", (unsigned long long)whole, units[u]);
        return buf;
    }
    /* Not a whole number of KiB: one decimal in the largest unit. */
    {
        double v = (double)bytes;

        for (u = 0; u + 1 < ARRAY_SIZE(units) && v >= 1024.0; u++) {
            v /= 1024.0;
        }
        snprintf(buf, len, "%.1f %s", v, units[u]);
    }
    return buf;
}

/* ------------------------------------------------------------------ */
/* aioloop-bench io                                                    */

static const struct {
    const char *name;
    IoRw rw;
} rw_names[] = {
    { "read", IO_RW_READ },
    { "write", IO_RW_WRITE },
    { "randread", IO_RW_RANDREAD },
    { "randwrite", IO_RW_RANDWRITE },
    { "randrw", IO_RW_RANDRW },
};

const char *io_rw_name(IoRw rw)
{
    for (size_t i = 0; i < ARRAY_SIZE(rw_names); i++) {
        if (rw_names[i].rw == rw) {
            return rw_names[i].name;
        }
    }
    return "?";
}

bool io_rw_is_random(IoRw rw)
{
    return rw == IO_RW_RANDREAD || rw == IO_RW_RANDWRITE ||
           rw == IO_RW_RANDRW;
}

bool io_rw_reads(IoRw rw)
{
    return rw == IO_RW_READ || rw == IO_RW_RANDREAD || rw == IO_RW_RANDRW;
}

bool io_rw_writes(IoRw rw)
{
    return rw == IO_RW_WRITE || rw == IO_RW_RANDWRITE || rw == IO_RW_RANDRW;
}

void io_print_help(FILE *f)
{
    fputs(
"usage: " AIOB_NAME " io [options]\n"
"\n"
"Runs block I/O on one file through the aioloop block backends\n"
"(<aioloop/block-backend.h>) and reports IOPS, bandwidth, CPU time per\n"
"I/O and the latency distribution.\n"
"\n"
"Options (a value may follow as --opt VALUE or --opt=VALUE):\n"
"  --engine E       io_uring (default), linux-aio or threads; auto is\n"
"                   io_uring. If the kernel refuses the engine, the next\n"
"                   one in the order io_uring, linux-aio, threads is used\n"
"                   and the report says why\n"
"  --rw MODE        randread (default), randwrite, read, write, randrw\n"
"  --rwmixread PCT  percentage of reads for randrw (default 50)\n"
"  --bs SIZE        bytes per I/O (default 4k; suffixes k, m, g)\n"
"  --iodepth N      I/Os in flight (default 32)\n"
"  --size SIZE      bytes of the file used (default: the size of an\n"
"                   existing --file, else 256m)\n"
"  --runtime T      seconds to run (default 5; also 500ms, 2m)\n"
"  --count N        stop after N I/Os (no time limit unless --runtime\n"
"                   is also given)\n"
"  --direct 0|1     O_DIRECT (default 1; --bs must then be a multiple\n"
"                   of 512)\n"
"  --file PATH      the file (created and filled if missing or shorter\n"
"                   than --size). Default: a scratch file in the current\n"
"                   directory, filled with data first, removed at exit\n"
"  --batch[=N]      completions do not resubmit; once N slots (default:\n"
"                   iodepth) are free they are submitted together between\n"
"                   aio_block_plug() and aio_block_unplug()\n"
"  --coroutines     each in-flight slot is a coroutine looping over\n"
"                   aio_block_co_submit() (no --batch)\n"
"  --iothread       run the event loop in an IOThread\n"
"  --poll-max-ns N  adaptive busy polling of the loop, up to N ns per wait\n"
"                   (aio_context_set_poll_params). Default: the\n"
"                   library's: off for the main context, 32768 in an\n"
"                   IOThread (as QEMU's IOThreads)\n"
"  --verify         write an offset-derived pattern over the whole range\n"
"                   first, check every block read (writes keep the\n"
"                   pattern; a write-only run reads everything back at\n"
"                   the end); exit status 1 on a mismatch\n"
"  --json           print one JSON object instead of the text report\n"
"  --quiet          no progress line, no text report (--json still prints)\n"
"  -h, --help       this text\n"
"\n"
"Offsets are multiples of --bs below --size: random ones from a\n"
"xorshift generator, sequential ones wrap around at the end. Latency is\n"
"taken per I/O with CLOCK_MONOTONIC, from submission to the start of the\n"
"completion callback. CPU time is user+system time of the whole process\n"
"(getrusage RUSAGE_SELF, so worker and kernel io threads count) over the\n"
"run, divided by the I/Os. On a terminal, stderr shows a progress line\n"
"every second. Ctrl-C ends the run early and reports what was done.\n"
"\n"
"JSON fields (--json):\n"
"  tool, version, command        \"aioloop-bench\", its version, \"io\"\n"
"  engine                        the engine that ran\n"
"  engine_requested              the engine asked for\n"
"  engine_fallback               why the requested engine was not used,\n"
"                                or null\n"
"  rw, rwmixread, bs, iodepth, direct (0|1), file, size (bytes),\n"
"  batch (0: off), coroutines, iothread, verify (booleans),\n"
"  poll_max_ns (-1: the library's default)\n"
"  runtime_s                     seconds from first submission to last\n"
"                                completion\n"
"  ios, reads, writes, bytes     completed I/Os and bytes transferred\n"
"  iops, mib_s                   ios / runtime_s; MiB (2^20 bytes) / s\n"
"  cpu_user_s, cpu_sys_s         process CPU time over the run\n"
"  cpu_ns_per_io                 (cpu_user_s + cpu_sys_s) / ios, in ns\n"
"  lat_us                        {min, mean, p50, p90, p99, p99_9, max}\n"
"                                in microseconds\n"
"  errors, verify_errors         failed I/Os, mismatching blocks\n"
"\n"
"Exit status: 0 success, 1 I/O errors or verification mismatches,\n"
"2 bad options or an unusable file.\n", f);
}

enum {
    OPT_ENGINE = 256, OPT_RW, OPT_RWMIXREAD, OPT_BS, OPT_IODEPTH, OPT_SIZE,
    OPT_RUNTIME, OPT_COUNT, OPT_DIRECT, OPT_FILE, OPT_BATCH, OPT_COROUTINES,
    OPT_IOTHREAD, OPT_POLL, OPT_VERIFY, OPT_JSON, OPT_QUIET,
};

static const struct option io_long_options[] = {
    { "engine", required_argument, NULL, OPT_ENGINE },
    { "rw", required_argument, NULL, OPT_RW },
    { "rwmixread", required_argument, NULL, OPT_RWMIXREAD },
    { "bs", required_argument, NULL, OPT_BS },
    { "iodepth", required_argument, NULL, OPT_IODEPTH },
    { "size", required_argument, NULL, OPT_SIZE },
    { "runtime", required_argument, NULL, OPT_RUNTIME },
    { "count", required_argument, NULL, OPT_COUNT },
    { "direct", required_argument, NULL, OPT_DIRECT },
    { "file", required_argument, NULL, OPT_FILE },
    { "batch", optional_argument, NULL, OPT_BATCH },
    { "coroutines", no_argument, NULL, OPT_COROUTINES },
    { "iothread", no_argument, NULL, OPT_IOTHREAD },
    { "poll-max-ns", required_argument, NULL, OPT_POLL },
    { "verify", no_argument, NULL, OPT_VERIFY },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

#define IO_MAX_IODEPTH 65536u

void io_parse_options(int argc, char **argv, IoOptions *o)
{
    bool runtime_given = false, batch_given = false;
    uint64_t batch = 0, v;
    int c, e;

    *o = (IoOptions) {
        .engine = AIO_ENGINE_IO_URING,
        .rw = IO_RW_RANDREAD,
        .rwmixread = 50,
        .bs = 4096,
        .iodepth = 32,
        .runtime_s = 5.0,
        .direct = true,
        .poll_max_ns = -1,
    };

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", io_long_options, NULL)) != -1) {
        switch (c) {
        case OPT_ENGINE:
            e = aio_block_engine_parse(optarg);
            if (e < 0) {
                aiob_usage_error("unknown engine '%s' (io_uring, linux-aio, "
                                 "threads)", optarg);
            }
            o->engine = (AioBlockEngine)e;
            break;
        case OPT_RW: {
            bool found = false;

            for (size_t i = 0; i < ARRAY_SIZE(rw_names); i++) {
                if (strcmp(optarg, rw_names[i].name) == 0) {
                    o->rw = rw_names[i].rw;
                    found = true;
                }
            }
            if (!found) {
                aiob_usage_error("unknown --rw '%s' (randread, randwrite, "
                                 "read, write, randrw)", optarg);
            }
            break;
        }
        case OPT_RWMIXREAD:
            if (!aiob_parse_uint(optarg, 0, 100, &v)) {
                aiob_usage_error("--rwmixread '%s' is not a percentage "
                                 "(0-100)", optarg);
            }
            o->rwmixread = (unsigned)v;
            break;
        case OPT_BS:
            if (!aiob_parse_size(optarg, &o->bs)) {
                aiob_usage_error("--bs '%s' is not a size (e.g. 4k)", optarg);
            }
            break;
        case OPT_IODEPTH:
            if (!aiob_parse_uint(optarg, 1, IO_MAX_IODEPTH, &v)) {
                aiob_usage_error("--iodepth '%s' is not a number from 1 to "
                                 "%u", optarg, IO_MAX_IODEPTH);
            }
            o->iodepth = (unsigned)v;
            break;
        case OPT_SIZE:
            if (!aiob_parse_size(optarg, &o->size) || o->size == 0) {
                aiob_usage_error("--size '%s' is not a positive size "
                                 "(e.g. 256m)", optarg);
            }
            break;
        case OPT_RUNTIME:
            if (!aiob_parse_seconds(optarg, &o->runtime_s)) {
                aiob_usage_error("--runtime '%s' is not a positive number of "
                                 "seconds", optarg);
            }
            runtime_given = true;
            break;
        case OPT_COUNT:
            if (!aiob_parse_uint(optarg, 1, UINT64_MAX, &o->count)) {
                aiob_usage_error("--count '%s' is not a positive number",
                                 optarg);
            }
            break;
        case OPT_DIRECT:
            if (strcmp(optarg, "0") != 0 && strcmp(optarg, "1") != 0) {
                aiob_usage_error("--direct takes 0 or 1, not '%s'", optarg);
            }
            o->direct = optarg[0] == '1';
            break;
        case OPT_FILE:
            if (optarg[0] == '\0') {
                aiob_usage_error("--file needs a path");
            }
            o->file = optarg;
            break;
        case OPT_BATCH:
            batch_given = true;
            batch = 0;
            /* "--batch 8" as well as "--batch=8": a bare number after
             * the option is its value (a file name never is one here). */
            if (!optarg && optind < argc &&
                aiob_parse_uint(argv[optind], 1, IO_MAX_IODEPTH, &batch)) {
                optind++;
            } else if (optarg &&
                !aiob_parse_uint(optarg, 1, IO_MAX_IODEPTH, &batch)) {
                aiob_usage_error("--batch '%s' is not a positive number",
                                 optarg);
            }
            break;
        case OPT_COROUTINES:
            o->coroutines = true;
            break;
        case OPT_IOTHREAD:
            o->iothread = true;
            break;
        case OPT_POLL:
            if (!aiob_parse_uint(optarg, 0, INT64_MAX, &v)) {
                aiob_usage_error("--poll-max-ns '%s' is not a number of "
                                 "nanoseconds", optarg);
            }
            o->poll_max_ns = (int64_t)v;
            break;
        case OPT_VERIFY:
            o->verify = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case 'h':
            io_print_help(stdout);
            exit(0);
        case ':':
            aiob_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt) {
                aiob_usage_error("unknown option '-%c' (see " AIOB_NAME
                                 " io --help)", optopt);
            }
            aiob_usage_error("unknown option '%s' (see " AIOB_NAME
                             " io --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        aiob_usage_error("unexpected argument '%s' (see " AIOB_NAME
                         " io --help)", argv[optind]);
    }

    if (o->bs == 0) {
        aiob_usage_error("--bs must be greater than 0");
    }
    if (o->direct && o->bs % 512 != 0) {
        aiob_usage_error("--bs %llu is not a multiple of 512, which "
                         "--direct 1 needs", (unsigned long long)o->bs);
    }
    if (o->bs > (1ull << 30)) {
        aiob_usage_error("--bs %llu is larger than 1 GiB",
                         (unsigned long long)o->bs);
    }
    if (o->size && o->size < o->bs) {
        aiob_usage_error("--size %llu is smaller than --bs %llu",
                         (unsigned long long)o->size,
                         (unsigned long long)o->bs);
    }
    if (o->count && !runtime_given) {
        o->runtime_s = 0;
    }
    if (batch_given) {
        o->batch = batch ? (unsigned)batch : o->iodepth;
        if (o->batch > o->iodepth) {
            aiob_usage_error("--batch %u is larger than --iodepth %u",
                             o->batch, o->iodepth);
        }
        if (o->coroutines) {
            aiob_usage_error("--batch and --coroutines cannot be combined");
        }
    }
}
