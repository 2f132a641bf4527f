/*
 * test-coroutine-threads.c - coroutines across threads: a coroutine
 * hopping main context -> IOThread -> main context with aio_co_schedule()
 * (checking the thread and qemu_coroutine_get_aio_context() at each
 * hop), aio_co_enter() into an IOThread's context, aio_co_wake() from
 * another thread, a CoMutex contended by coroutines of two contexts, and
 * a CoQueue protected by a CoMutex shared by two contexts.
 *
 * The main thread runs the main context (qemu_init_main_loop() first in
 * main()); coroutines entered from it belong to that context.
 * Coroutines never touch the harness's counters from other threads:
 * they count errors atomically and the main thread checks them.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>

#include "aio-test.h"


static AioContext *main_ctx;
static QemuThread main_thread;

/* ------------------------------------------------------------------ */
/* Hops                                                                */

#define HOPS (UNDER_TSAN ? 200 : 1000)

typedef struct {
    AioContext *io_ctx;
    int hops;               /* completed round trips (atomic) */
    int errors;             /* atomic */
    int done;               /* atomic */
} HopTest;

static void hop_check(HopTest *h, bool want_main)
{
    AioContext *want = want_main ? main_ctx : h->io_ctx;
    Coroutine *self = qemu_coroutine_self();

    if (qemu_thread_is_self(&main_thread) != want_main) {
        printf("#   hop %d: wrong thread (want %s)\n",
               qatomic_read(&h->hops), want_main ? "main" : "iothread");
        qatomic_inc(&h->errors);
    }
    if (qemu_coroutine_get_aio_context(self) != want) {
        printf("#   hop %d: qemu_coroutine_get_aio_context() is not the "
               "%s context\n", qatomic_read(&h->hops),
               want_main ? "main" : "IOThread's");
        qatomic_inc(&h->errors);
    }
    if (qemu_get_current_aio_context() != want) {
        qatomic_inc(&h->errors);
    }
    if (!qemu_in_coroutine() || !qemu_coroutine_entered(self)) {
        qatomic_inc(&h->errors);
    }
}

static void coroutine_fn hop_co(void *opaque)
{
    HopTest *h = opaque;
    int i;

    hop_check(h, true);
    for (i = 0; i < HOPS; i++) {
        aio_co_schedule(h->io_ctx, qemu_coroutine_self());
        qemu_coroutine_yield();
        hop_check(h, false);
        aio_co_schedule(main_ctx, qemu_coroutine_self());
        qemu_coroutine_yield();
        hop_check(h, true);
        qatomic_inc(&h->hops);
    }
    qatomic_set(&h->done, 1);
}

static void test_co_hop_iothread(void)
{
    IOThread *io = iothread_create("hop", &error_abort);
    HopTest h = { .io_ctx = iothread_get_aio_context(io) };
    Coroutine *co = qemu_coroutine_create(hop_co, &h);

    qemu_coroutine_enter(co);               /* first hop scheduled */
    while (!qatomic_read(&h.done)) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(qatomic_read(&h.hops), HOPS);
    CHECK_EQ(qatomic_read(&h.errors), 0);
    iothread_destroy(io);
}

/*
 * A coroutine that woke another (aio_co_enter from a coroutine of the
 * same context: queued until it yields) and then moves to an IOThread:
 * the main thread enters the woken one after the switch while the
 * IOThread already runs the mover, which wakes a third coroutine there.
 * The two threads must not share the mover's wake-up queue.
 */
#define MIGRATIONS (UNDER_TSAN ? 200 : 1000)

typedef struct {
    AioContext *io_ctx;
    Coroutine *y;           /* lives in the main context */
    bool stop;              /* main thread only */
    int y_runs;             /* atomic */
    int z_runs;             /* atomic */
    int errors;             /* atomic */
    int done;               /* atomic */
} MigWake;

static void coroutine_fn mig_y(void *opaque)
{
    MigWake *m = opaque;

    for (;;) {
        qemu_coroutine_yield();
        if (m->stop) {
            break;
        }
        if (!qemu_thread_is_self(&main_thread)) {
            qatomic_inc(&m->errors);
        }
        qatomic_inc(&m->y_runs);
    }
}

static void coroutine_fn mig_z(void *opaque)
{
    MigWake *m = opaque;

    if (qemu_thread_is_self(&main_thread) ||
        qemu_get_current_aio_context() != m->io_ctx) {
        qatomic_inc(&m->errors);
    }
    qatomic_inc(&m->z_runs);
}

