#!/usr/bin/env bash
# After the Quick start: the digit-scene detector end to end. Prepares the
# scenes (scikit-learn's digit scans composed into detection scenes, no
# download), trains RetinaNet with the Quick start's DynaMixer in
# sliding-window mode from its checkpoint, evaluates it on the held-out test
# scenes and prints the box AP.
#   bash tools/digit_scenes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
CONFIG=configs/dynamixer_detection/retinanet_dynamixer-tiny_fpn_1xb8-12e_digit-scenes.py
CHECKPOINT=checkpoints/dynamixer-tiny_1xb64_digits.pth
WORK_DIR=${WORK_DIR:-work_dirs/retinanet_dynamixer-tiny_fpn_1xb8-12e_digit-scenes}
if [ ! -f "$CHECKPOINT" ]; then
    echo "tools/digit_scenes.sh: $CHECKPOINT not found: it is the Quick start's checkpoint." \
        "Run the Quick start first (bash tools/quickstart.sh), which writes it." >&2
    exit 1
fi
"$PY" tools/dataset_converters/prepare_digit_scenes.py data/digit_scenes
start=$SECONDS
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
"$PY" tools/test.py "$CONFIG" "$WORK_DIR/$(basename "$(cat "$WORK_DIR/last_checkpoint")")" \
    --work-dir "$WORK_DIR" | tee "$WORK_DIR/test_metrics.txt"
echo "Trained and evaluated in $((SECONDS - start)) s; held-out test scenes:" \
    "box AP $(sed -n 's/.*"coco\/bbox_mAP": \([0-9.]*\).*/\1/p' "$WORK_DIR/test_metrics.txt")," \
    "AP50 $(sed -n 's/.*"coco\/bbox_mAP_50": \([0-9.]*\).*/\1/p' "$WORK_DIR/test_metrics.txt")"
