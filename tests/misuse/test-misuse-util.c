/*
 * test-misuse-util.c - the base primitives given what they must not get:
 * the Error API, QEMUIOVector, RFifoLock and QemuMutex, EventNotifier.
 *
 * Outcomes checked (error.h, iov.h, rfifolock.h, thread.h,
 * event-notifier.h):
 *   error_propagate(&err, err)              no-op (the error stays)
 *   error_propagate into a set errp         the first wins, the second is
 *                                             freed; NULL local: nothing;
 *                                             NULL dst: freed
 *   error_setg twice into one errp          abort naming both messages
 *   error_report_err(NULL), error_free      no-op
 *     (NULL), error_prepend(NULL or &NULL)
 *   error_setg_errno with -errno, 0, an     like +errno; no suffix;
 *     unknown number                          "Unknown error N"
 *   qemu_iovec_add past SIZE_MAX bytes      abort naming the vector
 *   qemu_iovec_init_external: total past    abort naming the vector
 *     SIZE_MAX, negative count, NULL array
 *   qemu_iovec_concat with a range that     abort (soffset + sbytes
 *     overflows                               never wraps)
 *   qemu_iovec_reset of a borrowed array    abort
 *   qemu_iovec_destroy twice; add after     no-op; the vector is empty
 *     destroy                                 and growable again
 *   qemu_iovec_init(negative hint); copies  works; the copies clamp to
 *     past the end or of SIZE_MAX bytes       the vector (0 past the end)
 *   rfifolock_destroy while held            abort naming the lock
 *   qemu_mutex_destroy while locked         abort naming the mutex
 *   qemu_mutex_unlock not held, relock by   abort naming the mutex in
 *     its holder                              builds without NDEBUG (error-
 *                                             checking mutex); no outcome
 *                                             is defined with NDEBUG
 *   EventNotifier ops when uninitialised    set: -EBADF; test_and_clear:
 *     (zero-filled, cleaned up twice)         false; get_fd/wfd: -1;
 *                                             cleanup: no-op; init_fd(-1):
 *                                             -EINVAL
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"

/* ------------------------------------------------------------------ */
/* Error                                                               */

static void test_error_propagate_into_itself_is_noop(void)
{
    Error *err = NULL;

    error_setg(&err, "only %d", 1);
    error_propagate(&err, err);     /* used to free what err held */
    REQUIRE(err != NULL);
    CHECK(strcmp(error_get_pretty(err), "only 1") == 0);
    error_free(err);
}

static void test_error_propagate_edge_cases(void)
{
    Error *first = NULL, *second = NULL, *dropped = NULL;

    error_setg(&first, "first");
    error_setg(&second, "second");
    error_propagate(&first, second);        /* first wins, second freed */
    CHECK(strcmp(error_get_pretty(first), "first") == 0);
    error_propagate(&first, NULL);          /* nothing */
    CHECK(strcmp(error_get_pretty(first), "first") == 0);
    error_setg(&dropped, "dropped");
    error_propagate(NULL, dropped);         /* freed (ASan: no leak) */
    error_free(first);
}

static void child_set_twice(void *opaque)
{
    Error *err = NULL;

    (void)opaque;
    error_setg(&err, "the first error");
    error_setg(&err, "the second error");
}

static void test_error_set_twice_aborts(void)
{
    DeathResult res;

    REQUIRE(misuse_death_run(child_set_twice, NULL, &res));
    death_print(&res);
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "error set twice: \"the second error\" while "
                 "\"the first error\" was pending") != NULL);
}

static void test_error_null_arguments_are_noops(void)
{
    Error *none = NULL;

    error_report_err(NULL);
    error_free(NULL);
    error_prepend(NULL, "prefix %d: ", 1);
    error_prepend(&none, "prefix %d: ", 2);
    CHECK(none == NULL);
}

static void test_error_setg_errno_odd_values(void)
{
    Error *neg = NULL, *zero = NULL, *unknown = NULL;

    error_setg_errno(&neg, -EINVAL, "neg");
    error_setg_errno(&zero, 0, "zero");
    error_setg_errno(&unknown, 99999, "unknown");
    CHECK(strstr(error_get_pretty(neg), strerror(EINVAL)) != NULL);
    CHECK(strcmp(error_get_pretty(zero), "zero") == 0);
    CHECK(strstr(error_get_pretty(unknown), "99999") != NULL);
    error_free(neg);
    error_free(zero);
    error_free(unknown);
}

/* ------------------------------------------------------------------ */
/* QEMUIOVector                                                        */

static char buf[64];

