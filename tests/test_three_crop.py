"""The 2D papers' test protocol (ACTION-Net Sec. 4, STM Sec. 4.2): 10 clips x 3 crops per video, where a
clip is one TSN frame per segment and the 3 crops are short-side squares at both ends and the centre."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowprep.format import RGB, frame_member  # noqa: E402
from tests.tiny_shards import CLASSES, write_tiny_shards  # noqa: E402
from training.data import (  # noqa: E402
    ClipSpec,
    make_clips,
    plan_clips,
    segment_test_indices,  # noqa: E402
)
from training.data import test_crops as crops_at_test  # not `test_*`: pytest would collect it  # noqa: E402

NO_VALIDATION = ["--val-fraction", "0", "--lr-schedule", "constant"]  # no held-out videos, no plateau


@pytest.mark.parametrize("height, width", [(48, 64), (64, 48), (40, 40)])
def test_three_crops_are_short_side_squares_along_the_long_side(height, width):
    # Trained on multi-scale corner crops (short side x scale, resized), tested on short-side squares.
    crops = crops_at_test(height, width, ClipSpec(train=False, crop_size=32, test_crops=3, crop="multiscale_corner"))
    side, excess = min(height, width), abs(width - height)
    assert all(c.height == c.width == side and not c.flip for c in crops)
    starts = [0, excess // 2, excess]  # left / centre / right (top / centre / bottom when portrait)
    if width >= height:
        assert [(c.y0, c.x0) for c in crops] == [(0, s) for s in starts]
    else:
        assert [(c.y0, c.x0) for c in crops] == [(s, 0) for s in starts]
    assert crops[0].x0 + crops[0].width <= width and crops[-1].y0 + crops[-1].height <= height


@pytest.mark.parametrize("test_crops", [1, 3, 5, 10])
def test_test_boxes_have_the_scale_training_saw(test_crops):
    """A native 32 px training crop is tested on native 32 px boxes, never on resized short-side squares."""
    native = crops_at_test(48, 64, ClipSpec(train=False, crop_size=32, test_crops=test_crops, crop="random"))
    assert len(native) == test_crops and all((c.height, c.width) == (32, 32) for c in native)
    scaled = crops_at_test(48, 64, ClipSpec(train=False, crop_size=32, test_crops=test_crops, crop="multiscale_corner"))
    assert all((c.height, c.width) == (48, 48) for c in scaled)  # the scale-1 square of the training crops
    assert all(0 <= c.x0 <= 64 - c.width and 0 <= c.y0 <= 48 - c.height for c in native + scaled)


def test_three_crops_see_left_centre_right_pixels():
    import cv2

    # A 16 x 32 frame: columns 0-7 at 40, 8-23 at 120, 24-31 at 200 (flat 8x8 blocks: exact in JPEG).
    frame = np.full((16, 32, 3), 120, np.uint8)
    frame[:, :8], frame[:, 24:] = 40, 200
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    spec = ClipSpec(frames=2, sampling="segments", train=False, crop_size=8, test_crops=3, crop="multiscale_corner")
    picked = {
        "__key__": "k",
        "meta": {"height": 16, "width": 32, "label": 1},
        "plans": plan_clips("k", 3, 16, 32, spec),
        "frames": {frame_member(RGB, i): jpeg for i in (0, 1)},
    }
    items = make_clips(picked, spec)
    assert [it["clip_index"] for it in items] == [0, 1, 2]
    means = [float(it["rgb"][0].mean()) for it in items]  # uint8 pixels: the mean is subtracted on the device
    # Each crop is the 16x16 square resized to 8x8: left = half 40 / half 120, centre = 120, right = 120 / 200.
    assert means == pytest.approx([80, 120, 160], abs=2)
    assert all(it["rgb"].shape == (3, 2, 8, 8) for it in items)


def test_multi_clip_segments_cover_each_segment_evenly():
    assert segment_test_indices(20, 4, 1) == [[2, 7, 12, 17]]  # one clip: the segment centres, as before
    clips = segment_test_indices(40, 4, 10)  # 10 frames per segment, 10 clips: clip k takes offset k
    assert clips == [[k, 10 + k, 20 + k, 30 + k] for k in range(10)]
    for clip in segment_test_indices(23, 8, 10):  # uneven segments: still one frame in each
        bounds = np.linspace(0, 23, 9)
        assert all(int(lo) <= i < max(int(lo) + 1, int(np.ceil(hi))) for i, lo, hi in zip(clip, bounds, bounds[1:]))
    assert all(max(c) <= 2 for c in segment_test_indices(3, 5, 10))  # short video: indices stay in range


def test_bad_crop_count_names_the_value():
    with pytest.raises(ValueError, match="test_crops 4"):
        ClipSpec(test_crops=4)


def test_cli_twins_training_then_10_clip_3_crop_evaluation(tmp_path):
    from training.cli import main

    data = tmp_path / "shards"
    write_tiny_shards(data, num_shards=2, videos_per_shard=4, num_frames=12, size=16, test_every=4)
    common = [
        "--data",
        str(data),
        "--num-classes",
        str(len(CLASSES)),
        "--frames",
        "4",
        "--crop-size",
        "16",
        "--batch-size",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    main(
        [
            "twins",
            *common,
            "--model",
            "tsn_tiny",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            *NO_VALIDATION,
            "--log-every",
            "0",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    epoch = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_cor", "train_ce_a", "train_ce_b"} <= set(epoch)  # the correlation loss was trained on
    result = main(
        [
            "evaluate",
            *common,
            "--checkpoint",
            str(tmp_path / "run" / "last.pt"),
            "--partitions",
            "train",
            "--test-clips",
            "10",
            "--test-crops",
            "3",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert result["num_videos"] == 2  # 8 videos, every 4th in the test split
    assert result["num_clips"] == 2 * 10 * 3


def test_sliding_window_covers_the_whole_video_3d_resnets_style():
    """--test-clips 0: windows of T frames sliding by T over all usable frames, the tail loop-padded."""
    from training.data import ALL_CLIPS, clip_indices

    spec = ClipSpec(modalities=("rgb", "flow"), frames=4, train=False, test_clips=ALL_CLIPS)
    clips = clip_indices(11, spec)  # 11 frames, 10 flows: windows 0-3, 4-7, then 8, 9 looped
    assert clips == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert sorted({i for c in clips for i in c}) == list(range(10))
    assert "sliding by 4" in spec.protocol
    with pytest.raises(ValueError, match="test_clips 0"):
        clip_indices(11, ClipSpec(frames=4, sampling="segments", train=False, test_clips=ALL_CLIPS))
