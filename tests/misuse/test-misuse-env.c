/*
 * test-misuse-env.c - the environment variables the library reads, set
 * to what they should not be.
 *
 * The library reads one variable (grep getenv src/): AIOLOOP_FDMON,
 * when a context is created (aio_context_new(), and through it every
 * IOThread and AsyncContext level). Outcomes checked (aio.h,
 * aio_context_new()):
 *   unset, or empty                     epoll, no message
 *   "poll" / "epoll"                    that monitor, per context: a
 *                                         context keeps the monitor of
 *                                         its creation
 *   anything else ("garbage", "POLL",   epoll (not an error), and one
 *     "poll " with a space)               warning line on stderr naming
 *                                         the value and the valid ones
 *   the warning for many contexts       printed once per process
 *   a very long value, or one with      the warning shows at most 32
 *     control characters                  bytes ("..." after), control
 *                                         characters as '?': one line
 *
 * The cases set the variable themselves (each runs in its own process),
 * so this program is registered once, without AIOLOOP_FDMON.
 *
 * SPDX-License-Identifier: MIT
 */
#include "misuse-test.h"

typedef struct {
    const char *value;          /* NULL: unset */
    int contexts;               /* how many to create */
} EnvCase;

/* In the child: set the variable, create the contexts, make each turn
 * a BH, and report their monitors on stderr ("fdmon: epoll"). */
static void child_env(void *opaque)
{
    EnvCase *ec = opaque;

    if (ec->value) {
        setenv("AIOLOOP_FDMON", ec->value, 1);
    } else {
        unsetenv("AIOLOOP_FDMON");
    }
    for (int i = 0; i < ec->contexts; i++) {
        AioContext *ctx = aio_context_new(&error_abort);
        int runs = 0;

        aio_bh_schedule_oneshot(ctx, misuse_count_cb, &runs);
        aio_poll(ctx, true);
        fprintf(stderr, "fdmon: %s%s\n", aio_context_fdmon_name(ctx),
                runs == 1 ? "" : " (the BH did not run)");
        aio_context_unref(ctx);
    }
}

/* Runs @value with @contexts contexts; checks every context chose
 * @fdmon, and returns the number of warning lines (-1 on failure). */
static int run_env(const char *value, int contexts, const char *fdmon,
                   DeathResult *res)
{
    EnvCase ec = { value, contexts };
    char want[64];
    int seen = 0, warnings = 0;
    const char *p;

    if (!expect_survival(child_env, &ec, res)) {
        return -1;
    }
    snprintf(want, sizeof(want), "fdmon: %s\n", fdmon);
    for (p = res->err; (p = strstr(p, "fdmon: ")); p++) {
        CHECK(strncmp(p, want, strlen(want)) == 0);
        seen++;
    }
    CHECK_EQ(seen, contexts);
    for (p = res->err; (p = strstr(p, "aioloop: AIOLOOP_FDMON=")); p++) {
        warnings++;
    }
    return warnings;
}

static void test_fdmon_unset_or_empty_is_silent_epoll(void)
{
    DeathResult res;

    CHECK_EQ(run_env(NULL, 1, "epoll", &res), 0);
    CHECK_EQ(run_env("", 1, "epoll", &res), 0);
}

static void test_fdmon_valid_values(void)
{
    DeathResult res;

    CHECK_EQ(run_env("poll", 2, "poll", &res), 0);
    CHECK_EQ(run_env("epoll", 2, "epoll", &res), 0);
}

static void test_fdmon_garbage_warns_uses_epoll(void)
{
    DeathResult res;

    CHECK_EQ(run_env("garbage", 1, "epoll", &res), 1);
    CHECK(strstr(res.err, "aioloop: AIOLOOP_FDMON=garbage unknown, using "
                 "epoll (valid: epoll, poll)\n") != NULL);
}

static void test_fdmon_is_case_and_space_sensitive(void)
{
    DeathResult res;

    CHECK_EQ(run_env("POLL", 1, "epoll", &res), 1);
    CHECK(strstr(res.err, "AIOLOOP_FDMON=POLL unknown") != NULL);
    CHECK_EQ(run_env("poll ", 1, "epoll", &res), 1);
    CHECK(strstr(res.err, "AIOLOOP_FDMON=poll  unknown") != NULL);
}

static void test_fdmon_warning_once_per_process(void)
{
    DeathResult res;

    CHECK_EQ(run_env("bogus", 5, "epoll", &res), 1);
}

static void test_fdmon_long_value_cut(void)
{
    char value[8192];
    const char *line, *eol;
    DeathResult res;

    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    CHECK_EQ(run_env(value, 1, "epoll", &res), 1);
    line = strstr(res.err, "aioloop: AIOLOOP_FDMON=");
    REQUIRE(line != NULL);
    eol = strchr(line, '\n');
    REQUIRE(eol != NULL);
    CHECK(eol - line < 120);
    CHECK(strstr(line, "xxxxxxxx... unknown") != NULL);
}

static void test_fdmon_control_chars_shown_as_question_marks(void)
{
    DeathResult res;

    CHECK_EQ(run_env("po\nll\033[31m\x7f", 1, "epoll", &res), 1);
    CHECK(strstr(res.err, "AIOLOOP_FDMON=po?ll?[31m? unknown") != NULL);
}

static void test_fdmon_read_per_context(void)
{
    AioContext *a, *b;
    int fds[2], runs = 0;

    setenv("AIOLOOP_FDMON", "poll", 1);
    a = new_ctx();
    setenv("AIOLOOP_FDMON", "epoll", 1);
    b = new_ctx();
    unsetenv("AIOLOOP_FDMON");
    CHECK(strcmp(aio_context_fdmon_name(a), "poll") == 0);
    CHECK(strcmp(aio_context_fdmon_name(b), "epoll") == 0);
    /* Both work side by side. */
    make_pipe(fds);
    write_byte(fds[1]);
    aio_set_fd_handler(a, fds[0], false, misuse_count_cb, NULL, &runs);
    CHECK(aio_poll(a, true));
    aio_set_fd_handler(a, fds[0], false, NULL, NULL, NULL);
    aio_set_fd_handler(b, fds[0], false, misuse_count_cb, NULL, &runs);
    CHECK(aio_poll(b, true));
    aio_set_fd_handler(b, fds[0], false, NULL, NULL, NULL);
    CHECK_EQ(runs, 2);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(a);
    aio_context_unref(b);
}

int main(void)
{
    unsetenv("AIOLOOP_FDMON");
    TEST(test_fdmon_unset_or_empty_is_silent_epoll);
    TEST(test_fdmon_valid_values);
    TEST(test_fdmon_garbage_warns_uses_epoll);
    TEST(test_fdmon_is_case_and_space_sensitive);
    TEST(test_fdmon_warning_once_per_process);
    TEST(test_fdmon_long_value_cut);
    TEST(test_fdmon_control_chars_shown_as_question_marks);
    TEST(test_fdmon_read_per_context);
    return test_done();
}
