/*
 * compare-io.c - the block I/O section of "aioloop-bench compare":
 * aioloop beside fio and qemu-img bench, each peer at its best.
 *
 * For each engine and workload the same file is read by "aioloop-bench
 * io" (this program, as a child) and by the peers' runs, each a child
 * process measured the same way: IOPS from its own report, CPU time per
 * I/O from wait4() (all of its threads, io_uring's io-wq workers
 * included) minus the CPU time of a one-request run of the same program
 * with the same options (its start-up: process, libraries, ring and
 * buffer registration), over the I/Os it did.
 *
 * Peers at their best. A comparison with fio's defaults flatters
 * whoever fio is compared with: tuned, fio does twice as many I/Os per
 * second on some workloads. So every fio engine runs several documented
 * tunings (batched submission and completion; user-space reaping or
 * polling of the completion ring, which fio applies only with
 * iodepth_batch_complete_min=0; registered files and buffers for
 * io_uring, with or without IOSQE_ASYNC (--force_async=1, which avoids a
 * failed non-blocking attempt per request on files such as tmpfs');
 * --hipri where the kernel can poll the file, which a probe finds out;
 * some only with --full), and the row shows the one with the best median
 * IOPS, by name, with its options in a footnote. fio's defaults are shown too
 * (--full), marked "(ref)" and left out of the conclusion. qemu-img
 * bench has no batching or polling options: -t none -f raw -i ENGINE are
 * its fastest flags. Polling modes get a table of their own: io_uring's
 * kernel submission thread (fio --sqthread_poll) against aioloop's event
 * loop in an IOThread, which polls adaptively by default.
 *
 * Engines map to:    io_uring     linux-aio    threads
 *   aioloop-bench    io_uring     linux-aio    threads (thread pool)
 *   fio --ioengine   io_uring     libaio       -
 *   qemu-img -i      io_uring     native       threads
 * fio has no engine that hands requests to a pool of worker threads
 * serving an event loop (its psync jobs are one blocking thread per
 * in-flight I/O, another architecture): qemu-img is the threads peer.
 *
 * Repetitions interleave the programs (aioloop, then each peer, then
 * aioloop again...), so that a disturbance of the machine hits them
 * alike; a row shows the medians and the spread of the ratio, each
 * repetition's peer run set against that repetition's aioloop run.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <aioloop/compiler.h>

#include "compare.h"
#include "options.h"
#include "spawn.h"
#include "table.h"

const char *const aiob_cmp_engines[AIOB_CMP_NENGINES] = {
    "io_uring", "linux-aio", "threads",
};

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

/* Median of the values >= 0 among the @n of @v; -1 if none. */
static double median(const double *v, unsigned n)
{
    double s[CMP_MAX_REPEAT];
    unsigned m = 0;

    for (unsigned i = 0; i < n; i++) {
        if (v[i] >= 0) {
            s[m++] = v[i];
        }
    }
    if (!m) {
        return -1;
    }
    qsort(s, m, sizeof(s[0]), cmp_double);
    return m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
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

/* An argument vector built from formatted strings, kept in @buf. */
typedef struct Argv {
    char *v[48];
    int n;
    size_t used;
    char buf[3 * PATH_MAX];
} Argv;

static void argv_add(Argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void argv_add(Argv *a, const char *fmt, ...)
{
    size_t room = sizeof(a->buf) - a->used;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(a->buf + a->used, room, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= room ||
        a->n >= (int)ARRAY_SIZE(a->v) - 1) {
        aiob_fail("compare: a child's command line is too long");
    }
    a->v[a->n++] = a->buf + a->used;
    a->v[a->n] = NULL;
    a->used += (size_t)len + 1;
}

/* Adds @arg with a trailing "=QD" replaced by "=@qd". */
static void argv_add_qd(Argv *a, const char *arg, unsigned qd)
{
    size_t n = strlen(arg);

    if (n > 3 && strcmp(arg + n - 3, "=QD") == 0) {
        argv_add(a, "%.*s=%u", (int)(n - 3), arg, qd);
    } else {
        argv_add(a, "%s", arg);
    }
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
    Argv a = { .n = 0, .used = 0 };
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
    argv_add(&a, "%s", self);
    argv_add(&a, "io");
    argv_add(&a, "--file");
    argv_add(&a, "%s", path);
    argv_add(&a, "--size");
    argv_add(&a, "%llu", (unsigned long long)o->size);
    argv_add(&a, "--count");
    argv_add(&a, "1");
    argv_add(&a, "--direct");
    argv_add(&a, "0");
    argv_add(&a, "--quiet");
    ret = aiob_run(a.v, NULL, CMP_IO_TIMEOUT_S, false, &r);
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
/* The runs                                                            */

typedef struct IoWork {
    const char *rw;             /* randread, read */
    unsigned iodepth;
    bool polling;               /* also in the polling table */
} IoWork;

typedef enum { PROG_AIOLOOP, PROG_FIO, PROG_QEMU } Prog;

/* What a run configuration is for. */
typedef enum {
    ROLE_OURS,                  /* aioloop: the left side of every row */
    ROLE_OURS_POLL,             /* aioloop in an IOThread: polling table */
    ROLE_DEFAULTS,              /* a peer as installed: shown, not counted */
    ROLE_BEST,                  /* a candidate for the peer's best: the
                                 * best median of a peer is its row */
    ROLE_POLL,                  /* a peer's polling mode: polling table */
} Role;

enum { E_URING = 1, E_LAIO = 2, E_THREADS = 4 };

typedef struct IoCfg {
    Prog prog;
    Role role;
    unsigned engines;           /* E_* it applies to */
    bool full_only;             /* only with --full */
    bool hipri;                 /* only where the --hipri probe passed */
    const char *variant;        /* shown after the program and engine */
    const char *const *args;    /* extra options; "=QD" is the depth */
} IoCfg;

static const char *const aioloop_iothread[] = { "--iothread", NULL };
static const char *const no_args[] = { NULL };

/* fio libaio: batched submission and completion. --userspace_reap is
 * inert here: fio reaps from user space only when it need not wait
 * (iodepth_batch_complete_min=0), which the next set does. */
static const char *const fio_laio_batch[] = {
    "--iodepth_batch_submit=QD", "--iodepth_batch_complete_min=1",
    "--iodepth_batch_complete_max=QD", "--userspace_reap=1", NULL,
};
static const char *const fio_laio_reap[] = {
    "--iodepth_batch_submit=QD", "--iodepth_batch_complete_min=0",
    "--iodepth_batch_complete_max=QD", "--userspace_reap=1", NULL,
};
static const char *const fio_uring_batch[] = {
    "--registerfiles=1", "--fixedbufs=1", "--iodepth_batch_submit=QD",
    "--iodepth_batch_complete_min=1", "--iodepth_batch_complete_max=QD",
    NULL,
};
/* IOSQE_ASYNC on every request: straight to io_uring's workers, without
 * a non-blocking attempt first, which fails on a file that cannot read
 * without blocking (tmpfs) and costs a retry. */
static const char *const fio_uring_async[] = {
    "--registerfiles=1", "--fixedbufs=1", "--iodepth_batch_submit=QD",
    "--iodepth_batch_complete_min=1", "--iodepth_batch_complete_max=QD",
    "--force_async=1", NULL,
};
static const char *const fio_uring_nowait[] = {
    "--registerfiles=1", "--fixedbufs=1", "--iodepth_batch_submit=QD",
    "--iodepth_batch_complete_min=0", "--iodepth_batch_complete_max=QD",
    NULL,
};
static const char *const fio_uring_hipri[] = {
    "--registerfiles=1", "--fixedbufs=1", "--hipri=1",
    "--iodepth_batch_submit=QD", "--iodepth_batch_complete_min=0",
    "--iodepth_batch_complete_max=QD", NULL,
};
static const char *const fio_uring_sqpoll[] = {
    "--registerfiles=1", "--fixedbufs=1", "--sqthread_poll=1",
    "--iodepth_batch_submit=QD", "--iodepth_batch_complete_min=1",
    "--iodepth_batch_complete_max=QD", NULL,
};

static const IoCfg io_cfgs[] = {
    { PROG_AIOLOOP, ROLE_OURS, E_URING | E_LAIO | E_THREADS, false, false,
      "", no_args },
    { PROG_AIOLOOP, ROLE_OURS_POLL, E_URING, false, false, "IOThread",
      aioloop_iothread },
    { PROG_FIO, ROLE_DEFAULTS, E_URING | E_LAIO, true, false, "defaults",
      no_args },
    { PROG_FIO, ROLE_BEST, E_LAIO, false, false, "batch", fio_laio_batch },
    { PROG_FIO, ROLE_BEST, E_LAIO, false, false, "ureap", fio_laio_reap },
    { PROG_FIO, ROLE_BEST, E_URING, false, false, "batch", fio_uring_batch },
    { PROG_FIO, ROLE_BEST, E_URING, false, false, "async",
      fio_uring_async },
    { PROG_FIO, ROLE_BEST, E_URING, true, false, "nowait",
      fio_uring_nowait },
    { PROG_FIO, ROLE_BEST, E_URING, false, true, "hipri", fio_uring_hipri },
    { PROG_FIO, ROLE_POLL, E_URING, false, false, "sqpoll",
      fio_uring_sqpoll },
    { PROG_QEMU, ROLE_BEST, E_URING | E_LAIO | E_THREADS, false, false, "",
      no_args },
};

#define NCFG ARRAY_SIZE(io_cfgs)

static const char *const prog_names[] = {
    "aioloop", "fio", "qemu-img bench",
};

typedef struct IoJob {
    const CmpOptions *o;
    const char *self;           /* our own executable */
    const char *file;
    bool direct;
    const char *engine;         /* our name: io_uring, linux-aio, threads */
    unsigned engine_bit;        /* E_* */
    const IoWork *w;
} IoJob;

typedef struct IoResult {
    double iops;                /* < 0: failed */
    double cpu_ns;              /* per I/O, start-up removed; < 0: none */
    uint64_t ios;
    char why[160];              /* why it failed */
} IoResult;

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

/* "fio libaio batch", "qemu-img bench native", "aioloop IOThread". */
static void cfg_name(const IoCfg *c, const IoJob *j, char *buf, size_t len)
{
    const char *eng = c->prog == PROG_FIO ? fio_engine(j->engine) :
                      c->prog == PROG_QEMU ? qemu_aio(j->engine) : "";

    snprintf(buf, len, "%s%s%s%s%s", prog_names[c->prog], eng[0] ? " " : "",
             eng, c->variant[0] ? " " : "", c->variant);
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

/* aioloop-bench io; @count > 0: a run of @count I/Os (else runtime). */
static void run_aioloop(const IoJob *j, const IoCfg *c, uint64_t count,
                        double *cpu, IoResult *res)
{
    char eng[32], req[32], fb[128];
    Argv a = { .n = 0, .used = 0 };
    AiobRun r;

    argv_add(&a, "%s", j->self);
    argv_add(&a, "io");
    argv_add(&a, "--engine");
    argv_add(&a, "%s", j->engine);
    argv_add(&a, "--rw");
    argv_add(&a, "%s", j->w->rw);
    argv_add(&a, "--iodepth");
    argv_add(&a, "%u", j->w->iodepth);
    argv_add(&a, "--size");
    argv_add(&a, "%llu", (unsigned long long)j->o->size);
    argv_add(&a, "--direct");
    argv_add(&a, "%d", j->direct);
    argv_add(&a, "--file");
    argv_add(&a, "%s", j->file);
    if (count) {
        argv_add(&a, "--count");
        argv_add(&a, "%llu", (unsigned long long)count);
    } else {
        argv_add(&a, "--runtime");
        argv_add(&a, "%u", j->o->runtime_s);
    }
    for (const char *const *p = c->args; *p; p++) {
        argv_add_qd(&a, *p, j->w->iodepth);
    }
    argv_add(&a, "--json");
    argv_add(&a, "--quiet");
    res->iops = -1;
    if (!run_child(a.v, &r, res)) {
        aiob_run_free(&r);
        return;
    }
    *cpu = r.cpu_s;
    json_string(r.out, "engine", eng, sizeof(eng));
    json_string(r.out, "engine_requested", req, sizeof(req));
    if (strcmp(eng, req) != 0) {
        json_string(r.out, "engine_fallback", fb, sizeof(fb));
        snprintf(res->why, sizeof(res->why), "%.24s unavailable (%.120s)",
                 req, fb);
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

/* fio; @count > 0: a run of @count I/Os (else runtime). */
static void run_fio(const IoJob *j, const IoCfg *c, uint64_t count,
                    double *cpu, IoResult *res)
{
    Argv a = { .n = 0, .used = 0 };
    double rkb, wkb, riops, wiops;
    AiobRun r;

    argv_add(&a, "fio");
    argv_add(&a, "--name=aioloop-compare");
    argv_add(&a, "--filename=%s", j->file);
    argv_add(&a, "--size=%llu", (unsigned long long)j->o->size);
    argv_add(&a, "--direct=%d", j->direct);
    argv_add(&a, "--rw=%s", j->w->rw);
    argv_add(&a, "--bs=4096");
    argv_add(&a, "--iodepth=%u", j->w->iodepth);
    argv_add(&a, "--ioengine=%s", fio_engine(j->engine));
    argv_add(&a, "--norandommap");
    argv_add(&a, "--group_reporting");
    argv_add(&a, "--output-format=terse");
    argv_add(&a, "--terse-version=3");
    for (const char *const *p = c->args; *p; p++) {
        argv_add_qd(&a, *p, j->w->iodepth);
    }
    if (count) {
        argv_add(&a, "--number_ios=%llu", (unsigned long long)count);
    } else {
        argv_add(&a, "--runtime=%u", j->o->runtime_s);
        argv_add(&a, "--time_based");
    }
    res->iops = -1;
    if (!run_child(a.v, &r, res)) {
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
    Argv a = { .n = 0, .used = 0 };
    const char *p;
    double secs;
    AiobRun r;

    argv_add(&a, "qemu-img");
    argv_add(&a, "bench");
    argv_add(&a, "-c");
    argv_add(&a, "%llu", (unsigned long long)count);
    argv_add(&a, "-d");
    argv_add(&a, "%u", j->w->iodepth);
    argv_add(&a, "-s");
    argv_add(&a, "4096");
    argv_add(&a, "-t");
    argv_add(&a, "%s", j->direct ? "none" : "writeback");
    argv_add(&a, "-i");
    argv_add(&a, "%s", qemu_aio(j->engine));
    argv_add(&a, "-f");
    argv_add(&a, "raw");
    argv_add(&a, "%s", j->file);
    res->iops = -1;
    if (!run_child(a.v, &r, res)) {
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

/* Runs @c once; @count > 0: that many I/Os (start-up runs, qemu-img). */
static void run_cfg(const IoJob *j, const IoCfg *c, uint64_t count,
                    double *cpu, IoResult *res)
{
    switch (c->prog) {
    case PROG_AIOLOOP:
        run_aioloop(j, c, count, cpu, res);
        break;
    case PROG_FIO:
        run_fio(j, c, count, cpu, res);
        break;
    case PROG_QEMU:
        run_qemu(j, count, cpu, res);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* The section                                                         */

static const IoWork quick_work[] = {
    { "randread", 32, true },
    { "read", 32, false },
};

static const IoWork full_work[] = {
    { "randread", 1, true },
    { "randread", 32, true },
    { "randread", 128, false },
    { "read", 1, true },
    { "read", 32, true },
    { "read", 128, false },
};

/* What the section knows about each configuration. */
typedef struct CfgState {
    bool available;             /* the program is installed */
    char why[160];              /* why not, or why a probe failed */
    double startup_cpu;         /* of a one-request run; < 0: unknown */
} CfgState;

typedef struct IoSection {
    const CmpOptions *o;
    CfgState cs[NCFG];
    bool hipri_ok;              /* io_uring --hipri works on the file */
    char hipri_why[160];
    bool hipri_probed;
    unsigned failures;          /* aioloop's own runs that failed */
    AiobTable main, poll;
} IoSection;

/* Whether @c runs for @j at all. */
static bool cfg_applies(const IoSection *s, const IoCfg *c, const IoJob *j)
{
    if (!(c->engines & j->engine_bit) || (c->full_only && !s->o->full)) {
        return false;
    }
    if (c->hipri && !s->hipri_ok) {
        return false;
    }
    if ((c->role == ROLE_OURS_POLL || c->role == ROLE_POLL) &&
        !j->w->polling) {
        return false;
    }
    if (c->prog == PROG_QEMU && strncmp(j->w->rw, "rand", 4) == 0) {
        return false;                   /* qemu-img has no random mode */
    }
    return true;
}

/* The measurements of one workload: per configuration and repetition. */
typedef struct Runs {
    bool ran[NCFG];
    double iops[NCFG][CMP_MAX_REPEAT];  /* < 0: failed */
    double cpu[NCFG][CMP_MAX_REPEAT];   /* ns per I/O; < 0: unknown */
    char why[NCFG][160];
} Runs;

/* The ratio's spread over the repetitions, ours / theirs or theirs /
 * ours (@lower: the values are costs), paired by repetition. */
static AiobRowExtra spread(const double *ours, const double *theirs,
                           unsigned n, bool lower, bool reference)
{
    AiobRowExtra x = { 0, 0, reference };

    for (unsigned i = 0; i < n; i++) {
        double r;

        if (ours[i] <= 0 || theirs[i] <= 0) {
            continue;
        }
        r = lower ? theirs[i] / ours[i] : ours[i] / theirs[i];
        if (x.ratio_lo == 0 || r < x.ratio_lo) {
            x.ratio_lo = r;
        }
        if (r > x.ratio_hi) {
            x.ratio_hi = r;
        }
    }
    return x;
}

/* The IOPS and CPU/IO rows of @ours against @theirs into @t. */
static void add_rows(IoSection *s, AiobTable *t, const IoJob *j,
                     const Runs *runs, size_t ours, size_t theirs,
                     const char *peer, const char *peer_why, bool reference)
{
    unsigned n = s->o->repeat;
    double oi = median(runs->iops[ours], n), oc = median(runs->cpu[ours], n);
    double ti = median(runs->iops[theirs], n);
    double tc = median(runs->cpu[theirs], n);
    const char *why = peer_why;
    char figure[64], label[64];
    AiobRowExtra x;

    if (oi < 0) {
        why = runs->why[ours][0] ? runs->why[ours] : "aioloop failed";
    } else if (!why && ti < 0) {
        why = runs->why[theirs][0] ? runs->why[theirs] : "failed";
    }
    snprintf(label, sizeof(label), "%s", peer);
    snprintf(figure, sizeof(figure), "%s QD%u %s: IOPS", j->w->rw,
             j->w->iodepth, j->engine);
    x = spread(runs->iops[ours], runs->iops[theirs], n, false, reference);
    aiob_table_add_ex(t, figure, oi, label, why ? -1 : ti, "IOPS",
                      AIOB_HIGHER_IS_BETTER, why, &x);
    snprintf(figure, sizeof(figure), "%s QD%u %s: CPU/IO", j->w->rw,
             j->w->iodepth, j->engine);
    x = spread(runs->cpu[ours], runs->cpu[theirs], n, true, reference);
    aiob_table_add_ex(t, figure, oc, label, why ? -1 : tc, "ns/io",
                      AIOB_LOWER_IS_BETTER, why, &x);
}

/* Probes whether fio's io_uring --hipri works on the file (it needs a
 * file the kernel can poll for completions; tmpfs cannot). */
static void probe_hipri(IoSection *s, const IoJob *j)
{
    static const IoWork probe_work = { "randread", 4, false };
    IoJob pj = *j;
    IoResult res = { .iops = -1 };
    double c = 0;

    s->hipri_probed = true;
    pj.w = &probe_work;
    for (size_t i = 0; i < NCFG; i++) {
        if (io_cfgs[i].hipri && s->cs[i].available) {
            run_fio(&pj, &io_cfgs[i], 64, &c, &res);
            s->hipri_ok = res.iops >= 0;
            snprintf(s->hipri_why, sizeof(s->hipri_why), "%s", res.why);
            return;
        }
    }
}

/* Start-up CPU of each configuration for @j's engine: one request. */
static void measure_startup(IoSection *s, const IoJob *j)
{
    for (size_t i = 0; i < NCFG; i++) {
        const IoCfg *c = &io_cfgs[i];
        IoResult res = { .iops = -1 };
        double cpu = -1;

        s->cs[i].startup_cpu = -1;
        if (!s->cs[i].available || !(c->engines & j->engine_bit) ||
            (c->full_only && !s->o->full) || (c->hipri && !s->hipri_ok)) {
            continue;
        }
        run_cfg(j, c, 1, &cpu, &res);
        if (res.iops >= 0) {
            s->cs[i].startup_cpu = cpu;
        }
    }
}

/* One engine and workload: every configuration, interleaved, o->repeat
 * times; then the rows. */
static void io_compare(IoSection *s, const IoJob *j)
{
    const CmpOptions *o = s->o;
    Runs *runs = calloc(1, sizeof(*runs));
    size_t ours = 0, ours_poll = 0, best = NCFG;
    double guess = 0, best_iops = -1;
    bool peers = false, fio_best_done = false;
    char name[64];

    if (!runs) {
        aiob_fail("compare: out of memory");
    }
    for (size_t i = 0; i < NCFG; i++) {
        runs->ran[i] = cfg_applies(s, &io_cfgs[i], j);
        peers |= runs->ran[i] && io_cfgs[i].prog != PROG_AIOLOOP;
        if (io_cfgs[i].role == ROLE_OURS) {
            ours = i;
        } else if (io_cfgs[i].role == ROLE_OURS_POLL) {
            ours_poll = i;
        }
    }
    if (!peers) {
        free(runs);
        return;                 /* no peer for this one: no row */
    }

    for (unsigned rep = 0; rep < o->repeat; rep++) {
        for (size_t i = 0; i < NCFG; i++) {
            const IoCfg *c = &io_cfgs[i];
            IoResult res = { .iops = -1 };
            double cpu = 0;

            runs->iops[i][rep] = runs->cpu[i][rep] = -1;
            if (!runs->ran[i] || !s->cs[i].available) {
                continue;
            }
            if (c->prog == PROG_QEMU) {
                /* qemu-img counts requests, not seconds: ask for about
                 * runtime_s worth at the rate aioloop just reached. */
                uint64_t count = (uint64_t)(guess > 0 ? guess : 20000) *
                                 o->runtime_s;

                run_cfg(j, c, count < 1000 ? 1000 : count, &cpu, &res);
            } else {
                run_cfg(j, c, 0, &cpu, &res);
            }
            if (c->role == ROLE_OURS && res.iops > 0) {
                guess = res.iops;
            }
            if (res.iops < 0) {
                snprintf(runs->why[i], sizeof(runs->why[i]), "%s", res.why);
                if (c->prog == PROG_AIOLOOP &&
                    !strstr(res.why, "unavailable")) {
                    aiob_note("compare: %s", res.why);
                    s->failures++;
                }
                continue;
            }
            runs->iops[i][rep] = res.iops;
            if (s->cs[i].startup_cpu >= 0 && res.ios > 0) {
                double net = cpu - s->cs[i].startup_cpu;

                runs->cpu[i][rep] = (net > 0 ? net : 0) * 1e9 /
                                    (double)res.ios;
            }
            if (o->verbose) {
                cfg_name(c, j, name, sizeof(name));
                printf("# %s %s qd%u, %s, run %u: %.0f IOPS, %.0f ns CPU/io\n",
                       j->engine, j->w->rw, j->w->iodepth, name, rep + 1,
                       res.iops, runs->cpu[i][rep]);
            }
        }
    }

    /* The main table: fio's defaults (reference), fio at its best (the
     * candidate with the best median IOPS), qemu-img. */
    for (size_t i = 0; i < NCFG; i++) {
        const IoCfg *c = &io_cfgs[i];
        double m;

        if (!runs->ran[i] || c->role != ROLE_BEST || c->prog != PROG_FIO ||
            !s->cs[i].available) {
            continue;
        }
        m = median(runs->iops[i], o->repeat);
        if (best == NCFG || m > best_iops) {
            best = i;
            best_iops = m;
        }
    }
    for (size_t i = 0; i < NCFG; i++) {
        const IoCfg *c = &io_cfgs[i];
        const char *why = s->cs[i].available ? NULL : s->cs[i].why;

        if (!runs->ran[i] || c->role == ROLE_OURS ||
            c->role == ROLE_OURS_POLL) {
            continue;
        }
        if (c->prog == PROG_FIO && c->role == ROLE_BEST) {
            /* One row for fio at its best: the winner's, or, without
             * fio, the first candidate's saying so. */
            if (fio_best_done || (s->cs[i].available && i != best)) {
                continue;
            }
            fio_best_done = true;
        }
        if (s->cs[i].available) {
            cfg_name(c, j, name, sizeof(name));
        } else {
            snprintf(name, sizeof(name), "%s%s%s", prog_names[c->prog],
                     c->prog == PROG_FIO ? " " : "",
                     c->prog == PROG_FIO ? fio_engine(j->engine) : "");
        }
        if (c->role == ROLE_POLL) {
            add_rows(s, &s->poll, j, runs, ours_poll, i, name, why, false);
        } else {
            add_rows(s, &s->main, j, runs, ours, i, name, why,
                     c->role == ROLE_DEFAULTS);
        }
    }
    free(runs);
}

/* Footnotes: the options of every peer configuration that ran. */
static void footnotes(IoSection *s, unsigned engines_run)
{
    char opts[512];

    aiob_table_footnote(&s->main, "aioloop: aioloop-bench io (completion "
                        "callbacks resubmit; no batching option)");
    for (size_t i = 0; i < NCFG; i++) {
        const IoCfg *c = &io_cfgs[i];
        AiobTable *t = c->role == ROLE_POLL || c->role == ROLE_OURS_POLL
                       ? &s->poll : &s->main;
        size_t used = 0;
        const char *eng;

        if (!(c->engines & engines_run) || (c->full_only && !s->o->full) ||
            c->role == ROLE_OURS || !s->cs[i].available) {
            continue;
        }
        if (c->hipri && !s->hipri_ok) {
            if (s->hipri_probed) {
                char line[128];

                aiob_table_footnote(t, "fio io_uring hipri: not run, the "
                                    "probe failed (%s)",
                                    first_line(s->hipri_why, line,
                                               sizeof(line)));
            }
            continue;
        }
        opts[0] = '\0';
        for (const char *const *p = c->args; *p; p++) {
            used += (size_t)snprintf(opts + used, sizeof(opts) - used,
                                     "%s%s", used ? " " : "", *p);
            if (used >= sizeof(opts)) {
                break;
            }
        }
        switch (c->prog) {
        case PROG_AIOLOOP:
            aiob_table_footnote(t, "aioloop IOThread: aioloop-bench io %s "
                                "(the loop in an IOThread, adaptive polling "
                                "up to 32768 ns)", opts);
            break;
        case PROG_FIO:
            eng = c->engines & E_URING ? "io_uring" : "libaio";
            if (c->role == ROLE_DEFAULTS) {
                aiob_table_footnote(t, "fio defaults: --ioengine=io_uring "
                                    "or libaio and nothing else (shown for "
                                    "reference, not counted)");
            } else {
                aiob_table_footnote(t, "fio %s %s: %s", eng, c->variant,
                                    opts);
            }
            break;
        case PROG_QEMU:
            aiob_table_footnote(t, "qemu-img bench: -t none -f raw -i "
                                "io_uring|native|threads (it has no batching "
                                "or polling options: its fastest flags)");
            break;
        }
    }
    aiob_table_footnote(&s->main, "fio rows: the candidate with the best "
                        "median IOPS; every fio run also has --direct=1 "
                        "--bs=4096 --iodepth=QD --norandommap; QD = the "
                        "row's queue depth");
}

unsigned aiob_compare_io(const CmpOptions *o, const char *self)
{
    const IoWork *work = o->full ? full_work : quick_work;
    size_t nwork = o->full ? ARRAY_SIZE(full_work) : ARRAY_SIZE(quick_work);
    IoSection *s = calloc(1, sizeof(*s));
    char where[PATH_MAX + 64], title[256];
    unsigned engines_run = 0, failures;
    bool have_fio = aiob_which("fio"), have_qemu = aiob_which("qemu-img");
    const char *file;
    bool direct = false;

    if (!s) {
        aiob_fail("compare: out of memory");
    }
    s->o = o;
    for (size_t i = 0; i < NCFG; i++) {
        CfgState *cs = &s->cs[i];

        switch (io_cfgs[i].prog) {
        case PROG_AIOLOOP:
            cs->available = true;
            break;
        case PROG_FIO:
            cs->available = have_fio;
            snprintf(cs->why, sizeof(cs->why), "skipped (install fio)");
            break;
        case PROG_QEMU:
            cs->available = have_qemu;
            snprintf(cs->why, sizeof(cs->why),
                     "skipped (install qemu-utils)");
            break;
        }
    }

    file = prepare_file(o, self, &direct, where, sizeof(where));
    if (!file) {
        free(s);
        return 1;
    }
    snprintf(title, sizeof(title), "block I/O: 4 KiB, %s, %u s per run, "
             "median of %u interleaved runs", direct ? "O_DIRECT" :
             "buffered (no O_DIRECT here)", o->runtime_s, o->repeat);
    aiob_table_init(&s->main, title);
    snprintf(s->main.note, sizeof(s->main.note), "file %.320s, %llu MiB; "
             "peers at their best (options below); CPU/IO = CPU time of the "
             "whole process (wait4) minus its start-up, per I/O; spread = "
             "lowest-highest ratio of the runs", where,
             (unsigned long long)(o->size >> 20));
    snprintf(title, sizeof(title), "block I/O, polling modes: aioloop in an "
             "IOThread vs fio io_uring --sqthread_poll (same file, %u s per "
             "run, median of %u)", o->runtime_s, o->repeat);
    aiob_table_init(&s->poll, title);

    for (size_t e = 0; e < AIOB_CMP_NENGINES; e++) {
        IoJob j = { .o = o, .self = self, .file = file, .direct = direct,
                    .engine = aiob_cmp_engines[e], .engine_bit = 1u << e,
                    .w = &work[0] };

        if (!list_has(o->engines, aiob_cmp_engines[e])) {
            continue;
        }
        engines_run |= j.engine_bit;
        if (j.engine_bit == E_URING && have_fio) {
            probe_hipri(s, &j);
        }
        measure_startup(s, &j);
        for (size_t w = 0; w < nwork; w++) {
            j.w = &work[w];
            io_compare(s, &j);
        }
    }
    footnotes(s, engines_run);
    aiob_table_print(stdout, &s->main);
    if (s->poll.n) {
        aiob_table_print(stdout, &s->poll);
    }
    aiob_table_free(&s->main);
    aiob_table_free(&s->poll);
    remove_scratch();
    scratch[0] = '\0';
    failures = s->failures;
    free(s);
    return failures;
}
