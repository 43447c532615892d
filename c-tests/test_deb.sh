#!/usr/bin/env bash
# test_deb.sh SOURCE_DIR [--no-build]
#
# The Debian packages of scripts/package-deb.sh, as a user gets them:
#   1. builds the amd64 pair into build/deb/ (with --no-build: takes the
#      .debs there, or packages target/release without building);
#   2. inspects every pair in build/deb/ of this version (amd64, and armhf and
#      arm64 when they exist) without installing: dpkg-deb --info fields
#      (Architecture, Multi-Arch, Depends against the .so's own version
#      needs), --contents (exact paths and links), the control files, md5sums,
#      readelf of the .so and .a inside (class, machine, SONAME, stripped),
#      and that the paths shared by all architectures have the same bytes
#      (Multi-Arch: same);
#   3. installs the amd64 pair with apt-get, checks dpkg -L, dpkg --verify and
#      the loader cache, builds c-tests/install_consumer.c through pkg-config
#      and through find_package(dgram) (dgram::dgram and dgram::dgram_static)
#      and runs them (127.0.0.1 only);
#   4. purges both packages (also when a step fails) and checks nothing of
#      them is left.
# Needs root on an amd64 machine: else exit 77 (skipped), unless
# DGRAM_TESTS_NO_SKIP is set. Refuses to run (exit 1) when libdgram is
# installed or visible already (a package, files in /usr, a dgram.pc, the
# loader cache): the test would then check that other copy, and removing the
# packages afterwards would not leave the machine as it was.
set -euo pipefail
root=$(cd "${1:?usage: $0 SOURCE_DIR [--no-build]}" && pwd)
shift
build=true
if (($# == 1)) && [[ $1 == --no-build ]]; then
    build=false
elif (($#)); then
    echo "usage: $0 SOURCE_DIR [--no-build]" >&2
    exit 2
fi

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
# oneline TEXT: the lines of TEXT joined by spaces, for messages.
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }
[[ $(id -u) == 0 ]] || skip "installs packages: needs root"
command -v dpkg >/dev/null || skip "not a Debian system (no dpkg)"
[[ $(dpkg --print-architecture) == amd64 ]] || skip "installs the amd64 packages: this is $(dpkg --print-architecture)"

# shellcheck source=scripts/lib/need.sh
source "$root/scripts/lib/need.sh"
need dpkg:dpkg-deb apt:apt-get binutils:readelf cmake:cmake gcc:cc make:make \
    libc6-dev:/usr/include/stdio.h pkg-config:pkg-config

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
IFS=. read -r major minor _ <<<"$version"
runtime=libdgram$major
dev=libdgram-dev
debdir=$root/build/deb
# The build machine's own pkg-config and CMake search paths only.
unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR CMAKE_PREFIX_PATH

# Nothing of libdgram may be there before: not a package, not its files, and
# nothing the loader, pkg-config or find_package would find instead.
for pkg in "$runtime" "$dev"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ -n $status && $status != not-installed ]]; then
        fail "$pkg is on this machine already ($status), not installed by this test; remove it first: apt-get purge $runtime $dev"
    fi
done
present=$(find /usr/include /usr/local/include /usr/lib /usr/local/lib -maxdepth 4 \
    \( -name dgram.h -o -name 'libdgram.*' -o -name dgram.pc -o -name dgramConfig.cmake \) \
    -print 2>/dev/null || true)
[[ -z $present ]] || fail "libdgram files are installed already (not by this test): $(oneline "$present")"
! pkg-config --exists dgram || fail "pkg-config finds a dgram already: $(pkg-config --variable=pcfiledir dgram)"
cache=$(ldconfig -p | grep libdgram || true)
[[ -z $cache ]] || fail "the loader cache lists a libdgram already: $cache"

tmp=$(mktemp -d)
installed=false
purge() {
    apt-get purge -y -qq -o DPkg::Lock::Timeout=300 "$dev" "$runtime" >/dev/null ||
        dpkg --purge "$dev" "$runtime" >/dev/null
}
cleanup() {
    local rc=$?
    if $installed; then
        echo "removing the packages after a failure" >&2
        purge || echo "FAIL: could not purge $runtime $dev: remove them by hand" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

rt_deb=$debdir/${runtime}_${version}_amd64.deb
dev_deb=$debdir/${dev}_${version}_amd64.deb
if ! $build && [[ -f $rt_deb && -f $dev_deb ]]; then
    echo "== taking $rt_deb and $dev_deb"
elif $build; then
    "$root/scripts/package-deb.sh" amd64 >"$tmp/package.log" 2>&1 || { cat "$tmp/package.log" >&2; fail "scripts/package-deb.sh amd64"; }
else
    "$root/scripts/package-deb.sh" amd64 --no-build >"$tmp/package.log" 2>&1 || { cat "$tmp/package.log" >&2; fail "scripts/package-deb.sh amd64 --no-build"; }
fi
[[ -f $rt_deb && -f $dev_deb ]] || fail "no $rt_deb and $dev_deb"

# --- inspection, for every architecture built -------------------------------

# field DEB NAME: one control field.
field() { dpkg-deb -f "$1" "$2"; }
# listing DEB: the paths in a .deb, links with their targets, no directories.
listing() {
    dpkg-deb --contents "$1" | awk '$1 !~ /^d/ { sub(/^\.\//, "/", $6); p = $6; if ($7 == "->") p = p " -> " $8; print p }' | sort
}
# version_needs SO PREFIX: the highest PREFIX (GLIBC_, GCC_) version needed.
version_needs() {
    readelf -V -W "$1" | sed -n '/^Version needs section/,$p' |
        grep -o "Name: $2[0-9.]*" | sed "s/Name: $2//" | sort -V | tail -n 1
}
# at_most A B: version A <= version B.
at_most() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1) == "$2" ]]; }

