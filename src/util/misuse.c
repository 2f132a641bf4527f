/*
 * misuse.c - the one-line report and abort for detected programming
 * errors (see misuse.h for the policy).
 *
 * The message is formatted into a buffer first and written with one
 * call, so that the line is not interleaved with another thread's output
 * and survives even if stdio's buffers are in a strange state (the
 * report may come from a signal handler: qemu_bh_schedule() is
 * async-signal-safe, and its NULL check lands here). A message longer
 * than the buffer is cut, never overflowed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "misuse.h"

void aioloop__misuse(const char *func, const char *fmt, ...)
{
    char buf[1024];
    size_t len;
    va_list ap;
    int n;

    n = snprintf(buf, sizeof(buf), "aioloop: %s: ", func);
    len = n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    va_start(ap, fmt);
    n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        len += (size_t)n < sizeof(buf) - len ? (size_t)n
                                              : sizeof(buf) - len - 1;
    }
    if (len > sizeof(buf) - 2) {
        len = sizeof(buf) - 2;
    }
    buf[len++] = '\n';
    if (write(STDERR_FILENO, buf, len) < 0) {
        /* nothing more we can do: abort anyway */
    }
    abort();
}
