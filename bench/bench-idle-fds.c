/*
 * bench-idle-fds - does one event-loop iteration get slower when many idle
 * file descriptors are registered? One non-blocking iteration with N idle
 * eventfds (never signalled) watched for reading, N = 10 and N = 10,000;
 * figures in us per iteration (median of BENCH_REPS batches, see bench.h).
 *
 *   idle-fds.aioloop-epoll.nN   aio_poll(ctx, false), AIOLOOP_FDMON=epoll
 *   idle-fds.aioloop-poll.nN    the same with AIOLOOP_FDMON=poll (ppoll)
 *   idle-fds.libuv.nN           uv_poll_t handles, uv_run(UV_RUN_NOWAIT)
 *   idle-fds.libev.nN           ev_io watchers, ev_run(EVRUN_NOWAIT)
 *   idle-fds.glib.nN            one g_unix_fd_source per fd on a private
 *                               GMainContext, g_main_context_iteration(FALSE)
 * plus, per system, the ratio n10000/n10 (target for aioloop-epoll: <= 1.1,
 * and under 0.5 us per iteration), and each peer / aioloop-epoll at both N.
 *
 * The handlers are plain read handlers without a busy-poll function, so a
 * non-blocking aio_poll() must ask the kernel every time.
 *
 * Like for like: per iteration, aioloop-epoll, libuv and libev each make
 * exactly one system call, epoll_wait(.., timeout 0) (strace -c -f of
 * 10,000 iterations with N = 10,000, 2026-12-07); libuv and libev also
 * read the clock (vDSO, no system call), aioloop only when a timer is
 * armed, and none of the three runs a callback. GLib's ppoll() of all N
 * fds is its design, not a handicap added here. Before measuring,
 * each system is checked: an fd signalled just before one iteration must be
 * dispatched by that iteration (64 probes spread over the N fds), and no
 * handler may run during the measured (idle) iterations.
 *
 * The process needs N + ~100 descriptors: the soft RLIMIT_NOFILE is raised
 * to the hard limit; if that is not enough, the N = 10,000 figures are
 * skipped with the reason (the N = 10 ones still run).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/aio.h>

#include <errno.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_LIBEV
#include <ev.h>
#endif
#ifdef HAVE_GLIB
#include <glib.h>
#include <glib-unix.h>
#endif

#define N_SMALL     10
#define N_LARGE     10000
#define FD_MARGIN   100
#define N_PROBES    64

static int fds[N_LARGE];
static int nfds_created;
static uint64_t fd_calls;       /* handler invocations */

/* Every handler of every system ends here: consume the event, count it. */
static void consume(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) == sizeof(v)) {
        fd_calls++;
    }
}

static void signal_fd(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) != sizeof(one)) {
        bench_die("eventfd write failed");
    }
}

/* One system under test, with N fds registered. */
typedef struct {
    const char *name;
    void (*iterate)(void *state);
    void *state;
} Loop;

static void run_iterations(void *opaque, uint64_t n)
{
    Loop *l = opaque;

    for (uint64_t i = 0; i < n; i++) {
        l->iterate(l->state);
    }
}

/* Check that the loop really watches all @nfds fds, then time it. */
static double measure_loop(Loop *l, int nfds)
{
    char name[128];
    double r;

    for (int i = 0; i < 3; i++) {
        l->iterate(l->state);   /* let lazy registrations happen */
    }
    for (int k = 0; k < N_PROBES; k++) {
        int i = (int)(((long)k * nfds) / N_PROBES);

        signal_fd(fds[i]);
        fd_calls = 0;
        l->iterate(l->state);
        if (fd_calls != 1) {
            fprintf(stderr, "%s: fd %d of %d signalled but one non-blocking "
                    "iteration dispatched %llu handlers\n", l->name, i, nfds,
                    (unsigned long long)fd_calls);
            exit(1);
        }
    }

    fd_calls = 0;
    r = bench_measure(run_iterations, l);
    if (fd_calls != 0) {
        fprintf(stderr, "%s: a handler ran for an idle fd\n", l->name);
        exit(1);
    }
    snprintf(name, sizeof(name), "idle-fds.%s.n%d", l->name, nfds);
    bench_report(name, r, "us/iter");
    return r;
}

/* ------------------------------------------------------------------ */
/* aioloop                                                             */

static void aio_read_cb(void *opaque)
{
    consume(*(int *)opaque);
}

static void aio_iterate(void *state)
{
    aio_poll(state, false);
}

