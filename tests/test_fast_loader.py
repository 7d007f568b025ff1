"""The loader's speed work: the tar reader, uint8 clips normalised on the device, the reduced DCT decode,
persistent workers and K clips per video read."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from tests.tiny_shards import write_tiny_shards  # noqa: E402
from training.data import ACTIVITYNET_MEAN_RGB, ClipSpec, CropBox, ShardClipDataset, make_loader, shard_urls  # noqa: E402
from training.jpeg import decode_crop, reduction  # noqa: E402
from training.normalize import model_input, normalize_clip  # noqa: E402
from training.tario import TarError, tar_members, tar_samples  # noqa: E402


def _tar(members: dict[str, bytes], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1.5  # a float mtime: pax writes a record per member
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("a_dir")
        folder.type = tarfile.DIRTYPE  # not a regular file: never a member of a sample
        tar.addfile(folder)
    return buf.getvalue()


@pytest.fixture(params=["c_scanner", "python"])
def reader(request, monkeypatch):
    """Both tar readers: the C scanner (training/_tarscan.c), in chunks small enough that members straddle
    them, and the pure-Python one it falls back to."""
    from training import tario

    tario.tar_scanner.cache_clear()
    if request.param == "python":
        monkeypatch.setenv("FLOWPREP_NATIVE_TAR", "0")
    else:
        monkeypatch.setattr(tario, "CHUNK", 700)
        monkeypatch.setattr(tario, "SCAN_BATCH", 2)  # the out array fills: scanning resumes without a read
        if tario.tar_scanner() is None:
            pytest.skip("no C compiler: the tar scanner cannot be built here")
    yield request.param
    tario.tar_scanner.cache_clear()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_reader_matches_tarfile(fmt, reader):
    long_dir = "d" * 120  # > 100 chars: ustar prefix, pax path or GNU long name, by format
    members = {
        "k1.json": b"{}",
        f"{long_dir}/k2.rgb.000000.jpg": bytes(range(256)) * 3,
        "k3.cls": b"",
        "__index__": b"meta",
        "k4.flow_x.000000.jpg": bytes(range(7)) * 500,  # longer than a chunk: read whole
        "k4.json": b"[1]",
    }
    data = _tar(members, fmt)
    want = [
        (m.name, tarfile.open(fileobj=io.BytesIO(data)).extractfile(m.name).read())
        for m in tarfile.open(fileobj=io.BytesIO(data))
        if m.isfile() and m.name != "__index__"
    ]
    assert list(tar_members(io.BytesIO(data), "mem")) == want


def test_members_kept_stay_intact_while_read_buffers_are_reused(reader, monkeypatch):
    """The C reader's members view its chunk buffers, and a buffer nothing views any more is reused: the
    members a consumer keeps (every third here) must read the same after many more chunks."""
    from training import tario

    monkeypatch.setattr(tario, "CHUNK", 4096)  # a few members a chunk, and every buffer small enough to pool
    members = {f"v{i:03d}.flow_x.{i:06d}.jpg": bytes([i % 251]) * (300 + 37 * i) for i in range(60)}
    data = _tar(members, tarfile.PAX_FORMAT)
    kept = []
    for i, (name, payload) in enumerate(tar_members(io.BytesIO(data), "mem")):
        assert bytes(payload) == members[name]
        if i % 3 == 0:
            kept.append((name, payload))
    assert len(kept) == 20 and all(bytes(payload) == members[name] for name, payload in kept)


def test_the_c_reader_agrees_with_the_python_reader_on_damaged_tars(monkeypatch):
    """Random damage to headers and pax records (sizes, digits, checksums, truncation): the C scanner
    yields what the Python reader yields and fails where and as it fails (it hands over whatever it cannot
    vouch for), and never reads outside its buffer (a crash would end the test run)."""
    import random

    from training import tario

    tario.tar_scanner.cache_clear()
    if tario.tar_scanner() is None:
        pytest.skip("no C compiler: the tar scanner cannot be built here")
    monkeypatch.setattr(tario, "CHUNK", 1000)
    members = {f"v{i}.rgb.{i:06d}.jpg": bytes([i]) * (100 + 300 * i) for i in range(6)}
    clean = _tar(members, tarfile.PAX_FORMAT) + _tar({"x" * 150 + ".json": b"{}"}, tarfile.GNU_FORMAT)
    headers = [i for i in range(0, len(clean), 512) if clean[i + 257 : i + 262] == b"ustar"]

    def read(data: bytes, native: bool):
        monkeypatch.setenv("FLOWPREP_NATIVE_TAR", "1" if native else "0")
        tario.tar_scanner.cache_clear()
        got = []
        try:
            for name, payload in tar_members(io.BytesIO(data), "f.tar"):
                got.append((name, bytes(payload)))
        except Exception as exn:  # noqa: BLE001 - the error itself is compared
            return got, repr(exn)
        return got, None

    rng = random.Random(0)
    for _ in range(150):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 3)):
            at = rng.choice(headers) + rng.choice([124, 130, 135, 148, 156, 512, 515, 520, rng.randrange(512)])
            data[at] = rng.choice(b"0123456789 \x00\x80\xffxLg=")
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        assert read(bytes(data), native=True) == read(bytes(data), native=False)
    tario.tar_scanner.cache_clear()


def test_corrupt_or_truncated_tar_is_reported_once_and_the_members_before_stand(reader):
    data = bytearray(_tar({"a.json": b"{}", "b.json": b"[]" * 400}, tarfile.PAX_FORMAT))
    errors = []
    truncated = list(tar_samples([{"url": "t.tar", "stream": io.BytesIO(bytes(data[:3000]))}], errors.append))
    assert truncated == [{"__key__": "a", "__url__": "t.tar", "json": b"{}"}] and len(errors) == 1
    assert "t.tar" in str(errors[0]) and "truncated" in str(errors[0])
    data[148] ^= 0x7  # checksum of the first header
    with pytest.raises(TarError, match="checksum"):
        list(tar_members(io.BytesIO(bytes(data)), "c.tar"))
    second = data.index(b"b.json") - 1024  # the pax header before b.json's own header
    data[148] ^= 0x7
    data[second + 148] ^= 0x7
    got = []
    with pytest.raises(TarError, match="checksum"):
        got.extend(tar_members(io.BytesIO(bytes(data)), "c.tar"))
    assert [name for name, _ in got] == ["a.json"]


def test_members_group_into_samples_like_webdataset(reader):
    from webdataset.tariterators import group_by_keys, tar_file_expander

    names = ["a/v1.json", "a/v1.RGB.000000.jpg", "a/v1.cls", "noext", "a/v2.json", "a/v2.cls"]
    names += ["d.x/noext", "d/.hidden", "d/.h.json", "x.y/z.cls", "e/f."]  # shapes the fast split hands to _KEY
    shards = [_tar({n: n.encode() for n in names}, tarfile.PAX_FORMAT), _tar({"b/v3.json": b"3"}, tarfile.GNU_FORMAT)]

    def streams():
        return [{"url": f"s{i}", "stream": io.BytesIO(data)} for i, data in enumerate(shards)]

    errors = []
    want = list(group_by_keys(tar_file_expander(streams())))
    assert [
        {k: bytes(v) if k[:2] != "__" else v for k, v in s.items()} for s in tar_samples(streams(), errors.append)
    ] == want
    assert len(want) == 6 and not errors  # a/v1, a/v2, "d/" (.hidden and .h.json), x.y/z, e/f and b/v3
    dup = _tar({"a/v1.json": b"1", "a/v1.cls": b"2", "a/v1.JSON": b"3", "a/v2.json": b"4"}, tarfile.PAX_FORMAT)
    got = list(tar_samples([{"url": "d", "stream": io.BytesIO(dup)}], errors.append))
    assert [s["__key__"] for s in got] == ["a/v1", "a/v2"] and len(errors) == 1 and "duplicate" in str(errors[0])
    assert bytes(got[0]["json"]) == b"1"


@pytest.fixture
def shards(tmp_path):
    write_tiny_shards(tmp_path, num_shards=2, videos_per_shard=3, num_frames=7, size=16)
    return shard_urls(str(tmp_path), ["train"])


def test_clips_are_uint8_and_normalise_on_the_device_to_the_old_float_values(shards):
    ds = ShardClipDataset(shards, ClipSpec(modalities=("rgb", "flow"), frames=3, crop_size=12), seed=2)
    sample = next(ds.samples(0, 1, 0, 1))
    rgb, flow = sample["rgb"], sample["flow"]
    assert rgb.dtype == flow.dtype == np.uint8 and rgb.shape == (3, 3, 12, 12) and flow.shape == (2, 3, 12, 12)
    # the old loader's float32 arithmetic, on the CPU: the device path must give the same numbers, exactly
    old_rgb = rgb.transpose(1, 2, 3, 0).astype(np.float32) - np.float32(ACTIVITYNET_MEAN_RGB)
    assert np.array_equal(normalize_clip(torch.from_numpy(rgb), "rgb").numpy(), old_rgb.transpose(3, 0, 1, 2))
    assert np.array_equal(normalize_clip(torch.from_numpy(flow), "flow").numpy(), flow.astype(np.float32) - 127.5)
    batch = {"rgb2": torch.from_numpy(rgb)[None], "x": torch.ones(2)}
    assert model_input(batch, "rgb2", torch.device("cpu")).dtype == torch.float32
    assert model_input(batch, "x", torch.device("cpu")) is batch["x"]  # float input: already normalised


def _texture(size: int, channels: int) -> np.ndarray:
    small = np.random.default_rng(0).integers(0, 256, (size // 16, size // 16, channels), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)


@pytest.mark.parametrize("gray", [False, True])
def test_reduced_decode_stays_close_to_the_exact_decode(gray):
    img = _texture(256, 1 if gray else 3)
    jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    crops = [CropBox(0, 0, 256, 256), CropBox(37, 11, 181, 181, flip=True), CropBox(64, 100, 128, 128)]
    assert [reduction(c.height, c.width, 56) for c in crops] == [4, 2, 2]
    assert reduction(111, 200, 56) == 1  # the box must allow the factor on both sides
    for crop in crops:
        exact = decode_crop(jpeg, crop, 56, gray).astype(np.float32)
        reduced = decode_crop(jpeg, crop, 56, gray, reduced=True).astype(np.float32)
        assert reduced.shape == exact.shape
        diff = np.abs(reduced - exact)  # measured: mean <= 2.2, max <= 14 levels (256 -> 56 aliases in both)
        assert diff.mean() < 3.0 and diff.max() < 32, (crop, diff.mean(), diff.max())
    small = CropBox(10, 10, 100, 100)  # no reduction possible: the reduced path is the exact one
    assert np.array_equal(decode_crop(jpeg, small, 56, gray, reduced=True), decode_crop(jpeg, small, 56, gray))


def test_k_clips_per_video_read_once(shards):
    one = ShardClipDataset(shards, ClipSpec(frames=2, crop_size=8), seed=4)
    four = ShardClipDataset(shards, ClipSpec(frames=2, crop_size=8, clips_per_video=4), seed=4)
    keys_one = [s["key"] for s in one.samples(0, 1, 0, 1)]
    keys_four = [s["key"] for s in four.samples(0, 1, 0, 1)]
    runs = [keys_four[i : i + 4] for i in range(0, len(keys_four), 4)]
    assert all(len(set(run)) == 1 for run in runs)  # one read of a video gives its 4 clips together
    assert sorted(run[0] for run in runs) == sorted(keys_one)  # every video once, as with 1 clip
    assert [s["clip_index"] for s in four.samples(0, 1, 0, 1)][:4] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        ClipSpec(clips_per_video=0)


def test_workers_persist_across_epochs_and_follow_set_epoch(shards):
    ds = ShardClipDataset(shards, ClipSpec(frames=2, crop_size=8), rank=0, world_size=1, seed=5)
    loader = make_loader(ds, batch_size=2, num_workers=1)
    pids = []
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        got = [k for batch in loader for k in batch["key"]]
        assert got == [s["key"] for s in ds.samples(0, 1, 0, 1)], epoch
        pids.append(tuple(w.pid for w in loader._iterator._workers))
    assert pids[0] == pids[1] == pids[2]


def _jpeg(img: np.ndarray, sampling: int | None = None) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    if sampling is not None:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    return cv2.imencode(".jpg", img, params)[1].tobytes()


@pytest.mark.parametrize("channels, sampling", [(3, None), (3, 0x111111), (3, 0x211111), (1, None)])
def test_partial_decode_equals_the_whole_frame_sliced(channels, sampling):
    from training.jpeg import decode_jpeg
    from training.jpeg_native import crop_decoder, decode_box

    if crop_decoder() is None:
        pytest.skip("no C compiler or libjpeg-turbo headers here: the loader decodes whole frames (same pixels)")
    img = _texture(200, channels)[:, :, 0] if channels == 1 else _texture(200, 3)  # 200: not a multiple of 16
    data = _jpeg(img[:147], sampling if channels == 3 else None)  # 147 x 200: partial iMCUs at the edges
    whole = decode_jpeg(data, gray=channels == 1)
    rng = np.random.default_rng(1)
    boxes = [(0, 0, 147, 200), (146, 199, 1, 1), (0, 190, 40, 10), (130, 0, 17, 33)]
    boxes += [
        (int(y), int(x), int(h), int(w))
        for y, x, h, w in zip(
            rng.integers(0, 100, 40), rng.integers(0, 150, 40), rng.integers(1, 47, 40), rng.integers(1, 50, 40)
        )
    ]
    for y0, x0, h, w in boxes:
        assert np.array_equal(decode_box(data, channels == 1, y0, x0, h, w), whole[y0 : y0 + h, x0 : x0 + w]), (
            y0,
            x0,
            h,
            w,
        )
    with pytest.raises(ValueError, match="corrupt JPEG"):
        decode_box(data[:20] + b"\x00" * 50, channels == 1, 0, 0, 8, 8)
    with pytest.raises(ValueError, match="outside"):
        decode_box(data, channels == 1, 140, 0, 8, 8)


def test_without_the_native_helper_the_loader_gives_the_same_clips(tmp_path, monkeypatch):
    from training import jpeg_native

    write_tiny_shards(tmp_path, num_shards=1, videos_per_shard=3, num_frames=7, size=32)
    urls = shard_urls(str(tmp_path), ["train"])
    spec = ClipSpec(modalities=("rgb", "flow"), frames=3, crop_size=16)
    native = list(ShardClipDataset(urls, spec, seed=1).samples(0, 1, 0, 1))
    monkeypatch.setenv("FLOWPREP_NATIVE_JPEG", "0")
    jpeg_native.crop_decoder.cache_clear()
    try:
        assert jpeg_native.crop_decoder() is None
        opencv = list(ShardClipDataset(urls, spec, seed=1).samples(0, 1, 0, 1))
    finally:
        jpeg_native.crop_decoder.cache_clear()
    for a, b in zip(native, opencv):
        assert np.array_equal(a["rgb"], b["rgb"]) and np.array_equal(a["flow"], b["flow"])


def test_loader_benchmark_rows_run_and_compare_the_same_clips(tmp_path):
    """benchmarks/bench_loader.py's in-process rows (the old loader's stand-in included) all stream clips."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_loader
    finally:
        sys.path.pop(0)
    bench_loader.write_synthetic_shards(tmp_path, videos=4, frames=18, size=128)
    rows = bench_loader.loader_rows("tiny", shard_urls(str(tmp_path), ["train"]), repeats=1, epoch_samples=4)
    assert len(rows) == 14 and all(rate > 0 for *_, rate, _ in rows)
    assert sum(ratio.endswith("x") for *_, ratio in rows) == 9  # every "now" row against its "before" row
