#!/usr/bin/env bash
# scripts/install.sh [--prefix DIR] [--libdir DIR] [--target RUST_TARGET] [--no-build]
#
# Installs libdgram under DIR (default /usr/local), or under $DESTDIR/DIR for
# a staged install (the files then still name DIR, as with `make install`):
#   LIBDIR/libdgram.so.X.Y.Z, LIBDIR/libdgram.so.X -> .so.X.Y.Z, LIBDIR/libdgram.so -> .so.X
#   LIBDIR/libdgram.a
#   include/dgram.h
#   LIBDIR/pkgconfig/dgram.pc                   (pkg-config --cflags --libs dgram)
#   LIBDIR/cmake/dgram/dgramConfig.cmake, dgramConfigVersion.cmake
#                                               (find_package(dgram) -> dgram::dgram)
#   bin/dgramjs                                 (when the JavaScript host is built:
#                                                scripts/test.sh builds it)
# LIBDIR is lib unless --libdir names another directory inside the prefix,
# relative to it or absolute (e.g. lib/x86_64-linux-gnu, Debian's multiarch
# directory); the pkg-config and CMake files name it.
#
# Builds the release library first (cargo build --release --locked) unless
# --no-build is given. --target RUST_TARGET installs a cross-built library
# from target/RUST_TARGET/release instead (build it first with
# scripts/cross.sh ARCH --build-only; nothing is built then, and bin/dgramjs,
# a program for the build machine, is left out).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/need.sh
source scripts/lib/need.sh

usage() {
    echo "usage: $0 [--prefix DIR] [--libdir DIR] [--target RUST_TARGET] [--no-build]" >&2
    exit 2
}
prefix=/usr/local
libdir_opt=lib
rust_target=
build=true
while (($#)); do
    case "$1" in
    --prefix | --libdir | --target)
        [[ $# -ge 2 ]] || { echo "$1 needs a value" >&2; exit 2; }
        case "$1" in
        --prefix) prefix=$2 ;;
        --libdir) libdir_opt=$2 ;;
        --target) rust_target=$2 ;;
        esac
        shift 2
        ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --libdir=*) libdir_opt=${1#--libdir=}; shift ;;
    --target=*) rust_target=${1#--target=}; shift ;;
    --no-build) build=false; shift ;;
    *) usage ;;
    esac
done
[[ $prefix == /* ]] || { echo "--prefix must be an absolute path: $prefix" >&2; exit 2; }
[[ $prefix == / ]] || prefix=${prefix%/}
# The CMake file finds the prefix by going up from its own directory, so the
# library directory has to be inside the prefix.
base=${prefix%/}
if [[ $libdir_opt == "$base"/* ]]; then
    libdir_rel=${libdir_opt#"$base"/}
elif [[ $libdir_opt == /* ]]; then
    echo "--libdir must be inside the prefix ($prefix): $libdir_opt" >&2
    exit 2
else
    libdir_rel=$libdir_opt
fi
libdir_rel=${libdir_rel%/}
if [[ -z $libdir_rel || /$libdir_rel/ == */../* || /$libdir_rel/ == */./* || $libdir_rel == *//* ]]; then
    echo "--libdir must name a directory below the prefix: $libdir_opt" >&2
    exit 2
fi

need coreutils:install sed:sed

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor patch <<<"$version"
[[ -n $major && -n $minor && -n $patch ]] || { echo "no version in Cargo.toml" >&2; exit 1; }

if [[ -n $rust_target ]]; then
    built=target/$rust_target/release
    hint="scripts/cross.sh ARCH --build-only"
else
    built=target/release
    hint="cargo build --release --locked"
    if $build; then
        command -v cargo >/dev/null || { echo "cargo is not installed (rustup)" >&2; exit 1; }
        cargo build --release --locked
    fi
fi
for file in "$built/libdgram.so" "$built/libdgram.a" include/dgram.h; do
    [[ -f $file ]] || { echo "$file is missing: build first ($hint)" >&2; exit 1; }
done

dest="${DESTDIR:-}$prefix"
libdir="$dest/$libdir_rel"
install -d "$libdir/pkgconfig" "$libdir/cmake/dgram" "$dest/include"
install -m 0755 "$built/libdgram.so" "$libdir/libdgram.so.$version"
ln -sfn "libdgram.so.$version" "$libdir/libdgram.so.$major"
ln -sfn "libdgram.so.$major" "$libdir/libdgram.so"
install -m 0644 "$built/libdgram.a" "$libdir/libdgram.a"
install -m 0644 include/dgram.h "$dest/include/dgram.h"

# From LIBDIR/cmake/dgram back up to the prefix: one ".." per component.
up=../..
IFS=/ read -ra parts <<<"$libdir_rel"
for _ in "${parts[@]}"; do up+=/..; done
fill() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR_REL@|$libdir_rel|g" -e "s|@CMAKE_TO_PREFIX@|$up|g" \
        -e "s|@VERSION@|$version|g" -e "s|@SOVERSION@|$major|g" \
        -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" "$1"
}
fill packaging/dgram.pc.in >"$libdir/pkgconfig/dgram.pc"
fill packaging/dgramConfig.cmake.in >"$libdir/cmake/dgram/dgramConfig.cmake"
fill packaging/dgramConfigVersion.cmake.in >"$libdir/cmake/dgram/dgramConfigVersion.cmake"
chmod 0644 "$libdir/pkgconfig/dgram.pc" "$libdir/cmake/dgram/"*.cmake

if [[ -z $rust_target && -x build/c-tests/js/dgramjs ]]; then
    install -d "$dest/bin"
    install -m 0755 build/c-tests/js/dgramjs "$dest/bin/dgramjs"
fi

echo "installed libdgram $version${rust_target:+ ($rust_target)} into ${DESTDIR:+$DESTDIR}$prefix (libraries in $libdir_rel)"
