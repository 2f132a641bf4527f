/*
 * test-misuse-iothread.c - IOThreads given what they must not get.
 *
 * Outcomes checked (iothread.h):
 *   iothread_create(NULL id)              works; iothread_get_id() NULL
 *   two IOThreads with the same id        both work (ids are names, not
 *                                           keys)
 *   an id longer than a thread name       kept whole by iothread_get_id()
 *   iothread_destroy twice                abort naming the IOThread ("not
 *                                           a live IOThread")
 *   iothread_destroy from its own thread  abort naming the IOThread's id
 *   iothread_destroy(NULL)                no-op
 *   iothread_get_aio_context(NULL),       abort ("NULL IOThread")
 *     iothread_get_id(NULL)
 *   a context reference kept past         the context stays usable
 *     iothread_destroy
 *   iothread_create with no descriptor    NULL, errp set; nothing leaked
 *     left
 *
 * Each death test starts its IOThreads in the forked child (fork with
 * one thread, as ThreadSanitizer needs).
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"
#include "fd-count.h"

/* Runs a BH in @it's loop and waits for it. */
static void run_in(IOThread *it, int *runs)
{
    Probe p = { 0 };

    qemu_sem_init(&p.done, 0);
    aio_bh_schedule_oneshot(iothread_get_aio_context(it), probe_cb, &p);
    qemu_sem_wait(&p.done);
    CHECK(!qemu_thread_is_self(&p.runner));
    CHECK(p.current == iothread_get_aio_context(it));
    qemu_sem_destroy(&p.done);
    (*runs)++;
}

static void test_iothread_null_id_ok(void)
{
    IOThread *it = iothread_create(NULL, &error_abort);
    int runs = 0;

    CHECK(iothread_get_id(it) == NULL);
    run_in(it, &runs);
    CHECK_EQ(runs, 1);
    iothread_destroy(it);
}

static void test_iothread_duplicate_ids_ok(void)
{
    IOThread *a = iothread_create("twin", &error_abort);
    IOThread *b = iothread_create("twin", &error_abort);
    int runs = 0;

    CHECK(iothread_get_aio_context(a) != iothread_get_aio_context(b));
    CHECK(strcmp(iothread_get_id(a), iothread_get_id(b)) == 0);
    run_in(a, &runs);
    run_in(b, &runs);
    iothread_destroy(a);
    run_in(b, &runs);               /* the other one is untouched */
    iothread_destroy(b);
    CHECK_EQ(runs, 3);
}

static void test_iothread_long_id_kept(void)
{
    static const char id[] = "an-iothread-id-far-longer-than-15-bytes";
    IOThread *it = iothread_create(id, &error_abort);
    int runs = 0;

    CHECK(strcmp(iothread_get_id(it), id) == 0);
    run_in(it, &runs);
    iothread_destroy(it);
}

static void child_destroy_twice(void *opaque)
{
    IOThread *it = iothread_create("twice", &error_abort);

    (void)opaque;
    iothread_destroy(it);
    death_expect("%p is not a live IOThread", (void *)it);
    iothread_destroy(it);
}

static void test_iothread_destroy_twice_aborts(void)
{
    expect_abort(child_destroy_twice, NULL, "iothread_destroy",
                 "destroyed twice?");
}

static void destroy_self_cb(void *opaque)
{
    iothread_destroy(opaque);
}

static void child_destroy_from_own_thread(void *opaque)
{
    IOThread *it = iothread_create("suicidal", &error_abort);

    (void)opaque;
    death_expect("IOThread 'suicidal' (%p)", (void *)it);
    aio_bh_schedule_oneshot(iothread_get_aio_context(it), destroy_self_cb,
                            it);
    for (;;) {
        pause();                    /* the abort ends the child */
    }
}

static void test_iothread_destroy_from_own_thread_aborts(void)
{
    expect_abort(child_destroy_from_own_thread, NULL, "iothread_destroy",
                 "destroyed from its own thread");
}

static void test_iothread_destroy_null_is_noop(void)
{
    iothread_destroy(NULL);
}

static void child_null_getter(void *opaque)
{
    if (*(int *)opaque) {
        iothread_get_id(NULL);
    } else {
        iothread_get_aio_context(NULL);
    }
}

static void test_iothread_null_getters_abort(void)
{
    int ctx = 0, id = 1;

    expect_abort(child_null_getter, &ctx, "iothread_get_aio_context",
                 "NULL IOThread");
    expect_abort(child_null_getter, &id, "iothread_get_id", "NULL IOThread");
}

static void test_iothread_context_outlives_destroy(void)
{
    IOThread *it = iothread_create("short-lived", &error_abort);
    AioContext *ctx = iothread_get_aio_context(it);
    int runs = 0;

    aio_context_ref(ctx);
    iothread_destroy(it);
    /* Nobody runs it now; this thread may. */
    aio_bh_schedule_oneshot(ctx, misuse_count_cb, &runs);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(runs, 1);
    aio_context_unref(ctx);
}

static void test_iothread_create_out_of_fds(void)
{
    int before = test_count_fds(), lowest;
    Error *err = NULL;
    struct rlimit rl;
    IOThread *it;

    REQUIRE(before > 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0);
    lowest = dup(0);
    REQUIRE(lowest >= 0);
    close(lowest);
    REQUIRE(limit_fds((rlim_t)lowest) == 0);
    it = iothread_create("no-fds", &err);
    CHECK(iothread_create("no-fds", NULL) == NULL);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(it == NULL);
    REQUIRE(err != NULL);
    printf("#   %s\n", error_get_pretty(err));
    CHECK(strstr(error_get_pretty(err), strerror(EMFILE)) != NULL);
    error_free(err);
    CHECK_EQ(test_count_fds(), before);
}

int main(void)
{
    TEST(test_iothread_null_id_ok);
    TEST(test_iothread_duplicate_ids_ok);
    TEST(test_iothread_long_id_kept);
    TEST(test_iothread_destroy_twice_aborts);
    TEST(test_iothread_destroy_from_own_thread_aborts);
    TEST(test_iothread_destroy_null_is_noop);
    TEST(test_iothread_null_getters_abort);
    TEST(test_iothread_context_outlives_destroy);
    TEST(test_iothread_create_out_of_fds);
    return test_done();
}
