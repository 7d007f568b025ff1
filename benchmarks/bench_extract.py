"""Per-stage time split and throughput of `flowprep extract` on the real clips in ../shared/data/videos.

    python benchmarks/bench_extract.py                       # every frame, 256x256, OpenCV TV-L1 defaults
    python benchmarks/bench_extract.py --max-frames 40 --workers 2
    python benchmarks/bench_extract.py --max-frames 40 --workers 2 --flow-backend opencv,numba \
        > benchmarks/results/extract_cpu_backends.md                                     # side by side

Prints one row per clip (frames, seconds in decode+resize, flow, JPEG encode, shard write) and the
totals: where the time goes, frames per second and videos per hour. Stage seconds are summed over
workers (CPU-seconds); videos/hour uses wall time. Several backends (comma-separated) run one after
the other on the same clips and settings, and the last line gives their videos/hour ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from flowprep.config import ExtractConfig
from flowprep.manifest import read_manifest
from flowprep.runner import run_extract
from flowprep.storage import filesystem

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
STAGES = ("decode", "flow", "encode", "write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(VIDEOS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--flow-backend", default="opencv", help="a backend, or several: opencv,numba")
    parser.add_argument("--executor", default="auto", help="extract's --executor (auto: processes on one machine)")
    args = parser.parse_args()
    import sys

    print(f"`python benchmarks/bench_extract.py {' '.join(sys.argv[1:])}`\n")
    rates = {}
    for backend in args.flow_backend.split(","):
        rates[backend] = run_one(args, backend)
        print()
    if len(rates) > 1:
        first = next(iter(rates))
        print("videos/hour: " + ", ".join(f"{b} {r:.0f} ({r / rates[first]:.2f}x {first})" for b, r in rates.items()))


def run_one(args, backend: str) -> float:
    """Extract the clips with `backend`, print its tables; returns videos per hour."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clips" / "real"
        root.mkdir(parents=True)
        for clip in sorted(Path(args.videos).iterdir()):
            os.symlink(clip, root / clip.name)
        cfg = ExtractConfig(
            dataset="folder",
            root=str(root.parent),
            out=str(Path(tmp) / "out"),
            size_px=args.size,
            max_frames=args.max_frames,
            workers=args.workers,
            flow_backend=backend,
            executor="inline" if args.workers == 1 else args.executor,
        )
        summary = run_extract(cfg, show_progress=False)
        fs, out = filesystem(cfg.out)
        rows = [r for r in read_manifest(fs, out) if r["status"] == "ok"]

    print(
        f"`flowprep extract` on {len(rows)} real clips, {args.size}x{args.size}, backend {backend}, "
        f"workers {args.workers}, executor {cfg.executor}, max frames {args.max_frames or 'all'}, "
        f"{os.cpu_count()} cores\n"
    )
    print("| clip | frames | " + " | ".join(f"{s} s" for s in STAGES) + " | flow s / pair |")
    print("|---|---|" + "---|" * (len(STAGES) + 1))
    for row in sorted(rows, key=lambda r: r["video_id"]):
        secs = [row[f"seconds_{s}"] for s in STAGES]
        print(
            f"| {row['video_id']} | {row['frames']} | "
            + " | ".join(f"{s:.2f}" for s in secs)
            + f" | {row['seconds_flow'] / max(row['flows'], 1):.3f} |"
        )
    total = sum(summary["stage_seconds"].values())
    print("\n| stage | CPU-seconds | share |\n|---|---|---|")
    for stage in STAGES:
        print(
            f"| {stage} | {summary['stage_seconds'][stage]:.1f} | {100 * summary['stage_seconds'][stage] / total:.1f}% |"
        )
    print(
        f"\nframes: {summary['frames']}, wall: {summary['wall_seconds']:.1f} s, "
        f"frames/s: {summary['frames'] / summary['wall_seconds']:.2f}, videos/hour: {summary['videos_per_hour']:.0f} "
        f"(these clips average {summary['frames'] / max(len(rows), 1):.0f} frames)"
    )
    return summary["videos_per_hour"]


if __name__ == "__main__":
    main()
