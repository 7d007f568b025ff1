"""The streaming loader on tiny shards whose pixels encode the frame index (tests/tiny_shards.py)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowprep.format import FLOW_X, RGB, frame_member  # noqa: E402
from tests.tiny_shards import flow_x_level, flow_y_level, rgb_level, video_sample, write_tiny_shards  # noqa: E402
from training.data import (  # noqa: E402
    ACTIVITYNET_MEAN_RGB,
    BadSampleTally,
    ClipSpec,
    ShardClipDataset,
    clip_indices,
    make_loader,
    segment_indices,
    shard_urls,
)
from training.normalize import normalize_clip  # noqa: E402

SIZE = 16


def frame_of_rgb(clip_rgb: np.ndarray, t: int) -> int:
    """Frame index encoded in the left half of RGB frame t of a (3,T,H,W) clip (no flip, no resize)."""
    level = clip_rgb[0, t, :, : SIZE // 2].mean() + ACTIVITYNET_MEAN_RGB[0]
    return round((level - 8) / 8)


def frame_of_flow_y(clip_flow: np.ndarray, t: int) -> int:
    return round((200 - (clip_flow[1, t].mean() + 127.5)) / 4)


def normalized(sample: dict) -> dict:
    """The loader's uint8 clips as the network sees them (training.normalize, here on the CPU)."""
    return {
        k: normalize_clip(torch.from_numpy(v), k).numpy() if k in ("rgb", "rgb2", "flow") else v
        for k, v in sample.items()
    }


def all_samples(ds: ShardClipDataset, world: int = 1, workers: int = 1) -> list[dict]:
    return [normalized(s) for r in range(world) for w in range(workers) for s in ds.samples(r, world, w, workers)]


@pytest.fixture
def shards(tmp_path):
    keys = write_tiny_shards(tmp_path, num_shards=5, videos_per_shard=3, num_frames=7, size=SIZE)
    return tmp_path, keys


def test_rgb_and_flow_windows_are_the_same_frames(shards):
    folder, _ = shards
    spec = ClipSpec(modalities=("rgb", "flow"), frames=4, crop_size=SIZE, flip=False)
    starts = set()
    for epoch in range(4):
        ds = ShardClipDataset(shard_urls(str(folder), ["train"]), spec, seed=1)
        ds.set_epoch(epoch)
        for s in all_samples(ds):
            rgb_idx = [frame_of_rgb(s["rgb"], t) for t in range(4)]
            flow_idx = [frame_of_flow_y(s["flow"], t) for t in range(4)]
            assert rgb_idx == flow_idx, s["key"]
            assert rgb_idx == list(range(rgb_idx[0], rgb_idx[0] + 4))
            assert rgb_idx[-1] <= 7 - 2  # flow t exists only for t <= N-2
            starts.add(rgb_idx[0])
            assert s["flow"].shape == (2, 4, SIZE, SIZE) and s["rgb"].shape == (3, 4, SIZE, SIZE)
    assert starts == {0, 1, 2}  # every legal start (N-1-T = 2) is drawn, and no other


def test_short_video_loops_like_3d_resnets():
    spec = ClipSpec(modalities=("rgb", "flow"), frames=5)
    assert clip_indices(3, spec, random.Random(0)) == [[0, 1, 0, 1, 0]]  # 2 flows, looped
    rgb_only = ClipSpec(modalities=("rgb",), frames=5)
    assert clip_indices(3, rgb_only, random.Random(0)) == [[0, 1, 2, 0, 1]]


def test_flip_mirrors_rgb_and_flow_together_and_negates_quantized_flow_x(shards):
    folder, _ = shards
    spec = ClipSpec(modalities=("rgb", "flow"), frames=3, crop_size=12, crop="random", flip=True)
    ds = ShardClipDataset(shard_urls(str(folder), ["train"]), spec, seed=3)
    seen_flip = seen_plain = 0
    for s in all_samples(ds):
        rgb, flow = s["rgb"], s["flow"]
        rgb_flipped = rgb[0, 0, :, 0].mean() > rgb[0, 0, :, -1].mean()  # source right half is brighter
        levels_x = flow[0] + 127.5
        for t in range(3):
            i = round((200 - (flow[1, t].mean() + 127.5)) / 4)  # flow y is never changed by a flip
            left, right = flow_x_level(i), flow_x_level(i) + 40  # source levels, left / right half
            if rgb_flipped:  # mirrored, and every level q became 255 - q
                assert levels_x[t, :, 0].mean() == pytest.approx(255 - right, abs=1)
                assert levels_x[t, :, -1].mean() == pytest.approx(255 - left, abs=1)
            else:
                assert levels_x[t, :, 0].mean() == pytest.approx(left, abs=1)
                assert levels_x[t, :, -1].mean() == pytest.approx(right, abs=1)
        seen_flip += rgb_flipped
        seen_plain += not rgb_flipped
    assert seen_flip and seen_plain


