/*
 * aio-posix.c - aio_poll() and the fd handler set.
 *
 * One iteration of aio_poll()
 * ---------------------------
 *
 *     acquire ctx ──► walk_begin ──► timeout = compute (BHs, timers)
 *          │
 *          ├─ timeout == 0 ─► look once: poll handlers, or fdmon wait(0)
 *          │
 *          └─ may sleep ──► busy-poll io_poll()s up to poll_ns (notify_me
 *                           still 0: wake-ups cost the sender no syscall)
 *                     └──► notify_me += 2, recompute timeout, release ctx,
 *                           fdmon wait (epoll_pwait2 / ppoll), reacquire,
 *                           fdmon collect, notify_me -= 2
 *          ▼
 *     aio_notify_accept ─► run BHs ─► dispatch ready handlers ─► walk_end
 *          ─► run expired timers ─► release ctx
 *
 * A blocking aio_poll() repeats the iteration while it made no progress,
 * ran no idle BH and saw no aio_notify(): wake-ups nobody asked for (a
 * stale eventfd, a handler-set change) are not visible to the caller.
 *
 * With no time to wait (non-blocking, or work already pending) and every
 * handler pollable, the look is one round of io_poll() calls, except on
 * a context that polls adaptively: there, as in QEMU, io_poll runs only
 * inside a poll window, which such a call does not have, so the
 * handlers are left alone until a call that may wait. While a
 * handler's io_poll_ready() runs, nested aio_poll()s skip its io_poll(),
 * so a level-triggered poll handler that nests is not re-entered
 * (QEMU 8.1's rule).
 *
 * Handler lifetime
 * ----------------
 * Handler nodes are immutable after publication. aio_set_fd_handler()
 * builds a new node, swaps it in under list_lock and retires the old one:
 * the old node is unlinked (its own next pointer stays valid, so a walker
 * standing on it can go on), marked deleted, and freed at once if no
 * aio_poll() walks the list, else put on ctx->deleted_handlers and freed
 * by the last walk to end. Walks are counted in ctx->walkers, a
 * QemuLockCnt (QEMU's pattern, aioloop/lockcnt.h): a walker is any
 * aio_poll()/aio_dispatch()/aio_pending() between walk_begin() and
 * walk_end(), asleep or not - the sleep with the context released is
 * inside the walk, so ppoll's node array and epoll's tags stay valid;
 * a non-blocking aio_poll() pass that looks at no node is not a walker -
 * and the decision "nobody walks, free now" is taken under the counter's
 * lock, where a count of zero is stable (a walker arriving then waits for
 * the unlock, and then sees the node unlinked). Lifetime does not depend
 * on the context lock: that lock is only aio_context_acquire/release()
 * and its contention wake-up.
 *
 * The kernel never holds a pointer to a node. epoll's registrations carry
 * (fd, generation tag) and a reported event is resolved through
 * ctx->fd_table, inside the walk (see AioFdTable in aio-internal.h for
 * why that needs no lock): a registration that outlived its handler
 * (its descriptor was closed while a dup kept the open file alive, so
 * EPOLL_CTL_DEL could not reach it) names no live node and is dropped,
 * never dereferenced; see fdmon-epoll.c for how it is then made to stop
 * firing.
 *
 * Descriptors that are not open
 * -----------------------------
 * Adding or updating a handler on a descriptor that is not open is the
 * caller's bug and aborts with a message naming the descriptor, on both
 * monitors (epoll_ctl says EBADF; the ppoll monitor asks fcntl). It never
 * moves the context to ppoll: only refusals of an open descriptor do
 * (regular files, the watch limit, memory). A descriptor closed while its
 * handler is registered goes quiet instead: epoll forgets it, and ppoll,
 * which sees POLLNVAL, parks the handler (AioHandler.fd_closed), so that
 * neither monitor calls the handler again or wakes the loop for it until
 * the handler is removed or replaced.
 *
 * The context's own descriptors (its notifier, its epoll set) are not the
 * caller's: registering a handler on one of those numbers (a stale number
 * the caller closed, which the context then got) aborts with a message;
 * removing one is a no-op, as for any descriptor without a handler of the
 * caller's. Either would otherwise cut the context off from its wake-ups.
 *
 * The dispatch skips deleted nodes, so once removal returns on the loop
 * thread the handler is not called again, even if an earlier wait had
 * already reported it ready. Each ready node sits on the ready list of the
 * aio_poll() that found it; a nested aio_poll() that finds it ready again
 * takes it over, so one readiness report is dispatched once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio-internal.h"
#include "attach.h"
#include "clock-internal.h"
#include "fdmon/fdmon.h"
#include "util/alloc.h"
#include "util/event-notifier-internal.h"
#include "util/lockcnt-internal.h"
#include "util/rfifolock-internal.h"
#include "util/misuse.h"

/* revents marker for "io_poll() said ready" (not a poll(2) bit). */
#define AIO_POLL_READY 0x40000000

/* ------------------------------------------------------------------ */
/* The handler list                                                    */

AioHandler *aioloop__handlers_first(AioContext *ctx)
{
    return qatomic_mb_read(&ctx->handlers);
}

AioHandler *aioloop__handler_next(AioHandler *node)
{
    return qatomic_mb_read(&node->next);
}

int aioloop__handler_events(AioContext *ctx, AioHandler *node)
{
    if (node->is_external && qatomic_read(&ctx->external_disable_cnt)) {
        return 0;
    }
    return node->events;
}

static void list_insert(AioContext *ctx, AioHandler *node)
{
    AioHandler *first = ctx->handlers;

    node->next = first;
    node->pprev = &ctx->handlers;
    if (first) {
        first->pprev = &node->next;
    }
    qatomic_mb_set(&ctx->handlers, node);     /* publish */
}

static void list_remove(AioHandler *node)
{
    if (node->next) {
        node->next->pprev = node->pprev;
    }
    qatomic_mb_set(node->pprev, node->next);  /* node->next stays valid */
}

