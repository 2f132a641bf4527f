/*
 * aioloop-qemu.h - the heart of aioloop's QEMU-named include tree.
 *
 * Code ported out of QEMU includes "qemu/osdep.h", "block/aio.h",
 * "qemu/coroutine.h"... Built with `pkg-config --cflags aioloop-qemu`,
 * those names resolve to the headers beside this one, which all come
 * here: this file brings in the whole library (<aioloop.h>), GLib (as
 * QEMU's osdep.h does) and the system headers QEMU code takes for
 * granted, then maps the QEMU spellings of one QEMU release onto
 * aioloop's one implementation.
 *
 * API levels
 * ----------
 * AIOLOOP_QEMU_API selects the release whose signatures apply:
 * major * 100 + minor, so 205 for QEMU 2.5, 801 for 8.1, 1002 for 10.2;
 * 1100 is QEMU master (10.2.50, on its way to 11.0). Any value from 205 on
 * is accepted and behaves as the newest release at or below it; the
 * default is the newest, AIOLOOP_QEMU_API_LATEST. Define it before the
 * first include (-DAIOLOOP_QEMU_API=209). docs/porting.md has the table
 * of every boundary, with the QEMU commit or release it comes from.
 *
 * How a signature is mapped: a QEMU function whose arguments changed over
 * the years becomes, at the levels where QEMU's form differs from
 * aioloop's, a function-like macro of QEMU's shape that calls aioloop's
 * function (or a small inline wrapper here); an argument QEMU dropped is
 * filled in (is_external = false), an argument aioloop has no use for is
 * evaluated and ignored only where that is QEMU's meaning too (see the
 * comments). Names QEMU removed stay available at later levels unless
 * they clash with a newer meaning.
 *
 * This header is not part of aioloop's core: <aioloop.h> never includes
 * it. Thread tags of the functions are those of the aioloop functions
 * they call.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_H
#define AIOLOOP_QEMU_H

#define AIOLOOP_QEMU_API_LATEST 1100
#ifndef AIOLOOP_QEMU_API
#define AIOLOOP_QEMU_API AIOLOOP_QEMU_API_LATEST
#endif
#if AIOLOOP_QEMU_API < 205
#error "AIOLOOP_QEMU_API: aioloop's QEMU-named headers start at QEMU 2.5 (205)"
#endif

/* QEMU is built with _GNU_SOURCE (pkg-config --cflags aioloop-qemu
 * passes it too); this covers a build that includes us first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

/* What QEMU's osdep.h includes, so that ported code finds it. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include <glib.h>

#include <aioloop.h>
#include <aioloop-qemu-config.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Build configuration QEMU code tests (config-host.h)                 */

#ifndef CONFIG_LINUX
#define CONFIG_LINUX 1
#endif
#ifndef CONFIG_POSIX
#define CONFIG_POSIX 1
#endif
/* aioloop recycles coroutines through a per-thread pool. */
#ifndef CONFIG_COROUTINE_POOL
#define CONFIG_COROUTINE_POOL 1
#endif
#if AIOLOOP_HAVE_LINUX_AIO && !defined(CONFIG_LINUX_AIO)
#define CONFIG_LINUX_AIO 1
#endif
#if AIOLOOP_HAVE_IO_URING && !defined(CONFIG_LINUX_IO_URING)
#define CONFIG_LINUX_IO_URING 1
#endif

/*
 * IS_ENABLED(CONFIG_X) - 1 if CONFIG_X is defined to 1 or to nothing
 * (QEMU's meson-era config headers define the latter), 0 if it is
 * undefined. Usable in #if and in C expressions.
 */
#define AIOLOOP_IS_ENABLED_ARG_1 0,
#define AIOLOOP_IS_ENABLED_ARG_ 0,
#define AIOLOOP_IS_ENABLED_2(junk_or_0, val, ...) val
#define AIOLOOP_IS_ENABLED_1(arg) AIOLOOP_IS_ENABLED_2(arg 1, 0, 0)
#define AIOLOOP_IS_ENABLED_0(x) AIOLOOP_IS_ENABLED_1(AIOLOOP_IS_ENABLED_ARG_##x)
#define IS_ENABLED(x) AIOLOOP_IS_ENABLED_0(x)

/* ------------------------------------------------------------------ */
/* Compiler helpers (qemu/compiler.h, qemu/osdep.h)                    */

#ifndef stringify
#define xstringify(s) stringify(s)
#define stringify(s) #s
#endif
#ifndef glue
#define xglue(x, y) x ## y
#define glue(x, y) xglue(x, y)
#endif
#define QEMU_GNUC_PREREQ(maj, min) \
    ((__GNUC__ << 16) + __GNUC_MINOR__ >= ((maj) << 16) + (min))
