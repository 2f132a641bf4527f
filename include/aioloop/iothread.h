/*
 * aioloop/iothread.h - threads that run an AioContext.
 *
 * An IOThread owns one AioContext and calls aio_poll(ctx, true) in a loop
 * until it is destroyed. Hand it work with BHs, fd handlers or timers on
 * iothread_get_aio_context().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_IOTHREAD_H
#define AIOLOOP_IOTHREAD_H

#include <aioloop/aio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A thread running an AioContext (opaque). Created by iothread_create(),
 * freed by iothread_destroy(). */
typedef struct IOThread IOThread;

/* The adaptive polling limit an IOThread's context starts with, in ns
 * (QEMU's poll-max-ns default); see aio_context_set_poll_params(). */
#define IOTHREAD_POLL_MAX_NS_DEFAULT 32768

/**
 * iothread_create - start a thread running a new AioContext.
 * @id: a name for the thread (copied; may be NULL). Ids are names, not
 *      keys: two IOThreads may share one. The thread's system name is cut
 *      to 15 bytes; iothread_get_id() returns the whole id.
 * @errp: error object, may be NULL.
 *
 * As in QEMU, the new context polls adaptively: after a short wait the
 * loop busy-polls its handlers (up to IOTHREAD_POLL_MAX_NS_DEFAULT ns,
 * grown and shrunk by the defaults of aio_context_set_poll_params())
 * before it sleeps, so that work arriving within microseconds costs no
 * wake-up; long waits turn polling off again, so an idle IOThread does
 * not spin. Polling applies only while every handler of the context has
 * an io_poll function. Call aio_context_set_poll_params() on
 * iothread_get_aio_context() to change or disable it.
 *
 * Returns: the IOThread, or NULL with @errp set if the context or the
 * thread could not be created.
 * Any thread.
 */
AIOLOOP_API IOThread *iothread_create(const char *id, Error **errp);

/**
 * iothread_get_aio_context - the context @iothread runs. It stays valid
 * until iothread_destroy() (take a reference to keep it longer). A NULL
 * @iothread aborts with a message.
 * Any thread.
 */
AIOLOOP_API AioContext *iothread_get_aio_context(IOThread *iothread);

/**
 * iothread_get_id - the id given to iothread_create() (may be NULL).
 * A NULL @iothread aborts with a message. Any thread.
 */
AIOLOOP_API const char *iothread_get_id(IOThread *iothread);

/**
 * iothread_destroy - stop @iothread and free it.
 *
 * Every BH scheduled on its context before the call runs first; then the
 * thread exits, is joined, and the IOThread's reference to the context is
 * dropped. Called from the IOThread itself, it aborts with a message
 * naming the IOThread's id (it would wait for itself). Destroying an
 * IOThread a second time aborts with a message naming it ("not a live
 * IOThread"), unless a new IOThread has been created at the same address
 * meanwhile. NULL is ignored.
 * Any thread other than @iothread's.
 */
AIOLOOP_API void iothread_destroy(IOThread *iothread);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_IOTHREAD_H */
