/*
 * aio-notify.pml - Promela model of aio_poll()/aio_notify(): the notify_me /
 * notified handshake, bottom-half scheduling and the context lock with its
 * contention wake-up (the held loop below). Checked with Spin by run-spin
 * (make check, suite 'model'; make check-model).
 *
 * What is modelled, access for access (each shared access of the C code
 * is its own Promela step, except where noted):
 *
 *   qemu_bh_schedule()  src/async.c bh_enqueue(): fetch_or of the flags;
 *                       CAS push onto ctx->bh_list if BH_PENDING was
 *                       clear; load of notify_me; aio_notify() if nonzero.
 *   aio_notify()        store notified = true; load notify_me; eventfd
 *                       write if nonzero.
 *   aio_poll(ctx, true) src/aio-posix.c aio_poll()/aio_poll_once():
 *                       acquire; aio_compute_timeout() (the BH list head);
 *                       optionally a busy poll (aioloop__notifier_poll:
 *                       notified, BH list); then either a zero-timeout
 *                       look (no eventfd read if every handler has io_poll)
 *                       or: notify_me += 2; BH list again; load notified;
 *                       the contention check (caller holds the context,
 *                       someone is queued, and the caller has not had a
 *                       false return since: ctx->contention_reported;
 *                       the lock answers through
 *                       aioloop__rfifolock_nested_and_contended());
 *                       fdmon_wait(): release one level, the monitor's
 *                       wait (epoll_wait), reacquire, then its collect;
 *                       notify_me -= 2. Then aio_notify_accept (relaxed
 *                       load, exchange) giving woken; a load of the
 *                       bh_list head and, if it is not empty, the exchange
 *                       of bh_list and one fetch_and per BH taken (the BH runs
 *                       if it was scheduled); the notifier's read handler
 *                       draining the eventfd if it was reported. Repeats
 *                       while no progress and not woken; on return sets
 *                       contention_reported.
 *   the context lock    src/util/rfifolock.c: recursion; fast path (load
 *                       waiters, CAS owner); slow path (mutex, waiters++,
 *                       ticket, CAS, contention callback = aio_notify(),
 *                       cond_wait); unlock (store owner = 0, load waiters,
 *                       broadcast). Steps under the lock's mutex that no
 *                       other thread can observe in between are merged.
 *
 * Threads: a poller running the IOThread loop of tests/aio/test-acquire.c,
 * either way: holding the context around "while (!stop && aio_poll(ctx,
 * true));" (QEMU 2.4's IOThread: the held loop) or calling aio_poll(ctx, true)
 * bare; with HOLD=3 it first holds the context and polls until BH 0 ran,
 * whatever aio_poll() returns (an AIO_WAIT_WHILE with the context held).
 * NSCHED threads schedule a BH each (the first one twice); a thread takes
 * the context once; a stopper, once that work is done, sets stop and calls
 * aio_notify(), like the test's main thread.
 *
 * Handler lifetime is not here: walks are counted in a QemuLockCnt that
 * has no part in the wake-up protocol (it never blocks a sleeping or
 * waking thread: the count stays positive across the sleep), see
 * walkers.pml. The fd monitor never touches the context lock: the core
 * releases and reacquires it around the monitor's wait, as modelled.
 *
 * Not modelled: timers and kicks (handler-set changes; they use the same
 * notify_me handshake through aioloop__kick), idle BHs, cancel/delete,
 * nested aio_poll, the GSource (notify_me bit 0), two pollers on one
 * context. All accesses are taken as sequentially consistent. In the C
 * code they are seq_cst except same-location relaxed loads (notified in
 * aio_notify_accept's fast path, waiters on the lock's fast path, the busy
 * poll), whose staleness costs at most an extra iteration or an unfair
 * barge, never a wake-up.
 *
 * Properties (tests/model/run-spin runs each search):
 *   safety    assert(!LOST_WAKEUP) at every step that can make it true:
 *             the poller is never asleep, eventfd clear, nobody on the way
 *             to wake it, while it has work it must see - a published
 *             scheduled BH, an aio_notify() made since aio_poll() last
 *             returned (a notify is never lost), or a thread queued for the
 *             context this poller still holds (held loop), unless aio_poll()
 *             already returned false to the caller while it waited;
 *             assert(runs <= schedules) for each BH (nothing runs twice);
 *             no invalid end state (no deadlock: every thread finishes,
 *             which needs every BH run and the acquirer served).
 *   liveness  under weak fairness: ltl all_done (<> everything finished),
 *             ltl acquire ([] (acquirer waiting -> <> it holds)),
 *             ltl bh_runs ([] (BH 0 scheduled -> <> a run of it started));
 *             and, without fairness, no non-progress cycle: no cycle runs
 *             no BH, even while the other threads stand still (no
 *             busy-wait, no livelock; every correct run terminates).
 *
 * Variants that must FAIL (-D at spin -a time; run-spin's "bugs" mode):
 *   BUG_FORGETFUL_NOTIFY    QEMU 2.4's aio_notify(), before its fix:
 *                           no notified flag, "if (notify_me) write the
 *                           eventfd"; aio_poll returns when the eventfd
 *                           woke it. The contention wake-up sent while
 *                           notify_me is 0 is lost: the held loop hangs.
 *   BUG_NO_CONTENTION_WAKE  the lock without its contention callback:
 *                           acquire does not wake the sleeping owner.
 *   BUG_LATE_ANNOUNCE       the poller looks at the BH list and notified
 *                           before notify_me += 2 (the broken ordering).
 *   BUG_WOKEN_RACE          aioloop before this model: woken = load of
 *                           notified, then aio_notify_accept() clears it in
 *                           a second step; a notify in between is cleared
 *                           unreported and aio_poll() sleeps on.
 *   BUG_EDGE_CONTENTION     aioloop before this model: no contention check
 *                           before sleeping; the one contention wake-up is
 *                           consumed by an aio_poll() that also ran a BH,
 *                           the held loop polls again and sleeps with the
 *                           waiter queued.
 *   BUG_LEVEL_CONTENTION    the contention check without
 *                           contention_reported: a caller that keeps the
 *                           context and polls on (HOLD=3) spins while the
 *                           waiter waits - Spin finds the busy-wait as a
 *                           non-progress cycle.
 *
 * SPDX-License-Identifier: MIT
 */

