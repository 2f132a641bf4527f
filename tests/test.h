/*
 * tests/test.h - the tiny harness every aioloop test program uses.
 *
 * A test program is a list of named case functions run from main():
 *
 *     static void test_bh_runs_once(void) { ... CHECK(x == 1); ... }
 *     int main(void) { TEST(test_bh_runs_once); return test_done(); }
 *
 * Output is TAP (registered with protocol: 'tap'), one line per case
 * ("ok 3 - test_bh_runs_once", "not ok 4 - ...", "ok 5 - ... # SKIP
 * reason"), then "1..N" and a closing "N passed, N failed, N skipped"
 * line. scripts/test-summary adds the cases of all programs together.
 *
 *   CHECK(cond)          records a failure and goes on
 *   CHECK_EQ(a, b)       same, printing both values (as long long)
 *   REQUIRE(cond)        records a failure and leaves the case
 *   SKIP_CASE(reason)    marks the current case skipped and leaves it
 *   test_skip_all(why)   the whole program cannot run here: "1..0 # SKIP"
 *   test_progress()      the case is moving: feeds the watchdog
 *   test_stress_end(), test_stress_more(end)
 *                        a stress loop's time budget ("until N or T")
 *   test_late_round(why) a round whose timing premise did not hold: retry
 *                        it, or (after TEST_LATE_TRIES) skip the case
 *   test_wait_blocked(tid)  wait until a thread sleeps in the kernel
 *
 * Isolation. Each case runs in a child process forked from main(), so a
 * crash, an abort or a hang fails that case alone, by name, and the
 * other cases still run; state a case leaves behind (a leaked context, a
 * signal handler, a stuck thread) never reaches the next one. Under
 * AddressSanitizer each child's exit runs its own leak check.
 *
 * Watchdog. The parent waits for the child and kills it when it stops
 * making progress: no test_progress() call and no exit for
 * TEST_STALL_SECS seconds (default 60; x10 under valgrind, x3 under
 * ThreadSanitizer; AIOLOOP_TEST_STALL_SECS overrides). The bound is on
 * the absence of progress, never on a total time: a stress loop that
 * calls test_progress() whenever its counters move may run as long as the
 * machine needs. A case that finishes in milliseconds needs no calls.
 *
 * Speed. No check depends on how fast the machine is (it may be loaded
 * by other work). A stress loop runs until its iteration count or its
 * time budget, whichever comes first, and checks exact counts:
 *
 *     int64_t end = test_stress_end();
 *     for (i = 0; i < N && test_stress_more(end); i++) { ... }
 *
 * A check that needs a helper thread to act in time (before a deadline,
 * while the loop sleeps) first verifies that it did; when it did not, the
 * round proves nothing, and test_late_round() says so and lets the case
 * try again, up to TEST_LATE_TRIES times, then skips the case naming the
 * premise. A lost wake-up or a deadlock is a hang: the watchdog above.
 * A check that something does not happen may look for a while (sleep,
 * then look): load can only make it miss a bug, never fail it.
 *
 * Environment:
 *   AIOLOOP_TEST_CASE=a,b   run only the named cases (the others are not
 *                           counted): "AIOLOOP_TEST_CASE=test_x ./test-y"
 *   AIOLOOP_TEST_FORK=0     run the cases in the process itself, one after
 *                           the other (for gdb); no watchdog then
 *   AIOLOOP_TEST_STALL_SECS=N  the watchdog's window
 *   AIOLOOP_TEST_STRESS_SECS=S a stress loop's time budget (default 1 s;
 *                           longer finds rarer races)
 *   AIOLOOP_TEST_TIMES=1    print each case's wall-clock time (a comment)
 *
 * Rules for main(): fork happens with one thread, so main() must not
 * start threads before its TEST() calls; anything it sets up before them
 * (signal handlers, environment) is inherited by every case.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TEST_H
#define AIOLOOP_TEST_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* UNDER_TSAN: 1 under ThreadSanitizer (GCC or Clang), else 0; threaded
 * programs use it to shrink iteration counts. */
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

/* UNDER_ASAN: 1 under AddressSanitizer (GCC or Clang), else 0; checks of
 * freed memory or stack sizes that ASan changes look at it. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
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

/* Seconds without progress after which a case is declared hung. */
#ifndef TEST_STALL_SECS
#define TEST_STALL_SECS 60
#endif

static int test__count, test__passed, test__failed, test__skipped;
static int test__case_failed;
static const char *test__skip_reason;
/* Printed after "hung" when the watchdog fires (see aio-test.h). */
static const char *test__stall_why = "";

/* Shared between the parent and the case's child (MAP_SHARED). */
typedef struct TestShared {
    unsigned long progress;     /* atomic: bumped by test_progress() */
    char skip_reason[256];      /* the child's SKIP_CASE reason */
} TestShared;

static TestShared *test__shared;
static bool test__in_child;

/* Run around every case body, in the case's own process (for example
 * tests/faults/faults-test.h prints what the case injected). */
static void (*test__case_before)(void);
static void (*test__case_after)(void);

