#!/usr/bin/env bash
# check_elf.sh LIBDIR CLASS MACHINE GLIBC_MAX
#
# Checks the libdgram.so and libdgram.a in LIBDIR as built for the platform
# users will load them on:
#   - ELF class (ELF32/ELF64) and machine (as readelf -h names it: ARM,
#     AArch64, "Advanced Micro Devices X86-64") of the .so and of every
#     object in the .a;
#   - SONAME libdgram.so.0;
#   - NEEDED: only parts of glibc (libc, libpthread, libdl, the dynamic
#     loader) and libgcc_s; anything else would have to be installed on the
#     target first;
#   - the highest GLIBC_x.y symbol version the .so needs is at most
#     GLIBC_MAX: that is what decides the oldest distribution it loads on;
#   - the only symbols it exports are dgram_*.
#
# readelf reads ELF files of every architecture, so this runs on the build
# machine, not under the emulator. It prints what it found, so a CI log shows
# the figures even when they pass.
set -euo pipefail

if (($# != 4)); then
    echo "usage: $0 LIBDIR CLASS MACHINE GLIBC_MAX" >&2
    exit 2
fi
libdir=$1 want_class=$2 want_machine=$3 glibc_max=$4
so="$libdir/libdgram.so"
archive="$libdir/libdgram.a"
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

for file in "$so" "$archive"; do
    [[ -f $file ]] || { echo "FAIL: $file not found" >&2; exit 1; }
done

# Class and machine of the .so and of every object in the .a: each distinct
# value once.
headers=$(readelf -h "$so" "$archive" 2>/dev/null)
classes=$(sed -n 's/^[[:space:]]*Class:[[:space:]]*//p' <<<"$headers" | sort -u)
machines=$(sed -n 's/^[[:space:]]*Machine:[[:space:]]*//p' <<<"$headers" | sort -u)
objects=$(grep -c 'Machine:' <<<"$headers" || true)
echo "class: $(echo $classes); machine: $(echo $machines) (.so and $((objects - 1)) objects in libdgram.a)"
[[ $classes == "$want_class" ]] || fail "class $(echo $classes), expected $want_class"
[[ $machines == "$want_machine" ]] || fail "machine '$(echo $machines)', expected '$want_machine'"
((objects > 1)) || fail "libdgram.a holds no object"

soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
echo "SONAME: $soname"
[[ $soname == libdgram.so.0 ]] || fail "SONAME '$soname', expected libdgram.so.0"

needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "NEEDED: $(echo $needed)"
for lib in $needed; do
    case "$lib" in
    libc.so.6 | libpthread.so.0 | libdl.so.2 | libgcc_s.so.1) ;;
    ld-linux*.so.*) ;; # the dynamic loader: glibc's, every program has it
    *) fail "needs $lib, which is not part of glibc or libgcc" ;;
    esac
done

# The version-needs section lists every GLIBC_x.y the .so asks for.
highest=$(readelf -V -W "$so" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -V | tail -n 1)
echo "highest GLIBC symbol version needed: ${highest:-none} (allowed: $glibc_max)"
if [[ -n $highest ]] && [[ $(printf '%s\n%s\n' "$highest" "$glibc_max" | sort -V | tail -n 1) != "$glibc_max" ]]; then
    fail "needs GLIBC_$highest, newer than the documented minimum glibc $glibc_max"
fi

exports=$(readelf --dyn-syms -W "$so" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort -u)
count=$(grep -c '^dgram_' <<<"$exports" || true)
echo "exported: $count dgram_* symbols"
((count > 0)) || fail "exports no dgram_* symbol"
strays=$(grep -v '^dgram_' <<<"$exports" || true)
[[ -z $strays ]] || fail "exports symbols outside the dgram_ namespace: $(echo $strays)"

if ((failures)); then
    exit 1
fi
echo "ok"