#define POLLER    1
#define ACQUIRER  2

/* Scenario (set with -D at spin -a time; run-spin checks several):
 *   NSCHED  threads scheduling a BH, 1 or 2; the first one schedules its
 *           BH twice when TWICE is 1
 *   ACQ     1: a thread takes the context once (aio_context_acquire)
 *   HOLD    0: aio_poll() bare, 1: held around the inner loop, 2: either,
 *           chosen each round, 3: as 2 after a held wait for BH 0 */
#ifndef NSCHED
#define NSCHED 2
#endif
#ifndef TWICE
#define TWICE 1
#endif
#ifndef ACQ
#define ACQ 1
#endif
#ifndef HOLD
#define HOLD 2
#endif

/* BH flag bits (src/aio-internal.h) */
#define F_PENDING 1
#define F_SCHED   2

/* ---- shared state of the C code ---- */
byte bh_flags[2];
bool onlist[2];        /* reachable from ctx->bh_list */
byte notify_me;
bool notified;
bool efd;                   /* the context's eventfd is readable */

/* RFifoLock */
byte owner;                 /* 0 free, POLLER or ACQUIRER */
byte nest[3];               /* nesting, by thread (owner only) */
byte waiters;
bool mtx;                   /* the lock's internal mutex */
byte next_ticket;           /* mod 4: at most 2 threads queue */
byte serving;
bool cwait[3];              /* in cond_wait, until a broadcast */

bool reported;              /* ctx->contention_reported */
bool can_poll;              /* every handler has io_poll (no user fds) */
bool stop;

