/*
 * futex.h - the two futex operations the library's sleeping primitives
 * use (QemuEvent in qemu-thread-posix.c, QemuLockCnt in lockcnt.c), in
 * one place instead of a syscall() open-coded in each.
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
#include <unistd.h>

/* Sleeps while the word at @addr holds @expected, until a wake-up on it.
 * Returns with no result: a wake-up, a word that already differed
 * (EAGAIN), a signal (EINTR) and a spurious return all look alike, and
 * every caller re-reads the word in a loop, as the futex protocol asks. */
static inline void aioloop__futex_wait(void *addr, int expected)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL,
                  0);
}

/* Wakes every thread asleep on the word at @addr. */
static inline void aioloop__futex_wake_all(void *addr)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL,
                  0);
}

#endif /* AIOLOOP_FUTEX_H */
