/*
 * test-nbd-stress - aioloop-nbd under clients that misbehave at scale:
 * clients that leave with requests in flight, a client that never reads
 * its replies, 1,000 connections at once with and without -e limits,
 * SIGTERM with requests in flight, and a churn of connections during
 * which the server's fd count and RSS must stay flat.
 *
 *   test-nbd-stress PATH-TO-aioloop-nbd
 *   AIOLOOP_NBD_CHURN_SECS=60 test-nbd-stress ...   (make nbd-churn)
 *
 * The churn runs AIOLOOP_NBD_CHURN_SECS seconds (default 5 in make check;
 * the 60-second run is "make nbd-churn"). Counts are exact; no check
 * depends on speed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "nbd-test.h"

#define IMG_SIZE (16u << 20)

static bool read_checks(const NbdtServer *s, uint64_t off, uint32_t len)
{
    uint8_t *buf = malloc(len);
    int fd = nbdt_open(s, false, NULL, NULL);
    bool ok = fd >= 0 && buf &&
              nbdt_send_req(fd, NBD_CMD_READ, 0, 1, off, len, NULL) == 0 &&
              nbdt_simple_reply(fd, 1) == 0 && nbdt_read(fd, buf, len) == 0;
    uint32_t i;

    for (i = 0; ok && i < len; i++) {
        ok = buf[i] == nbdt_pattern(off + i);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return ok;
}

/* The server's fd count once it has settled: the same value seen twice
 * 100 ms apart (connections being torn down are not counted twice). */
static int settled_fds(const NbdtServer *s, int want)
{
    int last = -2, n, i;

    for (i = 0; i < 600; i++) {
        n = nbdt_fd_count(s->pid);
        if (n == want || (n == last && want < 0)) {
            return n;
        }
        last = n;
        usleep(100000);
        test_progress();
    }
    return n;
}

/* Clients that send writes and leave without reading the replies. */
static void test_disconnect_in_flight(void)
{
    NbdtServer s;
    uint8_t *w = malloc(256 << 10);
    int base, round, i;

    memset(w, 0xc3, 256 << 10);
    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-e", "0", NULL });
    REQUIRE(read_checks(&s, 0, 4096));
    base = settled_fds(&s, -1);
    for (round = 0; round < 20; round++) {
        int fd = nbdt_open(&s, round % 2, NULL, NULL);

        REQUIRE(fd >= 0);
        for (i = 0; i < 16; i++) {  /* 4 MiB of writes to the upper half */
            if (nbdt_send_req(fd, NBD_CMD_WRITE, 0, (uint64_t)i,
                              (8u << 20) + (uint64_t)i * (256 << 10),
                              256 << 10, w) < 0) {
                break;
            }
        }
        nbdt_send_req(fd, NBD_CMD_READ, 0, 99, 0, 1 << 20, NULL);
        close(fd);
        test_progress();
    }
    CHECK(nbdt_alive(&s));
    CHECK(read_checks(&s, 0, 8u << 20));        /* the lower half intact */
    CHECK_EQ(settled_fds(&s, base), base);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
    free(w);
}

/* A client that sends thousands of 1 MiB reads and never reads a reply:
 * the server stops reading from it (back-pressure), its memory stays
 * bounded, and another client is served meanwhile. */
