"""`flowprep import rawframes`: pack an existing rawframes tree (MMAction2 / denseflow / TSN) into shards.

Nothing is recomputed or re-encoded: every RGB and flow JPEG goes into the sample byte for byte, so old
data streams into `flowprep-train` as it is. A video is a folder `ROOT/<frame_dir>` named by a line
`frame_dir total_frames label` of an MMAction2 rawframe list (`--with-offset`: `frame_dir offset
total_frames label`). Accepted names: RGB `img_00001.jpg` (or `00001.jpg`), flow `flow_x_00001.jpg` /
`flow_y_...` (MMAction2, denseflow) or `x_00001.jpg` / `y_...` (TSN). The numbering convention is
detected per video and recorded in its json (`imported`):
- mmaction2: RGB and flow from the same index (flow k starts at frame k), MMAction2's own layout;
- denseflow: RGB from 1, flow from 0 (flow k starts at frame k+1).
Either way the sample holds N frames and N-1 flows. A missing folder, a gap, an unreadable or non-JPEG
file or a flow count other than N-1 makes that video a failed row naming the file, as in `extract`.
Shards, manifest, plan and resume are the extractor's own (a re-run resumes; every video once).
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from . import __version__
from . import format as fmt
from .cli_config import REQUIRED, coerce_fields, fingerprint, option, to_dict
from .core import VideoResult
from .datasets import KIND_FRAMES, VideoItem, partition_of_list
from .decode import VideoError
from .frames import order_frames

FLOW_NAME = re.compile(r"^(?P<prefix>flow_[xy]_|[xy]_)(?P<index>\d+)\.jpe?g$", re.IGNORECASE)


@dataclass(frozen=True)
class ImportConfig:
    """The one config of `flowprep import rawframes`; written to OUT/config.json. Every field is content: a
    re-run resumes only with the same settings (and, unlike `extract`, the same --out and task sizes)."""

    root: str = option(
        REQUIRED,
        "The rawframes tree; the lists' frame_dir are relative to it.",
        content=True,
        cli={"required": True, "show_default": False},
    )
    # each list's partition comes from its file name
    lists: tuple[str, ...] = option(
        REQUIRED,
        "MMAction2 rawframe list (frame_dir total_frames label), repeatable; partition from its name.",
        content=True,
        cli={"flag": "--list", "multiple": True, "required": True, "show_default": False},
    )
    out: str = option(REQUIRED, "Output folder or URL.", content=True, cli={"required": True, "show_default": False})
    dataset: str = option("rawframes", "Dataset name recorded in every sample.", content=True)
    label_map: str | None = option(
        None, "Class names, one a line, in label order.", content=True, cli={"show_default": False}
    )  # MMAction2's label_map files
    with_offset: bool = option(
        False, "List lines are `frame_dir offset total_frames label`.", content=True, cli={"show_default": False}
    )
    # TSN / denseflow quantized with 20
    bound_px: float = option(
        fmt.DEFAULT_BOUND_PX, "Bound (px) the flow JPEGs were quantized with.", content=True, cli={"flag": "--bound"}
    )
    videos_per_task: int = option(32, "The most videos a task (and its shard) holds.", content=True)
    shard_max_bytes: int = option(
        512 * 2**20,
        "Roll over to a new shard past this size.",
        content=True,
        cli={"flag": "--shard-max-mb", "type": int, "default": 512, "callback": lambda ctx, param, mb: mb * 2**20},
    )
    # imported lists make one split (packing is I/O: done in this process, no Ray); no flag
    split: str = option("1", "The split id the lists' partitions are recorded under.", content=True)

    def __post_init__(self) -> None:
        coerce_fields(self)
        if not self.lists:
            raise ValueError("at least one --list is needed")
        if self.videos_per_task < 1 or not 0 < self.bound_px <= 1000:
            raise ValueError(f"bad videos_per_task {self.videos_per_task} or bound_px {self.bound_px}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def content_fingerprint(self) -> str:
        return fingerprint(self)


def parse_list(text: str, source: str, with_offset: bool, classes: list[str]) -> list[tuple[str, int, int]]:
    """(frame_dir, total_frames, label) per line; a malformed or multi-label line raises naming it."""
    entries = []
    fields_expected = 4 if with_offset else 3
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != fields_expected:
            more = (
                " (multi-label lists are not supported: a sample has one label)"
                if len(fields) > fields_expected
                else ""
            )
            raise ValueError(
                f"{source}:{number}: expected {fields_expected} fields "
                f"({'frame_dir offset total_frames label' if with_offset else 'frame_dir total_frames label'}), "
                f"got {line!r}{more}"
            )
        try:
            total, label = int(fields[-2]), int(fields[-1])
        except ValueError:
            raise ValueError(f"{source}:{number}: total_frames and label must be integers: {line!r}") from None
        if classes and not -1 <= label < len(classes):  # -1: unlabeled (a test list, as export writes it)
            raise ValueError(f"{source}:{number}: label {label} outside the label map's 0..{len(classes) - 1}")
        entries.append((fields[0].strip("/"), total, label))
    return entries


def in_order(by_index: dict[int, str], what: str) -> list[str]:
    """File names by consecutive number; VideoError naming the file before the first gap."""
    if not by_index:
        return []
    first, last = min(by_index), max(by_index)
    if last - first + 1 != len(by_index):
        gap = next(i for i in range(first, last + 1) if i not in by_index)
        raise VideoError(
            "missing frames",
            f"{what} {gap} missing after {by_index[gap - 1]} ({len(by_index)} files numbered {first}..{last})",
        )
    return [by_index[i] for i in range(first, last + 1)]


def numbered(names: list[str]) -> tuple[list[str], dict[str, list[str]], str]:
    """RGB frame files in order, flow files per axis in order, and the flow prefix style ('flow_' or '')."""
    rgb = order_frames(names)
    flows: dict[str, dict[int, str]] = {"x": {}, "y": {}}
    styles = set()
    for name in names:
        match = FLOW_NAME.match(name)
        if match:
            prefix = match["prefix"].lower()  # 'flow_x_' or 'x_'
            if int(match["index"]) in flows[prefix[-2]]:
                raise VideoError("duplicate frames", f"{flows[prefix[-2]][int(match['index'])]} and {name}")
            flows[prefix[-2]][int(match["index"])] = name
            styles.add(prefix[:-2])
    if len(styles) > 1:
        raise VideoError("mixed frame names", "flow files named both flow_x_... and x_...")
    ordered = {axis: in_order(by_index, f"flow {axis}") for axis, by_index in flows.items()}
    if sorted(flows["x"]) != sorted(flows["y"]):
        raise VideoError(
            "missing frames",
            f"flow x and flow y are numbered differently ({len(flows['x'])} x files, {len(flows['y'])} y files)",
        )
    return rgb, ordered, styles.pop() if styles else ""


def first_index(name: str) -> int:
    return int(re.findall(r"\d+", name)[-1])


def jpeg_checked(data: bytes, name: str, color: bool):
    """Decoded image of a JPEG that goes into the sample as is; VideoError naming `name` otherwise."""
    import cv2
    import numpy as np

    if data[:2] != b"\xff\xd8":
        raise VideoError("unreadable frame", f"{name}: not a JPEG ({len(data)} bytes); shards hold JPEG members")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise VideoError("unreadable frame", f"{name}: does not decode ({len(data)} bytes)")
    return image


def pack_rawframes(
    names: list[str], read, meta: dict, listed_frames: int, bound_px: float
) -> tuple[dict[str, bytes], int]:
    """One video's files -> sample members (bytes unchanged) and its frame count. `read(name) -> bytes`."""
    rgb, flows, flow_style = numbered(names)
    n = len(rgb)
    if n < 2:
        raise VideoError("too few frames", f"{n} frame(s); flow needs at least 2")
    if len(flows["x"]) != n - 1:
        raise VideoError(
            "flow count",
            f"{n} RGB frames ({rgb[0]}..{rgb[-1]}) but {len(flows['x'])} flow pairs; "
            f"a sample holds N-1 flows for N frames",
        )
    if listed_frames not in (n, n - 1):
        raise VideoError(
            "list mismatch", f"the list says {listed_frames} frames, the folder holds {n} RGB and {n - 1} flows"
        )
    rgb_first = first_index(rgb[0])
    flow_first = first_index(flows["x"][0])
    if flow_first == rgb_first:
        numbering = "mmaction2"
    elif flow_first == rgb_first - 1:
        numbering = "denseflow"
    else:
        raise VideoError(
            "frame numbering",
            f"RGB starts at {rgb[0]}, flow at {flows['x'][0]}: neither the same "
            f"index (MMAction2) nor one less (denseflow)",
        )
    members: dict[str, bytes] = {}
    height = width = 0
    for index, name in enumerate(rgb):
        data = read(name)
        image = jpeg_checked(data, name, color=True)
        if index == 0:
            height, width = image.shape[:2]
        elif image.shape[:2] != (height, width):
            raise VideoError("frame size", f"{name}: {image.shape[1]}x{image.shape[0]}, {rgb[0]} is {width}x{height}")
        members[fmt.frame_member(fmt.RGB, index)] = data
    for axis, kind in (("x", fmt.FLOW_X), ("y", fmt.FLOW_Y)):
        for index, name in enumerate(flows[axis]):
            data = read(name)
            image = jpeg_checked(data, name, color=False)
            if image.shape[:2] != (height, width):
                raise VideoError(
                    "frame size", f"{name}: {image.shape[1]}x{image.shape[0]}, the RGB frames are {width}x{height}"
                )
            members[fmt.frame_member(kind, index)] = data
    record = {
        "format_version": fmt.FORMAT_VERSION,
        "key": fmt.make_key(meta["class"] or "unlabeled", meta["id"]),
        "id": meta["id"],
        "dataset": meta["dataset"],
        "label": int(meta["label"]),
        "class": meta["class"],
        "splits": meta["splits"],
        "source": meta["source"],
        "input": "rawframes",
        "num_frames": n,
        "num_flows": n - 1,
        "height": height,
        "width": width,
        "fps": None,
        "imported": {
            "numbering": numbering,
            "rgb_first": rgb[0],
            "flow_first": flows["x"][0],
            "flow_names": f"{flow_style}x_",
            "list": meta["list"],
            "list_total_frames": listed_frames,
        },
        "flow": {"backend": "imported", "params": {}, "bound_px": bound_px, "jpeg_quality": None},
        "rgb_jpeg_quality": None,
        "versions": {"flowprep": __version__},
    }
    members["json"] = json.dumps(record, sort_keys=True).encode()
    members["cls"] = str(int(meta["label"])).encode()
    return members, n


