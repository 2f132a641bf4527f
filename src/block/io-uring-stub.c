/*
 * io-uring-stub.c - the io_uring entry points of a build without
 * liburing: luring_init() fails with a clear error, so that callers fall
 * back; no state can exist, so the other functions are unreachable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>

#include "raw-aio-int.h"

LuringState *luring_init(Error **errp)
{
    error_setg(errp, "io_uring is not available: aioloop was built without "
               "liburing (apt-get install liburing-dev and rebuild)");
    return NULL;
}

void luring_cleanup(LuringState *s)
{
    if (s) {
        abort();
    }
}

#define NO_STATE() abort()

void luring_attach_aio_context(LuringState *s, AioContext *c) { (void)s; (void)c; NO_STATE(); }
void luring_detach_aio_context(LuringState *s, AioContext *c) { (void)s; (void)c; NO_STATE(); }
void luring_io_plug(BlockDriverState *bs, LuringState *s) { (void)bs; (void)s; NO_STATE(); }
void luring_io_unplug(BlockDriverState *bs, LuringState *s) { (void)bs; (void)s; NO_STATE(); }

BlockAIOCB *luring_submit(BlockDriverState *bs, LuringState *s, int fd,
                          int64_t sector_num, QEMUIOVector *qiov,
                          int nb_sectors, BlockCompletionFunc *cb,
                          void *opaque, int type)
{
    NO_STATE();
}

BlockAIOCB *aioloop__luring_submit_bytes(BlockDriverState *bs, LuringState *s,
                                         int fd, uint64_t offset,
                                         QEMUIOVector *qiov, int type,
                                         BlockCompletionFunc *cb, void *opaque)
{
    NO_STATE();
}

int coroutine_fn luring_co_submit(BlockDriverState *bs, LuringState *s,
                                  int fd, uint64_t offset, QEMUIOVector *qiov,
                                  int type)
{
    NO_STATE();
}
