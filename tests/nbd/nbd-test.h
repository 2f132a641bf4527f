/*
 * tests/nbd/nbd-test.h - a raw-socket NBD client for aioloop-nbd's
 * tests: start the server on a scratch image, connect, speak the
 * protocol byte by byte (including what a well-behaved client never
 * sends), and look at the server process from outside (alive? exit
 * status, fd count, RSS).
 *
 * The program is given the server's path as argv[1] (meson does so) and
 * calls nbdt_init(argv[1]) before its TEST()s. Every case starts its own
 * server in a scratch directory; the server dies with the case
 * (PR_SET_PDEATHSIG), and nbdt_stop() checks that it exits 0 on SIGTERM
 * (under ASan that includes its leak check).
 *
 * Waits have no deadline of their own except where a behaviour is being
 * checked ("the server closes within N seconds"); the harness's
 * no-progress watchdog catches hangs.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_NBD_TEST_H
#define AIOLOOP_NBD_TEST_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test.h"
#include "../../tools/aioloop-nbd/nbd-proto.h"

static const char *nbdt_server_path;
/* Where nbdt_start() makes its scratch directory (image and socket):
 * "/tmp" unless a test sets it ("/dev/shm": a file in memory, which
 * aioloop-nbd serves in place). */
static const char *nbdt_scratch = "/tmp";

typedef struct NbdtServer {
    pid_t pid;
    char dir[64];               /* scratch directory */
    char img[128];              /* the served image */
    char sock[128];             /* its Unix socket */
    uint64_t size;
} NbdtServer;

/* The byte at @off of the image as created by nbdt_start(). */
static inline uint8_t nbdt_pattern(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 12));
}

static inline void nbdt_init(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-aioloop-nbd\n", argv[0]);
        exit(2);
    }
    nbdt_server_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
}

/* Reads or writes all of @len bytes. 0, or -1 on EOF/error. */
static inline int nbdt_write(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
        test_progress();
    }
    return 0;
}

static inline int nbdt_read(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
        test_progress();
    }
    return 0;
}

/* Does the server close @fd within @secs seconds, without sending more
 * than @slack bytes first? (A behaviour bound, not a speed one: the
 * server does it at once; seconds leave room for a loaded machine.) */
static inline bool nbdt_closed_within(int fd, int secs, size_t slack)
{
    int64_t end = test_now_ns() + (int64_t)secs * 1000000000LL;
    uint8_t buf[4096];
    size_t got = 0;

    while (test_now_ns() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
        if (n > 0 && (got += (size_t)n) > slack) {
            return false;
        }
    }
    return false;
}

/*
 * Starts aioloop-nbd on a new @size-byte image filled with
 * nbdt_pattern(), with @args (NULL-terminated, may be NULL) before the
 * file, and waits until it listens (--print-uri). Skips the whole
 * program if the binary cannot run here (a cross build under qemu-user).
 */
static inline void nbdt_start(NbdtServer *s, uint64_t size,
                              const char *const *args)
{
    const char *argv[40];
    int out[2], fd, argc = 0;
    uint8_t *buf;
    char line[512];
    size_t len = 0;
    uint64_t off;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/nbdt.XXXXXX", nbdt_scratch);
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(s->img, sizeof(s->img), "%s/img", s->dir);
    snprintf(s->sock, sizeof(s->sock), "%s/sock", s->dir);
    s->size = size;
    fd = open(s->img, O_CREAT | O_RDWR | O_TRUNC, 0600);
    buf = malloc(1 << 20);
    for (off = 0; off < size; off += 1 << 20) {
        size_t n = size - off < (1 << 20) ? (size_t)(size - off) : 1 << 20;
        size_t i;

        for (i = 0; i < n; i++) {
            buf[i] = nbdt_pattern(off + i);
        }
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            perror("pwrite");
            exit(1);
        }
    }
    free(buf);
    close(fd);

    argv[argc++] = nbdt_server_path;
    argv[argc++] = "-k";
    argv[argc++] = s->sock;
    argv[argc++] = "--print-uri";
    while (args && *args && argc < 36) {
        argv[argc++] = *args++;
    }
    argv[argc++] = s->img;
    argv[argc] = NULL;
    if (pipe(out) < 0) {
        perror("pipe");
        exit(1);
    }
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(argv[0], (char **)argv);
        _exit(errno == ENOEXEC ? 126 : 127);
    }
    close(out[1]);
    while (len < sizeof(line) - 1) {
        ssize_t n = read(out[0], line + len, 1);

        if (n <= 0 || line[len] == '\n') {
            break;
        }
        len++;
    }
    close(out[0]);
    line[len] = '\0';
    if (len == 0) {
        int st;

        waitpid(s->pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 126) {
            test_skip_all("aioloop-nbd cannot be executed here "
                          "(a cross build?)");
        }
        printf("#   aioloop-nbd did not start (status %d)\n", st);
        exit(1);
    }
}

/* Kills and removes everything nbdt_start() made (no checks). */
static inline void nbdt_cleanup(NbdtServer *s)
{
    char path[160];

    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    unlink(s->img);
    unlink(s->sock);
    snprintf(path, sizeof(path), "%s/pid", s->dir);
    unlink(path);
    rmdir(s->dir);
}

/* Is the server still running? */
static inline bool nbdt_alive(NbdtServer *s)
{
    return s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == 0;
}

