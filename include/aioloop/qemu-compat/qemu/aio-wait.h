/*
 * qemu/aio-wait.h - QEMU's include name, in aioloop's QEMU-named include tree:
 * AIO_WAIT_WHILE, aio_wait_kick (QEMU master's name).
 *
 * Every header of this tree includes aioloop-qemu.h, which brings in
 * the whole library and maps QEMU's spellings of the API level
 * AIOLOOP_QEMU_API onto it (see there and docs/porting.md).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_QEMU_AIO_WAIT_H
#define AIOLOOP_QEMU_QEMU_AIO_WAIT_H

#include <aioloop-qemu.h>

#endif /* AIOLOOP_QEMU_QEMU_AIO_WAIT_H */
