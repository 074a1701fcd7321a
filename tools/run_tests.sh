#!/usr/bin/env bash
# Run the whole test suite (installing the stack into .venv first if needed; a cached mmcv build is reused
# only when it still works against the installed torch).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python -m pytest tests "$@"
