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

#endif /* AIOB_COMMANDS_H */
