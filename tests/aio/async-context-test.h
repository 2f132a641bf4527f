/*
 * tests/aio/async-context-test.h - helpers shared by the AsyncContext
 * test programs (test-async-context*.c): begin()/end() set up and free
 * the main loop around a case (and rebalance the stack after a failed
 * REQUIRE), and Rec/rec_cb, a BH callback that records the level and
 * context it ran in.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_ASYNC_CONTEXT_TEST_H
#define AIOLOOP_ASYNC_CONTEXT_TEST_H

#include <aioloop.h>

#include "aio-test.h"

static inline void begin(void)
{
    qemu_init_main_loop(&error_abort);
}

/* Leaves the stack balanced even after a failed REQUIRE, then frees the
 * main loop (and with it every level's context). */
static inline void end(void)
{
    while (get_async_context_id() > 0) {
        async_context_pop();
    }
    qemu_cleanup_main_loop();
}

/* A BH callback that records the id and context it ran in. */
typedef struct Rec {
    int runs;
    int id;
    AioContext *ctx;
    int *order;         /* optional: appends tag at order[(*order_len)++] */
    int *order_len;
    int tag;
} Rec;

static inline void rec_cb(void *opaque)
{
    Rec *r = opaque;

    r->runs++;
    r->id = get_async_context_id();
    r->ctx = qemu_get_current_aio_context();
    if (r->order) {
        r->order[(*r->order_len)++] = r->tag;
    }
}


#endif /* AIOLOOP_ASYNC_CONTEXT_TEST_H */