inspect() {
    local arch=$1 multiarch elf_class elf_machine floor
    case "$arch" in
    amd64) multiarch=x86_64-linux-gnu elf_class=ELF64 elf_machine="Advanced Micro Devices X86-64" floor=2.34 ;;
    armhf) multiarch=arm-linux-gnueabihf elf_class=ELF32 elf_machine=ARM floor=2.31 ;;
    arm64) multiarch=aarch64-linux-gnu elf_class=ELF64 elf_machine=AArch64 floor=2.31 ;;
    esac
    local rt=$debdir/${runtime}_${version}_$arch.deb dv=$debdir/${dev}_${version}_$arch.deb
    local lib=/usr/lib/$multiarch x=$tmp/x-$arch deb name
    for deb in "$rt" "$dv"; do
        name=$(basename "$deb")
        [[ $(field "$deb" Version) == "$version" ]] || fail "$name: Version $(field "$deb" Version)"
        [[ $(field "$deb" Architecture) == "$arch" ]] || fail "$name: Architecture $(field "$deb" Architecture)"
        [[ $(field "$deb" Multi-Arch) == same ]] || fail "$name: Multi-Arch '$(field "$deb" Multi-Arch)'"
        mkdir -p "$x/$name/DEBIAN"
        dpkg-deb -x "$deb" "$x/$name"
        dpkg-deb -e "$deb" "$x/$name/DEBIAN"
        (cd "$x/$name" && md5sum --check --quiet DEBIAN/md5sums) || fail "$name: md5sums do not match the files"
    done
    [[ $(field "$rt" Package) == "$runtime" && $(field "$dv" Package) == "$dev" ]] || fail "$arch: package names"
    [[ $(field "$rt" Section) == libs && $(field "$dv" Section) == libdevel ]] || fail "$arch: sections"

    diff -u <(printf '%s\n' "$lib/libdgram.so.$major -> libdgram.so.$version" "$lib/libdgram.so.$version" \
        "/usr/share/doc/$runtime/changelog.gz" "/usr/share/doc/$runtime/copyright" \
        "/usr/share/lintian/overrides/$runtime" | sort) <(listing "$rt") ||
        fail "$(basename "$rt"): unexpected contents"
    diff -u <(printf '%s\n' /usr/include/dgram.h "$lib/libdgram.a" "$lib/libdgram.so -> libdgram.so.$major" \
        "$lib/pkgconfig/dgram.pc" "$lib/cmake/dgram/dgramConfig.cmake" "$lib/cmake/dgram/dgramConfigVersion.cmake" \
        "/usr/share/doc/$dev/changelog.gz" "/usr/share/doc/$dev/copyright" | sort) <(listing "$dv") ||
        fail "$(basename "$dv"): unexpected contents"

    local rx dx
    rx=$x/$(basename "$rt")
    dx=$x/$(basename "$dv")
    local so=$rx$lib/libdgram.so.$version headers class machine soname needed glibc depends want
    headers=$(readelf -h "$so" "$dx$lib/libdgram.a" 2>/dev/null)
    class=$(sed -n 's/^ *Class: *//p' <<<"$headers" | sort -u)
    machine=$(sed -n 's/^ *Machine: *//p' <<<"$headers" | sort -u)
    [[ $class == "$elf_class" && $machine == "$elf_machine" ]] || fail "$arch: .so and .a are $(oneline "$class") $(oneline "$machine")"
    soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [[ $soname == "libdgram.so.$major" ]] || fail "$arch: SONAME $soname"
    ! grep -qE ' \.(symtab|debug_[a-z]+) ' <<<"$(readelf -S -W "$so")" || fail "$arch: the .so is not stripped"
    ! grep -qE ' \.debug_[a-z]+ ' <<<"$(readelf -S -W "$dx$lib/libdgram.a" 2>/dev/null)" || fail "$arch: the .a has debug info"

    # Depends: libc6 at the highest GLIBC_ version the .so needs (never above
    # the documented floor), libgcc-s1 exactly when it needs libgcc_s.
    needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    glibc=$(version_needs "$so" GLIBC_)
    at_most "$glibc" "$floor" || fail "$arch: the .so needs glibc $glibc, above the floor $floor"
    depends=$(field "$rt" Depends)
    want="libc6 \\(>= ${glibc//./\\.}\\)"
    if grep -qx libgcc_s.so.1 <<<"$needed"; then
        want+=", libgcc-s1 \\(>= [0-9.]+\\)"
    fi
    [[ $depends =~ ^$want$ ]] || fail "$arch: Depends '$depends'; NEEDED $(oneline "$needed"), GLIBC_$glibc"
    [[ $(field "$dv" Depends) == "$runtime (= $version)" ]] || fail "$arch: $dev Depends '$(field "$dv" Depends)'"
    [[ $(cat "$rx/DEBIAN/shlibs") == "libdgram $major $runtime (>= $version), $runtime (<< $major.$((minor + 1))~)" ]] ||
        fail "$arch: shlibs '$(cat "$rx/DEBIAN/shlibs")'"
    [[ $(cat "$rx/DEBIAN/triggers") == "activate-noawait ldconfig" ]] || fail "$arch: triggers '$(cat "$rx/DEBIAN/triggers")'"
    grep -qx "libdir=\${exec_prefix}/lib/$multiarch" "$dx$lib/pkgconfig/dgram.pc" || fail "$arch: dgram.pc libdir"
    grep -q "\"\${_dgram_prefix}/lib/$multiarch\"" "$dx$lib/cmake/dgram/dgramConfig.cmake" || fail "$arch: dgramConfig.cmake libdir"
    cmp -s "$dx/usr/include/dgram.h" "$root/include/dgram.h" || fail "$arch: dgram.h differs from include/dgram.h"

    # Multi-Arch: same: a path outside /usr/lib/<multiarch> is in the package
    # of every architecture, and dpkg installs them side by side only if it
    # has the same bytes in each.
    if [[ $arch != amd64 ]]; then
        local ref path
        for deb in "$rt" "$dv"; do
            ref=$tmp/x-amd64/$(basename "${deb/_$arch.deb/_amd64.deb}")
            while read -r path; do
                cmp -s "$x/$(basename "$deb")$path" "$ref$path" || fail "$arch: $path differs from amd64's"
            done < <(listing "$deb" | grep -v "^$lib/")
        done
    fi
    echo "ok: ${runtime}_${version}_$arch.deb, ${dev}_${version}_$arch.deb: $(oneline "$class") $elf_machine, SONAME $soname, Depends: $depends"
}

