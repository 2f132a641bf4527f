/*
 * soak-block.c - block I/O on every engine, with data verification, and
 * backends that move between loops.
 *
 * One scratch file (O_DIRECT where the directory allows it) is shared by
 * all backends; every worker owns its own area of AREA_PAGES 4 KiB pages
 * and keeps the version each page was last written with. Page p at
 * version v holds a pattern computed from (p, v); version 0 is the
 * never-written hole (zeros). A write of a run of pages writes version+1
 * and, once it succeeded, the worker raises the versions; a read checks
 * every page against them. Cancelled writes (-ECANCELED) must have
 * written nothing, which the read that follows them checks. At the end
 * the whole file is read back with pread() and checked again.
 *
 * Each backend has
 *  - NCO coroutine workers: write a run (one to three iovecs), read it
 *    back, sometimes read another run of their area, sometimes flush,
 *    all through aio_block_co_submit();
 *  - NCB callback workers: batches of NSUB requests (one per sub-area)
 *    under plug/unplug, some cancelled while still queued and some after
 *    the unplug; each write's completion submits the read that checks it;
 *    sometimes a flush joins the batch.
 *
 * Moving a backend (K_BLK_MOVE). Only the loop a backend is attached to
 * starts a move (from its tick), so a move never races another. It sets
 * `moving`; each worker stops at its next request boundary ("idle": a
 * coroutine yields, a callback worker submits nothing more). When all are
 * idle, a BH on the old loop detaches the backend (nothing in flight) and
 * sends a BH to the new loop that attaches it there and restarts the
 * workers from that thread, so their coroutines and callbacks belong to
 * the new context. Callbacks never detach their own backend.
 *
 * Threads: a backend's fields other than `loop` and `moving` are used by
 * the thread of the loop it is attached to; moves hand them over through
 * the BHs.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "soak.h"

#define PAGE 4096
#define AREA_PAGES 64
#define MAX_RUN 8               /* pages per request, at most */
#define NCO 3
#define NCB 2
#define NSUB 4
#define SUB_PAGES (AREA_PAGES / NSUB)
#define NWORKERS (NCO + NCB)
#define MAX_BACKENDS 12

enum { N_READ, N_WRITE, N_FLUSH, N_CANCELLED, N_BYTES };

typedef struct Backend Backend;
typedef struct CbWorker CbWorker;

typedef struct CoWorker {
    Backend *b;
    int idx;
    Coroutine *co;
    Rng rng;
    uint64_t first_page;        /* of its area, in the file */
    uint32_t ver[AREA_PAGES];
    uint8_t *buf;               /* MAX_RUN pages */
    SoakOp op;
    bool parked;
    bool exited;
} CoWorker;

typedef struct CbReq {
    SoakOp op;
    CbWorker *w;
    int first;                  /* page index in the area */
    int npages;
    bool write;
    bool flush;
    BlockAIOCB *acb;
    QEMUIOVector qiov;
    struct iovec iov[3];
    uint8_t *buf;
} CbReq;

struct CbWorker {
    Backend *b;
    int idx;
    Rng rng;
    uint64_t first_page;
    uint32_t ver[AREA_PAGES];
    CbReq req[NSUB];
    CbReq flush;
    int inflight;
    bool parked;
    bool exited;
};

struct Backend {
    int idx;
    AioBlockEngine engine;
    SoakKind kind;
    AioBlockBackend *b;
    Loop *loop;                 /* atomic: where it is attached */
    int moving;                 /* atomic */
    Loop *move_to;
    bool move_scheduled;
    SoakOp move_op;
    int idle;                   /* workers parked or exited */
    CoWorker cw[NCO];
    CbWorker bw[NCB];
    QemuEvent ev;               /* teardown */
};

static Backend backends[MAX_BACKENDS];
static int nbackends;
static int file_fd = -1;
static bool file_direct;
static bool corrupt_at_teardown;

/* ------------------------------------------------------------------ */
/* Patterns                                                            */