/* Sets the functions run before and after every case body (NULL: none). */
static inline void test_set_case_hooks(void (*before)(void),
                                       void (*after)(void))
{
    test__case_before = before;
    test__case_after = after;
}

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

/* The case is making progress: resets the watchdog's window. Any thread,
 * async-signal-safe, a few nanoseconds. */
static inline void test_progress(void)
{
    if (test__shared) {
        __atomic_fetch_add(&test__shared->progress, 1, __ATOMIC_RELAXED);
    }
}

/* Monotonic time in nanoseconds, for semantic bounds (never for speed). */
static inline int64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Default time budget of a stress loop, in seconds. */
#ifndef TEST_STRESS_SECS
#define TEST_STRESS_SECS 1.0
#endif

/* The time budget of a stress loop: AIOLOOP_TEST_STRESS_SECS or
 * TEST_STRESS_SECS seconds. */
static inline double test_stress_secs(void)
{
    const char *s = getenv("AIOLOOP_TEST_STRESS_SECS");
    double secs = s && *s ? atof(s) : TEST_STRESS_SECS;

    return secs > 0 ? secs : TEST_STRESS_SECS;
}

/* When a stress loop that starts now must stop (a test_now_ns() time). */
static inline int64_t test_stress_end(void)
{
    return test_now_ns() + (int64_t)(test_stress_secs() * 1e9);
}

/* Whether a stress loop may go on: true before @end. A round is
 * progress, so this also feeds the watchdog. Any thread. */
static inline bool test_stress_more(int64_t end)
{
    test_progress();
    return test_now_ns() < end;
}

/* The calling thread's kernel id (gettid). */
static inline int test_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

/*
 * Waits until thread @tid of this process sleeps in the kernel (state S
 * or D in /proc/self/task/TID/stat): for a test that wants its next step
 * to land on a thread already blocked (in a futex, a poll), instead of
 * sleeping and hoping. A premise for coverage, never for correctness:
 * gives up after about 2 s of not seeing it (or if /proc cannot say) and
 * returns false; true once seen.
 */
static inline bool test_wait_blocked(int tid)
{
    char path[64], buf[256];
    int i;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    for (i = 0; i < 2000; i++) {
        FILE *f = fopen(path, "r");
        const char *p;
        size_t n;

        if (!f) {
            return false;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');          /* the name may hold spaces */
        if (p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D')) {
            return true;
        }
        nanosleep(&(struct timespec) { 0, 1000 * 1000 }, NULL);
    }
    return false;
}

/* Rounds whose timing premise failed, in this case, before it skips. */
#ifndef TEST_LATE_TRIES
#define TEST_LATE_TRIES 10
#endif

static int test__late_rounds;
static char test__late_reason[200];

/*
 * A round's timing premise did not hold (the helper thread acted after
 * the deadline it had to beat, the timer fired before we looked): that
 * round proves nothing either way. Prints @why. Returns true if the case
 * may try the round again; after TEST_LATE_TRIES such rounds in one case
 * it marks the case skipped, naming @why, and returns false: the case
 * then cleans up and returns (its CHECK failures, if any, still count).
 */
static inline bool test_late_round(const char *why)
{
    printf("#   round not counted: %s\n", why);
    if (++test__late_rounds <= TEST_LATE_TRIES) {
        return true;
    }
    snprintf(test__late_reason, sizeof(test__late_reason),
             "%d rounds in a row too late to prove anything: %s",
             test__late_rounds, why);
    test__skip_reason = test__late_reason;
    return false;
}

/* Is @name selected by AIOLOOP_TEST_CASE (a comma-separated list)? */
static inline bool test__selected(const char *name)
{
    const char *list = getenv("AIOLOOP_TEST_CASE");
    size_t len = strlen(name);

    if (!list || !*list) {
        return true;
    }
    while (*list) {
        const char *end = strchr(list, ',');
        size_t n = end ? (size_t)(end - list) : strlen(list);

        if (n == len && strncmp(list, name, n) == 0) {
            return true;
        }
        if (!end) {
            break;
        }
        list = end + 1;
    }
    return false;
}

static inline int test__stall_secs(void)
{
    const char *s = getenv("AIOLOOP_TEST_STALL_SECS");
    int secs = s && *s ? atoi(s) : TEST_STALL_SECS;

    if (secs <= 0) {
        secs = TEST_STALL_SECS;
    }
    if (UNDER_VALGRIND) {
        secs *= 10;
    } else if (UNDER_TSAN) {
        secs *= 3;
    }
    return secs;
}

/* Copies @src into @dst (@size bytes), cut short if need be. */
static inline void test__copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static inline bool test__fork_enabled(void)
{
    const char *s = getenv("AIOLOOP_TEST_FORK");

    return !(s && strcmp(s, "0") == 0);
}

/* Runs the case body in this process; records failure and skip. */
static inline void test__body(void (*fn)(void))
{
    test__case_failed = 0;
    test__skip_reason = NULL;
    test__late_rounds = 0;
    if (test__case_before) {
        test__case_before();
    }
    fn();
    if (test__case_after) {
        test__case_after();
    }
}

/*
 * Waits for the child @pid, killing it if it makes no progress for
 * @stall seconds. Returns its wait status, and *hung whether the
 * watchdog killed it.
 */
static inline int test__wait_child(pid_t pid, int stall, bool *hung)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    unsigned long last = __atomic_load_n(&test__shared->progress,
                                         __ATOMIC_RELAXED);
    int64_t last_move = test_now_ns();
    int status = 0;

    *hung = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        unsigned long now_progress;

        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            status = 0;
            break;
        }
        if (pidfd >= 0) {
            struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
            (void)poll(&pfd, 1, 1000);
        } else {
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
        now_progress = __atomic_load_n(&test__shared->progress,
                                       __ATOMIC_RELAXED);
        if (now_progress != last) {
            last = now_progress;
            last_move = test_now_ns();
        } else if (!*hung &&
                   test_now_ns() - last_move > (int64_t)stall * 1000000000LL) {
            *hung = true;
            kill(pid, SIGKILL);
        }
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    return status;
}

