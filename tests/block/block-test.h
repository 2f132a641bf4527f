/*
 * tests/block/block-test.h - helpers shared by the block I/O test
 * programs (raw-aio.h backends through block-backend.h), on top of
 * tests/aio/aio-test.h (watchdog RUN(), new_ctx(), sleep_ms()...) and the
 * harness in tests/test.h.
 *
 *   blk_test_init()        main(): the engine named by AIOLOOP_TEST_ENGINE
 *                          ("io_uring", "linux-aio", "threads"; unset means
 *                          "auto"); exits 77 (test_skip_all) with the
 *                          library's message when the kernel refuses it
 *   blk_engine             the engine every case runs on (never AUTO)
 *   test_dir()             AIOLOOP_TEST_DIR, else "." (the build directory,
 *                          on disk), where temporary files go
 *   tmp_file_in()          an unlinked temporary file in a directory
 *   reopen_fd()            the same file again with other open flags
 *   odirect_probe()        does a directory take O_DIRECT, and does it
 *                          reject misaligned O_DIRECT (EINVAL)?
 *   aligned_buf()          posix_memalign(4096) or abort
 *   pattern_*, zero_check  position-dependent data and its verification
 *   Blk                    per-case fixture: context, backend, file
 *   BlkReq, blk_wait()     one request and its completion record: each
 *                          callback counts its runs, so every case can
 *                          check "completed exactly once"
 *   blk_wait_ms()          wait at most so long, for checks that nothing
 *                          completes (a positive wait has no time bound:
 *                          a request that never completes is a hang,
 *                          which the harness's watchdog names)
 *   poll_idle()            non-blocking polls for a while, for checks that
 *                          nothing (more) arrives
 *   CoIo, co_io_run()      one request from a coroutine of the context
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_BLOCK_TEST_H
#define AIOLOOP_BLOCK_TEST_H

#include <aioloop.h>
#include <aioloop/raw-aio.h>
#include <aioloop/block-backend.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "aio/aio-test.h"

#define KiB 1024
#define ALIGN 4096                      /* buffer and O_DIRECT alignment */
#define SECTOR 512

/* The engine of this run (set by blk_test_init(); never AUTO). */
static AioBlockEngine blk_engine;

/* ------------------------------------------------------------------ */
/* Engine selection                                                    */

/*
 * Reads AIOLOOP_TEST_ENGINE, checks that a backend can be created on that
 * engine, and skips the whole program (exit 77) when the kernel refuses
 * it. An unknown name is a configuration error (exit 1).
 */
static inline void blk_test_init(void)
{
    static char reason[512];
    const char *name = getenv("AIOLOOP_TEST_ENGINE");
    int engine = name ? aio_block_engine_parse(name) : AIO_ENGINE_AUTO;
    Error *err = NULL;
    AioBlockBackend *b;

    if (engine < 0) {
        printf("# unknown AIOLOOP_TEST_ENGINE '%s'\n", name);
        exit(1);
    }
    b = aio_block_backend_new((AioBlockEngine)engine, &err);
    if (!b) {
        if (!err) {
            printf("# aio_block_backend_new(%s) returned NULL without "
                   "an Error\n", aio_block_engine_name(engine));
            exit(1);
        }
        snprintf(reason, sizeof(reason), "%s unavailable: %s",
                 aio_block_engine_name(engine), error_get_pretty(err));
        error_free(err);
        test_skip_all(reason);
    }
    blk_engine = aio_block_backend_engine(b);
    aio_block_backend_free(b);
    printf("# engine: %s (asked for %s)\n", aio_block_engine_name(blk_engine),
           aio_block_engine_name(engine));
}

/* ------------------------------------------------------------------ */
/* Files and buffers                                                   */

/* Where temporary files go: on disk by default, not necessarily tmpfs. */
static inline const char *test_dir(void)
{
    const char *dir = getenv("AIOLOOP_TEST_DIR");

    return dir && *dir ? dir : ".";
}

/*
 * A new empty file in @dir opened O_RDWR | O_CLOEXEC | @flags, unlinked at
 * once so that nothing is left behind. Returns the fd or -errno.
 */
static inline int tmp_file_in(const char *dir, int flags)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "%s/aioloop-block-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC | flags);
    if (fd < 0) {
        return -errno;
    }
    unlink(path);
    return fd;
}

/* The file of @fd opened again with @flags (O_RDONLY, O_WRONLY...);
 * works for unlinked files. Returns the new fd or -1. */
static inline int reopen_fd(int fd, int flags)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, flags | O_CLOEXEC);
}

