/*
 * compare.c - "aioloop-bench compare": aioloop beside its peers, one
 * table per question.
 *
 * Block I/O (compare-io.c): for each engine and workload the same file
 * is read by "aioloop-bench io" (this program, as a child), by fio with
 * the same engine, tuned as its documentation says (the best of several
 * documented tunings is shown, with its options), and by "qemu-img
 * bench" (sequential workloads only); the programs are interleaved and
 * each row shows medians and the spread of the ratio.
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
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <aioloop/config.h>

#include "commands.h"
#include "compare.h"
#include "micro.h"
#include "options.h"
#include "spawn.h"
#include "table.h"

/* aioloop's own runs that failed (not counting an engine the kernel
 * refused, which is reported as such): the exit status is 1 then. */
static unsigned cmp_failures;

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
"engine, at its best: the fastest of its documented tunings, named in\n"
"the row, options in the footnotes; its defaults too with --full, for\n"
"reference) and qemu-img bench (sequential only), per engine (io_uring,\n"
"linux-aio, threads); IOPS and CPU time per I/O, medians of interleaved\n"
"runs with the spread of the ratio; a second table sets aioloop in an\n"
"IOThread (adaptive polling) against fio io_uring --sqthread_poll.\n"
"Microbenchmarks: the programs of \"" AIOB_NAME " micro\", with libuv,\n"
"libevent, libev and GLib measured in the same processes.\n"
"\n"
"Options:\n"
"  --quick        short runs (1 s per I/O run, 15 ms batches): about\n"
"                 two minutes on 2 cores\n"
"  --full         more I/O workloads (randread and read at QD 1, 32 and\n"
"                 128), fio's defaults beside its tunings, 5 repetitions\n"
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
"                 (default 3; 5 with --full; at most %d)\n"
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

        for (size_t i = 0; i < AIOB_CMP_NENGINES; i++) {
            ok |= strlen(aiob_cmp_engines[i]) == n &&
                  strncmp(aiob_cmp_engines[i], list, n) == 0;
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
        o->repeat = o->full ? 5 : 3;
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
        cmp_failures += aiob_compare_io(&o, self);
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
