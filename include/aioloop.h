/*
 * aioloop.h - the umbrella header: everything aioloop offers.
 *
 * AIOLOOP_HAVE_GLIB, AIOLOOP_HAVE_LINUX_AIO and AIOLOOP_HAVE_IO_URING
 * (from <aioloop/config.h>) are 1 for the optional parts that were built.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_H
#define AIOLOOP_H

#include <aioloop/config.h>
#include <aioloop/compiler.h>
#include <aioloop/atomic.h>
#include <aioloop/queue.h>
#include <aioloop/thread.h>
#include <aioloop/lockcnt.h>
#include <aioloop/rfifolock.h>
#include <aioloop/error.h>
#include <aioloop/event-notifier.h>
#include <aioloop/iov.h>
#include <aioloop/timer.h>
#include <aioloop/aio.h>
#include <aioloop/block-aio.h>
#include <aioloop/thread-pool.h>
#include <aioloop/coroutine.h>
#include <aioloop/lockable.h>
#include <aioloop/main-loop.h>
#include <aioloop/aio-wait.h>
#include <aioloop/async-context.h>
#include <aioloop/iothread.h>
#include <aioloop/raw-aio.h>
#include <aioloop/block-backend.h>

#endif /* AIOLOOP_H */
