#!/usr/bin/env bash
# Quick start: install the whole stack into .venv (or $VENV), then train the embedded default (a small DynaMixer on
# scikit-learn's bundled handwritten digits) with tools/train.py and evaluate it on the held-out test split
# with tools/test.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
PY=${VENV:-.venv}/bin/python
CONFIG=configs/dynamixer/dynamixer-tiny_1xb64_digits.py
WORK_DIR=${WORK_DIR:-work_dirs/dynamixer-tiny_1xb64_digits}
"$PY" tools/dataset_converters/prepare_digits.py data/digits
start=$SECONDS
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
best=$(ls -t "$WORK_DIR"/best_*.pth | head -n 1)
"$PY" tools/test.py "$CONFIG" "$best" --work-dir "$WORK_DIR" | tee "$WORK_DIR/test_metrics.txt"
# the checkpoint the digit-scene detection and segmentation configs start from
mkdir -p checkpoints && cp "$best" checkpoints/dynamixer-tiny_1xb64_digits.pth
echo "Trained and evaluated in $((SECONDS - start)) s; held-out test accuracy:" \
    "$(sed -n 's/.*"accuracy\/top1": \([0-9.]*\).*/\1/p' "$WORK_DIR/test_metrics.txt")%"
