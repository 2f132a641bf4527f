#!/bin/sh
# Installs the build into a staging directory and builds a small program
# against the installed headers and aioloop.pc, then runs it.
#   install-smoke.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --no-rebuild >/dev/null
pc=$(find "$stage" -name aioloop.pc | head -n 1)
[ -n "$pc" ] || { echo "not ok 1 - aioloop.pc was not installed"; exit 1; }
pcdir=$(dirname "$pc")
prefix=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=prefix aioloop)
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$stage$prefix" \
        --cflags --libs aioloop)
cat > "$stage/smoke.c" <<'CEOF'
#include <aioloop.h>
#include <stdio.h>
static int ran;
static void cb(void *opaque) { ran = *(int *)opaque; }
int main(void)
{
    int v = 42;
    AioContext *ctx = aio_context_new(&error_abort);
    QEMUBH *bh = aio_bh_new(ctx, cb, &v);
    qemu_bh_schedule(bh);
    while (aio_poll(ctx, false)) {
    }
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
    printf("%s\n", ran == 42 ? "ok" : "bad");
    return ran == 42 ? 0 : 1;
}
CEOF
# shellcheck disable=SC2086
cc -Wall -Werror -o "$stage/smoke" "$stage/smoke.c" $flags
libdir=$(dirname "$(find "$stage" -name 'libaioloop.so*' | head -n 1)")
if LD_LIBRARY_PATH=$libdir "$stage/smoke" >/dev/null; then
  echo "ok 1 - installed headers, aioloop.pc and libaioloop link and run"
else
  echo "not ok 1 - installed smoke program failed"; exit 1
fi

# The QEMU-named include tree and aioloop-qemu.pc (built with GLib only).
qpc=$(find "$stage" -name aioloop-qemu.pc | head -n 1)
if [ -z "$qpc" ]; then
  echo "ok 2 - aioloop-qemu.pc # SKIP built without GLib"
  exit 0
fi
# --define-variable would also move GLib's prefix (aioloop-qemu requires
# glib-2.0): point the staged .pc files at the stage instead.
sed -i "s|^prefix=.*|prefix=$stage$prefix|" "$pcdir/aioloop.pc" "$qpc"
qflags=$(PKG_CONFIG_PATH=$(dirname "$qpc"):$pcdir pkg-config --cflags --libs aioloop-qemu)
cat > "$stage/smoke-qemu.c" <<'CEOF'
#include "qemu/osdep.h"
#include "block/aio.h"
#include "qapi/error.h"
#include "qemu/coroutine_int.h"
static int ran;
static void cb(void *opaque) { ran = *(int *)opaque; }
int main(void)
{
    int v = 42;
    AioContext *ctx = aio_context_new(&error_abort);
    QEMUBH *bh = aio_bh_new(ctx, cb, &v);
    EventNotifier e;
    event_notifier_init(&e, 0);
#if AIOLOOP_QEMU_API >= 801
    aio_set_event_notifier(ctx, &e, NULL, NULL, NULL);
#else
    aio_set_event_notifier(ctx, &e, false, NULL);
#endif
    event_notifier_cleanup(&e);
    qemu_bh_schedule(bh);
    while (aio_poll(ctx, false)) {
    }
    qemu_bh_delete(bh);
    aio_context_unref(ctx);
    g_assert(sizeof(Coroutine) > 0);
    return ran == 42 ? 0 : 1;
}
CEOF
for level in 205 1100; do
  # shellcheck disable=SC2086
  cc -Wall -Werror -DAIOLOOP_QEMU_API=$level -o "$stage/smoke-qemu" \
     "$stage/smoke-qemu.c" $qflags
  if ! LD_LIBRARY_PATH=$libdir "$stage/smoke-qemu"; then
    echo "not ok 2 - QEMU-named program at API level $level failed"; exit 1
  fi
done
echo "ok 2 - installed QEMU-named headers and aioloop-qemu.pc build QEMU-style code (API 205 and 1100)"
