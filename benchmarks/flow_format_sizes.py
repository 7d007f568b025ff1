"""Bytes per sample and flow error of each --flow-format on real clips (the table in docs/FORMAT.md).

    python benchmarks/flow_format_sizes.py [--frames 40] [--size 256] [--backend numba]

For each clip, the first N frames are decoded at SIZE x SIZE, TV-L1 flow is computed once for the N-1
consecutive pairs (the default backend), and each flow plane is stored as the extractor stores it
(`core.encode_flow`: jpeg q95 levels, png16 levels, npz float32), then read back with
`format.flow_plane_px`, the loader's inverse. Reported: KiB per flow pair (x + y), KiB per sample
(RGB JPEGs q95 + flow + json), and the error against the float flow before storage (clipped to the
bound for jpeg and png16, whose range is [-bound, +bound]). Sizes are deterministic (no timing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from flowprep import format as fmt
from flowprep.core import VideoSettings, encode_flow, encode_jpeg
from flowprep.decode import Resize, StreamInfo, decode_frames
from flowprep.flow import create_backend

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared/data/videos"
CLIPS = (
    "kinetics_arm_wrestling_28fps.mp4",
    "kinetics_flipping_pancake_noframecount.mkv",
    "ucf101_ApplyEyeMakeup_xvid.avi",
)
JSON_BYTES = 1500  # a sample's json and cls, about (flow params included)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--backend", default="numba")
    args = parser.parse_args()
    backend = create_backend(args.backend)
    totals: dict[str, list[float]] = {form: [0.0, 0.0, 0.0, 0] for form in fmt.FLOW_FORMATS}  # bytes, err sum, max, n
    rgb_bytes = pairs = 0
    for name in CLIPS:
        rgb = list(decode_frames(str(VIDEOS / name), Resize("square", args.size), StreamInfo(), args.frames))
        rgb_bytes += sum(len(encode_jpeg(f, 95)) for f in rgb)
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
        flow_xy = backend.compute(gray[:-1], gray[1:])  # float32 (B,H,W,2) px
        pairs += flow_xy.shape[0]
        for form in fmt.FLOW_FORMATS:
            settings = VideoSettings(flow=fmt.FlowLayout(format=form))
            meta = {
                "flow": {
                    "bound_px": settings.bound_px,
                    "format": form,
                    "png16": dict(zip(("scale", "offset"), fmt.png16_scale_offset(settings.bound_px))),
                }
            }
            for b in range(flow_xy.shape[0]):
                for c in range(2):
                    plane = flow_xy[b, :, :, c]
                    stored = fmt.quantize_flow(plane, settings.bound_px) if form == "jpeg" else plane
                    data = encode_flow(stored, settings)
                    want = plane if form == "npz" else np.clip(plane, -settings.bound_px, settings.bound_px)
                    err = np.abs(fmt.flow_plane_px(data, meta) - want)
                    totals[form][0] += len(data)
                    totals[form][1] += float(err.sum())
                    totals[form][2] = max(totals[form][2], float(err.max()))
                    totals[form][3] += err.size
    frames = pairs + len(CLIPS)
    print(
        f"{len(CLIPS)} real clips x {args.frames} frames at {args.size}x{args.size}, {pairs} flow pairs, "
        f"backend {args.backend}; a sample of {args.frames} frames: RGB q95 "
        f"{rgb_bytes / frames * args.frames / 1024:.0f} KiB\n"
    )
    print(
        "| --flow-format | KiB / flow pair | KiB / sample (40 frames, RGB included) | flow / RGB bytes | "
        "mean abs err (px) | max abs err (px) |"
    )
    print("|---|---|---|---|---|---|")
    for form, (nbytes, err_sum, err_max, n) in totals.items():
        per_pair = nbytes / pairs
        per_sample = (rgb_bytes / frames * args.frames + per_pair * (args.frames - 1) + JSON_BYTES) / 1024
        print(
            f"| {form} | {per_pair / 1024:.1f} | {per_sample:.0f} | {per_pair * pairs / rgb_bytes:.2f} | "
            f"{err_sum / n:.5f} | {err_max:.5f} |"
        )


if __name__ == "__main__":
    main()
