/* Runs one bottom half through aio_poll() and prints "ok". */
#include <aioloop.h>
#include <stdio.h>

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
