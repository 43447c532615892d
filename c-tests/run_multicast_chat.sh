#!/bin/bash
# Drives examples/multicast-chat between two hosts made of network namespaces:
#
#   run_multicast_chat.sh CHAT [WRAPPER...]
#
# CHAT is the chat binary; WRAPPER, if given, is a command prefix for every
# chat process (valgrind and its options, for the memcheck variant).
#
# Nothing is sent from the machine's own namespace: the script re-executes
# itself under `unshare -n` (host A), makes a second namespace (host B), and
# joins them with a veth pair carrying documentation addresses:
#   host A: dgv0, 198.51.100.1/24, 2001:db8::1/64
#   host B: dgv1, 198.51.100.2/24, 2001:db8::2/64
# each with lo up and a route for 224.0.0.0/4 via the veth (IPv6 multicast
# has its ff00::/8 route on every interface that is up).
#
# Every chat reads its stdin from a fifo the script holds open, so it stays
# in the group until the script closes that fifo. The checks rely only on
# the order of events, never on timing: a line that must NOT arrive would
# arrive before a later line that must (one socket's datagrams are delivered
# in order), and the script waits for that later line before it looks.
# Every wait is bounded (a hang becomes a failure), and every chat process is
# killed on the way out.
#
# Exit 0 pass, 1 fail, 77 skip (not root, no unshare/ip/tc/nsenter), but 1
# instead of 77 when DGRAM_TESTS_NO_SKIP is set.
set -u

