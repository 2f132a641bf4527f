/*
 * test-faults-mixed.c - the probability mode: every fault site that has
 * an error channel fails at random, from a printed seed, while the mixed
 * workload of workload.h runs (BHs, timers, thread-pool jobs in two
 * contexts, coroutines moving between the main context and an IOThread,
 * block I/O on every engine, an fd handler), round after round with a new
 * seed each.
 *
 * Faults per round: io_submit / io_uring_submit refused (EAGAIN, ENOMEM),
 * pthread_create refused (EAGAIN), epoll_ctl refused (ENOMEM: the main
 * context moves to ppoll), the fd monitor's wait interrupted (EINTR) or
 * failing (ENOMEM), the thread backend's I/O calls interrupted (EINTR).
 * Alongside, a constructor thread creates and frees contexts, notifiers
 * and block backends while its own allocations (20%), eventfd (20%) and
 * epoll_create (20%) calls fail: every failure must come back as an Error
 * or -errno, every success must be a usable object.
 *
 * Checked: every item of every round completes exactly once with its
 * documented result (see workload.h); nothing hangs (bounded waits);
 * nothing leaks (LSan in the ASan build). AIOLOOP_FAULT_SEED=<n> replays
 * a run.
 *
 * SPDX-License-Identifier: MIT
 */
#include "workload.h"

#define ROUNDS (UNDER_TSAN ? 3 : 10)

static uint64_t base_seed = 0x5eed;

/* ------------------------------------------------------------------ */
/* The constructor thread                                              */

typedef struct {
    uint64_t seed;
    int stop;                   /* atomic */
    int made, refused, bad;
    int iterations;             /* atomic */
} Ctors;

static bool says_errno(Error *err, int e)
{
    return err && strstr(error_get_pretty(err), strerror(e));
}

static void *ctor_thread(void *opaque)
{
    Ctors *c = opaque;
    AioloopFaultPlan plan = { .count = -1, .per_million = 200000,
                              .this_thread = true };

    plan.seed = c->seed;
    plan.err = ENOMEM;
    aioloop__fault_arm(AIOLOOP_FAULT_ALLOC, &plan);
    plan.seed = c->seed + 1;
    plan.err = EMFILE;
    aioloop__fault_arm(AIOLOOP_FAULT_EVENTFD, &plan);
    plan.seed = c->seed + 2;
    aioloop__fault_arm(AIOLOOP_FAULT_EPOLL_CREATE, &plan);

    while (!qatomic_read(&c->stop)) {
        Error *err = NULL;
        AioContext *ctx;
        AioBlockBackend *b;
        EventNotifier e;
        int ret;

        errno = 0;
        ctx = aio_context_new(&err);
        if (ctx) {
            c->made++;
            c->bad += err != NULL;
            aio_context_unref(ctx);
        } else if ((errno == ENOMEM && says_errno(err, ENOMEM)) ||
                   (errno == EMFILE && says_errno(err, EMFILE))) {
            c->refused++;
        } else {
            printf("#   aio_context_new: errno %d, error '%s'\n", errno,
                   err ? error_get_pretty(err) : "(none)");
            c->bad++;
        }
        error_free(err);
        err = NULL;

        ret = event_notifier_init(&e, 1);
        if (ret == 0) {
            c->made++;
            c->bad += !event_notifier_test_and_clear(&e);
            event_notifier_cleanup(&e);
        } else if (ret == -EMFILE && e.rfd == -1) {
            c->refused++;
        } else {
            c->bad++;
        }

        b = aio_block_backend_new(AIO_ENGINE_AUTO, &err);
        if (b) {
            c->made++;
            aio_block_backend_free(b);
        } else if (says_errno(err, ENOMEM)) {
            c->refused++;
        } else {
            printf("#   aio_block_backend_new: '%s'\n",
                   err ? error_get_pretty(err) : "(none)");
            c->bad++;
        }
        error_free(err);
        qatomic_inc(&c->iterations);
        sleep_us(200);
    }
    aioloop__fault_clear_site(AIOLOOP_FAULT_ALLOC);
    aioloop__fault_clear_site(AIOLOOP_FAULT_EVENTFD);
    aioloop__fault_clear_site(AIOLOOP_FAULT_EPOLL_CREATE);
    return NULL;
}