/*
 * Walkers: one count per walk in progress, nested ones included, in
 * ctx->walkers. Its orderings are the QemuLockCnt's (every change of its
 * word is a seq_cst read-modify-write): a walker's increment either
 * precedes a retiring writer's lock (which then sees the count and
 * defers the free) or reads the writer's unlock, after the unlink (and
 * the walker then loads the list without the node). A walk's last
 * access to a node precedes its decrement, which the freeing thread's
 * lock reads. A walk costs two atomic read-modify-writes, whether the
 * context is held or not, inline (util/lockcnt-internal.h: the public
 * functions' first attempt without the call; a held lock or a lost race
 * goes to them). A pass of aio_poll() that touches no node takes no
 * walk at all (see aio_poll_once()).
 */
static inline void walk_begin(AioContext *ctx)
{
    aioloop__lockcnt_inc(&ctx->walkers);
}

/* Under the walkers' lock (or with the context being freed). */
static void free_deleted_locked(AioContext *ctx)
{
    AioHandler *node = ctx->deleted_handlers;

    while (node) {
        AioHandler *next = node->next_deleted;
        free(node);
        node = next;
    }
    ctx->deleted_handlers = NULL;
    qatomic_set(&ctx->has_deleted, false);
}

/* The last walker out frees the retired nodes: it becomes "count zero,
 * locked" in one step, so no walk can start while it frees. A retirement
 * that comes after the has_deleted load is freed by a later walk (or by
 * the context's cleanup). */
static inline void walk_end(AioContext *ctx)
{
    if (unlikely(qatomic_mb_read(&ctx->has_deleted)) &&
        qemu_lockcnt_dec_if_lock(&ctx->walkers)) {
        free_deleted_locked(ctx);
        qemu_lockcnt_unlock(&ctx->walkers);
    } else {
        aioloop__lockcnt_dec(&ctx->walkers);
    }
}

/* Under list_lock. The free-or-defer decision is taken under the
 * walkers' lock, which also guards deleted_handlers; the lock order is
 * list_lock, then the walkers' lock (walk_end() takes the latter alone).
 * The retiring thread may itself be a walker (a handler that removes
 * itself): the lock does not wait for the count. */
static void retire_locked(AioContext *ctx, AioHandler *node)
{
    list_remove(node);
    qatomic_set(&node->deleted, true);
    qatomic_inc(&ctx->handler_gen);
    qemu_lockcnt_lock(&ctx->walkers);
    if (qemu_lockcnt_count(&ctx->walkers) > 0) {
        node->next_deleted = ctx->deleted_handlers;
        ctx->deleted_handlers = node;
        qatomic_mb_set(&ctx->has_deleted, true);
    } else {
        free(node);
    }
    qemu_lockcnt_unlock(&ctx->walkers);
}

static void kick(AioContext *ctx)
{
    aioloop__kick(ctx);
}

/*
 * Makes ctx->fd_table cover @fd: a bigger copy is published, the old
 * table kept (see AioFdTable). Under list_lock. Returns 0, -ENOMEM with
 * the table unchanged, or -EBADF if @fd lies beyond the table and is not
 * open. The table is indexed by fd and grown before the monitor sees the
 * descriptor, so without that check a bogus number (INT_MAX, a garbage
 * value) would have it grow by gigabytes first; the check costs a system
 * call only when the table must grow, a handful of times in a context's
 * life. Sizes are computed in size_t: doubling an int past 2^30 would
 * overflow.
 */
static int ensure_fd_table(AioContext *ctx, int fd)
{
    AioFdTable *old = ctx->fd_table, *t;
    size_t old_size = old ? (size_t)old->size : 0, size;

    if ((size_t)fd < old_size) {
        return 0;
    }
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
        return -EBADF;
    }
    size = old_size ? old_size : 64;
    while (size <= (size_t)fd) {
        size *= 2;
    }
    if (size > (size_t)INT_MAX) {
        size = (size_t)INT_MAX;     /* open fds stay below INT_MAX */
    }
    t = aioloop__calloc(1, sizeof(*t) + size * sizeof(t->slot[0]));
    if (!t) {
        return -ENOMEM;
    }
    t->size = (int)size;
    t->older = old;
    if (old) {
        memcpy(t->slot, old->slot, (size_t)old->size * sizeof(t->slot[0]));
    }
    qatomic_mb_set(&ctx->fd_table, t);
    return 0;
}

/* Sets the handler of @fd in the table (which covers it). Under
 * list_lock; seq_cst, before any retirement (see AioFdTable). */
static void fd_table_set_locked(AioContext *ctx, int fd, AioHandler *node)
{
    qatomic_mb_set(&ctx->fd_table->slot[fd], node);
}

/* Switch the fd monitor (epoll -> poll fallback). Under list_lock. */
static int fdmon_switch_locked(AioContext *ctx, const FDMonOps *ops)
{
    int ret;

    if (ctx->fdmon_ops == ops) {
        return 0;
    }
    ret = ops->init(ctx);
    if (ret < 0) {
        return ret;
    }
    qatomic_mb_set(&ctx->fdmon_ops, ops);
    qatomic_inc(&ctx->handler_gen);
    kick(ctx);
    return 0;
}

/*
 * The monitor refused a handler (epoll: EPERM for regular files, ENOSPC
 * past the watch limit, ENOMEM): move the context to ppoll, which takes
 * any descriptor and needs no registration. This cannot fail - the ppoll
 * state was allocated with the context - so a handler is never left
 * registered in the list but unwatched. Under list_lock.
 */
void aioloop__fdmon_fall_back_locked(AioContext *ctx)
{
    int ret = fdmon_switch_locked(ctx, &aioloop__fdmon_poll_ops);

    assert(ret == 0);
    (void)ret;
}

