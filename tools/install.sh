#!/usr/bin/env bash
# Install the whole stack into ./.venv (or $VENV) and this package in editable mode.
#
# mmcv 2.1.0 ships only as source and compiles its C++ ops for 15-30 min on 2 cores. The built wheel is
# cached under $MMDYNAMIXER_CACHE (default ~/.cache/mmdynamixer), keyed by everything it was compiled
# against (mmcv, the exact torch build, Python, platform, compiler). A cached wheel is kept only if
# `mmcv.ops` then really runs an op against the installed torch; a stale or broken one is deleted and
# rebuilt. pip's own wheel cache is never used for mmcv (it ignores torch changes).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CACHE=${MMDYNAMIXER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdynamixer}
MMCV_VERSION=$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' requirements.txt)
log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# 1. Everything but mmcv. setuptools<82 comes in the same resolver call as torch, or torch's dependencies
#    pull one without pkg_resources (which mmcv's setup.py and mmengine's `mmdet::` configs import).
reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
grep -v '^mmcv==' requirements.txt > "$reqs"
"${PIP[@]}" wheel ninja -r "$reqs"
# mmengine's wheel asks for opencv-python, which needs the system's libGL; keep only the headless build
# (both install the same `cv2` folder, so the remaining one is reinstalled).
if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
    "$PY" -m pip uninstall -y -q opencv-python
    "${PIP[@]}" --force-reinstall --no-deps "$(grep '^opencv-python-headless' requirements.txt)"
fi

# 2. mmcv, compiled once per (mmcv, torch build, python, platform, compiler).
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
    g++ --version | head -n 1; echo "mmcv $MMCV_VERSION")
key=$(printf '%s' "$key_src" | sha256sum | cut -c1-16)
wheel_dir="$CACHE/mmcv-$MMCV_VERSION-$key"
installed=$("$PY" -c "import importlib.metadata as m; print(m.version('mmcv'))" 2>/dev/null || true)
if [ "$installed" = "$MMCV_VERSION" ] && mmcv_ok; then
    log "mmcv $MMCV_VERSION with working ops is installed"
else
    if ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        log "installing the cached mmcv build $wheel_dir"
        "${PIP[@]}" --no-deps --force-reinstall "$wheel_dir"/mmcv-*.whl || true
        mmcv_ok || { log "the cached mmcv build is stale or broken: deleting it"; rm -rf "$wheel_dir"; }
    fi
    if ! mmcv_ok; then
        log "compiling mmcv $MMCV_VERSION against torch $("$PY" -c 'import torch; print(torch.__version__)')" \
            "(15-30 min on 2 cores, once per torch build)"
        tmp=$(mktemp -d)
        MAX_JOBS=${MAX_JOBS:-2} MMCV_WITH_OPS=1 "$PY" -m pip wheel -q --no-deps --no-build-isolation \
            --no-cache-dir --no-binary mmcv -w "$tmp" "mmcv==$MMCV_VERSION"
        "${PIP[@]}" --no-deps --force-reinstall "$tmp"/mmcv-*.whl
        mmcv_ok || { log "the fresh mmcv build has no working ops; kept in $tmp for inspection"; exit 1; }
        mkdir -p "$wheel_dir"
        mv "$tmp"/mmcv-*.whl "$wheel_dir"/ && printf '%s\n' "$key_src" > "$wheel_dir/KEY"
        rm -rf "$tmp"
    fi
fi

# 3. This package, editable, so that tools/ and configs/ of the checkout are the ones used.
"${PIP[@]}" --no-deps --no-build-isolation -e .
log "ready: $("$PY" -c 'import torch, mmcv, mmengine, mmpretrain, mmdet, mmseg; print("torch", torch.__version__, "mmcv", mmcv.__version__, "mmengine", mmengine.__version__, "mmpretrain", mmpretrain.__version__, "mmdet", mmdet.__version__, "mmseg", mmseg.__version__)')"
