/*
 * tests/test.h - the tiny harness every aioloop test program uses.
 *
 * A test program is a list of named case functions run from main():
 *
 *     static void test_bh_runs_once(void) { ... CHECK(x == 1); ... }
 *     int main(void) { TEST(test_bh_runs_once); return test_done(); }
 *
 * Output is TAP-like, one line per case ("ok 3 - test_bh_runs_once",
 * "not ok 4 - ...", "ok 5 - ... # SKIP reason"), then "1..N" and a closing
 * "N passed, N failed, N skipped" line. scripts/test-summary adds the
 * cases of all programs together.
 *
 *   CHECK(cond)          records a failure and goes on
 *   CHECK_EQ(a, b)       same, printing both values (as long long)
 *   REQUIRE(cond)        records a failure and leaves the case
 *   SKIP_CASE(reason)    marks the current case skipped and leaves it
 *   test_skip_all(why)   the whole program cannot run here: exit 77
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TEST_H
#define AIOLOOP_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* UNDER_TSAN: 1 under ThreadSanitizer (GCC or Clang), else 0; threaded
 * programs use it to shrink iteration counts and stretch bounds. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* UNDER_VALGRIND: true when the program runs under valgrind (make
 * check-valgrind), where every thread runs many times slower and only
 * one at a time; a check that cannot hold there skips with a reason. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND 0
#endif

static int test__count, test__passed, test__failed, test__skipped;
static int test__case_failed;
static const char *test__skip_reason;

#define CHECK(cond) do { \
    if (!(cond)) { \
        printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        test__case_failed = 1; \
    } \
} while (0)

#define CHECK_EQ(a, b) do { \
    long long test__a = (long long)(a), test__b = (long long)(b); \
    if (test__a != test__b) { \
        printf("#   %s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", \
               __FILE__, __LINE__, #a, #b, test__a, test__b); \
        test__case_failed = 1; \
    } \
} while (0)

#define REQUIRE(cond) do { \
    if (!(cond)) { \
        printf("#   %s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond); \
        test__case_failed = 1; \
        return; \
    } \
} while (0)

#define SKIP_CASE(reason) do { test__skip_reason = (reason); return; } while (0)

#define TEST(fn) test_run(#fn, fn)

static inline void test_run(const char *name, void (*fn)(void))
{
    test__case_failed = 0;
    test__skip_reason = NULL;
    fflush(stdout);
    fn();
    test__count++;
    if (test__case_failed) {
        test__failed++;
        printf("not ok %d - %s\n", test__count, name);
    } else if (test__skip_reason) {
        test__skipped++;
        printf("ok %d - %s # SKIP %s\n", test__count, name, test__skip_reason);
    } else {
        test__passed++;
        printf("ok %d - %s\n", test__count, name);
    }
    fflush(stdout);
}

/* Prints the plan and the closing line; returns main()'s exit status. */
static inline int test_done(void)
{
    printf("1..%d\n", test__count);
    printf("%d passed, %d failed, %d skipped\n",
           test__passed, test__failed, test__skipped);
    return test__failed ? 1 : 0;
}

/* The whole program cannot run on this machine: say why and exit 77. */
static inline void test_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    exit(77);
}

/* Monotonic time in nanoseconds, for semantic bounds (never for speed). */
static inline int64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif /* AIOLOOP_TEST_H */
