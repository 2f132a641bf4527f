/*
 * timer-iothread - a periodic timer in the main loop hands work to an
 * IOThread, which hands each result back to the main loop.
 *
 * The main loop (qemu_init_main_loop(), main_loop_wait()) has a timer that
 * fires every PERIOD_MS milliseconds. At each tick the main thread sends a
 * job to an IOThread (a thread running its own AioContext) as a one-shot
 * bottom half; the IOThread does the work and sends the job back to the
 * main context the same way, where the result is printed. With
 * --coroutine the round trip is one coroutine that moves itself to the
 * IOThread and back with aio_co_schedule(). The program ends after TICKS
 * ticks, once every result is back.
 *
 * Usage: timer-iothread [--coroutine] [TICKS [PERIOD_MS]]   (5 and 100)
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct App {
    IOThread *iothread;
    QEMUTimer *timer;
    int64_t next_tick_ms;       /* deadline of the next tick */
    long ticks, period_ms;
    long sent, received;        /* jobs; touched by the main thread only */
    bool use_coroutine;
    bool failed;
} App;

typedef struct Job {
    App *app;
    long tick;
    uint64_t n, sum;            /* the work: sum = 1 + 2 + ... + n */
    AioContext *computed_in;
} Job;

/* The work itself. Runs in the IOThread. */
static void compute(Job *job)
{
    job->sum = 0;
    for (uint64_t i = 1; i <= job->n; i++) {
        job->sum += i;
    }
    job->computed_in = qemu_get_current_aio_context();
}

/* Main thread: a result is back. No lock is needed to read it: handing
 * a job over with a BH (or aio_co_schedule()) publishes everything the
 * sender wrote before to the thread that runs it. */
static void report(Job *job)
{
    bool iothread = job->computed_in ==
                    iothread_get_aio_context(job->app->iothread);

    printf("result %ld: 1 + 2 + ... + %" PRIu64 " = %" PRIu64
           " (computed in the %s)\n", job->tick, job->n, job->sum,
           iothread ? "IOThread" : "main thread");
    job->app->received++;
    free(job);
}

/* --- The round trip with bottom halves --- */

static void job_done(void *opaque)          /* main thread */
{
    report(opaque);
}

static void job_run(void *opaque)           /* IOThread */
{
    Job *job = opaque;

    compute(job);
    aio_bh_schedule_oneshot(qemu_get_aio_context(), job_done, job);
}

/* --- The same round trip as one coroutine --- */

static void coroutine_fn job_co(void *opaque)
{
    Job *job = opaque;
    AioContext *io_ctx = iothread_get_aio_context(job->app->iothread);

    /* Ask the IOThread's loop to enter us, then yield: we continue there. */
    aio_co_schedule(io_ctx, qemu_coroutine_self());
    qemu_coroutine_yield();
    compute(job);
    /* And back home the same way. */
    aio_co_schedule(qemu_get_aio_context(), qemu_coroutine_self());
    qemu_coroutine_yield();
    report(job);
}

/* Timer callback, in the main loop. */
static void on_tick(void *opaque)
{
    App *app = opaque;
    Job *job = calloc(1, sizeof(*job));

    if (!job) {
        fprintf(stderr, "out of memory: stopping after %ld ticks\n",
                app->sent);
        app->failed = true;
        app->ticks = app->sent;     /* wait for the jobs already sent */
        return;
    }
    job->app = app;
    job->tick = ++app->sent;
    job->n = (uint64_t)job->tick * 1000000;
    printf("tick %ld: job sent\n", job->tick);
    if (app->use_coroutine) {
        qemu_coroutine_enter(qemu_coroutine_create(job_co, job));
    } else {
        aio_bh_schedule_oneshot(iothread_get_aio_context(app->iothread),
                                job_run, job);
    }
    if (app->sent < app->ticks) {
        /* Re-arm relative to the last deadline, not to "now", so that
         * the ticks do not drift when a callback runs late. */
        app->next_tick_ms += app->period_ms;
        timer_mod(app->timer, app->next_tick_ms);
    }
}

static bool parse(const char *s, long min, long *out)
{
    char *end;

    *out = strtol(s, &end, 10);
    return *s && !*end && *out >= min && *out <= 1000000;
}

int main(int argc, char **argv)
{
    App app = { .ticks = 5, .period_ms = 100 };
    int i = 1;

    if (i < argc && !strcmp(argv[i], "--coroutine")) {
        app.use_coroutine = true;
        i++;
    }
    if (argc - i > 2 || (i < argc && !parse(argv[i], 1, &app.ticks)) ||
        (i + 1 < argc && !parse(argv[i + 1], 0, &app.period_ms))) {
        fprintf(stderr, "usage: %s [--coroutine] [TICKS [PERIOD_MS]]\n",
                argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* &error_fatal: on failure, print the reason and exit(1). */
    qemu_init_main_loop(&error_fatal);
    app.iothread = iothread_create("worker", &error_fatal);

    /* A millisecond timer on the main context (timer_new_*() is the main
     * loop's shorthand for aio_timer_new(qemu_get_aio_context(), ...)). */
    app.timer = timer_new_ms(QEMU_CLOCK_REALTIME, on_tick, &app);
    app.next_tick_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + app.period_ms;
    timer_mod(app.timer, app.next_tick_ms);

    while (app.received < app.ticks) {
        main_loop_wait(false);  /* sleeps until a timer or a BH is due */
    }

    timer_free(app.timer);
    iothread_destroy(app.iothread);     /* stops and joins the thread */
    qemu_cleanup_main_loop();
    printf("done after %ld ticks\n", app.ticks);
    return app.failed ? 1 : 0;
}
