/*
 * tests/soak/soak.h - what the parts of the soak program share.
 *
 * The soak program (aioloop-soak) runs every part of the library at once,
 * from several threads, for a set time, and accounts for every operation
 * it starts: each must complete exactly once. Its parts:
 *
 *   soak.c          main: loops, drivers, the virtual clock, the control
 *                   tick that ends the run and drains it, resources,
 *                   teardown and the report
 *   soak-watchdog.c aborts with a diagnostic when progress stops, a loop
 *                   stops answering pings, or the drain or teardown hangs
 *   soak-account.c  the operation counters and slots
 *   soak-bh.c       one-shot, reusable and short-lived bottom halves
 *   soak-timer.c    timers armed, re-armed and deleted from any thread
 *   soak-pool.c     thread-pool jobs, with asynchronous and synchronous
 *                   cancellation
 *   soak-co.c       coroutines hopping between contexts, a CoMutex held
 *                   across hops, thread_pool_submit_co()
 *   soak-block.c    block I/O on every engine with data verification;
 *                   backends moving between loops
 *
 * Accounting. An operation occupies a SoakOp slot from its start to its
 * completion. soak_op_start() claims the slot (false if it is busy, or if
 * the run is stopping) and counts "started"; soak_op_done() frees it and
 * counts "completed", or counts a duplicate when the slot was not busy.
 * Slots live for the whole run, so a second completion of an operation
 * always finds its slot free or taken by a later operation, whose own
 * completion then finds it free: a duplicate is always seen. A lost
 * operation keeps its slot busy: started - completed stays above 0, the
 * drain never ends, and the watchdog reports it.
 *
 * Stopping. soak_op_start() checks the stop flag inside a gate (a count
 * of threads between the check and the "started" increment); the drain
 * waits until the flag is set and the gate is empty, after which nothing
 * new can start, and then until every kind has nothing in flight.
 * Continuations of an operation already started (a hop inside a CoMutex
 * section, the settling of a deleted timer) use soak_op_start_always().
 *
 * Threads. Loop state (Loop.rng, Loop.nest) belongs to the loop's thread.
 * soak_cur_loop() reads a thread-local through a non-inlined function, so
 * that coroutines which move between threads read the new thread's value.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_SOAK_H
#define AIOLOOP_SOAK_H

#include <aioloop.h>
#include <aioloop/raw-aio.h>
#include <aioloop/block-backend.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* 1 under ASan, TSan (GCC or Clang), else 0. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

#define SOAK_NLOOPS 4           /* the main loop and three IOThreads */

/* ------------------------------------------------------------------ */
/* Random numbers (xorshift64*), one generator per thread or coroutine  */

typedef struct Rng {
    uint64_t s;
} Rng;

static inline void rng_seed(Rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!r->s) {
        r->s = 1;
    }
}

static inline uint32_t rng_next(Rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}

/* A number in [0, n). */
static inline uint32_t rng_below(Rng *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)rng_next(r) * n) >> 32);
}

