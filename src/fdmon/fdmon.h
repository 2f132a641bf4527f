/*
 * fdmon/fdmon.h - the interface between the loop core (aio-posix.c) and
 * its fd monitors (fdmon-epoll.c, fdmon-poll.c): the FDMonOps table a
 * monitor implements, and the calls into the core's handler set that a
 * monitor makes. Also read by the GSource (aio-glib.c), which asks the
 * monitor what GLib should poll.
 *
 * Not installed; not part of the API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FDMON_H
#define AIOLOOP_FDMON_H

#include <sys/epoll.h>

#include "../aio-internal.h"

/*
 * An fd monitor tells aio_poll() which handlers are ready. One file per
 * backend (fdmon/fdmon-epoll.c, fdmon/fdmon-poll.c); a context picks one
 * at creation and may fall back from epoll to poll at run time.
 */
/* One wait's report, on the waiter's stack between FDMonOps.wait and
 * .collect; the fields are the monitor's. */
#define FDMON_MAX_EVENTS 128
typedef struct FDMonWait {
    int ret;                    /* the system call's result, or -errno */
    unsigned gen;               /* ctx->handler_gen before the wait */
    void *state;                /* ppoll: the arrays the wait used */
    struct epoll_event events[FDMON_MAX_EVENTS];    /* epoll's report */
} FDMonWait;

typedef struct FDMonOps {
    const char *name;
    /* Set up the backend for ctx and register every live handler.
     * Returns 0 or -errno. Called under list_lock. */
    int (*init)(AioContext *ctx);
    void (*cleanup)(AioContext *ctx);
    /* A handler was added (old == NULL), replaced, or removed (new ==
     * NULL), or its events changed (old == new, e.g. external toggled).
     * Returns 0 or -errno if the backend refused the fd: -EBADF when a
     * new node's fd is not open (both backends check), which the caller
     * reports; anything else moves the context to ppoll. Under
     * list_lock. */
    int (*update)(AioContext *ctx, AioHandler *old_node, AioHandler *new_node);
    /* The system call: wait up to timeout_ns (-1: no limit, 0: just
     * look) and leave what it reported in @w. Inside a handler-list walk;
     * the context may or may not be held (aio_poll() releases it around a
     * wait that may sleep), so it touches no node but to read it. Every
     * wait is followed by collect() on the same @w. */
    void (*wait)(AioContext *ctx, FDMonWait *w, int64_t timeout_ns);
    /* Put the handlers @w reported ready on ready_list and release what
     * the wait kept in @w. Returns the number of ready handlers, or
     * -errno from the wait. Context held, same walk as the wait. */
    int (*collect)(AioContext *ctx, FDMonWait *w, AioHandlerList *ready_list);
    /* The fd an outer poller (GLib) can wait on, or -1. */
    int (*get_poll_fd)(AioContext *ctx);
} FDMonOps;

extern const FDMonOps aioloop__fdmon_epoll_ops;
extern const FDMonOps aioloop__fdmon_poll_ops;

/* aio-posix.c, for the monitors */

/* Put @node on @ready_list with @revents (or add @revents to it if a
 * nested aio_poll() finds it ready again). Loop thread, inside a walk. */
void aioloop__add_ready_handler(AioHandlerList *ready_list, AioHandler *node,
                                int revents);
/* The poll events @node wants now (0 while it is disabled). */
int aioloop__handler_events(AioContext *ctx, AioHandler *node);
/* Walk the live and retired handlers: under list_lock or inside a
 * walk. */
AioHandler *aioloop__handlers_first(AioContext *ctx);
AioHandler *aioloop__handler_next(AioHandler *node);
/* Moves the context from epoll to ppoll for good (cannot fail). Under
 * list_lock. */
void aioloop__fdmon_fall_back_locked(AioContext *ctx);

#endif /* AIOLOOP_FDMON_H */
