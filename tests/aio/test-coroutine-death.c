/*
 * test-coroutine-death.c - coroutine misuse and faults, each in a forked
 * child whose stderr is captured: a stack overflow hits the guard page,
 * entering a running coroutine aborts, scheduling a coroutine twice
 * aborts.
 *
 * Unless a case says otherwise coroutines are entered from the main
 * thread, whose current context is the main loop's (coroutine_test_init()
 * runs first in main()), so they belong to qemu_get_aio_context().
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <aioloop/coroutine.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "coroutine-test.h"

/* ------------------------------------------------------------------ */
/* Death tests (forked)                                                */

typedef struct {
    int status;
    char err[8192];         /* the child's stderr, truncated */
} Child;

/* Runs fn() in a child with stderr captured; false if fork failed. */
static bool run_child(void (*fn)(void), Child *c)
{
    int p[2];
    pid_t pid;
    size_t len = 0;
    ssize_t n;
    char sink[4096];

    fflush(stdout);
    fflush(stderr);
    if (pipe(p) < 0) {
        return false;
    }
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };

        setrlimit(RLIMIT_CORE, &no_core);
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        /* A child that neither dies nor returns hangs its case: the
         * harness's watchdog kills the case, and with it this child. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fn();
        _exit(0);                           /* it survived */
    }
    close(p[1]);
    for (;;) {
        if (len < sizeof(c->err) - 1) {
            n = read(p[0], c->err + len, sizeof(c->err) - 1 - len);
        } else {
            n = read(p[0], sink, sizeof(sink));
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (len < sizeof(c->err) - 1) {
            len += (size_t)n;
        }
    }
    c->err[len] = '\0';
    close(p[0]);
    while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR) {
        /* retry */
    }
    return true;
}

/* Prints the first line of the child's stderr that contains @needle, or
 * the first line. */
static void print_child_line(const Child *c, const char *needle)
{
    const char *s = needle ? strstr(c->err, needle) : NULL;
    const char *start, *end;

    if (!s) {
        s = c->err;
    }
    start = s;
    while (start > c->err && start[-1] != '\n') {
        start--;
    }
    end = strchr(start, '\n');
    printf("#   child: %.*s\n", end ? (int)(end - start) : (int)strlen(start),
           start);
}

static volatile int overflow_limit = INT_MAX;

static unsigned long __attribute__((noinline)) recurse_forever(int depth)
{
    volatile unsigned char buf[256];    /* < a page: touches every page */
    unsigned long sum = 0;
    size_t i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)depth;
    }
    if (depth < overflow_limit) {
        sum = recurse_forever(depth + 1);
    }
    for (i = 0; i < sizeof(buf); i++) {
        sum += buf[i];
    }
    return sum;
}

static volatile unsigned long overflow_sink;

static void coroutine_fn overflow_co(void *opaque)
{
    overflow_sink = recurse_forever(0);
}

static void child_overflow(void)
{
    qemu_coroutine_enter(qemu_coroutine_create(overflow_co, NULL));
}

static void test_stack_overflow_hits_guard(void)
{
    Child c;

    REQUIRE(run_child(child_overflow, &c));
    if (WIFSIGNALED(c.status)) {
        printf("#   child killed by signal %d\n", WTERMSIG(c.status));
    } else {
        printf("#   child exited with status %d\n", WEXITSTATUS(c.status));
    }
    if (UNDER_ASAN) {
        /* ASan's SEGV handler reports the overflow and exits nonzero. */
        print_child_line(&c, "ERROR: AddressSanitizer");
        CHECK(WIFSIGNALED(c.status) ||
              (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
               strstr(c.err, "AddressSanitizer: stack-overflow") != NULL));
    } else if (UNDER_TSAN) {
        /* Not run under TSan by the suite; by hand, TSan's SEGV handler
         * reports the fault on the guard page and exits nonzero. */
        print_child_line(&c, "ERROR: ThreadSanitizer");
        CHECK(WIFSIGNALED(c.status) ||
              (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
               strstr(c.err, "ThreadSanitizer: stack-overflow") != NULL));
    } else {
        CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGSEGV);
    }
}

static void coroutine_fn enter_self_co(void *opaque)
{
    qemu_coroutine_enter(qemu_coroutine_self());
}

static void child_enter_running(void)
{
    qemu_coroutine_enter(qemu_coroutine_create(enter_self_co, NULL));
}

static void test_enter_running_aborts(void)
{
    Child c;

    REQUIRE(run_child(child_enter_running, &c));
    print_child_line(&c, NULL);
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    CHECK(c.err[0] != '\0');                /* with a message */
}

static void coroutine_fn yield_once_co(void *opaque)
{
    qemu_coroutine_yield();
}

static void child_double_schedule(void)
{
    /* A private context: the child must not touch the parent's (their
     * epoll and eventfd are shared across fork). */
    AioContext *ctx = new_ctx();
    Coroutine *co = qemu_coroutine_create(yield_once_co, NULL);

    qemu_coroutine_enter(co);
    aio_co_schedule(ctx, co);
    aio_co_schedule(ctx, co);
}

static void test_double_schedule_aborts(void)
{
    Child c;

    REQUIRE(run_child(child_double_schedule, &c));
    print_child_line(&c, "aio_co_schedule");
    CHECK(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    /* The message names the first caller: aio_co_schedule. */
    CHECK(strstr(c.err, "aio_co_schedule") != NULL);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    coroutine_test_init();

    RUN(test_stack_overflow_hits_guard);
    RUN(test_enter_running_aborts);
    RUN(test_double_schedule_aborts);
    return test_done();
}
