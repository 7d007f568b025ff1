"""Peak memory of one task against video length and resolution (the table in docs/scale-out.md).

Inputs are made here from a real clip (../shared/data/videos/kinetics_arm_wrestling_28fps.mp4,
340x256, 280 frames): upscaled to 1080p and 4K, and concatenated to 4x and 16x its length, all
H.264. Each video runs through `process_video` (as a task does) in a fresh interpreter, which
reports its peak RSS; frames are resized as they are decoded, so what grows with the length is
only the encoded JPEGs the sample holds until it is written.

    python benchmarks/bench_memory.py [--size 256] [--out benchmarks/results/memory_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "kinetics_arm_wrestling_28fps.mp4"
# Cheap TV-L1: its memory is a few 256x256 planes whatever the parameters; time is not measured here.
FAST_FLOW = {"nscales": 1, "warps": 1, "outer_iterations": 1, "inner_iterations": 5}

CHILD = r"""
import json, sys, time
import cv2
from flowprep.core import VideoSettings, process_video
from flowprep.decode import Resize
from flowprep.flow import create_backend

path, size, threads, flow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])

def high_water_kib():  # VmHWM: this process's own peak (ru_maxrss would include the parent's, from fork)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

cv2.setNumThreads(max(threads, 1))
backend = create_backend("opencv", **flow)
baseline_kib = high_water_kib()
t0 = time.perf_counter()
result = process_video(path, {"id": "v", "label": 0, "class": "c"},
                       VideoSettings(Resize("square", size), timeout_s=3600, decode_threads=threads), backend)
print(json.dumps({"frames": result.num_frames, "jpeg_bytes": result.nbytes(), "seconds": time.perf_counter() - t0,
                  "baseline_kib": baseline_kib, "peak_kib": high_water_kib()}))
"""


def make_input(path: Path, height: int, width: int, repeats: int) -> None:
    """The real clip scaled to height x width and played `repeats` times, as H.264 in MP4."""
    import av
    import cv2

    with av.open(str(CLIP)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=28)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for _ in range(repeats):
            for rgb in frames:
                if rgb.shape[:2] != (height, width):
                    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())


def measure(path: Path, size: int, threads: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(size), str(threads), json.dumps(FAST_FLOW)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=None, help="Markdown file to write (default: print)")
    args = parser.parse_args()
    inputs = [  # name, height, width, repeats
        ("real clip", 256, 340, 1),
        ("4x long", 256, 340, 4),
        ("16x long", 256, 340, 16),
        ("1080p", 1080, 1440, 1),
        ("4K", 2160, 3840, 1),
    ]
    lines = [
        f"Peak RSS of one task (`process_video`, `--size {args.size}`, fresh interpreter) by input; "
        f"`python benchmarks/bench_memory.py`. Inputs: `{CLIP.name}` upscaled / repeated, H.264.",
        "",
        "| input | coded size | frames | video s | decoder threads | JPEGs held MiB | "
        "peak RSS MiB | RSS over the idle process MiB | KiB per frame over idle |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, height, width, repeats in inputs:
            path = Path(tmp) / f"{name.replace(' ', '_')}.mp4"
            make_input(path, height, width, repeats)
            for threads in (1, 0) if name in ("real clip", "4K") else (1,):
                r = measure(path, args.size, threads)
                over_mib = (r["peak_kib"] - r["baseline_kib"]) / 1024
                lines.append(
                    f"| {name} | {width}x{height} | {r['frames']} | {r['frames'] / 28:.0f} | "
                    f"{threads or 'FFmpeg default (all cores)'} | {r['jpeg_bytes'] / 2**20:.1f} | "
                    f"{r['peak_kib'] / 1024:.0f} | {over_mib:.0f} | {over_mib * 1024 / r['frames']:.0f} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
