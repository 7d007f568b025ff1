"""`flowprep extract` end to end: shards, manifest, bad input, resume, real clips, flow fidelity."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowprep import format as fmt
from flowprep.cli import EXIT_OK, EXIT_PARTIAL, main
from flowprep.manifest import read_manifest
from flowprep.storage import filesystem
from tests.conftest import shared_path

# Cheap TV-L1 settings for tests that check plumbing, not flow quality (fidelity is tested below).
# The tests below pin OpenCV, the reference (the default `auto` is numba on a CPU: tested on its own).
FAST_FLOW = [
    "--flow-backend",
    "opencv",
    "--flow-param",
    "nscales=1",
    "--flow-param",
    "warps=1",
    "--flow-param",
    "outer_iterations=1",
    "--flow-param",
    "inner_iterations=5",
]


def extract(*args: str, expect: int | None = EXIT_OK) -> str:
    result = CliRunner().invoke(main, ["extract", "--no-progress", *args], catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output
    return result.output


def manifest(out: Path) -> list[dict]:
    fs, path = filesystem(str(out))
    return read_manifest(fs, path)


def read_back(out: Path) -> dict[str, dict]:
    """Every sample of every shard, read with stock webdataset (no flowprep code)."""
    import webdataset as wds

    shards = sorted(str(p) for p in out.glob("*.tar"))
    return {s["__key__"]: s for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False)}


@pytest.fixture
def folder_dataset(tmp_path, write_video):
    """A class-per-folder tree with 5 good videos and one of each kind of bad file."""
    root = tmp_path / "videos"
    for i in range(5):
        write_video(root / ("left" if i % 2 else "right") / f"good_{i}.avi", frames=4 + i, size_px=48, seed=i)
    (root / "left" / "empty.avi").write_bytes(b"")
    (root / "left" / "corrupt.avi").write_bytes(os.urandom(3000))
    (root / "right" / "notes.mp4").write_text("not a video\n" * 20)
    os.symlink(root / "nowhere.avi", root / "right" / "dangling.avi")  # unreadable: the target is gone
    return root


def test_extract_good_and_bad_videos(folder_dataset, tmp_path):
    out = tmp_path / "out"
    output = extract(
        "--dataset",
        "folder",
        "--root",
        str(folder_dataset),
        "--out",
        str(out),
        "--executor",
        "inline",
        "--size",
        "32",
        "--videos-per-task",
        "3",
        *FAST_FLOW,
        expect=EXIT_PARTIAL,
    )
    assert "failed: 4" in output
    rows = {r["source"]: r for r in manifest(out)}
    assert len(rows) == 9
    assert {
        rows[s]["cause"] for s in ("left/empty.avi", "left/corrupt.avi", "right/notes.mp4", "right/dangling.avi")
    } == {"empty file", "unreadable container", "unreadable file"}
    for source, row in rows.items():
        if row["status"] == "failed":
            assert source in row["error"], "the error must name the file"
    samples = read_back(out)
    good = {r["key"]: r for r in rows.values() if r["status"] == "ok"}
    assert set(samples) == set(good) and len(good) == 5
    for key, sample in samples.items():
        meta = json.loads(sample["json"])
        assert meta["num_frames"] == good[key]["frames"] == int(key.rsplit("_", 1)[-1]) + 4
        assert sum(k.startswith("rgb.") for k in sample) == meta["num_frames"]
        assert sum(k.startswith("flow_x.") for k in sample) == meta["num_frames"] - 1
        assert meta["flow"]["backend"] == "opencv" and meta["flow"]["params"]["warps"] == 1
        assert meta["class"] == key.split("/")[0] and int(sample["cls"]) == meta["label"]
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
    assert not list(out.glob("*.tmp-*")), "no temporary file may survive a finished job"


def test_resume_after_a_kill_mid_task_gives_every_video_once(tmp_path, write_video, monkeypatch):
    root = tmp_path / "videos"
    for i in range(6):
        write_video(root / f"c{i % 2}" / f"v{i}.avi", frames=3, size_px=32, seed=i)
    out = tmp_path / "out"
    args = [
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--executor",
        "inline",
        "--size",
        "16",
        "--videos-per-task",
        "2",
        "--plan",
        "count",
        *FAST_FLOW,
    ]  # tasks of 2 videos, as the kill counts them

    import flowprep.core as core

    real = core.process_video
    calls = {"n": 0}

    def dies_on_the_fourth_video(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # the job is killed inside the second task, after its first video
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(core, "process_video", dies_on_the_fourth_video)
    killed = CliRunner().invoke(main, ["extract", "--no-progress", *args])
    assert killed.exit_code == 1 and "Aborted" in killed.output  # click's answer to Ctrl-C
    assert len(list((out / fmt.PARTS_DIR).glob("*.parquet"))) == 1, "exactly the first task finished"
    assert not list(out.glob("*.tmp-*")), "the killed task's open shard must not be left behind"

    monkeypatch.setattr(core, "process_video", real)
    output = extract(*args)
    assert "tasks resumed from a previous run: 1" in output
    rows = manifest(out)
    assert sorted(r["source"] for r in rows) == sorted(f"c{i % 2}/v{i}.avi" for i in range(6))
    assert all(r["status"] == "ok" for r in rows)
    assert len(read_back(out)) == 6
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
    extract(*args)  # a third run finds everything done and changes nothing
    assert len(read_back(out)) == 6


def test_resume_with_different_settings_is_refused(tmp_path, write_video):
    root = tmp_path / "videos"
    write_video(root / "a" / "v.avi", frames=3, size_px=32)
    out = tmp_path / "out"
    base = ["--dataset", "folder", "--root", str(root), "--out", str(out), "--executor", "inline", *FAST_FLOW]
    extract(*base, "--size", "16")
    result = CliRunner().invoke(main, ["extract", "--no-progress", *base, "--size", "24"])
    assert result.exit_code != 0 and "different settings" in result.output


def test_verify_catches_a_damaged_shard_and_a_stray_one(folder_dataset, tmp_path):
    out = tmp_path / "out"
    extract(
        "--dataset",
        "folder",
        "--root",
        str(folder_dataset),
        "--out",
        str(out),
        "--executor",
        "inline",
        "--size",
        "16",
        *FAST_FLOW,
        expect=EXIT_PARTIAL,
    )
    shard = next(out.glob("all-*.tar"))
    shutil.copy(shard, out / "all-00099-000.tar")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = CliRunner().invoke(main, ["verify", str(out)])
    assert result.exit_code != 0
    assert "all-00099-000.tar: shard not in the manifest" in result.output
    assert "in the manifest but not in the shard" in result.output or "unreadable tar" in result.output


@pytest.mark.cluster
def test_sample_dataset_with_ray_workers(tmp_path):
    out = tmp_path / "out"
    output = extract(
        "--dataset",
        "sample",
        "--out",
        str(out),
        "--workers",
        "2",
        "--size",
        "32",
        "--max-frames",
        "4",
        "--limit",
        "8",
        "--videos-per-task",
        "2",
        "--executor",
        "ray",
        *FAST_FLOW,
    )
    assert "ok: 8" in output
    rows = manifest(out)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 8 and len({r["worker"] for r in ok}) >= 1
    assert {r["class_name"] for r in ok} > {"drift_right"} or len({r["class_name"] for r in ok}) > 1, "class-mixed"
    shard_lists = {p.name: p.read_text().split() for p in out.glob("*.shards.txt")}
    assert set(shard_lists) <= {"train.shards.txt", "test.shards.txt"}
    assert sorted(n for names in shard_lists.values() for n in names) == sorted(p.name for p in out.glob("*.tar"))
    config = json.loads((out / fmt.CONFIG_FILE).read_text())
    assert config["size_px"] == 32 and config["flow_params_resolved"]["nscales"] == 1
    png = tmp_path / "preview.png"
    result = CliRunner().invoke(main, ["preview", str(out), "--key", ok[0]["key"], "-o", str(png)])
    assert result.exit_code == 0, result.output
    import cv2

    sheet = cv2.imread(str(png))
    # 3 flows (4 frames), each a row of rgb, flow x, flow y, colour wheel; then a 64 px legend column
    assert sheet.shape[0] == 32 * 3 and sheet.shape[1] == 32 * 4 + 64


def test_default_backend_is_resolved_recorded_and_resumable(tmp_path, write_video):
    """No --flow-backend: auto picks the fused CPU backend, every sample and the config name it, and
    the same command resumes (the fingerprint is of the resolved name)."""
    from flowprep.flow import resolve_backend_name

    chosen = resolve_backend_name("auto")
    for i in range(2):
        write_video(tmp_path / "videos" / "right" / f"v{i}.avi", frames=4, size_px=32, seed=i)
    args = [
        "--dataset",
        "folder",
        "--root",
        str(tmp_path / "videos"),
        "--out",
        str(tmp_path / "out"),
        "--executor",
        "inline",
        "--size",
        "32",
        "--flow-param",
        "nscales=2",
        "--flow-param",
        "warps=2",
    ]
    extract(*args)
    config = json.loads((tmp_path / "out" / fmt.CONFIG_FILE).read_text())
    assert config["flow_backend"] == chosen
    for sample in read_back(tmp_path / "out").values():
        meta = json.loads(sample["json"])
        assert meta["flow"]["backend"] == chosen and meta["flow"]["params"]["warps"] == 2
    again = extract(*args)  # not refused as "different settings", nothing redone
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (
        report["resumed_tasks"] == report["tasks"] >= 1
        and f"tasks resumed from a previous run: {report['tasks']}" in again
    )
    assert len(manifest(tmp_path / "out")) == 2


# ---- the real clips (../shared/data/videos) --------------------------------------------------

REAL_FRAMES = {  # from ../shared/data/README.md
    "ucf101_ApplyEyeMakeup_xvid.avi": 164,
    "kinetics_arm_wrestling_28fps.mp4": 280,
    "kinetics_cleaning_pool_32frames.mp4": 32,
    "kinetics_flipping_pancake_noframecount.mkv": 310,
    "phone_rotated_minus90.mov": 3,
    "pedestrians_msmpeg4v3_10fps.avi": 795,
}


def test_every_real_clip_extracts_with_right_counts_and_orientation(tmp_path):
    videos = shared_path("videos")
    root = tmp_path / "real"
    for name in REAL_FRAMES:
        (root / "clips").mkdir(parents=True, exist_ok=True)
        os.symlink(videos / name, root / "clips" / name)
    out = tmp_path / "out"
    extract(
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--workers",
        "2",
        "--resize-mode",
        "short",
        "--size",
        "16",
        "--videos-per-task",
        "2",
        *FAST_FLOW,
    )
    samples = read_back(out)
    by_id = {json.loads(s["json"])["id"]: s for s in samples.values()}
    assert set(by_id) == {Path(n).stem for n in REAL_FRAMES}
    import cv2

    for name, frames in REAL_FRAMES.items():
        sample = by_id[Path(name).stem]
        meta = json.loads(sample["json"])
        assert meta["num_frames"] == frames, name
        assert sum(k.startswith("flow_y.") for k in sample) == frames - 1
        rgb = cv2.imdecode(np.frombuffer(sample[fmt.frame_member(fmt.RGB, 0)], np.uint8), cv2.IMREAD_COLOR)
        assert rgb.shape[:2] == (meta["height"], meta["width"]) and min(rgb.shape[:2]) == 16
        portrait = name.startswith("phone")  # a -90 display matrix turns 568x320 coded into portrait
        assert (rgb.shape[0] > rgb.shape[1]) == portrait, name
    assert abs(json.loads(by_id["kinetics_arm_wrestling_28fps"]["json"])["fps"] - 28) < 0.5
    assert CliRunner().invoke(main, ["verify", str(out), "--decode"]).exit_code == 0


def test_flow_jpegs_match_float_tvl1_within_quantization_plus_jpeg_error(tmp_path):
    """Decoded flow JPEGs vs TV-L1 computed in float on the same frames (OpenCV defaults, 256x256)."""
    import cv2

    from flowprep.decode import Resize, StreamInfo, decode_frames

    clip = shared_path("videos", "kinetics_cleaning_pool_32frames.mp4")
    root = tmp_path / "real" / "pool"
    root.mkdir(parents=True)
    os.symlink(clip, root / clip.name)
    out = tmp_path / "out"
    extract(
        "--dataset",
        "folder",
        "--root",
        str(root.parent),
        "--out",
        str(out),
        "--executor",
        "inline",
        "--max-frames",
        "3",
        "--flow-backend",
        "opencv",
    )  # 256x256, OpenCV's defaults, 2 flows: the
    # quantization + JPEG chain against the same code in float (the numba backend's fidelity: test_flow_backends)
    sample = next(iter(read_back(out).values()))
    frames = [
        cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode_frames(str(clip), Resize(), StreamInfo(), max_frames=3)
    ]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    step_px = fmt.quant_step_px()
    for i in range(2):
        reference_px = np.clip(tvl1.calc(frames[i], frames[i + 1], None), -20, 20)
        for c, kind in enumerate((fmt.FLOW_X, fmt.FLOW_Y)):
            levels = cv2.imdecode(np.frombuffer(sample[fmt.frame_member(kind, i)], np.uint8), cv2.IMREAD_GRAYSCALE)
            error_px = np.abs(fmt.dequantize_flow(levels.astype(np.float32)) - reference_px[..., c])
            # Quantization alone is at most half a step; JPEG at quality 95 adds at most a few levels
            # at sharp edges (benchmarks/results/jpeg_quality_table.md: p99 1 level, max 8).
            assert error_px.mean() <= step_px / 2, (i, kind, error_px.mean())
            assert np.percentile(error_px, 99) <= step_px / 2 + 1 * step_px
            assert error_px.max() <= step_px / 2 + 10 * step_px
