/*
 * fdmon-epoll.c - the default fd monitor on Linux.
 *
 * Every handler is registered once with epoll_ctl() when it is set, so an
 * aio_poll() iteration costs O(ready fds), not O(registered fds): 10,000
 * idle descriptors cost nothing per iteration.
 *
 * What a registration carries
 * ---------------------------
 * Not a pointer. epoll keys a registration on the open file *and* the
 * descriptor number, and drops it only when the file's last reference
 * goes. A descriptor closed while a dup, a fork child or an SCM_RIGHTS
 * message keeps its file open stays registered, and EPOLL_CTL_DEL on the
 * closed number fails (EBADF) when its handler is removed: had data.ptr
 * been the node, events would keep arriving with a pointer to freed
 * memory. So data.u64 is (tag << 32 | fd), the handler node's generation
 * tag and descriptor, and the waiter resolves it through ctx->fd_table,
 * without a lock: the waiter is inside a walk, so the node it finds stays
 * allocated until the walk ends (see AioFdTable in aio-internal.h and
 * "Handler lifetime" in aio-posix.c). A live node with that tag is the
 * handler; anything else is a stale registration, dropped.
 *
 * Making a stale registration stop firing
 * ---------------------------------------
 * A stale registration is level-triggered like any other: while its file
 * is readable it reports on every wait, and dropping its events alone
 * would make the loop spin. It cannot be deleted by name - the number it
 * is keyed on is closed or belongs to another file now, and we hold no
 * reference to its file - so the set is re-keyed instead: a new epoll
 * instance gets every live handler (ctx->handlers, under list_lock), and
 * dup3() puts it under the old instance's descriptor number. The number
 * never changes, so GLib's poll of it, aio_pending() and threads about to
 * wait need no update; the old instance, stale registration included,
 * goes away with its last user. A thread asleep in the old instance when
 * it is replaced still holds it, with the context's notifier registered
 * in it, so the rebuild kicks the context: that thread wakes, and its
 * next wait uses the new set. EPOLLONESHOT would have stopped stale
 * registrations too, but at the price of an epoll_ctl() per event on
 * every handler; the rebuild costs O(handlers) system calls once per
 * stale registration, which only a caller that closed a descriptor
 * before removing its handler can create.
 *
 * A stale event is not always a stale registration: a handler replaced
 * or removed by another thread between the kernel's report and the
 * lookup leaves a report with an old tag, for a registration that is
 * already gone. So the set is rebuilt only when the handler set did not
 * change during the wait (ctx->handler_gen), or when the previous wait
 * saw stale events too (ctx->epoll_stale_waits), so that a handler set
 * that changes all the time cannot keep a stale registration alive.
 * If the rebuild itself fails (no descriptor or memory for a new set),
 * the context moves to ppoll, which polls descriptors by number and never
 * sees the stale registration.
 *
 * A descriptor that is not open gets EBADF from EPOLL_CTL_ADD/MOD: the
 * caller is told (aio-posix.c aborts naming it), and the context does not
 * move to ppoll for that.
 *
 * Timeouts have nanosecond precision through epoll_pwait2() (Linux 5.11);
 * on older kernels the wait falls back to epoll_wait() with the timeout
 * rounded *up* to whole milliseconds, so a timer never fires early. A
 * look (timeout 0: a non-blocking aio_poll()) and a wait without limit
 * are always epoll_wait() (0 / -1), which needs no timespec: epoll_pwait2()
 * with a zero timespec measured ~115 ns slower per call here (a third of
 * an idle aio_poll() pass), and with a NULL one ~40 ns slower.
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
 * a reused descriptor number (a rebuild replaces the set behind the
 * number, never closes the number).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fdmon.h"
#include "../util/fault.h"

#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 441
#endif

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

/* What epoll reports for @node: its descriptor and generation tag. */
static inline uint64_t node_key(const AioHandler *node)
{
    return (uint64_t)node->tag << 32 | (uint32_t)node->fd;
}

static inline struct epoll_event node_event(AioContext *ctx,
                                            AioHandler *node)
{
    int events = aioloop__handler_events(ctx, node);
    struct epoll_event ev = {
        .events = ((events & POLLIN) ? EPOLLIN : 0) |
                  ((events & POLLOUT) ? EPOLLOUT : 0),
        .data.u64 = node_key(node),
    };

    return ev;
}

static int fdmon_epoll_update(AioContext *ctx, AioHandler *old_node,
                              AioHandler *new_node)
{
    struct epoll_event ev;
    int r;

    if (!new_node) {
        /* Errors are expected here: the caller may have closed the fd
         * already (EBADF: a stale registration may stay behind, see
         * above), or it was not in the set (ENOENT). */
        epoll_ctl(ctx->epollfd, EPOLL_CTL_DEL, old_node->fd, NULL);
        return 0;
    }
    ev = node_event(ctx, new_node);
    if (!ev.events) {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_DEL, new_node->fd, NULL);
        /* A new handler on a closed descriptor is refused even while
         * external handlers are off (as ppoll would refuse it). */
        return r < 0 && errno == EBADF && new_node != old_node ? -EBADF : 0;
    }
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

