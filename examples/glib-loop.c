/*
 * glib-loop - an AioContext run by a GLib main loop.
 *
 * A program built around GMainLoop (a GTK application, a D-Bus service)
 * can use aioloop too: aio_get_g_source() wraps an AioContext in a
 * GSource, and once that is attached to a GMainContext, GLib's loop runs
 * the context's bottom halves, fd handlers and timers along with its own
 * sources. Nobody calls aio_poll() here.
 *
 * This program schedules a BH, arms an aioloop timer for 50 ms and
 * registers an fd handler on a pipe that a GLib timeout writes to after
 * 20 ms. When all three have run, it quits the GMainLoop and exits 0
 * (status 1 if a 10-second watchdog had to stop it).
 *
 * Built only when aioloop was built with GLib (AIOLOOP_HAVE_GLIB).
 * SPDX-License-Identifier: MIT
 */
#include <glib.h>
#include <aioloop.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#if !AIOLOOP_HAVE_GLIB
#error "aioloop was built without GLib: aio_get_g_source() is missing"
#endif

typedef struct Demo {
    AioContext *ctx;
    GMainLoop *loop;
    QEMUTimer *timer;
    int pipe_fds[2];            /* [0] read end, [1] write end */
    guint watchdog;             /* GLib source id, 0 once it has fired */
    int done;                   /* how many of the three have run */
} Demo;

static void ran(Demo *d, const char *what)
{
    printf("%s ran from the GLib main loop\n", what);
    if (++d->done == 3) {
        g_main_loop_quit(d->loop);  /* g_main_loop_run() returns */
    }
}

/* The three aioloop callbacks; GLib's loop calls them through the
 * context's GSource. */
static void on_bh(void *opaque)
{
    ran(opaque, "bottom half");
}

static void on_timer(void *opaque)
{
    ran(opaque, "timer");
}

static void on_readable(void *opaque)
{
    Demo *d = opaque;
    char buf[16];
    ssize_t n = read(d->pipe_fds[0], buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;                     /* called again while readable */
    }
    /* One message is all we wait for: unregister (safe from inside). */
    aio_set_fd_handler(d->ctx, d->pipe_fds[0], false, NULL, NULL, NULL);
    if (n <= 0) {
        fprintf(stderr, "read: %s\n", n < 0 ? g_strerror(errno) : "EOF");
        g_main_loop_quit(d->loop);
        return;
    }
    printf("fd handler read \"%.*s\"\n", (int)n, buf);
    ran(d, "fd handler");
}

/* Plain GLib sources, for comparison: they know nothing of aioloop. */
static gboolean write_pipe(gpointer opaque)
{
    Demo *d = opaque;

    if (write(d->pipe_fds[1], "ping", 4) != 4) {
        perror("write");
    }
    return G_SOURCE_REMOVE;         /* a one-shot timeout */
}

static gboolean give_up(gpointer opaque)
{
    Demo *d = opaque;

    fprintf(stderr, "glib-loop: only %d of 3 callbacks ran in 10 s\n",
            d->done);
    d->watchdog = 0;
    g_main_loop_quit(d->loop);
    return G_SOURCE_REMOVE;
}

int main(void)
{
    Demo d = { .pipe_fds = { -1, -1 } };
    Error *err = NULL;
    GSource *source;

    d.ctx = aio_context_new(&err);
    if (!d.ctx) {
        error_report_err(err);
        return 1;
    }
    if (pipe2(d.pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        perror("pipe2");
        aio_context_unref(d.ctx);
        return 1;
    }
    /* Hand the context to GLib. NULL is the default GMainContext, the one
     * g_main_loop_new(NULL, ...) runs. The AioContext owns its GSource,
     * so our reference can be dropped at once. */
    source = aio_get_g_source(d.ctx);
    g_source_attach(source, NULL);
    g_source_unref(source);
    d.loop = g_main_loop_new(NULL, FALSE);

    /* Work for the AioContext, registered exactly as without GLib. */
    aio_bh_schedule_oneshot(d.ctx, on_bh, &d);
    d.timer = aio_timer_new(d.ctx, QEMU_CLOCK_REALTIME, SCALE_MS, on_timer,
                            &d);
    timer_mod(d.timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 50);
    aio_set_fd_handler(d.ctx, d.pipe_fds[0], false, on_readable, NULL, &d);
    /* And GLib's own sources beside it. */
    g_timeout_add(20, write_pipe, &d);
    d.watchdog = g_timeout_add_seconds(10, give_up, &d);

    g_main_loop_run(d.loop);

    if (d.watchdog) {
        g_source_remove(d.watchdog);
    }
    timer_free(d.timer);
    aio_set_fd_handler(d.ctx, d.pipe_fds[0], false, NULL, NULL, NULL);
    g_main_loop_unref(d.loop);
    aio_context_unref(d.ctx);       /* also detaches and frees the GSource */
    close(d.pipe_fds[0]);
    close(d.pipe_fds[1]);
    printf("%s\n", d.done == 3 ? "all three ran; quit" : "failed");
    return d.done == 3 ? 0 : 1;
}
