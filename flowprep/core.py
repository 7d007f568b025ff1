"""The per-video core: source bytes in, one WebDataset sample out. Knows nothing of Ray, click or paths."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np

from . import __version__
from . import format as fmt
from .deadline import VideoTimeout, iterate_until
from .decode import Resize, StreamInfo, VideoError, decode_frames, resample_fps
from .frames import FrameFolder, decode_frame_folder

if TYPE_CHECKING:
    from .flow.base import FlowBackend


@dataclass(frozen=True)
class VideoSettings:
    """Everything the core needs to turn one video into a sample (a slice of ExtractConfig)."""

    resize: Resize = Resize()
    bound_px: float = fmt.DEFAULT_BOUND_PX
    flow_jpeg_quality: int = 95
    rgb_jpeg_quality: int = 95
    fps: float | None = None  # None: keep every decoded frame
    max_frames: int | None = None  # debugging / tests only: stop after this many frames
    timeout_s: float = 0.0  # wall-clock limit per video (decode + flow + encode); 0: none
    decode_threads: int = 0  # FFmpeg decoder threads (the task's CPU share); 0: FFmpeg's default (all cores)
    flow: fmt.FlowLayout = fmt.FlowLayout()  # flow j: frame j*every -> j*every+stride, stored as jpeg|png16|npz


@dataclass
class VideoResult:
    key: str
    members: dict[str, bytes]  # extension -> bytes ('json', 'cls', 'rgb.000000.jpg', ...)
    num_frames: int
    seconds: dict[str, float] = field(default_factory=dict)  # decode / flow / encode

    def nbytes(self) -> int:
        return sum(len(data) for data in self.members.values())


@dataclass(frozen=True)
class PairRange:
    """Frame pairs [first, end) of a video split over several workers; end None: to the last frame.

    Pair i is frames (i, i+1). A range yields the RGB of frames [first, end) and the flow of its
    pairs; the range to the end also yields the last frame and the json, so the members of a video's
    ranges, put together, are exactly the members of the unsplit video. Every range decodes from the
    start (frames before `first` are decoded, not converted) and the last one to the end, so the
    json's stream facts and the truncation checks are the unsplit video's own.
    """

    first: int
    end: int | None = None

    def __post_init__(self) -> None:
        if self.first < 0 or (self.end is not None and self.end <= self.first):
            raise ValueError(f"bad pair range [{self.first}, {self.end})")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """uint8 (H,W) gray or (H,W,3) RGB -> JPEG bytes."""
    import cv2

    bgr_or_gray = image[:, :, ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".jpg", bgr_or_gray, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def encode_flow(plane: np.ndarray, settings: VideoSettings) -> bytes:
    """One flow plane -> member bytes in the settings' format: uint8 levels (jpeg) or float32 px (png16, npz)."""
    if settings.flow.format == "jpeg":
        return encode_jpeg(plane, settings.flow_jpeg_quality)
    if settings.flow.format == "png16":
        return fmt.encode_png16(fmt.quantize_flow16(plane, settings.bound_px))
    return fmt.encode_npz(plane)


def flow_record(backend: FlowBackend, settings: VideoSettings) -> dict[str, Any]:
    """The json's `flow`: how flow was computed and stored (docs/FORMAT.md, `format.flow_layout`)."""
    layout = settings.flow
    record = {
        "backend": backend.name,
        "params": backend.params(),
        "bound_px": settings.bound_px,
        "jpeg_quality": settings.flow_jpeg_quality if layout.format == "jpeg" else None,
        "stride": layout.stride,
        "every": layout.every,
        "format": layout.format,
    }
    if layout.format == "png16":
        scale, offset = fmt.png16_scale_offset(settings.bound_px)
        record["png16"] = {"scale": scale, "offset": offset}
    return record


def library_versions() -> dict[str, str]:
    import av
    import cv2

    return {"flowprep": __version__, "opencv": cv2.__version__, "av": av.__version__, "numpy": np.__version__}