static int set_handler(AioContext *ctx, int fd, bool is_external,
                       bool internal, IOHandler *io_read,
                       EventNotifierHandler *en_read, IOHandler *io_write,
                       AioPollFn *io_poll, IOHandler *io_poll_ready,
                       EventNotifierHandler *en_poll_ready, void *opaque)
{
    bool remove = !io_read && !en_read && !io_write && !io_poll;
    AioHandler *old_node, *new_node = NULL;
    const FDMonOps *ops;
    int ret;

    if (fd < 0) {
        return remove ? 0 : -EBADF;
    }
    if (!remove) {
        new_node = aioloop__calloc(1, sizeof(*new_node));
        if (!new_node) {
            return -ENOMEM;
        }
        new_node->fd = fd;
        new_node->events = ((io_read || en_read) ? POLLIN : 0) |
                           (io_write ? POLLOUT : 0);
        new_node->is_external = is_external;
        new_node->internal = internal;
        new_node->io_read = io_read;
        new_node->en_read = en_read;
        new_node->io_write = io_write;
        new_node->io_poll = io_poll;
        new_node->io_poll_ready = io_poll_ready;
        new_node->en_poll_ready = en_poll_ready;
        new_node->opaque = opaque;
    }

    qemu_mutex_lock(&ctx->list_lock);
    old_node = aioloop__handler_of_fd(ctx, fd);
    if (!internal && ((old_node && old_node->internal) ||
                      fd == ctx->epollfd)) {
        /* The context's own descriptor: see "Descriptors that are not
         * open" above. */
        qemu_mutex_unlock(&ctx->list_lock);
        free(new_node);
        return remove ? 0 : -EEXIST;
    }
    if (!old_node && remove) {
        qemu_mutex_unlock(&ctx->list_lock);
        return 0;
    }
    /* Before anything changes, so that a failure changes nothing. */
    if (new_node) {
        ret = ensure_fd_table(ctx, fd);
        if (ret < 0) {
            qemu_mutex_unlock(&ctx->list_lock);
            free(new_node);
            return ret;
        }
    }
    if (new_node) {
        new_node->tag = ++ctx->next_tag;
    }
    ops = ctx->fdmon_ops;
    ret = ops->update(ctx, old_node, new_node);
    if (ret == -EBADF && new_node) {
        /* Not an open descriptor: the caller's bug, reported by the
         * caller. Nothing changed (a failed ADD/MOD leaves the set). */
        qemu_mutex_unlock(&ctx->list_lock);
        free(new_node);
        return -EBADF;
    }
    if (ret < 0) {
        assert(ops != &aioloop__fdmon_poll_ops);
        if (old_node) {
            ops->update(ctx, old_node, NULL);
        }
        aioloop__fdmon_fall_back_locked(ctx);
    }
    if (new_node) {
        list_insert(ctx, new_node);
        fd_table_set_locked(ctx, fd, new_node);
        if (!new_node->io_poll) {
            qatomic_inc(&ctx->poll_disable_cnt);
        }
        if (!new_node->internal) {
            qatomic_inc(&ctx->user_handlers);
        }
    } else {
        fd_table_set_locked(ctx, fd, NULL);
    }
    if (old_node) {
        if (!old_node->io_poll) {
            qatomic_dec(&ctx->poll_disable_cnt);
        }
        if (!old_node->internal) {
            qatomic_dec(&ctx->user_handlers);
        }
        retire_locked(ctx, old_node);
    } else {
        qatomic_inc(&ctx->handler_gen);
    }
    /* epoll sees the change at once; ppoll must rebuild its set. */
    if (ctx->fdmon_ops == &aioloop__fdmon_poll_ops) {
        kick(ctx);
    }
    qemu_mutex_unlock(&ctx->list_lock);
    return 0;
}

int aioloop__set_handler(AioContext *ctx, int fd, bool is_external,
                         bool internal, IOHandler *io_read,
                         EventNotifierHandler *en_read, IOHandler *io_write,
                         AioPollFn *io_poll, IOHandler *io_poll_ready,
                         void *opaque)
{
    return set_handler(ctx, fd, is_external, internal, io_read, en_read,
                       io_write, io_poll, io_poll_ready, NULL, opaque);
}

/* The public setters have no error channel: every refusal aborts with a
 * message that names the descriptor (out of memory: see the policy in
 * util/alloc.h). @who is the public function's name. */
static void set_handler_or_die(AioContext *ctx, const char *who, int fd,
                               bool is_external, IOHandler *io_read,
                               EventNotifierHandler *en_read,
                               IOHandler *io_write, AioPollFn *io_poll,
                               IOHandler *io_poll_ready,
                               EventNotifierHandler *en_poll_ready,
                               void *opaque)
{
    int ret = set_handler(ctx, fd, is_external, false, io_read, en_read,
                          io_write, io_poll, io_poll_ready, en_poll_ready,
                          opaque);

    switch (ret) {
    case 0:
        return;
    case -ENOMEM:
        aioloop__oom("%s: registering fd %d", who, fd);
    case -EBADF:
        fprintf(stderr, "aioloop: %s: fd %d is not an open file descriptor "
                "(AioContext %p); remove a handler before closing its "
                "descriptor\n", who, fd, (void *)ctx);
        break;
    case -EEXIST:
        fprintf(stderr, "aioloop: %s: fd %d belongs to AioContext %p itself "
                "(its event notifier or epoll set), not to the caller: a "
                "stale descriptor number?\n", who, fd, (void *)ctx);
        break;
    default:
        fprintf(stderr, "aioloop: %s: cannot register fd %d: %s\n", who, fd,
                strerror(-ret));
        break;
    }
    abort();
}

void aio_set_fd_handler(AioContext *ctx, int fd, bool is_external,
                        IOHandler *io_read, IOHandler *io_write, void *opaque)
{
    set_handler_or_die(ctx, __func__, fd, is_external, io_read, NULL,
                       io_write, NULL, NULL, NULL, opaque);
}

