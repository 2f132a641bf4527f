/*
 * test-error.c - Error objects and the errp conventions: NULL drops,
 * &error_abort aborts, &error_fatal exits 1, the first propagated error
 * wins, and setting an error twice is caught.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/error.h>

#include "test.h"
#include "death-test.h"

static void test_setg_pretty_free(void)
{
    Error *err = NULL;

    error_setg(&err, "disk %s has %d sectors", "vda", 42);
    REQUIRE(err != NULL);
    CHECK(strcmp(error_get_pretty(err), "disk vda has 42 sectors") == 0);
    error_free(err);
    error_free(NULL);                   /* allowed */
}

static void test_setg_errno(void)
{
    Error *err = NULL;
    char want[256];

    error_setg_errno(&err, ENOENT, "cannot open %s", "/nope");
    REQUIRE(err != NULL);
    snprintf(want, sizeof(want), "cannot open /nope: %s", strerror(ENOENT));
    CHECK(strcmp(error_get_pretty(err), want) == 0);
    error_free(err);

    /* Negative errno values work the same way. */
    err = NULL;
    error_setg_errno(&err, -EINVAL, "bad");
    REQUIRE(err != NULL);
    snprintf(want, sizeof(want), "bad: %s", strerror(EINVAL));
    CHECK(strcmp(error_get_pretty(err), want) == 0);
    error_free(err);
}

static void test_errno_preserved(void)
{
    Error *err = NULL;

    errno = EXDEV;
    error_setg(&err, "x");
    CHECK_EQ(errno, EXDEV);
    error_setg(NULL, "dropped");
    CHECK_EQ(errno, EXDEV);
    error_free(err);
}

static void test_null_errp(void)
{
    /* Nothing to check but that it neither crashes nor leaks (ASan). */
    error_setg(NULL, "nobody listens: %d", 1);
    error_setg_errno(NULL, EIO, "nobody listens");
    error_propagate(NULL, NULL);
}

static void test_propagate(void)
{
    Error *dst = NULL, *a = NULL, *b = NULL;

    /* NULL local: nothing happens. */
    error_propagate(&dst, NULL);
    CHECK(dst == NULL);

    /* Into an empty destination: moves. */
    error_setg(&a, "first");
    error_propagate(&dst, a);
    CHECK(dst == a);

    /* Into a full destination: the first wins, the second is freed. */
    error_setg(&b, "second");
    error_propagate(&dst, b);
    CHECK(dst == a);
    CHECK(strcmp(error_get_pretty(dst), "first") == 0);

    /* Into NULL: freed (ASan checks it is not leaked). */
    b = NULL;
    error_setg(&b, "dropped");
    error_propagate(NULL, b);
    error_free(dst);
}

static void test_copy_and_prepend(void)
{
    Error *err = NULL, *copy;

    error_setg(&err, "base");
    copy = error_copy(err);
    REQUIRE(copy != NULL);
    CHECK(copy != err);
    CHECK(error_get_pretty(copy) != error_get_pretty(err));
    CHECK(strcmp(error_get_pretty(copy), "base") == 0);

    error_prepend(&err, "ctx %d: ", 7);
    CHECK(strcmp(error_get_pretty(err), "ctx 7: base") == 0);
    CHECK(strcmp(error_get_pretty(copy), "base") == 0);
    error_prepend(NULL, "ignored");
    error_free(err);
    err = NULL;
    error_prepend(&err, "ignored");     /* no error: nothing happens */
    CHECK(err == NULL);
    error_free(copy);
}

/* ------------------------------------------------------------------ */
/* Death tests                                                         */

static void set_into_abort(void *opaque)
{
    error_setg(&error_abort, "boom %d", 5);
}

static void propagate_into_abort(void *opaque)
{
    Error *local = NULL;

    error_setg(&local, "propagated boom");
    error_propagate(&error_abort, local);
}

static void set_into_fatal(void *opaque)
{
    error_setg_errno(&error_fatal, EACCES, "fatal thing");
}

static void set_twice(void *opaque)
{
    Error *err = NULL;

    error_setg(&err, "one");
    error_setg(&err, "two");
}

static void report_err(void *opaque)
{
    Error *err = NULL;

    error_setg(&err, "reported %s", "message");
    error_report_err(err);
    error_report("plain %d", 3);
    warn_report("careful %d", 4);
}

static void test_error_abort(void)
{
    DeathResult res;

    REQUIRE(death_run(set_into_abort, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "boom 5") != NULL);
    CHECK(strstr(res.err, "test-error.c") != NULL);     /* location */
    CHECK(strstr(res.err, "set_into_abort") != NULL);

    REQUIRE(death_run(propagate_into_abort, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "propagated boom") != NULL);
}

static void test_error_fatal(void)
{
    DeathResult res;
    char want[256];

    REQUIRE(death_run(set_into_fatal, NULL, &res));
    CHECK(exited_with(&res, 1));
    snprintf(want, sizeof(want), "aioloop: fatal thing: %s\n",
             strerror(EACCES));
    CHECK(strcmp(res.err, want) == 0);
}

static void test_set_twice_aborts(void)
{
    DeathResult res;

    REQUIRE(death_run(set_twice, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "two") != NULL);
    CHECK(strstr(res.err, "one") != NULL);
}

static void test_report_format(void)
{
    DeathResult res;

    REQUIRE(death_run(report_err, NULL, &res));
    CHECK(exited_with(&res, 0));
    CHECK(strcmp(res.err, "aioloop: reported message\n"
                          "aioloop: plain 3\n"
                          "aioloop: warning: careful 4\n") == 0);
}

int main(void)
{
    TEST(test_setg_pretty_free);
    TEST(test_setg_errno);
    TEST(test_errno_preserved);
    TEST(test_null_errp);
    TEST(test_propagate);
    TEST(test_copy_and_prepend);
    TEST(test_error_abort);
    TEST(test_error_fatal);
    TEST(test_set_twice_aborts);
    TEST(test_report_format);
    return test_done();
}