/* True once in @n calls on average. */
static inline bool rng_one_in(Rng *r, uint32_t n)
{
    return rng_below(r, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Operation kinds and accounting (soak-account.c)                      */

typedef enum SoakKind {
    K_PING,             /* watchdog liveness BH to each loop */
    K_BH_ONESHOT,       /* aio_bh_schedule_oneshot to any loop */
    K_BH_REUSE,         /* long-lived BH scheduled from any thread */
    K_BH_NEW,           /* aio_bh_new + schedule + delete */
    K_TIMER_RT,         /* QEMU_CLOCK_REALTIME timer arm */
    K_TIMER_VIRT,       /* QEMU_CLOCK_VIRTUAL timer arm */
    K_TIMER_SETTLE,     /* BH confirming a cross-thread timer_del */
    K_POOL,             /* thread_pool_submit_aio */
    K_POOL_CO,          /* thread_pool_submit_co */
    K_CO_HOP,           /* aio_co_schedule to another loop */
    K_CO_MUTEX,         /* CoMutex critical section (spans hops) */
    K_BLK_MOVE,         /* backend detach + attach to another loop */
    K_BLK_IO_URING,     /* block requests, per engine */
    K_BLK_LINUX_AIO,
    K_BLK_THREADS,
    K_MAX
} SoakKind;

#define SOAK_NOTES 5    /* named sub-counters per kind */

/* One operation in flight at a time. */
typedef struct SoakOp {
    int busy;           /* atomic */
} SoakOp;

void soak_account_init(void);
bool soak_op_start(SoakOp *op, SoakKind k);
bool soak_op_start_always(SoakOp *op, SoakKind k);
void soak_op_done(SoakOp *op, SoakKind k, const char *where);

/* Counters for state machines that do not use a SoakOp (timers). */
bool soak_gate_enter(void);     /* false: stopping; true: start, then
                                 * call soak_gate_exit() */
void soak_gate_exit(void);
void soak_count_started(SoakKind k);
void soak_count_completed(SoakKind k);
void soak_count_dup(SoakKind k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void soak_note(SoakKind k, int note);
void soak_note_add(SoakKind k, int note, uint64_t n);
void soak_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

uint64_t soak_started(SoakKind k);
uint64_t soak_completed(SoakKind k);
uint64_t soak_dups(SoakKind k);
uint64_t soak_in_flight(SoakKind k);
uint64_t soak_total_completed(void);
uint64_t soak_total_dups(void);
uint64_t soak_errors(void);
const char *soak_kind_name(SoakKind k);
bool soak_kind_enabled(SoakKind k);
void soak_kind_disable(SoakKind k);     /* engines that cannot run here */

/* Stop starting new operations; whether the gate has emptied since. */
void soak_stop(void);
bool soak_is_stopping(void);
bool soak_gate_idle(void);

/* Prints the per-kind table (to stdout). */
void soak_print_table(void);

/* ------------------------------------------------------------------ */
/* Loops                                                               */

typedef struct Loop {
    int idx;
    char name[16];
    AioContext *ctx;
    IOThread *iothread;         /* NULL for the main loop */
    Rng rng;                    /* loop thread only */
    int nest;                   /* soak's nested aio_poll depth; loop thread */
    uint64_t progress;          /* callbacks run here (atomic) */
    SoakOp ping;
    int64_t ping_sent_ns;       /* atomic */
    uint64_t pings;             /* answered (atomic) */
    QEMUTimer tick;             /* loop-side work generator */
    int tick_stopped;           /* atomic */
} Loop;

extern Loop soak_loops[SOAK_NLOOPS];

/* The loop whose thread calls, or NULL (drivers, pool workers). */
Loop *soak_cur_loop(void);
void soak_set_cur_loop(Loop *l);
Loop *soak_random_loop(Rng *r);

/* Records an error unless the caller runs in @l's thread; counts
 * progress of @l. */
void soak_expect_loop(Loop *l, const char *where);

/* CLOCK_MONOTONIC in ns; a sleep that resumes after signals. */
int64_t soak_now_ns(void);
void soak_sleep_us(int us);

/* ------------------------------------------------------------------ */
/* Parts. *_any_step: from any thread, *_loop_step: from @l's thread.   */

void bh_setup(void);
void bh_any_step(Rng *r);
void bh_reuse_step(Rng *r);
void bh_loop_step(Loop *l);
void bh_teardown(void);

void timer_setup(void);
void timer_any_step(Rng *r);
void timer_teardown(void);

void pool_setup(void);
void pool_any_step(Rng *r);
void pool_loop_step(Loop *l);
/* The job function and its expected value, shared with soak-co.c. */
typedef struct SoakJobArg {
    uint32_t arg;
    int ran;                    /* atomic: the function ran */
} SoakJobArg;
int soak_job_fn(void *opaque);
int soak_job_value(uint32_t arg);

void co_setup(int nhoppers);
int co_alive(void);             /* hoppers and block workers not finished */
void co_alive_inc(void);
void co_alive_dec(void);
void co_teardown(void);
void co_report(void);

/* Returns the number of engines that run (0: none could be created). */
int blk_setup(const char *dir, int per_engine);
void blk_loop_step(Loop *l);
void blk_teardown(void);
void blk_report(void);
void blk_diag(void);
void blk_inject_corruption(void);   /* SOAK_INJECT=data */

/* soak-watchdog.c */
void watchdog_start(int stall_secs, int64_t drain_deadline_ns);
void watchdog_set_phase(const char *phase);
void watchdog_stop_pings(void);
void watchdog_stop(void);
void soak_diag_and_abort(const char *why);

#endif /* AIOLOOP_SOAK_H */
