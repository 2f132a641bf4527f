/*
 * util/aio-posix.h - QEMU's internal header of its POSIX event loop, in
 * aioloop's QEMU-named include tree.
 *
 * QEMU code includes it to see which fd monitor a context uses:
 *
 *     if (ctx->fdmon_ops != &fdmon_poll_ops) { ... }
 *
 * (tests/unit/test-nested-aio-poll.c of QEMU 10.2 on). aioloop keeps
 * struct AioContext opaque, except for this: its first field is the fd
 * monitor in use, by a contract between the library and this header,
 * which are built and installed together. So this header completes the
 * type with that one field, and fdmon_poll_ops / fdmon_epoll_ops name
 * the monitors' identities (aioloop_fdmon_ops()). aioloop has no
 * io_uring fd monitor: &fdmon_io_uring_ops is NULL, which no context
 * uses. Read the field only; the rest of the context is private.
 * aio_context_fdmon_name() is the public way to ask the same.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_UTIL_AIO_POSIX_H
#define AIOLOOP_QEMU_UTIL_AIO_POSIX_H

#include <aioloop-qemu.h>

typedef struct FDMonOps FDMonOps;

struct AioContext {
    const FDMonOps *fdmon_ops;  /* the monitor in use; nothing else here */
};

#define fdmon_poll_ops (*aioloop_fdmon_ops("poll"))
#define fdmon_epoll_ops (*aioloop_fdmon_ops("epoll"))
#define fdmon_io_uring_ops (*aioloop_fdmon_ops("io_uring"))

#endif /* AIOLOOP_QEMU_UTIL_AIO_POSIX_H */
