#!/usr/bin/env bash
# Compiles c-tests/layout_check.c, the _Static_asserts that pin the size,
# alignment and field offsets of every struct of include/dgram.h (the same
# numbers src/types.rs asserts of the library), with the compilers a user
# may build the header with besides the host's own default (the C suite's
# CMake builds it that way):
#   - arm-none-eabi-gcc with the flags of NuttX's STM32F4-Discovery and
#     qemu-armv7a boards, each with the compiler's default enums, with
#     -fshort-enums and with -fno-short-enums: enums are short or int-sized
#     depending on the toolchain and its flags (Debian's arm-none-eabi-gcc
#     makes them short by default), which is why no struct of the header
#     holds one;
#   - the host's gcc, 64-bit with -fshort-enums, and on x86_64 also -m32
#     with and without it (gcc-multilib).
# Compile only (-fsyntax-only): no library is built for those targets.
# Installs gcc-arm-none-eabi (and gcc-multilib on x86_64) first when run
# as root. Exits non-zero when any
# compile fails, after running them all.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/need.sh
need gcc-arm-none-eabi:/usr/bin/arm-none-eabi-gcc gcc:gcc
if [[ $(uname -m) == x86_64 ]]; then
    # gcc -m32 needs glibc's 32-bit headers (libc6-dev-i386, which
    # gcc-multilib brings).
    need gcc-multilib:/usr/include/x86_64-linux-gnu/gnu/stubs-32.h
fi

# Warnings are errors, and pedantic ones too: the header must be plain C11.
common=(-std=c11 -fsyntax-only -Wall -Wextra -Werror -pedantic-errors -Iinclude)
# NuttX builds against its own libc, not the toolchain's newlib: for
# arm-none-eabi the header may need only the compiler's own headers
# (stdbool.h, stddef.h, stdint.h), which -ffreestanding enforces.
freestanding=(-ffreestanding)
stm32f4discovery=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
qemu_armv7a=(-mcpu=cortex-a7 -marm -mfloat-abi=hard -mfpu=neon-vfpv4)

failed=0
passed=0
# check NAME COMPILER FLAGS...: compiles the file, says what enum size the
# compiler used (ARM compilers tell it, __ARM_SIZEOF_MINIMAL_ENUM), and
# counts the result instead of stopping, so every compiler's answer shows.
check() {
    local name=$1 cc=$2
    shift 2
    local enums
    enums=$("$cc" "$@" -dM -E -x c /dev/null | sed -n 's/^#define __ARM_SIZEOF_MINIMAL_ENUM //p')
    echo "+ $cc ${common[*]} $* c-tests/layout_check.c"
    if "$cc" "${common[@]}" "$@" c-tests/layout_check.c; then
        echo "ok: $name${enums:+ (enums of $enums byte(s))}"
        passed=$((passed + 1))
    else
        echo "FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}

echo "== arm-none-eabi-gcc: $(arm-none-eabi-gcc -dumpversion)"
for enums in "" -fshort-enums -fno-short-enums; do
    check "STM32F4-Discovery${enums:+, $enums}" arm-none-eabi-gcc "${freestanding[@]}" "${stm32f4discovery[@]}" ${enums:+"$enums"}
    check "qemu-armv7a${enums:+, $enums}" arm-none-eabi-gcc "${freestanding[@]}" "${qemu_armv7a[@]}" ${enums:+"$enums"}
done

echo "== host gcc: $(gcc -dumpmachine) $(gcc -dumpversion)"
# The host's default build is the C suite's (c-tests/CMakeLists.txt); here
# only with short enums.
check "host, -fshort-enums" gcc -fshort-enums
# -m32 builds against glibc's 32-bit headers, as a 32-bit x86 user would,
# where 64-bit integers are only 4-aligned inside structs.
if [[ $(uname -m) == x86_64 ]]; then
    check "host -m32" gcc -m32
    check "host -m32, -fshort-enums" gcc -m32 -fshort-enums
fi

echo "layout: $passed passed, $failed failed"
((failed == 0))
