/*
 * soak-watchdog.c - the soak must end: a thread that aborts the program,
 * after printing where things stand, when
 *  - no operation completed and no loop made progress for stall_secs;
 *  - a loop has not run a ping BH (sent every second) for stall_secs;
 *  - a phase after the run (drain, teardown steps) lasts longer than its
 *    limit (that is how a lost operation shows up: its slot stays busy,
 *    the drain cannot finish, and the table printed names the kind).
 *
 * Pings are operations of their own (K_PING). watchdog_stop_pings() takes
 * the lock the sender holds while sending, so once it returns no new ping
 * can be sent and the drain can wait for the last ones.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

static QemuThread wd_thread;
static QemuMutex ping_lock;
static bool pings_stopped;          /* protected by ping_lock */
static int wd_stop;                 /* atomic */
static int wd_stall_secs;
static int64_t wd_phase_limit_ns;
static const char *wd_phase;        /* atomic */
static int64_t wd_phase_start;      /* atomic */
static int64_t wd_start;

void watchdog_set_phase(const char *phase)
{
    qatomic_set(&wd_phase_start, soak_now_ns());
    qatomic_set(&wd_phase, phase);
}

void soak_diag_and_abort(const char *why)
{
    int64_t now = soak_now_ns();

    printf("\nsoak: WATCHDOG: %s\n", why);
    printf("phase %s, %.1f s into it, %.1f s since the start\n",
           qatomic_read(&wd_phase),
           (now - qatomic_read(&wd_phase_start)) / 1e9,
           (now - wd_start) / 1e9);
    soak_print_table();
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        Loop *l = &soak_loops[i];
        int64_t sent = qatomic_read(&l->ping_sent_ns);

        printf("  loop %-6s progress=%llu pings=%llu ping-in-flight=%d "
               "(sent %.1f s ago) tick-stopped=%d\n", l->name,
               (unsigned long long)qatomic_read(&l->progress),
               (unsigned long long)qatomic_read(&l->pings),
               qatomic_read(&l->ping.busy), sent ? (now - sent) / 1e9 : 0.0,
               qatomic_read(&l->tick_stopped));
    }
    printf("  coroutines alive: %d, stopping: %d, gate idle: %d\n",
           co_alive(), soak_is_stopping(), soak_gate_idle());
    blk_diag();
    printf("soak: FAIL (watchdog)\n");
    fflush(stdout);
    abort();
}

static void ping_cb(void *opaque)
{
    Loop *l = opaque;

    soak_expect_loop(l, "ping");
    qatomic_inc(&l->pings);
    soak_op_done(&l->ping, K_PING, "ping");
}

static void send_pings(int64_t now)
{
    char why[128];

    qemu_mutex_lock(&ping_lock);
    for (int i = 0; i < SOAK_NLOOPS && !pings_stopped; i++) {
        Loop *l = &soak_loops[i];

        if (soak_op_start_always(&l->ping, K_PING)) {
            qatomic_set(&l->ping_sent_ns, now);
            aio_bh_schedule_oneshot(l->ctx, ping_cb, l);
        } else if (now - qatomic_read(&l->ping_sent_ns) >
                   (int64_t)wd_stall_secs * 1000000000) {
            snprintf(why, sizeof(why), "loop %s has not run a ping BH for "
                     "%d s", l->name, wd_stall_secs);
            soak_diag_and_abort(why);
        }
    }
    qemu_mutex_unlock(&ping_lock);
}

static void *watchdog_main(void *opaque)
{
    uint64_t last = 0;
    int64_t last_change = soak_now_ns();
    int64_t next_ping = last_change;
    char why[160];

    while (!qatomic_read(&wd_stop)) {
        int64_t now;
        uint64_t p;
        const char *phase;

        soak_sleep_us(100000);
        now = soak_now_ns();
        p = soak_total_completed();
        for (int i = 0; i < SOAK_NLOOPS; i++) {
            p += qatomic_read(&soak_loops[i].progress);
        }
        if (p != last) {
            last = p;
            last_change = now;
        }
        phase = qatomic_read(&wd_phase);
        if (now - last_change > (int64_t)wd_stall_secs * 1000000000 &&
            phase && !strcmp(phase, "run")) {
            snprintf(why, sizeof(why), "no progress for %d s", wd_stall_secs);
            soak_diag_and_abort(why);
        }
        if (now >= next_ping) {
            next_ping = now + 1000000000;
            send_pings(now);
        }
        if (phase && strcmp(phase, "run") &&
            now - qatomic_read(&wd_phase_start) > wd_phase_limit_ns) {
            snprintf(why, sizeof(why), "phase '%s' did not finish within "
                     "%lld s", phase, (long long)(wd_phase_limit_ns / 1000000000));
            soak_diag_and_abort(why);
        }
    }
    return NULL;
}

void watchdog_start(int stall_secs, int64_t phase_limit_ns)
{
    wd_stall_secs = stall_secs;
    wd_phase_limit_ns = phase_limit_ns;
    wd_start = soak_now_ns();
    qemu_mutex_init(&ping_lock);
    watchdog_set_phase("run");
    qemu_thread_create(&wd_thread, "soak-watchdog", watchdog_main, NULL,
                       QEMU_THREAD_JOINABLE);
}

void watchdog_stop_pings(void)
{
    qemu_mutex_lock(&ping_lock);
    pings_stopped = true;
    qemu_mutex_unlock(&ping_lock);
}

void watchdog_stop(void)
{
    qatomic_set(&wd_stop, 1);
    qemu_thread_join(&wd_thread);
    qemu_mutex_destroy(&ping_lock);
}
