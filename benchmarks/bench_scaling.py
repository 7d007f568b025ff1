"""Scale-out figures: throughput at 1 and 2 Ray workers, and the driver's peak memory against job size.

    python benchmarks/bench_scaling.py                    # both parts, about 5 minutes on 2 cores
    python benchmarks/bench_scaling.py --part scaling --rounds 3
    python benchmarks/bench_scaling.py --part memory --sizes 1000,10000

Every run is a fresh driver process with its own local Ray (`--executor ray`, one OpenCV thread per
worker, so W workers use W cores), timed around `run_extract`, i.e. without Ray's start-up.
scaling: the same job of 24 videos (128x128 px, 32 frames, default TV-L1) at 1 and 2 workers,
  alternated `--rounds` times; the best wall time of each is kept, the ratio is of those.
memory: a job of N tiny videos (16x16 px, 3 frames, one-scale TV-L1) per size; the driver reports
  its peak RSS (ru_maxrss) and the peak of Python allocations during the job (tracemalloc).
Results go to stdout as a Markdown table (and to --out-md when given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHEAP_FLOW = (("nscales", 1), ("warps", 1), ("inner_iterations", 5), ("outer_iterations", 1))


def driver(spec: dict) -> dict:
    """One job in this (fresh) process: local Ray with `workers` CPUs, then run_extract, measured."""
    import resource
    import tracemalloc

    import ray

    from flowprep.config import ExtractConfig
    from flowprep.runner import run_extract

    cfg = ExtractConfig(dataset="folder", executor="ray", threads_per_worker=1, **spec["cfg"])
    ray.init(address="local", num_cpus=cfg.workers, include_dashboard=False, log_to_driver=False)
    rss_before_mb = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    if spec.get("trace"):
        tracemalloc.start()
    started = time.perf_counter()
    report = run_extract(cfg, show_progress=False)
    wall_s = time.perf_counter() - started
    traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20 if spec.get("trace") else None
    return {
        "wall_s": wall_s,
        "videos": report["ok"],
        "frames": report["frames"],
        "rss_before_mb": rss_before_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "traced_peak_mb": traced_peak_mb,
    }


def run_driver(spec: dict) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, __file__, "--driver", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def generate(root: Path, videos: int, frames: int, size_px: int) -> None:
    from flowprep.datasets.sample import generate as generate_sample

    generate_sample(root, videos_per_class=videos // 4, frames=frames, size_px=size_px)


def scaling(work: Path, rounds: int, size_px: int, frames: int) -> list[str]:
    root = work / "scaling-videos"
    generate(root, videos=24, frames=frames, size_px=size_px)
    best: dict[int, dict] = {}
    for round_index in range(rounds):
        for workers in (1, 2):
            out = work / f"scaling-{workers}-{round_index}"
            load = os.getloadavg()[0]  # the machine may be shared: a busy one flattens the speed-up
            result = run_driver(
                {
                    "cfg": {
                        "root": str(root),
                        "out": str(out),
                        "workers": workers,
                        "size_px": size_px,
                        "max_frames": frames,
                        "videos_per_task": 2,
                    }
                }
            )
            result["load_before"] = load
            print(
                f"  workers={workers} round={round_index}: {result['wall_s']:.1f} s (load {load:.1f})", file=sys.stderr
            )
            if workers not in best or result["wall_s"] < best[workers]["wall_s"]:
                best[workers] = result
    lines = [
        "| workers | wall (s) | videos/s | frames/s | speed-up | 1-min load average before the run |",
        "|---|---|---|---|---|---|",
    ]
    for workers, result in sorted(best.items()):
        lines.append(
            f"| {workers} | {result['wall_s']:.1f} | {result['videos'] / result['wall_s']:.2f} | "
            f"{result['frames'] / result['wall_s']:.1f} | {best[1]['wall_s'] / result['wall_s']:.2f}x | "
            f"{result['load_before']:.1f} |"
        )
    return lines


def memory(work: Path, sizes: list[int]) -> list[str]:
    lines = [
        "| videos | tasks | wall (s) | driver RSS before job (MiB) | driver peak RSS (MiB) | "
        "peak Python allocations during job (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        root = work / f"tiny-{size}"
        generate(root, videos=size, frames=3, size_px=16)
        result = run_driver(
            {
                "trace": True,
                "cfg": {
                    "root": str(root),
                    "out": str(work / f"memory-{size}"),
                    "workers": 2,
                    "size_px": 16,
                    "max_frames": 3,
                    "videos_per_task": 100,
                    "flow_params": CHEAP_FLOW,
                },
            }
        )
        print(f"  {size} videos: {json.dumps(result)}", file=sys.stderr)
        lines.append(
            f"| {result['videos']} | {size // 100} | {result['wall_s']:.1f} | {result['rss_before_mb']:.0f} | "
            f"{result['peak_rss_mb']:.0f} | {result['traced_peak_mb']:.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["scaling", "memory", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=2)
    # Big enough that the fixed cost of a job (Ray starting worker processes that import OpenCV, PyAV and
    # pyarrow, the plan, the manifest merge: about 15 s on 2 cores) does not hide the per-video speed-up.
    parser.add_argument("--scaling-size", type=int, default=128, help="scaling: frame side in px")
    parser.add_argument("--scaling-frames", type=int, default=32, help="scaling: frames per video")
    parser.add_argument("--sizes", default="1000,10000", help="memory: job sizes in videos (multiples of 100)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out-md", default=None, help="also write the tables here")
    parser.add_argument("--driver", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        spec = json.loads(args.driver)
        spec["cfg"]["flow_params"] = tuple(tuple(p) for p in spec["cfg"].get("flow_params", ()))
        print(json.dumps(driver(spec)))
        return
    with tempfile.TemporaryDirectory(prefix="flowprep-bench-", dir=args.work) as work:
        lines = [
            f"`python benchmarks/bench_scaling.py --part {args.part} --rounds {args.rounds} --sizes {args.sizes} "
            f"--scaling-size {args.scaling_size} --scaling-frames {args.scaling_frames}` "
            f"on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}",
            "",
        ]
        if args.part in ("scaling", "all"):
            lines += [
                f"Throughput, same 24-video job ({args.scaling_size}x{args.scaling_size} px, {args.scaling_frames} "
                "frames, default TV-L1), 1 OpenCV thread per worker, timed around the whole job (worker "
                "start-up included):",
                "",
                *scaling(Path(work), args.rounds, args.scaling_size, args.scaling_frames),
                "",
            ]
        if args.part in ("memory", "all"):
            sizes = [int(s) for s in args.sizes.split(",")]
            lines += [
                "Driver memory, tiny videos (16x16 px, 3 frames, one-scale TV-L1), 100 videos per task, 2 workers:",
                "",
                *memory(Path(work), sizes),
                "",
            ]
    print("\n".join(lines))
    if args.out_md:
        Path(args.out_md).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
