/*
 * tests/misuse/misuse-test.h - helpers of the hostile misuse suite.
 *
 * Every case of tests/misuse/ hands the public API something it must
 * not get (a NULL, a negative fd, a double delete, an unbalanced
 * enable...) and asserts the documented outcome, one of:
 *
 *   an error return    -EINVAL, NULL with errp set...: CHECK it;
 *   a harmless no-op   nothing happens and nothing is lost: CHECK that
 *                      the rest still works (ASan's leak check at the
 *                      case's exit covers "nothing leaks");
 *   a clean abort      a death test: expect_abort() runs the misuse in
 *                      a forked child (tests/util/death-test.h; the
 *                      child dies with the case if the watchdog kills
 *                      it, should the misuse hang) and
 *                      checks that it died of SIGABRT with the library's
 *                      one-line report "aioloop: <function>: ..." (see
 *                      src/util/misuse.h), naming the object.
 *
 * Naming the object. The child creates its own objects (it must not
 * share the case's contexts: an epoll instance survives fork() as one
 * open file in both processes), so the parent cannot know their
 * addresses. The child says what the report must contain with
 * death_expect("BH '%s'", name) or death_expect("%p", obj) just before
 * the misuse; the text travels back through a shared page.
 *
 * Sanitizers. The library's reports come before any memory is touched
 * wrongly, so ASan (abort_on_error=1) and UBSan see nothing and the
 * child dies of the same SIGABRT. ThreadSanitizer runs the threaded
 * programs; their children fork with one thread and start their own
 * threads after the fork, which TSan follows.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_MISUSE_TEST_H
#define AIOLOOP_MISUSE_TEST_H

#include <stdarg.h>
#include <sys/resource.h>

#include "aio/aio-test.h"
#include "util/death-test.h"

/* Release builds (-Db_ndebug=true) define NDEBUG for the tests too. */
#ifdef NDEBUG
#define BUILT_WITH_NDEBUG 1
#else
#define BUILT_WITH_NDEBUG 0
#endif

/* What the child's report must contain besides "aioloop: <func>: ". */
typedef struct DeathExpect {
    char text[256];
} DeathExpect;

static DeathExpect *death__expect;

static inline DeathExpect *death__shared(void)
{
    if (!death__expect) {
        death__expect = mmap(NULL, sizeof(DeathExpect),
                             PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (death__expect == MAP_FAILED) {
            perror("mmap");
            abort();
        }
    }
    return death__expect;
}

/* In the child: the report must name this (printf format). */
static inline AIOLOOP_PRINTF(1, 2) void death_expect(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(death__shared()->text, sizeof(death__shared()->text), fmt, ap);
    va_end(ap);
}

/* death_run() with the child tied to this process: if the case is
 * killed (the watchdog, when the misuse hangs instead of aborting), its
 * child goes too instead of spinning on as an orphan. */
typedef struct DeathCall {
    void (*fn)(void *);
    void *opaque;
} DeathCall;

static inline void death__trampoline(void *opaque)
{
    DeathCall *call = opaque;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    call->fn(call->opaque);
}

static inline bool misuse_death_run(void (*fn)(void *), void *opaque,
                                    DeathResult *res)
{
    DeathCall call = { fn, opaque };

    return death_run(death__trampoline, &call, res);
}

/* Prints the child's stderr as TAP comments. */
static inline void death_print(const DeathResult *res)
{
    const char *p = res->err;

    while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);

        printf("#   child: %.*s\n", n, p);
        p += n + (nl ? 1 : 0);
    }
}

/*
 * Runs fn(opaque) in a child and checks that it aborted (SIGABRT) with
 * "aioloop: <func>: " followed, on the same line, by a message that
 * contains @what and what the child passed to death_expect(). Returns
 * whether all of that held (failures are recorded with CHECK).
 */
static inline bool expect_abort(void (*fn)(void *), void *opaque,
                                const char *func, const char *what)
{
    DeathResult res;
    char prefix[128];
    const char *line, *eol;
    bool ok = true;

    death__shared()->text[0] = '\0';
    if (!misuse_death_run(fn, opaque, &res)) {
        CHECK(!"fork failed");
        return false;
    }
    death_print(&res);
    if (!died_of(&res, SIGABRT)) {
        if (WIFSIGNALED(res.status)) {
            printf("#   died of signal %d, not SIGABRT\n",
                   WTERMSIG(res.status));
        } else {
            printf("#   exited with status %d instead of aborting\n",
                   WEXITSTATUS(res.status));
        }
        CHECK(died_of(&res, SIGABRT));
        ok = false;
    }
    snprintf(prefix, sizeof(prefix), "aioloop: %s: ", func);
    line = strstr(res.err, prefix);
    if (!line) {
        printf("#   no line starting \"%s\"\n", prefix);
        CHECK(line != NULL);
        return false;
    }
    eol = strchr(line, '\n');
    if (!eol) {
        eol = line + strlen(line);
    }
    if (what && !memmem(line, eol - line, what, strlen(what))) {
        printf("#   the report does not say \"%s\"\n", what);
        CHECK(!"report says what went wrong");
        ok = false;
    }
    if (death__expect->text[0] &&
        !memmem(line, eol - line, death__expect->text,
                strlen(death__expect->text))) {
        printf("#   the report does not name \"%s\"\n", death__expect->text);
        CHECK(!"report names the object");
        ok = false;
    }
    return ok;
}

/* Runs fn(opaque) in a child that must survive (exit 0); returns its
 * stderr in @res. */
static inline bool expect_survival(void (*fn)(void *), void *opaque,
                                   DeathResult *res)
{
    if (!misuse_death_run(fn, opaque, res)) {
        CHECK(!"fork failed");
        return false;
    }
    death_print(res);
    CHECK(exited_with(res, 0));
    return exited_with(res, 0);
}

/* A BH or fd callback that counts its runs in the int at @opaque. */
static inline void misuse_count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* Lowers the soft limit on open files to @n (0 on success). */
static inline int limit_fds(rlim_t n)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -errno;
    }
    rl.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

#endif /* AIOLOOP_MISUSE_TEST_H */
