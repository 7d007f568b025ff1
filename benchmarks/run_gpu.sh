#!/usr/bin/env bash
# The GPU figures of issue 4 in one command, on a node with an NVIDIA GPU:
#   bash benchmarks/run_gpu.sh
# 1. pairs/s of every backend at 256x256 (torch on CUDA at batch 1, 8, 32, 64, 128, compiled and
#    eager, GPU memory per pair, bandwidth floor), as ratios to one OpenCV core measured in the same run;
# 2. `flowprep extract` end to end on the real clips with the torch-cuda backend (videos per hour).
# 3. `flowprep extract` end to end, flow in each task vs on GPU actors (`--flow-actors`), videos per
#    hour side by side with the opencv CPU baseline (benchmarks/bench_flow_actors.py).
# It makes its own venv with PyPI's default (CUDA) torch unless VENV points at one that has it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-gpu}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e . "torch>=2.1"
fi
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), f'torch {torch.__version__} sees no CUDA device'"
mkdir -p benchmarks/results
"$VENV/bin/python" benchmarks/bench_flow_backends.py --cuda-eager --out benchmarks/results/flow_backends_gpu.md
"$VENV/bin/python" benchmarks/bench_extract.py --flow-backend torch-cuda 2>&1 | tee benchmarks/results/extract_gpu.md
"$VENV/bin/python" benchmarks/bench_flow_actors.py --out-md benchmarks/results/extract_gpu_actors.md
