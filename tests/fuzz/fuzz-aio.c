/*
 * fuzz-aio.c - fuzz target: the input bytes are a program of AioContext
 * operations, run against a reference model that checks every callback
 * as it happens and every aio_poll() when it returns.
 *
 * Design
 * ------
 * Each input gets a fresh context, NPIPE pipes, NTIMER virtual-clock
 * timers and slots for NBH bottom halves. The bytes are read as opcodes
 * with arguments (see enum Op): BH new/schedule/schedule_idle/cancel/
 * delete and one-shot BHs; timer_mod_ns/timer_mod_anticipate_ns/timer_del
 * and qemu_clock_advance_virtual_time(); read handlers (two variants, so
 * that an update is visible) and write handlers on the pipes, removal,
 * writes that make a pipe readable; aio_poll(ctx, false), aio_dispatch(),
 * aio_poll(ctx, true) when the model says it cannot sleep forever,
 * aio_notify(); thread-pool submit (some jobs held behind a gate, so that
 * cancelling finds them queued), cancel_async and synchronous cancel.
 * Every callback reads a count and runs that many further operations
 * from the same byte stream: scheduling, cancelling, deleting (itself
 * too), re-arming, removing handlers, nesting aio_poll() up to MAX_DEPTH.
 * When the bytes run out, callbacks do nothing more.
 *
 * The model is a monitor, not a predictor: it never needs the order in
 * which epoll or the workers report things. It holds, per object, what the
 * program did to it (scheduled? armed, deadline, arm sequence? registered,
 * which variant, bytes in the pipe? submitted, cancel asked?) and checks:
 *
 *   at each callback  it may run now: the BH is scheduled (a run consumes
 *                     the schedule: nothing runs twice) and not deleted;
 *                     the timer is armed, due, and the earliest armed one
 *                     (deadline, then arm order); the read handler is the
 *                     registered one (not removed, not replaced) and its
 *                     pipe holds data (it drains it all: no double
 *                     dispatch); the job completes once, in the loop
 *                     thread, with its function's value, or -ECANCELED
 *                     only if a cancel was asked and the function never
 *                     ran. Any callback runs only inside aio_poll() (ours,
 *                     or the one bdrv_aio_cancel() runs).
 *   at each aio_poll  (any depth) everything that was ready when it began
 *   return            and was not touched since has run during it: a
 *                     scheduled (or idle-scheduled) BH, a one-shot, a due
 *                     timer, a read handler with data, a write handler;
 *                     and its result is true exactly when it ran a user
 *                     callback itself that was not an idle BH.
 *   at the end        the loop is drained: with no more actions, every
 *                     timer is made due, every job let through; then
 *                     nothing is left ready, every job completed exactly
 *                     once, and cancelled ones never ran.
 *
 * Thread-pool completions are asynchronous: the model only requires
 * "exactly once, eventually". Everything else is deterministic.
 *
 * The harness never waits for what cannot come: a blocking aio_poll()
 * runs only with work ready, a notification pending or a job in flight
 * with the gate open; the gate closes only at the top level; the
 * synchronous cancel runs only at the top level, gate open. A failing
 * input replays with FUZZ_AIO_TRACE=1 fuzz-aio-replay FILE, which prints
 * each operation and callback.
 *
 * The same LLVMFuzzerTestOneInput() is linked with libFuzzer (make fuzz,
 * clang) and with replay-main.c (make check replays tests/fuzz/corpus/).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#define NBH         6
#define NTIMER      4
#define NPIPE       3
#define NJOB        24
#define NONESHOT    32
#define MAX_DEPTH   4       /* nested aio_poll() levels */
#define MAX_ACTIONS 3       /* operations run by one callback */

typedef enum {
    OBJ_BH, OBJ_ONESHOT, OBJ_TIMER, OBJ_READ, OBJ_WRITE, OBJ_JOB,
} ObjKind;

/* The opaque of one callback registration. Never freed before the input
 * ends, so that a stale call is reported by the model, not by chance. */