/* A fd number that is not open (for -EBADF); nothing may open files
 * between this call and the use of the number. */
static inline int unused_fd(void)
{
    int fd;

    for (fd = 700; fd < 1000; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            return fd;
        }
    }
    abort();
}

/* @len bytes aligned to ALIGN (len may be 0); aborts on failure. */
static inline void *aligned_buf(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, ALIGN, len ? len : 1) != 0) {
        abort();
    }
    return p;
}

/* The size of the file of @fd, or -1. */
static inline long long file_size(int fd)
{
    struct stat st;

    return fstat(fd, &st) < 0 ? -1 : (long long)st.st_size;
}

/* O_DIRECT support of a directory. */
enum {
    ODIRECT_OK = 1,             /* aligned 4 KiB O_DIRECT writes work */
    ODIRECT_REJECTS_OFFSET = 2, /* pwrite at a misaligned offset: EINVAL */
    ODIRECT_REJECTS_BUFFER = 4, /* pwrite from a misaligned buffer: EINVAL */
};

/* Probes @dir with plain pwrite() calls on an O_DIRECT file; returns
 * ODIRECT_* bits (0: O_DIRECT cannot be used there). */
static inline int odirect_probe(const char *dir)
{
    uint8_t *buf = aligned_buf(2 * ALIGN);
    int fd = tmp_file_in(dir, O_DIRECT);
    int bits = 0;

    memset(buf, 0x33, 2 * ALIGN);
    if (fd >= 0 && pwrite(fd, buf, ALIGN, 0) == ALIGN) {
        bits = ODIRECT_OK;
        if (pwrite(fd, buf, ALIGN, 1) < 0 && errno == EINVAL) {
            bits |= ODIRECT_REJECTS_OFFSET;
        }
        if (pwrite(fd, buf + 1, ALIGN, 0) < 0 && errno == EINVAL) {
            bits |= ODIRECT_REJECTS_BUFFER;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return bits;
}

/*
 * The first of test_dir() and /dev/shm whose odirect_probe() has all of
 * @need (ODIRECT_* bits); NULL if neither, with *why set to a static
 * explanation for SKIP_CASE(). *bits receives the directory's bits.
 */
static inline const char *odirect_dir(int need, int *bits, const char **why)
{
    static char reason[PATH_MAX + 128];
    const char *dirs[2] = { test_dir(), "/dev/shm" };
    int i;

    for (i = 0; i < 2; i++) {
        *bits = odirect_probe(dirs[i]);
        if ((*bits & need) == need) {
            printf("# O_DIRECT directory: %s\n", dirs[i]);
            return dirs[i];
        }
    }
    snprintf(reason, sizeof(reason), "%s in %s%s",
             need == ODIRECT_OK ? "O_DIRECT unsupported"
                                : "O_DIRECT alignment not enforced",
             dirs[0], strcmp(dirs[0], dirs[1]) ? " and /dev/shm" : "");
    *why = reason;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Data patterns                                                       */

/* The byte that file position @pos holds in pattern @seed: differs from
 * one position to the next and between seeds, so data written to the
 * wrong place, or stale data, shows up. */
static inline uint8_t pattern_byte(uint32_t seed, uint64_t pos)
{
    uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ull;

    x ^= (uint64_t)(seed + 1) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    return (uint8_t)(x >> 17);
}

/* Fills @len bytes that belong at file position @pos. */
static inline void pattern_fill(void *buf, size_t len, uint32_t seed,
                                uint64_t pos)
{
    uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        p[i] = pattern_byte(seed, pos + i);
    }
}

/* Whether @buf holds pattern @seed for file position @pos; prints the
 * first difference. */
static inline bool pattern_check(const void *buf, size_t len, uint32_t seed,
                                 uint64_t pos)
{
    const uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != pattern_byte(seed, pos + i)) {
            printf("#   file offset %llu: byte %#x, want %#x (seed %u)\n",
                   (unsigned long long)(pos + i), p[i],
                   pattern_byte(seed, pos + i), seed);
            return false;
        }
    }
    return true;
}

/* Whether all @len bytes of @buf are @c; prints the first difference
 * (@what names the buffer). */
static inline bool bytes_are(const void *buf, size_t len, uint8_t c,
                             const char *what)
{
    const uint8_t *p = buf;
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != c) {
            printf("#   %s: byte %zu is %#x, want %#x\n", what, i, p[i], c);
            return false;
        }
    }
    return true;
}

#define zero_check(buf, len) bytes_are((buf), (len), 0, "zero fill")

