/*
 * fault.c - the test build's fault injection (see fault.h).
 *
 * Each site has a plan (calls to let through, calls to fail, the errno)
 * and a count of faults injected. A call consumes the plan with atomic
 * decrements, so concurrent callers never fail more calls than asked.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/atomic.h>
#include "fault.h"

#ifdef AIOLOOP_FAULT_INJECTION

typedef struct FaultPlan {
    int skip;               /* calls still to let through */
    int count;              /* calls still to fail; < 0: all of them */
    int err;                /* 0: the site is not armed */
    unsigned long hits;     /* faults injected */
} FaultPlan;

static FaultPlan plans[AIOLOOP_FAULT_SITE_MAX];

int aioloop__fault_check(AioloopFaultSite site)
{
    FaultPlan *p = &plans[site];
    int err = qatomic_load_acquire(&p->err);
    int n;

    if (!err) {
        return 0;
    }
    /* Let 'skip' calls through first. */
    n = qatomic_read(&p->skip);
    while (n > 0) {
        if (qatomic_cmpxchg(&p->skip, n, n - 1) == n) {
            return 0;
        }
        n = qatomic_read(&p->skip);
    }
    n = qatomic_read(&p->count);
    for (;;) {
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            break;
        }
        int seen = qatomic_cmpxchg(&p->count, n, n - 1);
        if (seen == n) {
            break;
        }
        n = seen;
    }
    qatomic_inc(&p->hits);
    return err;
}

void aioloop__fault_inject(AioloopFaultSite site, unsigned skip, int count,
                           int err)
{
    FaultPlan *p = &plans[site];

    qatomic_set(&p->err, 0);
    qatomic_set(&p->skip, (int)skip);
    qatomic_set(&p->count, count);
    qatomic_store_release(&p->err, err);
}

void aioloop__fault_clear(void)
{
    for (int i = 0; i < AIOLOOP_FAULT_SITE_MAX; i++) {
        qatomic_set(&plans[i].err, 0);
    }
}

unsigned long aioloop__fault_hits(AioloopFaultSite site)
{
    return qatomic_read(&plans[site].hits);
}

#endif /* AIOLOOP_FAULT_INJECTION */