typedef struct Ref {
    ObjKind kind;
    int slot;
    int variant;            /* OBJ_READ: which handler function */
    struct Ref *next;       /* all Refs of the input */
} Ref;

typedef struct {
    QEMUBH *bh;
    Ref *ref;
    bool sched, idle;
    unsigned touch, runs;
} BhSlot;

typedef struct {
    Ref *ref;
    bool pending;
    unsigned runs;
} Oneshot;

typedef struct {
    QEMUTimer *t;
    Ref *ref;
    bool armed;
    int64_t deadline;
    uint64_t seq;
    unsigned touch, runs;
} TimerSlot;

typedef struct {
    int rfd, wfd;
    Ref *rref, *wref;       /* current registrations, NULL if none */
    unsigned data;          /* bytes written and not yet read */
    unsigned rtouch, wtouch, rruns, wruns;
} PipeSlot;

typedef struct {
    BlockAIOCB *acb;
    Ref *ref;
    int value;
    bool gated;
    bool cancel_asked;
    bool completed;
    int ret;
    int started, finished;  /* atomic: set by the worker */
} Job;

/* What was ready when an aio_poll() began. */
typedef struct {
    bool bh[NBH], oneshot[NONESHOT], timer[NTIMER], rd[NPIPE], wr[NPIPE];
    unsigned bh_touch[NBH], bh_runs[NBH];
    unsigned timer_touch[NTIMER], timer_runs[NTIMER];
    unsigned rd_touch[NPIPE], rd_runs[NPIPE], wr_touch[NPIPE], wr_runs[NPIPE];
    unsigned direct;        /* non-idle user callbacks this poll ran */
    const char *what;
} PollFrame;

static struct {
    AioContext *ctx;
    ThreadPool *pool;
    pthread_t loop_thread;
    const uint8_t *data;
    size_t size, pos;

    BhSlot bh[NBH];
    Oneshot oneshot[NONESHOT];
    int noneshot;
    TimerSlot timer[NTIMER];
    uint64_t timer_seq;
    int64_t vnow;
    PipeSlot pipe[NPIPE];
    Job job[NJOB];
    int njob, outstanding;
    int gate;               /* atomic: gated jobs may finish */
    bool notify_pending;

    PollFrame frame[MAX_DEPTH];
    int depth;              /* aio_poll()s of ours in progress */
    int lib_depth;          /* our poll depth where bdrv_aio_cancel()
                               polls by itself, -1 when it does not */
    Ref *refs;
} S;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* FUZZ_AIO_TRACE=1 in the environment prints every operation and
 * callback to stderr (to read a failing input). */
static int trace_on = -1;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace(const char *fmt, ...)
{
    va_list ap;

    if (trace_on < 0) {
        const char *e = getenv("FUZZ_AIO_TRACE");
        trace_on = e && *e && *e != '0';
    }
    if (!trace_on) {
        return;
    }
    fprintf(stderr, "%*s", 2 * S.depth, "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz-aio: model violation: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (input byte %zu of %zu, poll depth %d)\n", S.pos,
            S.size, S.depth);
    abort();
}

static Ref *ref_new(ObjKind kind, int slot, int variant)
{
    Ref *r = calloc(1, sizeof(*r));

    if (!r) {
        abort();
    }
    r->kind = kind;
    r->slot = slot;
    r->variant = variant;
    r->next = S.refs;
    S.refs = r;
    return r;
}

/* Next input byte, or -1 when the input is used up. */
static int next_byte(void)
{
    return S.pos < S.size ? S.data[S.pos++] : -1;
}

static int arg(int mod)
{
    int b = next_byte();

    return b < 0 ? 0 : b % mod;
}

/* ------------------------------------------------------------------ */
/* Readiness, as the model sees it                                     */

static bool timer_due(const TimerSlot *t)
{
    return t->armed && t->deadline <= S.vnow;
}

