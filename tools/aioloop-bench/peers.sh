#!/bin/bash
# peers.sh - the same block I/O load on aioloop-bench, fio and
# qemu-img bench, side by side.
#
#   peers.sh [options]
#     --file PATH        the file (default /var/tmp/aioloop-peers.img; made
#                        and filled by aioloop-bench if missing or short)
#     --size SIZE        bytes of it used (default 256m)
#     --bs SIZE          default 4k
#     --iodepth N        default 32
#     --rw MODE          randread (default), read, randwrite, write
#     --runtime S        seconds per run (default 5)
#     --engine E         io_uring, linux-aio, threads or all (default all)
#     --repeat N         runs per figure; the median is reported (default 3)
#     --direct 0|1       default 1
#     --tool PATH        aioloop-bench (default: next to this script, then
#                        $PATH)
#     --only LIST        comma-separated subset of aioloop,fio,qemu-img
#     --aioloop-opts S   more options for aioloop-bench io (word-split),
#                        e.g. "--poll-max-ns 32768" or "--coroutines"
#
# Engines map to:      io_uring    linux-aio    threads
#   aioloop-bench      io_uring    linux-aio    threads (thread pool)
#   fio --ioengine=    io_uring    libaio       psync, --thread, one job
#                                               per in-flight I/O (at
#                                               most 64, the pool's size)
#   qemu-img bench -i  io_uring    native       threads
# fio runs with --norandommap (uniform random offsets with repeats, like
# aioloop-bench) and otherwise its defaults. qemu-img bench only does
# sequential I/O: it runs for --rw read and write only, with a count
# calibrated to last about --runtime seconds.
#
# Output: "name: value unit" lines, as the other aioloop benchmarks, e.g.
#   io.randread.qd32.io_uring.aioloop.iops: 123456 IOPS
#   io.randread.qd32.io_uring.aioloop.cpu: 2345 ns/io
#   io.randread.qd32.io_uring.fio.cpu-self: 2100 ns/io
#   io.randread.qd32.io_uring.ratio.aioloop/fio.iops: 1.02 x
# cpu is the whole process's user+system time (bash's time, from wait4)
# over the I/Os it did, the same measure for every program (for
# qemu-img, minus the CPU time of a one-request run, i.e. start-up).
# cpu-self is what the program reports itself: aioloop-bench its run
# window (RUSAGE_SELF), fio usr_cpu+sys_cpu of the job over its runtime.
# Lines starting with '#' are notes; every run's raw figures are printed
# as notes too.
#
# SPDX-License-Identifier: MIT
set -u

file=/var/tmp/aioloop-peers.img
size=256m
bs=4k
iodepth=32
rw=randread
runtime=5
engines=all
repeat=3
direct=1
tool=
only=aioloop,fio,qemu-img
aioloop_opts=

die() { echo "peers.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
    --help|-h) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) [ $# -ge 2 ] || die "option '$opt' needs a value"
         val=$2; shift 2 ;;
    *) die "unexpected argument '$opt'" ;;
    esac
    case $opt in
    --file) file=$val ;;
    --size) size=$val ;;
    --bs) bs=$val ;;
    --iodepth) iodepth=$val ;;
    --rw) rw=$val ;;
    --runtime) runtime=$val ;;
    --engine) engines=$val ;;
    --repeat) repeat=$val ;;
    --direct) direct=$val ;;
    --tool) tool=$val ;;
    --only) only=$val ;;
    --aioloop-opts) aioloop_opts=$val ;;
    *) die "unknown option '$opt'" ;;
    esac
done
[ "$engines" = all ] && engines="io_uring linux-aio threads"
engines=${engines//,/ }
case $rw in randread|read|randwrite|write) ;; *) die "--rw $rw: not supported here" ;; esac
case $direct in 0|1) ;; *) die "--direct takes 0 or 1" ;; esac
case $runtime in *[!0-9]*|''|0) die "--runtime takes whole seconds (fio's unit)" ;; esac

if [ -z "$tool" ]; then
    here=$(dirname "$0")
    for t in "$here/aioloop-bench" "$here/../../build/tools/aioloop-bench/aioloop-bench"; do
        [ -x "$t" ] && { tool=$t; break; }
    done
    [ -n "$tool" ] || tool=$(command -v aioloop-bench) || die "aioloop-bench not found (use --tool)"