static void test_client_never_reads(void)
{
    NbdtServer s;
    long rss0, rss1;
    int stuck, base, i, sent = 0, flags;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-e", "0", NULL });
    REQUIRE(read_checks(&s, 0, 4096));
    base = settled_fds(&s, -1);
    rss0 = nbdt_rss_kb(s.pid);
    stuck = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(stuck >= 0);
    flags = fcntl(stuck, F_GETFL);
    fcntl(stuck, F_SETFL, flags | O_NONBLOCK);
    for (i = 0; i < 10000; i++) {       /* until our socket is full */
        uint8_t h[NBD_REQUEST_LEN];
        struct pollfd p = { .fd = stuck, .events = POLLOUT };

        nbd_st32(h, NBD_REQUEST_MAGIC);
        nbd_st16(h + 4, 0);
        nbd_st16(h + 6, NBD_CMD_READ);
        nbd_st64(h + 8, (uint64_t)i);
        nbd_st64(h + 16, ((uint64_t)i % 15) << 20);
        nbd_st32(h + 24, 1 << 20);
        if (poll(&p, 1, 2000) <= 0 ||
            send(stuck, h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
            break;                      /* the server stopped reading */
        }
        sent++;
        test_progress();
    }
    printf("# %d requests sent before the server stopped reading\n", sent);
    for (i = 0; i < 20; i++) {          /* others are served meanwhile */
        CHECK(read_checks(&s, (uint64_t)i << 16, 65536));
        test_progress();
    }
    rss1 = nbdt_rss_kb(s.pid);
    printf("# server RSS %ld KiB before, %ld KiB with the stuck client\n",
           rss0, rss1);
    /* 128 requests of 1 MiB in flight at most, plus the socket buffers. */
    CHECK(rss1 - rss0 < 256 * 1024);
    close(stuck);
    CHECK(read_checks(&s, 0, 65536));
    CHECK_EQ(settled_fds(&s, base), base);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

/* SIGTERM while a client never reads its replies (and another is in the
 * middle of its handshake): after the grace period the server drops
 * them and exits 0. */
static void test_sigterm_with_stuck_client(void)
{
    NbdtServer s;
    uint8_t h[NBD_REQUEST_LEN];
    int stuck, half, i, flags;

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-e", "0", NULL });
    stuck = nbdt_open(&s, true, NULL, NULL);
    half = nbdt_connect(&s);
    REQUIRE(stuck >= 0 && half >= 0);
    flags = fcntl(stuck, F_GETFL);
    fcntl(stuck, F_SETFL, flags | O_NONBLOCK);
    for (i = 0; i < 2000; i++) {
        struct pollfd p = { .fd = stuck, .events = POLLOUT };

        nbd_st32(h, NBD_REQUEST_MAGIC);
        nbd_st32(h + 4, NBD_CMD_READ);
        nbd_st64(h + 8, (uint64_t)i);
        nbd_st64(h + 16, 0);
        nbd_st32(h + 24, 1 << 20);
        if (poll(&p, 1, 1000) <= 0 ||
            send(stuck, h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
            break;
        }
        test_progress();
    }
    CHECK_EQ(nbdt_stop(&s), 0);
    close(stuck);
    close(half);
    nbdt_cleanup(&s);
}

/*
 * @n clients connect at once, then each does GO, one 4 KiB read and
 * DISC, driven by poll(). With -e @limit, the server accepts @limit at a
 * time and the others wait in the listen queue: all are served.
 */
static void many_connections(int n, const char *limit)
{
    NbdtServer s;
    int *fds = calloc((size_t)n, sizeof(int)), i, done = 0, base;
    size_t *got = calloc((size_t)n, sizeof(size_t));
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    uint8_t (*rb)[64] = calloc((size_t)n, 64);
    struct rlimit rl;
    /* What each client sends at once: flags, GO, a read, DISC. */
    uint8_t msg[4 + 16 + 8 + 2 * NBD_REQUEST_LEN];
    /* What it expects: greeting, INFO export, INFO block size, ACK,
     * reply + 512 bytes of data. */
    size_t expect = NBD_GREETING_LEN + (20 + 12) + (20 + 14) + 20 + 16 + 512;
    uint8_t *all = malloc(expect);

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 200) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)n + 200) {
        SKIP_CASE("RLIMIT_NOFILE too low for the connections");
    }
    nbd_st32(msg, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    nbd_st64(msg + 4, NBD_OPTS_MAGIC);
    nbd_st32(msg + 12, NBD_OPT_GO);
    nbd_st32(msg + 16, 8);
    nbd_st32(msg + 20, 0);
    nbd_st16(msg + 24, 1);
    nbd_st16(msg + 26, NBD_INFO_BLOCK_SIZE);
    nbd_st32(msg + 28, NBD_REQUEST_MAGIC);
    nbd_st32(msg + 32, NBD_CMD_READ);
    nbd_st64(msg + 36, 42);
    nbd_st64(msg + 44, 4096);
    nbd_st32(msg + 52, 512);
    nbd_st32(msg + 56, NBD_REQUEST_MAGIC);
    nbd_st32(msg + 60, NBD_CMD_DISC);
    memset(msg + 64, 0, 20);

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "-e", limit,
                                                    NULL });
    REQUIRE(read_checks(&s, 0, 512));
    base = settled_fds(&s, -1);
    for (i = 0; i < n; i++) {
        fds[i] = nbdt_connect(&s);
        REQUIRE(fds[i] >= 0);
        /* Everything at once: the server reads it as it comes. */
        REQUIRE(nbdt_write(fds[i], msg, sizeof(msg)) == 0);
        p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
    }
    while (done < n) {
        int r = poll(p, (nfds_t)n, 1000);

        for (i = 0; r > 0 && i < n; i++) {
            ssize_t k;

            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            k = recv(fds[i], all, expect - (got[i] < expect ? got[i] : 0), 0);
            if (k > 0 && got[i] < 64) {
                memcpy(rb[i] + got[i], all,
                       (size_t)k < 64 - got[i] ? (size_t)k : 64 - got[i]);
            }
            if (k > 0) {
                got[i] += (size_t)k;
                test_progress();
                continue;
            }
            /* closed by the server after DISC */
            CHECK_EQ(got[i], expect);
            CHECK(nbd_ld64(rb[i]) == NBD_MAGIC);
            close(fds[i]);
            p[i].fd = -1;
            done++;
        }
    }
    CHECK(nbdt_alive(&s));
    CHECK(read_checks(&s, 0, 65536));
    CHECK_EQ(settled_fds(&s, base), base);
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
    free(fds);
    free(got);
    free(p);
    free(rb);
    free(all);
}

