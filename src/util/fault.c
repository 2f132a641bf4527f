/*
 * fault.c - fault injection for the tests (see fault.h).
 *
 * Each site has a plan and two counters. A plan is published by storing
 * its errno last (release) after the other fields, and disarmed by
 * storing errno 0 first; a call loads errno (acquire) and then the
 * fields, so it sees a whole plan unless it races with a re-arm, where a
 * mix of the two is harmless. Calls consume skip and count with atomic
 * compare-and-swap loops, so concurrent callers never fail more calls
 * than asked; the random mode takes a rank per call (fetch-add) and
 * hashes (seed, site, rank), so which ranks fail depends on the seed
 * only, not on how the threads interleave.
 *
 * The thread filter compares the address of a thread-local variable
 * (unique among live threads) with the arming thread's.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stddef.h>

#include <aioloop/atomic.h>
#include "fault.h"

typedef struct FaultState {
    int err;                    /* 0: not armed; published last */
    int skip;                   /* calls still to let through */
    int count;                  /* calls still to fail; < 0: no limit */
    unsigned per_million;       /* 0: deterministic */
    uint64_t seed;
    uint64_t rank;              /* random mode: draws made */
    const void *thread;         /* NULL, or the arming thread's token */
    unsigned long hits;         /* faults injected */
    unsigned long calls;        /* calls that reached the site */
} FaultState;

int aioloop__fault_enabled;
static FaultState sites[AIOLOOP_FAULT_SITE_MAX];
static __thread char thread_token;

static const char *const site_names[AIOLOOP_FAULT_SITE_MAX] = {
    [AIOLOOP_FAULT_IO_SETUP] = "io_setup",
    [AIOLOOP_FAULT_IO_SUBMIT] = "io_submit",
    [AIOLOOP_FAULT_URING_INIT] = "io_uring_queue_init",
    [AIOLOOP_FAULT_URING_SUBMIT] = "io_uring_submit",
    [AIOLOOP_FAULT_EVENTFD] = "eventfd",
    [AIOLOOP_FAULT_PIPE] = "pipe2",
    [AIOLOOP_FAULT_EPOLL_CREATE] = "epoll_create",
    [AIOLOOP_FAULT_EPOLL_CTL] = "epoll_ctl",
    [AIOLOOP_FAULT_FDMON_WAIT] = "fdmon_wait",
    [AIOLOOP_FAULT_CO_STACK] = "coroutine_stack",
    [AIOLOOP_FAULT_THREAD_CREATE] = "pthread_create",
    [AIOLOOP_FAULT_ALLOC] = "alloc",
    [AIOLOOP_FAULT_THREAD_IO] = "thread_io",
};

/* splitmix64's finaliser: a good 64-bit mix of a counter. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Takes one unit from *@n if it is positive; false when it is 0.
 * A negative value means "unlimited": true, unchanged. */
static bool take_one(int *n)
{
    int v = qatomic_read(n);

    for (;;) {
        int seen;

        if (v == 0) {
            return false;
        }
        if (v < 0) {
            return true;
        }
        seen = qatomic_cmpxchg(n, v, v - 1);
        if (seen == v) {
            return true;
        }
        v = seen;
    }
}

void aioloop__fault_enable(void)
{
    qatomic_set(&aioloop__fault_enabled, 1);
}

int aioloop__fault_check(AioloopFaultSite site)
{
    FaultState *p = &sites[site];
    const void *thread;
    unsigned per_million;
    int err;

    qatomic_inc(&p->calls);
    err = qatomic_load_acquire(&p->err);
    if (!err) {
        return 0;
    }
    thread = qatomic_read(&p->thread);
    if (thread && thread != (const void *)&thread_token) {
        return 0;
    }
    /* skip is never negative, so take_one() only counts it down. */
    if (qatomic_read(&p->skip) > 0 && take_one(&p->skip)) {
        return 0;
    }
    per_million = qatomic_read(&p->per_million);
    if (per_million) {
        uint64_t rank = qatomic_fetch_inc(&p->rank);
        uint64_t draw = mix64(qatomic_read(&p->seed) ^
                              mix64(((uint64_t)site << 56) ^ rank));

        if (draw % 1000000u >= per_million) {
            return 0;
        }
    }
    if (!take_one(&p->count)) {
        return 0;
    }
    qatomic_inc(&p->hits);
    return err;
}

void aioloop__fault_arm(AioloopFaultSite site, const AioloopFaultPlan *plan)
{
    FaultState *p = &sites[site];

    aioloop__fault_enable();
    qatomic_set(&p->err, 0);
    if (!plan || plan->err <= 0) {
        return;
    }
    qatomic_set(&p->skip, plan->skip > 0x7fffffffu ? 0x7fffffff
                                                   : (int)plan->skip);
    qatomic_set(&p->count, plan->count);
    qatomic_set(&p->per_million, plan->per_million > 1000000u
                                 ? 1000000u : plan->per_million);
    qatomic_set(&p->seed, plan->seed);
    qatomic_set(&p->rank, 0);
    qatomic_set(&p->thread, plan->this_thread ? (const void *)&thread_token
                                              : NULL);
    qatomic_store_release(&p->err, plan->err);
}

void aioloop__fault_inject(AioloopFaultSite site, unsigned skip, int count,
                           int err)
{
    AioloopFaultPlan plan = { .skip = skip, .count = count, .err = err };

    aioloop__fault_arm(site, &plan);
}

void aioloop__fault_inject_random(AioloopFaultSite site, unsigned per_million,
                                  uint64_t seed, int err)
{
    AioloopFaultPlan plan = {
        .count = -1, .err = err, .per_million = per_million, .seed = seed,
    };

    aioloop__fault_arm(site, &plan);
}

void aioloop__fault_clear_site(AioloopFaultSite site)
{
    qatomic_set(&sites[site].err, 0);
}

void aioloop__fault_clear(void)
{
    for (int i = 0; i < AIOLOOP_FAULT_SITE_MAX; i++) {
        aioloop__fault_clear_site((AioloopFaultSite)i);
    }
}

unsigned long aioloop__fault_hits(AioloopFaultSite site)
{
    aioloop__fault_enable();
    return qatomic_read(&sites[site].hits);
}

unsigned long aioloop__fault_calls(AioloopFaultSite site)
{
    aioloop__fault_enable();
    return qatomic_read(&sites[site].calls);
}

const char *aioloop__fault_site_name(AioloopFaultSite site)
{
    if ((unsigned)site >= AIOLOOP_FAULT_SITE_MAX || !site_names[site]) {
        return "?";
    }
    return site_names[site];
}
