"""UCF101: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` + `ucfTrainTestlist/` (classInd, train/testlist0{1,2,3})."""

from __future__ import annotations

from pathlib import Path

from . import Catalog, VideoItem, index_videos, missing_problem, read_lines

LAYOUT = (
    "ROOT/UCF-101/<Class>/v_*.avi and ROOT/ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt "
    "(or --annotations DIR)"
)
SPLITS = ("1", "2", "3")


def find_annotation_dir(root: Path, annotations: str | None) -> Path:
    candidates = [Path(annotations)] if annotations else []
    candidates += [root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist"]
    for candidate in candidates:
        for path in (candidate, candidate / "ucfTrainTestlist"):
            if (path / "classInd.txt").is_file():
                return path
    raise FileNotFoundError(f"UCF101 split files not found: no classInd.txt in {[str(c) for c in candidates]}")


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    ann = find_annotation_dir(root_path, annotations)
    video_root = root_path / "UCF-101" if (root_path / "UCF-101").is_dir() else root_path
    classes = [line.split()[1] for line in read_lines(ann / "classInd.txt")]
    label_of = {name.lower(): i for i, name in enumerate(classes)}

    splits: dict[str, dict[str, str]] = {}  # entry 'Class/v_x.avi' -> {split: partition}
    listed_in: dict[str, str] = {}
    for split in SPLITS:
        for partition, list_name in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
            list_path = ann / list_name
            if not list_path.is_file():
                raise FileNotFoundError(f"UCF101 split file missing: {list_path}")
            for line in read_lines(list_path):
                entry = line.split()[0]
                splits.setdefault(entry, {})[split] = partition
                listed_in.setdefault(entry, list_name)

    # The official lists and the archive disagree on case (HandstandPushups/v_HandStandPushups_...),
    # so files are matched case-insensitively.
    on_disk = {rel.lower(): rel for rel in index_videos(video_root)}
    prefix = video_root.relative_to(root_path).as_posix() if video_root != root_path else ""
    items = []
    for entry, entry_splits in splits.items():
        class_name = entry.split("/")[0]
        rel_on_disk = on_disk.pop(entry.lower(), None)
        rel = f"{prefix}/{rel_on_disk}" if prefix and rel_on_disk else (rel_on_disk or entry)
        items.append(
            VideoItem(
                video_id=Path(entry).stem,
                class_name=classes[label_of[class_name.lower()]],
                label=label_of[class_name.lower()],
                rel_path=rel,
                splits=dict(sorted(entry_splits.items())),
                problem="" if rel_on_disk else missing_problem(entry, listed_in[entry]),
            )
        )
    for rel in sorted(on_disk.values()):  # files that no split names
        class_name = rel.split("/")[0]
        label = label_of.get(class_name.lower(), -1)
        items.append(
            VideoItem(
                video_id=Path(rel).stem,
                class_name=class_name,
                label=label,
                rel_path=f"{prefix}/{rel}" if prefix else rel,
            )
        )
    return Catalog("ucf101", str(root_path), tuple(classes), tuple(items), LAYOUT)
