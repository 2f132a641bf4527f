/*
 * aio-internal.h - the inside of an AioContext: BHs, handler nodes, the
 * context struct, and the loop core's private declarations (async.c,
 * aio-posix.c), with the few core calls its clients make (internal BHs,
 * progress, the current aio_poll()'s context, the context's timers).
 *
 * Locks and protocols, field by field, are documented on struct AioContext
 * below; every shared field names what protects it.
 *
 * One concept per header around it:
 *   fdmon/fdmon.h          the fd monitors' ops table and their calls
 *                          into the handler set
 *   attach.h               what clients hang on a context: attachments
 *                          (die with it) and sleep hooks
 *   main-loop-internal.h   which loop a thread runs (IOThread, main
 *                          thread) and the AsyncContext stack
 *   timer-internal.h       timer.c's library-internal calls and test hooks
 *   clock-internal.h       the library's own clock reads
 *   util/relax.h           cpu_relax()
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_AIO_INTERNAL_H
#define AIOLOOP_AIO_INTERNAL_H

#include <aioloop/aio.h>
#include <aioloop/atomic.h>
#include <aioloop/queue.h>
#include <aioloop/rfifolock.h>
#include <aioloop/thread.h>
#include <aioloop/timer.h>
#include <aioloop/coroutine.h>
#include <aioloop/lockcnt.h>
#include <poll.h>
#include "timer-internal.h"

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */

/*
 * A BH's state lives in one word changed only with atomic RMW operations:
 *   BH_PENDING    the BH is on ctx->bh_list (or on a slice being run);
 *                 whoever sets it from 0 inserts the BH, and only
 *                 aio_bh_poll() clears it, when it takes the BH off.
 *   BH_SCHEDULED  run the callback when taken off (cleared by cancel).
 *   BH_IDLE       scheduled with qemu_bh_schedule_idle().
 *   BH_DELETED    free the BH when taken off instead of running it.
 *   BH_ONESHOT    free the BH after running it.
 *   BH_INTERNAL   the library's own BH (thread-pool completions...): its
 *                 run counts as progress only if it ran a user callback
 *                 (aioloop__report_progress); never reported as leaked.
 */
enum {
    BH_PENDING   = 1 << 0,
    BH_SCHEDULED = 1 << 1,
    BH_IDLE      = 1 << 2,
    BH_DELETED   = 1 << 3,
    BH_ONESHOT   = 1 << 4,
    BH_INTERNAL  = 1 << 5,   /* library BH: progress only if it reports */
};

/*
 * Ask for the cache line of @p in a state that allows writing, without
 * waiting for it: a hint (it never faults, orders nothing, and a CPU may
 * ignore it). For a line that another CPU last wrote and that this one
 * is about to update with a locked instruction: fetched for writing at
 * once, it needs one transfer, not a read and then an upgrade, and the
 * transfer overlaps whatever this CPU waits for meanwhile. The
 * compiler's write prefetch: PREFETCHW where the build targets a CPU
 * that has it (-mprfchw, or an -march that implies it), a read prefetch
 * otherwise. Not PREFETCHW unconditionally: its opcode is only defined
 * on CPUs that report it (Linux too issues it only behind that CPUID
 * bit), and a hint is not worth an instruction of unknown effect on an
 * older part.
 */
static inline void aioloop__prefetch_w(const void *p)
{
    __builtin_prefetch(p, 1);
}

/* Allocated on a cache line of its own (BH_ALIGN), the fields that
 * scheduling and running touch first: a cross-thread schedule and the
 * run that follows move one line between the CPUs, not two. */
#define BH_ALIGN 64
struct QEMUBH {
    AioContext *ctx;
    QEMUBHFunc *cb;
    void *opaque;
    QSLIST_ENTRY(QEMUBH) next;  /* ctx->bh_list or a slice: see BH_PENDING */
    unsigned flags;             /* BH_*, atomic */
    MemReentrancyGuard *guard;  /* aio_bh_new_guarded(), or NULL */
    const char *name;
    QLIST_ENTRY(QEMUBH) all;    /* ctx->all_bhs, under ctx->bh_lock */
};

typedef QSLIST_HEAD(, QEMUBH) BHList;

/* The BHs one aio_bh_poll() took off ctx->bh_list, in scheduling order.
 * Slices live on the stack of aio_bh_poll(); a nested aio_bh_poll() works
 * on the outer slices too, oldest first. Loop thread only. */
typedef struct BHListSlice {
    BHList bh_list;
    QSIMPLEQ_ENTRY(BHListSlice) next;
} BHListSlice;

/* ------------------------------------------------------------------ */
/* File-descriptor handlers                                            */

