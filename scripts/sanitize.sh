#!/usr/bin/env bash
# Runs libdgram's tests under sanitizers, on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets it take -Zsanitizer), each in its own target dir:
#
#   1. the Rust unit tests (cargo test) under AddressSanitizer + LeakSanitizer;
#   2. the C suite (c-tests/, CTest, with whatever it includes) against a
#      libdgram built with AddressSanitizer, the C side compiled with
#      gcc -fsanitize=address (the valgrind variants and the ELF check are
#      left out: valgrind cannot run ASan binaries, and the ELF check is about
#      the release .so);
#   3. ThreadSanitizer, only where the toolchain has the rust-src component:
#      TSan needs the standard library instrumented too (-Zbuild-std), or it
#      reports false races in std's Arc and friends; otherwise it says SKIPPED;
#   4. Miri, only where the miri component is installed; otherwise SKIPPED.
#
# Exits non-zero if a step that ran failed; prints what ran and what could not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export RUSTC_BOOTSTRAP=1
host=$(rustc -vV | sed -n 's/^host: //p')
results=()
failed=0

step() { echo; echo "== $*"; }
record() { results+=("$1"); }

# ---- tools -----------------------------------------------------------------
if ! command -v cmake >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
    else
        echo "cmake is missing (apt-get install cmake)" >&2
        exit 1
    fi
fi
probe=$(mktemp -d)
echo 'int main(void) { return 0; }' >"$probe/t.c"
if ! cc -fsanitize=address "$probe/t.c" -o "$probe/t" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libasan8 >/dev/null || true
    fi
fi
c_asan=yes
cc -fsanitize=address "$probe/t.c" -o "$probe/t" 2>/dev/null || c_asan=no
rm -rf "$probe"

# ---- 1. Rust unit tests under ASan ---------------------------------------------
# --target is needed so that build scripts and proc macros are built without
# the sanitizer; the standard library stays uninstrumented (no -Zbuild-std),
# which ASan tolerates: it still sees every access made by libdgram's code.
asan_flags="-Zsanitizer=address -Cforce-frame-pointers=yes"
step "Rust unit tests under AddressSanitizer (target/asan)"
if RUSTFLAGS="$asan_flags" cargo test --release --locked --target "$host" --target-dir target/asan; then
    record "asan  cargo test: passed"
else
    record "asan  cargo test: FAILED"
    failed=1
fi

# ---- 2. C suite against an ASan libdgram --------------------------------------------
# The ASan libdgram.so does not carry the ASan runtime (rustc links it into
# executables only): the C programs bring it, from gcc -fsanitize=address.
step "C suite against libdgram built with AddressSanitizer (build/asan-c-tests)"
if [ $c_asan = no ]; then
    record "asan  C suite: SKIPPED (cc -fsanitize=address does not link: no libasan)"
elif RUSTFLAGS="$asan_flags" cargo build --release --locked --target "$host" --target-dir target/asan; then
    lib=$root/target/asan/$host/release
    build=build/asan-c-tests
    cmake -S c-tests -B "$build" -DDGRAM_LIB_DIR="$lib" -DDGRAM_MEMCHECK=OFF -DDGRAMJS_MEMCHECK=OFF \
        -DCMAKE_C_FLAGS="-fsanitize=address -fno-omit-frame-pointer" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" >/dev/null
    cmake --build "$build" -j"$(nproc)"
    # detect_leaks: LeakSanitizer at exit of every test program.
    if (cd "$build" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        ctest --output-on-failure -j"$(nproc)" --timeout 600 -LE memcheck -E '^elf_libdgram$'); then
        record "asan  C suite: passed"
    else
        record "asan  C suite: FAILED"
        failed=1
    fi
else
    record "asan  C suite: FAILED (ASan build of libdgram)"
    failed=1
fi

# ---- 3. ThreadSanitizer -------------------------------------------------------------
step "ThreadSanitizer"
sysroot=$(rustc --print sysroot)
if [ -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    if RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
        cargo test --release --locked -Zbuild-std --target "$host" --target-dir target/tsan; then
        record "tsan  cargo test: passed"
    else
        record "tsan  cargo test: FAILED"
        failed=1
    fi
else
    echo "SKIPPED: TSan needs -Zbuild-std, i.e. the rust-src component, which this toolchain lacks"
    echo "(rustup component add rust-src, where it can be fetched). Without it, rustc refuses to mix"
    echo "instrumented and uninstrumented crates, and forcing it (-Cunsafe-allow-abi-mismatch=sanitizer)"
    echo "gives only false races in std's uninstrumented Arc fences and in libtest."
    record "tsan  SKIPPED (no rust-src component for -Zbuild-std)"
fi

# ---- 4. Miri ------------------------------------------------------------------------
step "Miri"
if cargo miri --version >/dev/null 2>&1; then
    # Miri cannot run the I/O thread's syscalls (epoll, recvmmsg); the pure
    # unit tests (address parsing, batches, error codes) it can.
    if cargo miri test --locked --target-dir target/miri -- addr:: batch:: error::; then
        record "miri  cargo miri test (addr, batch, error): passed"
    else
        record "miri  cargo miri test: FAILED"
        failed=1
    fi
else
    echo "SKIPPED: cargo miri needs the miri component (nightly only), which this toolchain lacks."
    record "miri  SKIPPED (no miri component: nightly only)"
fi

echo
echo "== sanitizers: summary"
printf '  %s\n' "${results[@]}"
exit $failed
