/*
 * test-nbd-framing - how aioloop-nbd takes requests off the wire: a
 * request (and a write's payload) split across segments at every byte
 * boundary, a byte at a time, many requests in one segment, a client
 * that sends request N+1 before reading reply N, and one that sends a
 * whole batch before reading any reply. Every request gets exactly one
 * reply with its cookie, reads return what the writes put there.
 * Each case runs on a file in memory (/dev/shm: reads and writes served
 * in place by the receive coroutine, replies held and sent together)
 * and with --in-place=off (every request in its own coroutine through
 * the engine).
 *
 *   test-nbd-framing PATH-TO-aioloop-nbd
 *
 * SPDX-License-Identifier: MIT
 */
#include "nbd-test.h"

#define IMG_SIZE (4u << 20)
#define BLK 512

static const char *const in_place_args[] = { "-t", "-e", "0", NULL };
static const char *const engine_args[] = { "-t", "-e", "0",
                                           "--in-place=off", NULL };

/* Appends a request (and @data, @len bytes, for a write) to @buf. */
static size_t put_req(uint8_t *buf, uint16_t type, uint64_t cookie,
                      uint64_t off, uint32_t len, const void *data)
{
    nbd_st32(buf, NBD_REQUEST_MAGIC);
    nbd_st16(buf + 4, 0);
    nbd_st16(buf + 6, type);
    nbd_st64(buf + 8, cookie);
    nbd_st64(buf + 16, off);
    nbd_st32(buf + 24, len);
    if (data) {
        memcpy(buf + NBD_REQUEST_LEN, data, len);
        return NBD_REQUEST_LEN + len;
    }
    return NBD_REQUEST_LEN;
}

/* @n writes into @buf: write i puts a block of byte i+1 at block i,
 * cookie 2i. Returns the stream's length. */
static size_t stream(uint8_t *buf, int n)
{
    uint8_t data[BLK];
    size_t len = 0;
    int i;

    for (i = 0; i < n; i++) {
        memset(data, i + 1, sizeof(data));
        len += put_req(buf + len, NBD_CMD_WRITE, 2 * (uint64_t)i,
                       (uint64_t)i * BLK, BLK, data);
    }
    return len;
}

static void start(NbdtServer *s, bool in_place, int *fd)
{
    nbdt_scratch = in_place ? "/dev/shm" : "/tmp";
    nbdt_start(s, IMG_SIZE, in_place ? in_place_args : engine_args);
    *fd = nbdt_open(s, false, NULL, NULL);
    REQUIRE(*fd >= 0);
}

static void stop(NbdtServer *s, int fd)
{
    close(fd);
    CHECK_EQ(nbdt_stop(s), 0);
    nbdt_cleanup(s);
}

/* A write (header + payload) then its read-back, split in two writes at
 * every byte boundary: the server sees the first part, then the rest. */
static void split_everywhere(bool in_place)
{
    NbdtServer s;
    uint8_t buf[2 * NBD_REQUEST_LEN + BLK], w[BLK];
    size_t len, k;
    int fd;

    start(&s, in_place, &fd);
    for (k = 1; k < 2 * NBD_REQUEST_LEN + BLK; k++) {
        uint64_t base = 1000 * k;
        uint64_t off = (k % 64) * BLK;

        memset(w, (int)(k & 0xff), sizeof(w));
        len = put_req(buf, NBD_CMD_WRITE, base, off, BLK, w);
        len += put_req(buf + len, NBD_CMD_READ, base + 1, off, BLK, NULL);
        REQUIRE(nbdt_write(fd, buf, k) == 0);
        usleep(100);            /* give the server the first part alone */
        REQUIRE(nbdt_write(fd, buf + k, len - k) == 0);
        /* The write and the read may run concurrently (NBD orders
         * nothing): check the write's reply, then read the block again. */
        {
            uint8_t r[NBD_SIMPLE_REPLY_LEN], d[BLK];
            int seen = 0, i;

            for (i = 0; i < 2; i++) {
                REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
                REQUIRE(nbd_ld32(r) == NBD_SIMPLE_REPLY_MAGIC);
                CHECK_EQ(nbd_ld32(r + 4), 0);
                REQUIRE(nbd_ld64(r + 8) == base ||
                        nbd_ld64(r + 8) == base + 1);
                seen |= 1 << (int)(nbd_ld64(r + 8) - base);
                if (nbd_ld64(r + 8) == base + 1) {
                    REQUIRE(nbdt_read(fd, d, sizeof(d)) == 0);
                }
            }
            CHECK_EQ(seen, 3);
            REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 7, off, BLK,
                                  NULL) == 0);
            REQUIRE(nbdt_simple_reply(fd, 7) == 0);
            REQUIRE(nbdt_read(fd, d, sizeof(d)) == 0);
            for (i = 0; i < BLK; i++) {
                REQUIRE(d[i] == (uint8_t)(k & 0xff));
            }
        }
        test_progress();
    }
    stop(&s, fd);
}

static void test_split_everywhere_in_place(void)
{
    split_everywhere(true);
}

static void test_split_everywhere_engine(void)
{
    split_everywhere(false);
}

/* 32 writes sent a byte per write() call, then their replies; then the
 * 32 blocks read back in one segment. */