fi
command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"

want() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }
if want fio && ! command -v fio >/dev/null; then
    echo "# fio not found: skipped (apt-get install fio)"
    only=${only//fio/}
fi
if want qemu-img && ! command -v qemu-img >/dev/null; then
    echo "# qemu-img not found: skipped (apt-get install qemu-utils)"
    only=${only//qemu-img/}
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sizes in bytes, for fio and qemu-img (k/m/g suffixes, binary).
bytes() {
    python3 -c '
import sys, re
m = re.fullmatch(r"(\d+)([kmgt]?)(i?b)?", sys.argv[1].lower())
if not m: sys.exit(1)
print(int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2)])
' "$1" || die "'$1' is not a size"
}
bs_bytes=$(bytes "$bs")
size_bytes=$(bytes "$size")

# The file, made by aioloop-bench (filled with data, not sparse).
have=$(stat -c %s "$file" 2>/dev/null || echo 0)
if [ "$have" -lt "$size_bytes" ]; then
    "$tool" io --file "$file" --size "$size" --bs "$bs" --direct "$direct" \
        --count 1 --quiet || die "cannot prepare $file"
fi

# timed OUT ERR CMD... : run CMD; "user sys" seconds (whole process tree,
# from wait4) go to $tmp/time. Returns CMD's status.
timed() {
    local out=$1 err=$2 rc
    shift 2
    local TIMEFORMAT='%3U %3S'
    { time "$@" >"$out" 2>"$err"; } 2>"$tmp/time"
    rc=$?
    return $rc
}

cpu_ns_per_io() {   # USER SYS IOS [MINUS_SECONDS]
    python3 -c 'import sys; u,s,n=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); m=float(sys.argv[4]) if len(sys.argv)>4 else 0.0; print("%.0f" % (max(u+s-m,0)*1e9/n if n else 0))' "$@"
}

# Each run_* prints "IOPS CPU_NS_PER_IO CPU_SELF_NS_PER_IO" ("-" when
# the figure does not exist) or fails.

run_aioloop() {   # ENGINE
    timed "$tmp/a.json" "$tmp/a.err" "$tool" io --engine "$1" --rw "$rw" \
        --bs "$bs" --iodepth "$iodepth" --runtime "$runtime" --size "$size" \
        --direct "$direct" --file "$file" --json --quiet $aioloop_opts || {
        sed 's/^/# aioloop-bench: /' "$tmp/a.err"; return 1; }
    read -r u s < "$tmp/time"
    python3 - "$tmp/a.json" "$u" "$s" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
u, s = float(sys.argv[2]), float(sys.argv[3])
if d["engine"] != d["engine_requested"]:
    sys.stderr.write("# aioloop-bench fell back to %s: %s\n"
                     % (d["engine"], d["engine_fallback"]))
    sys.exit(1)
print("%.0f %.0f %.0f" % (d["iops"], (u + s) * 1e9 / d["ios"],
                          d["cpu_ns_per_io"]))
EOF
}

run_fio() {   # ENGINE
    local eng jobs=1 depth=$iodepth extra=()
    case $1 in
    io_uring) eng=io_uring ;;
    linux-aio) eng=libaio ;;
    threads) eng=psync; depth=1; jobs=$((iodepth < 64 ? iodepth : 64))
             extra=(--thread --numjobs="$jobs") ;;
    esac
    timed "$tmp/f.json" "$tmp/f.err" fio --name=peers --filename="$file" \
        --size="$size_bytes" --direct="$direct" --rw="$rw" --bs="$bs_bytes" \
        --iodepth="$depth" --ioengine="$eng" --runtime="$runtime" \
        --time_based --norandommap --group_reporting --output-format=json \
        "${extra[@]}" || { sed 's/^/# fio: /' "$tmp/f.err"; return 1; }
    read -r u s < "$tmp/time"
    python3 - "$tmp/f.json" "$u" "$s" "$jobs" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
j = d["jobs"][0]
u, s, jobs = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
# usr_cpu/sys_cpu: percent of one CPU over the job's runtime (ms); with
# group_reporting, the average of the jobs (each measuring its own thread)
rt = max(j["read"]["runtime"], j["write"]["runtime"]) / 1000.0
self_ns = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * rt * jobs * 1e9 / ios
print("%.0f %.0f %.0f" % (iops, (u + s) * 1e9 / ios, self_ns))
EOF
}

