/*
 * futex.h - the two futex operations the library's sleeping primitives
 * use (QemuEvent in qemu-thread-posix.c, QemuLockCnt in lockcnt.c, the
 * thread pool's parked workers), in one place instead of a syscall()
 * open-coded in each.
 *
 * Both are process-private (FUTEX_*_PRIVATE): the words live in this
 * process's memory and are never shared with another.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_FUTEX_H
#define AIOLOOP_FUTEX_H

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while the word at @addr holds @expected, until a wake-up on it
 * or, if @timeout is not NULL, until that much time passed (relative,
 * CLOCK_MONOTONIC). Returns with no result: a wake-up, a word that
 * already differed (EAGAIN), a signal (EINTR), a timeout and a spurious
 * return all look alike, and every caller re-reads the word (and its
 * clock) in a loop, as the futex protocol asks. */
static inline void aioloop__futex_wait_timeout(void *addr, int expected,
                                               const struct timespec *timeout)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, timeout,
                  NULL, 0);
}

/* aioloop__futex_wait_timeout() without a time limit. */
static inline void aioloop__futex_wait(void *addr, int expected)
{
    aioloop__futex_wait_timeout(addr, expected, NULL);
}

/* Wakes up to @n threads asleep on the word at @addr. */
static inline void aioloop__futex_wake(void *addr, int n)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Wakes every thread asleep on the word at @addr. */
static inline void aioloop__futex_wake_all(void *addr)
{
    aioloop__futex_wake(addr, INT_MAX);
}

#endif /* AIOLOOP_FUTEX_H */
