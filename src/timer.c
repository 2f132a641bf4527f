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
 * Re-arming moves a timer in place: its entry is sifted up if the new
 * deadline is earlier, down if it is later, never removed and
 * reinserted. A re-armed timer takes a new sequence number, above every
 * other of its list, so it goes after the timers already armed for the
 * same deadline; comparisons against it therefore need only deadlines: it
 * passes a parent with a strictly later deadline, a child with an earlier
 * or equal one. A re-arm that lands where the timer already is costs a
 * look at its children (later) or its parent (earlier), and moves
 * nothing.
 *
 * Locking: a list is protected by a small spinlock (one atomic exchange
 * to take, a release store to drop; critical sections are a few heap
 * steps, never a callback). Callbacks run with no lock held, so they may
 * re-arm or delete any timer and may call aio_poll(). Expired timers are
 * popped one per lock hold, so that a callback's nested aio_poll() still
 * finds the other due timers on the heap (popping batches was measured
 * ~15% faster on a million timers, but hid due timers from nested loops).
 *
 * The loop thread skips the spinlock (biased locking). Nearly every
 * timer_mod() comes from the thread that runs the list's loop, and the
 * exchange costs as much as the whole in-place re-arm. So each list may
 * be biased to one thread, its owner (tl->bias, a TimerOwner record per
 * thread), which enters a critical section with two plain stores and a
 * load: owner->busy = 1, a compiler barrier, then tl->bias is checked
 * again; leaving is a release store of busy = 0. Every other thread
 * takes the spinlock and, if the list is biased to someone else, revokes
 * the bias first: it stores tl->bias = no_owner, calls
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), then waits until the
 * owner's busy reads 0. The membarrier is the owner's missing fence: it
 * runs a full barrier on every CPU running one of our threads, so either
 * the owner's store of busy = 1 is visible to the revoker after it (the
 * revoker waits for the section to end), or the owner's load of tl->bias
 * comes after it and sees no_owner (the owner backs out and takes the
 * spinlock, which the revoker holds). Each thread has its own busy flag,
 * written only by that thread: a thread that read a stale bias never
 * clears another's flag.
 * A revoked list goes back to its loop thread from timerlist_run_timers()
 * (the loop's own call) once no revocation happened for a while: 2^r
 * runs after the r-th revocation (r capped), so a list that other
 * threads use often pays a membarrier (a few microseconds) rarely, and
 * stays on the spinlock meanwhile. A new list is biased to the thread
 * that creates it. Without membarrier (old kernels, seccomp) or with
 * AIOLOOP_TIMER_BIAS=0 in the environment, every thread takes the
 * spinlock. A forked child re-registers for membarrier before it first
 * revokes. Owner records of exited threads are recycled, never freed: a
 * list may still point to one, and its next user simply inherits the
 * bias (the old thread can no longer be in a critical section).
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
 * CLOCK_REALTIME. VIRTUAL reads CLOCK_MONOTONIC too, as in QEMU's tools
 * and tests, until the application takes it over
 * (qemu_clock_take_over_virtual(), or its first
 * qemu_clock_advance_virtual_time()): from then on it is a counter,
 * frozen at the value it had, that only the application advances. The
 * switch happens once, under virtual_lock; virtual_driven is published
 * with a release store after the counter, so a reader that sees it set
 * (acquire) reads a counter at least as large as any host time it could
 * have read before. Each clock knows its lists (under a mutex) so that
 * advancing the virtual clock or re-enabling a clock can wake the loops
 * concerned.
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
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef __NR_membarrier
#include <linux/membarrier.h>
#endif

#include <aioloop/main-loop.h>
#include <aioloop/timer.h>
#include "aio-internal.h"
#include "clock-internal.h"
#include "timer-internal.h"
#include "util/alloc.h"
#include "util/misuse.h"
#include "util/relax.h"

#define HEAP_ROOT 3
/* heap_index of a timer that was armed when its list was freed (any
 * negative index means "not in a heap"). */
#define HEAP_INDEX_ORPHAN (-2)
#define HEAP_CHILD(k) (4 * (k) - 8)
#define HEAP_PARENT(k) ((k) / 4 + 2)

typedef struct HeapEntry {
    int64_t expire;
    QEMUTimer *t;
} HeapEntry;

/* A thread that may own lists' bias (see "The loop thread skips the
 * spinlock" above). One per thread that ever owned a bias; recycled. */
typedef struct TimerOwner {
    int busy;                       /* atomic; written by its thread only */
    struct TimerOwner *next_free;   /* on owner_free, owner_lock */
} __attribute__((aligned(64))) TimerOwner;

struct QEMUTimerList {
    QEMUClockType type;
    QemuSpin locked;                /* the spinlock */
    TimerOwner *bias;               /* atomic; changes under locked */
    unsigned revocations;           /* atomic; changes under locked */
    unsigned seen_revocations;      /* the loop thread's (run_timers) */
    unsigned quiet_runs;            /* the loop thread's (run_timers) */
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
    QemuMutex lock;                 /* protects timerlists */
    QLIST_HEAD(, QEMUTimerList) timerlists;
    bool enabled;                   /* atomic */
} QEMUClock;

static QEMUClock qemu_clocks[QEMU_CLOCK_MAX] = {
    [0 ... QEMU_CLOCK_MAX - 1] = {
        .lock = { PTHREAD_MUTEX_INITIALIZER },
        .enabled = true,
    },
};

/* QEMU_CLOCK_VIRTUAL: host time until virtual_driven, then the counter.
 * virtual_lock serialises the switch; the two words are atomic. */
static QemuMutex virtual_lock = { PTHREAD_MUTEX_INITIALIZER };
static bool virtual_driven;
static int64_t virtual_clock_ns;

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
        /* Pairs with the release store in qemu_clock_take_over_virtual(). */
        if (qatomic_load_acquire(&virtual_driven)) {
            return qatomic_read(&virtual_clock_ns);
        }
        return aioloop__now_ns();
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

    qemu_mutex_lock(&clock->lock);
    QLIST_FOREACH(tl, &clock->timerlists, clock_link) {
        int64_t first = qatomic_mb_read(&tl->first_expire);

        if (first != INT64_MAX && first <= limit && tl->notify_cb) {
            tl->notify_cb(tl->notify_opaque, type);
        }
    }
    qemu_mutex_unlock(&clock->lock);
}

