"""How close the torch TV-L1 comes to OpenCV's CPU TV-L1 on real frames at 256x256 (the numbers of
docs/flow_backends.md; tests/test_flow_backends.py asserts the issue's bounds on the same pairs).

    python benchmarks/fidelity_torch_tvl1.py [--device cuda] [--out benchmarks/results/torch_tvl1_fidelity.md]

Per pair: mean end-point error (EPE) torch vs OpenCV, its 99th percentile, both backends' EPE to the
ground truth where there is one, and the share of pixels whose quantized flow (+-20 px in 255 levels,
flowprep.format.quantize_flow) agrees within one level in both components.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_flow_backends import _clip_pair_256, _gray_256, _gt_256  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import cv2
    import torch

    from flowprep import format as fmt
    from flowprep.flow import create_backend

    rw, sintel = DATA / "flow_gt" / "middlebury_rubberwhale", DATA / "flow_gt" / "sintel_alley_1"
    pairs = {
        "Middlebury RubberWhale": (
            _gray_256(rw / "rubberwhale1.png"),
            _gray_256(rw / "rubberwhale2.png"),
            _gt_256(rw / "flow_gt.flo"),
        ),
        "Sintel alley_1": (
            _gray_256(sintel / "frame_0001.png"),
            _gray_256(sintel / "frame_0002.png"),
            _gt_256(sintel / "frame_0001.flo"),
        ),
    }
    for clip, first in (
        ("kinetics_arm_wrestling_28fps.mp4", 60),
        ("kinetics_flipping_pancake_noframecount.mkv", 100),
        ("ucf101_ApplyEyeMakeup_xvid.avi", 40),
        ("pedestrians_msmpeg4v3_10fps.avi", 200),
    ):
        pairs[f"{clip} frames {first},{first + 1}"] = _clip_pair_256(DATA / "videos" / clip, first) + (None,)
    names = list(pairs)
    prev = np.stack([pairs[n][0] for n in names])
    nxt = np.stack([pairs[n][1] for n in names])
    ours = create_backend("torch", device=args.device).compute(prev, nxt)
    ref = create_backend("opencv").compute(prev, nxt)

    lines = [
        f"# torch TV-L1 vs OpenCV CPU TV-L1 at 256x256 (OpenCV {cv2.__version__}, torch {torch.__version__}, "
        f"{args.device})",
        "",
        "| pair | max flow (px) | EPE torch vs OpenCV (mean / p99) | EPE to GT: OpenCV / torch | quantized within +-1 |",
        "|---|---|---|---|---|",
    ]
    for i, name in enumerate(names):
        epe = np.linalg.norm(ours[i] - ref[i], axis=-1)
        gt = pairs[name][2]
        gt_cell = "-"
        if gt is not None:
            known = np.isfinite(gt).all(axis=-1)
            e_ref = np.linalg.norm(ref[i] - gt, axis=-1)[known].mean()
            e_ours = np.linalg.norm(ours[i] - gt, axis=-1)[known].mean()
            gt_cell = f"{e_ref:.4f} / {e_ours:.4f} ({(e_ours - e_ref) / e_ref:+.2%})"
        q_ours = fmt.quantize_flow(ours[i]).astype(np.int16)
        q_ref = fmt.quantize_flow(ref[i]).astype(np.int16)
        within = (np.abs(q_ours - q_ref) <= 1).all(axis=-1).mean()
        lines.append(
            f"| {name} | {np.linalg.norm(ref[i], axis=-1).max():.1f} | {epe.mean():.4f} / "
            f"{np.percentile(epe, 99):.3f} | {gt_cell} | {within:.2%} |"
        )
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
