#!/bin/sh
# Smoke test of the timer-iothread example (TAP lines).
#   timer-iothread-test.sh PATH-TO-timer-iothread
#
# Runs 4 ticks of 50 ms with bottom halves, then with a coroutine, and
# checks the output: every tick sent, every result right and computed in
# the IOThread, the final line, exit status 0, and that the run lasted at
# least 4 periods (a timer never fires early).
set -u
prog=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

ticks=4
period_ms=50
for mode in "" --coroutine; do
    name="${mode:-bottom halves}"
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    timeout -s KILL 30 "$prog" $mode $ticks $period_ms > "$work/out" 2>&1
    rc=$?
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    : > "$work/want"
    k=1
    while [ $k -le $ticks ]; do
        nk=$((k * 1000000))
        echo "tick $k: job sent" >> "$work/want"
        echo "result $k: 1 + 2 + ... + $nk = $((nk * (nk + 1) / 2))" \
             "(computed in the IOThread)" >> "$work/want"
        k=$((k + 1))
    done
    echo "done after $ticks ticks" >> "$work/want"
    # Ticks and results may interleave in any order: compare sorted.
    sort "$work/want" > "$work/want.sorted"
    sort "$work/out" > "$work/out.sorted"
    if [ "$rc" -eq 0 ] && cmp -s "$work/want.sorted" "$work/out.sorted" &&
       [ "$(tail -n 1 "$work/out")" = "done after $ticks ticks" ] &&
       [ "$(grep '^tick' "$work/out" | cut -d: -f1 | tr '\n' ' ')" = \
         "tick 1 tick 2 tick 3 tick 4 " ]; then
        ok "$name: $ticks ticks, $ticks results from the IOThread"
    else
        not_ok "$name: output (status $rc)"
        diff "$work/want" "$work/out" | sed 's/^/#   /'
    fi
    if [ "$elapsed_ms" -ge $((ticks * period_ms)) ]; then
        ok "$name: ran ${elapsed_ms} ms >= $ticks x $period_ms ms"
    else
        not_ok "$name: ran only ${elapsed_ms} ms"
    fi
done

timeout -s KILL 30 "$prog" 0 > "$work/out" 2>&1
rc=$?
if [ "$rc" -eq 2 ] && grep -q '^usage:' "$work/out"; then
    ok "0 ticks: usage, status 2"
else
    not_ok "0 ticks: usage, status 2 (status $rc)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