static void byte_at_a_time(bool in_place)
{
    static uint8_t buf[32 * (2 * NBD_REQUEST_LEN + BLK)];
    NbdtServer s;
    size_t len, i;
    int fd;

    start(&s, in_place, &fd);
    len = stream(buf, 32);
    for (i = 0; i < len; i++) {
        REQUIRE(nbdt_write(fd, buf + i, 1) == 0);
    }
    {
        uint8_t r[NBD_SIMPLE_REPLY_LEN];
        int n;

        for (n = 0; n < 32; n++) {
            REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
            CHECK_EQ(nbd_ld32(r + 4), 0);
            REQUIRE(nbd_ld64(r + 8) % 2 == 0 && nbd_ld64(r + 8) < 64);
        }
    }
    len = 0;
    for (i = 0; i < 32; i++) {
        len += put_req(buf + len, NBD_CMD_READ, 2 * i + 1, i * BLK, BLK,
                       NULL);
    }
    REQUIRE(nbdt_write(fd, buf, len) == 0);
    {
        uint8_t r[NBD_SIMPLE_REPLY_LEN], d[BLK];
        int n, j;

        for (n = 0; n < 32; n++) {
            uint64_t k;

            REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
            CHECK_EQ(nbd_ld32(r + 4), 0);
            k = nbd_ld64(r + 8);
            REQUIRE(k % 2 == 1 && k < 64);
            REQUIRE(nbdt_read(fd, d, sizeof(d)) == 0);
            for (j = 0; j < BLK; j++) {
                REQUIRE(d[j] == (uint8_t)(k / 2 + 1));
            }
        }
    }
    stop(&s, fd);
}

static void test_byte_at_a_time_in_place(void)
{
    byte_at_a_time(true);
}

static void test_byte_at_a_time_engine(void)
{
    byte_at_a_time(false);
}

/* 100 writes in one segment, their replies; then 100 reads of them in
 * one segment (more than the 64 replies the server holds at most). */
static void one_segment(bool in_place)
{
    static uint8_t buf[100 * (NBD_REQUEST_LEN + BLK)];
    NbdtServer s;
    size_t len;
    int fd, i;

    start(&s, in_place, &fd);
    len = stream(buf, 100);
    REQUIRE(nbdt_write(fd, buf, len) == 0);
    {
        uint8_t r[NBD_SIMPLE_REPLY_LEN];

        for (i = 0; i < 100; i++) {
            REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
            CHECK_EQ(nbd_ld32(r + 4), 0);
        }
    }
    len = 0;
    for (i = 0; i < 100; i++) {
        len += put_req(buf + len, NBD_CMD_READ, 2 * (uint64_t)i + 1,
                       (uint64_t)i * BLK, BLK, NULL);
    }
    REQUIRE(nbdt_write(fd, buf, len) == 0);
    {
        uint8_t r[NBD_SIMPLE_REPLY_LEN], d[BLK];
        static uint8_t seen[100];
        int j;

        memset(seen, 0, sizeof(seen));
        for (i = 0; i < 100; i++) {
            uint64_t k;

            REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
            CHECK_EQ(nbd_ld32(r + 4), 0);
            k = nbd_ld64(r + 8) / 2;
            REQUIRE(k < 100 && !seen[k]);
            seen[k] = 1;
            REQUIRE(nbdt_read(fd, d, sizeof(d)) == 0);
            for (j = 0; j < BLK; j++) {
                REQUIRE(d[j] == (uint8_t)(k + 1));
            }
        }
    }
    stop(&s, fd);
}

static void test_one_segment_in_place(void)
{
    one_segment(true);
}

static void test_one_segment_engine(void)
{
    one_segment(false);
}

/* Request N+1 is sent before reply N is read, 500 times; then 200 reads
 * of 64 KiB (12.5 MiB of replies, more than the socket holds) are all
 * sent before any reply is read. */
static void ahead(bool in_place)
{
    static uint8_t big[64 * 1024];
    NbdtServer s;
    uint8_t d[BLK];
    int fd, i;

    start(&s, in_place, &fd);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 0, 0, BLK, NULL) == 0);
    for (i = 1; i <= 500; i++) {
        uint64_t off = (uint64_t)((i - 1) % 1000) * BLK;
        size_t j;

        if (i < 500) {
            REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, (uint64_t)i,
                                  (uint64_t)(i % 1000) * BLK, BLK,
                                  NULL) == 0);
        }
        REQUIRE(nbdt_simple_reply(fd, (uint64_t)(i - 1)) == 0);
        REQUIRE(nbdt_read(fd, d, sizeof(d)) == 0);
        for (j = 0; j < BLK; j++) {
            REQUIRE(d[j] == nbdt_pattern(off + j));
        }
        test_progress();
    }
    for (i = 0; i < 200; i++) {
        REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 10000 + (uint64_t)i,
                              (uint64_t)(i % 64) * sizeof(big), sizeof(big),
                              NULL) == 0);
    }
    for (i = 0; i < 200; i++) {
        uint8_t r[NBD_SIMPLE_REPLY_LEN];
        uint64_t k, off;
        size_t j;

        REQUIRE(nbdt_read(fd, r, sizeof(r)) == 0);
        CHECK_EQ(nbd_ld32(r + 4), 0);
        k = nbd_ld64(r + 8) - 10000;
        REQUIRE(k < 200);
        REQUIRE(nbdt_read(fd, big, sizeof(big)) == 0);
        off = (k % 64) * sizeof(big);
        for (j = 0; j < sizeof(big); j++) {
            REQUIRE(big[j] == nbdt_pattern(off + j));
        }
        test_progress();
    }
    stop(&s, fd);
}

static void test_ahead_in_place(void)
{
    ahead(true);
}

static void test_ahead_engine(void)
{
    ahead(false);
}

int main(int argc, char **argv)
{
    nbdt_init(argc, argv);
    TEST(test_split_everywhere_in_place);
    TEST(test_split_everywhere_engine);
    TEST(test_byte_at_a_time_in_place);
    TEST(test_byte_at_a_time_engine);
    TEST(test_one_segment_in_place);
    TEST(test_one_segment_engine);
    TEST(test_ahead_in_place);
    TEST(test_ahead_engine);
    return test_done();
}
