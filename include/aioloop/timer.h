/*
 * aioloop/timer.h - clocks and timers.
 *
 * Four clocks, QEMU's:
 *   QEMU_CLOCK_REALTIME    monotonic time (CLOCK_MONOTONIC), always runs.
 *   QEMU_CLOCK_VIRTUAL     does not advance by itself: the application sets
 *                          it with qemu_clock_advance_virtual_time(), which
 *                          makes timer-driven code testable without sleeping.
 *   QEMU_CLOCK_HOST        wall-clock time (CLOCK_REALTIME); may jump.
 *   QEMU_CLOCK_VIRTUAL_RT  runs like REALTIME (kept for source compatibility).
 *
 * Every AioContext has one timer list per clock (a QEMUTimerListGroup);
 * aio_timer_new()/aio_timer_init() put a timer on one of them. A timer
 * fires once per arm, from aio_poll() of its context, never elsewhere;
 * timers fire in deadline order, equal deadlines in the order they were
 * armed. Arming, re-arming and deleting cost O(log n) in the number of
 * armed timers (a 4-ary heap), take no allocation once the list's heap
 * has grown, and may be done from any thread: a deadline that becomes the
 * earliest of its list wakes the owning loop.
 *
 * A callback may re-arm or delete any timer, itself included, and may
 * call aio_poll() (nested).
 *
 * Lifetime: delete (timer_del, timer_free, timer_deinit) every timer
 * before the last unref of its context. A timer still armed then is
 * disarmed and detached; arming it afterwards is a programmer error
 * (assertion in debug builds, ignored otherwise).
 *
 * Bad input. Every function that takes a QEMUClockType aborts, in every
 * build, with a message naming itself, the value and the timer (if any)
 * when the type is not one of the four clocks (not in [0,
 * QEMU_CLOCK_MAX)); so do timer_init_tl()/timer_new_tl() (and the
 * functions built on them) given no list, no callback or a scale below
 * 1. Expiry times are saturated, never wrapped: timer_mod() and
 * timer_mod_anticipate() multiply by the scale with saturation, so a
 * time too large for int64_t nanoseconds is INT64_MAX, which never
 * comes (a timer armed at INT64_MAX stays pending and never fires), and
 * one too small is in the past (fires at the next aio_poll()), as is
 * any negative time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TIMER_H
#define AIOLOOP_TIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <aioloop/compiler.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An event loop (opaque; see <aioloop/aio.h>). */
typedef struct AioContext AioContext;

/* The four clocks (see above). */
typedef enum {
    QEMU_CLOCK_REALTIME = 0,    /* CLOCK_MONOTONIC */
    QEMU_CLOCK_VIRTUAL = 1,     /* advanced by the application */
    QEMU_CLOCK_HOST = 2,        /* CLOCK_REALTIME, may jump */
    QEMU_CLOCK_VIRTUAL_RT = 3,  /* runs like QEMU_CLOCK_REALTIME */
    QEMU_CLOCK_MAX              /* the number of clocks */
} QEMUClockType;

/* SCALE_MS / SCALE_US / SCALE_NS - a timer's scale: the nanoseconds in one
 * unit of timer_mod()'s argument. */
#define SCALE_MS 1000000
#define SCALE_US 1000
#define SCALE_NS 1

/* A timer's callback: called with the timer's opaque when it fires. */
typedef void QEMUTimerCB(void *opaque);
/* Called when a list's earliest deadline moves earlier (any thread). */
typedef void QEMUTimerListNotifyCB(void *opaque, QEMUClockType type);

/* The armed timers of one clock (opaque): a deadline-ordered heap. */
typedef struct QEMUTimerList QEMUTimerList;

/* One timer list per clock (every AioContext has one group). */
typedef struct QEMUTimerListGroup {
    QEMUTimerList *tl[QEMU_CLOCK_MAX];  /* indexed by QEMUClockType */
} QEMUTimerListGroup;

/* A timer. Embed it (aio_timer_init) or allocate it (aio_timer_new); the
 * fields are private to the library. */
typedef struct QEMUTimer {
    int64_t expire_time;        /* ns on its clock; -1 when not armed */
    QEMUTimerList *timer_list;  /* the list it is armed on */
    QEMUTimerCB *cb;            /* the callback */
    void *opaque;               /* the callback's argument */
    int scale;                  /* ns per unit of timer_mod() */
    int heap_index;             /* position in the list's heap, or -1 */
    uint64_t seq;               /* arm order, breaks deadline ties */
} QEMUTimer;

/* ------------------------------------------------------------------ */
/* Clocks                                                              */

