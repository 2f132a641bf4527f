/*
 * aioloop/aio.h - the AioContext event loop.
 *
 * An AioContext is a small event loop: bottom halves (BHs, callbacks to run
 * "soon"), file-descriptor and event-notifier handlers, and (from
 * <aioloop/timer.h>) timers. A thread makes it turn by calling aio_poll().
 * Work can be handed to a context from any thread: qemu_bh_schedule() and
 * aio_notify() are wait-free and async-signal-safe.
 *
 * The names and signatures are QEMU's (include/block/aio.h), so code
 * written against QEMU's AioContext compiles with include changes only.
 * Where QEMU exposes struct AioContext, aioloop keeps it opaque.
 *
 * Thread tags at the end of each comment:
 *   "Any thread"        - may be called from any thread, concurrently.
 *   "Loop thread only"  - only from the thread running the context's
 *                         aio_poll(), or while holding the context with
 *                         aio_context_acquire().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_AIO_H
#define AIOLOOP_AIO_H

#include <stdbool.h>
#include <stdint.h>
#include <aioloop/config.h>
#include <aioloop/compiler.h>
#include <aioloop/error.h>
#include <aioloop/event-notifier.h>
#include <aioloop/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An event loop (opaque): created by aio_context_new(), reference
 * counted, freed by the last aio_context_unref(). */
typedef struct AioContext AioContext;
/* A bottom half (opaque): a callback to run "soon" from its context's
 * aio_poll(). Created by aio_bh_new(), freed by qemu_bh_delete(). */
typedef struct QEMUBH QEMUBH;
/* One fd's handler registration inside a context (opaque; internal, kept
 * for QEMU source compatibility). */
typedef struct AioHandler AioHandler;

/* Opaque to aioloop: the block-layer object a request belongs to. The
 * library never dereferences it; callers may pass NULL. */
typedef struct BlockDriverState BlockDriverState;

/* A bottom half's callback: called with the opaque given to aio_bh_new(). */
typedef void QEMUBHFunc(void *opaque);
/* An fd handler (aio_set_fd_handler()): called with the registration's
 * opaque when its fd is readable or writable. */
typedef void IOHandler(void *opaque);
/* An event-notifier handler (aio_set_event_notifier()): called with the
 * notifier when it is set; it usually starts with
 * event_notifier_test_and_clear(). */
typedef void EventNotifierHandler(EventNotifier *notifier);
/* Busy-poll check: returns true when the handler has work, without a
 * system call. See aio_set_fd_handler_poll(). */
typedef bool AioPollFn(void *opaque);

/* ------------------------------------------------------------------ */
/* Lifecycle and ownership                                             */

/**
 * aio_context_new - allocate a new AioContext.
 * @errp: error object, may be NULL.
 *
 * The context starts with one reference. Its fd monitor is epoll on Linux;
 * setting the environment variable AIOLOOP_FDMON to "poll" (or "epoll")
 * before the call forces a backend (see aio_context_fdmon_name()). If
 * epoll cannot be set up (epoll_create1 fails, e.g. EMFILE), the context
 * uses ppoll instead: that is not an error.
 *
 * Returns: the new context, or NULL with @errp set (and errno set to the
 * cause: ENOMEM, EMFILE...) when a resource (memory, file descriptors)
 * could not be obtained; nothing is leaked then.
 * Any thread.
 */
AIOLOOP_API AioContext *aio_context_new(Error **errp);

/**
 * aio_context_ref - add a reference to @ctx.
 * Any thread.
 */
AIOLOOP_API void aio_context_ref(AioContext *ctx);

