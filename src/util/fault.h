/*
 * fault.h - fault injection for the tests, at chosen system-call sites.
 *
 * The library calls AIOLOOP_FAULT(site) just before a call that can
 * fail; it yields 0 (make the real call) or a positive errno (behave as
 * if the call had failed with it).
 *
 * One build of the library serves programs and tests alike: the hook is
 * compiled in everywhere and is off until a test program turns it on
 * (aioloop__fault_enable(), or any arming or counter function below):
 * until then a site is one relaxed load of a hidden global and a branch
 * not taken, and counts nothing. Only code linked with the library's
 * internals (the static library, as the tests are) can turn it on: the
 * functions are hidden, not exported by the shared library.
 *
 * A site is programmed with a plan (aioloop__fault_arm()):
 *
 *   skip         let this many calls through first;
 *   count        then fail at most this many (< 0: no limit);
 *   per_million  0: fail every call after the skip ("Nth call" mode);
 *                else each call fails with this probability, drawn from
 *                a generator seeded by 'seed' and indexed by the call's
 *                rank, so a seed reproduces the same failing ranks;
 *   this_thread  only calls made by the thread that armed the plan count
 *                (skip, draws, failures); other threads' calls go through.
 *
 * aioloop__fault_inject() (skip, count) and aioloop__fault_inject_random()
 * are the two common plans. Every site counts the calls that reached it
 * (armed or not) and the faults it injected (aioloop__fault_hits()), so a
 * test can show that the hook was reached. All functions are thread-safe
 * (atomics); re-arming a site while other threads call it is allowed (a
 * racing call sees the old or the new plan).
 *
 * The sites and what a fault there means for the caller are listed below;
 * each test in tests/faults/ names the contract it checks. Allocation
 * (AIOLOOP_FAULT_ALLOC) goes through util/alloc.h, whose header states
 * the out-of-memory policy.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FAULT_H
#define AIOLOOP_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include <aioloop/atomic.h>
#include <aioloop/compiler.h>

typedef enum AioloopFaultSite {
    AIOLOOP_FAULT_IO_SETUP,         /* io_setup() in laio_init() */
    AIOLOOP_FAULT_IO_SUBMIT,        /* io_submit() */
    AIOLOOP_FAULT_URING_INIT,       /* io_uring_queue_init() */
    AIOLOOP_FAULT_URING_SUBMIT,     /* io_uring_submit() */
    AIOLOOP_FAULT_EVENTFD,          /* eventfd() in event_notifier_init() */
    AIOLOOP_FAULT_PIPE,             /* its pipe2() fallback */
    AIOLOOP_FAULT_EPOLL_CREATE,     /* epoll_create1() of the epoll monitor */
    AIOLOOP_FAULT_EPOLL_CTL,        /* epoll_ctl() ADD/MOD of a handler */
    AIOLOOP_FAULT_FDMON_WAIT,       /* epoll_wait/epoll_pwait2/ppoll */
    AIOLOOP_FAULT_CO_STACK,         /* mmap() of a coroutine stack */
    AIOLOOP_FAULT_THREAD_CREATE,    /* pthread_create() (workers, IOThreads) */
    AIOLOOP_FAULT_ALLOC,            /* the library's heap allocations */
    AIOLOOP_FAULT_THREAD_IO,        /* preadv/pwritev/pread/pwrite/fdatasync
                                     * of a thread-pool block request */
    AIOLOOP_FAULT_SITE_MAX
} AioloopFaultSite;

typedef struct AioloopFaultPlan {
    unsigned skip;              /* calls let through first */
    int count;                  /* then fail at most this many; < 0: all */
    int err;                    /* errno of a failed call (> 0) */
    unsigned per_million;       /* 0: every call; else probability / 1e6 */
    uint64_t seed;              /* the random mode's generator seed */
    bool this_thread;           /* only the arming thread's calls */
} AioloopFaultPlan;

/* Nonzero once the hook is on (never turned off again). */
extern int aioloop__fault_enabled;

/* Turns the hook on: from now on every site counts its calls and obeys
 * its plan. Tests call it first thing (their helper headers do, from a
 * constructor), so that the counters start with the program. */
void aioloop__fault_enable(void);

/* The hook proper: 0, or the errno the call at @site must fail with. */
int aioloop__fault_check(AioloopFaultSite site);

/* Programs @site with @plan (plan->err == 0 disarms it). */
void aioloop__fault_arm(AioloopFaultSite site, const AioloopFaultPlan *plan);

/* Let @skip calls through, then fail the next @count (< 0: every call)
 * with @err, whichever thread makes them. */
void aioloop__fault_inject(AioloopFaultSite site, unsigned skip, int count,
                           int err);

/* Fail each call with probability @per_million / 1e6, reproducibly for a
 * given @seed, with @err; no limit on the number of failures. */
void aioloop__fault_inject_random(AioloopFaultSite site, unsigned per_million,
                                  uint64_t seed, int err);

/* Disarm every site (the counters stay). */
void aioloop__fault_clear(void);

/* Disarm @site (its counters stay). */
void aioloop__fault_clear_site(AioloopFaultSite site);

/* Faults injected at @site since the program started. */
unsigned long aioloop__fault_hits(AioloopFaultSite site);

/* Calls that reached @site (armed or not) since the program started. */
unsigned long aioloop__fault_calls(AioloopFaultSite site);

/* A short name of @site ("eventfd", "alloc"...), for reports. */
const char *aioloop__fault_site_name(AioloopFaultSite site);

#define AIOLOOP_FAULT(site) \
    (unlikely(qatomic_read(&aioloop__fault_enabled)) ? \
     aioloop__fault_check(site) : 0)

#endif /* AIOLOOP_FAULT_H */
