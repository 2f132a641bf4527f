#!/bin/sh
# Command-line checks of aioloop-bench (TAP lines):
#   bad input exits with status 2 and one line "aioloop-bench: ..." on
#   stderr; a block corrupted on purpose makes --verify exit with 1.
#   test-cli.sh PATH-TO-aioloop-bench
set -u
. "$(dirname "$0")/tap.sh"

# expect_usage NAME PATTERN ARGS...: status 2, exactly one stderr line,
# starting "aioloop-bench: " and containing PATTERN; nothing on stdout.
expect_usage() {
    name=$1 pattern=$2
    shift 2
    "$tool" "$@" >out 2>err
    rc=$?
    lines=$(wc -l < err)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && [ ! -s out ] &&
       grep -q "^aioloop-bench: .*$pattern" err; then
        ok "$name"
    else
        not_ok "$name (status $rc, stderr: $(cat err))"
    fi
}

expect_usage "unknown command" "unknown command 'nope'" nope
expect_usage "unknown option" "unknown option '--bogus'" io --bogus
expect_usage "option without a value" "needs a value" io --bs
expect_usage "stray argument" "unexpected argument 'extra'" io extra
expect_usage "--bs 0" "greater than 0" io --bs 0
expect_usage "--bs not a size" "not a size" io --bs 4x
expect_usage "--bs not a multiple of 512 with --direct" "multiple of 512" \
    io --bs 1000
expect_usage "--bs 1000 --direct 1 explicit" "multiple of 512" \
    io --bs 1000 --direct 1
expect_usage "--size < --bs" "smaller than --bs" io --size 2k --bs 4k
expect_usage "--iodepth 0" "--iodepth" io --iodepth 0
expect_usage "--direct 2" "--direct takes 0 or 1" io --direct 2
expect_usage "unknown engine" "unknown engine 'spdk'" io --engine spdk
expect_usage "unknown --rw" "unknown --rw 'trim'" io --rw trim
expect_usage "--runtime 0" "--runtime" io --runtime 0
expect_usage "--poll-max-ns x" "--poll-max-ns" io --poll-max-ns x
expect_usage "--batch > --iodepth" "larger than --iodepth" \
    io --iodepth 4 --batch=8
expect_usage "--batch with --coroutines" "cannot be combined" \
    io --batch --coroutines
expect_usage "unwritable file (missing directory)" "cannot write" \
    io --file "$work/no/such/dir/file" --size 1m
expect_usage "file is a directory" "is a directory" io --file "$work"
expect_usage "not a regular file" "not a regular file" io --file /dev/null
# A file too short for the run that cannot be extended.
expect_usage "unwritable file (/proc)" "cannot" \
    io --file /proc/version --size 1m --direct 0

expect_usage "micro: unknown option" "unknown option '--bogus'" micro --bogus
expect_usage "micro: unknown benchmark" "unknown benchmark 'nope'" \
    micro --only bh,nope
expect_usage "micro: stray argument" "unexpected argument 'x'" micro x
expect_usage "compare: unknown engine" "unknown engine 'spdk'" \
    compare --engines io_uring,spdk
expect_usage "compare: fractional --runtime" "whole number of seconds" \
    compare --runtime 0.5
expect_usage "compare: --repeat 0" "--repeat" compare --repeat 0
expect_usage "compare: --quick --full" "exclude each other" \
    compare --quick --full
expect_usage "compare: both sections off" "exclude each other" \
    compare --io-only --micro-only
expect_usage "compare: --dir missing" "not a directory" \
    compare --dir "$work/no/such/dir"
expect_usage "compare: --size too small" "at least 1m" compare --size 4k

# No scratch file may be left behind by the failures above.
if ls "$work"/aioloop-bench.*.tmp >/dev/null 2>&1; then
    not_ok "scratch files removed"
else
    ok "scratch files removed"
fi

# --help goes to stdout with status 0.
if "$tool" io --help >out 2>err && grep -q "cpu_ns_per_io" out &&
   [ ! -s err ]; then
    ok "io --help"
else
    not_ok "io --help"
fi

# A corrupted read is caught: status 1 and a verify message.
AIOLOOP_BENCH_CORRUPT_READ=10 "$tool" io --verify --size 1m --count 200 \
    --quiet >out 2>err
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^aioloop-bench: verify: block at offset" err
then
    ok "verify detects a mismatch"
else
    not_ok "verify detects a mismatch (status $rc, stderr: $(cat err))"
fi

# A short plain run in a given file works and leaves the file in place.
if "$tool" io --file "$work/data" --size 1m --count 100 --quiet &&
   [ -f "$work/data" ] && [ "$(wc -c < "$work/data")" -eq 1048576 ]; then
    ok "--file is created, filled and kept"
else
    not_ok "--file is created, filled and kept"
fi

for cmd in micro compare; do
    if "$tool" $cmd --help >out 2>err && grep -q "^usage: aioloop-bench" out &&
       [ ! -s err ]; then
        ok "$cmd --help"
    else
        not_ok "$cmd --help"
    fi
done

tap_done