/**
 * aio_context_unref - drop a reference to @ctx.
 *
 * The last unref frees the context and everything still attached to it:
 * bottom halves (a BH that was never deleted is reported on stderr by its
 * debug name in builds without NDEBUG), handler bookkeeping (the caller
 * still owns and closes its fds), timer lists and the thread pool (whose
 * pending completion callbacks run first). Block I/O states
 * (<aioloop/raw-aio.h>, <aioloop/block-backend.h>) still attached are
 * drained first, from inside this call: their queued and in-flight
 * requests complete and their callbacks run (a notice names each such
 * state on stderr in builds without NDEBUG); then they are detached.
 * They are not freed: they belong to whoever created them, who frees
 * them with their cleanup function (calling their detach function on
 * the freed context is then harmless and does nothing). No aio_poll()
 * on @ctx may be running.
 * Any thread (the last unref: not from inside @ctx's callbacks).
 */
AIOLOOP_API void aio_context_unref(AioContext *ctx);

/**
 * aio_context_acquire - take ownership of @ctx (recursive, FIFO-fair).
 *
 * A thread that wants to run several aio_poll() calls without another
 * thread slipping in between holds the context around them; aio_poll()
 * acquires the context itself and releases it while it sleeps, so holding
 * it is never required. If another thread owns the context and sleeps in a
 * blocking aio_poll(), that poll is woken (it returns, possibly with no
 * progress) so that the owner's loop can release the context promptly.
 * Any thread.
 */
AIOLOOP_API void aio_context_acquire(AioContext *ctx);

/**
 * aio_context_release - release one level of ownership of @ctx.
 * Calling it from a thread that does not own @ctx aborts.
 * Any thread (the owner).
 */
AIOLOOP_API void aio_context_release(AioContext *ctx);

/**
 * aio_context_fdmon_name - name of the fd monitor @ctx uses now:
 * "epoll" or "poll". A context falls back from epoll to poll when epoll
 * refuses an open descriptor (regular files) or runs out of watches, or
 * when it cannot rebuild its epoll set to drop a leftover registration
 * (see aio_set_fd_handler()); never for a descriptor that is not open.
 * Any thread.
 */
AIOLOOP_API const char *aio_context_fdmon_name(AioContext *ctx);

/**
 * aio_context_set_poll_params - configure adaptive busy polling.
 * @ctx: the context.
 * @max_ns: longest busy-poll before sleeping, in ns; 0 disables polling.
 * @grow: factor by which the poll time grows when a wait ended just after
 *        the current poll time (0 = default 2).
 * @shrink: divisor by which it shrinks when waits are longer than
 *          @max_ns (0 = reset to 0 at once).
 * @errp: set on a negative argument.
 *
 * While polling, aio_poll() calls the handlers' AioPollFn (see
 * aio_set_fd_handler_poll()) and checks for scheduled BHs instead of
 * entering epoll/ppoll, so a cross-thread wake-up costs no system call.
 * Polling is used only while every registered handler has a poll
 * function. Default: 0 (off) for aio_context_new(); an IOThread's context
 * starts with IOTHREAD_POLL_MAX_NS_DEFAULT (see iothread_create()).
 * Any thread.
 */
AIOLOOP_API void aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                             int64_t grow, int64_t shrink,
                                             Error **errp);

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */

/**
 * aio_bh_new_full - allocate a bottom half on @ctx.
 * @ctx: the context whose aio_poll() runs the BH.
 * @cb: the callback (required), @opaque: its argument,
 * @name: a debug name, reported if the BH leaks (may be NULL).
 *
 * aio_bh_new(ctx, cb, opaque) calls this with the callback's name.
 * Returns: the BH, never NULL (allocation failure aborts).
 * Any thread.
 */
AIOLOOP_API QEMUBH *aio_bh_new_full(AioContext *ctx, QEMUBHFunc *cb,
                                    void *opaque, const char *name);
/**
 * aio_bh_new - aio_bh_new_full() with the callback's name as debug name.
 * Any thread.
 */
#define aio_bh_new(ctx, cb, opaque) aio_bh_new_full((ctx), (cb), (opaque), #cb)

