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