void aio_set_fd_handler_poll(AioContext *ctx, int fd, bool is_external,
                             IOHandler *io_read, IOHandler *io_write,
                             AioPollFn *io_poll, IOHandler *io_poll_ready,
                             void *opaque)
{
    /* io_poll without io_read or io_poll_ready is legal, as in QEMU:
     * io_poll then does the work itself and its "ready" is progress. */
    set_handler_or_die(ctx, __func__, fd, is_external, io_read, NULL,
                       io_write, io_poll, io_poll_ready, NULL, opaque);
}

void aio_set_event_notifier(AioContext *ctx, EventNotifier *notifier,
                            bool is_external, EventNotifierHandler *io_read)
{
    int fd = event_notifier_get_fd(notifier);

    if (fd < 0) {
        if (!io_read) {
            return;     /* never registered: event_notifier_cleanup()
                         * refuses a registered notifier */
        }
        fprintf(stderr, "aioloop: aio_set_event_notifier: EventNotifier %p "
                "is not initialised (AioContext %p)\n", (void *)notifier,
                (void *)ctx);
        abort();
    }
    set_handler_or_die(ctx, __func__, fd, is_external, NULL, io_read, NULL,
                       NULL, NULL, NULL, notifier);
}

void aio_set_event_notifier_full(AioContext *ctx, EventNotifier *notifier,
                                 bool is_external,
                                 EventNotifierHandler *io_read,
                                 AioPollFn *io_poll,
                                 EventNotifierHandler *io_poll_ready)
{
    int fd = event_notifier_get_fd(notifier);

    /* No read handler: nothing to poll for either (QEMU removes the
     * registration when io_read is NULL). */
    if (!io_read) {
        io_poll = NULL;
        io_poll_ready = NULL;
    }
    if (fd < 0) {
        if (!io_read) {
            return;     /* never registered, as aio_set_event_notifier() */
        }
        fprintf(stderr, "aioloop: %s: EventNotifier %p is not initialised "
                "(AioContext %p)\n", __func__, (void *)notifier, (void *)ctx);
        abort();
    }
    set_handler_or_die(ctx, __func__, fd, is_external, NULL, io_read, NULL,
                       io_poll, NULL, io_poll_ready, notifier);
}

/* ------------------------------------------------------------------ */
/* External clients                                                    */

static void refresh_external_locked(AioContext *ctx)
{
    AioHandler *node;

    for (node = ctx->handlers; node; node = node->next) {
        int ret;

        if (!node->is_external) {
            continue;
        }
        /* Re-adding a handler can fail (epoll_ctl ENOMEM/ENOSPC): fall
         * back to ppoll rather than leave it unwatched. EBADF is not a
         * refusal: the descriptor was closed while registered, and its
         * handler stays parked (see "Descriptors that are not open"). */
        ret = ctx->fdmon_ops->update(ctx, node, node);
        if (ret < 0 && ret != -EBADF) {
            aioloop__fdmon_fall_back_locked(ctx);
        }
    }
    qatomic_inc(&ctx->handler_gen);
    kick(ctx);
}

void aio_disable_external(AioContext *ctx)
{
    qemu_mutex_lock(&ctx->list_lock);
    if (qatomic_fetch_inc(&ctx->external_disable_cnt) == 0) {
        refresh_external_locked(ctx);
    }
    qemu_mutex_unlock(&ctx->list_lock);
}

void aio_enable_external(AioContext *ctx)
{
    int old;

    qemu_mutex_lock(&ctx->list_lock);
    /* An unbalanced enable would take the count below zero, which reads
     * as "disabled" for good: every build checks. The count only changes
     * under list_lock, so the load and the decrement agree. */
    old = qatomic_read(&ctx->external_disable_cnt);
    if (unlikely(old <= 0)) {
        qemu_mutex_unlock(&ctx->list_lock);
        aioloop__misuse("aio_enable_external", "AioContext %p: external "
                        "handlers are not disabled (more "
                        "aio_enable_external() than aio_disable_external() "
                        "calls)", (void *)ctx);
    }
    qatomic_dec(&ctx->external_disable_cnt);
    if (old == 1) {
        refresh_external_locked(ctx);
    }
    qemu_mutex_unlock(&ctx->list_lock);
}

