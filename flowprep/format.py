"""The flowprep shard format: the one definition the writer, `verify`, `inspect` and the trainer share.

This module is a public contract (docs/FORMAT.md) and must stay importable with the standard library
alone, so that the training package can read shards written by any extractor version without pulling
in OpenCV, PyAV or Ray. Array arguments only need `+ - * /`, so numpy arrays and torch tensors both work.

One WebDataset sample per video, every member named `<key>.<ext>`:

    <key>.json                 metadata (FORMAT_VERSION, ids, label, splits, fps, counts, flow params ...)
    <key>.cls                  label as ASCII decimal (0-based)
    <key>.rgb.000000.jpg       RGB frame 0 (frames 0..N-1)
    <key>.flow_x.000000.jpg    flow from frame 0 to frame 1, x component, quantized (flows 0..N-2)
    <key>.flow_y.000000.jpg    the y component of the same flow

Flow j runs from frame j * every to frame j * every + stride (`FlowLayout`, recorded in the json's
`flow`; 1 and 1 by default: frame j -> j+1), and is stored as quantized JPEG (`jpeg`, default), as
16-bit PNG with a recorded scale and offset (`png16`: `.png`) or as exact float32 (`npz`: `.npz`).

`<key>` is `<class>/<video>` with dots and unsafe characters replaced, so `tar -x` gives a folder per
class with each video's files side by side, and WebDataset groups every member of a video into one
sample (its key is the name up to the first dot of the last path component).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FORMAT_VERSION = 1
DEFAULT_BOUND_PX = 20.0  # the IMRS / TSN clipping bound (paper 001, section 4.2.1)
QUANT_LEVELS = 255  # quantized flow uses the full uint8 range 0..255

RGB = "rgb"
FLOW_X = "flow_x"
FLOW_Y = "flow_y"
FRAME_KINDS = (RGB, FLOW_X, FLOW_Y)
FRAME_INDEX_DIGITS = 6

# How flow planes are stored (--flow-format) -> the extension of their members; RGB is always JPEG.
FLOW_FORMATS = ("jpeg", "png16", "npz")
FLOW_EXTENSIONS = {"jpeg": "jpg", "png16": "png", "npz": "npz"}
PNG16_LEVELS = 65535  # png16 uses the full uint16 range over [-bound, +bound]
NPZ_ARRAY = "flow_px"  # the one array of a flow npz member: float32 (H,W) px

_MEMBER_RE = re.compile(rf"^(rgb|flow_x|flow_y)\.(\d{{{FRAME_INDEX_DIGITS}}})\.(jpg|png|npz)$")
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-+,()&!@=]")


# ---- quantization: the writer's map and its exact inverse --------------------------------------


def quant_step_px(bound_px: float = DEFAULT_BOUND_PX) -> float:
    """Flow change (px) between two neighbouring uint8 levels: 40/255 px at the default bound."""
    return 2.0 * bound_px / QUANT_LEVELS


def quantize_flow(flow_px: Any, bound_px: float = DEFAULT_BOUND_PX) -> np.ndarray:
    """float flow (any shape) px -> uint8 levels: round(255 * (clip(f) + bound) / (2 * bound)).

    Zero flow lands at 127.5 and rounds (half to even, numpy's rule) to 128 or 127 exactly as
    `np.rint` does; `dequantize_flow` is the inverse up to that rounding.
    """
    import numpy as np  # lazy: the reader side of this module needs no numpy

    clipped = np.clip(np.asarray(flow_px, dtype=np.float32), -bound_px, bound_px)
    levels = np.rint((clipped + bound_px) * (QUANT_LEVELS / (2.0 * bound_px)))
    quantized: np.ndarray = levels.astype(np.uint8)
    return quantized


def dequantize_flow(levels: Any, bound_px: float = DEFAULT_BOUND_PX) -> Any:
    """uint8 levels (numpy array or float tensor) -> flow in px, the inverse of `quantize_flow`."""
    return levels * quant_step_px(bound_px) - bound_px


def flip_flow_x_levels(levels_x: Any) -> Any:
    """Horizontal flip negates flow x; on quantized levels that is q -> 255 - q (exact, no rounding)."""
    return QUANT_LEVELS - levels_x


# ---- lossless flow: png16 (16-bit levels, recorded scale and offset) and npz (float32) ----------


def png16_scale_offset(bound_px: float = DEFAULT_BOUND_PX) -> tuple[float, float]:
    """(scale, offset) of png16 levels: f = q * scale + offset; 40/65535 px and -20 px at bound 20."""
    return 2.0 * bound_px / PNG16_LEVELS, -float(bound_px)


def quantize_flow16(flow_px: np.ndarray, bound_px: float = DEFAULT_BOUND_PX) -> np.ndarray:
    """float flow (any shape) px -> uint16 levels round((clip(f) - offset) / scale); error <= scale / 2."""
    import numpy as np

    scale, offset = png16_scale_offset(bound_px)
    clipped = np.clip(np.asarray(flow_px, dtype=np.float64), -bound_px, bound_px)
    return np.rint((clipped - offset) / scale).astype(np.uint16)


def dequantize_flow16(levels16: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """uint16 levels -> flow px with the scale and offset the json records (the inverse of quantize_flow16)."""
    return levels16 * scale + offset


def encode_png16(levels16: np.ndarray) -> bytes:
    """uint16 (H,W) -> 16-bit grayscale PNG bytes (lossless)."""
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(levels16, dtype=np.uint16))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {levels16.shape}")
    return buf.tobytes()


def decode_png16(data: bytes) -> np.ndarray:
    """16-bit PNG bytes -> uint16 (H,W); ValueError when it is not one."""
    import cv2
    import numpy as np

    levels16 = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if levels16 is None or levels16.dtype != np.uint16 or levels16.ndim != 2:
        raise ValueError("not a 16-bit grayscale PNG")
    return levels16


def encode_npz(flow_px: np.ndarray) -> bytes:
    """float32 (H,W) px -> compressed npz bytes holding it bit for bit (array NPZ_ARRAY)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **{NPZ_ARRAY: np.asarray(flow_px, dtype=np.float32)})  # type: ignore[arg-type]
    return buf.getvalue()


