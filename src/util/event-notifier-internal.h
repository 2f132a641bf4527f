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

#endif /* AIOLOOP_EVENT_NOTIFIER_INTERNAL_H */
