/*
 * test-misuse-block-files.c - block I/O on files that cannot take it: fds
 * that are closed, of the wrong kind or opened the wrong way, full file
 * systems, a file size limit, misaligned O_DIRECT. On the engine
 * AIOLOOP_TEST_ENGINE names (run once per engine); every result is the
 * same on every engine.
 *
 * Documented outcomes (include/aioloop/raw-aio.h, "Files" and results):
 *
 *   case                                        outcome
 *   fd closed while its requests wait plugged  -EBADF each, the others
 *                                               of the batch succeed
 *   fd -1                                       -EBADF
 *   write on an O_RDONLY fd                     -EBADF, file unchanged
 *   read on an O_WRONLY fd                      -EBADF, buffer unchanged
 *   O_PATH fd                                   -EBADF
 *   directory                                   read -EISDIR, write
 *                                               -EBADF
 *   pipe, FIFO                                  -ESPIPE (at once: no
 *                                               wait for data), flush
 *                                               -EINVAL
 *   socket                                      -ESPIPE
 *   eventfd                                     -ESPIPE
 *   /dev/null                                   read: end of file (zero
 *                                               fill, 0); write: 0
 *   /dev/zero                                   read: zeroes, 0
 *   file system full (a 128 KiB tmpfs)          -ENOSPC; data written
 *                                               before is intact
 *   write at or past RLIMIT_FSIZE (SIGXFSZ      -EFBIG; nothing written
 *   ignored)
 *   O_DIRECT, misaligned offset, or a write     -EINVAL (when the file
 *   from a misaligned buffer                    system enforces it)
 *
 * The full file system needs a private mount namespace (root, or an
 * unprivileged user namespace); without one the case skips with the
 * reason.
 *
 * SPDX-License-Identifier: MIT
 */
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/socket.h>

#include "block/engine-api.h"

#define KiB 1024

typedef struct Fix {
    Blk t;
    Eng e;
    uint8_t *buf;               /* 8 KiB of 0x5A */
    QEMUIOVector q;
} Fix;

static bool fix_setup_in(Fix *f, const char *dir, int flags)
{
    if (!blk_setup_in(&f->t, dir, flags)) {
        return false;
    }
    eng_new(&f->e, f->t.ctx);
    f->buf = aligned_buf(8 * KiB);
    memset(f->buf, 0x5A, 8 * KiB);
    qemu_iovec_init_buf(&f->q, f->buf, 8 * KiB);
    return true;
}

static bool fix_setup(Fix *f)
{
    return fix_setup_in(f, test_dir(), 0);
}

static void fix_teardown(Fix *f)
{
    eng_free(&f->e);
    qemu_iovec_destroy(&f->q);
    free(f->buf);
    blk_teardown(&f->t);
}

/* @want for @type on @fd through the byte API and the engine's own. */
static void check_fd(Fix *f, int fd, int type, int want)
{
    QEMUIOVector *q = type == QEMU_AIO_FLUSH ? NULL : &f->q;

    CHECK_EQ(blk_rw(&f->t, fd, 0, q, type), want);
    CHECK_EQ(eng_rw(&f->e, fd, 0, &f->q, 16, type), want);
    CHECK_EQ(eng_co_rw(&f->e, f->t.ctx, fd, 0, q, type), want);
}

/* ------------------------------------------------------------------ */

static void test_fd_closed_while_plugged(void)
{
    enum { N = 6 };
    EngRes res[N];
    int other;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(file_fill(f.t.fd, 0, 64 * KiB, 2));
    other = reopen_fd(f.t.fd, O_RDWR);
    REQUIRE(other >= 0);
    eng_plug(&f.e, true);
    for (int i = 0; i < N; i++) {
        res[i] = (EngRes){ 0, 1 };
        REQUIRE(eng_submit(&f.e, i % 2 ? other : f.t.fd, i * 16, &f.q, 16,
                           eng_res_cb, &res[i], QEMU_AIO_READ));
    }
    close(other);                   /* before anything was submitted */
    eng_plug(&f.e, false);
    for (int i = 0; i < N; i++) {
        while (!res[i].runs) {
            aio_poll(f.t.ctx, true);
        }
    }
    poll_idle(f.t.ctx, 5);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(res[i].runs, 1);
        CHECK_EQ(res[i].ret, i % 2 ? -EBADF : 0);
    }
    fix_teardown(&f);
}

static void test_fd_minus_one(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    check_fd(&f, -1, QEMU_AIO_READ, -EBADF);
    check_fd(&f, -1, QEMU_AIO_FLUSH, -EBADF);
    fix_teardown(&f);
}