#define QEMU_NORETURN __attribute__((noreturn))
#define QEMU_WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#define QEMU_SENTINEL __attribute__((sentinel))
#define QEMU_PACKED __attribute__((packed))
#define QEMU_ALIGNED(x) __attribute__((aligned(x)))
#define QEMU_ALWAYS_INLINE __attribute__((always_inline))
#define QEMU_FLATTEN __attribute__((flatten))
#define QEMU_UNUSED_VAR __attribute__((unused))
#define QEMU_FALLTHROUGH __attribute__((fallthrough))
#define QEMU_BUILD_BUG_ON(x) _Static_assert(!(x), "not expecting: " #x)
#define QEMU_BUILD_BUG_MSG(x, msg) _Static_assert(!(x), msg)
#ifndef typeof_field
#define typeof_field(type, field) __typeof__(((type *)0)->field)
#endif
#ifndef sizeof_field
#define sizeof_field(type, field) sizeof(((type *)0)->field)
#endif
#ifndef DIV_ROUND_UP
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#endif
#ifndef ROUND_UP
#define ROUND_UP(n, d) (((n) + (d) - 1) & -(__typeof__(n))(d))
#endif
#ifndef QEMU_IS_ALIGNED
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)
#endif
#ifndef MIN_NON_ZERO
#define MIN_NON_ZERO(a, b) \
    ((a) == 0 ? (b) : ((b) == 0 ? (a) : (MIN(a, b))))
#endif
/* Markers of QEMU's static analysis (8.0 on): nothing for the compiler. */
#ifndef coroutine_mixed_fn
#define coroutine_mixed_fn
#endif
#ifndef no_coroutine_fn
#define no_coroutine_fn
#endif
#ifndef co_wrapper
#define co_wrapper
#define co_wrapper_mixed
#define co_wrapper_bdrv_rdlock
#define co_wrapper_mixed_bdrv_rdlock
#endif

/* ------------------------------------------------------------------ */
/* Atomics (qemu/atomic.h)                                             */

/* QEMU 8.1 renamed qatomic_mb_set to qatomic_set_mb; the RMW barriers
 * of 8.0 on are full barriers here. */
#define qatomic_set_mb(ptr, val) qatomic_mb_set(ptr, val)
#define smp_mb__before_rmw() smp_mb()
#define smp_mb__after_rmw() smp_mb()
#define smp_read_barrier_depends() barrier()
#define signal_barrier() __atomic_signal_fence(__ATOMIC_SEQ_CST)
/* Increment *ptr unless it is zero; returns the old value. */
#define qatomic_fetch_inc_nonzero(ptr) __extension__ ({                 \
    __typeof__(*(ptr)) aioloop_old_ = qatomic_read(ptr);                \
    while (aioloop_old_ != 0) {                                         \
        __typeof__(*(ptr)) aioloop_seen_ =                              \
            qatomic_cmpxchg(ptr, aioloop_old_, aioloop_old_ + 1);       \
        if (aioloop_seen_ == aioloop_old_) {                            \
            break;                                                      \
        }                                                               \
        aioloop_old_ = aioloop_seen_;                                   \
    }                                                                   \
    aioloop_old_;                                                       \
})
#define qatomic_xor_fetch(ptr, n) __atomic_xor_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_and_fetch(ptr, n) __atomic_and_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_or_fetch(ptr, n) __atomic_or_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_read_i64(ptr) qatomic_read(ptr)
#define qatomic_read_u64(ptr) qatomic_read(ptr)
#define qatomic_set_i64(ptr, val) qatomic_set(ptr, val)
#define qatomic_set_u64(ptr, val) qatomic_set(ptr, val)

#if AIOLOOP_QEMU_API < 502
/*
 * Before QEMU 5.2 the atomics were spelled atomic_*, names C11's
 * <stdatomic.h> also uses for its generic functions; at these levels
 * QEMU's meaning wins (the C11 functions stay reachable with their
 * _explicit forms and atomic_load/atomic_store).
 */
