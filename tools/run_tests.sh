#!/usr/bin/env bash
# Run the whole test suite, installing the stack into .venv (or $VENV) first if needed (tools/install.sh;
# TORCH picks another tested stack). A cached mmcv build is reused only when it still works against the
# installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV=${VENV:-.venv}  # tools/dist_*.sh run with this venv's python too
bash tools/install.sh
exec "$VENV/bin/python" -m pytest tests "$@"
