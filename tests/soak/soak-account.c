/*
 * soak-account.c - operation counters, slots and the stop gate.
 *
 * Every kind has three counters (started, completed, duplicates) and a few
 * named notes (sub-counts such as "cancelled"), each kind on its own cache
 * line. Counters only grow. "In flight" is read as completed first, then
 * started, so a concurrent start-and-complete can only make it larger,
 * never wrap below zero.
 *
 * The stop gate (see soak.h) is a Dekker pair with sequentially consistent
 * operations: a starter increments the gate and then reads the stop flag;
 * the stopper sets the flag and then reads the gate. At least one of them
 * sees the other, so once the stopper has seen the gate empty, every
 * later starter sees the flag.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "soak.h"

typedef struct KindCounters {
    uint64_t started;
    uint64_t completed;
    uint64_t dups;
    uint64_t notes[SOAK_NOTES];
    int disabled;
} __attribute__((aligned(64))) KindCounters;

static KindCounters counters[K_MAX];
static uint64_t errors;
static int stopping;
static int gate;

static const struct {
    const char *name;
    const char *notes[SOAK_NOTES];
} kinds[K_MAX] = {
    [K_PING]         = { "ping", { 0 } },
    [K_BH_ONESHOT]   = { "bh-oneshot", { "from-loop", "from-driver" } },
    [K_BH_REUSE]     = { "bh-reuse", { "coalesced", "idle", "sched+cancel" } },
    [K_BH_NEW]       = { "bh-new-delete", { "deleted-in-cb",
                                            "deleted-unrun" } },
    [K_TIMER_RT]     = { "timer-realtime", { "fired", "cancelled", "rearmed",
                                             "rearm-after-pop", "del-cross" } },
    [K_TIMER_VIRT]   = { "timer-virtual", { "fired", "cancelled", "rearmed",
                                            "rearm-after-pop", "del-cross" } },
    [K_TIMER_SETTLE] = { "timer-del-settle", { "confirmed", "raced-fire" } },
    [K_POOL]         = { "pool-job", { "ok", "cancelled", "cancel-async",
                                       "cancel-sync", "cross-loop" } },
    [K_POOL_CO]      = { "pool-job-co", { 0 } },
    [K_CO_HOP]       = { "co-hop", { "same-loop" } },
    [K_CO_MUTEX]     = { "co-mutex", { "hops-held" } },
    [K_BLK_MOVE]     = { "blk-move", { 0 } },
    [K_BLK_IO_URING] = { "blk-io_uring", { "read", "write", "flush",
                                           "cancelled", "bytes" } },
    [K_BLK_LINUX_AIO] = { "blk-linux-aio", { "read", "write", "flush",
                                             "cancelled", "bytes" } },
    [K_BLK_THREADS]  = { "blk-threads", { "read", "write", "flush",
                                          "cancelled", "bytes" } },
};

void soak_account_init(void)
{
    memset(counters, 0, sizeof(counters));
    errors = 0;
    stopping = 0;
    gate = 0;
}

const char *soak_kind_name(SoakKind k)
{
    return kinds[k].name;
}

bool soak_kind_enabled(SoakKind k)
{
    return !qatomic_read(&counters[k].disabled);
}

void soak_kind_disable(SoakKind k)
{
    qatomic_set(&counters[k].disabled, 1);
}

/* ------------------------------------------------------------------ */
/* The stop gate                                                       */

bool soak_gate_enter(void)
{
    qatomic_inc(&gate);
    if (qatomic_mb_read(&stopping)) {
        qatomic_dec(&gate);
        return false;
    }
    return true;
}

void soak_gate_exit(void)
{
    qatomic_dec(&gate);
}

void soak_stop(void)
{
    qatomic_mb_set(&stopping, 1);
}

bool soak_is_stopping(void)
{
    return qatomic_read(&stopping) != 0;
}

bool soak_gate_idle(void)
{
    return qatomic_mb_read(&stopping) && qatomic_mb_read(&gate) == 0;
}

/* ------------------------------------------------------------------ */
/* Counting                                                            */

