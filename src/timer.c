/*
 * timer.c - clocks, timer lists and timers.
 *
 * Each timer list keeps its armed timers in a 4-ary min-heap of
 * (deadline, timer) pairs stored inline, so one sift step compares four
 * deadlines that share one 64-byte cache line (the layout libev made
 * known: the root sits at index 3 so that every group of siblings starts
 * on a multiple of four). A timer records its heap index, so re-arming
 * and deleting are O(log n) with no search and no allocation; the heap
 * array only grows, by doubling. Ties are broken by an arm sequence
 * number: equal deadlines fire in the order they were armed.
 *
 * Locking: a list is protected by a small spinlock (one atomic exchange
 * to take, a release store to drop; critical sections are a few heap
 * steps). Callbacks run with no lock held, so they may re-arm or delete
 * any timer and may call aio_poll(). Expired timers are popped one per
 * lock hold, so that a callback's nested aio_poll() still finds the other
 * due timers on the heap (popping batches was measured ~15% faster on a
 * million timers, but hid due timers from nested loops).
 *
 * Waking the owner: list->first_expire mirrors the root deadline for
 * lock-free readers (aio_compute_timeout). When an arm makes the root
 * earlier, it stores first_expire with a seq_cst store and then calls the
 * list's notify callback, which for an AioContext reads notify_me
 * (seq_cst) and writes the eventfd if a poller announced itself. The
 * poller raises notify_me (seq_cst) before it reads first_expire
 * (seq_cst), so either it sees the new deadline or it is woken. Updates
 * that only make the root later (fire, delete) use relaxed stores: a
 * poller that saw the older, earlier deadline just wakes early and looks
 * again.
 *
 * Clocks: REALTIME and VIRTUAL_RT read CLOCK_MONOTONIC, HOST reads
 * CLOCK_REALTIME, VIRTUAL is a counter the application advances. Each
 * clock knows its lists (under a mutex) so that advancing the virtual
 * clock or re-enabling a clock can wake the loops concerned.
 *
 * Bad input. A clock type outside [0, QEMU_CLOCK_MAX) would index the
 * clock and list arrays out of bounds, and none of the functions taking
 * one has an error channel, so each aborts with a message naming the
 * function, the value and the timer if there is one (bad_clock()), in
 * every build; so do a timer without a list or callback, or with a scale
 * below 1. Times in a timer's scale (timer_mod(), timer_mod_anticipate(),
 * timer_expired()) are converted to nanoseconds with saturation: a
 * product beyond the int64_t range is INT64_MAX (a deadline that never
 * comes: timers at INT64_MAX never fire) or INT64_MIN (in the past: the
 * timer fires at the next aio_poll()), never a wrapped value.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aioloop/main-loop.h>
#include <aioloop/timer.h>
#include "aio-internal.h"
#include "util/alloc.h"

#define HEAP_ROOT 3
#define HEAP_CHILD(k) (4 * (k) - 8)
#define HEAP_PARENT(k) ((k) / 4 + 2)

typedef struct HeapEntry {
    int64_t expire;
    QEMUTimer *t;
} HeapEntry;

struct QEMUTimerList {
    QEMUClockType type;
    int locked;                     /* spinlock, atomic */
    HeapEntry *heap;                /* entries at [HEAP_ROOT, end); lock */
    int end;                        /* one past the last entry; lock */
    int cap;                        /* lock */
    uint64_t seq;                   /* lock */
    int64_t first_expire;           /* atomic: root deadline or INT64_MAX */
    int nr_armed;                   /* atomic mirror of end - HEAP_ROOT */
    QEMUTimerListNotifyCB *notify_cb;
    void *notify_opaque;
    QLIST_ENTRY(QEMUTimerList) clock_link;  /* clock's lists, clock lock */
};

typedef struct QEMUClock {
    pthread_mutex_t lock;           /* protects timerlists */
    QLIST_HEAD(, QEMUTimerList) timerlists;
    bool enabled;                   /* atomic */
} QEMUClock;

static QEMUClock qemu_clocks[QEMU_CLOCK_MAX] = {
    [0 ... QEMU_CLOCK_MAX - 1] = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .enabled = true,
    },
};

static int64_t virtual_clock_ns;    /* atomic */

/* ------------------------------------------------------------------ */
/* Bad input                                                           */

static __attribute__((noreturn, noinline)) void bad_clock(const char *who,
                                                          int type,
                                                          const void *timer)
{
    if (timer) {
        fprintf(stderr, "aioloop: %s: QEMUTimer %p: invalid clock type %d "
                "(valid: 0 to %d, QEMU_CLOCK_*)\n", who, timer, type,
                QEMU_CLOCK_MAX - 1);
    } else {
        fprintf(stderr, "aioloop: %s: invalid clock type %d (valid: 0 to %d, "
                "QEMU_CLOCK_*)\n", who, type, QEMU_CLOCK_MAX - 1);
    }
    abort();
}

