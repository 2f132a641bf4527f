#!/bin/sh
# Real NBD clients against aioloop-nbd, for one --aio engine and one
# --cache mode (TAP lines): qemu-img info/convert/compare through
# nbd+unix://, qemu-io pattern writes and reads through nbd://, nbdinfo,
# nbdcopy (a 64 MiB random file in and out, byte-compared), fio's nbd
# engine with --verify, and a read-only export refusing writes. At the
# end the server gets SIGTERM, must exit 0, and the file on disk must be
# what the clients read through the server.
#
#   test-nbd-clients.sh PATH-TO-aioloop-nbd ENGINE CACHE [DIR]
#
# DIR (default /tmp) holds the images: /dev/shm puts them in memory,
# where the thread engine reads and writes in place (server.c,
# rw_in_place()) instead of in its workers.
#
# A client tool that is missing is a skip with its Debian package named
# when we are not root; as root (make check installs the packages) it is
# a failure. Waits for the server are bounded by the server's behaviour
# (it listens before printing its URI), not by time.
set -u
srv=$1
aio=$2
cache=$3
case $srv in /*) ;; *) srv=$PWD/$srv ;; esac
dir=${4:-/tmp}
if ! work=$(mktemp -d "$dir/nbd-clients.XXXXXX" 2>/dev/null); then
    echo "1..0 # SKIP cannot make a directory in $dir"
    exit 0
fi
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }
# have TOOL PACKAGE CASE: is TOOL there? If not, skip or fail CASE.
have() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ]; then
        not_ok "$3 ($1 missing: scripts/install-deps installs $2)"
    else
        skip "$3" "$1 not installed (apt-get install $2)"
    fi
    return 1
}

# start NAME ARGS...: starts the server in the background with
# --print-uri; sets $pid and $uri. Fails the run if it does not start.
start() {
    name=$1
    shift
    "$srv" --print-uri --aio="$aio" --cache="$cache" "$@" >"$name.uri" \
        2>"$name.err" &
    pid=$!
    pids="$pids $pid"
    uri=""
    while [ -z "$uri" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        uri=$(head -n 1 "$name.uri")
    done
    if [ -z "$uri" ]; then
        not_ok "aioloop-nbd starts ($(cat "$name.err"))"
        echo "1..$n"
        exit 1
    fi
}
# stop PID: SIGTERM the server, its exit status in $status (not in a
# subshell: only this shell can wait for it).
stop() {
    kill -TERM "$1"
    wait "$1"
    status=$?
}

head -c 64M /dev/urandom >src || exit 1
truncate -s 64M img
start unix -t -e 0 -k "$work/sock" img
upid=$pid
uuri=$uri
start tcp -t -e 0 -b 127.0.0.1 -p 0 img
tpid=$pid
turi=$uri
echo "# $aio, cache=$cache: $uuri and $turi"

if have qemu-img qemu-utils "qemu-img info"; then
    out=$(qemu-img info "$uuri" 2>&1)
    echo "$out" | grep -q "virtual size: 64 MiB (67108864 bytes)"
    check $? "qemu-img info $uuri sees 64 MiB"
    head -c 16M src >src16
    qemu-img convert -n -f raw -O raw src16 "$uuri" >log 2>&1 &&
        qemu-img compare -f raw -F raw src16 "nbd+unix:///?socket=$work/sock" \
            >>log 2>&1
    # compare also checks that the rest of the 64 MiB image reads as zero
    rc=$?
    check $rc "qemu-img convert 16 MiB in, qemu-img compare: identical"
    [ $rc = 0 ] || cat log | sed 's/^/# /'
fi

if have qemu-io qemu-utils "qemu-io pattern writes and reads over nbd://"; then
    qemu-io -f raw "$turi" \
        -c "write -P 0xab 0 1M" -c "write -P 0xcd 1M 4k" \
        -c "write -P 0x5e 1049600 3" -c "write -z 2M 64k" \
        -c "aio_write -P 0x11 4M 64k" -c "aio_write -P 0x22 5M 64k" \
        -c "aio_flush" -c "flush" \
        -c "read -P 0xab 0 1M" -c "read -P 0xcd 1M 1024" \
        -c "read -P 0x5e 1049600 3" -c "read -P 0xcd 1049603 3069" \
        -c "read -P 0 2M 64k" -c "read -P 0x11 4M 64k" \
        -c "read -P 0x22 5M 64k" >log 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -qi "fail\|error" log &&
       [ "$(grep -c '^read ' log)" = 7 ]; then
        ok "qemu-io -P writes and reads (aligned, unaligned, zeroes, aio) over nbd://"
    else
        not_ok "qemu-io over nbd:// (status $rc)"
        sed 's/^/# /' log
    fi
fi

if have nbdinfo libnbd-bin "nbdinfo"; then
    nbdinfo --json "$uuri" >log 2>&1
    rc=$?
    grep -q '"export-size": 67108864' log && grep -q '"can_flush": true' log &&
        grep -q '"can_fua": true' log && grep -q '"can_multi_conn": true' log
    check $(( rc + $? )) "nbdinfo: size, flush, fua, multi-conn"
fi

if have nbdcopy libnbd-bin "nbdcopy 64 MiB in and out"; then
    nbdcopy src "$uuri" >log 2>&1 && nbdcopy "$turi" out >>log 2>&1 &&
        cmp -s src out
    rc=$?
    check $rc "nbdcopy 64 MiB random in (unix), out (tcp), byte-identical"
    [ $rc = 0 ] || sed 's/^/# /' log
fi

if have fio fio "fio --ioengine=nbd --verify"; then
    if ! fio --enghelp=nbd >/dev/null 2>&1; then
        not_ok "fio has no nbd engine (Debian's fio package has it)"
    else
        fio --name=v --ioengine=nbd --uri="$uuri" --rw=randwrite --bs=4k \
            --iodepth=16 --size=16M --offset=32M --verify=crc32c \
            --do_verify=1 --verify_fatal=1 >log 2>&1 &&
        fio --name=m --ioengine=nbd --uri="$uuri" --rw=randrw --bs=64k \
            --iodepth=4 --numjobs=2 --size=8M --offset=48M \
            --offset_increment=8M --verify=md5 --do_verify=1 \
            --verify_fatal=1 >>log 2>&1
        rc=$?
        if [ $rc = 0 ] && grep -q "err= 0" log && ! grep -q "verify:" log; then
            ok "fio nbd engine: randwrite QD16 and 2-job randrw, verified"
        else
            not_ok "fio nbd engine with --verify (status $rc)"
            sed 's/^/# /' log | tail -20
        fi
    fi
fi

# A read-only export refuses writes and still serves reads.
start ro -t -r -k "$work/sock-ro" img
ropid=$pid
if command -v qemu-io >/dev/null; then
    qemu-io -f raw "$uri" -c "write -P 0x77 0 4k" >log 2>&1
    w=$?
    qemu-io -r -f raw "$uri" -c "read 0 4k" >>log 2>&1
    r=$?
    grep -q "^read 4096/4096" log || r=1
    # qemu opens a read-only export read-only, so the write fails (at
    # open or at write) and nothing is written.
    if [ $w != 0 ] && ! grep -q "^wrote" log; then
        w=0
    else
        w=1
    fi
    check $(( w + r )) "read-only export: qemu-io write refused, read served"
    [ $(( w + r )) = 0 ] || sed 's/^/# /' log
fi

# Clean shutdown, then the disk holds what the clients read through the
# server (nbdcopy reads everything back first).
if command -v nbdcopy >/dev/null; then
    nbdcopy "$uuri" final >/dev/null 2>&1
fi
stop "$upid"
s1=$status
stop "$tpid"
s2=$status
stop "$ropid"
s3=$status
check $(( s1 + s2 + s3 )) "SIGTERM: all three servers exit 0 (statuses $s1 $s2 $s3)"
if [ -f final ]; then
    cmp -s final img
    check $? "after shutdown the file equals what was read through the server"
fi
echo "1..$n"
[ "$failed" = 0 ]
