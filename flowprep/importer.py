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

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass

from . import __version__, format as fmt
from .datasets import KIND_FRAMES, VideoItem, partition_of_list
from .decode import VideoError
from .frames import order_frames

FLOW_NAME = re.compile(r"^(?P<prefix>flow_[xy]_|[xy]_)(?P<index>\d+)\.jpe?g$", re.IGNORECASE)


@dataclass(frozen=True)
class ImportConfig:
    """The one config of `flowprep import rawframes`; written to OUT/config.json."""

    root: str  # the rawframes tree (the lists' frame_dir are relative to it)
    lists: tuple[str, ...]  # MMAction2 rawframe lists; each list's partition comes from its file name
    out: str
    dataset: str = "rawframes"  # the name recorded in every sample
    label_map: str | None = None  # class names, one a line, in label order (MMAction2's label_map files)
    with_offset: bool = False  # list lines are `frame_dir offset total_frames label`
    bound_px: float = fmt.DEFAULT_BOUND_PX  # the bound the flow JPEGs were quantized with (TSN / denseflow: 20)
    videos_per_task: int = 32
    shard_max_bytes: int = 512 * 2**20
    split: str = "1"  # imported lists make one split (packing is I/O: done in this process, no Ray)

    def __post_init__(self):
        if not self.lists:
            raise ValueError("at least one --list is needed")
        if self.videos_per_task < 1 or not 0 < self.bound_px <= 1000:
            raise ValueError(f"bad videos_per_task {self.videos_per_task} or bound_px {self.bound_px}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def content_fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def parse_list(text: str, source: str, with_offset: bool, classes: list[str]) -> list[tuple[str, int, int]]:
    """(frame_dir, total_frames, label) per line; a malformed or multi-label line raises naming it."""
    entries = []
    fields_expected = 4 if with_offset else 3
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != fields_expected:
            more = " (multi-label lists are not supported: a sample has one label)" if len(fields) > fields_expected else ""
            raise ValueError(f"{source}:{number}: expected {fields_expected} fields "
                             f"({'frame_dir offset total_frames label' if with_offset else 'frame_dir total_frames label'}), "
                             f"got {line!r}{more}")
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
        raise VideoError("missing frames", f"{what} {gap} missing after {by_index[gap - 1]} "
                                           f"({len(by_index)} files numbered {first}..{last})")
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
        raise VideoError("missing frames", f"flow x and flow y are numbered differently "
                                           f"({len(flows['x'])} x files, {len(flows['y'])} y files)")
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


def pack_rawframes(names: list[str], read, meta: dict, listed_frames: int, bound_px: float) -> tuple[dict[str, bytes], int]:
    """One video's files -> sample members (bytes unchanged) and its frame count. `read(name) -> bytes`."""
    rgb, flows, flow_style = numbered(names)
    n = len(rgb)
    if n < 2:
        raise VideoError("too few frames", f"{n} frame(s); flow needs at least 2")
    if len(flows["x"]) != n - 1:
        raise VideoError("flow count", f"{n} RGB frames ({rgb[0]}..{rgb[-1]}) but {len(flows['x'])} flow pairs; "
                                       f"a sample holds N-1 flows for N frames")
    if listed_frames not in (n, n - 1):
        raise VideoError("list mismatch", f"the list says {listed_frames} frames, the folder holds {n} RGB "
                                          f"and {n - 1} flows")
    rgb_first = first_index(rgb[0])
    flow_first = first_index(flows["x"][0])
    if flow_first == rgb_first:
        numbering = "mmaction2"
    elif flow_first == rgb_first - 1:
        numbering = "denseflow"
    else:
        raise VideoError("frame numbering", f"RGB starts at {rgb[0]}, flow at {flows['x'][0]}: neither the same "
                                            f"index (MMAction2) nor one less (denseflow)")
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
                raise VideoError("frame size", f"{name}: {image.shape[1]}x{image.shape[0]}, the RGB frames are {width}x{height}")
            members[fmt.frame_member(kind, index)] = data
    record = {
        "format_version": fmt.FORMAT_VERSION, "key": fmt.make_key(meta["class"] or "unlabeled", meta["id"]),
        "id": meta["id"], "dataset": meta["dataset"], "label": int(meta["label"]), "class": meta["class"],
        "splits": meta["splits"], "source": meta["source"], "input": "rawframes",
        "num_frames": n, "num_flows": n - 1, "height": height, "width": width, "fps": None,
        "imported": {"numbering": numbering, "rgb_first": rgb[0], "flow_first": flows["x"][0],
                     "flow_names": f"{flow_style}x_", "list": meta["list"], "list_total_frames": listed_frames},
        "flow": {"backend": "imported", "params": {}, "bound_px": bound_px, "jpeg_quality": None},
        "rgb_jpeg_quality": None, "versions": {"flowprep": __version__},
    }
    members["json"] = json.dumps(record, sort_keys=True).encode()
    members["cls"] = str(int(meta["label"])).encode()
    return members, n


def catalog_items(cfg: ImportConfig, fs, classes: list[str]) -> list[tuple[VideoItem, str, int]]:
    """(item, list file, listed total_frames) for every line of every list, in list order."""
    items, seen = [], {}
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
            items.append((VideoItem(video_id=video, class_name=class_name, label=label, rel_path=frame_dir,
                                    splits={cfg.split: partition}, kind=KIND_FRAMES), list_path, total))
    return items


def run_import(cfg: ImportConfig, log=print) -> dict:
    """Pack every listed folder (resuming a previous run); returns the job summary `extract` also gives."""
    from .manifest import STATUS_FAILED, STATUS_OK, add_shard_digests, done_parts, write_part
    from .plan import Task, base_row, read_plan, write_plan
    from .report import merge_manifest
    from .shards import ShardWriter, task_shard_paths
    from .storage import filesystem, join, remove_quietly, write_bytes_atomic

    started = time.time()
    fs_in, root = filesystem(cfg.root)
    fs_out, out = filesystem(cfg.out)
    if not fs_in.isdir(root):
        raise FileNotFoundError(f"rawframes root {cfg.root}: no such folder")
    classes = []
    if cfg.label_map:
        with fs_in.open(cfg.label_map, "rb") as f:
            classes = [line.strip() for line in f.read().decode().splitlines() if line.strip()]
    listed = catalog_items(cfg, fs_in, classes)
    info = {item.rel_path: (list_path, total) for item, list_path, total in listed}
    by_partition: dict[str, list[VideoItem]] = {}
    for item, _, _ in listed:
        by_partition.setdefault(item.splits[cfg.split], []).append(item)
    tasks = [Task(index, partition, tuple(items[start:start + cfg.videos_per_task]))
             for partition, items in sorted(by_partition.items())
             for index, start in enumerate(range(0, len(items), cfg.videos_per_task))]
    fs_out.makedirs(out, exist_ok=True)
    planned = read_plan(fs_out, out, cfg, [item for item, _, _ in listed])  # an earlier run's plan wins
    if planned is None:
        write_plan(fs_out, out, cfg, tasks)
    else:
        tasks = planned
    if not classes:  # no label map: the class folder of the first video of each label
        by_label = {}
        for item, _, _ in listed:
            by_label.setdefault(item.label, item.class_name)
        classes = [by_label.get(label, "") for label in range(max(by_label, default=-1) + 1)]
    resolved = {**cfg.to_dict(), "fingerprint": cfg.content_fingerprint(), "classes": classes}
    write_bytes_atomic(fs_out, join(out, fmt.CONFIG_FILE), json.dumps(resolved, indent=2).encode())

    done = done_parts(fs_out, out)
    todo = [t for t in tasks if t.part_name not in done]
    for task in todo:
        remove_quietly(fs_out, task_shard_paths(fs_out, out, task.partition, task.index))
        writer = ShardWriter(fs_out, out, task.partition, task.index, cfg.shard_max_bytes)
        rows = []
        try:
            for item in task.items:
                row = {**base_row(item, cfg), "task": task.index, "worker": "import"}
                folder = join(root, item.rel_path)
                list_path, total = info[item.rel_path]
                meta = {"id": item.video_id, "label": item.label, "class": item.class_name, "splits": item.splits,
                        "source": item.rel_path, "dataset": cfg.dataset, "list": list_path.rsplit("/", 1)[-1]}
                t0 = time.perf_counter()
                try:
                    if not fs_in.isdir(folder):
                        raise VideoError("missing", f"listed in {meta['list']} but no such folder under the root")
                    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs_in.ls(folder, detail=False)]
                    members, frames = pack_rawframes(names, lambda name: fs_in.cat_file(join(folder, name)), meta,
                                                     total, cfg.bound_px)
                except VideoError as exc:
                    row.update(status=STATUS_FAILED, cause=exc.cause, error=f"{item.rel_path}: {exc}")
                except OSError as exc:
                    row.update(status=STATUS_FAILED, cause="unreadable file", error=f"{item.rel_path}: {exc!r}")
                else:
                    t1 = time.perf_counter()
                    shard = writer.write(fmt.make_key(item.class_name or "unlabeled", item.video_id), members)
                    row.update(status=STATUS_OK, shard=shard, frames=frames, flows=frames - 1,
                               bytes=sum(len(v) for v in members.values()), seconds_decode=t1 - t0,
                               seconds_write=time.perf_counter() - t1)
                rows.append(row)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        add_shard_digests(rows, writer.digests)
        write_part(fs_out, out, task.partition, task.index, rows)
    report = merge_manifest(fs_out, out, [], [join(out, fmt.PARTS_DIR, t.part_name) for t in tasks])
    for partition, names in report.shards.items():
        write_bytes_atomic(fs_out, join(out, partition + fmt.SHARD_LIST_SUFFIX), ("\n".join(sorted(names)) + "\n").encode())
    summary = report.to_dict(time.time() - started, tasks=len(tasks), resumed_tasks=len(tasks) - len(todo), retried_tasks=0)
    write_bytes_atomic(fs_out, join(out, "report.json"), json.dumps(summary, indent=2).encode())
    return summary
