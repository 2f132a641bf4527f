/*
 * test-block-filetypes.c - regression tests of a bad-input defect:
 * block I/O on fds that are not regular files, on every engine
 * (AIOLOOP_TEST_ENGINE). Before the fix:
 *
 *   - Linux AIO read an empty pipe inside io_submit(): the loop thread
 *     blocked in the system call until data came (the watchdog names
 *     the case);
 *   - io_uring left a read of an empty pipe pending for as long as the
 *     pipe stayed empty;
 *   - the thread engine failed both with -ESPIPE at once;
 *   - a read of a directory got -EINVAL from Linux AIO and -EISDIR from
 *     the others.
 *
 * Now every engine answers as preadv/pwritev/fdatasync do (raw-aio.h,
 * "Files"): the kernel engines give anything but regular files and block
 * devices to the thread pool. The expected result of each case is the
 * same constant on every engine.
 *
 * SPDX-License-Identifier: MIT
 */
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "engine-api.h"

#define KiB 1024

/* A fixture with a 4 KiB buffer of 0x5A; the file is Blk's. */
typedef struct Fix {
    Blk t;
    uint8_t *buf;
    QEMUIOVector q;
} Fix;

static bool fix_setup(Fix *f)
{
    if (!blk_setup(&f->t)) {
        return false;
    }
    f->buf = aligned_buf(4 * KiB);
    memset(f->buf, 0x5A, 4 * KiB);
    qemu_iovec_init_buf(&f->q, f->buf, 4 * KiB);
    return true;
}

static void fix_teardown(Fix *f)
{
    qemu_iovec_destroy(&f->q);
    free(f->buf);
    blk_teardown(&f->t);
}

/* Every way in (callback and coroutine, bytes and the engine's sector
 * API) gets @want for a @type request on @fd. */
static void check_all_ways(Fix *f, int fd, int type, int want)
{
    Eng e;

    CHECK_EQ(blk_rw(&f->t, fd, 0, type == QEMU_AIO_FLUSH ? NULL : &f->q,
                    type), want);
    CHECK_EQ(blk_co_rw(&f->t, fd, 0, type == QEMU_AIO_FLUSH ? NULL : &f->q,
                       type), want);
    eng_new(&e, f->t.ctx);
    CHECK_EQ(eng_rw(&e, fd, 0, &f->q, 8, type), want);
    CHECK_EQ(eng_co_rw(&e, f->t.ctx, fd, 0, &f->q, type), want);
    eng_free(&e);
}

/* The defect: a read of an empty pipe whose writer stays open. Linux AIO
 * blocked in io_submit(), io_uring never completed. */
static void test_pipe_read_does_not_block(void)
{
    int p[2];
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(pipe(p) == 0);
    check_all_ways(&f, p[0], QEMU_AIO_READ, -ESPIPE);
    CHECK(bytes_are(f.buf, 4 * KiB, 0x5A, "buffer"));
    /* With data waiting, still positioned I/O: -ESPIPE, data left. */
    REQUIRE(write(p[1], "x", 1) == 1);
    check_all_ways(&f, p[0], QEMU_AIO_READ, -ESPIPE);
    {
        char c = 0;

        CHECK_EQ(read(p[0], &c, 1), 1);
        CHECK_EQ(c, 'x');
    }
    close(p[0]);
    close(p[1]);
    fix_teardown(&f);
}

/* A full pipe would block a writer the same way. */
static void test_pipe_write_does_not_block(void)
{
    int p[2];
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(pipe2(p, O_NONBLOCK) == 0);
    while (write(p[1], f.buf, 4 * KiB) > 0) {
        /* fill it */
    }
    REQUIRE(fcntl(p[1], F_SETFL, 0) == 0);     /* blocking again */
    check_all_ways(&f, p[1], QEMU_AIO_WRITE, -ESPIPE);
    check_all_ways(&f, p[1], QEMU_AIO_FLUSH, -EINVAL);
    close(p[0]);
    close(p[1]);
    fix_teardown(&f);
}

/* Sockets and eventfds are streams too. */
static void test_socket_and_eventfd_espipe(void)
{
    int sv[2], efd;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    efd = eventfd(0, EFD_CLOEXEC);
    REQUIRE(efd >= 0);
    check_all_ways(&f, sv[0], QEMU_AIO_READ, -ESPIPE);
    check_all_ways(&f, sv[0], QEMU_AIO_WRITE, -ESPIPE);
    check_all_ways(&f, efd, QEMU_AIO_READ, -ESPIPE);
    check_all_ways(&f, efd, QEMU_AIO_WRITE, -ESPIPE);
    close(sv[0]);
    close(sv[1]);
    close(efd);
    fix_teardown(&f);
}

/* The engines disagreed on directories (EISDIR vs EINVAL). A directory
 * opened for reading: reads -EISDIR, writes -EBADF (not open for
 * writing), a flush is fdatasync's answer (0). */
