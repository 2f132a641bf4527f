/*
 * test-nbd-requests - aioloop-nbd's transmission phase against a raw
 * client: every command with its flags, simple and structured replies,
 * and the requests a hostile client sends (unknown commands and flags,
 * ranges past the end or over 32 MiB, zero lengths, misaligned ranges,
 * writes to a read-only export, a wrong magic). Each bad request gets an
 * error reply or a disconnect of that client only; the data stays what
 * the good requests wrote.
 *
 *   test-nbd-requests PATH-TO-aioloop-nbd
 *
 * SPDX-License-Identifier: MIT
 */
#include "nbd-test.h"

#define IMG_SIZE (8u << 20)

/* Reads a structured read reply (one OFFSET_DATA chunk with DONE) into
 * @buf, or an ERROR chunk. Returns 0, the NBD error, or -1 on garbage. */
static int read_structured(int fd, uint64_t cookie, uint64_t off,
                           uint8_t *buf, uint32_t len)
{
    uint8_t h[NBD_READ_CHUNK_HEADER_LEN], e[6], msg[256];
    uint32_t clen;

    if (nbdt_read(fd, h, NBD_CHUNK_HEADER_LEN) < 0 ||
        nbd_ld32(h) != NBD_STRUCTURED_REPLY_MAGIC ||
        nbd_ld64(h + 8) != cookie || !(nbd_ld16(h + 4) & NBD_REPLY_FLAG_DONE)) {
        return -1;
    }
    clen = nbd_ld32(h + 16);
    if (nbd_ld16(h + 6) == NBD_REPLY_TYPE_ERROR) {
        uint16_t mlen;

        if (clen < 6 || nbdt_read(fd, e, 6) < 0) {
            return -1;
        }
        mlen = nbd_ld16(e + 4);
        if (mlen != clen - 6 || mlen > sizeof(msg) ||
            nbdt_read(fd, msg, mlen) < 0) {
            return -1;
        }
        return (int)nbd_ld32(e);
    }
    if (nbd_ld16(h + 6) != NBD_REPLY_TYPE_OFFSET_DATA || clen != 8 + len ||
        nbdt_read(fd, h + 20, 8) < 0 || nbd_ld64(h + 20) != off) {
        return -1;
    }
    return nbdt_read(fd, buf, len);
}

/* Simple read: request, reply, data. Returns 0, the error, or -1. */
static int do_read(int fd, uint64_t off, uint8_t *buf, uint32_t len)
{
    int err;

    if (nbdt_send_req(fd, NBD_CMD_READ, 0, off + 1, off, len, NULL) < 0) {
        return -1;
    }
    err = nbdt_simple_reply(fd, off + 1);
    return err != 0 ? err : nbdt_read(fd, buf, len);
}

static int do_cmd(int fd, uint16_t type, uint16_t flags, uint64_t off,
                  uint32_t len, const void *data)
{
    if (nbdt_send_req(fd, type, flags, 77, off, len, data) < 0) {
        return -1;
    }
    return nbdt_simple_reply(fd, 77);
}

static bool is_pattern(const uint8_t *buf, uint64_t off, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] != nbdt_pattern(off + i)) {
            return false;
        }
    }
    return true;
}

static bool is_byte(const uint8_t *buf, uint8_t b, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] != b) {
            return false;
        }
    }
    return true;
}

static const char *const base_args[] = { "-t", "-e", "0", NULL };

