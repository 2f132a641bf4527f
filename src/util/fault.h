/*
 * fault.h - test-only fault injection at chosen system-call sites.
 *
 * The library calls AIOLOOP_FAULT(site) just before a system call that
 * can fail; it yields 0 (make the real call) or a positive errno (behave
 * as if the call had failed with it). Only the test build of the library
 * (compiled with -DAIOLOOP_FAULT_INJECTION, never installed) has the
 * hook; in every other build AIOLOOP_FAULT() is the constant 0 and the
 * compiler removes it.
 *
 * Tests program a site with aioloop__fault_inject(): let @skip calls
 * through, then fail the next @count calls (count < 0: every call) with
 * @err. All functions are thread-safe (atomics).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FAULT_H
#define AIOLOOP_FAULT_H

typedef enum AioloopFaultSite {
    AIOLOOP_FAULT_IO_SETUP,         /* io_setup() in laio_init() */
    AIOLOOP_FAULT_IO_SUBMIT,        /* io_submit() */
    AIOLOOP_FAULT_URING_INIT,       /* io_uring_queue_init() */
    AIOLOOP_FAULT_URING_SUBMIT,     /* io_uring_submit() */
    AIOLOOP_FAULT_SITE_MAX
} AioloopFaultSite;

#ifdef AIOLOOP_FAULT_INJECTION
int aioloop__fault_check(AioloopFaultSite site);
void aioloop__fault_inject(AioloopFaultSite site, unsigned skip, int count,
                           int err);
void aioloop__fault_clear(void);
unsigned long aioloop__fault_hits(AioloopFaultSite site);
#define AIOLOOP_FAULT(site) aioloop__fault_check(site)
#else
#define AIOLOOP_FAULT(site) ((void)(site), 0)
#endif

#endif /* AIOLOOP_FAULT_H */
