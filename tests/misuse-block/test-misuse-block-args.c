/*
 * test-misuse-block-args.c - hostile arguments to block I/O: offsets,
 * lengths, sector counts, request types and I/O vectors, on the engine
 * AIOLOOP_TEST_ENGINE names (run once per engine), through
 * AioBlockBackend (bytes) and the engine's QEMU-named API (sectors).
 *
 * Documented outcomes (include/aioloop/raw-aio.h, "Bad arguments"):
 *
 *   case                                        outcome
 *   offset above INT64_MAX (a "negative" one)   -EINVAL, file untouched
 *   offset + length beyond INT64_MAX            -EINVAL, file untouched
 *   negative sector_num                         -EINVAL, file untouched
 *   nb_sectors other than the vector's size     -EINVAL, file untouched
 *   negative nb_sectors                         -EINVAL, file untouched
 *   NULL vector for a read / a write            -EINVAL
 *   vector with niov < 0                        -EINVAL
 *   vector with iov NULL and niov > 0           -EINVAL
 *   a segment of SIZE_MAX bytes                 -EINVAL (above
 *                                               AIOLOOP_RAW_MAX_BYTES)
 *   unknown type (0, 3, 4, 0x10, -1)            NULL from the submit
 *                                               call, -EINVAL from a
 *                                               coroutine; no callback
 *   segment with a NULL base and a length       -EFAULT (the kernel's),
 *                                               file untouched
 *   empty segments between full ones            ignored: data lands
 *                                               where it belongs
 *   two read segments over the same buffer      0; the buffer holds the
 *                                               later segment's bytes
 *   two write segments from the same buffer     0; the file holds the
 *                                               buffer twice
 *   every result of a callback request          from aio_poll(), never
 *                                               inside the submit call,
 *                                               exactly once
 *
 * SPDX-License-Identifier: MIT
 */
#include "block/engine-api.h"

#define KiB 1024
#define FILE_LEN (32 * KiB)
#define SEED 77

typedef struct Fix {
    Blk t;
    Eng e;
    uint8_t *buf;               /* 8 KiB of 0x5A */
    QEMUIOVector q;
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

static bool file_untouched(Fix *f)
{
    return file_size(f->t.fd) == FILE_LEN &&
           file_has_pattern(f->t.fd, 0, FILE_LEN, SEED);
}

static void fix_teardown(Fix *f)
{
    eng_free(&f->e);
    qemu_iovec_destroy(&f->q);
    free(f->buf);
    blk_teardown(&f->t);
}

/* @want for a read and a write at byte @off through both byte APIs. */
static void bytes_both(Fix *f, uint64_t off, QEMUIOVector *q, int want)
{
    CHECK_EQ(blk_rw(&f->t, f->t.fd, off, q, QEMU_AIO_READ), want);
    CHECK_EQ(blk_co_rw(&f->t, f->t.fd, off, q, QEMU_AIO_WRITE), want);
    CHECK_EQ(blk_rw(&f->t, f->t.fd, off, q, QEMU_AIO_WRITE), want);
    CHECK_EQ(eng_co_rw(&f->e, f->t.ctx, f->t.fd, off, q, QEMU_AIO_READ),
             want);
}

static void test_offset_negative(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    bytes_both(&f, (uint64_t)-512, &f.q, -EINVAL);
    bytes_both(&f, (uint64_t)INT64_MIN, &f.q, -EINVAL);
    CHECK(file_untouched(&f));
    CHECK(bytes_are(f.buf, 8 * KiB, 0x5A, "buffer"));
    fix_teardown(&f);
}

static void test_offset_plus_length_overflows(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    bytes_both(&f, (uint64_t)INT64_MAX - 4095, &f.q, -EINVAL);
    bytes_both(&f, (uint64_t)INT64_MAX, &f.q, -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_sector_negative(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    CHECK_EQ(eng_rw(&f.e, f.t.fd, -1, &f.q, 16, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, -2, &f.q, 16, QEMU_AIO_READ), -EINVAL);
    CHECK(file_untouched(&f));
    CHECK(bytes_are(f.buf, 8 * KiB, 0x5A, "buffer"));
    fix_teardown(&f);
}

static void test_sector_count_mismatch(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &f.q, 8, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &f.q, 32, QEMU_AIO_READ), -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_sector_count_negative(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &f.q, -16, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &f.q, INT32_MIN, QEMU_AIO_READ),
             -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_null_vector_read(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, NULL, QEMU_AIO_READ), -EINVAL);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, NULL, 0, QEMU_AIO_READ), -EINVAL);
    fix_teardown(&f);
}

