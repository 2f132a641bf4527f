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
 * aioloop__aiocb_callback - the first half of aioloop__aiocb_complete():
 * run @acb's callback (recorded as completing) and keep the request's own
 * reference. The caller drops it afterwards, or reuses @acb when that
 * reference is the only one left (refcnt 1: nobody else can take one).
 * Returns: whether a callback ran.
 *
 * The request's context thread (its aio_poll()).
 */
bool aioloop__aiocb_callback(BlockAIOCB *acb, int ret);

#endif /* AIOLOOP_AIOCB_INTERNAL_H */
