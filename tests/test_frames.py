"""Frame folders as input (Jester, SSv1, any `<video>/00001.jpg` tree), and the new catalogs end to end
on small trees built from the real material of ../shared/data (frames, a VP9 webm, the official lists)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowprep.cli import EXIT_PARTIAL, main
from flowprep.decode import VideoError
from flowprep.frames import order_frames
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, extract, manifest, read_back

QUICK = ["--executor", "inline", "--size", "32", "--max-frames", "4", "--flow-backend", "opencv", *FAST_FLOW]


def test_frames_are_ordered_by_number_not_by_name():
    names = ["10.jpg", "9.jpg", "11.jpg", "flow_x_00001.jpg", "x_00001.jpg", "notes.txt"]
    assert order_frames(names) == ["9.jpg", "10.jpg", "11.jpg"]  # flow images and other files are not frames
    assert order_frames(["img_00002.jpg", "img_00001.jpg"]) == ["img_00001.jpg", "img_00002.jpg"]


@pytest.mark.parametrize(
    "names, cause, named",
    [
        (["00001.jpg", "00002.jpg", "00004.jpg"], "missing frames", "frame 3 missing after 00002.jpg"),
        (["00001.jpg", "1.png"], "duplicate frames", "00001.jpg and 1.png"),
        (["00001.jpg", "img_00002.jpg"], "mixed frame names", "prefixes"),
        (["thumbs.db", "x_00001.jpg"], "no frames", "no numbered"),
    ],
)
def test_bad_numbering_is_the_videos_failure(names, cause, named):
    with pytest.raises(VideoError, match=named) as info:
        order_frames(names)
    assert info.value.cause == cause


def jester_frames(dest: Path, drop: str | None = None, corrupt: str | None = None) -> None:
    """The real 36 Jester-style frames (133x100 JPEG) copied to `dest`, one removed or overwritten."""
    shutil.copytree(shared_path("frames", "jester_style_100px", "1"), dest)
    if drop:
        (dest / drop).unlink()
    if corrupt:
        (dest / corrupt).write_bytes(b"\xff\xd8 not really a jpeg")


def test_jester_tree_from_real_frames_extracts_and_fails_bad_folders(tmp_path):
    labels = shared_path("annotations", "jester", "jester-v1-labels.csv")
    root = tmp_path / "jester"
    shutil.copy(labels, root.mkdir() or root / labels.name)
    (root / "jester-v1-train.csv").write_text("1;Thumb Up\n2;Swiping Left\n3;Swiping Left\n")
    (root / "jester-v1-validation.csv").write_text("4;Thumb Up\n")
    jester_frames(root / "20bn-jester-v1" / "1")
    jester_frames(root / "20bn-jester-v1" / "2", drop="00003.jpg")
    jester_frames(root / "20bn-jester-v1" / "3", corrupt="00002.jpg")  # 4 is listed but has no folder
    out = tmp_path / "out"
    extract("--dataset", "jester", "--root", str(root), "--out", str(out), *QUICK, expect=EXIT_PARTIAL)
    rows = {r["video_id"]: r for r in manifest(out)}
    assert rows["1"]["status"] == "ok" and rows["1"]["frames"] == 4
    assert (
        rows["2"]["cause"] == "missing frames"
        and "20bn-jester-v1/2: " in rows["2"]["error"]
        and "frame 3 missing after 00002.jpg" in rows["2"]["error"]
    )
    assert rows["3"]["cause"] == "unreadable frame" and "00002.jpg" in rows["3"]["error"]
    assert rows["4"]["cause"] == "missing"
    (sample,) = read_back(out).values()
    meta = json.loads(sample["json"])
    assert meta["input"] == "frames" and meta["fps"] == 12 and meta["source_fps"] == 12
    assert meta["class"] == "Thumb Up" and meta["codec"] == "mjpeg" and (meta["height"], meta["width"]) == (32, 32)
    assert json.loads((out / "config.json").read_text())["frame_fps"] == 12
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0


def test_sthv1_tree_from_real_frames_and_lists(tmp_path):
    base = shared_path("annotations", "sthv1")
    root = tmp_path / "sthv1"
    root.mkdir()
    for name in ("something-something-v1-labels.csv", "something-something-v1-train.head200.csv"):
        shutil.copy(base / name, root / name)
    first_id, first_class = (base / "something-something-v1-train.head200.csv").read_text().splitlines()[0].split(";")
    jester_frames(root / first_id)
    out = tmp_path / "out"
    extract("--dataset", "sthv1", "--root", str(root), "--out", str(out), *QUICK, expect=EXIT_PARTIAL)
    rows = manifest(out)
    assert Counter(r["status"] for r in rows) == {"ok": 1, "failed": 199}  # the other 199 listed folders are missing
    (sample,) = read_back(out).values()
    meta = json.loads(sample["json"])
    assert meta["id"] == first_id and meta["class"] == first_class and meta["input"] == "frames"
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0


def test_sthv2_tree_from_the_real_webm_and_lists(tmp_path):
    base = shared_path("annotations", "sthv2")
    root = tmp_path / "sthv2"
    root.mkdir()
    shutil.copy(base / "something-something-v2-labels.json", root)
    shutil.copy(
        base / "something-something-v2-validation.head200.json", root / "something-something-v2-validation.json"
    )
    shutil.copy(shared_path("videos", "sthv2_style_vp9_12fps.webm"), root / "74225.webm")
    out = tmp_path / "out"
    extract("--dataset", "sthv2", "--root", str(root), "--out", str(out), *QUICK, expect=EXIT_PARTIAL)
    rows = {r["video_id"]: r for r in manifest(out)}
    assert rows["74225"]["status"] == "ok" and sum(r["status"] == "failed" for r in rows.values()) == 199
    (sample,) = read_back(out).values()
    meta = json.loads(sample["json"])
    assert meta["codec"] == "vp9" and meta["input"] == "video" and round(meta["source_fps"]) == 12
    assert meta["class"] == "Spinning something that quickly stops spinning"
    assert (out / "val.shards.txt").is_file()
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0


def test_folder_of_frame_folders_needs_a_frame_rate(tmp_path):
    jester_frames(tmp_path / "videos" / "waving" / "clip_a")
    jester_frames(tmp_path / "videos" / "waving" / "clip_b")
    out = tmp_path / "out"
    output = extract("--dataset", "folder", "--root", str(tmp_path / "videos"), "--out", str(out), *QUICK, expect=1)
    assert "waving/clip_a is a folder of frames" in output and "--frame-fps" in output
    extract("--dataset", "folder", "--root", str(tmp_path / "videos"), "--out", str(out), "--frame-fps", "25", *QUICK)
    metas = [json.loads(s["json"]) for s in read_back(out).values()]
    assert sorted(m["id"] for m in metas) == ["clip_a", "clip_b"] and {m["fps"] for m in metas} == {25}


@pytest.mark.parametrize(
    "version, val_csv", [(600, "kinetics-600_val.head200.csv"), (700, "kinetics-700_validate.head200.csv")]
)
def test_kinetics600_700_trees_from_a_real_clip_and_the_real_csvs(version, val_csv, tmp_path):
    base = shared_path("annotations", f"kinetics{version}")
    label, youtube_id, start, end, _ = (base / val_csv).read_text().splitlines()[1].split(",")
    root = tmp_path / "videos"
    (root / label).mkdir(parents=True)
    shutil.copy(
        shared_path("videos", "kinetics_cleaning_pool_32frames.mp4"),
        root / label / f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4",
    )
    out = tmp_path / "out"
    extract(
        "--dataset",
        f"kinetics{version}",
        "--root",
        str(root),
        "--annotations",
        str(base),
        "--out",
        str(out),
        *QUICK,
        expect=EXIT_PARTIAL,
    )
    rows = manifest(out)
    assert Counter(r["status"] for r in rows) == {"ok": 1, "failed": 399}  # 199 val + 200 test clips absent
    (sample,) = read_back(out).values()
    meta = json.loads(sample["json"])
    label_map = (base / f"mmaction2_label_map_k{version}.txt").read_text().splitlines()
    assert meta["dataset"] == f"kinetics{version}" and meta["class"] == label and label_map[meta["label"]] == label
    assert meta["splits"] == {"1": "val"}
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
