/*
 * qemu/futex.h - QEMU's include name, in aioloop's QEMU-named include tree:
 * qemu_futex_wait / qemu_futex_wake.
 *
 * Every header of this tree includes aioloop-qemu.h, which brings in
 * the whole library and maps QEMU's spellings of the API level
 * AIOLOOP_QEMU_API onto it (see there and docs/porting.md).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_QEMU_FUTEX_H
#define AIOLOOP_QEMU_QEMU_FUTEX_H

#include <aioloop-qemu.h>

#endif /* AIOLOOP_QEMU_QEMU_FUTEX_H */
