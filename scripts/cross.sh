#!/usr/bin/env bash
# scripts/cross.sh armhf|arm64 [--build-only]
#
# Cross-builds libdgram.so and libdgram.a for Raspberry Pi OS, cross-compiles
# the whole C suite against them and runs it under qemu-user. On a fresh
# Debian machine it first installs what it needs:
#   - Debian: the target's gcc, binutils and glibc (gcc-<triple>,
#     libc6-dev-<arch>-cross), qemu-user, cmake, iproute2, util-linux and
#     mount (for the network-namespace tests), through scripts/lib/need.sh;
#   - rustup: the Rust standard library for the target;
#   - PyPI: cargo-zigbuild and ziglang, which link against an old glibc
#     (2.31, Raspberry Pi OS bullseye) so the .so loads on bullseye and on
#     bookworm. If PyPI cannot be reached, it links with Debian's cross gcc
#     instead: that .so needs glibc 2.34 and loads on bookworm only. With
#     DGRAM_TESTS_NO_SKIP=1 (as in CI) that fallback is an error.
#
# Output: target/<rust-target>/release/libdgram.{so,a}; the C suite is built
# in build/cross-<arch>. Needs root for apt-get and for the tests that make
# network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 armhf|arm64 [--build-only]" >&2
    exit 2
}

arch=${1:-}
build_only=false
if (($# == 2)) && [[ $2 == --build-only ]]; then
    build_only=true
elif (($# != 1)); then
    usage
fi

case "$arch" in
armhf)
    rust_target=armv7-unknown-linux-gnueabihf
    triple=arm-linux-gnueabihf
    qemu=qemu-arm
    processor=armv7l
    ;;
arm64)
    rust_target=aarch64-unknown-linux-gnu
    triple=aarch64-linux-gnu
    qemu=qemu-aarch64
    processor=aarch64
    ;;
*) usage ;;
esac

# The oldest glibc the library is linked for: Raspberry Pi OS bullseye's.
glibc_floor=2.31
zigbuild_version=0.24.1
ziglang_version=0.17.1

echo "== packages for $arch ($rust_target)"
source scripts/lib/need.sh
# The cross glibc (crt objects, the loader qemu runs) is only a Recommends of
# the cross gcc: name it, and check for its files, not for the gcc alone.
need "gcc-$triple:$triple-gcc" \
    "libc6-dev-$arch-cross:/usr/$triple/lib/Scrt1.o" \
    "libc6-dev-$arch-cross:/usr/$triple/lib/crti.o" \
    "libc6-$arch-cross:/usr/$triple/lib/libc.so.6" \
    "binutils-$triple:$triple-objdump" \
    qemu-user:"$qemu" \
    cmake:cmake \
    iproute2:ip \
    iproute2:tc \
    util-linux:nsenter \
    mount:mount
if ! grep -qx "$rust_target" <<<"$(rustup target list --installed)"; then
    rustup target add "$rust_target"
fi

echo "== build libdgram for $rust_target"
have_zigbuild() {
    command -v cargo-zigbuild >/dev/null && cargo-zigbuild --version >/dev/null 2>&1 &&
        python3 -m ziglang version >/dev/null 2>&1
}
if ! have_zigbuild; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "cargo-zigbuild==$zigbuild_version" "ziglang==$ziglang_version" || true
    hash -r
fi
if have_zigbuild; then
    # zig links against glibc stubs of the version named after the target.
    cargo zigbuild --release --locked --target "$rust_target.$glibc_floor"
else
    if [[ -n ${DGRAM_TESTS_NO_SKIP:-} ]]; then
        echo "cargo-zigbuild is unavailable: cannot link for glibc $glibc_floor" >&2
        exit 1
    fi
    echo "WARNING: cargo-zigbuild is unavailable; linking with $triple-gcc against" \
        "Debian's glibc: the .so will need glibc 2.34 (Raspberry Pi OS bookworm or later)" >&2
    glibc_floor=2.34
    target_var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$rust_target")_LINKER
    env "$target_var=$triple-gcc" cargo build --release --locked --target "$rust_target"
fi
libdir="$PWD/target/$rust_target/release"
ls -l "$libdir/libdgram.so" "$libdir/libdgram.a"

echo "== cross-compile the C suite"
build="build/cross-$arch"
# qemu -L: the target's loader and libraries come from Debian's cross sysroot.
cmake -S c-tests -B "$build" \
    -DCMAKE_SYSTEM_NAME=Linux \
    -DCMAKE_SYSTEM_PROCESSOR="$processor" \
    -DCMAKE_C_COMPILER="$triple-gcc" \
    -DCMAKE_CROSSCOMPILING_EMULATOR="$qemu;-L;/usr/$triple" \
    -DDGRAM_LIB_DIR="$libdir" \
    -DDGRAM_GLIBC_MAX="$glibc_floor" >/dev/null
cmake --build "$build" -j"$(nproc)"

if $build_only; then
    exit 0
fi
echo "== C suite under $qemu"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 600)

# The suite above runs on bookworm's glibc (Debian's cross sysroot). The
# floor itself is proved by what the binaries ask for: elf_libdgram checks
# that libdgram.so needs no GLIBC_ version above the floor, and here a
# consumer linked by zig against glibc 2.31's stubs (what Raspberry Pi OS
# bullseye ships) must need none above it either, and must run.
if [[ $glibc_floor == 2.31 ]]; then
    echo "== a consumer linked for glibc $glibc_floor"
    zig_target=$([[ $arch == armhf ]] && echo arm-linux-gnueabihf || echo aarch64-linux-gnu)
    echo_bin="$build/echo_glibc_$glibc_floor"
    python3 -m ziglang cc -target "$zig_target.$glibc_floor" -O2 -Iinclude examples/echo.c \
        -L"$libdir" -ldgram -Wl,-rpath,"$libdir" -o "$echo_bin"
    highest=$("$triple-objdump" -T "$echo_bin" "$libdir/libdgram.so" |
        grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
    echo "highest GLIBC_ version needed: $highest"
    if [[ $(printf '%s\n%s\n' "$highest" "$glibc_floor" | sort -V | tail -n 1) != "$glibc_floor" ]]; then
        echo "needs GLIBC_$highest, above the floor $glibc_floor" >&2
        exit 1
    fi
    "$qemu" -L "/usr/$triple" "$echo_bin"
fi