/**
 * aio_bh_schedule_oneshot_full - run @cb(@opaque) once from @ctx's loop,
 * then free the BH. aio_bh_schedule_oneshot() names it after @cb.
 * Any thread.
 */
AIOLOOP_API void aio_bh_schedule_oneshot_full(AioContext *ctx, QEMUBHFunc *cb,
                                              void *opaque, const char *name);
/**
 * aio_bh_schedule_oneshot - aio_bh_schedule_oneshot_full() with the
 * callback's name as debug name. Any thread.
 */
#define aio_bh_schedule_oneshot(ctx, cb, opaque) \
    aio_bh_schedule_oneshot_full((ctx), (cb), (opaque), #cb)

/**
 * aio_bh_poll - run the bottom halves that are scheduled now.
 *
 * A BH scheduled while this runs (from a callback, itself included, or
 * from another thread) runs in the next call, so a self-rescheduling BH
 * cannot starve the loop. Normally called by aio_poll().
 * Returns: nonzero if a BH other than an idle BH ran.
 * Loop thread only.
 */
AIOLOOP_API int aio_bh_poll(AioContext *ctx);

/**
 * qemu_bh_schedule - schedule @bh to run from its context's next
 * aio_bh_poll(), waking the loop if it sleeps. Scheduling a BH that is
 * already scheduled does nothing: it runs once.
 * Any thread, async-signal-safe (wait-free, no lock, no allocation).
 */
AIOLOOP_API void qemu_bh_schedule(QEMUBH *bh);

/**
 * qemu_bh_schedule_idle - schedule @bh without waking the loop.
 *
 * The BH runs at the next aio_poll(), blocking or not; a blocking
 * aio_poll() that starts with an idle BH pending sleeps at most 10 ms.
 * Running an idle BH does not count as progress.
 * Any thread, async-signal-safe.
 */
AIOLOOP_API void qemu_bh_schedule_idle(QEMUBH *bh);

/**
 * qemu_bh_cancel - undo the schedule of @bh; it stays allocated.
 * Cancelling races with a loop that is about to run the BH unless called
 * from the loop thread.
 * Any thread.
 */
AIOLOOP_API void qemu_bh_cancel(QEMUBH *bh);

/**
 * qemu_bh_delete - cancel @bh and free it.
 *
 * Safe from inside the BH's own callback and from other BHs of the same
 * loop; the memory is released by the loop's next aio_bh_poll() (or when
 * the context is freed). @bh must not be used after this call.
 * Any thread.
 */
AIOLOOP_API void qemu_bh_delete(QEMUBH *bh);

/* ------------------------------------------------------------------ */
/* Notification                                                        */

/**
 * aio_notify - force the context's loop to iterate.
 *
 * Wakes a sleeping aio_poll() (or GLib main loop iteration). When nobody
 * sleeps it costs two atomic operations and no system call; the
 * notification is remembered, so the next blocking aio_poll() returns
 * promptly, possibly without progress.
 * Any thread, async-signal-safe.
 */
AIOLOOP_API void aio_notify(AioContext *ctx);

/**
 * aio_notify_accept - acknowledge a pending aio_notify().
 * aio_poll() calls it itself; it is exported for custom loops.
 * Loop thread only.
 */
AIOLOOP_API void aio_notify_accept(AioContext *ctx);

/* ------------------------------------------------------------------ */
/* Running the loop                                                    */

/**
 * aio_poll - run one iteration of @ctx's event loop.
 * @ctx: the context.
 * @blocking: if true, wait until at least one callback ran or aio_notify()
 *            was called; the wait ends no later than the nearest timer.
 *
 * Runs the ready bottom halves, fd and event-notifier handlers and expired
 * timers of @ctx only. aio_poll() acquires @ctx itself and releases it
 * while it sleeps. It may be called re-entrantly from inside a callback
 * (a nested event loop): the nested call runs other ready work.
 *
 * Returns: true if progress was made, i.e. a user callback ran (a BH other
 * than an idle one, an fd or notifier handler, a timer, a completion
 * callback, a coroutine). The context's own bookkeeping is not progress.
 * A non-blocking call never sleeps.
 * Loop thread only (whichever thread calls it becomes the loop thread
 * for the duration of the call).
 */
AIOLOOP_API bool aio_poll(AioContext *ctx, bool blocking);

/**
 * aio_compute_timeout - how long a blocking aio_poll() may sleep.
 * Returns: 0 when a (non-idle) BH is scheduled or a timer expired, at most
 * 10 ms (10,000,000) when only idle BHs are pending, otherwise nanoseconds
 * to the nearest timer deadline, or -1 when nothing is pending.
 * Loop thread only.
 */
AIOLOOP_API int64_t aio_compute_timeout(AioContext *ctx);

/**
 * aio_prepare - before an external poll (QEMU's GSource prepare step):
 * report whether work is ready that needs no waiting, a scheduled
 * (non-idle) BH or an expired timer, so that the caller polls with a zero
 * timeout. It neither looks at the fds nor runs the poll handlers
 * (aio_pending() checks the fds).
 * Returns: true if aio_compute_timeout() is 0.
 * Loop thread only.
 */
AIOLOOP_API bool aio_prepare(AioContext *ctx);

/**
 * aio_pending - whether any callback is ready: a scheduled BH, a ready fd
 * handler, or an expired timer.
 * Loop thread only.
 */
AIOLOOP_API bool aio_pending(AioContext *ctx);

/**
 * aio_dispatch - run everything that is ready, without waiting: BHs, fd
 * handlers whose fds are ready, expired timers.
 * Returns: true if progress was made (as for aio_poll()).
 * Loop thread only.
 */
AIOLOOP_API bool aio_dispatch(AioContext *ctx);

/* ------------------------------------------------------------------ */
/* File descriptors and event notifiers                                */

/**
 * aio_set_fd_handler - register, update or remove the handlers of @fd.
 * @ctx: the context whose aio_poll() watches @fd.
 * @fd: the descriptor (stays owned by the caller, who closes it after
 *      removing the handlers).
 * @is_external: the handler serves an external client (a guest device, a
 *               network peer); it is skipped while aio_disable_external()
 *               is in force.
 * @io_read: called when @fd is readable; @io_write: when writable. Both
 *           NULL removes the registration.
 * @opaque: the argument both handlers receive.
 *
 * One handler set per (fd, context); calling again updates it. Handlers
 * are level-triggered: they run on every iteration while the fd is ready.
 * Removal is safe from inside any handler, the fd's own included; once
 * removal returns on the loop thread the handlers are not called again.
 * Removing the handlers of an fd that has none does nothing.
 *
 * It cannot fail in a way the caller must handle: if the epoll monitor
 * refuses @fd (a regular file: EPERM; the watch limit: ENOSPC; ENOMEM),
 * the context moves to the ppoll monitor for good and the handler is
 * watched there, never dropped. There is no error channel, so misuse
 * aborts with a message naming the descriptor and the context, in every
 * build (NDEBUG included), on both fd monitors:
 *  - adding or updating handlers on an @fd that is not an open
 *    descriptor (negative, never opened, or already closed): "fd N is not
 *    an open file descriptor". It never moves the context to ppoll.
 *  - adding handlers on a descriptor number that belongs to @ctx itself
 *    (its event notifier or its epoll set: the caller closed a descriptor
 *    of its own and still uses the number). Removing the handlers of such
 *    a number does nothing: the caller has none there, and the context's
 *    own handler stays, so cross-thread wake-ups keep working.
 *  - running out of memory for the handler.
 * Close a descriptor only after removing its handlers. If it is closed
 * while registered, its handlers are not called again and do not wake
 * the loop (epoll forgets a closed descriptor; ppoll sees POLLNVAL once
 * and parks the handler), until they are removed - which works as usual -
 * or replaced; a later handler on the same number watches the new file.
 * Exception, epoll only: if a duplicate of the descriptor (dup(), a fork
 * child, SCM_RIGHTS) keeps the file open, epoll still reports it under
 * the closed number and the handler keeps being called until removed.
 * After removal such a leftover registration is never dispatched: its
 * events are dropped and the epoll set is rebuilt without it.
 * Any thread (the guarantee about late calls holds on the loop thread).
 */
AIOLOOP_API void aio_set_fd_handler(AioContext *ctx, int fd, bool is_external,
                                    IOHandler *io_read, IOHandler *io_write,
                                    void *opaque);

/**
 * aio_set_fd_handler_poll - aio_set_fd_handler() with a busy-poll check.
 * @ctx, @fd, @is_external, @io_read, @io_write, @opaque: as for
 *      aio_set_fd_handler().
 * @io_poll: called during adaptive polling (and by non-blocking
 *           aio_poll()) instead of a system call; returns true when there
 *           is work. May be NULL.
 * @io_poll_ready: called when @io_poll returned true; NULL means @io_read.
 *
 * Any thread.
 */
AIOLOOP_API void aio_set_fd_handler_poll(AioContext *ctx, int fd,
                                         bool is_external,
                                         IOHandler *io_read,
                                         IOHandler *io_write,
                                         AioPollFn *io_poll,
                                         IOHandler *io_poll_ready,
                                         void *opaque);

/**
 * aio_set_event_notifier - run @io_read(@notifier) when @notifier is set;
 * NULL removes it. The handler usually starts with
 * event_notifier_test_and_clear(). Same rules as aio_set_fd_handler().
 * Registering an uninitialised notifier aborts with a message naming it;
 * removing one does nothing (it cannot be registered: event_notifier_
 * cleanup() of a registered notifier aborts, see <aioloop/event-notifier.h>).
 * Any thread.
 */
AIOLOOP_API void aio_set_event_notifier(AioContext *ctx,
                                        EventNotifier *notifier,
                                        bool is_external,
                                        EventNotifierHandler *io_read);

/**
 * aio_disable_external - stop dispatching is_external handlers of @ctx.
 * Nests: each call needs one aio_enable_external().
 * Any thread.
 */
AIOLOOP_API void aio_disable_external(AioContext *ctx);

/**
 * aio_enable_external - undo one aio_disable_external(); when the count
 * drops to zero the external handlers run again.
 * Any thread.
 */
AIOLOOP_API void aio_enable_external(AioContext *ctx);

/**
 * aio_external_disabled - whether is_external handlers are disabled.
 * Any thread.
 */
AIOLOOP_API bool aio_external_disabled(AioContext *ctx);

struct ThreadPool;
/**
 * aio_get_thread_pool - the thread pool of @ctx (<aioloop/thread-pool.h>),
 * created on first use and freed with the context.
 * Any thread.
 */
AIOLOOP_API struct ThreadPool *aio_get_thread_pool(AioContext *ctx);

#if AIOLOOP_HAVE_GLIB
/* GLib's event source type (from <glib.h>), declared here so that this
 * header does not need GLib's. */
typedef struct _GSource GSource;
/**
 * aio_get_g_source - a GSource that runs @ctx from a GLib main loop.
 *
 * Attach it with g_source_attach(); g_main_context_iteration() then runs
 * the context's BHs, handlers and timers. With the epoll fd monitor GLib
 * polls the one epoll descriptor; with the poll monitor it polls every
 * handler's descriptor. The context owns the source: when the context is
 * freed the source is destroyed (detached) and does nothing afterwards.
 * Returns: a new reference, to be dropped with g_source_unref().
 * Any thread.
 */
AIOLOOP_API GSource *aio_get_g_source(AioContext *ctx);
#endif

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_AIO_H */