static inline void check_clock(const char *who, QEMUClockType type,
                               const void *timer)
{
    if (unlikely((unsigned)type >= QEMU_CLOCK_MAX)) {
        bad_clock(who, (int)type, timer);
    }
}

/* The arguments of a new timer; @ts may be NULL (not allocated yet). */
static void check_timer(const char *who, const void *ts,
                        QEMUTimerList *timer_list, int scale, QEMUTimerCB *cb)
{
    const char *what = !timer_list ? "no timer list (NULL)" :
                       !cb ? "no callback (NULL)" :
                       scale <= 0 ? "a scale below 1 ns" : NULL;

    if (what) {
        fprintf(stderr, "aioloop: %s: QEMUTimer %p: %s (scale %d)\n", who,
                ts, what, scale);
        abort();
    }
}

/* @t units of @scale ns, saturated to the int64_t range. */
static inline int64_t scale_saturated(int64_t t, int scale)
{
    int64_t ns;

    if (unlikely(__builtin_mul_overflow(t, (int64_t)scale, &ns))) {
        return t < 0 ? INT64_MIN : INT64_MAX;
    }
    return ns;
}

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

int64_t qemu_clock_get_ns(QEMUClockType type)
{
    check_clock(__func__, type, NULL);
    switch (type) {
    case QEMU_CLOCK_VIRTUAL:
        return qatomic_read(&virtual_clock_ns);
    case QEMU_CLOCK_HOST:
        return aioloop__clock_ns(CLOCK_REALTIME);
    case QEMU_CLOCK_REALTIME:
    case QEMU_CLOCK_VIRTUAL_RT:
    default:
        return aioloop__now_ns();
    }
}

int64_t qemu_clock_get_us(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / 1000;
}

int64_t qemu_clock_get_ms(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / 1000000;
}

/* Wake the owner of every list of @type whose first deadline is at or
 * before @limit (INT64_MAX: every list with a timer). */
static void clock_notify(QEMUClockType type, int64_t limit)
{
    QEMUClock *clock = &qemu_clocks[type];
    QEMUTimerList *tl;

    pthread_mutex_lock(&clock->lock);
    QLIST_FOREACH(tl, &clock->timerlists, clock_link) {
        int64_t first = qatomic_mb_read(&tl->first_expire);

        if (first != INT64_MAX && first <= limit && tl->notify_cb) {
            tl->notify_cb(tl->notify_opaque, type);
        }
    }
    pthread_mutex_unlock(&clock->lock);
}

int64_t qemu_clock_advance_virtual_time(int64_t dest)
{
    int64_t cur = qatomic_read(&virtual_clock_ns);

    while (dest > cur) {
        int64_t seen = qatomic_cmpxchg(&virtual_clock_ns, cur, dest);
        if (seen == cur) {
            cur = dest;
            clock_notify(QEMU_CLOCK_VIRTUAL, dest);
            break;
        }
        cur = seen;
    }
    return cur;
}

void qemu_clock_enable(QEMUClockType type, bool enabled)
{
    check_clock(__func__, type, NULL);
    if (qatomic_xchg(&qemu_clocks[type].enabled, enabled) != enabled &&
        enabled) {
        clock_notify(type, INT64_MAX);
    }
}

bool qemu_clock_is_enabled(QEMUClockType type)
{
    check_clock(__func__, type, NULL);
    return qatomic_read(&qemu_clocks[type].enabled);
}

/* ------------------------------------------------------------------ */
/* The heap                                                            */

static inline void tl_lock(QEMUTimerList *tl)
{
    int spins = 0;

    while (__atomic_exchange_n(&tl->locked, 1, __ATOMIC_ACQUIRE)) {
        while (qatomic_read(&tl->locked)) {
            if (++spins > 100) {
                sched_yield();      /* the holder may be preempted */
            } else {
                cpu_relax();
            }
        }
    }
}

static inline void tl_unlock(QEMUTimerList *tl)
{
    __atomic_store_n(&tl->locked, 0, __ATOMIC_RELEASE);
}

static inline bool entry_before(const HeapEntry *a, const HeapEntry *b)
{
    return a->expire < b->expire ||
           (a->expire == b->expire && a->t->seq < b->t->seq);
}

static inline void heap_set(QEMUTimerList *tl, int k, HeapEntry e)
{
    tl->heap[k] = e;
    e.t->heap_index = k;
}

