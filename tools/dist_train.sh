#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node. Without GPUs it runs GPUS processes
# on the CPU with the gloo backend. RESUME=1 adds --resume (continue from the work dir's last_checkpoint, if any):
# for a job that a scheduler requeues after a preemption (PreemptionHook saves the iteration it stopped after).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# the interpreter: $PYTHON, else that of tools/install.sh's venv ($VENV, default .venv), else python3 on PATH
VENV_PYTHON="$(cd "$ROOT" && realpath -m "${VENV:-.venv}")/bin/python"
PYTHON=${PYTHON:-$( [ -x "$VENV_PYTHON" ] && echo "$VENV_PYTHON" || echo python3 )}

RESUME_ARGS=()
if [ "${RESUME:-0}" = 1 ]; then RESUME_ARGS=(--resume); fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}" "${RESUME_ARGS[@]}"