#undef atomic_fetch_add
#undef atomic_fetch_sub
#undef atomic_fetch_and
#undef atomic_fetch_or
#undef atomic_fetch_xor
#define atomic_read(ptr)              qatomic_read(ptr)
#define atomic_set(ptr, val)          qatomic_set(ptr, val)
#define atomic_read__nocheck(ptr)     qatomic_read(ptr)
#define atomic_set__nocheck(ptr, val) qatomic_set(ptr, val)
#define atomic_rcu_read(ptr)          qatomic_rcu_read(ptr)
#define atomic_rcu_set(ptr, val)      qatomic_rcu_set(ptr, val)
#define atomic_load_acquire(ptr)      qatomic_load_acquire(ptr)
#define atomic_store_release(ptr, v)  qatomic_store_release(ptr, v)
#define atomic_mb_read(ptr)           qatomic_mb_read(ptr)
#define atomic_mb_set(ptr, val)       qatomic_mb_set(ptr, val)
#define atomic_xchg(ptr, val)         qatomic_xchg(ptr, val)
#define atomic_xchg__nocheck(ptr, v)  qatomic_xchg(ptr, v)
#define atomic_cmpxchg(ptr, old, new) qatomic_cmpxchg(ptr, old, new)
#define atomic_cmpxchg__nocheck(ptr, old, new) qatomic_cmpxchg(ptr, old, new)
#define atomic_fetch_add(ptr, n)      qatomic_fetch_add(ptr, n)
#define atomic_fetch_sub(ptr, n)      qatomic_fetch_sub(ptr, n)
#define atomic_fetch_and(ptr, n)      qatomic_fetch_and(ptr, n)
#define atomic_fetch_or(ptr, n)       qatomic_fetch_or(ptr, n)
#define atomic_fetch_xor(ptr, n)      qatomic_fetch_xor(ptr, n)
#define atomic_fetch_inc(ptr)         qatomic_fetch_inc(ptr)
#define atomic_fetch_dec(ptr)         qatomic_fetch_dec(ptr)
#define atomic_fetch_inc_nonzero(ptr) qatomic_fetch_inc_nonzero(ptr)
#define atomic_add_fetch(ptr, n)      qatomic_add_fetch(ptr, n)
#define atomic_sub_fetch(ptr, n)      qatomic_sub_fetch(ptr, n)
#define atomic_and_fetch(ptr, n)      qatomic_and_fetch(ptr, n)
#define atomic_or_fetch(ptr, n)       qatomic_or_fetch(ptr, n)
#define atomic_xor_fetch(ptr, n)      qatomic_xor_fetch(ptr, n)
#define atomic_inc_fetch(ptr)         qatomic_inc_fetch(ptr)
#define atomic_dec_fetch(ptr)         qatomic_dec_fetch(ptr)
#define atomic_add(ptr, n)            qatomic_add(ptr, n)
#define atomic_sub(ptr, n)            qatomic_sub(ptr, n)
#define atomic_and(ptr, n)            qatomic_and(ptr, n)
#define atomic_or(ptr, n)             qatomic_or(ptr, n)
#define atomic_xor(ptr, n)            qatomic_xor(ptr, n)
#define atomic_inc(ptr)               qatomic_inc(ptr)
#define atomic_dec(ptr)               qatomic_dec(ptr)
#define atomic_read_i64(ptr)          qatomic_read(ptr)
#define atomic_read_u64(ptr)          qatomic_read(ptr)
#define atomic_set_i64(ptr, val)      qatomic_set(ptr, val)
#define atomic_set_u64(ptr, val)      qatomic_set(ptr, val)
#endif

/* ------------------------------------------------------------------ */
/* Lock guards (qemu/lockable.h, QEMU 5.0 on)                          */

/* Take @l (if not NULL) and return it: the start of a guard. */
static inline QemuLockable *aioloop_lock_guard_take(QemuLockable *l)
{
    if (l) {
        qemu_lockable_lock(l);
    }
    return l;
}

/* The end of a guard: release what aioloop_lock_guard_take() took. */
static inline void aioloop_lock_guard_release(QemuLockable **l)
{
    if (*l) {
        qemu_lockable_unlock(*l);
        *l = NULL;
    }
}

/*
 * QEMU_LOCK_GUARD(x) - take the lock @x (any QEMU_MAKE_LOCKABLE() type)
 * until the end of the enclosing block. WITH_QEMU_LOCK_GUARD(x) { ... }
 * holds it for the statement that follows.
 */
#define QEMU_LOCK_GUARD(x)                                              \
    QemuLockable *glue(aioloop_lock_guard_, __COUNTER__)                \
        __attribute__((cleanup(aioloop_lock_guard_release), unused)) =  \
        aioloop_lock_guard_take(QEMU_MAKE_LOCKABLE(x))
#define WITH_QEMU_LOCK_GUARD_(x, var)                                   \
    for (QemuLockable *var                                              \
             __attribute__((cleanup(aioloop_lock_guard_release))) =     \
             aioloop_lock_guard_take(QEMU_MAKE_LOCKABLE(x));            \
         var; aioloop_lock_guard_release(&var))
#define WITH_QEMU_LOCK_GUARD(x) \
    WITH_QEMU_LOCK_GUARD_((x), glue(aioloop_with_lock_guard_, __COUNTER__))

/* ------------------------------------------------------------------ */
/* Errors (qapi/error.h, qemu/error-report.h)                          */

/* error_reportf_err(err, fmt, ...) - prefix err's message with the
 * formatted text, print it and free err (QEMU 2.5 on). */
static inline void G_GNUC_PRINTF(2, 3)
error_reportf_err(Error *err, const char *fmt, ...)
{
    char *prefix;
    va_list ap;

    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_prepend(&err, "%s", prefix);
    g_free(prefix);
    error_report_err(err);
}

/* warn_reportf_err(err, fmt, ...) - the same as a warning. */
static inline void G_GNUC_PRINTF(2, 3)
warn_reportf_err(Error *err, const char *fmt, ...)
{
    char *prefix;
    va_list ap;

    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    warn_report("%s%s", prefix, error_get_pretty(err));
    g_free(prefix);
    error_free(err);
}

/* warn_report_err(err) - print err's message as a warning, free err. */
static inline void warn_report_err(Error *err)
{
    warn_report("%s", error_get_pretty(err));
    error_free(err);
}