static void sift_up(QEMUTimerList *tl, int k)
{
    HeapEntry e = tl->heap[k];

    while (k > HEAP_ROOT) {
        int p = HEAP_PARENT(k);

        if (!entry_before(&e, &tl->heap[p])) {
            break;
        }
        heap_set(tl, k, tl->heap[p]);
        k = p;
    }
    heap_set(tl, k, e);
}

static void sift_down(QEMUTimerList *tl, int k)
{
    HeapEntry e = tl->heap[k];

    for (;;) {
        int c = HEAP_CHILD(k), best, i, last;

        if (c >= tl->end) {
            break;
        }
        best = c;
        last = c + 4 < tl->end ? c + 4 : tl->end;
        for (i = c + 1; i < last; i++) {
            if (entry_before(&tl->heap[i], &tl->heap[best])) {
                best = i;
            }
        }
        if (!entry_before(&tl->heap[best], &e)) {
            break;
        }
        heap_set(tl, k, tl->heap[best]);
        k = best;
    }
    heap_set(tl, k, e);
}

static void heap_grow(QEMUTimerList *tl)
{
    int cap = tl->cap ? tl->cap * 2 : 64;
    HeapEntry *heap = NULL;

    /* Cache-line aligned so that sibling groups share a line. */
    if (aioloop__posix_memalign((void **)&heap, 64,
                                cap * sizeof(*heap)) != 0) {
        fprintf(stderr, "aioloop: out of memory growing a timer list to "
                "%d timers\n", cap);
        abort();
    }
    if (tl->heap) {
        memcpy(heap, tl->heap, tl->end * sizeof(*heap));
        free(tl->heap);
    }
    tl->heap = heap;
    tl->cap = cap;
}

/* Remove the entry at @k. Under the lock. */
static void heap_remove(QEMUTimerList *tl, int k)
{
    QEMUTimer *t = tl->heap[k].t;

    tl->end--;
    if (k != tl->end) {
        HeapEntry last = tl->heap[tl->end];

        heap_set(tl, k, last);
        if (k > HEAP_ROOT && entry_before(&last, &tl->heap[HEAP_PARENT(k)])) {
            sift_up(tl, k);
        } else {
            sift_down(tl, k);
        }
    }
    t->heap_index = -1;
}

static inline int64_t root_expire(QEMUTimerList *tl)
{
    return tl->end > HEAP_ROOT ? tl->heap[HEAP_ROOT].expire : INT64_MAX;
}

/* ------------------------------------------------------------------ */
/* Timer lists                                                         */

/* A new list, or NULL when out of memory. */
static QEMUTimerList *timerlist_try_new(QEMUClockType type,
                                        QEMUTimerListNotifyCB *cb,
                                        void *opaque)
{
    QEMUTimerList *tl;
    QEMUClock *clock;

    check_clock("timerlist_new", type, NULL);
    clock = &qemu_clocks[type];
    tl = aioloop__calloc(1, sizeof(*tl));
    if (!tl) {
        return NULL;
    }
    tl->type = type;
    tl->end = HEAP_ROOT;
    tl->first_expire = INT64_MAX;
    tl->notify_cb = cb;
    tl->notify_opaque = opaque;
    pthread_mutex_lock(&clock->lock);
    QLIST_INSERT_HEAD(&clock->timerlists, tl, clock_link);
    pthread_mutex_unlock(&clock->lock);
    return tl;
}

QEMUTimerList *timerlist_new(QEMUClockType type, QEMUTimerListNotifyCB *cb,
                             void *opaque)
{
    QEMUTimerList *tl = timerlist_try_new(type, cb, opaque);

    if (!tl) {
        aioloop__oom("creating a timer list");
    }
    return tl;
}

void timerlist_free(QEMUTimerList *tl)
{
    QEMUClock *clock = &qemu_clocks[tl->type];
    int k;

    pthread_mutex_lock(&clock->lock);
    QLIST_REMOVE(tl, clock_link);
    pthread_mutex_unlock(&clock->lock);

    tl_lock(tl);
    for (k = HEAP_ROOT; k < tl->end; k++) {
        QEMUTimer *t = tl->heap[k].t;

        t->heap_index = -1;
        qatomic_set(&t->expire_time, -1);
        t->timer_list = NULL;       /* arming it again asserts */
    }
    tl->end = HEAP_ROOT;
    tl_unlock(tl);
    free(tl->heap);
    free(tl);
}

bool timerlist_has_timers(QEMUTimerList *tl)
{
    /* Not first_expire: a timer may be armed at INT64_MAX itself. */
    return qatomic_read(&tl->nr_armed) > 0;
}

