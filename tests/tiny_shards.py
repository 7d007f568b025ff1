"""Writes tiny flowprep-format shards for tests, with frames whose pixels tell which frame they are.

RGB frame i of video v is `rgb_level(i)` on the left half and 40 more on the right half; flow_x i is
`flow_x_level(i)` on the left half and `flow_x_level(i) + 40` on the right half (so a flip is visible); flow_y i is
`flow_y_level(i)`. Flat 8x8 blocks survive JPEG exactly, so a test can read indices back from pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flowprep.format import FLOW_X, FLOW_Y, FORMAT_VERSION, RGB, SHARD_LIST_SUFFIX, frame_member, make_key, shard_name

CLASSES = ("left", "right", "up")


def rgb_level(i: int) -> int:
    return 8 + 8 * i


def flow_x_level(i: int) -> int:
    return 20 + 4 * i


def flow_y_level(i: int) -> int:
    return 200 - 4 * i


def _jpeg(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    return buf.tobytes()


def video_sample(class_index: int, video: int, num_frames: int, size: int, splits: dict[str, str]) -> dict:
    """One WebDataset sample (member ext -> bytes) in the flowprep format."""
    key = make_key(CLASSES[class_index], f"v{video:03d}")
    meta = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "id": f"v{video:03d}",
        "dataset": "tiny",
        "label": class_index,
        "class": CLASSES[class_index],
        "splits": splits,
        "source": "memory",
        "num_frames": num_frames,
        "num_flows": num_frames - 1,
        "height": size,
        "width": size,
        "fps": 25.0,
        "flow": {"backend": "none", "params": {}, "bound_px": 20.0, "jpeg_quality": 100},
        "rgb_jpeg_quality": 100,
        "versions": {},
    }
    sample = {"__key__": key, "json": json.dumps(meta).encode(), "cls": str(class_index).encode()}
    for i in range(num_frames):
        rgb = np.full((size, size, 3), rgb_level(i), np.uint8)
        rgb[:, size // 2 :] += 40
        sample[frame_member(RGB, i)] = _jpeg(rgb)
    for i in range(num_frames - 1):
        fx = np.full((size, size), flow_x_level(i), np.uint8)
        fx[:, size // 2 :] += 40
        sample[frame_member(FLOW_X, i)] = _jpeg(fx)
        sample[frame_member(FLOW_Y, i)] = _jpeg(np.full((size, size), flow_y_level(i), np.uint8))
    return sample


def write_tiny_shards(
    folder: Path,
    num_shards: int = 3,
    videos_per_shard: int = 4,
    num_frames: int = 6,
    size: int = 16,
    partition: str = "train",
    test_every: int = 0,
    frames_of=None,
) -> list[str]:
    """Writes shards + '<partition>.shards.txt'; returns every video key written, in order.

    Video v has label v % len(CLASSES); `test_every>0` puts every such video in split-1 'test';
    `frames_of(v)` overrides the frame count of video v.
    """
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    keys, names = [], []
    v = 0
    for s in range(num_shards):
        name = shard_name(partition, s, 0)
        names.append(name)
        with wds.TarWriter(str(folder / name)) as writer:
            for _ in range(videos_per_shard):
                split = "test" if test_every and v % test_every == 0 else "train"
                n = frames_of(v) if frames_of else num_frames
                sample = video_sample(v % len(CLASSES), v, n, size, {"1": split, "2": "train"})
                writer.write(sample)
                keys.append(sample["__key__"])
                v += 1
    (folder / f"{partition}{SHARD_LIST_SUFFIX}").write_text("".join(n + "\n" for n in names))
    return keys


def tiny_train_args(batch_size: int, seed: int, *extra: str) -> list[str]:
    """`flowprep-train` flags of the trainer tests: resnet3d_tiny on these shards' classes, 4 frames of
    16 px, in process on the CPU; `extra` flags follow (later flags win)."""
    return [
        *("--model", "resnet3d_tiny", "--num-classes", str(len(CLASSES)), "--frames", "4", "--crop-size", "16"),
        *("--batch-size", str(batch_size), "--workers", "0", "--device", "cpu", "--seed", str(seed), *extra),
    ]