def process_video(
    source: str | BinaryIO | FrameFolder,
    meta: dict[str, Any],
    settings: VideoSettings,
    backend: FlowBackend,
    pairs: PairRange | None = None,
    time_range: tuple[float, float] | None = None,
) -> VideoResult:
    """Decode, resize, compute TV-L1 over the frame pairs of `settings.flow`, quantize and encode one video.

    `meta` holds the catalog fields (id, label, class, splits, source, dataset) copied into the json.
    `pairs`: only this range of a split video (see PairRange); None: the whole video.
    `time_range`: (start_s, end_s) of a clip of an untrimmed video: its own sample, decoded by seeking.
    Raises VideoError for problems of this video; the caller records them and goes on.
    """
    import cv2

    key = fmt.make_key(meta["class"] or "unlabeled", meta["id"])
    members: dict[str, bytes] = {}
    seconds = {"decode": 0.0, "flow": 0.0, "encode": 0.0}
    info = StreamInfo()
    started = time.monotonic()
    first_pair, end_pair = (pairs.first, pairs.end) if pairs else (0, None)
    skip = 0 if settings.fps else first_pair  # resampling maps frames to new indices: convert them all
    frames: Iterator[np.ndarray | None]  # None: a frame before `skip`, decoded for the stream's facts only
    if isinstance(source, FrameFolder):  # numbered images (Jester, SSv1, rawframes): same frames, same info
        frames = decode_frame_folder(source, settings.resize, info, settings.max_frames, skip_before=skip)
    else:
        frames = decode_frames(
            source,
            settings.resize,
            info,
            settings.max_frames,
            threads=settings.decode_threads,
            skip_before=skip,
            time_range=time_range,
        )
    if settings.fps:
        frames = resample_fps(cast(Iterator[np.ndarray], frames), info, settings.fps)  # skip is 0: no None
    if settings.timeout_s:  # decoded on a thread that can be abandoned if the decoder hangs
        frames = iterate_until(frames, started + settings.timeout_s, settings.timeout_s)

    layout = settings.flow
    if pairs and layout != fmt.FlowLayout():  # the planner splits only default-layout videos (plan.py)
        raise ValueError(f"a pair range needs flow stride 1, every 1 and jpeg, not {layout}")
    batch = max(1, int(backend.preferred_batch))
    gray_window: list[np.ndarray] = []  # frames whose outgoing flow is not computed yet, + the last one
    gray_recent: list[np.ndarray] = []  # strided layouts: the last `stride` + 1 gray frames
    pending: list[tuple[np.ndarray, np.ndarray]] = []  # strided layouts: (source, target) pairs not yet computed
    num_frames, num_flows = 0, first_pair  # frames seen; index of the next flow

    def store_flows(planes: np.ndarray) -> None:  # uint8 levels (jpeg) or float32 px (png16 / npz), (B,H,W,2)
        nonlocal num_flows
        t1 = time.perf_counter()
        for b in range(planes.shape[0]):
            for c, kind in enumerate((fmt.FLOW_X, fmt.FLOW_Y)):
                members[fmt.frame_member(kind, num_flows, layout.ext)] = encode_flow(planes[b, :, :, c], settings)
            num_flows += 1
        seconds["encode"] += time.perf_counter() - t1

    def flush_flows(keep_last: bool) -> None:
        nonlocal gray_window
        if len(gray_window) < 2:
            return
        t0 = time.perf_counter()
        stack_u8 = np.stack(gray_window)
        if layout.format == "jpeg":
            planes = backend.levels(stack_u8, settings.bound_px)  # uint8 (B,H,W,2), quantized by the backend
        else:
            planes = backend.compute(stack_u8[:-1], stack_u8[1:])  # float32 (B,H,W,2) px
        seconds["flow"] += time.perf_counter() - t0
        store_flows(planes)
        gray_window = gray_window[-1:] if keep_last else []

    def flush_pairs() -> None:  # strided layouts: pairs that are not neighbours, as (B) prev and (B) next
        if not pending:
            return
        t0 = time.perf_counter()
        flow_xy = backend.compute(np.stack([p for p, _ in pending]), np.stack([n for _, n in pending]))
        planes = fmt.quantize_flow(flow_xy, settings.bound_px) if layout.format == "jpeg" else flow_xy
        seconds["flow"] += time.perf_counter() - t0
        store_flows(planes)
        pending.clear()

    t_decode = time.perf_counter()
    for rgb in frames:
        index, num_frames = num_frames, num_frames + 1
        if index < first_pair or rgb is None:  # before this range: decoded for the stream's facts only
            continue
        t0 = time.perf_counter()
        seconds["decode"] += t0 - t_decode
        if end_pair is None or index < end_pair:  # frame `end_pair` is the next range's first RGB
            members[fmt.frame_member(fmt.RGB, index)] = encode_jpeg(rgb, settings.rgb_jpeg_quality)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        seconds["encode"] += time.perf_counter() - t0
        if layout.stride == 1 and layout.every == 1:
            gray_window.append(gray)
            if len(gray_window) > batch:
                flush_flows(keep_last=True)
        else:
            gray_recent = gray_recent[-layout.stride :] + [gray]
            from_frame = index - layout.stride  # (from_frame, index) is a flow when every | from_frame
            if from_frame >= 0 and from_frame % layout.every == 0:
                pending.append((gray_recent[0], gray))
                if len(pending) >= batch:
                    flush_pairs()
        if index == end_pair:  # the range's last pair has its second frame: stop decoding
            break
        t_decode = time.perf_counter()
    if hasattr(frames, "close"):  # a range that stops early releases the decoder (and its thread) now
        frames.close()
    flush_flows(keep_last=False)
    flush_pairs()
    if settings.timeout_s and time.monotonic() > started + settings.timeout_s:
        raise VideoTimeout(settings.timeout_s, f"all {num_frames} frames decoded, flow not finished in time")
    if end_pair is not None:  # a range before the last: frames and flows only; the last one checks the whole
        return VideoResult(
            key=key, members=members, num_frames=max(0, min(num_frames, end_pair) - first_pair), seconds=seconds
        )
    if num_flows < 1:
        raise VideoError(
            "too few frames",
            f"{num_frames} frame(s) decoded; flow with stride {layout.stride} needs at least {layout.stride + 1}",
        )

    height, width = settings.resize.target_hw(*_display_hw(info))
    record = {
        "format_version": fmt.FORMAT_VERSION,
        "key": key,
        "id": meta["id"],
        "dataset": meta.get("dataset", ""),
        "label": int(meta["label"]),
        "class": meta["class"],
        "splits": meta.get("splits", {}),
        "source": meta.get("source", ""),
        "input": "frames" if isinstance(source, FrameFolder) else "video",  # frames: fps is --frame-fps, not measured
        "num_frames": num_frames,
        "num_flows": num_flows,
        "height": height,
        "width": width,
        "fps": settings.fps or round(info.measured_fps(), 4),
        "source_fps": round(info.container_fps, 4),
        "vfr": info.is_vfr(),
        "source_frames": info.decoded_frames,
        "container_frames": info.container_frames,
        # Declared by the container vs decoded (both from the stream's start): audit a dataset for
        # short videos. decoded is null when --max-frames stopped decoding early.
        "declared_duration_s": round(info.declared_duration_s, 4) or None,
        "decoded_duration_s": round(info.decoded_duration_s(), 4) if info.complete else None,
        "codec": info.codec,
        "rotation_deg": info.rotation_deg,
        "resize": {"mode": settings.resize.mode, "size_px": settings.resize.size_px, "interpolation": "linear"},
        "flow": flow_record(backend, settings),
        "rgb_jpeg_quality": settings.rgb_jpeg_quality,
        "versions": library_versions(),
    }
    if time_range is not None:  # `source` is the untrimmed video; the clip's first frame is at first_frame_s
        record["clip"] = {
            "start_s": time_range[0],
            "end_s": time_range[1],
            "first_frame_s": round(info.pts_s[0] - (info.start_s or 0.0), 6),
        }
    members["json"] = json.dumps(record, sort_keys=True).encode()
    members["cls"] = str(int(meta["label"])).encode()
    return VideoResult(key=key, members=members, num_frames=num_frames, seconds=seconds)


def _display_hw(info: StreamInfo) -> tuple[int, int]:
    height, width = info.coded_hw
    return (width, height) if round(info.rotation_deg / 90) % 2 else (height, width)