static void test_1000_connections_limit_50(void)
{
    many_connections(1000, "50");
}

static void test_1000_connections_no_limit(void)
{
    many_connections(1000, "0");
}

/* SIGTERM while a client has writes in flight: the server exits 0, and
 * every write it acknowledged is in the file. */
static void test_sigterm_in_flight(void)
{
    enum { N = 64 };
    NbdtServer s;
    uint8_t w[65536], r[16], *buf = malloc(N * sizeof(w));
    int fd, i, acked = 0, status, img;
    uint64_t k;
    static bool ok[N];

    nbdt_start(&s, IMG_SIZE, (const char *const[]){ "-t", "--cache=none",
                                                    NULL });
    fd = nbdt_open(&s, false, NULL, NULL);
    REQUIRE(fd >= 0);
    for (i = 0; i < N; i++) {
        memset(w, 0x40 + i, sizeof(w));
        if (nbdt_send_req(fd, NBD_CMD_WRITE, 0, (uint64_t)i,
                          (uint64_t)i * sizeof(w), sizeof(w), w) < 0) {
            REQUIRE(i > N / 2);     /* the server stopped reading: fine */
            break;
        }
        if (i == N / 2) {
            kill(s.pid, SIGTERM);
        }
    }
    /* Replies until the server closes; whatever was acknowledged... */
    while (nbdt_read(fd, r, 16) == 0) {
        k = nbd_ld64(r + 8);
        REQUIRE(nbd_ld32(r) == NBD_SIMPLE_REPLY_MAGIC && k < N);
        if (nbd_ld32(r + 4) == 0) {
            ok[k] = true;
            acked++;
        }
    }
    close(fd);
    while (waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
    }
    s.pid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("# %d of %d writes acknowledged before the shutdown\n", acked, N);
    /* ... is in the file. */
    img = open(s.img, O_RDONLY);
    REQUIRE(img >= 0);
    REQUIRE(pread(img, buf, N * sizeof(w), 0) == (ssize_t)(N * sizeof(w)));
    close(img);
    for (i = 0; i < N; i++) {
        size_t j;
        bool all = true;

        for (j = 0; ok[i] && j < sizeof(w); j++) {
            all = all && buf[(size_t)i * sizeof(w) + j] == 0x40 + i;
        }
        CHECK(all);
    }
    nbdt_cleanup(&s);
    free(buf);
}

