/*
 * event-notifier.c - EventNotifier on eventfd, with a pipe fallback.
 *
 * Design
 * ------
 * The notifier is "set" while its read descriptor is readable. With an
 * eventfd, set adds 1 to the kernel's 64-bit counter and one read returns
 * the counter and zeroes it. With a pipe, set writes 8 bytes and clear
 * reads until the pipe is empty. set writes the same 8-byte value 1 in
 * both cases, which is what an eventfd requires and harmless for a pipe.
 *
 * Coalescing: a set that cannot write because the notifier is already
 * "full" (eventfd counter at its maximum, pipe buffer full) gets EAGAIN;
 * the notifier is set either way, so that counts as success. A pipe holds
 * thousands of pending sets, so a full pipe only happens when nobody
 * drains it, and then one more set changes nothing a reader could see.
 *
 * Invariants:
 *   - initialized == false implies rfd == wfd == -1 after any of our
 *     functions ran (cleanup and failed inits write them), and cleanup
 *     does nothing.
 *   - rfd == wfd exactly for eventfd-backed notifiers; cleanup closes one
 *     descriptor then, two otherwise.
 *   - Both descriptors are O_NONBLOCK and O_CLOEXEC (init_fd trusts the
 *     caller for a descriptor it wraps).
 *   - cleanup never closes a notifier that a context still watches
 *     through aio_set_event_notifier(): that would leave a handler on a
 *     closed descriptor that nobody can remove any more (the notifier's
 *     fd reads -1 afterwards), so it aborts naming both instead. The
 *     check is the context code's (installed through
 *     aioloop__event_notifier_set_owner_check()), so that this file
 *     knows nothing of contexts.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <aioloop/atomic.h>
#include <aioloop/event-notifier.h>
#include "event-notifier-internal.h"
#include "fault.h"

/* Test hook: pretend eventfd does not exist. Atomic: tests flip it while
 * other threads may create notifiers. */
static bool force_pipe;

void aioloop__event_notifier_force_pipe(bool on)
{
    qatomic_set(&force_pipe, on);
}

/* Which context still watches a notifier; NULL until the first context
 * exists (atomic pointer). */
static void *(*owner_check)(const EventNotifier *e);

void aioloop__event_notifier_set_owner_check(
    void *(*owner)(const EventNotifier *e))
{
    qatomic_set(&owner_check, owner);
}

static void mark_uninitialised(EventNotifier *e)
{
    e->rfd = -1;
    e->wfd = -1;
    e->initialized = false;
}

int event_notifier_init(EventNotifier *e, int active)
{
    int fd = -1;

    mark_uninitialised(e);
    if (!qatomic_read(&force_pipe)) {
        int err = AIOLOOP_FAULT(AIOLOOP_FAULT_EVENTFD);

        if (err) {
            errno = err;
        } else {
            fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        }
        if (fd < 0 && errno != ENOSYS && errno != EINVAL) {
            return -errno;      /* EMFILE, ENFILE, ENOMEM: a real failure */
        }
    }
    if (fd >= 0) {
        e->rfd = e->wfd = fd;
    } else {
        int fds[2];
        int err = AIOLOOP_FAULT(AIOLOOP_FAULT_PIPE);

        if (err) {
            return -err;
        }
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
            return -errno;
        }
        e->rfd = fds[0];
        e->wfd = fds[1];
    }
    e->initialized = true;

    if (active) {
        int ret = event_notifier_set(e);

        if (ret < 0) {
            event_notifier_cleanup(e);
            return ret;
        }
    }
    return 0;
}

int event_notifier_init_fd(EventNotifier *e, int fd)
{
    mark_uninitialised(e);
    if (fd < 0) {
        return -EINVAL;
    }
    e->rfd = e->wfd = fd;
    e->initialized = true;
    return 0;
}

void event_notifier_cleanup(EventNotifier *e)
{
    void *(*check)(const EventNotifier *) = qatomic_read(&owner_check);
    void *owner;

    if (!e->initialized) {
        return;
    }
    owner = check ? check(e) : NULL;
    if (owner) {
        fprintf(stderr, "aioloop: event_notifier_cleanup: EventNotifier %p "
                "(fd %d) is still registered with AioContext %p; remove it "
                "first: aio_set_event_notifier(ctx, notifier, is_external, "
                "NULL)\n", (void *)e, e->rfd, owner);
        abort();
    }
    /* close() is not retried on EINTR: on Linux the descriptor is gone
     * whatever it returns, and retrying could close someone else's. */
    if (e->rfd != e->wfd) {
        close(e->rfd);
    }
    close(e->wfd);
    mark_uninitialised(e);
}

int event_notifier_set(EventNotifier *e)
{
    static const uint64_t one = 1;
    int saved_errno = errno;    /* we may run in a signal handler */
    int ret = 0;
    ssize_t n;

    if (!e->initialized) {
        return -EBADF;
    }
    do {
        n = write(e->wfd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);

    if (n < 0 && errno != EAGAIN) {
        ret = -errno;           /* EAGAIN: already set to the brim */
    }
    errno = saved_errno;
    return ret;
}

bool event_notifier_test_and_clear(EventNotifier *e)
{
    char buf[512];
    bool was_set = false;
    ssize_t n;

    if (!e->initialized) {
        return false;
    }
    for (;;) {
        n = read(e->rfd, buf, sizeof(buf));
        if (n > 0) {
            was_set = true;
            if (e->rfd == e->wfd) {
                break;          /* one read zeroes an eventfd counter */
            }
            continue;           /* a pipe: drain until EAGAIN */
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        break;                  /* EAGAIN (empty), EOF or an error */
    }
    return was_set;
}

int event_notifier_get_fd(const EventNotifier *e)
{
    return e->initialized ? e->rfd : -1;
}

int event_notifier_get_wfd(const EventNotifier *e)
{
    return e->initialized ? e->wfd : -1;
}
