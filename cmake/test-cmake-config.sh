#!/bin/sh
# Installs the build into a scratch directory, then builds cmake/example
# with CMake's find_package(aioloop) against it (shared and static
# targets; with the QEMU-named tree installed, the qemu component too) and
# runs the programs (TAP, plan at the end). Also checks that the version file
# turns down a version the installation cannot satisfy.
#   test-cmake-config.sh BUILD_DIR EXAMPLE_DIR
# Skips without cmake, unless we are root (scripts/install-deps installs
# it: its absence is then a failure).
set -u
build=$1
example=$2
if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "1..1"
    echo "not ok 1 - cmake is not installed (run scripts/install-deps)"
    exit 1
  fi
  echo "1..0 # SKIP cmake is not installed"
  exit 0
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; fail=1; }

meson install -C "$build" --destdir "$stage/root" --no-rebuild >/dev/null
# The QEMU-named tree (component "qemu"), when the build installed it.
qemu=OFF
if [ -n "$(find "$stage/root" -path '*/aioloop/qemu-compat/qemu/osdep.h' | head -n 1)" ]; then
  qemu=ON
fi
config=$(find "$stage/root" -name aioloopConfig.cmake | head -n 1)
if [ -n "$config" ]; then
  ok "aioloopConfig.cmake installed (${config#"$stage/root"})"
else
  notok "aioloopConfig.cmake installed"; echo "1..$n"; exit 1
fi
# <prefix>/<libdir>/cmake/aioloop/aioloopConfig.cmake -> the prefix, from
# the library next to it.
prefix=$(dirname "$(find "$stage/root" -name 'libaioloop.so' | head -n 1)")
while [ ! -f "$prefix/include/aioloop.h" ] && [ "$prefix" != "$stage/root" ]; do
  prefix=$(dirname "$prefix")
done

if cmake -S "$example" -B "$stage/b" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_BUILD_TYPE=Release -DAIOLOOP_EXAMPLE_QEMU=$qemu \
     >"$stage/configure.log" 2>&1 &&
   cmake --build "$stage/b" >"$stage/build.log" 2>&1; then
  ok "cmake configures and builds the example with find_package(aioloop 0.1)"
else
  notok "cmake configures and builds the example"
  sed 's/^/# /' "$stage/configure.log" "$stage/build.log" 2>/dev/null | tail -40
  echo "1..$n"
  exit 1
fi

libdir=$(dirname "$(find "$stage/root" -name 'libaioloop.so.*' | head -n 1)")
out=$(LD_LIBRARY_PATH=$libdir "$stage/b/hello-shared" 2>&1)
if [ "$out" = ok ]; then
  ok "hello-shared (aioloop::aioloop) runs"
else
  notok "hello-shared (aioloop::aioloop) runs: $out"
fi
out=$("$stage/b/hello-static" 2>&1)
if [ "$out" = ok ]; then
  ok "hello-static (aioloop::aioloop-static) runs"
else
  notok "hello-static (aioloop::aioloop-static) runs: $out"
fi
if [ "$qemu" = ON ]; then
  out=$(LD_LIBRARY_PATH=$libdir "$stage/b/hello-qemu" 2>&1)
  if [ "$out" = ok ]; then
    ok "hello-qemu (aioloop::aioloop-qemu, QEMU-named headers) runs"
  else
    notok "hello-qemu (aioloop::aioloop-qemu) runs: $out"
  fi
fi
# The shared program needs the soname, the static one does not.
if readelf -d "$stage/b/hello-shared" | grep -q 'NEEDED.*libaioloop\.so\.' &&
   ! readelf -d "$stage/b/hello-static" | grep -q 'NEEDED.*libaioloop'; then
  ok "hello-shared needs libaioloop.so.N, hello-static does not"
else
  notok "hello-shared needs libaioloop.so.N, hello-static does not"
fi
# A version from another major (another soname) is refused.
mkdir -p "$stage/v"
cat >"$stage/v/CMakeLists.txt" <<'CEOF'
cmake_minimum_required(VERSION 3.13)
project(v C)
find_package(aioloop 99 QUIET)
if(aioloop_FOUND)
  message(FATAL_ERROR "version 99 accepted")
endif()
find_package(aioloop 0 REQUIRED)
CEOF
if cmake -S "$stage/v" -B "$stage/vb" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$stage/v.log" 2>&1; then
  ok "find_package(aioloop 99) is refused, find_package(aioloop 0) accepted"
else
  notok "version checks"; sed 's/^/# /' "$stage/v.log" | tail -20
fi
echo "1..$n"
exit $fail
