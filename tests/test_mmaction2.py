"""The MMAction2 bridge: `flowprep export mmaction2` (rawframes + lists) and `flowprep import rawframes`
(MMAction2 / denseflow / TSN trees -> shards), and the round trip between them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowprep.cli import EXIT_OK, EXIT_PARTIAL, main
from flowprep.importer import parse_list, partition_of_list
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, extract, manifest, read_back


def run(*args: str, expect: int = EXIT_OK) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


@pytest.fixture
def extracted(tmp_path, write_video) -> Path:
    """3 videos of 2 classes (4, 5 and 6 frames) extracted at 32 px; split 2 is the folder's train/test."""
    root = tmp_path / "videos"
    for i, (cls, name) in enumerate((("arm wrestling", "a"), ("arm wrestling", "b"), ("clap", "c"))):
        write_video(root / cls / f"{name}.avi", frames=4 + i, size_px=48, seed=i)
    out = tmp_path / "shards"
    extract(
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--executor",
        "inline",
        "--size",
        "32",
        "--flow-backend",
        "opencv",
        *FAST_FLOW,
    )
    return out


def test_export_writes_the_rawframes_layout_and_lists_that_match_the_files(extracted, tmp_path):
    dest = tmp_path / "mm"
    run("export", "mmaction2", str(extracted), str(dest))
    samples = read_back(extracted)
    rgb_list = (dest / "folder_all_split_1_rawframes.txt").read_text().splitlines()
    flow_list = (dest / "folder_all_split_1_rawframes_flow.txt").read_text().splitlines()
    assert len(rgb_list) == len(flow_list) == len(samples) == 3
    for rgb_line, flow_line in zip(rgb_list, flow_list):
        frame_dir, total, label = rgb_line.split()
        folder = dest / "rawframes" / frame_dir
        imgs = sorted(p.name for p in folder.glob("img_*.jpg"))
        flows_x = sorted(p.name for p in folder.glob("flow_x_*.jpg"))
        assert imgs == [f"img_{k:05d}.jpg" for k in range(1, int(total) + 1)]  # 1-based, N frames
        assert flow_line == f"{frame_dir} {int(total) - 1} {label}"
        assert flows_x == [f"flow_x_{k:05d}.jpg" for k in range(1, int(total))]  # N-1 flows, same index as frame
        assert len(list(folder.glob("flow_y_*.jpg"))) == int(total) - 1
        sample = samples[frame_dir]
        assert int(sample["cls"]) == int(label)
        assert (folder / "img_00001.jpg").read_bytes() == sample["rgb.000000.jpg"]  # byte for byte
        assert (folder / "flow_x_00002.jpg").read_bytes() == sample["flow_x.000001.jpg"]
        assert (folder / f"flow_y_{int(total) - 1:05d}.jpg").read_bytes() == sample[f"flow_y.{int(total) - 2:06d}.jpg"]
    videos = sorted((dest / "folder_all_split_1_videos.txt").read_text().splitlines())
    assert videos == ["arm wrestling/a.avi 0", "arm wrestling/b.avi 0", "clap/c.avi 1"]
    assert (dest / "folder_label_map.txt").read_text().splitlines() == ["arm wrestling", "clap"]
    split2 = [p.name for p in dest.glob("folder_*_split_2_rawframes.txt")]
    assert split2 and all(("_train_" in n) or ("_test_" in n) for n in split2)
    assert json.loads((dest / "export.json").read_text())["samples"] == 3


def test_export_then_import_gives_back_the_same_samples(extracted, tmp_path):
    dest = tmp_path / "mm"
    run("export", "mmaction2", str(extracted), str(dest))
    back = tmp_path / "back"
    run(
        "import",
        "rawframes",
        "--root",
        str(dest / "rawframes"),
        "--list",
        str(dest / "folder_all_split_1_rawframes.txt"),
        "--label-map",
        str(dest / "folder_label_map.txt"),
        "--out",
        str(back),
    )
    original, imported = read_back(extracted), read_back(back)
    assert set(imported) == set(original)
    for key, sample in original.items():
        frames = {k: v for k, v in sample.items() if k.endswith(".jpg")}
        assert {k: v for k, v in imported[key].items() if k.endswith(".jpg")} == frames  # every JPEG, byte for byte
        assert imported[key]["cls"] == sample["cls"]
        meta, meta_back = json.loads(sample["json"]), json.loads(imported[key]["json"])
        assert (meta_back["class"], meta_back["num_frames"]) == (meta["class"], meta["num_frames"])
        assert meta_back["imported"]["numbering"] == "mmaction2"
    assert run("verify", str(back)).startswith("OK")
    # a re-run resumes: nothing is redone, every sample still once
    output = run(
        "import",
        "rawframes",
        "--root",
        str(dest / "rawframes"),
        "--list",
        str(dest / "folder_all_split_1_rawframes.txt"),
        "--out",
        str(back),
        "--label-map",
        str(dest / "folder_label_map.txt"),
    )
    assert "tasks resumed from a previous run: 1" in output and len(read_back(back)) == 3