static void test_fd_read_only_write(void)
{
    int ro;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(file_fill(f.t.fd, 0, 8 * KiB, 6));
    ro = reopen_fd(f.t.fd, O_RDONLY);
    REQUIRE(ro >= 0);
    check_fd(&f, ro, QEMU_AIO_WRITE, -EBADF);
    CHECK(file_has_pattern(f.t.fd, 0, 8 * KiB, 6));
    CHECK_EQ(file_size(f.t.fd), 8 * KiB);
    close(ro);
    fix_teardown(&f);
}

static void test_fd_write_only_read(void)
{
    int wo;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(file_fill(f.t.fd, 0, 8 * KiB, 6));
    wo = reopen_fd(f.t.fd, O_WRONLY);
    REQUIRE(wo >= 0);
    check_fd(&f, wo, QEMU_AIO_READ, -EBADF);
    CHECK(bytes_are(f.buf, 8 * KiB, 0x5A, "buffer"));
    close(wo);
    fix_teardown(&f);
}

static void test_fd_o_path(void)
{
    int p;
    Fix f;

    REQUIRE(fix_setup(&f));
    p = reopen_fd(f.t.fd, O_PATH);
    REQUIRE(p >= 0);
    check_fd(&f, p, QEMU_AIO_READ, -EBADF);
    check_fd(&f, p, QEMU_AIO_WRITE, -EBADF);
    close(p);
    fix_teardown(&f);
}

static void test_fd_directory(void)
{
    int d;
    Fix f;

    REQUIRE(fix_setup(&f));
    d = open(test_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(d >= 0);
    check_fd(&f, d, QEMU_AIO_READ, -EISDIR);
    check_fd(&f, d, QEMU_AIO_WRITE, -EBADF);
    close(d);
    fix_teardown(&f);
}

static void test_fd_fifo(void)
{
    char path[PATH_MAX];
    int fd;
    Fix f;

    REQUIRE(fix_setup(&f));
    snprintf(path, sizeof(path), "%s/aioloop-fifo-%d", test_dir(),
             (int)getpid());
    unlink(path);
    REQUIRE(mkfifo(path, 0600) == 0);
    fd = open(path, O_RDWR | O_CLOEXEC);    /* no peer needed */
    unlink(path);
    REQUIRE(fd >= 0);
    check_fd(&f, fd, QEMU_AIO_READ, -ESPIPE);
    check_fd(&f, fd, QEMU_AIO_WRITE, -ESPIPE);
    check_fd(&f, fd, QEMU_AIO_FLUSH, -EINVAL);
    close(fd);
    fix_teardown(&f);
}

static void test_fd_socket(void)
{
    int sv[2];
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    check_fd(&f, sv[0], QEMU_AIO_READ, -ESPIPE);
    check_fd(&f, sv[1], QEMU_AIO_WRITE, -ESPIPE);
    close(sv[0]);
    close(sv[1]);
    fix_teardown(&f);
}

static void test_fd_eventfd(void)
{
    int efd;
    Fix f;

    REQUIRE(fix_setup(&f));
    efd = eventfd(3, EFD_CLOEXEC);
    REQUIRE(efd >= 0);
    check_fd(&f, efd, QEMU_AIO_READ, -ESPIPE);
    check_fd(&f, efd, QEMU_AIO_WRITE, -ESPIPE);
    {
        uint64_t v = 0;

        CHECK_EQ(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
        CHECK_EQ(v, 3);             /* untouched by the requests */
    }
    close(efd);
    fix_teardown(&f);
}

static void test_fd_dev_null_and_zero(void)
{
    int n, z;
    Fix f;

    REQUIRE(fix_setup(&f));
    n = open("/dev/null", O_RDWR | O_CLOEXEC);
    z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    REQUIRE(n >= 0 && z >= 0);
    check_fd(&f, n, QEMU_AIO_READ, 0);
    CHECK(zero_check(f.buf, 8 * KiB));
    check_fd(&f, n, QEMU_AIO_WRITE, 0);
    memset(f.buf, 0x5A, 8 * KiB);
    check_fd(&f, z, QEMU_AIO_READ, 0);
    CHECK(zero_check(f.buf, 8 * KiB));
    close(n);
    close(z);
    fix_teardown(&f);
}

/* A tmpfs of 128 KiB in a private mount namespace, or NULL (and *why). */
static const char *small_tmpfs(const char **why)
{
    static char dir[] = "/tmp/aioloop-full-XXXXXX";

    if (unshare(CLONE_NEWNS) < 0 &&
        unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
        *why = "no private mount namespace (unshare refused)";
        return NULL;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        !mkdtemp(dir)) {
        *why = "cannot make the mount private or a directory in /tmp";
        return NULL;
    }
    if (mount("aioloop", dir, "tmpfs", 0, "size=128k") < 0) {
        rmdir(dir);
        *why = "cannot mount a tmpfs";
        return NULL;
    }
    return dir;
}

static void test_file_system_full(void)
{
    const char *why = NULL, *dir = small_tmpfs(&why);
    uint8_t *big;
    QEMUIOVector bq;
    Fix f;

    if (!dir) {
        SKIP_CASE(why);
    }
    REQUIRE(fix_setup_in(&f, dir, 0));
    pattern_fill(f.buf, 8 * KiB, 12, 0);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &f.q, QEMU_AIO_WRITE), 0);
    big = aligned_buf(256 * KiB);
    memset(big, 0x77, 256 * KiB);
    qemu_iovec_init_buf(&bq, big, 256 * KiB);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 8 * KiB, &bq, QEMU_AIO_WRITE), -ENOSPC);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 512 * KiB, &bq,
                       QEMU_AIO_WRITE), -ENOSPC);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 1024, &bq, 512, QEMU_AIO_WRITE), -ENOSPC);
    CHECK(file_has_pattern(f.t.fd, 0, 8 * KiB, 12));
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, NULL, QEMU_AIO_FLUSH), 0);
    qemu_iovec_destroy(&bq);
    free(big);
    fix_teardown(&f);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
}

