#!/usr/bin/env bash
# test_install.sh SOURCE_DIR: installs the built libdgram into temporary
# prefixes (a staged DESTDIR install and a real one) and builds a consumer
# from each real install twice, through pkg-config and through
# find_package(dgram), then runs both. Exit 77 (skipped) when pkg-config or
# cmake is missing, unless DGRAM_TESTS_NO_SKIP is set.
set -euo pipefail
root=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() {
    if [[ -n ${DGRAM_TESTS_NO_SKIP:-} ]]; then
        echo "FAIL (skipping is not allowed here): $*" >&2
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
command -v pkg-config >/dev/null || skip "pkg-config is not installed"
command -v cmake >/dev/null || skip "cmake is not installed"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}

# A staged install: files land under DESTDIR, but name the final prefix.
DESTDIR="$tmp/stage" "$root/scripts/install.sh" --prefix /opt/dgram --no-build >/dev/null
staged="$tmp/stage/opt/dgram"
[[ -f $staged/lib/libdgram.so.$version ]] || fail "staged: no lib/libdgram.so.$version"
[[ $(readlink "$staged/lib/libdgram.so.$major") == "libdgram.so.$version" ]] || fail "staged: libdgram.so.$major link"
[[ $(readlink "$staged/lib/libdgram.so") == "libdgram.so.$major" ]] || fail "staged: libdgram.so link"
grep -qx 'prefix=/opt/dgram' "$staged/lib/pkgconfig/dgram.pc" || fail "staged: dgram.pc does not name /opt/dgram"
for f in lib/libdgram.a include/dgram.h lib/cmake/dgram/dgramConfig.cmake lib/cmake/dgram/dgramConfigVersion.cmake; do
    [[ -f $staged/$f ]] || fail "staged: no $f"
done
[[ ! -e $tmp/opt ]] || fail "a staged install wrote outside DESTDIR"

# A real install, then the two ways in.
prefix="$tmp/prefix"
"$root/scripts/install.sh" --prefix "$prefix" --no-build >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[[ $(pkg-config --modversion dgram) == "$version" ]] || fail "pkg-config --modversion: $(pkg-config --modversion dgram), Cargo.toml: $version"
consumer="$root/c-tests/install_consumer.c"

# shellcheck disable=SC2046 # pkg-config output is meant to be split
cc -Wall -Wextra -Werror "$consumer" $(pkg-config --cflags --libs dgram) \
    -Wl,-rpath,"$(pkg-config --variable=libdir dgram)" -o "$tmp/consumer-pkgconfig"
"$tmp/consumer-pkgconfig" || fail "the pkg-config consumer failed"

mkdir "$tmp/cmake-project"
cat >"$tmp/cmake-project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(dgram $version REQUIRED)
add_executable(consumer "$consumer")
target_link_libraries(consumer PRIVATE dgram::dgram)
CMAKE
cmake -S "$tmp/cmake-project" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cmake-build" >/dev/null
"$tmp/cmake-build/consumer" || fail "the find_package consumer failed"
# A version that is not compatible is refused.
sed -i "s/find_package(dgram $version REQUIRED)/find_package(dgram $((major + 1)).0 QUIET)\nif(dgram_FOUND)\n  message(FATAL_ERROR \"accepted an incompatible version\")\nendif()/" \
    "$tmp/cmake-project/CMakeLists.txt"
sed -i '/add_executable\|target_link_libraries/d' "$tmp/cmake-project/CMakeLists.txt"
cmake -S "$tmp/cmake-project" -B "$tmp/cmake-build2" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null ||
    fail "find_package accepted version $((major + 1)).0"
echo "ok: staged and real installs of $version, consumers through pkg-config and find_package"
