/*
 * test-iov.c - QEMUIOVector: building vectors three ways, copying across
 * element boundaries at every offset, clamping at the end, concat.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/iov.h>

#include "test.h"
#include "death-test.h"

/* A vector of three uneven buffers over one backing array, so byte i of
 * the vector is back[i]: 5 + 1 + 10 bytes, plus an empty element. */
typedef struct Fixture {
    char back[16];
    QEMUIOVector qiov;
} Fixture;

static void fixture_init(Fixture *f)
{
    int i;

    for (i = 0; i < 16; i++) {
        f->back[i] = (char)('a' + i);
    }
    qemu_iovec_init(&f->qiov, 1);               /* forces growth */
    qemu_iovec_add(&f->qiov, f->back, 5);
    qemu_iovec_add(&f->qiov, f->back + 5, 0);   /* empty element */
    qemu_iovec_add(&f->qiov, f->back + 5, 1);
    qemu_iovec_add(&f->qiov, f->back + 6, 10);
}

static void test_init_add_size(void)
{
    Fixture f;

    fixture_init(&f);
    CHECK_EQ(f.qiov.niov, 4);
    CHECK(f.qiov.nalloc >= 4);
    CHECK_EQ(f.qiov.size, 16);
    CHECK_EQ(iov_size(f.qiov.iov, (unsigned)f.qiov.niov), 16);
    CHECK_EQ(iov_size(f.qiov.iov, 1), 5);
    CHECK_EQ(iov_size(NULL, 0), 0);
    CHECK_EQ(BDRV_SECTOR_SIZE, 512);
    CHECK_EQ(1 << BDRV_SECTOR_BITS, 512);
    qemu_iovec_destroy(&f.qiov);

    qemu_iovec_init(&f.qiov, 0);                /* zero hint is fine */
    CHECK_EQ(f.qiov.niov, 0);
    CHECK_EQ(f.qiov.size, 0);
    qemu_iovec_add(&f.qiov, f.back, 3);
    CHECK_EQ(f.qiov.size, 3);
    qemu_iovec_destroy(&f.qiov);
}

/* Every (offset, length) pair, compared with the flat truth. */
static void test_to_buf_all_ranges(void)
{
    Fixture f;
    char out[32];
    size_t off, len;
    int bad = 0;

    fixture_init(&f);
    for (off = 0; off <= 18; off++) {
        for (len = 0; len <= 20; len++) {
            size_t want = off >= 16 ? 0 : (len < 16 - off ? len : 16 - off);
            size_t got;

            memset(out, '#', sizeof(out));
            got = qemu_iovec_to_buf(&f.qiov, off, out, len);
            if (got != want || (want && memcmp(out, f.back + off, want)) ||
                out[want] != '#') {
                bad++;
            }
        }
    }
    CHECK_EQ(bad, 0);
    qemu_iovec_destroy(&f.qiov);
}

static void test_from_buf_across_elements(void)
{
    Fixture f;
    const char src[] = "0123456789ABCDEFGHIJ";
    char out[16];

    fixture_init(&f);
    /* Bytes 3..9 span elements 0, 2 and 3 (and skip the empty one). */
    CHECK_EQ(qemu_iovec_from_buf(&f.qiov, 3, src, 7), 7);
    CHECK(memcmp(f.back, "abc0123456klmnop", 16) == 0);
    /* Clamped at the end. */
    CHECK_EQ(qemu_iovec_from_buf(&f.qiov, 12, src, 20), 4);
    CHECK(memcmp(f.back, "abc0123456kl0123", 16) == 0);
    CHECK_EQ(qemu_iovec_from_buf(&f.qiov, 16, src, 1), 0);
    CHECK_EQ(qemu_iovec_from_buf(&f.qiov, 100, src, 1), 0);
    CHECK_EQ(qemu_iovec_to_buf(&f.qiov, 0, out, 16), 16);
    CHECK(memcmp(out, "abc0123456kl0123", 16) == 0);
    qemu_iovec_destroy(&f.qiov);
}

static void test_memset(void)
{
    Fixture f;

    fixture_init(&f);
    CHECK_EQ(qemu_iovec_memset(&f.qiov, 4, 'z', 3), 3);
    CHECK(memcmp(f.back, "abcdzzzhijklmnop", 16) == 0);
    CHECK_EQ(qemu_iovec_memset(&f.qiov, 14, 'y', 99), 2);
    CHECK(memcmp(f.back, "abcdzzzhijklmnyy", 16) == 0);
    CHECK_EQ(qemu_iovec_memset(&f.qiov, 16, 'x', 1), 0);
    CHECK_EQ(qemu_iovec_memset(&f.qiov, 0, 0, 16), 16);
    CHECK(memcmp(f.back, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0);
    qemu_iovec_destroy(&f.qiov);
}

static void test_init_buf(void)
{
    char buf[8] = "abcdefg";
    char out[8];
    QEMUIOVector qiov;

    qemu_iovec_init_buf(&qiov, buf, sizeof(buf));
    CHECK_EQ(qiov.niov, 1);
    CHECK_EQ(qiov.size, 8);
    CHECK(qiov.iov == &qiov.local_iov);          /* inside: no allocation */
    CHECK(qiov.iov[0].iov_base == buf);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, 2, out, 8), 6);
    CHECK(memcmp(out, "cdefg", 6) == 0);
    CHECK_EQ(qemu_iovec_from_buf(&qiov, 0, "XY", 2), 2);
    CHECK(memcmp(buf, "XYcdefg", 8) == 0);
    qemu_iovec_destroy(&qiov);                   /* frees nothing */
    CHECK_EQ(qiov.niov, 0);
}

