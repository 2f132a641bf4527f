/*
 * export.h - the file aioloop-nbd serves: opening it (O_DIRECT for
 * --cache=none), its size and alignment, and the two operations the
 * block backends do not have (discard and zeroing), as blocking calls for
 * the thread pool.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_NBD_EXPORT_H
#define AIOLOOP_NBD_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct NbdFile {
    int fd;
    bool is_block;              /* a block device, else a regular file */
    bool direct;                /* opened with O_DIRECT */
    bool in_memory;             /* on tmpfs or ramfs: its reads and writes
                                 * copy memory, never wait for a device */
    uint64_t size;              /* bytes */
    uint32_t align;             /* offsets, lengths and buffers: O_DIRECT's
                                 * alignment, 1 without O_DIRECT */
} NbdFile;

/*
 * Opens @path read-only or read-write, with O_DIRECT when @direct.
 * Returns 0, or -errno with a message in @why (a static or
 * @why_buf-backed string).
 */
int nbd_file_open(NbdFile *f, const char *path, bool read_only, bool direct,
                  char *why, size_t why_len);

/* Closes the file (after fdatasync() unless read-only). Returns 0 or the
 * fdatasync error as -errno. */
int nbd_file_close(NbdFile *f, bool read_only);

/* Blocking: discard [@off, @off + @len) (a hole that reads as zeroes).
 * Returns 0 or -errno (-ENOTSUP when the file system cannot). */
int nbd_file_discard(const NbdFile *f, uint64_t off, uint64_t len);

/* Blocking: make [@off, @off + @len) read as zeroes without writing data:
 * FALLOC_FL_ZERO_RANGE, or (when @may_unmap) a punched hole. Returns 0,
 * or -ENOTSUP when neither is possible (the caller then writes zeroes). */
int nbd_file_zero(const NbdFile *f, uint64_t off, uint64_t len,
                  bool may_unmap);

#endif /* AIOLOOP_NBD_EXPORT_H */
