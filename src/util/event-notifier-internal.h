/*
 * event-notifier-internal.h - test hooks of event-notifier.c. Not
 * installed; not part of the ABI (hidden, aioloop__ prefix).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_EVENT_NOTIFIER_INTERNAL_H
#define AIOLOOP_EVENT_NOTIFIER_INTERNAL_H

#include <stdbool.h>

/*
 * aioloop__event_notifier_force_pipe - while on, event_notifier_init()
 * behaves as if eventfd were missing and uses the pipe fallback, so tests
 * can exercise it on any kernel. Affects notifiers created afterwards.
 *
 * Any thread.
 */
void aioloop__event_notifier_force_pipe(bool on);

/*
 * aioloop__event_notifier_set_owner_check - install @owner, which returns
 * the AioContext (as void *) that has a handler of a notifier registered
 * with aio_set_event_notifier(), or NULL. event_notifier_cleanup() calls
 * it and aborts, naming the notifier and the context, if there is one.
 * aio-posix.c installs it when the first context is created; until then
 * no notifier can be registered.
 *
 * Any thread.
 */
struct EventNotifier;
void aioloop__event_notifier_set_owner_check(
    void *(*owner)(const struct EventNotifier *e));

#endif /* AIOLOOP_EVENT_NOTIFIER_INTERNAL_H */
