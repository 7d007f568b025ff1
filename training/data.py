"""Streaming loader: flowprep shards -> clips `uint8 (C,T,H,W)` for 3D / 2D nets, RGB and flow aligned
(normalised on the device: training.normalize).

The pipeline is a chain of small generator stages (webdataset style), built per DataLoader worker:

    shard urls -> shuffle shards (seed, epoch) -> split by node -> split by worker -> open (fsspec)
    -> tar members -> group by video key (training.tario) -> select split -> pick clip frames (keep only those bytes)
    -> shuffle buffer -> decode the crop box + flip (training.jpeg; or bytes for --decode gpu) -> samples

("pick clip frames" is `plan_clips`: which frames and crop boxes, a pure function of the video's key.)

Only the JPEGs of the sampled frames are decoded: the clip indices are drawn from the metadata before
any image is touched, and the shuffle buffer holds only the bytes of those frames, not whole videos.

Clip alignment (the shard contract, `flowprep.format`): flow t is frame t -> t+1 and a video of N
frames has N-1 flows, so RGB frames t..t+T-1 pair with flows t..t+T-1 and a clip start satisfies
start + T <= N - 1 whenever flow is read (teacher, student, fusion); RGB-only clips may use all N.
A video shorter than the clip (N-1 < T) is looped, as 3D-ResNets' `LoopPadding` does: indices
0, 1, .., n-1, 0, 1, .. so every clip has exactly T frames.

Epochs: with `epoch_samples=0` (default) an epoch is one pass: every selected video yields exactly
once across all nodes and workers (shards are dealt out rank-major, then worker-major; the loop
handles ranks that get fewer samples with DDP's Join). With `epoch_samples>0` shards are drawn with
replacement and every worker stops after its share (fixed-length epochs for huge or uneven data).
What a video receives (clip start, crop box, flip, the second view) is a pure function of (seed, epoch,
video key, view): `plan_clips` returns it as `ClipPlan`s before any decode, so it does not depend on the
shard layout, the rank, the worker or the position in the stream. The order (shard order, shuffle
buffer) has its own streams, seeded from (seed, epoch) and (seed, epoch, rank, worker). An epoch
replays exactly: this is what makes checkpoint resume exact.

A bad sample (missing member, corrupt JPEG or json) is skipped, logged and counted, never fatal: each
yielded sample carries `bad_so_far` (its worker's running count) and `worker`, and `BadSampleTally`
sums them in the training process.

Over 300 lines on purpose: the stages are one pipeline, read top to bottom in the order they run, and
each is a small function the tests call on plain lists.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch.utils.data

from flowprep.format import (
    FLOW_X,
    FLOW_Y,
    QUANT_LEVELS,
    RGB,
    SHARD_LIST_SUFFIX,
    clip_member,
    flip_flow_x_levels,
    flow_layout,
    flow_plane_levels,
    frame_member,
)

from .config import Crop
from .gpu_decode import JpegClip, collate_clips
from .jpeg import DECODES, decode_crop, decode_jpeg, resize_box  # noqa: F401 - decode_jpeg: the benchmark's baseline
from .tario import tar_samples

log = logging.getLogger(__name__)

# MARS / 3D-ResNets subtract the ActivityNet mean (pixel values 0..255) and do not divide by a std.
ACTIVITYNET_MEAN_RGB = (114.7748, 107.7354, 99.4750)
# Quantized flow is centred at 127.5 (zero flow), paper 001 section 4.2.2.
FLOW_CENTER_LEVEL = QUANT_LEVELS / 2.0
# 3D-ResNets' multi-scale crop: side = short side * scale.
MULTISCALE_SCALES = (1.0, 0.5**0.25, 0.5**0.5, 0.5**0.75, 0.5)
CROP_MODES = tuple(mode.value for mode in Crop)  # the one Crop type: config.Crop
SAMPLINGS = ("consecutive", "segments")
ALL_CLIPS = 0  # test_clips value: the sliding-window protocol over the whole video
MODALITIES = ("rgb", "flow")


@dataclass(frozen=True)
class ClipSpec:
    """What one sample of the loader holds; `train` picks random vs deterministic test sampling."""

    modalities: tuple[str, ...] = ("rgb",)  # ("rgb",), ("flow",) or ("rgb", "flow") (same frames/crop/flip)
    frames: int = 16  # T: consecutive frames (3D nets) or segments (2D nets)
    sampling: str = "consecutive"
    train: bool = True
    crop_size: int = 112  # output side, px
    crop: str = Crop.RANDOM  # training's crop mode (a config.Crop); at test it sets the boxes' scale
    flip: bool = True  # random horizontal flip at train time (negates flow x)
    test_clips: int = 1  # uniform clips per video at test time; 0 (ALL_CLIPS) = every window of T frames
    test_crops: int = 1  # 1 centre; 3 short-side squares, ends + centre (TSN/STM); 5 corners + centre; 10 = 5 + flips
    views: int = 1  # 2: a second, independently cropped/flipped view of the same frames (twins loss)
    clips_per_video: int = 1  # train: K clips (own frames, crop, flip) from one read of a video
    decode: str = "cpu"  # training.jpeg.DECODES: cpu (exact) | cpu_reduced (DCT scaling) | gpu (bytes out)

    def __post_init__(self):
        bad = [m for m in self.modalities if m not in MODALITIES]
        if not self.modalities or bad:
            raise ValueError(f"modalities {self.modalities!r}: expected a non-empty subset of {MODALITIES}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling {self.sampling!r}: expected one of {SAMPLINGS}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop {self.crop!r}: expected one of {CROP_MODES}")
        if self.test_crops not in (1, 3, 5, 10):
            raise ValueError(f"test_crops {self.test_crops}: expected 1, 3, 5 or 10")
        if self.decode not in DECODES:
            raise ValueError(f"decode {self.decode!r}: expected one of {DECODES}")
        if (
            self.frames < 1
            or self.crop_size < 1
            or self.test_clips < 0
            or self.views not in (1, 2)
            or self.clips_per_video < 1
        ):
            raise ValueError(f"bad clip spec {self!r}")

    @property
    def needs_flow(self) -> bool:
        return "flow" in self.modalities

    @property
    def protocol(self) -> str:
        """The test protocol in words, for results.json."""
        crops = {
            1: "1 centre crop",
            3: "3 crops along the long side",
            5: "5 crops (corners + centre)",
            10: "10 crops (5 + flips)",
        }[self.test_crops]
        scale = "short-side squares resized" if self.crop == "multiscale_corner" else f"{self.crop_size} px native"
        if self.test_clips == ALL_CLIPS:
            clips = f"every {self.frames}-frame window, sliding by {self.frames} (3D-ResNets / MARS)"
        elif self.sampling == "segments":
            clips = f"{self.test_clips} clips of {self.frames} segments (TSN / STM)"
        else:
            clips = f"{self.test_clips} uniform clips of {self.frames} frames"
        return f"{clips} x {crops}, {scale}, video score = mean softmax"


# ---- clip indices ---------------------------------------------------------------------------------


def usable_frames(num_frames: int, needs_flow: bool) -> int:
    """Frames a clip may start from and cover: N-1 when flow is read (N-1 flows), else N."""
    return num_frames - 1 if needs_flow else num_frames


def loop_pad(indices: list[int], length: int) -> list[int]:
    """3D-ResNets' LoopPadding: repeat `indices` until there are `length` of them."""
    return [indices[i % len(indices)] for i in range(length)]