enum { IOV_ADD_OVERFLOW, IOV_EXT_OVERFLOW, IOV_EXT_NEGATIVE, IOV_EXT_NULL,
       IOV_CONCAT_OVERFLOW, IOV_RESET_EXTERNAL };

static void child_iov(void *opaque)
{
    struct iovec huge[2] = {
        { buf, SIZE_MAX / 2 + 1 }, { buf, SIZE_MAX / 2 + 1 },
    };
    QEMUIOVector qiov, src;

    death_expect("vector %p", (void *)&qiov);
    switch (*(int *)opaque) {
    case IOV_ADD_OVERFLOW:
        qemu_iovec_init(&qiov, 1);
        qemu_iovec_add(&qiov, buf, SIZE_MAX - 10);
        qemu_iovec_add(&qiov, buf, 11);
        break;
    case IOV_EXT_OVERFLOW:
        qemu_iovec_init_external(&qiov, huge, 2);
        break;
    case IOV_EXT_NEGATIVE:
        qemu_iovec_init_external(&qiov, huge, -1);
        break;
    case IOV_EXT_NULL:
        qemu_iovec_init_external(&qiov, NULL, 3);
        break;
    case IOV_CONCAT_OVERFLOW:
        qemu_iovec_init_buf(&src, buf, sizeof(buf));
        qemu_iovec_init(&qiov, 1);
        qemu_iovec_concat(&qiov, &src, 1, SIZE_MAX);
        break;
    default:
        qemu_iovec_init_external(&qiov, huge, 1);
        qemu_iovec_reset(&qiov);
        break;
    }
}

static void test_iov_add_size_overflow_aborts(void)
{
    int how = IOV_ADD_OVERFLOW;

    expect_abort(child_iov, &how, "qemu_iovec_add", "overflows");
}

static void test_iov_init_external_overflow_aborts(void)
{
    int how = IOV_EXT_OVERFLOW;

    expect_abort(child_iov, &how, "qemu_iovec_init_external",
                 "total size of its 2 elements overflows");
}

static void test_iov_init_external_bad_array_aborts(void)
{
    int negative = IOV_EXT_NEGATIVE, null = IOV_EXT_NULL;

    expect_abort(child_iov, &negative, "qemu_iovec_init_external",
                 "with -1 elements");
    expect_abort(child_iov, &null, "qemu_iovec_init_external",
                 "with 3 elements");
}

static void test_iov_concat_overflowing_range_aborts(void)
{
    int how = IOV_CONCAT_OVERFLOW;

    expect_abort(child_iov, &how, "qemu_iovec_concat",
                 "range beyond the end of src");
}

static void test_iov_reset_borrowed_aborts(void)
{
    int how = IOV_RESET_EXTERNAL;

    expect_abort(child_iov, &how, "qemu_iovec_reset",
                 "does not own its array");
}

static void test_iov_destroy_twice_then_reuse(void)
{
    QEMUIOVector qiov;
    char out[8] = { 0 };

    qemu_iovec_init(&qiov, 4);
    qemu_iovec_add(&qiov, buf, 8);
    qemu_iovec_destroy(&qiov);
    qemu_iovec_destroy(&qiov);              /* twice: nothing */
    CHECK_EQ(qiov.size, 0);
    CHECK_EQ(qiov.niov, 0);
    /* Adding after destroy grows from nothing (it used to write one
     * element past a zero-length array). */
    memcpy(buf, "abcdefgh", 8);
    qemu_iovec_add(&qiov, buf, 4);
    qemu_iovec_add(&qiov, buf + 4, 4);
    CHECK_EQ(qiov.size, 8);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, 0, out, sizeof(out)), 8);
    CHECK(memcmp(out, "abcdefgh", 8) == 0);
    qemu_iovec_destroy(&qiov);              /* ASan: freed, no leak */
}

static void test_iov_odd_values_clamp(void)
{
    QEMUIOVector qiov;
    char out[16];

    qemu_iovec_init(&qiov, -5);             /* as 1 */
    qemu_iovec_add(&qiov, buf, 10);
    qemu_iovec_add(&qiov, buf + 10, 6);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, 16, out, 1), 0);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, SIZE_MAX, out, 1), 0);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, 12, out, SIZE_MAX), 4);
    CHECK_EQ(qemu_iovec_from_buf(&qiov, 15, out, SIZE_MAX), 1);
    CHECK_EQ(qemu_iovec_memset(&qiov, 0, 0, SIZE_MAX), 16);
    CHECK_EQ(qemu_iovec_memset(&qiov, 17, 0, 1), 0);
    qemu_iovec_destroy(&qiov);
}