static double bench_aioloop(const char *fdmon, int nfds)
{
    char name[64];
    Loop l = { .iterate = aio_iterate };
    AioContext *ctx;
    double r;

    snprintf(name, sizeof(name), "aioloop-%s", fdmon);
    l.name = name;
    setenv("AIOLOOP_FDMON", fdmon, 1);
    ctx = aio_context_new(NULL);
    unsetenv("AIOLOOP_FDMON");
    if (!ctx) {
        bench_die("aio_context_new failed");
    }
    if (strcmp(aio_context_fdmon_name(ctx), fdmon) != 0) {
        printf("# %s: asked for fd monitor %s, got %s\n", name, fdmon,
               aio_context_fdmon_name(ctx));
    }
    l.state = ctx;
    for (int i = 0; i < nfds; i++) {
        aio_set_fd_handler(ctx, fds[i], false, aio_read_cb, NULL, &fds[i]);
    }

    r = measure_loop(&l, nfds);

    if (strcmp(aio_context_fdmon_name(ctx), fdmon) != 0) {
        printf("# %s: the fd monitor became %s during the run\n", name,
               aio_context_fdmon_name(ctx));
    }
    for (int i = 0; i < nfds; i++) {
        aio_set_fd_handler(ctx, fds[i], false, NULL, NULL, NULL);
    }
    aio_poll(ctx, false);
    aio_context_unref(ctx);
    return r;
}

/* ------------------------------------------------------------------ */
/* libuv                                                               */

#ifdef HAVE_LIBUV
static void luv_read_cb(uv_poll_t *h, int status BENCH_UNUSED,
                        int events BENCH_UNUSED)
{
    consume(*(int *)h->data);
}

static void luv_iterate(void *state)
{
    uv_run(state, UV_RUN_NOWAIT);
}

static double bench_libuv(int nfds)
{
    Loop l = { .name = "libuv", .iterate = luv_iterate };
    uv_loop_t loop;
    uv_poll_t *polls = calloc(nfds, sizeof(*polls));
    double r;

    if (!polls || uv_loop_init(&loop) < 0) {
        bench_die("libuv setup failed");
    }
    for (int i = 0; i < nfds; i++) {
        if (uv_poll_init(&loop, &polls[i], fds[i]) < 0) {
            bench_die("uv_poll_init failed");
        }
        polls[i].data = &fds[i];
        uv_poll_start(&polls[i], UV_READABLE, luv_read_cb);
    }
    l.state = &loop;

    r = measure_loop(&l, nfds);

    for (int i = 0; i < nfds; i++) {
        uv_close((uv_handle_t *)&polls[i], NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(polls);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* libev                                                               */

#ifdef HAVE_LIBEV
static void lev_read_cb(struct ev_loop *loop BENCH_UNUSED, ev_io *w,
                        int revents BENCH_UNUSED)
{
    consume(w->fd);
}

static void lev_iterate(void *state)
{
    ev_run(state, EVRUN_NOWAIT);
}

static double bench_libev(int nfds)
{
    Loop l = { .name = "libev", .iterate = lev_iterate };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_io *ios = calloc(nfds, sizeof(*ios));
    double r;

    if (!loop || !ios) {
        bench_die("libev setup failed");
    }
    if (nfds == N_SMALL) {
        printf("# libev backend: %s\n",
               ev_backend(loop) == EVBACKEND_EPOLL ? "epoll" :
               ev_backend(loop) == EVBACKEND_POLL ? "poll" : "other");
    }
    for (int i = 0; i < nfds; i++) {
        ev_io_init(&ios[i], lev_read_cb, fds[i], EV_READ);
        ev_io_start(loop, &ios[i]);
    }
    l.state = loop;

    r = measure_loop(&l, nfds);

    for (int i = 0; i < nfds; i++) {
        ev_io_stop(loop, &ios[i]);
    }
    ev_loop_destroy(loop);
    free(ios);
    return r;
}
#endif

/* ------------------------------------------------------------------ */
/* GLib                                                                */

#ifdef HAVE_GLIB
static gboolean glib_read_cb(gint fd, GIOCondition cond BENCH_UNUSED,
                             gpointer opaque BENCH_UNUSED)
{
    consume(fd);
    return G_SOURCE_CONTINUE;
}

static void glib_iterate(void *state)
{
    g_main_context_iteration(state, FALSE);
}

static double bench_glib(int nfds)
{
    Loop l = { .name = "glib", .iterate = glib_iterate };
    GMainContext *ctx = g_main_context_new();
    GSource **srcs = calloc(nfds, sizeof(*srcs));
    double r;

    if (!srcs) {
        bench_die("out of memory");
    }
    for (int i = 0; i < nfds; i++) {
        srcs[i] = g_unix_fd_source_new(fds[i], G_IO_IN);
        g_source_set_callback(srcs[i], G_SOURCE_FUNC(glib_read_cb), NULL,
                              NULL);
        g_source_attach(srcs[i], ctx);
    }
    l.state = ctx;

    r = measure_loop(&l, nfds);

    for (int i = 0; i < nfds; i++) {
        g_source_destroy(srcs[i]);
        g_source_unref(srcs[i]);
    }
    g_main_context_unref(ctx);
    free(srcs);
    return r;
}
#endif

/* ------------------------------------------------------------------ */

/*
 * Raise the fd limit and create the eventfds: N_LARGE of them when the
 * limit allows, else only N_SMALL with the reason in @why. Returns how many
 * exist.
 */
static int setup_fds(char *why, size_t why_len)
{
    struct rlimit rl;
    int want = N_LARGE;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)(N_LARGE + FD_MARGIN)) {
        snprintf(why, why_len, "RLIMIT_NOFILE hard limit is %llu, %d needed",
                 (unsigned long long)rl.rlim_cur, N_LARGE + FD_MARGIN);
        want = N_SMALL;
    }
    while (nfds_created < want) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

        if (fd < 0) {
            snprintf(why, why_len, "eventfd #%d: %s", nfds_created,
                     strerror(errno));
            break;
        }
        fds[nfds_created++] = fd;
    }
    return nfds_created;
}

