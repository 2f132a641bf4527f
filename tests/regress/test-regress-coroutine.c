/*
 * test-regress-coroutine.c - regressions in coroutines: a finished
 * coroutine entered again and stack overflows.
 *
 * Documented outcomes checked here (include/aioloop/coroutine.h):
 *  - Entering (qemu_coroutine_enter, aio_co_enter/wake) or scheduling
 *    (aio_co_schedule) a coroutine whose entry function has returned
 *    aborts with a message naming the coroutine and its entry function,
 *    in every build (NDEBUG included), as long as the coroutine has not
 *    been recycled by a later qemu_coroutine_create().
 *  - A coroutine that overflows its stack faults in a 64 KiB guard below
 *    it; a SIGSEGV handler running on a per-thread alternate stack
 *    prints "coroutine stack overflow" naming the coroutine, then the
 *    default action of SIGSEGV ends the process. Faults outside the
 *    guards go to the SIGSEGV handler installed before the library's
 *    (or the default action).
 *
 * Every case that should die does so in a child (death tests).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>

#include "regress-test.h"

static int entry_runs;

static void coroutine_fn returns_at_once(void *opaque)
{
    (void)opaque;
    entry_runs++;
}

/* The address as the library prints it ("%p"). */
static const char *ptr_name(const void *p)
{
    static char buf[4][32];
    static int next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "%p", p);
    return b;
}

/* ------------------------------------------------------------------ */
/* Entering a finished coroutine                                       */

static Coroutine *finished_co;

static void enter_finished_child(void *opaque)
{
    (void)opaque;
    qemu_coroutine_enter(finished_co);
    fprintf(stderr, "survived: entry ran %d times\n", entry_runs);
}

/*
 * Before the fix the second enter silently ran the entry function again
 * (and the coroutine, back in the pool twice, was handed out by the next
 * two creates: an IOThread later double-freed its pool). Now it aborts
 * naming the coroutine, with NDEBUG too.
 */
static void test_enter_finished_coroutine_aborts_naming_it(void)
{
    finished_co = qemu_coroutine_create(returns_at_once, NULL);
    qemu_coroutine_enter(finished_co);
    CHECK_EQ(entry_runs, 1);
    CHECK(death_expect_abort(enter_finished_child, NULL, "coroutine",
                             ptr_name(finished_co), "finished", NULL));
    CHECK_EQ(entry_runs, 1);
}

static void schedule_finished_child(void *opaque)
{
    AioContext *ctx = new_ctx();

    (void)opaque;
    aio_co_schedule(ctx, finished_co);
    aio_poll(ctx, false);
    fprintf(stderr, "survived: entry ran %d times\n", entry_runs);
}

/* aio_co_schedule() of a finished coroutine: the same abort, at once. */
static void test_schedule_finished_coroutine_aborts_naming_it(void)
{
    finished_co = qemu_coroutine_create(returns_at_once, NULL);
    qemu_coroutine_enter(finished_co);
    CHECK(death_expect_abort(schedule_finished_child, NULL, "aio_co_schedule",
                             ptr_name(finished_co), "finished", NULL));
}

/* A recycled coroutine is a new one: creating after the finish and
 * entering works as before (the check does not get in the way). */
static void test_recycled_coroutine_enters_normally(void)
{
    Coroutine *a, *b;

    entry_runs = 0;
    a = qemu_coroutine_create(returns_at_once, NULL);
    qemu_coroutine_enter(a);
    b = qemu_coroutine_create(returns_at_once, NULL);
    qemu_coroutine_enter(b);
    CHECK_EQ(entry_runs, 2);
}

/* ------------------------------------------------------------------ */
/* Stack overflows                                                     */

static Coroutine *overflow_co;

/* Deep recursion that no compiler can turn into a loop. */
static __attribute__((noinline)) int recurse(volatile int depth)
{
    volatile char frame[512];

    frame[0] = (char)depth;
    if (depth > 1000000000) {
        return 0;
    }
    return recurse(depth + 1) + frame[0];
}

static void coroutine_fn overflow_entry(void *opaque)
{
    (void)opaque;
    overflow_co = qemu_coroutine_self();
    fprintf(stderr, "coroutine %p overflows\n", (void *)overflow_co);
    recurse(0);
}

/* One frame of 48 KiB, touched at its lowest address first: it jumps
 * over a one-page guard (the old layout) but not over 64 KiB. */
static __attribute__((noinline)) int big_frame(volatile int depth)
{
    volatile char frame[48 * 1024];

    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth > 1000000000) {
        return 0;
    }
    return big_frame(depth + 1) + frame[0];
}

static void coroutine_fn big_frame_entry(void *opaque)
{
    (void)opaque;
    overflow_co = qemu_coroutine_self();
    fprintf(stderr, "coroutine %p overflows\n", (void *)overflow_co);
    big_frame(0);
}

static void overflow_child(void *opaque)
{
    Coroutine *co = qemu_coroutine_create(opaque, NULL);

    qemu_coroutine_enter(co);
}

static void *overflow_thread(void *opaque)
{
    overflow_child(opaque);
    return NULL;
}

static void overflow_in_thread_child(void *opaque)
{
    QemuThread t;

    start_thread(&t, "overflow", overflow_thread, opaque);
    qemu_thread_join(&t);
}

