#!/usr/bin/env bash
# Builds libdgram and the echo demo (examples/echo.c), then runs it: a UDP
# echo server and client over 127.0.0.1 in one process. Installs a C
# compiler first when run as root on a machine without one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/need.sh
need gcc:cc libc6-dev:/usr/include/stdio.h
cargo build --release --locked
mkdir -p build
# The library's SONAME is libdgram.so.0; cargo writes only libdgram.so.
ln -sf libdgram.so target/release/libdgram.so.0
cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/echo.c \
   -Ltarget/release -ldgram -Wl,-rpath,"$PWD/target/release" -o build/echo
./build/echo
