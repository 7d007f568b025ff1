"""The fused CPU TV-L1 (`numba`) against OpenCV's DualTVL1, side by side, one thread each.

    python benchmarks/bench_cpu_tvl1.py --out benchmarks/results/flow_cpu_fused.md
    python benchmarks/bench_cpu_tvl1.py --pairs 4 --sizes 256          # a quick look

Per size, the same real frame pairs go through both backends in alternation (OpenCV pair i, numba pair
i, ...), so a change in machine load hits both alike and the ratio stays honest. Then N processes of
each on N cores (`flowprep extract --workers N` on a CPU node), and the numba kernels' cold start: a
fresh process compiling them into an empty cache, then a fresh process loading that cache (what a Ray
worker pays at start). Agreement with OpenCV is reported on the 256x256 pairs (mean EPE, quantized
pixels within one level); the bounds themselves are asserted in tests/test_flow_backends.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flow_backends import _cpu_backend, real_pairs, time_cpu_processes  # noqa: E402  (the same frames and rows)


def side_by_side(prev, nxt) -> dict:
    """Alternating pair by pair: seconds per backend, and the flows."""
    backends = {name: _cpu_backend(name) for name in ("opencv", "numba")}
    for backend in backends.values():
        backend.compute(prev[:1], nxt[:1])  # warm-up (numba: compile or load the cache)
    seconds = dict.fromkeys(backends, 0.0)
    flows = {name: [] for name in backends}
    for i in range(len(prev)):
        for name, backend in backends.items():
            t0 = time.perf_counter()
            flows[name].append(backend.compute(prev[i : i + 1], nxt[i : i + 1])[0])
            seconds[name] += time.perf_counter() - t0
    return {"seconds": seconds, "flows": {k: np.stack(v) for k, v in flows.items()}}


class _StageTimer:
    """Stands in for the solver's kernel module: forwards every kernel, adding its seconds to a stage."""

    STAGES = {
        "inner_loop": "iterations",
        "warp_framed": "warp",
        "centered_gradient": "warp",
        "pad_images": "warp",
        "median3": "median",
        "median5": "median",
        "pad_replicate": "median",
    }

    def __init__(self, kernels):
        self._k = kernels
        self.seconds = dict.fromkeys(("iterations", "warp", "median"), 0.0)

    def __getattr__(self, name):
        fn = getattr(self._k, name)
        stage = self.STAGES.get(name)
        if stage is None:
            return fn

        def timed(*args):
            t0 = time.perf_counter()
            out = fn(*args)
            self.seconds[stage] += time.perf_counter() - t0
            return out

        return timed


def stage_profile(prev, nxt, repeats: int = 3) -> dict:
    """Seconds per pair in each stage of the numba solver (best of `repeats` passes over the pairs):
    iterations (inner_loop), warp (+ centered gradient), median (+ its border pad), and the rest
    (pyramid, flow zoom, Python glue) as the total less those."""
    from flowprep.flow.numba_tvl1 import FusedTVL1Solver
    from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS

    # the Python-driven levels: the timer sees each kernel call (a compiled level is one call); the same
    # kernels and flow, ~1% slower at 256x256 (benchmarks/bench_numba_levels.py)
    solver = FusedTVL1Solver(dict(OPENCV_TVL1_DEFAULTS), compiled_levels=False)
    frames = [(a.astype(np.float32), b.astype(np.float32)) for a, b in zip(prev, nxt)]
    solver(*frames[0])  # warm
    best = None
    for _ in range(repeats):
        timer = _StageTimer(solver.k)
        solver.k = timer
        t0 = time.perf_counter()
        for a, b in frames:
            solver(a, b)
        total = time.perf_counter() - t0
        solver.k = timer._k
        row = {**timer.seconds, "total": total}
        row["rest"] = total - sum(timer.seconds.values())
        if best is None or total < best["total"]:
            best = row
    return {k: v / len(frames) for k, v in best.items()}


COLD_START = """
import time, numpy as np
t0 = time.perf_counter()
from flowprep.flow import create_backend
backend = create_backend("numba")
a = np.zeros((1, 32, 32), np.uint8)
backend.compute(a, a)
print(time.perf_counter() - t0)
"""


WIDTH_RUN = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
from bench_flow_backends import real_pairs
from flowprep.flow import create_backend
prev, nxt = real_pairs(int(sys.argv[2]), 256)
backend = create_backend("numba")
backend.compute(prev[:1], nxt[:1])
t0 = time.perf_counter()
for i in range(len(prev)):
    backend.compute(prev[i:i + 1], nxt[i:i + 1])