/**
 * qemu_clock_get_ns - current time of @type in nanoseconds.
 * A disabled clock still reads its time.
 * Any thread.
 */
AIOLOOP_API int64_t qemu_clock_get_ns(QEMUClockType type);

/** qemu_clock_get_us - qemu_clock_get_ns() / 1000. Any thread. */
AIOLOOP_API int64_t qemu_clock_get_us(QEMUClockType type);

/** qemu_clock_get_ms - qemu_clock_get_ns() / 1000000. Any thread. */
AIOLOOP_API int64_t qemu_clock_get_ms(QEMUClockType type);

/**
 * qemu_clock_advance_virtual_time - move QEMU_CLOCK_VIRTUAL forward to
 * @dest nanoseconds (aioloop's way to drive the virtual clock; the name is
 * QEMU's). A @dest earlier than the current value leaves the clock alone.
 * Every context with a virtual-clock timer whose deadline is now reached
 * is woken; the timers then fire from those contexts' aio_poll().
 * Returns: the virtual clock's value after the call.
 * Any thread.
 */
AIOLOOP_API int64_t qemu_clock_advance_virtual_time(int64_t dest);

/**
 * qemu_clock_enable - enable or disable @type. A disabled clock fires no
 * timer (its lists report no deadline); re-enabling wakes every context
 * with timers on it. A callback already running finishes.
 * Any thread.
 */
AIOLOOP_API void qemu_clock_enable(QEMUClockType type, bool enabled);

/** qemu_clock_is_enabled - whether @type fires timers. Any thread. */
AIOLOOP_API bool qemu_clock_is_enabled(QEMUClockType type);

/* ------------------------------------------------------------------ */
/* Timer lists and groups                                              */

/**
 * timerlist_new - a standalone timer list on clock @type.
 * @cb (may be NULL) is called with @opaque when the list's earliest
 * deadline moves earlier, to wake whoever waits for it.
 * Returns: the list (allocation failure aborts).
 * Any thread.
 */
AIOLOOP_API QEMUTimerList *timerlist_new(QEMUClockType type,
                                         QEMUTimerListNotifyCB *cb,
                                         void *opaque);

/**
 * timerlist_free - free @timer_list; timers still armed on it are
 * disarmed and detached. Any thread (no timer of the list may run).
 */
AIOLOOP_API void timerlist_free(QEMUTimerList *timer_list);

/** timerlist_has_timers - whether a timer is armed on the list. Any thread. */
AIOLOOP_API bool timerlist_has_timers(QEMUTimerList *timer_list);

/**
 * timerlist_deadline_ns - nanoseconds until the earliest timer of the list
 * expires: 0 if one has expired, -1 if none is armed or its clock is
 * disabled. Any thread.
 */
AIOLOOP_API int64_t timerlist_deadline_ns(QEMUTimerList *timer_list);

/** timerlist_get_clock - the clock of the list. Any thread. */
AIOLOOP_API QEMUClockType timerlist_get_clock(QEMUTimerList *timer_list);

/**
 * timerlist_run_timers - run the expired timers of the list, in deadline
 * order. Returns: true if a callback ran.
 * The list owner's thread only (for a context's lists: aio_poll()).
 */
AIOLOOP_API bool timerlist_run_timers(QEMUTimerList *timer_list);

/**
 * timerlistgroup_init - create one list per clock in @tlg, each calling
 * @cb(@opaque, type) when its earliest deadline moves earlier.
 * Any thread.
 */
AIOLOOP_API void timerlistgroup_init(QEMUTimerListGroup *tlg,
                                     QEMUTimerListNotifyCB *cb, void *opaque);

/** timerlistgroup_deinit - free the lists of @tlg. Any thread. */
AIOLOOP_API void timerlistgroup_deinit(QEMUTimerListGroup *tlg);

/**
 * timerlistgroup_deadline_ns - the smallest timerlist_deadline_ns() of the
 * group (-1: no deadline). Any thread.
 */
AIOLOOP_API int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup *tlg);

/**
 * timerlistgroup_run_timers - timerlist_run_timers() on every list.
 * Returns: true if a callback ran. The group owner's thread only.
 */
AIOLOOP_API bool timerlistgroup_run_timers(QEMUTimerListGroup *tlg);

/**
 * aio_get_timer_list_group - the timer lists of @ctx (QEMU reaches them
 * as ctx->tlg). Valid until the context is freed. Any thread.
 */
AIOLOOP_API QEMUTimerListGroup *aio_get_timer_list_group(AioContext *ctx);

/* ------------------------------------------------------------------ */
/* Timers                                                              */

