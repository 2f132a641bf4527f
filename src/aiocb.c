/*
 * aiocb.c - reference-counted asynchronous request headers.
 *
 * A BlockAIOCB starts every request structure; the backend's AIOCBInfo
 * says how big the whole structure is and how to cancel it. References
 * are atomic so that a request can be held by the submitting thread and
 * completed by a context running in an IOThread.
 *
 * Completion and synchronous cancellation
 * ---------------------------------------
 * bdrv_aio_cancel() waits, polling the request's context, until the
 * request's own reference is gone, i.e. until its callback has returned.
 * Called from inside that very callback it would wait for itself for
 * ever. So every backend completes through aioloop__aiocb_complete(),
 * which keeps a per-thread list of the requests whose callbacks run
 * (nodes on its own stack frame: no allocation, a TLS load and store per
 * completion); bdrv_aio_cancel() of one of them returns at once - the
 * request has completed, only its callback is still running. The list is
 * per thread because only this thread's stack can be blocked by the
 * wait: another thread that cancels a request whose callback runs here
 * waits for the callback to return, as documented. Callbacks run
 * nested (a callback that polls its context): the list is a stack, and
 * each entry removes itself, wherever it is.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/block-aio.h>
#include <aioloop/main-loop.h>
#include "aio-internal.h"
#include "aiocb-internal.h"
#include "util/alloc.h"
#include "util/misuse.h"

/* A request whose callback runs in this thread (see above). */
typedef struct Completing {
    BlockAIOCB *acb;
    struct Completing *next;
} Completing;

/* initial-exec: a load from the thread pointer, even in the shared
 * library (see AIOLOOP_TLS_FAST in aio-internal.h). */
static __thread Completing *completing
    __attribute__((tls_model("initial-exec")));

void *qemu_aio_get(const AIOCBInfo *aiocb_info, BlockDriverState *bs,
                   BlockCompletionFunc *cb, void *opaque)
{
    size_t size;
    BlockAIOCB *acb;

    if (unlikely(!aiocb_info)) {
        aioloop__misuse("qemu_aio_get", "NULL AIOCBInfo (callback %p)",
                        AIOLOOP_FN_PTR(cb));
    }
    size = aiocb_info->aiocb_size;
    if (size < sizeof(BlockAIOCB)) {
        size = sizeof(BlockAIOCB);
    }
    acb = aioloop__calloc(1, size);
    if (!acb) {
        aioloop__oom("allocating a %zu-byte request", size);
    }
    acb->aiocb_info = aiocb_info;
    acb->bs = bs;
    acb->cb = cb;
    acb->opaque = opaque;
    acb->refcnt = 1;
    return acb;
}

/*
 * A count that is already 0 (or below) means the request was never
 * allocated by qemu_aio_get() (a zero-filled or embedded header) or has
 * been released: unref would free memory that is not the library's, or
 * free it twice. Every build checks; once the memory is really freed
 * and reused, nothing can be checked (ASan reports the use after free).
 */
static AIOLOOP_NORETURN void aiocb_no_reference(const char *func,
                                                BlockAIOCB *acb, int old)
{
    aioloop__misuse(func, "request %p has no reference left (refcnt %d): "
                    "released already, or not from qemu_aio_get()",
                    (void *)acb, old);
}

void qemu_aio_ref(void *p)
{
    BlockAIOCB *acb = p;
    int old = qatomic_fetch_inc(&acb->refcnt);

    if (unlikely(old <= 0)) {
        aiocb_no_reference("qemu_aio_ref", acb, old);
    }
}

void qemu_aio_unref(void *p)
{
    BlockAIOCB *acb = p;
    int old = qatomic_fetch_dec(&acb->refcnt);

    if (unlikely(old <= 0)) {
        aiocb_no_reference("qemu_aio_unref", acb, old);
    }
    if (old == 1) {
        free(acb);
    }
}

/* Runs @acb's callback, if it has one, recorded as completing in this
 * thread (see above). Returns whether a callback ran. */
static bool run_completion(BlockAIOCB *acb, int ret)
{
    Completing self = { .acb = acb };
    Completing **p;

    if (!acb->cb) {
        return false;
    }
    self.next = completing;
    completing = &self;
    acb->cb(acb->opaque, ret);
    /* Normally the head again; unlinked wherever it is all the same. */
    for (p = &completing; *p; p = &(*p)->next) {
        if (*p == &self) {
            *p = self.next;
            break;
        }
    }
    return true;
}

bool aioloop__aiocb_complete(BlockAIOCB *acb, int ret)
{
    bool ran = run_completion(acb, ret);

    qemu_aio_unref(acb);
    return ran;
}

bool aioloop__aiocb_complete_keep(BlockAIOCB *acb, int ret, bool *reusable)
{
    bool ran = run_completion(acb, ret);

    /* Acquire: another thread's last use of the request, before its
     * unref left only ours, happens before the caller reuses it. Nobody
     * may take a new reference once the callback has returned. */
    *reusable = qatomic_load_acquire(&acb->refcnt) == 1;
    if (*reusable) {
        acb->refcnt = 0;
    } else {
        qemu_aio_unref(acb);
    }
    return ran;
}

static bool completing_here(BlockAIOCB *acb)
{
    Completing *c;

    for (c = completing; c; c = c->next) {
        if (c->acb == acb) {
            return true;
        }
    }
    return false;
}

void bdrv_aio_cancel_async(BlockAIOCB *acb)
{
    if (acb->aiocb_info->cancel_async) {
        acb->aiocb_info->cancel_async(acb);
    }
}

void bdrv_aio_cancel(BlockAIOCB *acb)
{
    AioContext *ctx = acb->aiocb_info->get_aio_context
                      ? acb->aiocb_info->get_aio_context(acb)
                      : qemu_get_aio_context();

    if (completing_here(acb)) {
        return;     /* from inside its own callback: it has completed */
    }
    assert(ctx);
    qemu_aio_ref(acb);
    bdrv_aio_cancel_async(acb);
    /* The completion drops the request's own reference. */
    while (qatomic_read(&acb->refcnt) > 1) {
        aio_poll(ctx, true);
    }
    qemu_aio_unref(acb);
}