/* Dies of SIGSEGV with "coroutine stack overflow" in stderr, naming the
 * coroutine (its address, as the coroutine printed it itself). */
static bool check_overflow_death(void (*fn)(void *), void *opaque)
{
    static DeathResult res;
    char who[64] = "(not printed)";
    const char *mine, *report;

    if (!death_run(fn, opaque, &res)) {
        return false;
    }
    mine = strstr(res.err, "coroutine 0x");
    if (mine) {
        sscanf(mine, "coroutine %63s", who);
    }
    report = strstr(res.err, "coroutine stack overflow");
    if (!died_of(&res, SIGSEGV) || !mine || !report || !strstr(report, who)) {
        printf("#   status 0x%x, expected SIGSEGV and a report naming %s; "
               "stderr: %s\n", res.status, who, res.err);
        return false;
    }
    return true;
}

/*
 * Before the fix the guard was one 4 KiB page and the process died of a
 * bare SIGSEGV; now the handler on the alternate stack says what
 * happened, and the default action still ends the process (SIGSEGV).
 */
static void test_coroutine_stack_overflow_reports_it(void)
{
    CHECK(check_overflow_death(overflow_child, overflow_entry));
}

/* The same in a thread the library did not start: its alternate stack
 * is set up when the thread first runs a coroutine. */
static void test_coroutine_stack_overflow_in_thread_reports_it(void)
{
    CHECK(check_overflow_death(overflow_in_thread_child, overflow_entry));
}

/* A frame larger than the old one-page guard lands in the 64 KiB guard
 * (and -fstack-clash-protection probes it page by page anyway). */
static void test_coroutine_overflow_with_large_frame_hits_guard(void)
{
    CHECK(check_overflow_death(overflow_child, big_frame_entry));
}

/* A SIGSEGV handler of the application, installed before the library's. */
static void user_segv(int sig, siginfo_t *info, void *uctx)
{
    static const char msg[] = "user handler ran\n";

    (void)sig;
    (void)info;
    (void)uctx;
    if (write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do */
    }
    _exit(42);
}

static void coroutine_fn null_deref_entry(void *opaque)
{
    (void)opaque;
    *(volatile int *)(uintptr_t)opaque = 1;
}

static void chain_child(void *opaque)
{
    struct sigaction sa = { .sa_sigaction = user_segv,
                            .sa_flags = SA_SIGINFO };
    Coroutine *co;

    sigemptyset(&sa.sa_mask);
    if (opaque) {
        sigaction(SIGSEGV, &sa, NULL);
    }
    /* The library installs its handler with the first coroutine. */
    co = qemu_coroutine_create(null_deref_entry, (void *)16);
    qemu_coroutine_enter(co);
}

/* Faults outside the guards are the application's: its own handler,
 * installed before the library's, still runs. */
static void test_segv_outside_guard_chains_to_user_handler(void)
{
    static DeathResult res;

    REQUIRE(death_run(chain_child, (void *)1, &res));
    if (!exited_with(&res, 42) || !strstr(res.err, "user handler ran") ||
        strstr(res.err, "coroutine stack overflow")) {
        printf("#   status 0x%x, stderr: %s\n", res.status, res.err);
        CHECK(false);
    }
}

/* ... and without one, the default action: death by SIGSEGV, no report.
 * Under a sanitizer the handler before the library's is the sanitizer's,
 * which must still get the fault (its report, then its exit). */
static void test_segv_outside_guard_keeps_default_action(void)
{
    static DeathResult res;
    bool ok;

    REQUIRE(death_run(chain_child, NULL, &res));
    if (UNDER_ASAN || UNDER_TSAN) {
        ok = !exited_with(&res, 0) &&
             strstr(res.err, "Sanitizer:DEADLYSIGNAL") != NULL;
    } else {
        ok = died_of(&res, SIGSEGV);
    }
    if (!ok || strstr(res.err, "coroutine stack overflow")) {
        printf("#   status 0x%x, stderr: %s\n", res.status, res.err);
        CHECK(false);
    }
}

static void overflow_with_user_handler_child(void *opaque)
{
    struct sigaction sa = { .sa_sigaction = user_segv,
                            .sa_flags = SA_SIGINFO };

    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    overflow_child(opaque);
}

/* An overflow is reported even when the application has a handler of its
 * own (installed first), and then ends the process by SIGSEGV. */
static void test_coroutine_stack_overflow_with_user_handler_reports_it(void)
{
    CHECK(check_overflow_death(overflow_with_user_handler_child,
                               overflow_entry));
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    RUN(test_enter_finished_coroutine_aborts_naming_it);
    RUN(test_schedule_finished_coroutine_aborts_naming_it);
    RUN(test_recycled_coroutine_enters_normally);
    RUN(test_coroutine_stack_overflow_reports_it);
    RUN(test_coroutine_stack_overflow_in_thread_reports_it);
    RUN(test_coroutine_overflow_with_large_frame_hits_guard);
    RUN(test_segv_outside_guard_chains_to_user_handler);
    RUN(test_segv_outside_guard_keeps_default_action);
    RUN(test_coroutine_stack_overflow_with_user_handler_reports_it);
    return test_done();
}
