/*
 * lockcnt.c - QemuLockCnt: a visitor count and a lock in one futex word.
 *
 * The word
 * --------
 * Bits 0-1 are the lock's state, the rest is the visitor count (in steps
 * of LC_STEP):
 *
 *   LC_FREE     unlocked
 *   LC_LOCKED   locked, nobody sleeps on the word
 *   LC_WAITING  locked, and a thread may be asleep on the word waiting
 *               for the unlock (a locker, or a visitor that found the
 *               count at zero)
 *
 * Every change is one compare-and-swap (or one fetch-and-op) on the word,
 * so the compound steps the API promises are indivisible: "count 1 ->
 * count 0 and locked" (dec_and_lock, dec_if_lock), "count +1 and
 * unlocked" (inc_and_unlock). A visitor may come in when the count is
 * positive, or when it is zero and the lock is free; only "count zero and
 * locked" makes it wait. That is the state of a thread freeing what
 * visitors could see, so no visitor ever sees it.
 *
 * Waiting (the futex protocol)
 * ----------------------------
 * A thread that must wait for the unlock first turns LC_LOCKED into
 * LC_WAITING (CAS: if the word changed meanwhile it just looks again),
 * then sleeps with futex_wait(word, the value it saw). The kernel puts it
 * to sleep only if the word still holds that value, atomically with
 * respect to futex_wake: an unlock in between changes the word (state
 * LC_FREE), so the sleep does not happen. An unlock that finds
 * LC_WAITING wakes *every* sleeper: the woken threads race for what they
 * want, and the losers mark LC_WAITING again before they sleep, so no
 * sleeper is forgotten by a winner that took the lock as plain
 * LC_LOCKED. A sleeper also wakes when visitors change the count (the
 * word no longer matches): it looks again and sleeps again. Waking all
 * costs a herd on a contended unlock; the lock is for rare
 * reclamation, not for a hot path, so simplicity wins.
 *
 * Ordering: every update of the word is sequentially consistent. A
 * visitor's inc (an RMW that reads the unlock's RMW, or a later value)
 * therefore happens after everything the freeing thread did before it
 * unlocked; and the freeing thread's lock (an RMW that reads the last
 * visitor's dec) happens after that visitor's walk. ThreadSanitizer
 * models these atomics, and there is no other shared state.
 *
 * The library's own walkers (aio-posix.c) call the inline fast paths of
 * inc and dec in lockcnt-internal.h: the same first attempt as the
 * functions below, with the same ordering, without the call.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <aioloop/atomic.h>
#include <aioloop/lockcnt.h>
#include "futex.h"
#include "lockcnt-internal.h"

#define LC_STATE_MASK AIOLOOP_LC_STATE_MASK
#define LC_FREE       AIOLOOP_LC_FREE
#define LC_LOCKED     AIOLOOP_LC_LOCKED
#define LC_WAITING    AIOLOOP_LC_WAITING
#define LC_STEP       AIOLOOP_LC_STEP

static inline unsigned lc_state(unsigned val)
{
    return val & LC_STATE_MASK;
}

/* Compare-and-swap the word from *@val to @new. On failure *@val is the
 * value found, for the caller's next look. */
static inline bool lc_cas(QemuLockCnt *lc, unsigned *val, unsigned new)
{
    unsigned seen = qatomic_cmpxchg(&lc->count, *val, new);

    if (seen == *val) {
        return true;
    }
    *val = seen;
    return false;
}

/* The lock is held (@val's state is not LC_FREE): sleep until the word
 * changes. Returns the word's value afterwards. */
static unsigned lc_wait(QemuLockCnt *lc, unsigned val)
{
    if (lc_state(val) == LC_LOCKED) {
        unsigned want = (val & ~LC_STATE_MASK) | LC_WAITING;

        if (!lc_cas(lc, &val, want)) {
            return val;         /* changed: look again before sleeping */
        }
        val = want;
    }
    aioloop__futex_wait(&lc->count, (int)val);
    return qatomic_read(&lc->count);
}

static __attribute__((noreturn)) void lc_misuse(QemuLockCnt *lc,
                                                const char *what)
{
    fprintf(stderr, "aioloop: QemuLockCnt %p: %s\n", (void *)lc, what);
    abort();
}

void qemu_lockcnt_init(QemuLockCnt *lockcnt)
{
    lockcnt->count = 0;
}