/* Whether the file of @fd holds pattern @seed in [pos, pos + len), read
 * with plain pread() (independent of the backend under test). */
static inline bool file_has_pattern(int fd, uint64_t pos, size_t len,
                                    uint32_t seed)
{
    uint8_t *buf = aligned_buf(len);
    bool ok = pread(fd, buf, len, (off_t)pos) == (ssize_t)len &&
              pattern_check(buf, len, seed, pos);

    free(buf);
    return ok;
}

/* Whether [pos, pos + len) of @fd reads as zeros (hole or never written). */
static inline bool file_is_zero(int fd, uint64_t pos, size_t len)
{
    uint8_t *buf = aligned_buf(len);
    ssize_t n = pread(fd, buf, len, (off_t)pos);
    bool ok = n >= 0 && zero_check(buf, (size_t)n);

    free(buf);
    return ok;
}

/* Writes pattern @seed to [pos, pos + len) of @fd with pwrite(). */
static inline bool file_fill(int fd, uint64_t pos, size_t len, uint32_t seed)
{
    uint8_t *buf = aligned_buf(len);
    bool ok;

    pattern_fill(buf, len, seed, pos);
    ok = pwrite(fd, buf, len, (off_t)pos) == (ssize_t)len;
    free(buf);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Fixture: a context, a backend on blk_engine attached to it, a file  */

typedef struct Blk {
    AioContext *ctx;
    AioBlockBackend *b;
    int fd;
} Blk;

/* Sets @t up with a new file in @dir opened with extra @flags; false
 * (after printing why) if the file cannot be made. */
static inline bool blk_setup_in(Blk *t, const char *dir, int flags)
{
    t->fd = tmp_file_in(dir, flags);
    if (t->fd < 0) {
        printf("#   cannot create a file in %s: %s\n", dir, strerror(-t->fd));
        return false;
    }
    t->ctx = new_ctx();
    t->b = aio_block_backend_new(blk_engine, &error_abort);
    aio_block_backend_attach(t->b, t->ctx);
    return true;
}

static inline bool blk_setup(Blk *t)
{
    return blk_setup_in(t, test_dir(), 0);
}

/* Undoes blk_setup(); every request must have completed. */
static inline void blk_teardown(Blk *t)
{
    aio_block_backend_detach(t->b, t->ctx);
    aio_block_backend_free(t->b);
    aio_context_unref(t->ctx);
    close(t->fd);
}

/* Runs non-blocking aio_poll(@ctx) for about @ms milliseconds, sleeping
 * in between so that the kernel or the workers have time to finish
 * whatever they were (wrongly) given. */
static inline void poll_idle(AioContext *ctx, int ms)
{
    int i;

    for (i = 0; i < ms; i++) {
        aio_poll(ctx, false);
        sleep_ms(1);
    }
    aio_poll(ctx, false);
}

/* ------------------------------------------------------------------ */
/* Requests with a completion record                                   */

typedef struct BlkReq BlkReq;

struct BlkReq {
    int *completed;     /* shared: callbacks run so far, over a group */
    int runs;           /* times this request's callback ran */
    int ret;            /* the result it got (last run) */
    int seq;            /* *completed right after this callback counted */
    void (*hook)(BlkReq *r);    /* optional, runs inside the callback */
    void *user;         /* for hooks */
    BlockAIOCB *acb;
    QEMUIOVector qiov;  /* one buffer (blk_req_init) unless a case builds it */
    uint8_t *buf;       /* owned, ALIGN-aligned */
    uint64_t off;
    size_t len;
};

static inline void blk_req_cb(void *opaque, int ret)
{
    BlkReq *r = opaque;

    r->runs++;
    r->ret = ret;
    r->seq = ++*r->completed;
    if (r->hook) {
        r->hook(r);
    }
}

/* A request of @len bytes at @off with its own aligned buffer, filled
 * with 0xAA (so that reads that skip bytes are visible). */
static inline void blk_req_init(BlkReq *r, int *completed, uint64_t off,
                                size_t len)
{
    memset(r, 0, sizeof(*r));
    r->completed = completed;
    r->ret = 1;                 /* no callback has run */
    r->off = off;
    r->len = len;
    r->buf = aligned_buf(len);
    memset(r->buf, 0xAA, len);
    qemu_iovec_init_buf(&r->qiov, r->buf, len);
}

static inline void blk_req_free(BlkReq *r)
{
    qemu_iovec_destroy(&r->qiov);
    free(r->buf);
    r->buf = NULL;
}

/* aio_block_submit() of @r on @t's file; false if it returned NULL. */
static inline bool blk_req_submit(Blk *t, BlkReq *r, int type)
{
    r->acb = aio_block_submit(t->b, t->fd, r->off, &r->qiov, type,
                              blk_req_cb, r);
    return r->acb != NULL;
}

/* Blocking aio_poll(@ctx) until *@completed reaches @n (a hang is left
 * to the watchdog, which names the case). */
static inline void blk_wait(AioContext *ctx, int *completed, int n)
{
    while (*completed < n) {
        aio_poll(ctx, true);
    }
}

/* A timer that re-arms itself every 20 ms, so that a blocking aio_poll()
 * returns now and then even when nothing else happens. */
static inline void ticker_cb(void *opaque)
{
    QEMUTimer **timer = opaque;

    timer_mod(*timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 20);
}

/* blk_wait() that gives up after @ms milliseconds. Returns whether
 * *@completed reached @n. Only for checks that nothing completes within
 * the time (which load cannot make fail): a wait that must succeed is
 * blk_wait(), without a bound. */
static inline bool blk_wait_ms(AioContext *ctx, int *completed, int n, int ms)
{
    int64_t deadline = test_now_ns() + ms * 1000000LL;
    QEMUTimer *timer = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                     ticker_cb, &timer);

    ticker_cb(&timer);
    while (*completed < n && test_now_ns() < deadline) {
        aio_poll(ctx, true);
    }
    timer_free(timer);
    return *completed >= n;
}