bool aio_external_disabled(AioContext *ctx)
{
    return qatomic_read(&ctx->external_disable_cnt) > 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

void aioloop__add_ready_handler(AioHandlerList *ready_list, AioHandler *node,
                                int revents)
{
    /* Take it from a parent aio_poll()'s list if it is still there. */
    QLIST_SAFE_REMOVE(node, node_ready);
    node->revents = revents;
    QLIST_INSERT_HEAD(ready_list, node, node_ready);
}

static bool dispatch_handler(AioContext *ctx, AioHandler *node, int revents)
{
    bool progress = false;

    if (qatomic_read(&node->deleted)) {
        return false;
    }
    if (node->is_external && qatomic_read(&ctx->external_disable_cnt)) {
        return false;
    }
    if (revents & AIO_POLL_READY) {
        if (node->io_poll_ready || node->en_poll_ready) {
            node->poll_ready_running = true;
            if (node->en_poll_ready) {
                node->en_poll_ready(node->opaque);
            } else {
                node->io_poll_ready(node->opaque);
            }
            node->poll_ready_running = false;
        } else if (node->io_read) {
            node->io_read(node->opaque);
        } else if (node->en_read) {
            node->en_read(node->opaque);
        }
        return !node->internal;
    }
    if ((revents & (POLLIN | POLLHUP | POLLERR)) &&
        (node->io_read || node->en_read)) {
        if (node->en_read) {
            node->en_read(node->opaque);
        } else {
            node->io_read(node->opaque);
        }
        progress = !node->internal;
    }
    if ((revents & (POLLOUT | POLLERR)) && node->io_write &&
        !qatomic_read(&node->deleted)) {
        node->io_write(node->opaque);
        progress = true;
    }
    return progress;
}

static __attribute__((noinline)) bool
dispatch_ready_list(AioContext *ctx, AioHandlerList *ready_list)
{
    bool progress = false;
    AioHandler *node;

    /* Re-read the head each time: a nested aio_poll() may take entries. */
    while ((node = QLIST_FIRST(ready_list))) {
        int revents = node->revents;

        QLIST_SAFE_REMOVE(node, node_ready);
        node->revents = 0;
        progress |= dispatch_handler(ctx, node, revents);
    }
    return progress;
}

/* An idle iteration has nothing ready: it pays one load, not a call. */
static inline bool dispatch_ready(AioContext *ctx, AioHandlerList *ready_list)
{
    return !QLIST_EMPTY(ready_list) && dispatch_ready_list(ctx, ready_list);
}

/* Call every io_poll(); put the ready handlers on @ready_list. The
 * context's own notifier only matters to end a busy-poll early; a
 * one-shot look (@skip_internal) leaves it out. */
static bool run_poll_handlers_once(AioContext *ctx, AioHandlerList *ready_list,
                                   bool skip_internal)
{
    bool found = false;
    AioHandler *node;

    for (node = aioloop__handlers_first(ctx); node;
         node = aioloop__handler_next(node)) {
        /* Not the fd's events: an io_poll with neither io_read nor
         * io_write is legal (it does its work itself, as in QEMU). */
        if (!node->io_poll || qatomic_read(&node->deleted) ||
            node->poll_ready_running ||
            (skip_internal && node->internal) ||
            (node->is_external &&
             qatomic_read(&ctx->external_disable_cnt))) {
            continue;
        }
        if (node->io_poll(node->opaque)) {
            aioloop__add_ready_handler(ready_list, node, AIO_POLL_READY);
            found = true;
        }
    }
    return found;
}

/*
 * Rounds of io_poll() calls per clock read while busy polling. Reading
 * the clock costs more than a round of cheap io_poll()s (tens of ns in a
 * VM, about as much as the cache-line transfer that delivers a
 * wake-up), so reading it every round would make the rounds, and so the
 * time between a wake-up and its discovery, several times longer. The
 * window may overshoot by up to this many rounds.
 */
#define POLL_ROUNDS_PER_CLOCK_READ 8

/*
 * Busy-poll for up to @limit_ns. Returns true if something became ready.
 * The window is timed from the first clock read, which comes after the
 * first POLL_ROUNDS_PER_CLOCK_READ rounds: a wake-up caught by those
 * costs no clock read at all. *@start is set to that read when the
 * window runs out (returning false), for adjust_polling_time().
 */
static bool run_poll_handlers(AioContext *ctx, AioHandlerList *ready_list,
                              int64_t *start, int64_t limit_ns)
{
    int64_t begin = 0, now;
    bool timed = false;

    for (;;) {
        for (int i = 0; i < POLL_ROUNDS_PER_CLOCK_READ; i++) {
            if (run_poll_handlers_once(ctx, ready_list, false)) {
                return true;
            }
        }
        now = aioloop__now_ns();
        if (!timed) {
            begin = now;
            timed = true;
        } else if (now - begin >= limit_ns) {
            *start = begin;
            return false;
        }
    }
}

/*
 * Grow or shrink ctx->poll_ns after a blocking wait of @block_ns. The
 * parameters are any non-negative int64_t (aio_context_set_poll_params()
 * takes INT64_MAX), so growth saturates at @max_ns instead of
 * overflowing; poll_ns stays within [0, max_ns].
 */
static void adjust_polling_time(AioContext *ctx, int64_t block_ns,
                                int64_t max_ns)
{
    /* max_ns may have been lowered since the window grew. */
    int64_t poll_ns = ctx->poll_ns < max_ns ? ctx->poll_ns : max_ns;

    if (block_ns <= poll_ns) {
        ctx->poll_ns = poll_ns; /* polling caught it: keep the window */
        return;
    }
    if (block_ns > max_ns) {
        int64_t shrink = qatomic_read(&ctx->poll_shrink);
        poll_ns = shrink ? poll_ns / shrink : 0;
    } else if (poll_ns < max_ns) {
        int64_t grow = qatomic_read(&ctx->poll_grow);

        if (!poll_ns) {
            poll_ns = 4000;
        } else if (__builtin_mul_overflow(poll_ns, grow ? grow : 2,
                                          &poll_ns)) {
            poll_ns = max_ns;
        }
        if (poll_ns > max_ns) {
            poll_ns = max_ns;
        }
    }
    ctx->poll_ns = poll_ns;
}

/*
 * Asks the fd monitor @ops which handlers are ready, waiting up to
 * @timeout_ns, and puts them on @ready_list. With @sleep the context is
 * released (one level) around the system call and reacquired before the
 * ready handlers are collected: their ready-list links belong to the
 * context's holder. Context held, inside a walk (which keeps every node
 * the monitor sees allocated while the context is released). Returns
 * what FDMonOps.collect returns.
 */
static int fdmon_wait(AioContext *ctx, const FDMonOps *ops,
                      AioHandlerList *ready_list, int64_t timeout_ns,
                      bool sleep)
{
    FDMonWait w;

    if (sleep) {
        aio_context_release(ctx);
    }
    ops->wait(ctx, &w, timeout_ns);
    if (sleep) {
        aio_context_acquire(ctx);
    }
    return ops->collect(ctx, &w, ready_list);
}

/* The context whose aio_poll()/aio_dispatch() the calling thread is in
 * (innermost), for coroutines (see aio-internal.h). Set inline on the
 * aio_poll() path; never read across a coroutine switch. */
__thread AioContext *aioloop__poll_ctx_tls;

static inline AioContext *set_poll_ctx(AioContext *ctx)
{
    AioContext *old = aioloop__poll_ctx_tls;

    aioloop__poll_ctx_tls = ctx;
    return old;
}

/*
 * Would this thread sleep holding the context while another thread is
 * queued for it? aio_poll() releases one level around its sleep; a caller
 * that holds the context itself (QEMU 2.4's IOThread: acquire, then "while
 * (aio_poll(ctx, true))", release) keeps it. The contention callback wakes
 * such a sleeper once per wait, but that wake-up can be consumed by an
 * iteration that also made progress: aio_poll() returns true, the caller
 * polls again, and would sleep with the waiter queued. So an outermost
 * aio_poll() checks the queue itself before sleeping and returns instead,
 * until it has returned false to its caller while someone was queued
 * (ctx->contention_reported): a caller that keeps polling after that,
 * holding the context on purpose, sleeps instead of spinning.
 * Called after notify_me += 2; the seq_cst load of waiters pairs with the
 * waiter's seq_cst increment that precedes its contention callback's
 * aio_notify(): either we see the waiter here, or its notify_me load sees
 * our announcement and writes the eventfd. Model-checked in
 * tests/model/aio-notify.pml.
 */
static bool held_by_caller_and_contended(AioContext *ctx)
{
    return aioloop__rfifolock_nested_and_contended(&ctx->lock);
}

/* Whether a pass of aio_poll_once() walks the handler list: always when
 * it may block or some handler cannot be polled (@can_poll false: the
 * caller's one read of poll_disable_cnt, which its later choices follow
 * too, so that a pass that may call the fd monitor always walks); a
 * non-blocking pass over pollable handlers only when one of them is the
 * caller's and adaptive polling is off (see there).
 * aio_poll_nonblocking() takes its short path on the same decision. */
static inline bool pass_walks(AioContext *ctx, bool blocking, bool can_poll)
{
    return blocking || !can_poll ||
           (qatomic_read(&ctx->user_handlers) != 0 &&
            qatomic_read(&ctx->poll_max_ns) == 0);
}

/* One iteration; see the diagram at the top. @nested: this thread is
 * already inside aio_poll()/aio_dispatch() of @ctx (a callback polls). */
static bool aio_poll_once(AioContext *ctx, bool blocking, bool nested,
                          bool *woken, bool *ran_idle)
{
    AioHandlerList ready_list = QLIST_HEAD_INITIALIZER(ready_list);
    const FDMonOps *ops;
    int64_t timeout, max_ns, start = 0;
    bool can_poll, progress, walking;

    if (qatomic_read(&ctx->kicked)) {
        /* Consumed: this iteration recomputes deadlines and handlers. */
        qatomic_mb_set(&ctx->kicked, false);
    }
    ops = qatomic_mb_read(&ctx->fdmon_ops);
    can_poll = qatomic_read(&ctx->poll_disable_cnt) == 0;
    /* A non-blocking pass over pollable handlers only, none of them the
     * caller's, looks at no node: the one-shot look below skips the
     * context's own notifier, and with adaptive polling on there is no
     * look at all. Such a pass takes no walk (two atomic
     * read-modify-writes saved on a pass that only runs BHs and timers).
     * A handler added meanwhile by another thread is seen by the next
     * pass, as if it had come just after this one; a pass that began
     * without a walk never touches a node, so retirement needs no
     * knowledge of it. */
    walking = pass_walks(ctx, blocking, can_poll);
    if (walking) {
        walk_begin(ctx);
    }
    timeout = blocking ? aio_compute_timeout(ctx) : 0;
    max_ns = blocking && timeout ? qatomic_read(&ctx->poll_max_ns) : 0;

    if (max_ns && can_poll) {
        int64_t limit = ctx->poll_ns < max_ns ? ctx->poll_ns : max_ns;

        if (timeout > 0 && timeout < limit) {
            limit = timeout;
        }
        if (limit <= 0) {
            start = aioloop__now_ns();
        } else if (run_poll_handlers(ctx, &ready_list, &start, limit)) {
            timeout = 0;
            max_ns = 0;         /* caught by polling: keep poll_ns */
        }
    } else if (max_ns) {
        start = aioloop__now_ns();
    }

    if (timeout == 0) {
        if (QLIST_EMPTY(&ready_list)) {
            if (can_poll && qatomic_read(&ctx->poll_max_ns)) {
                /* Adaptive polling on, every handler pollable: as in
                 * QEMU, io_poll runs only inside a poll window, and a
                 * call that must not wait has none; nor is the fd
                 * monitor needed. BHs and timers still run. */
            } else if (can_poll) {
                if (walking) {  /* else no handler to look at */
                    run_poll_handlers_once(ctx, &ready_list, true);
                }
            } else {
                aioloop__sleep_hooks_prepare(ctx);
                fdmon_wait(ctx, ops, &ready_list, 0, false);
                aioloop__sleep_hooks_finish(ctx);
            }
        }
    } else {
        /* Announce the sleep, then look one last time (pairs with
         * aio_notify(): see async.c). */
        qatomic_add(&ctx->notify_me, 2);
        aioloop__sleep_hooks_prepare(ctx);  /* may schedule a BH */
        timeout = aio_compute_timeout(ctx);
        if (qatomic_mb_read(&ctx->notified)) {
            timeout = 0;
        }
        /* Not for nested polls: the context stays held by their caller's
         * callback anyway, and returning would make them spin. */
        if (timeout != 0 && !nested && !ctx->contention_reported &&
            held_by_caller_and_contended(ctx)) {
            timeout = 0;
            *woken = true;
        }
        if (timeout == 0 && can_poll) {
            /* Work turned up while we announced the sleep (a hook found
             * completions, a BH or a notification came): as when the
             * iteration starts with no timeout, every handler can say
             * by polling whether it is ready, so the fd monitor's system
             * call would find nothing the poll handlers do not. */
            run_poll_handlers_once(ctx, &ready_list, true);
        } else {
            ops = qatomic_mb_read(&ctx->fdmon_ops);
            fdmon_wait(ctx, ops, &ready_list, timeout, timeout != 0);
        }
        aioloop__sleep_hooks_finish(ctx);
        qatomic_sub(&ctx->notify_me, 2);
    }

    /* One exchange: a notification arriving between a separate look and
     * clear would be cleared without being reported. */
    if (aioloop__notify_accept(ctx)) {
        *woken = true;
    }

    if (max_ns) {
        adjust_polling_time(ctx, aioloop__now_ns() - start, max_ns);
    }

    progress = aioloop__bh_poll(ctx, ran_idle);
    if (walking) {
        progress |= dispatch_ready(ctx, &ready_list);
        walk_end(ctx);
    }
    progress |= aioloop__timers_run(ctx);
    return progress;
}

/* The end of every aio_poll(): the contention note of an outermost
 * call, the thread's poll context back, the context released. Returns
 * @progress. */
static inline bool aio_poll_leave(AioContext *ctx, AioContext *outer_ctx,
                                  bool progress)
{
    if (outer_ctx != ctx) {
        ctx->contention_reported = !progress &&
                                   held_by_caller_and_contended(ctx);
    }
    set_poll_ctx(outer_ctx);
    aioloop__rfifolock_unlock_ctx_inline(&ctx->lock);
    return progress;
}

/* What aio_poll() does once it holds the context and has set the
 * thread's poll context: iterations until one counts, then the
 * contention note, and the release. Out of line, so that the
 * non-blocking pass below keeps a small frame. */
static __attribute__((noinline)) bool aio_poll_held(AioContext *ctx,
                                                    bool blocking,
                                                    AioContext *outer_ctx)
{
    bool progress;

    for (;;) {
        bool woken = false, ran_idle = false;

        progress = aio_poll_once(ctx, blocking, outer_ctx == ctx, &woken,
                                 &ran_idle);
        if (progress || woken || ran_idle || !blocking) {
            break;
        }
    }
    return aio_poll_leave(ctx, outer_ctx, progress);
}

/* A blocking aio_poll(): take the context, then the general path. Out
 * of line, so that aio_poll()'s non-blocking pass does not pay for it. */
static __attribute__((noinline)) bool aio_poll_blocking(AioContext *ctx)
{
    aioloop__rfifolock_lock_inline(&ctx->lock);
    return aio_poll_held(ctx, true, set_poll_ctx(ctx));
}

/* A non-blocking aio_poll(). Its own function, so that aio_poll() is
 * a branch to one of two and neither pays the other's frame. */
static __attribute__((noinline)) bool aio_poll_nonblocking(AioContext *ctx)
{
    AioContext *outer_ctx;
    bool progress, ran_idle = false;

    /* aio_context_acquire()/release() without the calls through the
     * shared library's PLT: their fast paths inline (rfifolock-internal.h). */
    aioloop__rfifolock_lock_inline(&ctx->lock);
    outer_ctx = set_poll_ctx(ctx);
    /*
     * A non-blocking pass that takes no walk (see "walking" in
     * aio_poll_once(): every handler pollable, and none of them the
     * caller's or adaptive polling on) is aio_poll_once() without what
     * a pass with no timeout and no look at the handlers cannot use (the
     * fd monitor, the deadlines, the poll window): accept notifications,
     * run BHs and timers. That is every aio_poll(ctx, false) of a loop
     * that only runs BHs and timers or polls adaptively. The loads are
     * the ones aio_poll_once() makes to take the same decision.
     */
    if (pass_walks(ctx, false,
                   qatomic_read(&ctx->poll_disable_cnt) == 0)) {
        return aio_poll_held(ctx, false, outer_ctx);
    }
    if (qatomic_read(&ctx->kicked)) {
        qatomic_mb_set(&ctx->kicked, false);    /* as in aio_poll_once() */
    }
    (void)aioloop__notify_accept(ctx);  /* a non-blocking call returns */
    progress = aioloop__bh_poll(ctx, &ran_idle);
    progress |= aioloop__timers_run(ctx);
    return aio_poll_leave(ctx, outer_ctx, progress);
}

bool aio_poll(AioContext *ctx, bool blocking)
{
    return blocking ? aio_poll_blocking(ctx) : aio_poll_nonblocking(ctx);
}

/* ------------------------------------------------------------------ */
/* The GSource-style split: prepare / pending / dispatch                */

bool aio_prepare(AioContext *ctx)
{
    return aio_compute_timeout(ctx) == 0;
}

bool aio_pending(AioContext *ctx)
{
    AioHandlerList ready_list = QLIST_HEAD_INITIALIZER(ready_list);
    const FDMonOps *ops;
    bool pending;
    int fd;

    if (aioloop__bh_scheduled(ctx) || aioloop__timers_deadline_ns(ctx) == 0) {
        return true;
    }
    ops = qatomic_mb_read(&ctx->fdmon_ops);
    fd = ops->get_poll_fd(ctx);
    if (fd >= 0) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n;

        do {
            n = poll(&pfd, 1, 0);
        } while (n < 0 && errno == EINTR);
        return n > 0;
    }
    aio_context_acquire(ctx);
    walk_begin(ctx);
    fdmon_wait(ctx, ops, &ready_list, 0, false);
    pending = !QLIST_EMPTY(&ready_list);
    while (!QLIST_EMPTY(&ready_list)) {
        AioHandler *node = QLIST_FIRST(&ready_list);
        QLIST_SAFE_REMOVE(node, node_ready);
    }
    walk_end(ctx);
    aio_context_release(ctx);
    return pending;
}

