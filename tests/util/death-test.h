/*
 * death-test.h - run a piece of code in a forked child and report how
 * the child ended, with its stderr captured. For checking that misuse
 * aborts (or that error_fatal exits) without taking the test down.
 *
 * The child disables core dumps, sends stderr into a pipe the parent
 * reads, runs fn(opaque) and, if fn returns, exits with status 0 through
 * _exit (no atexit handlers, so sanitizer leak checks do not run on a
 * child that merely survived).
 *
 * Fork only while the test has no other threads running.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TESTS_DEATH_TEST_H
#define AIOLOOP_TESTS_DEATH_TEST_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct DeathResult {
    int status;             /* as from waitpid() */
    char err[8192];         /* the child's stderr, NUL-terminated */
} DeathResult;

/* Returns false if the child could not be run at all. */
static inline bool death_run(void (*fn)(void *), void *opaque,
                             DeathResult *res)
{
    int fds[2];
    size_t used = 0;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    if (pipe(fds) < 0) {
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };

        setrlimit(RLIMIT_CORE, &no_core);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        fn(opaque);
        _exit(0);
    }
    close(fds[1]);
    for (;;) {
        char scratch[512];
        char *dst = used < sizeof(res->err) - 1 ? res->err + used : scratch;
        size_t room = used < sizeof(res->err) - 1 ?
                      sizeof(res->err) - 1 - used : sizeof(scratch);
        ssize_t n = read(fds[0], dst, room);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (dst != scratch) {
            used += (size_t)n;
        }
    }
    close(fds[0]);
    while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR) {
    }
    res->err[used] = '\0';
    return true;
}

/* Prints the child's stderr as TAP comments, one "#   child: " line per
 * line (a bare line would be unknown TAP output). */
static inline void death_print_err(const DeathResult *res)
{
    const char *line = res->err;

    while (*line) {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);

        printf("#   child: %.*s\n", len, line);
        line += len + (end ? 1 : 0);
    }
}

static inline bool died_of(const DeathResult *res, int sig)
{
    return WIFSIGNALED(res->status) && WTERMSIG(res->status) == sig;
}

static inline bool exited_with(const DeathResult *res, int code)
{
    return WIFEXITED(res->status) && WEXITSTATUS(res->status) == code;
}

#endif /* AIOLOOP_TESTS_DEATH_TEST_H */
