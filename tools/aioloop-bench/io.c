/*
 * io.c - "aioloop-bench io": block I/O on one file through an
 * AioBlockBackend, in the manner of fio.
 *
 * Shape of a run
 * --------------
 * A job owns iodepth slots. A slot is one request's worth of state: a
 * 4096-aligned buffer of bs bytes, the QEMUIOVector describing it (made
 * once with qemu_iovec_init_buf(), never copied), its offset and type,
 * and its submission time. In callback mode every slot is submitted once
 * when a phase starts and resubmitted from its own completion callback
 * until the phase ends, so the steady state costs, per I/O, one clock
 * read, one histogram increment, one PRNG step and the library's submit
 * and completion paths; nothing is allocated. With --coroutines each slot
 * is a coroutine looping over aio_block_co_submit(). With --batch the
 * callbacks park their slot instead, and the callback that completes a
 * batch submits all of its slots between aio_block_plug() and
 * aio_block_unplug().
 *
 * All of that runs in the loop thread of one AioContext: the main
 * thread's own context (which the main thread drives with
 * aio_poll(ctx, true) until the phase is over), or with --iothread the
 * context of an IOThread, to which the main thread hands the start of
 * each phase as a bottom half and then sleeps on a QemuEvent that the
 * last completion sets. Either way the phase starts inside aio_poll(),
 * so coroutines know their context.
 *
 * Phases: with --verify, a sequential write pass lays the pattern over
 * the whole range first; then the measured run; and after a write-only
 * run a sequential read pass checks everything. Only the measured run
 * feeds the latency histogram, the CPU figures and the progress line.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <aioloop/block-backend.h>
#include <aioloop/coroutine.h>
#include <aioloop/iothread.h>
#include <aioloop/thread.h>
#include <aioloop/timer.h>

#include "commands.h"
#include "histogram.h"
#include "options.h"
#include "report.h"

#define IO_DEFAULT_SIZE     (256ull << 20)
#define IO_FILL_CHUNK       (1u << 20)
#define IO_BUF_ALIGN        4096
#define IO_MAX_BUFFERS      (8ull << 30)    /* iodepth * bs */
#define IO_VERIFY_REPORTS   5               /* mismatches printed */

/* ------------------------------------------------------------------ */
/* Time, randomness, the data pattern                                  */

static inline uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a few cycles per number, plenty for picking offsets. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A number in [0, n) from one draw, by multiplication (no division). */
static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((unsigned __int128)rng_next(state) * n) >> 64);
#else
    return rng_next(state) % n;
#endif
}

/* The 8 bytes the pattern holds at 8-aligned file offset @pos: a
 * splitmix64-style mix of the offset, so that every word of the file is
 * different and a block read from the wrong place is caught. */
