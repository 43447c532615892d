#!/usr/bin/env bash
# Runs every test of libdgram: the header check, the Rust unit tests, and the
# C suite under CTest (each C test program also runs under valgrind memcheck).
#
# Needs: cargo, a C compiler, cmake and valgrind; root for the tests that make
# network namespaces (they report themselves skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== C test suite (CTest, with valgrind memcheck)"
build=build/c-tests
cmake -S c-tests -B "$build" -DDGRAM_LIB_DIR="$PWD/target/release" >/dev/null
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 600)