/* info_report(fmt, ...) - an informational message on stderr. */
static inline void G_GNUC_PRINTF(1, 2) info_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* error_vreport(fmt, ap) - error_report() with a va_list. */
static inline void G_GNUC_PRINTF(1, 0)
error_vreport(const char *fmt, va_list ap)
{
    char *msg = g_strdup_vprintf(fmt, ap);

    error_report("%s", msg);
    g_free(msg);
}

/* error_printf(fmt, ...) - print to stderr, no prefix, no newline. */
static inline int G_GNUC_PRINTF(1, 2) error_printf(const char *fmt, ...)
{
    va_list ap;
    int ret;

    va_start(ap, fmt);
    ret = vfprintf(stderr, fmt, ap);
    va_end(ap);
    return ret;
}

/* error_free_or_abort(errp) - free *errp, which must hold an error. */
static inline void error_free_or_abort(Error **errp)
{
    assert(errp && *errp);
    error_free(*errp);
    *errp = NULL;
}

/*
 * ERRP_GUARD() - make errp a local Error ** that the function may
 * dereference even when its caller passed NULL or &error_fatal; the
 * error is propagated to the caller's errp when the function returns
 * (QEMU 5.1 on).
 */
typedef struct AioloopErrPropagator {
    Error *local_err;
    Error **errp;
} AioloopErrPropagator;

static inline void aioloop_err_propagator_cleanup(AioloopErrPropagator *p)
{
    error_propagate(p->errp, p->local_err);
}

#define ERRP_GUARD()                                                    \
    AioloopErrPropagator aioloop_errp_prop_                             \
        __attribute__((cleanup(aioloop_err_propagator_cleanup))) =     \
        { .errp = errp };                                               \
    do {                                                                \
        if (!errp || errp == &error_fatal) {                            \
            errp = &aioloop_errp_prop_.local_err;                       \
        }                                                               \
    } while (0)

/* ------------------------------------------------------------------ */
/* OS helpers (qemu/osdep.h, qemu/sockets.h, qemu-common.h)            */

/* qemu_pipe(fds) - pipe(2) with both ends close-on-exec. */
static inline int qemu_pipe(int pipefd[2])
{
    return pipe2(pipefd, O_CLOEXEC);
}

/* qemu_socketpair(domain, type, protocol, sv) - close-on-exec pair. */
static inline int qemu_socketpair(int domain, int type, int protocol,
                                  int sv[2])
{
    return socketpair(domain, type | SOCK_CLOEXEC, protocol, sv);
}

/* qemu_socket(domain, type, protocol) - a close-on-exec socket. */
static inline int qemu_socket(int domain, int type, int protocol)
{
    return socket(domain, type | SOCK_CLOEXEC, protocol);
}

/* qemu_set_nonblock(fd) / qemu_set_block(fd) - toggle O_NONBLOCK.
 * Return 0 or -errno (QEMU 7.1's qemu_set_blocking() style). */
static inline int qemu_set_nonblock(int fd)
{
    int f = fcntl(fd, F_GETFL);

    return f < 0 || fcntl(fd, F_SETFL, f | O_NONBLOCK) < 0 ? -errno : 0;
}
static inline int qemu_set_block(int fd)
{
    int f = fcntl(fd, F_GETFL);

    return f < 0 || fcntl(fd, F_SETFL, f & ~O_NONBLOCK) < 0 ? -errno : 0;
}
#define qemu_socket_set_nonblock(fd) qemu_set_nonblock(fd)
#define qemu_socket_set_block(fd) qemu_set_block(fd)
#define socket_set_nonblock(fd) qemu_set_nonblock(fd)
#define closesocket(fd) close(fd)

/* ------------------------------------------------------------------ */
/* Futexes (qemu/futex.h, QEMU 2.9 on)                                 */

/* qemu_futex_wake(f, n) - wake up to n threads waiting on the int *f. */
static inline void qemu_futex_wake(void *f, int n)
{
    syscall(SYS_futex, f, FUTEX_WAKE, n, NULL, NULL, 0);
}
/* qemu_futex_wake_all / _single - QEMU 10.1's spellings. */
static inline void qemu_futex_wake_all(void *f)
{
    qemu_futex_wake(f, INT_MAX);
}
static inline void qemu_futex_wake_single(void *f)
{
    qemu_futex_wake(f, 1);
}
/* qemu_futex_wait(f, val) - sleep while the int *f equals val (returns
 * at once otherwise; wake-ups may be spurious, as in QEMU). */
static inline void qemu_futex_wait(void *f, unsigned val)
{
    while (syscall(SYS_futex, f, FUTEX_WAIT, (int)val, NULL, NULL, 0) < 0) {
        if (errno != EINTR) {
            break;
        }
    }
}
#if AIOLOOP_QEMU_API < 210
/* Before QEMU 2.10 qemu-thread-posix.c's futex helpers had these names
 * in some builds; harmless to offer. */
#define futex_wake(f, n) qemu_futex_wake(f, n)
#define futex_wait(f, val) qemu_futex_wait(f, val)
#endif

