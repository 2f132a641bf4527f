/*
 * test-nbd-handshake - aioloop-nbd's option haggling against a raw
 * client: every option it implements, and what a hostile or broken
 * client may send (malformed, truncated, oversized, unknown, garbage).
 * After each case the server must still serve a well-behaved client and
 * exit 0 on SIGTERM.
 *
 *   test-nbd-handshake PATH-TO-aioloop-nbd
 *
 * SPDX-License-Identifier: MIT
 */
#include "nbd-test.h"

#define IMG_SIZE (4u << 20)

static const char *const persistent[] = { "-t", "-e", "0", NULL };

/* A well-behaved client still gets served: GO, read 4 KiB, check it. */
static bool still_serving(const NbdtServer *s)
{
    uint8_t buf[4096];
    int fd = nbdt_open(s, false, NULL, NULL), i, err;
    bool ok = fd >= 0;

    if (ok) {
        ok = nbdt_send_req(fd, NBD_CMD_READ, 0, 7, 8192, sizeof(buf),
                           NULL) == 0 &&
             (err = nbdt_simple_reply(fd, 7)) == 0 &&
             nbdt_read(fd, buf, sizeof(buf)) == 0;
        for (i = 0; ok && i < (int)sizeof(buf); i++) {
            ok = buf[i] == nbdt_pattern(8192 + (uint64_t)i);
        }
        nbdt_send_req(fd, NBD_CMD_DISC, 0, 8, 0, 0, NULL);
        close(fd);
    }
    return ok;
}

/* Checks the server is alive and serving, stops it, expects status 0. */
static void finish(NbdtServer *s)
{
    CHECK(nbdt_alive(s));
    CHECK(still_serving(s));
    CHECK_EQ(nbdt_stop(s), 0);
    nbdt_cleanup(s);
}

static void test_list_info_go(void)
{
    NbdtServer s;
    uint8_t d[64], info[6];
    uint32_t len, t;
    int fd;
    bool saw_export = false, saw_bs = false, saw_name = false;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-x", "disk",
                                                    NULL });
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_LIST, NULL, 0) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_LIST, d, sizeof(d), &len),
             NBD_REP_SERVER);
    CHECK(len == 8 && nbd_ld32(d) == 4 && memcmp(d + 4, "disk", 4) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_LIST, NULL, 0, NULL), NBD_REP_ACK);

    /* INFO for "disk" asking for its name: INFO replies, then ACK. */
    nbd_st32(d, 4);
    memcpy(d + 4, "disk", 4);
    nbd_st16(d + 8, 1);
    nbd_st16(d + 10, NBD_INFO_NAME);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_INFO, d, 12) == 0);
    while ((t = nbdt_opt_reply(fd, NBD_OPT_INFO, d, sizeof(d), &len)) ==
           NBD_REP_INFO) {
        if (nbd_ld16(d) == NBD_INFO_EXPORT) {
            saw_export = len == 12 && nbd_ld64(d + 2) == IMG_SIZE &&
                         (nbd_ld16(d + 10) & NBD_FLAG_HAS_FLAGS) &&
                         (nbd_ld16(d + 10) & NBD_FLAG_SEND_FLUSH);
        } else if (nbd_ld16(d) == NBD_INFO_BLOCK_SIZE) {
            saw_bs = len == 14 && nbd_ld32(d + 10) == NBD_MAX_PAYLOAD;
        } else if (nbd_ld16(d) == NBD_INFO_NAME) {
            saw_name = len == 6 && memcmp(d + 2, "disk", 4) == 0;
        }
    }
    CHECK_EQ(t, NBD_REP_ACK);
    CHECK(saw_export && saw_bs && saw_name);

    /* GO on the default name "" then a read. */
    nbd_st32(info, 0);
    nbd_st16(info + 4, 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, info, 6) == 0);
    while ((t = nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL)) ==
           NBD_REP_INFO) {
    }
    CHECK_EQ(t, NBD_REP_ACK);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_READ, 0, 1, 0, 512, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(fd, 1), 0);
    REQUIRE(nbdt_read(fd, d, 64) == 0);
    CHECK(d[1] == nbdt_pattern(1) && d[63] == nbdt_pattern(63));
    close(fd);
    finish(&s);
}

