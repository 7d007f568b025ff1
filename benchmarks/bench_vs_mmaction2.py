"""flowprep extract vs MMAction2's flow extractor (../shared/peers), side by side on the same clips.

Both get the same real clips of ../shared/data/videos, decoded once, upright, resized to 256x256 and
re-encoded losslessly (FFV1), since the peer computes at the video's own size. Each tool runs as a
separate process on all the machine's cores; the wall time is the whole process, start-up included,
median of --repeats runs. The peer: `mmaction2_flow_extraction.py --save-rgb` (videos one after
another, OpenCV's threads inside each TV-L1 call). flowprep: `flowprep extract --dataset folder
--workers <cores>` with `--flow-backend opencv` (the same TV-L1) and with the default (`auto`), on
the default executor (worker processes) and, for the default backend, on a local Ray (`--executor ray`).

    python benchmarks/bench_vs_mmaction2.py --out benchmarks/results/vs_mmaction2.md

Sets: `two`: the issue's Kinetics cleaning-pool and arm-wrestling clips, 32 frames each; `all`: every
clip of ../shared/data/videos, each cut to --max-frames (0: whole; the 795-frame pedestrians clip
is the long video that a video-per-worker tool leaves to one core).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
VIDEOS = SHARED / "data" / "videos"
PEER = SHARED / "peers" / "mmaction2_flow_extraction.py"
BIN = Path(sys.executable).parent
TWO = ("kinetics_cleaning_pool_32frames.mp4", "kinetics_arm_wrestling_28fps.mp4")


def prepare(names: list[str], root: Path, max_frames: int) -> int:
    """`root/dataset/clips/<stem>.mkv` (the folder dataset's <class>/<video>): each clip upright, 256x256,
    lossless; returns the total frame count."""
    import av

    from flowprep.decode import Resize, StreamInfo, decode_frames

    clips = root / "dataset" / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in names:
        frames = list(decode_frames(str(VIDEOS / name), Resize("square", 256), StreamInfo(), max_frames or None))
        with av.open(str(clips / (Path(name).stem + ".mkv")), "w") as container:
            stream = container.add_stream("ffv1", rate=25)
            stream.width = stream.height = 256
            stream.pix_fmt = "yuv444p"  # no chroma subsampling: the frames come back as they went in
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        total += len(frames)
    (root / "list.txt").write_text("".join(f"{p.name}\n" for p in sorted(clips.glob("*.mkv"))))
    return total


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode not in (0, 3):  # 3: flowprep's "some videos failed", reported in the table
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return elapsed


def private_network(cmd: list[str]) -> list[str]:
    """Ray binds the machine's address; in a private network namespace it stays on loopback (as in tests).
    Only the Ray row needs it: the default executor opens no socket."""
    if shutil.which("unshare") and os.geteuid() == 0:
        return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    return cmd


def run_set(name: str, clips: list[str], work: Path, max_frames: int, repeats: int, workers: int) -> dict:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    frames = prepare(clips, root, max_frames)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def flowprep(out: Path, *flags: str) -> list[str]:
        dataset = ["--dataset", "folder", "--root", str(root / "dataset"), "--out", str(out)]
        return [str(BIN / "flowprep"), "extract", *dataset, "--workers", str(workers), "--no-progress", *flags]

    commands = {
        "mmaction2 (OpenCV TV-L1)": lambda out: [
            sys.executable,
            str(PEER),
            "--input",
            str(root / "list.txt"),
            "--prefix",
            str(root / "dataset" / "clips"),
            "--dest",
            str(out),
            "--save-rgb",
        ],
        "flowprep --flow-backend opencv": lambda out: flowprep(out, "--flow-backend", "opencv"),
        "flowprep (default backend)": lambda out: flowprep(out),
        "flowprep (default backend) --executor ray": lambda out: private_network(flowprep(out, "--executor", "ray")),
    }
    walls: dict[str, list[float]] = {tool: [] for tool in commands}
    for _ in range(repeats):
        for tool, command in commands.items():  # interleaved: a machine that slows down slows all alike
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            walls[tool].append(timed(command(out), env))
            print(f"{name}: {tool}: {walls[tool][-1]:.1f} s", flush=True)
    return {
        "set": name,
        "clips": len(clips),
        "frames": frames,
        "wall_s": {t: statistics.median(w) for t, w in walls.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["two", "all"], choices=["two", "all"])
    parser.add_argument("--max-frames", type=int, default=0, help="cut each clip of the `all` set to this many")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--work", default="bench_out/vs_mmaction2")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    results = []
    for name in args.sets:
        clips = list(TWO) if name == "two" else sorted(p.name for p in VIDEOS.iterdir() if p.is_file())
        results.append(
            run_set(name, clips, Path(args.work), 32 if name == "two" else args.max_frames, args.repeats, args.workers)
        )
    lines = [
        f"Command: `python benchmarks/bench_vs_mmaction2.py --sets {' '.join(args.sets)} --max-frames "
        f"{args.max_frames} --repeats {args.repeats}` on {os.cpu_count()} cores; wall time of the whole process "
        f"(start-up included), median of {args.repeats}.",
        "",
        "| set | clips | frames | tool | wall (s) | vs mmaction2 |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        peer = r["wall_s"]["mmaction2 (OpenCV TV-L1)"]
        for tool, wall in r["wall_s"].items():
            lines.append(f"| {r['set']} | {r['clips']} | {r['frames']} | {tool} | {wall:.1f} | {peer / wall:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
