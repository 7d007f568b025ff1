"""Validation is held out of the training videos, never the test set, and only validation epochs choose
best.pt and step a plateau schedule; the test partition is read by the final `evaluate` alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_shards import CLASSES, write_tiny_shards  # noqa: E402
from training import data as data_module  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import is_held_out  # noqa: E402

DATA = [
    "--num-classes",
    str(len(CLASSES)),
    "--frames",
    "4",
    "--crop-size",
    "16",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--device",
    "cpu",
]
COMMON = ["--model", "resnet3d_tiny", *DATA, "--log-every", "0", "--lr", "0.05"]
FRACTION = 0.25


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, list[str]]:
    """A train partition (every 4th video in split-1 'test' too) and a separate test partition."""
    folder = tmp_path_factory.mktemp("shards")
    train_keys = write_tiny_shards(folder, num_shards=2, videos_per_shard=6, num_frames=6, size=16, test_every=4)
    write_tiny_shards(folder, num_shards=1, videos_per_shard=3, num_frames=6, size=16, partition="test", test_every=1)
    return folder, train_keys


def test_default_run_reads_no_test_video_before_evaluate(data, tmp_path, monkeypatch):
    folder, keys = data
    opened, decoded = [], []
    real_open, real_make = data_module.open_shards, data_module.make_clips

    def open_spy(urls, on_error):
        yield from real_open((opened.append(u) or u for u in urls), on_error)

    def make_spy(picked, spec):
        decoded.append((picked["__key__"], picked["meta"]["splits"]["1"], spec.train))
        return real_make(picked, spec)

    monkeypatch.setattr(data_module, "open_shards", open_spy)
    monkeypatch.setattr(data_module, "make_clips", make_spy)
    main(
        [
            "baseline",
            "--data",
            str(folder),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "2",
            "--val-fraction",
            str(FRACTION),
            *COMMON,
        ]
    )
    assert opened and not any("test-" in Path(u).name for u in opened)  # no test shard was even opened
    assert {split for _, split, _ in decoded} == {"train"}  # nor any split-1 test video of the train shards
    trainable = [k for v, k in enumerate(keys) if v % 4]
    held = {k for k in trainable if is_held_out(k, FRACTION)}
    assert held and held != set(trainable)
    assert {k for k, _, train in decoded if not train} == held  # validated: exactly the held-out videos
    assert {k for k, _, train in decoded if train} == set(trainable) - held  # trained on: all the others
    epoch = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert epoch["val_set"] == "held_out" and epoch["val_clips"] == len(held)

    opened.clear()
    results = main(
        [
            "evaluate",
            "--data",
            str(folder),
            "--checkpoint",
            str(tmp_path / "run" / "best.pt"),
            "--out",
            str(tmp_path / "eval"),
            *DATA,
        ]
    )
    assert opened and all("test-" in Path(u).name for u in opened)  # the final step reads the test partition
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["tested"]["partitions"] == ["test"] and len(saved["tested"]["videos"]) == results["num_videos"] == 3
    assert saved["tested"]["protocol"].startswith("10 uniform clips of 4 frames x 1 centre crop")
    confusion = json.loads((tmp_path / "eval" / "confusion.json").read_text())
    assert len(confusion["class_names"]) == len(CLASSES) and sum(map(sum, confusion["matrix"])) == 3
    tested = [a for a in saved["per_class_top1"] if a is not None]
    assert saved["mean_class_top1"] == pytest.approx(sum(tested) / len(tested))


def test_val_every_3_steps_the_plateau_and_chooses_best_on_validation_epochs_only(data, tmp_path, monkeypatch):
    folder, _ = data
    stepped = []
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
    real_step = plateau.step
    monkeypatch.setattr(
        plateau, "step", lambda self, metric, *a, **k: stepped.append(metric) or real_step(self, metric, *a, **k)
    )
    out = tmp_path / "run"
    main(
        [
            "baseline",
            "--data",
            str(folder),
            "--out",
            str(out),
            "--epochs",
            "5",
            "--val-every",
            "3",
            "--val-fraction",
            str(FRACTION),
            "--lr-schedule",
            "plateau",
            "--lr-patience",
            "0",
            *COMMON,
        ]
    )
    epochs = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    validated = [r["epoch"] for r in epochs if "val_loss" in r]
    assert validated == [2, 4]  # every 3rd epoch, and the last
    assert stepped == [r["val_loss"] for r in epochs if "val_loss" in r]  # the train loss never reaches it
    best = torch.load(out / "best.pt", weights_only=False)
    assert best["epoch"] - 1 in validated  # a checkpoint's epoch counts the epochs done
    assert best["best"]["val_top1"] == max(r["val_top1"] for r in epochs if "val_top1" in r)


def test_validating_on_test_or_plateau_without_validation_needs_saying_so():
    with pytest.raises(ValueError, match="--val-on-test"):
        TrainConfig(data="d", out="o", val_partitions=("test",))
    with pytest.raises(ValueError, match="--val-on-test"):
        TrainConfig(data="d", out="o", val_partitions=("train",), val_split_name="test")
    assert TrainConfig(
        data="d", out="o", val_partitions=("test",), val_split_name="test", val_on_test=True
    ).validation() == ("test", ("test",), "test")
    with pytest.raises(ValueError, match="plateau needs a validation set"):
        TrainConfig(data="d", out="o", val_fraction=0)
    assert TrainConfig(data="d", out="o").validation() == ("held_out", ("train",), "train")
    assert TrainConfig(data="d", out="o", val_partitions=("val",)).validation() == ("partition", ("val",), "val")


def test_held_out_share_is_near_the_fraction_in_every_class():
    for label in range(5):
        keys = [f"class{label}/video{i:04d}" for i in range(2000)]
        share = sum(is_held_out(k, 0.1) for k in keys) / len(keys)
        assert 0.08 < share < 0.12, (label, share)


def test_data_with_a_val_partition_validates_on_it(tmp_path):
    """Kinetics / SSv2 style: a `val` partition (splits[1] == 'val') is the validation set, nothing held out."""
    import webdataset as wds

    from flowprep.format import SHARD_LIST_SUFFIX, shard_name
    from tests.tiny_shards import video_sample

    write_tiny_shards(tmp_path, num_shards=1, videos_per_shard=6, num_frames=6, size=16)
    with wds.TarWriter(str(tmp_path / shard_name("val", 0, 0))) as writer:
        for v in range(3):
            writer.write(video_sample(v % len(CLASSES), 100 + v, 6, 16, {"1": "val"}))
    (tmp_path / f"val{SHARD_LIST_SUFFIX}").write_text(shard_name("val", 0, 0) + "\n")
    out = tmp_path / "run"
    main(["baseline", "--data", str(tmp_path), "--out", str(out), "--epochs", "1", *COMMON])
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert epoch["val_set"] == "partition" and epoch["val_clips"] == 3 and epoch["train_clips"] == 6