/*
 * Handlers are immutable once published: aio_set_fd_handler() replaces a
 * node by a new one and retires the old. Retired nodes stay readable (and
 * keep their list link) until no aio_poll() walks the handler list; then
 * they are freed. See "Handler lifetime" in aio-posix.c.
 */
struct AioHandler {
    int fd;
    int events;                 /* POLLIN / POLLOUT wanted */
    bool is_external;
    bool internal;              /* the context's own notifier: no progress */
    IOHandler *io_read;
    EventNotifierHandler *en_read;  /* set instead of io_read for notifiers */
    IOHandler *io_write;
    AioPollFn *io_poll;
    IOHandler *io_poll_ready;
    EventNotifierHandler *en_poll_ready;   /* notifiers: instead of it */
    void *opaque;

    bool deleted;               /* atomic: retired, never call again */
    /* io_poll_ready() is on the stack of the context's holder: a nested
     * aio_poll() does not poll this node (QEMU takes it off its poll
     * list), so the callback is never re-entered through io_poll. */
    bool poll_ready_running;
    /* ppoll reported POLLNVAL: the descriptor was closed while the
     * handler was registered. The handler is parked - never called,
     * never polled - until it is replaced or removed. Atomic; set by a
     * waiter inside a walk (fdmon-poll.c). */
    bool fd_closed;
    /* Generation tag, unique per context among the nodes of one fd
     * (ctx->next_tag, under list_lock): epoll events carry (fd, tag) and
     * are matched against ctx->fd_table, never trusted as pointers (see
     * fdmon-epoll.c). */
    uint32_t tag;

    /* ctx->handlers: next is read locklessly (atomic), written and pprev
     * used under ctx->list_lock. */
    AioHandler *next;
    AioHandler **pprev;
    AioHandler *next_deleted;   /* ctx->deleted_handlers, walkers' lock */

    /* Owned by the aio_poll() that found the handler ready. A nested
     * aio_poll() that finds it ready again takes it from the outer list. */
    int revents;
    QLIST_ENTRY(AioHandler) node_ready;
};

typedef QLIST_HEAD(, AioHandler) AioHandlerList;

/*
 * fd -> live handler. Written under list_lock (seq_cst stores); read by
 * walkers without it (aioloop__handler_of_fd()), which is why a table is
 * never freed while the context lives: growing it publishes a copy and
 * keeps the old one on the @older chain (tables double, so the chain
 * costs less than the current table). A walker that still reads an old
 * table sees an entry that may be stale, never freed memory: a node
 * retired while a walk is in progress is freed after it (see "Handler
 * lifetime" in aio-posix.c).
 */
typedef struct AioFdTable {
    struct AioFdTable *older;
    int size;
    AioHandler *slot[];         /* atomic */
} AioFdTable;

/* ------------------------------------------------------------------ */
/* Defined in fdmon/fdmon.h and attach.h. */
struct FDMonOps;
struct AioSleepHook;
struct AioAttachment;

/* ------------------------------------------------------------------ */
/* The context                                                         */

#define CTX_ALIGN 64
struct AioContext {
    /* First, by contract: the QEMU-named util/aio-posix.h of the
     * installed compat headers reads it as ctx->fdmon_ops (what QEMU's
     * test-nested-aio-poll does). See fdmon_ops below. */
    const struct FDMonOps *fdmon_ops;   /* atomic pointer */

    int refcnt;                     /* atomic */

    /* aio_context_acquire/release; aio_poll() holds it except while it
     * sleeps. Its contention callback notifies the context. */
    RFifoLock lock;

    /*
     * One cache line (the context is allocated CTX_ALIGN-aligned) for
     * what other threads write to wake the loop and what the loop reads
     * on every pass and busy-poll round: a cross-thread
     * qemu_bh_schedule() touches this line and the BH's, nothing of the
     * loop's own hot state (the lock above, poll_ns...).
     *
     * Bottom halves: bh_list is the lock-free list schedulers push to
     * (QSLIST_INSERT_HEAD_ATOMIC); aio_bh_poll() takes it whole.
     */
    BHList bh_list __attribute__((aligned(CTX_ALIGN)));
    QSIMPLEQ_HEAD(, BHListSlice) bh_slice_list;  /* loop thread only */

    /*
     * aio_notify() protocol. notify_me counts pollers about to sleep or
     * asleep: bit 0 belongs to the GSource (set between prepare and
     * check), bits 1+ count blocking aio_poll() calls (+2 each). notified
     * is set by every aio_notify() and cleared by aio_notify_accept(); the
     * eventfd behind notifier is written only when notify_me is nonzero.
     * See async.c for the orderings.
     */
    unsigned notify_me;             /* atomic */
    bool notified;                  /* atomic */
    bool kicked;                    /* atomic: see aioloop__kick() */
    EventNotifier notifier;

