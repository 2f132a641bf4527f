/*
 * test-block-badargs.c - regression tests of a bad-input defect: bad
 * arguments to block I/O must get -EINVAL and leave the file alone, in
 * release builds too (-Db_ndebug=true), on every engine
 * (AIOLOOP_TEST_ENGINE), through the engine's QEMU-named API (laio_*,
 * luring_*, taio_*: sectors with a callback, bytes from a coroutine)
 * and through AioBlockBackend.
 *
 * Before the fix, a negative sector_num wrote at byte offset 0 and
 * succeeded in release builds (the only check was an assert()), a sector
 * count that did not match the vector went unnoticed, and byte offsets
 * above INT64_MAX went to the kernel as negative positions.
 *
 * Outcomes (raw-aio.h, "Bad arguments"): an unknown type or a detached
 * state gets NULL from *_submit() and -EINVAL from *_co_submit();
 * every other bad argument completes with -EINVAL, delivered from
 * aio_poll() (callbacks) or returned (coroutines); a flush ignores its
 * position and vector.
 *
 * SPDX-License-Identifier: MIT
 */
#include "engine-api.h"

#define KiB 1024
#define FILE_LEN (64 * KiB)
#define SEED 41

/* A context, a state of the engine and a file holding pattern SEED. */
typedef struct Fix {
    Blk t;                      /* AioBlockBackend on the same context */
    Eng e;
    uint8_t *buf;               /* 8 KiB, filled with 0x5A */
    QEMUIOVector q;             /* over buf */
} Fix;

static bool fix_setup(Fix *f)
{
    if (!blk_setup(&f->t) || !file_fill(f->t.fd, 0, FILE_LEN, SEED)) {
        return false;
    }
    eng_new(&f->e, f->t.ctx);
    f->buf = aligned_buf(8 * KiB);
    memset(f->buf, 0x5A, 8 * KiB);
    qemu_iovec_init_buf(&f->q, f->buf, 8 * KiB);
    return true;
}

/* The file and the buffer are as fix_setup() left them. */
static bool fix_untouched(Fix *f)
{
    return file_size(f->t.fd) == FILE_LEN &&
           file_has_pattern(f->t.fd, 0, FILE_LEN, SEED) &&
           bytes_are(f->buf, 8 * KiB, 0x5A, "buffer");
}

static void fix_teardown(Fix *f)
{
    eng_free(&f->e);
    qemu_iovec_destroy(&f->q);
    free(f->buf);
    blk_teardown(&f->t);
}

/* Each type that moves data, with a request that must get -EINVAL. */
static const int rw_types[] = { QEMU_AIO_READ, QEMU_AIO_WRITE };

/* ------------------------------------------------------------------ */

/* The defect itself: sector -1 wrote over byte 0 and returned 0. */
static void test_negative_sector_num_does_not_write_offset_0(void)
{
    static const int64_t sectors[] = { -1, -16, INT64_MIN };
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t i = 0; i < ARRAY_SIZE(sectors); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
            CHECK_EQ(eng_rw(&f.e, f.t.fd, sectors[i], &f.q, 16, rw_types[j]),
                     -EINVAL);
        }
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* nb_sectors must be the vector's size in sectors. */
static void test_nb_sectors_mismatch_einval(void)
{
    static const int counts[] = { 15, 17, 1, 0, -1, -16, INT32_MIN };
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
            CHECK_EQ(eng_rw(&f.e, f.t.fd, 2, &f.q, counts[i], rw_types[j]),
                     -EINVAL);
        }
    }
    CHECK(fix_untouched(&f));
    /* The right count still works. */
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 2, &f.q, 16, QEMU_AIO_READ), 0);
    CHECK(pattern_check(f.buf, 8 * KiB, SEED, 2 * SECTOR));
    fix_teardown(&f);
}

/* A sector number whose byte offset, or end, does not fit in int64_t. */
static void test_sector_offset_overflow_einval(void)
{
    static const int64_t sectors[] = {
        (INT64_MAX >> 9) + 1, INT64_MAX, INT64_MAX >> 9,
        (INT64_MAX >> 9) - 15 + 1,
    };
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t i = 0; i < ARRAY_SIZE(sectors); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
            CHECK_EQ(eng_rw(&f.e, f.t.fd, sectors[i], &f.q, 16, rw_types[j]),
                     -EINVAL);
        }
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* Byte offsets above INT64_MAX (negative file positions), and offset +
 * length beyond it, through both byte APIs. */
static void test_byte_offset_overflow_einval(void)
{
    static const uint64_t offs[] = {
        UINT64_MAX, UINT64_MAX - 8191, (uint64_t)INT64_MAX + 1,
        (uint64_t)INT64_MAX, (uint64_t)INT64_MAX - 8 * KiB + 1,
    };
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
        for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
            int type = rw_types[j];

            CHECK_EQ(blk_rw(&f.t, f.t.fd, offs[i], &f.q, type), -EINVAL);
            CHECK_EQ(blk_co_rw(&f.t, f.t.fd, offs[i], &f.q, type), -EINVAL);
            CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, offs[i], &f.q, type),
                     -EINVAL);
        }
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* A read or a write without a vector. */
static void test_null_qiov_einval(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
        int type = rw_types[j];

        CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, NULL, 0, type), -EINVAL);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, NULL, 16, type), -EINVAL);
        CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 0, NULL, type), -EINVAL);
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, NULL, type), -EINVAL);
        CHECK_EQ(blk_co_rw(&f.t, f.t.fd, 0, NULL, type), -EINVAL);
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* A vector longer than one system call moves: a Linux AIO read of it
 * came back short, and its tail was zero-filled as if past the end. The
 * length is a lie over a small buffer: only a check that holds can keep
 * the kernel from writing past it. */
