"""Flow stride / every-M and the lossless flow formats (png16, npz): writer, format inverse, verify, loader,
preview and export on real clips; shard digests; the --workers default."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from flowprep import format as fmt
from flowprep.core import VideoSettings, process_video
from flowprep.decode import Resize, StreamInfo, decode_frames
from flowprep.verify import iter_samples, verify
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, extract, manifest

CLIP = "kinetics_cleaning_pool_32frames.mp4"
FAST_PARAMS = {"nscales": 1, "warps": 1, "outer_iterations": 1, "inner_iterations": 5}


def extract_small(root, out, max_frames: int, *flags: str) -> None:
    """An inline extract of the real clips at 32 px, `max_frames` frames each, with the fast flow settings."""
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
        "--max-frames",
        str(max_frames),
        *flags,
        *FAST_FLOW,
    )


def fast_backend():
    from flowprep.flow import create_backend

    return create_backend("opencv", **FAST_PARAMS)


def gray_frames(path, size_px: int, max_frames: int) -> list[np.ndarray]:
    import cv2

    frames = decode_frames(str(path), Resize("square", size_px), StreamInfo(), max_frames)
    return [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in frames]


# ---- the format: layouts and the exact inverses ---------------------------------------------------


@pytest.mark.parametrize("stride,every", [(1, 1), (2, 1), (1, 3), (3, 2), (5, 4)])
def test_layout_counts_every_pair_that_fits(stride, every):
    layout = fmt.FlowLayout(stride, every)
    for num_frames in range(0, 20):
        pairs = [(s, s + stride) for s in range(0, num_frames, every) if s + stride < num_frames]
        assert layout.num_flows(num_frames) == len(pairs)
        assert [(layout.source_frame(j), layout.target_frame(j)) for j in range(len(pairs))] == pairs


def test_layout_rejects_bad_values():
    for bad in ({"stride": 0}, {"every": 0}, {"format": "png8"}):
        with pytest.raises(ValueError, match="bad flow layout"):
            fmt.FlowLayout(**bad)
    assert fmt.flow_layout({"flow": {"bound_px": 20}}) == fmt.FlowLayout()  # shards before the fields


def test_png16_and_npz_round_trips_are_exact():
    rng = np.random.default_rng(0)
    flow_px = (rng.standard_normal((24, 40)) * 12).astype(np.float32)  # some past the 20 px bound
    flow_px[0, :4] = [-20.0, 20.0, 0.0, 1e-7]
    bound = 20.0
    levels16 = fmt.quantize_flow16(flow_px, bound)
    assert np.array_equal(fmt.decode_png16(fmt.encode_png16(levels16)), levels16)  # PNG is lossless
    scale, offset = fmt.png16_scale_offset(bound)
    back_px = fmt.dequantize_flow16(levels16.astype(np.float64), scale, offset)
    assert np.abs(back_px - np.clip(flow_px, -bound, bound)).max() <= scale / 2 + 1e-9
    assert np.array_equal(fmt.quantize_flow16(back_px, bound), levels16)  # the inverse maps back to the same levels
    npz_back = fmt.decode_npz(fmt.encode_npz(flow_px))
    assert npz_back.dtype == np.float32 and np.array_equal(npz_back, flow_px)  # bit for bit, unclipped
    with pytest.raises(ValueError):
        fmt.decode_png16(fmt.encode_png16(levels16)[:40])


# ---- the writer on a real clip ----------------------------------------------------------------------


@pytest.mark.parametrize("stride,every,form", [(1, 1, "npz"), (3, 2, "npz"), (2, 3, "png16"), (2, 2, "jpeg")])
def test_core_writes_the_flow_of_each_pair_exactly(stride, every, form):
    """Flow j of the sample is TV-L1 of frames (j*every, j*every+stride), decoded back exactly (npz bit for
    bit, png16 to its levels, jpeg: member count and names only, JPEG being lossy)."""
    path = shared_path("videos", CLIP)
    layout = fmt.FlowLayout(stride, every, form)
    settings = VideoSettings(resize=Resize("square", 32), max_frames=10, flow=layout)
    backend = fast_backend()
    result = process_video(str(path), {"id": "c", "label": 0, "class": "pool"}, settings, backend)
    meta = json.loads(result.members["json"])
    assert meta["flow"]["stride"] == stride and meta["flow"]["every"] == every and meta["flow"]["format"] == form
    assert meta["num_flows"] == layout.num_flows(10) and set(result.members) == set(fmt.expected_members(10, layout))
    if form == "jpeg":
        return
    gray = gray_frames(path, 32, 10)
    for j in range(meta["num_flows"]):
        want_xy = backend.compute(gray[layout.source_frame(j)][None], gray[layout.target_frame(j)][None])[0]
        for c, kind in enumerate((fmt.FLOW_X, fmt.FLOW_Y)):
            data = result.members[fmt.frame_member(kind, j, layout.ext)]
            if form == "npz":
                assert np.array_equal(fmt.decode_npz(data), want_xy[..., c]), (j, kind)
            else:
                assert np.array_equal(fmt.decode_png16(data), fmt.quantize_flow16(want_xy[..., c], 20.0)), (j, kind)
                scale = meta["flow"]["png16"]["scale"]
                assert np.abs(fmt.flow_plane_px(data, meta) - np.clip(want_xy[..., c], -20, 20)).max() <= scale


def test_strided_frame_folder_keeps_its_input_kind():
    """Frame folders (Jester's real frames) take the strided path too, and stay `input: frames`."""
    from flowprep.frames import open_frame_folder
    from flowprep.storage import filesystem

    fs, path = filesystem(str(shared_path("frames", "jester_style_100px", "1")))
    settings = VideoSettings(resize=Resize("square", 32), max_frames=7, flow=fmt.FlowLayout(3, 2, "npz"))
    result = process_video(
        open_frame_folder(fs, path, 12.0), {"id": "1", "label": 0, "class": "g"}, settings, fast_backend()
    )
    meta = json.loads(result.members["json"])
    assert meta["input"] == "frames" and meta["num_flows"] == 2  # 0 -> 3, 2 -> 5


def test_default_layout_is_todays_jpeg_flow():
    """stride 1, every 1, jpeg: N-1 flows of consecutive frames, as before the options existed."""
    path = shared_path("videos", CLIP)
    backend = fast_backend()
    result = process_video(
        str(path),
        {"id": "c", "label": 0, "class": "pool"},
        VideoSettings(resize=Resize("square", 32), max_frames=5),
        backend,
    )
    gray = gray_frames(path, 32, 5)
    levels = backend.levels(np.stack(gray), 20.0)
    meta = json.loads(result.members["json"])
    assert meta["num_flows"] == 4 and set(result.members) == set(fmt.expected_members(5))
    for j in range(4):  # JPEG q95 of the same levels: within a few levels of the flow written
        decoded = fmt.quantize_flow(fmt.flow_plane_px(result.members[fmt.frame_member(fmt.FLOW_X, j)], meta))
        assert np.abs(decoded.astype(int) - levels[j, :, :, 0]).mean() < 1.0


# ---- end to end: extract, verify, loader, preview, export -------------------------------------------


def class_tree(tmp_path, clip: str, rel: str):
    """A `folder` dataset root holding one real clip of ../shared/data/videos at `rel` (<class>/<file>)."""
    (tmp_path / "videos" / rel).parent.mkdir(parents=True)
    os.symlink(shared_path("videos", clip), tmp_path / "videos" / rel)
    return tmp_path / "videos"


@pytest.fixture
def real_root(tmp_path):
    return class_tree(tmp_path, "ucf101_ApplyEyeMakeup_xvid.avi", "makeup/makeup.avi")


def test_strided_npz_extract_reads_back_through_verify_loader_preview(real_root, tmp_path):
    from training.data import ClipSpec, make_clips, pick_clips

    out = tmp_path / "out"
    extract_small(real_root, out, 11, "--flow-stride", "2", "--flow-every", "3", "--flow-format", "npz")
    assert verify(str(out), decode_images=True) == []
    config = json.loads((out / fmt.CONFIG_FILE).read_text())
    assert (config["flow_stride"], config["flow_every"], config["flow_format"]) == (2, 3, "npz")
    (row,) = manifest(out)
    assert row["frames"] == 11 and row["flows"] == 3  # flows 0->2, 3->5, 6->8 (9->11 is past the end)
    with open(out / row["shard"], "rb") as f:
        ((key, members),) = list(iter_samples(f))
    meta = json.loads(members["json"])

    spec = ClipSpec(modalities=("rgb", "flow"), frames=2, crop_size=32, flip=False, train=True)
    errors = []
    picked = list(pick_clips([{"__key__": key, "meta": meta, **members}], spec, 3, 0, errors.append))
    assert not errors and len(picked) == 1
    (item,) = make_clips(picked[0], spec)
    positions = picked[0]["plans"][0].frames
    assert max(positions) <= 2  # positions are flows: 3 of them
    import cv2
    import torch

    from training.normalize import normalize_clip

    for t, j in enumerate(positions):  # flow j beside RGB frame 3j, both decoded exactly as written
        want = fmt.flow_plane_levels(members[fmt.frame_member(fmt.FLOW_X, j, "npz")], meta) - 127.5
        assert np.allclose(item["flow"][0, t], want, atol=1e-4)
        rgb = cv2.imdecode(np.frombuffer(members[fmt.frame_member(fmt.RGB, 3 * j)], np.uint8), cv2.IMREAD_COLOR)
        rgb_input = normalize_clip(torch.from_numpy(item["rgb"]), "rgb").numpy()  # clips leave workers as uint8
        assert np.allclose(
            rgb_input[:, t].transpose(1, 2, 0) + np.float32([114.7748, 107.7354, 99.4750]), rgb[:, :, ::-1], atol=1e-3
        )

    from click.testing import CliRunner

    from flowprep.cli import main

    result = CliRunner().invoke(main, ["preview", str(out), "--key", key, "-o", str(tmp_path / "p.png")])
    assert result.exit_code == 0 and "flows [0, 1, 2]" in result.output, result.output
    assert cv2.imread(str(tmp_path / "p.png")).shape[0] == 3 * 32
    result = CliRunner().invoke(main, ["inspect", str(out / row["shard"])])
    assert result.exit_code == 0 and "flow=npz stride 2 every 3" in result.output, result.output
    result = CliRunner().invoke(main, ["export", "mmaction2", str(out), str(tmp_path / "mm")])
    assert result.exit_code != 0 and "stored as npz" in result.output and key in result.output


def test_strided_jpeg_export_counts_flows(real_root, tmp_path):
    from flowprep.export import ExportConfig, export_mmaction2

    out = tmp_path / "out"
    extract_small(real_root, out, 9, "--flow-every", "2")
    assert verify(str(out)) == []
    export_mmaction2(ExportConfig(str(out), str(tmp_path / "mm")), log=lambda line: None)
    flow_list = (tmp_path / "mm" / "folder_all_split_1_rawframes_flow.txt").read_text().split()
    assert flow_list[1] == "4"  # flows from frames 0, 2, 4, 6
    names = sorted(p.name for p in (tmp_path / "mm" / "rawframes" / "makeup" / "makeup").glob("flow_x_*"))
    assert names == [f"flow_x_{k:05d}.jpg" for k in range(1, 5)]


def test_verify_catches_a_layout_mismatch(real_root, tmp_path):
    """A json claiming a layout its members do not have fails verify, naming the sample."""
    from flowprep.verify import check_sample

    out = tmp_path / "out"
    extract_small(real_root, out, 6, "--flow-format", "png16")
    (row,) = manifest(out)
    with open(out / row["shard"], "rb") as f:
        ((key, members),) = list(iter_samples(f))
    meta = json.loads(members["json"])
    assert check_sample(key, members)[1] == []
    meta["flow"]["stride"] = 2
    _, problems = check_sample(key, {**members, "json": json.dumps(meta).encode()})
    assert any("num_flows 5 != 4" in p for p in problems) and any("extra" in p for p in problems)


# ---- digests ---------------------------------------------------------------------------------------


def test_a_changed_byte_fails_verify_naming_the_shard(real_root, tmp_path):
    import hashlib

    out = tmp_path / "out"
    extract_small(real_root, out, 4)
    (row,) = manifest(out)
    shard = out / row["shard"]
    data = bytearray(shard.read_bytes())
    assert row["shard_bytes"] == len(data) and row["shard_sha256"] == hashlib.sha256(data).hexdigest()
    assert verify(str(out)) == []
    jpeg_at = data.index(b"\xff\xd8\xff")  # inside the first JPEG's bytes: the tar still reads
    data[jpeg_at + 200] ^= 0x01
    shard.write_bytes(bytes(data))
    problems = verify(str(out))
    assert len(problems) == 1 and problems[0].startswith(f"{row['shard']}: not the shard that was published")
    assert verify(str(out), quick=True) == []  # --quick: sizes only, the same size passes
    from click.testing import CliRunner

    from flowprep.cli import EXIT_ERROR, EXIT_OK, main

    result = CliRunner().invoke(main, ["verify", str(out)])
    assert result.exit_code == EXIT_ERROR and f"{row['shard']}: not the shard that was published" in result.output
    assert CliRunner().invoke(main, ["verify", "--quick", str(out)]).exit_code == EXIT_OK
    shard.write_bytes(bytes(data[:-1024]))  # the end-of-archive blocks lost: only the size says so
    assert any(
        p.startswith(f"{row['shard']}: {len(data) - 1024} bytes, the manifest says {len(data)}")
        for p in verify(str(out), quick=True)
    )


# ---- machine defaults -------------------------------------------------------------------------------


def test_workers_default_to_the_cores(monkeypatch):
    from flowprep.config import ExtractConfig
    from flowprep.runner import fit_local_workers

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = ExtractConfig(dataset="sample", out="x")
    assert cfg.workers == 0 and fit_local_workers(cfg).workers == (os.cpu_count() or 1)
    assert fit_local_workers(ExtractConfig(dataset="sample", out="x", workers=1)).workers == 1
    assert fit_local_workers(ExtractConfig(dataset="sample", out="x", executor="inline")).workers == 1
    with pytest.raises(ValueError, match=r"--flow-format 'png': choose one of \('jpeg', 'png16', 'npz'\)"):
        ExtractConfig(dataset="sample", out="x", flow_format="png")


def test_a_job_started_before_the_flow_options_still_resumes():
    """At their defaults the new content fields leave the fingerprint as ea4289c computed it (values pinned
    from that commit), so plan.json of a job started then is accepted; set, they change it."""
    from flowprep.config import ExtractConfig

    assert ExtractConfig(dataset="sample", out="x").content_fingerprint() == "f9bc0b04737b2f19"
    cfg = ExtractConfig(dataset="ucf101", out="y", root="/r", size_px=128, flow_backend="numba")
    assert cfg.content_fingerprint() == "c01b80346d71b0d7"
    for changed in ({"flow_stride": 2}, {"flow_every": 3}, {"flow_format": "png16"}):
        assert ExtractConfig(dataset="sample", out="x", **changed).content_fingerprint() != "f9bc0b04737b2f19"


def test_workers_default_to_the_clusters_cpus(monkeypatch):
    """With a cluster (RAY_ADDRESS), the default is its CPU count, asked of Ray (a stand-in here)."""
    import sys
    import types

    from flowprep.config import ExtractConfig
    from flowprep.runner import fit_local_workers

    calls = []
    fake_ray = types.SimpleNamespace(
        is_initialized=lambda: False,
        init=lambda **kw: calls.append(("init", kw)),
        cluster_resources=lambda: {"CPU": 48.0, "GPU": 4.0},
        shutdown=lambda: calls.append(("shutdown", {})),
    )
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert fit_local_workers(ExtractConfig(dataset="sample", out="x")).workers == 48
    assert calls[0] == ("init", {"address": "10.0.0.1:6379", "log_to_driver": False}) and calls[-1][0] == "shutdown"
    assert fit_local_workers(ExtractConfig(dataset="sample", out="x", workers=512)).workers == 512  # asked: kept


def test_extract_help_names_each_new_flag_once():
    from click.testing import CliRunner

    from flowprep.cli import main

    text = CliRunner().invoke(main, ["extract", "--help"], terminal_width=200).output
    for flag in ("--flow-stride", "--flow-every", "--flow-format"):
        assert text.count(flag) == 1, flag
    assert "Ray workers)" not in text and "one per core" in text
