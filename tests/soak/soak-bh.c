/*
 * soak-bh.c - bottom halves under load.
 *
 * Three kinds:
 *  - one-shot BHs (aio_bh_schedule_oneshot) sent from any thread to any
 *    loop; each callback checks it runs in the loop it was sent to and
 *    often sends another one on (cross-context chains);
 *  - long-lived BHs, a few per loop, scheduled from any thread. A BH is
 *    scheduled only while its slot is free, so every run must match one
 *    schedule. Its own loop thread may also schedule it several times in
 *    a row (it cannot run in between, so the extra schedules must
 *    coalesce), schedule it idle, or schedule and cancel it (which must
 *    leave it unrun: the slot is freed at once, and a run would find it
 *    free and count as a duplicate);
 *  - short-lived BHs (aio_bh_new) that delete themselves from their own
 *    callback, or are deleted before they run (and must then not run).
 *
 * Slots (SoakOp) are static, so late or doubled callbacks are detected
 * rather than touching freed memory. Fields a callback reads are set
 * before the BH is scheduled and read before the slot is freed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "soak.h"

#define NSHOTS 512
#define NREUSE 8
#define NNEW 64

typedef struct Shot {
    SoakOp op;
    Loop *target;
} Shot;

typedef struct Reuse {
    SoakOp op;
    Loop *loop;
    QEMUBH *bh;
} Reuse;

typedef struct NewBh {
    SoakOp op;
    Loop *loop;
    QEMUBH *bh;
} NewBh;

static Shot shots[NSHOTS];
static Reuse reuse[SOAK_NLOOPS][NREUSE];
static NewBh newbhs[NNEW];

/* ------------------------------------------------------------------ */
/* One-shot BHs                                                        */

static void shot_cb(void *opaque)
{
    Shot *s = opaque;
    Loop *l = s->target;

    soak_expect_loop(l, "one-shot BH");
    soak_op_done(&s->op, K_BH_ONESHOT, "one-shot BH");
    /* Pass it on: a chain of BHs hopping between loops. */
    if (rng_one_in(&l->rng, 2)) {
        bh_any_step(&l->rng);
    } else if (rng_one_in(&l->rng, 4)) {
        bh_reuse_step(&l->rng);
    }
}

void bh_any_step(Rng *r)
{
    uint32_t first = rng_below(r, NSHOTS);

    for (uint32_t i = 0; i < 4; i++) {
        Shot *s = &shots[(first + i) % NSHOTS];

        if (soak_op_start(&s->op, K_BH_ONESHOT)) {
            s->target = soak_random_loop(r);
            soak_note(K_BH_ONESHOT, soak_cur_loop() ? 0 : 1);
            aio_bh_schedule_oneshot(s->target->ctx, shot_cb, s);
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Long-lived BHs                                                      */

static void reuse_cb(void *opaque)
{
    Reuse *u = opaque;
    Loop *l = u->loop;

    soak_expect_loop(l, "reusable BH");
    soak_op_done(&u->op, K_BH_REUSE, "reusable BH");
    if (rng_one_in(&l->rng, 3)) {
        bh_any_step(&l->rng);
    }
}

void bh_reuse_step(Rng *r)
{
    Loop *l = soak_random_loop(r);
    Reuse *u = &reuse[l->idx][rng_below(r, NREUSE)];

    if (!soak_op_start(&u->op, K_BH_REUSE)) {
        return;
    }
    qemu_bh_schedule(u->bh);
    /* From another thread the BH may already have run (and its slot be
     * taken again): only its own loop thread may schedule it twice. */
    if (soak_cur_loop() == l) {
        uint32_t extra = rng_below(r, 3);

        for (uint32_t i = 0; i < extra; i++) {
            qemu_bh_schedule(u->bh);
            soak_note(K_BH_REUSE, 0);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Short-lived BHs                                                     */

static void new_cb(void *opaque)
{
    NewBh *n = opaque;
    QEMUBH *bh;

    soak_expect_loop(n->loop, "new BH");
    if (!qatomic_read(&n->op.busy)) {
        /* Deleted before it ran, or ran twice: do not touch n->bh. */
        soak_count_dup(K_BH_NEW, "a deleted or finished BH ran");
        return;
    }
    bh = n->bh;
    n->bh = NULL;
    qemu_bh_delete(bh);             /* from its own callback */
    soak_note(K_BH_NEW, 0);
    soak_op_done(&n->op, K_BH_NEW, "new BH");
}

/* Actions on @l's own BHs, from @l's thread. */
void bh_loop_step(Loop *l)
{
    Rng *r = &l->rng;
    Reuse *u = &reuse[l->idx][rng_below(r, NREUSE)];
    NewBh *n = &newbhs[rng_below(r, NNEW)];

    switch (rng_below(r, 3)) {
    case 0:
        /* Idle: runs at the next aio_poll of this loop (within 10 ms). */
        if (soak_op_start(&u->op, K_BH_REUSE)) {
            qemu_bh_schedule_idle(u->bh);
            soak_note(K_BH_REUSE, 1);
        }
        break;
    case 1:
        /* Schedule then cancel: must not run. */
        if (soak_op_start(&u->op, K_BH_REUSE)) {
            qemu_bh_schedule(u->bh);
            qemu_bh_cancel(u->bh);
            soak_note(K_BH_REUSE, 2);
            soak_op_done(&u->op, K_BH_REUSE, "cancelled BH");
        }
        break;
    default:
        if (!soak_op_start(&n->op, K_BH_NEW)) {
            break;
        }
        n->loop = l;
        n->bh = aio_bh_new(l->ctx, new_cb, n);
        qemu_bh_schedule(n->bh);
        if (rng_one_in(r, 2)) {
            /* Deleted before it could run: must not run. */
            qemu_bh_delete(n->bh);
            n->bh = NULL;
            soak_note(K_BH_NEW, 1);
            soak_op_done(&n->op, K_BH_NEW, "deleted BH");
        }
        break;
    }
}

/* ------------------------------------------------------------------ */

void bh_setup(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        for (int j = 0; j < NREUSE; j++) {
            Reuse *u = &reuse[i][j];

            u->loop = &soak_loops[i];
            u->bh = aio_bh_new(u->loop->ctx, reuse_cb, u);
        }
    }
}

void bh_teardown(void)
{
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        for (int j = 0; j < NREUSE; j++) {
            qemu_bh_delete(reuse[i][j].bh);
            reuse[i][j].bh = NULL;
        }
    }
}
