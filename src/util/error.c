/*
 * error.c - the Error object and the errp conventions.
 *
 * Design
 * ------
 * An Error is a heap-allocated message plus the source location that
 * raised it. All the policy lives in one place, error_deliver(), which
 * decides what happens to a fresh Error given the caller's errp:
 *
 *   NULL          freed at once (the caller chose not to know);
 *   &error_abort  printed with its location, then abort() - for callers
 *                 that consider the failure a bug and want a core dump;
 *   &error_fatal  printed, then exit(1) - for top-level programs;
 *   otherwise     stored in *errp, which must have been NULL.
 *
 * error_abort and error_fatal are ordinary (always NULL) variables: only
 * their addresses matter, as markers no real Error ** can equal.
 *
 * Messages are formatted with vasprintf. Running out of memory while
 * building an error message leaves no sensible way to report the error,
 * so it aborts with a short fixed message instead.
 *
 * Every function preserves errno, so a caller may set an error and still
 * return -errno afterwards.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aioloop/error.h>

struct Error {
    char *msg;
    const char *src;            /* __FILE__ of the error_setg() call */
    const char *func;           /* __func__ of it */
    int line;
};

Error *error_abort;
Error *error_fatal;

static AIOLOOP_NORETURN void error_oom(void)
{
    static const char msg[] = "aioloop: out of memory while reporting an error\n";

    /* No stdio: it may want memory too. */
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more we can do */
    }
    abort();
}

/* Prints one complete line on stderr in a single call, so that lines of
 * different threads do not interleave. */
static void print_line(const char *prefix, const char *msg)
{
    fprintf(stderr, "aioloop: %s%s\n", prefix, msg);
}

static void error_deliver(Error **errp, Error *err)
{
    if (errp == &error_abort) {
        fprintf(stderr, "aioloop: unexpected error in %s() at %s:%d:\n"
                "aioloop: %s\n", err->func, err->src, err->line, err->msg);
        abort();
    }
    if (errp == &error_fatal) {
        print_line("", err->msg);
        error_free(err);    /* keep leak checkers quiet at exit */
        exit(1);
    }
    if (errp == NULL) {
        error_free(err);
        return;
    }
    if (*errp != NULL) {
        fprintf(stderr, "aioloop: %s:%d: %s(): error set twice: \"%s\" "
                "while \"%s\" was pending\n", err->src, err->line, err->func,
                err->msg, (*errp)->msg);
        abort();
    }
    *errp = err;
}

static AIOLOOP_PRINTF(7, 0)
void error_setv(Error **errp, const char *src, int line, const char *func,
                bool with_errno, int os_errno, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    Error *err;
    char *msg;

    if (errp == NULL) {
        return;     /* dropped: do not even format it */
    }
    if (vasprintf(&msg, fmt, ap) < 0) {
        error_oom();
    }
    if (with_errno && os_errno != 0) {
        char buf[128];
        const char *reason;
        char *full;

        if (os_errno < 0) {
            os_errno = -os_errno;
        }
        reason = strerror_r(os_errno, buf, sizeof(buf));
        if (asprintf(&full, "%s: %s", msg, reason) < 0) {
            error_oom();
        }
        free(msg);
        msg = full;
    }

    err = malloc(sizeof(*err));
    if (!err) {
        error_oom();
    }
    err->msg = msg;
    err->src = src;
    err->func = func;
    err->line = line;
    error_deliver(errp, err);
    errno = saved_errno;
}

void error_setg_internal(Error **errp, const char *src, int line,
                         const char *func, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_setv(errp, src, line, func, false, 0, fmt, ap);
    va_end(ap);
}

void error_setg_errno_internal(Error **errp, const char *src, int line,
                               const char *func, int os_errno,
                               const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_setv(errp, src, line, func, true, os_errno, fmt, ap);
    va_end(ap);
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

void error_free(Error *err)
{
    if (err) {
        free(err->msg);
        free(err);
    }
}

Error *error_copy(const Error *err)
{
    Error *copy = malloc(sizeof(*copy));

    if (!copy) {
        error_oom();
    }
    *copy = *err;
    copy->msg = strdup(err->msg);
    if (!copy->msg) {
        error_oom();
    }
    return copy;
}

void error_propagate(Error **dst_errp, Error *local)
{
    if (!local) {
        return;
    }
    /* error_propagate(&err, err): it is already where it should go; the
     * "first wins" rule below would free the error *dst_errp holds. */
    if (dst_errp && *dst_errp == local) {
        return;
    }
    if (dst_errp && dst_errp != &error_abort && dst_errp != &error_fatal &&
        *dst_errp != NULL) {
        /* The first error wins; this one adds nothing the caller sees. */
        error_free(local);
        return;
    }
    error_deliver(dst_errp, local);
}

void error_prepend(Error *const *errp, const char *fmt, ...)
{
    int saved_errno = errno;
    Error *err;
    char *prefix, *msg;
    va_list ap;

    if (!errp || !*errp) {
        return;
    }
    err = *errp;
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0) {
        error_oom();
    }
    va_end(ap);
    if (asprintf(&msg, "%s%s", prefix, err->msg) < 0) {
        error_oom();
    }
    free(prefix);
    free(err->msg);
    err->msg = msg;
    errno = saved_errno;
}

void error_report_err(Error *err)
{
    int saved_errno = errno;

    if (!err) {
        return;
    }
    print_line("", err->msg);
    error_free(err);
    errno = saved_errno;
}

/* Formats and prints one line with the given prefix after "aioloop: ". */
static AIOLOOP_PRINTF(2, 0)
void vreport(const char *prefix, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char *msg;

    if (vasprintf(&msg, fmt, ap) < 0) {
        error_oom();
    }
    print_line(prefix, msg);
    free(msg);
    errno = saved_errno;
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}
