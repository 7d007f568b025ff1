"""Kinetics-400: `<youtube_id>_<start:06d>_<end:06d>.mp4`, in class folders or flat, + the official CSVs.

Both CSV schemas are read: 2017 (`label,youtube_id,time_start,time_end,split,is_cc`, quoted labels,
split 'val') and the later one (no `is_cc`, split 'validate'); the test list has no label column
(label -1). Kinetics has one official split, recorded as split '1'.
"""
from __future__ import annotations

import csv
from pathlib import Path

from . import Catalog, VideoItem, index_videos, missing_problem, read_lines

LAYOUT = ("ROOT/[<class>/]<youtube_id>_<start:06d>_<end:06d>.mp4 and the official CSVs "
          "(kinetics-400_{train,val,test}.csv, any schema) in ROOT or --annotations DIR; "
          "optional *label_map*.txt fixes the class order")
PARTITION_ALIASES = {"validate": "val", "valid": "val", "training": "train", "testing": "test"}


def clip_stem(youtube_id: str, start: str, end: str) -> str:
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def _annotation_files(root: Path, annotations: str | None) -> tuple[list[Path], Path | None]:
    base = Path(annotations) if annotations else root
    if base.is_file():
        return [base], None
    csvs = sorted(base.glob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"Kinetics CSV files not found in {base} (pass --annotations DIR or FILE)")
    label_maps = sorted(base.glob("*label_map*.txt"))
    return csvs, (label_maps[0] if label_maps else None)


def catalog(root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    csv_files, label_map = _annotation_files(root_path, annotations)
    rows: list[tuple[str, str, str, Path]] = []  # (stem, label, partition, csv)
    for csv_file in csv_files:
        with open(csv_file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"youtube_id", "time_start", "time_end"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{csv_file}: not a Kinetics CSV (header {reader.fieldnames})")
            for row in reader:
                partition = row.get("split", "") or csv_file.stem
                rows.append((clip_stem(row["youtube_id"], row["time_start"], row["time_end"]),
                             row.get("label", "") or "", PARTITION_ALIASES.get(partition, partition), csv_file))

    classes = read_lines(label_map) if label_map else sorted({label for _, label, _, _ in rows if label})
    label_of = {name: i for i, name in enumerate(classes)}
    on_disk = index_videos(root_path)
    by_stem: dict[str, str] = {}
    for rel in on_disk:
        by_stem.setdefault(Path(rel).stem, rel)
    items, seen = [], set()
    for stem, label, partition, csv_file in rows:
        if stem in seen:
            continue
        seen.add(stem)
        youtube_id = stem[:-14]  # strip '_SSSSSS_EEEEEE'
        rel = by_stem.pop(stem, None) or by_stem.pop(youtube_id, None)
        items.append(VideoItem(
            video_id=stem, class_name=label, label=label_of.get(label, -1), rel_path=rel or f"{stem}.mp4",
            splits={"1": partition}, problem="" if rel else missing_problem(f"{stem}.mp4", csv_file.name),
        ))
    for stem, rel in sorted(by_stem.items()):
        class_name = rel.split("/")[0].replace("_", " ") if "/" in rel else ""
        items.append(VideoItem(video_id=stem, class_name=class_name, label=label_of.get(class_name, -1), rel_path=rel))
    return Catalog("kinetics400", str(root_path), tuple(classes), tuple(items), LAYOUT)
