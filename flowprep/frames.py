"""Frame folders as a decode source: a video given as numbered JPEG/PNG files (`<id>/00001.jpg ...`).

Jester and Something-Something V1 ship this way, and so does any tree extracted by MMAction2 or
denseflow (`img_00001.jpg`). `decode_frame_folder` is `decode.decode_frames`'s sibling: it yields the
same upright, resized uint8 RGB frames and fills the same `StreamInfo`, so everything after decoding
(TV-L1, quantization, JPEG, shards) is the video path unchanged. Images carry no timestamps: the frame
rate is given (`--frame-fps`, or the dataset's own, 12 fps for Jester and SSv1) and frame k is at k/fps.

The numbering must be complete: a gap, a duplicate number or an image that does not decode fails the
video (a VideoError naming the file), never a silently shorter sample. Files that are not numbered
frames (flow images `flow_x_00001.jpg` / `x_00001.jpg` beside the RGB, a thumbnail) are not frames.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .decode import Resize, StreamInfo, VideoError

# '00001.jpg' (Jester, SSv1), 'img_00001.jpg' (MMAction2, denseflow), 'frame_000001.png', 'image_0001.jpg'
FRAME_NAME = re.compile(r"^(?P<prefix>img_|image_|frame_|)(?P<index>\d+)\.(?P<ext>jpe?g|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class FrameFolder:
    """One video as image files: their names in frame order, a reader of a file's bytes, and the rate."""

    names: tuple[str, ...]
    read: Callable[[str], bytes]
    fps: float


def order_frames(names: list[str]) -> list[str]:
    """The numbered frame files among `names`, in numeric order; VideoError for gaps, duplicates, a mix of
    naming schemes, or no frame at all."""
    numbered: dict[int, str] = {}
    prefixes = set()
    for name in names:
        match = FRAME_NAME.match(name)
        if not match:
            continue
        index = int(match["index"])
        if index in numbered:
            raise VideoError("duplicate frames", f"{numbered[index]} and {name} both number frame {index}")
        numbered[index] = name
        prefixes.add(match["prefix"].lower())
    if not numbered:
        raise VideoError("no frames", "no numbered .jpg/.png frame files (00001.jpg, img_00001.jpg, ...) in the folder")
    if len(prefixes) > 1:
        raise VideoError("mixed frame names", f"frame files with several prefixes {sorted(prefixes)}")
    first, last = min(numbered), max(numbered)
    if last - first + 1 != len(numbered):
        gap = next(i for i in range(first, last + 1) if i not in numbered)
        after = numbered[gap - 1]
        raise VideoError(
            "missing frames", f"frame {gap} missing after {after} ({len(numbered)} files numbered {first}..{last})"
        )
    return [numbered[i] for i in range(first, last + 1)]


def open_frame_folder(fs, path: str, fps: float) -> FrameFolder:
    """The I/O edge: list `path` (local or object store) and read its files through `fs` on demand."""
    if fps <= 0:
        raise VideoError("no frame rate", "a frame folder has no timestamps: pass --frame-fps")
    if not fs.isdir(path):
        raise FileNotFoundError(f"no such frame folder: {path}")
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)]
    return FrameFolder(tuple(order_frames(names)), lambda name: fs.cat_file(f"{path.rstrip('/')}/{name}"), fps)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (H,W,3) RGB (gray images expanded); VideoError naming `name` otherwise."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise VideoError("unreadable frame", f"{name}: not a decodable JPEG/PNG ({len(data)} bytes)")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def decode_frame_folder(
    folder: FrameFolder, resize: Resize, info: StreamInfo, max_frames: int | None = None, skip_before: int = 0
) -> Iterator[np.ndarray | None]:
    """Yield uint8 (H,W,3) RGB frames of `folder` in order, resized as `decode_frames` does; fill `info`.
    Frames before `skip_before` are not read (yielded as None), except the first, which sets the size."""
    import cv2

    info.codec = "png" if folder.names[0].lower().endswith(".png") else "mjpeg"
    info.container_fps = float(folder.fps)
    info.container_frames = len(folder.names)
    info.tick_s = 1.0 / folder.fps
    info.start_s = 0.0
    info.declared_duration_s = len(folder.names) / folder.fps
    target_hw = None
    for index, name in enumerate(folder.names):
        if 0 < index < skip_before:
            info.pts_s.append(index / folder.fps)
            info.decoded_frames += 1
            yield None
            if max_frames and info.decoded_frames >= max_frames:
                return
            continue
        try:
            data = folder.read(name)
        except OSError as exc:
            raise VideoError("unreadable frame", f"{name}: {exc}") from exc
        rgb = decode_image(data, name)
        if target_hw is None:
            info.coded_hw = rgb.shape[:2]
            target_hw = resize.target_hw(*rgb.shape[:2])
        if rgb.shape[:2] != target_hw:
            rgb = cv2.resize(rgb, target_hw[::-1], interpolation=cv2.INTER_LINEAR)
        info.pts_s.append(index / folder.fps)
        info.decoded_frames += 1
        yield rgb if index >= skip_before else None
        if max_frames and info.decoded_frames >= max_frames:
            return
    info.complete = True