static void test_file_size_limit(void)
{
    const rlim_t limit = 1 << 20;
    struct rlimit old, lim;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < limit) {
        fix_teardown(&f);
        SKIP_CASE("RLIMIT_FSIZE already below 1 MiB");
    }
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = limit;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, limit, &f.q, QEMU_AIO_WRITE), -EFBIG);
    CHECK_EQ(eng_rw(&f.e, f.t.fd, 4 * limit / SECTOR, &f.q, 16,
                    QEMU_AIO_WRITE), -EFBIG);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, limit + 512, &f.q,
                       QEMU_AIO_WRITE), -EFBIG);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_EQ(file_size(f.t.fd), 0);
    fix_teardown(&f);
}

static void test_odirect_misaligned(void)
{
    const char *why = NULL, *dir;
    QEMUIOVector off_buf;
    int bits;
    Fix f;

    dir = odirect_dir(ODIRECT_OK | ODIRECT_REJECTS_OFFSET, &bits, &why);
    if (!dir) {
        SKIP_CASE(why);
    }
    REQUIRE(fix_setup_in(&f, dir, O_DIRECT));
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 4 * KiB, &f.q, QEMU_AIO_WRITE), 0);
    CHECK_EQ(blk_rw(&f.t, f.t.fd, 1, &f.q, QEMU_AIO_WRITE), -EINVAL);
    CHECK_EQ(eng_co_rw(&f.e, f.t.ctx, f.t.fd, 100, &f.q, QEMU_AIO_READ),
             -EINVAL);
    if (bits & ODIRECT_REJECTS_BUFFER) {
        qemu_iovec_init_buf(&off_buf, f.buf + 1, 4 * KiB);
        CHECK_EQ(blk_rw(&f.t, f.t.fd, 0, &off_buf, QEMU_AIO_WRITE), -EINVAL);
        CHECK_EQ(eng_rw(&f.e, f.t.fd, 8, &off_buf, 8, QEMU_AIO_WRITE),
                 -EINVAL);
        qemu_iovec_destroy(&off_buf);
    }
    CHECK_EQ(file_size(f.t.fd), 12 * KiB);
    fix_teardown(&f);
}

int main(void)
{
    watchdog_install(" (a request that never completed?)");
    blk_test_init();

    RUN(test_fd_closed_while_plugged);
    RUN(test_fd_minus_one);
    RUN(test_fd_read_only_write);
    RUN(test_fd_write_only_read);
    RUN(test_fd_o_path);
    RUN(test_fd_directory);
    RUN(test_fd_fifo);
    RUN(test_fd_socket);
    RUN(test_fd_eventfd);
    RUN(test_fd_dev_null_and_zero);
    RUN(test_file_system_full);
    RUN(test_file_size_limit);
    RUN(test_odirect_misaligned);
    return test_done();
}
