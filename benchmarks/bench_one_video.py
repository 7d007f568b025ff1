"""One video alone on 1 and 2 workers: does a single long clip use every worker (the default backend)?

    python benchmarks/bench_one_video.py --out benchmarks/results/one_video_cpu.md
    python benchmarks/bench_one_video.py --rounds 1 --frames 120        # a quick look

The clip: --frames frames of 256x256 px cut from the real clips in ../shared/data/videos (H.264), one
video in a `folder` dataset. Each run is a fresh driver process running `flowprep extract --workers N
--executor processes` on it (what the CLI runs, timed from the process start to its end, so the pool's
start and the numba cache load count), alternating 1 and 2 workers --rounds times; the best wall time
of each is kept. The 2-worker run splits the video into pair ranges; every job's start, end, worker and
decode / flow / encode seconds are recorded (the workers are forked from the driver, so a wrapper put
around `run_job` and `Extractor.video` there is theirs too) and printed per range.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flow_backends import CLIPS, VIDEOS  # noqa: E402  (the same real clips)

DRIVER = """
import json, sys, time
t0 = time.time()
from flowprep import task
from flowprep.executors import processes as executor_processes
from flowprep.config import ExtractConfig
from flowprep.runner import run_extract

log_path, spec = sys.argv[1], json.loads(sys.argv[2])
run_job, video = executor_processes.run_job, task.Extractor.video

def timed_video(self, item, known_bad, pairs=None):
    result = video(self, item, known_bad, pairs)
    timed_video.seconds = dict(result.seconds)
    return result

def timed_job(job, cfg, *args, **kwargs):
    timed_video.seconds = {}
    summary = run_job(job, cfg, *args, **kwargs)
    with open(log_path, "a") as f:
        f.write(json.dumps({"job": summary["job"], "worker": summary["worker"], "start": summary["started_at"],
                            "end": summary["ended_at"], "seconds": timed_video.seconds}) + "\\n")
    return summary

executor_processes.run_job, task.Extractor.video = timed_job, timed_video
run_extract(ExtractConfig(dataset="folder", executor="processes", **spec), show_progress=False)
print(json.dumps({"t0": t0, "wall_s": time.time() - t0}))
"""


def make_clip(path: Path, frames: int, size_px: int) -> None:
    """`frames` frames of the real clips, center-cropped and resized to size_px, as one H.264 video."""
    import av
    import cv2
    import numpy as np

    images: list[np.ndarray] = []
    while len(images) < frames:
        for clip in CLIPS:
            with av.open(str(VIDEOS / clip)) as container:
                for frame in container.decode(video=0):
                    rgb = frame.to_ndarray(format="rgb24")
                    h, w = rgb.shape[:2]
                    side = min(h, w)
                    crop = rgb[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
                    images.append(cv2.resize(crop, (size_px, size_px), interpolation=cv2.INTER_AREA))
                    if len(images) == frames:
                        break
            if len(images) == frames:
                break
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = size_px
        stream.pix_fmt = "yuv420p"
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))


def run(root: Path, out: Path, workers: int, threads: int = 0) -> tuple[float, list[dict]]:
    log = out.with_suffix(".jobs.jsonl")
    spec = {"root": str(root), "out": str(out), "workers": workers, "threads_per_worker": threads}
    t0 = time.time()
    done = subprocess.run([sys.executable, "-c", DRIVER, str(log), json.dumps(spec)], capture_output=True, text=True)
    wall = time.time() - t0
    if done.returncode != 0:
        raise RuntimeError(f"extract failed ({done.returncode}):\n{done.stderr[-3000:]}")
    jobs = [json.loads(line) for line in log.read_text().splitlines()]
    for job in jobs:
        job["start"] -= t0
        job["end"] -= t0
    return wall, jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the markdown here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "videos"
        make_clip(root / "clip" / "clip.mp4", args.frames, args.size)
        # (label, workers, threads per worker; 0: the default, 1)
        runs = [("1 (one core)", 1, 0), ("1, --threads-per-worker 2", 1, 2), ("2", 2, 0)]
        best: dict[str, tuple[float, list[dict]]] = {}
        for r in range(args.rounds):
            for label, workers, threads in runs:
                load = os.getloadavg()[0]
                wall, jobs = run(root, work / f"out-{workers}-{threads}-{r}", workers, threads)
                print(f"  workers={label} round={r}: {wall:.1f} s (load before {load:.1f})", file=sys.stderr)
                if label not in best or wall < best[label][0]:
                    best[label] = (wall, jobs)

    command = f"python benchmarks/bench_one_video.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip()
    lines = [
        "# One video alone: one core, 1 and 2 workers (default backend, processes executor)",
        "",
        f"`{command}` on {os.cpu_count()} cores ({platform.machine()}), shared with other work (the load "
        f"average is printed per run); a {args.frames}-frame {args.size}x{args.size} H.264 clip, best of "
        f"{args.rounds} fresh driver processes each, wall time from the process start.",
        "",
        "`--workers N` is N cores (one thread per worker), so the first row is what one core does; the",
        "second gives that one worker both cores' threads for its pairs (what it had by default before).",
        "",
        "| workers | wall (s) | speed-up vs `--workers 1` | first job starts (s) | last job ends (s) |",
        "|---|---|---|---|---|",
    ]
    for label, _, _ in runs:
        wall, jobs = best[label]
        lines.append(
            f"| {label} | {wall:.1f} | {best[runs[0][0]][0] / wall:.2f}x | "
            f"{min(j['start'] for j in jobs):.2f} | {max(j['end'] for j in jobs):.2f} |"
        )
    lines += [
        "",
        "Jobs of the best 2-worker run (seconds from the driver's start):",
        "",
        "| job | worker | start | end | decode | flow | encode |",
        "|---|---|---|---|---|---|---|",
    ]
    workers = {}
    for job in sorted(best["2"][1], key=lambda j: j["start"]):
        worker = workers.setdefault(job["worker"], f"w{len(workers)}")
        s = job["seconds"]
        lines.append(
            f"| {job['job']} | {worker} | {job['start']:.2f} | {job['end']:.2f} | "
            f"{s.get('decode', 0):.2f} | {s.get('flow', 0):.2f} | {s.get('encode', 0):.2f} |"
        )
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
