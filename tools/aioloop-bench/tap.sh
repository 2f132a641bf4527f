# tap.sh - what the aioloop-bench test scripts share; sourced, not run.
# Sets $tool (the absolute path of the aioloop-bench given as $1), makes
# and enters a scratch directory $work (removed at exit), and provides
# TAP lines: ok NAME, not_ok NAME, skip NAME WHY, and tap_done (the plan
# line, then the exit status: 0 unless a case failed).
tool=$1
case $tool in /*) ;; *) tool=$PWD/$tool ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
tap_done() { echo "1..$n"; [ "$failed" -eq 0 ]; }
