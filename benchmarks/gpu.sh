#!/usr/bin/env bash
# The GPU check in one command, for a CUDA machine (see benchmarks/gpu.py): s3rec_best on Beauty in
# fp32 / bf16-mixed, eager / compiled, then full vs sampled softmax steps at 1M items; writes
# docs/results/gpu.json after every arm. The defaults fit a 15-minute device budget on one H100
# (data preparation, then everything else within --budget 690 s: about 12 minutes at most).
#   benchmarks/gpu.sh                 # on the GPU machine, from anywhere in the repository
#   benchmarks/gpu.sh --dry-run       # the same code on the CPU at tiny sizes
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
exec timeout 840 "$PY" -m benchmarks gpu --write "$@"
