#!/usr/bin/env bash
# Benchmarks libdgram against libuv, Node's dgram and raw sockets, over
# loopback only: receive and send throughput, ping-pong round trips, scaling
# with many sockets, memory and allocations (see docs/performance.md).
#
#   scripts/bench.sh           full run (< 5 minutes): benches/results.csv,
#                              benches/results-raw.csv, benches/results.png
#   scripts/bench.sh --quick   a few seconds, tiny counts, no callgrind; CI
#                              uses it to prove every contender builds and
#                              runs. Writes into build/bench/ only.
#
# Builds the library with `cargo build --release --locked` unless
# DGRAM_LIB_DIR names a directory that already holds libdgram.so (its headers
# are then taken from DGRAM_INCLUDE_DIR, else from $DGRAM_LIB_DIR/../../include
# when that exists, else from include/). Installs what is missing through
# scripts/lib/need.sh (apt: cmake, pkg-config, libuv1-dev, valgrind; pip:
# matplotlib for the full run's chart); not root, it names what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

echo "== dependencies"
source scripts/lib/need.sh
need cmake:cmake gcc:cc libc6-dev:/usr/include/stdio.h pkg-config:pkg-config \
    libuv1-dev:/usr/include/uv.h valgrind:valgrind
if ((!quick)); then
    need_python_module matplotlib matplotlib
fi
command -v node >/dev/null || echo "note: node not found: the Node receiver will be skipped"

echo "== library"
if [[ -n "${DGRAM_LIB_DIR:-}" ]]; then
    lib_dir=$(cd "$DGRAM_LIB_DIR" && pwd)
    [[ -f "$lib_dir/libdgram.so" ]] || { echo "DGRAM_LIB_DIR=$lib_dir holds no libdgram.so" >&2; exit 1; }
    if [[ -n "${DGRAM_INCLUDE_DIR:-}" ]]; then
        include_dir=$DGRAM_INCLUDE_DIR
    elif [[ -f "$lib_dir/../../include/dgram.h" ]]; then
        include_dir=$(cd "$lib_dir/../../include" && pwd)
    else
        include_dir=$PWD/include
    fi
    echo "using $lib_dir/libdgram.so with $include_dir/dgram.h"
else
    cargo build --release --locked
    lib_dir=$PWD/target/release
    include_dir=$PWD/include
fi

echo "== benchmark programs"
build=build/bench
cmake -S benches -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DDGRAM_LIB_DIR="$lib_dir" -DDGRAM_INCLUDE_DIR="$include_dir" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

echo "== running"
if ((quick)); then
    python3 benches/run.py --quick --build-dir "$build" --out-dir "$build"
    # The chart too, when matplotlib is there (quick mode installs nothing extra).
    if python3 -c 'import matplotlib' 2>/dev/null; then
        python3 benches/plot.py "$build/results.csv" "$build/results.png"
    fi
else
    python3 benches/run.py --build-dir "$build" --out-dir benches
    python3 benches/plot.py benches/results.csv benches/results.png
fi
