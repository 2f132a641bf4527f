/*
 * soak-timer.c - timers armed, re-armed and deleted from any thread, on
 * QEMU_CLOCK_REALTIME and QEMU_CLOCK_VIRTUAL.
 *
 * Each loop has NTIMERS timers; each timer carries a small state machine
 * under its own mutex, which every thread takes around timer_mod/del
 * (so the library call and the state change are one step for the other
 * threads) and which the callback takes first thing:
 *
 *   IDLE      not armed, nothing outstanding. Arming starts an operation.
 *   ARMED     armed; the operation completes when the callback runs (and
 *             the timer has not been armed again since it was taken off
 *             the list: a re-arm that lands after the loop took it off but
 *             before its callback runs is a new arm, so the operation
 *             continues - "rearm-after-pop"), or when the loop thread
 *             itself deletes it: timer_del() on the loop thread is
 *             definitive, so a later callback would be a duplicate.
 *   DELETING  deleted from another thread. The callback may still come:
 *             the loop may have taken the timer off the list just before
 *             the delete. A "settle" BH sent to the loop right after the
 *             delete decides: the loop takes a timer off and runs its
 *             callback in one go (timerlist_run_timers), so if the
 *             callback was due it runs before the BH. The BH completes
 *             the operation as cancelled if no callback came.
 *   DEL_FIRED the callback came after a cross-thread delete and completed
 *             the operation; the settle BH returns the timer to IDLE.
 *
 * The virtual clock is moved forward by soak.c's clock thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "soak.h"

#define NTIMERS 12          /* per loop; even: realtime, odd: virtual */
#define MAX_DELAY_NS 3000000

enum { T_IDLE, T_ARMED, T_DELETING, T_DEL_FIRED };
enum { N_FIRED, N_CANCELLED, N_REARMED, N_REARM_AFTER_POP, N_DEL_CROSS };

typedef struct STimer {
    QEMUTimer t;
    QemuMutex m;
    int state;              /* protected by m */
    Loop *loop;
    SoakKind kind;
    QEMUClockType clock;
    SoakOp settle;
    int idx;
} STimer;

static STimer timers[SOAK_NLOOPS][NTIMERS];

static void timer_cb(void *opaque)
{
    STimer *t = opaque;
    Loop *l = t->loop;

    soak_expect_loop(l, "timer");
    qemu_mutex_lock(&t->m);
    switch (t->state) {
    case T_ARMED:
        if (timer_pending(&t->t)) {
            /* Armed again after it was taken off: fires again. */
            soak_note(t->kind, N_REARM_AFTER_POP);
        } else {
            t->state = T_IDLE;
            soak_note(t->kind, N_FIRED);
            soak_count_completed(t->kind);
        }
        break;
    case T_DELETING:
        t->state = T_DEL_FIRED;
        soak_note(t->kind, N_FIRED);
        soak_count_completed(t->kind);
        break;
    default:
        soak_count_dup(t->kind, "timer %s/%d fired in state %d (not armed)",
                       l->name, t->idx, t->state);
        break;
    }
    qemu_mutex_unlock(&t->m);
    if (!soak_is_stopping() && rng_one_in(&l->rng, 2)) {
        timer_any_step(&l->rng);
    }
}

static void settle_cb(void *opaque)
{
    STimer *t = opaque;

    soak_expect_loop(t->loop, "timer settle BH");
    qemu_mutex_lock(&t->m);
    if (t->state == T_DELETING) {
        /* No callback came: the delete took it. */
        t->state = T_IDLE;
        soak_note(t->kind, N_CANCELLED);
        soak_note(K_TIMER_SETTLE, 0);
        soak_count_completed(t->kind);
    } else if (t->state == T_DEL_FIRED) {
        t->state = T_IDLE;
        soak_note(K_TIMER_SETTLE, 1);
    } else {
        soak_error("timer %s/%d: settle BH found state %d",
                   t->loop->name, t->idx, t->state);
    }
    soak_op_done(&t->settle, K_TIMER_SETTLE, "timer settle");
    qemu_mutex_unlock(&t->m);
}

static int64_t deadline(STimer *t, Rng *r)
{
    return qemu_clock_get_ns(t->clock) + rng_below(r, MAX_DELAY_NS);
}

void timer_any_step(Rng *r)
{
    Loop *l = soak_random_loop(r);
    STimer *t = &timers[l->idx][rng_below(r, NTIMERS)];
    bool in_loop = soak_cur_loop() == l;
    bool arm = rng_below(r, 10) < 6;

    qemu_mutex_lock(&t->m);
    if (arm && t->state == T_IDLE) {
        if (soak_gate_enter()) {
            t->state = T_ARMED;
            soak_count_started(t->kind);
            timer_mod_ns(&t->t, deadline(t, r));
            soak_gate_exit();
        }
    } else if (arm && t->state == T_ARMED && !soak_is_stopping()) {
        if (rng_one_in(r, 4)) {
            timer_mod_anticipate_ns(&t->t, deadline(t, r));
        } else {
            timer_mod_ns(&t->t, deadline(t, r));
        }
        soak_note(t->kind, N_REARMED);
    } else if (!arm && t->state == T_ARMED) {
        timer_del(&t->t);
        if (in_loop) {
            t->state = T_IDLE;
            soak_note(t->kind, N_CANCELLED);
            soak_count_completed(t->kind);
        } else {
            t->state = T_DELETING;
            soak_note(t->kind, N_DEL_CROSS);
            if (!soak_op_start_always(&t->settle, K_TIMER_SETTLE)) {
                soak_error("timer %s/%d: settle already pending", l->name,
                           t->idx);
            }
            aio_bh_schedule_oneshot(l->ctx, settle_cb, t);
        }
    }
    qemu_mutex_unlock(&t->m);
}

void timer_setup(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        for (int j = 0; j < NTIMERS; j++) {
            STimer *t = &timers[i][j];

            t->loop = &soak_loops[i];
            t->idx = j;
            t->clock = j % 2 ? QEMU_CLOCK_VIRTUAL : QEMU_CLOCK_REALTIME;
            t->kind = j % 2 ? K_TIMER_VIRT : K_TIMER_RT;
            t->state = T_IDLE;
            qemu_mutex_init(&t->m);
            aio_timer_init(t->loop->ctx, &t->t, t->clock, SCALE_NS, timer_cb, t);
        }
    }
}

void timer_teardown(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        for (int j = 0; j < NTIMERS; j++) {
            STimer *t = &timers[i][j];

            if (t->state != T_IDLE || timer_pending(&t->t)) {
                soak_error("timer %s/%d left in state %d%s", t->loop->name,
                           j, t->state, timer_pending(&t->t) ? ", armed" : "");
            }
            timer_deinit(&t->t);
            qemu_mutex_destroy(&t->m);
        }
    }
}
