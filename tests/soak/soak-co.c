/*
 * soak-co.c - coroutines that move between contexts.
 *
 * "Hoppers" are coroutines that, until the run stops, pick at random:
 *  - hop: aio_co_schedule(self) to a random loop and yield; on resumption
 *    they must run in that loop's thread, and qemu_coroutine_get_aio_
 *    context() must name it;
 *  - a CoMutex critical section that hops once or twice while holding the
 *    lock, so the lock is released in another thread than the one that
 *    took it and waiters of every loop queue on it. Inside, a plain
 *    read-hop-write of a counter detects any break of mutual exclusion
 *    (the counter must equal the number of sections at the end), as does
 *    a holder field checked on entry and exit;
 *  - thread_pool_submit_co() on the current loop's pool, checking the
 *    value and that the coroutine resumes in the same loop;
 *  - qemu_co_sleep_ns() on the realtime or the virtual clock.
 *
 * Each hopper has its own random generator: a loop's generator belongs
 * to the loop's thread, and a hopper moves between threads.
 *
 * co_alive() counts the hoppers and soak-block.c's coroutine workers that
 * have not finished; the drain waits for it to reach 0.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>

#include "soak.h"

#define NMUTEX 2

typedef struct SoakMutex {
    CoMutex m;
    void *holder;           /* protected by m */
    uint64_t value;         /* protected by m */
    uint64_t sections;      /* atomic */
} SoakMutex;

typedef struct Hopper {
    int idx;
    Rng rng;
    SoakOp hop_op;
    SoakOp mutex_op;
    SoakOp pool_op;
} Hopper;

static SoakMutex mutexes[NMUTEX];
static Hopper *hoppers;
static int nhoppers;
static int alive;

int co_alive(void)
{
    return qatomic_mb_read(&alive);
}

void co_alive_inc(void)
{
    qatomic_inc(&alive);
}

void co_alive_dec(void)
{
    qatomic_dec(&alive);
}

/* Moves the calling coroutine to @t; counted unless the run is stopping
 * (the move happens anyway). */
static void coroutine_fn hop(Hopper *h, Loop *t)
{
    bool counted = soak_op_start(&h->hop_op, K_CO_HOP);
    Coroutine *self = qemu_coroutine_self();
    Loop *now;

    if (soak_cur_loop() == t) {
        soak_note(K_CO_HOP, 0);
    }
    aio_co_schedule(t->ctx, self);
    qemu_coroutine_yield();
    now = soak_cur_loop();
    if (now != t) {
        soak_error("hopper %d: scheduled to %s, resumed in %s", h->idx,
                   t->name, now ? now->name : "a non-loop thread");
    }
    if (qemu_coroutine_get_aio_context(self) != t->ctx) {
        soak_error("hopper %d: in %s, but its context is another",
                   h->idx, t->name);
    }
    if (counted) {
        soak_op_done(&h->hop_op, K_CO_HOP, "hop");
    }
    qatomic_inc(&t->progress);
}

static void coroutine_fn mutex_section(Hopper *h)
{
    SoakMutex *m = &mutexes[rng_below(&h->rng, NMUTEX)];
    uint32_t hops = 1 + rng_below(&h->rng, 2);
    uint64_t v;

    if (!soak_op_start(&h->mutex_op, K_CO_MUTEX)) {
        return;
    }
    qemu_co_mutex_lock(&m->m);
    if (m->holder) {
        soak_error("hopper %d: CoMutex %ld taken while held by another",
                   h->idx, (long)(m - mutexes));
    }
    m->holder = h;
    v = m->value;
    for (uint32_t i = 0; i < hops; i++) {
        hop(h, soak_random_loop(&h->rng));
        soak_note(K_CO_MUTEX, 0);
    }
    if (m->holder != h) {
        soak_error("hopper %d: CoMutex %ld holder changed while held",
                   h->idx, (long)(m - mutexes));
    }
    m->value = v + 1;
    m->holder = NULL;
    qatomic_inc(&m->sections);
    qemu_co_mutex_unlock(&m->m);
    soak_op_done(&h->mutex_op, K_CO_MUTEX, "CoMutex section");
}

static void coroutine_fn pool_co(Hopper *h)
{
    SoakJobArg a = { .arg = rng_next(&h->rng) };
    Loop *before = soak_cur_loop();
    int ret;

    if (!soak_op_start(&h->pool_op, K_POOL_CO)) {
        return;
    }
    ret = thread_pool_submit_co(aio_get_thread_pool(before->ctx),
                                soak_job_fn, &a);
    if (ret != soak_job_value(a.arg) || !qatomic_read(&a.ran)) {
        soak_error("hopper %d: thread_pool_submit_co returned %d, want %d",
                   h->idx, ret, soak_job_value(a.arg));
    }
    if (soak_cur_loop() != before) {
        soak_error("hopper %d: thread_pool_submit_co resumed in another loop",
                   h->idx);
    }
    soak_op_done(&h->pool_op, K_POOL_CO, "pool job (coroutine)");
}

static void coroutine_fn sleep_co(Hopper *h)
{
    Loop *before = soak_cur_loop();

    if (rng_one_in(&h->rng, 2)) {
        qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, rng_below(&h->rng, 200000));
    } else {
        qemu_co_sleep_ns(QEMU_CLOCK_VIRTUAL, rng_below(&h->rng, 1000000));
    }
    if (soak_cur_loop() != before) {
        soak_error("hopper %d: qemu_co_sleep_ns resumed in another loop",
                   h->idx);
    }
}

static void coroutine_fn hopper_co(void *opaque)
{
    Hopper *h = opaque;

    while (!soak_is_stopping()) {
        uint32_t a = rng_below(&h->rng, 100);

        if (a < 50) {
            hop(h, soak_random_loop(&h->rng));
        } else if (a < 72) {
            mutex_section(h);
        } else if (a < 85) {
            pool_co(h);
        } else {
            sleep_co(h);
        }
    }
    co_alive_dec();
}

void co_setup(int n)
{
    Rng r;

    rng_seed(&r, 77);
    for (int i = 0; i < NMUTEX; i++) {
        qemu_co_mutex_init(&mutexes[i].m);
    }
    nhoppers = n;
    hoppers = calloc((size_t)n, sizeof(*hoppers));
    if (!hoppers) {
        abort();
    }
    for (int i = 0; i < n; i++) {
        Hopper *h = &hoppers[i];

        h->idx = i;
        rng_seed(&h->rng, 1000 + (uint64_t)i);
        co_alive_inc();
        aio_co_schedule(soak_random_loop(&r)->ctx,
                        qemu_coroutine_create(hopper_co, h));
    }
}

void co_report(void)
{
    for (int i = 0; i < NMUTEX; i++) {
        printf("co-mutex %d: %llu sections, counter %llu\n", i,
               (unsigned long long)qatomic_read(&mutexes[i].sections),
               (unsigned long long)mutexes[i].value);
    }
}

void co_teardown(void)
{
    for (int i = 0; i < NMUTEX; i++) {
        SoakMutex *m = &mutexes[i];

        if (m->value != qatomic_read(&m->sections)) {
            soak_error("CoMutex %d: counter %llu after %llu sections "
                       "(mutual exclusion broken)", i,
                       (unsigned long long)m->value,
                       (unsigned long long)qatomic_read(&m->sections));
        }
        qemu_co_mutex_destroy(&m->m);
    }
    free(hoppers);
    hoppers = NULL;
}
