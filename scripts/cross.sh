#!/usr/bin/env bash
# scripts/cross.sh armhf|arm64 [--build-only]
#
# Cross-builds libdgram.so and libdgram.a for Raspberry Pi OS, cross-compiles
# the whole C suite against them and runs it under qemu-user. On a fresh
# Debian machine it first installs what it needs:
#   - Debian: the target's gcc, binutils and glibc (gcc-<triple>), qemu-user,
#     cmake, iproute2 and util-linux (for the network-namespace tests);
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

# bullseye_sysroot ARCH: prints a directory holding Debian bullseye's libc6
# for ARCH, downloaded (once) into build/ and verified against the release
# file signed by Debian's archive key.
bullseye_sysroot() {
    local deb_arch=$1 dir="$PWD/build/sysroot-bullseye-$1" mirror=http://deb.debian.org/debian
    if [[ -e $dir/.complete ]]; then
        echo "$dir"
        return
    fi
    local tmp
    tmp=$(mktemp -d)
    curl -fsS "$mirror/dists/bullseye/InRelease" -o "$tmp/InRelease"
    gpgv --quiet --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$tmp/InRelease" >&2
    local index_sha
    index_sha=$(awk -v f="main/binary-$deb_arch/Packages.xz" '/^SHA256:/{s=1; next} /^[^ ]/{s=0} s && $3 == f {print $1}' "$tmp/InRelease")
    curl -fsS "$mirror/dists/bullseye/main/binary-$deb_arch/Packages.xz" -o "$tmp/Packages.xz"
    echo "$index_sha  $tmp/Packages.xz" | sha256sum --check --quiet >&2
    local filename deb_sha
    read -r filename deb_sha < <(xz -dc "$tmp/Packages.xz" |
        awk '/^Package: libc6$/{p=1} p && /^Filename:/{f=$2} p && /^SHA256:/{h=$2} p && /^$/{print f, h; exit}')
    curl -fsS "$mirror/$filename" -o "$tmp/libc6.deb"
    echo "$deb_sha  $tmp/libc6.deb" | sha256sum --check --quiet >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$tmp/libc6.deb" "$dir"
    touch "$dir/.complete"
    rm -rf "$tmp"
    echo "$dir"
}

echo "== packages for $arch ($rust_target)"
missing=()
command -v "$triple-gcc" >/dev/null || missing+=("gcc-$triple")
command -v "$qemu" >/dev/null || missing+=(qemu-user)
command -v cmake >/dev/null || missing+=(cmake)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
command -v gpgv >/dev/null || missing+=(gpgv)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$rust_target"; then
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

# The suite above runs on bookworm's glibc (Debian's cross sysroot). Prove the
# floor too: the echo demo, compiled by zig for glibc 2.31, runs against the
# .so on Debian bullseye's own glibc 2.31 (what Raspberry Pi OS bullseye
# ships). The package is fetched from deb.debian.org and checked against the
# signed release file, as apt would.
if [[ $glibc_floor == 2.31 ]]; then
    echo "== load test on Debian bullseye's glibc 2.31"
    sysroot=$(bullseye_sysroot "$arch")
    zig_target=$([[ $arch == armhf ]] && echo arm-linux-gnueabihf || echo aarch64-linux-gnu)
    python3 -m ziglang cc -target "$zig_target.$glibc_floor" -O2 -Iinclude examples/echo.c \
        -L"$libdir" -ldgram -Wl,-rpath,"$libdir" -o "$build/echo_glibc_$glibc_floor"
    "$qemu" -L "$sysroot" "$build/echo_glibc_$glibc_floor"
    # Not the build machine's libc by accident: ask the emulated loader.
    "$qemu" -L "$sysroot" "$sysroot/lib/$triple/libc.so.6" | head -n 1
fi