int64_t qemu_clock_take_over_virtual(void)
{
    if (!qatomic_load_acquire(&virtual_driven)) {
        qemu_mutex_lock(&virtual_lock);
        if (!qatomic_read(&virtual_driven)) {
            /* Frozen where host time is now: it never goes back. */
            qatomic_set(&virtual_clock_ns, aioloop__now_ns());
            qatomic_store_release(&virtual_driven, true);
        }
        qemu_mutex_unlock(&virtual_lock);
    }
    return qatomic_read(&virtual_clock_ns);
}

bool qemu_clock_virtual_is_driven(void)
{
    return qatomic_load_acquire(&virtual_driven);
}

int64_t qemu_clock_advance_virtual_time(int64_t dest)
{
    int64_t cur = qemu_clock_take_over_virtual();

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

/* The bias of a list biased to nobody: no thread's record. */
static TimerOwner no_owner;

/* This thread's record, NULL until it first owns a bias. */
static __thread TimerOwner *tls_owner
    __attribute__((tls_model("initial-exec")));

static pthread_once_t bias_once = PTHREAD_ONCE_INIT;
static bool bias_enabled;           /* set once by bias_init() */
static pthread_key_t owner_key;     /* recycles a record at thread exit */
static QemuMutex owner_lock = { PTHREAD_MUTEX_INITIALIZER };
static TimerOwner *owner_free;      /* owner_lock */

/* A revoked list waits 2^min(revocations, bias_backoff_max) runs. */
static unsigned bias_backoff_max = 12;      /* atomic; test hook */

static long membarrier_call(int cmd)
{
#ifdef __NR_membarrier
    return syscall(__NR_membarrier, cmd, 0, 0);
#else
    (void)cmd;
    errno = ENOSYS;
    return -1;
#endif
}

static void owner_exit(void *opaque)
{
    TimerOwner *me = opaque;

    /* Destructors of other keys may still arm timers: from now on this
     * thread takes the spinlock, and the record's next user inherits the
     * bias of the lists that point to it. busy is 0: no section is open. */
    tls_owner = NULL;
    qemu_mutex_lock(&owner_lock);
    me->next_free = owner_free;
    owner_free = me;
    qemu_mutex_unlock(&owner_lock);
}

static void bias_init(void)
{
#ifdef __NR_membarrier
    const char *env = getenv("AIOLOOP_TIMER_BIAS");
    long cmds;

    if (env && strcmp(env, "0") == 0) {
        return;
    }
    cmds = membarrier_call(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
        membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 ||
        pthread_key_create(&owner_key, owner_exit) != 0) {
        return;
    }
    bias_enabled = true;
#endif
}

/* This thread's record, created on first use; NULL if lists cannot be
 * biased (no membarrier, AIOLOOP_TIMER_BIAS=0, out of memory). */
static TimerOwner *owner_self(void)
{
    TimerOwner *me = tls_owner;

    if (likely(me)) {
        return me;
    }
    pthread_once(&bias_once, bias_init);
    if (!bias_enabled) {
        return NULL;
    }
    qemu_mutex_lock(&owner_lock);
    me = owner_free;
    if (me) {
        owner_free = me->next_free;
    }
    qemu_mutex_unlock(&owner_lock);
    /* Not util/alloc.h's fault site: failing here only loses the fast
     * path, and allocation sweeps must see each constructor fail. */
    if (!me && posix_memalign((void **)&me, 64, sizeof(*me)) != 0) {
        return NULL;
    }
    /* Atomic: a recycled record may still be a list's bias, whose busy
     * flag a revoker in another thread may be reading right now. */
    qatomic_set(&me->busy, 0);
    me->next_free = NULL;
    if (pthread_setspecific(owner_key, me) != 0) {
        owner_exit(me);
        return NULL;
    }
    tls_owner = me;
    return me;
}

/* A full barrier on every CPU running a thread of this process. */
static void membarrier_all(void)
{
#ifdef __NR_membarrier
    if (membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
        return;
    }
    /* A forked child inherits biased lists, not the registration. */
    if (errno == EPERM &&
        membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
        membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
        return;
    }
#endif
    /* Only reached if membarrier worked when a bias was granted and
     * stopped working since: without it, no exclusion from the owner. */
    fprintf(stderr, "aioloop: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) "
            "failed (%s): cannot take a timer list from its loop thread\n",
            strerror(errno));
    abort();
}

static inline void spin_wait(int *spins)
{
    if (++*spins > 100) {
        sched_yield();          /* the holder may be preempted */
    } else {
        cpu_relax();
    }
}

/* The spinlock, revoking another thread's bias (see above). */
static __attribute__((noinline)) void tl_lock_slow(QEMUTimerList *tl,
                                                   TimerOwner *me)
{
    TimerOwner *owner;
    int spins = 0;

    while (qemu_spin_trylock(&tl->locked)) {
        while (qemu_spin_locked(&tl->locked)) {
            spin_wait(&spins);
        }
    }
    owner = qatomic_read(&tl->bias);
    if (owner != &no_owner && owner != me) {
        qatomic_set(&tl->bias, &no_owner);
        membarrier_all();
        /* Pairs with the release store that ends the owner's section. */
        spins = 0;
        while (qatomic_load_acquire(&owner->busy)) {
            spin_wait(&spins);
        }
        qatomic_set(&tl->revocations, tl->revocations + 1);
    }
}

/*
 * Take @tl. Returns the caller's record if it entered on the owner's
 * fast path, NULL if it holds the spinlock; pass it to tl_unlock().
 */
static inline TimerOwner *tl_lock(QEMUTimerList *tl)
{
    TimerOwner *me = tls_owner;

    if (qatomic_read(&tl->bias) == me) {      /* never NULL: no_owner */
        qatomic_set(&me->busy, 1);
        /* Only a compiler barrier: a revoker's membarrier() makes it a
         * full one when it matters (see "biased locking" above). */
        barrier();
        if (likely(qatomic_read(&tl->bias) == me)) {
            return me;
        }
        qatomic_store_release(&me->busy, 0);
    }
    tl_lock_slow(tl, me);
    return NULL;
}

static inline void tl_unlock(QEMUTimerList *tl, TimerOwner *fast)
{
    if (fast) {
        qatomic_store_release(&fast->busy, 0);
    } else {
        qemu_spin_unlock(&tl->locked);
    }
}

/* From timerlist_run_timers(), i.e. the loop thread: take the bias back
 * after a quiet period (see above). */
static __attribute__((noinline)) void tl_rebias(QEMUTimerList *tl)
{
    TimerOwner *me = owner_self(), *fast;
    unsigned rev, max;

    if (!me) {
        return;                 /* no biasing in this process */
    }
    rev = qatomic_read(&tl->revocations);
    if (rev != tl->seen_revocations) {
        tl->seen_revocations = rev;
        tl->quiet_runs = 0;
        return;
    }
    max = qatomic_read(&bias_backoff_max);
    if (++tl->quiet_runs < 1u << (rev < max ? rev : max)) {
        return;
    }
    tl->quiet_runs = 0;
    /* The spinlock, revoking another owner; or the fast path if @me is a
     * recycled record that this list was biased to already. */
    fast = tl_lock(tl);
    qatomic_set(&tl->bias, me);
    tl_unlock(tl, fast);
    /* Our own revocation of the previous owner is not another thread's
     * use: do not count it against the new bias. */
    tl->seen_revocations = qatomic_read(&tl->revocations);
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

/* The first of the children [c, last) in heap order. */
static inline int first_child(const HeapEntry *heap, int c, int last)
{
    int best = c;

    for (int i = c + 1; i < last; i++) {
        if (entry_before(&heap[i], &heap[best])) {
            best = i;
        }
    }
    return best;
}

/* first_child() out of line: ties and partial groups are rare, and
 * keeping them out of min_child()'s callers saves registers there. */
static __attribute__((noinline)) int first_child_slow(const HeapEntry *heap,
                                                      int c, int last)
{
    return first_child(heap, c, last);
}

/*
 * The first child of @k in heap order, or -1 if it has none. The common
 * case, four children, takes the earliest deadline without branches;
 * only when another child has that same deadline do the seqs decide
 * (reading the timers).
 */
static inline int min_child(const HeapEntry *heap, int end, int k)
{
    int c = HEAP_CHILD(k);

    if (likely(c + 4 <= end)) {
        int64_t x0 = heap[c].expire, x1 = heap[c + 1].expire;
        int64_t x2 = heap[c + 2].expire, x3 = heap[c + 3].expire;
        int64_t m01 = x1 < x0 ? x1 : x0, m23 = x3 < x2 ? x3 : x2;
        int64_t m = m23 < m01 ? m23 : m01;

        if (likely((x0 == m) + (x1 == m) + (x2 == m) + (x3 == m) == 1)) {
            return m23 < m01 ? (x3 < x2 ? c + 3 : c + 2)
                             : (x1 < x0 ? c + 1 : c);
        }
        return first_child_slow(heap, c, c + 4);
    }
    return c < end ? first_child_slow(heap, c, end) : -1;
}

/*
 * Put @e, the newest entry of the list (its seq above every other's),
 * into the hole at @k, moving it up: it passes a parent with a later
 * deadline only (an equal one was armed before it). Returns where it
 * landed.
 */
static int sift_up_newest(QEMUTimerList *tl, int k, HeapEntry e)
{
    HeapEntry *heap = tl->heap;

    while (k > HEAP_ROOT) {
        int p = HEAP_PARENT(k);

        if (e.expire >= heap[p].expire) {
            break;
        }
        heap[k] = heap[p];
        heap[k].t->heap_index = k;
        k = p;
    }
    heap[k] = e;
    e.t->heap_index = k;
    return k;
}

/* Whether the newest entry may stay at @k with deadline @expire, as far
 * as its children go: none is earlier or equal. One look at them. */
static inline bool below_children(const HeapEntry *heap, int end, int k,
                                  int64_t expire)
{
    int c = HEAP_CHILD(k);

    if (likely(c + 4 <= end)) {
        int64_t m01 = heap[c].expire < heap[c + 1].expire ?
                      heap[c].expire : heap[c + 1].expire;
        int64_t m23 = heap[c + 2].expire < heap[c + 3].expire ?
                      heap[c + 2].expire : heap[c + 3].expire;

        return (m01 < m23 ? m01 : m23) > expire;
    }
    for (; c < end; c++) {
        if (heap[c].expire <= expire) {
            return false;
        }
    }
    return true;
}

/*
 * The same, moving down: @e passes every child whose deadline is earlier
 * or equal, taking the place of the first child in heap order (ties
 * among the children by seq).
 */
static void sift_down_newest(QEMUTimerList *tl, int k, HeapEntry e)
{
    HeapEntry *heap = tl->heap;
    int end = tl->end, best;

    while ((best = min_child(heap, end, k)) >= 0 &&
           heap[best].expire <= e.expire) {
        heap[k] = heap[best];
        heap[k].t->heap_index = k;
        k = best;
    }
    heap[k] = e;
    e.t->heap_index = k;
}

#define HUGE_PAGE_SIZE (2u << 20)

static __attribute__((noinline, cold)) void heap_grow(QEMUTimerList *tl)
{
    int cap = tl->cap ? tl->cap * 2 : 64;
    size_t size = (size_t)cap * sizeof(HeapEntry);
    HeapEntry *heap = NULL;

    /* Cache-line aligned so that sibling groups share a line. From 2 MiB
     * on, huge-page aligned and advised: a large heap is walked at
     * random, and with 4 KiB pages nearly every step of a sift would
     * also miss the TLB (where transparent huge pages are "madvise", the
     * default of many distributions, nothing else would give them). */
    if (aioloop__posix_memalign((void **)&heap, size >= HUGE_PAGE_SIZE ?
                                HUGE_PAGE_SIZE : 64, size) != 0) {
        aioloop__oom("growing a timer list to %d timers", cap);
    }
#ifdef MADV_HUGEPAGE
    if (size >= HUGE_PAGE_SIZE) {
        (void)madvise(heap, size, MADV_HUGEPAGE);   /* a hint only */
    }
#endif
    if (tl->heap) {
        memcpy(heap, tl->heap, tl->end * sizeof(*heap));
        free(tl->heap);
    }
    tl->heap = heap;
    tl->cap = cap;
}

/*
 * Remove the entry at @k. Under the lock. The root changes only if @k
 * is the root: the last entry, which fills the hole, comes after it.
 *
 * Bottom-up (Floyd): the hole first goes down to a leaf, each step
 * taking up the first child, with no comparison against the last entry;
 * then the last entry goes into the hole and up from there. The last
 * entry of a heap nearly always belongs near the bottom, so that saves a
 * comparison per level (firing a million timers: ~10 levels each).
 */
static void heap_remove(QEMUTimerList *tl, int k)
{
    HeapEntry *heap = tl->heap;
    QEMUTimer *t = heap[k].t;
    int end = --tl->end, best;

    if (k != end) {
        while ((best = min_child(heap, end, k)) >= 0) {
            heap[k] = heap[best];
            heap[k].t->heap_index = k;
            k = best;
        }
        heap[k] = heap[end];
        sift_up(tl, k);
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
    TimerOwner *me;

    check_clock("timerlist_new", type, NULL);
    clock = &qemu_clocks[type];
    tl = aioloop__calloc(1, sizeof(*tl));
    if (!tl) {
        return NULL;
    }
    tl->type = type;
    me = owner_self();
    tl->bias = me ? me : &no_owner;     /* the creator's, see above */
    tl->end = HEAP_ROOT;
    tl->first_expire = INT64_MAX;
    tl->notify_cb = cb;
    tl->notify_opaque = opaque;
    qemu_mutex_lock(&clock->lock);
    QLIST_INSERT_HEAD(&clock->timerlists, tl, clock_link);
    qemu_mutex_unlock(&clock->lock);
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
    TimerOwner *fast;
    int k;

    qemu_mutex_lock(&clock->lock);
    QLIST_REMOVE(tl, clock_link);
    qemu_mutex_unlock(&clock->lock);

    fast = tl_lock(tl);
    for (k = HEAP_ROOT; k < tl->end; k++) {
        QEMUTimer *t = tl->heap[k].t;

        t->heap_index = HEAP_INDEX_ORPHAN;  /* for timer_mod's report */
        qatomic_set(&t->expire_time, -1);
        t->timer_list = NULL;       /* arming it again aborts */
    }
    tl->end = HEAP_ROOT;
    tl_unlock(tl, fast);
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

/* The part of timerlist_run_timers() that runs only when a timer is
 * armed: out of line, so that the common call (nothing armed: a rebias
 * check and one load) saves no registers and sets up no frame. */
static __attribute__((noinline)) bool tl_run_armed(QEMUTimerList *tl)
{
    bool progress = false;
    int64_t now;

    if (!qemu_clock_is_enabled(tl->type)) {
        return false;
    }
    /* Time is read once: a timer re-armed for "now" by a callback fires
     * at the next run, not in this one. One timer per lock hold: a
     * callback's nested aio_poll() must see the others still due. */
    now = qemu_clock_get_ns(tl->type);
    while (qatomic_read(&tl->first_expire) <= now) {
        TimerOwner *fast;
        QEMUTimerCB *cb;
        QEMUTimer *t;
        void *opaque;

        fast = tl_lock(tl);
        if (root_expire(tl) > now) {
            tl_unlock(tl, fast);
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
        tl_unlock(tl, fast);

        cb(opaque);             /* may free t, re-arm it, nest aio_poll */
        progress = true;
    }
    return progress;
}

static inline bool tl_run(QEMUTimerList *tl)
{
    if (unlikely(qatomic_read(&tl->bias) != tls_owner)) {
        tl_rebias(tl);          /* the loop thread's call: see above */
    }
    if (qatomic_read(&tl->first_expire) == INT64_MAX) {
        return false;
    }
    return tl_run_armed(tl);
}

bool timerlist_run_timers(QEMUTimerList *tl)
{
    return tl_run(tl);
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

static __attribute__((noinline)) bool tlg_run(QEMUTimerListGroup *tlg)
{
    bool progress = false;
    int type;

    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        progress |= tl_run(tlg->tl[type]);  /* skips an idle list itself */
    }
    return progress;
}

/* Every aio_poll() pass runs its four lists. With nothing armed on lists
 * biased to the caller (no timers: most passes of a loop that only runs
 * BHs or handlers) that is a few loads and compares, without a call per
 * list (which cost about 120 instructions per pass); otherwise tlg_run()
 * makes the calls a list needs. A list needs the call unless nothing is
 * armed on it (first_expire INT64_MAX) and it is biased to the caller:
 * a list biased elsewhere still needs it, so that the loop thread counts
 * its quiet runs and takes the bias back (see tl_rebias()). The four
 * tests are folded into one word, without a branch per list and field:
 * (first_expire ^ INT64_MAX) | (bias ^ me) is zero exactly when that
 * list needs no call (47 -> 33 instructions on an idle pass). */
bool aioloop__timerlistgroup_run_timers(QEMUTimerListGroup *tlg)
{
    uintptr_t me = (uintptr_t)tls_owner;
    uint64_t busy = 0;
    int type;

#pragma GCC unroll 8
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        QEMUTimerList *tl = tlg->tl[type];

        busy |= (uint64_t)qatomic_read(&tl->first_expire) ^
                (uint64_t)INT64_MAX;
        busy |= (uintptr_t)qatomic_read(&tl->bias) ^ me;
    }
    return unlikely(busy) ? tlg_run(tlg) : false;
}

bool timerlistgroup_run_timers(QEMUTimerListGroup *tlg)
{
    return aioloop__timerlistgroup_run_timers(tlg);
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

    if (unlikely(!ctx)) {
        aioloop__misuse("timer_new", "the main loop is not initialised "
                        "(call qemu_init_main_loop() first)");
    }
    check_clock(__func__, type, NULL);
    return aio_timer_new(ctx, type, scale, cb, opaque);
}

QEMUTimerListGroup *aio_get_timer_list_group(AioContext *ctx)
{
    return &ctx->tlg;
}

/* Drop the lock; if the first deadline became earlier, publish it and
 * wake the list's owner (seq_cst: pairs with notify_me, see the top of
 * this file). */
static inline void timer_mod_done(QEMUTimerList *tl, TimerOwner *fast,
                                  bool earlier, int64_t expire)
{
    if (earlier) {
        qatomic_mb_set(&tl->first_expire, expire);
    }
    tl_unlock(tl, fast);
    if (earlier && tl->notify_cb) {
        tl->notify_cb(tl->notify_opaque, tl->type);
    }
}

/* Re-arm @ts at @k (below the root) before its parent: up. It becomes
 * the root only by passing the old one, i.e. with an earlier deadline.
 * Under the lock, which it drops. */
static __attribute__((noinline)) void timer_move_up(QEMUTimerList *tl,
                                                    QEMUTimer *ts, int k,
                                                    int64_t expire,
                                                    TimerOwner *fast)
{
    bool earlier;

    ts->seq = tl->seq++;
    earlier = sift_up_newest(tl, k, (HeapEntry) { .expire = expire,
                                                  .t = ts }) == HEAP_ROOT;
    qatomic_set(&ts->expire_time, expire);
    timer_mod_done(tl, fast, earlier, expire);
}

/* Re-arm @ts at @k (below the root) past some of its children: down.
 * The root does not change. Under the lock, which it drops. */
static __attribute__((noinline)) void timer_move_down(QEMUTimerList *tl,
                                                      QEMUTimer *ts, int k,
                                                      int64_t expire,
                                                      TimerOwner *fast)
{
    ts->seq = tl->seq++;
    sift_down_newest(tl, k, (HeapEntry) { .expire = expire, .t = ts });
    qatomic_set(&ts->expire_time, expire);
    tl_unlock(tl, fast);
}

/* Arm @ts, not armed, at @expire. Under the lock, which it drops. */
static __attribute__((noinline)) void timer_arm(QEMUTimerList *tl,
                                                QEMUTimer *ts,
                                                int64_t expire,
                                                TimerOwner *fast)
{
    bool earlier;

    if (unlikely(tl->end >= tl->cap)) {
        heap_grow(tl);
    }
    ts->seq = tl->seq++;
    /* The first timer of the list is earlier than no timer, unless it
     * never expires. */
    earlier = sift_up_newest(tl, tl->end++,
                             (HeapEntry) { .expire = expire, .t = ts })
              == HEAP_ROOT && expire != INT64_MAX;
    qatomic_set(&tl->nr_armed, tl->end - HEAP_ROOT);
    qatomic_set(&ts->expire_time, expire);
    timer_mod_done(tl, fast, earlier, expire);
}

/* The other cases of timer_mod_common(): a re-arm of the root,
 * timer_mod_anticipate(). Under the lock, which it drops. */
static __attribute__((noinline)) void timer_mod_locked(QEMUTimerList *tl,
                                                       QEMUTimer *ts,
                                                       int64_t expire,
                                                       bool anticipate,
                                                       TimerOwner *fast)
{
    HeapEntry e = { .expire = expire, .t = ts };
    bool earlier;
    int k = ts->heap_index;

    if (k >= 0 && anticipate && tl->heap[k].expire <= expire) {
        tl_unlock(tl, fast);
        return;
    }
    if (k > HEAP_ROOT) {
        if (expire < tl->heap[HEAP_PARENT(k)].expire) {
            timer_move_up(tl, ts, k, expire, fast);
        } else {
            timer_move_down(tl, ts, k, expire, fast);
        }
        return;
    }
    if (k < 0) {
        timer_arm(tl, ts, expire, fast);
        return;
    }
    /* The root. Earlier: it stays (the children are at or after the old
     * deadline). Later or equal: the first deadline becomes later. */
    ts->seq = tl->seq++;
    earlier = expire < tl->heap[HEAP_ROOT].expire;
    sift_down_newest(tl, k, e);
    if (!earlier) {
        qatomic_set(&tl->first_expire, tl->heap[HEAP_ROOT].expire);
    }
    qatomic_set(&ts->expire_time, expire);
    timer_mod_done(tl, fast, earlier, expire);
}

/*
 * Arm or move @ts. @anticipate: only if unarmed or earlier.
 *
 * Inline is the common re-arm: a timer below the root, moved in place.
 * The old deadline is read from the timer, not from its heap entry (a
 * line that may be far away: the entry is only stored to, never waited
 * for). Later or equal: it can only go down, past the children at or
 * before it, if any (a leaf, three quarters of a heap, looks at nothing;
 * the parent need not be looked at: it was at or before the old
 * deadline). Earlier: it can only go up, before a parent with a later
 * deadline (an equal one was armed first; the children were at or after
 * the old deadline). When it stays, that is one look at the children or
 * at the parent, and a deadline store (its seq still changes: it now
 * goes after equal deadlines). libev's adjustheap always reads the
 * parent, and the entry too when it goes down.
 */
static inline __attribute__((always_inline))
void timer_mod_common(QEMUTimer *ts, int64_t expire, bool anticipate)
{
    QEMUTimerList *tl = ts->timer_list;
    TimerOwner *fast;
    int k;

    /* Not initialised (zero-filled), deinitialised, or detached by the
     * free of its context's lists: arming it would be lost (or touch
     * freed memory), in every build. */
    if (unlikely(!tl)) {
        aioloop__misuse("timer_mod", "QEMUTimer %p (callback %p) %s",
                        (void *)ts, AIOLOOP_FN_PTR(ts->cb),
                        ts->heap_index == HEAP_INDEX_ORPHAN
                        ? "was armed when its timer list (its AioContext) "
                          "was freed"
                        : ts->expire_time == -1 && ts->heap_index == -1
                        ? "was deinitialised (timer_deinit)"
                        : "is not initialised");
    }
    if (expire < 0) {
        expire = 0;
    }
    fast = tl_lock(tl);
    k = ts->heap_index;
    if (!anticipate && likely(k > HEAP_ROOT)) {
        HeapEntry *heap = tl->heap;

        /* The timer's own copy of its deadline (equal to its entry's
         * under the lock) is in a line we hold already. */
        if (expire >= qatomic_read(&ts->expire_time)) {
            if (!below_children(heap, tl->end, k, expire)) {
                timer_move_down(tl, ts, k, expire, fast);
                return;
            }
        } else if (expire < heap[HEAP_PARENT(k)].expire) {
            timer_move_up(tl, ts, k, expire, fast);
            return;
        }
        heap[k].expire = expire;
        ts->seq = tl->seq++;
        qatomic_set(&ts->expire_time, expire);
        tl_unlock(tl, fast);
        return;
    }
    if (!anticipate && k < 0) {
        timer_arm(tl, ts, expire, fast);
        return;
    }
    timer_mod_locked(tl, ts, expire, anticipate, fast);
}

void timer_mod_ns(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, expire_time, false);
}

void timer_mod(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, likely(ts->scale == SCALE_NS) ? expire_time :
                     scale_saturated(expire_time, ts->scale), false);
}

void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, expire_time, true);
}