void soak_count_started(SoakKind k)
{
    qatomic_inc(&counters[k].started);
}

void soak_count_completed(SoakKind k)
{
    qatomic_inc(&counters[k].completed);
}

void soak_count_dup(SoakKind k, const char *fmt, ...)
{
    uint64_t n = qatomic_fetch_inc(&counters[k].dups);
    char msg[256];
    va_list ap;

    if (n < 10) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        printf("soak: DUPLICATE %s completion: %s\n", kinds[k].name, msg);
        fflush(stdout);
    }
}

bool soak_op_start(SoakOp *op, SoakKind k)
{
    bool ok;

    if (!soak_gate_enter()) {
        return false;
    }
    ok = soak_op_start_always(op, k);
    soak_gate_exit();
    return ok;
}

bool soak_op_start_always(SoakOp *op, SoakKind k)
{
    if (qatomic_cmpxchg(&op->busy, 0, 1) != 0) {
        return false;
    }
    soak_count_started(k);
    return true;
}

void soak_op_done(SoakOp *op, SoakKind k, const char *where)
{
    if (qatomic_cmpxchg(&op->busy, 1, 0) != 1) {
        soak_count_dup(k, "%s: operation %p was not in flight", where,
                       (void *)op);
        return;
    }
    soak_count_completed(k);
}

void soak_note(SoakKind k, int note)
{
    qatomic_inc(&counters[k].notes[note]);
}

void soak_note_add(SoakKind k, int note, uint64_t n)
{
    qatomic_add(&counters[k].notes[note], n);
}

void soak_error(const char *fmt, ...)
{
    uint64_t n = qatomic_fetch_inc(&errors);
    char msg[512];
    va_list ap;

    if (n < 30) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        printf("soak: ERROR: %s\n", msg);
        fflush(stdout);
    }
}

uint64_t soak_started(SoakKind k)
{
    return qatomic_mb_read(&counters[k].started);
}

uint64_t soak_completed(SoakKind k)
{
    return qatomic_mb_read(&counters[k].completed);
}

uint64_t soak_dups(SoakKind k)
{
    return qatomic_read(&counters[k].dups);
}

uint64_t soak_in_flight(SoakKind k)
{
    uint64_t done = soak_completed(k);

    return soak_started(k) - done;
}

uint64_t soak_total_completed(void)
{
    uint64_t sum = 0;

    for (int k = 0; k < K_MAX; k++) {
        sum += soak_completed((SoakKind)k);
    }
    return sum;
}

uint64_t soak_total_dups(void)
{
    uint64_t sum = 0;

    for (int k = 0; k < K_MAX; k++) {
        sum += soak_dups((SoakKind)k);
    }
    return sum;
}

uint64_t soak_errors(void)
{
    return qatomic_read(&errors);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

void soak_print_table(void)
{
    printf("%-17s %11s %11s %6s %5s  %s\n", "kind", "started", "completed",
           "lost", "dup", "notes");
    for (int k = 0; k < K_MAX; k++) {
        KindCounters *c = &counters[k];
        uint64_t done = soak_completed((SoakKind)k);
        uint64_t started = soak_started((SoakKind)k);

        if (qatomic_read(&c->disabled)) {
            printf("%-17s %11s\n", kinds[k].name, "(not run)");
            continue;
        }
        printf("%-17s %11llu %11llu %6lld %5llu ", kinds[k].name,
               (unsigned long long)started, (unsigned long long)done,
               (long long)(started - done),
               (unsigned long long)qatomic_read(&c->dups));
        for (int n = 0; n < SOAK_NOTES && kinds[k].notes[n]; n++) {
            uint64_t v = qatomic_read(&c->notes[n]);

            if (!strcmp(kinds[k].notes[n], "bytes")) {
                printf(" MiB=%llu", (unsigned long long)(v >> 20));
            } else {
                printf(" %s=%llu", kinds[k].notes[n], (unsigned long long)v);
            }
        }
        printf("\n");
    }
    fflush(stdout);
}
