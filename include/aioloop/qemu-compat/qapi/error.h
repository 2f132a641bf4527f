/*
 * qapi/error.h - QEMU's include name, in aioloop's QEMU-named include tree:
 * Error **errp, error_setg, error_abort, error_fatal.
 *
 * Every header of this tree includes aioloop-qemu.h, which brings in
 * the whole library and maps QEMU's spellings of the API level
 * AIOLOOP_QEMU_API onto it (see there and docs/porting.md).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_QAPI_ERROR_H
#define AIOLOOP_QEMU_QAPI_ERROR_H

#include <aioloop-qemu.h>

#endif /* AIOLOOP_QEMU_QAPI_ERROR_H */