def test_node_and_worker_split_cover_every_video_once_per_epoch(shards):
    folder, keys = shards
    urls = shard_urls(str(folder), ["train"])
    orders = []
    for epoch in (0, 1):
        ds = ShardClipDataset(urls, ClipSpec(frames=2, crop_size=8), seed=0, buffer_size=4)
        ds.set_epoch(epoch)
        got = [s["key"] for s in all_samples(ds, world=2, workers=2)]
        assert Counter(got) == Counter(keys)
        per_rank = [[s["key"] for w in range(2) for s in ds.samples(r, 2, w, 2)] for r in range(2)]
        assert not set(per_rank[0]) & set(per_rank[1])
        orders.append(got)
    assert orders[0] != orders[1]  # shards and buffer reshuffle each epoch


def test_dataloader_workers_each_video_once(shards):
    folder, keys = shards
    ds = ShardClipDataset(shard_urls(str(folder), ["train"]), ClipSpec(frames=2, crop_size=8), rank=0, world_size=1)
    loader = make_loader(ds, batch_size=2, num_workers=2)
    got = [k for batch in loader for k in batch["key"]]
    assert Counter(got) == Counter(keys)
    batch = next(iter(loader))
    assert batch["rgb"].dtype == torch.uint8 and batch["rgb"].shape == (2, 3, 2, 8, 8)  # normalised on the device


def test_dataloader_worker_replays_the_epoch_set_before_iterating(shards):
    # Workers are fresh processes (not forks: Ray / OpenMP threads) that unpickle the dataset at iter().
    folder, _ = shards
    ds = ShardClipDataset(
        shard_urls(str(folder), ["train"]), ClipSpec(frames=2, crop_size=8), rank=0, world_size=1, seed=5
    )
    loader = make_loader(ds, batch_size=3, num_workers=1)
    assert loader.multiprocessing_context.get_start_method() != "fork"
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        in_process = [s["key"] for s in ds.samples(0, 1, 0, 1)]
        assert [k for batch in loader for k in batch["key"]] == in_process, epoch


def test_epoch_samples_gives_fixed_length_epochs(shards):
    folder, _ = shards
    ds = ShardClipDataset(shard_urls(str(folder), ["train"]), ClipSpec(frames=2, crop_size=8), epoch_samples=8)
    per_worker = [len(list(ds.samples(r, 2, w, 2))) for r in range(2) for w in range(2)]
    assert per_worker == [2, 2, 2, 2]


def test_selection_by_split(tmp_path):
    keys = write_tiny_shards(tmp_path, num_shards=2, videos_per_shard=3, test_every=3)
    urls = shard_urls(str(tmp_path), ["train"])
    spec = ClipSpec(frames=2, crop_size=8, train=False)
    test_keys = [s["key"] for s in all_samples(ShardClipDataset(urls, spec, split="1", split_name="test"))]
    assert sorted(test_keys) == sorted(keys[::3])
    assert len(all_samples(ShardClipDataset(urls, spec, split="2", split_name="train"))) == len(keys)