static uint64_t pat_word(uint64_t page, uint32_t ver, unsigned i)
{
    uint64_t x = (page << 24 ^ ver) * 0x9E3779B97F4A7C15ull;

    x += (uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 32;
    return x;
}

static void page_fill(uint8_t *p, uint64_t page, uint32_t ver)
{
    uint64_t *w = (uint64_t *)p;

    if (!ver) {
        memset(p, 0, PAGE);
        return;
    }
    for (unsigned i = 0; i < PAGE / 8; i++) {
        w[i] = pat_word(page, ver, i);
    }
}

static bool page_check(const uint8_t *p, uint64_t page, uint32_t ver,
                       const char *what)
{
    const uint64_t *w = (const uint64_t *)p;

    for (unsigned i = 0; i < PAGE / 8; i++) {
        uint64_t want = ver ? pat_word(page, ver, i) : 0;

        if (w[i] != want) {
            long found = -2;

            /* Which version does it hold, if any near? */
            for (long v = (long)ver - 4; v <= (long)ver + 4; v++) {
                if (v >= 0 && w[0] == (v ? pat_word(page, (uint32_t)v, 0) : 0)) {
                    found = v;
                }
            }
            if (found == -2) {
                soak_error("%s: page %llu word %u differs: want version %u, "
                           "the page holds no version near it", what,
                           (unsigned long long)page, i, ver);
            } else {
                soak_error("%s: page %llu word %u differs: want version %u, "
                           "the page holds version %ld", what,
                           (unsigned long long)page, i, ver, found);
            }
            return false;
        }
    }
    return true;
}

/* Fills @qiov over @buf for @npages pages, in one to three pieces split
 * at page boundaries. */
static void build_qiov(QEMUIOVector *qiov, struct iovec *iov, uint8_t *buf,
                       int npages, Rng *r)
{
    int pieces = npages >= 3 ? 1 + (int)rng_below(r, 3) : 1;
    int left = npages;
    int n = 0;
    uint8_t *p = buf;

    for (int i = 0; i < pieces; i++) {
        int take = i == pieces - 1 ? left : 1 + (int)rng_below(r, (uint32_t)(left - (pieces - 1 - i)));

        iov[n].iov_base = p;
        iov[n].iov_len = (size_t)take * PAGE;
        p += (size_t)take * PAGE;
        left -= take;
        n++;
    }
    qemu_iovec_init_external(qiov, iov, n);
}

static Loop *backend_loop(Backend *b)
{
    return qatomic_read(&b->loop);
}

/* ------------------------------------------------------------------ */
/* Moving                                                              */

static void attach_bh(void *opaque);

/* On the old loop: every worker is idle and nothing is in flight. */
static void move_bh(void *opaque)
{
    Backend *b = opaque;
    Loop *old = backend_loop(b);

    soak_expect_loop(old, "backend detach");
    aio_block_backend_detach(b->b, old->ctx);
    aio_bh_schedule_oneshot(b->move_to->ctx, attach_bh, b);
}

static void maybe_move(Backend *b)
{
    if (qatomic_read(&b->moving) && b->idle == NWORKERS && !b->move_scheduled) {
        b->move_scheduled = true;
        aio_bh_schedule_oneshot(backend_loop(b)->ctx, move_bh, b);
    }
}

static void worker_idle(Backend *b)
{
    b->idle++;
    maybe_move(b);
}

static void cb_batch(CbWorker *w);

/* On the new loop: attach, then restart the workers from here. */
static void attach_bh(void *opaque)
{
    Backend *b = opaque;
    Loop *to = b->move_to;

    soak_expect_loop(to, "backend attach");
    aio_block_backend_attach(b->b, to->ctx);
    qatomic_set(&b->loop, to);
    b->move_scheduled = false;
    qatomic_set(&b->moving, 0);
    soak_op_done(&b->move_op, K_BLK_MOVE, "backend move");
    for (int i = 0; i < NCO; i++) {
        CoWorker *w = &b->cw[i];

        if (w->parked) {
            w->parked = false;
            b->idle--;
            aio_co_enter(to->ctx, w->co);
        }
    }
    for (int i = 0; i < NCB; i++) {
        CbWorker *w = &b->bw[i];

        if (w->parked) {
            w->parked = false;
            b->idle--;
            cb_batch(w);
        }
    }
}

/* From @l's tick: maybe move one of the backends attached to @l. */
void blk_loop_step(Loop *l)
{
    Backend *b;

    if (!nbackends || !rng_one_in(&l->rng, 8)) {
        return;
    }
    b = &backends[rng_below(&l->rng, (uint32_t)nbackends)];
    if (backend_loop(b) != l || qatomic_read(&b->moving)) {
        return;
    }
    if (!soak_op_start(&b->move_op, K_BLK_MOVE)) {
        return;
    }
    b->move_to = &soak_loops[(l->idx + 1 + (int)rng_below(&l->rng, SOAK_NLOOPS - 1))
                             % SOAK_NLOOPS];
    qatomic_set(&b->moving, 1);
    maybe_move(b);
}

/* ------------------------------------------------------------------ */
/* Coroutine workers                                                   */

/* One request from a coroutine; false when the run is stopping. */
static bool coroutine_fn co_req(CoWorker *w, int type, int first, int npages)
{
    Backend *b = w->b;
    QEMUIOVector qiov;
    struct iovec iov[3];
    uint64_t page0 = w->first_page + (uint64_t)first;
    int ret;

    if (!soak_op_start(&w->op, b->kind)) {
        return false;
    }
    if (type == QEMU_AIO_FLUSH) {
        ret = aio_block_co_submit(b->b, file_fd, 0, NULL, QEMU_AIO_FLUSH);
        soak_op_done(&w->op, b->kind, "flush (coroutine)");
        soak_note(b->kind, N_FLUSH);
        if (ret) {
            soak_error("%s: flush failed: %s", soak_kind_name(b->kind),
                       strerror(-ret));
        }
        return true;
    }
    if (type == QEMU_AIO_WRITE) {
        for (int i = 0; i < npages; i++) {
            page_fill(w->buf + (size_t)i * PAGE, page0 + (uint64_t)i,
                      w->ver[first + i] + 1);
        }
    } else {
        memset(w->buf, 0xA5, (size_t)npages * PAGE);
    }
    build_qiov(&qiov, iov, w->buf, npages, &w->rng);
    ret = aio_block_co_submit(b->b, file_fd, page0 * PAGE, &qiov, type);
    soak_op_done(&w->op, b->kind, "request (coroutine)");
    soak_note(b->kind, type == QEMU_AIO_WRITE ? N_WRITE : N_READ);
    soak_note_add(b->kind, N_BYTES, (uint64_t)npages * PAGE);
    if (soak_cur_loop() != backend_loop(b)) {
        soak_error("%s: coroutine resumed outside the backend's loop",
                   soak_kind_name(b->kind));
    }
    if (ret) {
        soak_error("%s: %s of %d pages at page %llu failed: %s",
                   soak_kind_name(b->kind),
                   type == QEMU_AIO_WRITE ? "write" : "read", npages,
                   (unsigned long long)page0, strerror(-ret));
        return true;
    }
    if (type == QEMU_AIO_WRITE) {
        for (int i = 0; i < npages; i++) {
            w->ver[first + i]++;
        }
    } else {
        for (int i = 0; i < npages; i++) {
            if (!page_check(w->buf + (size_t)i * PAGE, page0 + (uint64_t)i,
                            w->ver[first + i], soak_kind_name(b->kind))) {
                break;
            }
        }
    }
    return true;
}

static void coroutine_fn co_worker(void *opaque)
{
    CoWorker *w = opaque;
    Backend *b = w->b;

    for (;;) {
        int npages = 1 + (int)rng_below(&w->rng, MAX_RUN);
        int first = (int)rng_below(&w->rng, AREA_PAGES - npages + 1);

        if (soak_is_stopping()) {
            break;
        }
        if (qatomic_read(&b->moving)) {
            w->parked = true;
            worker_idle(b);
            qemu_coroutine_yield();     /* attach_bh enters us again */
            continue;
        }
        if (!co_req(w, QEMU_AIO_WRITE, first, npages) ||
            !co_req(w, QEMU_AIO_READ, first, npages)) {
            break;
        }
        if (rng_one_in(&w->rng, 4)) {
            npages = 1 + (int)rng_below(&w->rng, MAX_RUN);
            first = (int)rng_below(&w->rng, AREA_PAGES - npages + 1);
            co_req(w, QEMU_AIO_READ, first, npages);
        }
        if (rng_one_in(&w->rng, 128)) {
            co_req(w, QEMU_AIO_FLUSH, 0, 0);
        }
        if (rng_one_in(&w->rng, 2)) {
            /* Pace the disk traffic; a timer wakes us in this loop. */
            qemu_co_sleep_ns(QEMU_CLOCK_REALTIME, rng_below(&w->rng, 200000));
        }
    }
    w->exited = true;
    worker_idle(b);
    co_alive_dec();
}

/* ------------------------------------------------------------------ */
/* Callback workers                                                    */

static void cb_done(void *opaque, int ret);

static void cb_submit(CbReq *q, int type)
{
    CbWorker *w = q->w;
    Backend *b = w->b;

    q->acb = aio_block_submit(b->b, file_fd,
                              (w->first_page + (uint64_t)q->first) * PAGE,
                              type == QEMU_AIO_FLUSH ? NULL : &q->qiov, type,
                              cb_done, q);
    if (!q->acb) {
        soak_error("aio_block_submit returned NULL");
    }
}

static void cb_finish(CbWorker *w)
{
    if (--w->inflight == 0) {
        cb_batch(w);
    }
}

static void cb_done(void *opaque, int ret)
{
    CbReq *q = opaque;
    CbWorker *w = q->w;
    Backend *b = w->b;
    uint64_t page0 = w->first_page + (uint64_t)q->first;

    soak_expect_loop(backend_loop(b), "block request callback");
    soak_op_done(&q->op, b->kind, "request (callback)");
    if (q->flush) {
        soak_note(b->kind, ret == -ECANCELED ? N_CANCELLED : N_FLUSH);
        if (ret && ret != -ECANCELED) {
            soak_error("%s: flush failed: %s", soak_kind_name(b->kind),
                       strerror(-ret));
        }
        cb_finish(w);
        return;
    }
    if (ret == -ECANCELED) {
        soak_note(b->kind, N_CANCELLED);
    } else if (ret) {
        soak_error("%s: callback %s of %d pages at page %llu failed: %s",
                   soak_kind_name(b->kind), q->write ? "write" : "read",
                   q->npages, (unsigned long long)page0, strerror(-ret));
    } else {
        soak_note(b->kind, q->write ? N_WRITE : N_READ);
        soak_note_add(b->kind, N_BYTES, (uint64_t)q->npages * PAGE);
        if (q->write) {
            for (int i = 0; i < q->npages; i++) {
                w->ver[q->first + i]++;
            }
        } else {
            for (int i = 0; i < q->npages; i++) {
                if (!page_check(q->buf + (size_t)i * PAGE, page0 + (uint64_t)i,
                                w->ver[q->first + i], soak_kind_name(b->kind))) {
                    break;
                }
            }
        }
    }
    if (q->write && soak_op_start(&q->op, b->kind)) {
        /* Check what the write left, cancelled or not. */
        q->write = false;
        memset(q->buf, 0xA5, (size_t)q->npages * PAGE);
        cb_submit(q, QEMU_AIO_READ);
        return;
    }
    cb_finish(w);
}

static void cb_batch(CbWorker *w)
{
    Backend *b = w->b;
    int n = 0;

    if (soak_is_stopping()) {
        w->exited = true;
        worker_idle(b);
        return;
    }
    if (qatomic_read(&b->moving)) {
        w->parked = true;
        worker_idle(b);
        return;
    }
    aio_block_plug(b->b);
    for (int s = 0; s < NSUB; s++) {
        CbReq *q = &w->req[s];
        uint64_t page0;

        if (!soak_op_start(&q->op, b->kind)) {
            break;
        }
        q->npages = 1 + (int)rng_below(&w->rng, MAX_RUN);
        q->first = s * SUB_PAGES + (int)rng_below(&w->rng, (uint32_t)(SUB_PAGES - q->npages + 1));
        q->write = true;
        page0 = w->first_page + (uint64_t)q->first;
        for (int i = 0; i < q->npages; i++) {
            page_fill(q->buf + (size_t)i * PAGE, page0 + (uint64_t)i,
                      w->ver[q->first + i] + 1);
        }
        build_qiov(&q->qiov, q->iov, q->buf, q->npages, &w->rng);
        w->inflight++;
        n++;
        cb_submit(q, QEMU_AIO_WRITE);
    }
    if (rng_one_in(&w->rng, 16) && soak_op_start(&w->flush.op, b->kind)) {
        w->inflight++;
        n++;
        cb_submit(&w->flush, QEMU_AIO_FLUSH);
    }
    /* Cancelled while queued: -ECANCELED, and nothing written. */
    for (int s = 0; s < n && s < NSUB; s++) {
        if (rng_one_in(&w->rng, 8)) {
            bdrv_aio_cancel_async(w->req[s].acb);
        }
    }
    aio_block_plug(b->b);       /* nested plug */
    aio_block_unplug(b->b);
    aio_block_unplug(b->b);
    /* Cancelled after submission: completes either way. Safe: no
     * callback of this batch runs before this function returns. */
    for (int s = 0; s < n && s < NSUB; s++) {
        if (rng_one_in(&w->rng, 16)) {
            bdrv_aio_cancel_async(w->req[s].acb);
        }
    }
    if (n == 0) {
        /* Stopping since the check above. */
        w->exited = true;
        worker_idle(b);
    }
}

/* ------------------------------------------------------------------ */
/* Setup and teardown                                                  */

static void start_bh(void *opaque)
{
    Backend *b = opaque;
    Loop *l = backend_loop(b);

    soak_expect_loop(l, "backend start");
    aio_block_backend_attach(b->b, l->ctx);
    for (int i = 0; i < NCO; i++) {
        b->cw[i].co = qemu_coroutine_create(co_worker, &b->cw[i]);
        qemu_coroutine_enter(b->cw[i].co);
    }
    for (int i = 0; i < NCB; i++) {
        cb_batch(&b->bw[i]);
    }
}

static void *aligned_alloc_or_die(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, PAGE, len) != 0) {
        abort();
    }
    return p;
}

