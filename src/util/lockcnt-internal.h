/*
 * lockcnt-internal.h - the QemuLockCnt word's layout and the inline fast
 * paths of qemu_lockcnt_inc() and qemu_lockcnt_dec() for the library's
 * own hot paths (aio_poll()'s walks of the handler set). Not installed:
 * the public functions stay out of line, so the word's layout is not
 * part of the ABI.
 *
 * The fast paths are the same atomic operations as the public functions'
 * first attempt, with the same (seq_cst) ordering, only without the call:
 *
 *   inc  one compare-and-swap from a word that lets a visitor in (count
 *        positive, or count zero and unlocked) to the same word plus one
 *        visitor. Anything else - the lock held with a zero count, a
 *        count about to overflow, a CAS lost to another thread - goes to
 *        qemu_lockcnt_inc(), which waits or retries exactly as before.
 *   dec  one fetch-and-subtract, as qemu_lockcnt_dec(); a decrement from
 *        a zero count is reported by an out-of-line function.
 *
 * So every ordering argument made for the public functions (lockcnt.c's
 * header, the walkers' comment in aio-posix.c, tests/model/walkers.pml)
 * holds unchanged for these.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_LOCKCNT_INTERNAL_H
#define AIOLOOP_LOCKCNT_INTERNAL_H

#include <limits.h>
#include <aioloop/atomic.h>
#include <aioloop/compiler.h>
#include <aioloop/lockcnt.h>

/* Bits 0-1 of QemuLockCnt.count: the lock's state; the count above. */
#define AIOLOOP_LC_STATE_MASK 3u
#define AIOLOOP_LC_FREE       0u
#define AIOLOOP_LC_LOCKED     1u
#define AIOLOOP_LC_WAITING    2u
#define AIOLOOP_LC_STEP       4u

/* Aborts naming @lockcnt: a decrement of a zero count (lockcnt.c). */
AIOLOOP_NORETURN void aioloop__lockcnt_dec_underflow(QemuLockCnt *lockcnt);

/* qemu_lockcnt_inc(), inline when the word lets us in at once. */
static inline void aioloop__lockcnt_inc(QemuLockCnt *lockcnt)
{
    unsigned val = qatomic_read(&lockcnt->count);

    /* Count positive (any lock state), or the whole word zero (count
     * zero, unlocked); not near overflow. */
    if (likely((val >= AIOLOOP_LC_STEP || val == AIOLOOP_LC_FREE) &&
               val <= UINT_MAX - AIOLOOP_LC_STEP) &&
        likely(__atomic_compare_exchange_n(&lockcnt->count, &val,
                                           val + AIOLOOP_LC_STEP, false,
                                           __ATOMIC_SEQ_CST,
                                           __ATOMIC_RELAXED))) {
        return;
    }
    qemu_lockcnt_inc(lockcnt);
}

/* qemu_lockcnt_dec(), inline. */
static inline void aioloop__lockcnt_dec(QemuLockCnt *lockcnt)
{
    unsigned old = qatomic_fetch_sub(&lockcnt->count, AIOLOOP_LC_STEP);

    if (unlikely(old < AIOLOOP_LC_STEP)) {
        aioloop__lockcnt_dec_underflow(lockcnt);
    }
}

#endif /* AIOLOOP_LOCKCNT_INTERNAL_H */