static void test_unknown_and_unsupported_options(void)
{
    NbdtServer s;
    uint8_t junk[300];
    int fd;

    memset(junk, 0xa5, sizeof(junk));
    nbdt_start(&s, IMG_SIZE, persistent);
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, 99, junk, sizeof(junk)) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, 99, NULL, 0, NULL), NBD_REP_ERR_UNSUP);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_STARTTLS, NULL, 0) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_STARTTLS, NULL, 0, NULL),
             NBD_REP_ERR_UNSUP);
    REQUIRE(nbdt_send_opt(fd, 0xffffffffu, NULL, 0) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, 0xffffffffu, NULL, 0, NULL),
             NBD_REP_ERR_UNSUP);
    /* Metadata contexts: refused before structured replies, none after. */
    memset(junk, 0, 8);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_SET_META_CONTEXT, junk, 8) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_SET_META_CONTEXT, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL),
             NBD_REP_ACK);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    /* name "", one query "base:allocation": nothing offered, bare ACK. */
    nbd_st32(junk, 0);
    nbd_st32(junk + 4, 1);
    nbd_st32(junk + 8, 15);
    memcpy(junk + 12, "base:allocation", 15);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_LIST_META_CONTEXT, junk, 27) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_LIST_META_CONTEXT, NULL, 0, NULL),
             NBD_REP_ACK);
    /* ... and a query whose length runs past the data. */
    nbd_st32(junk + 8, 16);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_SET_META_CONTEXT, junk, 27) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_SET_META_CONTEXT, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_LIST, junk, 4) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_LIST, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    close(fd);
    finish(&s);
}

static void test_malformed_go(void)
{
    NbdtServer s;
    uint8_t d[64];
    uint32_t t;
    int fd;

    nbdt_start(&s, IMG_SIZE, persistent);
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    memset(d, 0, sizeof(d));
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, d, 3) == 0);     /* too short */
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    nbd_st32(d, 1000);                       /* name longer than the data */
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, d, 10) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    nbd_st32(d, 0);
    nbd_st16(d + 4, 5);                      /* 5 requests, room for 1 */
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_INFO, d, 8) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_INFO, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    nbd_st32(d, 4);                          /* a name with a NUL in it */
    memcpy(d + 4, "a\0bc", 4);
    nbd_st16(d + 8, 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, d, 10) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL),
             NBD_REP_ERR_INVALID);
    memcpy(d + 4, "nope", 4);                /* an export we do not have */
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, d, 10) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL),
             NBD_REP_ERR_UNKNOWN);
    /* After all that, GO still works on this connection. */
    REQUIRE(nbdt_send_go(fd, "") == 0);
    while ((t = nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL)) ==
           NBD_REP_INFO) {
    }
    CHECK_EQ(t, NBD_REP_ACK);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_FLUSH, 0, 3, 0, 0, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(fd, 3), 0);
    close(fd);
    finish(&s);
}

/* Option data over the server's limit is read, dropped and refused. */
static void test_option_too_big(void)
{
    NbdtServer s;
    size_t n = 3 * NBD_MAX_OPTION_DATA;
    uint8_t *big = calloc(1, n);
    uint32_t t;
    int fd;

    nbdt_start(&s, IMG_SIZE, persistent);
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_GO, big, (uint32_t)n) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL),
             NBD_REP_ERR_TOO_BIG);
    REQUIRE(nbdt_send_go(fd, "") == 0);
    while ((t = nbdt_opt_reply(fd, NBD_OPT_GO, NULL, 0, NULL)) ==
           NBD_REP_INFO) {
    }
    CHECK_EQ(t, NBD_REP_ACK);
    close(fd);
    /* An EXPORT_NAME that long cannot be refused: the server hangs up
     * without waiting for the data. */
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    nbd_st64(big, NBD_OPTS_MAGIC);
    nbd_st32(big + 8, NBD_OPT_EXPORT_NAME);
    nbd_st32(big + 12, 0x7fffffff);
    REQUIRE(nbdt_write(fd, big, 16) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    free(big);
    finish(&s);
}

static void test_abort_and_export_name(void)
{
    NbdtServer s;
    uint8_t d[200];
    int fd;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-x", "disk",
                                                    NULL });
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_ABORT, "x", 1) == 0);
    CHECK_EQ(nbdt_opt_reply(fd, NBD_OPT_ABORT, NULL, 0, NULL), NBD_REP_ACK);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);

    /* EXPORT_NAME with and without the 124 zeroes. */
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_EXPORT_NAME, "disk", 4) == 0);
    REQUIRE(nbdt_read(fd, d, 134) == 0);
    CHECK(nbd_ld64(d) == IMG_SIZE && d[133] == 0);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_FLUSH, 0, 9, 0, 0, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(fd, 9), 0);
    close(fd);
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE |
                                  NBD_FLAG_C_NO_ZEROES) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_EXPORT_NAME, "", 0) == 0);
    REQUIRE(nbdt_read(fd, d, 10) == 0);
    CHECK(nbd_ld64(d) == IMG_SIZE);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_FLUSH, 0, 10, 0, 0, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(fd, 10), 0);   /* no zeroes came before */
    close(fd);
    /* An unknown name: no error reply exists, the server hangs up. */
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_EXPORT_NAME, "nope", 4) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    finish(&s);
}