/* An unlinked scratch file in @dir, O_DIRECT if the directory takes it. */
static int open_scratch(const char *dir, bool *direct)
{
    char path[PATH_MAX];
    uint8_t *buf = aligned_alloc_or_die(PAGE);
    int fd;

    memset(buf, 0, PAGE);
    snprintf(path, sizeof(path), "%s/aioloop-soak-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC | O_DIRECT);
    *direct = fd >= 0 && pwrite(fd, buf, PAGE, 0) == PAGE &&
              ftruncate(fd, 0) == 0;
    if (fd >= 0) {
        unlink(path);
        if (!*direct) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s/aioloop-soak-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0) {
            unlink(path);
        }
    }
    free(buf);
    return fd;
}

int blk_setup(const char *dir, int per_engine)
{
    static const struct { AioBlockEngine engine; SoakKind kind; } engines[] = {
        { AIO_ENGINE_IO_URING, K_BLK_IO_URING },
        { AIO_ENGINE_LINUX_AIO, K_BLK_LINUX_AIO },
        { AIO_ENGINE_THREADS, K_BLK_THREADS },
    };
    int nengines = 0;

    file_fd = open_scratch(dir, &file_direct);
    if (file_fd < 0) {
        printf("soak: cannot create a scratch file in %s: %s\n", dir,
               strerror(errno));
        for (unsigned e = 0; e < 3; e++) {
            soak_kind_disable(engines[e].kind);
        }
        soak_kind_disable(K_BLK_MOVE);
        return 0;
    }
    printf("soak: block: scratch file in %s, %s\n", dir,
           file_direct ? "O_DIRECT" : "buffered (O_DIRECT refused)");
    for (unsigned e = 0; e < 3; e++) {
        int made = 0;

        for (int k = 0; k < per_engine && nbackends < MAX_BACKENDS; k++) {
            Error *err = NULL;
            AioBlockBackend *ab = aio_block_backend_new(engines[e].engine, &err);
            Backend *b;

            if (!ab) {
                printf("soak: block: engine %s not run: %s\n",
                       aio_block_engine_name(engines[e].engine),
                       err ? error_get_pretty(err) : "?");
                error_free(err);
                break;
            }
            b = &backends[nbackends];
            b->idx = nbackends++;
            b->engine = engines[e].engine;
            b->kind = engines[e].kind;
            b->b = ab;
            qatomic_set(&b->loop, &soak_loops[b->idx % SOAK_NLOOPS]);
            qemu_event_init(&b->ev, false);
            for (int i = 0; i < NCO; i++) {
                CoWorker *w = &b->cw[i];

                w->b = b;
                w->idx = i;
                rng_seed(&w->rng, 5000 + (uint64_t)b->idx * 16 + (uint64_t)i);
                w->first_page = ((uint64_t)b->idx * NWORKERS + (uint64_t)i) *
                                AREA_PAGES;
                w->buf = aligned_alloc_or_die((size_t)MAX_RUN * PAGE);
                co_alive_inc();
            }
            for (int i = 0; i < NCB; i++) {
                CbWorker *w = &b->bw[i];

                w->b = b;
                w->idx = i;
                rng_seed(&w->rng, 9000 + (uint64_t)b->idx * 16 + (uint64_t)i);
                w->first_page = ((uint64_t)b->idx * NWORKERS + NCO +
                                 (uint64_t)i) * AREA_PAGES;
                for (int s = 0; s < NSUB; s++) {
                    w->req[s].w = w;
                    w->req[s].buf = aligned_alloc_or_die((size_t)SUB_PAGES * PAGE);
                }
                w->flush.w = w;
                w->flush.flush = true;
            }
            made++;
        }
        if (made) {
            nengines++;
        } else {
            soak_kind_disable(engines[e].kind);
        }
    }
    if (!nbackends) {
        soak_kind_disable(K_BLK_MOVE);
    }
    printf("soak: block: %d backends, %d engines, %d workers each "
           "(%d coroutine, %d callback)\n", nbackends, nengines, NWORKERS,
           NCO, NCB);
    for (int i = 0; i < nbackends; i++) {
        aio_bh_schedule_oneshot(backend_loop(&backends[i])->ctx, start_bh,
                                &backends[i]);
    }
    return nengines;
}

