#!/usr/bin/env bash
# Install a tested stack into ./.venv (or $VENV), then this package in editable mode.
#
#   bash tools/install.sh                                              # the default stack (torch 2.13.0)
#   TORCH=2.1.2 VENV=.venv-torch2.1.2 bash tools/install.sh             # the oldest: torch 2.1, numpy 1.26
#   TORCH=2.15.0 VENV=.venv-torch2.15.0 bash tools/install.sh           # the newest torch
#   STACK=torch2.1.2-numpy1.24.4 VENV=.venv-np124 bash tools/install.sh  # any requirements/constraints-*.txt
#
# Each tested stack is a constraints file of exact versions: requirements/constraints.txt (the default)
# and requirements/constraints-<stack>.txt; STACK picks one, and TORCH=<version> means STACK=torch<version>.
# Anything else is refused before any work starts. The first line of each file names the Python it was
# tested with (`# python: 3.10`); a new venv is made with that python3.X unless PYTHON names another
# interpreter. To install into your own environment instead, see docs/en/get_started.md#use-in-your-own-environment.
#
# mmcv 2.1.0 ships only as source and compiles its C++ ops for 10-30 min on 2 cores. torch >= 2.14 needs
# C++20 in its headers while mmcv 2.1.0's setup.py asks for C++17, so for those the build uses C++20. The
# built wheel is cached under $MMDYNAMIXER_CACHE (default ~/.cache/mmdynamixer), keyed by everything it
# was compiled against (mmcv, the exact torch build, the C++ standard, Python, platform, compiler). The
# venv records the key of the mmcv it holds: an mmcv built for another torch is never kept, and a cached
# build is used only if `mmcv.ops` then really runs an op against the installed torch (a stale or broken
# one is deleted and rebuilt). pip's own wheel cache is never used for mmcv (it ignores torch changes).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CACHE=${MMDYNAMIXER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdynamixer}
log() { printf '[install] %s\n' "$*" >&2; }
pin() { sed -n "s/^$1=\{2,3\}\([^ ;#]*\).*/\1/p" "$CONSTRAINTS"; }

# 1. The stack: refuse an untested one before creating or compiling anything.
CONSTRAINTS=requirements/constraints.txt
if [ -n "${TORCH:-}" ] && [ -z "${STACK:-}" ] && [ "$TORCH" != "$(pin torch)" ]; then
    STACK=torch$TORCH
fi
if [ -n "${STACK:-}" ]; then
    CONSTRAINTS=requirements/constraints-$STACK.txt
    if [ ! -f "$CONSTRAINTS" ]; then
        CONSTRAINTS=requirements/constraints.txt
        choices=$(for f in requirements/constraints-*.txt; do
                      basename "$f" .txt | sed 's/^constraints-//'; done | paste -sd ' ')
        what="STACK=$STACK"
        [ -n "${TORCH:-}" ] && what="TORCH=$TORCH"
        log "error: $what is not a tested stack, so install.sh cannot build mmcv" \
            "$(pin mmcv) for it. Choose one of: TORCH=$(pin torch) (the default)" \
            "$(for c in $choices; do printf 'STACK=%s ' "$c"; done)(each is a" \
            "requirements/constraints*.txt file), or install into your own environment as the" \
            "manual says: docs/en/get_started.md#use-in-your-own-environment."
        exit 2
    fi
fi
STACK_PYTHON=$(sed -n '1s/^# python: *\([0-9.]*\).*/\1/p' "$CONSTRAINTS")
PYTHON=${PYTHON:-python${STACK_PYTHON:-3}}
TORCH_VERSION=$(pin torch)
MMCV_VERSION=$(pin mmcv)
CXX_STD=c++17
if [ "$(printf '%s\n' 2.14 "$TORCH_VERSION" | sort -V | head -n 1)" = 2.14 ]; then
    CXX_STD=c++20  # torch >= 2.14: "C++20 or later compatible compiler is required to use ATen"
fi
if ! echo 'int main() {}' | g++ -std=$CXX_STD -x c++ -fsyntax-only - 2>/dev/null; then
    log "error: torch $TORCH_VERSION needs mmcv built with $CXX_STD, which $(g++ --version | head -n 1)" \
        "does not support; install a newer g++ first."
    exit 2
