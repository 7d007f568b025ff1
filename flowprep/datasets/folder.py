"""Any class-per-folder tree: `ROOT/<class>/<video>.*`; classes sorted by name; one partition 'all'."""
from __future__ import annotations

from pathlib import Path

from . import Catalog, VideoItem, index_videos

LAYOUT = "ROOT/<class>/<video>.{avi,mp4,mkv,mov,...} (label = sorted class index; every video in partition 'all')"


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"dataset root is not a folder: {root_path}")
    # Every regular file in a class folder is listed (not only known video extensions), so that a
    # wrong-extension or non-video file becomes a failed row with its cause rather than vanishing.
    rels = sorted(set(index_videos(root_path)) | {
        p.relative_to(root_path).as_posix() for p in root_path.glob("*/*") if p.is_file() and not p.name.startswith(".")
    })
    classes = sorted({rel.split("/")[0] for rel in rels if "/" in rel})
    label_of = {name: i for i, name in enumerate(classes)}
    items = tuple(
        VideoItem(video_id=Path(rel).stem, class_name=rel.split("/")[0], label=label_of[rel.split("/")[0]],
                  rel_path=rel, splits={"1": "all"})
        for rel in rels if "/" in rel
    )
    return Catalog("folder", str(root_path), tuple(classes), items, LAYOUT)
