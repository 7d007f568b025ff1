"""Something-Something V2: `<id>.webm` + `something-something-v2-{labels,train,validation,test}.json`.

The labels file maps a class (the template with the brackets around "something" removed) to its index
as a string; the train / validation lists hold `{"id", "template", ...}` entries, the test list only
`{"id"}` (label -1). Partitions: `train`, `val` (the validation list; `val` as for Kinetics) and `test`,
in the one official split '1'. Files named `*-train*.json` etc. are found too (excerpts, renamed copies).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import Catalog, VideoItem, index_videos, missing_problem

LAYOUT = (
    "ROOT/<id>.webm (or ROOT/20bn-something-something-v2/<id>.webm) and "
    "something-something-v2-{labels,train,validation,test}.json in ROOT, its parent or --annotations DIR"
)
PREFIX = "something-something-v2"
PARTITION_OF_LIST = {"train": "train", "validation": "val", "test": "test"}
VIDEO_FOLDER = "20bn-something-something-v2"


def class_of_template(template: str) -> str:
    """'Putting [something] onto [something]' -> 'Putting something onto something' (the labels' keys)."""
    return template.replace("[", "").replace("]", "")


def find_annotation_dir(root: Path, annotations: str | None) -> Path:
    candidates = ([Path(annotations)] if annotations else []) + [root, root.parent]
    for candidate in candidates:
        if (candidate / f"{PREFIX}-labels.json").is_file():
            return candidate
    raise FileNotFoundError(f"Something-Something V2: {PREFIX}-labels.json not found in {[str(c) for c in candidates]}")


def list_file(ann: Path, name: str) -> Path | None:
    matches = sorted(ann.glob(f"{PREFIX}-{name}*.json"))
    return matches[0] if matches else None


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    ann = find_annotation_dir(root_path, annotations)
    labels_path = ann / f"{PREFIX}-labels.json"
    index_of = {name: int(index) for name, index in json.loads(labels_path.read_text(encoding="utf-8")).items()}
    classes = sorted(index_of, key=index_of.get)
    if [index_of[c] for c in classes] != list(range(len(classes))):
        raise ValueError(f"{labels_path}: indices are not 0..{len(classes) - 1}")

    video_root = root_path / VIDEO_FOLDER if (root_path / VIDEO_FOLDER).is_dir() else root_path
    prefix = f"{VIDEO_FOLDER}/" if video_root != root_path else ""
    by_stem = {Path(rel).stem: prefix + rel for rel in index_videos(video_root)}
    items, seen = [], set()
    for list_name, partition in PARTITION_OF_LIST.items():
        path = list_file(ann, list_name)
        if path is None:
            continue  # a release without its test list, say: those videos are then listed as unsplit
        for entry in json.loads(path.read_text(encoding="utf-8")):
            video_id = str(entry["id"])
            if video_id in seen:
                raise ValueError(f"{path}: video {video_id} is listed twice across the lists")
            seen.add(video_id)
            class_name, label = "", -1
            if "template" in entry:
                class_name = class_of_template(entry["template"])
                if class_name not in index_of:
                    raise ValueError(
                        f"{path}: video {video_id}: template {entry['template']!r} is not in {labels_path.name}"
                    )
                label = index_of[class_name]
            rel = by_stem.pop(video_id, None)
            items.append(
                VideoItem(
                    video_id=video_id,
                    class_name=class_name,
                    label=label,
                    rel_path=rel or f"{prefix}{video_id}.webm",
                    splits={"1": partition},
                    problem="" if rel else missing_problem(f"{prefix}{video_id}.webm", path.name),
                )
            )
    for stem, rel in sorted(by_stem.items()):  # files that no list names
        items.append(VideoItem(video_id=stem, class_name="", label=-1, rel_path=rel))
    return Catalog("sthv2", str(root_path), tuple(classes), tuple(items), LAYOUT)
