"""A long video cut into ranges over several workers: each range writes a piece file, one job assembles them.

Each range of a ranged video (`core.PairRange`) writes one piece file, `_pieces/<task>/<first pair>.tar`,
atomically: its members and its outcome. When every piece exists, the assembly job puts their members
together into the sample (byte-identical to the unsplit one), writes it like any task and, last, its
part; then the pieces go. A range killed mid-way is redone; an assembly killed mid-way leaves no part,
so it is redone from the pieces.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable

from . import format as fmt
from .config import ExtractConfig
from .datasets import VideoItem
from .manifest import STATUS_FAILED, STATUS_OK
from .plan import Task, base_row
from .shard_job import failure, ok_fields, publish
from .storage import join, write_bytes_atomic
from .task import Extractor, worker_name

PIECES_DIR = "_pieces"


def piece_path(out: str, task: Task, range_index: int) -> str:
    return join(pieces_dir(out, task), f"{task.ranges[range_index].first:09d}.tar")


def pieces_dir(out: str, task: Task) -> str:
    return join(out, PIECES_DIR, f"{task.partition}-{task.index:05d}")


def remove_pieces(fs, out: str, task: Task) -> None:
    """A ranged task's piece files, once its part is published (before: they are the work done so far)."""
    try:
        fs.rm(pieces_dir(out, task), recursive=True)
    except FileNotFoundError:
        pass


def pieces_done(fs, out: str, task: Task) -> set[int]:
    names = {p.rsplit("/", 1)[-1] for p in fs.glob(join(pieces_dir(out, task), "*.tar"))}
    return {k for k in range(len(task.ranges)) if piece_path(out, task, k).rsplit("/", 1)[-1] in names}


def run_range(
    task: Task, range_index: int, cfg: ExtractConfig, known_bad: dict[str, str] | None = None, flow=None
) -> dict:
    """One range of a ranged video into its piece file: the members, and the outcome (ok or the failure)."""
    (item,) = task.items
    extractor = Extractor(cfg, flow)
    outcome: dict = {"status": STATUS_OK, "worker": worker_name()}
    members: dict[str, bytes] = {}
    try:
        result = extractor.video(item, known_bad, task.ranges[range_index])
    except Exception as exc:
        outcome.update(failure(item, exc))
    else:
        members = result.members
        outcome.update(num_frames=result.num_frames, seconds=result.seconds)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in {"outcome.json": json.dumps(outcome).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    write_bytes_atomic(extractor.fs_out, piece_path(extractor.out, task, range_index), buf.getvalue())
    frames = outcome.get("num_frames", 0)
    return {"videos": 0, "ok": 0, "failed": 0, "frames": frames, "bytes": 0}


def read_piece(fs, path: str) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(fs.cat_file(path)), mode="r") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return json.loads(members.pop("outcome.json")), members


def assemble(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None) -> dict:
    """The ranged video's sample from its pieces, written like a one-video task; then the pieces go."""
    (item,) = task.items
    extractor = Extractor(cfg, compute=False)  # nothing is computed here
    fs = extractor.fs_out
    outcomes, members = [], {}
    for k in range(len(task.ranges)):
        outcome, piece = read_piece(fs, piece_path(extractor.out, task, k))
        outcomes.append(outcome)
        members.update(piece)
    row = {**base_row(item, cfg), "task": task.index, "worker": outcomes[-1]["worker"]}
    failed = next((o for o in outcomes if o["status"] == STATUS_FAILED), None)  # the first range's problem first
    if failed is None:
        failed = missing_members(item, members)

    def fill(writer) -> list[dict]:
        if failed is not None:
            row.update(status=STATUS_FAILED, cause=failed["cause"], error=failed["error"])
        else:
            record = json.loads(members["json"])
            seconds = {stage: sum(o["seconds"][stage] for o in outcomes) for stage in outcomes[-1]["seconds"]}
            t0 = time.perf_counter()
            shard = writer.write(record["key"], members)
            row.update(
                ok_fields(
                    shard,
                    record["num_frames"],
                    sum(len(d) for d in members.values()),
                    seconds,
                    time.perf_counter() - t0,
                    cfg.flow_layout().num_flows(record["num_frames"]),
                )
            )
        if on_video:
            on_video(row)
        return [row]

    summary = publish(fs, extractor.out, task, cfg.shard_max_bytes, fill)
    remove_pieces(fs, extractor.out, task)
    return {**summary, "frames": 0}  # the ranges counted the frames as they went


def missing_members(item: VideoItem, members: dict[str, bytes]) -> dict | None:
    """A failure when the pieces do not hold every frame and flow of the video exactly once (a bug)."""
    if "json" not in members:
        return {"cause": "internal error", "error": f"{item.rel_path}: no json in the last range's piece"}
    num_frames = json.loads(members["json"])["num_frames"]
    expected = (
        {fmt.frame_member(fmt.RGB, i) for i in range(num_frames)}
        | {fmt.frame_member(kind, i) for kind in (fmt.FLOW_X, fmt.FLOW_Y) for i in range(num_frames - 1)}
        | {"json", "cls"}
    )
    if set(members) != expected:
        odd = sorted(set(members) ^ expected)
        return {
            "cause": "internal error",
            "error": f"{item.rel_path}: pieces do not add up to the video "
            f"({len(odd)} members missing or extra, e.g. {odd[0]})",
        }
    return None
