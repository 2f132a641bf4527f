#!/bin/sh
# Smoke test of the echo-server example (TAP lines). Needs socat.
#   echo-server-test.sh PATH-TO-echo-server
#
# Three "held" clients connect and stay connected; five more clients
# (one sending 2 MiB) must then be echoed in full while the held ones are
# still waiting: a server that served one client at a time would hang
# here (every wait is bounded). Then a client stays connected while the
# server gets SIGTERM: the server must close it and exit with status 0.
set -u
server=$1
if ! command -v socat >/dev/null 2>&1; then
    echo "1..0 # SKIP socat is not installed (apt-get install socat)"
    exit 77
fi
work=$(mktemp -d)
tpid=
pids=
n=0
failed=0
cleanup() {
    touch "$work/go"
    # shellcheck disable=SC2086
    kill -9 $tpid $pids 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
bail() { not_ok "$1"; echo "# server stdout:"; sed 's/^/#   /' "$work/server.out";
         echo "# server stderr:"; sed 's/^/#   /' "$work/server.err"; exit 1; }

# wait_for SECONDS COMMAND...: retry COMMAND every 50 ms until it succeeds.
wait_for() {
    tries=$(($1 * 20))
    shift
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.05
    done
}

# connect IN OUT [SOCAT-TIMEOUT]: a client sending file IN, saving the echo
# in OUT. socat half-closes after IN and exits when the server closes.
connect() {
    timeout -s KILL 60 socat -t "${3:-30}" - "TCP:127.0.0.1:$port" \
        < "$1" > "$2"
}

# `timeout` bounds the server's life and forwards the SIGTERM we send it.
# --foreground: to the server alone. Without it, timeout also sends
# SIGTERM and SIGCONT to its process group, and a SIGCONT that lands while
# LeakSanitizer's exit-time tracer attaches to the server hangs both.
timeout --foreground -s KILL 90 "$server" 0 > "$work/server.out" 2> "$work/server.err" &
tpid=$!
wait_for 20 grep -q '^listening on ' "$work/server.out" ||
    bail "server prints its port"
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
       "$work/server.out")
[ -n "$port" ] || bail "server prints its port"
ok "server listens on port $port"

# Held clients: one line now, the second only once $work/go exists.
for i in 1 2 3; do
    mkfifo "$work/held$i.in"
    connect "$work/held$i.in" "$work/held$i.out" &
    pids="$pids $!"
    (echo "held $i first"; wait_for 60 test -e "$work/go";
     echo "held $i last") > "$work/held$i.in" &
done
for i in 1 2 3; do
    wait_for 30 grep -q "held $i first" "$work/held$i.out" ||
        bail "held client $i gets its first line back"
done
ok "3 clients connected and echoed"

head -c 2097152 /dev/urandom > "$work/quick1.in"
for i in 2 3 4 5; do
    seq -f "client $i line %g" 1 1000 > "$work/quick$i.in"
done
qpids=
for i in 1 2 3 4 5; do
    connect "$work/quick$i.in" "$work/quick$i.out" &
    qpids="$qpids $!"
done
i=0
for p in $qpids; do
    i=$((i + 1))
    wait "$p"
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$work/quick$i.in" "$work/quick$i.out"; then
        ok "client $i got its $(wc -c < "$work/quick$i.in") bytes back"
    else
        not_ok "client $i got its data back (socat status $rc)"
    fi
done
still=0
for i in 1 2 3; do
    grep -q "held $i last" "$work/held$i.out" || still=$((still + 1))
done
if [ "$still" -eq 3 ]; then
    ok "served concurrently: 3 clients still waiting meanwhile"
else
    not_ok "held clients were still connected"
fi

touch "$work/go"
for i in 1 2 3; do
    printf 'held %s first\nheld %s last\n' "$i" "$i" > "$work/held$i.want"
done
i=0
for p in $pids; do
    i=$((i + 1))
    wait "$p"
    if cmp -s "$work/held$i.want" "$work/held$i.out"; then
        ok "held client $i got both lines back"
    else
        not_ok "held client $i got both lines back"
    fi
done
pids=

# A client that is still connected when the server is told to stop.
mkfifo "$work/idle.in"
connect "$work/idle.in" "$work/idle.out" 1 &
pids=$!
exec 3> "$work/idle.in"
echo "idle client" >&3
wait_for 30 grep -q "idle client" "$work/idle.out" ||
    bail "idle client echoed"
kill -TERM "$tpid"
wait "$tpid"
rc=$?
tpid=
if [ "$rc" -eq 0 ] && grep -q '^stopping$' "$work/server.out" &&
   grep -q '^served 9 clients$' "$work/server.out"; then
    ok "SIGTERM: server closes the last client and exits 0"
else
    bail "SIGTERM: server exits 0 (status $rc)"
fi
wait "$pids"
rc=$?
exec 3>&-
pids=
if [ "$rc" -eq 0 ]; then
    ok "the idle client saw the connection close"
else
    not_ok "the idle client saw the connection close (socat status $rc)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
