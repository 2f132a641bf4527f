/*
 * soak-pool.c - thread-pool jobs with cancellation.
 *
 * Jobs are submitted from any thread to any loop's pool
 * (thread_pool_submit_aio is "any thread"); the callback must run in that
 * loop's thread with the job function's value, or with -ECANCELED, and
 * then only if the function never ran. A loop thread also submits bursts
 * to its own pool and cancels some of them, asynchronously
 * (bdrv_aio_cancel_async) or synchronously (bdrv_aio_cancel, which polls
 * the loop nested until the callback has run; at most one level deep).
 * Cancelling is only done before the loop returns to aio_poll(), while
 * the AIOCB is certain to be valid.
 *
 * A job sleeps now and then, so that queues build up and cancellation
 * finds jobs no worker has taken yet.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>

#include "soak.h"

#define NJOBS 256
#define BURST 6

enum { N_OK, N_CANCELLED, N_CANCEL_ASYNC, N_CANCEL_SYNC, N_CROSS };

typedef struct Job {
    SoakOp op;
    Loop *loop;
    SoakJobArg a;
    int expect;
    BlockAIOCB *acb;        /* submitter's loop thread only */
    uint64_t gen;           /* callbacks run (atomic) */
} Job;

static Job jobs[NJOBS];

int soak_job_value(uint32_t arg)
{
    uint64_t x = arg;

    for (uint32_t i = 0; i < 32 + (arg & 127); i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
    return (int)(x >> 34);
}

int soak_job_fn(void *opaque)
{
    SoakJobArg *a = opaque;

    qatomic_set(&a->ran, 1);
    if ((a->arg & 15) == 0) {
        soak_sleep_us(20 + (int)((a->arg >> 4) % 200));
    }
    return soak_job_value(a->arg);
}

static void job_cb(void *opaque, int ret)
{
    Job *j = opaque;
    Loop *l = j->loop;
    int ran = qatomic_read(&j->a.ran);

    soak_expect_loop(l, "pool job callback");
    if (ret == -ECANCELED) {
        if (ran) {
            soak_error("pool job on %s: -ECANCELED but the function ran",
                       l->name);
        }
        soak_note(K_POOL, N_CANCELLED);
    } else if (ret != j->expect || !ran) {
        soak_error("pool job on %s: ret %d, want %d (ran %d)", l->name, ret,
                   j->expect, ran);
    } else {
        soak_note(K_POOL, N_OK);
    }
    qatomic_inc(&j->gen);
    soak_op_done(&j->op, K_POOL, "pool job");
}

static Job *job_claim(Rng *r, Loop *l)
{
    uint32_t first = rng_below(r, NJOBS);

    for (uint32_t i = 0; i < 4; i++) {
        Job *j = &jobs[(first + i) % NJOBS];

        if (soak_op_start(&j->op, K_POOL)) {
            j->loop = l;
            j->a.arg = rng_next(r);
            qatomic_set(&j->a.ran, 0);
            j->expect = soak_job_value(j->a.arg);
            return j;
        }
    }
    return NULL;
}

/* A job on a random loop's pool; any thread. The callback may run before
 * this returns (on another thread), so the AIOCB is not kept. */
void pool_any_step(Rng *r)
{
    Loop *l = soak_random_loop(r);
    Loop *me = soak_cur_loop();
    Job *j = job_claim(r, l);

    if (!j) {
        return;
    }
    if (me && me != l) {
        soak_note(K_POOL, N_CROSS);
    }
    thread_pool_submit_aio(aio_get_thread_pool(l->ctx), soak_job_fn, &j->a,
                           job_cb, j);
}

/* A burst on @l's own pool, some cancelled; @l's thread. */
void pool_loop_step(Loop *l)
{
    Rng *r = &l->rng;
    ThreadPool *pool = aio_get_thread_pool(l->ctx);
    Job *batch[BURST];
    uint32_t n = 1 + rng_below(r, BURST);
    uint32_t k = 0;

    while (k < n) {
        Job *j = job_claim(r, l);

        if (!j) {
            break;
        }
        j->acb = thread_pool_submit_aio(pool, soak_job_fn, &j->a, job_cb, j);
        batch[k++] = j;
    }
    /* No callback of these can run before this function returns, except
     * inside the nested poll below: cancel first. */
    for (uint32_t i = 0; i < k; i++) {
        if (rng_one_in(r, 3)) {
            bdrv_aio_cancel_async(batch[i]->acb);
            soak_note(K_POOL, N_CANCEL_ASYNC);
        }
    }
    if (k && l->nest == 0 && rng_one_in(r, 20)) {
        Job *j = batch[rng_below(r, k)];
        uint64_t gen = qatomic_read(&j->gen);

        l->nest++;
        bdrv_aio_cancel(j->acb);
        l->nest--;
        soak_note(K_POOL, N_CANCEL_SYNC);
        if (qatomic_read(&j->gen) == gen) {
            soak_error("bdrv_aio_cancel returned before the job's callback ran");
        }
    }
}

void pool_setup(void)
{
    /* Create every loop's pool now, so that its resources count among
     * those present before the run. */
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        (void)aio_get_thread_pool(soak_loops[i].ctx);
    }
}