QEMUClockType timerlist_get_clock(QEMUTimerList *tl)
{
    return tl->type;
}

int64_t timerlist_deadline_ns(QEMUTimerList *tl)
{
    /* seq_cst: pairs with the store in timer_mod_ns(), see above. */
    int64_t first = qatomic_mb_read(&tl->first_expire), now;

    if ((first == INT64_MAX && !timerlist_has_timers(tl)) ||
        !qemu_clock_is_enabled(tl->type)) {
        return -1;
    }
    now = qemu_clock_get_ns(tl->type);
    if (first <= now) {
        return 0;
    }
    /* A HOST clock before 1970 reads negative: saturate. */
    return __builtin_sub_overflow(first, now, &now) ? INT64_MAX : now;
}

bool timerlist_run_timers(QEMUTimerList *tl)
{
    bool progress = false;
    int64_t now;

    if (qatomic_read(&tl->first_expire) == INT64_MAX ||
        !qemu_clock_is_enabled(tl->type)) {
        return false;
    }
    /* Time is read once: a timer re-armed for "now" by a callback fires
     * at the next run, not in this one. One timer per lock hold: a
     * callback's nested aio_poll() must see the others still due. */
    now = qemu_clock_get_ns(tl->type);
    while (qatomic_read(&tl->first_expire) <= now) {
        QEMUTimerCB *cb;
        QEMUTimer *t;
        void *opaque;

        tl_lock(tl);
        if (root_expire(tl) > now) {
            tl_unlock(tl);
            break;
        }
        t = tl->heap[HEAP_ROOT].t;
        heap_remove(tl, HEAP_ROOT);
        qatomic_set(&tl->first_expire, root_expire(tl));
        qatomic_set(&tl->nr_armed, tl->end - HEAP_ROOT);
        cb = t->cb;
        opaque = t->opaque;
        /* Last touch of t: once expire_time reads -1, timer_del() returns
         * without the lock and timer_free() may free t (pairs with the
         * acquire load there). */
        qatomic_store_release(&t->expire_time, -1);
        tl_unlock(tl);

        cb(opaque);             /* may free t, re-arm it, nest aio_poll */
        progress = true;
    }
    return progress;
}

void timerlistgroup_init(QEMUTimerListGroup *tlg, QEMUTimerListNotifyCB *cb,
                         void *opaque)
{
    int type;

    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        tlg->tl[type] = timerlist_new(type, cb, opaque);
    }
}

int aioloop__timerlistgroup_try_init(QEMUTimerListGroup *tlg,
                                     QEMUTimerListNotifyCB *cb, void *opaque)
{
    int type;

    memset(tlg->tl, 0, sizeof(tlg->tl));
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        tlg->tl[type] = timerlist_try_new(type, cb, opaque);
        if (!tlg->tl[type]) {
            timerlistgroup_deinit(tlg);     /* skips the NULL entries */
            return -ENOMEM;
        }
    }
    return 0;
}

void timerlistgroup_deinit(QEMUTimerListGroup *tlg)
{
    int type;

    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        if (tlg->tl[type]) {
            timerlist_free(tlg->tl[type]);
            tlg->tl[type] = NULL;
        }
    }
}

int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup *tlg)
{
    int64_t deadline = -1;
    int type;

    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        int64_t d = timerlist_deadline_ns(tlg->tl[type]);

        if (d >= 0 && (deadline < 0 || d < deadline)) {
            deadline = d;
        }
    }
    return deadline;
}

bool timerlistgroup_run_timers(QEMUTimerListGroup *tlg)
{
    bool progress = false;
    int type;

    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        progress |= timerlist_run_timers(tlg->tl[type]);
    }
    return progress;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

void timer_init_tl(QEMUTimer *ts, QEMUTimerList *timer_list, int scale,
                   QEMUTimerCB *cb, void *opaque)
{
    check_timer(__func__, ts, timer_list, scale, cb);
    *ts = (QEMUTimer) {
        .expire_time = -1,
        .timer_list = timer_list,
        .cb = cb,
        .opaque = opaque,
        .scale = scale,
        .heap_index = -1,
    };
}

QEMUTimer *timer_new_tl(QEMUTimerList *timer_list, int scale,
                        QEMUTimerCB *cb, void *opaque)
{
    QEMUTimer *ts;

    check_timer(__func__, NULL, timer_list, scale, cb);
    ts = aioloop__malloc(sizeof(*ts));
    if (!ts) {
        aioloop__oom("allocating a timer");
    }
    timer_init_tl(ts, timer_list, scale, cb, opaque);
    return ts;
}

