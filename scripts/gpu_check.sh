#!/usr/bin/env bash
# The GPU path in one command (docs/gpu.md): installs onnxruntime-gpu (in place of the CPU
# onnxruntime wheel) and TensorRT's Python wheel into the interpreter's environment, then runs
# `embodied bench gpu`: CUDA and TensorRT against the CPU on every shipped model (parity,
# latency per token budget, engine cache, optimisation profile), about 2-7 minutes, writing
# results/gpu/gpu_check.json, results/gpu/gpu_check.log and a compact table.
#
# On a machine without a CUDA GPU it skips: exit 0, one line saying why, the JSON says so.
# Network: pip's package index only for onnxruntime-gpu and the CUDA/cuDNN wheels; TensorRT's
# libraries come from https://pypi.nvidia.com (without it the TensorRT rows say skipped).
#
#   scripts/gpu_check.sh                          # what `make gpu-check` runs
#   scripts/gpu_check.sh --no-install             # measure with what is installed
#   PY=python3 scripts/gpu_check.sh --full        # another interpreter; every model on TensorRT
#   scripts/gpu_check.sh --dry-run                # print the install plan only
#
# The interpreter: $PY, else .venv/bin/python, else python3 (the repository is put on
# PYTHONPATH, so the project need not be pip-installed there: numpy and onnxruntime suffice).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${PY:-}" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
JSON=${GPU_CHECK_JSON:-results/gpu/gpu_check.json}
install=(--install)
args=()
for a in "$@"; do
    if [ "$a" = --no-install ]; then install=(); else args+=("$a"); fi
done
mkdir -p "$(dirname "$JSON")"
"$PY" -m embodied_tools.bench_gpu "${install[@]+"${install[@]}"}" --json "$JSON" \
    "${args[@]+"${args[@]}"}" 2>&1 | tee "${JSON%.json}.log"
