"""How much work a video is, read before the job starts: its frame count and size from container metadata.

The planner needs every video's cost up front to cut tasks of equal work and to find the videos worth
splitting. TV-L1's cost is linear in frame pairs x pixels, and the container says both without
decoding: the stream's frame count (MP4, AVI), else its duration x frame rate (Matroska, WebM). A
video whose header says neither, or cannot be opened here, gets its file size scaled by the median
frames per byte of the others (`fill_from_size`); its own problem is reported when a worker decodes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class VideoFacts:
    frames: int  # 0: unknown (then `bytes` stands in)
    height: int = 0  # coded size, px; 0: unknown
    width: int = 0
    fps: float = 0.0
    bytes: int = 0  # file size; a frame folder's: 0


def probe_video(source: str | BinaryIO, size_bytes: int) -> VideoFacts:
    """Container metadata of one video file (path or file object); frames 0 when it cannot say."""
    import av

    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return VideoFacts(0, bytes=size_bytes)
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = int(stream.frames or 0)
            if not frames and fps:
                if stream.duration and stream.time_base:
                    frames = round(float(stream.duration * stream.time_base) * fps)
                elif container.duration and container.duration > 0:
                    frames = round(container.duration / 1e6 * fps)
            context = stream.codec_context
            height, width = (context.height, context.width) if context is not None else (0, 0)
            return VideoFacts(frames, height, width, fps, size_bytes)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError):
        return VideoFacts(0, bytes=size_bytes)


def fill_from_size(facts: list[VideoFacts]) -> list[VideoFacts]:
    """Unknown frame counts from file size x the median frames per byte of the known (1 frame per 20 KB
    when none is known); the known sizes' median geometry stands in for an unknown one."""
    known = sorted(f.frames / f.bytes for f in facts if f.frames and f.bytes)
    frames_per_byte = known[len(known) // 2] if known else 1 / 20_000
    geometry = sorted((f.height * f.width, f.height, f.width) for f in facts if f.height and f.width)
    _, height, width = geometry[len(geometry) // 2] if geometry else (0, 0, 0)
    return [
        f
        if f.frames and f.height
        else VideoFacts(
            f.frames or max(2, round(f.bytes * frames_per_byte)), f.height or height, f.width or width, f.fps, f.bytes
        )
        for f in facts
    ]