bool aio_dispatch(AioContext *ctx)
{
    AioHandlerList ready_list = QLIST_HEAD_INITIALIZER(ready_list);
    bool progress, ran_idle = false;
    const FDMonOps *ops;
    AioContext *outer_ctx;

    aio_context_acquire(ctx);
    outer_ctx = set_poll_ctx(ctx);
    walk_begin(ctx);
    aio_notify_accept(ctx);
    progress = aioloop__bh_poll(ctx, &ran_idle);
    ops = qatomic_mb_read(&ctx->fdmon_ops);
    fdmon_wait(ctx, ops, &ready_list, 0, false);
    progress |= dispatch_ready(ctx, &ready_list);
    walk_end(ctx);
    progress |= aioloop__timers_run(ctx);
    set_poll_ctx(outer_ctx);
    aio_context_release(ctx);
    return progress;
}

/* ------------------------------------------------------------------ */
/* Event notifiers cleaned up while registered                         */

/*
 * event_notifier_cleanup() of a notifier still registered with a context
 * would close the descriptor under its handler, and the notifier could
 * then never be removed (its fd reads -1). The cleanup asks this check
 * (installed by the first context, see util/event-notifier.c) and aborts
 * naming the notifier and the context. Contexts are found on one global
 * list; the lock order is all_contexts_lock, then a list_lock.
 */