static void test_directory_same_error_every_engine(void)
{
    int dfd;
    Fix f;

    REQUIRE(fix_setup(&f));
    dfd = open(test_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dfd >= 0);
    check_all_ways(&f, dfd, QEMU_AIO_READ, -EISDIR);
    check_all_ways(&f, dfd, QEMU_AIO_WRITE, -EBADF);
    CHECK(bytes_are(f.buf, 4 * KiB, 0x5A, "buffer"));
    close(dfd);
    fix_teardown(&f);
}

/* /dev/null: positioned reads see the end of the file at once (zero
 * fill, 0), writes are taken. */
static void test_dev_null_reads_eof(void)
{
    int nfd;
    Fix f;

    REQUIRE(fix_setup(&f));
    nfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    REQUIRE(nfd >= 0);
    check_all_ways(&f, nfd, QEMU_AIO_READ, 0);
    CHECK(zero_check(f.buf, 4 * KiB));
    check_all_ways(&f, nfd, QEMU_AIO_WRITE, 0);
    close(nfd);
    fix_teardown(&f);
}

/* Not an open fd at all: -EBADF everywhere. */
static void test_closed_fd_ebadf(void)
{
    Fix f;

    REQUIRE(fix_setup(&f));
    check_all_ways(&f, -1, QEMU_AIO_READ, -EBADF);
    check_all_ways(&f, unused_fd(), QEMU_AIO_WRITE, -EBADF);
    check_all_ways(&f, unused_fd(), QEMU_AIO_FLUSH, -EBADF);
    check_all_ways(&f, INT32_MAX, QEMU_AIO_READ, -EBADF);
    fix_teardown(&f);
}

/* An fd number closed after use and reused for a pipe: the state learned
 * from the -EBADF in between that the number changed, and does not give
 * the pipe to the kernel as if it were the old file. */
static void test_reused_fd_number_relearned(void)
{
    int num, p[2];
    Eng e;
    Fix f;

    REQUIRE(fix_setup(&f));
    eng_new(&e, f.t.ctx);
    num = reopen_fd(f.t.fd, O_RDWR);
    REQUIRE(num >= 0);
    CHECK_EQ(eng_rw(&e, num, 0, &f.q, 8, QEMU_AIO_WRITE), 0);
    CHECK_EQ(blk_rw(&f.t, num, 0, &f.q, QEMU_AIO_READ), 0);
    close(num);
    CHECK_EQ(eng_rw(&e, num, 0, &f.q, 8, QEMU_AIO_READ), -EBADF);
    CHECK_EQ(blk_rw(&f.t, num, 0, &f.q, QEMU_AIO_READ), -EBADF);
    REQUIRE(pipe(p) == 0);
    if (p[0] != num) {
        int moved = dup2(p[0], num);

        REQUIRE(moved == num);
        close(p[0]);
        p[0] = num;
    }
    CHECK_EQ(eng_rw(&e, num, 0, &f.q, 8, QEMU_AIO_READ), -ESPIPE);
    CHECK_EQ(blk_rw(&f.t, num, 0, &f.q, QEMU_AIO_READ), -ESPIPE);
    close(p[0]);
    close(p[1]);
    eng_free(&e);
    fix_teardown(&f);
}

/* Regular files of every kind of fd still go to the engine: O_RDONLY
 * takes reads and refuses writes, O_PATH refuses both. */
static void test_regular_file_access_modes(void)
{
    int ro, opath;
    Fix f;

    REQUIRE(fix_setup(&f));
    REQUIRE(file_fill(f.t.fd, 0, 4 * KiB, 3));
    ro = reopen_fd(f.t.fd, O_RDONLY);
    opath = reopen_fd(f.t.fd, O_PATH);
    REQUIRE(ro >= 0 && opath >= 0);
    check_all_ways(&f, ro, QEMU_AIO_READ, 0);
    CHECK(pattern_check(f.buf, 4 * KiB, 3, 0));
    check_all_ways(&f, ro, QEMU_AIO_WRITE, -EBADF);
    check_all_ways(&f, opath, QEMU_AIO_READ, -EBADF);
    check_all_ways(&f, opath, QEMU_AIO_WRITE, -EBADF);
    check_all_ways(&f, opath, QEMU_AIO_FLUSH, -EBADF);
    CHECK(file_has_pattern(f.t.fd, 0, 4 * KiB, 3));
    close(ro);
    close(opath);
    fix_teardown(&f);
}

int main(void)
{
    watchdog_install(" (a request that never completed?)");
    blk_test_init();

    RUN(test_pipe_read_does_not_block);
    RUN(test_pipe_write_does_not_block);
    RUN(test_socket_and_eventfd_espipe);
    RUN(test_directory_same_error_every_engine);
    RUN(test_dev_null_reads_eof);
    RUN(test_closed_fd_ebadf);
    RUN(test_reused_fd_number_relearned);
    RUN(test_regular_file_access_modes);
    return test_done();
}