static void coroutine_fn mig_x(void *opaque)
{
    MigWake *m = opaque;
    int z_before;

    aio_co_enter(main_ctx, m->y);           /* runs after we yield */
    aio_co_schedule(m->io_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    /* In the IOThread. */
    z_before = qatomic_read(&m->z_runs);
    aio_co_enter(m->io_ctx, qemu_coroutine_create(mig_z, m));
    if (qatomic_read(&m->z_runs) != z_before) {
        qatomic_inc(&m->errors);            /* not before we yield */
    }
    aio_co_schedule(main_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    qatomic_set(&m->done, 1);
}

static void test_co_wakeup_queue_migration(void)
{
    IOThread *io = iothread_create("migwake", &error_abort);
    MigWake m = { .io_ctx = iothread_get_aio_context(io) };
    int i;

    m.y = qemu_coroutine_create(mig_y, &m);
    qemu_coroutine_enter(m.y);
    for (i = 0; i < MIGRATIONS; i++) {
        qatomic_set(&m.done, 0);
        qemu_coroutine_enter(qemu_coroutine_create(mig_x, &m));
        while (!qatomic_read(&m.done)) {
            aio_poll(main_ctx, true);
        }
    }
    CHECK_EQ(qatomic_read(&m.y_runs), MIGRATIONS);
    CHECK_EQ(qatomic_read(&m.z_runs), MIGRATIONS);
    CHECK_EQ(qatomic_read(&m.errors), 0);
    m.stop = true;
    qemu_coroutine_enter(m.y);
    iothread_destroy(io);
}

/* ------------------------------------------------------------------ */
/* aio_co_enter() into another thread's context                        */

typedef struct {
    AioContext *ctx_seen;
    AioContext *current_seen;
    bool in_main_thread;
    QemuSemaphore done;
} WhereArg;

static void coroutine_fn where_co(void *opaque)
{
    WhereArg *w = opaque;

    w->ctx_seen = qemu_coroutine_get_aio_context(qemu_coroutine_self());
    w->current_seen = qemu_get_current_aio_context();
    w->in_main_thread = qemu_thread_is_self(&main_thread);
    qemu_sem_post(&w->done);
}

static void test_aio_co_enter_iothread(void)
{
    IOThread *io = iothread_create("enter", &error_abort);
    AioContext *io_ctx = iothread_get_aio_context(io);
    int rounds = 500;
    int64_t end = test_stress_end();
    int wrong_ctx = 0, wrong_thread = 0;
    WhereArg w;
    int i;

    /* 500 rounds, or fewer if the time budget runs out first. */
    qemu_sem_init(&w.done, 0);
    for (i = 0; i < rounds && (i == 0 || test_stress_more(end)); i++) {
        w.ctx_seen = w.current_seen = NULL;
        w.in_main_thread = true;
        /* Created here, run (and recycled) in the IOThread. */
        aio_co_enter(io_ctx, qemu_coroutine_create(where_co, &w));
        qemu_sem_wait(&w.done);
        wrong_ctx += w.ctx_seen != io_ctx || w.current_seen != io_ctx;
        wrong_thread += w.in_main_thread;
    }
    CHECK_EQ(wrong_ctx, 0);
    CHECK_EQ(wrong_thread, 0);
    iothread_destroy(io);
    qemu_sem_destroy(&w.done);
}

/* ------------------------------------------------------------------ */
/* aio_co_wake() from another thread                                   */

#define WAKES (UNDER_TSAN ? 200 : 2000)

typedef struct {
    Coroutine *co;
    QemuSemaphore go;       /* main -> waker: the coroutine has yielded */
    int resumed;            /* atomic */
    int errors;             /* atomic */
} WakeTest;

static void coroutine_fn wait_co(void *opaque)
{
    WakeTest *w = opaque;
    int i;

    for (i = 0; i < WAKES; i++) {
        qemu_coroutine_yield();
        if (!qemu_thread_is_self(&main_thread)) {
            if (!qatomic_fetch_inc(&w->errors)) {
                printf("#   aio_co_wake() from another thread entered the "
                       "coroutine in that thread, not in its context's "
                       "loop\n");
            }
        } else if (qemu_coroutine_get_aio_context(qemu_coroutine_self()) !=
                   main_ctx) {
            qatomic_inc(&w->errors);
        }
        qatomic_inc(&w->resumed);
    }
}

static void *waker_thread(void *opaque)
{
    WakeTest *w = opaque;
    int i;

    for (i = 0; i < WAKES; i++) {
        qemu_sem_wait(&w->go);
        aio_co_wake(w->co);
        if (qatomic_read(&w->errors)) {
            /* It ran here, not in the main loop, which sleeps on: wake
             * it so that the case fails instead of hanging. */
            aio_notify(main_ctx);
        }
    }
    return NULL;
}

static void test_aio_co_wake_other_thread(void)
{
    WakeTest w = { .resumed = 0, .errors = 0 };
    QemuThread t;
    int i;

    qemu_sem_init(&w.go, 0);
    w.co = qemu_coroutine_create(wait_co, &w);
    qemu_coroutine_enter(w.co);             /* yields at once */
    start_thread(&t, "waker", waker_thread, &w);
    for (i = 0; i < WAKES; i++) {
        /* The coroutine runs only in our aio_poll(), so it has yielded
         * whenever we get here. */
        qemu_sem_post(&w.go);
        while (qatomic_read(&w.resumed) == i) {
            aio_poll(main_ctx, true);
        }
        if (qatomic_read(&w.resumed) != i + 1) {
            break;
        }
    }
    qemu_thread_join(&t);
    CHECK_EQ(qatomic_read(&w.resumed), WAKES);
    CHECK_EQ(qatomic_read(&w.errors), 0);
    qemu_sem_destroy(&w.go);
}

/* The waker is a completion running in an IOThread (a BH there). */
static void wake_bh(void *opaque)
{
    Coroutine *co = opaque;

    aio_co_wake(co);
}

typedef struct {
    AioContext *io_ctx;
    int rounds;
    int resumed;            /* atomic */
    int errors;             /* atomic */
    int done;               /* atomic */
} BhWake;

static void coroutine_fn bh_wait_co(void *opaque)
{
    BhWake *b = opaque;
    int i;

    for (i = 0; i < b->rounds; i++) {
        /* The usual completion pattern: hand the work over, then yield.
         * The BH may call aio_co_wake() before we have yielded; from
         * another thread that schedules us on the main context, which
         * cannot enter us before we yield (we run in its thread). */
        aio_bh_schedule_oneshot(b->io_ctx, wake_bh, qemu_coroutine_self());
        qemu_coroutine_yield();
        if (!qemu_thread_is_self(&main_thread)) {
            qatomic_inc(&b->errors);
        }
        qatomic_inc(&b->resumed);
    }
    qatomic_set(&b->done, 1);
}

static void test_aio_co_wake_from_iothread_bh(void)
{
    IOThread *io = iothread_create("wakebh", &error_abort);
    BhWake b = { .io_ctx = iothread_get_aio_context(io),
                 .rounds = UNDER_TSAN ? 200 : 2000 };

    qemu_coroutine_enter(qemu_coroutine_create(bh_wait_co, &b));
    while (!qatomic_read(&b.done)) {
        aio_poll(main_ctx, true);
    }
    CHECK_EQ(qatomic_read(&b.resumed), b.rounds);
    CHECK_EQ(qatomic_read(&b.errors), 0);
    iothread_destroy(io);
}

/* ------------------------------------------------------------------ */
/* CoMutex shared by two contexts                                      */

#define MX_COS   (UNDER_TSAN ? 4 : 10)      /* per context */
#define MX_ITERS (UNDER_TSAN ? 25 : 200)

typedef struct {
    CoMutex lock;
    AioContext *io_ctx;
    int counter;            /* plain: the CoMutex must order it */
    int holders;            /* atomic */
    int overlaps;           /* atomic */
    int wrong_place;        /* atomic */
    int done;               /* atomic */
} MxTest;

typedef struct {
    MxTest *m;
    bool on_main;
} MxArg;

static void mx_check_place(MxTest *m, bool on_main)
{
    AioContext *want = on_main ? main_ctx : m->io_ctx;

    if (qemu_thread_is_self(&main_thread) != on_main ||
        qemu_coroutine_get_aio_context(qemu_coroutine_self()) != want) {
        qatomic_inc(&m->wrong_place);
    }
}

static void coroutine_fn mx_co(void *opaque)
{
    MxArg *a = opaque;
    MxTest *m = a->m;
    int i;

    for (i = 0; i < MX_ITERS; i++) {
        int v;

        qemu_co_mutex_lock(&m->lock);
        /* Each waiter is resumed in its own context. */
        mx_check_place(m, a->on_main);
        if (qatomic_fetch_inc(&m->holders) != 0) {
            qatomic_inc(&m->overlaps);
        }
        v = m->counter;
        if (i % 2) {
            /* Leave the thread's loop while holding the lock. */
            aio_co_schedule(qemu_coroutine_get_aio_context(
                                qemu_coroutine_self()),
                            qemu_coroutine_self());
            qemu_coroutine_yield();
            mx_check_place(m, a->on_main);
        }
        m->counter = v + 1;
        qatomic_dec(&m->holders);
        qemu_co_mutex_unlock(&m->lock);
    }
    qatomic_inc(&m->done);
    aio_notify(main_ctx);                   /* the main thread counts */
}

static void test_co_mutex_two_contexts(void)
{
    IOThread *io = iothread_create("mutex", &error_abort);
    MxTest m = { .io_ctx = iothread_get_aio_context(io) };
    MxArg on_main = { &m, true }, on_io = { &m, false };
    int i;

    qemu_co_mutex_init(&m.lock);
    for (i = 0; i < MX_COS; i++) {
        aio_co_enter(m.io_ctx, qemu_coroutine_create(mx_co, &on_io));
        qemu_coroutine_enter(qemu_coroutine_create(mx_co, &on_main));
    }
    while (qatomic_load_acquire(&m.done) < 2 * MX_COS) {
        aio_poll(main_ctx, true);
    }
    /* done was incremented after the last unlock: the counter is final
     * and ordered before us by that atomic. */
    CHECK_EQ(m.counter, 2 * MX_COS * MX_ITERS);
    CHECK_EQ(qatomic_read(&m.overlaps), 0);
    CHECK_EQ(qatomic_read(&m.wrong_place), 0);
    iothread_destroy(io);
    qemu_co_mutex_destroy(&m.lock);
}

/* ------------------------------------------------------------------ */
/* CoQueue + CoMutex shared by two contexts: producers and consumers   */

#define PC_ITEMS (UNDER_TSAN ? 200 : 2000)  /* per producer */

typedef struct {
    CoMutex lock;
    CoQueue nonempty;
    AioContext *io_ctx;
    int items;              /* protected by lock */
    int consumed;           /* protected by lock */
    bool stop;              /* protected by lock */
    int finished;           /* atomic: coroutines that returned */
} PcTest;

static void coroutine_fn producer_co(void *opaque)
{
    PcTest *p = opaque;
    int i;

    for (i = 0; i < PC_ITEMS; i++) {
        qemu_co_mutex_lock(&p->lock);
        p->items++;
        qemu_co_queue_next(&p->nonempty);
        qemu_co_mutex_unlock(&p->lock);
        if (i % 16 == 0) {
            aio_co_schedule(qemu_coroutine_get_aio_context(
                                qemu_coroutine_self()),
                            qemu_coroutine_self());
            qemu_coroutine_yield();
        }
    }
    qatomic_inc(&p->finished);
    aio_notify(main_ctx);
}

static void coroutine_fn consumer_co(void *opaque)
{
    PcTest *p = opaque;

    qemu_co_mutex_lock(&p->lock);
    for (;;) {
        while (p->items == 0 && !p->stop) {
            qemu_co_queue_wait(&p->nonempty, &p->lock);
        }
        if (p->items == 0) {
            break;                          /* stopped and drained */
        }
        p->items--;
        p->consumed++;
    }
    qemu_co_mutex_unlock(&p->lock);
    qatomic_inc(&p->finished);
    aio_notify(main_ctx);
}

static void coroutine_fn stopper_co(void *opaque)
{
    PcTest *p = opaque;

    qemu_co_mutex_lock(&p->lock);
    p->stop = true;
    qemu_co_queue_restart_all(&p->nonempty);
    qemu_co_mutex_unlock(&p->lock);
}

static void test_co_queue_two_contexts(void)
{
    IOThread *io = iothread_create("pc", &error_abort);
    PcTest p = { .io_ctx = iothread_get_aio_context(io) };
    int consumers = 4, producers = 2;
    int i;

    qemu_co_mutex_init(&p.lock);
    qemu_co_queue_init(&p.nonempty);
    for (i = 0; i < consumers / 2; i++) {
        aio_co_enter(p.io_ctx, qemu_coroutine_create(consumer_co, &p));
        qemu_coroutine_enter(qemu_coroutine_create(consumer_co, &p));
    }
    aio_co_enter(p.io_ctx, qemu_coroutine_create(producer_co, &p));
    qemu_coroutine_enter(qemu_coroutine_create(producer_co, &p));
    while (qatomic_read(&p.finished) < producers) {
        aio_poll(main_ctx, true);
    }
    qemu_coroutine_enter(qemu_coroutine_create(stopper_co, &p));
    while (qatomic_load_acquire(&p.finished) < producers + consumers) {
        aio_poll(main_ctx, true);
    }
    /* Every coroutine has returned; the atomics order their writes. */
    CHECK_EQ(p.consumed, producers * PC_ITEMS);
    CHECK_EQ(p.items, 0);
    iothread_destroy(io);
    qemu_co_mutex_destroy(&p.lock);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    if (qemu_init_main_loop(NULL) < 0) {
        test_skip_all("cannot create the main loop");
    }
    main_ctx = qemu_get_aio_context();
    qemu_thread_get_self(&main_thread);

    RUN(test_co_hop_iothread);
    RUN(test_co_wakeup_queue_migration);
    RUN(test_aio_co_enter_iothread);
    RUN(test_aio_co_wake_other_thread);
    RUN(test_aio_co_wake_from_iothread_bh);
    RUN(test_co_mutex_two_contexts);
    RUN(test_co_queue_two_contexts);

    while (aio_poll(main_ctx, false)) {
        /* run what is left */
    }
    qemu_cleanup_main_loop();
    return test_done();
}
