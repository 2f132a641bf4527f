/*
 * test-misuse-context.c - AioContext lifecycle and ownership misuse.
 *
 * Outcomes checked (aio.h):
 *   aio_context_release() without acquire,    abort naming the context
 *     more often than acquired, or from a
 *     thread that does not hold it
 *   the last aio_context_unref() while the    abort naming the context
 *     context is acquired, from inside its     (it would free memory that
 *     own aio_poll() (a BH callback), or        thread is still using)
 *     while another thread's aio_poll()
 *     runs it
 *   aio_context_unref(NULL)                   no-op
 *   ref + unref inside a callback (not last)  fine
 *   aio_context_set_poll_params() with a      errp set, naming the
 *     negative argument                         values; nothing changes
 *   aio_context_new() with no descriptor      NULL, errp set, errno
 *     left (RLIMIT_NOFILE)                      EMFILE; no fd leaked
 *
 * Not here: set_poll_params overflow (tests/regress).
 * Not detectable: an unref below zero or an aio_poll() on a freed
 * context (the memory is gone; ASan reports the use after free).
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"
#include "fd-count.h"

/* ------------------------------------------------------------------ */
/* acquire / release                                                   */

static void child_release_unbalanced(void *opaque)
{
    AioContext *ctx = new_ctx();
    int acquires = *(int *)opaque;

    for (int i = 0; i < acquires; i++) {
        aio_context_acquire(ctx);
    }
    for (int i = 0; i < acquires; i++) {
        aio_context_release(ctx);
    }
    death_expect("AioContext %p is not held", (void *)ctx);
    aio_context_release(ctx);
}

static void test_release_without_acquire_aborts(void)
{
    int none = 0;

    expect_abort(child_release_unbalanced, &none, "aio_context_release",
                 "a release without its acquire");
}

static void test_release_more_than_acquired_aborts(void)
{
    int two = 2;

    expect_abort(child_release_unbalanced, &two, "aio_context_release",
                 "not held");
}

static void *release_thread(void *opaque)
{
    aio_context_release(opaque);
    return NULL;
}

static void child_release_other_thread(void *opaque)
{
    AioContext *ctx = new_ctx();
    QemuThread t;

    (void)opaque;
    aio_context_acquire(ctx);
    death_expect("AioContext %p is held by another thread", (void *)ctx);
    start_thread(&t, "releaser", release_thread, ctx);
    qemu_thread_join(&t);
}

static void test_release_from_other_thread_aborts(void)
{
    expect_abort(child_release_other_thread, NULL, "aio_context_release",
                 NULL);
}

/* ------------------------------------------------------------------ */
/* The last unref                                                      */

static void child_unref_while_acquired(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    aio_context_acquire(ctx);
    death_expect("AioContext %p", (void *)ctx);
    aio_context_unref(ctx);
}

static void test_unref_while_acquired_aborts(void)
{
    expect_abort(child_unref_while_acquired, NULL, "aio_context_unref",
                 "dropped while the context is held");
}

static void unref_cb(void *opaque)
{
    aio_context_unref(opaque);
}

static void child_unref_in_own_callback(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    death_expect("AioContext %p", (void *)ctx);
    aio_bh_schedule_oneshot(ctx, unref_cb, ctx);
    aio_poll(ctx, false);
}

static void test_unref_last_in_own_callback_aborts(void)
{
    expect_abort(child_unref_in_own_callback, NULL, "aio_context_unref",
                 "from inside an aio_poll() of it");
}

typedef struct {
    AioContext *ctx;
    QemuSemaphore running;
} Poller;

static void block_forever_cb(void *opaque)
{
    Poller *p = opaque;

    qemu_sem_post(&p->running);
    for (;;) {
        pause();                    /* holds the context until the abort */
    }
}

static void *poller_thread(void *opaque)
{
    Poller *p = opaque;

    aio_poll(p->ctx, true);
    return NULL;
}

static void child_unref_while_other_thread_polls(void *opaque)
{
    Poller p = { .ctx = new_ctx() };
    QemuThread t;

    (void)opaque;
    qemu_sem_init(&p.running, 0);
    aio_bh_schedule_oneshot(p.ctx, block_forever_cb, &p);
    start_thread(&t, "poller", poller_thread, &p);
    qemu_sem_wait(&p.running);      /* inside its aio_poll(), holding it */
    death_expect("AioContext %p", (void *)p.ctx);
    aio_context_unref(p.ctx);
}

