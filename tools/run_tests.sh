#!/usr/bin/env bash
# Run the whole test suite, installing the stack into .venv (or $VENV) first if needed (tools/install.sh;
# TORCH picks another tested stack). A cached mmcv build is reused only when it still works against the
# installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV=${VENV:-.venv}  # tools/dist_*.sh run with this venv's python too
bash tools/install.sh
# Training tests write checkpoints where pytest keeps its temporary directories ($TMPDIR, else /tmp, or
# --basetemp): a whole run peaks at 2.6 GB there (df sampled every 3 s during the suite; a passed test's
# directory is removed as it ends, setup.cfg). Refuse at once rather than fail hundreds of tests with ENOSPC.
"$VENV/bin/python" - "$@" <<'EOF'
import os, shutil, sys, tempfile
args, root = sys.argv[1:], os.environ.get('PYTEST_DEBUG_TEMPROOT') or tempfile.gettempdir()
for i, arg in enumerate(args):
    if arg.startswith('--basetemp='):
        root = arg.split('=', 1)[1]
    elif arg == '--basetemp' and i + 1 < len(args):
        root = args[i + 1]
while not os.path.isdir(root):
    root = os.path.dirname(os.path.abspath(root))
free_gb, need_gb = shutil.disk_usage(root).free / 2**30, 3
if free_gb < need_gb:
    sys.exit(f'[tests] error: {free_gb:.1f} GB free under {root}, but the test suite writes up to '
             f'{need_gb} GB of checkpoints there. Free space there, or point TMPDIR (or --basetemp) '
             'at a disk with room.')
EOF
exec "$VENV/bin/python" -m pytest tests "$@"
