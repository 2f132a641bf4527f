/*
 * async.c - AioContext lifecycle, bottom halves and aio_notify().
 *
 * Bottom halves
 * -------------
 * A BH is scheduled by setting bits in its flags word with one atomic
 * fetch-or; the thread that sets BH_PENDING from 0 pushes the BH onto the
 * context's lock-free list with one compare-and-swap. Neither step can
 * block or fail, so qemu_bh_schedule() is wait-free with respect to the
 * loop and safe in a signal handler. aio_bh_poll() takes the whole list
 * with one exchange (after a plain look: an empty list costs no locked
 * instruction), reverses it into scheduling order and runs it as a
 * "slice". A BH scheduled while the slice runs lands on the fresh list and
 * runs in the next aio_bh_poll(): a BH that reschedules itself makes one
 * step per aio_poll() and cannot starve the loop.
 *
 * Deleting a BH is scheduling it with BH_DELETED: whatever aio_bh_poll()
 * takes it off the list frees it instead of running it. So deletion from
 * any callback (the BH's own included) or any thread never frees memory
 * that a running aio_bh_poll() still holds. Nested aio_bh_poll() calls
 * share the outer calls' slices (ctx->bh_slice_list), oldest first. A
 * call that takes a single BH while no outer slice is pending runs it
 * without building a slice (it would be empty before the callback runs).
 *
 * Every BH is also on ctx->all_bhs (a mutex-protected list touched only
 * by aio_bh_new and frees), so the last unref of a context can free - and
 * in debug builds name - BHs their owner forgot.
 *
 * Scheduling a BH does not even store to notified unless a poller has
 * announced itself in notify_me: the BH list is itself the flag (see
 * bh_enqueue()).
 *
 * aio_notify() and notify_me
 * --------------------------
 * aio_notify() must wake a sleeping aio_poll() but should cost no system
 * call when nobody sleeps. A blocking aio_poll() adds 2 to notify_me (a
 * seq_cst read-modify-write) before it looks at notified, BHs and timers
 * for the last time; aio_notify() sets notified (seq_cst store) and then
 * reads notify_me (seq_cst load). In the single total order of seq_cst
 * operations one of the two comes first, so either the notifier sees the
 * poller and writes the eventfd, or the poller sees notified == true and
 * does not sleep. Pairs: aio_notify() <-> aio_poll()'s notify_me increment
 * (aio-posix.c) and aio_ctx_prepare()'s notify_me |= 1 (aio-glib.c).
 * notified stays set until aio_notify_accept(), so a notification that
 * arrives while nobody polls makes the next blocking aio_poll() return.
 * aio_notify_accept() clears notified with a seq_cst exchange before the
 * BH list is looked at, so a BH whose notification it consumed is always
 * seen by the aio_bh_poll() that follows (the exchange synchronizes with
 * the aio_notify() that came after the push; see aioloop__bh_poll_list()
 * for why the look may be a relaxed load); aio_poll() returns when that
 * exchange consumed a notification. The handshake is
 * model-checked: tests/model/aio-notify.pml.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aio-internal.h"
#include "attach.h"
#include "timer-internal.h"
#include "util/alloc.h"
#include "util/misuse.h"
#include "util/rfifolock-internal.h"

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */

/* A new BH on @ctx; NULL if out of memory and @may_fail, else that
 * aborts (see the policy in util/alloc.h). */
static QEMUBH *bh_alloc(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                        const char *name, unsigned flags, bool may_fail)
{
    void *mem;
    QEMUBH *bh;

    bh = aioloop__posix_memalign(&mem, BH_ALIGN, sizeof(*bh)) ? NULL : mem;
    if (!bh) {
        if (may_fail) {
            return NULL;
        }
        aioloop__oom("allocating BH '%s'", name ? name : "?");
    }
    *bh = (QEMUBH) {
        .ctx = ctx,
        .name = name,
        .cb = cb,
        .opaque = opaque,
        .flags = flags,
    };
    qemu_mutex_lock(&ctx->bh_lock);
    QLIST_INSERT_HEAD(&ctx->all_bhs, bh, all);
    qemu_mutex_unlock(&ctx->bh_lock);
    return bh;
}

