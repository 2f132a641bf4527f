/*
 * async-context.c - the nested AsyncContext stack of the main loop.
 *
 * What. QEMU's 2009 AsyncContexts let code inside a main-loop
 * callback wait for its own asynchronous work without running anyone
 * else's callbacks. Here each level of the stack is a plain AioContext:
 * level k (k >= 1) is levels[k - 1]; level 0 is the main context. Nothing
 * filters callbacks: "held" simply means "on a context nobody polls right
 * now". main_loop_wait(), qemu_bh_poll() and qemu_aio_wait() poll the top
 * of the stack, so the work of the levels below waits on its own context
 * (BHs on their lists, completions behind their BHs or event notifiers,
 * fds level-triggered, timers in their heaps) and runs when its loop turns
 * again. No second event loop, no per-callback bookkeeping.
 *
 * Why contexts are kept per depth. A BH created under level k points at
 * level k's context for its whole life, and a request submitted under it
 * completes there. Freeing the context at pop would leave such pointers
 * dangling; reusing one context per depth keeps them valid, and matches
 * the seed, where the id (the depth) selected which queued completions
 * ran: leftovers of level k run the next time the stack is at depth k.
 * The stack hangs on the main context it was pushed on (an attachment,
 * attach.h): the levels' contexts are freed with the main context
 * (qemu_cleanup_main_loop()), which reports their leaked BHs like any
 * context's; a later main loop starts a stack of its own.
 *
 * Invariants.
 *  - The stack belongs to the main-loop thread (aioloop__in_main_thread()):
 *    only it pushes, pops, and reads the stack. aioloop__async_depth is the
 *    one field other threads read (relaxed atomic), and only to take the
 *    fast path "no stack, nothing to adjust"; when it is nonzero they go
 *    on to the thread check and never touch the stack.
 *  - 0 <= depth <= stack->made; stack->levels[0 .. made - 1] are live;
 *    stack is NULL until the first push after qemu_init_main_loop().
 *  - depth is 0 whenever the main loop is not initialised
 *    (qemu_cleanup_main_loop() aborts while a level is pushed).
 *  - running_level is the level whose BHs qemu_bh_poll() or a pop's flush
 *    is running on the main-loop thread (0: none); a pop of that level
 *    from inside such a BH aborts, as does a pop from inside the level's
 *    own aio_poll() (aioloop__poll_ctx()).
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <aioloop/async-context.h>
#include <aioloop/main-loop.h>
#include "main-loop-internal.h"
#include "attach.h"
#include "util/alloc.h"

int aioloop__async_depth;           /* atomic; written by the main loop */

/* The levels' contexts (level k is levels[k - 1]), attached to the main
 * context (AIO_ATTACH_ORDER_USERS: they live as long as it does). */
typedef struct AsyncStack {
    AioAttachment attachment;
    AioContext **levels;
    int made;
    int cap;
} AsyncStack;

static AsyncStack *stack;           /* main-loop thread only */
static int running_level;

AIOLOOP_PRINTF(2, 3) AIOLOOP_NORETURN
static void die(const char *func, const char *fmt, ...);

static void die(const char *func, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "aioloop: %s: ", func);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static void check_main_loop_thread(const char *func)
{
    if (!qemu_get_aio_context()) {
        die(func, "the main loop is not initialised (call "
            "qemu_init_main_loop() first)");
    }
    if (!aioloop__in_main_thread()) {
        die(func, "called from a thread other than the main-loop thread "
            "(the one that called qemu_init_main_loop()); the AsyncContext "
            "stack belongs to that thread");
    }
}

AioContext *aioloop__main_current_ctx(void)
{
    int depth = qatomic_read(&aioloop__async_depth);

    if (likely(depth == 0) || !aioloop__in_main_thread()) {
        return qemu_get_aio_context();
    }
    return stack->levels[depth - 1];
}

AioContext *aioloop__async_context_adjust_slow(AioContext *ctx)
{
    int depth = qatomic_read(&aioloop__async_depth);

    if (depth == 0 || !aioloop__in_main_thread()) {
        return ctx;
    }
    /* Inside (or outside) the loop of a level below the top: the work
     * this thread starts now belongs to the top. */
    if (!ctx || ctx == qemu_get_aio_context()) {
        return stack->levels[depth - 1];
    }
    for (int k = 1; k < depth; k++) {
        if (stack->levels[k - 1] == ctx) {
            return stack->levels[depth - 1];
        }
    }
    return ctx;     /* a context outside the stack, polled explicitly */
}

