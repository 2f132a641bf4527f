/*
 * iothread.c - a thread that runs one AioContext.
 *
 * The thread calls aio_poll(ctx, true) until told to stop. Stopping is a
 * one-shot BH scheduled by iothread_destroy(): aio_bh_poll() runs BHs in
 * the order they were scheduled, so every BH scheduled before the stop
 * request runs before the thread leaves its loop. The thread records its
 * IOThread in a thread-local so that qemu_get_current_aio_context() can
 * answer from inside any callback.
 *
 * Live IOThreads are also on a process-wide list (under a mutex: they
 * are few and created rarely), so that iothread_destroy() can tell a
 * live IOThread from one destroyed already and abort with a message
 * instead of freeing it twice; it compares addresses only, never reads
 * a pointer it has not found on the list.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aioloop/iothread.h>
#include <aioloop/main-loop.h>
#include "main-loop-internal.h"
#include "util/alloc.h"
#include "util/misuse.h"

struct IOThread {
    QemuThread thread;
    AioContext *ctx;
    char *id;
    bool stopping;              /* written and read in the thread only */
    QemuSemaphore started;
    QLIST_ENTRY(IOThread) live; /* live_iothreads, live_lock */
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static QLIST_HEAD(, IOThread) live_iothreads =
    QLIST_HEAD_INITIALIZER(live_iothreads);

static __thread IOThread *current_iothread;
/* it->ctx; see main-loop-internal.h */
__thread AioContext *aioloop__iothread_ctx_tls;

AioContext *qemu_get_current_aio_context(void)
{
    /* The thread's home context (an IOThread's, or one set with
     * qemu_set_current_aio_context()); elsewhere the main context, or on
     * the main-loop thread the top of the AsyncContext stack. */
    AioContext *home = aioloop__iothread_ctx_tls;

    return home ? home : aioloop__main_current_ctx();
}

void qemu_set_current_aio_context(AioContext *ctx)
{
    if (ctx && aioloop__iothread_ctx_tls) {
        fprintf(stderr, "aioloop: qemu_set_current_aio_context: this "
                "thread already runs AioContext %p%s\n",
                (void *)aioloop__iothread_ctx_tls,
                current_iothread ? " (its IOThread's)" : "");
        abort();
    }
    if (!ctx && current_iothread) {
        fprintf(stderr, "aioloop: qemu_set_current_aio_context(NULL) in "
                "IOThread '%s'\n",
                current_iothread->id ? current_iothread->id : "iothread");
        abort();
    }
    aioloop__iothread_ctx_tls = ctx;
}

static void *iothread_run(void *opaque)
{
    IOThread *it = opaque;

    current_iothread = it;
    aioloop__iothread_ctx_tls = it->ctx;
    qemu_sem_post(&it->started);
    while (!it->stopping) {
        aio_poll(it->ctx, true);
    }
    current_iothread = NULL;
    aioloop__iothread_ctx_tls = NULL;
    return NULL;
}

static void iothread_stop_bh(void *opaque)
{
    IOThread *it = opaque;

    it->stopping = true;
}

IOThread *iothread_create(const char *id, Error **errp)
{
    IOThread *it = aioloop__calloc(1, sizeof(*it));
    int ret;

    if (!it || (id && !(it->id = aioloop__strdup(id)))) {
        free(it);
        error_setg_errno(errp, ENOMEM, "iothread_create: cannot allocate "
                         "the IOThread");
        return NULL;
    }
    it->ctx = aio_context_new(errp);
    if (!it->ctx) {
        free(it->id);
        free(it);
        return NULL;
    }
    /* QEMU's IOThread default: adaptive polling, off again while idle. */
    aio_context_set_poll_params(it->ctx, IOTHREAD_POLL_MAX_NS_DEFAULT, 0, 0,
                                &error_abort);
    qemu_sem_init(&it->started, 0);
    ret = qemu_thread_create(&it->thread, id ? id : "iothread", iothread_run,
                             it, QEMU_THREAD_JOINABLE);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "iothread_create: cannot start thread "
                         "'%s'", id ? id : "iothread");
        qemu_sem_destroy(&it->started);
        aio_context_unref(it->ctx);
        free(it->id);
        free(it);
        return NULL;
    }
    qemu_sem_wait(&it->started);
    pthread_mutex_lock(&live_lock);
    QLIST_INSERT_HEAD(&live_iothreads, it, live);
    pthread_mutex_unlock(&live_lock);
    return it;
}

AioContext *iothread_get_aio_context(IOThread *iothread)
{
    if (unlikely(!iothread)) {
        aioloop__misuse("iothread_get_aio_context", "NULL IOThread");
    }
    return iothread->ctx;
}

const char *iothread_get_id(IOThread *iothread)
{
    if (unlikely(!iothread)) {
        aioloop__misuse("iothread_get_id", "NULL IOThread");
    }
    return iothread->id;
}

/* Takes @iothread off the live list; aborts if it is not there. */
static void iothread_unlist(IOThread *iothread)
{
    IOThread *it;

    pthread_mutex_lock(&live_lock);
    QLIST_FOREACH(it, &live_iothreads, live) {
        if (it == iothread) {
            break;
        }
    }
    if (it) {
        QLIST_REMOVE(it, live);
    }
    pthread_mutex_unlock(&live_lock);
    if (unlikely(!it)) {
        aioloop__misuse("iothread_destroy", "%p is not a live IOThread "
                        "(destroyed twice?)", (void *)iothread);
    }
}

void iothread_destroy(IOThread *iothread)
{
    if (!iothread) {
        return;
    }
    /* Joining itself would deadlock (or fail) with the IOThread half
     * stopped: checked before anything changes. */
    if (unlikely(current_iothread == iothread)) {
        aioloop__misuse("iothread_destroy", "IOThread '%s' (%p) destroyed "
                        "from its own thread", iothread->id ? iothread->id
                        : "(no id)", (void *)iothread);
    }
    iothread_unlist(iothread);
    aio_bh_schedule_oneshot(iothread->ctx, iothread_stop_bh, iothread);
    qemu_thread_join(&iothread->thread);
    qemu_sem_destroy(&iothread->started);
    aio_context_unref(iothread->ctx);
    free(iothread->id);
    free(iothread);
}
