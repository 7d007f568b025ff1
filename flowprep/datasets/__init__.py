"""Dataset catalogs: a registry of name -> 'module:function' (`catalog(root, annotations) -> Catalog`).

A catalog lists every video the dataset defines, as the official files define it, and reports
problems as data instead of dropping them: a split entry whose file is missing becomes an item with
`problem` set, and a file on disk that no split names becomes an item with empty `splits`.
Adding a dataset is one module plus one line in DATASETS; tests parametrize over DATASETS.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # frames of frame-folder datasets (Jester, SSv1, rawframes)
KIND_VIDEO, KIND_FRAMES = "video", "frames"  # VideoItem.kind: a video file, or a folder of numbered frames

DATASETS = Registry(
    "dataset",
    {
        "ucf101": "flowprep.datasets.ucf101:catalog",
        "hmdb51": "flowprep.datasets.hmdb51:catalog",
        "kinetics400": "flowprep.datasets.kinetics:kinetics400",
        "kinetics600": "flowprep.datasets.kinetics:kinetics600",
        "kinetics700": "flowprep.datasets.kinetics:kinetics700",
        "sthv2": "flowprep.datasets.sthv2:catalog",
        "sthv1": "flowprep.datasets.sthv1:catalog",
        "jester": "flowprep.datasets.jester:catalog",
        "folder": "flowprep.datasets.folder:catalog",
        "sample": "flowprep.datasets.sample:catalog",
    },
)


@dataclass(frozen=True)
class VideoItem:
    """One video of a dataset. `rel_path` is relative to the dataset root, '/'-separated."""

    video_id: str
    class_name: str
    label: int  # 0-based; -1 where the annotation has no label (Kinetics test list)
    rel_path: str
    splits: dict[str, str] = field(default_factory=dict)  # official split '1'..'3' -> 'train'/'test'/...
    problem: str = ""  # non-empty: the video cannot be extracted, and this says why
    kind: str = KIND_VIDEO  # KIND_FRAMES: `rel_path` is a folder of numbered JPEG/PNG frames
    # A clip of an untrimmed video: the frames shown at [start_s, end_s) s of `rel_path` (None: all of it)
    start_s: float | None = None
    end_s: float | None = None

    @property
    def time_range(self) -> tuple[float, float] | None:
        return None if self.start_s is None or self.end_s is None else (self.start_s, self.end_s)

    def meta(self, dataset: str) -> dict[str, Any]:
        """The catalog fields a sample's json starts from (docs/FORMAT.md)."""
        return {
            "id": self.video_id,
            "label": self.label,
            "class": self.class_name,
            "splits": self.splits,
            "source": self.rel_path,
            "dataset": dataset,
        }

    @property
    def plan_id(self) -> str:
        """Unique within a catalog: the path, plus the range for a clip (several clips share a path)."""
        return self.rel_path if self.time_range is None else f"{self.rel_path}#{self.start_s:g}-{self.end_s:g}"


@dataclass(frozen=True)
class Catalog:
    name: str
    root: str
    classes: tuple[str, ...]  # index = label
    items: tuple[VideoItem, ...]
    layout: str = ""  # one line: what the dataset expects on disk
    frame_fps: float = 0.0  # frame rate of its frame folders as distributed (12 for Jester, SSv1); 0: none

    def problems(self) -> list[VideoItem]:
        return [item for item in self.items if item.problem]

    def unsplit(self) -> list[VideoItem]:
        return [item for item in self.items if not item.splits and not item.problem]


def dataset_function(name: str):
    """The catalog function registered as `name`; unknown names raise with the valid ones."""
    return DATASETS.get(name)


def dataset_layout(name: str) -> str:
    """The one-line layout: the function's own LAYOUT (one module serving several names), else the module's."""
    function = dataset_function(name)
    return getattr(function, "LAYOUT", None) or importlib.import_module(function.__module__).LAYOUT


def load_catalog(name: str, root: str, annotations: str | None = None) -> Catalog:
    """The catalog of `root`, a local folder or an object-store URL (s3://bucket/ucf101, ...).

    Catalog modules read local paths only; for a URL they read a local shadow of it instead: the
    listing as empty placeholder files, and the split files and CSVs themselves (small text files).
    The videos stay in the bucket and the workers stream them from there (`rel_path` is the same).
    """
    from .. import storage

    function = dataset_function(name)
    remote = [value for value in (root, annotations) if value and not storage.is_local(value)]
    if not remote:
        return function(root, annotations)
    with tempfile.TemporaryDirectory(prefix="flowprep-catalog-") as shadow:
        local_root = mirror_listing(root, Path(shadow) / "root") if root in remote else root
        local_ann = mirror_listing(annotations, Path(shadow) / "annotations") if annotations in remote else annotations
        catalog = function(local_root, local_ann)
    return dataclasses.replace(catalog, root=root)


SHADOW_MAX_BYTES = 64 * 2**20  # annotation files are kilobytes; anything this big is data, not a list


def mirror_listing(url: str, dest: Path) -> str:
    """Recreate the tree under `url` in local `dest`: videos as empty files, small files copied."""
    from .. import storage

    fs, base = storage.filesystem(url)
    if not fs.isdir(base):
        raise FileNotFoundError(f"dataset root {url}: no such folder or prefix")
    dest.mkdir(parents=True, exist_ok=True)
    for path, info in fs.find(base, detail=True).items():
        rel = path[len(base) :].lstrip("/")
        if not rel or info.get("type") == "directory":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.lower().endswith(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS) or (info.get("size") or 0) > SHADOW_MAX_BYTES:
            target.touch()
        else:
            fs.get_file(path, str(target))
    return str(dest)


# ---- helpers shared by the catalog modules ---------------------------------------------------


def index_videos(root: str | Path) -> dict[str, str]:
    """Relative path ('/'-separated) of every video file under `root`, keyed by that same path."""
    root = Path(root)
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            if filename.lower().endswith(VIDEO_EXTENSIONS):
                rel = (Path(dirpath) / filename).relative_to(root).as_posix()
                found[rel] = rel
    return found


def index_frame_folders(root: str | Path) -> dict[str, str]:
    """Every immediate sub-folder of `root` (a frame folder per video, as Jester and SSv1 ship), by name.

    Listed without looking inside: a dataset has ~100,000 of them, and an empty or broken one is the
    extraction's to report (a failed row naming its first bad frame), not the listing's."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {entry.name: entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")}


def read_lines(path: Path) -> list[str]:
    """Non-empty lines with CRLF and trailing spaces removed (the official lists have both)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip()]


def clip_id(stem: str, start_s: float, end_s: float) -> str:
    """The id of a clip of video `stem`: '<stem>_<start ms>_<end ms>' (unique per range, no dots)."""
    return f"{stem}_{round(start_s * 1000):d}_{round(end_s * 1000):d}"


def missing_problem(rel_path: str, listed_in: str) -> str:
    return f"missing: listed in {listed_in} but no such file under the dataset root ({rel_path})"


UNSPLIT_NOTE = "not in any official split"

_PARTITION_WORDS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
    "testing": "test",
}


def partition_of_list(path: str) -> str:
    """The partition an MMAction2 list file's name says: 'hmdb51_val_split_1_videos.txt' -> 'val'; else 'all'."""
    import re

    for word in re.split(r"[^a-z]+", str(path).replace("\\", "/").rsplit("/", 1)[-1].lower()):
        if word in _PARTITION_WORDS:
            return _PARTITION_WORDS[word]
    return "all"
