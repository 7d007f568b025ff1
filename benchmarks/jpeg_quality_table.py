"""Size versus error of flow JPEGs at several qualities, on real TV-L1 flow (the table in docs/FORMAT.md).

    python benchmarks/jpeg_quality_table.py [--video PATH] [--pairs 12]

Flow is computed with OpenCV TV-L1 at its defaults on consecutive 256x256 frames of a real clip,
quantized to uint8 levels (bound 20 px), JPEG-encoded at each quality, decoded, and compared with the
levels before JPEG. One level is 40/255 = 0.157 px.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from flowprep import format as fmt
from flowprep.core import encode_jpeg
from flowprep.decode import Resize, StreamInfo, decode_frames
from flowprep.flow import create_backend

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/videos/kinetics_arm_wrestling_28fps.mp4"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--step", type=int, default=10, help="use frames 0, step, 2*step, ... (varied content)")
    args = parser.parse_args()

    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode_frames(args.video, Resize(), StreamInfo())]
    starts = list(range(0, len(frames) - 1, args.step))[: args.pairs]
    backend = create_backend("opencv")
    flows = backend.compute(np.stack([frames[i] for i in starts]), np.stack([frames[i + 1] for i in starts]))
    levels = fmt.quantize_flow(flows)  # uint8 (B,H,W,2)
    planes = [levels[b, :, :, c] for b in range(levels.shape[0]) for c in range(2)]
    quant_err_px = np.abs(fmt.dequantize_flow(levels.astype(np.float32)) - np.clip(flows, -20, 20))
    print(
        f"video: {Path(args.video).name}, {len(planes)} flow planes of 256x256; "
        f"quantization alone: mean {quant_err_px.mean():.4f} px, max {quant_err_px.max():.4f} px"
    )
    print(
        "| JPEG quality | KiB / plane | PNG KiB / plane (lossless) | mean abs err (levels) | p99 abs err (levels) | max abs err (levels) | mean abs err (px) |"
    )
    print("|---|---|---|---|---|---|---|")
    png_kib = np.mean([len(cv2.imencode(".png", p)[1]) for p in planes]) / 1024
    for quality in (75, 85, 90, 95, 98, 100):
        sizes, errors = [], []
        for plane in planes:
            data = encode_jpeg(plane, quality)
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
            sizes.append(len(data))
            errors.append(np.abs(decoded.astype(np.int16) - plane.astype(np.int16)).ravel())
        err = np.concatenate(errors)
        print(
            f"| {quality} | {np.mean(sizes) / 1024:.1f} | {png_kib:.1f} | {err.mean():.3f} | {np.percentile(err, 99):.0f} | "
            f"{err.max()} | {err.mean() * fmt.quant_step_px():.4f} |"
        )


if __name__ == "__main__":
    main()