fi
log "stack: $CONSTRAINTS (torch $TORCH_VERSION, mmcv $MMCV_VERSION built with $CXX_STD) into $VENV"

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
        log "error: PYTHON=$PYTHON does not run as Python 3.10 or newer, so $VENV cannot be" \
            "created. $CONSTRAINTS was tested with Python ${STACK_PYTHON:-?}: name an installed" \
            "interpreter (e.g. PYTHON=python${STACK_PYTHON:-3.11}), or create $VENV yourself first."
        exit 2
    fi
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# 2. Everything but mmcv, at the versions of the constraints file.
reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
cat requirements/runtime.txt requirements/optional.txt requirements/tests.txt > "$reqs"
grep -v '^mmcv' requirements/mminstall.txt >> "$reqs"
# The docs toolchain (Sphinx, MyST) where the stack pins it: myst-parser >= 5 needs Python >= 3.11, and the
# Python 3.10 stacks pin a markdown-it-py that older myst-parser releases do not accept.
if grep -qi '^sphinx==' "$CONSTRAINTS"; then cat requirements/docs.txt >> "$reqs"; fi
"${PIP[@]}" -c "$CONSTRAINTS" wheel ninja -r "$reqs"
# mmengine's wheel asks for opencv-python, which needs the system's libGL; keep only the headless build
# (both install the same `cv2` folder, so the remaining one is reinstalled).
if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
    "$PY" -m pip uninstall -y -q opencv-python
    "${PIP[@]}" -c "$CONSTRAINTS" --force-reinstall --no-deps opencv-python-headless
fi

# 3. mmcv, compiled once per (mmcv, torch build, C++ standard, python, platform, compiler).
mmcv_ok() { "$PY" - <<'PY' 2>/dev/null
import torch, mmcv
from mmcv.ops import nms, roi_align  # noqa: F401  the compiled ops
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
PY
}
# The key: what the compiled ops depend on (not e.g. the kernel version, which would force needless rebuilds).
key_src=$("$PY" -c "import torch, sys, sysconfig, platform
print('torch', torch.__version__, torch.version.git_version, 'cxx11abi', torch.compiled_with_cxx11_abi())
print('python', sys.version.split()[0], sysconfig.get_config_var('SOABI'), platform.machine(), *platform.libc_ver())"
    g++ --version | head -n 1
    # mmcv's own C++17 adds nothing to the key, so that builds cached before the choice existed stay valid
    echo "mmcv $MMCV_VERSION$([ "$CXX_STD" = c++17 ] || echo " -std=$CXX_STD")")
key=$(printf '%s' "$key_src" | sha256sum | cut -c1-16)
wheel_dir="$CACHE/mmcv-$MMCV_VERSION-$key"
venv_key="$VENV/mmcv-build.key"  # the key of the mmcv this venv holds
if [ "$(cat "$venv_key" 2>/dev/null)" = "$key" ] && mmcv_ok; then
    log "mmcv $MMCV_VERSION built for this torch is installed"
else
    rm -f "$venv_key"
    if ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        log "installing the cached mmcv build $wheel_dir"
        "${PIP[@]}" --no-deps --force-reinstall "$wheel_dir"/mmcv-*.whl || true
        mmcv_ok || { log "the cached mmcv build is stale or broken: deleting it"; rm -rf "$wheel_dir"; }
    fi
    if ! mmcv_ok; then
        log "compiling mmcv $MMCV_VERSION with $CXX_STD against torch $TORCH_VERSION" \
            "(10-30 min on 2 cores, once per torch build)"
        tmp=$(mktemp -d)
        "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$tmp" "mmcv==$MMCV_VERSION"
        tar -xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
        src="$tmp/mmcv-$MMCV_VERSION"
        if [ "$CXX_STD" != c++17 ]; then
            # mmcv 2.1.0 hard-codes C++17 (upstream PR open-mmlab/mmcv#3340 raises it to C++20)
            grep -q -- '-std=c++17' "$src/setup.py" ||
                { log "mmcv $MMCV_VERSION's setup.py has no -std=c++17 to raise to $CXX_STD"; exit 1; }
            sed -i "s/-std=c++17/-std=$CXX_STD/g" "$src/setup.py"
        fi
        MAX_JOBS=${MAX_JOBS:-2} MMCV_WITH_OPS=1 "$PY" -m pip wheel -q --no-deps --no-build-isolation \
            --no-cache-dir -w "$tmp/wheel" "$src"
        "${PIP[@]}" --no-deps --force-reinstall "$tmp"/wheel/mmcv-*.whl
        mmcv_ok || { log "the fresh mmcv build has no working ops; kept in $tmp for inspection"; exit 1; }
        mkdir -p "$wheel_dir"
        mv "$tmp"/wheel/mmcv-*.whl "$wheel_dir"/ && printf '%s\n' "$key_src" > "$wheel_dir/KEY"
        rm -rf "$tmp"
    fi
    printf '%s\n' "$key" > "$venv_key"
fi

# 4. This package, editable, so that tools/ and configs/ of the checkout are the ones used.
"${PIP[@]}" --no-deps --no-build-isolation -e .
log "ready: $("$PY" -c 'import sys, torch, mmcv, mmengine, mmpretrain, mmdet, mmseg; print("python", sys.version.split()[0], "torch", torch.__version__, "mmcv", mmcv.__version__, "mmengine", mmengine.__version__, "mmpretrain", mmpretrain.__version__, "mmdet", mmdet.__version__, "mmseg", mmseg.__version__)')"
