/* The same as hello.c through the QEMU-named headers (component "qemu"):
 * what code ported from QEMU includes. */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "qapi/error.h"

static void hello(void *opaque)
{
    *(int *)opaque = 42;
}

int main(void)
{
    int ran = 0;
    AioContext *ctx = aio_context_new(&error_abort);

    aio_bh_schedule_oneshot(ctx, hello, &ran);
    while (aio_poll(ctx, false)) {
    }
    aio_context_unref(ctx);
    printf("%s\n", ran == 42 ? "ok" : "bad");
    return ran == 42 ? 0 : 1;
}
