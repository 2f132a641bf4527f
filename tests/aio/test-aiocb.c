/*
 * test-aiocb.c - AIOCBs with a custom AIOCBInfo: qemu_aio_get (zeroed,
 * fields set), reference counting (also from four threads at once), and
 * bdrv_aio_cancel / bdrv_aio_cancel_async through cancel_async, on the
 * request's context or the main context.
 *
 * Every job records in its own Job struct whether (and where) its function
 * ran and what its callback received, so each case checks "exactly once"
 * per job (thread-pool-test.h). Waits have no time bound: a job that is
 * never released, a worker that never starts or retires, a blocking
 * aio_poll() that never returns is a hang, which the harness's
 * no-progress watchdog fails by name.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "thread-pool-test.h"

/* ------------------------------------------------------------------ */
/* AIOCBs with a custom AIOCBInfo                                      */

typedef struct {
    BlockAIOCB common;
    AioContext *ctx;
    int payload[64];
    char tail[37];
} MyAIOCB;

static int my_cancel_calls;
static int my_cb_runs;
static int my_cb_ret;

static void my_cb(void *opaque, int ret)
{
    int *p = opaque;

    (*p)++;
    my_cb_runs++;
    my_cb_ret = ret;
}

/* The "device" completes a cancelled request from a BH of its context. */
static void my_complete_bh(void *opaque)
{
    MyAIOCB *acb = opaque;

    acb->common.cb(acb->common.opaque, -ECANCELED);
    qemu_aio_unref(acb);
}

static void my_cancel_async(BlockAIOCB *acb)
{
    MyAIOCB *m = (MyAIOCB *)acb;

    my_cancel_calls++;
    aio_bh_schedule_oneshot(m->ctx, my_complete_bh, m);
}

static AioContext *my_get_aio_context(BlockAIOCB *acb)
{
    return ((MyAIOCB *)acb)->ctx;
}

static const AIOCBInfo my_info = {
    .cancel_async = my_cancel_async,
    .get_aio_context = my_get_aio_context,
    .aiocb_size = sizeof(MyAIOCB),
};

static const AIOCBInfo my_info_nocancel = {
    .get_aio_context = my_get_aio_context,
    .aiocb_size = sizeof(MyAIOCB),
};

static const AIOCBInfo my_info_main_ctx = {
    .cancel_async = my_cancel_async,
    .aiocb_size = sizeof(MyAIOCB),
};

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (c[i]) {
            return false;
        }
    }
    return true;
}

static void test_aiocb_get_ref_unref(void)
{
    static int fake_bs;
    BlockDriverState *bs = (BlockDriverState *)&fake_bs;
    int opaque_count = 0;
    MyAIOCB *m;
    int i;

    for (i = 0; i < 20; i++) {
        m = qemu_aio_get(&my_info, bs, my_cb, &opaque_count);
        REQUIRE(m != NULL);
        CHECK(m->common.aiocb_info == &my_info);
        CHECK(m->common.bs == bs);
        CHECK(m->common.cb == my_cb);
        CHECK(m->common.opaque == &opaque_count);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
        CHECK(all_zero((char *)m + sizeof(BlockAIOCB),
                       sizeof(MyAIOCB) - sizeof(BlockAIOCB)));
        /* Dirty it, so that a recycled block shows up as non-zero. */
        memset(m->payload, 0xa5, sizeof(m->payload));
        memset(m->tail, 0x5a, sizeof(m->tail));
        m->tail[sizeof(m->tail) - 1] = 1;

        qemu_aio_ref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 2);
        qemu_aio_ref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 3);
        qemu_aio_unref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 2);
        qemu_aio_unref(m);
        CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
        qemu_aio_unref(m);      /* freed: ASan reports a leak otherwise */
    }

    /* A NULL bs is allowed; with no cancel_async, cancelling is a no-op. */
    m = qemu_aio_get(&my_info_nocancel, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    CHECK(m->common.bs == NULL);
    bdrv_aio_cancel_async(&m->common);
    CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
    CHECK_EQ(opaque_count, 0);
    qemu_aio_unref(m);
}

/* Threads hammering qemu_aio_ref/unref on one AIOCB. */
static void *ref_unref_thread(void *opaque)
{
    int i;

    for (i = 0; i < 10000; i++) {
        qemu_aio_ref(opaque);
        qemu_aio_unref(opaque);
    }
    return NULL;
}

static void test_aiocb_ref_concurrent(void)
{
    int opaque_count = 0;
    MyAIOCB *m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    QemuThread t[4];
    int i;

    REQUIRE(m != NULL);
    for (i = 0; i < 4; i++) {
        start_thread(&t[i], "aiocb-ref", ref_unref_thread, m);
    }
    for (i = 0; i < 4; i++) {
        qemu_thread_join(&t[i]);
    }
    CHECK_EQ(qatomic_read(&m->common.refcnt), 1);
    qemu_aio_unref(m);
}

/* bdrv_aio_cancel() on a custom AIOCB: calls cancel_async, polls the
 * request's context (else the main context) until the request is done. */
static void test_aiocb_cancel_custom(void)
{
    AioContext *ctx = new_ctx();
    int opaque_count = 0;
    MyAIOCB *m;

    my_cancel_calls = my_cb_runs = my_cb_ret = 0;
    m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = ctx;
    bdrv_aio_cancel(&m->common);
    CHECK_EQ(my_cancel_calls, 1);
    CHECK_EQ(my_cb_runs, 1);
    CHECK_EQ(opaque_count, 1);
    CHECK_EQ(my_cb_ret, -ECANCELED);
    /* m is freed now (ASan reports a leak otherwise). */

    /* Async: the completion comes from the context's loop. */
    m = qemu_aio_get(&my_info, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = ctx;
    bdrv_aio_cancel_async(&m->common);
    CHECK_EQ(my_cancel_calls, 2);
    CHECK_EQ(my_cb_runs, 1);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(my_cb_runs, 2);
    aio_context_unref(ctx);

    /* No get_aio_context: bdrv_aio_cancel polls the main context. */
    REQUIRE(qemu_init_main_loop(&error_abort) == 0);
    m = qemu_aio_get(&my_info_main_ctx, NULL, my_cb, &opaque_count);
    REQUIRE(m != NULL);
    m->ctx = qemu_get_aio_context();
    bdrv_aio_cancel(&m->common);
    CHECK_EQ(my_cancel_calls, 3);
    CHECK_EQ(my_cb_runs, 3);
    CHECK_EQ(opaque_count, 3);
    qemu_cleanup_main_loop();
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);

    RUN(test_aiocb_get_ref_unref);
    RUN(test_aiocb_ref_concurrent);
    RUN(test_aiocb_cancel_custom);
    return test_done();
}