void aio_timer_init(AioContext *ctx, QEMUTimer *ts, QEMUClockType type,
                    int scale, QEMUTimerCB *cb, void *opaque)
{
    check_clock(__func__, type, ts);
    timer_init_tl(ts, ctx->tlg.tl[type], scale, cb, opaque);
}

QEMUTimer *aio_timer_new(AioContext *ctx, QEMUClockType type, int scale,
                         QEMUTimerCB *cb, void *opaque)
{
    check_clock(__func__, type, NULL);
    return timer_new_tl(ctx->tlg.tl[type], scale, cb, opaque);
}

QEMUTimer *timer_new(QEMUClockType type, int scale, QEMUTimerCB *cb,
                     void *opaque)
{
    AioContext *ctx = qemu_get_aio_context();

    assert(ctx);        /* qemu_init_main_loop() first */
    check_clock(__func__, type, NULL);
    return aio_timer_new(ctx, type, scale, cb, opaque);
}

QEMUTimerListGroup *aio_get_timer_list_group(AioContext *ctx)
{
    return &ctx->tlg;
}

/* Arm or move @ts. @anticipate: only if unarmed or earlier. */
static void timer_mod_common(QEMUTimer *ts, int64_t expire, bool anticipate)
{
    QEMUTimerList *tl = ts->timer_list;
    int64_t old_first;
    bool earlier;

    assert(tl);         /* a timer whose list (context) was freed */
    if (!tl) {
        return;
    }
    if (expire < 0) {
        expire = 0;
    }
    tl_lock(tl);
    old_first = root_expire(tl);
    if (ts->heap_index >= 0) {
        int k = ts->heap_index;

        if (anticipate && tl->heap[k].expire <= expire) {
            tl_unlock(tl);
            return;
        }
        ts->seq = tl->seq++;
        tl->heap[k].expire = expire;
        if (k > HEAP_ROOT &&
            entry_before(&tl->heap[k], &tl->heap[HEAP_PARENT(k)])) {
            sift_up(tl, k);
        } else {
            sift_down(tl, k);
        }
    } else {
        if (tl->end >= tl->cap) {
            heap_grow(tl);
        }
        ts->seq = tl->seq++;
        tl->heap[tl->end] = (HeapEntry) { .expire = expire, .t = ts };
        ts->heap_index = tl->end++;
        sift_up(tl, ts->heap_index);
    }
    qatomic_set(&ts->expire_time, expire);
    earlier = root_expire(tl) < old_first;
    if (earlier) {
        qatomic_mb_set(&tl->first_expire, root_expire(tl));
    } else if (root_expire(tl) != old_first) {
        qatomic_set(&tl->first_expire, root_expire(tl));
    }
    qatomic_set(&tl->nr_armed, tl->end - HEAP_ROOT);
    tl_unlock(tl);
    if (earlier && tl->notify_cb) {
        tl->notify_cb(tl->notify_opaque, tl->type);
    }
}

void timer_mod_ns(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, expire_time, false);
}

void timer_mod(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, scale_saturated(expire_time, ts->scale), false);
}

void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, expire_time, true);
}

void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, scale_saturated(expire_time, ts->scale), true);
}

void timer_del(QEMUTimer *ts)
{
    QEMUTimerList *tl = ts->timer_list;

    /* expire_time is -1 exactly when the timer is not in a heap (both
     * change together under the lock). Unarmed or detached: nothing to
     * do; an arm racing in from another thread is the caller's race. */
    if (!tl || qatomic_load_acquire(&ts->expire_time) < 0) {
        return;
    }
    tl_lock(tl);
    if (ts->heap_index >= 0) {
        heap_remove(tl, ts->heap_index);
        qatomic_set(&ts->expire_time, -1);
        qatomic_set(&tl->first_expire, root_expire(tl));
        qatomic_set(&tl->nr_armed, tl->end - HEAP_ROOT);
    }
    tl_unlock(tl);
}

void timer_deinit(QEMUTimer *ts)
{
    timer_del(ts);
    ts->timer_list = NULL;
}

void timer_free(QEMUTimer *ts)
{
    if (ts) {
        timer_del(ts);
        free(ts);
    }
}

bool timer_pending(QEMUTimer *ts)
{
    return qatomic_read(&ts->expire_time) >= 0;
}

bool timer_expired(QEMUTimer *ts, int64_t current_time)
{
    int64_t expire = qatomic_read(&ts->expire_time);

    return expire >= 0 && expire <= scale_saturated(current_time, ts->scale);
}

int64_t timer_expire_time_ns(QEMUTimer *ts)
{
    return qatomic_read(&ts->expire_time);
}
