/*
 * commands.h - the subcommands of aioloop-bench. Each takes the
 * arguments from its own name on (argv[0] is "io", ...) and returns the
 * process exit status.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_COMMANDS_H
#define AIOB_COMMANDS_H

/* aiob_cmd_io - block I/O on one file (io.c). */
int aiob_cmd_io(int argc, char **argv);

/* aiob_cmd_micro - the microbenchmark programs in one run (micro.c). */
int aiob_cmd_micro(int argc, char **argv);

/* aiob_cmd_compare - aioloop beside its peers, as tables (compare.c).
 * With no command at all, main() runs "compare --quick". */
int aiob_cmd_compare(int argc, char **argv);

#endif /* AIOB_COMMANDS_H */
