/*
 * compare.c - "aioloop-bench compare": aioloop beside its peers, one
 * table per question.
 *
 * Block I/O: for each engine and workload the same file is read by
 * "aioloop-bench io" (this program, as a child), by fio with the same
 * engine and by "qemu-img bench" (sequential workloads only: it has no
 * random mode). Every program runs as a child process and is measured
 * the same way: IOPS from its own report, CPU time per I/O from wait4()
 * (all of its threads, io_uring's io-wq workers included) minus the CPU
 * time of a one-request run of the same program (its start-up: process,
 * libraries, ring set-up), over the I/Os it did. Repetitions interleave
 * the programs, so that a disturbance of the machine hits them alike,
 * and the median is kept.
 *
 * Engines map to:    io_uring     linux-aio    threads
 *   aioloop-bench    io_uring     linux-aio    threads (thread pool)
 *   fio --ioengine   io_uring     libaio       -
 *   qemu-img -i      io_uring     native       threads
 * fio has no engine that hands requests to a pool of worker threads
 * serving an event loop (its psync jobs are one blocking thread per
 * in-flight I/O, another architecture): qemu-img is the threads peer.
 *
 * Microbenchmarks: the bench programs (micro.c) measure aioloop and the
 * peer event loops they were built against in one process each; this
 * file only knows which figure to set beside which (micro_rows[]).
 *
 * With no subcommand, aioloop-bench runs "compare --quick": the short
 * run that "make bench" shows a newcomer.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <aioloop/config.h>

#include "commands.h"
#include "micro.h"
#include "options.h"
#include "spawn.h"
#include "table.h"

#define CMP_IO_TIMEOUT_S    120
#define CMP_MAX_REPEAT      9

typedef struct CmpOptions {
    bool quick;
    bool full;
    bool io, micro;
    const char *dir;            /* scratch file directory; NULL: choose */
    const char *file;           /* an existing file to use instead */
    uint64_t size;
    unsigned runtime_s;
    unsigned repeat;
    const char *engines;        /* comma-separated */
    const char *only;           /* micro programs; NULL: all */
    bool verbose;
} CmpOptions;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* The number after "key": in a one-line JSON object, or NAN. */
static double json_number(const char *json, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = json ? strstr(json, pat) : NULL;
    if (!p) {
        return NAN;
    }
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    return strtod(p, NULL);
}

/* The string after "key": into @buf ("" if absent or null). */
static void json_string(const char *json, const char *key, char *buf,
                        size_t len)
{
    char pat[64];
    const char *p, *e;

    buf[0] = '\0';
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = json ? strstr(json, pat) : NULL;
    if (!p) {
        return;
    }
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    if (*p != '"') {
        return;
    }
    p++;
    e = p;
    while (*e && *e != '"') {
        e += e[0] == '\\' && e[1] ? 2 : 1;
    }
    snprintf(buf, len, "%.*s", (int)(e - p), p);
}

/* Field @n (1-based) of a ';'-separated line, as a number; NAN if the
 * line has fewer fields. */
static double terse_field(const char *line, int n)
{
    for (int i = 1; i < n; i++) {
        line = line ? strchr(line, ';') : NULL;
        if (!line) {
            return NAN;
        }
        line++;
    }
    return line ? strtod(line, NULL) : NAN;
}