echo "== inspect the packages"
inspect amd64
for arch in armhf arm64; do
    if [[ -f $debdir/${runtime}_${version}_$arch.deb && -f $debdir/${dev}_${version}_$arch.deb ]]; then
        inspect "$arch"
    else
        echo "(no $arch packages of $version in build/deb: not inspected)"
    fi
done

# --- installed ---------------------------------------------------------------

multiarch=x86_64-linux-gnu
lib=/usr/lib/$multiarch
runtime_files=("$lib/libdgram.so.$version" "$lib/libdgram.so.$major" "/usr/share/doc/$runtime/copyright"
    "/usr/share/doc/$runtime/changelog.gz" "/usr/share/lintian/overrides/$runtime")
dev_files=(/usr/include/dgram.h "$lib/libdgram.a" "$lib/libdgram.so" "$lib/pkgconfig/dgram.pc"
    "$lib/cmake/dgram/dgramConfig.cmake" "$lib/cmake/dgram/dgramConfigVersion.cmake"
    "/usr/share/doc/$dev/copyright" "/usr/share/doc/$dev/changelog.gz")

echo "== install"
installed=true
# apt-get (not dpkg -i): it must find the dependencies on this machine.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "$rt_deb" "$dev_deb" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log" >&2; fail "apt-get install"; }
for pkg in "$runtime" "$dev"; do
    [[ $(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg") == "ii  $version" ]] ||
        fail "$pkg: $(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg")"
done

# dpkg -L: exactly these files and links; directories aside.
# listed PKG: what dpkg -L lists, without directories.
listed() {
    local p
    dpkg -L "$1" | while read -r p; do
        [[ -d $p && ! -L $p ]] || echo "$p"
    done | sort
}
diff -u <(printf '%s\n' "${runtime_files[@]}" | sort) <(listed "$runtime") || fail "dpkg -L $runtime"
diff -u <(printf '%s\n' "${dev_files[@]}" | sort) <(listed "$dev") || fail "dpkg -L $dev"
verify=$(dpkg --verify "$runtime" "$dev" 2>&1) || true
[[ -z $verify ]] || fail "dpkg --verify: $verify"
# The ldconfig trigger has run. With merged /usr the loader may name the
# directory through the link /lib -> usr/lib.
lib_re="(/usr)?/lib/$multiarch"
grep -qE "libdgram\.so\.$major \(.*\) => $lib_re/libdgram\.so\.$major\$" <<<"$(ldconfig -p)" ||
    fail "ldconfig -p does not list $lib/libdgram.so.$major: $(ldconfig -p | grep libdgram || true)"

echo "== consumer through pkg-config"
consumer=$root/c-tests/install_consumer.c
[[ $(pkg-config --modversion dgram) == "$version" ]] || fail "pkg-config --modversion: $(pkg-config --modversion dgram)"
[[ $(pkg-config --variable=libdir dgram) == "$lib" ]] || fail "pkg-config libdir: $(pkg-config --variable=libdir dgram)"
# shellcheck disable=SC2046 # pkg-config output is meant to be split
cc -Wall -Wextra -Werror "$consumer" $(pkg-config --cflags --libs dgram) -o "$tmp/consumer-pkgconfig"
# No rpath: the loader must find the library through its cache.
grep -qE "libdgram\.so\.$major => $lib_re/libdgram\.so\.$major " <<<"$(ldd "$tmp/consumer-pkgconfig")" ||
    fail "the pkg-config consumer does not load $lib/libdgram.so.$major"
"$tmp/consumer-pkgconfig" || fail "the pkg-config consumer failed"

# cmake_consumer NAME DGRAM_DIR [VAR=VALUE...]: configures, builds and runs a throwaway
# project that must find the installed package in DGRAM_DIR through
# CMake's own search (VAR=VALUE: the environment for that).
cmake_consumer() {
    local name=$1 want_dir=$2
    shift 2
    local src=$tmp/$name
    mkdir -p "$src"
    cat >"$src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(dgram $major.$minor REQUIRED)
if(NOT dgram_DIR STREQUAL "$want_dir")
  message(FATAL_ERROR "found dgram in \${dgram_DIR}, expected $want_dir")
endif()
add_executable(app "$consumer")
target_link_libraries(app PRIVATE dgram::dgram)
if(NOT TARGET dgram::dgram_static)
  message(FATAL_ERROR "the package offers no dgram::dgram_static")
endif()
add_executable(app_static "$consumer")
target_link_libraries(app_static PRIVATE dgram::dgram_static)
CMAKE
    env "$@" cmake -S "$src" -B "$src/build" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/$name.log" 2>&1 ||
        { cat "$tmp/$name.log" >&2; fail "$name: cmake configure"; }
    cmake --build "$src/build" -j2 >>"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log" >&2; fail "$name: cmake build"; }
    grep -q "NEEDED.*\[libdgram.so.$major\]" <<<"$(readelf -d "$src/build/app")" || fail "$name: app does not need libdgram.so.$major"
    ! grep -q 'NEEDED.*libdgram' <<<"$(readelf -d "$src/build/app_static")" || fail "$name: app_static needs libdgram.so"
    "$src/build/app" || fail "$name: the dgram::dgram consumer failed"
    "$src/build/app_static" || fail "$name: the dgram::dgram_static consumer failed"
}
echo "== consumers through find_package(dgram $major.$minor)"
cmake_consumer cmake "$lib/cmake/dgram"
# With merged /usr, a PATH that names /bin before /usr/bin makes CMake find
# the package under the prefix / (through the link /lib -> usr/lib): the
# config must still name /usr/include and /usr/lib/<multiarch>.
if [[ -L /lib && $(readlink -f /lib) == /usr/lib ]]; then
    echo "== the same, found through /lib -> usr/lib"
    cmake_consumer cmake-merged-usr "/lib/$multiarch/cmake/dgram" PATH="/bin:$PATH"
fi

echo "== purge"
installed=false
purge || fail "apt-get purge $dev $runtime"
for pkg in "$runtime" "$dev"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ -z $status || $status == not-installed ]] || fail "$pkg is still known to dpkg: $status"
done
for path in "${runtime_files[@]}" "${dev_files[@]}" "/usr/share/doc/$runtime" "/usr/share/doc/$dev" "$lib/cmake/dgram"; do
    [[ ! -e $path && ! -L $path ]] || fail "left behind: $path"
done
left=$(find /var/lib/dpkg/info -name "libdgram*" -print)
[[ -z $left ]] || fail "dpkg still has $(oneline "$left")"
! grep -qs "^Package: libdgram" /var/lib/apt/extended_states || fail "apt still records a libdgram package"
! pkg-config --exists dgram || fail "pkg-config still finds dgram"
cache=$(ldconfig -p | grep libdgram || true)
[[ -z $cache ]] || fail "the loader cache still lists: $cache"
echo "ok: $runtime and $dev $version built, inspected, installed, consumed (pkg-config, find_package shared and static) and purged"
