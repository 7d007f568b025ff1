#!/usr/bin/env bash
# The GPU figures of issue 13 (part 5) in one command, on a node with an NVIDIA GPU, torch (CUDA) and
# triton, and nothing else: no PyAV, Ray, OpenCV contrib or network needed.
#
#   here:      python benchmarks/prepare_gpu_inputs.py      # real pairs + OpenCV flow -> bench_out/gpu_inputs
#   GPU node:  bash benchmarks/run_gpu.sh [OUT_DIR]          # carry bench_out/gpu_inputs (git-ignored)
#
# 1. tests/test_triton_tvl1.py on the GPU (compiled kernels vs the torch reference), if pytest is there;
# 2. benchmarks/bench_gpu_fused.py: pairs/s of triton-cuda vs torch-cuda eager and compiled at 256x256,
#    batch 1-256, GPU memory per pair, fidelity vs the OpenCV flows; under 10 minutes in all.
# Results: OUT_DIR (default $OUT, else benchmarks/results): gpu_fused.md, gpu_fused.json, gpu_tests.txt.
# FULL=1 also runs the older end-to-end GPU benchmarks (issue 4: bench_flow_backends, bench_extract,
# bench_flow_actors), which need PyAV, Ray and OpenCV contrib in $PYTHON's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT_DIR="${1:-${OUT:-benchmarks/results}}"
INPUTS="${INPUTS:-bench_out/gpu_inputs}"
mkdir -p "$OUT_DIR"
if [ ! -f "$INPUTS/pairs.json" ]; then
  echo "missing $INPUTS: run 'python benchmarks/prepare_gpu_inputs.py' where OpenCV contrib is, and carry the folder" >&2
  exit 2
fi
"$PYTHON" -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}, cuda: {torch.cuda.is_available()}')"

if "$PYTHON" -c "import pytest" 2>/dev/null; then
  timeout 90 "$PYTHON" -m pytest tests/test_triton_tvl1.py -q -p no:cacheprovider 2>&1 | tee "$OUT_DIR/gpu_tests.txt" | tail -5 || true
fi
timeout 450 "$PYTHON" benchmarks/bench_gpu_fused.py --inputs "$INPUTS" --out "$OUT_DIR"

if [ "${FULL:-0}" = 1 ]; then
  "$PYTHON" benchmarks/bench_flow_backends.py --cuda-eager --out "$OUT_DIR/flow_backends_gpu.md"
  "$PYTHON" benchmarks/bench_extract.py --flow-backend triton-cuda 2>&1 | tee "$OUT_DIR/extract_gpu.md"
  "$PYTHON" benchmarks/bench_flow_actors.py --out-md "$OUT_DIR/extract_gpu_actors.md"
fi