/* The first line of @text into @buf, for error notes. */
static const char *first_line(const char *text, char *buf, size_t len)
{
    size_t n = text ? strcspn(text, "\n") : 0;

    snprintf(buf, len, "%.*s", (int)n, text ? text : "");
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median of the @n values >= 0 in @v (sorted in place); -1 if none. */
static double median(double *v, unsigned n)
{
    unsigned m = 0;

    for (unsigned i = 0; i < n; i++) {
        if (v[i] >= 0) {
            v[m++] = v[i];
        }
    }
    if (!m) {
        return -1;
    }
    qsort(v, m, sizeof(v[0]), cmp_double);
    return m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2;
}

static bool list_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    while (*list) {
        size_t m = strcspn(list, ",");

        if (m == n && strncmp(list, name, n) == 0) {
            return true;
        }
        list += m;
        if (*list == ',') {
            list++;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* The scratch file                                                    */

static char scratch[PATH_MAX];

static void remove_scratch(void)
{
    if (scratch[0]) {
        unlink(scratch);
    }
}

static void on_signal(int sig)
{
    remove_scratch();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Whether @dir has room for @size bytes more (plus a margin). */
static bool dir_has_room(const char *dir, uint64_t size)
{
    struct statvfs sv;

    return statvfs(dir, &sv) == 0 &&
           (uint64_t)sv.f_bavail * sv.f_frsize > size + (64ull << 20) &&
           access(dir, W_OK) == 0;
}

/*
 * Makes the file of the I/O section: @o->file as given (filled by
 * aioloop-bench io if short), else a scratch file in @o->dir or, by
 * default, in /dev/shm (tmpfs: the runs are CPU-bound there, so the
 * programs' own overhead is what differs) or the current directory.
 * Returns the path, or NULL after printing why.
 */
static const char *prepare_file(const CmpOptions *o, const char *self,
                                 bool *direct, char *where, size_t wlen)
{
    char size_arg[32], *argv[12];
    const char *path;
    AiobRun r;
    int fd, ret;

    if (o->file) {
        path = o->file;
    } else {
        const char *dir = o->dir;

        if (!dir) {
            dir = dir_has_room("/dev/shm", o->size) ? "/dev/shm" : ".";
        }
        snprintf(scratch, sizeof(scratch), "%s/" AIOB_NAME "-compare.%ld.img",
                 dir, (long)getpid());
        atexit(remove_scratch);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        path = scratch;
    }
    snprintf(where, wlen, "%s%s", path,
             strncmp(path, "/dev/shm/", 9) == 0 ? " (tmpfs: CPU-bound)" : "");

    /* Create or extend it with data, through our own io command. */
    snprintf(size_arg, sizeof(size_arg), "%llu", (unsigned long long)o->size);
    argv[0] = (char *)self;
    argv[1] = (char *)"io";
    argv[2] = (char *)"--file";
    argv[3] = (char *)path;
    argv[4] = (char *)"--size";
    argv[5] = size_arg;
    argv[6] = (char *)"--count";
    argv[7] = (char *)"1";
    argv[8] = (char *)"--direct";
    argv[9] = (char *)"0";
    argv[10] = (char *)"--quiet";
    argv[11] = NULL;
    ret = aiob_run(argv, NULL, CMP_IO_TIMEOUT_S, false, &r);
    if (ret < 0 || r.status != 0) {
        char line[256];

        aiob_note("compare: cannot prepare %s: %s", path,
                  first_line(r.err, line, sizeof(line)));
        aiob_run_free(&r);
        return NULL;
    }
    aiob_run_free(&r);

    /* O_DIRECT where the file system takes it (tmpfs does since 6.6). */
    fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    *direct = fd >= 0;
    if (fd >= 0) {
        close(fd);
    }
    return path;
}

/* ------------------------------------------------------------------ */
/* One program's run of one workload                                   */

typedef struct IoWork {
    const char *rw;             /* randread, read */
    unsigned iodepth;
} IoWork;

typedef struct IoJob {
    const CmpOptions *o;
    const char *self;           /* our own executable */
    const char *file;
    bool direct;
    const char *engine;         /* our name: io_uring, linux-aio, threads */
    const IoWork *w;
} IoJob;

typedef struct IoResult {
    double iops;                /* < 0: failed */
    double cpu_ns;              /* per I/O, start-up removed; < 0: none */
    uint64_t ios;
    char why[160];              /* why it failed */
} IoResult;

typedef enum { PROG_AIOLOOP, PROG_FIO, PROG_QEMU, PROG_COUNT } Prog;

static const char *const prog_names[PROG_COUNT] = {
    "aioloop", "fio", "qemu-img bench",
};

/* fio's engine for ours, or NULL when it has none (threads). */
static const char *fio_engine(const char *engine)
{
    return strcmp(engine, "io_uring") == 0 ? "io_uring" :
           strcmp(engine, "linux-aio") == 0 ? "libaio" : NULL;
}

/* qemu-img bench -i for our engine. */
static const char *qemu_aio(const char *engine)
{
    return strcmp(engine, "io_uring") == 0 ? "io_uring" :
           strcmp(engine, "linux-aio") == 0 ? "native" : "threads";
}

/* Whether program @p has an equivalent of @j's engine. */
static bool prog_has_engine(int p, const IoJob *j)
{
    return p != PROG_FIO || fio_engine(j->engine) != NULL;
}

/* Whether program @p can run @j's engine and workload. */
static bool prog_applies(int p, const IoJob *j)
{
    if (p == PROG_QEMU && strncmp(j->w->rw, "rand", 4) == 0) {
        return false;                   /* qemu-img has no random mode */
    }
    return prog_has_engine(p, j);
}

/* Runs @argv, fills @res->why on failure; returns whether it ran. */
static bool run_child(char **argv, AiobRun *r, IoResult *res)
{
    char line[128];
    int ret = aiob_run(argv, NULL, CMP_IO_TIMEOUT_S, false, r);

    if (ret < 0) {
        snprintf(res->why, sizeof(res->why), "cannot run %s: %s", argv[0],
                 strerror(-ret));
        return false;
    }
    if (r->status != 0) {
        snprintf(res->why, sizeof(res->why), "%s %s: %s", argv[0],
                 r->timed_out ? "timed out" : "failed",
                 first_line(r->err && r->err[0] ? r->err : r->out, line,
                            sizeof(line)));
        return false;
    }
    return true;
}

/* aioloop-bench io; @count > 0: a start-up run of @count I/Os. */
static void run_aioloop(const IoJob *j, uint64_t count, double *cpu,
                        IoResult *res)
{
    char qd[16], rt[16], sz[32], cnt[32], eng[32], req[32], fb[128];
    char *argv[24];
    int a = 0;
    AiobRun r;

    snprintf(qd, sizeof(qd), "%u", j->w->iodepth);
    snprintf(rt, sizeof(rt), "%u", j->o->runtime_s);
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)j->o->size);
    snprintf(cnt, sizeof(cnt), "%llu", (unsigned long long)count);
    argv[a++] = (char *)j->self;
    argv[a++] = (char *)"io";
    argv[a++] = (char *)"--engine";
    argv[a++] = (char *)j->engine;
    argv[a++] = (char *)"--rw";
    argv[a++] = (char *)j->w->rw;
    argv[a++] = (char *)"--iodepth";
    argv[a++] = qd;
    argv[a++] = (char *)"--size";
    argv[a++] = sz;
    argv[a++] = (char *)"--direct";
    argv[a++] = (char *)(j->direct ? "1" : "0");
    argv[a++] = (char *)"--file";
    argv[a++] = (char *)j->file;
    argv[a++] = count ? (char *)"--count" : (char *)"--runtime";
    argv[a++] = count ? cnt : rt;
    argv[a++] = (char *)"--json";
    argv[a++] = (char *)"--quiet";
    argv[a] = NULL;
    res->iops = -1;
    if (!run_child(argv, &r, res)) {
        aiob_run_free(&r);
        return;
    }
    *cpu = r.cpu_s;
    json_string(r.out, "engine", eng, sizeof(eng));
    json_string(r.out, "engine_requested", req, sizeof(req));
    if (strcmp(eng, req) != 0) {
        json_string(r.out, "engine_fallback", fb, sizeof(fb));
        snprintf(res->why, sizeof(res->why), "%.24s unavailable (%.120s)", req, fb);
    } else {
        res->iops = json_number(r.out, "iops");
        res->ios = (uint64_t)json_number(r.out, "ios");
        if (!(res->iops >= 0)) {
            snprintf(res->why, sizeof(res->why), "no JSON report");
            res->iops = -1;
        }
    }
    aiob_run_free(&r);
}

/* fio; @count > 0: a start-up run of @count I/Os. */
static void run_fio(const IoJob *j, uint64_t count, double *cpu,
                    IoResult *res)
{
    char a_file[PATH_MAX + 16], a_size[48], a_direct[16], a_rw[32], a_qd[32];
    char a_eng[32], a_rt[32], a_count[48];
    char *argv[24];
    int a = 0;
    double rkb, wkb, riops, wiops;
    AiobRun r;

    snprintf(a_file, sizeof(a_file), "--filename=%s", j->file);
    snprintf(a_size, sizeof(a_size), "--size=%llu",
             (unsigned long long)j->o->size);
    snprintf(a_direct, sizeof(a_direct), "--direct=%d", j->direct);
    snprintf(a_rw, sizeof(a_rw), "--rw=%s", j->w->rw);
    snprintf(a_qd, sizeof(a_qd), "--iodepth=%u", j->w->iodepth);
    snprintf(a_eng, sizeof(a_eng), "--ioengine=%s", fio_engine(j->engine));
    snprintf(a_rt, sizeof(a_rt), "--runtime=%u", j->o->runtime_s);
    snprintf(a_count, sizeof(a_count), "--number_ios=%llu",
             (unsigned long long)count);
    argv[a++] = (char *)"fio";
    argv[a++] = (char *)"--name=aioloop-compare";
    argv[a++] = a_file;
    argv[a++] = a_size;
    argv[a++] = a_direct;
    argv[a++] = a_rw;
    argv[a++] = (char *)"--bs=4096";
    argv[a++] = a_qd;
    argv[a++] = a_eng;
    argv[a++] = (char *)"--norandommap";
    argv[a++] = (char *)"--group_reporting";
    argv[a++] = (char *)"--output-format=terse";
    argv[a++] = (char *)"--terse-version=3";
    if (count) {
        argv[a++] = a_count;
    } else {
        argv[a++] = a_rt;
        argv[a++] = (char *)"--time_based";
    }
    argv[a] = NULL;
    res->iops = -1;
    if (!run_child(argv, &r, res)) {
        aiob_run_free(&r);
        return;
    }
    *cpu = r.cpu_s;
    /* Terse v3: 6 read KiB, 8 read IOPS, 47 write KiB, 49 write IOPS. */
    rkb = terse_field(r.out, 6);
    riops = terse_field(r.out, 8);
    wkb = terse_field(r.out, 47);
    wiops = terse_field(r.out, 49);
    if (isnan(rkb) || isnan(riops) || isnan(wkb) || isnan(wiops)) {
        snprintf(res->why, sizeof(res->why), "unreadable fio report");
    } else {
        res->iops = riops + wiops;
        res->ios = (uint64_t)((rkb + wkb) * 1024 / 4096);
    }
    aiob_run_free(&r);
}

/* qemu-img bench of @count requests. */
static void run_qemu(const IoJob *j, uint64_t count, double *cpu,
                     IoResult *res)
{
    char a_count[32], a_qd[16];
    char *argv[20];
    const char *p;
    double secs;
    int a = 0;
    AiobRun r;

    snprintf(a_count, sizeof(a_count), "%llu", (unsigned long long)count);
    snprintf(a_qd, sizeof(a_qd), "%u", j->w->iodepth);
    argv[a++] = (char *)"qemu-img";
    argv[a++] = (char *)"bench";
    argv[a++] = (char *)"-c";
    argv[a++] = a_count;
    argv[a++] = (char *)"-d";
    argv[a++] = a_qd;
    argv[a++] = (char *)"-s";
    argv[a++] = (char *)"4096";
    argv[a++] = (char *)"-t";
    argv[a++] = (char *)(j->direct ? "none" : "writeback");
    argv[a++] = (char *)"-i";
    argv[a++] = (char *)qemu_aio(j->engine);
    argv[a++] = (char *)"-f";
    argv[a++] = (char *)"raw";
    argv[a++] = (char *)j->file;
    argv[a] = NULL;
    res->iops = -1;
    if (!run_child(argv, &r, res)) {
        aiob_run_free(&r);
        return;
    }
    *cpu = r.cpu_s;
    p = r.out ? strstr(r.out, "Run completed in ") : NULL;
    secs = p ? strtod(p + strlen("Run completed in "), NULL) : -1;
    if (secs >= 0) {
        /* A start-up run of one request may report 0.000 seconds. */
        res->iops = secs > 0 ? (double)count / secs : 0;
        res->ios = count;
    } else {
        snprintf(res->why, sizeof(res->why), "unreadable qemu-img report");
    }
    aiob_run_free(&r);
}

/* ------------------------------------------------------------------ */
/* The I/O section                                                     */

static const IoWork quick_work[] = {
    { "randread", 32 },
    { "read", 32 },
};

static const IoWork full_work[] = {
    { "randread", 1 },
    { "randread", 32 },
    { "randread", 128 },
    { "read", 32 },
    { "read", 128 },
};

static const char *const all_engines[] = { "io_uring", "linux-aio",
                                           "threads" };

/* aioloop's own runs that failed (not counting an engine the kernel
 * refused, which is reported as such): the exit status is 1 then. */
static unsigned cmp_failures;

typedef struct ProgState {
    bool available;
    char missing[96];           /* why not */
    double startup_cpu;         /* of a one-request run; < 0: unknown */
} ProgState;

/* One engine and workload: every program, interleaved, o->repeat times;
 * adds the rows to @t. @qemu_count_hint: IOPS expected (for qemu-img's
 * request count). */
static void io_compare(const IoJob *j, ProgState *ps, AiobTable *t)
{
    const CmpOptions *o = j->o;
    double iops[PROG_COUNT][CMP_MAX_REPEAT], cpu[PROG_COUNT][CMP_MAX_REPEAT];
    double med_iops[PROG_COUNT], med_cpu[PROG_COUNT];
    char why[PROG_COUNT][160], figure[64], peer[64];
    double guess = 0;

    memset(why, 0, sizeof(why));
    for (unsigned rep = 0; rep < o->repeat; rep++) {
        for (int p = 0; p < PROG_COUNT; p++) {
            IoResult res = { .iops = -1 };
            double c = 0;

            iops[p][rep] = cpu[p][rep] = -1;
            if (!ps[p].available || !prog_applies(p, j)) {
                continue;
            }
            switch (p) {
            case PROG_AIOLOOP:
                run_aioloop(j, 0, &c, &res);
                if (res.iops > 0) {
                    guess = res.iops;
                }
                break;
            case PROG_FIO:
                run_fio(j, 0, &c, &res);
                break;
            default: {
                /* qemu-img counts requests, not seconds: ask for about
                 * runtime_s worth at the rate aioloop just reached. */
                uint64_t count = (uint64_t)(guess > 0 ? guess : 20000) *
                                 o->runtime_s;

                run_qemu(j, count < 1000 ? 1000 : count, &c, &res);
                break;
            }
            }
            if (res.iops < 0) {
                snprintf(why[p], sizeof(why[p]), "%s", res.why);
                if (p == PROG_AIOLOOP && !strstr(res.why, "unavailable")) {
                    aiob_note("compare: %s", res.why);
                    cmp_failures++;
                }
                continue;
            }
            iops[p][rep] = res.iops;
            if (ps[p].startup_cpu >= 0 && res.ios > 0) {
                double net = c - ps[p].startup_cpu;

                cpu[p][rep] = (net > 0 ? net : 0) * 1e9 / (double)res.ios;
            }
            if (o->verbose) {
                printf("# %s %s qd%u %s run %u: %.0f IOPS, %.0f ns CPU/io\n",
                       j->engine, j->w->rw, j->w->iodepth, prog_names[p],
                       rep + 1, res.iops, cpu[p][rep]);
            }
        }
    }
    for (int p = 0; p < PROG_COUNT; p++) {
        med_iops[p] = median(iops[p], o->repeat);
        med_cpu[p] = median(cpu[p], o->repeat);
    }

    for (int p = PROG_FIO; p < PROG_COUNT; p++) {
        const char *peer_why = NULL;

        if (!prog_applies(p, j)) {
            continue;
        }
        snprintf(peer, sizeof(peer), "%s %s", prog_names[p],
                 p == PROG_FIO ? fio_engine(j->engine) : qemu_aio(j->engine));
        if (!ps[p].available) {
            peer_why = ps[p].missing;
        } else if (med_iops[p] < 0) {
            peer_why = why[p][0] ? why[p] : "failed";
        }
        if (med_iops[PROG_AIOLOOP] < 0) {
            peer_why = why[PROG_AIOLOOP][0] ? why[PROG_AIOLOOP]
                                            : "aioloop failed";
        }
        snprintf(figure, sizeof(figure), "%s QD%u %s: IOPS", j->w->rw,
                 j->w->iodepth, j->engine);
        aiob_table_add(t, figure, med_iops[PROG_AIOLOOP], peer,
                       peer_why ? -1 : med_iops[p], "IOPS",
                       AIOB_HIGHER_IS_BETTER, peer_why);
        snprintf(figure, sizeof(figure), "%s QD%u %s: CPU/IO", j->w->rw,
                 j->w->iodepth, j->engine);
        aiob_table_add(t, figure, med_cpu[PROG_AIOLOOP], peer,
                       peer_why ? -1 : med_cpu[p], "ns/io",
                       AIOB_LOWER_IS_BETTER, peer_why);
    }
}

/* Start-up CPU of each program for @j's engine: a one-request run. */
static void measure_startup(const IoJob *j, ProgState *ps)
{
    for (int p = 0; p < PROG_COUNT; p++) {
        IoResult res = { .iops = -1 };
        double c = -1;

        ps[p].startup_cpu = -1;
        if (!ps[p].available || !prog_has_engine(p, j)) {
            continue;
        }
        if (p == PROG_AIOLOOP) {
            run_aioloop(j, 1, &c, &res);
        } else if (p == PROG_FIO) {
            run_fio(j, 1, &c, &res);
        } else {
            run_qemu(j, 1, &c, &res);
        }
        if (res.iops >= 0) {
            ps[p].startup_cpu = c;
        }
    }
}

static void io_section(const CmpOptions *o, const char *self)
{
    const IoWork *work = o->full ? full_work : quick_work;
    size_t nwork = o->full ? ARRAY_SIZE(full_work) : ARRAY_SIZE(quick_work);
    ProgState ps[PROG_COUNT];
    char where[PATH_MAX + 64], title[256];
    const char *file;
    bool direct = false;
    AiobTable t;

    memset(ps, 0, sizeof(ps));
    ps[PROG_AIOLOOP].available = true;
    ps[PROG_FIO].available = aiob_which("fio");
    if (!ps[PROG_FIO].available) {
        snprintf(ps[PROG_FIO].missing, sizeof(ps[0].missing),
                 "skipped (install fio)");
    }
    ps[PROG_QEMU].available = aiob_which("qemu-img");
    if (!ps[PROG_QEMU].available) {
        snprintf(ps[PROG_QEMU].missing, sizeof(ps[0].missing),
                 "skipped (install qemu-utils)");
    }

    file = prepare_file(o, self, &direct, where, sizeof(where));
    if (!file) {
        cmp_failures++;
        return;
    }
    snprintf(title, sizeof(title), "block I/O: 4 KiB, %s, %u s per run, "
             "median of %u", direct ? "O_DIRECT" : "buffered (no O_DIRECT "
             "here)", o->runtime_s, o->repeat);
    aiob_table_init(&t, title);
    snprintf(t.note, sizeof(t.note), "file %.320s, %llu MiB; CPU/IO = CPU time "
             "of the whole process (wait4) minus its start-up, per I/O",
             where, (unsigned long long)(o->size >> 20));

    for (size_t e = 0; e < ARRAY_SIZE(all_engines); e++) {
        IoJob j = { .o = o, .self = self, .file = file, .direct = direct,
                    .engine = all_engines[e], .w = &work[0] };

        if (!list_has(o->engines, all_engines[e])) {
            continue;
        }
        measure_startup(&j, ps);
        for (size_t w = 0; w < nwork; w++) {
            j.w = &work[w];
            io_compare(&j, ps, &t);
        }
    }
    aiob_table_print(stdout, &t);
    aiob_table_free(&t);
    remove_scratch();
    scratch[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* The microbenchmark section                                          */

typedef struct MicroRow {
    const char *section;        /* starts a new table when it changes */
    const char *figure;
    const char *ours;           /* aioloop's figure */
    const char *peer;           /* NULL: aioloop alone */
    const char *theirs;
    const char *skip;           /* name of the peer's "skipped" line, if
                                 * not @theirs */
} MicroRow;

#define EVENT_LOOPS "event loop primitives (per operation; lower is better)"
#define TIMERS      "timers (per timer or per wait; lower is better)"
#define WORKERS     "thread pool and coroutines (lower is better)"

static const MicroRow micro_rows[] = {
    { EVENT_LOOPS, "BH schedule + dispatch", "bh.aioloop",
      "libevent", "bh.libevent", NULL },
    { EVENT_LOOPS, "BH schedule + dispatch", "bh.aioloop",
      "libuv (idle)", "bh.libuv-idle", NULL },
    { EVENT_LOOPS, "BH schedule + dispatch", "bh.aioloop",
      "libuv (async)", "bh.libuv-async", NULL },
    { EVENT_LOOPS, "BH schedule + dispatch", "bh.aioloop",
      "GLib (idle)", "bh.glib", NULL },
    { EVENT_LOOPS, "cross-thread wake", "wake.aioloop",
      "eventfd ping-pong", "wake.eventfd-floor", NULL },
    { EVENT_LOOPS, "cross-thread wake", "wake.aioloop",
      "libuv", "wake.libuv", NULL },
    { EVENT_LOOPS, "cross-thread wake", "wake.aioloop",
      "GLib", "wake.glib", NULL },
    { EVENT_LOOPS, "cross-thread wake", "wake.aioloop",
      "libevent", "wake.libevent", NULL },
    { EVENT_LOOPS, "wake, adaptive polling", "wake.aioloop-poll",
      "busy-poll floor", "wake.busy-poll-floor", NULL },
    { EVENT_LOOPS, "idle poll pass, 10 fds", "idle-fds.aioloop-epoll.n10",
      "libuv", "idle-fds.libuv.n10", NULL },
    { EVENT_LOOPS, "idle poll pass, 10 fds", "idle-fds.aioloop-epoll.n10",
      "libev", "idle-fds.libev.n10", NULL },
    { EVENT_LOOPS, "idle poll pass, 10 fds", "idle-fds.aioloop-epoll.n10",
      "GLib", "idle-fds.glib.n10", NULL },
    { EVENT_LOOPS, "idle poll pass, 10k fds",
      "idle-fds.aioloop-epoll.n10000", "libuv", "idle-fds.libuv.n10000",
      NULL },
    { EVENT_LOOPS, "idle poll pass, 10k fds",
      "idle-fds.aioloop-epoll.n10000", "libev", "idle-fds.libev.n10000",
      NULL },
    { EVENT_LOOPS, "idle poll pass, 10k fds",
      "idle-fds.aioloop-epoll.n10000", "GLib", "idle-fds.glib.n10000",
      NULL },

    { TIMERS, "1M timers: arm", "timers-1m.arm.aioloop",
      "libev", "timers-1m.arm.libev", "timers-1m.libev" },
    { TIMERS, "1M timers: arm", "timers-1m.arm.aioloop",
      "libevent", "timers-1m.arm.libevent", "timers-1m.libevent" },
    { TIMERS, "1M timers: arm", "timers-1m.arm.aioloop",
      "libuv", "timers-1m.arm.libuv", "timers-1m.libuv" },
    { TIMERS, "100k timers: arm", "timers-1m.arm.aioloop-100k",
      "GLib", "timers-1m.arm.glib-100k", "timers-1m.glib-100k" },
    { TIMERS, "1M timers: re-arm", "timers-1m.rearm.aioloop",
      "libev", "timers-1m.rearm.libev", "timers-1m.libev" },
    { TIMERS, "1M timers: re-arm", "timers-1m.rearm.aioloop",
      "libevent", "timers-1m.rearm.libevent", "timers-1m.libevent" },
    { TIMERS, "1M timers: re-arm", "timers-1m.rearm.aioloop",
      "libuv", "timers-1m.rearm.libuv", "timers-1m.libuv" },
    { TIMERS, "100k timers: re-arm", "timers-1m.rearm.aioloop-100k",
      "GLib", "timers-1m.rearm.glib-100k", "timers-1m.glib-100k" },
    { TIMERS, "1M timers: fire", "timers-1m.fire.aioloop",
      "libev", "timers-1m.fire.libev", "timers-1m.libev" },
    { TIMERS, "1M timers: fire", "timers-1m.fire.aioloop",
      "libevent", "timers-1m.fire.libevent", "timers-1m.libevent" },
    { TIMERS, "1M timers: fire", "timers-1m.fire.aioloop",
      "libuv", "timers-1m.fire.libuv", "timers-1m.libuv" },
    { TIMERS, "100k timers: fire", "timers-1m.fire.aioloop-100k",
      "GLib", "timers-1m.fire.glib-100k", "timers-1m.glib-100k" },
    /* Like with like (bench/bench-timers.c): libev and libuv re-arm from
     * the loop's cached time, as aioloop-cached does from a time read
     * once per batch; libev-now (ev_now_update() first) and libevent read
     * the clock on every re-arm, as QEMU's idiom timer_mod(t,
     * qemu_clock_get_ns() + d) does. */
    { TIMERS, "re-arm among 1000, cached time", "timer-rearm.aioloop-cached",
      "libev", "timer-rearm.libev", NULL },
    { TIMERS, "re-arm among 1000, cached time", "timer-rearm.aioloop-cached",
      "libuv", "timer-rearm.libuv", NULL },
    { TIMERS, "re-arm among 1000, clock read", "timer-rearm.aioloop",
      "libev (ev_now_update)", "timer-rearm.libev-now", NULL },
    { TIMERS, "re-arm among 1000, clock read", "timer-rearm.aioloop",
      "libevent", "timer-rearm.libevent", NULL },
    { TIMERS, "100 us timer, lateness", "timer-lateness.aioloop.median",
      "clock_nanosleep", "timer-lateness.nanosleep.median", NULL },
    { TIMERS, "100 us timer, lateness", "timer-lateness.aioloop.median",
      "libev", "timer-lateness.libev-100us.median",
      "timer-lateness.libev-100us" },

    { WORKERS, "pool: 1M empty jobs", "threadpool.throughput.aioloop",
      "libuv", "threadpool.throughput.libuv", NULL },
    { WORKERS, "pool: 1M empty jobs", "threadpool.throughput.aioloop",
      "GThreadPool", "threadpool.throughput.glib", NULL },
    { WORKERS, "pool: QD1, unpinned", "threadpool.qd1.aioloop",
      "libuv", "threadpool.qd1.libuv", NULL },
    { WORKERS, "pool: QD1, unpinned", "threadpool.qd1.aioloop",
      "GThreadPool", "threadpool.qd1.glib", NULL },
    { WORKERS, "pool: QD1, 2 CPUs pinned", "threadpool.qd1.cross-cpu.aioloop",
      "libuv", "threadpool.qd1.cross-cpu.libuv", NULL },
    { WORKERS, "pool: QD1, 2 CPUs pinned", "threadpool.qd1.cross-cpu.aioloop",
      "GThreadPool", "threadpool.qd1.cross-cpu.glib", NULL },
    { WORKERS, "pool: QD1, 1 CPU", "threadpool.qd1.same-cpu.aioloop",
      "libuv", "threadpool.qd1.same-cpu.libuv", NULL },
    { WORKERS, "pool: QD1, 1 CPU", "threadpool.qd1.same-cpu.aioloop",
      "GThreadPool", "threadpool.qd1.same-cpu.glib", NULL },
    { WORKERS, "pool: QD1, polling loop", "threadpool.qd1.aioloop-poll",
      NULL, NULL, NULL },
    { WORKERS, "coroutine switch", "coroutine.switch.aioloop",
      "swapcontext", "coroutine.switch.swapcontext", NULL },
    { WORKERS, "coroutine switch", "coroutine.switch.aioloop",
      "sigsetjmp/longjmp", "coroutine.switch.sigsetjmp", NULL },
    { WORKERS, "coroutine create+run", "coroutine.create.aioloop",
      NULL, NULL, NULL },
};

static void micro_section(const CmpOptions *o)
{
    AiobFigures figs = { 0 };
    const char *section = NULL;
    AiobTable t;
    bool open = false;
    int failed;

    failed = aiob_micro_run(o->only, o->quick, o->verbose, false, &figs);
    cmp_failures += (unsigned)failed;
    if (failed && figs.n == 0) {
        aiob_figures_free(&figs);
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(micro_rows); i++) {
        const MicroRow *m = &micro_rows[i];
        const AiobFigure *ours = aiob_figures_get(&figs, m->ours);
        const AiobFigure *theirs = NULL;
        const char *why = NULL;
        char msg[128];

        if (!section || strcmp(section, m->section) != 0) {
            if (open && t.n) {
                aiob_table_print(stdout, &t);
            }
            if (open) {
                aiob_table_free(&t);
            }
            aiob_table_init(&t, m->section);
            if (o->quick) {
                snprintf(t.note, sizeof(t.note), "quick mode: median of 7 "
                         "batches of 15 ms per figure (noisier than "
                         "aioloop-bench micro)");
            }
            open = true;
            section = m->section;
        }
        if (!ours || ours->skip) {
            continue;                   /* that program did not run */
        }
        if (m->peer) {
            theirs = aiob_figures_get(&figs, m->theirs);
            if (!theirs && m->skip) {
                theirs = aiob_figures_get(&figs, m->skip);
            }
            if (!theirs) {
                why = "not measured";
            } else if (theirs->skip) {
                snprintf(msg, sizeof(msg), "skipped (%s)", theirs->skip);
                why = msg;
            } else if (strcmp(theirs->unit, ours->unit) != 0) {
                why = "units differ";
            }
        } else {
            why = "(aioloop alone)";
        }
        aiob_table_add(&t, m->figure, ours->value, m->peer ? m->peer : "-",
                       why ? -1 : theirs->value, ours->unit,
                       AIOB_LOWER_IS_BETTER, why);
    }
    if (open && t.n) {
        aiob_table_print(stdout, &t);
    }
    if (open) {
        aiob_table_free(&t);
    }
    aiob_figures_free(&figs);
}

/* ------------------------------------------------------------------ */
/* The command                                                         */

static void compare_help(FILE *f)
{
    fprintf(f,
"usage: " AIOB_NAME " compare [options]\n"
"       " AIOB_NAME "            (no command: compare --quick)\n"
"\n"
"Runs aioloop and its peers on the same work and prints one table per\n"
"question: figure, aioloop, peer, the peer's figure, and the ratio\n"
"(how many times better aioloop is: above 1 ahead, below 1 behind),\n"
"with one line of conclusion per table.\n"
"\n"
"Block I/O: 4 KiB reads of one file by aioloop-bench io, fio (same\n"
"engine) and qemu-img bench (sequential only), per engine (io_uring,\n"
"linux-aio, threads); IOPS and CPU time per I/O. Microbenchmarks: the\n"
"programs of \"" AIOB_NAME " micro\", with libuv, libevent, libev and GLib\n"
"measured in the same processes.\n"
"\n"
"Options:\n"
"  --quick        short runs (1 s per I/O run, 15 ms batches): about a\n"
"                 minute on 2 cores\n"
"  --full         more I/O workloads (randread QD 1/32/128, read QD\n"
"                 32/128) and 3 repetitions\n"
"  --io-only, --micro-only\n"
"                 one section only\n"
"  --dir DIR      where the scratch file goes (default /dev/shm, a tmpfs,\n"
"                 where runs are CPU-bound and overheads show; use a\n"
"                 directory on a disk to see the device's limits)\n"
"  --file PATH    use this file (created and filled if missing or short;\n"
"                 not removed)\n"
"  --size SIZE    bytes of the file used (default 256m; 128m with\n"
"                 --quick)\n"
"  --runtime S    seconds per I/O run (default 3; 1 with --quick)\n"
"  --repeat N     runs per I/O figure, interleaved; the median is kept\n"
"                 (default 1 with --quick, else 3; at most %d)\n"
"  --engines LIST comma-separated subset of io_uring,linux-aio,threads\n"
"  --only LIST    micro programs to run (see " AIOB_NAME " micro --help)\n"
"  -v, --verbose  every run's figures and the micro programs' lines\n"
"  -h, --help     this text\n"
"\n"
"Peers that are not installed are listed as skipped with the Debian\n"
"package that provides them (scripts/install-deps --peers installs all).\n"
"Exit status: 0 done (even with peers skipped), 1 aioloop's own runs\n"
"failed, 2 bad options.\n", CMP_MAX_REPEAT);
}

enum {
    OPT_QUICK = 256, OPT_FULL, OPT_IO_ONLY, OPT_MICRO_ONLY, OPT_DIR,
    OPT_FILE, OPT_SIZE, OPT_RUNTIME, OPT_REPEAT, OPT_ENGINES, OPT_ONLY,
};

static const struct option compare_options[] = {
    { "quick", no_argument, NULL, OPT_QUICK },
    { "full", no_argument, NULL, OPT_FULL },
    { "io-only", no_argument, NULL, OPT_IO_ONLY },
    { "micro-only", no_argument, NULL, OPT_MICRO_ONLY },
    { "dir", required_argument, NULL, OPT_DIR },
    { "file", required_argument, NULL, OPT_FILE },
    { "size", required_argument, NULL, OPT_SIZE },
    { "runtime", required_argument, NULL, OPT_RUNTIME },
    { "repeat", required_argument, NULL, OPT_REPEAT },
    { "engines", required_argument, NULL, OPT_ENGINES },
    { "only", required_argument, NULL, OPT_ONLY },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static void check_engines(const char *list)
{
    if (!*list) {
        aiob_usage_error("--engines needs at least one engine");
    }
    while (*list) {
        size_t n = strcspn(list, ",");
        bool ok = false;

        for (size_t i = 0; i < ARRAY_SIZE(all_engines); i++) {
            ok |= strlen(all_engines[i]) == n &&
                  strncmp(all_engines[i], list, n) == 0;
        }
        if (!ok) {
            aiob_usage_error("--engines: unknown engine '%.*s' (io_uring, "
                             "linux-aio, threads)", (int)n, list);
        }
        list += n;
        if (*list == ',') {
            list++;
        }
    }
}

static void parse_options(int argc, char **argv, CmpOptions *o)
{
    bool size_given = false, runtime_given = false, repeat_given = false;
    uint64_t v;
    double secs;
    int c;

    *o = (CmpOptions) { .io = true, .micro = true,
                        .engines = "io_uring,linux-aio,threads" };
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hv", compare_options, NULL)) !=
           -1) {
        switch (c) {
        case OPT_QUICK:
            o->quick = true;
            break;
        case OPT_FULL:
            o->full = true;
            break;
        case OPT_IO_ONLY:
            o->micro = false;
            break;
        case OPT_MICRO_ONLY:
            o->io = false;
            break;
        case OPT_DIR: {
            struct stat st;

            if (stat(optarg, &st) < 0 || !S_ISDIR(st.st_mode)) {
                aiob_usage_error("--dir %s is not a directory", optarg);
            }
            if (access(optarg, W_OK) < 0) {
                aiob_usage_error("--dir %s is not writable", optarg);
            }
            o->dir = optarg;
            break;
        }
        case OPT_FILE:
            if (!optarg[0]) {
                aiob_usage_error("--file needs a path");
            }
            o->file = optarg;
            break;
        case OPT_SIZE:
            if (!aiob_parse_size(optarg, &o->size) || o->size < (1u << 20)) {
                aiob_usage_error("--size '%s' is not a size of at least 1m",
                                 optarg);
            }
            size_given = true;
            break;
        case OPT_RUNTIME:
            /* Whole seconds: fio's --runtime unit. */
            if (!aiob_parse_seconds(optarg, &secs) || secs < 1 ||
                secs != floor(secs) || secs > 3600) {
                aiob_usage_error("--runtime '%s' is not a whole number of "
                                 "seconds from 1 to 3600", optarg);
            }
            o->runtime_s = (unsigned)secs;
            runtime_given = true;
            break;
        case OPT_REPEAT:
            if (!aiob_parse_uint(optarg, 1, CMP_MAX_REPEAT, &v)) {
                aiob_usage_error("--repeat '%s' is not a number from 1 to %d",
                                 optarg, CMP_MAX_REPEAT);
            }
            o->repeat = (unsigned)v;
            repeat_given = true;
            break;
        case OPT_ENGINES:
            check_engines(optarg);
            o->engines = optarg;
            break;
        case OPT_ONLY:
            aiob_micro_check_names(optarg);
            o->only = optarg;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            compare_help(stdout);
            exit(0);
        case ':':
            aiob_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            aiob_usage_error("unknown option '%s' (see " AIOB_NAME
                             " compare --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        aiob_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (!o->io && !o->micro) {
        aiob_usage_error("--io-only and --micro-only exclude each other");
    }
    if (o->quick && o->full) {
        aiob_usage_error("--quick and --full exclude each other");
    }
    if (o->file && o->dir) {
        aiob_usage_error("--file and --dir exclude each other");
    }
    if (!size_given) {
        o->size = o->quick ? 128ull << 20 : 256ull << 20;
    }
    if (!runtime_given) {
        o->runtime_s = o->quick ? 1 : 3;
    }
    if (!repeat_given) {
        o->repeat = o->quick ? 1 : 3;
    }
}

static void print_header(const CmpOptions *o)
{
    struct utsname u;
    char date[64];
    time_t now = time(NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    strftime(date, sizeof(date), "%Y-%m-%d %H:%M %Z", localtime(&now));
    uname(&u);
    printf(AIOB_NAME " %s compare%s: %s, Linux %s %s, %ld CPU%s\n",
           AIOLOOP_VERSION, o->quick ? " --quick" : o->full ? " --full" : "",
           date, u.release, u.machine, cpus, cpus == 1 ? "" : "s");
    printf("ratio = how many times better aioloop is (peer time / aioloop "
           "time, or aioloop rate / peer rate): above 1 ahead, below 1 "
           "behind.\n");
    printf("Figures move by 10-20%% between runs on a shared machine: "
           "compare ratios from one run, not absolute values.\n\n");
    fflush(stdout);
}

int aiob_cmd_compare(int argc, char **argv)
{
    char self[PATH_MAX];
    CmpOptions o;

    parse_options(argc, argv, &o);
    if (!aiob_self_exe(self, sizeof(self))) {
        aiob_fail("cannot find this program's own path (/proc/self/exe)");
    }
    print_header(&o);
    if (o.io) {
        io_section(&o, self);
    }
    if (o.micro) {
        micro_section(&o);
    }
    if (!aiob_which("fio") || !aiob_which("qemu-img")) {
        printf("Peers missing: %s%s(Debian: apt-get install fio qemu-utils; "
               "in the source tree: scripts/install-deps --peers).\n",
               aiob_which("fio") ? "" : "fio ",
               aiob_which("qemu-img") ? "" : "qemu-img ");
    }
    return cmp_failures ? AIOB_EXIT_FAIL : 0;
}