/*
 * Re-keys the epoll set (see "Making a stale registration stop firing"):
 * a new instance with every live handler, put under ctx->epollfd's number.
 * Returns 0 or -errno, leaving the old set in place. Under list_lock.
 */
static int rebuild_locked(AioContext *ctx)
{
    AioHandler *node;
    int epfd, r = AIOLOOP_FAULT(AIOLOOP_FAULT_EPOLL_CREATE);

    if (r) {
        return -r;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        return -errno;
    }
    for (node = ctx->handlers; node; node = node->next) {
        struct epoll_event ev = node_event(ctx, node);

        if (!ev.events) {
            continue;
        }
        r = AIOLOOP_FAULT(AIOLOOP_FAULT_EPOLL_CTL);
        if (r) {
            errno = r;
            r = -1;
        } else {
            r = epoll_ctl(epfd, EPOLL_CTL_ADD, node->fd, &ev);
        }
        /* EBADF: closed while registered; it stays parked. */
        if (r < 0 && errno != EBADF) {
            r = -errno;
            close(epfd);
            return r;
        }
    }
    r = dup3(epfd, ctx->epollfd, O_CLOEXEC) < 0 ? -errno : 0;
    close(epfd);
    return r;
}

/* A wait saw events of registrations no live handler owns. Under
 * list_lock. */
static void stale_events_locked(AioContext *ctx, unsigned gen_before)
{
    bool changed = qatomic_read(&ctx->handler_gen) != gen_before;

    if (changed && qatomic_fetch_inc(&ctx->epoll_stale_waits) == 0) {
        return;     /* probably a handler changed under the report */
    }
    qatomic_set(&ctx->epoll_stale_waits, 0);
    if (rebuild_locked(ctx) < 0) {
        aioloop__fdmon_fall_back_locked(ctx);
        return;
    }
    /* Threads asleep in the old set: wake them into the new one. */
    aioloop__kick(ctx);
}

/* A wait with a limit (@timeout_ns > 0); out of line, so that the look
 * (timeout 0) in fdmon_epoll_wait() stays a leaf-like path. */
static __attribute__((noinline)) int
epoll_wait_ns(int epfd, struct epoll_event *events, int max,
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

/* The system call alone; the context may be released (see FDMonOps). */
static void fdmon_epoll_wait(AioContext *ctx, FDMonWait *w,
                             int64_t timeout_ns)
{
    int n;

    w->gen = qatomic_mb_read(&ctx->handler_gen);
    n = AIOLOOP_FAULT(AIOLOOP_FAULT_FDMON_WAIT);
    if (n) {
        errno = n;
        n = -1;
    } else if (timeout_ns <= 0) {
        /* A look (0) or a wait with no limit (-1): no timespec for the
         * kernel to copy and check, the same call on every kernel. */
        n = epoll_wait(ctx->epollfd, w->events, FDMON_MAX_EVENTS,
                       timeout_ns < 0 ? -1 : 0);
    } else {
        n = epoll_wait_ns(ctx->epollfd, w->events, FDMON_MAX_EVENTS,
                          timeout_ns);
    }
    w->ret = n < 0 ? -errno : n;
}

/* fdmon_epoll_collect() when the wait reported something or failed. */
static __attribute__((noinline)) int
collect_reported(AioContext *ctx, FDMonWait *w, AioHandlerList *ready_list)
{
    int n = w->ret, i, ready = 0, stale = 0;

    for (i = 0; i < n; i++) {
        uint64_t key = w->events[i].data.u64;
        AioHandler *node = aioloop__handler_of_fd(ctx, (int)(uint32_t)key);
        uint32_t e = w->events[i].events;
        int revents = ((e & EPOLLIN) ? POLLIN : 0) |
                      ((e & EPOLLOUT) ? POLLOUT : 0) |
                      ((e & EPOLLHUP) ? POLLHUP : 0) |
                      ((e & EPOLLERR) ? POLLERR : 0);

        if (!node || node_key(node) != key) {
            stale++;
            continue;
        }
        aioloop__add_ready_handler(ready_list, node, revents);
        ready++;
    }
    if (unlikely(stale)) {
        qemu_mutex_lock(&ctx->list_lock);
        stale_events_locked(ctx, w->gen);
        qemu_mutex_unlock(&ctx->list_lock);
    } else if (n > 0 && unlikely(qatomic_read(&ctx->epoll_stale_waits))) {
        qatomic_set(&ctx->epoll_stale_waits, 0);
    }
    if (n < 0) {
        /* EINTR (a signal) is an early wake-up: aio_poll() looks at its
         * work and, if it made no progress, waits again with the time
         * that is left. Other errors are treated the same way; they do
         * not lose events, which stay pending in the epoll set. */
        return n == -EINTR ? 0 : n;
    }
    return ready;
}

/* Resolves the reported keys through ctx->fd_table (inside the walk: the
 * nodes found stay allocated). Context held. An idle look (nothing
 * reported) returns at once. */
static int fdmon_epoll_collect(AioContext *ctx, FDMonWait *w,
                               AioHandlerList *ready_list)
{
    return w->ret == 0 ? 0 : collect_reported(ctx, w, ready_list);
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
    .collect = fdmon_epoll_collect,
    .get_poll_fd = fdmon_epoll_get_poll_fd,
};
