"""Kinetics-400 / 600 / 700: `<youtube_id>_<start:06d>_<end:06d>.mp4`, in class folders or flat, + the CSVs.

A CSV row whose trimmed file is absent but whose full-length download `<youtube_id>.<ext>` is there
becomes a clip of it: the frames shown at [time_start, time_end) s, decoded by seeking (`VideoItem.start_s`).

The three versions differ only in their files' names and class counts, so one code path reads them
all (`kinetics(version, ...)`); the registry's `kinetics400/600/700` are its three entry points.
Both CSV schemas are read: 2017 (`label,youtube_id,time_start,time_end,split,is_cc`, quoted labels,
split 'val') and the later one (no `is_cc`, split 'validate', as every 600 / 700 release); the test
list has no label column (label -1). The class list is a `*label_map*.txt` beside the CSVs when there
is one (MMAction2's order), else the sorted labels of the CSVs. One official split, recorded as '1'.
"""

from __future__ import annotations

import csv
from pathlib import Path

from . import Catalog, VideoItem, index_videos, missing_problem, read_lines

VERSIONS = (400, 600, 700)


def layout(version: int) -> str:
    return (
        f"ROOT/[<class>/]<youtube_id>_<start:06d>_<end:06d>.mp4 and the official CSVs "
        f"(kinetics-{version}_{{train,val|validate,test}}.csv, any schema) in ROOT or --annotations DIR "
        f"or FILE; optional *label_map*.txt fixes the class order"
    )


LAYOUT = layout(400)
PARTITION_ALIASES = {"validate": "val", "valid": "val", "training": "train", "testing": "test"}


def clip_stem(youtube_id: str, start: str, end: str) -> str:
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def _annotation_files(root: Path, annotations: str | None, version: int) -> tuple[list[Path], Path | None]:
    base = Path(annotations) if annotations else root
    if base.is_file():
        return [base], None
    csvs = sorted(base.glob("*.csv"))
    if not csvs:
        raise FileNotFoundError(f"Kinetics-{version} CSV files not found in {base} (pass --annotations DIR or FILE)")
    label_maps = sorted(base.glob("*label_map*.txt"))
    # A folder holding several versions' maps (MMAction2's label_map_k600.txt beside ..._k700.txt): this version's.
    label_maps = [p for p in label_maps if str(version) in p.name] or label_maps
    return csvs, (label_maps[0] if label_maps else None)


def kinetics(version: int, root: str, annotations: str | None = None) -> Catalog:
    root_path = Path(root)
    csv_files, label_map = _annotation_files(root_path, annotations, version)
    rows: list[tuple[str, str, str, Path, float, float]] = []  # (stem, label, partition, csv, start s, end s)
    for csv_file in csv_files:
        with open(csv_file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"youtube_id", "time_start", "time_end"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{csv_file}: not a Kinetics CSV (header {reader.fieldnames})")
            for row in reader:
                partition = row.get("split", "") or csv_file.stem
                rows.append(
                    (
                        clip_stem(row["youtube_id"], row["time_start"], row["time_end"]),
                        row.get("label", "") or "",
                        PARTITION_ALIASES.get(partition, partition),
                        csv_file,
                        float(row["time_start"]),
                        float(row["time_end"]),
                    )
                )

    classes = read_lines(label_map) if label_map else sorted({row[1] for row in rows if row[1]})
    label_of = {name: i for i, name in enumerate(classes)}
    on_disk = index_videos(root_path)
    by_stem: dict[str, str] = {}
    for rel in on_disk:
        by_stem.setdefault(Path(rel).stem, rel)
    items, seen, full_length = [], set(), set()
    for stem, label, partition, csv_file, start_s, end_s in rows:
        if stem in seen:
            continue
        seen.add(stem)
        youtube_id = stem[:-14]  # strip '_SSSSSS_EEEEEE'
        rel, time_range = by_stem.pop(stem, None), {}
        if rel is None and youtube_id in by_stem:  # a full-length download: the clip is cut from it by its times
            rel, time_range = by_stem[youtube_id], {"start_s": start_s, "end_s": end_s}
            full_length.add(youtube_id)
        items.append(
            VideoItem(
                video_id=stem,
                class_name=label,
                label=label_of.get(label, -1),
                rel_path=rel or f"{stem}.mp4",
                splits={"1": partition},
                problem="" if rel else missing_problem(f"{stem}.mp4", csv_file.name),
                **time_range,
            )
        )
    for youtube_id in full_length:
        del by_stem[youtube_id]
    for stem, rel in sorted(by_stem.items()):
        class_name = rel.split("/")[0].replace("_", " ") if "/" in rel else ""
        items.append(VideoItem(video_id=stem, class_name=class_name, label=label_of.get(class_name, -1), rel_path=rel))
    return Catalog(f"kinetics{version}", str(root_path), tuple(classes), tuple(items), layout(version))


def kinetics400(root: str, annotations: str | None = None) -> Catalog:
    return kinetics(400, root, annotations)


def kinetics600(root: str, annotations: str | None = None) -> Catalog:
    return kinetics(600, root, annotations)


def kinetics700(root: str, annotations: str | None = None) -> Catalog:
    return kinetics(700, root, annotations)


for _version, _function in zip(VERSIONS, (kinetics400, kinetics600, kinetics700)):
    _function.LAYOUT = layout(_version)