def test_bad_samples_are_skipped_and_counted(tmp_path):
    import webdataset as wds

    broken = video_sample(0, 100, 5, SIZE, {"1": "train"})
    broken[frame_member(RGB, 2)] = b"not a jpeg"
    missing = video_sample(1, 101, 5, SIZE, {"1": "train"})
    del missing[frame_member(FLOW_X, 1)]
    bad_json = video_sample(2, 102, 5, SIZE, {"1": "train"})
    bad_json["json"] = b"{"
    good = [video_sample(c, 200 + c, 5, SIZE, {"1": "train"}) for c in range(2)]
    with wds.TarWriter(str(tmp_path / "train-00000-000.tar")) as w:
        for s in [good[0], broken, missing, bad_json, good[1]]:
            w.write(s)
    (tmp_path / "train.shards.txt").write_text("train-00000-000.tar\nmissing-shard.tar\n")
    spec = ClipSpec(modalities=("rgb", "flow"), frames=4, crop_size=SIZE, flip=False)
    ds = ShardClipDataset(shard_urls(str(tmp_path), ["train"]), spec, shuffle=False)
    loader = make_loader(ds, batch_size=1, num_workers=0)
    tally = BadSampleTally()
    keys = []
    for batch in loader:
        tally.update(batch)
        keys += batch["key"]
    assert keys == [good[0]["__key__"], good[1]["__key__"]]
    assert tally.total == 3  # the unreadable shard comes after the last good sample: counted in the log only


def test_test_time_multi_clip_multi_crop(shards):
    folder, keys = shards
    spec = ClipSpec(modalities=("rgb", "flow"), frames=3, crop_size=10, train=False, test_clips=3, test_crops=10)
    samples = all_samples(ShardClipDataset(shard_urls(str(folder), ["train"]), spec, split_name=None))
    per_video = Counter(s["key"] for s in samples)
    assert set(per_video) == set(keys) and set(per_video.values()) == {30}
    first = [s for s in samples if s["key"] == keys[0]]
    assert sorted(s["clip_index"] for s in first) == list(range(30))
    starts = sorted({frame_of_flow_y(s["flow"], 0) for s in first})
    assert starts == [0, 2, 3]  # uniform starts over 0..N-1-T = 0..3


def test_two_views_share_frames_with_independent_crops(shards):
    folder, _ = shards
    spec = ClipSpec(frames=3, crop_size=SIZE, flip=True, views=2)
    flips_differ = 0
    for s in all_samples(ShardClipDataset(shard_urls(str(folder), ["train"]), spec, seed=5)):
        means1, means2 = s["rgb"].mean(axis=(0, 2, 3)), s["rgb2"].mean(axis=(0, 2, 3))
        np.testing.assert_allclose(means1, means2, atol=1)  # same frames (a flip keeps the mean)
        flips_differ += bool(
            (s["rgb"][0, 0, 0, 0] > s["rgb"][0, 0, 0, -1]) != (s["rgb2"][0, 0, 0, 0] > s["rgb2"][0, 0, 0, -1])
        )
    assert flips_differ > 0


def test_segments_one_frame_per_segment():
    rng = random.Random(0)
    for _ in range(50):
        idx = segment_indices(20, 4, rng)
        assert [i // 5 for i in idx] == [0, 1, 2, 3]
    assert segment_indices(20, 4, None) == [2, 7, 12, 17]
    assert segment_indices(3, 5, None) == sorted(segment_indices(3, 5, None)) and max(segment_indices(3, 5, None)) <= 2


def test_normalization_constants(shards):
    folder, _ = shards
    spec = ClipSpec(modalities=("rgb", "flow"), frames=2, crop_size=SIZE, flip=False, train=False)
    s = all_samples(ShardClipDataset(shard_urls(str(folder), ["train"]), spec, split_name=None))[0]
    i = frame_of_flow_y(s["flow"], 0)
    assert s["rgb"][:, 0, 0, 0] == pytest.approx(np.float32(rgb_level(i)) - np.float32(ACTIVITYNET_MEAN_RGB), abs=1)
    assert s["flow"][1, 0, 0, 0] == pytest.approx(flow_y_level(i) - 127.5, abs=1)


def test_bad_configuration_fails_early(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.shards.txt"):
        shard_urls(str(tmp_path), ["train"])
    with pytest.raises(ValueError, match="crop"):
        ClipSpec(crop="zoom")
    write_tiny_shards(tmp_path, num_shards=1, videos_per_shard=1)
    ds = ShardClipDataset(shard_urls(str(tmp_path), ["train"]), ClipSpec(), rank=0, world_size=2)
    with pytest.raises(ValueError, match="1 shards for 2 ranks"):
        make_loader(ds, batch_size=1, num_workers=0)
