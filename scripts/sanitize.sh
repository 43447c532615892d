#!/usr/bin/env bash
# Runs libdgram's tests under sanitizers, each build in its own target dir:
#
#   1. asan: the Rust unit tests under AddressSanitizer + LeakSanitizer;
#   2. asan: the C suite against a libdgram built with ASan (gcc's runtime);
#   3. tsan: the Rust unit tests under ThreadSanitizer, with the standard
#      library instrumented too (-Zbuild-std, from the rust-src component),
#      or TSan reports false races inside std's Arc and channels;
#   4. tsan: the threaded C programs (every case of every program whose
#      callbacks or calls cross threads) against a TSan libdgram. The C side
#      is instrumented by gcc but linked against rustc's own TSan runtime:
#      gcc 12's libtsan lacks entry points (__tsan_memcpy and friends) that
#      rustc's LLVM emits. TSan runs under `setarch -R`: its shadow memory
#      layout does not fit the kernel's randomised high mmap addresses;
#   5. miri: the Rust unit tests Miri can run (see miri_tests below).
#
#   scripts/sanitize.sh          all five
#   scripts/sanitize.sh --ci     only 4 (what CI runs on every submission)
#
# Any sanitizer report is a failure. Installs what it needs: Debian packages
# through scripts/lib/need.sh, the rust-src component and a nightly
# toolchain with Miri through rustup. Exits non-zero if any step failed, and
# prints what ran.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib/need.sh

only_ci=false
case "${1:-}" in
    --ci) only_ci=true ;;
    "") ;;
    *) echo "usage: $0 [--ci]" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
host=$(rustc -vV | sed -n 's/^host: //p')
results=()
failed=0

step() { echo; echo "== $*"; }
# run LABEL COMMAND...: runs a step and records how it ended.
run() {
    local label=$1
    shift
    if "$@"; then
        results+=("$label: passed")
    else
        results+=("$label: FAILED")
        failed=1
    fi
}

# ---- tools -----------------------------------------------------------------
need_c_suite
need "libasan8:/usr/lib/$(gcc -print-multiarch)/libasan.so.8"
sysroot=$(rustc --print sysroot)
if [[ ! -d $sysroot/lib/rustlib/src/rust/library ]]; then
    echo "== installing (rustup): rust-src"
    rustup component add rust-src
fi
tsan_rt=$sysroot/lib/rustlib/$host/lib/librustc-stable_rt.tsan.a
[[ -f $tsan_rt ]] || { echo "no TSan runtime at $tsan_rt" >&2; exit 1; }
if ! $only_ci && ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "== installing (rustup): nightly with miri"
    rustup toolchain install nightly --profile minimal --component miri,rust-src
fi

# c_suite BUILD_DIR LIB_DIR COMPILE_FLAGS LINK_FLAGS [EXCLUDE] [RUNNER...]:
# configures and builds the C suite against the libdgram in LIB_DIR and runs
# its CTest entries (under RUNNER, if given), less valgrind's, the release
# build's ELF, install and package checks, and those EXCLUDE matches.
c_suite() {
    local build=$1 lib=$2 cflags=$3 ldflags=$4 exclude=${5:-}
    shift 4
    (($#)) && shift
    local skip='^(elf_libdgram|install_and_consume|deb_install_and_consume)$'
    [[ -n $exclude ]] && skip="$skip|$exclude"
    cmake -S c-tests -B "$build" -DDGRAM_LIB_DIR="$lib" -DDGRAM_MEMCHECK=OFF -DDGRAMJS_MEMCHECK=OFF \
        -DDGRAM_C_COMPILE_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
    (cd "$build" && "$@" ctest --output-on-failure -j"$(nproc)" --timeout 600 -LE memcheck -E "$skip")
}

asan_flags="-Zsanitizer=address -Cforce-frame-pointers=yes"
tsan_flags="-Zsanitizer=thread -Cforce-frame-pointers=yes"

if ! $only_ci; then
    # --target keeps build scripts and proc macros uninstrumented; std stays
    # uninstrumented too, which ASan tolerates.
    step "asan: Rust unit tests (target/asan)"
    run "asan  cargo test" env RUSTFLAGS="$asan_flags" \
        cargo test --release --locked --target "$host" --target-dir target/asan

    # The ASan libdgram.so does not carry the ASan runtime (rustc links it
    # into executables only): the C programs bring it, from gcc's libasan.
    step "asan: C suite against an ASan libdgram (build/asan-c-tests)"
    asan_c() {
        RUSTFLAGS="$asan_flags" cargo build --release --locked --target "$host" --target-dir target/asan &&
            ASAN_OPTIONS=detect_leaks=1 c_suite build/asan-c-tests "$root/target/asan/$host/release" \
                "-fsanitize=address -fno-omit-frame-pointer" "-fsanitize=address"
    }
    run "asan  C suite" asan_c

    step "tsan: Rust unit tests, std instrumented (target/tsan)"
    run "tsan  cargo test" env RUSTFLAGS="$tsan_flags" RUSTDOCFLAGS="-Zsanitizer=thread" \
        setarch -R cargo test --release --locked -Zbuild-std --target "$host" --target-dir target/tsan
fi

# The programs whose cases make callbacks or calls cross threads: I/O-thread
# dispatch, calls from other threads, close and free racing delivery, the
# lookup thread. The others run on one host thread beside the I/O thread
# too, so they are included as well: every program of the suite but the
# examples that only wait on stdin.
step "tsan: threaded C programs against a TSan libdgram (build/tsan-c-tests)"
tsan_c() {
    RUSTFLAGS="$tsan_flags" cargo build --release --locked -Zbuild-std --target "$host" \
        --target-dir target/tsan || return 1
    # rustc's runtime, whole (its interceptors must replace libc's), with
    # its symbols exported for the instrumented libdgram.so to bind to.
    local ldflags="-rdynamic -Wl,--whole-archive $tsan_rt -Wl,--no-whole-archive -lpthread -ldl -lm -lrt"
    # TSAN_OPTIONS: a report fails the case (exitcode), suppressions in
    # c-tests/tsan.supp, each commented.
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$root/c-tests/tsan.supp" \
        c_suite build/tsan-c-tests "$root/target/tsan/$host/release" \
        "-fsanitize=thread -fno-omit-frame-pointer" "$ldflags" '^(js_|example_multicast_chat)' setarch -R
}
run "tsan  C programs" tsan_c

if ! $only_ci; then
    # Miri interprets; it has no socket, epoll, eventfd or recvmmsg. The
    # unit tests that need one are marked `cfg_attr(miri, ignore = why)`
    # and listed as ignored, with the reason: those of addr:: that look up
    # interfaces through a socket, and those of batch:: and context:: that
    # start a context with its I/O thread. The rest run: address parsing,
    # the error table, the send queue's bounds and destination cache.
    step "miri: the Rust unit tests"
    run "miri  cargo miri test --lib" env -u RUSTC_BOOTSTRAP \
        cargo +nightly miri test --locked --lib --target-dir target/miri
fi

echo
echo "== sanitizers: summary"
printf '  %s\n' "${results[@]}"
exit $failed