static void bh_free(QEMUBH *bh)
{
    AioContext *ctx = bh->ctx;

    qemu_mutex_lock(&ctx->bh_lock);
    QLIST_REMOVE(bh, all);
    qemu_mutex_unlock(&ctx->bh_lock);
    free(bh);
}

static inline const char *bh_name(const char *name)
{
    return name ? name : "(unnamed)";
}

/* A BH without a context or callback would crash when scheduled or run,
 * far from the mistake: stop here, naming it. */
static void bh_check_new(const char *func, AioContext *ctx, QEMUBHFunc *cb,
                         const char *name)
{
    if (unlikely(!ctx)) {
        aioloop__misuse(func, "NULL AioContext for BH '%s'", bh_name(name));
    }
    if (unlikely(!cb)) {
        aioloop__misuse(func, "BH '%s' has no callback (NULL)",
                        bh_name(name));
    }
}

QEMUBH *aio_bh_new_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                        const char *name)
{
    bh_check_new("aio_bh_new", ctx, cb, name);
    return bh_alloc(ctx, cb, opaque, name, 0, false);
}

QEMUBH *aio_bh_new_guarded_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                                const char *name, MemReentrancyGuard *guard)
{
    QEMUBH *bh = aio_bh_new_full(ctx, cb, opaque, name);

    bh->guard = guard;
    return bh;
}

/* Run @bh's callback; a guarded BH raises its guard around it (the BH
 * may be freed by its callback: the guard pointer is read first). */
static inline void bh_call(QEMUBH *bh)
{
    MemReentrancyGuard *guard = bh->guard;
    bool was_engaged = false;

    if (unlikely(guard)) {
        was_engaged = guard->engaged_in_io;
        guard->engaged_in_io = true;
    }
    bh->cb(bh->opaque);
    if (unlikely(guard)) {
        guard->engaged_in_io = was_engaged;
    }
}

/*
 * Set @new_flags and make sure the BH is on its context's list.
 * Wait-free: one fetch-or, at most one CAS loop iteration per concurrent
 * push, no lock. The CAS publishing the BH (seq_cst) comes before the
 * store to ctx->notified in aio_notify(), see the essay above.
 */
static inline unsigned bh_enqueue(QEMUBH *bh, unsigned new_flags,
                                  bool notify)
{
    AioContext *ctx;
    unsigned old;

    /* After a cross-thread schedule the BH's line is in the loop's CPU
     * (its last run wrote the flags): ask for it for writing, so that
     * the read of bh->ctx does not fetch it only to share it before the
     * fetch-or. Not the list head's line: a busy-polling loop reads it
     * all the time and would take it back before the CAS (measured: no
     * difference either way in the cross-thread ping-pong). */
    aioloop__prefetch_w(&bh->flags);
    ctx = bh->ctx;
    old = qatomic_fetch_or(&bh->flags, BH_PENDING | new_flags);

    if (!(old & BH_PENDING)) {
        QSLIST_INSERT_HEAD_ATOMIC(&ctx->bh_list, bh, next);
    }
    /* The fetch-or / CAS above are seq_cst writes of the BH list; a
     * poller that is about to sleep has raised notify_me (seq_cst) before
     * it reads that list. So if notify_me reads 0 here, that poller will
     * see this BH and not sleep, and a busy-polling loop sees the list
     * non-empty (aioloop__notifier_poll): no eventfd write, no store to
     * ctx->notified. Otherwise wake it. */
    if (notify && qatomic_mb_read(&ctx->notify_me)) {
        aio_notify(ctx);
    }
    return old;
}