/* Connections come and go (each does a handshake and a few requests,
 * some leave in the middle of one) for AIOLOOP_NBD_CHURN_SECS seconds:
 * afterwards the server has the fds it had before, and its RSS grew by
 * less than 8 MiB after the warm-up round. */
static void test_churn(void)
{
    const char *env = getenv("AIOLOOP_NBD_CHURN_SECS");
    int secs = env && atoi(env) > 0 ? atoi(env) : 5;
    NbdtServer s;
    uint8_t w[4096], buf[4096 + 12];     /* data + a chunk's offset */
    long rss0 = 0, rss1;
    int64_t end = 0;
    int base = 0, round;
    unsigned long conns = 0;

    memset(w, 0x99, sizeof(w));
    nbdt_start(&s, IMG_SIZE, (const char *const[]){
        "-t", "-e", "0", "--iothreads", "2", NULL });
    for (round = 0; round == 0 || test_now_ns() < end; round++) {
        int fd = nbdt_open(&s, round % 2, NULL, NULL), i;

        REQUIRE(fd >= 0);
        for (i = 0; i < 8; i++) {
            nbdt_send_req(fd, i % 2 ? NBD_CMD_READ : NBD_CMD_WRITE, 0,
                          (uint64_t)i, (8u << 20) + (uint64_t)i * 4096, 4096,
                          i % 2 ? NULL : w);
        }
        if (round % 3 == 0) {           /* leave with requests in flight */
            close(fd);
        } else {
            for (i = 0; i < 8; i++) {
                uint8_t r[16];
                uint32_t len;

                REQUIRE(nbdt_read(fd, r, 16) == 0);
                len = nbd_ld64(r + 8) % 2 ? 4096 : 0;
                if (nbd_ld32(r) == NBD_STRUCTURED_REPLY_MAGIC) {
                    /* an OFFSET_DATA chunk: 4 more header bytes, the
                     * offset, the data */
                    REQUIRE(nbd_ld16(r + 6) == NBD_REPLY_TYPE_OFFSET_DATA);
                    REQUIRE(nbdt_read(fd, buf, 12 + len) == 0);
                } else {
                    REQUIRE(nbd_ld32(r) == NBD_SIMPLE_REPLY_MAGIC &&
                            nbd_ld32(r + 4) == 0);
                    REQUIRE(!len || nbdt_read(fd, buf, len) == 0);
                }
            }
            nbdt_send_req(fd, NBD_CMD_DISC, 0, 0, 0, 0, NULL);
            close(fd);
        }
        conns++;
        test_progress();
        if (round == 50) {              /* warmed up: pools and arenas */
            rss0 = nbdt_rss_kb(s.pid);
            base = settled_fds(&s, -1);
            end = test_now_ns() + (int64_t)secs * 1000000000LL;
        }
        if (round == 0) {
            end = test_now_ns() + 3600LL * 1000000000LL;
        }
    }
    rss1 = nbdt_rss_kb(s.pid);
    printf("# %lu connections in %d s; fds %d -> %d; RSS %ld -> %ld KiB\n",
           conns, secs, base, settled_fds(&s, base), rss0, rss1);
    CHECK_EQ(settled_fds(&s, base), base);
    if (UNDER_ASAN || UNDER_TSAN) {
        /* ASan's quarantine and TSan's shadow and history keep memory on
         * purpose; ASan's leak check at the server's exit (nbdt_stop()
         * == 0) stands in, and the plain build checks the bound. */
        printf("# RSS bound not checked under a sanitizer\n");
    } else {
        CHECK(rss1 - rss0 < 8 * 1024);
    }
    CHECK(read_checks(&s, 0, 65536));
    CHECK_EQ(nbdt_stop(&s), 0);
    nbdt_cleanup(&s);
}

int main(int argc, char **argv)
{
    nbdt_init(argc, argv);
    TEST(test_disconnect_in_flight);
    TEST(test_client_never_reads);
    TEST(test_1000_connections_limit_50);
    TEST(test_1000_connections_no_limit);
    TEST(test_sigterm_in_flight);
    TEST(test_sigterm_with_stuck_client);
    TEST(test_churn);
    return test_done();
}