static void test_init_external(void)
{
    char a[4] = "abc", b[4] = "def";
    struct iovec iov[2] = { { a, 3 }, { b, 3 } };
    char out[8] = { 0 };
    QEMUIOVector qiov;

    qemu_iovec_init_external(&qiov, iov, 2);
    CHECK(qiov.iov == iov);
    CHECK_EQ(qiov.niov, 2);
    CHECK_EQ(qiov.nalloc, -1);
    CHECK_EQ(qiov.size, 6);
    CHECK_EQ(qemu_iovec_to_buf(&qiov, 1, out, 4), 4);
    CHECK(memcmp(out, "bcde", 4) == 0);
    qemu_iovec_destroy(&qiov);                   /* must not free iov */
    CHECK(iov[0].iov_base == a);
}

static void test_concat(void)
{
    Fixture f;
    QEMUIOVector dst;
    char out[32];

    fixture_init(&f);
    qemu_iovec_init(&dst, 2);
    qemu_iovec_add(&dst, f.back + 15, 1);        /* existing content */

    /* Bytes 3..8 of src: tail of element 0, element 2, head of 3. */
    qemu_iovec_concat(&dst, &f.qiov, 3, 6);
    CHECK_EQ(dst.size, 7);
    CHECK_EQ(dst.niov, 4);
    CHECK(dst.iov[1].iov_base == f.back + 3);    /* references, no copy */
    CHECK_EQ(dst.iov[1].iov_len, 2);
    CHECK_EQ(qemu_iovec_to_buf(&dst, 0, out, sizeof(out)), 7);
    CHECK(memcmp(out, "pdefghi", 7) == 0);

    /* Whole source, and an empty range (adds nothing). */
    qemu_iovec_concat(&dst, &f.qiov, 0, f.qiov.size);
    CHECK_EQ(dst.size, 23);
    qemu_iovec_concat(&dst, &f.qiov, 16, 0);
    CHECK_EQ(dst.size, 23);
    CHECK_EQ(qemu_iovec_to_buf(&dst, 7, out, sizeof(out)), 16);
    CHECK(memcmp(out, f.back, 16) == 0);

    /* Last byte only. */
    qemu_iovec_reset(&dst);
    qemu_iovec_concat(&dst, &f.qiov, 15, 1);
    CHECK_EQ(dst.niov, 1);
    CHECK(dst.iov[0].iov_base == f.back + 15);

    qemu_iovec_destroy(&dst);
    qemu_iovec_destroy(&f.qiov);
}

static void test_reset_reuse(void)
{
    Fixture f;
    int nalloc;
    struct iovec *arr;

    fixture_init(&f);
    nalloc = f.qiov.nalloc;
    arr = f.qiov.iov;
    qemu_iovec_reset(&f.qiov);
    CHECK_EQ(f.qiov.niov, 0);
    CHECK_EQ(f.qiov.size, 0);
    CHECK_EQ(f.qiov.nalloc, nalloc);             /* array kept */
    CHECK(f.qiov.iov == arr);
    qemu_iovec_add(&f.qiov, f.back, 2);
    CHECK_EQ(f.qiov.size, 2);
    qemu_iovec_destroy(&f.qiov);
    CHECK_EQ(f.qiov.niov, 0);
    /* Re-initialising after destroy is fine. */
    qemu_iovec_init(&f.qiov, 4);
    qemu_iovec_destroy(&f.qiov);
}

/* ------------------------------------------------------------------ */
/* Misuse aborts                                                       */

static void add_to_external(void *opaque)
{
    char a[2];
    struct iovec iov = { a, 2 };
    QEMUIOVector qiov;

    qemu_iovec_init_external(&qiov, &iov, 1);
    qemu_iovec_add(&qiov, a, 1);
}

static void add_to_init_buf(void *opaque)
{
    char a[2];
    QEMUIOVector qiov;

    qemu_iovec_init_buf(&qiov, a, 2);
    qemu_iovec_add(&qiov, a, 1);
}

static void concat_past_end(void *opaque)
{
    char a[4];
    QEMUIOVector src, dst;

    qemu_iovec_init_buf(&src, a, 4);
    qemu_iovec_init(&dst, 1);
    qemu_iovec_concat(&dst, &src, 2, 3);
}

static void test_misuse_aborts(void)
{
    DeathResult res;

    REQUIRE(death_run(add_to_external, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "qemu_iovec_add") != NULL);
    REQUIRE(death_run(add_to_init_buf, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    REQUIRE(death_run(concat_past_end, NULL, &res));
    CHECK(died_of(&res, SIGABRT));
    CHECK(strstr(res.err, "qemu_iovec_concat") != NULL);
}

int main(void)
{
    TEST(test_init_add_size);
    TEST(test_to_buf_all_ranges);
    TEST(test_from_buf_across_elements);
    TEST(test_memset);
    TEST(test_init_buf);
    TEST(test_init_external);
    TEST(test_concat);
    TEST(test_reset_reuse);
    TEST(test_misuse_aborts);
    return test_done();
}