/* The main context's last unref: the levels go with it. */
static void stack_context_ends(AioAttachment *a, AioContext *main_ctx)
{
    AsyncStack *st = container_of(a, AsyncStack, attachment);

    aioloop__attachment_remove(main_ctx, a);
    for (int k = 0; k < st->made; k++) {
        aio_context_unref(st->levels[k]);
    }
    free(st->levels);
    free(st);
}

void async_context_push(void)
{
    int depth;

    check_main_loop_thread(__func__);
    if (!stack) {
        stack = aioloop__calloc(1, sizeof(*stack));
        if (!stack) {
            aioloop__oom("%s: creating the stack", __func__);
        }
        stack->attachment = (AioAttachment) {
            .context_ends = stack_context_ends,
            .order = AIO_ATTACH_ORDER_USERS,
        };
        aioloop__attachment_add(qemu_get_aio_context(), &stack->attachment);
    }
    depth = qatomic_read(&aioloop__async_depth) + 1;
    if (depth > stack->made) {
        Error *err = NULL;
        AioContext *ctx;

        if (stack->made == stack->cap) {
            int cap = stack->cap ? stack->cap * 2 : 8;
            AioContext **grown = aioloop__realloc(stack->levels,
                                                   sizeof(*grown) * cap);

            if (!grown) {
                aioloop__oom("%s: growing the stack to %d levels", __func__,
                             cap);
            }
            stack->levels = grown;
            stack->cap = cap;
        }
        ctx = aio_context_new(&err);
        if (!ctx) {
            die(__func__, "cannot create the context of level %d: %s", depth,
                error_get_pretty(err));
        }
        stack->levels[stack->made++] = ctx;
    }
    qatomic_set(&aioloop__async_depth, depth);
}

void async_context_pop(void)
{
    int depth, outer_running;
    AioContext *ctx;

    check_main_loop_thread(__func__);
    depth = qatomic_read(&aioloop__async_depth);
    if (depth == 0) {
        die(__func__, "the current AsyncContext is the root (id 0): there "
            "is nothing to pop (async_context_push/pop unbalanced)");
    }
    ctx = stack->levels[depth - 1];
    if (aioloop__poll_ctx() == ctx || running_level == depth) {
        die(__func__, "called from inside a callback of the AsyncContext "
            "being popped (id %d); pop it after its wait returns", depth);
    }

    /* Flush: run the level's BHs until none is scheduled, so that a BH
     * scheduled under this level (or by one of its BHs) is not held for
     * the next push to this depth. */
    outer_running = running_level;
    running_level = depth;
    aio_context_acquire(ctx);
    while (aioloop__bh_scheduled(ctx)) {
        bool ran_idle = false;

        aioloop__bh_poll(ctx, &ran_idle);
    }
    aio_context_release(ctx);
    running_level = outer_running;

    if (qatomic_read(&aioloop__async_depth) != depth) {
        die(__func__, "a bottom half run by the pop of AsyncContext id %d "
            "left the stack at id %d (a push without its pop)", depth,
            qatomic_read(&aioloop__async_depth));
    }
    qatomic_set(&aioloop__async_depth, depth - 1);
}

int get_async_context_id(void)
{
    return qatomic_read(&aioloop__async_depth);
}

int qemu_bh_poll(void)
{
    AioContext *ctx = aioloop__main_current_ctx();
    bool on_main = aioloop__in_main_thread();
    int outer_running = running_level;
    int ret;

    if (!ctx) {
        die(__func__, "the main loop is not initialised (call "
            "qemu_init_main_loop() first)");
    }
    if (on_main) {
        running_level = qatomic_read(&aioloop__async_depth);
    }
    aio_context_acquire(ctx);
    ret = aio_bh_poll(ctx);
    aio_context_release(ctx);
    if (on_main) {
        running_level = outer_running;
    }
    return ret;
}

void qemu_aio_wait(void)
{
    AioContext *ctx = aioloop__main_current_ctx();

    if (!ctx) {
        die(__func__, "the main loop is not initialised (call "
            "qemu_init_main_loop() first)");
    }
    while (!aio_poll(ctx, true)) {
        /* woken without progress (aio_notify): wait again */
    }
}

void aioloop__async_context_cleanup(void)
{
    int depth = qatomic_read(&aioloop__async_depth);

    if (depth != 0) {
        die("qemu_cleanup_main_loop", "AsyncContext id %d is still pushed "
            "(pop every level first)", depth);
    }
    /* The main context's attachment frees the levels when it goes (at
     * once, unless someone still holds a reference to it); the next main
     * loop starts a stack of its own. */
    stack = NULL;
}
