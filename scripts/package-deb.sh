#!/usr/bin/env bash
# scripts/package-deb.sh amd64|armhf|arm64 [--no-build]
#
# Builds the Debian packages of libdgram for one architecture into build/deb/:
#   libdgram0_<version>_<arch>.deb     /usr/lib/<multiarch>/libdgram.so.<version>
#                                      and its SONAME link libdgram.so.<major>
#   libdgram-dev_<version>_<arch>.deb  /usr/include/dgram.h, and in
#                                      /usr/lib/<multiarch>/: libdgram.a, the
#                                      libdgram.so link, pkgconfig/dgram.pc and
#                                      cmake/dgram/ (find_package(dgram))
# then runs lintian on both (errors and warnings fail the script).
#
# amd64 is built here with cargo build --release --locked; armhf and arm64
# with scripts/cross.sh ARCH --build-only (zig, for glibc 2.31: Raspberry Pi
# OS bullseye and later). --no-build packages what is already in target/.
# The files are staged by scripts/install.sh (DESTDIR, --libdir).
#
# Depends of libdgram0 comes from the .so itself: every NEEDED library must
# be a part of glibc (-> libc6) or libgcc_s (-> libgcc-s1), and the version
# is the highest symbol version the .so needs from each (GLIBC_x.y -> x.y;
# GCC_x.y.z -> the version libgcc-s1's symbols file gives that node). This
# works for foreign architectures, where dpkg-shlibdeps would need the
# target's libc6 installed; for the build machine's own architecture the
# result is checked against dpkg-shlibdeps.
#
# Maintainer: $DEBFULLNAME <$DEBEMAIL> when both are set (as for dch), else
# the author of the commit that set the version. The changelog date is
# SOURCE_DATE_EPOCH, or else that commit's date, so that rebuilding gives the
# same files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib/need.sh
source scripts/lib/need.sh

usage() {
    echo "usage: $0 amd64|armhf|arm64 [--no-build]" >&2
    exit 2
}
arch=${1:-}
build=true
if (($# == 2)) && [[ $2 == --no-build ]]; then
    build=false
elif (($# != 1)); then
    usage
fi

# glibc_floor: the oldest glibc the build is meant to load on (README,
# check_elf.sh); a .so that needs more is packaged as it is, with a warning.
case "$arch" in
amd64)
    multiarch=x86_64-linux-gnu
    rust_target=
    built=target/release
    elf_class=ELF64 elf_machine="Advanced Micro Devices X86-64"
    glibc_floor=2.34
    ;;
armhf)
    multiarch=arm-linux-gnueabihf
    rust_target=armv7-unknown-linux-gnueabihf
    built=target/$rust_target/release
    elf_class=ELF32 elf_machine=ARM
    glibc_floor=2.31
    ;;
arm64)
    multiarch=aarch64-linux-gnu
    rust_target=aarch64-unknown-linux-gnu
    built=target/$rust_target/release
    elf_class=ELF64 elf_machine=AArch64
    glibc_floor=2.31
    ;;
*) usage ;;
esac
strip_tool=$multiarch-strip

# The build machine's strip cannot write foreign ELF files: each
# architecture's own binutils strips its libraries.
need dpkg:dpkg-deb \
    dpkg-dev:dpkg-shlibdeps \
    lintian:lintian \
    binutils:readelf \
    gzip:gzip \
    "binutils-${multiarch//_/-}:$strip_tool"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "no version in Cargo.toml" >&2; exit 1; }
licence=$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
runtime=libdgram$major
dev=libdgram-dev

if [[ -n ${DEBFULLNAME:-} && -n ${DEBEMAIL:-} ]]; then
    maintainer="$DEBFULLNAME <$DEBEMAIL>"
else
    maintainer=$(git log -1 --format='%an <%ae>' -G'^version = "' -- Cargo.toml)
    maintainer=${maintainer:-$(git log -1 --format='%an <%ae>')}
