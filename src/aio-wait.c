/*
 * aio-wait.c - AIO_WAIT_WHILE's waiters and aio_wait_kick().
 *
 * A waiter registers itself (its AioWait and the loop it runs) in a
 * process-wide list under a mutex, then counts itself in
 * wait->num_waiters; it leaves in the opposite order. A kicker that reads
 * a non-zero count therefore finds every counted waiter in the list and
 * notifies its loop. The count is the cheap test that keeps
 * aio_wait_kick() to one load when nobody waits; the list is walked only
 * when someone does (a few entries at most: one per waiting thread).
 *
 * Lost wake-ups, the argument: the waiter increments num_waiters
 * (seq_cst) before it first evaluates its condition; the kicker changes
 * the state the condition reads before it loads num_waiters (seq_cst). In
 * the total order of seq_cst operations either the load sees the waiter,
 * whose loop then gets an aio_notify() (remembered by the context until
 * its next aio_poll() if the waiter is not asleep yet), or it does not,
 * and then the increment came after the load, so the waiter's evaluation
 * sees the new state. This needs the kicker's state change to be ordered
 * before its load: a plain store followed by aio_wait_kick() is, because
 * the load is a seq_cst operation preceded by a full barrier.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <aioloop/aio-wait.h>
#include <aioloop/main-loop.h>
#include <aioloop/atomic.h>

AioWait global_aio_wait;

static pthread_mutex_t waiters_lock = PTHREAD_MUTEX_INITIALIZER;
static AioWaitWaiter *waiters;      /* under waiters_lock */

void aio_wait_begin(AioWaitWaiter *w, AioWait *wait, AioContext *ctx,
                    bool unlock)
{
    AioContext *cur = qemu_get_current_aio_context();

    w->wait = wait;
    w->ctx = ctx;
    w->unlock = false;
    if (ctx && ctx == cur) {
        w->poll_ctx = ctx;              /* our own loop brings the work */
    } else {
        w->poll_ctx = cur ? cur : ctx;
        w->unlock = unlock && ctx && w->poll_ctx != ctx;
    }
    if (!w->poll_ctx) {
        fprintf(stderr, "aioloop: AIO_WAIT_WHILE with no context to run "
                "(NULL context, no main loop and no home context)\n");
        abort();
    }
    pthread_mutex_lock(&waiters_lock);
    w->next = waiters;
    waiters = w;
    pthread_mutex_unlock(&waiters_lock);
    /* After the registration: a kicker that sees the count finds us. */
    qatomic_inc(&wait->num_waiters);
}

void aio_wait_poll(AioWaitWaiter *w)
{
    if (w->unlock) {
        aio_context_release(w->ctx);
    }
    aio_poll(w->poll_ctx, true);
    if (w->unlock) {
        aio_context_acquire(w->ctx);
    }
}

void aio_wait_end(AioWaitWaiter *w)
{
    AioWaitWaiter **p;

    qatomic_dec(&w->wait->num_waiters);
    pthread_mutex_lock(&waiters_lock);
    for (p = &waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&waiters_lock);
}

void aio_wait_kick_on(AioWait *wait)
{
    AioWaitWaiter *w;

    /* Pairs with the increment in aio_wait_begin(), see above. */
    smp_mb();
    if (!qatomic_mb_read(&wait->num_waiters)) {
        return;
    }
    pthread_mutex_lock(&waiters_lock);
    for (w = waiters; w; w = w->next) {
        if (w->wait == wait) {
            aio_notify(w->poll_ctx);
        }
    }
    pthread_mutex_unlock(&waiters_lock);
}

void aio_wait_kick(void)
{
    aio_wait_kick_on(&global_aio_wait);
}

typedef struct {
    QEMUBHFunc *cb;
    void *opaque;
    bool done;                  /* atomic */
} AioWaitBHData;

static void aio_wait_bh(void *opaque)
{
    AioWaitBHData *data = opaque;

    data->cb(data->opaque);
    qatomic_store_release(&data->done, true);
    aio_wait_kick();
}

void aio_wait_bh_oneshot(AioContext *ctx, QEMUBHFunc *cb, void *opaque)
{
    AioWaitBHData data = { .cb = cb, .opaque = opaque };

    aio_bh_schedule_oneshot(ctx, aio_wait_bh, &data);
    AIO_WAIT_WHILE(ctx, !qatomic_load_acquire(&data.done));
}
