/*
 * aio-internal.h - the inside of an AioContext, shared by async.c,
 * aio-posix.c, the fd monitors (fdmon/) and the GLib source.
 *
 * Locks and protocols, field by field, are documented on struct AioContext
 * below; every shared field names what protects it.
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
#include <sys/epoll.h>
#include <time.h>

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

struct QEMUBH {
    AioContext *ctx;
    const char *name;
    QEMUBHFunc *cb;
    void *opaque;
    QSLIST_ENTRY(QEMUBH) next;  /* ctx->bh_list or a slice: see BH_PENDING */
    QLIST_ENTRY(QEMUBH) all;    /* ctx->all_bhs, under ctx->bh_lock */
    unsigned flags;             /* BH_*, atomic */
    MemReentrancyGuard *guard;  /* aio_bh_new_guarded(), or NULL */
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
/* fd monitors                                                         */

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

/* ------------------------------------------------------------------ */
/* The context                                                         */

struct AioContext {
    /* First, by contract: the QEMU-named util/aio-posix.h of the
     * installed compat headers reads it as ctx->fdmon_ops (what QEMU's
     * test-nested-aio-poll does). See fdmon_ops below. */
    const struct FDMonOps *fdmon_ops;   /* atomic pointer */

    int refcnt;                     /* atomic */

    /* aio_context_acquire/release; aio_poll() holds it except while it
     * sleeps. Its contention callback notifies the context (seed 002). */
    RFifoLock lock;

    /* Bottom halves: bh_list is the lock-free list schedulers push to
     * (QSLIST_INSERT_HEAD_ATOMIC); aio_bh_poll() takes it whole. */
    BHList bh_list;
    QSIMPLEQ_HEAD(, BHListSlice) bh_slice_list;  /* loop thread only */
    QemuMutex bh_lock;                           /* protects all_bhs */
    QLIST_HEAD(, QEMUBH) all_bhs;

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
     * sleep; see aioloop__sleep_hooks_prepare(). Changed and walked by
     * the context's holder only. */
    QLIST_HEAD(, AioSleepHook) sleep_hooks;

    /* Objects attached to the context that its last unref must drain and
     * detach (block I/O states); see AioAttachment. Context holder. */
    QLIST_HEAD(, AioAttachment) attachments;

    /* Adaptive polling (ns); the parameters are written by any thread
     * (atomic), poll_ns by the loop thread only. */
    int64_t poll_max_ns;
    int64_t poll_grow;
    int64_t poll_shrink;
    int64_t poll_ns;

    /* One timer list per clock; see timer.c. */
    QEMUTimerListGroup tlg;

    /* Created on first use (atomic pointer); see thread-pool.c. */
    struct ThreadPool *thread_pool;

    /* Bumped by internal BHs each time they run a user callback. Loop
     * thread only. */
    unsigned user_progress;

    /* aio_co_schedule(): lock-free list entered by co_schedule_bh. */
    QSLIST_HEAD(, Coroutine) scheduled_coroutines;
    QEMUBH *co_schedule_bh;

#if AIOLOOP_HAVE_GLIB
    struct AioGSource *gsource;     /* bh_lock */
#endif

    /* Every live context is on one list (aio-posix.c), so that
     * event_notifier_cleanup() can tell a notifier still registered. */
    QLIST_ENTRY(AioContext) all_contexts;
};

/* async.c */
void aioloop__notifier_read(EventNotifier *e);
bool aioloop__notifier_poll(void *opaque);
void aioloop__notifier_poll_ready(void *opaque);
int aioloop__bh_poll(AioContext *ctx, bool *ran_idle);
bool aioloop__bh_scheduled(AioContext *ctx);
void aioloop__kick(AioContext *ctx);
bool aioloop__notify_accept(AioContext *ctx);
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