fi
# The date of the commit that set this version: the same for every commit of
# the version, so that packages built from different commits still carry the
# same changelog (Multi-Arch: same needs the same bytes on each architecture).
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -G'^version = "' -- Cargo.toml)
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
fi
export SOURCE_DATE_EPOCH
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
# The years of the copyright notice: those of the first and the last commit.
first_year=$(git log --max-parents=0 --format=%ad --date=format:%Y | sort -n | sed -n 1p)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=$first_year
[[ $first_year == "$last_year" ]] || years+="-$last_year"

if $build; then
    echo "== build libdgram for $arch"
    if [[ -z $rust_target ]]; then
        cargo build --release --locked
    else
        scripts/cross.sh "$arch" --build-only
    fi
fi

out=build/deb
work=$out/$arch
rm -rf "$work"
mkdir -p "$work"
stage=$work/stage
echo "== stage ($built)"
DESTDIR="$root/$stage" scripts/install.sh --prefix /usr --libdir "lib/$multiarch" --no-build \
    ${rust_target:+--target "$rust_target"} >/dev/null

libdir=usr/lib/$multiarch
rt_root=$work/$runtime
dev_root=$work/$dev
# take PACKAGE_ROOT PATH...: moves staged paths into a package's tree.
take() {
    local dest=$1 path
    shift
    for path in "$@"; do
        [[ -e $stage/$path || -L $stage/$path ]] || { echo "install.sh did not stage $path" >&2; exit 1; }
        mkdir -p "$dest/$(dirname "$path")"
        mv "$stage/$path" "$dest/$path"
    done
}
take "$rt_root" "$libdir/libdgram.so.$version" "$libdir/libdgram.so.$major"
take "$dev_root" usr/include/dgram.h "$libdir/libdgram.so" "$libdir/libdgram.a" \
    "$libdir/pkgconfig/dgram.pc" "$libdir/cmake/dgram/dgramConfig.cmake" \
    "$libdir/cmake/dgram/dgramConfigVersion.cmake"
# Whatever else install.sh staged is in neither package: only the build
# machine's JavaScript host may be left over; anything new must be placed.
leftover=$(find "$stage" \( -type f -o -type l \) ! -path "$stage/usr/bin/dgramjs" -printf '/%P\n')
[[ -z $leftover ]] || { echo "staged but in no package: $leftover" >&2; exit 1; }

so=$rt_root/$libdir/libdgram.so.$version
# As dh_strip does: symbols that linking against the .so does not use and
# debug info go from the .so; only debug info from the .a (its symbol table
# is what linking uses).
"$strip_tool" --strip-unneeded --remove-section=.comment --remove-section=.note "$so"
"$strip_tool" --strip-debug --remove-section=.comment --remove-section=.note \
    --enable-deterministic-archives "$dev_root/$libdir/libdgram.a"

headers=$(readelf -h "$so")
class=$(sed -n 's/^ *Class: *//p' <<<"$headers")
machine=$(sed -n 's/^ *Machine: *//p' <<<"$headers")
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ $class != "$elf_class" || $machine != "$elf_machine" || $soname != "libdgram.so.$major" ]]; then
    echo "$so: $class $machine SONAME $soname; expected $elf_class $elf_machine libdgram.so.$major" >&2
    exit 1
fi

