#!/bin/sh
# Smoke test of the file-copy example (TAP lines).
#   file-copy-test.sh PATH-TO-file-copy
#
# Copies a file of an odd size (3 MiB + 1234 bytes: not a multiple of
# 4096 or of the 64 KiB chunk) with the automatic engine choice and with
# each engine by name, and compares with cmp; an engine the kernel refuses
# is skipped. Then tiny files, and errors (missing source, a full disk).
set -u
prog=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
show() { sed 's/^/#   /' "$work/out" "$work/err"; }

# copy NAME SRC [ENGINE]: copy SRC, expect success and an identical copy.
copy() {
    name=$1 src=$2 dst=$work/copy
    rm -f "$dst"
    timeout -s KILL 60 "$prog" ${3:+-e "$3"} "$src" "$dst" \
        > "$work/out" 2> "$work/err"
    rc=$?
    if [ "$rc" -ne 0 ] && grep -q '^file-copy: cannot use engine' "$work/err"
    then
        n=$((n + 1))
        echo "ok $n - $name # SKIP $(cat "$work/err")"
    elif [ "$rc" -eq 0 ] && cmp -s "$src" "$dst" &&
         grep -q "^engine: ${3:-}" "$work/out" &&
         grep -q '^verified: the copy matches$' "$work/out"; then
        ok "$name ($(sed -n 's/^engine: //p' "$work/out"))"
    else
        not_ok "$name (status $rc)"
        show
    fi
}

head -c $((3 * 1024 * 1024 + 1234)) /dev/urandom > "$work/src"
copy "3 MiB + 1234 bytes, automatic engine" "$work/src"
for engine in io_uring linux-aio threads; do
    copy "3 MiB + 1234 bytes on $engine" "$work/src" "$engine"
done
: > "$work/empty"
copy "empty file" "$work/empty"
printf x > "$work/one"
copy "one byte" "$work/one"

# expect_failure NAME PATTERN ARGS...: status 1 and PATTERN on stderr.
expect_failure() {
    name=$1 pattern=$2
    shift 2
    timeout -s KILL 60 "$prog" "$@" > "$work/out" 2> "$work/err"
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "$pattern" "$work/err"; then
        ok "$name"
    else
        not_ok "$name (status $rc)"
        show
    fi
}
expect_failure "missing source" "No such file" "$work/nope" "$work/copy"
if [ -w /dev/full ]; then
    expect_failure "full disk (/dev/full)" "writing the copy.*No space" \
        "$work/src" /dev/full
fi
timeout -s KILL 60 "$prog" -e bogus a b > "$work/out" 2> "$work/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q '^usage:' "$work/err"; then
    ok "unknown engine: usage, status 2"
else
    not_ok "unknown engine: usage, status 2 (status $rc)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