QEMUBH *aioloop__bh_new_internal(AioContext *ctx, QEMUBHFunc *cb,
                                 void *opaque, const char *name)
{
    return bh_alloc(ctx, cb, opaque, name, BH_INTERNAL, false);
}

void aio_bh_schedule_oneshot_full(AioContext *ctx, QEMUBHFunc *cb,
                                  void *opaque, const char *name)
{
    QEMUBH *bh;

    bh_check_new("aio_bh_schedule_oneshot", ctx, cb, name);
    bh = bh_alloc(ctx, cb, opaque, name, BH_ONESHOT, false);
    bh_enqueue(bh, BH_SCHEDULED, true);
}

void aioloop__bh_schedule_local(QEMUBH *bh)
{
    bh_enqueue(bh, BH_SCHEDULED, false);
}

/*
 * Misuse of a BH handle. Scheduling or cancelling a BH that was deleted
 * but not yet freed is harmless (it stays deleted: it is freed, never
 * run), as in QEMU, where another thread may delete a BH that keeps
 * rescheduling itself. Deleting it a second time is always a bug (two
 * owners; had the loop freed it in between, a use after free), so it
 * aborts while the BH still exists to be named. Once freed, nothing can
 * be checked. A NULL BH has nothing to cancel or delete; scheduling it
 * would lose the work, so that aborts.
 */
void qemu_bh_schedule(QEMUBH *bh)
{
    if (unlikely(!bh)) {
        aioloop__misuse("qemu_bh_schedule", "NULL BH");
    }
    bh_enqueue(bh, BH_SCHEDULED, true);
}

void qemu_bh_schedule_idle(QEMUBH *bh)
{
    if (unlikely(!bh)) {
        aioloop__misuse("qemu_bh_schedule_idle", "NULL BH");
    }
    bh_enqueue(bh, BH_IDLE, false);
}

void qemu_bh_cancel(QEMUBH *bh)
{
    if (bh) {
        qatomic_and(&bh->flags, ~(unsigned)(BH_SCHEDULED | BH_IDLE));
    }
}

void qemu_bh_delete(QEMUBH *bh)
{
    if (!bh) {
        return;
    }
    /* Freed by the aio_bh_poll() that takes it off the list. As in QEMU
     * (5.0 on), the loop is woken like for a schedule, so that a loop
     * asleep in aio_poll() or GLib frees it promptly. */
    if (unlikely(bh_enqueue(bh, BH_DELETED, true) & BH_DELETED)) {
        aioloop__misuse("qemu_bh_delete", "BH '%s' deleted twice",
                        bh_name(bh->name));
    }
}

void qemu_bh_delete_quiet(QEMUBH *bh)
{
    /* The same without the wake-up: freed at the loop's next look. */
    if (!bh) {
        return;
    }
    if (unlikely(bh_enqueue(bh, BH_DELETED, false) & BH_DELETED)) {
        aioloop__misuse("qemu_bh_delete_quiet", "BH '%s' deleted twice",
                        bh_name(bh->name));
    }
}

/* Take the next BH off the oldest slice; NULL when all slices are done. */
static QEMUBH *bh_dequeue(AioContext *ctx, unsigned *flags)
{
    BHListSlice *s;

    while ((s = QSIMPLEQ_FIRST(&ctx->bh_slice_list))) {
        QEMUBH *bh = QSLIST_FIRST(&s->bh_list);

        if (bh) {
            QSLIST_REMOVE_HEAD(&s->bh_list, next);
            /* Clearing BH_PENDING lets the callback (or anyone) schedule
             * the BH again: it then goes onto ctx->bh_list, i.e. into the
             * next aio_bh_poll(). */
            *flags = qatomic_fetch_and(&bh->flags,
                                       ~(unsigned)(BH_PENDING | BH_SCHEDULED |
                                                   BH_IDLE));
            return bh;
        }
        QSIMPLEQ_REMOVE_HEAD(&ctx->bh_slice_list, next);
    }
    return NULL;
}

