/*
 * qemu/coroutine_int.h - QEMU's internal coroutine header, in aioloop's
 * QEMU-named include tree.
 *
 * QEMU's version describes its struct Coroutine and the switch backends.
 * aioloop's coroutines are its own; what QEMU code (test-coroutine's
 * /basic/no-dangling-access) needs from this header is a complete
 * Coroutine type: it copies a terminated coroutine aside, fills it with
 * 0xff to prove nothing touches it, and copies it back. So this header
 * gives Coroutine its size (AIOLOOP_QEMU_COROUTINE_SIZE, measured when
 * the library was built) as an array of bytes; the fields stay private
 * and the library reads them with its own definition. Copy a Coroutine
 * only as that test does: as bytes, back to where it came from.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QEMU_QEMU_COROUTINE_INT_H
#define AIOLOOP_QEMU_QEMU_COROUTINE_INT_H

#include <aioloop-qemu.h>

struct Coroutine {
    union {
        unsigned char bytes[AIOLOOP_QEMU_COROUTINE_SIZE];
        void *align_ptr;
        int64_t align_i64;
    } aioloop_private;
};

#endif /* AIOLOOP_QEMU_QEMU_COROUTINE_INT_H */
