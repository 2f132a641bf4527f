/*
 * aioloop-bench - measuring aioloop, one subcommand per kind of question.
 *
 *   aioloop-bench                  compare --quick: what "make bench" shows
 *   aioloop-bench io [options]     block I/O on one file (io.c)
 *   aioloop-bench micro [options]  the microbenchmarks in one run (micro.c)
 *   aioloop-bench compare [opts]   aioloop beside its peers (compare.c)
 *
 * main() only dispatches: each subcommand parses its own options and
 * returns the exit status (0 success, 1 the run failed, 2 bad usage).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include <aioloop/config.h>

#include "commands.h"
#include "options.h"

typedef struct AiobCommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} AiobCommand;

static const AiobCommand commands[] = {
    { "io", aiob_cmd_io,
      "block I/O on one file through the aioloop block backends "
      "(fio-like)" },
    { "micro", aiob_cmd_micro,
      "the microbenchmarks (BHs, wake-ups, timers, thread pool, "
      "coroutines)" },
    { "compare", aiob_cmd_compare,
      "aioloop beside fio, qemu-img, libuv, libevent, libev, GLib" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " AIOB_NAME " [COMMAND [options]]\n\n"
            "With no command: compare --quick, a comparison with the peers "
            "in about a minute.\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\n" AIOB_NAME " COMMAND --help describes a command's "
            "options.\n");
}

static const AiobCommand *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const AiobCommand *cmd;
    const char *name = argc > 1 ? argv[1] : NULL;

    if (!name) {
        char *quick[] = { (char *)"compare", (char *)"--quick", NULL };

        return aiob_cmd_compare(2, quick);
    }
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 ||
        strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) {
            /* "help io" is "io --help" */
            cmd = find_command(argv[2]);
            if (cmd) {
                char *sub[] = { argv[2], (char *)"--help", NULL };

                return cmd->run(2, sub);
            }
            aiob_usage_error("unknown command '%s' (see " AIOB_NAME
                             " --help)", argv[2]);
        }
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf(AIOB_NAME " %s\n", AIOLOOP_VERSION);
        return 0;
    }
    cmd = find_command(name);
    if (!cmd) {
        aiob_usage_error("unknown command '%s' (see " AIOB_NAME " --help)",
                         name);
    }
    return cmd->run(argc - 1, argv + 1);
}