/* Run (or free) one BH taken off a list, @flags being its flags before
 * bh_dequeue() cleared them. Returns whether that was progress. */
static inline int bh_run(AioContext *ctx, QEMUBH *bh, unsigned flags,
                         bool *ran_idle)
{
    int ret = 0;

    if ((flags & (BH_SCHEDULED | BH_IDLE)) && !(flags & BH_DELETED)) {
        if (flags & BH_INTERNAL) {
            unsigned before = ctx->user_progress;

            bh_call(bh);
            if (ctx->user_progress != before) {
                ret = 1;
            }
        } else {
            if (flags & BH_SCHEDULED) {
                ret = 1;
            } else {
                *ran_idle = true;
            }
            bh_call(bh);
        }
    }
    if (flags & (BH_DELETED | BH_ONESHOT)) {
        bh_free(bh);
    }
    return ret;
}

/* bh_run() out of line, for the single-BH path's uncommon cases. */
static __attribute__((noinline)) int bh_run_one(AioContext *ctx, QEMUBH *bh,
                                                unsigned flags,
                                                bool *ran_idle)
{
    return bh_run(ctx, bh, flags, ran_idle);
}

/* What aioloop__bh_poll() does when it took more than one BH, or runs
 * inside an outer aio_bh_poll() whose slices are still pending: build a
 * slice of @lifo (newest first, may be empty) and run every slice.
 * Out of line, so that the common pass keeps a small frame. */
static __attribute__((noinline)) int bh_poll_slices(AioContext *ctx,
                                                    QEMUBH *lifo,
                                                    bool *ran_idle)
{
    BHListSlice slice;
    QEMUBH *bh;
    unsigned flags;
    int ret = 0;

    /* Everything scheduled until now, newest first: reverse it. */
    QSLIST_INIT(&slice.bh_list);
    while ((bh = lifo)) {
        lifo = QSLIST_NEXT(bh, next);
        QSLIST_INSERT_HEAD(&slice.bh_list, bh, next);
    }
    QSIMPLEQ_INSERT_TAIL(&ctx->bh_slice_list, &slice, next);

    while ((bh = bh_dequeue(ctx, &flags))) {
        ret |= bh_run(ctx, bh, flags, ran_idle);
    }
    /* Nested calls may have emptied and unlinked our slice already; the
     * loop above only stops when every slice is done. */
    return ret;
}

int aioloop__bh_poll_list(AioContext *ctx, bool *ran_idle)
{
    QEMUBH *bh;
    unsigned flags;

    /*
     * Look before taking: most passes find the list empty, and then the
     * exchange (a locked instruction that also takes the line away from
     * a scheduler on another CPU) is not needed. A relaxed load is
     * enough. Nodes are not dereferenced on the strength of it: only
     * after the seq_cst exchange below, which pairs with the pushing CAS.
     * Nor does it weaken the notification handshake: a notification
     * consumed by aio_notify_accept()'s exchange synchronizes with the
     * aio_notify() that followed the push, so the push happens before
     * this load, which therefore sees it (or a later value). A push this
     * load misses is one that came after it: the next pass runs it, as
     * if it had come just after this one (scheduling gives no promise to
     * the pass already under way), and the scheduler's notify_me check
     * still wakes a loop about to sleep.
     */
    bh = qatomic_read(&QSLIST_FIRST(&ctx->bh_list));
    if (!bh) {
        /* Outer slices still pending: a nested call runs them too. */
        return unlikely(!QSIMPLEQ_EMPTY(&ctx->bh_slice_list)) ?
               bh_poll_slices(ctx, NULL, ran_idle) : 0;
    }
    /* The head is on the list, so it cannot be freed but by us: ask for
     * its line (the flags word that the fetch-and below writes, on
     * another CPU's cache after a cross-thread schedule) while the
     * exchange waits for the list head's line. A hint: it never faults
     * and orders nothing (aioloop__prefetch_w()). */
    aioloop__prefetch_w(&bh->flags);
    bh = qatomic_xchg(&QSLIST_FIRST(&ctx->bh_list), NULL);
    /* One BH and no outer slice (the common case, and not nested): it is
     * taken off before its callback runs, so a slice holding it would
     * already be empty for any nested aio_bh_poll() the callback makes,
     * and BHs scheduled meanwhile go to the next call either way. No
     * slice is needed; the order is trivially kept. */
    if (likely(!QSLIST_NEXT(bh, next) &&
               QSIMPLEQ_EMPTY(&ctx->bh_slice_list))) {
        /* As in bh_dequeue(): clearing BH_PENDING lets it be scheduled
         * again, into the next aio_bh_poll(). */
        flags = qatomic_fetch_and(&bh->flags,
                                  ~(unsigned)(BH_PENDING | BH_SCHEDULED |
                                              BH_IDLE));
        /* The plain case of bh_run(): a user BH scheduled with
         * qemu_bh_schedule(), not deleted, not one-shot, no guard. It
         * is progress and nothing of it is needed after the callback,
         * which leaves this function a small frame. */
        if (likely((flags & (BH_SCHEDULED | BH_IDLE | BH_DELETED |
                             BH_ONESHOT | BH_INTERNAL)) == BH_SCHEDULED &&
                   !bh->guard)) {
            bh->cb(bh->opaque);
            return 1;
        }
        return bh_run_one(ctx, bh, flags, ran_idle);
    }
    return bh_poll_slices(ctx, bh, ran_idle);
}

