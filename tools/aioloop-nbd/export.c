/*
 * export.c - opening the served file, and its discard and zeroing calls.
 *
 * Alignment. With O_DIRECT the kernel wants offsets, lengths and memory
 * aligned; statx(STATX_DIOALIGN) (Linux 6.1) says how much for a regular
 * file, BLKSSZGET for a block device. When neither answers, 4096 (right
 * for every device, at worst stricter than needed). The server advertises
 * this as the NBD minimum block size and fails misaligned requests with
 * NBD_EINVAL, which the protocol allows; buffers are always 4096-aligned.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "export.h"

/* f_type of the file systems whose files are memory (linux/magic.h). */
#define NBD_TMPFS_MAGIC 0x01021994
#define NBD_RAMFS_MAGIC 0x858458f6

static bool on_memory_fs(int fd)
{
    struct statfs sfs;

    return fstatfs(fd, &sfs) == 0 &&
           ((unsigned long)sfs.f_type == NBD_TMPFS_MAGIC ||
            (unsigned long)sfs.f_type == NBD_RAMFS_MAGIC);
}

static uint32_t direct_alignment(int fd, bool is_block)
{
#ifdef STATX_DIOALIGN
    struct statx stx;

    if (!is_block && statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
        uint32_t a = stx.stx_dio_offset_align;

        if (stx.stx_dio_mem_align > a) {
            a = stx.stx_dio_mem_align;
        }
        return a;
    }
#endif
    if (is_block) {
        int ssz = 0;

        if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0) {
            return (uint32_t)ssz;
        }
    }
    return 4096;
}

int nbd_file_open(NbdFile *f, const char *path, bool read_only, bool direct,
                  char *why, size_t why_len)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    struct stat st;
    int err;

    memset(f, 0, sizeof(*f));
    f->fd = open(path, flags | (direct ? O_DIRECT : 0));
    if (f->fd < 0) {
        err = errno;
        snprintf(why, why_len, "cannot open %s: %s%s", path, strerror(err),
                 direct && err == EINVAL ?
                 " (the file system refuses O_DIRECT: use --cache=writeback)" :
                 "");
        return -err;
    }
    if (fstat(f->fd, &st) < 0) {
        err = errno;
        goto fail;
    }
    f->direct = direct;
    if (S_ISBLK(st.st_mode)) {
        f->is_block = true;
        if (ioctl(f->fd, BLKGETSIZE64, &f->size) < 0) {
            err = errno;
            goto fail;
        }
    } else if (S_ISREG(st.st_mode)) {
        f->size = (uint64_t)st.st_size;
        f->in_memory = on_memory_fs(f->fd);
    } else {
        snprintf(why, why_len, "%s is neither a regular file nor a block device",
                 path);
        close(f->fd);
        return -EINVAL;
    }
    f->align = direct ? direct_alignment(f->fd, f->is_block) : 1;
    if (f->align & (f->align - 1) || f->align > 65536) {
        f->align = 4096;        /* not a power of two: be safe */
    }
    return 0;

fail:
    snprintf(why, why_len, "%s: %s", path, strerror(err));
    close(f->fd);
    return -err;
}

int nbd_file_close(NbdFile *f, bool read_only)
{
    int ret = 0;

    if (f->fd < 0) {
        return 0;
    }
    if (!read_only && fdatasync(f->fd) < 0) {
        ret = -errno;
    }
    close(f->fd);
    f->fd = -1;
    return ret;
}

/* fallocate() with EINTR retried; the errno of a refusal as -ENOTSUP. */
static int do_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
    int ret;

    do {
        ret = fallocate(fd, mode, (off_t)off, (off_t)len);
    } while (ret < 0 && errno == EINTR);
    if (ret == 0) {
        return 0;
    }
    if (errno == EOPNOTSUPP || errno == ENOSYS || errno == ENOTTY) {
        return -ENOTSUP;
    }
    return -errno;
}

int nbd_file_discard(const NbdFile *f, uint64_t off, uint64_t len)
{
    return do_fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        off, len);
}

int nbd_file_zero(const NbdFile *f, uint64_t off, uint64_t len,
                  bool may_unmap)
{
    int ret = do_fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                           off, len);

    if (ret == -ENOTSUP && may_unmap) {
        ret = nbd_file_discard(f, off, len);
    }
    /* EINVAL: the range or mode does not suit this file system; the
     * caller writes zeroes instead. */
    return ret == -EINVAL ? -ENOTSUP : ret;
}
