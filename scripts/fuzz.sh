#!/usr/bin/env bash
# Fuzzes libdgram's C API for SECONDS (default 60): cargo-fuzz (libFuzzer) with
# AddressSanitizer and LeakSanitizer, on stable Rust (RUSTC_BOOTSTRAP=1), inside
# a network namespace of its own where only `lo` exists, so nothing the fuzzer
# does can leave the machine. See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS]     replay fuzz/regressions and fuzz/corpus, then fuzz
#   scripts/fuzz.sh --merge       minimise the work corpus into fuzz/corpus (to commit)
#   scripts/fuzz.sh --repro FILE  run one input, with a trace of every call
#
# Exits non-zero on any finding (crash, sanitizer report, leak, hang, failed
# oracle); the input that did it is in fuzz/artifacts/api_sequence/.
# Installs what is missing: cargo-fuzz (cargo install), iproute2 and util-linux
# (apt, as root). Environment: DGRAM_FUZZ_JOBS=N runs N fuzzing processes in
# parallel (default 1); extra libFuzzer flags go in DGRAM_FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=api_sequence

mode=fuzz
seconds=60
case "${1:-}" in
    --merge) mode=merge ;;
    --repro)
        mode=repro
        repro_file=$(realpath "${2:?usage: scripts/fuzz.sh --repro FILE}")
        ;;
    '') ;;
    *[!0-9]* | 0)
        echo "usage: scripts/fuzz.sh [SECONDS] | --merge | --repro FILE" >&2
        exit 2
        ;;
    *) seconds=$1 ;;
esac

# ---- tools -------------------------------------------------------------------
source scripts/lib/need.sh
need iproute2:ip util-linux:unshare gcc:cc libc6-dev:/usr/include/stdio.h
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

# The network namespace: as root `unshare -n`, else a user namespace too.
if [ "$(id -u)" = 0 ]; then
    netns=(unshare -n)
else
    netns=(unshare -rn)
fi
if ! "${netns[@]}" true 2>/dev/null; then
    echo "cannot make a network namespace (${netns[*]}): the fuzzer only runs isolated" >&2
    exit 1
fi

# ---- build -------------------------------------------------------------------
# cargo-fuzz needs nightly flags (-Zsanitizer, sancov); RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. Debug assertions and overflow checks
# are on (cargo-fuzz's default), in the library too.
echo "== build (cargo fuzz, AddressSanitizer)"
export RUSTC_BOOTSTRAP=1
cargo fuzz build "$target"
host=$(rustc -vV | sed -n 's/^host: //p')
bin=$root/fuzz/target/$host/release/$target

corpus=$root/fuzz/corpus/$target           # committed: seeds and a minimised corpus
work=$root/fuzz/corpus-work/$target        # grows while fuzzing (git-ignored)
regressions=$root/fuzz/regressions         # inputs that once failed: must pass now
artifacts=$root/fuzz/artifacts/$target     # what this run found (git-ignored)
mkdir -p "$corpus" "$work" "$regressions" "$artifacts"

# Runs "$@" inside a fresh network namespace with only lo, up.
isolated() {
    "${netns[@]}" sh -c 'ip link set lo up && exec "$@"' sh "$@"
}

# libFuzzer flags for every run: a stuck input is a hang after 30 s; the
# library reserves address space per context, so the RSS limit is generous.
common=(-timeout=30 -rss_limit_mb=4096 -max_len=4096 -artifact_prefix="$artifacts/")
# shellcheck disable=SC2206 # word splitting of the user's extra flags is wanted
extra=(${DGRAM_FUZZ_FLAGS:-})

case $mode in
repro)
    echo "== reproducing $repro_file (trace on)"
    DGRAM_FUZZ_TRACE=1 isolated "$bin" "${common[@]}" "${extra[@]}" "$repro_file"
    exit
    ;;
merge)
    echo "== merging $work and $corpus into a minimal $corpus"
    fresh=$(mktemp -d)
    isolated "$bin" "${common[@]}" -merge=1 "$fresh" "$corpus" "$work"
    find "$corpus" -type f ! -name 'seed-*' -delete
    # libFuzzer names inputs by their SHA-1: drop the copies of the seeds.
    for seed in "$corpus"/seed-*; do
        [ -e "$seed" ] && rm -f "$fresh/$(sha1sum "$seed" | cut -d' ' -f1)"
    done
    cp "$fresh"/* "$corpus"/ 2>/dev/null || true
    rm -rf "$fresh"
    echo "$(find "$corpus" -type f | wc -l) inputs, $(du -sh "$corpus" | cut -f1) in $corpus"
    exit
    ;;
esac

# ---- regressions and corpus: every input must pass -----------------------------
shopt -s nullglob
inputs=()
for f in "$regressions"/* "$corpus"/*; do
    case $f in *.c | *.md | *.txt) continue ;; esac # the C reproducers and notes
    inputs+=("$f")
done
if ((${#inputs[@]})); then
    echo "== replaying ${#inputs[@]} inputs of fuzz/regressions and fuzz/corpus"
    if ! isolated "$bin" "${common[@]}" "${extra[@]}" -runs=0 "${inputs[@]}" >"$artifacts/replay.log" 2>&1; then
        # Name every failing input (the run above stops at the first).
        for f in "${inputs[@]}"; do
            if ! isolated "$bin" "${common[@]}" "${extra[@]}" -runs=0 "$f" >"$artifacts/replay-one.log" 2>&1; then
                why=$(grep -m1 -E 'oracle failed|ERROR: AddressSanitizer|ERROR: LeakSanitizer|panicked at|precondition|ERROR: libFuzzer' "$artifacts/replay-one.log" || true)
                echo "FAILS: ${f#"$root"/}: $why" >&2
            fi
        done
        echo "FAILED: inputs of fuzz/regressions or fuzz/corpus fail (log: $artifacts/replay.log;" >&2
        echo "        see one with: scripts/fuzz.sh --repro FILE)" >&2
        exit 1
    fi
fi

# ---- fuzz ----------------------------------------------------------------------
jobs=${DGRAM_FUZZ_JOBS:-1}
echo "== fuzzing $target for ${seconds}s ($jobs process(es)), isolated in a network namespace"
before=$(find "$artifacts" -type f ! -name '*.log' | wc -l)
log=$artifacts/fuzz.log
fork=()
if ((jobs > 1)); then
    fork=(-fork="$jobs" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0)
fi
status=0
# A hard stop well past SECONDS, in case the fuzzer itself gets stuck.
timeout --kill-after=30 $((seconds + 300)) \
    "${netns[@]}" sh -c 'ip link set lo up && exec "$@"' sh \
    "$bin" "${common[@]}" "${fork[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    "${extra[@]}" "$work" "$corpus" >"$log" 2>&1 || status=$?
grep -E '^#[0-9]+[[:space:]]+(DONE|pulse)|^stat::|^INFO: (fuzzed|exiting)|^#[0-9]+: cov:' "$log" | tail -n 14 || true
after=$(find "$artifacts" -type f ! -name '*.log' | wc -l)
if ((status != 0 || after > before)); then
    grep -v '^    #' "$log" | grep -E -B2 -A25 'ERROR|oracle failed|Test unit written|deadly signal' | head -n 80 >&2 || tail -n 60 "$log" >&2
    echo "FAILED: the fuzzer found something (exit $status); input(s) in $artifacts, log $log" >&2
    echo "reproduce with: scripts/fuzz.sh --repro $artifacts/<file>" >&2
    exit 1
fi
echo "fuzz: ${seconds}s, no finding ($(find "$work" -type f | wc -l) inputs in the work corpus)"