int aio_bh_poll(AioContext *ctx)
{
    bool ran_idle = false;

    return aioloop__bh_poll(ctx, &ran_idle);
}

/* Scan the pending BHs: 0 if one is scheduled, 1 if only idle ones, -1
 * if none. Lock-free readers may walk ctx->bh_list: nodes on it are only
 * taken off (and so relinked or freed) by the loop thread, which is us. */
static int bh_list_state(BHList *list)
{
    int state = -1;
    QEMUBH *bh;

    /* seq_cst loads: they pair with the scheduler's seq_cst writes in
     * bh_enqueue() across the notify_me handshake. */
    for (bh = qatomic_mb_read(&QSLIST_FIRST(list)); bh;
         bh = QSLIST_NEXT(bh, next)) {
        unsigned flags = qatomic_mb_read(&bh->flags);

        if ((flags & BH_SCHEDULED) && !(flags & BH_DELETED)) {
            return 0;
        }
        if ((flags & BH_IDLE) && !(flags & BH_DELETED)) {
            state = 1;
        }
    }
    return state;
}

static int bh_state(AioContext *ctx)
{
    BHListSlice *s;
    int state = bh_list_state(&ctx->bh_list);

    /* Slices of outer aio_bh_poll() calls still to run (nested loop). */
    QSIMPLEQ_FOREACH(s, &ctx->bh_slice_list, next) {
        int st;

        if (state == 0) {
            break;
        }
        st = bh_list_state(&s->bh_list);
        if (st >= 0 && (state < 0 || st < state)) {
            state = st;
        }
    }
    return state;
}

bool aioloop__bh_scheduled(AioContext *ctx)
{
    return bh_state(ctx) >= 0;
}

#define IDLE_BH_TIMEOUT_NS (10 * 1000 * 1000LL)

int64_t aio_compute_timeout(AioContext *ctx)
{
    int64_t timeout = -1, deadline;
    int state = bh_state(ctx);

    if (state == 0) {
        return 0;
    }
    if (state == 1) {
        timeout = IDLE_BH_TIMEOUT_NS;
    }
    deadline = aioloop__timers_deadline_ns(ctx);
    if (deadline >= 0 && (timeout < 0 || deadline < timeout)) {
        timeout = deadline;
    }
    return timeout;
}

/* ------------------------------------------------------------------ */
/* Notification                                                        */

