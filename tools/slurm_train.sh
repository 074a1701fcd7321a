#!/usr/bin/env bash
# Training on a Slurm cluster: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS tune the allocation.
#
# Preemption: srun asks Slurm to send SIGUSR1 SIGNAL_TIME seconds (default 120) before the time limit, besides
# the SIGTERM of a preemption; the configs' PreemptionHook then saves the iteration it stopped after and the tasks
# exit with status 143. Inside a batch job (sbatch) the script then requeues the job (scontrol requeue; REQUEUE=0
# turns this off), and when the job starts again, it resumes from WORK_DIR/last_checkpoint (--resume).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# the interpreter: $PYTHON, else that of tools/install.sh's venv ($VENV, default .venv), else python3 on PATH
VENV_PYTHON="$(cd "$ROOT" && realpath -m "${VENV:-.venv}")/bin/python"
PYTHON=${PYTHON:-$( [ -x "$VENV_PYTHON" ] && echo "$VENV_PYTHON" || echo python3 )}

PREEMPTED=143  # PreemptionHook's exit status
RESUME_ARGS=()
if [ -s "$WORK_DIR/last_checkpoint" ]; then
    echo "[slurm_train] $WORK_DIR/last_checkpoint exists: resuming from it" >&2
    RESUME_ARGS=(--resume)
fi
status=0
# shellcheck disable=SC2086  # SRUN_ARGS holds several srun options
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    --signal=USR1@"${SIGNAL_TIME:-120}" \
    $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}" \
    "${RESUME_ARGS[@]}" || status=$?
if [ "$status" = "$PREEMPTED" ] && [ -n "${SLURM_JOB_ID:-}" ] && [ "${REQUEUE:-1}" = 1 ]; then
    echo "[slurm_train] preempted: requeueing job $SLURM_JOB_ID; it resumes from $WORK_DIR/last_checkpoint" >&2
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
