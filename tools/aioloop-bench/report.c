/*
 * report.c - text and JSON output of "aioloop-bench io".
 *
 * SPDX-License-Identifier: MIT
 */
#include "report.h"

#include <string.h>

#include <aioloop/config.h>

#include "options.h"

/* The percentiles reported, with their JSON names. */
static const struct {
    double pct;
    const char *text;
    const char *json;
} lat_points[] = {
    { 50, "p50", "p50" },
    { 90, "p90", "p90" },
    { 99, "p99", "p99" },
    { 99.9, "p99.9", "p99_9" },
};

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double iops(const IoReport *r)
{
    return r->elapsed_ns ? (double)r->ios / seconds(r->elapsed_ns) : 0.0;
}

static double mib_s(const IoReport *r)
{
    return r->elapsed_ns ?
           (double)r->bytes / 1048576.0 / seconds(r->elapsed_ns) : 0.0;
}

static double cpu_per_io(const IoReport *r)
{
    return r->ios ? (double)(r->cpu_user_ns + r->cpu_sys_ns) /
                    (double)r->ios : 0.0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void report_io_text(FILE *f, const IoReport *r)
{
    char sz[32], bsz[32];
    double wall = seconds(r->elapsed_ns);

    fprintf(f, "engine: %s", r->engine);
    if (r->engine_fallback) {
        fprintf(f, " (%s)", r->engine_fallback);
    }
    fputc('\n', f);
    fprintf(f, "rw: %s", r->rw);
    if (strcmp(r->rw, "randrw") == 0) {
        fprintf(f, " (%u%% reads)", r->rwmixread);
    }
    fputc('\n', f);
    fprintf(f, "bs: %llu (%s)\n", (unsigned long long)r->bs,
            aiob_format_size(r->bs, bsz, sizeof(bsz)));
    fprintf(f, "iodepth: %u\n", r->iodepth);
    fprintf(f, "direct: %d\n", r->direct ? 1 : 0);
    fprintf(f, "file: %s (%s%s)\n", r->file,
            aiob_format_size(r->size, sz, sizeof(sz)),
            r->scratch ? ", scratch" : "");
    fprintf(f, "submit: %s%s", r->coroutines ? "coroutines" : "callbacks",
            r->iothread ? " in an IOThread" : " in the main thread");
    if (r->batch) {
        fprintf(f, ", plugged batches of %u", r->batch);
    }
    if (r->poll_max_ns >= 0) {
        fprintf(f, ", polling up to %lld ns", (long long)r->poll_max_ns);
    }
    fputc('\n', f);
    fprintf(f, "ios: %llu in %.3f s (%llu reads, %llu writes)\n",
            (unsigned long long)r->ios, wall,
            (unsigned long long)r->reads, (unsigned long long)r->writes);
    fprintf(f, "IOPS: %.0f\n", iops(r));
    fprintf(f, "MiB/s: %.1f\n", mib_s(r));
    fprintf(f, "CPU/IO: %.0f ns (user %.3f s, sys %.3f s, %.0f%% of "
            "one CPU)\n", cpu_per_io(r), seconds(r->cpu_user_ns),
            seconds(r->cpu_sys_ns),
            wall > 0 ? 100.0 * seconds(r->cpu_user_ns + r->cpu_sys_ns) /
                       wall : 0.0);
    if (r->lat->count) {
        fprintf(f, "lat (us): min %.1f", us(r->lat->min));
        for (size_t i = 0; i < ARRAY_SIZE(lat_points); i++) {
            fprintf(f, "  %s %.1f", lat_points[i].text,
                    us(hist_percentile(r->lat, lat_points[i].pct)));
        }
        fprintf(f, "  max %.1f  (mean %.1f)\n", us(r->lat->max),
                hist_mean(r->lat) / 1000.0);
    }
    if (r->errors) {
        fprintf(f, "errors: %llu\n", (unsigned long long)r->errors);
    }
    if (r->verify) {
        fprintf(f, "verify: %llu mismatching blocks\n",
                (unsigned long long)r->verify_errors);
    }
}

void report_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
            }
        }
    }
    fputc('"', f);
}

static void json_key(FILE *f, const char *key)
{
    fprintf(f, "\"%s\": ", key);
}

static void json_bool(FILE *f, const char *key, bool v)
{
    json_key(f, key);
    fputs(v ? "true, " : "false, ", f);
}

static void json_u64(FILE *f, const char *key, uint64_t v)
{
    json_key(f, key);
    fprintf(f, "%llu, ", (unsigned long long)v);
}

static void json_double(FILE *f, const char *key, double v, int decimals)
{
    json_key(f, key);
    fprintf(f, "%.*f, ", decimals, v);
}

static void json_str(FILE *f, const char *key, const char *v)
{
    json_key(f, key);
    if (v) {
        report_json_string(f, v);
    } else {
        fputs("null", f);
    }
    fputs(", ", f);
}

void report_io_json(FILE *f, const IoReport *r)
{
    const Histogram *h = r->lat;

    fputc('{', f);
    json_str(f, "tool", AIOB_NAME);
    json_str(f, "version", AIOLOOP_VERSION);
    json_str(f, "command", "io");
    json_str(f, "engine", r->engine);
    json_str(f, "engine_requested", r->engine_requested);
    json_str(f, "engine_fallback", r->engine_fallback);
    json_str(f, "rw", r->rw);
    json_u64(f, "rwmixread", r->rwmixread);
    json_u64(f, "bs", r->bs);
    json_u64(f, "iodepth", r->iodepth);
    json_u64(f, "direct", r->direct ? 1 : 0);
    json_str(f, "file", r->file);
    json_u64(f, "size", r->size);
    json_u64(f, "batch", r->batch);
    json_bool(f, "coroutines", r->coroutines);
    json_bool(f, "iothread", r->iothread);
    json_key(f, "poll_max_ns");
    fprintf(f, "%lld, ", (long long)r->poll_max_ns);
    json_bool(f, "verify", r->verify);
    json_double(f, "runtime_s", seconds(r->elapsed_ns), 6);
    json_u64(f, "ios", r->ios);
    json_u64(f, "reads", r->reads);
    json_u64(f, "writes", r->writes);
    json_u64(f, "bytes", r->bytes);
    json_double(f, "iops", iops(r), 1);
    json_double(f, "mib_s", mib_s(r), 3);
    json_double(f, "cpu_user_s", seconds(r->cpu_user_ns), 6);
    json_double(f, "cpu_sys_s", seconds(r->cpu_sys_ns), 6);
    json_double(f, "cpu_ns_per_io", cpu_per_io(r), 1);
    json_key(f, "lat_us");
    fprintf(f, "{\"min\": %.3f, \"mean\": %.3f", h->count ? us(h->min) : 0.0,
            hist_mean(h) / 1000.0);
    for (size_t i = 0; i < ARRAY_SIZE(lat_points); i++) {
        fprintf(f, ", \"%s\": %.3f", lat_points[i].json,
                us(hist_percentile(h, lat_points[i].pct)));
    }
    fprintf(f, ", \"max\": %.3f}, ", us(h->max));
    json_u64(f, "errors", r->errors);
    json_key(f, "verify_errors");
    fprintf(f, "%llu}\n", (unsigned long long)r->verify_errors);
    fflush(f);
}