run_qemu() {   # ENGINE
    local aio wflag=() count secs
    case $1 in
    io_uring) aio=io_uring ;;
    linux-aio) aio=native ;;
    threads) aio=threads ;;
    esac
    [ "$rw" = write ] && wflag=(-w)
    local cache=none
    [ "$direct" = 1 ] || cache=writeback
    qi() {   # COUNT
        timed "$tmp/q.out" "$tmp/q.err" qemu-img bench -c "$1" -d "$iodepth" \
            -s "$bs_bytes" -t "$cache" -i "$aio" -f raw "${wflag[@]}" "$file" ||
            { sed 's/^/# qemu-img: /' "$tmp/q.err"; return 1; }
        sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$tmp/q.out"
    }
    # Start-up cost: a one-request run.
    qi 1 >/dev/null || return 1
    read -r u s < "$tmp/time"
    qemu_startup=$(python3 -c "print($u + $s)")
    # Calibrate the count to about --runtime seconds.
    secs=$(qi 20000) || return 1
    count=$(python3 -c "import sys; print(max(20000, int(20000 / max(float(sys.argv[1]), 1e-3) * float(sys.argv[2]))))" "$secs" "$runtime")
    secs=$(qi "$count") || return 1
    read -r u s < "$tmp/time"
    echo "$(python3 -c "print('%.0f' % ($count / $secs))") $(cpu_ns_per_io "$u" "$s" "$count" "$qemu_startup") -"
}

median() { tr ' ' '\n' | grep -v '^-*$' | sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}'; }

progs=()
want aioloop && progs+=(aioloop)
want fio && progs+=(fio)
if want qemu-img; then
    case $rw in read|write) progs+=(qemu-img) ;;
    *) echo "# qemu-img bench does sequential I/O only: skipped for --rw $rw" ;;
    esac
fi

echo "# file $file ($size), rw $rw, bs $bs, iodepth $iodepth, direct $direct, ${runtime}s per run, median of $repeat"
echo "# aioloop-bench: $tool $aioloop_opts"
prefix="io.$rw.qd$iodepth"
for e in $engines; do
    declare -A li=() lc=() ls=() iops=() cpu=() self=()
    # Repetitions interleave the programs, so that a disturbance of the
    # machine hits all of them alike.
    for ((r = 1; r <= repeat; r++)); do
        for p in "${progs[@]}"; do
            case $p in
            aioloop) res=$(run_aioloop "$e") ;;
            fio) res=$(run_fio "$e") ;;
            qemu-img) res=$(run_qemu "$e") ;;
            esac || { echo "# $e $p run $r failed"; echo "$res" | grep '^#'; continue; }
            read -r a b c <<< "$res"
            echo "# $e $p run $r: $a IOPS, $b ns/io (process), $c ns/io (self); load $(cut -d' ' -f1 /proc/loadavg)"
            li[$p]+=" $a" lc[$p]+=" $b" ls[$p]+=" $c"
        done
    done
    for p in "${progs[@]}"; do
        iops[$p]=$(echo "${li[$p]:-}" | median)
        cpu[$p]=$(echo "${lc[$p]:-}" | median)
        self[$p]=$(echo "${ls[$p]:-}" | median)
        echo "$prefix.$e.$p.iops: ${iops[$p]} IOPS"
        echo "$prefix.$e.$p.cpu: ${cpu[$p]} ns/io"
        [ "${self[$p]}" != - ] && echo "$prefix.$e.$p.cpu-self: ${self[$p]} ns/io"
    done
    for p in fio qemu-img; do
        a=${iops[aioloop]:--} b=${iops[$p]:--}
        [ "$a" != - ] && [ "$b" != - ] || continue
        python3 -c "print('$prefix.$e.ratio.aioloop/$p.iops: %.2f x' % ($a / $b))"
        python3 -c "print('$prefix.$e.ratio.aioloop/$p.cpu: %.2f x' % (${cpu[aioloop]} / ${cpu[$p]}))"
    done
    unset li lc ls iops cpu self
done