/* SIGTERM, then the exit status (-1: killed by a signal). */
static inline int nbdt_stop(NbdtServer *s)
{
    int st;

    kill(s->pid, SIGTERM);
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int nbdt_fd_count(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (!d) {
        return -1;
    }
    while ((e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static inline long nbdt_rss_kb(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kb = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

/* A connected Unix socket to the server (blocking), or -1. */
static inline int nbdt_connect(const NbdtServer *s)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sa.sun_path, s->sock);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the greeting and sends client flags @cflags. 0 or -1. */
static inline int nbdt_greet(int fd, uint32_t cflags)
{
    uint8_t g[NBD_GREETING_LEN], f[4];

    if (nbdt_read(fd, g, sizeof(g)) < 0 || nbd_ld64(g) != NBD_MAGIC ||
        nbd_ld64(g + 8) != NBD_OPTS_MAGIC) {
        return -1;
    }
    nbd_st32(f, cflags);
    return nbdt_write(fd, f, 4);
}

/* Sends option @opt with @len bytes of @data. */
static inline int nbdt_send_opt(int fd, uint32_t opt, const void *data,
                                uint32_t len)
{
    uint8_t h[16];

    nbd_st64(h, NBD_OPTS_MAGIC);
    nbd_st32(h + 8, opt);
    nbd_st32(h + 12, len);
    if (nbdt_write(fd, h, 16) < 0) {
        return -1;
    }
    return len ? nbdt_write(fd, data, len) : 0;
}

/* Reads one option reply; its data (up to @cap bytes kept) into @data.
 * Returns the reply type, or 0 on EOF/garbage. */
static inline uint32_t nbdt_opt_reply(int fd, uint32_t opt, uint8_t *data,
                                      size_t cap, uint32_t *len)
{
    uint8_t h[20], skip[256];
    uint32_t n, type;

    if (nbdt_read(fd, h, 20) < 0 || nbd_ld64(h) != NBD_REP_MAGIC ||
        nbd_ld32(h + 8) != opt) {
        return 0;
    }
    type = nbd_ld32(h + 12);
    n = nbd_ld32(h + 16);
    if (len) {
        *len = n;
    }
    while (n > 0) {
        uint32_t k = n;

        if (data && cap > 0) {
            k = k < cap ? k : (uint32_t)cap;
            if (nbdt_read(fd, data, k) < 0) {
                return 0;
            }
            data += k;
            cap -= k;
        } else {
            k = k < sizeof(skip) ? k : sizeof(skip);
            if (nbdt_read(fd, skip, k) < 0) {
                return 0;
            }
        }
        n -= k;
    }
    return type;
}

/* Sends NBD_OPT_GO for @name (requesting the block sizes). */
static inline int nbdt_send_go(int fd, const char *name)
{
    uint8_t d[64];
    uint32_t n = (uint32_t)strlen(name);

    nbd_st32(d, n);
    memcpy(d + 4, name, n);
    nbd_st16(d + 4 + n, 1);
    nbd_st16(d + 6 + n, NBD_INFO_BLOCK_SIZE);
    return nbdt_send_opt(fd, NBD_OPT_GO, d, 8 + n);
}

/* Connects and completes a handshake (structured replies if asked):
 * returns the socket, and the transmission flags and minimum block size
 * through the pointers (may be NULL); -1 on failure. */
static inline int nbdt_open(const NbdtServer *s, bool structured,
                            uint16_t *tflags, uint32_t *min_block)
{
    int fd = nbdt_connect(s);
    uint8_t d[64];
    uint32_t t, len;

    if (fd < 0 || nbdt_greet(fd, NBD_FLAG_C_FIXED_NEWSTYLE |
                             NBD_FLAG_C_NO_ZEROES) < 0) {
        goto fail;
    }
    if (structured &&
        (nbdt_send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0) < 0 ||
         nbdt_opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL) !=
         NBD_REP_ACK)) {
        goto fail;
    }
    if (nbdt_send_go(fd, "") < 0) {
        goto fail;
    }
    while ((t = nbdt_opt_reply(fd, NBD_OPT_GO, d, sizeof(d), &len)) ==
           NBD_REP_INFO) {
        if (nbd_ld16(d) == NBD_INFO_EXPORT && tflags) {
            *tflags = nbd_ld16(d + 10);
        }
        if (nbd_ld16(d) == NBD_INFO_BLOCK_SIZE && min_block) {
            *min_block = nbd_ld32(d + 2);
        }
    }
    if (t != NBD_REP_ACK) {
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0) {
        close(fd);
    }
    return -1;
}

/* Sends a request header (and @len bytes of @data for a write when
 * @data is not NULL). */
static inline int nbdt_send_req(int fd, uint16_t type, uint16_t flags,
                                uint64_t cookie, uint64_t off, uint32_t len,
                                const void *data)
{
    uint8_t h[NBD_REQUEST_LEN];

    nbd_st32(h, NBD_REQUEST_MAGIC);
    nbd_st16(h + 4, flags);
    nbd_st16(h + 6, type);
    nbd_st64(h + 8, cookie);
    nbd_st64(h + 16, off);
    nbd_st32(h + 24, len);
    if (nbdt_write(fd, h, sizeof(h)) < 0) {
        return -1;
    }
    return data ? nbdt_write(fd, data, len) : 0;
}

/* Reads a simple reply: its error, and checks the cookie. Returns the
 * NBD error, or -1 on EOF or a wrong magic/cookie. */
static inline int nbdt_simple_reply(int fd, uint64_t cookie)
{
    uint8_t r[NBD_SIMPLE_REPLY_LEN];

    if (nbdt_read(fd, r, sizeof(r)) < 0 ||
        nbd_ld32(r) != NBD_SIMPLE_REPLY_MAGIC || nbd_ld64(r + 8) != cookie) {
        return -1;
    }
    return (int)nbd_ld32(r + 4);
}

#endif /* AIOLOOP_NBD_TEST_H */