void aio_notify(AioContext *ctx)
{
    /* Pairs with the notify_me increment in aio_poll() / aio_ctx_prepare():
     * see "aio_notify() and notify_me" above. */
    qatomic_mb_set(&ctx->notified, true);
    if (qatomic_mb_read(&ctx->notify_me)) {
        event_notifier_set(&ctx->notifier);
    }
}

void aio_notify_accept(AioContext *ctx)
{
    (void)aioloop__notify_accept(ctx);
}

/* Wake a sleeping or busy-polling loop so that it looks again at its
 * handler set or timer deadlines, without making it return to its caller:
 * this is bookkeeping, not an aio_notify(). The caller has just published
 * the change with a seq_cst store; notify_me is read with a seq_cst load
 * (the same handshake as aio_notify()). A busy-polling loop runs with
 * notify_me == 0 and sees kicked instead (aioloop__notifier_poll). */
void aioloop__kick(AioContext *ctx)
{
    qatomic_set(&ctx->kicked, true);
    if (qatomic_mb_read(&ctx->notify_me)) {
        event_notifier_set(&ctx->notifier);
    }
}

static void aio_timerlist_notify(void *opaque, QEMUClockType type)
{
    (void)type;
    aioloop__kick(opaque);
}

/* The notifier's handlers. They are internal: running them is not
 * progress. The eventfd is drained when epoll/ppoll reports it; while
 * busy polling, notified alone tells that a wake-up arrived. */
void aioloop__notifier_read(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
}

bool aioloop__notifier_poll(void *opaque)
{
    AioContext *ctx = container_of(opaque, AioContext, notifier);

    /* Scheduled BHs do not set notified when nobody sleeps (see
     * bh_enqueue), so look at the BH list as well. */
    return qatomic_read(&ctx->notified) || qatomic_read(&ctx->kicked) ||
           qatomic_read(&QSLIST_FIRST(&ctx->bh_list)) != NULL;
}

void aioloop__notifier_poll_ready(void *opaque)
{
    (void)opaque;
}

/* ------------------------------------------------------------------ */
/* Attachments (attach.h)                                              */

void aioloop__attachment_add(AioContext *ctx, AioAttachment *a)
{
    AioAttachment *it, *last = NULL;

    qemu_mutex_lock(&ctx->attach_lock);
    /* After every attachment of the same or a lower order: equal orders
     * end in attaching order. The list is short (a pool, a GSource, a
     * few block states). */
    QLIST_FOREACH(it, &ctx->attachments, next) {
        if (it->order > a->order) {
            break;
        }
        last = it;
    }
    if (last) {
        QLIST_INSERT_AFTER(last, a, next);
    } else {
        QLIST_INSERT_HEAD(&ctx->attachments, a, next);
    }
    qemu_mutex_unlock(&ctx->attach_lock);
}

void aioloop__attachment_remove(AioContext *ctx, AioAttachment *a)
{
    qemu_mutex_lock(&ctx->attach_lock);
    QLIST_REMOVE(a, next);
    qemu_mutex_unlock(&ctx->attach_lock);
}

AioAttachment *aioloop__attachment_find(AioContext *ctx, const void *key)
{
    AioAttachment *it;

    qemu_mutex_lock(&ctx->attach_lock);
    QLIST_FOREACH(it, &ctx->attachments, next) {
        if (it->key == key) {
            break;
        }
    }
    qemu_mutex_unlock(&ctx->attach_lock);
    return it;
}

/* The context's last unref: every attachment lets go, lowest order
 * first, while BHs, handlers and timers still work. One at a time, the
 * lock not held across the call: context_ends() may run callbacks that
 * attach or detach others. */
