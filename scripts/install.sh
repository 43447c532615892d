#!/usr/bin/env bash
# scripts/install.sh [--prefix DIR] [--no-build]
#
# Installs libdgram under DIR (default /usr/local), or under $DESTDIR/DIR for
# a staged install (the files then still name DIR, as with `make install`):
#   lib/libdgram.so.X.Y.Z, lib/libdgram.so.X -> .so.X.Y.Z, lib/libdgram.so -> .so.X
#   lib/libdgram.a
#   include/dgram.h
#   lib/pkgconfig/dgram.pc                      (pkg-config --cflags --libs dgram)
#   lib/cmake/dgram/dgramConfig.cmake, dgramConfigVersion.cmake
#                                               (find_package(dgram) -> dgram::dgram)
#   bin/dgramjs                                 (when the JavaScript host is built:
#                                                scripts/test.sh builds it)
# Builds the release library first (cargo build --release --locked) unless
# --no-build is given.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
build=true
while (($#)); do
    case "$1" in
    --prefix)
        [[ $# -ge 2 ]] || { echo "--prefix needs a directory" >&2; exit 2; }
        prefix=$2
        shift 2
        ;;
    --prefix=*)
        prefix=${1#--prefix=}
        shift
        ;;
    --no-build)
        build=false
        shift
        ;;
    *)
        echo "usage: $0 [--prefix DIR] [--no-build]" >&2
        exit 2
        ;;
    esac
done
[[ $prefix == /* ]] || { echo "--prefix must be an absolute path: $prefix" >&2; exit 2; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor patch <<<"$version"
[[ -n $major && -n $minor && -n $patch ]] || { echo "no version in Cargo.toml" >&2; exit 1; }

if $build; then
    cargo build --release --locked
fi
built=target/release
for file in "$built/libdgram.so" "$built/libdgram.a" include/dgram.h; do
    [[ -f $file ]] || { echo "$file is missing: build first (cargo build --release)" >&2; exit 1; }
done

dest="${DESTDIR:-}$prefix"
libdir="$dest/lib"
install -d "$libdir/pkgconfig" "$libdir/cmake/dgram" "$dest/include"
install -m 0755 "$built/libdgram.so" "$libdir/libdgram.so.$version"
ln -sfn "libdgram.so.$version" "$libdir/libdgram.so.$major"
ln -sfn "libdgram.so.$major" "$libdir/libdgram.so"
install -m 0644 "$built/libdgram.a" "$libdir/libdgram.a"
install -m 0644 include/dgram.h "$dest/include/dgram.h"

fill() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@SOVERSION@|$major|g" \
        -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" "$1"
}
fill packaging/dgram.pc.in >"$libdir/pkgconfig/dgram.pc"
fill packaging/dgramConfig.cmake.in >"$libdir/cmake/dgram/dgramConfig.cmake"
fill packaging/dgramConfigVersion.cmake.in >"$libdir/cmake/dgram/dgramConfigVersion.cmake"
chmod 0644 "$libdir/pkgconfig/dgram.pc" "$libdir/cmake/dgram/"*.cmake

if [[ -x build/c-tests/js/dgramjs ]]; then
    install -d "$dest/bin"
    install -m 0755 build/c-tests/js/dgramjs "$dest/bin/dgramjs"
fi

echo "installed libdgram $version into ${DESTDIR:+$DESTDIR}$prefix"
