"""Real frame pairs and OpenCV's CPU TV-L1 flow on them, saved as .npy for the GPU benchmark.

    python benchmarks/prepare_gpu_inputs.py                      # 16 pairs at 256x256 -> bench_out/gpu_inputs
    python benchmarks/prepare_gpu_inputs.py --size 32 --pairs 4 --out bench_out/gpu_inputs_32   # CPU smoke

The GPU node has no PyAV, no OpenCV contrib and no network, so the reference is computed here and
carried there (bench_out/ is git-ignored: name the folder in the run's `carry`). Written files:
  prev_u8.npy, next_u8.npy    uint8 (N,H,W)      gray frames t and t+1
  flow_opencv.npy             float32 (N,H,W,2)  px, cv2.optflow.DualTVL1OpticalFlow at OpenCV's defaults
  flow_gt.npy                 float32 (G,H,W,2)  px, ground truth of the G pairs that have one (NaN: unknown)
  pairs.json                  names, gt_pairs (their indices), size, OpenCV version and parameters
About 0.66 MB per pair at 256x256 plus 0.5 MB per ground truth (16 pairs: 11.5 MB).

Pairs: Middlebury RubberWhale and Sintel alley_1 (with ground truth), then consecutive frames of the
real clips (Kinetics, UCF101, pedestrians), gray, resized with INTER_AREA as tests/test_flow_backends.py
and the extractor do.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# (clip, first frame of each pair): spread over the clip, after any fade-in
CLIP_PAIRS = (
    ("kinetics_arm_wrestling_28fps.mp4", (60, 90, 120, 150)),
    ("kinetics_flipping_pancake_noframecount.mkv", (40, 100, 160)),
    ("ucf101_ApplyEyeMakeup_xvid.avi", (40, 80, 120)),
    ("pedestrians_msmpeg4v3_10fps.avi", (50, 120, 200, 260)),
)


def _read_flo(path: Path) -> np.ndarray:
    """Middlebury .flo -> float32 (H,W,2), NaN where the ground truth is unknown."""
    raw = np.fromfile(path, dtype=np.uint8)
    w, h = np.frombuffer(raw[4:12].tobytes(), np.int32)
    flow = np.frombuffer(raw[12 : 12 + 8 * w * h].tobytes(), np.float32).reshape(h, w, 2).copy()
    flow[np.abs(flow) >= 1e9] = np.nan
    return flow


def image_pairs(size: int):
    """(name, prev, next, gt) of the two ground-truth pairs, gt resized nearest with scaled vectors."""
    import cv2

    def gray(path):
        return cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)

    def gt(path):
        flow = _read_flo(path)
        h, w = flow.shape[:2]
        return cv2.resize(flow, (size, size), interpolation=cv2.INTER_NEAREST) * np.array(
            [size / w, size / h], np.float32
        )

    rw, sintel = DATA / "flow_gt" / "middlebury_rubberwhale", DATA / "flow_gt" / "sintel_alley_1"
    yield "rubberwhale", gray(rw / "rubberwhale1.png"), gray(rw / "rubberwhale2.png"), gt(rw / "flow_gt.flo")
    yield (
        "sintel_alley_1",
        gray(sintel / "frame_0001.png"),
        gray(sintel / "frame_0002.png"),
        gt(sintel / "frame_0001.flo"),
    )


def clip_pairs(size: int):
    """(name, prev, next, None) for each (clip, first frame) of CLIP_PAIRS."""
    import av
    import cv2

    for clip, firsts in CLIP_PAIRS:
        wanted = set(firsts) | {f + 1 for f in firsts}
        grays = {}
        with av.open(str(DATA / "videos" / clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    gray = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)
                    grays[i] = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
                if i >= max(wanted):
                    break
        for first in firsts:
            if first + 1 in grays:
                yield f"{clip.split('.')[0]}@{first}", grays[first], grays[first + 1], None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="frames are resized to size x size")
    parser.add_argument("--pairs", type=int, default=16, help="at most this many pairs")
    parser.add_argument("--out", default=str(ROOT / "bench_out" / "gpu_inputs"))
    args = parser.parse_args(argv)

    import cv2

    from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, OpenCVTVL1

    cv2.setNumThreads(1)
    pairs = []
    for source in (image_pairs, clip_pairs):
        for pair in source(args.size):
            pairs.append(pair)
            if len(pairs) == args.pairs:
                break
        if len(pairs) == args.pairs:
            break
    names = [p[0] for p in pairs]
    prev = np.stack([p[1] for p in pairs])
    nxt = np.stack([p[2] for p in pairs])
    gt_pairs = [i for i, p in enumerate(pairs) if p[3] is not None]
    gt = np.stack([pairs[i][3].astype(np.float32) for i in gt_pairs])

    backend = OpenCVTVL1()
    t0 = time.perf_counter()
    flow = np.stack([backend.compute(prev[i : i + 1], nxt[i : i + 1])[0] for i in range(len(pairs))])
    seconds_per_pair = (time.perf_counter() - t0) / len(pairs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "prev_u8.npy", prev)
    np.save(out / "next_u8.npy", nxt)
    np.save(out / "flow_opencv.npy", flow.astype(np.float32))
    np.save(out / "flow_gt.npy", gt)
    meta = {
        "names": names,
        "gt_pairs": gt_pairs,
        "size": args.size,
        "opencv": cv2.__version__,
        "params": OPENCV_TVL1_DEFAULTS,
        "opencv_seconds_per_pair_1_thread": seconds_per_pair,
        "max_flow_px": [float(np.abs(f).max()) for f in flow],
    }
    (out / "pairs.json").write_text(json.dumps(meta, indent=1))
    total_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(
        f"{len(pairs)} pairs at {args.size}x{args.size} -> {out} ({total_mb:.1f} MB); "
        f"OpenCV {cv2.__version__}: {seconds_per_pair:.2f} s per pair on one thread"
    )
    for name, mx in zip(names, meta["max_flow_px"]):
        print(f"  {name:48s} max |flow| {mx:5.1f} px")


if __name__ == "__main__":
    main()