static inline uint64_t pattern_word(uint64_t pos)
{
    uint64_t z = pos + 0x9e3779b97f4a7c15ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint8_t pattern_byte(uint64_t pos)
{
    return (uint8_t)(pattern_word(pos & ~7ull) >> ((pos & 7) * 8));
}

/* Fill @len bytes of @buf with the pattern of file offsets [@off, ...). */
static void pattern_fill(uint8_t *buf, uint64_t off, size_t len)
{
    if (((off | len | (uintptr_t)buf) & 7) == 0) {
        uint64_t *w = (uint64_t *)buf;

        for (size_t i = 0; i < len / 8; i++) {
            w[i] = pattern_word(off + 8 * i);
        }
        return;
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern_byte(off + i);
    }
}

/* The index of the first byte of @buf that differs from the pattern of
 * [@off, @off + @len), or @len when all match. */
static size_t pattern_check(const uint8_t *buf, uint64_t off, size_t len)
{
    size_t i = 0;

    if (((off | len | (uintptr_t)buf) & 7) == 0) {
        const uint64_t *w = (const uint64_t *)buf;

        for (; i < len / 8; i++) {
            if (w[i] != pattern_word(off + 8 * i)) {
                break;
            }
        }
        i *= 8;
    }
    for (; i < len; i++) {
        if (buf[i] != pattern_byte(off + i)) {
            return i;
        }
    }
    return len;
}

/* ------------------------------------------------------------------ */
/* Signals and the scratch file                                        */

static volatile sig_atomic_t io_interrupted;
static char *scratch_path;

static void remove_scratch(void)
{
    if (scratch_path) {
        unlink(scratch_path);
    }
}

static void on_signal(int sig)
{
    if (io_interrupted) {
        /* Second signal: give up at once (unlink is signal-safe). */
        remove_scratch();
        _exit(128 + sig);
    }
    io_interrupted = 1;
}

static void install_signal_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* The job                                                             */

typedef struct IoJob IoJob;

typedef struct IoSlot {
    IoJob *job;
    uint8_t *buf;
    uint64_t offset;
    uint64_t start_ns;
    int type;                   /* QEMU_AIO_READ or QEMU_AIO_WRITE */
    Coroutine *co;
    QEMUIOVector qiov;          /* describes buf; never moved */
} IoSlot;

/* One pass over the file. */
typedef struct IoPhase {
    bool random;
    unsigned read_pct;          /* 100: reads only; 0: writes only */
    uint64_t limit;             /* I/Os to submit (UINT64_MAX: no limit) */
    uint64_t runtime_ns;        /* 0: no time limit */
    bool record;                /* the measured run */
} IoPhase;

typedef void IoLoopFn(IoJob *j);

struct IoJob {
    /* Fixed for the whole run. */
    const IoOptions *opt;
    AioBlockBackend *blk;
    AioContext *ctx;
    IOThread *iothread;
    int fd;
    uint64_t bs;
    uint64_t nblocks;
    unsigned iodepth;
    unsigned batch;
    bool coroutines;
    bool pattern;               /* --verify */
    bool progress_wanted;
    uint64_t corrupt_at;        /* test hook: corrupt this checked read */
    IoSlot *slots;
    IoSlot **ready;             /* --batch: slots waiting to be submitted */

    /* The current phase; loop thread only while it runs. */
    IoPhase ph;
    uint64_t deadline_ns;
    uint64_t rng;
    uint64_t seq_next;
    uint64_t submitted;
    unsigned active;            /* slots in flight or parked in ready */
    unsigned nready;
    bool stopping;
    uint64_t reads, writes;
    uint64_t errors, verify_errors, checked;
    int first_error;            /* -errno of the first failed I/O */
    uint64_t first_error_offset;
    int first_error_type;
    uint64_t start_ns, end_ns;
    Histogram *lat;
    QEMUTimer *progress;
    uint64_t progress_ns, progress_ios;

    /* Handing work to the loop and waiting for it. */
    IoLoopFn *call;
    bool done;                  /* main-thread loop */
    QemuEvent done_ev;          /* --iothread */
};

static void io_cb(void *opaque, int ret);

/* ---- the loop side ---- */

static void io_signal_done(IoJob *j)
{
    if (j->iothread) {
        qemu_event_set(&j->done_ev);
    } else {
        j->done = true;
    }
}

static void io_progress_cb(void *opaque)
{
    IoJob *j = opaque;
    uint64_t now = now_ns(), ios = j->reads + j->writes;
    double dt = (double)(now - j->progress_ns) / 1e9;
    double rate = dt > 0 ? (double)(ios - j->progress_ios) / dt : 0;
    double elapsed = (double)(now - j->start_ns) / 1e9;

    fprintf(stderr, "\r[%5.0fs] %.0f IOPS, %.1f MiB/s, p99 %.1f us",
            elapsed, rate, rate * (double)j->bs / 1048576.0,
            (double)hist_percentile(j->lat, 99) / 1000.0);
    if (j->ph.runtime_ns) {
        double left = (double)j->ph.runtime_ns / 1e9 - elapsed;

        fprintf(stderr, ", %.0fs left", left > 0 ? left : 0);
    } else if (j->ph.limit != UINT64_MAX) {
        fprintf(stderr, ", %.0f%% done",
                100.0 * (double)ios / (double)j->ph.limit);
    }
    fputs("\033[K", stderr);
    fflush(stderr);
    j->progress_ns = now;
    j->progress_ios = ios;
    timer_mod_ns(j->progress,
                 qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000000000);
}

static void io_phase_finished(IoJob *j)
{
    j->end_ns = now_ns();
    if (j->progress) {
        timer_free(j->progress);
        j->progress = NULL;
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    io_signal_done(j);
}

/* Whether a slot that just finished an I/O should start another. */
static inline bool io_may_continue(IoJob *j, uint64_t now)
{
    if (unlikely(j->stopping)) {
        return false;
    }
    if (unlikely(j->submitted >= j->ph.limit ||
                 (j->deadline_ns && now >= j->deadline_ns) ||
                 io_interrupted)) {
        j->stopping = true;
        return false;
    }
    return true;
}

/* A slot is done for this phase; the last one ends it. */
static void io_slot_idle(IoJob *j)
{
    j->active--;
    if (j->nready) {
        /* Stopping with slots parked for a batch: they are done too. */
        j->active -= j->nready;
        j->nready = 0;
    }
    if (j->active == 0) {
        io_phase_finished(j);
    }
}

/* Choose the next request of @s; @now is its submission time. */
static inline void io_prepare(IoJob *j, IoSlot *s, uint64_t now)
{
    uint64_t blk;

    if (j->ph.random) {
        blk = rng_below(&j->rng, j->nblocks);
    } else {
        blk = j->seq_next;
        j->seq_next = blk + 1 == j->nblocks ? 0 : blk + 1;
    }
    s->offset = blk * j->bs;
    if (j->ph.read_pct == 100) {
        s->type = QEMU_AIO_READ;
    } else if (j->ph.read_pct == 0) {
        s->type = QEMU_AIO_WRITE;
    } else {
        s->type = rng_below(&j->rng, 100) < j->ph.read_pct ?
                  QEMU_AIO_READ : QEMU_AIO_WRITE;
    }
    if (unlikely(j->pattern)) {
        if (s->type == QEMU_AIO_WRITE) {
            pattern_fill(s->buf, s->offset, j->bs);
        } else {
            /* A read that claims success without filling the buffer
             * must not pass for the previous block's data. */
            memset(s->buf, 0xa5, j->bs);
        }
        now = now_ns();
    }
    s->start_ns = now;
    j->submitted++;
}

static void io_check(IoJob *j, IoSlot *s)
{
    size_t bad;

    j->checked++;
    if (unlikely(j->corrupt_at && j->checked == j->corrupt_at)) {
        s->buf[j->bs / 2] ^= 0x01;
    }
    bad = pattern_check(s->buf, s->offset, j->bs);
    if (bad == j->bs) {
        return;
    }
    if (j->verify_errors < IO_VERIFY_REPORTS) {
        aiob_note("verify: block at offset %llu: byte %zu is 0x%02x, "
                  "expected 0x%02x", (unsigned long long)s->offset, bad,
                  s->buf[bad], pattern_byte(s->offset + bad));
    }
    j->verify_errors++;
}

/* Count the I/O that @s finished at @now with result @ret. */
static inline void io_account(IoJob *j, IoSlot *s, int ret, uint64_t now)
{
    if (unlikely(ret < 0)) {
        if (j->errors++ == 0) {
            j->first_error = ret;
            j->first_error_offset = s->offset;
            j->first_error_type = s->type;
        }
        j->stopping = true;
        return;
    }
    if (likely(j->ph.record)) {
        hist_record(j->lat, now - s->start_ns);
    }
    if (s->type == QEMU_AIO_READ) {
        j->reads++;
        if (unlikely(j->pattern)) {
            io_check(j, s);
        }
    } else {
        j->writes++;
    }
}

static inline void io_submit_slot(IoJob *j, IoSlot *s, uint64_t now)
{
    io_prepare(j, s, now);
    aio_block_submit(j->blk, j->fd, s->offset, &s->qiov, s->type, io_cb, s);
}

/* --batch: submit the parked slots together. */
static void io_submit_batch(IoJob *j, uint64_t now)
{
    uint64_t left = j->ph.limit - j->submitted;
    unsigned n = j->nready;

    if (left < n) {
        /* --count reached inside the batch: the rest are done. */
        j->active -= n - (unsigned)left;
        n = (unsigned)left;
    }
    j->nready = 0;
    aio_block_plug(j->blk);
    for (unsigned i = 0; i < n; i++) {
        io_submit_slot(j, j->ready[i], now);
    }
    aio_block_unplug(j->blk);
}

/* Completion callback of callback mode: account, then go again. */
static void io_cb(void *opaque, int ret)
{
    IoSlot *s = opaque;
    IoJob *j = s->job;
    uint64_t now = now_ns();

    io_account(j, s, ret, now);
    if (unlikely(!io_may_continue(j, now))) {
        io_slot_idle(j);
        return;
    }
    if (j->batch) {
        j->ready[j->nready++] = s;
        if (j->nready >= j->batch) {
            io_submit_batch(j, now);
        }
        return;
    }
    io_submit_slot(j, s, now);
}

/* Coroutine mode: one coroutine per slot. */
static void coroutine_fn io_co_slot(void *opaque)
{
    IoSlot *s = opaque;
    IoJob *j = s->job;
    uint64_t now = now_ns();
    int ret;

    while (io_may_continue(j, now)) {
        io_prepare(j, s, now);
        ret = aio_block_co_submit(j->blk, j->fd, s->offset, &s->qiov,
                                  s->type);
        now = now_ns();
        io_account(j, s, ret, now);
    }
    io_slot_idle(j);
}

/* Bottom half: start a phase (the state was reset by io_run_phase). */
static void io_phase_start(void *opaque)
{
    IoJob *j = opaque;
    uint64_t now = now_ns();
    unsigned n = j->iodepth;

    if (j->ph.limit < n) {
        n = (unsigned)j->ph.limit;
    }
    j->start_ns = now;
    j->deadline_ns = j->ph.runtime_ns ? now + j->ph.runtime_ns : 0;
    j->active = n;
    if (j->ph.record && j->progress_wanted) {
        j->progress_ns = now;
        j->progress = aio_timer_new(j->ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                    io_progress_cb, j);
        timer_mod_ns(j->progress,
                     qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + 1000000000);
    }
    if (j->coroutines) {
        for (unsigned i = 0; i < n; i++) {
            j->slots[i].co = qemu_coroutine_create(io_co_slot, &j->slots[i]);
            qemu_coroutine_enter(j->slots[i].co);
        }
        return;
    }
    if (j->batch) {
        aio_block_plug(j->blk);
    }
    for (unsigned i = 0; i < n; i++) {
        io_submit_slot(j, &j->slots[i], now);
    }
    if (j->batch) {
        aio_block_unplug(j->blk);
    }
}

/* ---- the caller's side ---- */

static void io_wait_prepare(IoJob *j)
{
    if (j->iothread) {
        qemu_event_reset(&j->done_ev);
    } else {
        j->done = false;
    }
}

static void io_wait(IoJob *j)
{
    if (j->iothread) {
        qemu_event_wait(&j->done_ev);
    } else {
        while (!j->done) {
            aio_poll(j->ctx, true);
        }
    }
}

static void io_call_bh(void *opaque)
{
    IoJob *j = opaque;

    j->call(j);
    io_signal_done(j);
}

/* Run @fn(@j) in the loop thread and wait for it. */
static void io_in_loop(IoJob *j, IoLoopFn *fn)
{
    j->call = fn;
    io_wait_prepare(j);
    aio_bh_schedule_oneshot(j->ctx, io_call_bh, j);
    io_wait(j);
}

static void io_attach(IoJob *j)
{
    aio_block_backend_attach(j->blk, j->ctx);
}

static void io_detach(IoJob *j)
{
    aio_block_backend_detach(j->blk, j->ctx);
}

/* Run one phase to its end. The loop is idle: the state may be reset
 * from here (the bottom half's scheduling publishes it). */
static void io_run_phase(IoJob *j, const IoPhase *ph)
{
    j->ph = *ph;
    j->seq_next = 0;
    j->submitted = 0;
    j->active = 0;
    j->nready = 0;
    j->stopping = false;
    j->reads = j->writes = 0;
    j->errors = 0;
    j->progress_ios = 0;
    io_wait_prepare(j);
    aio_bh_schedule_oneshot(j->ctx, io_phase_start, j);
    io_wait(j);
}

/* ------------------------------------------------------------------ */
/* Setting up                                                          */

/* Write the pattern over [@from, @to) of @fd with pwrite(). */
static void fill_file(int fd, const char *path, uint64_t from, uint64_t to,
                      bool tell)
{
    uint8_t *buf;
    char sz[32];
    uint64_t off = from;

    if (from >= to) {
        return;
    }
    if (tell) {
        fprintf(stderr, "filling %s with %s of data...",
                path, aiob_format_size(to - from, sz, sizeof(sz)));
        fflush(stderr);
    }
    if (posix_memalign((void **)&buf, IO_BUF_ALIGN, IO_FILL_CHUNK) != 0) {
        aiob_fail("out of memory");
    }
    while (off < to) {
        size_t len = to - off < IO_FILL_CHUNK ? (size_t)(to - off)
                                               : IO_FILL_CHUNK;
        size_t done = 0;

        if (io_interrupted) {
            aiob_fail("interrupted while filling %s", path);
        }
        pattern_fill(buf, off, len);
        while (done < len) {
            ssize_t r = pwrite(fd, buf + done, len - done,
                               (off_t)(off + done));

            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                aiob_usage_error("cannot fill %s: %s", path,
                                 r < 0 ? strerror(errno) : "short write");
            }
            done += (size_t)r;
        }
        off += len;
    }
    if (fdatasync(fd) < 0) {
        aiob_usage_error("cannot fill %s: fdatasync: %s", path,
                         strerror(errno));
    }
    free(buf);
    if (tell) {
        fputs(" done\n", stderr);
    }
}

typedef struct IoFile {
    char *path;                 /* for the report */
    bool scratch;
    bool regular;
    uint64_t size;
    int fd;
} IoFile;

/* Open (creating and filling as needed) the file of the run. Problems
 * with it are usage errors (exit status 2). */
static void io_open_file(const IoOptions *o, IoFile *f, bool tell)
{
    bool need_write = io_rw_writes(o->rw) || o->verify;
    uint64_t have = 0;
    struct stat st;
    int flags, fill_fd;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->size = o->size ? o->size : IO_DEFAULT_SIZE;
    f->regular = true;

    if (!o->file) {
        char cwd[PATH_MAX], name[64];

        snprintf(name, sizeof(name), AIOB_NAME ".%ld.tmp", (long)getpid());
        if (!getcwd(cwd, sizeof(cwd))) {
            aiob_usage_error("cannot create a scratch file: getcwd: %s",
                             strerror(errno));
        }
        f->path = malloc(strlen(cwd) + strlen(name) + 2);
        if (!f->path) {
            aiob_fail("out of memory");
        }
        sprintf(f->path, "%s/%s", cwd, name);
        fill_fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fill_fd < 0) {
            aiob_usage_error("cannot create scratch file %s: %s", f->path,
                             strerror(errno));
        }
        scratch_path = f->path;
        atexit(remove_scratch);
        f->scratch = true;
    } else {
        f->path = strdup(o->file);
        if (!f->path) {
            aiob_fail("out of memory");
        }
        fill_fd = -1;
        if (stat(f->path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                aiob_usage_error("%s is a directory", f->path);
            } else if (S_ISBLK(st.st_mode)) {
                f->regular = false;
            } else if (!S_ISREG(st.st_mode)) {
                aiob_usage_error("%s is not a regular file or block device",
                                 f->path);
            } else {
                have = (uint64_t)st.st_size;
                if (!o->size && have >= o->bs) {
                    f->size = have;
                }
            }
        } else if (errno != ENOENT) {
            aiob_usage_error("cannot use %s: %s", f->path, strerror(errno));
        }
        if (f->regular && have < f->size) {
            /* Missing or too short: create or extend it with data. */
            fill_fd = open(f->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fill_fd < 0) {
                aiob_usage_error("cannot write %s: %s", f->path,
                                 strerror(errno));
            }
        }
    }
    if (fill_fd >= 0) {
        fill_file(fill_fd, f->path, have, f->size, tell);
        close(fill_fd);
    }

    flags = (need_write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (o->direct) {
        flags |= O_DIRECT;
    }
    f->fd = open(f->path, flags);
    if (f->fd < 0 && o->direct && errno == EINVAL) {
        aiob_usage_error("%s: the file system does not support O_DIRECT "
                         "(use --direct 0)", f->path);
    }
    if (f->fd < 0) {
        aiob_usage_error("cannot open %s%s: %s", f->path,
                         need_write ? " for writing" : "", strerror(errno));
    }
    if (!f->regular) {
        uint64_t dev_size = 0;

        if (ioctl(f->fd, BLKGETSIZE64, &dev_size) < 0) {
            aiob_usage_error("%s: cannot get the device size: %s", f->path,
                             strerror(errno));
        }
        if (o->size && o->size > dev_size) {
            aiob_usage_error("--size %llu is larger than %s (%llu bytes)",
                             (unsigned long long)o->size, f->path,
                             (unsigned long long)dev_size);
        }
        f->size = o->size ? o->size : dev_size;
    }
    if (f->size < o->bs) {
        aiob_usage_error("%s holds %llu bytes, less than --bs %llu", f->path,
                         (unsigned long long)f->size,
                         (unsigned long long)o->bs);
    }
    /* Start from a cold page cache, as fio does (matters for
     * --direct 0; harmless otherwise). */
    if (f->regular) {
        posix_fadvise(f->fd, 0, (off_t)f->size, POSIX_FADV_DONTNEED);
    }
}

/* The backend for @want, falling back in AIO_ENGINE_AUTO order. Fills
 * @why with the reasons of the engines that were refused. */
static AioBlockBackend *io_open_engine(AioBlockEngine want, char *why,
                                       size_t len)
{
    static const AioBlockEngine order[] = {
        AIO_ENGINE_IO_URING, AIO_ENGINE_LINUX_AIO, AIO_ENGINE_THREADS,
    };
    size_t i = 0, used = 0;

    why[0] = '\0';
    if (want == AIO_ENGINE_AUTO) {
        want = AIO_ENGINE_IO_URING;
    }
    while (i < ARRAY_SIZE(order) && order[i] != want) {
        i++;
    }
    for (; i < ARRAY_SIZE(order); i++) {
        Error *err = NULL;
        AioBlockBackend *b = aio_block_backend_new(order[i], &err);
        int n;

        if (b) {
            return b;
        }
        n = snprintf(why + used, len - used, "%s%s unavailable: %s",
                     used ? "; " : "", aio_block_engine_name(order[i]),
                     err ? error_get_pretty(err) : "unknown reason");
        if (n > 0 && (size_t)n < len - used) {
            used += (size_t)n;
        }
        error_free(err);
    }
    return NULL;
}

static uint64_t timeval_ns(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000000000ull +
           (uint64_t)tv->tv_usec * 1000ull;
}

static void io_alloc_slots(IoJob *j)
{
    j->slots = calloc(j->iodepth, sizeof(*j->slots));
    j->ready = calloc(j->iodepth, sizeof(*j->ready));
    if (!j->slots || !j->ready) {
        aiob_fail("out of memory");
    }
    for (unsigned i = 0; i < j->iodepth; i++) {
        IoSlot *s = &j->slots[i];
        void *buf;

        if (posix_memalign(&buf, IO_BUF_ALIGN, j->bs) != 0) {
            aiob_fail("out of memory for %u buffers of %llu bytes",
                      j->iodepth, (unsigned long long)j->bs);
        }
        s->job = j;
        s->buf = buf;
        /* Writes carry data, not zeros (and touching the memory now keeps
         * page faults out of the run). */
        pattern_fill(s->buf, (uint64_t)i * j->bs, j->bs);
        qemu_iovec_init_buf(&s->qiov, s->buf, j->bs);
    }
}

static void io_free_slots(IoJob *j)
{
    for (unsigned i = 0; i < j->iodepth; i++) {
        qemu_iovec_destroy(&j->slots[i].qiov);
        free(j->slots[i].buf);
    }
    free(j->slots);
    free(j->ready);
}

/* Run a --verify pass over every block: sequential, pattern writes or
 * checked reads. */
static void io_verify_pass(IoJob *j, bool write)
{
    IoPhase ph = {
        .random = false,
        .read_pct = write ? 0 : 100,
        .limit = j->nblocks,
    };

    io_run_phase(j, &ph);
}

static void io_report_errors(IoJob *j, const char *what)
{
    if (j->errors) {
        aiob_note("%s%s at offset %llu failed: %s%s", what,
                  j->first_error_type == QEMU_AIO_READ ? "read" : "write",
                  (unsigned long long)j->first_error_offset,
                  strerror(-j->first_error),
                  j->errors > 1 ? " (and more)" : "");
    }
}

int aiob_cmd_io(int argc, char **argv)
{
    IoOptions o;
    IoFile file;
    IoJob j;
    IoReport rep;
    Histogram *lat;
    Error *err = NULL;
    char why[512];
    struct rusage ru0, ru1;
    const char *env;
    bool tty;
    uint64_t run_reads, run_writes, run_errors;
    int status = 0;

    io_parse_options(argc, argv, &o);
    if ((uint64_t)o.iodepth * o.bs > IO_MAX_BUFFERS) {
        aiob_usage_error("--iodepth %u with --bs %llu needs more than 8 GiB "
                         "of buffers", o.iodepth, (unsigned long long)o.bs);
    }
    tty = !o.quiet && isatty(STDERR_FILENO);
    install_signal_handlers();

    memset(&j, 0, sizeof(j));
    j.opt = &o;
    j.bs = o.bs;
    j.iodepth = o.iodepth;
    j.batch = o.batch;
    j.coroutines = o.coroutines;
    j.pattern = o.verify;
    j.progress_wanted = tty;
    j.rng = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x6a09e667f3bcc909ull;
    if (j.rng == 0) {
        j.rng = 1;
    }
    env = getenv("AIOLOOP_BENCH_CORRUPT_READ");
    if (env) {
        j.corrupt_at = strtoull(env, NULL, 10);
    }

    io_open_file(&o, &file, tty);
    j.fd = file.fd;
    j.nblocks = file.size / o.bs;

    j.blk = io_open_engine(o.engine, why, sizeof(why));
    if (!j.blk) {
        aiob_fail("no block engine is available: %s", why);
    }
    if (why[0] && !o.quiet) {
        aiob_note("engine %s used (%s)",
                  aio_block_engine_name(aio_block_backend_engine(j.blk)),
                  why);
    }

    lat = malloc(sizeof(*lat));
    if (!lat) {
        aiob_fail("out of memory");
    }
    hist_init(lat);
    j.lat = lat;
    io_alloc_slots(&j);

    if (o.iothread) {
        j.iothread = iothread_create(AIOB_NAME "-io", &err);
        if (!j.iothread) {
            aiob_fail("cannot start an IOThread: %s", error_get_pretty(err));
        }
        j.ctx = iothread_get_aio_context(j.iothread);
        qemu_event_init(&j.done_ev, false);
    } else {
        j.ctx = aio_context_new(&err);
        if (!j.ctx) {
            aiob_fail("cannot create an AioContext: %s",
                      error_get_pretty(err));
        }
    }
    if (o.poll_max_ns >= 0) {
        aio_context_set_poll_params(j.ctx, o.poll_max_ns, 0, 0, &err);
        if (err) {
            aiob_fail("--poll-max-ns: %s", error_get_pretty(err));
        }
    }
    io_in_loop(&j, io_attach);

    /* --verify: lay the pattern down first. */
    if (o.verify) {
        io_verify_pass(&j, true);
        io_report_errors(&j, "verify: pattern ");
        if (j.errors || io_interrupted) {
            status = AIOB_EXIT_FAIL;
        }
    }

    /* The measured run. */
    memset(&rep, 0, sizeof(rep));
    if (status == 0) {
        IoPhase ph = {
            .random = io_rw_is_random(o.rw),
            .read_pct = o.rw == IO_RW_RANDRW ? o.rwmixread
                        : io_rw_reads(o.rw) ? 100 : 0,
            .limit = o.count ? o.count : UINT64_MAX,
            .runtime_ns = (uint64_t)(o.runtime_s * 1e9),
            .record = true,
        };

        getrusage(RUSAGE_SELF, &ru0);
        io_run_phase(&j, &ph);
        getrusage(RUSAGE_SELF, &ru1);

        rep.elapsed_ns = j.end_ns - j.start_ns;
        rep.cpu_user_ns = timeval_ns(&ru1.ru_utime) -
                          timeval_ns(&ru0.ru_utime);
        rep.cpu_sys_ns = timeval_ns(&ru1.ru_stime) -
                         timeval_ns(&ru0.ru_stime);
        io_report_errors(&j, "");
    }
    run_reads = j.reads;
    run_writes = j.writes;
    run_errors = j.errors;

    /* --verify after a write-only run: read everything back. */
    if (status == 0 && o.verify && !io_rw_reads(o.rw) && !j.errors &&
        !io_interrupted) {
        io_verify_pass(&j, false);
        io_report_errors(&j, "verify: read-back ");
        run_errors += j.errors;
    }

    io_in_loop(&j, io_detach);
    if (j.iothread) {
        iothread_destroy(j.iothread);
        qemu_event_destroy(&j.done_ev);
    } else {
        aio_context_unref(j.ctx);
    }

    rep.engine = aio_block_engine_name(aio_block_backend_engine(j.blk));
    rep.engine_requested = aio_block_engine_name(
        o.engine == AIO_ENGINE_AUTO ? AIO_ENGINE_IO_URING : o.engine);
    rep.engine_fallback = why[0] ? why : NULL;
    rep.rw = io_rw_name(o.rw);
    rep.rwmixread = o.rw == IO_RW_RANDRW ? o.rwmixread
                    : io_rw_reads(o.rw) ? 100 : 0;
    rep.bs = o.bs;
    rep.iodepth = o.iodepth;
    rep.direct = o.direct;
    rep.file = file.path;
    rep.scratch = file.scratch;
    rep.size = file.size;
    rep.batch = o.batch;
    rep.coroutines = o.coroutines;
    rep.iothread = o.iothread;
    rep.poll_max_ns = o.poll_max_ns;
    rep.verify = o.verify;
    rep.reads = run_reads;
    rep.writes = run_writes;
    rep.ios = run_reads + run_writes;
    rep.bytes = rep.ios * o.bs;
    rep.errors = run_errors;
    rep.verify_errors = j.verify_errors;
    rep.lat = lat;

    if (status == 0) {
        if (o.json) {
            report_io_json(stdout, &rep);
        } else if (!o.quiet) {
            report_io_text(stdout, &rep);
        }
    }
    if (j.verify_errors) {
        aiob_note("verify: %llu of %llu blocks read did not match",
                  (unsigned long long)j.verify_errors,
                  (unsigned long long)j.checked);
    }
    if (run_errors || j.verify_errors) {
        status = AIOB_EXIT_FAIL;
    }
    if (io_interrupted && !o.quiet) {
        aiob_note("interrupted");
    }

    aio_block_backend_free(j.blk);
    io_free_slots(&j);
    free(lat);
    close(file.fd);
    if (file.scratch) {
        remove_scratch();
        scratch_path = NULL;
    }
    free(file.path);
    fflush(stdout);
    return status;
}