/* ------------------------------------------------------------------ */
/* Timers and clocks (qemu/timer.h)                                    */

/*
 * init_clocks() (QEMU up to 2.8), init_clocks(notify_cb) (2.9 to 10.1),
 * qemu_init_clocks(notify_cb) (10.2 on): aioloop's clocks need no set-up.
 * QEMU calls notify_cb when a timer that belongs to no AioContext moves
 * earlier, to wake its main loop; in aioloop every timer belongs to a
 * context (timer_new() uses the main one), which wakes itself, so the
 * callback is never needed and never called.
 */
static inline void qemu_init_clocks(QEMUTimerListNotifyCB *notify_cb)
{
    (void)notify_cb;
}
#if AIOLOOP_QEMU_API < 209
#define init_clocks() qemu_init_clocks(NULL)
#else
#define init_clocks(notify_cb) qemu_init_clocks(notify_cb)
#endif

/* Timer attributes (QEMU 3.1 on): they select record/replay behaviour,
 * which aioloop does not have; the timers are ordinary timers. */
#define QEMU_TIMER_ATTR_EXTERNAL ((int)(1 << 0))
#define QEMU_TIMER_ATTR_ALL      (~(int)0)
static inline void aio_timer_init_with_attrs(AioContext *ctx, QEMUTimer *ts,
                                             QEMUClockType type, int scale,
                                             int attributes, QEMUTimerCB *cb,
                                             void *opaque)
{
    (void)attributes;
    aio_timer_init(ctx, ts, type, scale, cb, opaque);
}
static inline QEMUTimer *aio_timer_new_with_attrs(AioContext *ctx,
                                                  QEMUClockType type,
                                                  int scale, int attributes,
                                                  QEMUTimerCB *cb,
                                                  void *opaque)
{
    (void)attributes;
    return aio_timer_new(ctx, type, scale, cb, opaque);
}

#ifndef NANOSECONDS_PER_SECOND
#define NANOSECONDS_PER_SECOND 1000000000LL
#endif

/* qemu_soonest_timeout(a, b) - the smaller timeout, -1 meaning none. */
static inline int64_t qemu_soonest_timeout(int64_t timeout1,
                                           int64_t timeout2)
{
    return ((uint64_t)timeout1 < (uint64_t)timeout2) ? timeout1 : timeout2;
}

/* qemu_timeout_ns_to_ms(ns) - ns rounded up to ms; -1 stays -1. */
static inline int qemu_timeout_ns_to_ms(int64_t ns)
{
    int64_t ms;

    if (ns < 0) {
        return -1;
    }
    if (!ns) {
        return 0;
    }
    ms = DIV_ROUND_UP(ns, SCALE_MS);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* get_clock() / get_clock_realtime() - host clocks in ns. */
static inline int64_t get_clock(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}
static inline int64_t get_clock_realtime(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_HOST);
}

/* ------------------------------------------------------------------ */
/* Bottom halves, handlers, contexts (block/aio.h, qemu/aio.h)         */

/* The thread's current context for QEMU's "current AioContext" APIs: the
 * running coroutine's, else the thread's (qemu_get_current_aio_context). */
static inline AioContext *aioloop_qemu_current_ctx(void)
{
    Coroutine *co = qemu_coroutine_self();
    AioContext *ctx = co ? qemu_coroutine_get_aio_context(co) : NULL;

    return ctx ? ctx : qemu_get_current_aio_context();
}

/* in_aio_context_home_thread(ctx) - whether the caller runs ctx's loop. */
static inline bool in_aio_context_home_thread(AioContext *ctx)
{
    return ctx == qemu_get_current_aio_context();
}
#define aio_context_in_iothread(ctx) in_aio_context_home_thread(ctx)

/* aio_context_use_g_source(ctx) (QEMU 5.1 to 10.1): QEMU moves such a
 * context to its poll(2) monitor; aioloop's GSource works with either
 * monitor, so there is nothing to do. */
static inline void aio_context_use_g_source(AioContext *ctx)
{
    (void)ctx;
}

#if AIOLOOP_QEMU_API < 500
/* Before QEMU 5.0 deleting a BH did not wake its loop. */
#define qemu_bh_delete(bh) qemu_bh_delete_quiet(bh)
#endif

#if AIOLOOP_QEMU_API >= 801
/* QEMU 8.1: BHs carry a re-entrancy guard; is_external is gone. */
#undef aio_bh_new
#define aio_bh_new(ctx, cb, opaque) \
    aio_bh_new_guarded_full((ctx), (cb), (opaque), stringify(cb), NULL)
#define aio_bh_new_full(ctx, cb, opaque, name, guard) \
    aio_bh_new_guarded_full((ctx), (cb), (opaque), (name), (guard))
static inline QEMUBH *aioloop_qemu_bh_new_full(QEMUBHFunc *cb, void *opaque,
                                               const char *name,
                                               MemReentrancyGuard *guard)
{
    if (!guard) {
        return (qemu_bh_new_full)(cb, opaque, name);
    }
    return aio_bh_new_guarded_full(qemu_get_aio_context(), cb, opaque, name,
                                   guard);
}
#undef qemu_bh_new
#define qemu_bh_new(cb, opaque) \
    aioloop_qemu_bh_new_full((cb), (opaque), stringify(cb), NULL)
