/*
 * timer-internal.h - what timer.c offers the rest of the library but
 * not its users: the fallible group initialisation the context uses
 * (async.c), and test hooks. Not installed; not part of the ABI
 * (hidden, aioloop__ prefix).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TIMER_INTERNAL_H
#define AIOLOOP_TIMER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <aioloop/timer.h>

/*
 * aioloop__timerlistgroup_try_init - timerlistgroup_init() that reports
 * running out of memory instead of aborting.
 * Returns: 0, or -ENOMEM with @tlg left empty.
 * Any thread.
 */
int aioloop__timerlistgroup_try_init(QEMUTimerListGroup *tlg,
                                     QEMUTimerListNotifyCB *cb, void *opaque);

/*
 * aioloop__timerlistgroup_run_timers - timerlistgroup_run_timers() under
 * a hidden name, so that aio_poll(), which calls it on every pass,
 * reaches it with a direct call instead of through the shared library's
 * PLT.
 * Returns: whether a timer callback ran.
 * Loop thread only.
 */
bool aioloop__timerlistgroup_run_timers(QEMUTimerListGroup *tlg);

/*
 * aioloop__timerlist_check - check the invariants of @tl under its lock:
 * heap order (deadline, then arm sequence), every armed timer's heap
 * index, deadline and list, the lock-free mirrors (first deadline,
 * number armed), arm sequence numbers below the list's next one.
 * Returns: true if they hold; false with a description in @why (@len
 * bytes, may be 0).
 * Any thread.
 */
bool aioloop__timerlist_check(QEMUTimerList *tl, char *why, size_t len);

/*
 * aioloop__timer_bias_enabled - whether timer lists can be biased to a
 * thread at all (membarrier usable and AIOLOOP_TIMER_BIAS is not 0).
 * Any thread.
 */
bool aioloop__timer_bias_enabled(void);

/*
 * aioloop__timerlist_biased_to_self - whether @tl is biased to the
 * calling thread (its timer_mod()/timer_del() take no lock).
 * Any thread.
 */
bool aioloop__timerlist_biased_to_self(QEMUTimerList *tl);

/*
 * aioloop__timerlist_revocations - how many times another thread took
 * @tl's bias away from its owner. Any thread.
 */
unsigned aioloop__timerlist_revocations(QEMUTimerList *tl);

/*
 * aioloop__timer_bias_backoff - after its r-th revocation, a list goes
 * back to its loop thread after 2^min(r, @max_shift) quiet runs of its
 * timers (default 12, at most 12). 0: at the next run, so that tests
 * revoke and re-grant as often as they can.
 * Returns: the previous value. Any thread.
 */
unsigned aioloop__timer_bias_backoff(unsigned max_shift);

#endif /* AIOLOOP_TIMER_INTERNAL_H */
