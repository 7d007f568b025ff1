"""Clips of untrimmed videos: seek-based range decode on real clips, the clip catalogs (folder CSV,
Kinetics against full-length downloads), a clip sample equal to the same frames of the whole video,
and clips of one remote video sharing one read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowprep.decode import Resize, StreamInfo, VideoError, decode_frames
from flowprep.verify import iter_samples, verify
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, extract
from tests.test_flow_layout import class_tree


def whole_and_range(name: str, start_s: float, end_s: float):
    path = str(shared_path("videos", name))
    whole_info = StreamInfo()
    whole = list(decode_frames(path, Resize("square", 48), whole_info))
    origin_s = whole_info.start_s or 0.0
    in_range = [i for i, t in enumerate(whole_info.pts_s) if start_s <= t - origin_s < end_s]
    clip_info = StreamInfo()
    clip = list(decode_frames(path, Resize("square", 48), clip_info, time_range=(start_s, end_s)))
    return whole, in_range, clip, clip_info


@pytest.mark.parametrize(
    "name,start_s,end_s,sought",
    [
        ("kinetics_arm_wrestling_28fps.mp4", 7.0, 8.0, True),  # h264, keyframes at 0, 6.68, 8.21 s
        ("kinetics_flipping_pancake_noframecount.mkv", 5.5, 6.5, True),  # Matroska, keyframes every 5 s
        ("pedestrians_msmpeg4v3_10fps.avi", 30.0, 31.0, True),  # AVI index, keyframes every 25 s
        ("ucf101_ApplyEyeMakeup_xvid.avi", 2.0, 3.0, False),  # one keyframe: decoding starts at 0, still exact
    ],
)
def test_a_range_equals_the_same_frames_of_the_whole_decode(name, start_s, end_s, sought):
    whole, in_range, clip, info = whole_and_range(name, start_s, end_s)
    assert len(in_range) >= 10 and len(clip) == len(in_range) == info.decoded_frames
    for frame, index in zip(clip, in_range):
        assert np.array_equal(frame, whole[index]), index
    if sought:  # the keyframe before the range, not frame 0: fewer frames decoded before it
        assert info.preroll_frames < in_range[0]
    assert info.range_ended and not info.complete


def test_a_range_past_the_end_or_holding_no_frame_is_an_error():
    path = str(shared_path("videos", "kinetics_cleaning_pool_32frames.mp4"))  # 32 frames, ~1.1 s
    with pytest.raises(VideoError, match=r"clip past the end: clip \[0.500, 3.000\) s.*end at 1.1"):
        list(decode_frames(path, Resize("square", 32), StreamInfo(), time_range=(0.5, 3.0)))
    with pytest.raises(VideoError, match="no frame in"):
        list(decode_frames(path, Resize("square", 32), StreamInfo(), time_range=(5.0, 6.0)))


@pytest.fixture
def untrimmed(tmp_path):
    return class_tree(tmp_path, "kinetics_arm_wrestling_28fps.mp4", "arm/wrestle.mp4")


def test_a_clip_sample_holds_the_same_frames_and_flows_as_the_whole_video(untrimmed, tmp_path):
    """Clip [7, 8) s of a 28 fps video is frames 196..223 of it: its RGB and flow members are byte for
    byte the whole video's (same decode, same TV-L1 pairs, same JPEG encoder)."""
    common = ["--dataset", "folder", "--root", str(untrimmed), "--executor", "inline", "--size", "32", *FAST_FLOW]
    extract(*common, "--out", str(tmp_path / "whole"), "--max-frames", "224")
    clips_csv = tmp_path / "clips.csv"
    clips_csv.write_text("path,start,end,label\narm/wrestle.mp4,7,8,late\narm/wrestle.mp4,1,2,early\n")
    extract(*common, "--out", str(tmp_path / "clips"), "--annotations", str(clips_csv))
    assert verify(str(tmp_path / "clips")) == []
    whole = sample_members(tmp_path / "whole")["arm/wrestle"]
    clips = sample_members(tmp_path / "clips")
    assert set(clips) == {"late/wrestle_7000_8000", "early/wrestle_1000_2000"}
    late = clips["late/wrestle_7000_8000"]
    meta = json.loads(late["json"])
    assert meta["num_frames"] == 28 and meta["source"] == "arm/wrestle.mp4"
    assert meta["clip"] == {"start_s": 7.0, "end_s": 8.0, "first_frame_s": 7.0}
    for k in range(28):
        assert late[f"rgb.{k:06d}.jpg"] == whole[f"rgb.{196 + k:06d}.jpg"], k
    for k in range(27):
        assert late[f"flow_x.{k:06d}.jpg"] == whole[f"flow_x.{196 + k:06d}.jpg"], k
        assert late[f"flow_y.{k:06d}.jpg"] == whole[f"flow_y.{196 + k:06d}.jpg"], k
    plan = json.loads((tmp_path / "clips" / "plan.json").read_text())
    assert len(plan["tasks"]) == 1  # the clips of one video: one task, one read


