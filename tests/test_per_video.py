"""Randomness per video: what a video receives (frames, crop, flip, second view) is a function of (seed,
epoch, key, view), so a run does not depend on the shard layout, the loader workers or the world size.

What still depends on them, by design, is the order (shard order and shuffle buffer, their own streams):
with several SGD steps per epoch, another layout gives other batches. The training tests below therefore
use an order-free configuration (one batch per epoch, or lr 0 with one clip per batch) to show the loop
sees exactly the same clips and gives exactly the same per-epoch numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_shards import CLASSES, write_tiny_shards  # noqa: E402
from training.cli import main  # noqa: E402
from training.data import ClipSpec, ShardClipDataset, plan_clips, shard_urls  # noqa: E402

NUM_VIDEOS = 12
# 12-frame videos, 4-frame clips, 16 px crops of 24 px frames: start, crop box and flip all vary per draw.
LAYOUTS = {"3x4": (3, 4), "2x6": (2, 6)}  # (shards, videos per shard), the same 12 videos
COMMON = [
    "--model",
    "resnet3d_tiny",
    "--num-classes",
    str(len(CLASSES)),
    "--frames",
    "4",
    "--crop-size",
    "16",
    "--device",
    "cpu",
    "--seed",
    "7",
    "--log-every",
    "0",
    "--lr-schedule",
    "cosine",
]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for name, (shards, per_shard) in LAYOUTS.items():
        folders[name] = tmp_path_factory.mktemp(f"layout{name}")
        write_tiny_shards(folders[name], num_shards=shards, videos_per_shard=per_shard, num_frames=12, size=24)
    return folders


def clips_by_key(folder: Path, epoch: int, world: int, workers: int, views: int = 1) -> dict[str, bytes]:
    """Every training sample of one epoch over all (rank, worker), as key -> its pixels' bytes."""
    spec = ClipSpec(modalities=("rgb", "flow"), frames=4, crop_size=16, views=views)
    ds = ShardClipDataset(shard_urls(str(folder), ["train"]), spec, seed=3, buffer_size=5, split_name=None)
    ds.set_epoch(epoch)
    out = {}
    for rank in range(world):
        for worker in range(workers):
            for s in ds.samples(rank, world, worker, workers):
                assert s["key"] not in out
                out[s["key"]] = b"".join(s[m].tobytes() for m in ("rgb", "flow", "rgb2", "flow2") if m in s)
    assert len(out) == NUM_VIDEOS
    return out


def test_each_video_gets_the_same_clip_under_any_layout_workers_and_world_size(layouts):
    for epoch in (0, 1):
        reference = clips_by_key(layouts["3x4"], epoch, world=1, workers=1, views=2)
        for name, world, workers in (("2x6", 1, 1), ("3x4", 1, 2), ("2x6", 2, 1), ("3x4", 2, 2)):
            assert clips_by_key(layouts[name], epoch, world, workers, views=2) == reference, (name, world, workers)
    assert clips_by_key(layouts["3x4"], 0, 1, 1) != clips_by_key(layouts["3x4"], 1, 1, 1)  # epochs redraw


def test_a_clip_plan_is_a_pure_function_of_seed_epoch_key_and_view():
    spec = ClipSpec(frames=4, crop_size=16, crop="multiscale_corner", views=2)
    plan = plan_clips("left/v001", 40, 48, 64, spec, seed=1, epoch=2)
    assert plan == plan_clips("left/v001", 40, 48, 64, spec, seed=1, epoch=2)
    (clip,) = plan
    assert len(clip.boxes) == 2 and clip.boxes[0] != clip.boxes[1]  # the two views are drawn apart
    others = [
        plan_clips(k, 40, 48, 64, spec, seed=s, epoch=e)
        for k, s, e in (("left/v002", 1, 2), ("left/v001", 2, 2), ("left/v001", 1, 3))
    ]
    assert all(o != plan for o in others)  # key, seed and epoch each change the draw
    test_spec = ClipSpec(frames=4, crop_size=16, train=False, test_clips=3, test_crops=3)
    grid = plan_clips("left/v001", 40, 48, 64, test_spec, seed=1, epoch=2)
    assert grid == plan_clips("x/other", 40, 48, 64, test_spec, seed=9, epoch=0)  # the test grid is fixed
    assert [p.index for p in grid] == list(range(9))