skip() {
    echo "SKIP: $*" >&2
    if [ -n "${DGRAM_TESTS_NO_SKIP:-}" ]; then
        echo "DGRAM_TESTS_NO_SKIP is set: failing instead" >&2
        exit 1
    fi
    exit 77
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

if [ $# -lt 1 ]; then
    echo "usage: $0 CHAT [WRAPPER...]" >&2
    exit 2
fi

# ---- stage 1: in the machine's namespace, only checks and the re-exec ----
if [ -z "${DGRAM_CHAT_IN_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
    for tool in unshare ip tc nsenter mkfifo timeout; do
        command -v "$tool" >/dev/null 2>&1 || skip "needs $tool"
    done
    unshare -n true 2>/dev/null || skip "unshare -n does not work here"
    DGRAM_CHAT_IN_NETNS=1 exec unshare -n bash "$0" "$@"
    fail "exec unshare failed"
fi

# ---- stage 2: host A's namespace, fresh ----------------------------------
CHAT=$1
shift
WRAP=("$@")
[ -x "$CHAT" ] || fail "$CHAT is not an executable"

# Case 3: 300 lines of 1000 bytes through a 2 Mbit/s token bucket (about
# 1.3 s): far more than the send buffer holds, few enough per second for a
# receiver under valgrind.
LINES=300
RATE=2mbit
# Limits for a hang, generous for valgrind. Never part of an assertion.
WAIT_STEPS=600 # x 0.1 s

WORK=$(mktemp -d "${TMPDIR:-/tmp}/multicast-chat.XXXXXX") || fail "mktemp"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# Host B: a namespace created by a short-lived `unshare -n`, then held by
# this shell's fd 3 (so it vanishes with this script, however it ends).
self_ns=$(readlink /proc/self/ns/net)
unshare -n sleep 600 &
holder=$!
PIDS+=("$holder")
for ((i = 0; i < WAIT_STEPS; i++)); do
    ns=$(readlink "/proc/$holder/ns/net" 2>/dev/null) || fail "namespace holder died"
    [ "$ns" != "$self_ns" ] && break
    sleep 0.1
done
[ "$ns" != "$self_ns" ] || fail "host B's namespace did not appear"
exec 3<"/proc/$holder/ns/net"
kill "$holder"
wait "$holder" 2>/dev/null
PIDS=()
HOST_B="/proc/$$/fd/3"
in_b() { nsenter --net="$HOST_B" "$@"; }

ip link set lo up || fail "lo up"
in_b ip link set lo up || fail "lo up on host B"
ip link add dgv0 type veth peer name dgv1 netns "$HOST_B" || fail "veth"
ip addr add 198.51.100.1/24 dev dgv0 && ip -6 addr add 2001:db8::1/64 dev dgv0 nodad &&
    ip link set dgv0 up &&
    ip route add 224.0.0.0/4 dev dgv0 || fail "host A's addresses"
in_b sh -c 'ip addr add 198.51.100.2/24 dev dgv1 && ip -6 addr add 2001:db8::2/64 dev dgv1 nodad &&
    ip link set dgv1 up &&
    ip route add 224.0.0.0/4 dev dgv1' || fail "host B's addresses"
# Until both ends are operationally up the veth drops what it is given.
for ((i = 0; i < WAIT_STEPS; i++)); do
    grep -q 'state UP' <<<"$(ip -o link show dgv0)" &&
        grep -q 'state UP' <<<"$(in_b ip -o link show dgv1)" && break
    sleep 0.1
done
grep -q 'state UP' <<<"$(ip -o link show dgv0)" || fail "dgv0 is not up"

# ---- chat processes -------------------------------------------------------
# start NAME HOST ARGS...: runs a chat on host A or B, stdin from the fifo
# $WORK/NAME.in (held open by this shell on the fd FD[NAME]), stdout to
# $WORK/NAME.out, stderr to $WORK/NAME.err; PID[NAME] is its pid.
# Every fifo fd of the script is closed in the child, so that each chat sees
# the end of its input exactly when the script closes its fifo.
declare -A FD PID
start() {
    local name=$1 host=$2 fd other
    shift 2
    mkfifo "$WORK/$name.in" || fail "mkfifo"
    exec {fd}<>"$WORK/$name.in"
    FD[$name]=$fd
    local closes=()
    for other in "${FD[@]}"; do
        closes+=("$other")
    done
    (
        for other in "${closes[@]}"; do
            eval "exec $other>&-"
        done
        if [ "$host" = B ]; then
            exec nsenter --net="$HOST_B" "${WRAP[@]}" "$CHAT" "$@"
        else
            exec "${WRAP[@]}" "$CHAT" "$@"
        fi
    ) <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID[$name]=$!
    PIDS+=("$!")
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

# forget PID: a reaped process, no longer to be killed by cleanup.
forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        [ "$pid" = "$1" ] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

show() {
    local f
    for f in "$WORK"/*.out "$WORK"/*.err; do
        [ -e "$f" ] || continue
        echo "--- ${f##*/}" >&2
        cat "$f" >&2
    done
}

# wait_joined NAME: waits for the chat's "joined" line; prints its port.
wait_joined() {
    local i line
    for ((i = 0; i < WAIT_STEPS; i++)); do
        line=$(grep -m1 '^joined ' "$WORK/$1.err" 2>/dev/null)
        if [ -n "$line" ]; then
            line=${line#* on port }
            echo "${line%% *}"
            return
        fi
        alive "$1" || { show; fail "chat $1 exited before joining"; }
        sleep 0.1
    done
    show
    fail "chat $1 did not join"
}

# say NAME TEXT: types a line into chat NAME.
say() { printf '%s\n' "$2" >&"${FD[$1]}" || fail "cannot write to chat $1"; }

# wait_lines NAME N: waits until chat NAME has printed at least N lines.
wait_lines() {
    local i
    for ((i = 0; i < WAIT_STEPS; i++)); do
        [ "$(cat "$WORK/$1.out" 2>/dev/null | wc -l)" -ge "$2" ] && return
        alive "$1" || break
        sleep 0.1
    done
    [ "$(cat "$WORK/$1.out" 2>/dev/null | wc -l)" -ge "$2" ] && return
    show
    fail "chat $1 printed fewer than $2 lines"
}

# finish NAME: ends chat NAME's input and checks that it exits with 0.
finish() {
    local i rc fd=${FD[$1]}
    exec {fd}>&-
    for ((i = 0; i < WAIT_STEPS; i++)); do
        alive "$1" || break
        sleep 0.1
    done
    alive "$1" && { show; fail "chat $1 did not exit at the end of its input"; }
    wait "${PID[$1]}"
    rc=$?
    forget "${PID[$1]}"
    [ "$rc" = 0 ] || { show; fail "chat $1 exited with $rc"; }
    unset "FD[$1]"
}

# expect NAME LINE...: chat NAME printed exactly these lines.
expect() {
    local name=$1
    shift
    if [ $# = 0 ]; then
        [ -s "$WORK/$name.out" ] && { show; fail "chat $name printed something"; }
        return
    fi
    if ! diff -u <(printf '%s\n' "$@") "$WORK/$name.out" >"$WORK/diff" 2>&1; then
        show
        cat "$WORK/diff" >&2
        fail "chat $name printed other lines than expected"
    fi
}

# reset: forgets the chats of the previous case.
reset() {
    rm -f "$WORK"/*.in "$WORK"/*.out "$WORK"/*.err
    PID=()
}

A=198.51.100.1
B=198.51.100.2

# ---- 1. A with --loopback off: its lines reach host B only ----------------
# B (host B, default loopback on) picks the port; A and C share it on host A
# (reuse_addr). Neither A nor C, on A's host, sees A's lines.
echo "case 1: --loopback off"
start B B --port 0
P=$(wait_joined B)
start A A --port "$P" --loopback off
wait_joined A >/dev/null
start C A --port "$P"
wait_joined C >/dev/null
say A "hello from A"
say A "second line"
wait_lines B 2
say B "reply from B"
wait_lines A 1 # A1 and A2 would come before it, had they looped back
wait_lines C 1
wait_lines B 3 # B's own line, looped back to it
say A "bye"
wait_lines B 4
finish A
finish C
finish B
expect B "$A:$P: hello from A" "$A:$P: second line" "$B:$P: reply from B" "$A:$P: bye"
expect A "$B:$P: reply from B"
expect C "$B:$P: reply from B"
reset

# ---- 2. A with --loopback on, B with --loopback off -----------------------
# A and C (same host) see A's lines; B does not see its own.
echo "case 2: --loopback on"
start B B --port 0 --loopback off
P=$(wait_joined B)
start A A --port "$P" --loopback on
wait_joined A >/dev/null
start C A --port "$P"
wait_joined C >/dev/null
say A "hello from A"
say A "second line"
wait_lines B 2
wait_lines A 2
wait_lines C 2
say B "reply from B"
wait_lines A 3
wait_lines C 3
say A "bye" # B's own line would come before it, had it looped back
wait_lines B 3
wait_lines A 4
wait_lines C 4
finish A
finish C
finish B
expect B "$A:$P: hello from A" "$A:$P: second line" "$A:$P: bye"
expect A "$A:$P: hello from A" "$A:$P: second line" "$B:$P: reply from B" "$A:$P: bye"
expect C "$A:$P: hello from A" "$A:$P: second line" "$B:$P: reply from B" "$A:$P: bye"
reset

# ---- 3. input that ends at once: every line is still sent ----------------
# A reads a whole file and meets its end long before its lines are out: a
# token bucket on dgv0 holds them back, so the socket's send buffer fills,
# sends wait in libdgram's queue, and A must let them complete before it
# closes (closing cancels sends not yet written). Also: empty lines are
# skipped, control characters shown as '?', a last line without a newline is
# sent, --ttl is accepted.
echo "case 3: end of input with sends pending"
start B B --port 0
P=$(wait_joined B)
expected=()
pad=$(printf '%0990d' 0)
{
    for ((i = 1; i <= LINES; i++)); do
        echo "line $i $pad"
        expected+=("$A:$P: line $i $pad")
    done
    printf '\n\ttab\x7f\n'
    printf 'no newline'
} >"$WORK/input"
expected+=("$A:$P: ?tab?" "$A:$P: no newline")
tc qdisc add dev dgv0 root tbf rate "$RATE" burst 3000 limit 100000000 || fail "tc"
timeout 120 "${WRAP[@]}" "$CHAT" --port "$P" --loopback off --ttl 2 <"$WORK/input" \
    >"$WORK/A.out" 2>"$WORK/A.err"
rc=$?
[ "$rc" = 0 ] || { show; fail "chat A exited with $rc"; }
wait_lines B ${#expected[@]}
finish B
tc qdisc del dev dgv0 root || fail "tc"
expect B "${expected[@]}"
expect A # nothing: loopback off
reset

# ---- 4. IPv6 -------------------------------------------------------------
# ff15::/16 is site-local scope, so the source is the global 2001:db8::1.
echo "case 4: IPv6 group"
G6=ff15::dead:1
start B B --group "$G6" --port 0 --loopback off
P=$(wait_joined B)
printf 'hello over IPv6\n' >"$WORK/input"
timeout 120 "${WRAP[@]}" "$CHAT" --group "$G6" --port "$P" --loopback off <"$WORK/input" \
    >"$WORK/A.out" 2>"$WORK/A.err"
rc=$?
[ "$rc" = 0 ] || { show; fail "chat A exited with $rc"; }
wait_lines B 1
finish B
expect B "[2001:db8::1]:$P: hello over IPv6"
reset

# ---- 5. options -----------------------------------------------------------
echo "case 5: options, and stdin closed"
for bad in "--bogus" "--ttl 256" "--ttl -1" "--ttl x" "--port 65536" "--port 1x" \
    "--loopback maybe" "--group 198.51.100.7" "--group nonsense" "--port" "stray"; do
    # shellcheck disable=SC2086 # split on purpose
    timeout 120 "${WRAP[@]}" "$CHAT" $bad </dev/null >"$WORK/opt.out" 2>"$WORK/opt.err"
    rc=$?
    [ "$rc" = 2 ] || fail "'$bad': exit status $rc, expected 2"
    grep -q '^usage: multicast-chat ' "$WORK/opt.err" || fail "'$bad': no usage on stderr"
    [ -s "$WORK/opt.out" ] && fail "'$bad': printed on stdout"
done
timeout 120 "${WRAP[@]}" "$CHAT" --help </dev/null >"$WORK/opt.out" 2>"$WORK/opt.err"
rc=$?
[ "$rc" = 0 ] || fail "--help: exit status $rc"
grep -q '^usage: multicast-chat ' "$WORK/opt.out" || fail "--help: no usage on stdout"

# Started with stdin closed, the chat must not read the library's fds as stdin.
timeout 120 "${WRAP[@]}" "$CHAT" --port 0 <&- >"$WORK/opt.out" 2>"$WORK/opt.err"
rc=$?
[ "$rc" = 1 ] || fail "stdin closed: exit status $rc, expected 1"
grep -q 'stdin is closed' "$WORK/opt.err" || fail "stdin closed: not reported"

echo "PASS"
exit 0
