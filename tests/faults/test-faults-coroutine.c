/*
 * test-faults-coroutine.c - coroutines when a stack cannot be mapped.
 *
 * Contract checked (coroutine.h, util/alloc.h): qemu_coroutine_create()
 * never returns NULL, as in QEMU. A coroutine recycled from the thread's
 * pool needs no new stack, so creating one succeeds even while mmap()
 * fails; when a fresh stack is needed and mmap() fails, the process
 * aborts with a message naming the coroutine stack (death test in a
 * forked child) - there is no error channel to report it through, and
 * running on without the coroutine would lose its work.
 *
 * Also: a workload of coroutines (yield, aio_co_schedule, CoMutex,
 * qemu_co_sleep_ns, thread_pool_submit_co) running while every stack
 * mapping fails, served entirely from the pool.
 *
 * SPDX-License-Identifier: MIT
 */
#include "faults-test.h"
#include "util/death-test.h"


static void coroutine_fn nop_entry(void *opaque)
{
    qatomic_inc((int *)opaque);
}

/* Creates and runs @n coroutines at once (so @n stacks are in use). */
static void run_many(int n)
{
    Coroutine **cos = calloc(n, sizeof(*cos));
    int runs = 0;

    for (int i = 0; i < n; i++) {
        cos[i] = qemu_coroutine_create(nop_entry, &runs);
    }
    for (int i = 0; i < n; i++) {
        qemu_coroutine_enter(cos[i]);
    }
    free(cos);
}

/* Runs first, while the process has one thread (fork). */
static void child_stack_fails(void *opaque)
{
    int runs = 0;

    (void)opaque;
    aioloop__fault_inject(AIOLOOP_FAULT_CO_STACK, 0, -1, ENOMEM);
    /* The pool holds at most 64; the 65th creation needs a stack. */
    for (int i = 0; i < 1000; i++) {
        qemu_coroutine_create(nop_entry, &runs);
    }
    fprintf(stderr, "survived 1000 creations without a stack\n");
}

/* ThreadSanitizer models each coroutine as a fiber, a thread of its own;
 * fibers made before fork() (the pool's) come into the child in a state
 * TSan no longer synchronizes, and it reports races between coroutines
 * of the child's single thread. The death tests run everywhere else. */
#define SKIP_FORK_UNDER_TSAN() do { \
    if (UNDER_TSAN) { \
        SKIP_CASE("TSan does not follow coroutine fibers into a fork()ed " \
                  "child"); \
    } \
} while (0)

static void test_stack_failure_aborts(void)
{
    DeathResult res;

    SKIP_FORK_UNDER_TSAN();
    run_many(8);                /* the child inherits a pool of 8 */
    REQUIRE(death_run(child_stack_fails, NULL, &res));
    death_print_err(&res);
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "cannot allocate a coroutine stack") != NULL);
    CHECK(strstr(res.err, strerror(ENOMEM)) != NULL);
}

/* ------------------------------------------------------------------ */
/* Work from the pool while mmap fails                                 */

typedef struct {
    AioContext *ctx;
    CoMutex lock;
    int in_lock;
    int done;                   /* atomic */
    int bad;
} Shared;

static int square_fn(void *opaque)
{
    int v = *(int *)opaque;

    return v * v;
}

static void coroutine_fn worker_entry(void *opaque)
{
    Shared *s = opaque;
    int v = 7, r;

    qemu_co_mutex_lock(&s->lock);
    s->in_lock++;
    qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, 100 * 1000);
    if (s->in_lock != 1) {
        s->bad++;
    }
    s->in_lock--;
    qemu_co_mutex_unlock(&s->lock);
    aio_co_schedule(s->ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    r = thread_pool_submit_co(aio_get_thread_pool(s->ctx), square_fn, &v);
    if (r != 49) {
        s->bad++;
    }
    qatomic_inc(&s->done);
}

static void test_pooled_coroutines_need_no_stack(void)
{
    enum { N = 16, ROUNDS = 20 };
    Shared s = { 0 };
    unsigned long calls0;

    s.ctx = new_ctx();
    qemu_co_mutex_init(&s.lock);
    /* Fill this thread's pool: N stacks, then nothing new is needed. */
    run_many(N);
    calls0 = aioloop__fault_calls(AIOLOOP_FAULT_CO_STACK);
    aioloop__fault_inject(AIOLOOP_FAULT_CO_STACK, 0, -1, ENOMEM);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++) {
            aio_co_enter(s.ctx, qemu_coroutine_create(worker_entry, &s));
        }
        poll_until(s.ctx, &s.done, (r + 1) * N);
    }
    aioloop__fault_clear();
    CHECK_EQ(qatomic_read(&s.done), N * ROUNDS);
    CHECK_EQ(s.bad, 0);
    /* The hook was never even reached: creation took pooled stacks. */
    CHECK_EQ(aioloop__fault_calls(AIOLOOP_FAULT_CO_STACK), calls0);
    aio_context_unref(s.ctx);
}

/* The Nth mapping fails: the ones before it work (the hook counts real
 * mappings, one per stack beyond the pool). */
static void child_nth_stack_fails(void *opaque)
{
    (void)opaque;
    run_many(64);               /* a full pool */
    aioloop__fault_inject(AIOLOOP_FAULT_CO_STACK, 3, 1, EAGAIN);
    run_many(64 + 3);           /* three new stacks: fine */
    fprintf(stderr, "three new stacks mapped\n");
    run_many(64 + 4);           /* the fourth: abort */
    fprintf(stderr, "survived\n");
}

static void test_nth_stack_failure(void)
{
    DeathResult res;

    SKIP_FORK_UNDER_TSAN();
    REQUIRE(death_run(child_nth_stack_fails, NULL, &res));
    death_print_err(&res);
    CHECK(strstr(res.err, "three new stacks mapped") != NULL);
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "cannot allocate a coroutine stack") != NULL);
    CHECK(strstr(res.err, "survived") == NULL);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    /* Death tests first, while the process has a single thread. */
    FRUN(test_stack_failure_aborts);
    FRUN(test_nth_stack_failure);
    FRUN(test_pooled_coroutines_need_no_stack);
    fault_summary();
    return test_done();
}