def catalog_items(cfg: ImportConfig, fs, classes: list[str]) -> list[tuple[VideoItem, str, int]]:
    """(item, list file, listed total_frames) for every line of every list, in list order."""
    items: list[tuple[VideoItem, str, int]] = []
    seen: dict[str, str] = {}
    for list_path in cfg.lists:
        with fs.open(list_path, "rb") as f:
            entries = parse_list(f.read().decode("utf-8", errors="replace"), list_path, cfg.with_offset, classes)
        partition = partition_of_list(list_path)
        for frame_dir, total, label in entries:
            if frame_dir in seen:
                raise ValueError(f"{list_path}: {frame_dir} is listed twice (first in {seen[frame_dir]})")
            seen[frame_dir] = list_path
            parent, _, video = frame_dir.rpartition("/")
            class_name = (classes[label] if label >= 0 else "") if classes else parent.rsplit("/", 1)[-1]
            items.append(
                (
                    VideoItem(
                        video_id=video,
                        class_name=class_name,
                        label=label,
                        rel_path=frame_dir,
                        splits={cfg.split: partition},
                        kind=KIND_FRAMES,
                    ),
                    list_path,
                    total,
                )
            )
    return items


def read_label_map(fs, path: str | None) -> list[str]:
    if not path:
        return []
    with fs.open(path, "rb") as f:
        return [line.strip() for line in f.read().decode().splitlines() if line.strip()]


