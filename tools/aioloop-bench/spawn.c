/*
 * spawn.c - run a child, capture its output, measure its CPU time.
 *
 * The child's standard output and error go to unlinked temporary files
 * (not pipes: a chatty child can never block on a full pipe while we
 * wait for it), read back once it has exited. We wait with wait4(),
 * which hands over the child's resource usage; a time limit is kept by
 * polling wait4(WNOHANG) with sleeps that grow from 1 ms to 20 ms, which
 * costs the measurement nothing (we use no CPU while the child runs)
 * and the wall clock at most 20 ms.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An unlinked temporary file for the child's output, or -1. */
static int capture_file(void)
{
    char path[] = "/tmp/aioloop-bench-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);

    if (fd >= 0) {
        unlink(path);
    }
    return fd;
}

/* The whole content of @fd (from offset 0), NUL-terminated. */
static char *slurp(int fd, size_t *len)
{
    struct stat st;
    size_t size = 0, cap;
    char *buf;
    ssize_t n;

    cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1
                                                 : 4096;
    buf = malloc(cap);
    if (!buf) {
        return NULL;
    }
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (size + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);

            if (!bigger) {
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + size, cap - size - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        size += (size_t)n;
    }
    buf[size] = '\0';
    if (len) {
        *len = size;
    }
    return buf;
}

int aiob_run(char *const argv[], char *const env[], double timeout_s,
             bool echo_err, AiobRun *r)
{
    int out_fd, err_fd, st = 0, ret = 0;
    double start, nap = 0.001;
    struct rusage ru;
    pid_t pid, w;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    out_fd = capture_file();
    err_fd = capture_file();
    if (out_fd < 0 || err_fd < 0) {
        ret = -errno;
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    start = now_s();
    pid = fork();
    if (pid < 0) {
        ret = -errno;
        goto out;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);

        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
        }
        dup2(out_fd, STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        for (size_t i = 0; env && env[i]; i++) {
            putenv(env[i]);
        }
        execvp(argv[0], argv);
        /* 127 and the errno for the parent, as a shell would. */
        dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    for (;;) {
        w = wait4(pid, &st, timeout_s > 0 ? WNOHANG : 0, &ru);
        if (w == pid) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            ret = -errno;
            goto out;
        }
        if (w == 0 && now_s() - start > timeout_s) {
            kill(pid, SIGKILL);
            r->timed_out = true;
            timeout_s = 0;              /* from now on, a blocking wait */
            continue;
        }
        if (w == 0) {
            struct timespec ts = { 0, (long)(nap * 1e9) };

            nanosleep(&ts, NULL);
            nap = nap * 2 > 0.02 ? 0.02 : nap * 2;
        }
    }
    r->wall_s = now_s() - start;
    r->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->out = slurp(out_fd, &r->out_len);
    r->err = slurp(err_fd, NULL);
    if (r->status == 127 && r->err && strncmp(r->err, "exec ", 5) == 0) {
        /* The child could not exec the program. */
        r->status = -1;
        ret = -ENOENT;
    }
    if (echo_err && r->err && r->err[0]) {
        fputs(r->err, stderr);
    }
out:
    if (out_fd >= 0) {
        close(out_fd);
    }
    if (err_fd >= 0) {
        close(err_fd);
    }
    return ret;
}

void aiob_run_free(AiobRun *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

bool aiob_which(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (strchr(name, '/')) {
        return access(name, X_OK) == 0;
    }
    if (!path) {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    while (*path) {
        size_t n = strcspn(path, ":");

        if (n > 0 && n + strlen(name) + 2 <= sizeof(buf)) {
            memcpy(buf, path, n);
            buf[n] = '/';
            strcpy(buf + n + 1, name);
            if (access(buf, X_OK) == 0) {
                return true;
            }
        }
        path += n;
        if (*path == ':') {
            path++;
        }
    }
    return false;
}

bool aiob_self_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);

    if (n <= 0 || (size_t)n >= len - 1) {
        return false;
    }
    buf[n] = '\0';
    return true;
}
