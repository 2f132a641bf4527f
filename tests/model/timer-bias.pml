/*
 * timer-bias.pml - Promela model of the timer lists' biased lock
 * (src/timer.c, "The loop thread skips the spinlock"), on x86-TSO: every
 * thread's stores go through its own FIFO store buffer, drained to
 * memory at any time; its loads see its own newest buffered store to the
 * same word, else memory. Checked with Spin by tests/model/run-spin-bias
 * (make check, suite 'model').
 *
 * What is modelled, access for access:
 *
 *   tl_lock() fast path   load tl->bias; if it is mine: store busy = 1
 *                         (my own flag), compiler barrier only, load
 *                         tl->bias again; mine: in. Else store busy = 0
 *                         and take the slow path.
 *   tl_lock_slow()        the spinlock: an exchange (drains my buffer,
 *                         atomic on memory), spinning while taken. Then
 *                         load tl->bias; if it is another thread's: store
 *                         tl->bias = none, membarrier(), wait until that
 *                         thread's busy reads 0 (load), count it.
 *   membarrier()          a full barrier in every thread at one point of
 *                         the call: every store buffer is drained, in one
 *                         step (what MEMBARRIER_CMD_PRIVATE_EXPEDITED
 *                         guarantees: running threads are interrupted,
 *                         sleeping ones passed a context switch).
 *   tl_unlock()           fast: store busy = 0; slow: store locked = 0.
 *   tl_rebias()           under the slow lock: store tl->bias = me.
 *   the critical section  load the heap word, store it + 1 (a lost
 *                         update shows two threads inside at once or a
 *                         store not yet visible to the next holder); a
 *                         ghost counter of threads inside, asserted <= 1
 *                         on entry.
 *
 * Threads: two loop threads (A, B) that each, NOPS times, either take
 * the list (fast path if it is biased to them) or give themselves the
 * bias (tl_rebias), and one other thread (R) that takes the list through
 * the spinlock NOPS times. Bias changes hands A <-> B and is revoked by
 * R, in every interleaving and every drain order.
 *
 * Properties:
 *   safety    at most one thread in the critical section; the heap word
 *             ends at the number of sections (no lost update); no
 *             invalid end state (everyone finishes: no deadlock).
 *
 * Seeded bugs (each must make Spin find the assertion violation):
 *   BUG_NO_MEMBARRIER  the revoker does not call membarrier(): the
 *                      owner's busy = 1 may sit in its buffer while the
 *                      revoker reads 0, and its bias load still sees
 *                      itself.
 *   BUG_NO_RECHECK     the fast path does not load tl->bias again after
 *                      raising busy.
 *   BUG_SHARED_BUSY    one busy flag for every thread: a thread that read
 *                      a stale bias clears it while the real owner is
 *                      inside.
 *   BUG_NO_WAIT        the revoker does not wait for busy to drop.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef NOPS
#define NOPS 2
#endif
#define BUF 3                   /* store buffer entries per thread */

/* Threads; the bias holds a thread id or NONE. */
#define A 0
#define B 1
#define R 2
#define NONE 3

/* Words of memory. */
#define W_BIAS   0
#define W_LOCKED 1
#define W_HEAP   2
#define W_BUSY   3              /* + thread id (A, B): busy flags */
#define NWORDS   5

byte mem[NWORDS];

/* Store buffers: FIFO of (word, value), per thread. */
typedef Buf {
    byte word[BUF];
    byte val[BUF];
    byte n;
};
Buf buf[3];

/* Ghosts. */
byte inside;                    /* threads in the critical section */
byte sections;                  /* critical sections completed */
byte done;                      /* threads finished */

#ifdef BUG_SHARED_BUSY
#define BUSY(th) (W_BUSY)
#else
#define BUSY(th) (W_BUSY + (th))
#endif

/* Store (by thread 'me', a local of every thread): append to my buffer
 * (blocks while full: the drainer runs). */
inline store(w, x) {
    atomic {
        buf[me].n < BUF ->
        buf[me].word[buf[me].n] = w;
        buf[me].val[buf[me].n] = x;
        buf[me].n++
    }
}

