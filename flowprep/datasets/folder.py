"""Any class-per-folder tree: `ROOT/<class>/<video>.*` or `ROOT/<class>/<video>/00001.jpg ...` (frame folders).

Classes sorted by name. Split '1' puts every video in partition 'all'; split '2' is a deterministic
train / test split (about 30% test): a video's partition depends on its own path only (a hash), so
adding or removing videos never moves the others between train and test.

`--annotations` instead names MMAction2 video lists (`path label` a line; a list FILE, or a DIR whose
*.txt are lists): split '1' then follows them, each list's partition from its file name
(`..._train_...` -> train, val, test, else all), labels are the lists' own (class name: the path's
class folder), a listed file that is absent is a failed row and a file no list names is unsplit.

`--annotations FILE.csv` names clips of untrimmed videos instead, a row each: `path,start,end,label`
(seconds from the video's start, a class name; a header line is allowed). Each row is its own sample,
the frames shown at [start, end) s of `path`, id `<stem>_<start ms>_<end ms>`; classes are the sorted
labels; split '1' puts every clip in 'all', split '2' goes by the video's path, so that the clips of
one video never straddle train and test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import (
    KIND_FRAMES,
    KIND_VIDEO,
    Catalog,
    VideoItem,
    clip_id,
    index_videos,
    missing_problem,
    partition_of_list,
    read_lines,
)

LAYOUT = (
    "ROOT/<class>/<video>.{avi,mp4,mkv,mov,...} or ROOT/<class>/<video>/00001.jpg ... (frame folders, "
    "--frame-fps); label = sorted class index; split 1: every video in 'all', split 2: ~70/30 train/test; "
    "or --annotations MMAction2 video lists (path label), or a clips CSV (path,start,end,label)"
)
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
        VideoItem(
            video_id=Path(rel).stem if kind_of[rel] == KIND_VIDEO else Path(rel).name,
            class_name=rel.split("/")[0],
            label=label_of[rel.split("/")[0]],
            rel_path=rel,
            splits={"1": "all", "2": split2_partition(rel)},
            kind=kind_of[rel],
        )
        for rel in rels
    )
    if annotations and annotations.lower().endswith(".csv"):
        return clips_catalog(root_path, Path(annotations), kind_of)
    if annotations:
        return listed_catalog(root_path, Path(annotations), items, kind_of)
    return Catalog("folder", str(root_path), tuple(classes), items, LAYOUT)


def listed_catalog(root_path: Path, annotations: Path, on_disk: tuple[VideoItem, ...], kind_of: dict) -> Catalog:
    lists = sorted(annotations.glob("*.txt")) if annotations.is_dir() else [annotations]
    if not lists or not lists[0].is_file():
        raise FileNotFoundError(f"folder: no MMAction2 video list (path label) at {annotations}")
    entries: dict[str, tuple[int, str, Path]] = {}  # rel path -> (label, partition, list)
    for list_path in lists:
        for number, line in enumerate(read_lines(list_path), 1):
            fields = line.split()
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise ValueError(f"{list_path}:{number}: expected `path label` (one integer label), got {line!r}")
            rel = fields[0].strip("/")
            if rel in entries:
                raise ValueError(f"{list_path}:{number}: {rel} is listed twice (first in {entries[rel][2].name})")
            entries[rel] = (int(fields[1]), partition_of_list(list_path.name), list_path)
    name_of: dict[int, str] = {}
    for rel, (label, _, _) in sorted(entries.items()):
        name_of.setdefault(label, rel.split("/")[0] if "/" in rel else str(label))
    classes = tuple(name_of.get(label, "") for label in range(max(name_of, default=-1) + 1))
    items = []
    for rel, (label, partition, list_path) in entries.items():
        present = rel in kind_of or (root_path / rel).exists()
        items.append(
            VideoItem(
                video_id=Path(rel).stem if kind_of.get(rel) != KIND_FRAMES else Path(rel).name,
                class_name=classes[label] if label >= 0 else "",
                label=label,
                rel_path=rel,
                splits={"1": partition},
                kind=kind_of.get(rel, KIND_VIDEO),
                problem="" if present else missing_problem(rel, list_path.name),
            )
        )
    items += [
        VideoItem(video_id=i.video_id, class_name=i.class_name, label=-1, rel_path=i.rel_path, kind=i.kind)
        for i in on_disk
        if i.rel_path not in entries
    ]
    return Catalog("folder", str(root_path), classes, tuple(items), LAYOUT)


def clips_catalog(root_path: Path, annotations: Path, kind_of: dict) -> Catalog:
    """A sample per CSV row `path,start,end,label`: a clip of an untrimmed video (see the module docstring)."""
    import csv

    if not annotations.is_file():
        raise FileNotFoundError(f"folder: no clips CSV (path,start,end,label) at {annotations}")
    rows: list[tuple[str, float, float, str]] = []
    with open(annotations, newline="", encoding="utf-8") as f:
        for number, fields in enumerate(csv.reader(f), 1):
            if not fields or (number == 1 and [x.strip().lower() for x in fields[:3]] == ["path", "start", "end"]):
                continue
            try:
                rel, start_s, end_s, label = fields[0].strip().strip("/"), float(fields[1]), float(fields[2]), fields[3]
            except (IndexError, ValueError):
                raise ValueError(
                    f"{annotations}:{number}: expected `path,start,end,label` (seconds), got {','.join(fields)!r}"
                ) from None
            if not 0 <= start_s < end_s:
                raise ValueError(f"{annotations}:{number}: clip [{start_s}, {end_s}) s is empty or negative")
            rows.append((rel, start_s, end_s, label.strip()))
    classes = sorted({label for *_, label in rows})
    label_of = {name: i for i, name in enumerate(classes)}
    items, seen = [], set()
    for rel, start_s, end_s, label in rows:
        video_id = clip_id(Path(rel).stem, start_s, end_s)
        if (rel, video_id) in seen:
            raise ValueError(f"{annotations}: clip {rel} [{start_s}, {end_s}) s is listed twice")
        seen.add((rel, video_id))
        present = kind_of.get(rel) == KIND_VIDEO or (root_path / rel).is_file()
        items.append(
            VideoItem(
                video_id=video_id,
                class_name=label,
                label=label_of[label],
                rel_path=rel,
                splits={"1": "all", "2": split2_partition(rel)},
                start_s=start_s,
                end_s=end_s,
                problem="" if present else missing_problem(rel, annotations.name),
            )
        )
    return Catalog("folder", str(root_path), tuple(classes), tuple(items), LAYOUT)