static pthread_mutex_t all_contexts_lock = PTHREAD_MUTEX_INITIALIZER;
static QLIST_HEAD(, AioContext) all_contexts =
    QLIST_HEAD_INITIALIZER(all_contexts);

static void *notifier_owner(const EventNotifier *e)
{
    AioContext *ctx, *owner = NULL;
    int fd = event_notifier_get_fd(e);

    if (fd < 0) {
        return NULL;
    }
    pthread_mutex_lock(&all_contexts_lock);
    QLIST_FOREACH(ctx, &all_contexts, all_contexts) {
        AioHandler *node;

        qemu_mutex_lock(&ctx->list_lock);
        node = aioloop__handler_of_fd(ctx, fd);
        if (node && !node->internal && node->en_read && node->opaque == e) {
            owner = ctx;
        }
        qemu_mutex_unlock(&ctx->list_lock);
        if (owner) {
            break;
        }
    }
    pthread_mutex_unlock(&all_contexts_lock);
    return owner;
}

/* ------------------------------------------------------------------ */
/* Set-up and tear-down                                                */

/* Whether the unknown-AIOLOOP_FDMON warning was printed (atomic). */
static bool fdmon_env_warned;

int aioloop__handlers_init(AioContext *ctx, Error **errp)
{
    const char *want = getenv("AIOLOOP_FDMON");
    int ret;

    if (want && strcmp(want, "poll") == 0) {
        ctx->fdmon_ops = &aioloop__fdmon_poll_ops;
    } else {
        /* An unknown value is not an error: the default serves. Said once
         * per process (every IOThread and AsyncContext level makes a
         * context), and cut short: the value is the environment's. */
        if (want && *want && strcmp(want, "epoll") != 0 &&
            !qatomic_xchg(&fdmon_env_warned, true)) {
            char shown[33];
            size_t i;

            /* At most 32 bytes, control characters (a newline, a
             * terminal escape) shown as '?': one clean line. */
            for (i = 0; want[i] && i < sizeof(shown) - 1; i++) {
                unsigned char c = (unsigned char)want[i];

                shown[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
            shown[i] = '\0';
            fprintf(stderr, "aioloop: AIOLOOP_FDMON=%s%s unknown, using "
                    "epoll (valid: epoll, poll)\n", shown,
                    want[i] ? "..." : "");
        }
        ctx->fdmon_ops = &aioloop__fdmon_epoll_ops;
    }
    /* The ppoll state first, whichever monitor starts: it is what a
     * refused epoll registration falls back to, and that fallback must
     * not be able to fail. */
    ret = aioloop__fdmon_poll_ops.init(ctx);
    if (ret == 0 && ctx->fdmon_ops != &aioloop__fdmon_poll_ops) {
        ret = ctx->fdmon_ops->init(ctx);
        if (ret < 0) {
            ctx->fdmon_ops = &aioloop__fdmon_poll_ops;   /* no epoll: poll */
            ret = 0;
        }
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "aio_context_new: cannot set up the "
                         "fd monitor");
        aioloop__fdmon_poll_ops.cleanup(ctx);
        return ret;
    }
    aioloop__event_notifier_set_owner_check(notifier_owner);
    pthread_mutex_lock(&all_contexts_lock);
    QLIST_INSERT_HEAD(&all_contexts, ctx, all_contexts);
    pthread_mutex_unlock(&all_contexts_lock);
    return 0;
}

void aioloop__handlers_cleanup(AioContext *ctx)
{
    AioHandler *node, *next;

    pthread_mutex_lock(&all_contexts_lock);
    QLIST_REMOVE(ctx, all_contexts);
    pthread_mutex_unlock(&all_contexts_lock);
    qemu_mutex_lock(&ctx->list_lock);
    assert(qemu_lockcnt_count(&ctx->walkers) == 0);
    free_deleted_locked(ctx);
    for (node = ctx->handlers; node; node = next) {
        next = node->next;
        free(node);
    }
    ctx->handlers = NULL;
    while (ctx->fd_table) {
        AioFdTable *t = ctx->fd_table;

        ctx->fd_table = t->older;
        free(t);
    }
    qemu_mutex_unlock(&ctx->list_lock);
    aioloop__fdmon_epoll_ops.cleanup(ctx);
    aioloop__fdmon_poll_ops.cleanup(ctx);
}

const char *aio_context_fdmon_name(AioContext *ctx)
{
    const FDMonOps *ops = qatomic_mb_read(&ctx->fdmon_ops);

    return ops->name;
}

const struct FDMonOps *aioloop_fdmon_ops(const char *name)
{
    if (name && strcmp(name, aioloop__fdmon_poll_ops.name) == 0) {
        return &aioloop__fdmon_poll_ops;
    }
    if (name && strcmp(name, aioloop__fdmon_epoll_ops.name) == 0) {
        return &aioloop__fdmon_epoll_ops;
    }
    return NULL;
}