/* Load: my newest buffered store to @w, else memory. */
inline load(w, out) {
    atomic {
        i = buf[me].n;
        out = mem[w];
        do
        :: i > 0 ->
            i--;
            if
            :: buf[me].word[i] == w -> out = buf[me].val[i]; break
            :: else -> skip
            fi
        :: else -> break
        od;
        i = 0
    }
}

/* Drain one entry of thread @t's buffer to memory. */
inline drain_one(t) {
    mem[buf[t].word[0]] = buf[t].val[0];
    buf[t].word[0] = buf[t].word[1]; buf[t].val[0] = buf[t].val[1];
    buf[t].word[1] = buf[t].word[2]; buf[t].val[1] = buf[t].val[2];
    buf[t].word[2] = 0; buf[t].val[2] = 0;
    buf[t].n--
}

inline drain_all(t) {
    do
    :: buf[t].n > 0 -> drain_one(t)
    :: else -> break
    od
}

/* A locked instruction or mfence: my buffer drains first. */
inline fence() {
    (buf[me].n == 0)
}

/* The spinlock (exchange: my buffer drained, then atomic on memory). */
inline spin_lock() {
    do
    :: atomic { buf[me].n == 0 && mem[W_LOCKED] == 0 -> mem[W_LOCKED] = 1;
                break }
    od
}

inline membarrier() {
#ifndef BUG_NO_MEMBARRIER
    atomic { drain_all(A); drain_all(B); drain_all(R) }
#else
    fence()
#endif
}

/* tl_lock_slow(): the spinlock, then revoke another thread's bias. */
inline lock_slow() {
    spin_lock();
    load(W_BIAS, owner);
    if
    :: owner != NONE && owner != me ->
        store(W_BIAS, NONE);
        membarrier();
#ifndef BUG_NO_WAIT
        /* The load of the owner's busy, as a blocking wait: no thread
         * buffers a store to another thread's flag, so it reads memory. */
        (mem[BUSY(owner)] == 0)
#endif
    :: else -> skip
    fi
}

inline unlock_slow() {
    store(W_LOCKED, 0)
}

/* The critical section: one heap step. */
inline section() {
    atomic { assert(inside == 0); inside++ };
    load(W_HEAP, v);
    store(W_HEAP, v + 1);
    atomic { inside--; sections++ }
}

/* tl_lock() ... tl_unlock() around one section. */
inline take_list() {
    fast = false;
    load(W_BIAS, owner);
    if
    :: owner == me ->
        store(BUSY(me), 1);
#ifndef BUG_NO_RECHECK
        load(W_BIAS, owner);
        if
        :: owner == me -> fast = true
        :: else -> store(BUSY(me), 0)
        fi
#else
        fast = true
#endif
    :: else -> skip
    fi;
    if
    :: fast ->
        section();
        store(BUSY(me), 0)
    :: else ->
        lock_slow();
        section();
        unlock_slow()
    fi
}

/* tl_rebias(): the slow lock (revoking the other owner), bias = me. */
inline rebias() {
    lock_slow();
    store(W_BIAS, me);
    unlock_slow()
}

proctype Loop(byte me)
{
    byte n = 0, owner, v, i;
    bool fast;

    do
    :: n < NOPS ->
        if
        :: take_list()
        :: rebias()
        fi;
        n++
    :: else -> break
    od;
    fence();
    atomic { done++ }
}

proctype Other()
{
    byte me = R, n = 0, owner, v, i;

    do
    :: n < NOPS ->
        lock_slow();
        section();
        unlock_slow();
        n++
    :: else -> break
    od;
    fence();
    atomic { done++ }
}

/* Drains the store buffers in any order, at any time. */
active proctype Drainer()
{
end_drain:
    do
    :: atomic { buf[A].n > 0 -> drain_one(A) }
    :: atomic { buf[B].n > 0 -> drain_one(B) }
    :: atomic { buf[R].n > 0 -> drain_one(R) }
    od
}

init {
    mem[W_BIAS] = A;            /* the creator's */
    atomic {
        run Loop(A);
        run Loop(B);
        run Other()
    };
    (done == 3);
    assert(buf[A].n == 0 && buf[B].n == 0 && buf[R].n == 0);
    assert(mem[W_HEAP] == sections)
}