def sample_members(out: Path) -> dict[str, dict[str, bytes]]:
    samples = {}
    for shard in sorted(out.glob("*.tar")):
        with open(shard, "rb") as f:
            samples.update(iter_samples(f))
    return samples


# ---- catalogs ------------------------------------------------------------------------------------


def test_folder_clips_csv(tmp_path):
    from flowprep.datasets import load_catalog

    (tmp_path / "root" / "a").mkdir(parents=True)
    for name in ("long.mp4", "other.mp4"):
        (tmp_path / "root" / "a" / name).write_bytes(b"x")
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("a/long.mp4,0,2.5,jump\na/long.mp4,10,12,run\na/other.mp4,3,4,jump\na/gone.mp4,1,2,run\n")
    catalog = load_catalog("folder", str(tmp_path / "root"), str(csv_path))
    assert catalog.classes == ("jump", "run")
    by_id = {item.video_id: item for item in catalog.items}
    assert set(by_id) == {"long_0_2500", "long_10000_12000", "other_3000_4000", "gone_1000_2000"}
    assert by_id["long_0_2500"].time_range == (0.0, 2.5) and by_id["long_0_2500"].label == 0
    assert by_id["long_10000_12000"].rel_path == "a/long.mp4" and by_id["long_10000_12000"].label == 1
    assert by_id["gone_1000_2000"].problem.startswith("missing")
    # split 2 goes by video: both clips of long.mp4 land in the same partition
    assert by_id["long_0_2500"].splits["2"] == by_id["long_10000_12000"].splits["2"]
    csv_path.write_text("a/long.mp4,0,2.5,jump\na/long.mp4,five,6,run\n")
    with pytest.raises(ValueError, match=r"clips.csv:2: expected `path,start,end,label`"):
        load_catalog("folder", str(tmp_path / "root"), str(csv_path))
    csv_path.write_text("a/long.mp4,3,2,jump\n")
    with pytest.raises(ValueError, match=r"clips.csv:1: clip \[3.0, 2.0\) s is empty"):
        load_catalog("folder", str(tmp_path / "root"), str(csv_path))


def test_kinetics_rows_against_full_length_downloads(tmp_path):
    from flowprep.datasets import load_catalog

    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "kinetics-400_val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,AAAAAAAAAAA,5,15,val\n"
        "abseiling,AAAAAAAAAAA,40,50,val\nbowling,BBBBBBBBBBB,0,10,val\nbowling,CCCCCCCCCCC,1,11,val\n"
    )
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "AAAAAAAAAAA.mp4").write_bytes(b"x")  # a full-length download
    (tmp_path / "v" / "BBBBBBBBBBB_000000_000010.mp4").write_bytes(b"x")  # a trimmed clip: used whole
    catalog = load_catalog("kinetics400", str(tmp_path / "v"), str(tmp_path / "ann"))
    by_id = {item.video_id: item for item in catalog.items}
    assert set(by_id) == {
        "AAAAAAAAAAA_000005_000015",
        "AAAAAAAAAAA_000040_000050",
        "BBBBBBBBBBB_000000_000010",
        "CCCCCCCCCCC_000001_000011",
    }  # the full-length file is no unlisted video of its own
    assert by_id["AAAAAAAAAAA_000040_000050"].rel_path == "AAAAAAAAAAA.mp4"
    assert by_id["AAAAAAAAAAA_000040_000050"].time_range == (40.0, 50.0)
    assert by_id["BBBBBBBBBBB_000000_000010"].time_range is None
    assert by_id["CCCCCCCCCCC_000001_000011"].problem.startswith("missing")


def test_clips_of_a_remote_video_share_one_read(monkeypatch, tmp_path):
    """Three clips of one video on an object store (fsspec memory://): its bytes are fetched once."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    from flowprep.config import ExtractConfig
    from flowprep.datasets import VideoItem
    from flowprep.plan import Task
    from flowprep.task import run_task

    memory = fsspec.filesystem("memory")
    memory.pipe("/untrimmed/arm/wrestle.mp4", shared_path("videos", "kinetics_arm_wrestling_28fps.mp4").read_bytes())
    reads = []
    original = MemoryFileSystem.cat_file
    monkeypatch.setattr(
        MemoryFileSystem, "cat_file", lambda self, path, *a, **k: reads.append(path) or original(self, path, *a, **k)
    )
    items = tuple(
        VideoItem(f"wrestle_{a}", "arm", 0, "arm/wrestle.mp4", {"1": "all"}, start_s=a, end_s=a + 0.5)
        for a in (1.0, 4.0, 7.5)
    )
    cfg = ExtractConfig(
        dataset="folder",
        root="memory://untrimmed",
        out=str(tmp_path / "out"),
        size_px=32,
        flow_backend="opencv",
        flow_params=(("nscales", 1), ("warps", 1)),
        workers=1,
    )
    (tmp_path / "out").mkdir()
    summary = run_task(Task(0, "all", items), cfg)
    assert summary["ok"] == 3 and summary["frames"] == 3 * 14
    assert [p for p in reads if p.endswith("wrestle.mp4")] == ["/untrimmed/arm/wrestle.mp4"]
