/*
 * aioloop/atomic.h - atomic accesses and memory barriers, QEMU's spelling.
 *
 * Design
 * ------
 * The event loop shares a handful of plain words between threads (a BH's
 * flags, the notify_me counter, a lock's owner). C11 would have us declare
 * them _Atomic, which changes their type and spreads through every struct
 * and every access. QEMU instead keeps the words plain and marks each
 * *access* as atomic; code written against QEMU expects that, so we do the
 * same: every macro below takes a pointer to an ordinary (non-_Atomic)
 * integer or pointer object and expands to a GCC/Clang __atomic builtin
 * with an explicit memory order.
 *
 * Why builtins and not hand-written asm or volatile: the compiler knows
 * their semantics (so it neither tears nor reorders them wrongly), and
 * ThreadSanitizer instruments them, so a missing order shows up as a race
 * report instead of a heisenbug.
 *
 * Orders, from cheapest to strongest:
 *   qatomic_read / qatomic_set             relaxed: atomic, no ordering
 *   qatomic_load_acquire / _store_release  one-way ordering (publish/consume)
 *   every read-modify-write, xchg, cmpxchg sequentially consistent (a full
 *   qatomic_mb_read / qatomic_mb_set       barrier on either side)
 *
 * The standalone fences (smp_mb, smp_wmb, smp_rmb) map to C11
 * atomic_thread_fence. ThreadSanitizer does not model standalone fences,
 * so code that must be TSan-clean pairs orders on the accesses themselves
 * (acquire/release or seq_cst operations) and uses fences only as an
 * extra on top. Each use of a fence in aioloop names the access it pairs
 * with.
 *
 * All macros evaluate the pointer argument exactly once. Operand sizes must
 * be ones the target can do lock-free (1, 2, 4, 8 bytes and pointers on
 * every platform aioloop supports).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ATOMIC_H
#define AIOLOOP_ATOMIC_H

#include <stdbool.h>
#include <stdatomic.h>

/*
 * barrier() - compiler barrier: the compiler may not move memory accesses
 * across it. It emits no instruction and orders nothing between CPUs.
 *
 * Any thread, async-signal-safe.
 */
#define barrier() __asm__ __volatile__("" ::: "memory")

/*
 * smp_mb() - full memory barrier: loads and stores before it are ordered
 * before loads and stores after it, as seen by every other thread.
 * smp_wmb() orders earlier stores before later stores (release fence);
 * smp_rmb() orders earlier loads before later loads (acquire fence).
 * smp_mb_acquire() and smp_mb_release() are the acquire and release fences
 * under their QEMU names.
 *
 * Any thread, async-signal-safe.
 */
#define smp_mb()         atomic_thread_fence(memory_order_seq_cst)
#define smp_wmb()        atomic_thread_fence(memory_order_release)
#define smp_rmb()        atomic_thread_fence(memory_order_acquire)
#define smp_mb_acquire() atomic_thread_fence(memory_order_acquire)
#define smp_mb_release() atomic_thread_fence(memory_order_release)

