/*
 * tests/aio/fd-test.h - helpers shared by the fd-handler test programs
 * (test-fd*.c): the fd monitor this run asked for, a socketpair, and
 * FdState, a handler state whose read/write callbacks count calls (also
 * calls after removal, which must not happen) and can drain the fd or
 * remove their own or another registration.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FD_TEST_H
#define AIOLOOP_FD_TEST_H

#include <aioloop.h>
#include <sys/socket.h>

#include "aio-test.h"

/* The backend this run asked for ("epoll" when AIOLOOP_FDMON is unset). */
static inline const char *requested_fdmon(void)
{
    const char *env = getenv("AIOLOOP_FDMON");

    return env && *env ? env : "epoll";
}

static inline void make_socketpair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds) < 0) {
        perror("socketpair");
        abort();
    }
}

/* ------------------------------------------------------------------ */
/* A handler state shared by most cases.                               */

typedef struct FdState FdState;
struct FdState {
    AioContext *ctx;
    int fd;
    int reads;              /* io_read calls */
    int writes;             /* io_write calls */
    bool consume;           /* io_read drains the fd */
    bool remove_self;       /* io_read removes its own registration */
    bool removed;           /* the registration was removed */
    int late_calls;         /* calls after removal: must stay 0 */
    FdState *victim;        /* io_read removes this one's registration */
};

static inline void fd_remove(FdState *s)
{
    aio_set_fd_handler(s->ctx, s->fd, false, NULL, NULL, NULL);
    s->removed = true;
}

static inline void state_read(void *opaque)
{
    FdState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->reads++;
    if (s->consume) {
        drain_fd(s->fd);
    }
    if (s->victim && !s->victim->removed) {
        fd_remove(s->victim);
    }
    if (s->remove_self && !s->removed) {
        fd_remove(s);
    }
}

static inline void state_write(void *opaque)
{
    FdState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->writes++;
}

static inline void other_read(void *opaque)
{
    FdState *s = opaque;

    /* The "other" handler of an update: counted in writes' place. */
    s->writes += 1000;
}

#endif /* AIOLOOP_FD_TEST_H */
