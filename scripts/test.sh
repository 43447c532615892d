#!/usr/bin/env bash
# Runs every test of libdgram: the header check, the Rust unit tests, and the
# C suite under CTest, one entry per case (each case also under valgrind
# memcheck), with the examples and the JavaScript host's tests.
#
# Installs what it needs when run as root (scripts/lib/need.sh); otherwise
# stops at once with the apt-get command to run. The network-namespace tests
# need root; without it they report themselves skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/need.sh

need_c_suite

echo "== build (release) and header check"
cargo build --release --locked
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    if ! git diff --exit-code -- include/dgram.h; then
        echo "include/dgram.h differs from what build.rs generates: commit the regenerated header" >&2
        exit 1
    fi
fi

echo "== Rust unit tests"
cargo test --release --locked

echo "== C test suite (CTest: one entry per case, also under valgrind memcheck)"
build=build/c-tests
cmake -S c-tests -B "$build" -DDGRAM_LIB_DIR="$PWD/target/release" >/dev/null
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 600)