/* Work that makes a blocking aio_poll() return without another event. */
static bool model_ready(bool count_idle)
{
    int i;

    for (i = 0; i < NBH; i++) {
        if (S.bh[i].bh && (S.bh[i].sched || (count_idle && S.bh[i].idle))) {
            return true;
        }
    }
    for (i = 0; i < S.noneshot; i++) {
        if (S.oneshot[i].pending) {
            return true;
        }
    }
    for (i = 0; i < NTIMER; i++) {
        if (timer_due(&S.timer[i])) {
            return true;
        }
    }
    for (i = 0; i < NPIPE; i++) {
        if ((S.pipe[i].rref && S.pipe[i].data) || S.pipe[i].wref) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Polling                                                             */

static void poll_begin(const char *what)
{
    PollFrame *f = &S.frame[S.depth];
    int i;

    memset(f, 0, sizeof(*f));
    f->what = what;
    for (i = 0; i < NBH; i++) {
        f->bh[i] = S.bh[i].bh && (S.bh[i].sched || S.bh[i].idle);
        f->bh_touch[i] = S.bh[i].touch;
        f->bh_runs[i] = S.bh[i].runs;
    }
    for (i = 0; i < S.noneshot; i++) {
        f->oneshot[i] = S.oneshot[i].pending;
    }
    for (i = 0; i < NTIMER; i++) {
        f->timer[i] = timer_due(&S.timer[i]);
        f->timer_touch[i] = S.timer[i].touch;
        f->timer_runs[i] = S.timer[i].runs;
    }
    for (i = 0; i < NPIPE; i++) {
        PipeSlot *p = &S.pipe[i];

        f->rd[i] = p->rref && p->data;
        f->rd_touch[i] = p->rtouch;
        f->rd_runs[i] = p->rruns;
        f->wr[i] = p->wref != NULL;
        f->wr_touch[i] = p->wtouch;
        f->wr_runs[i] = p->wruns;
    }
    trace("%s", what);
    /* The poll consumes a pending notification (aio_notify_accept). */
    S.notify_pending = false;
    S.depth++;
}

static void poll_end(bool progress)
{
    PollFrame *f = &S.frame[--S.depth];
    int i;

    trace("%s returns %d", f->what, progress);
    for (i = 0; i < NBH; i++) {
        if (f->bh[i] && S.bh[i].touch == f->bh_touch[i] &&
            S.bh[i].runs == f->bh_runs[i]) {
            fail("%s: BH %d was scheduled when it began and did not run",
                 f->what, i);
        }
    }
    for (i = 0; i < S.noneshot; i++) {
        if (f->oneshot[i] && S.oneshot[i].pending) {
            fail("%s: one-shot BH %d was scheduled when it began and did "
                 "not run", f->what, i);
        }
    }
    for (i = 0; i < NTIMER; i++) {
        if (f->timer[i] && S.timer[i].touch == f->timer_touch[i] &&
            S.timer[i].runs == f->timer_runs[i]) {
            fail("%s: timer %d was due when it began and did not fire",
                 f->what, i);
        }
    }
    for (i = 0; i < NPIPE; i++) {
        if (f->rd[i] && S.pipe[i].rtouch == f->rd_touch[i] &&
            S.pipe[i].rruns == f->rd_runs[i]) {
            fail("%s: pipe %d was readable when it began and its read "
                 "handler did not run", f->what, i);
        }
        if (f->wr[i] && S.pipe[i].wtouch == f->wr_touch[i] &&
            S.pipe[i].wruns == f->wr_runs[i]) {
            fail("%s: pipe %d's write handler did not run", f->what, i);
        }
    }
    if (progress != (f->direct > 0)) {
        fail("%s returned %s but ran %u non-idle user callbacks", f->what,
             progress ? "true" : "false", f->direct);
    }
}

static void do_poll(int kind)
{
    bool progress;

    if (S.depth >= MAX_DEPTH) {
        return;
    }
    switch (kind) {
    case 0:
        poll_begin("aio_poll(false)");
        progress = aio_poll(S.ctx, false);
        break;
    case 1:
        poll_begin("aio_dispatch");
        progress = aio_dispatch(S.ctx);
        break;
    default:
        /* Blocking: only when something must end the wait. Inside
         * bdrv_aio_cancel()'s polling, whether a notification is still
         * pending is not known: do not count on it. */
        if (!model_ready(false) &&
            !(S.notify_pending && S.lib_depth < 0)) {
            if (S.outstanding > 0) {
                qatomic_mb_set(&S.gate, 1);     /* a completion will come */
            } else {
                aio_notify(S.ctx);
                S.notify_pending = true;
            }
        }
        poll_begin("aio_poll(true)");
        progress = aio_poll(S.ctx, true);
        break;
    }
    poll_end(progress);
}

/* Every callback starts here: it must run in the loop thread, inside an
 * aio_poll() (ours, or the one bdrv_aio_cancel() runs). */
static void callback_enter(const char *what, bool counts)
{
    if (!pthread_equal(pthread_self(), S.loop_thread)) {
        fail("%s ran outside the loop thread", what);
    }
    if (S.depth > S.lib_depth) {
        /* Run by our innermost aio_poll(). */
        if (counts) {
            S.frame[S.depth - 1].direct++;
        }
    } else if (S.lib_depth < 0) {
        fail("%s ran outside aio_poll()", what);
    }
}

static void run_actions(void);

/* ------------------------------------------------------------------ */
/* Bottom halves                                                       */

static void bh_cb(void *opaque)
{
    Ref *r = opaque;
    BhSlot *b = &S.bh[r->slot];
    bool sched;

    if (b->ref != r || !b->bh) {
        fail("BH %d ran after it was deleted", r->slot);
    }
    if (!b->sched && !b->idle) {
        fail("BH %d ran while not scheduled (twice, or after cancel)",
             r->slot);
    }
    sched = b->sched;
    trace("BH %d runs%s", r->slot, sched ? "" : " (idle)");
    b->sched = b->idle = false;
    b->runs++;
    callback_enter("BH", sched);
    run_actions();
}

static void oneshot_cb(void *opaque)
{
    Ref *r = opaque;
    Oneshot *o = &S.oneshot[r->slot];

    if (!o->pending) {
        fail("one-shot BH %d ran twice", r->slot);
    }
    trace("one-shot %d runs", r->slot);
    o->pending = false;
    o->runs++;
    callback_enter("one-shot BH", true);
    run_actions();
}

static void op_bh_new(int k)
{
    BhSlot *b = &S.bh[k];

    if (b->bh) {
        return;
    }
    b->ref = ref_new(OBJ_BH, k, 0);
    b->bh = aio_bh_new(S.ctx, bh_cb, b->ref);
    b->sched = b->idle = false;
    b->touch++;
}

static void op_bh_schedule(int k, bool idle)
{
    BhSlot *b = &S.bh[k];

    if (!b->bh) {
        op_bh_new(k);
    }
    if (idle) {
        qemu_bh_schedule_idle(b->bh);
        b->idle = true;
    } else {
        qemu_bh_schedule(b->bh);
        b->sched = true;
    }
    b->touch++;
}

static void op_bh_cancel(int k)
{
    BhSlot *b = &S.bh[k];

    if (b->bh) {
        qemu_bh_cancel(b->bh);
        b->sched = b->idle = false;
        b->touch++;
    }
}

static void op_bh_delete(int k)
{
    BhSlot *b = &S.bh[k];

    if (b->bh) {
        qemu_bh_delete(b->bh);
        b->bh = NULL;
        b->ref = NULL;
        b->sched = b->idle = false;
        b->touch++;
    }
}

static void op_oneshot(void)
{
    Oneshot *o;

    if (S.noneshot >= NONESHOT) {
        return;
    }
    o = &S.oneshot[S.noneshot];
    o->ref = ref_new(OBJ_ONESHOT, S.noneshot, 0);
    o->pending = true;
    S.noneshot++;
    aio_bh_schedule_oneshot(S.ctx, oneshot_cb, o->ref);
}

/* ------------------------------------------------------------------ */
/* Timers on QEMU_CLOCK_VIRTUAL                                        */

static void timer_cb(void *opaque)
{
    Ref *r = opaque;
    TimerSlot *t = &S.timer[r->slot];
    int i;

    if (!t->armed) {
        fail("timer %d fired while not armed (twice, or after del)",
             r->slot);
    }
    if (t->deadline > S.vnow) {
        fail("timer %d fired early: deadline %lld, virtual clock %lld",
             r->slot, (long long)t->deadline, (long long)S.vnow);
    }
    for (i = 0; i < NTIMER; i++) {
        TimerSlot *u = &S.timer[i];

        if (i != r->slot && u->armed &&
            (u->deadline < t->deadline ||
             (u->deadline == t->deadline && u->seq < t->seq))) {
            fail("timer %d (deadline %lld, armed #%llu) fired before timer "
                 "%d (deadline %lld, armed #%llu)", r->slot,
                 (long long)t->deadline, (unsigned long long)t->seq, i,
                 (long long)u->deadline, (unsigned long long)u->seq);
        }
    }
    trace("timer %d fires", r->slot);
    t->armed = false;
    t->runs++;
    callback_enter("timer", true);
    run_actions();
}

static void op_timer_mod(int k, int delta, bool anticipate)
{
    TimerSlot *t = &S.timer[k];
    int64_t when = S.vnow + delta;

    if (when < 0) {
        when = 0;           /* the library clamps a negative deadline */
    }
    if (anticipate) {
        timer_mod_anticipate_ns(t->t, when);
        if (t->armed && t->deadline <= when) {
            return;         /* already earlier: unchanged */
        }
    } else {
        timer_mod_ns(t->t, when);
    }
    t->armed = true;
    t->deadline = when;
    t->seq = S.timer_seq++;
    t->touch++;
}

static void op_timer_del(int k)
{
    TimerSlot *t = &S.timer[k];

    timer_del(t->t);
    t->armed = false;
    t->touch++;
}

static void op_clock_advance(int64_t delta)
{
    int64_t now = qemu_clock_advance_virtual_time(S.vnow + delta);

    if (now < S.vnow + delta) {
        fail("virtual clock at %lld after advancing to %lld",
             (long long)now, (long long)(S.vnow + delta));
    }
    S.vnow = now;
}

/* ------------------------------------------------------------------ */
/* fd handlers on pipes                                                */

static void read_cb(Ref *r)
{
    PipeSlot *p = &S.pipe[r->slot];
    char buf[64];
    unsigned got = 0;
    ssize_t n;

    if (p->rref != r) {
        fail("pipe %d: a %s read handler ran", r->slot,
             p->rref ? "replaced" : "removed");
    }
    if (p->data == 0) {
        fail("pipe %d: read handler ran with nothing to read", r->slot);
    }
    /* Consume the event first, then act (a handler that nests must). */
    while ((n = read(p->rfd, buf, sizeof(buf))) > 0) {
        got += (unsigned)n;
    }
    if (got != p->data) {
        fail("pipe %d: read %u bytes, %u were written", r->slot, got,
             p->data);
    }
    trace("pipe %d read handler, %u bytes", r->slot, got);
    p->data = 0;
    p->rruns++;
    callback_enter("read handler", true);
    run_actions();
}

static void read_cb_a(void *opaque)
{
    read_cb(opaque);
}

static void read_cb_b(void *opaque)
{
    read_cb(opaque);
}

static void write_cb(void *opaque)
{
    Ref *r = opaque;
    PipeSlot *p = &S.pipe[r->slot];

    if (p->wref != r) {
        fail("pipe %d: a %s write handler ran", r->slot,
             p->wref ? "replaced" : "removed");
    }
    trace("pipe %d write handler", r->slot);
    p->wruns++;
    callback_enter("write handler", true);
    run_actions();
}

static void op_set_read(int k, int variant)
{
    PipeSlot *p = &S.pipe[k];
    Ref *r = ref_new(OBJ_READ, k, variant);

    aio_set_fd_handler(S.ctx, p->rfd, false,
                       variant ? read_cb_b : read_cb_a, NULL, r);
    p->rref = r;
    p->rtouch++;
}

static void op_set_write(int k)
{
    PipeSlot *p = &S.pipe[k];
    Ref *r = ref_new(OBJ_WRITE, k, 0);

    aio_set_fd_handler(S.ctx, p->wfd, false, NULL, write_cb, r);
    p->wref = r;
    p->wtouch++;
}

static void op_remove(int k, bool write_end)
{
    PipeSlot *p = &S.pipe[k];

    if (write_end) {
        aio_set_fd_handler(S.ctx, p->wfd, false, NULL, NULL, NULL);
        p->wref = NULL;
        p->wtouch++;
    } else {
        aio_set_fd_handler(S.ctx, p->rfd, false, NULL, NULL, NULL);
        p->rref = NULL;
        p->rtouch++;
    }
}

static void op_pipe_write(int k, int n)
{
    PipeSlot *p = &S.pipe[k];
    static const char bytes[4] = "abcd";

    if (write(p->wfd, bytes, (size_t)n) != n) {
        fail("pipe %d: write failed: %s", k, strerror(errno));
    }
    p->data += (unsigned)n;
}

/* ------------------------------------------------------------------ */
/* Thread pool                                                         */

static int job_fn(void *opaque)
{
    Job *j = opaque;

    qatomic_mb_set(&j->started, 1);
    if (j->gated) {
        while (!qatomic_mb_read(&S.gate)) {
            struct timespec ts = { 0, 20000 };
            nanosleep(&ts, NULL);
        }
    }
    qatomic_mb_set(&j->finished, 1);
    return j->value;
}

static void job_cb(void *opaque, int ret)
{
    Ref *r = opaque;
    Job *j = &S.job[r->slot];

    trace("job %d completes: %d", r->slot, ret);
    callback_enter("thread-pool completion", true);
    if (j->completed) {
        fail("job %d completed twice", r->slot);
    }
    if (ret == -ECANCELED) {
        if (!j->cancel_asked) {
            fail("job %d completed with -ECANCELED, never cancelled",
                 r->slot);
        }
        if (qatomic_mb_read(&j->started)) {
            fail("job %d: cancelled, but its function ran", r->slot);
        }
    } else if (ret != j->value) {
        fail("job %d completed with %d, its function returned %d",
             r->slot, ret, j->value);
    } else if (!qatomic_mb_read(&j->finished)) {
        fail("job %d completed before its function returned", r->slot);
    }
    j->completed = true;
    j->ret = ret;
    j->acb = NULL;          /* invalid once the callback has run */
    S.outstanding--;
    run_actions();
}

static void op_submit(bool gated)
{
    Job *j;

    if (S.njob >= NJOB) {
        return;
    }
    if (!S.pool) {
        S.pool = aio_get_thread_pool(S.ctx);
        /* Few workers: gated jobs make later ones queue. */
        if (thread_pool_set_params(S.pool, 0, 2, 1000000000LL, 0) < 0) {
            fail("thread_pool_set_params refused valid limits");
        }
    }
    j = &S.job[S.njob];
    j->ref = ref_new(OBJ_JOB, S.njob, 0);
    j->value = S.njob * 7 + 1;
    j->gated = gated;
    S.njob++;
    S.outstanding++;
    j->acb = thread_pool_submit_aio(S.pool, job_fn, j, job_cb, j->ref);
    if (!j->acb) {
        fail("thread_pool_submit_aio returned NULL");
    }
}

/* The job @k picks among those whose callback has not run, or NULL. */
static Job *pick_job(int k)
{
    int i;

    for (i = 0; i < S.njob; i++) {
        Job *j = &S.job[(k + i) % S.njob];

        if (!j->completed) {
            return j;
        }
    }
    return NULL;
}

static void op_cancel_async(int k)
{
    Job *j = pick_job(k);

    if (j) {
        j->cancel_asked = true;
        bdrv_aio_cancel_async(j->acb);
    }
}

static void op_cancel_sync(int k)
{
    Job *j;

    /* bdrv_aio_cancel() polls until the callback ran: only from the top
     * level, and with the gate open so that a running job can finish. */
    if (S.depth > 0 || S.lib_depth >= 0 || !(j = pick_job(k))) {
        return;
    }
    qatomic_mb_set(&S.gate, 1);
    j->cancel_asked = true;
    S.lib_depth = S.depth;
    bdrv_aio_cancel(j->acb);
    S.lib_depth = -1;
    /* Its polls may have consumed a pending notification: assume they
     * did (the safe side: a blocking poll then notifies first). */
    S.notify_pending = false;
    if (!j->completed) {
        fail("bdrv_aio_cancel returned before job %d completed",
             (int)(j - S.job));
    }
}

/* ------------------------------------------------------------------ */
/* The interpreter                                                     */

enum Op {
    OP_BH_NEW, OP_BH_SCHEDULE, OP_BH_SCHEDULE_IDLE, OP_BH_CANCEL,
    OP_BH_DELETE, OP_ONESHOT, OP_TIMER_MOD, OP_TIMER_ANTICIPATE,
    OP_TIMER_DEL, OP_CLOCK_ADVANCE, OP_SET_READ, OP_SET_WRITE, OP_REMOVE,
    OP_PIPE_WRITE, OP_POLL, OP_NOTIFY, OP_SUBMIT, OP_CANCEL_ASYNC,
    OP_CANCEL_SYNC, OP_GATE,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "bh_new", "bh_schedule", "bh_schedule_idle", "bh_cancel", "bh_delete",
    "oneshot", "timer_mod", "timer_anticipate", "timer_del",
    "clock_advance", "set_read", "set_write", "remove", "pipe_write",
    "poll", "notify", "submit", "cancel_async", "cancel_sync", "gate",
};

static void do_op(int op)
{
    trace("op %s (byte %zu)", op_names[op % OP_COUNT], S.pos);
    switch (op % OP_COUNT) {
    case OP_BH_NEW:
        op_bh_new(arg(NBH));
        break;
    case OP_BH_SCHEDULE:
        op_bh_schedule(arg(NBH), false);
        break;
    case OP_BH_SCHEDULE_IDLE:
        op_bh_schedule(arg(NBH), true);
        break;
    case OP_BH_CANCEL:
        op_bh_cancel(arg(NBH));
        break;
    case OP_BH_DELETE:
        op_bh_delete(arg(NBH));
        break;
    case OP_ONESHOT:
        op_oneshot();
        break;
    case OP_TIMER_MOD:
    case OP_TIMER_ANTICIPATE: {
        int k = arg(NTIMER);
        int delta = ((int)(signed char)arg(256)) * 16;

        op_timer_mod(k, delta, op % OP_COUNT == OP_TIMER_ANTICIPATE);
        break;
    }
    case OP_TIMER_DEL:
        op_timer_del(arg(NTIMER));
        break;
    case OP_CLOCK_ADVANCE:
        op_clock_advance((int64_t)arg(256) * 16);
        break;
    case OP_SET_READ: {
        int k = arg(NPIPE);

        op_set_read(k, arg(2));
        break;
    }
    case OP_SET_WRITE:
        op_set_write(arg(NPIPE));
        break;
    case OP_REMOVE: {
        int b = arg(2 * NPIPE);

        op_remove(b / 2, b & 1);
        break;
    }
    case OP_PIPE_WRITE: {
        int b = arg(3 * NPIPE);

        op_pipe_write(b / 3, b % 3 + 1);
        break;
    }
    case OP_POLL:
        do_poll(arg(3));
        break;
    case OP_NOTIFY:
        aio_notify(S.ctx);
        S.notify_pending = true;
        break;
    case OP_SUBMIT:
        op_submit(arg(4) == 0);
        break;
    case OP_CANCEL_ASYNC:
        op_cancel_async(arg(NJOB));
        break;
    case OP_CANCEL_SYNC:
        op_cancel_sync(arg(NJOB));
        break;
    case OP_GATE:
        /* Closing only where nothing waits for a job: a poll in
         * progress may be waiting for a gated one. */
        if (arg(2)) {
            qatomic_mb_set(&S.gate, 1);
        } else if (S.depth == 0 && S.lib_depth < 0) {
            qatomic_mb_set(&S.gate, 0);
        }
        break;
    }
}

/* A callback runs 0..MAX_ACTIONS operations from the input. */
static void run_actions(void)
{
    int n = arg(MAX_ACTIONS + 1);

    while (n-- > 0) {
        int op = next_byte();

        if (op < 0) {
            return;
        }
        do_op(op);
    }
}

/* ------------------------------------------------------------------ */
/* One input                                                           */

static void setup(const uint8_t *data, size_t size)
{
    int i;

    memset(&S, 0, sizeof(S));
    S.data = data;
    S.size = size;
    S.loop_thread = pthread_self();
    S.lib_depth = -1;
    S.ctx = aio_context_new(&error_abort);
    /* The model drives QEMU_CLOCK_VIRTUAL itself (it follows host time
     * unless taken over; later calls change nothing). */
    qemu_clock_take_over_virtual();
    S.vnow = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    for (i = 0; i < NTIMER; i++) {
        S.timer[i].ref = ref_new(OBJ_TIMER, i, 0);
        S.timer[i].t = aio_timer_new(S.ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                                     timer_cb, S.timer[i].ref);
    }
    for (i = 0; i < NPIPE; i++) {
        int fds[2];

        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
            fail("pipe2: %s", strerror(errno));
        }
        S.pipe[i].rfd = fds[0];
        S.pipe[i].wfd = fds[1];
    }
}

/* No more actions: let everything that is pending happen, then check
 * that nothing was lost. */
static void drain(void)
{
    int i, rounds;
    int64_t latest = S.vnow;

    for (i = 0; i < NPIPE; i++) {
        if (S.pipe[i].wref) {
            op_remove(i, true);         /* always ready: would never idle */
        }
    }
    for (i = 0; i < NTIMER; i++) {
        if (S.timer[i].armed && S.timer[i].deadline > latest) {
            latest = S.timer[i].deadline;
        }
    }
    op_clock_advance(latest - S.vnow);
    for (rounds = 0; model_ready(true); rounds++) {
        if (rounds == 8) {
            fail("work still ready after %d non-blocking polls", rounds);
        }
        do_poll(0);
    }
    qatomic_mb_set(&S.gate, 1);
    for (rounds = 0; S.outstanding > 0; rounds++) {
        if (rounds == 100000) {
            fail("%d jobs never completed", S.outstanding);
        }
        do_poll(2);
    }
    if (model_ready(true)) {
        fail("work left ready after the drain");
    }
}

static void teardown(void)
{
    int i;

    for (i = 0; i < NBH; i++) {
        op_bh_delete(i);
    }
    for (i = 0; i < NTIMER; i++) {
        timer_free(S.timer[i].t);
    }
    for (i = 0; i < NPIPE; i++) {
        if (S.pipe[i].rref) {
            op_remove(i, false);
        }
        close(S.pipe[i].rfd);
        close(S.pipe[i].wfd);
    }
    /* Frees the pool: joins its workers. */
    aio_context_unref(S.ctx);
    for (i = 0; i < S.njob; i++) {
        if (!S.job[i].completed) {
            fail("job %d never completed", i);
        }
        if (S.job[i].ret == -ECANCELED && qatomic_mb_read(&S.job[i].started)) {
            fail("job %d ran after it completed as cancelled", i);
        }
    }
    while (S.refs) {
        Ref *next = S.refs->next;

        free(S.refs);
        S.refs = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int op;

    setup(data, size);
    while ((op = next_byte()) >= 0) {
        do_op(op);
    }
    drain();
    teardown();
    return 0;
}