/*
 * qatomic_read(ptr) - load *ptr atomically, with no ordering (relaxed).
 * qatomic_set(ptr, val) - store val to *ptr atomically, with no ordering.
 *
 * Use these for words another thread may access concurrently when some
 * other operation provides the ordering (or none is needed, e.g. a
 * statistics counter or a hint).
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_read(ptr)      __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, val)  __atomic_store_n(ptr, val, __ATOMIC_RELAXED)

/*
 * qatomic_load_acquire(ptr) - load *ptr; no later access of this thread
 * may be performed before it. Pairs with a qatomic_store_release() (or any
 * seq_cst write) of the value it reads: everything the writer did before
 * that store is visible after this load.
 * qatomic_store_release(ptr, val) - store val to *ptr; no earlier access
 * of this thread may be performed after it.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_load_acquire(ptr)       __atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define qatomic_store_release(ptr, val) __atomic_store_n(ptr, val, __ATOMIC_RELEASE)

/*
 * qatomic_rcu_read(ptr) / qatomic_rcu_set(ptr, val) - publish a pointer to
 * a fully initialised object and read it back: the same as
 * qatomic_load_acquire() / qatomic_store_release(), under QEMU's names.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_rcu_read(ptr)      __atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define qatomic_rcu_set(ptr, val)  __atomic_store_n(ptr, val, __ATOMIC_RELEASE)

/*
 * qatomic_mb_read(ptr) - sequentially consistent load of *ptr.
 * qatomic_mb_set(ptr, val) - sequentially consistent store to *ptr.
 *
 * All seq_cst operations of all threads appear in one total order; use
 * these for Dekker-style protocols ("I store my flag, then load yours").
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_mb_read(ptr)      __atomic_load_n(ptr, __ATOMIC_SEQ_CST)
#define qatomic_mb_set(ptr, val)  __atomic_store_n(ptr, val, __ATOMIC_SEQ_CST)

/*
 * qatomic_xchg(ptr, val) - store val to *ptr and return the previous
 * value, as one sequentially consistent atomic step.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_xchg(ptr, val) __atomic_exchange_n(ptr, val, __ATOMIC_SEQ_CST)

/*
 * qatomic_cmpxchg(ptr, old, new) - if *ptr equals old, store new; in
 * either case return the value *ptr held before (so the exchange happened
 * exactly when the result equals old). Sequentially consistent; never
 * fails spuriously.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_cmpxchg(ptr, old, new) __extension__ ({                     \
    __typeof__(*(ptr)) aioloop__cmpxchg_seen = (old);                       \
    (void)__atomic_compare_exchange_n(ptr, &aioloop__cmpxchg_seen, new,     \
                                      false, __ATOMIC_SEQ_CST,              \
                                      __ATOMIC_SEQ_CST);                    \
    aioloop__cmpxchg_seen;                                                  \
})

/*
 * qatomic_fetch_add/sub/and/or/xor(ptr, val) - apply the operation to
 * *ptr atomically and return the value *ptr held before.
 * qatomic_fetch_inc/dec(ptr) - the same with val = 1.
 * qatomic_add_fetch/sub_fetch/inc_fetch/dec_fetch - return the new value.
 * All are sequentially consistent.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_fetch_add(ptr, val) __atomic_fetch_add(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_fetch_sub(ptr, val) __atomic_fetch_sub(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_fetch_and(ptr, val) __atomic_fetch_and(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_fetch_or(ptr, val)  __atomic_fetch_or(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_fetch_xor(ptr, val) __atomic_fetch_xor(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_fetch_inc(ptr)      __atomic_fetch_add(ptr, 1, __ATOMIC_SEQ_CST)
#define qatomic_fetch_dec(ptr)      __atomic_fetch_sub(ptr, 1, __ATOMIC_SEQ_CST)

/*
 * qatomic_add_fetch/sub_fetch(ptr, val), qatomic_inc_fetch/dec_fetch(ptr) -
 * the operations above, returning the value *ptr holds afterwards.
 * Sequentially consistent.
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_add_fetch(ptr, val) __atomic_add_fetch(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_sub_fetch(ptr, val) __atomic_sub_fetch(ptr, val, __ATOMIC_SEQ_CST)
#define qatomic_inc_fetch(ptr)      __atomic_add_fetch(ptr, 1, __ATOMIC_SEQ_CST)
#define qatomic_dec_fetch(ptr)      __atomic_sub_fetch(ptr, 1, __ATOMIC_SEQ_CST)

/*
 * qatomic_add/sub/and/or/xor(ptr, val), qatomic_inc/dec(ptr) - the same
 * sequentially consistent read-modify-write operations, for when the result
 * is not needed. They are statements (they yield no value).
 *
 * Any thread, async-signal-safe.
 */
#define qatomic_add(ptr, val) ((void)__atomic_fetch_add(ptr, val, __ATOMIC_SEQ_CST))
#define qatomic_sub(ptr, val) ((void)__atomic_fetch_sub(ptr, val, __ATOMIC_SEQ_CST))
#define qatomic_and(ptr, val) ((void)__atomic_fetch_and(ptr, val, __ATOMIC_SEQ_CST))
#define qatomic_or(ptr, val)  ((void)__atomic_fetch_or(ptr, val, __ATOMIC_SEQ_CST))
#define qatomic_xor(ptr, val) ((void)__atomic_fetch_xor(ptr, val, __ATOMIC_SEQ_CST))
#define qatomic_inc(ptr)      ((void)__atomic_fetch_add(ptr, 1, __ATOMIC_SEQ_CST))
#define qatomic_dec(ptr)      ((void)__atomic_fetch_sub(ptr, 1, __ATOMIC_SEQ_CST))

#endif /* AIOLOOP_ATOMIC_H */