def epochs_of(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "clips_per_second")} for r in lines if r["kind"] == "epoch"
    ]


def assert_same_epochs(a: list[dict], b: list[dict]) -> None:
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b):  # the clips are the same; only the float summation order within a batch differs
        assert {k: pytest.approx(v, rel=1e-5, abs=1e-6) if isinstance(v, float) else v for k, v in ra.items()} == rb


def test_two_shard_layouts_train_to_the_same_metrics(layouts, tmp_path):
    """One batch per epoch (lr > 0, held-out validation): the same clips give the same numbers every epoch."""
    runs = {}
    for name, folder in layouts.items():
        runs[name] = tmp_path / name
        main(
            [
                "baseline",
                "--data",
                str(folder),
                "--out",
                str(runs[name]),
                "--epochs",
                "2",
                "--lr",
                "0.05",
                "--batch-size",
                "16",
                "--workers",
                "0",
                *COMMON,
            ]
        )
    a, b = epochs_of(runs["3x4"]), epochs_of(runs["2x6"])
    assert len(a) == 2 and all(r["val_clips"] == 2 and r["train_clips"] == NUM_VIDEOS - 2 for r in a)
    assert a[0]["train_loss"] != a[1]["train_loss"] and a[0]["val_loss"] != a[1]["val_loss"]  # it trained
    assert_same_epochs(a, b)


def test_one_or_two_loader_workers_give_the_same_metrics(layouts, tmp_path):
    """Two workers cut other batches; with one clip per batch, lr 0 and no dropout every clip's training loss
    is the same. (A 2D net: its BatchNorm sees the clip's 4 frames, where the 3D net's last stage would see
    a 1x1x1 map.) The validation numbers are left out: BatchNorm's running averages follow the order."""
    runs = {}
    for workers in ("0", "2"):
        runs[workers] = tmp_path / workers
        main(
            [
                "baseline",
                "--data",
                str(layouts["3x4"]),
                "--out",
                str(runs[workers]),
                "--epochs",
                "2",
                "--lr",
                "0",
                "--batch-size",
                "1",
                "--workers",
                workers,
                *COMMON,
                "--model",
                "tsn_tiny",
                "--model-args",
                '{"dropout": 0}',
            ]
        )
    a, b = ([{k: v for k, v in r.items() if not k.startswith("val_")} for r in epochs_of(runs[w])] for w in "02")
    assert a[0]["train_loss"] != a[1]["train_loss"]  # epoch 1 drew other clips
    assert_same_epochs(a, b)


def test_resume_is_exact_across_a_change_of_loader_workers(layouts, tmp_path):
    args = [
        "baseline",
        "--data",
        str(layouts["2x6"]),
        "--lr",
        "0.05",
        "--batch-size",
        "16",
        *COMMON,
        "--lr-schedule",
        "constant",
    ]  # cosine's length would follow --epochs
    main([*args, "--out", str(tmp_path / "straight"), "--epochs", "2", "--workers", "0"])
    main([*args, "--out", str(tmp_path / "resumed"), "--epochs", "1", "--workers", "0"])
    main([*args, "--out", str(tmp_path / "resumed"), "--epochs", "2", "--workers", "1"])  # a worker process now
    a, b = epochs_of(tmp_path / "straight"), epochs_of(tmp_path / "resumed")
    assert [r["epoch"] for r in b] == [0, 1]
    assert_same_epochs(a, b)
    wa = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["model"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-5, atol=1e-6) for k in wa)
