/*
 * micro.c - "aioloop-bench micro": the microbenchmarks in one run.
 *
 * The questions are answered by separate programs (bench/), one per
 * question, because each links a different set of peer libraries and
 * must start from a clean process (thread pools, timer slack, CPU
 * affinity). This command finds them, runs them one after the other
 * (never concurrently: they measure the machine) and prints their
 * "name: value unit" lines.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "micro.h"
#include "options.h"
#include "spawn.h"

#ifndef AIOB_LIBEXECDIR
#define AIOB_LIBEXECDIR "/usr/local/libexec/aioloop"
#endif

#define MICRO_TIMEOUT_S 300

typedef struct MicroProgram {
    const char *name;           /* short name for --only */
    const char *program;        /* file name */
} MicroProgram;

static const MicroProgram micro_programs[] = {
    { "bh", "bench-bh" },
    { "wake", "bench-wake" },
    { "idle-fds", "bench-idle-fds" },
    { "timers", "bench-timers" },
    { "thread-pool", "bench-thread-pool" },
    { "coroutine", "bench-coroutine" },
};

const char *aiob_micro_names(void)
{
    return "bh, wake, idle-fds, timers, thread-pool, coroutine";
}

static bool has_programs(const char *dir)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, micro_programs[0].program);
    return access(path, X_OK) == 0;
}

bool aiob_bench_dir(char *buf, size_t len)
{
    const char *env = getenv("AIOLOOP_BENCH_DIR");
    char self[PATH_MAX], tree[PATH_MAX];

    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return has_programs(buf);
    }
    /* In a build tree this program is BUILD/tools/aioloop-bench/. */
    tree[0] = '\0';
    if (aiob_self_exe(self, sizeof(self))) {
        snprintf(tree, sizeof(tree), "%s/../../bench", dirname(self));
        if (has_programs(tree)) {
            snprintf(buf, len, "%s", tree);
            return true;
        }
    }
    if (has_programs(AIOB_LIBEXECDIR)) {
        snprintf(buf, len, "%s", AIOB_LIBEXECDIR);
        return true;
    }
    snprintf(buf, len, "%s%s%s", tree, tree[0] ? " or " : "",
             AIOB_LIBEXECDIR);
    return false;
}

static bool wanted(const char *only, const char *name)
{
    size_t n = strlen(name);

    while (only && *only) {
        size_t m = strcspn(only, ",");

        if (m == n && strncmp(only, name, n) == 0) {
            return true;
        }
        only += m;
        if (*only == ',') {
            only++;
        }
    }
    return !only;
}

/* Copies the lines of @text to stdout: figures, and notes if @notes. */
static void print_lines(const char *text, bool notes)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);

        if (n > 0 && (notes || text[0] != '#')) {
            printf("%.*s\n", (int)n, text);
        }
        text += n + (nl ? 1 : 0);
    }
    fflush(stdout);
}

int aiob_micro_run(const char *only, bool quick, bool print, bool notes,
                   AiobFigures *figs)
{
    static char quick_env[] = "AIOLOOP_BENCH_QUICK=1";
    char *env[] = { quick ? quick_env : NULL, NULL };
    char dir[PATH_MAX], path[PATH_MAX + 64];
    int failed = 0;

    if (!aiob_bench_dir(dir, sizeof(dir))) {
        aiob_note("micro: the benchmark programs are not in %s (build with "
                  "-Dbench=true, or set AIOLOOP_BENCH_DIR)", dir);
        return 1;
    }
    for (size_t i = 0; i < ARRAY_SIZE(micro_programs); i++) {
        const MicroProgram *m = &micro_programs[i];
        char *argv[2];
        AiobRun r;
        int ret;

        if (!wanted(only, m->name)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, m->program);
        argv[0] = path;
        argv[1] = NULL;
        ret = aiob_run(argv, env, MICRO_TIMEOUT_S, false, &r);
        if (ret < 0 || r.status != 0) {
            aiob_note("micro: %s %s%s", m->program,
                      ret < 0 ? "could not be started" :
                      r.timed_out ? "timed out" : "failed",
                      r.err && r.err[0] ? ":" : "");
            if (r.err && r.err[0]) {
                fputs(r.err, stderr);
            }
            failed++;
        }
        if (r.out) {
            if (print) {
                print_lines(r.out, notes);
            }
            aiob_figures_parse(figs, r.out);
        }
        aiob_run_free(&r);
    }
    return failed;
}

/* ------------------------------------------------------------------ */
/* The command                                                         */

static void micro_help(FILE *f)
{
    fprintf(f,
"usage: " AIOB_NAME " micro [--quick] [--only LIST] [--notes]\n"
"\n"
"Runs the microbenchmark programs one after the other and prints their\n"
"figures, one \"name: value unit\" line each, aioloop's and those of the\n"
"peer event loops the programs were built against (a peer missing at\n"
"build time prints \"name: skipped (install PACKAGE)\").\n"
"\n"
"Options:\n"
"  --quick        shorter batches (15 ms instead of 50 ms): about half\n"
"                 the time, noisier figures\n"
"  --only LIST    a comma-separated subset of: %s\n"
"  --notes        also print the programs' '#' notes (set-up, pinning)\n"
"  -h, --help     this text\n"
"\n"
"The programs are looked up in $AIOLOOP_BENCH_DIR, then the build tree\n"
"(BUILD/bench), then " AIOB_LIBEXECDIR ".\n"
"Exit status: 0 success, 1 a program failed, 2 bad options.\n",
            aiob_micro_names());
}

enum { OPT_QUICK = 256, OPT_ONLY, OPT_NOTES };

static const struct option micro_options[] = {
    { "quick", no_argument, NULL, OPT_QUICK },
    { "only", required_argument, NULL, OPT_ONLY },
    { "notes", no_argument, NULL, OPT_NOTES },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

void aiob_micro_check_names(const char *list)
{
    while (*list) {
        size_t n = strcspn(list, ",");
        bool found = false;

        for (size_t i = 0; i < ARRAY_SIZE(micro_programs); i++) {
            if (strlen(micro_programs[i].name) == n &&
                strncmp(micro_programs[i].name, list, n) == 0) {
                found = true;
            }
        }
        if (!found) {
            aiob_usage_error("--only: unknown benchmark '%.*s' (%s)", (int)n,
                             list, aiob_micro_names());
        }
        list += n;
        if (*list == ',') {
            list++;
        }
    }
}

int aiob_cmd_micro(int argc, char **argv)
{
    const char *only = NULL;
    bool quick = false, notes = false;
    AiobFigures figs = { 0 };
    int c, failed;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", micro_options, NULL)) != -1) {
        switch (c) {
        case OPT_QUICK:
            quick = true;
            break;
        case OPT_ONLY:
            aiob_micro_check_names(optarg);
            only = optarg;
            break;
        case OPT_NOTES:
            notes = true;
            break;
        case 'h':
            micro_help(stdout);
            exit(0);
        case ':':
            aiob_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            aiob_usage_error("unknown option '%s' (see " AIOB_NAME
                             " micro --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        aiob_usage_error("unexpected argument '%s'", argv[optind]);
    }
    failed = aiob_micro_run(only, quick, true, notes, &figs);
    aiob_figures_free(&figs);
    return failed ? AIOB_EXIT_FAIL : 0;
}