/* Every command, for one set of server arguments. */
static void commands(const char *const *args)
{
    NbdtServer s;
    uint8_t *buf = malloc(1 << 20), *w = malloc(1 << 20);
    uint16_t tf = 0;
    uint32_t mb = 0;
    int fd, err;

    nbdt_start(&s, IMG_SIZE, args);
    fd = nbdt_open(&s, false, &tf, &mb);
    REQUIRE(fd >= 0);
    CHECK(tf & NBD_FLAG_SEND_FLUSH && tf & NBD_FLAG_SEND_FUA &&
          tf & NBD_FLAG_SEND_TRIM && tf & NBD_FLAG_SEND_WRITE_ZEROES &&
          tf & NBD_FLAG_CAN_MULTI_CONN && !(tf & NBD_FLAG_READ_ONLY) &&
          !(tf & NBD_FLAG_SEND_DF));
    CHECK(mb >= 1 && mb <= 4096 && !(mb & (mb - 1)));
    CHECK_EQ(do_read(fd, 0, buf, 1 << 20), 0);
    CHECK(is_pattern(buf, 0, 1 << 20));
    memset(w, 0x5a, 1 << 20);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 0, 1 << 20, 1 << 20, w), 0);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 3 << 20, 4096, w), 0);
    CHECK_EQ(do_cmd(fd, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(do_read(fd, 1 << 20, buf, 1 << 20), 0);
    CHECK(is_byte(buf, 0x5a, 1 << 20));
    /* Zeroes: plain, without holes, fast (may say ENOTSUP), with FUA. */
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, 0, 1 << 20, 65536, NULL), 0);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE |
                    NBD_CMD_FLAG_FUA, (1 << 20) + 65536, 65536, NULL), 0);
    err = do_cmd(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO,
                 (1 << 20) + 131072, 65536, NULL);
    CHECK(err == 0 || err == NBD_ENOTSUP);
    if (err == NBD_ENOTSUP) {       /* and then it did not touch the data */
        CHECK_EQ(do_read(fd, (1 << 20) + 131072, buf, 65536), 0);
        CHECK(is_byte(buf, 0x5a, 65536));
        CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, 0, (1 << 20) + 131072,
                        65536, NULL), 0);
    }
    CHECK_EQ(do_read(fd, 1 << 20, buf, 196608), 0);
    CHECK(is_byte(buf, 0, 196608));
    CHECK_EQ(do_read(fd, (1 << 20) + 196608, buf, 4096), 0);
    CHECK(is_byte(buf, 0x5a, 4096));
    /* Trim: a hint; the range reads back as anything, the rest intact. */
    CHECK_EQ(do_cmd(fd, NBD_CMD_TRIM, 0, 2 << 20, 1 << 20, NULL), 0);
    CHECK_EQ(do_read(fd, 4 << 20, buf, 65536), 0);
    CHECK(is_pattern(buf, 4 << 20, 65536));
    /* The last byte(s) of the export. */
    CHECK_EQ(do_read(fd, IMG_SIZE - 4096, buf, 4096), 0);
    CHECK(is_pattern(buf, IMG_SIZE - 4096, 4096));
    CHECK_EQ(nbdt_send_req(fd, NBD_CMD_DISC, 0, 1, 0, 0, NULL), 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);

    /* Structured replies: reads come as OFFSET_DATA, DF is offered. */
    fd = nbdt_open(&s, true, &tf, NULL);
    REQUIRE(fd >= 0);
    CHECK(tf & NBD_FLAG_SEND_DF);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 5, 4 << 20,
                          65536, NULL) == 0);
    CHECK_EQ(read_structured(fd, 5, 4 << 20, buf, 65536), 0);
    CHECK(is_pattern(buf, 4 << 20, 65536));
    REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 6, IMG_SIZE, 4096, NULL) == 0);
    CHECK_EQ(read_structured(fd, 6, 0, buf, 0), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    close(fd);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
    free(buf);
    free(w);
}

static void test_commands(void)
{
    commands(base_args);
}

static void test_commands_cache_none_discard(void)
{
    commands((const char *const[]){ "-t", "--cache=none", "--discard=unmap",
                                    NULL });
}

static void test_commands_iothreads(void)
{
    commands((const char *const[]){ "-t", "--iothreads", "2", "--aio",
                                    "threads", NULL });
}

/* Bad requests: each gets its error, the connection goes on, nothing
 * that was not a good write changes the data. */
static void test_bad_requests(void)
{
    NbdtServer s;
    uint8_t buf[8192], w[4096];
    int fd;

    memset(w, 0xee, sizeof(w));
    nbdt_start(&s, IMG_SIZE, base_args);
    fd = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(fd >= 0);
    CHECK_EQ(do_cmd(fd, 99, 0, 0, 4096, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_BLOCK_STATUS, 0, 0, 4096, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 1u << 9, 0, 4096, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 4096, NULL),
             NBD_EINVAL);           /* DF needs structured replies */
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, IMG_SIZE - 4096, 8192, NULL),
             NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, UINT64_MAX - 4095, 8192, NULL),
             NBD_EINVAL);           /* offset + length overflows */
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, 0, 0, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 1, NULL),
             NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_TRIM, 0, IMG_SIZE, 4096, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, 0, IMG_SIZE - 1, 2, NULL),
             NBD_ENOSPC);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_DF, 0, 2, NULL),
             NBD_EINVAL);
    /* A write past the end: its payload is read and dropped. */
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 0, IMG_SIZE - 2048, 4096, w),
             NBD_ENOSPC);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 1u << 4, 0, 4096, w), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 0, 0, 0, NULL), NBD_EINVAL);
    CHECK_EQ(do_read(fd, IMG_SIZE - 8192, buf, 8192), 0);
    CHECK(is_pattern(buf, IMG_SIZE - 8192, 8192));
    CHECK_EQ(do_read(fd, 0, buf, 8192), 0);
    CHECK(is_pattern(buf, 0, 8192));
    /* A write over 32 MiB: the server will not read that much to stay in
     * step, it hangs up on this client. */
    REQUIRE(nbdt_send_req(fd, NBD_CMD_WRITE, 0, 1, 0, NBD_MAX_PAYLOAD + 4096,
                          NULL) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    /* A wrong request magic: a hard disconnect too. */
    fd = nbdt_open(&s, true, NULL, NULL);
    REQUIRE(fd >= 0);
    memset(buf, 0x33, NBD_REQUEST_LEN);
    REQUIRE(nbdt_write(fd, buf, NBD_REQUEST_LEN) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    fd = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(fd >= 0);
    CHECK_EQ(do_read(fd, 0, buf, 8192), 0);
    CHECK(is_pattern(buf, 0, 8192));
    close(fd);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

/* --cache=none: misaligned requests fail cleanly (the server advertises
 * its O_DIRECT alignment as the minimum block size). */
static void test_misaligned(void)
{
    NbdtServer s;
    uint8_t buf[4096], w[4096];
    uint32_t mb = 0;
    int fd;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "--cache=none",
                                                    NULL });
    fd = nbdt_open(&s, false, NULL, &mb);
    REQUIRE(fd >= 0);
    if (mb <= 1) {
        close(fd);
        nbdt_stop(&s);
        nbdt_cleanup(&s);
        SKIP_CASE("the file system needs no O_DIRECT alignment");
    }
    memset(w, 0x77, sizeof(w));
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, 1, mb, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_READ, 0, 0, mb + 1, NULL), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 0, mb / 2, mb, w), NBD_EINVAL);
    CHECK_EQ(do_cmd(fd, NBD_CMD_TRIM, 0, 1, mb, NULL), NBD_EINVAL);
    CHECK_EQ(do_read(fd, 0, buf, sizeof(buf)), 0);
    CHECK(is_pattern(buf, 0, sizeof(buf)));
    close(fd);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

