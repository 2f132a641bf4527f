/*
 * aiocb-internal.h - completing an asynchronous request, for every
 * backend that hands out BlockAIOCBs (the thread pool, the block
 * engines). Not installed.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_AIOCB_INTERNAL_H
#define AIOLOOP_AIOCB_INTERNAL_H

#include <stdbool.h>
#include <aioloop/block-aio.h>

/*
 * aioloop__aiocb_complete - run @acb's completion callback, if it has
 * one, with @ret, then drop the request's own reference (which may free
 * @acb). While the callback runs, @acb is recorded as completing in the
 * calling thread, so that bdrv_aio_cancel(@acb) from inside it (or from
 * anything it calls in this thread, a nested aio_poll() included)
 * returns at once instead of waiting for a completion that is already
 * under way. Every backend completes its AIOCBs through this.
 * Returns: whether a callback ran.
 *
 * The request's context thread (its aio_poll()).
 */
bool aioloop__aiocb_complete(BlockAIOCB *acb, int ret);

/*
 * aioloop__aiocb_complete_keep - aioloop__aiocb_complete(), except when
 * the request's own reference is the last one (nobody took another with
 * qemu_aio_ref()): then it is not dropped, *@reusable is set, and the
 * caller owns @acb's memory, as qemu_aio_get() allocated it (to reuse
 * for another request of the same size, or to free()). Otherwise the
 * reference is dropped as usual and the last holder frees @acb. For
 * backends that recycle their requests (the thread pool, the block
 * engines' callback requests).
 * Returns: whether a callback ran.
 *
 * The request's context thread (its aio_poll()).
 */
bool aioloop__aiocb_complete_keep(BlockAIOCB *acb, int ret, bool *reusable);

#endif /* AIOLOOP_AIOCB_INTERNAL_H */
