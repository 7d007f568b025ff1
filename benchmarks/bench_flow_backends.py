"""Pairs per second of the TV-L1 backends at 256x256, as a ratio to one OpenCV CPU core in the same run.

    python benchmarks/bench_flow_backends.py --quick                  # CPU: a few pairs, minutes
    python benchmarks/bench_flow_backends.py --out benchmarks/results/flow_backends_cpu.md
    bash benchmarks/run_gpu.sh                                       # GPU node: this + extract end to end

On a machine where torch sees CUDA, the torch backend is also timed on the GPU (torch.compile'd, batch
sizes 1, 8, 32, 64, 128, or --cuda-batches) with its peak GPU memory per pair, and opencv-cuda when
OpenCV has CUDA. Rows:
  opencv 1 core       cv2.optflow TV-L1, cv2.setNumThreads(1), pairs one after another
  numba 1 core        the fused CPU TV-L1 (the CPU default), one thread
  opencv / numba N procs  one single-threaded backend per core (multiprocessing), how extract scales
  (benchmarks/bench_cpu_tvl1.py times opencv and numba alternating pair by pair at 128, 256, 340x256)
  torch cpu B=...     the torch backend on the CPU, 1 thread and all cores' threads, eager;
                      --cpu-compile adds torch.compile'd rows
  torch cuda B=...    the torch backend on the GPU
The frames are consecutive frames of the real clips in ../shared/data/videos (gray, resized to 256x256):
TV-L1 stops early when a pair converges, so speed depends on content, and random noise would mislead.

The bandwidth floor: a fused primal-dual step reads 10 float32 planes per pixel (u1, u2, p11, p12, p21,
p22, I1wx, I1wy, grad, rho_c) and writes 6, 64 bytes. The backend counts the pixel-steps it runs (sum
over executed iterations of the pyramid level's H*W), so the floor is
    pairs/s <= bandwidth / (64 B * pixel-steps per pair)
with the GPU's memory bandwidth (--bandwidth-gbs, else looked up from the device name). Everything else
(warps, median filters, pyramid) is a few percent of the iterations and left out of the floor.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CLIPS = (
    "kinetics_arm_wrestling_28fps.mp4",
    "kinetics_flipping_pancake_noframecount.mkv",
    "ucf101_ApplyEyeMakeup_xvid.avi",
    "pedestrians_msmpeg4v3_10fps.avi",
)
BYTES_PER_PIXEL_STEP = 64  # 10 float32 reads + 6 writes per pixel per fused iteration
# Peak memory bandwidth (GB/s) by device name, for the floor; --bandwidth-gbs overrides.
BANDWIDTH_GBS = {
    "H200": 4800,
    "H100 SXM": 3350,
    "H100 80GB HBM3": 3350,
    "H100 PCIe": 2000,
    "H100 NVL": 3900,
    "H100": 3350,
    "A100-SXM4-80GB": 2039,
    "A100": 1555,
    "L40S": 864,
    "A10": 600,
}


def real_pairs(n_pairs: int, size: int = 256, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n,H,W) x2 with H = size, W = width or size: consecutive frames spread over the real clips
    (synthetic if absent)."""
    import cv2

    frames_per_clip = -(-n_pairs // len(CLIPS)) + 1
    prev, nxt = [], []
    if VIDEOS.is_dir():
        import av

        for clip in CLIPS:
            grays = []
            with av.open(str(VIDEOS / clip)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i < 30:  # skip fade-ins
                        continue
                    gray = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)
                    grays.append(cv2.resize(gray, (width or size, size), interpolation=cv2.INTER_AREA))
                    if len(grays) == frames_per_clip:
                        break
            prev += grays[:-1]
            nxt += grays[1:]
    else:
        print(f"# {VIDEOS} not found: synthetic textures moving 1.5 px", file=sys.stderr)
        rng = np.random.default_rng(0)
        for _ in range(n_pairs):
            big = cv2.GaussianBlur(rng.uniform(0, 255, (size + 8, (width or size) + 8)).astype(np.float32), (0, 0), 2)
            shifted = cv2.warpAffine(big, np.float32([[1, 0, 1.5], [0, 1, 0.5]]), big.shape[::-1])
            prev.append(big[4:-4, 4:-4].astype(np.uint8))
            nxt.append(shifted[4:-4, 4:-4].astype(np.uint8))
    idx = np.arange(n_pairs) % len(prev)
    return np.stack(prev)[idx], np.stack(nxt)[idx]


def _cpu_backend(name: str):
    """A CPU backend (opencv, numba) on one OpenCV thread; also used by bench_cpu_tvl1.py."""
    import cv2

    cv2.setNumThreads(1)
    from flowprep.flow import create_backend

    return create_backend(name)


_WORKER_BACKENDS: dict = {}


def _cpu_worker(args):
    name, a, b = args
    if name not in _WORKER_BACKENDS:
        _WORKER_BACKENDS[name] = _cpu_backend(name)
    return _WORKER_BACKENDS[name].compute(a[None], b[None])[0]


def time_cpu_one_core(name: str, prev, nxt) -> float:
    """pairs/s of a CPU backend (opencv, numba) on one thread, pairs one after another."""
    import cv2

    threads = cv2.getNumThreads()
    backend = _cpu_backend(name)
    backend.compute(prev[:1], nxt[:1])  # warm-up (numba: load the compiled kernels)
    t0 = time.perf_counter()
    for i in range(len(prev)):
        backend.compute(prev[i : i + 1], nxt[i : i + 1])
    seconds = time.perf_counter() - t0
    cv2.setNumThreads(threads)
    return len(prev) / seconds


def time_cpu_processes(name: str, prev, nxt, procs: int) -> float:
    """pairs/s of `procs` single-threaded processes of a CPU backend: how extract scales on a CPU."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        pool.map(_cpu_worker, [(name, prev[0], nxt[0])] * procs)  # start + warm every worker
        t0 = time.perf_counter()
        pool.map(_cpu_worker, [(name, a, b) for a, b in zip(prev, nxt)], chunksize=1)
        seconds = time.perf_counter() - t0
    return len(prev) / seconds


def time_torch(prev, nxt, device: str, batch: int, compile: bool, repeats: int) -> dict:
    """pairs/s of the torch backend on `repeats` batches of `batch` pairs (after one warm-up batch)."""
    import torch

    from flowprep.flow.torch_tvl1 import TorchTVL1

    backend = TorchTVL1(device=device, compile=compile, batch=batch)
    n = len(prev)
    batches = [(np.arange(r * batch, (r + 1) * batch) % n) for r in range(repeats + 1)]
    t_warm = time.perf_counter()
    backend.compute(prev[batches[0]], nxt[batches[0]])  # compiles on first use
    t_warm = time.perf_counter() - t_warm
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds, pixel_steps, iterations = 0.0, 0, 0
    for idx in batches[1:]:
        t0 = time.perf_counter()
        backend.compute(prev[idx], nxt[idx])  # returns numpy: includes the device sync and copy
        seconds += time.perf_counter() - t0
        pixel_steps += backend._solver.pixel_steps
        iterations += backend._solver.iterations_run
    row = {
        "pairs_s": repeats * batch / seconds,
        "warmup_s": t_warm,
        "pixel_steps_per_batch": pixel_steps / repeats,
        "iterations_per_batch": iterations / repeats,
    }
    if device.startswith("cuda"):
        row["mem_mib_per_pair"] = torch.cuda.max_memory_allocated() / batch / 2**20
    return row


def time_opencv_cuda(prev, nxt) -> float:
    from flowprep.flow.opencv_cuda import OpenCVCudaTVL1

    backend = OpenCVCudaTVL1()
    backend.compute(prev[:1], nxt[:1])
    t0 = time.perf_counter()
    backend.compute(prev, nxt)
    return len(prev) / (time.perf_counter() - t0)


def bandwidth_gbs(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, gbs in BANDWIDTH_GBS.items():
        if key.lower() in device_name.lower():
            return gbs
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few pairs, few batch sizes: a smoke run")
    parser.add_argument("--pairs", type=int, default=None, help="pairs timed per CPU row (default 16, quick 4)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cpu-batches", default=None, help="torch CPU batch sizes (default 1,4; quick 2)")
    parser.add_argument("--cpu-compile", action="store_true", help="also time torch.compile on the CPU (slow warm-up)")
    parser.add_argument("--cuda-batches", default="1,8,32,64,128")
    parser.add_argument("--cuda-eager", action="store_true", help="also time the GPU without torch.compile")
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="GPU memory bandwidth for the floor")
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)

    import cv2
    import torch

    n_pairs = args.pairs or (4 if args.quick else 16)
    cpu_batches = [int(b) for b in (args.cpu_batches or ("2" if args.quick else "1,4")).split(",")]
    cuda_batches = [int(b) for b in args.cuda_batches.split(",")]
    if args.quick:
        cuda_batches = cuda_batches[:3]
    cores = os.cpu_count() or 1
    prev, nxt = real_pairs(max(n_pairs, max(cuda_batches + cpu_batches)), args.size)
    cpu_prev, cpu_next = prev[:n_pairs], nxt[:n_pairs]

    lines = [
        f"# TV-L1 backends at {args.size}x{args.size}",
        "",
        f"`python benchmarks/bench_flow_backends.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"on {platform.node() or 'this machine'}: {cores} CPU cores ({platform.processor() or platform.machine()}), "
        f"OpenCV {cv2.__version__}, torch {torch.__version__}, "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device'}.",
        f"Frames: consecutive frames of the real clips in ../shared/data/videos, gray, {args.size}x{args.size}.",
        "",
        "| backend | batch | pairs/s | x one OpenCV core | notes |",
        "|---|---|---|---|---|",
    ]

    def row(name, batch, pairs_s, notes=""):
        line = f"| {name} | {batch} | {pairs_s:.2f} | {pairs_s / one_core:.2f}x | {notes} |"
        lines.append(line)
        print(line, flush=True)

    one_core = time_cpu_one_core("opencv", cpu_prev, cpu_next)
    row("opencv 1 core", 1, one_core, f"{1 / one_core:.2f} s/pair")
    numba_core = time_cpu_one_core("numba", cpu_prev, cpu_next)
    row("numba 1 core", 1, numba_core, f"{1 / numba_core:.3f} s/pair; the fused CPU TV-L1, the CPU default")
    if cores > 1:
        for name in ("opencv", "numba"):
            row(f"{name} {cores} procs", 1, time_cpu_processes(name, cpu_prev, cpu_next, cores), "1 thread per process")

    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for batch in cpu_batches:
            for compile in [False, True] if args.cpu_compile else [False]:
                r = time_torch(cpu_prev, cpu_next, "cpu", batch, compile, max(1, n_pairs // batch))
                row(
                    f"torch cpu{' compiled' if compile else ''}",
                    batch,
                    r["pairs_s"],
                    f"{threads} thread{'s' if threads > 1 else ''}; {r['iterations_per_batch']:.0f} iterations/batch; "
                    f"warm-up {r['warmup_s']:.1f} s",
                )
    torch.set_num_threads(default_threads)

    floor_lines = []
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        gbs = bandwidth_gbs(name, args.bandwidth_gbs)
        for batch in cuda_batches:
            for compile in [True, False] if args.cuda_eager else [True]:
                repeats = max(2, 256 // batch) if not args.quick else 2
                r = time_torch(prev, nxt, "cuda", batch, compile, repeats)
                floor = ""
                if gbs:
                    per_pair_bytes = BYTES_PER_PIXEL_STEP * r["pixel_steps_per_batch"]
                    floor_pairs_s = gbs * 1e9 / per_pair_bytes
                    floor = f"; floor {floor_pairs_s:.0f} pairs/s ({r['pairs_s'] / floor_pairs_s:.0%} of it)"
                row(
                    f"torch cuda{'' if compile else ' eager'}",
                    batch,
                    r["pairs_s"],
                    f"{r['mem_mib_per_pair']:.1f} MiB GPU/pair; {r['iterations_per_batch']:.0f} iterations/batch; "
                    f"warm-up {r['warmup_s']:.1f} s{floor}",
                )
        if gbs:
            floor_lines.append(f"Bandwidth floor: {name} at {gbs:.0f} GB/s, {BYTES_PER_PIXEL_STEP} B per pixel-step.")
    else:
        floor_lines.append(
            "No CUDA device here: the GPU rows are missing. On a GPU node: `bash benchmarks/run_gpu.sh`."
        )
    ok, _ = __import__("flowprep.flow.opencv_cuda", fromlist=["x"]).OpenCVCudaTVL1.available()
    if ok:
        row("opencv-cuda", 1, time_opencv_cuda(cpu_prev, cpu_next), "pair by pair")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    floor_lines.append(
        f"Load average at the end of the run: {load:.1f} on {cores} cores "
        "(other work on the machine slows every row, multi-threaded torch most)."
    )
    lines += [""] + floor_lines
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"# wrote {args.out}")
    for line in floor_lines:
        print(line)


if __name__ == "__main__":
    main()
