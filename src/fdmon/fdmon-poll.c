/*
 * fdmon-poll.c - the portable fd monitor, on ppoll(2).
 *
 * ppoll takes any descriptor (regular files included) and a timespec
 * timeout with nanosecond precision, at a cost of O(registered fds) per
 * iteration. It serves small sets, systems without epoll, and contexts
 * whose descriptors epoll refused.
 *
 * The pollfd array is rebuilt only when ctx->handler_gen changes (every
 * handler add, replace, removal or external toggle bumps it), and cached
 * between waits. The cached node pointers are only dereferenced inside a
 * handler-list walk after the generation check, so a retired node can
 * only be seen while it is still guaranteed to be allocated (see
 * "Handler lifetime" in aio-posix.c). If two threads wait on one context
 * at once (one asleep with the context released while another polls),
 * the second builds a private array.
 *
 * Descriptors that are not open: update() refuses a new handler whose
 * descriptor is not open (fcntl F_GETFD says EBADF), as epoll_ctl does,
 * and aio-posix.c reports it. A descriptor closed while its handler is
 * registered makes ppoll report POLLNVAL on every call, which would make
 * the loop spin: the waiter parks the handler instead (fd_closed, set
 * inside the walk) and bumps handler_gen, so that the array is rebuilt
 * without it and the handler is neither polled nor called again until it
 * is replaced or removed - what the epoll monitor does, because epoll
 * forgets a closed descriptor by itself.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "fdmon.h"
#include "../util/alloc.h"

typedef struct FDMonPollState {
    struct pollfd *pfds;
    AioHandler **nodes;
    int n, cap;
    unsigned gen;
    bool valid;
    bool busy;          /* atomic: the cached arrays are in use */
} FDMonPollState;

static int fdmon_poll_init(AioContext *ctx)
{
    if (!ctx->poll_state) {
        ctx->poll_state = aioloop__calloc(1, sizeof(*ctx->poll_state));
        if (!ctx->poll_state) {
            return -ENOMEM;
        }
    }
    ctx->poll_state->valid = false;
    return 0;
}

static void fdmon_poll_cleanup(AioContext *ctx)
{
    FDMonPollState *st = ctx->poll_state;

    if (st) {
        free(st->pfds);
        free(st->nodes);
        free(st);
        ctx->poll_state = NULL;
    }
}

static int fdmon_poll_update(AioContext *ctx, AioHandler *old_node,
                             AioHandler *new_node)
{
    (void)ctx;
    /* The array is rebuilt from handler_gen; only a new handler's
     * descriptor is checked (an events change of a registered one is
     * not a registration). */
    if (new_node && new_node != old_node &&
        fcntl(new_node->fd, F_GETFD) < 0 && errno == EBADF) {
        return -EBADF;
    }
    return 0;
}

static void build(AioContext *ctx, FDMonPollState *st)
{
    AioHandler *node;
    int n = 0;

    for (node = aioloop__handlers_first(ctx); node;
         node = aioloop__handler_next(node)) {
        int events;

        if (qatomic_read(&node->deleted) || qatomic_read(&node->fd_closed)) {
            continue;
        }
        events = aioloop__handler_events(ctx, node);
        if (!events) {
            continue;
        }
        if (n == st->cap) {
            int cap = st->cap ? st->cap * 2 : 16;
            struct pollfd *pfds = aioloop__realloc(st->pfds,
                                                   cap * sizeof(*pfds));
            AioHandler **nodes;

            if (pfds) {
                st->pfds = pfds;
            }
            nodes = pfds ? aioloop__realloc(st->nodes, cap * sizeof(*nodes))
                         : NULL;
            if (!nodes) {
                aioloop__oom("growing the ppoll set");
            }
            st->nodes = nodes;
            st->cap = cap;
        }
        st->pfds[n] = (struct pollfd) { .fd = node->fd, .events = events };
        st->nodes[n] = node;
        n++;
    }
    st->n = n;
}

/* Builds the set (inside the walk) and polls it; the context may be
 * released (see FDMonOps). The arrays used are kept in @w for collect. */
static void fdmon_poll_wait(AioContext *ctx, FDMonWait *w, int64_t timeout_ns)
{
    FDMonPollState *st = ctx->poll_state;
    struct timespec ts, *tsp = NULL;
    int ret, i;

    if (qatomic_xchg(&st->busy, true)) {
        /* Another waiter owns the cache: a private set. */
        st = aioloop__calloc(1, sizeof(*st));
        if (!st) {
            aioloop__oom("a private ppoll set");
        }
        build(ctx, st);
    } else {
        unsigned gen = qatomic_mb_read(&ctx->handler_gen);
        if (!st->valid || st->gen != gen) {
            st->gen = gen;
            st->valid = true;
            build(ctx, st);
        }
    }
    w->state = st;

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    for (i = 0; i < st->n; i++) {
        st->pfds[i].revents = 0;
    }
    ret = AIOLOOP_FAULT(AIOLOOP_FAULT_FDMON_WAIT);
    if (ret) {
        errno = ret;
        ret = -1;
    } else {
        ret = ppoll(st->pfds, st->n, tsp, NULL);
    }
    w->ret = ret < 0 ? -errno : ret;
}

/* Context held. */
static int fdmon_poll_collect(AioContext *ctx, FDMonWait *w,
                              AioHandlerList *ready_list)
{
    FDMonPollState *st = w->state;
    int ret = w->ret, i;

    if (ret > 0) {
        int ready = 0;

        for (i = 0; i < st->n; i++) {
            int revents = st->pfds[i].revents & (POLLIN | POLLOUT |
                                                 POLLHUP | POLLERR);

            if (unlikely(st->pfds[i].revents & POLLNVAL)) {
                /* Closed while registered: park it (see above). */
                qatomic_set(&st->nodes[i]->fd_closed, true);
                qatomic_inc(&ctx->handler_gen);
                continue;
            }
            if (revents) {
                aioloop__add_ready_handler(ready_list, st->nodes[i], revents);
                ready++;
            }
        }
        ret = ready;
    } else if (ret < 0) {
        /* EINTR: an early wake-up, as in fdmon-epoll.c; the set is
         * polled again by the next iteration, so nothing is lost. */
        ret = ret == -EINTR ? 0 : ret;
    }

    if (st != ctx->poll_state) {
        free(st->pfds);
        free(st->nodes);
        free(st);
    } else {
        qatomic_store_release(&st->busy, false);
    }
    return ret;
}

static int fdmon_poll_get_poll_fd(AioContext *ctx)
{
    (void)ctx;
    return -1;
}

const FDMonOps aioloop__fdmon_poll_ops = {
    .name = "poll",
    .init = fdmon_poll_init,
    .cleanup = fdmon_poll_cleanup,
    .update = fdmon_poll_update,
    .wait = fdmon_poll_wait,
    .collect = fdmon_poll_collect,
    .get_poll_fd = fdmon_poll_get_poll_fd,
};