#define qemu_bh_new_full(cb, opaque, name, guard) \
    aioloop_qemu_bh_new_full((cb), (opaque), (name), (guard))
#define qemu_bh_new_guarded(cb, opaque, guard) \
    aioloop_qemu_bh_new_full((cb), (opaque), stringify(cb), (guard))

#define aio_set_fd_handler(ctx, fd, io_read, io_write, io_poll,         \
                           io_poll_ready, opaque)                       \
    aio_set_fd_handler_poll((ctx), (fd), false, (io_read), (io_write),  \
                            (io_poll), (io_poll_ready), (opaque))
#define aio_set_event_notifier(ctx, notifier, io_read, io_poll,         \
                               io_poll_ready)                           \
    aio_set_event_notifier_full((ctx), (notifier), false, (io_read),    \
                                (io_poll), (io_poll_ready))
#elif AIOLOOP_QEMU_API >= 700
/* QEMU 7.0: io_poll_ready joins io_poll. */
#define aio_set_fd_handler(ctx, fd, is_external, io_read, io_write,     \
                           io_poll, io_poll_ready, opaque)              \
    aio_set_fd_handler_poll((ctx), (fd), (is_external), (io_read),      \
                            (io_write), (io_poll), (io_poll_ready),     \
                            (opaque))
#define aio_set_event_notifier(ctx, notifier, is_external, io_read,     \
                               io_poll, io_poll_ready)                  \
    aio_set_event_notifier_full((ctx), (notifier), (is_external),       \
                                (io_read), (io_poll), (io_poll_ready))
#elif AIOLOOP_QEMU_API >= 209
/* QEMU 2.9: adaptive polling, io_poll after the handlers. */
#define aio_set_fd_handler(ctx, fd, is_external, io_read, io_write,     \
                           io_poll, opaque)                             \
    aio_set_fd_handler_poll((ctx), (fd), (is_external), (io_read),      \
                            (io_write), (io_poll), NULL, (opaque))
#define aio_set_event_notifier(ctx, notifier, is_external, io_read,     \
                               io_poll)                                 \
    aio_set_event_notifier_full((ctx), (notifier), (is_external),       \
                                (io_read), (io_poll), NULL)
#endif

/*
 * event_notifier_set_handler(): an event notifier on the main loop (QEMU
 * puts it on the main loop's iohandler context; here: the main context).
 * 2.5 returned int, 2.6 to 2.8 took is_external, 2.9 on returns void.
 */
static inline int aioloop_qemu_notifier_set_handler(EventNotifier *e,
                                                    bool is_external,
                                                    EventNotifierHandler *h)
{
    (aio_set_event_notifier)(qemu_get_aio_context(), e, is_external, h);
    return 0;
}
#if AIOLOOP_QEMU_API < 206
#define event_notifier_set_handler(e, handler) \
    aioloop_qemu_notifier_set_handler((e), false, (handler))
#elif AIOLOOP_QEMU_API < 209
#define event_notifier_set_handler(e, is_external, handler) \
    aioloop_qemu_notifier_set_handler((e), (is_external), (handler))
#else
#define event_notifier_set_handler(e, handler) \
    ((void)aioloop_qemu_notifier_set_handler((e), false, (handler)))
#endif

#if AIOLOOP_QEMU_API >= 601
/*
 * aio_context_set_aio_params(ctx, max_batch[, errp]) (6.1 on; errp gone
 * in 9.0): the largest Linux AIO batch of the context. aioloop batches up
 * to its queue depth or a full plug batch, whatever this says; a negative
 * value is still an error.
 */
static inline void aioloop_qemu_set_aio_params(AioContext *ctx,
                                               int64_t max_batch,
                                               Error **errp)
{
    (void)ctx;
    if (max_batch < 0) {
        error_setg(errp, "max_batch must be non-negative (%lld)",
                   (long long)max_batch);
    }
}
#if AIOLOOP_QEMU_API >= 900
#define aio_context_set_aio_params(ctx, max_batch) \
    aioloop_qemu_set_aio_params((ctx), (max_batch), NULL)
#else
#define aio_context_set_aio_params(ctx, max_batch, errp) \
    aioloop_qemu_set_aio_params((ctx), (max_batch), (errp))
#endif
#endif

/* ------------------------------------------------------------------ */
/* Waiting (block/aio-wait.h, QEMU 2.12 on)                            */

#if AIOLOOP_QEMU_API < 301
/* QEMU 2.12 and 3.0: the AioWait is explicit; the caller holds ctx. */
#undef AIO_WAIT_WHILE
#define AIO_WAIT_WHILE(wait, ctx, cond) \
    AIO_WAIT_WHILE_INTERNAL((wait), (ctx), cond, true)
