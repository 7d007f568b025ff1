"""`flowprep extract` end to end on a GPU node: flow in each task vs flow on GPU actors (`--flow-actors`).

    python benchmarks/bench_flow_actors.py --out-md benchmarks/results/extract_gpu_actors.md   # GPU node
    python benchmarks/bench_flow_actors.py --gpu-backend opencv --copies 1 --max-frames 4 --size 64  # CPU smoke run

The job: the real clips of ../shared/data/videos, each linked `--copies` times (one class folder per
copy), every video cut at `--max-frames` frames, `--size` px square. The same job runs, one after the
other in this process (each with its own local Ray, whose start is inside the wall time), as:
  cpu          opencv TV-L1 in every task, one task per core (the CPU baseline)
  gpu-in-task  the GPU backend built inside every task (cores / 2 tasks share the GPU(s))
  actors       one flow actor per GPU holding it, cores - actors CPU tasks decoding and encoding
  actors-x2    two actors per GPU (0.5 GPU each): one batch copies while the other computes
Prints a Markdown table of videos/hour and frames/s, each as a ratio to the first row.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from flowprep.config import ExtractConfig
from flowprep.flow import backend_class
from flowprep.runner import run_extract

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def gpu_count(backend: str) -> int:
    if "cuda" not in backend:
        return 1  # a CPU smoke run: one "GPU" worth of actors
    import torch

    return torch.cuda.device_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(VIDEOS))
    parser.add_argument("--copies", type=int, default=8, help="Links to each clip (more videos than workers).")
    parser.add_argument("--max-frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--gpu-backend", default="torch-cuda")
    parser.add_argument("--skip-cpu", action="store_true", help="Leave out the opencv CPU baseline.")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()

    cores, gpus = os.cpu_count() or 1, gpu_count(args.gpu_backend)
    gpu_share = None if backend_class(args.gpu_backend).needs_gpu else 0.0  # None: 1 GPU per actor
    runs = [] if args.skip_cpu else [("cpu", "opencv", cores, 0, None)]
    runs += [
        ("gpu-in-task", args.gpu_backend, max(1, cores // 2), 0, None),
        ("actors", args.gpu_backend, max(1, cores - gpus), gpus, gpu_share),
        ("actors-x2", args.gpu_backend, max(1, cores - 2 * gpus), 2 * gpus, 0.5 if gpu_share is None else 0.0),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clips"
        for copy in range(args.copies):
            (root / f"copy{copy:02d}").mkdir(parents=True)
            for clip in sorted(Path(args.videos).iterdir()):
                os.symlink(clip, root / f"copy{copy:02d}" / clip.name)
        for label, backend, workers, actors, share in runs:
            cfg = ExtractConfig(
                dataset="folder",
                root=str(root),
                out=str(Path(tmp) / f"out-{label}"),
                size_px=args.size,
                max_frames=args.max_frames,
                flow_backend=backend,
                workers=workers,
                videos_per_task=1,
                flow_actors=actors,
                gpus_per_flow_actor=share,
            )
            summary = run_extract(cfg, show_progress=False)
            rows.append((label, backend, workers, actors, summary))
            print(f"{label}: {summary['videos_per_hour']:.0f} videos/hour", flush=True)

    base = rows[0][4]
    lines = [
        f"`flowprep extract`, {args.copies} x the clips of {args.videos}, {args.size}x{args.size}, "
        f"max {args.max_frames} frames, {cores} cores, {gpus} GPU(s) ({args.gpu_backend}); wall time includes "
        f"Ray's start.",
        "",
        "| run | backend | CPU tasks | flow actors | ok | frames | wall s | videos/hour | frames/s | x first row |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, backend, workers, actors, s in rows:
        lines.append(
            f"| {label} | {backend} | {workers} | {actors} | {s['ok']} | {s['frames']} | {s['wall_seconds']:.1f} "
            f"| {s['videos_per_hour']:.0f} | {s['frames_per_second']:.1f} "
            f"| {s['videos_per_hour'] / max(base['videos_per_hour'], 1e-9):.2f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    if args.out_md:
        Path(args.out_md).write_text(table + "\n\nCommand: `python benchmarks/bench_flow_actors.py`\n")


if __name__ == "__main__":
    main()