/* ---- ghost state for the properties ---- */
bool need[2];               /* scheduled, and no run has started since */
byte runs[2];
byte scheds[2];
bool sdone[2];
byte inflight;              /* threads that published work and have not
                               finished the notify that goes with it */
bool asleep;                /* poller blocked in epoll_wait(-1) */
bool undelivered;           /* an aio_notify() began after the poller last
                               returned from aio_poll() */
bool acq_wants, acq_has, acq_condwait;
bool acq_told;              /* an aio_poll() returned false to the
                               poller's caller while the acquirer waited */
bool acq_done = !ACQ;
bool poller_done, stopper_done;

/* The poller is asleep with nothing left to wake it although it has work
 * it must see: a published scheduled BH, a notification that no
 * aio_poll() has returned since, or a thread queued for the context that
 * the poller still holds, unless the caller was already told (an
 * aio_poll() returned false to it while that thread waited: a caller that
 * keeps the context then chose to). Asserted false at every step that can
 * make it true: the poller falling asleep, a thread ending its notify,
 * the acquirer starting to wait. */
#define LOST_WAKEUP \
    (asleep && !efd && inflight == 0 && \
     ((onlist[0] && (bh_flags[0] & F_SCHED)) || \
      (onlist[1] && (bh_flags[1] & F_SCHED)) || \
      undelivered || (acq_condwait && owner == POLLER && !acq_told)))

/* ---------------------------------------------------------------- */
/* aio_notify() (src/async.c); also the contention callback          */

inline aio_notify()
{
#ifdef BUG_FORGETFUL_NOTIFY
    atomic { undelivered = 1; inflight++ };
#else
    atomic { notified = 1; undelivered = 1; inflight++ };
#endif
    if
    :: notify_me != 0 -> atomic { efd = 1; inflight--; assert(!LOST_WAKEUP) }
    :: atomic { notify_me == 0 -> inflight--; assert(!LOST_WAKEUP) }
    fi
}

/* ---------------------------------------------------------------- */
/* RFifoLock (src/util/rfifolock.c)                                  */

inline cond_wait(me)
{
    atomic {
        cwait[me] = 1; mtx = 0;
        acq_condwait = (me == ACQUIRER);
        assert(!LOST_WAKEUP)
    };
    atomic { !cwait[me] && !mtx -> mtx = 1; acq_condwait = 0 }
}

inline lock(me, ticket, got)
{
    if
    :: atomic { owner == me -> nest[me]++ }      /* recursion */
    :: else ->
        if
        :: waiters == 0 ->                       /* fast path: CAS */
            atomic { if :: owner == 0 -> owner = me; got = 1 :: else fi }
        :: else
        fi;
        if
        :: got -> nest[me] = 1; got = 0
        :: else ->                               /* slow path */
            atomic {
                !mtx -> mtx = 1;
                waiters++;                       /* (A) */
                ticket = next_ticket;
                next_ticket = (next_ticket + 1) % 4
            };
            do
            :: atomic { serving == ticket && owner == 0 -> owner = me }; break
            :: else ->                           /* (B) failed */
#ifndef BUG_NO_CONTENTION_WAKE
                aio_notify();                    /* contention callback */
#endif
                cond_wait(me)
            od;
            atomic {
                serving = (serving + 1) % 4;
                waiters--;
                ticket = 0;
                mtx = 0;
                nest[me] = 1
            }
        fi
    fi
}

inline unlock(me, got)
{
    atomic {
        nest[me]--;
        if
        :: nest[me] == 0 -> owner = 0; got = 1   /* (C) */
        :: else
        fi
    };
    if
    :: got && waiters > 0 ->                     /* (D) */
        atomic { !mtx -> cwait[1] = 0; cwait[2] = 0; got = 0 }
    :: else -> got = 0
    fi
}

/* ---------------------------------------------------------------- */
/* Bottom halves (src/async.c)                                       */

