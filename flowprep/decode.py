"""Decode a video with PyAV into display-oriented, resized RGB frames, streaming (O(1) frames held)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np


class VideoError(Exception):
    """A problem with one video (not with the job): recorded as a failed manifest row."""

    def __init__(self, cause: str, detail: str = ""):
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause  # short category: 'empty file', 'no video stream', 'decode error', ...


@dataclass(frozen=True)
class Resize:
    """Output geometry: `square` to (size,size) (the paper's 256x256), or `short` side to size, aspect kept."""

    mode: str = "square"
    size_px: int = 256

    def __post_init__(self):
        if self.mode not in ("square", "short") or self.size_px < 8:
            raise ValueError(f"bad resize {self.mode}:{self.size_px}; expected square|short and size >= 8")

    def target_hw(self, height: int, width: int) -> tuple[int, int]:
        if self.mode == "square":
            return self.size_px, self.size_px
        scale = self.size_px / min(height, width)
        # Round to even sizes: codecs and 2x2 pooling downstream both prefer them.
        return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


@dataclass
class StreamInfo:
    """What the container says and what decoding found; filled in as frames are decoded."""

    codec: str = ""
    coded_hw: tuple[int, int] = (0, 0)
    rotation_deg: int = 0  # counterclockwise display rotation (FFmpeg's display matrix convention)
    container_fps: float = 0.0
    container_frames: int = 0  # 0 where the container has no frame count (e.g. Matroska)
    decoded_frames: int = 0
    pts_s: list[float] = field(default_factory=list)
    tick_s: float = 0.0  # the stream's time base: timestamps are only this precise

    def is_vfr(self, tolerance: float = 0.01) -> bool:
        """True when frame durations vary by more than `tolerance` (relative) or two time-base ticks."""
        if len(self.pts_s) < 3:
            return False
        gaps = np.diff(np.asarray(self.pts_s))
        gaps = gaps[gaps > 0]
        return bool(gaps.size and (gaps.max() - gaps.min()) > max(tolerance * np.median(gaps), 2.5 * self.tick_s))

    def frame_duration_s(self) -> float:
        gaps = np.diff(np.asarray(self.pts_s))
        return float(np.median(gaps)) if gaps.size else 1.0 / max(self.container_fps, 1.0)

    def measured_fps(self) -> float:
        if len(self.pts_s) < 2 or self.pts_s[-1] <= self.pts_s[0]:
            return self.container_fps
        return (len(self.pts_s) - 1) / (self.pts_s[-1] - self.pts_s[0])


def rotate_upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Rotate a decoded frame by the display matrix's counterclockwise angle, as a player shows it."""
    quarter_turns_ccw = round(rotation_deg / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns_ccw)) if quarter_turns_ccw else rgb


def decode_frames(source: str | BinaryIO, resize: Resize, info: StreamInfo,
                  max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 (H,W,3) RGB frames in presentation order, upright and resized; fill `info`.

    Raises VideoError for anything wrong with the file, including a stream that breaks mid-way
    (after the frames already yielded: the caller discards the partial video).
    """
    import av
    import cv2

    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError("unreadable container", str(exc)) from exc
    with container:
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "no streams"
            raise VideoError("no video stream", f"container holds {kinds}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-threaded decoding; frames still come out in pts order
        info.codec = stream.codec_context.name
        info.coded_hw = (stream.codec_context.height, stream.codec_context.width)
        info.container_fps = float(stream.average_rate or stream.guessed_rate or 0)
        info.container_frames = int(stream.frames or 0)
        time_base = float(stream.time_base) if stream.time_base else 1.0 / max(info.container_fps, 1)
        info.tick_s = time_base
        target_hw = None
        try:
            for frame in container.decode(stream):
                if info.decoded_frames == 0:
                    info.rotation_deg = int(round(frame.rotation or 0))
                rgb = rotate_upright(frame.to_ndarray(format="rgb24"), info.rotation_deg)
                if target_hw is None:
                    target_hw = resize.target_hw(*rgb.shape[:2])
                if rgb.shape[:2] != target_hw:
                    rgb = cv2.resize(rgb, target_hw[::-1], interpolation=cv2.INTER_LINEAR)
                pts = frame.pts if frame.pts is not None else info.decoded_frames / max(info.container_fps, 1) / time_base
                info.pts_s.append(pts * time_base)
                info.decoded_frames += 1
                yield rgb
                if max_frames and info.decoded_frames >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError("decode error", f"after {info.decoded_frames} frames: {exc}") from exc
    if info.decoded_frames == 0:
        raise VideoError("no frames", "the video stream decoded to zero frames")
    # FFmpeg often ends a truncated file quietly; the container's own count tells (where it has one).
    if info.container_frames and info.decoded_frames < 0.95 * info.container_frames - 1:
        raise VideoError("truncated", f"decoded {info.decoded_frames} of the {info.container_frames} frames "
                                      "the container declares")


def resample_fps(frames: Iterator[np.ndarray], info: StreamInfo, fps: float) -> Iterator[np.ndarray]:
    """Constant-rate resampling: output frame k is the last input frame shown at time t0 + k/fps."""
    next_t = None
    previous = None
    for frame in frames:
        t = info.pts_s[-1]
        if next_t is None:
            next_t = t
        while previous is not None and t > next_t + 1e-9:
            yield previous  # `previous` is on screen at next_t (a repeat when the source is slower)
            next_t += 1.0 / fps
        previous = frame
    if previous is None:
        return
    end_t = info.pts_s[-1] + info.frame_duration_s()  # the last frame stays on screen until then
    while next_t < end_t - 1e-9:
        yield previous
        next_t += 1.0 / fps