/* ------------------------------------------------------------------ */

static void arm_round(uint64_t seed, uint32_t round)
{
    int submit_err = round % 2 ? ENOMEM : EAGAIN;

    aioloop__fault_inject_random(AIOLOOP_FAULT_IO_SUBMIT, 200000, seed,
                                 submit_err);
    aioloop__fault_inject_random(AIOLOOP_FAULT_URING_SUBMIT, 200000,
                                 seed + 1, submit_err);
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_CREATE, 250000,
                                 seed + 2, EAGAIN);
    aioloop__fault_inject_random(AIOLOOP_FAULT_EPOLL_CTL, 100000, seed + 3,
                                 ENOMEM);
    aioloop__fault_inject_random(AIOLOOP_FAULT_FDMON_WAIT, 100000, seed + 4,
                                 round % 2 ? ENOMEM : EINTR);
    aioloop__fault_inject_random(AIOLOOP_FAULT_THREAD_IO, 200000, seed + 5,
                                 EINTR);
}

static const AioloopFaultSite round_sites[] = {
    AIOLOOP_FAULT_IO_SUBMIT, AIOLOOP_FAULT_URING_SUBMIT,
    AIOLOOP_FAULT_THREAD_CREATE, AIOLOOP_FAULT_EPOLL_CTL,
    AIOLOOP_FAULT_FDMON_WAIT, AIOLOOP_FAULT_THREAD_IO,
};

static void test_mixed_random_faults(void)
{
    Mixed *m = calloc(1, sizeof(*m));
    Ctors c = { .seed = base_seed ^ 0xc7c7 };
    QemuThread ct;
    int eagain = 0;

    REQUIRE(m);
    REQUIRE(mixed_init(m));
    w_start_thread(&ct, "mixed-ctors", ctor_thread, &c);
    for (uint32_t round = 0; round < ROUNDS; round++) {
        uint64_t seed = base_seed + round * 16;
        unsigned long before[ARRAY_SIZE(round_sites)];
        int bad;

        for (size_t i = 0; i < ARRAY_SIZE(round_sites); i++) {
            before[i] = aioloop__fault_hits(round_sites[i]);
        }
        arm_round(seed, round);
        bad = mixed_round(m, round);
        for (size_t i = 0; i < ARRAY_SIZE(round_sites); i++) {
            aioloop__fault_clear_site(round_sites[i]);
        }
        printf("#   round %u (seed %llu): %d items, %d wrong, %d -EAGAIN;"
               " injected", round, (unsigned long long)seed, w_total(m), bad,
               m->eagain);
        for (size_t i = 0; i < ARRAY_SIZE(round_sites); i++) {
            printf(" %s=%lu", aioloop__fault_site_name(round_sites[i]),
                   aioloop__fault_hits(round_sites[i]) - before[i]);
        }
        printf("\n");
        eagain += m->eagain;
        CHECK_EQ(bad, 0);
        if (bad) {
            break;
        }
    }
    while (qatomic_read(&c.iterations) < 30) {
        sleep_ms(1);            /* enough constructions to mean something */
    }
    qatomic_set(&c.stop, 1);
    qemu_thread_join(&ct);
    printf("#   constructor thread: %d objects made, %d refused (reported),"
           " %d wrong\n", c.made, c.refused, c.bad);
    CHECK_EQ(c.bad, 0);
    CHECK(c.made > 0);
    CHECK(c.refused > 0);
    printf("#   %d results were the documented -EAGAIN\n", eagain);
    mixed_fini(m);
    free(m);
}

int main(void)
{
    const char *s = getenv("AIOLOOP_FAULT_SEED");

    watchdog_install(WATCHDOG_HUNG);
    if (s && *s) {
        base_seed = strtoull(s, NULL, 0);
    }
    printf("# AIOLOOP_FAULT_SEED=%llu\n", (unsigned long long)base_seed);
    FRUN(test_mixed_random_faults);
    fault_summary();
    return test_done();
}
