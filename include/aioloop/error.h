/*
 * aioloop/error.h - reporting errors to the caller through Error **errp.
 *
 * Design
 * ------
 * Constructors that can fail for more than one reason (aio_context_new,
 * iothread_create, ...) take an `Error **errp` as their last argument,
 * QEMU's convention:
 *
 *   - errp == NULL: the caller does not care; the error is dropped.
 *   - errp == &error_abort: a failure is a bug; print it with the place it
 *     was raised and abort().
 *   - errp == &error_fatal: a failure ends the program; print it and
 *     exit(1).
 *   - otherwise *errp must be NULL on entry; on failure it receives a new
 *     Error the caller owns (read it with error_get_pretty, print and free
 *     it with error_report_err, or pass it up with error_propagate).
 *
 * Setting an error into an *errp that already holds one is a programming
 * error (the first would leak or be hidden) and aborts.
 *
 * An Error records the message and the source location of error_setg(),
 * which only error_abort prints. Messages are a single line with no
 * trailing newline or punctuation, as in QEMU.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ERROR_H
#define AIOLOOP_ERROR_H

#include <stdarg.h>
#include <aioloop/compiler.h>

/* An error (opaque): a message and the place it was raised. Owned by
 * whoever holds it; freed by error_free() or error_report_err(). */
typedef struct Error Error;

/*
 * Pass &error_abort as errp to abort on failure (after printing the
 * message and where it was raised), or &error_fatal to print the message
 * and exit(1). Never assign to these variables. Any thread may pass them.
 */
AIOLOOP_API extern Error *error_abort;
/* Pass &error_fatal as errp to print the message of a failure and
 * exit(1) (see error_abort). Never assign to it. */
AIOLOOP_API extern Error *error_fatal;

/*
 * error_setg(errp, fmt, ...) - create an error with a printf-style
 * message and store it in *errp (see the errp rules above).
 * errno is preserved.
 *
 * Any thread.
 */
#define error_setg(errp, ...) \
    error_setg_internal((errp), __FILE__, __LINE__, __func__, __VA_ARGS__)

/*
 * error_setg_errno(errp, os_errno, fmt, ...) - like error_setg(), with
 * ": " and strerror(os_errno) appended to the message. os_errno may be
 * given negated (-EINVAL works like EINVAL); 0 appends nothing.
 *
 * Any thread.
 */
#define error_setg_errno(errp, os_errno, ...) \
    error_setg_errno_internal((errp), __FILE__, __LINE__, __func__, \
                              (os_errno), __VA_ARGS__)

/*
 * error_setg_internal - the function behind error_setg(); call the macro.
 *
 * Any thread.
 */
AIOLOOP_API void error_setg_internal(Error **errp, const char *src, int line,
                                     const char *func, const char *fmt, ...)
    AIOLOOP_PRINTF(5, 6);

/*
 * error_setg_errno_internal - the function behind error_setg_errno();
 * call the macro.
 *
 * Any thread.
 */
AIOLOOP_API void error_setg_errno_internal(Error **errp, const char *src,
                                           int line, const char *func,
                                           int os_errno, const char *fmt, ...)
    AIOLOOP_PRINTF(6, 7);

/*
 * error_get_pretty - the human-readable message of err.
 *
 * Returns a string owned by err, valid until err is freed.
 *
 * Any thread.
 */
AIOLOOP_API const char *error_get_pretty(const Error *err);

/*
 * error_free - free err. NULL is allowed and does nothing.
 *
 * Any thread.
 */
AIOLOOP_API void error_free(Error *err);

/*
 * error_copy - duplicate err (message and source location).
 *
 * Returns a new Error the caller owns. Aborts if memory runs out.
 *
 * Any thread.
 */
AIOLOOP_API Error *error_copy(const Error *err);

/*
 * error_propagate - hand the error local (may be NULL: nothing to do) to
 * dst_errp, following the errp rules: dropped (freed) when dst_errp is
 * NULL, fatal for &error_abort / &error_fatal, and when *dst_errp already
 * holds an error the first one wins and local is freed, unless it is
 * local itself (error_propagate(&err, err)): then nothing happens.
 *
 * Any thread.
 */
AIOLOOP_API void error_propagate(Error **dst_errp, Error *local);

/*
 * error_prepend - put a printf-style prefix in front of the message of
 * *errp, if errp is not NULL and *errp holds an error (otherwise nothing
 * happens). Useful on the way up: error_prepend(errp, "opening %s: ", p).
 *
 * Any thread.
 */
AIOLOOP_API void error_prepend(Error *const *errp, const char *fmt, ...)
    AIOLOOP_PRINTF(2, 3);

/*
 * error_report_err - print "aioloop: <message>" on stderr and free err.
 * NULL: nothing.
 *
 * Any thread.
 */
AIOLOOP_API void error_report_err(Error *err);

/*
 * error_report - print "aioloop: <formatted message>" and a newline on
 * stderr.
 *
 * Any thread.
 */
AIOLOOP_API void error_report(const char *fmt, ...) AIOLOOP_PRINTF(1, 2);

/*
 * warn_report - print "aioloop: warning: <formatted message>" and a
 * newline on stderr.
 *
 * Any thread.
 */
AIOLOOP_API void warn_report(const char *fmt, ...) AIOLOOP_PRINTF(1, 2);

#endif /* AIOLOOP_ERROR_H */
