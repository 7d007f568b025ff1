"""Decode a video with PyAV into display-oriented, resized RGB frames, streaming (O(1) frames held)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np


class VideoError(Exception):
    """A problem with one video (not with the job): recorded as a failed manifest row."""

    def __init__(self, cause: str, detail: str = ""):
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause  # short category: 'empty file', 'no video stream', 'decode error', ...


RESIZE_MODES = ("square", "short")


@dataclass(frozen=True)
class Resize:
    """Output geometry: `square` to (size,size) (the paper's 256x256), or `short` side to size, aspect kept."""

    mode: str = "square"
    size_px: int = 256

    def __post_init__(self):
        if self.mode not in RESIZE_MODES or self.size_px < 8:
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
    start_s: float | None = None  # the stream's start time (its first timestamp), s
    declared_duration_s: float = 0.0  # the video stream's length as the container declares it; 0: none
    packets_end_s: float = 0.0  # end of the last demuxed video packet, from `start_s`
    complete: bool = False  # True once the stream was decoded to its end (not stopped by max_frames)
    range_ended: bool = False  # a time range: a frame at or past its end was reached (the range is whole)
    preroll_frames: int = 0  # a time range: frames decoded between the keyframe sought to and the range

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

    def decoded_duration_s(self) -> float:
        """End of the last decoded frame, from the stream's start (what `declared_duration_s` counts)."""
        if not self.pts_s:
            return 0.0
        start_s = self.start_s if self.start_s is not None else self.pts_s[0]
        return self.pts_s[-1] + self.frame_duration_s() - start_s

    def measured_fps(self) -> float:
        if len(self.pts_s) < 2 or self.pts_s[-1] <= self.pts_s[0]:
            return self.container_fps
        return (len(self.pts_s) - 1) / (self.pts_s[-1] - self.pts_s[0])


def rotate_upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Rotate a decoded frame by the display matrix's counterclockwise angle, as a player shows it."""
    quarter_turns_ccw = round(rotation_deg / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns_ccw)) if quarter_turns_ccw else rgb


# A video is truncated when it decodes to more than TRUNCATION_FRAMES frames (counted, or as time)
# less than its container declares. Measured on the real clips of ../shared/data/videos
# (benchmarks/results/truncation_margins.md): every one decodes to exactly its declared frame count
# and reaches its video stream's declared duration; where only the container's duration is known it
# is the longest track's, and the Matroska clip's audio outlasts its video by 0.048 s (1.4 frames),
# hence 2 frames. Copies cut at 90% of their bytes fall short by 3 frames (the 32-frame WebM) to 76
# (the 795-frame AVI); a cut that loses only its last frame or two passes.
TRUNCATION_FRAMES = 2
# A hole in the timeline (frames lost mid-stream, the demuxer resyncing past damage) longer than
# this many frame durations and GAP_MIN_S is a failed row; shorter irregular gaps are left alone
# because variable-frame-rate phone video has them (a frame rate that halves in low light).
GAP_FRAMES, GAP_MIN_S = 10, 0.5