void qemu_lockcnt_destroy(QemuLockCnt *lockcnt)
{
    if (qatomic_read(&lockcnt->count) != 0) {
        lc_misuse(lockcnt, "destroyed while locked or visited");
    }
}

void qemu_lockcnt_inc(QemuLockCnt *lockcnt)
{
    unsigned val = qatomic_read(&lockcnt->count);

    for (;;) {
        /* A positive count lets us in whatever the lock; a zero count
         * only while nobody holds the lock (nobody is freeing). */
        if (val >= LC_STEP || lc_state(val) == LC_FREE) {
            if (val > UINT_MAX - LC_STEP) {
                lc_misuse(lockcnt, "count overflow");
            }
            if (lc_cas(lockcnt, &val, val + LC_STEP)) {
                return;
            }
        } else {
            val = lc_wait(lockcnt, val);
        }
    }
}

void aioloop__lockcnt_dec_underflow(QemuLockCnt *lockcnt)
{
    lc_misuse(lockcnt, "qemu_lockcnt_dec with a zero count");
}

void qemu_lockcnt_dec(QemuLockCnt *lockcnt)
{
    aioloop__lockcnt_dec(lockcnt);
}

/* From count 1, unlocked, to count 0, locked, in one step, waiting for
 * the lock if needed. Returns false (nothing changed) as soon as the
 * count is seen above 1, or, with @dec_anyway, after decrementing it. */
static bool lc_last_out_locks(QemuLockCnt *lc, bool dec_anyway)
{
    unsigned val = qatomic_read(&lc->count);

    for (;;) {
        if (val < LC_STEP) {
            lc_misuse(lc, "decremented with a zero count");
        }
        if (val >= 2 * LC_STEP) {
            if (!dec_anyway) {
                return false;
            }
            if (lc_cas(lc, &val, val - LC_STEP)) {
                return false;
            }
        } else if (lc_state(val) == LC_FREE) {
            if (lc_cas(lc, &val, (val - LC_STEP) | LC_LOCKED)) {
                return true;
            }
        } else {
            /* Someone holds the lock; the count stays 1 while we wait,
             * so visitors keep coming in meanwhile. */
            val = lc_wait(lc, val);
        }
    }
}

bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt)
{
    return lc_last_out_locks(lockcnt, true);
}

bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt)
{
    return lc_last_out_locks(lockcnt, false);
}

void qemu_lockcnt_lock(QemuLockCnt *lockcnt)
{
    unsigned val = qatomic_read(&lockcnt->count);

    for (;;) {
        if (lc_state(val) == LC_FREE) {
            if (lc_cas(lockcnt, &val, val | LC_LOCKED)) {
                return;
            }
        } else {
            val = lc_wait(lockcnt, val);
        }
    }
}

void qemu_lockcnt_unlock(QemuLockCnt *lockcnt)
{
    unsigned old = qatomic_fetch_and(&lockcnt->count, ~LC_STATE_MASK);

    if (lc_state(old) == LC_FREE) {
        lc_misuse(lockcnt, "unlocked while not locked");
    }
    if (lc_state(old) == LC_WAITING) {
        aioloop__futex_wake_all(&lockcnt->count);
    }
}

void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt)
{
    unsigned val = qatomic_read(&lockcnt->count);
    unsigned old;

    do {
        old = val;
        if (lc_state(val) == LC_FREE) {
            lc_misuse(lockcnt, "inc_and_unlock while not locked");
        }
        if (val > UINT_MAX - LC_STEP) {
            lc_misuse(lockcnt, "count overflow");
        }
    } while (!lc_cas(lockcnt, &val, (val & ~LC_STATE_MASK) + LC_STEP));
    if (lc_state(old) == LC_WAITING) {
        aioloop__futex_wake_all(&lockcnt->count);
    }
}

/* An acquire load: a zero read under the lock is how a freeing thread
 * learns that the last visitor has left, and visitors decrement while
 * the lock is held (count 1 -> 0 after the locker's CAS). The acquire
 * pairs with that decrement (a release), so everything the visitor did
 * during its visit happens before what the locker does next - freeing
 * the nodes it visited, say. A relaxed load would read the same value
 * without that ordering: a data race (ThreadSanitizer reported it in
 * test-walkers). */
unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt)
{
    return qatomic_load_acquire(&lockcnt->count) / LC_STEP;
}
