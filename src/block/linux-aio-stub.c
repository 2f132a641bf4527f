/*
 * linux-aio-stub.c - the Linux AIO entry points of a build without
 * <linux/aio_abi.h>: laio_init() fails with ENOSYS, so that callers fall
 * back; no state can exist, so the other functions are unreachable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdlib.h>

#include "raw-aio-int.h"

LinuxAioState *laio_init(void)
{
    errno = ENOSYS;
    return NULL;
}

void laio_cleanup(LinuxAioState *s)
{
    if (s) {
        abort();
    }
}

#define NO_STATE() abort()

void laio_attach_aio_context(LinuxAioState *s, AioContext *c) { (void)s; (void)c; NO_STATE(); }
void laio_detach_aio_context(LinuxAioState *s, AioContext *c) { (void)s; (void)c; NO_STATE(); }
void laio_io_plug(BlockDriverState *bs, LinuxAioState *s) { (void)bs; (void)s; NO_STATE(); }
void laio_io_unplug(BlockDriverState *bs, LinuxAioState *s) { (void)bs; (void)s; NO_STATE(); }

BlockAIOCB *laio_submit(BlockDriverState *bs, LinuxAioState *s, int fd,
                          int64_t sector_num, QEMUIOVector *qiov,
                          int nb_sectors, BlockCompletionFunc *cb,
                          void *opaque, int type)
{
    NO_STATE();
}

BlockAIOCB *aioloop__laio_submit_bytes(BlockDriverState *bs, LinuxAioState *s,
                                         int fd, uint64_t offset,
                                         QEMUIOVector *qiov, int type,
                                         BlockCompletionFunc *cb, void *opaque)
{
    NO_STATE();
}

int coroutine_fn laio_co_submit(BlockDriverState *bs, LinuxAioState *s,
                                  int fd, uint64_t offset, QEMUIOVector *qiov,
                                  int type)
{
    NO_STATE();
}