/*
 * Which loop the calling thread runs, for coroutines (coroutine.c's
 * current_ctx(), on every qemu_coroutine_enter()) and the main-loop
 * bookkeeping; each answer is a thread-local load or two, inline:
 *  aioloop__poll_ctx(): the context of the innermost aio_poll() or
 *    aio_dispatch() the thread is inside, else NULL (aio-posix.c);
 *  aioloop__iothread_ctx(): the thread's home context: an IOThread's,
 *    in that IOThread, or one set with qemu_set_current_aio_context();
 *    else NULL (iothread.c);
 *  aioloop__in_main_thread(): whether this is the thread that created
 *    the main loop, which is still there (main-loop.c). That thread has
 *    aioloop__main_loop_gen_tls == aioloop__main_loop_gen (atomic; bumped
 *    by every creation and clean-up) and the context in
 *    aioloop__main_loop_ctx_tls; other threads never match.
 * Never read across a coroutine switch (a coroutine may move threads).
 * AIOLOOP_TLS_FAST: initial-exec, so that reaching them is a load from
 * the thread pointer even in the shared library (no __tls_get_addr call);
 * they take a few bytes of the static TLS area, which a dlopen() of the
 * library has to find free (glibc keeps hundreds of bytes for that).
 */
#define AIOLOOP_TLS_FAST \
    __attribute__((visibility("hidden"), tls_model("initial-exec")))
extern __thread AioContext *aioloop__poll_ctx_tls AIOLOOP_TLS_FAST;
extern __thread AioContext *aioloop__iothread_ctx_tls AIOLOOP_TLS_FAST;
extern __thread unsigned aioloop__main_loop_gen_tls AIOLOOP_TLS_FAST;
extern __thread AioContext *aioloop__main_loop_ctx_tls AIOLOOP_TLS_FAST;
extern unsigned aioloop__main_loop_gen __attribute__((visibility("hidden")));

static inline AioContext *aioloop__poll_ctx(void)
{
    return aioloop__poll_ctx_tls;
}

static inline AioContext *aioloop__iothread_ctx(void)
{
    return aioloop__iothread_ctx_tls;
}

static inline bool aioloop__in_main_thread(void)
{
    return aioloop__main_loop_gen_tls == qatomic_read(&aioloop__main_loop_gen)
           && aioloop__main_loop_ctx_tls;
}

/* async-context.c: the AsyncContext stack of the main-loop thread.
 * aioloop__async_depth is its depth (atomic; written by that thread only).
 * aioloop__main_current_ctx(): the top of the stack on the main-loop
 * thread, else the main context (NULL before qemu_init_main_loop()).
 * aioloop__async_context_adjust(ctx): on the main-loop thread while a
 * level is pushed, maps "no context" and every context of the stack below
 * the top to the top; anything else is returned unchanged. */
extern int aioloop__async_depth __attribute__((visibility("hidden")));
AioContext *aioloop__main_current_ctx(void);
AioContext *aioloop__async_context_adjust_slow(AioContext *ctx);
void aioloop__async_context_cleanup(void);
static inline AioContext *aioloop__async_context_adjust(AioContext *ctx)
{
    if (likely(qatomic_read(&aioloop__async_depth) == 0)) {
        return ctx;
    }
    return aioloop__async_context_adjust_slow(ctx);
}

/* coroutine/coroutine.c */
void aioloop__co_schedule_bh(void *opaque);


/* thread-pool.c */
void aioloop__thread_pool_destroy(struct ThreadPool *pool);

/* aio-glib.c */
#if AIOLOOP_HAVE_GLIB
void aioloop__gsource_detach(AioContext *ctx);
#endif

/* aio-posix.c */
int aioloop__handlers_init(AioContext *ctx, Error **errp);
void aioloop__handlers_cleanup(AioContext *ctx);
void aioloop__add_ready_handler(AioHandlerList *ready_list, AioHandler *node,
                                int revents);
int aioloop__handler_events(AioContext *ctx, AioHandler *node);
AioHandler *aioloop__handlers_first(AioContext *ctx);
AioHandler *aioloop__handler_next(AioHandler *node);
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
/* Moves the context from epoll to ppoll for good (cannot fail). Under
 * list_lock. */
void aioloop__fdmon_fall_back_locked(AioContext *ctx);
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

/* timer.c: timerlistgroup_init() that reports running out of memory
 * (-ENOMEM, with @tlg left empty) instead of aborting. */