static void test_unref_while_other_thread_polls_aborts(void)
{
    expect_abort(child_unref_while_other_thread_polls, NULL,
                 "aio_context_unref", "held");
}

static void ref_unref_cb(void *opaque)
{
    AioContext *ctx = opaque;

    aio_context_ref(ctx);
    aio_context_unref(ctx);
    aio_context_unref(ctx);     /* the extra one taken below: not last */
}

static void test_unref_not_last_in_callback_ok(void)
{
    AioContext *ctx = new_ctx();

    aio_context_ref(ctx);
    aio_bh_schedule_oneshot(ctx, ref_unref_cb, ctx);
    CHECK(aio_poll(ctx, false));
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);     /* the last one, outside: fine */
}

static void test_unref_null_is_noop(void)
{
    aio_context_unref(NULL);
}

/* ------------------------------------------------------------------ */
/* Bad parameters                                                      */

static void test_set_poll_params_negative_errp(void)
{
    static const int64_t bad[][3] = {
        { -1, 0, 0 }, { 1000, -2, 0 }, { 1000, 0, -3 }, { INT64_MIN, 0, 0 },
    };
    AioContext *ctx = new_ctx();
    int runs = 0;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        Error *err = NULL;
        char want[64];

        aio_context_set_poll_params(ctx, bad[i][0], bad[i][1], bad[i][2],
                                    &err);
        REQUIRE(err != NULL);
        printf("#   %s\n", error_get_pretty(err));
        snprintf(want, sizeof(want), "max_ns=%lld grow=%lld shrink=%lld",
                 (long long)bad[i][0], (long long)bad[i][1],
                 (long long)bad[i][2]);
        CHECK(strstr(error_get_pretty(err), want) != NULL);
        error_free(err);
        /* NULL errp: dropped, nothing else happens. */
        aio_context_set_poll_params(ctx, bad[i][0], bad[i][1], bad[i][2],
                                    NULL);
    }
    /* The context still works, and valid parameters are taken. */
    aio_context_set_poll_params(ctx, 0, 0, 0, &error_abort);
    aio_bh_schedule_oneshot(ctx, misuse_count_cb, &runs);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(runs, 1);
    aio_context_unref(ctx);
}

/* Lowers RLIMIT_NOFILE so that no descriptor can be opened: the limit
 * becomes the lowest free number, every number below it is in use.
 * Returns false if that could not be arranged; @saved gets the limit. */
static bool exhaust_fds(struct rlimit *saved)
{
    int lowest;

    if (getrlimit(RLIMIT_NOFILE, saved) < 0 || (lowest = dup(0)) < 0) {
        return false;
    }
    close(lowest);
    if (limit_fds((rlim_t)lowest) < 0) {
        return false;
    }
    if (dup(0) >= 0 || errno != EMFILE) {
        setrlimit(RLIMIT_NOFILE, saved);
        return false;
    }
    return true;
}

static void test_context_new_out_of_fds(void)
{
    int before = test_count_fds();
    Error *err = NULL;
    AioContext *ctx;
    struct rlimit rl;

    REQUIRE(before > 0);
    if (!exhaust_fds(&rl)) {
        SKIP_CASE("cannot lower RLIMIT_NOFILE to the descriptors in use");
    }
    errno = 0;
    ctx = aio_context_new(&err);
    CHECK(ctx == NULL);
    CHECK_EQ(errno, EMFILE);
    CHECK(aio_context_new(NULL) == NULL);   /* errp may be NULL */
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    REQUIRE(err != NULL);
    printf("#   %s\n", error_get_pretty(err));
    CHECK(strstr(error_get_pretty(err), strerror(EMFILE)) != NULL);
    error_free(err);
    CHECK_EQ(test_count_fds(), before);     /* nothing left open */
    ctx = aio_context_new(&error_abort);    /* and it works again */
    aio_context_unref(ctx);
}

int main(void)
{
    TEST(test_release_without_acquire_aborts);
    TEST(test_release_more_than_acquired_aborts);
    TEST(test_release_from_other_thread_aborts);
    TEST(test_unref_while_acquired_aborts);
    TEST(test_unref_last_in_own_callback_aborts);
    TEST(test_unref_while_other_thread_polls_aborts);
    TEST(test_unref_not_last_in_callback_ok);
    TEST(test_unref_null_is_noop);
    TEST(test_set_poll_params_negative_errp);
    TEST(test_context_new_out_of_fds);
    return test_done();
}
