#!/bin/sh
# aioloop-bench io --json prints one JSON object with the fields that
# "aioloop-bench io --help" documents (TAP lines).
#   test-json.sh PATH-TO-aioloop-bench PATH-TO-python3
set -u
python=$2
. "$(dirname "$0")/tap.sh"

# The checks; argv[1] is the output file, argv[2] "key=value ..." pairs
# that must also hold.
checker='
import json, sys
d = json.load(open(sys.argv[1]))
fields = {
    "tool": str, "version": str, "command": str, "engine": str,
    "engine_requested": str, "rw": str, "rwmixread": int, "bs": int,
    "iodepth": int, "direct": int, "file": str, "size": int, "batch": int,
    "coroutines": bool, "iothread": bool, "verify": bool, "poll_max_ns": int,
    "runtime_s": float, "ios": int, "reads": int, "writes": int,
    "bytes": int, "iops": float, "mib_s": float, "cpu_user_s": float,
    "cpu_sys_s": float, "cpu_ns_per_io": float, "lat_us": dict,
    "errors": int, "verify_errors": int,
}
for k, t in fields.items():
    assert k in d, "missing " + k
    ok = isinstance(d[k], t) or (t is float and type(d[k]) is int)
    assert ok and not (t is int and type(d[k]) is bool), k
assert "engine_fallback" in d
assert d["engine_fallback"] is None or isinstance(d["engine_fallback"], str)
assert d["tool"] == "aioloop-bench" and d["command"] == "io"
assert d["engine"] in ("io_uring", "linux-aio", "threads")
assert d["ios"] == 500, d["ios"]
assert d["reads"] + d["writes"] == d["ios"]
assert d["bytes"] == d["ios"] * d["bs"]
assert d["size"] == 2 << 20
assert d["errors"] == 0 and d["verify_errors"] == 0
assert d["iops"] > 0 and d["runtime_s"] > 0 and d["cpu_ns_per_io"] > 0
lat = d["lat_us"]
keys = ["min", "p50", "p90", "p99", "p99_9", "max"]
for k in keys + ["mean"]:
    assert isinstance(lat[k], (int, float)), k
vals = [lat[k] for k in keys]
assert vals == sorted(vals), vals
assert lat["min"] > 0 and lat["min"] <= lat["mean"] <= lat["max"]
for kv in sys.argv[2].split():
    k, v = kv.split("=", 1)
    assert str(d[k]).lower() == v, (k, d[k], v)
'

# check NAME "key=value ..." TOOL-ARGS...
check() {
    name=$1 expect=$2
    shift 2
    n=$((n + 1))
    if "$tool" io --json --quiet --size 2m --count 500 "$@" >out 2>err &&
       [ "$(wc -l < out)" -eq 1 ] &&
       "$python" -c "$checker" out "$expect" 2>pyerr; then
        echo "ok $n - $name"
    else
        failed=$((failed + 1))
        echo "not ok $n - $name"
        sed 's/^/# /' err pyerr out 2>/dev/null
    fi
}

check "defaults" "rw=randread bs=4096 iodepth=32 direct=1 batch=0 reads=500"
check "randrw, coroutines" "rw=randrw coroutines=true rwmixread=70" \
    --rw randrw --rwmixread 70 --coroutines --bs 8k
check "write, iothread, batch" "rw=write writes=500 iothread=true batch=4" \
    --rw write --iothread --batch=4 --iodepth 8
check "threads engine, buffered" "engine_requested=threads direct=0" \
    --engine threads --direct 0
check "verify" "verify=true verify_errors=0" --verify
check "polling" "poll_max_ns=32768 poll_max_ns=32768" --poll-max-ns 32768

tap_done
