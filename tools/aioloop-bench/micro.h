/*
 * micro.h - the microbenchmark programs (bench/bench-*.c, installed in
 * LIBEXECDIR/aioloop), found and run by "aioloop-bench micro" and by the
 * micro section of "aioloop-bench compare".
 *
 * Each program answers one question and prints "name: value unit" lines
 * for aioloop and for the peer event loops it was built against (libuv,
 * libevent, libev, GLib; a peer missing at build time prints
 * "name: skipped (install ...)").
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_MICRO_H
#define AIOB_MICRO_H

#include <stdbool.h>
#include <stddef.h>

#include "figures.h"

/*
 * aiob_bench_dir - the directory holding the benchmark programs, into
 * @buf: $AIOLOOP_BENCH_DIR if set, else the build tree's bench/ when this
 * program runs from a build tree, else the installed LIBEXECDIR/aioloop.
 * Returns false (with the directories tried in @buf) if none holds them.
 */
bool aiob_bench_dir(char *buf, size_t len);

/*
 * aiob_micro_run - run the benchmark programs named in @only (a comma-
 * separated list of short names such as "bh,timers"; NULL: all), in
 * quick mode if @quick, adding their figures to @figs. With @print, their
 * figure lines (and, with @notes, their '#' notes) are copied to stdout
 * as they finish. Returns the number of programs that failed (or could
 * not be found), after printing why on stderr.
 */
int aiob_micro_run(const char *only, bool quick, bool print, bool notes,
                   AiobFigures *figs);

/* aiob_micro_check_names - exit with a usage error (status 2) unless
 * every name of the comma-separated @list is a program's short name. */
void aiob_micro_check_names(const char *list);

/* aiob_micro_names - the short names, comma-separated, for help texts. */
const char *aiob_micro_names(void);

#endif /* AIOB_MICRO_H */
