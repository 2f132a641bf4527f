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
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "../aio-internal.h"
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
    (void)old_node;
    (void)new_node;
    return 0;           /* the array is rebuilt from handler_gen */
}

static void build(AioContext *ctx, FDMonPollState *st)
{
    AioHandler *node;
    int n = 0;

    for (node = aioloop__handlers_first(ctx); node;
         node = aioloop__handler_next(node)) {
        int events;

        if (qatomic_read(&node->deleted)) {
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

static int fdmon_poll_wait(AioContext *ctx, AioHandlerList *ready_list,
                           int64_t timeout_ns, bool unlock)
{
    FDMonPollState *st = ctx->poll_state, priv = { 0 };
    struct timespec ts, *tsp = NULL;
    int ret, i;

    if (qatomic_xchg(&st->busy, true)) {
        st = &priv;                     /* another waiter owns the cache */
    } else {
        unsigned gen = qatomic_mb_read(&ctx->handler_gen);
        if (!st->valid || st->gen != gen) {
            st->gen = gen;
            st->valid = true;
            build(ctx, st);
        }
    }
    if (st == &priv) {
        build(ctx, st);
    }

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    for (i = 0; i < st->n; i++) {
        st->pfds[i].revents = 0;
    }
    if (unlock) {
        aioloop__sleep_begin(ctx);
    }
    ret = AIOLOOP_FAULT(AIOLOOP_FAULT_FDMON_WAIT);
    if (ret) {
        errno = ret;
        ret = -1;
    } else {
        ret = ppoll(st->pfds, st->n, tsp, NULL);
    }
    if (unlock) {
        aioloop__sleep_end(ctx);
    }
    if (ret > 0) {
        for (i = 0; i < st->n; i++) {
            int revents = st->pfds[i].revents & (POLLIN | POLLOUT |
                                                 POLLHUP | POLLERR);
            if (revents) {
                aioloop__add_ready_handler(ready_list, st->nodes[i], revents);
            }
        }
    } else if (ret < 0) {
        /* EINTR: an early wake-up, as in fdmon-epoll.c; the set is
         * polled again by the next iteration, so nothing is lost. */
        ret = errno == EINTR ? 0 : -errno;
    }

    if (st == &priv) {
        free(priv.pfds);
        free(priv.nodes);
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
    .get_poll_fd = fdmon_poll_get_poll_fd,
};