#define aio_wait_kick(wait) aio_wait_kick_on(wait)
#elif AIOLOOP_QEMU_API < 900
/* QEMU 3.1 to 8.2: one global AioWait; the caller holds ctx when it is
 * not ctx's home thread, and the wait releases it. */
#undef AIO_WAIT_WHILE
#define AIO_WAIT_WHILE(ctx, cond) \
    AIO_WAIT_WHILE_INTERNAL(&global_aio_wait, (ctx), cond, true)
#endif

/* ------------------------------------------------------------------ */
/* Coroutines (qemu/coroutine.h, qemu/coroutine-core.h)                */

#if AIOLOOP_QEMU_API < 207
/* Up to QEMU 2.6 the entry argument came with the first enter (QEMU
 * commit 0b8b8753e4, in 2.7, moved it to qemu_coroutine_create()). */
static inline void aioloop_qemu_coroutine_enter_arg(Coroutine *co,
                                                    void *opaque)
{
    if (!qemu_coroutine_entered(co)) {
        qemu_coroutine_set_entry_arg(co, opaque);
    }
    (qemu_coroutine_enter)(co);
}
#define qemu_coroutine_create(entry) (qemu_coroutine_create)((entry), NULL)
#define qemu_coroutine_enter(co, opaque) \
    aioloop_qemu_coroutine_enter_arg((co), (opaque))
#endif

/* qemu_aio_coroutine_enter(ctx, co) (QEMU 2.9 on): enter co in ctx. */
#define qemu_aio_coroutine_enter(ctx, co) aio_co_enter((ctx), (co))

/* co_aio_sleep_ns(ctx, type, ns) (up to QEMU 2.11): the coroutine sleeps
 * on its own context's timers, which is ctx in QEMU's use. */
#define co_aio_sleep_ns(ctx, type, ns) \
    ((void)(ctx), qemu_co_sleep_ns((type), (ns)))

#if AIOLOOP_QEMU_API < 209
#define qemu_co_queue_wait(queue) \
    qemu_co_queue_wait_impl((queue), NULL, (CoQueueWaitFlags)0)
#elif AIOLOOP_QEMU_API >= 212
#define qemu_co_queue_wait(queue, lock) \
    qemu_co_queue_wait_impl((queue), QEMU_MAKE_LOCKABLE(lock), \
                            (CoQueueWaitFlags)0)
#define qemu_co_queue_wait_flags(queue, lock, flags) \
    qemu_co_queue_wait_impl((queue), QEMU_MAKE_LOCKABLE(lock), (flags))
#endif
#if AIOLOOP_QEMU_API < 212
#define qemu_co_enter_next(queue) qemu_co_enter_next_impl((queue), NULL)
#else
#define qemu_co_enter_next(queue, lock) \
    qemu_co_enter_next_impl((queue), QEMU_MAKE_LOCKABLE(lock))
#endif
#define qemu_co_enter_all(queue, lock) \
    qemu_co_enter_all_impl((queue), QEMU_MAKE_LOCKABLE(lock))

/* The context a sleeping coroutine's timer goes on: its own. */
static inline AioContext *aioloop_qemu_sleep_ctx(Coroutine *co)
{
    AioContext *ctx = qemu_coroutine_get_aio_context(co);

    return ctx ? ctx : qemu_get_current_aio_context();
}

#if AIOLOOP_QEMU_API >= 601
/*
 * Wakeable sleeps, QEMU 6.1 on: while the coroutine sleeps in
 * qemu_co_sleep() or qemu_co_sleep_ns_wakeable(), w->to_wake is the
 * coroutine and qemu_co_sleep_wake(w) ends the sleep early (once: it
 * takes to_wake with an atomic exchange, like the timer does).
 */
typedef struct QemuCoSleep {
    Coroutine *to_wake;
} QemuCoSleep;

static inline void qemu_co_sleep_wake(QemuCoSleep *w)
{
    Coroutine *co = qatomic_xchg(&w->to_wake, NULL);

    if (co) {
        aio_co_wake(co);
    }
}

static inline void coroutine_fn qemu_co_sleep(QemuCoSleep *w)
{
    Coroutine *co = qemu_coroutine_self();

    assert(co && !w->to_wake);
    qatomic_set(&w->to_wake, co);
    qemu_coroutine_yield();
    /* Woken by qemu_co_sleep_wake(), which cleared to_wake. */
}

static void aioloop_qemu_co_sleep_cb(void *opaque)
{
    qemu_co_sleep_wake((QemuCoSleep *)opaque);
}

static inline void coroutine_fn qemu_co_sleep_ns_wakeable(QemuCoSleep *w,
                                                          QEMUClockType type,
                                                          int64_t ns)
{
    QEMUTimer ts;

    aio_timer_init(aioloop_qemu_sleep_ctx(qemu_coroutine_self()), &ts, type,
                   SCALE_NS, aioloop_qemu_co_sleep_cb, w);
    timer_mod(&ts, qemu_clock_get_ns(type) + ns);
    qemu_co_sleep(w);
    timer_deinit(&ts);
}
#elif AIOLOOP_QEMU_API >= 402
/*
 * Wakeable sleeps, QEMU 4.2 to 6.0: *sleep_state points to the sleep
 * while the coroutine sleeps and is cleared when it ends;
 * qemu_co_sleep_wake() on a non-NULL state ends it early.
 */
