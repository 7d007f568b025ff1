"""The headline command as written: `flowprep extract --dataset hmdb51 --workers 64` finds ./data/hmdb51,
writes ./shards/hmdb51, says so first, and on a small machine does not start 64 workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowprep.cli import main
from flowprep.datasets import dataset_layout
from flowprep.defaults import resolve_paths
from tests.test_extract import FAST_FLOW, extract, manifest

SPEED = ["--size", "16", "--max-frames", "3", "--flow-backend", "opencv", *FAST_FLOW]


def hmdb51_tree(root: Path, write_video) -> None:
    """2 classes x (1 train + 1 test video), with the official split-file layout."""
    for cls in ("brush_hair", "cartwheel"):
        for s in "123":
            split_file = root / "testTrainMulti_7030_splits" / f"{cls}_test_split{s}.txt"
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text(f"{cls}_a.avi 1 \n{cls}_b.avi 2 \n")
        for i, video in enumerate("ab"):
            write_video(root / cls / f"{cls}_{video}.avi", frames=3, size_px=32, seed=i)


def test_defaults_follow_the_environment_then_the_working_directory():
    assert resolve_paths("hmdb51", None, None, {}) == resolve_paths("hmdb51", None, None, {"FLOWPREP_DATA": ""})
    local = resolve_paths("hmdb51", None, None, {})
    assert (local.root, local.out, local.root_from) == ("data/hmdb51", "shards/hmdb51", "./data")
    env = resolve_paths("hmdb51", None, "s3://b/h", {"FLOWPREP_DATA": "/mnt/datasets"})
    assert (env.root, env.out, env.root_from) == ("/mnt/datasets/hmdb51", "s3://b/h", "$FLOWPREP_DATA")
    assert resolve_paths("ucf101", "/x", None, {"FLOWPREP_DATA": "/y"}).root == "/x"  # a flag wins


def test_headline_command_runs_in_the_working_directory(tmp_path, write_video, monkeypatch):
    hmdb51_tree(tmp_path / "data" / "hmdb51", write_video)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWPREP_DATA", raising=False)
    output = extract("--dataset", "hmdb51", "--workers", "64", "--executor", "inline", *SPEED)
    assert "root data/hmdb51 (./data), out shards/hmdb51 (./shards)" in output
    assert output.index("root data/hmdb51") < output.index("videos: 4")  # printed before the work
    out = tmp_path / "shards" / "hmdb51"
    shards = sorted(p.name for p in out.glob("*.tar"))  # tasks cut by work: 4 videos on 2 workers, a shard each
    listed = sorted((out / "test.shards.txt").read_text().split() + (out / "train.shards.txt").read_text().split())
    assert shards == listed and {name.split("-")[0] for name in shards} == {"test", "train"}
    assert {r["status"] for r in manifest(out)} == {"ok"}
    assert json.loads((out / "config.json").read_text())["workers"] == min(64, os.cpu_count())
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0


def test_missing_root_is_one_line_naming_the_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWPREP_DATA", str(tmp_path / "datasets"))
    output = extract("--dataset", "hmdb51", "--executor", "inline", expect=1)
    (line,) = output.strip().splitlines()
    assert f"dataset root {tmp_path}/datasets/hmdb51 ($FLOWPREP_DATA) not found" in line
    assert dataset_layout("hmdb51") in line
    assert not (tmp_path / "shards").exists()  # nothing was started


def test_headline_command_on_ray_caps_workers_at_the_cores(tmp_path, write_video, monkeypatch):
    """The same command on a local Ray: 64 workers asked, one per core started (no 64 processes)."""
    pytest.importorskip("ray")
    hmdb51_tree(tmp_path / "data" / "hmdb51", write_video)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWPREP_DATA", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    output = extract("--dataset", "hmdb51", "--workers", "64", "--videos-per-task", "1", *SPEED)
    cores = os.cpu_count()
    if cores < 64:
        assert f"workers {cores} (asked 64" in output
    rows = manifest(tmp_path / "shards" / "hmdb51")
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert len({r["worker"] for r in rows}) <= cores  # never more worker processes than cores


@pytest.mark.parametrize(("workers", "threads", "want"), [(1, 0, 1), (0, 0, 1), (2, 0, 1), (1, 3, 3)])
def test_workers_are_the_cores_a_run_uses(workers, threads, want):
    """`--workers N` uses N cores: each worker has one thread unless --threads-per-worker gives it more
    (a lone worker used to take every core, so --workers 2 could not be faster than --workers 1)."""
    from flowprep.config import ExtractConfig
    from flowprep.task import worker_threads

    cfg = ExtractConfig(dataset="folder", out="unused", workers=workers, threads_per_worker=threads)
    assert worker_threads(cfg) == want