    QemuMutex bh_lock __attribute__((aligned(CTX_ALIGN)));
                                                 /* protects all_bhs */
    QLIST_HEAD(, QEMUBH) all_bhs;

    /* Handler set, see aio-posix.c. list_lock serialises writers; walks
     * are counted in walkers (its lock guards deleted_handlers). */
    QemuMutex list_lock;
    AioHandler *handlers;           /* atomic head */
    AioFdTable *fd_table;           /* atomic pointer; see AioFdTable */
    uint32_t next_tag;              /* AioHandler.tag source; list_lock */
    AioHandler *deleted_handlers;   /* retired, not yet freed; walkers'
                                     * lock */
    bool has_deleted;               /* atomic: deleted_handlers != NULL */
    QemuLockCnt walkers;            /* walks in progress, asleep or not */
    /* An outermost aio_poll() returned false while its caller held the
     * context and another thread was queued for it (see
     * held_by_caller_and_contended() in aio-posix.c). Context holder. */
    bool contention_reported;
    int poll_disable_cnt;           /* atomic: live handlers without io_poll */
    int user_handlers;              /* atomic: live handlers that are not
                                     * the context's own (list_lock) */
    unsigned handler_gen;           /* atomic: bumped on every change */
    int external_disable_cnt;       /* atomic */

    /* fd monitor in use and its private state. fdmon_ops changes (epoll to
     * poll fallback, poll to epoll for GLib) only under list_lock and
     * while the context is held (a sleeping waiter is woken by a kick). */
    /* fdmon_ops is the first field (above). */
    /* The epoll set. Its number never changes while the context lives;
     * the set behind it may be replaced (dup3) by a rebuild that drops
     * stale registrations, see fdmon-epoll.c. */
    int epollfd;
    unsigned epoll_stale_waits;     /* atomic: see fdmon-epoll.c */
    struct FDMonPollState *poll_state;

    /* Backends that arm their wake-up source only while the loop may
     * sleep; see AioSleepHook (attach.h). Changed and walked by the
     * context's holder only. */
    QLIST_HEAD(, AioSleepHook) sleep_hooks;

    /* What dies with the context or lets go of it at its last unref
     * (the thread pool, the GSource, block I/O states), sorted by order;
     * see AioAttachment (attach.h). attach_lock is a leaf lock. */
    QemuMutex attach_lock;
    QLIST_HEAD(, AioAttachment) attachments;    /* attach_lock */

    /* Adaptive polling (ns); the parameters are written by any thread
     * (atomic), poll_ns by the loop thread only. */
    int64_t poll_max_ns;
    int64_t poll_grow;
    int64_t poll_shrink;
    int64_t poll_ns;

    /* One timer list per clock; see timer.c. */
    QEMUTimerListGroup tlg;

    /* The context's own thread pool, created on first use (atomic
     * pointer): thread-pool.c's fast path to it. The pool's attachment
     * frees it; the core never reads this field. */
    struct ThreadPool *thread_pool;

    /* Bumped by internal BHs each time they run a user callback. Loop
     * thread only. */
    unsigned user_progress;

    /* aio_co_schedule(): lock-free list entered by co_schedule_bh. */
    QSLIST_HEAD(, Coroutine) scheduled_coroutines;
    QEMUBH *co_schedule_bh;

    /* Every live context is on one list (aio-posix.c), so that
     * event_notifier_cleanup() can tell a notifier still registered. */
    QLIST_ENTRY(AioContext) all_contexts;
};

/* async.c */
void aioloop__notifier_read(EventNotifier *e);
bool aioloop__notifier_poll(void *opaque);
void aioloop__notifier_poll_ready(void *opaque);
int aioloop__bh_poll_list(AioContext *ctx, bool *ran_idle);
/* aio_bh_poll() for aio_poll() and aio_dispatch(), setting *@ran_idle
 * when an idle BH ran. Inline, so that a pass with no BH (most passes)
 * pays two loads and no call. The relaxed load of the list head decides
 * nothing but "look no further": see aioloop__bh_poll_list() in async.c
 * for why it cannot miss a BH whose notification the pass consumed. A
 * nested call must still run the outer calls' pending slices. */