# version_needs SO PREFIX: the highest version of PREFIX (GLIBC_, GCC_) the
# .so asks for in its version-needs section.
version_needs() {
    readelf -V -W "$1" | sed -n '/^Version needs section/,$p' |
        grep -o "Name: $2[0-9.]*" | sed "s/Name: $2//" | sort -V | tail -n 1
}
# libgcc_version NODE: the version of libgcc-s1 that first had NODE
# (GCC_4.2.0 -> 4.2), from a libgcc-s1 symbols file: the architecture's own
# (cross) one where installed, else the build machine's (the nodes and their
# versions are the same).
libgcc_version() {
    local node=$1 file found
    for file in "/var/lib/dpkg/info/libgcc-s1-$arch-cross.symbols" \
        "/var/lib/dpkg/info/libgcc-s1:$arch.symbols" /var/lib/dpkg/info/libgcc-s1:*.symbols; do
        [[ -f $file ]] || continue
        found=$(awk -v n="$node@$node" '$1 == n { print $2; exit }' "$file")
        if [[ -n $found ]]; then
            echo "$found"
            return
        fi
    done
    echo "no libgcc-s1 symbols file names $node" >&2
    exit 1
}
needs_libc=false
needs_libgcc=false
for lib in $(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
    libc.so.6 | libpthread.so.0 | libdl.so.2 | libm.so.6 | librt.so.1 | libutil.so.1 | ld-linux*.so.* | ld64.so.*)
        needs_libc=true
        ;;
    libgcc_s.so.1) needs_libgcc=true ;;
    *)
        echo "libdgram.so needs $lib: no rule says which package has it" >&2
        exit 1
        ;;
    esac
done
$needs_libc || { echo "libdgram.so is not linked against glibc" >&2; exit 1; }
glibc_need=$(version_needs "$so" GLIBC_)
[[ -n $glibc_need ]] || { echo "libdgram.so needs no GLIBC_ symbol version" >&2; exit 1; }
depends="libc6 (>= $glibc_need)"
if $needs_libgcc; then
    gcc_node=$(version_needs "$so" GCC_)
    depends+=", libgcc-s1 (>= $(libgcc_version "GCC_$gcc_node"))"
fi
if [[ $(printf '%s\n%s\n' "$glibc_need" "$glibc_floor" | sort -V | tail -n 1) != "$glibc_floor" ]]; then
    echo "WARNING: libdgram.so needs glibc $glibc_need, above the documented floor $glibc_floor" >&2
fi
echo "Depends: $depends"

if [[ $arch == "$(dpkg --print-architecture)" ]]; then
    # dpkg-shlibdeps reads debian/control, so it runs in a scratch tree.
    check=$work/shlibdeps
    mkdir -p "$check/debian"
    printf 'Source: libdgram\n\nPackage: %s\nArchitecture: any\n' "$runtime" >"$check/debian/control"
    cp "$so" "$check/"
    theirs=$(cd "$check" && dpkg-shlibdeps -O "libdgram.so.$version" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    if [[ $theirs != "$depends" ]]; then
        echo "dpkg-shlibdeps says '$theirs', computed '$depends'" >&2
        exit 1
    fi
    echo "(dpkg-shlibdeps agrees)"
    rm -rf "$check"
fi

# While the major version is 0, the ABI may change with each minor release
# (dgramConfigVersion.cmake accepts only the same minor) but the SONAME stays
# libdgram.so.0: programs built now must not accept the next minor release.
shlibs_dep="$runtime (>= $version)"
if ((major == 0)); then
    shlibs_dep+=", $runtime (<< $major.$((minor + 1))~)"
fi

# Shared by both packages, the same bytes on every architecture (Multi-Arch:
# same packages may be installed side by side only if shared paths match).
copyright=$work/copyright
# The machine-readable format's identifier, as dpkg's own copyright file
# (always installed) spells it: the repository names no web address.
dep5_format=$(sed -n '1s/^Format: //p' /usr/share/doc/dpkg/copyright)
[[ -n $dep5_format ]] || { echo "no Format: line in /usr/share/doc/dpkg/copyright" >&2; exit 1; }
{
    echo "Format: $dep5_format"
    echo "Upstream-Name: libdgram"
    echo "Comment: Built by scripts/package-deb.sh from the libdgram source tree."
    echo
    echo "Files: *"
    echo "Copyright: $years the libdgram authors"
    echo "License: ${licence// OR / or }"
    for id in ${licence// OR / }; do
        echo
        echo "License: $id"
        case "$id" in
        MIT)
            cat <<'MIT'
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
MIT
            ;;
        Apache-2.0)
            cat <<'APACHE'
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. Unless required by
 applicable law or agreed to in writing, software distributed under the
 License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS
 OF ANY KIND, either express or implied. See the License for the specific
 language governing permissions and limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
APACHE
            ;;
        *)
            echo "Cargo.toml names licence $id, which this script has no text for" >&2
            exit 1
            ;;
        esac
    done
} >"$copyright"

