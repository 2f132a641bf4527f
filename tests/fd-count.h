/*
 * tests/fd-count.h - how many file descriptors this process has open, for
 * the tests and the soak program that check that nothing leaks fds.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TEST_FD_COUNT_H
#define AIOLOOP_TEST_FD_COUNT_H

#include <dirent.h>

/* The number of open fds (entries of /proc/self/fd), or -1. */
static inline int test_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d) {
        return -1;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1;               /* opendir's own descriptor */
}

#endif /* AIOLOOP_TEST_FD_COUNT_H */