def declared_duration_s(container, stream) -> float:
    """The video stream's duration from the container: the stream's own, else its Matroska DURATION
    tag, else the container's (the longest stream's); 0.0 when nothing is declared."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")  # 'HH:MM:SS.nnnnnnnnn', written by FFmpeg's Matroska muxer
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        pass
    return container.duration / 1e6 if container.duration and container.duration > 0 else 0.0


def expected_duration_s(info: StreamInfo) -> float:
    """The longest of what the file declares: the stream's duration, frames / fps (an AVI cut short
    has its duration re-estimated from its size, but its header still counts every frame) and the
    end of the last packet demuxed (a decoder that stopped while packets went on)."""
    declared_s = max(info.declared_duration_s, info.packets_end_s)
    if info.container_frames and info.container_fps:
        declared_s = max(declared_s, info.container_frames / info.container_fps)
    return declared_s


def incomplete(info: StreamInfo) -> VideoError | None:
    """The VideoError for a stream that decoded to less than its file declares, or None.

    'truncated: decoded 3.9 s of 10.3 s (118 frames)' when it ends early or lacks frames the header
    counts; 'frames missing: ...' for a hole in the middle. Only for a stream decoded to its end."""
    if not info.complete or not info.pts_s:
        return None
    frame_s = info.frame_duration_s()
    decoded_s = info.decoded_duration_s()
    declared_s = expected_duration_s(info)
    short_frames = info.container_frames - info.decoded_frames
    # 1e-6: a clip exactly TRUNCATION_FRAMES short must not fail on float rounding of its timestamps
    if declared_s - decoded_s > TRUNCATION_FRAMES * frame_s + 1e-6 or short_frames > TRUNCATION_FRAMES:
        of_frames = f" of {info.container_frames}" if info.container_frames else ""
        return VideoError(
            "truncated", f"decoded {decoded_s:.1f} s of {declared_s:.1f} s ({info.decoded_frames}{of_frames} frames)"
        )
    gaps_s = np.diff(np.asarray(info.pts_s))
    if gaps_s.size and gaps_s.max() > max(GAP_FRAMES * frame_s, GAP_MIN_S):
        at = int(gaps_s.argmax())
        return VideoError(
            "frames missing",
            f"no frame from {info.pts_s[at]:.1f} s to {info.pts_s[at + 1]:.1f} s "
            f"({info.decoded_frames} frames decoded over {decoded_s:.1f} s)",
        )
    return None


def decode_frames(
    source: str | BinaryIO,
    resize: Resize,
    info: StreamInfo,
    max_frames: int | None = None,
    threads: int = 0,
    skip_before: int = 0,
    time_range: tuple[float, float] | None = None,
) -> Iterator[np.ndarray | None]:
    """Yield uint8 (H,W,3) RGB frames in presentation order, upright and resized; fill `info`.

    `threads`: the decoder's threads (0: FFmpeg's default, one per core of the machine, which
    multiplies past a task's share when many tasks share the machine).
    `skip_before`: frames before this index are decoded and recorded in `info` but yielded as None,
    unconverted (a range of a split video starts there; colour conversion is 3/4 of a frame's cost).
    Raises VideoError for anything wrong with the file, including a stream that breaks mid-way
    (after the frames already yielded: the caller discards the partial video) or one that ends
    short of what its container declares (`incomplete`).
    `time_range` (start_s, end_s), from the stream's start: only the frames shown at t in [start_s, end_s),
    reached by seeking to the keyframe before start_s (`seek_before`); `info` then describes the clip
    (its frames and timestamps; `complete` stays False: the stream's own length is not checked), and a
    range that runs more than TRUNCATION_FRAMES past the stream's end is a VideoError.
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
        if stream.codec_context is None:  # FFmpeg has no decoder for it (or a damaged header names none)
            raise VideoError("no decoder", "FFmpeg has no decoder for the video stream's codec")
        stream.thread_type = "AUTO"  # frame-threaded decoding; frames still come out in pts order
        if threads:
            stream.codec_context.thread_count = threads
        info.codec = stream.codec_context.name
        info.coded_hw = (stream.codec_context.height, stream.codec_context.width)
        info.container_fps = float(stream.average_rate or stream.guessed_rate or 0)
        info.container_frames = int(stream.frames or 0)
        time_base = float(stream.time_base) if stream.time_base else 1.0 / max(info.container_fps, 1)
        info.tick_s = time_base
        info.declared_duration_s = declared_duration_s(container, stream)
        if stream.start_time is not None:
            info.start_s = stream.start_time * time_base
        target_hw = None
        decoded = _demux_decode(container, stream, info, time_base)
        if time_range is not None:
            decoded = _frames_in_range(container, stream, info, time_base, *time_range)
        try:
            for frame in decoded:
                if info.decoded_frames == 0:
                    info.rotation_deg = int(round(frame.rotation or 0))
                pts = (
                    frame.pts if frame.pts is not None else info.decoded_frames / max(info.container_fps, 1) / time_base
                )
                if info.decoded_frames < skip_before:
                    info.pts_s.append(pts * time_base)
                    info.decoded_frames += 1
                    yield None
                    if max_frames and info.decoded_frames >= max_frames:
                        return
                    continue
                # threads: swscale's colour conversion also starts a thread per core unless told
                rgb = rotate_upright(frame.to_ndarray(format="rgb24", threads=threads or None), info.rotation_deg)
                if target_hw is None:
                    target_hw = resize.target_hw(*rgb.shape[:2])
                if rgb.shape[:2] != target_hw:
                    rgb = cv2.resize(rgb, target_hw[::-1], interpolation=cv2.INTER_LINEAR)
                info.pts_s.append(pts * time_base)
                info.decoded_frames += 1
                yield rgb
                if max_frames and info.decoded_frames >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError("decode error", f"after {info.decoded_frames} frames: {exc}") from exc
    if time_range is not None:
        return _check_range(info, *time_range)
    info.complete = True
    if info.decoded_frames == 0:
        raise VideoError("no frames", "the video stream decoded to zero frames")
    # FFmpeg ends a truncated file quietly (an interrupted download decodes up to where it stops).
    problem = incomplete(info)
    if problem:
        raise problem


def seek_before(container, stream, t_s: float) -> None:
    """Position `container` so that decoding `stream` starts at its last keyframe at or before `t_s`
    (s from the stream's start): frames from there decode exactly as they do from the file's start."""
    time_base = float(stream.time_base)
    start_pts = stream.start_time or 0
    container.seek(start_pts + max(0, int(t_s / time_base)), stream=stream, backward=True, any_frame=False)


def _frames_in_range(container, stream, info: StreamInfo, time_base: float, start_s: float, end_s: float):
    """The decoded frames of `stream` shown at t in [start_s, end_s) (s from the stream's start), after a
    seek to the keyframe before start_s. A demuxer that lands past start_s (an index without that
    keyframe) is sought again from the stream's start: slower, never wrong."""
    if not 0 <= start_s < end_s:
        raise VideoError("bad clip range", f"[{start_s}, {end_s}) s")
    origin_s = (stream.start_time or 0) * time_base
    half_tick = time_base / 2  # timestamps are multiples of the time base: compare with half a tick of slack
    for attempt in ("seek", "from the start"):
        seek_before(container, stream, start_s if attempt == "seek" else 0.0)
        first = True
        for frame in _demux_decode(container, stream, info, time_base):
            if frame.pts is None:
                continue
            t_s = frame.pts * time_base - origin_s
            if first and attempt == "seek" and t_s > start_s + half_tick and start_s > 0:
                break  # landed after the range's start: seek again, from the stream's start
            first = False
            if t_s < start_s - half_tick:
                info.preroll_frames += 1
                continue  # the keyframe's pre-roll: decoded (the codec needs it), never converted
            if t_s >= end_s - half_tick:
                info.range_ended = True
                return
            yield frame
        else:
            return


def _check_range(info: StreamInfo, start_s: float, end_s: float) -> None:
    """Errors of a decoded time range: no frame in it, or the stream ended well before its end."""
    origin_s = info.start_s or 0.0
    if not info.pts_s:
        raise VideoError("no frames", f"no frame in [{start_s:.3f}, {end_s:.3f}) s")
    last_end_s = info.pts_s[-1] - origin_s + info.frame_duration_s()
    if not info.range_ended and end_s - last_end_s > TRUNCATION_FRAMES * info.frame_duration_s() + 1e-6:
        raise VideoError(
            "clip past the end",
            f"clip [{start_s:.3f}, {end_s:.3f}) s, but the video's frames end at {last_end_s:.3f} s",
        )


def _demux_decode(container, stream, info: StreamInfo, time_base: float):
    """`container.decode(stream)`, also recording in `info` where the demuxed packets end."""
    for packet in container.demux(stream):
        if packet.pts is not None:
            if info.start_s is None:
                info.start_s = packet.pts * time_base
            end_s = (packet.pts + (packet.duration or 0)) * time_base - info.start_s
            info.packets_end_s = max(info.packets_end_s, end_s)
        yield from packet.decode()


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