static inline int aioloop__bh_poll(AioContext *ctx, bool *ran_idle)
{
    if (likely(!qatomic_read(&QSLIST_FIRST(&ctx->bh_list)) &&
               QSIMPLEQ_EMPTY(&ctx->bh_slice_list))) {
        return 0;
    }
    return aioloop__bh_poll_list(ctx, ran_idle);
}
bool aioloop__bh_scheduled(AioContext *ctx);
void aioloop__kick(AioContext *ctx);
/* aio_notify_accept() that says whether it consumed a notification
 * (inline: aio_poll() calls it on every pass). The exchange is seq_cst:
 * ordered before the exchange of ctx->bh_list that follows in
 * aio_poll(); pairs with the store in aio_notify(). When notified is
 * already clear there is nothing to consume (and no store to pay); a
 * notification that arrives after that load stays for the next look.
 * Otherwise one exchange clears and reports it: a load followed by a
 * separate store could clear a notification that arrived in between
 * without reporting it (found by tests/model/aio-notify.pml). */
static inline bool aioloop__notify_accept(AioContext *ctx)
{
    return qatomic_read(&ctx->notified) &&
           qatomic_xchg(&ctx->notified, false);
}
QEMUBH *aioloop__bh_new_internal(AioContext *ctx, QEMUBHFunc *cb,
                                 void *opaque, const char *name);
/* qemu_bh_schedule() without waking the loop: only for the loop's own
 * thread at a point where it has yet to look at its BHs before it sleeps
 * (a sleep hook's prepare()), so that no eventfd write is needed. */
void aioloop__bh_schedule_local(QEMUBH *bh);
static inline void aioloop__report_progress(AioContext *ctx)
{
    ctx->user_progress++;
}

/* coroutine/coroutine.c: the body of ctx->co_schedule_bh. */
void aioloop__co_schedule_bh(void *opaque);

/* Timers: aio_poll() asks these two for the nearest deadline and to run
 * what expired (timer.c). */
static inline int64_t aioloop__timers_deadline_ns(AioContext *ctx)
{
    return timerlistgroup_deadline_ns(&ctx->tlg);
}

static inline bool aioloop__timers_run(AioContext *ctx)
{
    return aioloop__timerlistgroup_run_timers(&ctx->tlg);
}

/*
 * aioloop__poll_ctx(): the context of the innermost aio_poll() or
 * aio_dispatch() the calling thread is inside, else NULL (aio-posix.c).
 * For coroutines (coroutine.c's current_ctx(), on every
 * qemu_coroutine_enter()); see main-loop-internal.h for the thread's
 * other loops. Never read across a coroutine switch (a coroutine may
 * move threads).
 * AIOLOOP_TLS_FAST: initial-exec, so that reaching a thread-local is a
 * load from the thread pointer even in the shared library (no
 * __tls_get_addr call); such variables take a few bytes of the static
 * TLS area, which a dlopen() of the library has to find free (glibc
 * keeps hundreds of bytes for that).
 */
#define AIOLOOP_TLS_FAST \
    __attribute__((visibility("hidden"), tls_model("initial-exec")))
extern __thread AioContext *aioloop__poll_ctx_tls AIOLOOP_TLS_FAST;

static inline AioContext *aioloop__poll_ctx(void)
{
    return aioloop__poll_ctx_tls;
}

/* aio-posix.c */
int aioloop__handlers_init(AioContext *ctx, Error **errp);
void aioloop__handlers_cleanup(AioContext *ctx);
/*
 * The live handler of @fd, or NULL: under list_lock, or inside a walk
 * (then possibly a node retired meanwhile, still allocated and marked
 * deleted). The seq_cst loads pair with the writer's seq_cst stores
 * before it decides, under the walkers' lock, whether a retired node can
 * be freed at once: a walker counted before that decision is seen by it,
 * one counted after it sees the new entry. Lock-free: a few loads.
 */
static inline AioHandler *aioloop__handler_of_fd(AioContext *ctx, int fd)
{
    AioFdTable *t = qatomic_mb_read(&ctx->fd_table);

    if (!t || fd < 0 || fd >= t->size) {
        return NULL;
    }
    return qatomic_mb_read(&t->slot[fd]);
}
/* Adds, replaces or (all callbacks NULL) removes the handler of @fd.
 * Returns 0, or when adding or replacing (nothing changed then):
 * -ENOMEM; -EBADF if @fd is not an open descriptor; -EEXIST if @fd is
 * the context's own (its notifier, its epoll set) and @internal is
 * false. Removing a descriptor that has no handler of the caller's (the
 * context's own included) does nothing. Any other refusal of the fd
 * monitor is not an error: the context moves to ppoll. The public setters
 * abort with a message on every error. */
int aioloop__set_handler(AioContext *ctx, int fd, bool is_external,
                         bool internal, IOHandler *io_read,
                         EventNotifierHandler *en_read, IOHandler *io_write,
                         AioPollFn *io_poll, IOHandler *io_poll_ready,
                         void *opaque);

#endif /* AIOLOOP_AIO_INTERNAL_H */
