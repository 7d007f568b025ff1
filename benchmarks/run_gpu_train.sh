#!/usr/bin/env bash
# Issue 23's GPU figures in one command (under 10 minutes), on a node with torch (CUDA) and numpy only:
# teacher and student steps/s of resnext3d_101 at batch 32, bf16, on synthetic input vs loader-fed input
# (CPU decode with 4, 8, 16 workers; GPU decode), peak GPU memory, and how many workers keep it >= 95% busy.
#
#   here:      python benchmarks/bench_gpu_train.py --write-shards bench_out/gpu_train_shards
#   GPU node:  bash benchmarks/run_gpu_train.sh [OUT_DIR]        # carry bench_out/gpu_train_shards (git-ignored)
#   CPU / CI:  DRY=1 bash benchmarks/run_gpu_train.sh /tmp/out   # tiny model and shards, a few steps
#
# Rows need their decoder: OpenCV for CPU decode, torchvision for GPU decode; a missing one is a row
# "skipped: <what to install>", not a failure. Results: OUT_DIR/gpu_train.md and gpu_train.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
SHARDS="${SHARDS:-bench_out/gpu_train_shards}"
mkdir -p "$OUT_DIR"
if [ "${DRY:-0}" = 1 ]; then
  exec "$PYTHON" benchmarks/bench_gpu_train.py --dry --out "$OUT_DIR/gpu_train.md"
fi
if [ ! -f "$SHARDS/train.shards.txt" ]; then
  echo "missing $SHARDS: run 'python benchmarks/bench_gpu_train.py --write-shards $SHARDS' and carry it" >&2
  exit 2
fi
"$PYTHON" -c "import torch; print(f'torch {torch.__version__}, cuda: {torch.cuda.is_available()}')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
# sample GPU utilisation once a second beside the run (nvidia-smi's own view of "busy")
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 > "$OUT_DIR/gpu_train_smi.csv" &
  SMI=$!
  trap 'kill $SMI 2>/dev/null || true' EXIT
fi
timeout 540 "$PYTHON" benchmarks/bench_gpu_train.py --shards "$SHARDS" --out "$OUT_DIR/gpu_train.md"
