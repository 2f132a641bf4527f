/*
 * fdmon-epoll.c - the default fd monitor on Linux.
 *
 * Every handler is registered once with epoll_ctl() when it is set, so an
 * aio_poll() iteration costs O(ready fds), not O(registered fds): 10,000
 * idle descriptors cost nothing per iteration. epoll's data.ptr is the
 * handler node itself; nodes outlive any wait that may report them (see
 * "Handler lifetime" in aio-posix.c).
 *
 * Timeouts have nanosecond precision through epoll_pwait2() (Linux 5.11);
 * on older kernels the wait falls back to epoll_wait() with the timeout
 * rounded *up* to whole milliseconds, so a timer never fires early.
 *
 * A handler whose events are 0 (an external handler while external
 * clients are disabled) is removed from the epoll set rather than left
 * with an empty mask, because epoll would still report EPOLLHUP/EPOLLERR
 * for it and the loop would spin.
 *
 * epoll refuses some descriptors (regular files: EPERM) and has a watch
 * limit (ENOSPC); update() then fails and aio-posix.c moves the context
 * to the ppoll monitor for good. The epoll fd stays open until the
 * context is freed, so a thread still sleeping on it is never confused by
 * a reused descriptor number.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../aio-internal.h"
#include "../util/fault.h"

#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 441
#endif

#define EPOLL_MAX_EVENTS 128

static bool have_epoll_pwait2 = true;   /* atomic; cleared on ENOSYS */

static int fdmon_epoll_init(AioContext *ctx)
{
    AioHandler *node;

    if (ctx->epollfd < 0) {
        int err = AIOLOOP_FAULT(AIOLOOP_FAULT_EPOLL_CREATE);

        if (err) {
            return -err;
        }
        ctx->epollfd = epoll_create1(EPOLL_CLOEXEC);
        if (ctx->epollfd < 0) {
            return -errno;
        }
    }
    /* Register handlers that exist already (only at creation: none). */
    for (node = ctx->handlers; node; node = node->next) {
        int r = aioloop__fdmon_epoll_ops.update(ctx, NULL, node);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static void fdmon_epoll_cleanup(AioContext *ctx)
{
    if (ctx->epollfd >= 0) {
        close(ctx->epollfd);
        ctx->epollfd = -1;
    }
}

static int fdmon_epoll_update(AioContext *ctx, AioHandler *old_node,
                              AioHandler *new_node)
{
    struct epoll_event ev = { 0 };
    int events, r;

    if (!new_node) {
        /* Errors are expected here: the caller may have closed the fd
         * already (EBADF), or it was not in the set (ENOENT). */
        epoll_ctl(ctx->epollfd, EPOLL_CTL_DEL, old_node->fd, NULL);
        return 0;
    }
    events = aioloop__handler_events(ctx, new_node);
    if (!events) {
        epoll_ctl(ctx->epollfd, EPOLL_CTL_DEL, new_node->fd, NULL);
        return 0;
    }
    ev.events = ((events & POLLIN) ? EPOLLIN : 0) |
                ((events & POLLOUT) ? EPOLLOUT : 0);
    ev.data.ptr = new_node;
    r = AIOLOOP_FAULT(AIOLOOP_FAULT_EPOLL_CTL);
    if (r) {
        return -r;
    }
    r = epoll_ctl(ctx->epollfd, old_node ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                  new_node->fd, &ev);
    if (r < 0 && errno == ENOENT) {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_ADD, new_node->fd, &ev);
    } else if (r < 0 && errno == EEXIST) {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_MOD, new_node->fd, &ev);
    }
    return r < 0 ? -errno : 0;
}

static int epoll_wait_ns(int epfd, struct epoll_event *events, int max,
                         int64_t timeout_ns)
{
    int timeout_ms;

    if (qatomic_read(&have_epoll_pwait2)) {
        struct timespec ts, *tsp = NULL;
        long r;

        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000LL;
            ts.tv_nsec = timeout_ns % 1000000000LL;
            tsp = &ts;
        }
        r = syscall(__NR_epoll_pwait2, epfd, events, max, tsp, NULL, 0);
        if (r >= 0 || errno != ENOSYS) {
            return (int)r;
        }
        qatomic_set(&have_epoll_pwait2, false);
    }
    if (timeout_ns < 0) {
        timeout_ms = -1;
    } else if (timeout_ns / 1000000 >= 0x7fffffff) {
        timeout_ms = 0x7fffffff;
    } else {
        timeout_ms = (int)((timeout_ns + 999999) / 1000000);
    }
    return epoll_wait(epfd, events, max, timeout_ms);
}

static int fdmon_epoll_wait(AioContext *ctx, AioHandlerList *ready_list,
                            int64_t timeout_ns, bool unlock)
{
    struct epoll_event events[EPOLL_MAX_EVENTS];
    int n, i;

    if (unlock) {
        aioloop__sleep_begin(ctx);
    }
    n = AIOLOOP_FAULT(AIOLOOP_FAULT_FDMON_WAIT);
    if (n) {
        errno = n;
        n = -1;
    } else {
        n = epoll_wait_ns(ctx->epollfd, events, EPOLL_MAX_EVENTS, timeout_ns);
    }
    if (unlock) {
        aioloop__sleep_end(ctx);
    }
    if (n < 0) {
        /* EINTR (a signal) is an early wake-up: aio_poll() looks at its
         * work and, if it made no progress, waits again with the time
         * that is left. Other errors are treated the same way; they do
         * not lose events, which stay pending in the epoll set. */
        return errno == EINTR ? 0 : -errno;
    }
    for (i = 0; i < n; i++) {
        uint32_t e = events[i].events;
        int revents = ((e & EPOLLIN) ? POLLIN : 0) |
                      ((e & EPOLLOUT) ? POLLOUT : 0) |
                      ((e & EPOLLHUP) ? POLLHUP : 0) |
                      ((e & EPOLLERR) ? POLLERR : 0);

        aioloop__add_ready_handler(ready_list, events[i].data.ptr, revents);
    }
    return n;
}

static int fdmon_epoll_get_poll_fd(AioContext *ctx)
{
    return ctx->epollfd;
}

const FDMonOps aioloop__fdmon_epoll_ops = {
    .name = "epoll",
    .init = fdmon_epoll_init,
    .cleanup = fdmon_epoll_cleanup,
    .update = fdmon_epoll_update,
    .wait = fdmon_epoll_wait,
    .get_poll_fd = fdmon_epoll_get_poll_fd,
};