static void test_bad_flags_and_magic(void)
{
    NbdtServer s;
    uint8_t h[16];
    int fd;

    nbdt_start(&s, IMG_SIZE, persistent);
    fd = nbdt_connect(&s);                  /* a client flag never offered */
    REQUIRE(fd >= 0 && nbdt_greet(fd, 1u << 7) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    fd = nbdt_connect(&s);                  /* option with a wrong magic */
    REQUIRE(fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0);
    memset(h, 0x42, sizeof(h));
    REQUIRE(nbdt_write(fd, h, sizeof(h)) == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    /* Plain (not fixed) newstyle: EXPORT_NAME only; GO closes. */
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, 0) == 0);
    REQUIRE(nbdt_send_go(fd, "") == 0);
    CHECK(nbdt_closed_within(fd, 30, 0));
    close(fd);
    fd = nbdt_connect(&s);
    REQUIRE(fd >= 0 && nbdt_greet(fd, 0) == 0);
    REQUIRE(nbdt_send_opt(fd, NBD_OPT_EXPORT_NAME, "", 0) == 0);
    REQUIRE(nbdt_read(fd, h, 10) == 0);
    CHECK(nbd_ld64(h) == IMG_SIZE);
    close(fd);
    finish(&s);
}

/* Handshakes cut at every byte boundary, by clients that then leave. */
static void test_truncated_handshakes(void)
{
    NbdtServer s;
    uint8_t msg[64];
    size_t len = 0, cut;
    int fd;

    nbd_st32(msg, NBD_FLAG_C_FIXED_NEWSTYLE);
    nbd_st64(msg + 4, NBD_OPTS_MAGIC);
    nbd_st32(msg + 12, NBD_OPT_GO);
    nbd_st32(msg + 16, 8);
    nbd_st32(msg + 20, 0);
    nbd_st16(msg + 24, 1);
    nbd_st16(msg + 26, NBD_INFO_BLOCK_SIZE);
    len = 28;
    nbdt_start(&s, IMG_SIZE, persistent);
    for (cut = 0; cut < len; cut++) {
        uint8_t g[NBD_GREETING_LEN];

        fd = nbdt_connect(&s);
        REQUIRE(fd >= 0);
        if (cut % 2) {
            REQUIRE(nbdt_read(fd, g, sizeof(g)) == 0);
        }
        if (cut) {
            REQUIRE(nbdt_write(fd, msg, cut) == 0);
        }
        close(fd);
        test_progress();
    }
    finish(&s);
}

/* A client that connects and says nothing is dropped after the limit;
 * one that finishes in time is not. */
static void test_handshake_limit(void)
{
    NbdtServer s;
    int silent, good;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){
        "-t", "-e", "0", "--handshake-limit", "1", NULL });
    silent = nbdt_connect(&s);
    good = nbdt_open(&s, true, NULL, NULL);
    REQUIRE(silent >= 0 && good >= 0);
    /* The greeting (18 bytes) comes, then the close. */
    CHECK(nbdt_closed_within(silent, 60, NBD_GREETING_LEN));
    sleep(2);
    REQUIRE(nbdt_send_req(good, NBD_CMD_FLUSH, 0, 5, 0, 0, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(good, 5), 0);
    close(silent);
    close(good);
    finish(&s);
}

/* Seeded random bytes after the greeting, or after a valid GO. */
static void test_garbage(void)
{
    NbdtServer s;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    uint8_t junk[2048];
    int round, fd;
    size_t i;

    nbdt_start(&s, IMG_SIZE, persistent);
    for (round = 0; round < 40; round++) {
        for (i = 0; i < sizeof(junk); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        if (round % 2) {
            fd = nbdt_open(&s, round % 4 == 1, NULL, NULL);
        } else {
            fd = nbdt_connect(&s);
            if (fd >= 0 && nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE) < 0) {
                close(fd);
                fd = -1;
            }
        }
        REQUIRE(fd >= 0);
        nbdt_write(fd, junk, (size_t)(x % sizeof(junk)) + 1);
        close(fd);
        test_progress();
    }
    finish(&s);
}

/* Without -t the server exits 0 by itself when its (only: -e 1 by
 * default) client leaves, as qemu-nbd does. */
static void test_not_persistent(void)
{
    NbdtServer s;
    int fd, st = 0, i;
    pid_t r = 0;

    nbdt_start(&s, IMG_SIZE, NULL);
    fd = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(fd >= 0);
    REQUIRE(nbdt_send_req(fd, NBD_CMD_FLUSH, 0, 1, 0, 0, NULL) == 0);
    CHECK_EQ(nbdt_simple_reply(fd, 1), 0);
    CHECK(nbdt_alive(&s));
    close(fd);
    for (i = 0; i < 600 && r == 0; i++) {     /* it exits at once */
        r = waitpid(s.pid, &st, WNOHANG);
        if (r == 0) {
            usleep(100000);
        }
    }
    CHECK_EQ(r, s.pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (r == s.pid) {
        s.pid = 0;
    }
    nbdt_cleanup(&s);
}

int main(int argc, char **argv)
{
    nbdt_init(argc, argv);
    TEST(test_list_info_go);
    TEST(test_unknown_and_unsupported_options);
    TEST(test_malformed_go);
    TEST(test_option_too_big);
    TEST(test_abort_and_export_name);
    TEST(test_bad_flags_and_magic);
    TEST(test_truncated_handshakes);
    TEST(test_handshake_limit);
    TEST(test_garbage);
    TEST(test_not_persistent);
    return test_done();
}