/**
 * timer_init_tl - initialise caller-owned @ts on @timer_list, not armed.
 * @ts: the timer (caller-owned memory); @timer_list: its list;
 * @scale: the unit of timer_mod()'s argument in ns (SCALE_NS, SCALE_US,
 * SCALE_MS); @cb: the callback (required); @opaque: its argument.
 * Any thread.
 */
AIOLOOP_API void timer_init_tl(QEMUTimer *ts, QEMUTimerList *timer_list,
                               int scale, QEMUTimerCB *cb, void *opaque);

/**
 * timer_new_tl - allocate and initialise a timer on @timer_list; free it
 * with timer_free(). Returns: the timer (allocation failure aborts).
 * Any thread.
 */
AIOLOOP_API QEMUTimer *timer_new_tl(QEMUTimerList *timer_list, int scale,
                                    QEMUTimerCB *cb, void *opaque);

/**
 * aio_timer_init - timer_init_tl() on @ctx's list for clock @type.
 * Any thread.
 */
AIOLOOP_API void aio_timer_init(AioContext *ctx, QEMUTimer *ts,
                                QEMUClockType type, int scale,
                                QEMUTimerCB *cb, void *opaque);

/**
 * aio_timer_new - timer_new_tl() on @ctx's list for clock @type.
 * Any thread.
 */
AIOLOOP_API QEMUTimer *aio_timer_new(AioContext *ctx, QEMUClockType type,
                                     int scale, QEMUTimerCB *cb,
                                     void *opaque);

/**
 * timer_new - a timer on the main context (qemu_init_main_loop() first),
 * i.e. qemu_get_aio_context(), also while an AsyncContext level is pushed
 * (<aioloop/async-context.h>). timer_new_ns/_us/_ms fix the scale.
 * Any thread.
 */
AIOLOOP_API QEMUTimer *timer_new(QEMUClockType type, int scale,
                                 QEMUTimerCB *cb, void *opaque);
/* timer_new_ns / timer_new_us / timer_new_ms(type, cb, opaque) -
 * timer_new() with the scale fixed. Any thread. */
#define timer_new_ns(type, cb, opaque) timer_new((type), SCALE_NS, (cb), (opaque))
#define timer_new_us(type, cb, opaque) timer_new((type), SCALE_US, (cb), (opaque))
#define timer_new_ms(type, cb, opaque) timer_new((type), SCALE_MS, (cb), (opaque))

/**
 * timer_mod_ns - arm @ts to expire at @expire_time ns on its clock, or
 * move it if armed (no allocation). A deadline in the past fires at the
 * next aio_poll(). Any thread.
 */
AIOLOOP_API void timer_mod_ns(QEMUTimer *ts, int64_t expire_time);

/**
 * timer_mod - timer_mod_ns() with @expire_time in the timer's scale; the
 * product saturates (see "Bad input" above): timer_mod(t, INT64_MAX)
 * on a millisecond timer arms it at INT64_MAX ns, i.e. never.
 * Any thread.
 */
AIOLOOP_API void timer_mod(QEMUTimer *ts, int64_t expire_time);

/**
 * timer_mod_anticipate_ns - arm @ts at @expire_time ns unless it is armed
 * for an earlier time: never moves a deadline later. Any thread.
 */
AIOLOOP_API void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time);

/** timer_mod_anticipate - the same in the timer's scale, saturated as
 * timer_mod(). Any thread. */
AIOLOOP_API void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time);

/**
 * timer_del - disarm @ts (nothing if not armed). Once it returns on the
 * loop thread the callback does not run for the old arm. Any thread.
 */
AIOLOOP_API void timer_del(QEMUTimer *ts);

/**
 * timer_deinit - disarm @ts and detach it from its list; caller-owned
 * memory may then be reused. Any thread.
 */
AIOLOOP_API void timer_deinit(QEMUTimer *ts);

/** timer_free - disarm and free a timer from timer_new*()/aio_timer_new().
 * NULL is ignored. Any thread. */
AIOLOOP_API void timer_free(QEMUTimer *ts);

/** timer_pending - whether @ts is armed. Any thread. */
AIOLOOP_API bool timer_pending(QEMUTimer *ts);

/**
 * timer_expired - whether @ts is armed with a deadline at or before
 * @current_time (in the timer's scale, converted with saturation).
 * Any thread.
 */
AIOLOOP_API bool timer_expired(QEMUTimer *ts, int64_t current_time);

/**
 * timer_expire_time_ns - the deadline of @ts in ns, or -1 if not armed.
 * Any thread.
 */
AIOLOOP_API int64_t timer_expire_time_ns(QEMUTimer *ts);

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_TIMER_H */
