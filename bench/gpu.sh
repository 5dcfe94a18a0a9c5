#!/usr/bin/env bash
# The GPU check, < 8 min on one GPU: the GPU tests, FAISS GPU vs CPU at 1M vectors (same results, speed-up),
# encoders under CUDA autocast vs CPU fp32 (same vectors within tolerance, images/s).
#   bench/gpu.sh             on a CUDA machine (faiss-gpu: pip install -e '.[gpu]')
#   bench/gpu.sh --dry-run   anywhere: the same steps on the CPU at toy sizes (checks the script, not a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DRY=""
case "${1:-}" in
  --dry-run) DRY="--dry-run" ;;
  "") ;;
  *) echo "usage: bench/gpu.sh [--dry-run]" >&2; exit 2 ;;
esac

step() { echo; echo "== $*"; }

step "machine"
if [ -z "$DRY" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "dry run on $(nproc) CPU cores (nvidia-smi skipped)"
fi
"$PY" -c "import torch, faiss; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| faiss', faiss.__version__, 'gpus', faiss.get_num_gpus())"

step "GPU tests (pytest -m gpu)"
if [ -z "$DRY" ]; then
  timeout 180 "$PY" -m pytest -q -p no:randomly -m gpu tests
else
  echo "would run (GPU tests collected, skipped without a GPU):"
  timeout 180 "$PY" -m pytest -p no:randomly -m gpu tests --collect-only -q | grep -v "^$"
fi

step "FAISS and encoders: GPU vs CPU"
timeout 300 "$PY" -m bench.gpu_check $DRY