static void test_length_above_max_einval(void)
{
    struct iovec iov = { NULL, (size_t)AIOLOOP_RAW_MAX_BYTES + 4096 };
    QEMUIOVector big;
    Fix f;

    REQUIRE(fix_setup(&f));
    iov.iov_base = f.buf;
    qemu_iovec_init_external(&big, &iov, 1);
    for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
        int type = rw_types[j];

        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &big, type), -EINVAL);
        CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 0, &big, type), -EINVAL);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &big,
                        (int)(big.size >> BDRV_SECTOR_BITS), type), -EINVAL);
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* A vector whose own fields are nonsense. */
static void test_bad_vector_einval(void)
{
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
        int type = rw_types[j];

        memset(&v, 0, sizeof(v));
        v.niov = -1;
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &v, type), -EINVAL);
        CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 0, &v, type), -EINVAL);
        v.niov = 2;             /* iov NULL */
        v.size = 2 * SECTOR;
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &v, type), -EINVAL);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &v, 2, type), -EINVAL);
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* A state that is not attached has nowhere to deliver a result: NULL
 * (callbacks) or -EINVAL (coroutines), and nothing happens. */
static void test_detached_state_refuses(void)
{
    AioContext *other;
    Eng d;
    Fix f;

    REQUIRE(fix_setup(&f));
    eng_new(&d, NULL);
    for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
        CHECK_EQ(eng_rw(&d, f.t.fd, 0, &f.q, 16, rw_types[j]), RES_NULL);
        CHECK_EQ(eng_co_rw(&d, f.t.ctx, f.t.fd, 0, &f.q, rw_types[j]),
                 -EINVAL);
    }
    /* Detached by its owner... */
    eng_attach(&d, f.t.ctx);
    CHECK_EQ(eng_rw(&d, f.t.fd, 0, &f.q, 16, QEMU_AIO_READ), 0);
    memset(f.buf, 0x5A, 8 * KiB);
    eng_detach(&d, f.t.ctx);
    d.ctx = NULL;
    CHECK_EQ(eng_rw(&d, f.t.fd, 0, &f.q, 16, QEMU_AIO_WRITE), RES_NULL);
    /* ...and by the end of its context. */
    other = new_ctx();
    eng_attach(&d, other);
    aio_context_unref(other);
    d.ctx = NULL;
    CHECK_EQ(eng_rw(&d, f.t.fd, 0, &f.q, 16, QEMU_AIO_WRITE), RES_NULL);
    CHECK_EQ(eng_co_rw(&d, f.t.ctx, f.t.fd, 0, &f.q, QEMU_AIO_WRITE),
             -EINVAL);
    eng_cleanup(d.s);
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* A flush has no position and no vector: whatever is passed is ignored. */
static void test_flush_ignores_position_and_vector(void)
{
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    memset(&v, 0xFF, sizeof(v));        /* garbage, never looked at */
    CHECK_EQ(eng_rw(&f.e, f.t.fd, -1, NULL, -3, QEMU_AIO_FLUSH), 0);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, INT64_MIN, &v, 7, QEMU_AIO_FLUSH), 0);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, UINT64_MAX, &v, QEMU_AIO_FLUSH), 0);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, UINT64_MAX, NULL,
                       QEMU_AIO_FLUSH), 0);
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* Requests of zero bytes (no segment, or empty segments) succeed and
 * change nothing, even past the end of the file. */
static void test_zero_length_request_succeeds(void)
{
    struct iovec empty[3] = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
    QEMUIOVector none, blanks;
    Fix f;

    REQUIRE(fix_setup(&f));
    empty[1].iov_base = f.buf;
    qemu_iovec_init_external(&none, NULL, 0);
    qemu_iovec_init_external(&blanks, empty, 3);
    for (size_t j = 0; j < ARRAY_SIZE(rw_types); j++) {
        int type = rw_types[j];

        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &none, type), 0);
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 10 * FILE_LEN, &blanks, type), 0);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 3, &blanks, 0, type), 0);
        CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 7, &none, type), 0);
    }
    CHECK(fix_untouched(&f));
    fix_teardown(&f);
}

/* The callback may be NULL (raw-aio.h): the request still runs, and its
 * AIOCB is freed (the leak check of the sanitizer build would say). */
static void test_null_callback_allowed(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    pattern_fill(f.buf, 8 * KiB, SEED + 1, 16 * KiB);
    CHECK(eng_submit(&f.e, f.t.fd, 32, &f.q, 16, NULL, NULL,
                     QEMU_AIO_WRITE) != NULL);
    CHECK(aio_block_submit(f.t.b, f.t.fd, 0, NULL, QEMU_AIO_FLUSH, NULL,
                           NULL) != NULL);
    /* Detaching completes them. */
    eng_detach(&f.e, f.t.ctx);
    f.e.ctx = NULL;
    aio_block_backend_detach(f.t.b, f.t.ctx);
    CHECK(file_has_pattern(f.t.fd, 16 * KiB, 8 * KiB, SEED + 1));
    CHECK(file_has_pattern(f.t.fd, 0, 16 * KiB, SEED));
    aio_block_backend_attach(f.t.b, f.t.ctx);
    fix_teardown(&f);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_negative_sector_num_does_not_write_offset_0);
    RUN(test_nb_sectors_mismatch_einval);
    RUN(test_sector_offset_overflow_einval);
    RUN(test_byte_offset_overflow_einval);
    RUN(test_null_qiov_einval);
    RUN(test_length_above_max_einval);
    RUN(test_bad_vector_einval);
    RUN(test_detached_state_refuses);
    RUN(test_flush_ignores_position_and_vector);
    RUN(test_zero_length_request_succeeds);
    RUN(test_null_callback_allowed);
    return test_done();
}