static void test_read_only(void)
{
    NbdtServer s;
    uint8_t buf[4096], w[4096];
    uint16_t tf = 0;
    int fd;

    memset(w, 0x11, sizeof(w));
    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-r", NULL });
    fd = nbdt_open(&s, false, &tf, NULL);
    REQUIRE(fd >= 0);
    CHECK(tf & NBD_FLAG_READ_ONLY && !(tf & NBD_FLAG_SEND_TRIM) &&
          !(tf & NBD_FLAG_SEND_WRITE_ZEROES));
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, 0, 0, 4096, w), NBD_EPERM);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 4096, 4096, w),
             NBD_EPERM);
    CHECK_EQ(do_cmd(fd, NBD_CMD_TRIM, 0, 0, 4096, NULL), NBD_EPERM);
    CHECK_EQ(do_cmd(fd, NBD_CMD_WRITE_ZEROES, 0, 0, 4096, NULL), NBD_EPERM);
    CHECK_EQ(do_cmd(fd, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(do_read(fd, 0, buf, sizeof(buf)), 0);
    CHECK(is_pattern(buf, 0, sizeof(buf)));
    close(fd);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

/* Requests are served concurrently and replies may come in any order;
 * every cookie gets exactly one reply with the right data. */
static void test_pipelined(void)
{
    enum { N = 200 };
    NbdtServer s;
    static uint8_t seen[N];
    uint8_t buf[4096], w[4096];
    int fd, i;

    nbdt_start(&s, IMG_SIZE, base_args);
    fd = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(fd >= 0);
    for (i = 0; i < N; i++) {   /* writes of i at 4 KiB * i, then reads */
        memset(w, i, sizeof(w));
        REQUIRE(nbdt_send_req(fd, NBD_CMD_WRITE, 0, (uint64_t)i,
                              (uint64_t)i * 4096, 4096, w) == 0);
    }
    for (i = 0; i < N; i++) {
        uint8_t r[16];

        REQUIRE(nbdt_read(fd, r, 16) == 0);
        REQUIRE(nbd_ld32(r) == NBD_SIMPLE_REPLY_MAGIC && nbd_ld32(r + 4) == 0);
        REQUIRE(nbd_ld64(r + 8) < N && !seen[nbd_ld64(r + 8)]);
        seen[nbd_ld64(r + 8)] = 1;
    }
    for (i = 0; i < N; i++) {
        REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 1000 + (uint64_t)i,
                              (uint64_t)i * 4096, 4096, NULL) == 0);
    }
    for (i = 0; i < N; i++) {
        uint8_t r[16];
        uint64_t k;

        REQUIRE(nbdt_read(fd, r, 16) == 0 && nbd_ld32(r + 4) == 0);
        k = nbd_ld64(r + 8) - 1000;
        REQUIRE(k < N && seen[k] == 1);
        seen[k] = 2;
        REQUIRE(nbdt_read(fd, buf, sizeof(buf)) == 0);
        CHECK(is_byte(buf, (uint8_t)k, sizeof(buf)));
    }
    close(fd);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

int main(int argc, char **argv)
{
    nbdt_init(argc, argv);
    TEST(test_commands);
    TEST(test_commands_cache_none_discard);
    TEST(test_commands_iothreads);
    TEST(test_bad_requests);
    TEST(test_misaligned);
    TEST(test_read_only);
    TEST(test_pipelined);
    return test_done();
}
