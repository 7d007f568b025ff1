"""Any class-per-folder tree: `ROOT/<class>/<video>.*` or `ROOT/<class>/<video>/00001.jpg ...` (frame folders).

Classes sorted by name. Split '1' puts every video in partition 'all'; split '2' is a deterministic
train / test split (about 30% test): a video's partition depends on its own path only (a hash), so
adding or removing videos never moves the others between train and test.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import KIND_FRAMES, KIND_VIDEO, Catalog, VideoItem, index_videos

LAYOUT = ("ROOT/<class>/<video>.{avi,mp4,mkv,mov,...} or ROOT/<class>/<video>/00001.jpg ... (frame folders, "
          "--frame-fps); label = sorted class index; split 1: every video in 'all', split 2: ~70/30 train/test")
TEST_PERCENT = 30


def split2_partition(rel_path: str) -> str:
    """'test' for about TEST_PERCENT% of paths, 'train' otherwise; a function of the path alone."""
    return "test" if int(hashlib.sha1(rel_path.encode()).hexdigest()[:8], 16) % 100 < TEST_PERCENT else "train"


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"dataset root is not a folder: {root_path}")
    # Every regular file in a class folder is listed (not only known video extensions), so that a
    # wrong-extension or non-video file becomes a failed row with its cause rather than vanishing.
    kind_of = {rel: KIND_VIDEO for rel in index_videos(root_path) if "/" in rel}
    for p in root_path.glob("*/*"):
        if not p.name.startswith(".") and (p.is_file() or p.is_dir()):
            kind_of[p.relative_to(root_path).as_posix()] = KIND_FRAMES if p.is_dir() else KIND_VIDEO
    rels = sorted(kind_of)
    classes = sorted({rel.split("/")[0] for rel in rels})
    label_of = {name: i for i, name in enumerate(classes)}
    items = tuple(
        VideoItem(video_id=Path(rel).stem if kind_of[rel] == KIND_VIDEO else Path(rel).name,
                  class_name=rel.split("/")[0], label=label_of[rel.split("/")[0]], rel_path=rel,
                  splits={"1": "all", "2": split2_partition(rel)}, kind=kind_of[rel])
        for rel in rels
    )
    return Catalog("folder", str(root_path), tuple(classes), items, LAYOUT)