/* In the thread of the loop @b is attached to: every worker must have
 * finished and no move be pending. */
static void detach_quiet(Backend *b)
{
    if (qatomic_read(&b->moving) || b->idle != NWORKERS) {
        soak_error("backend %d (%s) not quiet at teardown: moving %d, "
                   "idle %d of %d", b->idx, aio_block_engine_name(b->engine),
                   qatomic_read(&b->moving), b->idle, NWORKERS);
    }
    aio_block_backend_detach(b->b, backend_loop(b)->ctx);
}

static void detach_bh(void *opaque)
{
    Backend *b = opaque;

    detach_quiet(b);
    qemu_event_set(&b->ev);
}

/* Reads the whole area of a worker with pread() and checks it. */
static void verify_area(uint64_t first_page, const uint32_t *ver,
                        const char *what)
{
    uint8_t *buf = aligned_alloc_or_die((size_t)AREA_PAGES * PAGE);
    ssize_t n = pread(file_fd, buf, (size_t)AREA_PAGES * PAGE,
                      (off_t)(first_page * PAGE));

    if (n < 0) {
        soak_error("final check: pread: %s", strerror(errno));
    } else {
        /* Beyond the end of the file reads as the hole it is. */
        memset(buf + n, 0, (size_t)AREA_PAGES * PAGE - (size_t)n);
        for (int i = 0; i < AREA_PAGES; i++) {
            if (!page_check(buf + (size_t)i * PAGE, first_page + (uint64_t)i,
                            ver[i], what)) {
                break;
            }
        }
    }
    free(buf);
}

