#!/bin/sh
# Runs a dgramjs test inside a network namespace of its own:
#   netns.sh DGRAMJS SCRIPT.js
# The namespace (it dies with the process) has lo up and a veth pair:
#   dgv0 198.51.100.1/24 2001:db8::1/64, dgv1 198.51.100.2/24 2001:db8::2/64,
#   IPv4 multicast (224.0.0.0/4) and 255.255.255.255 routed via dgv0.
# Exit code 77 (skip) when not root or namespaces are unavailable; with
# DGRAM_TESTS_NO_SKIP set, that is a failure (1) instead.
dgramjs=$1
script=$2

skip() {
    if [ -n "$DGRAM_TESTS_NO_SKIP" ]; then
        echo "FAIL (DGRAM_TESTS_NO_SKIP is set): $*" >&2
        exit 1
    fi
    echo "SKIP: $*" >&2
    exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root to make a network namespace (unshare -n)"
command -v unshare >/dev/null 2>&1 || skip "needs unshare (util-linux)"
command -v ip >/dev/null 2>&1 || skip "needs ip (iproute2)"
unshare -n true 2>/dev/null || skip "unshare -n fails here"

exec unshare -n sh -c '
set -e
ip link set lo up
ip link add dgv0 type veth peer name dgv1
ip addr add 198.51.100.1/24 dev dgv0
ip addr add 198.51.100.2/24 dev dgv1
ip -6 addr add 2001:db8::1/64 dev dgv0 nodad
ip -6 addr add 2001:db8::2/64 dev dgv1 nodad
ip link set dgv0 up
ip link set dgv1 up
ip route add 224.0.0.0/4 dev dgv0
ip route add 255.255.255.255/32 dev dgv0
exec "$0" "$1"
' "$dgramjs" "$script"