def run_import(cfg: ImportConfig, log=print) -> dict:
    """Pack every listed folder (resuming a previous run); returns the job summary `extract` also gives."""
    from .plan import Task, count_tasks
    from .shard_job import finish, open_job, publish, write_items
    from .storage import filesystem, join

    started = time.time()
    fs_in, root = filesystem(cfg.root)
    if not fs_in.isdir(root):
        raise FileNotFoundError(f"rawframes root {cfg.root}: no such folder")
    classes = read_label_map(fs_in, cfg.label_map)
    listed = catalog_items(cfg, fs_in, classes)
    info = {item.rel_path: (list_path, total) for item, list_path, total in listed}
    items = [item for item, _, _ in listed]
    if not classes:  # no label map: the class folder of the first video of each label
        by_label: dict[int, str] = {}
        for item in items:
            by_label.setdefault(item.label, item.class_name)
        classes = [by_label.get(label, "") for label in range(max(by_label, default=-1) + 1)]
    job = open_job(cfg, items, lambda: count_tasks(items, cfg.split, cfg.videos_per_task), {"classes": classes})

    def import_video(item: VideoItem) -> VideoResult:
        """One listed folder -> its sample; VideoError (or OSError: an unreadable file) for its problems."""
        folder = join(root, item.rel_path)
        list_path, total = info[item.rel_path]
        meta = {**item.meta(cfg.dataset), "list": list_path.rsplit("/", 1)[-1]}
        t0 = time.perf_counter()
        if not fs_in.isdir(folder):
            raise VideoError("missing", f"listed in {meta['list']} but no such folder under the root")
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs_in.ls(folder, detail=False)]
        members, frames = pack_rawframes(
            names, lambda name: fs_in.cat_file(join(folder, name)), meta, total, cfg.bound_px
        )
        key = fmt.make_key(item.class_name or "unlabeled", item.video_id)
        return VideoResult(key, members, frames, {"decode": time.perf_counter() - t0})

    def fill(writer: Any, task: Task) -> list[dict[str, Any]]:
        return write_items(writer, task, cfg, "import", import_video, unreadable=(OSError,))

    for task in job.todo:
        publish(job.fs, job.out, task, cfg.shard_max_bytes, functools.partial(fill, task=task))
    return finish(job, [], started, retried_tasks=0)
