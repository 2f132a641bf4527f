/*
 * spawn.h - running another program and measuring it, for
 * "aioloop-bench micro" and "aioloop-bench compare".
 *
 * Every program of a comparison (aioloop-bench io itself, fio, qemu-img,
 * the benchmark programs) runs as a child process, so that one measure
 * of CPU time applies to all of them alike: the user + system time that
 * wait4() reports for the child, which covers all of its threads,
 * io_uring's io-wq workers included.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_SPAWN_H
#define AIOB_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct AiobRun {
    int status;         /* exit status; 128 + n if killed by signal n;
                         * -1 if the program could not be started */
    bool timed_out;     /* killed after the time limit */
    double cpu_s;       /* user + system seconds of the child */
    double wall_s;      /* from start to exit */
    char *out;          /* its standard output, NUL-terminated */
    size_t out_len;
    char *err;          /* its standard error, NUL-terminated */
} AiobRun;

/*
 * aiob_run - run @argv (argv[0] is looked up in PATH unless it contains
 * a '/') with the environment of this process plus @env (a NULL-
 * terminated list of "NAME=value" strings; may be NULL), capture its
 * standard output and error, and wait for it; after @timeout_s seconds
 * (0: none) it is killed with SIGKILL. When @echo_err is true, what it
 * writes to standard error is also copied to ours once it is done.
 *
 * Returns 0 when the program ran (whatever its status: see r->status
 * and r->timed_out), or -errno when it could not be started (no such
 * program: -ENOENT), in which case r->status is -1. Free @r with
 * aiob_run_free() in both cases.
 */
int aiob_run(char *const argv[], char *const env[], double timeout_s,
             bool echo_err, AiobRun *r);

/* aiob_run_free - release what aiob_run() captured. */
void aiob_run_free(AiobRun *r);

/* aiob_which - whether @name is an executable file in PATH. */
bool aiob_which(const char *name);

/* aiob_self_exe - the path of this program (/proc/self/exe) into @buf;
 * false if it cannot be read. */
bool aiob_self_exe(char *buf, size_t len);

#endif /* AIOB_SPAWN_H */