inline qemu_bh_schedule(i, old)
{
    atomic {                                     /* fetch_or */
        old = bh_flags[i];
        bh_flags[i] = bh_flags[i] | F_PENDING | F_SCHED;
        need[i] = 1;
        scheds[i]++;
        inflight++
    };
    if
    :: !(old & F_PENDING) -> onlist[i] = 1       /* the CAS push */
    :: else
    fi;
    if                                           /* notify_me load */
    :: notify_me != 0 -> aio_notify(); atomic { inflight--; assert(!LOST_WAKEUP) }
    :: atomic { notify_me == 0 -> inflight--; assert(!LOST_WAKEUP) }
    fi;
    old = 0
}

/* aio_bh_poll() after the exchange of bh_list: each BH taken has
 * BH_PENDING and BH_SCHEDULED cleared by one fetch_and, and runs if it
 * was scheduled. */
inline bh_poll(i, old, progress)
{
    do
    :: i < NSCHED ->
        if
        :: taken[i] ->
            atomic {
                old = bh_flags[i];
                bh_flags[i] = bh_flags[i] & ~(F_PENDING | F_SCHED);
                taken[i] = 0;
                if
                :: old & F_SCHED -> need[i] = 0
                :: else
                fi
            };
            if
            :: old & F_SCHED ->
progress_bh:                                     /* the callback runs */
                runs[i]++;
                assert(runs[i] <= scheds[i]);
                progress = 1
            :: else
            fi
        :: else
        fi;
        i++
    :: else -> break
    od;
    i = 0; old = 0
}

/* ---------------------------------------------------------------- */
/* The poller (src/aio-posix.c)                                      */

inline sleep_in_epoll()
{
    unlock(POLLER, got);                         /* fdmon_wait: release */
    atomic { asleep = 1; assert(!LOST_WAKEUP) };
    atomic { efd -> asleep = 0; ready = 1 };     /* epoll_wait(-1) */
    lock(POLLER, ticket, got)                    /* reacquire; collect */
}

inline aio_poll_once()
{
#ifdef BUG_LATE_ANNOUNCE
    zero = onlist[0] || onlist[1] || notified;   /* looks first ... */
    if
    :: zero -> ready = (!can_poll && efd)
    :: else ->
        notify_me = notify_me + 2;               /* ... announces after */
        sleep_in_epoll();
        notify_me = notify_me - 2
    fi;
#else
    /* aio_compute_timeout(): the scan of bh_list. Without cancel, a BH
     * on the list is scheduled, so the head load decides. */
    zero = onlist[0] || onlist[1];
    if                                           /* optional busy poll */
    :: !zero -> if
                :: skip
                :: zero = notified || onlist[0] || onlist[1]
                fi
    :: else
    fi;
    if
    :: zero ->                                   /* look once */
        ready = (!can_poll && efd)
    :: else ->
        notify_me = notify_me + 2;               /* announce the sleep */
        zero = onlist[0] || onlist[1];           /* aio_compute_timeout */
        zero = zero || notified;                 /* notified load */
#ifndef BUG_EDGE_CONTENTION
        /* The context stays held by this thread while it sleeps and
         * someone is queued for it, and no aio_poll() has returned false
         * to the caller since: do not sleep, return. */
        if
        :: atomic { !zero && !reported && nest[POLLER] > 1 && waiters > 0 ->
                    zero = 1; contended = 1 }
        :: else
        fi;
#endif
        if
        :: zero -> ready = efd                   /* wait(0), no unlock */
        :: else -> sleep_in_epoll()
        fi;
        notify_me = notify_me - 2
    fi;
#endif
#ifdef BUG_FORGETFUL_NOTIFY
    woken = ready;                               /* QEMU 2.4: no notified */
#elif defined(BUG_WOKEN_RACE)
    woken = notified;                            /* load, then accept */
    if
    :: notified -> notified = 0
    :: else
    fi;
#else
    woken = contended;                           /* aio_notify_accept: */
    if                                           /* relaxed load, xchg */
    :: notified -> atomic { woken = woken || notified; notified = 0 }
    :: else
    fi;
#endif
    contended = 0;
    if                          /* a look at bh_list (relaxed load), */
    :: onlist[0] || onlist[1] ->                 /* then its exchange */
        atomic {
            taken[0] = onlist[0]; taken[1] = onlist[1];
            onlist[0] = 0; onlist[1] = 0
        }
    :: else -> taken[0] = 0; taken[1] = 0        /* empty: no exchange */
    fi;
    bh_poll(i, old, progress);
    if                                           /* notifier_read */
    :: ready -> efd = 0; ready = 0
    :: else
    fi;
    zero = 0
}

