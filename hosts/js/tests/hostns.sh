#!/bin/sh
# Runs a dgramjs test that looks up host names, where no lookup can leave
# the machine:
#   hostns.sh DGRAMJS SCRIPT.js
#   hostns.sh valgrind [OPTIONS] DGRAMJS SCRIPT.js   (any command line)
# The script runs in a network namespace of its own (only lo, up) and a
# private mount namespace in which /etc/hosts is
#   127.0.0.1 localhost, ::1 localhost ip6-localhost,
#   127.0.0.2 dgram-test-a, ::1 dgram-test-six,
#   2001:db8::6 dgram-test-v6only (never sent to: a name udp4 cannot use;
#   glibc answers IPv4 queries for ::1 with 127.0.0.1)
# and /etc/nsswitch.conf is "hosts: files", so getaddrinfo reads that file
# and asks no DNS server or other service (nscd's socket directory, if
# there is one, is hidden too). Both namespaces die with the process; the
# two files are made in a temporary directory, removed afterwards.
# Exit code 77 (skip) when not root or namespaces are unavailable; with
# DGRAM_TESTS_NO_SKIP set, that is a failure (1) instead.
skip() {
    if [ -n "$DGRAM_TESTS_NO_SKIP" ]; then
        echo "FAIL (DGRAM_TESTS_NO_SKIP is set): $*" >&2
        exit 1
    fi
    echo "SKIP: $*" >&2
    exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root to make network and mount namespaces (unshare -n -m)"
command -v unshare >/dev/null 2>&1 || skip "needs unshare (util-linux)"
command -v ip >/dev/null 2>&1 || skip "needs ip (iproute2)"
command -v mount >/dev/null 2>&1 || skip "needs mount (util-linux)"
[ -e /etc/hosts ] && [ -e /etc/nsswitch.conf ] ||
    skip "needs /etc/hosts and /etc/nsswitch.conf to mount private copies over"
unshare -n -m true 2>/dev/null || skip "unshare -n -m fails here"

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
cat > "$dir/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost ip6-localhost
127.0.0.2 dgram-test-a
::1 dgram-test-six
2001:db8::6 dgram-test-v6only
EOF
echo 'hosts: files' > "$dir/nsswitch.conf"
chmod 644 "$dir/hosts" "$dir/nsswitch.conf"

unshare -n -m sh -c '
set -e
dir=$1
shift
mount --make-rprivate /
mount --bind "$dir/hosts" /etc/hosts
mount --bind "$dir/nsswitch.conf" /etc/nsswitch.conf
for d in /run/nscd /var/run/nscd; do
    if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
ip link set lo up
exec "$@"
' sh "$dir" "$@"