static void attachments_end(AioContext *ctx)
{
    for (;;) {
        AioAttachment *a;

        qemu_mutex_lock(&ctx->attach_lock);
        a = QLIST_FIRST(&ctx->attachments);
        qemu_mutex_unlock(&ctx->attach_lock);
        if (!a) {
            break;
        }
#ifndef NDEBUG
        if (a->what) {
            fprintf(stderr, "aioloop: %s still attached when its AioContext "
                    "was freed: its requests were completed and it was "
                    "detached\n", a->what);
        }
#endif
        a->context_ends(a, ctx);
        assert(QLIST_FIRST(&ctx->attachments) != a);
    }
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

/* rfifolock contention callback: a thread waits for the context while its
 * owner may be asleep in aio_poll() holding it; wake the owner so that its
 * loop can release the context (tests/aio/test-acquire.c). aio_notify()
 * remembers the wake-up even if the owner has not reached its sleep yet. */
static void aio_context_contention(void *opaque)
{
    aio_notify(opaque);
}

/*
 * Every step can fail (descriptors, memory) and is reported through
 * @errp; a failure undoes the steps before it, so nothing leaks. errno
 * is left at the failure's errno (qemu_init_main_loop() returns it).
 */
AioContext *aio_context_new(Error **errp)
{
    AioContext *ctx;
    void *mem;
    int ret;

    ctx = aioloop__posix_memalign(&mem, CTX_ALIGN, sizeof(*ctx)) ? NULL : mem;
    if (ctx) {
        memset(ctx, 0, sizeof(*ctx));
    }
    if (!ctx) {
        error_setg_errno(errp, ENOMEM, "aio_context_new: cannot allocate "
                         "the context");
        errno = ENOMEM;
        return NULL;
    }
    ctx->refcnt = 1;
    ctx->epollfd = -1;
    QSLIST_INIT(&ctx->bh_list);
    QSIMPLEQ_INIT(&ctx->bh_slice_list);
    QLIST_INIT(&ctx->all_bhs);
    QLIST_INIT(&ctx->sleep_hooks);
    QLIST_INIT(&ctx->attachments);
    qemu_mutex_init(&ctx->bh_lock);
    qemu_mutex_init(&ctx->list_lock);
    qemu_mutex_init(&ctx->attach_lock);
    rfifolock_init(&ctx->lock, aio_context_contention, ctx);

    ret = event_notifier_init(&ctx->notifier, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "aio_context_new: cannot create the "
                         "context's event notifier");
        goto fail;
    }
    ret = aioloop__handlers_init(ctx, errp);
    if (ret < 0) {
        goto fail_notifier;
    }
    ret = aioloop__timerlistgroup_try_init(&ctx->tlg, aio_timerlist_notify,
                                           ctx);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "aio_context_new: cannot create the "
                         "timer lists");
        goto fail_handlers;
    }
    ctx->co_schedule_bh = bh_alloc(ctx, aioloop__co_schedule_bh, ctx,
                                   "co_schedule", BH_INTERNAL, true);
    if (!ctx->co_schedule_bh) {
        ret = -ENOMEM;
        error_setg_errno(errp, ENOMEM, "aio_context_new: cannot allocate "
                         "the coroutine BH");
        goto fail_timers;
    }
    ret = aioloop__set_handler(ctx, event_notifier_get_fd(&ctx->notifier),
                               false, true, NULL, aioloop__notifier_read,
                               NULL, aioloop__notifier_poll,
                               aioloop__notifier_poll_ready, &ctx->notifier);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "aio_context_new: cannot register the "
                         "context's event notifier");
        goto fail_bh;
    }
    return ctx;

fail_bh:
    bh_free(ctx->co_schedule_bh);
fail_timers:
    timerlistgroup_deinit(&ctx->tlg);
fail_handlers:
    aioloop__handlers_cleanup(ctx);
fail_notifier:
    event_notifier_cleanup(&ctx->notifier);
fail:
    rfifolock_destroy(&ctx->lock);
    qemu_mutex_destroy(&ctx->attach_lock);
    qemu_mutex_destroy(&ctx->list_lock);
    qemu_mutex_destroy(&ctx->bh_lock);
    free(ctx);
    errno = -ret;
    return NULL;
}

