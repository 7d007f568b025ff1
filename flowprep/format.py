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

`<key>` is `<class>/<video>` with dots and unsafe characters replaced, so `tar -x` gives a folder per
class with each video's files side by side, and WebDataset groups every member of a video into one
sample (its key is the name up to the first dot of the last path component).
"""
from __future__ import annotations

import re
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

_MEMBER_RE = re.compile(rf"^(rgb|flow_x|flow_y)\.(\d{{{FRAME_INDEX_DIGITS}}})\.jpg$")
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


# ---- names ------------------------------------------------------------------------------------

def make_key(class_name: str, video_id: str) -> str:
    """`<class>/<video>` made safe for WebDataset (no dots) and for tar on any filesystem."""
    def clean(part: str) -> str:
        return _UNSAFE_KEY_CHARS.sub("_", part) or "_"

    return f"{clean(class_name)}/{clean(video_id)}"


def frame_member(kind: str, index: int) -> str:
    """Extension (member name without the key) of frame `index` of `kind`: 'rgb.000012.jpg'."""
    if kind not in FRAME_KINDS:
        raise ValueError(f"unknown frame kind {kind!r}; expected one of {FRAME_KINDS}")
    return f"{kind}.{index:0{FRAME_INDEX_DIGITS}d}.jpg"


def parse_frame_member(ext: str) -> tuple[str, int] | None:
    """'flow_x.000003.jpg' -> ('flow_x', 3); None for json / cls / anything else."""
    match = _MEMBER_RE.match(ext)
    return (match.group(1), int(match.group(2))) if match else None


def expected_members(num_frames: int) -> list[str]:
    """Every member extension a complete sample with `num_frames` RGB frames holds."""
    members = ["json", "cls"] + [frame_member(RGB, i) for i in range(num_frames)]
    for i in range(max(num_frames - 1, 0)):
        members += [frame_member(FLOW_X, i), frame_member(FLOW_Y, i)]
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