/*
 * Checks that each of the @n requests ran its callback exactly once with
 * @want; prints the first few that did not. Returns how many did not.
 */
static inline int blk_check_once(const BlkReq *reqs, int n, int want)
{
    int bad = 0, i;

    for (i = 0; i < n; i++) {
        if (reqs[i].runs != 1 || reqs[i].ret != want) {
            if (bad < 5) {
                printf("#   request %d: %d callbacks, ret %d (want 1, %d)\n",
                       i, reqs[i].runs, reqs[i].ret, want);
            }
            bad++;
        }
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* Requests from coroutines                                            */

typedef struct CoIo {
    AioBlockBackend *b;
    int fd;
    uint64_t off;
    QEMUIOVector *qiov;
    int type;
    int ret;
    bool done;
    int *completed;     /* optional shared counter */
} CoIo;

static inline void coroutine_fn co_io_entry(void *opaque)
{
    CoIo *c = opaque;

    c->ret = aio_block_co_submit(c->b, c->fd, c->off, c->qiov, c->type);
    c->done = true;
    if (c->completed) {
        ++*c->completed;
    }
}

/* Starts a coroutine that belongs to @ctx (aio_co_enter from outside the
 * loop schedules it, so the next aio_poll(@ctx) enters it there). */
static inline void co_start(AioContext *ctx, CoroutineEntry *fn, void *opaque)
{
    aio_co_enter(ctx, qemu_coroutine_create(fn, opaque));
}

/* Starts @n coroutines of @t's context; coroutine i writes one sector of
 * pattern @seed at sector i from @bufs[i] (allocated here; the caller
 * frees them) through @qs[i], and counts itself in *@finished when its
 * request returned (result in @cs[i].ret). */
static inline void co_writes_start(Blk *t, CoIo *cs, uint8_t **bufs,
                                   QEMUIOVector *qs, int n, uint32_t seed,
                                   int *finished)
{
    for (int i = 0; i < n; i++) {
        bufs[i] = aligned_buf(SECTOR);
        pattern_fill(bufs[i], SECTOR, seed, (uint64_t)i * SECTOR);
        qemu_iovec_init_buf(&qs[i], bufs[i], SECTOR);
        cs[i] = (CoIo){ .b = t->b, .fd = t->fd, .off = (uint64_t)i * SECTOR,
                        .qiov = &qs[i], .type = QEMU_AIO_WRITE, .ret = 1,
                        .completed = finished };
        co_start(t->ctx, co_io_entry, &cs[i]);
    }
}

/* aio_block_co_submit() from a coroutine of @t's context, polling until
 * it returns. Returns its result. */
static inline int co_io_run(Blk *t, uint64_t off, QEMUIOVector *qiov,
                            int type)
{
    CoIo c = { .b = t->b, .fd = t->fd, .off = off, .qiov = qiov,
               .type = type, .ret = 1 };

    co_start(t->ctx, co_io_entry, &c);
    while (!c.done) {
        aio_poll(t->ctx, true);
    }
    return c.ret;
}

#endif /* AIOLOOP_BLOCK_TEST_H */
