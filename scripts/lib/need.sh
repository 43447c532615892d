# Sourced by the scripts in scripts/ (bash): installs what a script needs,
# checked by the files it really uses, not by a command's name alone.
#
#   need PACKAGE:PATH [PACKAGE:PATH ...]
#       For each pair whose PATH does not exist (a PATH without a slash is a
#       command looked up on PATH), PACKAGE is missing. As root: apt-get
#       update once, then apt-get install -y every missing package, with
#       its Recommends. Not root: stops at once with the exact command to
#       run. Afterwards every PATH must exist, or it stops.
#   need_python_module MODULE PIP_SPEC
#       Installs PIP_SPEC with pip when `python3 -c "import MODULE"` fails.
#
# Packages come only from the machine's own apt and pip configuration.

need_have() {
    local path=$1
    if [[ $path == */* ]]; then
        [[ -e $path ]]
    else
        command -v "$path" >/dev/null 2>&1
    fi
}

need() {
    local pair pkg path missing=() paths=()
    for pair in "$@"; do
        pkg=${pair%%:*}
        path=${pair#*:}
        paths+=("$path")
        if ! need_have "$path"; then
            [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) != 0 ]]; then
        echo "missing packages: ${missing[*]}" >&2
        echo "run as root first:  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "== installing (apt-get): ${missing[*]}"
    if [[ -z ${NEED_APT_UPDATED:-} ]]; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        export NEED_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
    for path in "${paths[@]}"; do
        if ! need_have "$path"; then
            echo "still missing after apt-get install: $path" >&2
            exit 1
        fi
    done
    hash -r
}

need_python_module() {
    local module=$1 spec=$2
    python3 -c "import $module" 2>/dev/null && return 0
    echo "== installing (pip): $spec"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$spec"
    python3 -c "import $module"
}

# The packages the native C suite needs: the build tools, valgrind, the
# namespace tools, and the libraries of the examples and the JS host.
need_c_suite() {
    need cmake:cmake \
        gcc:cc \
        libc6-dev:/usr/include/stdio.h \
        make:make \
        valgrind:valgrind \
        pkg-config:pkg-config \
        iproute2:ip \
        iproute2:tc \
        util-linux:nsenter \
        util-linux:unshare \
        mount:mount \
        libuv1-dev:/usr/include/uv.h \
        duktape-dev:/usr/include/duktape.h
}