int main(void)
{
    static const int sizes[] = { N_SMALL, N_LARGE };
    double epoll_r[2] = { 0 }, poll_r[2] = { 0 };
    double uv[2] = { 0 }, lev[2] = { 0 }, glib[2] = { 0 };
    char why[160] = "";
    int have;

    printf("# idle-fds: one non-blocking iteration with N idle eventfds; "
           "median of %d batches of %llu ms\n",
           BENCH_REPS, BENCH_BATCH_NS / 1000000);
    have = setup_fds(why, sizeof(why));
    if (have < N_SMALL) {
        /* Not even the small set: nothing can run. */
        bench_skipped("idle-fds", why);
        return 0;
    }

    for (int s = 0; s < 2; s++) {
        int n = sizes[s];
        char label[32];

        if (n > have) {
            snprintf(label, sizeof(label), "idle-fds.n%d", n);
            bench_skipped(label, why);
            continue;
        }
        epoll_r[s] = bench_aioloop("epoll", n);
        poll_r[s] = bench_aioloop("poll", n);
#ifdef HAVE_LIBUV
        uv[s] = bench_libuv(n);
#else
        snprintf(label, sizeof(label), "idle-fds.libuv.n%d", n);
        bench_skipped(label, "install libuv1-dev");
#endif
#ifdef HAVE_LIBEV
        lev[s] = bench_libev(n);
#else
        snprintf(label, sizeof(label), "idle-fds.libev.n%d", n);
        bench_skipped(label, "install libev-dev");
#endif
#ifdef HAVE_GLIB
        glib[s] = bench_glib(n);
#else
        snprintf(label, sizeof(label), "idle-fds.glib.n%d", n);
        bench_skipped(label, "install libglib2.0-dev");
#endif
    }

    bench_ratio("idle-fds.aioloop-epoll", "n10000", epoll_r[1], "n10",
                epoll_r[0]);
    bench_ratio("idle-fds.aioloop-poll", "n10000", poll_r[1], "n10",
                poll_r[0]);
    bench_ratio("idle-fds.libuv", "n10000", uv[1], "n10", uv[0]);
    bench_ratio("idle-fds.libev", "n10000", lev[1], "n10", lev[0]);
    bench_ratio("idle-fds.glib", "n10000", glib[1], "n10", glib[0]);
    for (int s = 0; s < 2; s++) {
        char prefix[32];

        snprintf(prefix, sizeof(prefix), "idle-fds.n%d", sizes[s]);
        bench_ratio(prefix, "aioloop-poll", poll_r[s], "aioloop-epoll",
                    epoll_r[s]);
        bench_ratio(prefix, "libuv", uv[s], "aioloop-epoll", epoll_r[s]);
        bench_ratio(prefix, "libev", lev[s], "aioloop-epoll", epoll_r[s]);
        bench_ratio(prefix, "glib", glib[s], "aioloop-epoll", epoll_r[s]);
    }

    for (int i = 0; i < nfds_created; i++) {
        close(fds[i]);
    }
    return 0;
}