def decode_npz(data: bytes) -> np.ndarray:
    """npz bytes -> float32 (H,W) px, exactly as written; ValueError when the member is not one."""
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            flow_px: np.ndarray = npz[NPZ_ARRAY]
            return flow_px
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"not a flow npz: {exc}") from None


@dataclass(frozen=True)
class FlowLayout:
    """Which frames a sample's flows join and how they are stored (the json's `flow` fields).

    Flow j runs from frame `j * every` to frame `j * every + stride`; a video of N frames has
    `num_flows(N)` of them. Shards written before these fields existed read as the defaults."""

    stride: int = 1
    every: int = 1
    format: str = "jpeg"

    def __post_init__(self) -> None:
        if self.stride < 1 or self.every < 1 or self.format not in FLOW_FORMATS:
            raise ValueError(
                f"bad flow layout stride={self.stride} every={self.every} format={self.format!r}; "
                f"expected stride, every >= 1 and format one of {FLOW_FORMATS}"
            )

    @property
    def ext(self) -> str:
        return FLOW_EXTENSIONS[self.format]

    def num_flows(self, num_frames: int) -> int:
        return max(0, (num_frames - 1 - self.stride) // self.every + 1) if num_frames > self.stride else 0

    def source_frame(self, flow_index: int) -> int:
        """The frame flow `flow_index` starts at (its RGB partner in a clip)."""
        return flow_index * self.every

    def target_frame(self, flow_index: int) -> int:
        return flow_index * self.every + self.stride


def flow_layout(meta: dict[str, Any]) -> FlowLayout:
    """The FlowLayout a sample's json records (defaults for shards that predate the fields)."""
    flow = meta.get("flow") or {}
    return FlowLayout(int(flow.get("stride", 1)), int(flow.get("every", 1)), flow.get("format", "jpeg"))


def flow_plane_px(data: bytes, meta: dict[str, Any]) -> np.ndarray:
    """One flow member's bytes (x or y, any format) -> float32 (H,W) px, the exact inverse of the writer."""
    import numpy as np

    flow = meta["flow"]
    kind = flow_layout(meta).format
    if kind == "npz":
        return decode_npz(data)
    if kind == "png16":
        return dequantize_flow16(
            decode_png16(data).astype(np.float64), flow["png16"]["scale"], flow["png16"]["offset"]
        ).astype(np.float32)
    import cv2

    levels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if levels is None:
        raise ValueError("corrupt JPEG")
    flow_px: np.ndarray = dequantize_flow(levels.astype(np.float32), flow["bound_px"]).astype(np.float32)
    return flow_px


def flow_plane_levels(data: bytes, meta: dict[str, Any]) -> np.ndarray:
    """One flow member -> float32 (H,W) on the uint8 level scale (0..255, zero flow at 127.5), unrounded:
    what a loader built for quantized JPEG flow expects, from any format (npz values past the bound
    land outside 0..255)."""
    bound_px = float(meta["flow"]["bound_px"])
    return (flow_plane_px(data, meta) + bound_px) * (QUANT_LEVELS / (2.0 * bound_px))


def clip_member(meta: dict[str, Any], kind: str, position: int, with_flow: bool) -> str:
    """The member a loader reads for `kind` at clip position `position`: with flow, positions are flows
    (flow j, paired with RGB frame `source_frame(j)`); without, RGB frames."""
    layout = flow_layout(meta)
    if kind == RGB:
        return frame_member(RGB, layout.source_frame(position) if with_flow else position)
    return frame_member(kind, position, layout.ext)


# ---- names ------------------------------------------------------------------------------------


def make_key(class_name: str, video_id: str) -> str:
    """`<class>/<video>` made safe for WebDataset (no dots) and for tar on any filesystem."""

    def clean(part: str) -> str:
        return _UNSAFE_KEY_CHARS.sub("_", part) or "_"

    return f"{clean(class_name)}/{clean(video_id)}"


def frame_member(kind: str, index: int, ext: str = "jpg") -> str:
    """Extension (member name without the key) of frame `index` of `kind`: 'rgb.000012.jpg'
    (`ext`: a flow's `FlowLayout.ext`, e.g. 'flow_x.000003.png')."""
    if kind not in FRAME_KINDS:
        raise ValueError(f"unknown frame kind {kind!r}; expected one of {FRAME_KINDS}")
    return f"{kind}.{index:0{FRAME_INDEX_DIGITS}d}.{ext}"


def parse_frame_member(ext: str) -> tuple[str, int] | None:
    """'flow_x.000003.jpg' -> ('flow_x', 3); None for json / cls / anything else."""
    match = _MEMBER_RE.match(ext)
    return (match.group(1), int(match.group(2))) if match else None


def expected_members(num_frames: int, layout: FlowLayout = FlowLayout()) -> list[str]:
    """Every member extension a complete sample with `num_frames` RGB frames (flows per `layout`) holds."""
    members = ["json", "cls"] + [frame_member(RGB, i) for i in range(num_frames)]
    for i in range(layout.num_flows(num_frames)):
        members += [frame_member(FLOW_X, i, layout.ext), frame_member(FLOW_Y, i, layout.ext)]
    return members


def shard_name(partition: str, task_index: int, part: int) -> str:
    """'train-00012-000.tar': task 12 of partition 'train', its first shard."""
    return f"{partition}-{task_index:05d}-{part:03d}.tar"


SHARD_NAME_RE = re.compile(r"^(?P<partition>[a-z0-9_]+)-(?P<task>\d{5})-(?P<part>\d{3})\.tar$")

# Files an output folder holds besides the shards.
MANIFEST_FILE = "manifest.parquet"
SHARD_LIST_SUFFIX = ".shards.txt"  # '<partition>.shards.txt': one shard name a line, for loaders
CONFIG_FILE = "config.json"
PLAN_FILE = "plan.json"
PARTS_DIR = "_parts"  # per-task manifest parts; a task's part marks it done (written last)