def reference_tree(dest: Path, numbering: str, frames: int = 6) -> None:
    """A rawframes folder from ../shared/data/flow_jpg_reference (real TSN/denseflow JPEGs): `frames`
    RGB frames and frames-1 flows, the flows numbered as `numbering` does."""
    ref = shared_path("flow_jpg_reference", "mmaction2_tests_imgs")
    dest.mkdir(parents=True)
    for k in range(1, frames + 1):
        shutil.copy(ref / f"img_{k:05d}.jpg", dest / f"img_{k:05d}.jpg")
    for k in range(1, frames):
        target = k - 1 if numbering == "denseflow" else k
        prefix = "flow_" if numbering == "denseflow" else ""  # denseflow: flow_x_00000.jpg; TSN: x_00001.jpg
        for axis in "xy":
            shutil.copy(ref / f"{axis}_{k:05d}.jpg", dest / f"{prefix}{axis}_{target:05d}.jpg")


def test_import_detects_either_numbering_and_fails_bad_folders(tmp_path):
    root = tmp_path / "rawframes"
    reference_tree(root / "a" / "tsn_1based", "mmaction2")
    reference_tree(root / "a" / "denseflow_0based", "denseflow")
    reference_tree(root / "b" / "gap", "denseflow")
    (root / "b" / "gap" / "img_00003.jpg").unlink()
    reference_tree(root / "b" / "corrupt", "mmaction2")
    (root / "b" / "corrupt" / "y_00002.jpg").write_bytes(b"\xff\xd8garbage")
    reference_tree(root / "b" / "too_few_flows", "mmaction2", frames=6)
    (root / "b" / "too_few_flows" / "x_00005.jpg").unlink()
    (root / "b" / "too_few_flows" / "y_00005.jpg").unlink()
    listing = tmp_path / "my_train_list.txt"
    listing.write_text(
        "a/tsn_1based 6 0\na/denseflow_0based 5 0\nb/gap 6 1\nb/corrupt 6 1\nb/too_few_flows 6 1\nb/not_there 6 1\n"
    )
    out = tmp_path / "out"
    run("import", "rawframes", "--root", str(root), "--list", str(listing), "--out", str(out), expect=EXIT_PARTIAL)
    rows = {r["source"]: r for r in manifest(out)}
    assert {s for s, r in rows.items() if r["status"] == "ok"} == {"a/tsn_1based", "a/denseflow_0based"}
    assert rows["b/gap"]["cause"] == "missing frames" and "after img_00002.jpg" in rows["b/gap"]["error"]
    assert rows["b/corrupt"]["cause"] == "unreadable frame" and "y_00002.jpg" in rows["b/corrupt"]["error"]
    assert rows["b/too_few_flows"]["cause"] == "flow count"
    assert rows["b/not_there"]["cause"] == "missing" and "my_train_list.txt" in rows["b/not_there"]["error"]
    assert all(r["partition"] == "train" for r in rows.values())
    samples = read_back(out)
    ref = shared_path("flow_jpg_reference", "mmaction2_tests_imgs")
    for key, numbering, flow_first in (
        ("a/tsn_1based", "mmaction2", "x_00001.jpg"),
        ("a/denseflow_0based", "denseflow", "flow_x_00000.jpg"),
    ):
        meta = json.loads(samples[key]["json"])
        assert meta["imported"]["numbering"] == numbering and meta["imported"]["flow_first"] == flow_first
        assert (meta["num_frames"], meta["num_flows"], meta["height"], meta["width"]) == (6, 5, 240, 320)
        assert samples[key]["flow_x.000000.jpg"] == (ref / "x_00001.jpg").read_bytes()
        assert samples[key]["rgb.000005.jpg"] == (ref / "img_00006.jpg").read_bytes()
    assert run("verify", str(out)).startswith("OK")
    # the imported data streams into flowprep-train's loader as it is: RGB and flow clips of the same frames
    pytest.importorskip("torch")
    from training.data import ClipSpec, ShardClipDataset

    spec = ClipSpec(modalities=("rgb", "flow"), frames=4, crop_size=64, train=False)
    clips = list(
        ShardClipDataset(sorted(str(p) for p in out.glob("train-*.tar")), spec, split_name="train").samples(0, 1, 0, 1)
    )
    assert len(clips) == 2 and {int(c["label"]) for c in clips} == {0}
    assert all(c["rgb"].shape == (3, 4, 64, 64) and c["flow"].shape == (2, 4, 64, 64) for c in clips)


def test_real_mmaction2_list_formats():
    lists = shared_path("annotations", "mmaction2_lists")
    assert parse_list((lists / "rawframe_test_list.txt").read_text(), "l", False, []) == [("imgs", 5, 127)] * 2
    assert (
        parse_list((lists / "rawframe_test_list_with_offset.txt").read_text(), "l", True, []) == [("imgs", 5, 127)] * 2
    )
    with pytest.raises(ValueError, match="rawframe_test_list_multi_label.txt:2: .*multi-label"):
        parse_list(
            (lists / "rawframe_test_list_multi_label.txt").read_text(), "rawframe_test_list_multi_label.txt", False, []
        )
    assert parse_list("unlabeled/x 5 -1\n", "l", False, ["a"]) == [("unlabeled/x", 5, -1)]  # export's test lists
    with pytest.raises(ValueError, match="l:1: label 1 outside the label map's 0..0"):
        parse_list("a/x 5 1\n", "l", False, ["a"])
    assert partition_of_list("data/hmdb51_val_split_1_rawframes.txt") == "val"
    assert partition_of_list("sthv2_train_list_rawframes.txt") == "train" and partition_of_list("x.txt") == "all"