static inline void test__record(const char *name, int failed,
                                const char *skip, const char *why)
{
    test__count++;
    if (failed) {
        test__failed++;
        printf("not ok %d - %s%s%s\n", test__count, name, why ? " # " : "",
               why ? why : "");
    } else if (skip) {
        test__skipped++;
        printf("ok %d - %s # SKIP %s\n", test__count, name, skip);
    } else {
        test__passed++;
        printf("ok %d - %s\n", test__count, name);
    }
    fflush(stdout);
}

/* With AIOLOOP_TEST_TIMES=1: prints how long case @name took. */
static inline void test__print_time(const char *name, int64_t start)
{
    const char *s = getenv("AIOLOOP_TEST_TIMES");

    if (s && strcmp(s, "1") == 0) {
        printf("# time: %s %.3f s\n", name,
               (double)(test_now_ns() - start) / 1e9);
    }
}

static inline void test_run(const char *name, void (*fn)(void))
{
    char why[160];
    int stall, status;
    int64_t start = test_now_ns();
    bool hung;
    pid_t pid;

    if (test__in_child || !test__selected(name)) {
        return;
    }
    fflush(NULL);
    if (!test__fork_enabled()) {
        test__body(fn);
        test__print_time(name, start);
        test__record(name, test__case_failed, test__skip_reason, NULL);
        return;
    }
    if (!test__shared) {
        test__shared = mmap(NULL, sizeof(TestShared), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (test__shared == MAP_FAILED) {
            perror("test.h: mmap");
            exit(1);
        }
    }
    memset(test__shared, 0, sizeof(*test__shared));
    stall = test__stall_secs();
    pid = fork();
    if (pid < 0) {
        perror("test.h: fork");
        exit(1);
    }
    if (pid == 0) {
        test__in_child = true;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        test__body(fn);
        if (test__skip_reason) {
            test__copy(test__shared->skip_reason,
                       sizeof(test__shared->skip_reason), test__skip_reason);
        }
        fflush(NULL);
        /* exit(), not _exit(): atexit work and the sanitizers' leak check
         * belong to the case. */
        exit(test__case_failed ? 1 : 0);
    }
    status = test__wait_child(pid, stall, &hung);
    test__print_time(name, start);
    if (hung) {
        snprintf(why, sizeof(why), "hung: no progress for %d s%s, killed",
                 stall, test__stall_why);
        printf("# watchdog: %s hung%s\n", name, test__stall_why);
        test__record(name, 1, NULL, why);
    } else if (WIFSIGNALED(status)) {
        snprintf(why, sizeof(why), "crashed: killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        test__record(name, 1, NULL, why);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        /* test_skip_all() inside the case: this case cannot run. */
        test__record(name, 0, test__shared->skip_reason[0] ?
                     test__shared->skip_reason : "cannot run here", NULL);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) > 1) {
        snprintf(why, sizeof(why), "exited with status %d",
                 WEXITSTATUS(status));
        test__record(name, 1, NULL, why);
    } else {
        test__record(name, WIFEXITED(status) && WEXITSTATUS(status) == 1,
                     test__shared->skip_reason[0] ?
                     test__shared->skip_reason : NULL, NULL);
    }
}

/* Prints the plan and the closing line; returns main()'s exit status. */
static inline int test_done(void)
{
    printf("1..%d\n", test__count);
    printf("# %d passed, %d failed, %d skipped\n",
           test__passed, test__failed, test__skipped);
    return test__failed ? 1 : 0;
}

/* The whole program cannot run on this machine: print TAP's skip plan
 * with the reason and exit 0 (TAP reads the skip from the plan; Meson's
 * TAP protocol calls any other status an error). Inside a case (a
 * child), only that case is skipped. */
static inline void test_skip_all(const char *reason)
{
    if (test__in_child) {
        test__copy(test__shared->skip_reason,
                   sizeof(test__shared->skip_reason), reason);
        fflush(NULL);
        exit(77);
    }
    printf("1..0 # SKIP %s\n", reason);
    exit(0);
}

/* Whether the current code runs inside a case's own child process. */
static inline bool test_isolated(void)
{
    return test__in_child;
}

#endif /* AIOLOOP_TEST_H */