/* ------------------------------------------------------------------ */
/* Locks                                                               */

static void child_rfifolock_destroy_held(void *opaque)
{
    RFifoLock r;

    (void)opaque;
    rfifolock_init(&r, NULL, NULL);
    rfifolock_lock(&r);
    death_expect("lock %p is held", (void *)&r);
    rfifolock_destroy(&r);
}

static void test_rfifolock_destroy_held_aborts(void)
{
    expect_abort(child_rfifolock_destroy_held, NULL, "rfifolock_destroy",
                 NULL);
}

enum { MX_DESTROY_LOCKED, MX_UNLOCK_UNHELD, MX_RELOCK };

static void child_mutex(void *opaque)
{
    QemuMutex m;

    qemu_mutex_init(&m);
    death_expect("mutex %p:", (void *)&m);
    switch (*(int *)opaque) {
    case MX_DESTROY_LOCKED:
        qemu_mutex_lock(&m);
        qemu_mutex_destroy(&m);
        break;
    case MX_UNLOCK_UNHELD:
        qemu_mutex_unlock(&m);
        break;
    default:
        qemu_mutex_lock(&m);
        qemu_mutex_lock(&m);
        break;
    }
}

static void test_mutex_destroy_locked_aborts(void)
{
    int how = MX_DESTROY_LOCKED;

    expect_abort(child_mutex, &how, "qemu_mutex_destroy",
                 "pthread_mutex_destroy failed");
}

static void test_mutex_unlock_unheld_aborts(void)
{
    int how = MX_UNLOCK_UNHELD;

    if (BUILT_WITH_NDEBUG) {
        SKIP_CASE("NDEBUG: a normal mutex; thread.h defines no outcome");
    }
    expect_abort(child_mutex, &how, "qemu_mutex_unlock",
                 "pthread_mutex_unlock failed");
}

static void test_mutex_relock_aborts(void)
{
    int how = MX_RELOCK;

    if (BUILT_WITH_NDEBUG) {
        SKIP_CASE("NDEBUG: a normal mutex deadlocks; thread.h defines no "
                  "outcome");
    }
    expect_abort(child_mutex, &how, "qemu_mutex_lock",
                 "pthread_mutex_lock failed");
}

/* ------------------------------------------------------------------ */
/* EventNotifier                                                       */

static void test_event_notifier_uninitialised_ops(void)
{
    EventNotifier zeroed = { 0 }, e;

    /* Zero-filled: rfd 0 is stdin, but "initialized" is false, and
     * nothing may touch descriptor 0. */
    CHECK_EQ(event_notifier_set(&zeroed), -EBADF);
    CHECK(!event_notifier_test_and_clear(&zeroed));
    CHECK_EQ(event_notifier_get_fd(&zeroed), -1);
    CHECK_EQ(event_notifier_get_wfd(&zeroed), -1);
    event_notifier_cleanup(&zeroed);
    CHECK(fcntl(0, F_GETFD) >= 0 || errno != EBADF);   /* stdin intact */
    REQUIRE(event_notifier_init(&e, 1) == 0);
    event_notifier_cleanup(&e);
    event_notifier_cleanup(&e);                 /* twice */
    CHECK_EQ(event_notifier_set(&e), -EBADF);
    CHECK(!event_notifier_test_and_clear(&e));
    CHECK_EQ(event_notifier_get_fd(&e), -1);
    CHECK_EQ(event_notifier_init_fd(&e, -1), -EINVAL);
    CHECK_EQ(event_notifier_get_fd(&e), -1);
    event_notifier_cleanup(&e);
}

int main(void)
{
    TEST(test_error_propagate_into_itself_is_noop);
    TEST(test_error_propagate_edge_cases);
    TEST(test_error_set_twice_aborts);
    TEST(test_error_null_arguments_are_noops);
    TEST(test_error_setg_errno_odd_values);
    TEST(test_iov_add_size_overflow_aborts);
    TEST(test_iov_init_external_overflow_aborts);
    TEST(test_iov_init_external_bad_array_aborts);
    TEST(test_iov_concat_overflowing_range_aborts);
    TEST(test_iov_reset_borrowed_aborts);
    TEST(test_iov_destroy_twice_then_reuse);
    TEST(test_iov_odd_values_clamp);
    TEST(test_rfifolock_destroy_held_aborts);
    TEST(test_mutex_destroy_locked_aborts);
    TEST(test_mutex_unlock_unheld_aborts);
    TEST(test_mutex_relock_aborts);
    TEST(test_event_notifier_uninitialised_ops);
    return test_done();
}