print((time.perf_counter() - t0) / len(prev))
"""


def vector_widths(pairs: int, rounds: int = 3) -> tuple[str, dict[str, float]]:
    """The host's vector ISA, and s/pair at 256x256 of the kernels compiled for the host and for AVX2
    (NUMBA_CPU_NAME=haswell), each in fresh processes with its own cache, alternated `rounds` times
    (medians). numba compiles for the CPU it runs on; LLVM picks the width."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    isa = "AVX-512" if features.get("avx512f") else ("AVX2" if features.get("avx2") else "no AVX2")
    host = f"{llvm.get_host_cpu_name()} ({isa})"
    seconds: dict[str, list[float]] = {host: [], "haswell (AVX2)": []}
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(rounds):
            for name in seconds:
                env = {**os.environ, "NUMBA_CACHE_DIR": f"{cache}/{name.split()[0]}"}
                if name.startswith("haswell"):
                    env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
                run = [sys.executable, "-c", WIDTH_RUN, str(Path(__file__).resolve().parent), str(pairs)]
                out = subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout
                seconds[name].append(float(out.split()[-1]))
    return host, {name: float(np.median(v)) for name, v in seconds.items()}


def cold_start() -> tuple[float, float]:
    """Seconds to a first flow in a fresh process: with an empty numba cache, then with that cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        run = [sys.executable, "-c", COLD_START]
        cold = float(subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout.split()[-1])
        warm = float(subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout.split()[-1])
    return cold, warm


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=12, help="pairs per size")
    parser.add_argument("--sizes", default="128x128,256x256,340x256", help="WxH list")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile-only", action="store_true", help="print the 256x256 stage profile, nothing else")
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.profile_only:
        prof = stage_profile(*real_pairs(args.pairs, 256))
        print({stage: f"{1e3 * sec:.2f} ms" for stage, sec in prof.items()})
        return

    import cv2
    import numba

    from flowprep import format as fmt

    lines = [
        "# Fused CPU TV-L1 (numba) vs OpenCV DualTVL1, one thread each",
        "",
        f"`python benchmarks/bench_cpu_tvl1.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"on {os.cpu_count()} cores ({platform.machine()}), OpenCV {cv2.__version__}, numba {numba.__version__}; "
        f"{args.pairs} consecutive-frame pairs of the real clips per size, OpenCV's default parameters.",
        "",
        "| size | OpenCV s/pair | numba s/pair | speed-up | notes |",
        "|---|---|---|---|---|",
    ]

    def emit(line):
        lines.append(line)
        print(line, flush=True)

    for line in lines:
        print(line)
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        prev, nxt = real_pairs(args.pairs, h, w)
        r = side_by_side(prev, nxt)
        s_cv, s_nb = r["seconds"]["opencv"] / len(prev), r["seconds"]["numba"] / len(prev)
        note = ""
        if (w, h) == (256, 256):
            ours, ref = r["flows"]["numba"], r["flows"]["opencv"]
            epe = np.linalg.norm(ours - ref, axis=-1).mean(axis=(1, 2))
            within = (
                (np.abs(fmt.quantize_flow(ours).astype(int) - fmt.quantize_flow(ref).astype(int)) <= 1)
                .all(axis=-1)
                .mean(axis=(1, 2))
            )
            note = f"EPE vs OpenCV mean {epe.mean():.4f} (max {epe.max():.4f}) px; within 1 level >= {within.min():.2%}"
        emit(f"| {w}x{h} | {s_cv:.3f} | {s_nb:.4f} | **{s_cv / s_nb:.1f}x** | {note} |")
    prev, nxt = real_pairs(args.pairs, 256)
    prof = stage_profile(prev, nxt)
    profile = [
        "",
        "Where a 256x256 pair's time goes (numba, one thread, best of 3 passes over the pairs; the rest is "
        "the pyramid, the flow zoom and Python glue):",
        "",
        "| stage | ms/pair | share |",
        "|---|---|---|",
    ]
    profile += [
        f"| {stage} | {1e3 * prof[stage]:.1f} | {prof[stage] / prof['total']:.0%} |"
        for stage in ("iterations", "warp", "median", "rest", "total")
    ]
    if args.procs > 1:
        rate = {name: time_cpu_processes(name, prev, nxt, args.procs) for name in ("opencv", "numba")}
        emit(
            f"| 256x256, {args.procs} processes | {1 / rate['opencv']:.3f} | {1 / rate['numba']:.4f} | "
            f"**{rate['numba'] / rate['opencv']:.1f}x** | "
            f"pairs/s: OpenCV {rate['opencv']:.2f}, numba {rate['numba']:.2f} |"
        )
    host, widths = vector_widths(min(args.pairs, 8))
    width_lines = [
        "",
        f"Vector width: this CPU is {host}. s/pair at 256x256, kernels compiled for it and for AVX2 "
        "(NUMBA_CPU_NAME=haswell; the flow is the same bits, tests/test_numba_tvl1.py), fresh processes "
        "alternated 3 times, medians: " + ", ".join(f"{n} {v:.4f}" for n, v in widths.items()) + ".",
    ]
    cold, warm = cold_start()
    tail = width_lines + [
        f"Cold start of the numba kernels (fresh process to first flow): {cold:.1f} s compiling into an empty "
        f"cache, {warm:.1f} s loading it (NUMBA_CACHE_DIR or the package's __pycache__).",
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
    ]
    lines += profile + [""] + tail
    for line in profile:
        print(line)
    for line in tail:
        print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