/* Main thread, main loop no longer running, IOThreads still running. */
void blk_teardown(void)
{
    for (int i = 0; i < nbackends; i++) {
        Backend *b = &backends[i];
        Loop *l = backend_loop(b);

        if (l->iothread) {
            aio_bh_schedule_oneshot(l->ctx, detach_bh, b);
            qemu_event_wait(&b->ev);
        } else {
            detach_quiet(b);
        }
        aio_block_backend_free(b->b);
        qemu_event_destroy(&b->ev);
        if (corrupt_at_teardown && i == 0) {
            /* Behind the library's back: the final check must see it. */
            uint8_t *junk = aligned_alloc_or_die(PAGE);

            memset(junk, 0xEE, PAGE);
            if (pwrite(file_fd, junk, PAGE,
                       (off_t)(b->cw[0].first_page + 3) * PAGE) != PAGE) {
                soak_error("injection: pwrite failed");
            }
            free(junk);
        }
        for (int k = 0; k < NCO; k++) {
            verify_area(b->cw[k].first_page, b->cw[k].ver, "final check");
            free(b->cw[k].buf);
        }
        for (int k = 0; k < NCB; k++) {
            verify_area(b->bw[k].first_page, b->bw[k].ver, "final check");
            for (int s = 0; s < NSUB; s++) {
                free(b->bw[k].req[s].buf);
            }
        }
    }
    if (file_fd >= 0) {
        close(file_fd);
        file_fd = -1;
    }
}

void blk_inject_corruption(void)
{
    corrupt_at_teardown = true;
}

void blk_report(void)
{
    int per_loop[SOAK_NLOOPS] = { 0 };

    for (int i = 0; i < nbackends; i++) {
        per_loop[backend_loop(&backends[i])->idx]++;
    }
    printf("block: %d backends (%s), final placement:", nbackends,
           file_direct ? "O_DIRECT" : "buffered");
    for (int i = 0; i < SOAK_NLOOPS; i++) {
        printf(" %s=%d", soak_loops[i].name, per_loop[i]);
    }
    printf("\n");
}

void blk_diag(void)
{
    for (int i = 0; i < nbackends; i++) {
        Backend *b = &backends[i];

        printf("  backend %d %-9s on %-6s moving=%d to=%s idle=%d/%d\n", i,
               aio_block_engine_name(b->engine), backend_loop(b)->name,
               qatomic_read(&b->moving),
               b->move_to ? b->move_to->name : "-", b->idle, NWORKERS);
    }
}