/* aio_poll(ctx, true): iterate until progress or woken. */
inline aio_poll()
{
    progress = 0;
    lock(POLLER, ticket, got);
    do
    :: aio_poll_once();
        if
        :: progress || woken -> break
        :: else
        fi
    od;
#if !defined(BUG_EDGE_CONTENTION) && !defined(BUG_LEVEL_CONTENTION)
    /* Tell the next call whether the caller has seen a false return
     * while someone was queued (it may then sleep). */
    reported = (!progress && nest[POLLER] > 1 && waiters > 0);
#endif
    atomic {                                     /* returns to the caller */
        undelivered = 0; woken = 0;
        acq_told = acq_told || (!progress && acq_wants)
    };
    unlock(POLLER, got)
}

/* The IOThread loop of tests/aio/test-acquire.c, both ways (QEMU 2.4's
 * with the context held, and aioloop's own without). */
active proctype poller()
{
    bool hold, progress, woken, ready, zero, got, contended;
    bool taken[2];
    byte old, ticket, i;

    if
    :: can_poll = 1
    :: can_poll = 0
    fi;
#if HOLD == 3
    /* First the caller holds the context and waits for BH 0 with
     * "while (!ran) aio_poll(ctx, true);" (an AIO_WAIT_WHILE with the
     * context held): with the acquirer queued it must sleep, not spin. */
    lock(POLLER, ticket, got);
    do
    :: runs[0] > 0 -> break
    :: else -> aio_poll()
    od;
    unlock(POLLER, got);
#endif
    do
    :: stop -> break
    :: else ->
#if HOLD >= 2
        if
        :: hold = 1
        :: hold = 0
        fi;
#else
        hold = HOLD;
#endif
        if
        :: hold ->
            lock(POLLER, ticket, got);
            do                                   /* while (!stop && */
            :: stop -> break
            :: else ->
                aio_poll();                      /*   aio_poll(ctx, true)) */
                if
                :: !progress -> break
                :: else
                fi
            od;
            unlock(POLLER, got)
        :: else ->
            aio_poll()
        fi;
        hold = 0; progress = 0
    od;
    poller_done = 1
}

/* ---------------------------------------------------------------- */
/* The other threads                                                 */

proctype scheduler(byte i)
{
    byte old;

    qemu_bh_schedule(i, old);
    if
    :: i == 0 && TWICE -> qemu_bh_schedule(i, old)   /* once more */
    :: else
    fi;
    sdone[i] = 1
}

#if ACQ
active proctype acquirer()
{
    byte ticket;
    bool got;

    acq_wants = 1;
    lock(ACQUIRER, ticket, got);
    atomic { acq_wants = 0; acq_has = 1 };
    acq_has = 0;
    unlock(ACQUIRER, got);
    acq_done = 1
}
#endif

/* The test's main thread: once every BH ran and the acquirer is done,
 * stop the loop (stop = 1; aio_notify()). */
active proctype stopper()
{
    sdone[0] && sdone[1] && !need[0] && !need[1] && acq_done;
    stop = 1;
    aio_notify();
    stopper_done = 1
}

init
{
    atomic {
        run scheduler(0);
#if NSCHED > 1
        run scheduler(1)
#else
        sdone[1] = 1
#endif
    }
}

#define ALL_DONE (poller_done && stopper_done && acq_done && sdone[0] && sdone[1])

ltl all_done { <> ALL_DONE }
ltl acquire  { [] (acq_wants -> <> acq_has) }
ltl bh_runs  { [] (need[0] -> <> !need[0]) }
