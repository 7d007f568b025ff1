"""HMDB51: `<class>/<video>.avi` + `testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`."""

from __future__ import annotations

import re
from pathlib import Path

from . import Catalog, VideoItem, index_videos, missing_problem, read_lines

LAYOUT = (
    "ROOT/<class>/<video>.avi and ROOT/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt (or --annotations DIR)"
)
PARTITION_OF_CODE = {"0": "unused", "1": "train", "2": "test"}
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def find_annotation_dir(root: Path, annotations: str | None) -> Path:
    candidates = [Path(annotations)] if annotations else []
    candidates += [root / "testTrainMulti_7030_splits", root.parent / "testTrainMulti_7030_splits"]
    for candidate in candidates:
        for path in (candidate, candidate / "testTrainMulti_7030_splits"):
            if path.is_dir() and any(_SPLIT_FILE.match(p.name) for p in path.iterdir()):
                return path
    raise FileNotFoundError(f"HMDB51 split files (<class>_test_split1.txt) not found in {[str(c) for c in candidates]}")


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    ann = find_annotation_dir(root_path, annotations)
    entries: dict[tuple[str, str], dict[str, str]] = {}  # (class, video file) -> {split: partition}
    listed_in: dict[tuple[str, str], str] = {}
    for split_file in sorted(ann.iterdir()):
        match = _SPLIT_FILE.match(split_file.name)
        if not match:
            continue
        for line in read_lines(split_file):
            video, code = line.split()[:2]
            if code not in PARTITION_OF_CODE:
                raise ValueError(f"{split_file}: unexpected split code {code!r} in line {line!r}")
            key = (match["cls"], video)
            entries.setdefault(key, {})[match["split"]] = PARTITION_OF_CODE[code]
            listed_in.setdefault(key, split_file.name)

    classes = sorted({cls for cls, _ in entries})  # the standard 0..50 order is alphabetical
    label_of = {name: i for i, name in enumerate(classes)}
    on_disk = index_videos(root_path)
    by_name = {rel.rsplit("/", 1)[-1]: rel for rel in on_disk}
    items = []
    for (cls, video), video_splits in sorted(entries.items()):
        rel = on_disk.pop(f"{cls}/{video}", None) or by_name.get(video)
        on_disk.pop(rel or "", None)
        items.append(
            VideoItem(
                video_id=Path(video).stem,
                class_name=cls,
                label=label_of[cls],
                rel_path=rel or f"{cls}/{video}",
                splits=dict(sorted(video_splits.items())),
                problem="" if rel else missing_problem(f"{cls}/{video}", listed_in[(cls, video)]),
            )
        )
    for rel in sorted(on_disk):
        cls = rel.split("/")[0] if "/" in rel else ""
        items.append(VideoItem(video_id=Path(rel).stem, class_name=cls, label=label_of.get(cls, -1), rel_path=rel))
    return Catalog("hmdb51", str(root_path), tuple(classes), tuple(items), LAYOUT)