static void test_null_vector_write(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    CHECK_EQ(blk_co_rw(&f.t, f.t.fd, 0, NULL, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 0, NULL, QEMU_AIO_WRITE),
             -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_vector_niov_negative(void)
{
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    memset(&v, 0, sizeof(v));
    v.iov = &v.local_iov;
    v.niov = -3;
    bytes_both(&f, 0, &v, -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_vector_iov_null(void)
{
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    memset(&v, 0, sizeof(v));
    v.niov = 4;
    v.size = 4 * KiB;
    bytes_both(&f, 0, &v, -EINVAL);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_segment_size_max(void)
{
    struct iovec iov;
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    iov.iov_base = f.buf;
    iov.iov_len = SIZE_MAX;
    qemu_iovec_init_external(&v, &iov, 1);
    bytes_both(&f, 0, &v, -EINVAL);
    CHECK(file_untouched(&f));
    CHECK(bytes_are(f.buf, 8 * KiB, 0x5A, "buffer"));
    fix_teardown(&f);
}

static void test_unknown_type(void)
{
    static const int types[] = { 0, 3, 4, 0x10, -1, INT32_MAX };
    Fix f;

    REQUIRE(fix_setup(&f));
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &f.q, types[i]), RES_NULL);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 0, &f.q, 16, types[i]), RES_NULL);
        CHECK_EQ(blk_co_rw(&f.t, f.t.fd, 0, &f.q, types[i]), -EINVAL);
        CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 0, &f.q, types[i]),
                 -EINVAL);
    }
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

static void test_segment_null_base(void)
{
    struct iovec iov[2];
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    iov[0].iov_base = NULL;
    iov[0].iov_len = 4 * KiB;
    iov[1].iov_base = f.buf;
    iov[1].iov_len = 4 * KiB;
    /* Alone, and first of two. */
    qemu_iovec_init_external(&v, iov, 1);
    bytes_both(&f, 0, &v, -EFAULT);
    qemu_iovec_init_external(&v, iov, 2);
    bytes_both(&f, 0, &v, -EFAULT);
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

/* Writes [0, 8 KiB) with empty segments around and between its pieces,
 * then reads it back the same way. */
static void test_empty_segments_between(void)
{
    uint8_t *in = aligned_buf(8 * KiB);
    struct iovec iov[5];
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    pattern_fill(f.buf, 8 * KiB, SEED + 1, 4 * KiB);
    iov[0] = (struct iovec){ f.buf, 0 };
    iov[1] = (struct iovec){ f.buf, 3 * KiB };
    iov[2] = (struct iovec){ NULL, 0 };
    iov[3] = (struct iovec){ f.buf + 3 * KiB, 5 * KiB };
    iov[4] = (struct iovec){ f.buf, 0 };
    qemu_iovec_init_external(&v, iov, 5);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 4 * KiB, &v, QEMU_AIO_WRITE), 0);
    CHECK(file_has_pattern(f.t.fd, 4 * KiB, 8 * KiB, SEED + 1));
    CHECK(file_has_pattern(f.t.fd, 0, 4 * KiB, SEED));
    CHECK(file_has_pattern(f.t.fd, 12 * KiB, FILE_LEN - 12 * KiB, SEED));
    memset(in, 0, 8 * KiB);
    iov[1].iov_base = in;
    iov[3].iov_base = in + 3 * KiB;
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 4 * KiB, &v, QEMU_AIO_READ),
             0);
    CHECK(pattern_check(in, 8 * KiB, SEED + 1, 4 * KiB));
    free(in);
    fix_teardown(&f);
}

/* Both segments of a read land in one buffer: the later one wins. */
static void test_overlapping_read_segments(void)
{
    struct iovec iov[2];
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    iov[0] = (struct iovec){ f.buf, 4 * KiB };
    iov[1] = (struct iovec){ f.buf, 4 * KiB };
    qemu_iovec_init_external(&v, iov, 2);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 8 * KiB, &v, QEMU_AIO_READ), 0);
    CHECK(pattern_check(f.buf, 4 * KiB, SEED, 12 * KiB));
    CHECK(file_untouched(&f));
    fix_teardown(&f);
}

/* Both segments of a write come from one buffer: written twice. */
static void test_overlapping_write_segments(void)
{
    struct iovec iov[2];
    uint8_t *want = aligned_buf(4 * KiB);
    QEMUIOVector v;
    Fix f;

    REQUIRE(fix_setup(&f));
    pattern_fill(f.buf, 4 * KiB, SEED + 2, 0);
    memcpy(want, f.buf, 4 * KiB);
    iov[0] = (struct iovec){ f.buf, 4 * KiB };
    iov[1] = (struct iovec){ f.buf, 4 * KiB };
    qemu_iovec_init_external(&v, iov, 2);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 16 * KiB, &v, QEMU_AIO_WRITE),
             0);
    for (int i = 0; i < 2; i++) {
        uint8_t got[4 * KiB];

        CHECK_EQ(pread(f.t.fd, got, sizeof(got), 16 * KiB + i * 4 * KiB),
                 (ssize_t)sizeof(got));
        CHECK(memcmp(got, want, sizeof(got)) == 0);
    }
    CHECK(file_has_pattern(f.t.fd, 0, 16 * KiB, SEED));
    free(want);
    fix_teardown(&f);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    blk_test_init();

    RUN(test_offset_negative);
    RUN(test_offset_plus_length_overflows);
    RUN(test_sector_negative);
    RUN(test_sector_count_mismatch);
    RUN(test_sector_count_negative);
    RUN(test_null_vector_read);
    RUN(test_null_vector_write);
    RUN(test_vector_niov_negative);
    RUN(test_vector_iov_null);
    RUN(test_segment_size_max);
    RUN(test_unknown_type);
    RUN(test_segment_null_base);
    RUN(test_empty_segments_between);
    RUN(test_overlapping_read_segments);
    RUN(test_overlapping_write_segments);
    return test_done();
}