# The long description, the same for both packages.
long="One header (dgram.h) for C and C++ hosts: bound and connected sockets,\
 broadcast and multicast (also source-specific), served by a background I/O\
 thread, with callbacks run on the host's thread or on that I/O thread."

changelog=$work/changelog
cat >"$changelog" <<EOF
libdgram ($version) unstable; urgency=medium

  * libdgram $version, packaged by scripts/package-deb.sh.

 -- $maintainer  $changelog_date
EOF

# package ROOT NAME SECTION DEPENDS SYNOPSIS LAST_PARAGRAPH
package() {
    local pkg_root=$1 name=$2 section=$3 pkg_depends=$4 synopsis=$5 last=$6 size
    local doc=$pkg_root/usr/share/doc/$name
    install -d -m 0755 "$doc"
    install -m 0644 "$copyright" "$doc/copyright"
    gzip -9n <"$changelog" >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
    if [[ -f packaging/deb/$name.lintian-overrides ]]; then
        install -d -m 0755 "$pkg_root/usr/share/lintian/overrides"
        install -m 0644 "packaging/deb/$name.lintian-overrides" "$pkg_root/usr/share/lintian/overrides/$name"
    fi
    find "$pkg_root" -type d -exec chmod 0755 {} +
    find "$pkg_root" -type f -exec chmod 0644 {} +
    # dpkg-deb stores the files' own times; the same input, the same .deb.
    find "$pkg_root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    size=$(du -s -k --apparent-size "$pkg_root" | cut -f1)
    install -d -m 0755 "$pkg_root/DEBIAN"
    {
        echo "Package: $name"
        echo "Source: libdgram"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $size"
        echo "Depends: $pkg_depends"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Multi-Arch: same"
        echo "Description: $synopsis"
        fold -s -w 76 <<<"libdgram: $description. $long" | sed 's/ *$//; s/^/ /'
        echo " ."
        fold -s -w 76 <<<"$last" | sed 's/ *$//; s/^/ /'
    } >"$pkg_root/DEBIAN/control"
    (cd "$pkg_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
        xargs -0 --no-run-if-empty md5sum) >"$pkg_root/DEBIAN/md5sums"
    chmod 0644 "$pkg_root/DEBIAN/"*
    dpkg-deb --root-owner-group -Zxz --build "$pkg_root" "$out/${name}_${version}_$arch.deb" >/dev/null
    echo "built $out/${name}_${version}_$arch.deb"
}

echo "libdgram $major $shlibs_dep" >"$work/shlibs"
install -d -m 0755 "$rt_root/DEBIAN"
install -m 0644 "$work/shlibs" "$rt_root/DEBIAN/shlibs"
# Instead of calling ldconfig from maintainer scripts: libc-bin's trigger
# updates the loader cache once, after install and after removal.
echo "activate-noawait ldconfig" >"$rt_root/DEBIAN/triggers"
chmod 0644 "$rt_root/DEBIAN/triggers"

echo "== packages"
package "$rt_root" "$runtime" libs "$depends" \
    "UDP datagram sockets with Node.js dgram semantics (shared library)" \
    "This package contains the shared library."
package "$dev_root" "$dev" libdevel "$runtime (= $version)" \
    "UDP datagram sockets with Node.js dgram semantics (development files)" \
    "This package contains the header, the static library and the pkg-config and CMake files."
rm -rf "$work"

echo "== lintian"
# Errors and warnings fail; info and pedantic tags are shown for review.
lintian --fail-on error,warning --display-info --pedantic --show-overrides \
    "$out/${runtime}_${version}_$arch.deb" "$out/${dev}_${version}_$arch.deb"
echo "lintian: clean (no errors or warnings) for ${runtime}_${version}_$arch.deb and ${dev}_${version}_$arch.deb"