void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_common(ts, likely(ts->scale == SCALE_NS) ? expire_time :
                     scale_saturated(expire_time, ts->scale), true);
}

void timer_del(QEMUTimer *ts)
{
    QEMUTimerList *tl = ts->timer_list;
    TimerOwner *fast;
    int k;

    /* expire_time is -1 exactly when the timer is not in a heap (both
     * change together under the lock). Unarmed or detached: nothing to
     * do; an arm racing in from another thread is the caller's race. */
    if (!tl || qatomic_load_acquire(&ts->expire_time) < 0) {
        return;
    }
    fast = tl_lock(tl);
    k = ts->heap_index;
    if (k >= 0) {
        heap_remove(tl, k);
        qatomic_set(&ts->expire_time, -1);
        if (k == HEAP_ROOT) {
            qatomic_set(&tl->first_expire, root_expire(tl));
        }
        qatomic_set(&tl->nr_armed, tl->end - HEAP_ROOT);
    }
    tl_unlock(tl, fast);
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

/* ------------------------------------------------------------------ */
/* Test hooks (timer-internal.h)                                       */

bool aioloop__timerlist_check(QEMUTimerList *tl, char *why, size_t len)
{
    TimerOwner *fast = tl_lock(tl);
    bool ok = false;
    int k;

#define CHECK_FAIL(...) do { \
        if (len) { \
            snprintf(why, len, __VA_ARGS__); \
        } \
        goto out; \
    } while (0)

    if (tl->end < HEAP_ROOT ||
        (tl->cap ? tl->end > tl->cap : tl->end != HEAP_ROOT)) {
        CHECK_FAIL("end %d, capacity %d", tl->end, tl->cap);
    }
    if (qatomic_read(&tl->nr_armed) != tl->end - HEAP_ROOT) {
        CHECK_FAIL("nr_armed %d, %d in the heap", qatomic_read(&tl->nr_armed),
                   tl->end - HEAP_ROOT);
    }
    if (qatomic_read(&tl->first_expire) != root_expire(tl)) {
        CHECK_FAIL("first_expire %lld, root %lld",
                   (long long)qatomic_read(&tl->first_expire),
                   (long long)root_expire(tl));
    }
    for (k = HEAP_ROOT; k < tl->end; k++) {
        const HeapEntry *e = &tl->heap[k];

        if (e->t->heap_index != k || e->t->timer_list != tl ||
            qatomic_read(&e->t->expire_time) != e->expire ||
            e->expire < 0) {
            CHECK_FAIL("entry %d: timer %p at index %d, list %p, deadline "
                       "%lld in the heap, %lld in the timer", k,
                       (void *)e->t, e->t->heap_index,
                       (void *)e->t->timer_list, (long long)e->expire,
                       (long long)qatomic_read(&e->t->expire_time));
        }
        if (e->t->seq >= tl->seq) {
            CHECK_FAIL("entry %d: seq %llu, next seq %llu", k,
                       (unsigned long long)e->t->seq,
                       (unsigned long long)tl->seq);
        }
        if (k > HEAP_ROOT) {
            const HeapEntry *p = &tl->heap[HEAP_PARENT(k)];

            if (!entry_before(p, e)) {
                CHECK_FAIL("entry %d (%lld, seq %llu) before its parent %d "
                           "(%lld, seq %llu)", k, (long long)e->expire,
                           (unsigned long long)e->t->seq, HEAP_PARENT(k),
                           (long long)p->expire,
                           (unsigned long long)p->t->seq);
            }
        }
    }
    ok = true;
#undef CHECK_FAIL
out:
    tl_unlock(tl, fast);
    return ok;
}

bool aioloop__timer_bias_enabled(void)
{
    pthread_once(&bias_once, bias_init);
    return bias_enabled;
}

bool aioloop__timerlist_biased_to_self(QEMUTimerList *tl)
{
    return tls_owner && qatomic_read(&tl->bias) == tls_owner;
}

unsigned aioloop__timerlist_revocations(QEMUTimerList *tl)
{
    return qatomic_read(&tl->revocations);
}

unsigned aioloop__timer_bias_backoff(unsigned max_shift)
{
    return qatomic_xchg(&bias_backoff_max, max_shift > 12 ? 12 : max_shift);
}
