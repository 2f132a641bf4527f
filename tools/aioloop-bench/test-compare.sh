#!/bin/sh
# End-to-end checks of "aioloop-bench micro" and "aioloop-bench compare"
# (TAP lines). Short runs: they check the plumbing (children started and
# measured, figures parsed, tables and conclusions printed, scratch file
# removed), not speed.
#   test-compare.sh PATH-TO-aioloop-bench
set -u
. "$(dirname "$0")/tap.sh"

# micro: one program's figures, "name: value unit" lines only.
"$tool" micro --quick --only bh >out 2>err
rc=$?
if [ "$rc" -ne 0 ] && grep -q "benchmark programs are not in" err; then
    skip "micro --only bh" "benchmark programs not built (-Dbench=false)"
    have_bench=0
elif [ "$rc" -eq 0 ] && grep -Eq '^bh\.aioloop: [0-9.]+ ns/op$' out &&
     ! grep -qv '^[a-z0-9./-]*: ' out; then
    ok "micro --only bh"
    have_bench=1
else
    not_ok "micro --only bh (status $rc: $(cat err))"
    have_bench=0
fi

# compare, I/O section only, on the two engines that work everywhere
# (linux-aio falls back to threads where the kernel refuses it, and the
# table then says so).
"$tool" compare --io-only --engines linux-aio,threads --runtime 1 --repeat 2 \
    --size 8m --dir "$work" >out 2>err
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^== block I/O: 4 KiB' out &&
   grep -q '^figure  *aioloop  *peer' out &&
   grep -Eq '^read QD32 threads: IOPS +[0-9.]+k? IOPS' out &&
   grep -q '^=> ' out; then
    ok "compare --io-only prints a table and a conclusion"
else
    not_ok "compare --io-only (status $rc: $(cat err); $(cat out))"
fi
if ls "$work"/aioloop-bench-compare.* >/dev/null 2>&1; then
    not_ok "compare removes its scratch file"
else
    ok "compare removes its scratch file"
fi
# Peers that are missing are named with their package.
if command -v fio >/dev/null; then
    if grep -Eq '^randread QD32 linux-aio: IOPS .* fio libaio [a-z]+ +[0-9.]+k? IOPS' out ||
       grep -q 'linux-aio unavailable' out; then
        ok "fio measured beside aioloop"
    else
        not_ok "fio measured beside aioloop"
    fi
    # The row names fio's tuning, the footnotes give its options, and the
    # defaults row (--full only) is absent.
    if grep -Eq '^   fio libaio [a-z]+: --iodepth_batch_submit=QD' out &&
       ! grep -q 'fio libaio defaults' out; then
        ok "fio's tuned options are printed"
    else
        not_ok "fio's tuned options are printed"
    fi
else
    if grep -q 'fio libaio  *skipped (install fio)' out; then
        ok "missing fio reported with its package"
    else
        not_ok "missing fio reported with its package"
    fi
fi

# compare, micro section only, two programs: their tables, with ratios
# where a peer was built in, and nothing of the programs not run.
if [ "$have_bench" = 1 ]; then
    "$tool" compare --micro-only --quick --only bh,coroutine >out 2>err
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^== event loop primitives' out &&
       grep -q '^== thread pool and coroutines' out &&
       ! grep -q '^== timers' out && ! grep -q '^cross-thread wake' out &&
       grep -Eq '^coroutine switch .* swapcontext .*[0-9.]+x$' out &&
       [ "$(grep -c '^=> ' out)" -eq 2 ]; then
        ok "compare --micro-only --only bh,coroutine prints two tables"
    else
        not_ok "compare --micro-only --only (status $rc: $(cat err); $(cat out))"
    fi
else
    skip "compare --micro-only" "benchmark programs not built"
fi

tap_done