typedef struct QemuCoSleepState {
    Coroutine *co;
    QEMUTimer ts;
    struct QemuCoSleepState **user_state_pointer;
} QemuCoSleepState;

static inline void qemu_co_sleep_wake(QemuCoSleepState *sleep_state)
{
    Coroutine *co = qatomic_xchg(&sleep_state->co, NULL);

    if (!co) {
        return;
    }
    if (sleep_state->user_state_pointer) {
        qatomic_set(sleep_state->user_state_pointer, NULL);
    }
    timer_del(&sleep_state->ts);
    aio_co_wake(co);
}

static void aioloop_qemu_co_sleep_state_cb(void *opaque)
{
    qemu_co_sleep_wake((QemuCoSleepState *)opaque);
}

static inline void coroutine_fn
qemu_co_sleep_ns_wakeable(QEMUClockType type, int64_t ns,
                          QemuCoSleepState **sleep_state)
{
    QemuCoSleepState state = {
        .co = qemu_coroutine_self(),
        .user_state_pointer = sleep_state,
    };

    aio_timer_init(aioloop_qemu_sleep_ctx(state.co), &state.ts, type,
                   SCALE_NS, aioloop_qemu_co_sleep_state_cb, &state);
    if (sleep_state) {
        qatomic_set(sleep_state, &state);
    }
    timer_mod(&state.ts, qemu_clock_get_ns(type) + ns);
    qemu_coroutine_yield();
    timer_deinit(&state.ts);
}
#endif

/* qemu_co_mutex_assert_locked(m) (QEMU 4.2 on): the caller holds m. */
static inline void qemu_co_mutex_assert_locked(CoMutex *mutex)
{
    assert(qatomic_read(&mutex->locked) &&
           qatomic_read(&mutex->holder) == qemu_coroutine_self());
}

/* Pool sizing (QEMU 7.0 on): aioloop's per-thread pool has a fixed
 * size, so these change nothing. */
static inline void qemu_coroutine_inc_pool_size(unsigned int n)
{
    (void)n;
}
static inline void qemu_coroutine_dec_pool_size(unsigned int n)
{
    (void)n;
}

/* ------------------------------------------------------------------ */
/* Thread pool (block/thread-pool.h)                                   */

#if AIOLOOP_QEMU_API >= 801
/* QEMU 8.1: requests go to the pool of the caller's current context. */
#define thread_pool_submit_aio(func, arg, cb, opaque)                    \
    (thread_pool_submit_aio)(aio_get_thread_pool(aioloop_qemu_current_ctx()), \
                             (func), (arg), (cb), (opaque))
#define thread_pool_submit_co(func, arg)                                 \
    (thread_pool_submit_co)(aio_get_thread_pool(aioloop_qemu_current_ctx()), \
                            (func), (arg))
#if AIOLOOP_QEMU_API < 1000
#define thread_pool_submit(func, arg)                                    \
    (thread_pool_submit)(aio_get_thread_pool(aioloop_qemu_current_ctx()), \
                         (func), (arg))
#endif
#endif

/* ------------------------------------------------------------------ */
/* Linux AIO and io_uring (block/raw-aio.h)                            */

#if AIOLOOP_QEMU_API >= 400
/* QEMU 4.0: laio_init() reports errors through errp. */
static inline LinuxAioState *aioloop_qemu_laio_init(Error **errp)
{
    LinuxAioState *s = (laio_init)();

    if (!s) {
        error_setg_errno(errp, errno, "Could not initialize Linux AIO");
    }
    return s;
}
#define laio_init(errp) aioloop_qemu_laio_init(errp)
#endif
#if AIOLOOP_QEMU_API >= 602 && AIOLOOP_QEMU_API < 801
/* QEMU 6.2 to 8.0 passed the device's largest useful batch; aioloop
 * batches up to its own queue depth and a full batch, so it is unused. */
#define laio_co_submit(bs, s, fd, offset, qiov, type, dev_max_batch)     \
    ((void)(dev_max_batch),                                             \
     (laio_co_submit)((bs), (s), (fd), (offset), (qiov), (type)))
#define laio_io_unplug(bs, s, dev_max_batch) \
    ((void)(dev_max_batch), (laio_io_unplug)((bs), (s)))
#endif

/* ------------------------------------------------------------------ */
/* Test helpers of QEMU's tests/iothread.c (see iothread.h)            */

/* iothread_new() - start an IOThread (aborts if it cannot). */
static inline IOThread *iothread_new(void)
{
    return iothread_create(NULL, &error_abort);
}

/* iothread_join(t) - run what was scheduled on t's context, stop t and
 * free it (dropping its reference to the context). */
static inline void iothread_join(IOThread *iothread)
{
    iothread_destroy(iothread);
}

#ifdef __cplusplus
}
#endif

#endif /* AIOLOOP_QEMU_H */
