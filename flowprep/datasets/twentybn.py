"""The shared reader of 20BN's frame-folder releases (Something-Something V1, Jester).

Both ship one folder of JPEG frames per video (`<id>/00001.jpg ...`, 12 fps) and CSV lists without a
header: `<prefix>-labels.csv` (one class a line, index = line number - 1), `<prefix>-{train,validation}.csv`
(`id;class name`) and `<prefix>-test.csv` (`id`, label -1). Partitions: `train`, `val`, `test`, in the
one official split '1'. Files named `<prefix>-train*.csv` etc. are found too (excerpts, renamed copies).
"""

from __future__ import annotations

from pathlib import Path

from . import KIND_FRAMES, Catalog, VideoItem, index_frame_folders, missing_problem, read_lines

PARTITION_OF_LIST = {"train": "train", "validation": "val", "test": "test"}
FRAME_FPS = 12.0  # both datasets' frames were extracted at 12 fps


def find_annotation_dir(prefix: str, root: Path, annotations: str | None) -> Path:
    candidates = ([Path(annotations)] if annotations else []) + [root, root.parent]
    for candidate in candidates:
        if (candidate / f"{prefix}-labels.csv").is_file():
            return candidate
    raise FileNotFoundError(f"{prefix}-labels.csv not found in {[str(c) for c in candidates]}")


def csv_catalog(name: str, prefix: str, frames_folder: str, layout: str, root: str, annotations: str | None) -> Catalog:
    """The catalog of one 20BN release; `frames_folder` is the archive's top folder (used when present)."""
    root_path = Path(root)
    ann = find_annotation_dir(prefix, root_path, annotations)
    labels_path = ann / f"{prefix}-labels.csv"
    classes = read_lines(labels_path)
    label_of = {class_name: i for i, class_name in enumerate(classes)}
    if len(label_of) != len(classes):
        raise ValueError(f"{labels_path}: a class is listed twice")

    frames_root = root_path / frames_folder if (root_path / frames_folder).is_dir() else root_path
    rel_prefix = f"{frames_folder}/" if frames_root != root_path else ""
    on_disk = index_frame_folders(frames_root)
    items, seen = [], set()
    for list_name, partition in PARTITION_OF_LIST.items():
        matches = sorted(ann.glob(f"{prefix}-{list_name}*.csv"))
        if not matches:
            continue  # a missing list: its videos are then listed as unsplit
        path = matches[0]
        for line_number, line in enumerate(read_lines(path), 1):
            video_id, _, class_name = line.partition(";")
            if video_id in seen:
                raise ValueError(f"{path}:{line_number}: video {video_id} is listed twice across the lists")
            seen.add(video_id)
            if class_name and class_name not in label_of:
                raise ValueError(f"{path}:{line_number}: class {class_name!r} is not in {labels_path.name}")
            folder = on_disk.pop(video_id, None)
            items.append(
                VideoItem(
                    video_id=video_id,
                    class_name=class_name,
                    label=label_of.get(class_name, -1),
                    rel_path=rel_prefix + (folder or video_id),
                    splits={"1": partition},
                    problem="" if folder else missing_problem(rel_prefix + video_id, path.name),
                    kind=KIND_FRAMES,
                )
            )
    for folder in sorted(on_disk):  # frame folders that no list names
        items.append(
            VideoItem(video_id=folder, class_name="", label=-1, rel_path=rel_prefix + folder, kind=KIND_FRAMES)
        )
    return Catalog(name, str(root_path), tuple(classes), tuple(items), layout, frame_fps=FRAME_FPS)