int aioloop__timerlistgroup_try_init(QEMUTimerListGroup *tlg,
                                     QEMUTimerListNotifyCB *cb, void *opaque);

/*
 * Sleep hooks: for a backend whose completions can signal an fd the loop
 * watches (io_uring's registered eventfd), but whose signal costs the
 * signalling thread a wake-up and the loop a spurious iteration when
 * the loop is awake anyway. The loop calls prepare() each time it is
 * about to wait on its fd monitor (blocking or not, aio_poll() or the
 * GSource) and finish() once the wait is over:
 *
 *   prepare(opaque)  arm the signal, then (after a full barrier) look
 *                    whether work is already waiting that no signal
 *                    announced; if so, schedule a bottom half that
 *                    handles it (aioloop__bh_schedule_local(): the loop
 *                    looks at its BHs after the hooks, before it
 *                    sleeps), so that the wait does not sleep.
 *   finish(opaque)   disarm the signal: the loop is awake and will see
 *                    the work through its own calls.
 *
 * Both run in the loop thread with the context held, between
 * walk_begin/walk_end or in the GSource callbacks. add/remove: the
 * context's holder (attach/detach of a backend).
 */
typedef struct AioSleepHook {
    void (*prepare)(void *opaque);
    void (*finish)(void *opaque);
    void *opaque;
    QLIST_ENTRY(AioSleepHook) next;
} AioSleepHook;

static inline void aioloop__sleep_hook_add(AioContext *ctx,
                                           AioSleepHook *hook)
{
    QLIST_INSERT_HEAD(&ctx->sleep_hooks, hook, next);
}

static inline void aioloop__sleep_hook_remove(AioSleepHook *hook)
{
    QLIST_REMOVE(hook, next);
}

static inline void aioloop__sleep_hooks_prepare(AioContext *ctx)
{
    AioSleepHook *h;

    QLIST_FOREACH(h, &ctx->sleep_hooks, next) {
        h->prepare(h->opaque);
    }
}

static inline void aioloop__sleep_hooks_finish(AioContext *ctx)
{
    AioSleepHook *h;

    QLIST_FOREACH(h, &ctx->sleep_hooks, next) {
        h->finish(h->opaque);
    }
}

/*
 * An object attached to a context that lives on after it (a block I/O
 * state belongs to its creator, who frees it with *_cleanup()). If the
 * context's last reference goes while the object is still attached,
 * aio_context_unref() calls drain_detach(): complete every request of
 * the object (their callbacks run, from aio_poll() of the dying context)
 * and detach it, which must remove the attachment. The object itself is
 * not freed: its owner may still call its cleanup function (and its
 * detach function, which then does nothing).
 * add/remove: the context's holder (attach/detach).
 */
typedef struct AioAttachment {
    void (*drain_detach)(struct AioAttachment *a, AioContext *ctx);
    const char *what;           /* for the debug-build notice */
    QLIST_ENTRY(AioAttachment) next;
} AioAttachment;

static inline void aioloop__attachment_add(AioContext *ctx, AioAttachment *a)
{
    QLIST_INSERT_HEAD(&ctx->attachments, a, next);
}

static inline void aioloop__attachment_remove(AioAttachment *a)
{
    QLIST_REMOVE(a, next);
}

/* Timers: aio_poll() asks these two for the nearest deadline and to run
 * what expired (timer.c). */
static inline int64_t aioloop__timers_deadline_ns(AioContext *ctx)
{
    return timerlistgroup_deadline_ns(&ctx->tlg);
}

static inline bool aioloop__timers_run(AioContext *ctx)
{
    return timerlistgroup_run_timers(&ctx->tlg);
}

static inline int64_t aioloop__clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Monotonic time (QEMU_CLOCK_REALTIME) for the library's own use. */
static inline int64_t aioloop__now_ns(void)
{
    return aioloop__clock_ns(CLOCK_MONOTONIC);
}

/* Busy-wait hint for spin loops. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

#endif /* AIOLOOP_AIO_INTERNAL_H */