void aio_context_ref(AioContext *ctx)
{
    qatomic_inc(&ctx->refcnt);
}

static void aio_context_free(AioContext *ctx)
{
    QEMUBH *bh, *next;

    assert(QSIMPLEQ_EMPTY(&ctx->bh_slice_list));
    /* First, while everything still works: block I/O states left
     * attached complete their requests and let go of the context, then
     * the thread pool runs its pending completions and goes, then the
     * GSource (the order: AIO_ATTACH_ORDER_* in attach.h). */
    attachments_end(ctx);
    aioloop__set_handler(ctx, event_notifier_get_fd(&ctx->notifier), false,
                         true, NULL, NULL, NULL, NULL, NULL, NULL);
    aioloop__handlers_cleanup(ctx);
    timerlistgroup_deinit(&ctx->tlg);

    QLIST_FOREACH_SAFE(bh, &ctx->all_bhs, all, next) {
#ifndef NDEBUG
        if (!(bh->flags & (BH_DELETED | BH_ONESHOT | BH_INTERNAL))) {
            fprintf(stderr, "aioloop: BH '%s' leaked: never deleted before "
                    "its AioContext was freed\n",
                    bh->name ? bh->name : "(unnamed)");
        }
#endif
        QLIST_REMOVE(bh, all);
        free(bh);
    }

    event_notifier_cleanup(&ctx->notifier);
    rfifolock_destroy(&ctx->lock);
    qemu_mutex_destroy(&ctx->attach_lock);
    qemu_mutex_destroy(&ctx->list_lock);
    qemu_mutex_destroy(&ctx->bh_lock);
    free(ctx);
}

void aio_context_unref(AioContext *ctx)
{
    if (!ctx) {
        return;
    }
    if (qatomic_fetch_sub(&ctx->refcnt, 1) == 1) {
        bool held, asleep;

        /* Freeing a context that a thread holds - an aio_context_acquire()
         * without its release, the last unref from inside the context's
         * own aio_poll() (a callback), another thread's aio_poll() - or
         * that a thread sleeps in would leave that thread running on
         * freed memory. Every build checks, on the last unref only. The
         * seq_cst load pairs with the owner's CAS in rfifolock_lock();
         * an aio_poll() walks the handlers (ctx->walkers) from before it
         * releases the context to sleep until after it reacquired it. */
        held = qatomic_mb_read(&ctx->lock.owner) != 0;
        asleep = !held && qemu_lockcnt_count(&ctx->walkers) > 0;
        if (unlikely(asleep || held)) {
            aioloop__misuse("aio_context_unref", "last reference to "
                            "AioContext %p dropped while the context is "
                            "%s", (void *)ctx, asleep ? "polled by a "
                            "sleeping aio_poll()" : "held (acquired and "
                            "not released, or from inside an aio_poll() "
                            "of it)");
        }
        aio_context_free(ctx);
    }
}

void aio_context_acquire(AioContext *ctx)
{
    aioloop__rfifolock_lock(&ctx->lock);
}

void aio_context_release(AioContext *ctx)
{
    /* rfifolock_unlock() whose misuse report names the context (the
     * lock's contention-callback argument): no extra check on this path,
     * which aio_poll() takes twice per iteration. */
    aioloop__rfifolock_unlock_ctx(&ctx->lock);
}

void aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                 int64_t grow, int64_t shrink, Error **errp)
{
    if (max_ns < 0 || grow < 0 || shrink < 0) {
        error_setg(errp, "aio_context_set_poll_params: parameters must not "
                   "be negative (max_ns=%lld grow=%lld shrink=%lld)",
                   (long long)max_ns, (long long)grow, (long long)shrink);
        return;
    }
    qatomic_set(&ctx->poll_grow, grow);
    qatomic_set(&ctx->poll_shrink, shrink);
    qatomic_set(&ctx->poll_max_ns, max_ns);
    /* Let a sleeping loop pick up the new limit. */
    aio_notify(ctx);
}