def consecutive_indices(n_usable: int, frames: int, start: int) -> list[int]:
    """Frames start..start+T-1, looped when the video is shorter than the clip."""
    if n_usable >= frames:
        return list(range(start, start + frames))
    return loop_pad(list(range(n_usable)), frames)


def segment_indices(n_usable: int, segments: int, rng: random.Random | None) -> list[int]:
    """TSN: one frame per equal segment; random within it (train) or its centre (rng=None, test)."""
    bounds = np.linspace(0, n_usable, segments + 1)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo_i, hi_i = int(lo), max(int(lo) + 1, int(np.ceil(hi)))  # at least one frame per segment
        out.append(rng.randrange(lo_i, hi_i) if rng else (lo_i + hi_i - 1) // 2)
    return [min(i, n_usable - 1) for i in out]


def segment_test_indices(n_usable: int, segments: int, clips: int) -> list[list[int]]:
    """`clips` deterministic TSN clips for multi-clip testing (the papers draw 10 at random): clip k
    takes, in every segment, the frame at fraction (k + 0.5) / clips of it; 1 clip = the centres."""
    if clips == 1:
        return [segment_indices(n_usable, segments, None)]
    bounds = np.linspace(0, n_usable, segments + 1)
    spans = [(int(lo), max(int(lo) + 1, int(np.ceil(hi)))) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return [[min(lo + int((k + 0.5) * (hi - lo) / clips), n_usable - 1) for lo, hi in spans] for k in range(clips)]


def clip_indices(num_frames: int, spec: ClipSpec, rng: random.Random | None = None) -> list[list[int]]:
    """Frame indices of every clip to read from a video of `num_frames` RGB frames (1 clip at train, drawn
    from `rng`; the test clips are deterministic)."""
    n = usable_frames(num_frames, spec.needs_flow)
    if n < 1:
        raise ValueError(f"video has {num_frames} frames: too few for {spec.modalities}")
    if spec.train and rng is None:
        raise ValueError("a training clip needs an rng")
    if spec.sampling == "segments":
        if spec.test_clips == ALL_CLIPS and not spec.train:
            raise ValueError("test_clips 0 (every window) is for consecutive clips; segments take --test-clips N")
        if spec.train:
            return [segment_indices(n, spec.frames, rng) for _ in range(spec.clips_per_video)]
        return segment_test_indices(n, spec.frames, spec.test_clips)
    last_start = max(n - spec.frames, 0)
    if spec.train:
        return [consecutive_indices(n, spec.frames, rng.randint(0, last_start)) for _ in range(spec.clips_per_video)]
    if spec.test_clips == ALL_CLIPS:  # 3D-ResNets / MARS: windows of T frames sliding by T, the tail looped
        return [loop_pad(list(range(s, min(s + spec.frames, n))), spec.frames) for s in range(0, n, spec.frames)]
    if spec.test_clips == 1:
        return [consecutive_indices(n, spec.frames, last_start // 2)]
    starts = np.linspace(0, last_start, spec.test_clips).round().astype(int)
    return [consecutive_indices(n, spec.frames, int(s)) for s in starts]


# ---- crops ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropBox:
    """A square-or-not box (px, in the source frame) resized to the output size, then maybe flipped."""

    y0: int
    x0: int
    height: int
    width: int
    flip: bool = False


def train_crop(height: int, width: int, spec: ClipSpec, rng: random.Random) -> CropBox:
    size = spec.crop_size
    if spec.crop == "multiscale_corner":
        side = int(min(height, width) * rng.choice(MULTISCALE_SCALES))
        y0, x0 = rng.choice(_corner_positions(height, width, side, side))
        box = CropBox(y0, x0, side, side)
    elif spec.crop == "random":
        ch, cw = min(size, height), min(size, width)
        box = CropBox(rng.randint(0, height - ch), rng.randint(0, width - cw), ch, cw)
    else:
        box = center_crop(height, width, size)
    return replace(box, flip=spec.flip and rng.random() < 0.5)


def center_crop(height: int, width: int, size: int) -> CropBox:
    ch, cw = min(size, height), min(size, width)
    return CropBox((height - ch) // 2, (width - cw) // 2, ch, cw)


def _corner_positions(height: int, width: int, ch: int, cw: int) -> list[tuple[int, int]]:
    """(y0, x0) of the centre and the four corners, 3D-ResNets' MultiScaleCornerCrop order."""
    return [
        ((height - ch) // 2, (width - cw) // 2),
        (0, 0),
        (0, width - cw),
        (height - ch, 0),
        (height - ch, width - cw),
    ]


def test_box_side(height: int, width: int, spec: ClipSpec) -> tuple[int, int]:
    """(height, width) px of a test box at the scale training saw: `multiscale_corner` trains on squares of
    the short side x {1 .. 0.5} resized to crop_size, and tests, as 3D-ResNets / MARS do (Scale + CenterCrop),
    on the short-side square resized; `random` and `center` cut crop_size px natively, so the test does too."""
    if spec.crop == "multiscale_corner":
        side = min(height, width)
        return side, side
    return min(spec.crop_size, height), min(spec.crop_size, width)


def test_crops(height: int, width: int, spec: ClipSpec) -> list[CropBox]:
    """1 = centre; 3 = both ends of the long side + centre (TSN/TSM/STM); 5 = corners + centre; 10 = 5 + flips.
    Every box has the side of `test_box_side`, so the test sees the scale training saw."""
    ch, cw = test_box_side(height, width, spec)
    if spec.test_crops == 1:
        return [CropBox((height - ch) // 2, (width - cw) // 2, ch, cw)]
    if spec.test_crops == 3:
        if height > width:
            return [CropBox(y, (width - cw) // 2, ch, cw) for y in (0, (height - ch) // 2, height - ch)]
        return [CropBox((height - ch) // 2, x, ch, cw) for x in (0, (width - cw) // 2, width - cw)]
    crops = [CropBox(y, x, ch, cw) for y, x in _corner_positions(height, width, ch, cw)]
    return crops + [replace(c, flip=True) for c in crops] if spec.test_crops == 10 else crops


# ---- clip plans: which frames and boxes a clip gets, decided before any decode -------------------------


@dataclass(frozen=True)
class ClipPlan:
    """One sample of a video: its frame indices and one crop box (+ flip) per view; `index` numbers it
    among the video's test clips x crops (0 at train time). A pure value the decoder consumes."""

    frames: tuple[int, ...]
    boxes: tuple[CropBox, ...]
    index: int = 0


def video_rng(seed: int, epoch: int, key: str, what: str) -> random.Random:
    """The generator of one video's `what` ("frames", "view0", "view1") in one epoch: a function of
    (seed, epoch, key, what) alone, so a video gets the same clip whatever its shard, rank or worker.
    A str seed is hashed with sha512, identical in every process (hash() of a str is not)."""
    return random.Random(f"clip-{seed}-{epoch}-{key}-{what}")


def plan_clips(
    key: str, num_frames: int, height: int, width: int, spec: ClipSpec, seed: int = 0, epoch: int = 0
) -> list[ClipPlan]:
    """The clips of one video: clips_per_video random plans at train time (drawn per video, see
    `video_rng`), the deterministic test_clips x test_crops grid at test time. `num_frames` counts clip
    positions: frames, or with flow the flows + 1 (`pick_clips`)."""
    if spec.train:  # --clips-per-video K: K plans, clip k > 0 drawing its boxes from streams of its own
        clips = clip_indices(num_frames, spec, video_rng(seed, epoch, key, "frames"))
        return [
            ClipPlan(
                tuple(frames),
                tuple(
                    train_crop(
                        height, width, spec, video_rng(seed, epoch, key, f"view{v}" if k == 0 else f"clip{k}-view{v}")
                    )
                    for v in range(spec.views)
                ),
                k,
            )
            for k, frames in enumerate(clips)
        ]
    crops = test_crops(height, width, spec)
    return [
        ClipPlan(tuple(frames), (crop,), c * len(crops) + k)
        for c, frames in enumerate(clip_indices(num_frames, spec))
        for k, crop in enumerate(crops)
    ]


# ---- decode + augment (pixels: training.jpeg; normalisation: on the device, training.normalize) --------


def rgb_clip(frames_jpeg: list[bytes], crop: CropBox, size: int, reduced: bool = False) -> np.ndarray:
    """uint8 (3,T,S,S): RGB pixels 0..255 of the crop (the ActivityNet mean is subtracted on the device)."""
    clip = np.stack([decode_crop(b, crop, size, gray=False, reduced=reduced) for b in frames_jpeg])  # (T,S,S,3)
    return np.ascontiguousarray(clip.transpose(3, 0, 1, 2))


def flow_decoder(meta: dict) -> Callable[[bytes], np.ndarray] | None:
    """None for quantized JPEG flow; for png16 / npz, bytes -> float32 levels (flowprep.format's inverse)."""
    if flow_layout(meta).format == "jpeg":
        return None
    return lambda data: flow_plane_levels(data, meta)


def flow_clip(
    flow_x_jpeg: list[bytes],
    flow_y_jpeg: list[bytes],
    crop: CropBox,
    size: int,
    reduced: bool = False,
    decode: Callable[[bytes], np.ndarray] | None = None,
) -> np.ndarray:
    """uint8 (2,T,S,S): quantized flow levels (centred on the device); a flip negates x on the levels (255-q).
    Lossless flow (`decode` from `flow_decoder`) cannot travel as uint8 without rounding: it leaves as
    float32 levels minus 127.5, already centred (training.normalize passes float clips through)."""
    if decode is None:
        levels_x = np.stack([decode_crop(b, crop, size, gray=True, reduced=reduced) for b in flow_x_jpeg])
        levels_y = np.stack([decode_crop(b, crop, size, gray=True, reduced=reduced) for b in flow_y_jpeg])
        if crop.flip:
            levels_x = flip_flow_x_levels(levels_x)  # mirrored image: x motion reverses (uint8 stays uint8)
        return np.stack([levels_x, levels_y])

    def plane(data: bytes) -> np.ndarray:
        out = resize_box(decode(data), crop.y0, crop.x0, crop.height, crop.width, size)
        return out[:, ::-1] if crop.flip else out

    levels_x, levels_y = np.stack([plane(b) for b in flow_x_jpeg]), np.stack([plane(b) for b in flow_y_jpeg])
    if crop.flip:
        levels_x = flip_flow_x_levels(levels_x)
    return np.ascontiguousarray(np.stack([levels_x, levels_y]).astype(np.float32) - np.float32(FLOW_CENTER_LEVEL))


def jpeg_clip(kind: str, jpegs: list[bytes], crop: CropBox, size: int) -> JpegClip:
    """--decode gpu: the clip's bytes and box, decoded on the device (training.gpu_decode)."""
    return JpegClip(kind, tuple(jpegs), (crop.y0, crop.x0, crop.height, crop.width), crop.flip, size)


# ---- pipeline stages (generators over dicts) ------------------------------------------------------


def shard_urls(data: str, partitions: Iterable[str]) -> list[str]:
    """Shard urls of a flowprep output folder (local or fsspec url) from its '<partition>.shards.txt'."""
    import fsspec

    base = data.rstrip("/")
    urls = []
    for partition in partitions:
        list_url = f"{base}/{partition}{SHARD_LIST_SUFFIX}"
        try:
            with fsspec.open(list_url, "rt") as f:
                names = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no shard list {list_url}: is {data!r} a `flowprep extract` output "
                f"folder with a {partition!r} partition?"
            ) from None
        urls += [n if "://" in n or n.startswith("/") else f"{base}/{n}" for n in names]
    if not urls:
        raise ValueError(f"no shards listed for partitions {list(partitions)} in {data!r}")
    return urls


def deal(items: list, index: int, count: int) -> list:
    """The share of participant `index` of `count`: items index, index+count, ... (no overlap)."""
    return items[index::count]


def open_shards(urls: Iterable[str], on_error: Callable[[Exception], None]) -> Iterator[dict]:
    """{"url", "stream"} per shard, opened with fsspec (local, s3://, gs://...) or webdataset's `pipe:`."""
    import fsspec

    for url in urls:
        try:
            if url.startswith("pipe:"):
                import webdataset as wds

                stream = wds.gopen(url)
            else:
                stream = fsspec.open(url, "rb").open()
        except Exception as exn:  # an unreadable shard is skipped like a bad sample
            on_error(ValueError(f"cannot open shard {url}: {exn}"))
            continue
        try:
            yield {"url": url, "stream": stream}
        finally:
            stream.close()


def videos(shards: Iterable[dict], on_error: Callable[[Exception], None]) -> Iterator[dict]:
    """Raw samples `{"__key__", "json": bytes, "rgb.000000.jpg": bytes, ...}` of every shard."""
    yield from tar_samples(shards, on_error)


@dataclass(frozen=True)
class HeldOut:
    """The validation videos held out of a training selection: those whose key hashes below `fraction`.
    A function of the key alone (no list to keep in sync, same on every rank); each class loses the same
    share in expectation. `validation=True` keeps only them, False keeps all the others."""

    fraction: float
    validation: bool

    def __call__(self, key: str) -> bool:
        return is_held_out(key, self.fraction) == self.validation


def is_held_out(key: str, fraction: float) -> bool:
    import hashlib

    digest = hashlib.sha256(f"val-{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def select_split(
    samples: Iterable[dict],
    split: str,
    split_name: str | None,
    on_error: Callable[[Exception], None],
    keep_key: Callable[[str], bool] | None = None,
) -> Iterator[dict]:
    """Keeps videos whose json `splits[split] == split_name` (None keeps all) and, with `keep_key`, whose key
    it accepts; parses json once."""
    for sample in samples:
        if keep_key is not None and not keep_key(sample["__key__"]):
            continue
        try:
            meta = json.loads(bytes(sample["json"]))  # members may be memoryviews into the read chunk
            keep = split_name is None or meta["splits"].get(str(split)) == split_name
        except Exception as exn:
            on_error(ValueError(f"{sample.get('__key__')} ({sample.get('__url__')}): bad json: {exn!r}"))
            continue
        if keep:
            yield {**sample, "meta": meta}


def pick_clips(
    samples: Iterable[dict], spec: ClipSpec, seed: int, epoch: int, on_error: Callable[[Exception], None]
) -> Iterator[dict]:
    """Plans each video's clips from its metadata and keeps only those frames' bytes (before any decode)."""
    kinds = ([RGB] if "rgb" in spec.modalities else []) + ([FLOW_X, FLOW_Y] if spec.needs_flow else [])
    for sample in samples:
        try:
            meta = sample["meta"]
            # With flow, clip positions are flows (a strided layout has fewer than N-1): usable_frames' N-1.
            n = flow_layout(meta).num_flows(int(meta["num_frames"])) + 1 if spec.needs_flow else int(meta["num_frames"])
            plans = plan_clips(sample["__key__"], n, int(meta["height"]), int(meta["width"]), spec, seed, epoch)
            needed = sorted({i for plan in plans for i in plan.frames})
            frames = {}
            for kind in kinds:
                for i in needed:  # kept under position names: the member read is flowprep.format's to say
                    name = clip_member(meta, kind, i, spec.needs_flow)
                    if name not in sample:
                        raise KeyError(f"missing member {name}")
                    frames[frame_member(kind, i)] = bytes(sample[name])  # a copy: the chunk can go
        except Exception as exn:
            on_error(ValueError(f"{sample['__key__']} ({sample.get('__url__')}): {exn!r}"))
            continue
        yield {
            "__key__": sample["__key__"],
            "__url__": sample.get("__url__"),
            "meta": meta,
            "plans": plans,
            "frames": frames,
        }


def shuffle_buffer(samples: Iterable[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """Reservoir shuffle: fill `size`, then emit a random element per new one (webdataset's idea)."""
    if size <= 1:
        yield from samples
        return
    buf: list = []
    for sample in samples:
        buf.append(sample)
        if len(buf) >= size:
            k = rng.randrange(len(buf))
            buf[k], buf[-1] = buf[-1], buf[k]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def make_clips(picked: dict, spec: ClipSpec) -> list[dict]:
    """Decoded samples of one picked video, one per plan; view v > 0 of a plan is stored as "rgb{v+1}"."""
    meta, frames = picked["meta"], picked["frames"]
    reduced = spec.decode == "cpu_reduced"
    lossless = flow_decoder(meta)  # png16 / npz flow: decoded on the CPU, whatever --decode says
    out = []
    for plan in picked["plans"]:
        item: dict[str, Any] = {"label": int(meta["label"]), "key": picked["__key__"], "clip_index": plan.index}
        for v, box in enumerate(plan.boxes):
            suffix = "" if v == 0 else str(v + 1)
            if "rgb" in spec.modalities:
                rgb = [frames[frame_member(RGB, i)] for i in plan.frames]
                item["rgb" + suffix] = (
                    jpeg_clip("rgb", rgb, box, spec.crop_size)
                    if spec.decode == "gpu"
                    else rgb_clip(rgb, box, spec.crop_size, reduced)
                )
            if spec.needs_flow:
                fx = [frames[frame_member(FLOW_X, i)] for i in plan.frames]
                fy = [frames[frame_member(FLOW_Y, i)] for i in plan.frames]
                item["flow" + suffix] = (
                    jpeg_clip("flow", fx + fy, box, spec.crop_size)
                    if spec.decode == "gpu" and lossless is None
                    else flow_clip(fx, fy, box, spec.crop_size, reduced, lossless)
                )
        out.append(item)
    return out


# ---- the dataset ----------------------------------------------------------------------------------


def dist_info() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when initialised, else torchrun's env, else (0, 1)."""
    import os

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardClipDataset(torch.utils.data.IterableDataset):
    """IterableDataset over flowprep shards; holds the epoch (set_epoch) that seeds all randomness.

    Plain attributes only, so it pickles: DataLoader workers start by unpickling it (forkserver).
    """

    def __init__(
        self,
        urls: list[str],
        spec: ClipSpec,
        split: str = "1",
        split_name: str | None = "train",
        shuffle: bool | None = None,
        buffer_size: int = 64,
        seed: int = 0,
        epoch_samples: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        held_out: HeldOut | None = None,
    ):
        if not urls:
            raise ValueError("no shard urls")
        self.urls, self.spec, self.split, self.split_name = list(urls), spec, str(split), split_name
        self.shuffle = spec.train if shuffle is None else shuffle
        self.buffer_size, self.seed, self.epoch_samples = buffer_size, seed, epoch_samples
        self._rank, self._world = rank, world_size
        self.held_out = held_out
        self.epoch = 0
        self._shared_epoch = None  # set by share_epoch: the epoch as persistent workers see it

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._shared_epoch is not None:
            self._shared_epoch.value = epoch

    def share_epoch(self, ctx) -> None:
        """Puts the epoch in shared memory (before workers start), so persistent workers see set_epoch."""
        if self._shared_epoch is None:
            self._shared_epoch = ctx.RawValue("q", self.epoch)

    def rank_world(self) -> tuple[int, int]:
        if self._rank is not None:
            return self._rank, self._world or 1
        return dist_info()

    def check_world(self, num_workers: int) -> None:
        """Fails early when some rank would get no shard at all (a misconfigured launch)."""
        _, world = self.rank_world()
        if self.epoch_samples == 0 and len(self.urls) < world:
            raise ValueError(
                f"{len(self.urls)} shards for {world} ranks: every rank needs at least one shard; "
                "extract with more shards or set epoch_samples"
            )
        if self.epoch_samples == 0 and len(self.urls) < world * max(num_workers, 1):
            log.warning(
                "%d shards for %d ranks x %d workers: some workers will idle", len(self.urls), world, num_workers
            )

    def worker_urls(self, rank: int, world: int, worker: int, num_workers: int) -> Iterator[str]:
        """The shards this (rank, worker) reads this epoch; over all of them each shard once."""
        if self.epoch_samples:
            rng = random.Random(f"resample-{self.seed}-{self.epoch}-{rank}-{worker}")
            while True:
                yield rng.choice(self.urls)
        urls = list(self.urls)
        if self.shuffle:
            # A str seed is hashed with sha512, identical in every process (hash() of a str is not).
            random.Random(f"shards-{self.seed}-{self.epoch}").shuffle(urls)  # same order on every rank
        yield from deal(deal(urls, rank, world), worker, num_workers)

    def samples(self, rank: int, world: int, worker: int, num_workers: int) -> Iterator[dict]:
        """Every sample of this (rank, worker); callable without a DataLoader (tests, benchmarks)."""
        # The shuffle buffer's own stream; every per-video choice comes from `video_rng` instead.
        rng = random.Random(f"shuffle-{self.seed}-{self.epoch}-{rank}-{worker}")
        bad = 0

        def on_error(exn: Exception) -> None:
            nonlocal bad
            bad += 1
            log.warning("skipped bad sample/shard (%d so far on rank %d worker %d): %s", bad, rank, worker, exn)

        raw = videos(open_shards(self.worker_urls(rank, world, worker, num_workers), on_error), on_error)
        selected = select_split(raw, self.split, self.split_name, on_error, self.held_out)
        picked = pick_clips(selected, self.spec, self.seed, self.epoch, on_error)
        picked = shuffle_buffer(picked, self.buffer_size if self.shuffle else 0, rng)
        limit = self.epoch_samples // (world * num_workers) if self.epoch_samples else None
        produced = 0
        for p in picked:
            try:
                items = make_clips(p, self.spec)
            except ImportError:
                raise  # a missing decoder is this machine's fault, not the sample's: stop, saying what to install
            except Exception as exn:
                on_error(ValueError(f"{p['__key__']} ({p['__url__']}): {exn!r}"))
                continue
            for item in items:
                yield {**item, "bad_so_far": bad, "worker": rank * num_workers + worker}
            produced += 1
            if limit is not None and produced >= limit:
                return

    def __iter__(self) -> Iterator[dict]:
        if self._shared_epoch is not None:  # a persistent worker: its copy of the dataset is from epoch 0
            self.epoch = self._shared_epoch.value
        rank, world = self.rank_world()
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return self.samples(rank, world, worker, num_workers)


def _worker_init(_: int) -> None:
    try:
        import cv2
    except ImportError:  # --decode gpu on a node with torch only: the workers decode nothing
        return
    cv2.setNumThreads(1)  # one decode thread per worker: workers already use every core


def worker_context():
    """multiprocessing context of the DataLoader workers: forkserver (spawn where there is none).

    Not fork: a fork copies the parent's memory but none of its threads, so a lock held at that moment
    by a Ray client (gRPC) or a torch/OpenMP pool thread stays locked in the worker forever. The server
    preloads this module, so a worker starts without re-importing torch and OpenCV.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # only used if the server is not running yet (one per process)
    return ctx


def make_loader(
    dataset: ShardClipDataset, batch_size: int, num_workers: int, pin_memory: bool = False, drop_last: bool = False
):
    """torch DataLoader over `dataset`; batches are dicts of stacked tensors.

    With workers, the calling script needs an `if __name__ == "__main__":` guard (see worker_context).
    """
    dataset.check_world(num_workers)
    ctx = worker_context() if num_workers else None
    if ctx is not None:
        dataset.share_epoch(ctx)  # workers persist across epochs (no restart per epoch / validation)
    # Own generator: DataLoader draws its workers' base seed from it, not from torch's global RNG, which
    # the model's random ops use (a resumed run must see the same global RNG stream). The clips' own
    # randomness is seeded from (seed, epoch, rank, worker), not from this.
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=bool(num_workers),
        collate_fn=collate_clips,
        prefetch_factor=4 if num_workers else None,
        multiprocessing_context=ctx,
        generator=torch.Generator().manual_seed(dataset.seed),
    )


class BadSampleTally:
    """Sums the per-worker running counts of skipped samples seen in batches (reset per epoch)."""

    def __init__(self):
        self.by_worker: dict[int, int] = {}

    def update(self, batch: dict) -> None:
        for worker, bad in zip(batch["worker"].tolist(), batch["bad_so_far"].tolist()):
            self.by_worker[worker] = max(self.by_worker.get(worker, 0), bad)

    @property
    def total(self) -> int:
        return sum(self.by_worker.values())
