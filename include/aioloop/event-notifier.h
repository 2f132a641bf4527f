/*
 * aioloop/event-notifier.h - a pollable "something happened" flag.
 *
 * Design
 * ------
 * An EventNotifier is a file descriptor that becomes readable when the
 * notifier is set and stops being readable when it is cleared. Any thread
 * (or a signal handler) sets it; the event loop watches the read side with
 * poll/epoll and clears it from its handler. Setting an already-set
 * notifier is allowed and cheap: sets coalesce, the reader sees one event.
 *
 * It is an eventfd when the kernel has one (one descriptor, a counter the
 * kernel resets on read). Where eventfd is unavailable (ENOSYS, or EINVAL
 * from a kernel without the flags) it falls back to a non-blocking pipe:
 * the write end is set, the read end polled and drained. Both ends are
 * close-on-exec and non-blocking, so neither set nor test_and_clear can
 * ever block.
 *
 * Lifetime: a zero-filled EventNotifier, or one whose init failed, is
 * "uninitialised"; event_notifier_cleanup() on it does nothing, so it may
 * be called unconditionally, and more than once.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_EVENT_NOTIFIER_H
#define AIOLOOP_EVENT_NOTIFIER_H

#include <stdbool.h>
#include <aioloop/compiler.h>

/* A pollable flag (see above). Embed it in a struct or on the stack;
 * event_notifier_init() sets it up. The fields are for the library. */
typedef struct EventNotifier {
    int rfd;                    /* polled and drained; -1 if uninitialised */
    int wfd;                    /* written by set; == rfd for an eventfd */
    bool initialized;           /* the descriptors are open */
} EventNotifier;

/*
 * event_notifier_init - create the descriptors of e, set if active is
 * non-zero.
 *
 * Returns 0 on success; -errno on failure (-EMFILE or -ENFILE when out of
 * descriptors, -ENOMEM), in which case e is left uninitialised (rfd and
 * wfd are -1) and nothing is leaked.
 *
 * Any thread.
 */
AIOLOOP_API int event_notifier_init(EventNotifier *e, int active);

/*
 * event_notifier_init_fd - make e wrap fd, an existing eventfd (or any
 * descriptor with eventfd semantics), used as both read and write side.
 * fd should be non-blocking. e takes ownership: event_notifier_cleanup()
 * closes fd (as QEMU's does).
 *
 * Returns 0, or -EINVAL if fd is negative (e is then uninitialised).
 *
 * Any thread.
 */
AIOLOOP_API int event_notifier_init_fd(EventNotifier *e, int fd);

/*
 * event_notifier_cleanup - close the descriptors of e and mark it
 * uninitialised. Does nothing if e is uninitialised, so calling it twice
 * is safe. Remove e from every event loop before calling it: cleaning up
 * a notifier still registered with an AioContext through
 * aio_set_event_notifier() aborts, in every build, with a message naming
 * the notifier, its descriptor and the context (the handler would be
 * left on a closed descriptor, with no way to remove it).
 *
 * Any thread.
 */
AIOLOOP_API void event_notifier_cleanup(EventNotifier *e);

/*
 * event_notifier_set - set e, making its read side readable. Setting an
 * already-set notifier succeeds and changes nothing. Never blocks; retries
 * if interrupted by a signal.
 *
 * Returns 0, or -errno if the write failed (e.g. -EBADF for an
 * uninitialised notifier).
 *
 * Any thread, async-signal-safe.
 */
AIOLOOP_API int event_notifier_set(EventNotifier *e);

/*
 * event_notifier_test_and_clear - clear e, reading everything pending on
 * its read side. Never blocks.
 *
 * Returns true if e was set.
 *
 * Any thread.
 */
AIOLOOP_API bool event_notifier_test_and_clear(EventNotifier *e);

/*
 * event_notifier_get_fd - the descriptor to poll for readability (POLLIN
 * means set). It stays owned by e.
 *
 * Returns the read descriptor, or -1 if e is uninitialised.
 *
 * Any thread.
 */
AIOLOOP_API int event_notifier_get_fd(const EventNotifier *e);

/*
 * event_notifier_get_wfd - the descriptor event_notifier_set() writes
 * (equal to the read one for an eventfd). It stays owned by e.
 *
 * Returns the write descriptor, or -1 if e is uninitialised.
 *
 * Any thread.
 */
AIOLOOP_API int event_notifier_get_wfd(const EventNotifier *e);

#endif /* AIOLOOP_EVENT_NOTIFIER_H */
