/*
 * file-copy - copy a file with the block I/O engines, 32 requests at once.
 *
 * An AioBlockBackend submits reads and writes to the kernel: io_uring if
 * the kernel allows it, else Linux native AIO, else a pool of threads
 * (AIO_ENGINE_AUTO picks the first that works). 32 coroutines each take
 * the next 64 KiB chunk, read it from SRC and write it to DST, until none
 * is left; aio_block_co_submit() yields until the request completes, so
 * up to 32 requests are in flight while one thread waits in aio_poll().
 * DST is then flushed, and read back the same way to verify the copy.
 *
 * Usage: file-copy [-e auto|io_uring|linux-aio|threads] SRC DST
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_DEPTH 32
#define CHUNK (64 * 1024)

typedef struct Copy {
    AioBlockBackend *blk;
    int src, dst;               /* file descriptors */
    uint64_t size;              /* bytes to copy */
    uint64_t next;              /* offset of the first chunk not yet taken */
    bool verify;                /* this pass compares instead of copying */
    int workers;                /* coroutines still running */
    bool failed;
} Copy;

/* Report the first error; the workers then stop taking chunks. */
static void fail(Copy *c, uint64_t offset, const char *what, int ret)
{
    if (!c->failed) {
        fprintf(stderr, "file-copy: %s at offset %" PRIu64 ": %s\n", what,
                offset, ret ? strerror(-ret) : "the copy differs");
    }
    c->failed = true;
}

/* One of QUEUE_DEPTH workers. They all run in the main thread (only one
 * at a time, switching at each yield), so c->next needs no lock. */
static void coroutine_fn worker_co(void *opaque)
{
    Copy *c = opaque;
    char *a = malloc(CHUNK), *b = malloc(CHUNK);
    QEMUIOVector qa, qb;        /* a request's buffer and length */
    int ret;

    if (!a || !b) {
        fail(c, c->next, "allocating buffers", -ENOMEM);
    }
    while (!c->failed && c->next < c->size) {
        uint64_t off = c->next;
        size_t len = c->size - off < CHUNK ? c->size - off : CHUNK;

        c->next += len;
        /* Each call submits one request and yields until it completes;
         * meanwhile the other workers run. */
        qemu_iovec_init_buf(&qa, a, len);
        ret = aio_block_co_submit(c->blk, c->src, off, &qa, QEMU_AIO_READ);
        if (ret < 0) {
            fail(c, off, "reading the source", ret);
        } else if (!c->verify) {
            ret = aio_block_co_submit(c->blk, c->dst, off, &qa,
                                      QEMU_AIO_WRITE);
            if (ret < 0) {
                fail(c, off, "writing the copy", ret);
            }
        } else {
            qemu_iovec_init_buf(&qb, b, len);
            ret = aio_block_co_submit(c->blk, c->dst, off, &qb, QEMU_AIO_READ);
            if (ret < 0 || memcmp(a, b, len) != 0) {
                fail(c, off, "verifying the copy", ret);
            }
        }
    }
    free(a);
    free(b);
    c->workers--;
}

/* Bottom half: start the workers from inside aio_poll(). Each submits its
 * first read and yields; plugging sends those reads in one batch. */
static void start_workers(void *opaque)
{
    Copy *c = opaque;

    aio_block_plug(c->blk);
    for (int i = 0; i < QUEUE_DEPTH; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(worker_co, c));
    }
    aio_block_unplug(c->blk);
}

static bool run_pass(AioContext *ctx, Copy *c, bool verify)
{
    c->verify = verify;
    c->next = 0;
    c->workers = QUEUE_DEPTH;
    aio_bh_schedule_oneshot(ctx, start_workers, c);
    while (c->workers > 0) {
        aio_poll(ctx, true);    /* completions wake the workers from here */
    }
    return !c->failed;
}

/* Completion callback of the flush (the callback flavour of the API). */
static void flush_done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

int main(int argc, char **argv)
{
    Copy c = { .src = -1, .dst = -1 };
    AioContext *ctx;
    Error *err = NULL;
    int engine = AIO_ENGINE_AUTO, flush_ret = -EINPROGRESS, opt, status = 1;
    struct stat st;

    while ((opt = getopt(argc, argv, "e:")) != -1) {
        engine = opt == 'e' ? aio_block_engine_parse(optarg) : -1;
        if (engine < 0) {
            break;
        }
    }
    if (engine < 0 || argc - optind != 2) {
        fprintf(stderr, "usage: %s [-e auto|io_uring|linux-aio|threads] "
                "SRC DST\n", argv[0]);
        return 2;
    }
    ctx = aio_context_new(&error_fatal);    /* fails: message, exit(1) */
    /* Buffered I/O: O_DIRECT would need 4 KiB aligned buffers, offsets
     * and lengths, which an odd-sized last chunk is not. */
    c.src = open(argv[optind], O_RDONLY | O_CLOEXEC);
    if (c.src < 0 || fstat(c.src, &st) < 0) {
        perror(argv[optind]);
        goto out;
    }
    c.size = (uint64_t)st.st_size;
    c.dst = open(argv[optind + 1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                 0644);
    if (c.dst < 0) {
        perror(argv[optind + 1]);
        goto out;
    }
    c.blk = aio_block_backend_new(engine, &err);
    if (!c.blk) {
        fprintf(stderr, "file-copy: cannot use engine %s: %s\n",
                aio_block_engine_name(engine), error_get_pretty(err));
        error_free(err);
        goto out;
    }
    /* Completions are delivered by aio_poll() of the attached context. */
    aio_block_backend_attach(c.blk, ctx);
    printf("engine: %s\n",
           aio_block_engine_name(aio_block_backend_engine(c.blk)));

    if (run_pass(ctx, &c, false)) {
        aio_block_submit(c.blk, c.dst, 0, NULL, QEMU_AIO_FLUSH, flush_done,
                         &flush_ret);
        while (flush_ret == -EINPROGRESS) {
            aio_poll(ctx, true);
        }
        if (flush_ret < 0) {
            fail(&c, 0, "flushing the copy", flush_ret);
        } else {
            printf("copied %" PRIu64 " bytes, up to %d requests in flight\n",
                   c.size, QUEUE_DEPTH);
        }
    }
    if (!c.failed && fstat(c.dst, &st) == 0 && (uint64_t)st.st_size != c.size) {
        fail(&c, (uint64_t)st.st_size, "checking the size", 0);
    }
    if (!c.failed && run_pass(ctx, &c, true)) {
        printf("verified: the copy matches\n");
        status = 0;
    }
    /* Every request has completed: the backend can be detached and freed. */
    aio_block_backend_detach(c.blk, ctx);
    aio_block_backend_free(c.blk);
out:
    aio_context_unref(ctx);
    if (c.src >= 0) {
        close(c.src);
    }
    if (c.dst >= 0) {
        close(c.dst);
    }
    return status;
}
