/*
 * compare.h - what the sections of "aioloop-bench compare" share: the
 * options, and the block I/O section (compare-io.c) that compare.c runs.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_COMPARE_H
#define AIOB_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

#define CMP_IO_TIMEOUT_S    120
#define CMP_MAX_REPEAT      9

typedef struct CmpOptions {
    bool quick;
    bool full;
    bool io, micro;
    const char *dir;            /* scratch file directory; NULL: choose */
    const char *file;           /* an existing file to use instead */
    uint64_t size;
    unsigned runtime_s;
    unsigned repeat;
    const char *engines;        /* comma-separated */
    const char *only;           /* micro programs; NULL: all */
    bool verbose;
} CmpOptions;

/* Our engine names, in the order the I/O section runs them. */
#define AIOB_CMP_NENGINES 3
extern const char *const aiob_cmp_engines[AIOB_CMP_NENGINES];

/*
 * aiob_compare_io - the block I/O section: aioloop-bench io (@self) and
 * its peers (fio with its defaults and tuned, qemu-img bench) on one
 * file, interleaved, as tables on stdout. Returns how many of aioloop's
 * own runs failed (an engine the kernel refuses is not a failure).
 */
unsigned aiob_compare_io(const CmpOptions *o, const char *self);

#endif /* AIOB_COMPARE_H */
