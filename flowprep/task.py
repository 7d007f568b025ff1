"""The body of a job, run on a worker: a task's videos into shards, a range of a split video, or its assembly.

A task writes its shards straight to the destination and, last, its manifest part: a task whose part
exists is done. A split video's ranges each write one piece file (`_pieces/<task>/<first pair>.tar`,
atomically); when every piece exists, the assembly job puts their members together into the sample
(byte-identical to the unsplit one: `core.PairRange`), writes it like any task and, last, its part. A
range killed mid-way is redone; an assembly killed mid-way leaves no part, so it is redone from the pieces.
"""
from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from . import format as fmt
from .config import ExtractConfig
from .datasets import KIND_FRAMES, VideoItem
from .errors import last_line
from .manifest import STATUS_FAILED, STATUS_OK, write_part
from .plan import Task, base_row
from .storage import filesystem, is_local, join, remove_quietly, write_bytes_atomic

PIECES_DIR = "_pieces"


@dataclass(frozen=True)
class Job:
    """What one worker runs: a whole task, range `range_index` of a split task, or a split task's assembly."""

    task: Task
    range_index: int | None = None
    assemble: bool = False

    @property
    def name(self) -> str:
        base = self.task.part_name
        return base if self.range_index is None and not self.assemble else \
            f"{base}#assemble" if self.assemble else f"{base}#range{self.range_index}"


def jobs_to_run(tasks: list[Task], fs, out: str) -> list[Job]:
    """The jobs of unfinished `tasks`: a split task's missing ranges, or its assembly once none is missing."""
    jobs = []
    for task in tasks:
        if not task.is_split:
            jobs.append(Job(task))
            continue
        done = pieces_done(fs, out, task)
        missing = [Job(task, k) for k in range(len(task.ranges)) if k not in done]
        jobs.extend(missing or [Job(task, assemble=True)])
    return jobs


class JobQueue:
    """Jobs in run order; a split task's assembly joins the front as soon as its last range is done."""

    def __init__(self, jobs: list[Job]):
        import collections

        self.queue = collections.deque(jobs)
        self.ranges_left: dict[tuple[str, int], int] = collections.Counter(
            (j.task.partition, j.task.index) for j in jobs if j.range_index is not None)

    def __bool__(self) -> bool:
        return bool(self.queue)

    def __len__(self) -> int:
        return len(self.queue)

    def pop(self) -> Job:
        return self.queue.popleft()

    def finished(self, job: Job) -> None:
        if job.range_index is None:
            return
        key = (job.task.partition, job.task.index)
        self.ranges_left[key] -= 1
        if self.ranges_left[key] == 0:
            self.queue.appendleft(Job(job.task, assemble=True))


def worker_threads(cfg: ExtractConfig) -> int:
    if cfg.threads_per_worker:
        return cfg.threads_per_worker
    return max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.ray_address is None else 1


def run_job(job: Job, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None,
            known_bad: dict[str, str] | None = None, flow=None) -> dict:
    """Runs `job`; returns its summary, with where and when it ran (the report's utilization)."""
    started_at = time.time()
    if job.assemble:
        summary = assemble(job.task, cfg, on_video)
    elif job.range_index is not None:
        summary = run_range(job.task, job.range_index, cfg, known_bad, flow)
    else:
        summary = run_task(job.task, cfg, on_video, known_bad, flow)
    return {**summary, "job": job.name, "worker": worker_name(), "started_at": started_at, "ended_at": time.time(),
            "cpus": worker_threads(cfg)}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Extractor:
    """What every job of one config needs on a worker: the file systems, settings and flow backend."""

    def __init__(self, cfg: ExtractConfig, flow=None, compute: bool = True):
        import cv2

        from .flow import create_backend

        threads = worker_threads(cfg)
        cv2.setNumThreads(threads)
        self.cfg = cfg
        self.fs_out, self.out = filesystem(cfg.out)
        self.fs_in, self.root = filesystem(cfg.root)
        self.settings = cfg.video_settings(decode_threads=threads)  # FFmpeg would start a thread per core
        self.backend = None if not compute else flow if flow is not None else \
            create_backend(cfg.flow_backend, **dict(cfg.flow_params))

    def video(self, item: VideoItem, known_bad: dict[str, str] | None, pairs=None):
        """The VideoResult of `item` (or of its range `pairs`); VideoError or OSError for its problems."""
        from .core import process_video
        from .decode import VideoError

        cfg, fs_in = self.cfg, self.fs_in
        path = join(self.root, item.rel_path)
        meta = {"id": item.video_id, "label": item.label, "class": item.class_name, "splits": item.splits,
                "source": item.rel_path, "dataset": cfg.dataset}
        if item.rel_path in (known_bad or {}):
            raise VideoError("worker crashed", known_bad[item.rel_path])
        if item.kind == KIND_FRAMES:  # a folder of numbered images, read through fs_in frame by frame
            from .frames import open_frame_folder
            return process_video(open_frame_folder(fs_in, path, cfg.frame_fps), meta, self.settings, self.backend, pairs)
        if fs_in.size(path) == 0:
            raise VideoError("empty file", "zero bytes")
        if is_local(cfg.root):  # FFmpeg's own file IO is faster than a Python file object
            return process_video(path, meta, self.settings, self.backend, pairs)
        with fs_in.open(path, "rb") as f:
            return process_video(f, meta, self.settings, self.backend, pairs)


def failure(item: VideoItem, exc: Exception) -> dict:
    """The row fields of a video that failed with `exc` (one line naming the file and the cause)."""
    from .decode import VideoError

    if isinstance(exc, VideoError):
        return {"status": STATUS_FAILED, "cause": exc.cause, "error": f"{item.rel_path}: {exc}"}
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return {"status": STATUS_FAILED, "cause": "unreadable file", "error": f"{item.rel_path}: {exc!r}"}
    last = last_line(traceback.format_exc(limit=-1))
    return {"status": STATUS_FAILED, "cause": "internal error", "error": f"{item.rel_path}: {exc!r} ({last})"}


def ok_fields(shard: str, num_frames: int, nbytes: int, seconds: dict[str, float], write_s: float) -> dict:
    return dict(status=STATUS_OK, shard=shard, frames=num_frames, flows=num_frames - 1, bytes=nbytes,
                seconds_write=write_s, **{f"seconds_{k}": v for k, v in seconds.items()})


def run_task(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None,
             known_bad: dict[str, str] | None = None, flow=None) -> dict:
    """Extract every video of `task` into its shards, then publish its manifest part. Returns a summary.
    `known_bad` (rel_path -> why) become failed rows untried: videos that killed earlier attempts.
    `flow`: a backend to use instead of building one (a `RemoteFlow` computing on a flow actor)."""
    extractor = _Extractor(cfg, flow)
    rows = []

    def each_video(writer):
        for item in task.items:
            row = {**base_row(item, cfg), "task": task.index, "worker": worker_name()}
            try:
                result = extractor.video(item, known_bad)
            except Exception as exc:  # a bug or an exotic file must not take the other videos down
                row.update(failure(item, exc))
            else:
                t0 = time.perf_counter()
                shard = writer.write(result.key, result.members)
                row.update(ok_fields(shard, result.num_frames, result.nbytes(), result.seconds, time.perf_counter() - t0))
            rows.append(row)
            if on_video:
                on_video(row)

    return publish(extractor, task, each_video, rows)


def publish(extractor: _Extractor, task: Task, fill: Callable, rows: list[dict]) -> dict:
    """Shards of `task` written by `fill(writer)` (which appends to `rows`), then its part."""
    from .shards import ShardWriter, task_shard_paths

    fs_out, out = extractor.fs_out, extractor.out
    # A previous attempt of this task may have published some shards before dying: start clean.
    remove_quietly(fs_out, task_shard_paths(fs_out, out, task.partition, task.index))
    writer = ShardWriter(fs_out, out, task.partition, task.index, extractor.cfg.shard_max_bytes)
    try:
        fill(writer)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    write_part(fs_out, out, task.partition, task.index, rows)
    return summarize_rows(rows)


def summarize_rows(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == STATUS_OK]
    return {"videos": len(rows), "ok": len(ok), "failed": sum(r["status"] == STATUS_FAILED for r in rows),
            "frames": sum(r["frames"] for r in ok), "bytes": sum(r["bytes"] for r in ok)}


# ---- split videos ----------------------------------------------------------------------------

def piece_path(out: str, task: Task, range_index: int) -> str:
    return join(pieces_dir(out, task), f"{task.ranges[range_index].first:09d}.tar")


def pieces_dir(out: str, task: Task) -> str:
    return join(out, PIECES_DIR, f"{task.partition}-{task.index:05d}")


def remove_pieces(fs, out: str, task: Task) -> None:
    """A split task's piece files, once its part is published (before: they are the work done so far)."""
    try:
        fs.rm(pieces_dir(out, task), recursive=True)
    except FileNotFoundError:
        pass


def pieces_done(fs, out: str, task: Task) -> set[int]:
    names = {p.rsplit("/", 1)[-1] for p in fs.glob(join(pieces_dir(out, task), "*.tar"))}
    return {k for k in range(len(task.ranges)) if piece_path(out, task, k).rsplit("/", 1)[-1] in names}


def run_range(task: Task, range_index: int, cfg: ExtractConfig, known_bad: dict[str, str] | None = None,
              flow=None) -> dict:
    """One range of a split video into its piece file: the members, and the outcome (ok or the failure)."""
    (item,) = task.items
    extractor = _Extractor(cfg, flow)
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
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return json.loads(members.pop("outcome.json")), members


def assemble(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None) -> dict:
    """The split video's sample from its pieces, written like a one-video task; then the pieces go."""
    (item,) = task.items
    extractor = _Extractor(cfg, compute=False)  # nothing is computed here
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
    rows = [row]

    def fill(writer):
        if failed is not None:
            row.update(status=STATUS_FAILED, cause=failed["cause"], error=failed["error"])
        else:
            record = json.loads(members["json"])
            seconds = {stage: sum(o["seconds"][stage] for o in outcomes) for stage in outcomes[-1]["seconds"]}
            t0 = time.perf_counter()
            shard = writer.write(record["key"], members)
            row.update(ok_fields(shard, record["num_frames"], sum(len(d) for d in members.values()), seconds,
                                 time.perf_counter() - t0))
        if on_video:
            on_video(row)

    summary = publish(extractor, task, fill, rows)
    remove_pieces(fs, extractor.out, task)
    return {**summary, "frames": 0}  # the ranges counted the frames as they went


def missing_members(item: VideoItem, members: dict[str, bytes]) -> dict | None:
    """A failure when the pieces do not hold every frame and flow of the video exactly once (a bug)."""
    if "json" not in members:
        return {"cause": "internal error", "error": f"{item.rel_path}: no json in the last range's piece"}
    num_frames = json.loads(members["json"])["num_frames"]
    expected = {fmt.frame_member(fmt.RGB, i) for i in range(num_frames)} | {
        fmt.frame_member(kind, i) for kind in (fmt.FLOW_X, fmt.FLOW_Y) for i in range(num_frames - 1)} | {"json", "cls"}
    if set(members) != expected:
        odd = sorted(set(members) ^ expected)
        return {"cause": "internal error", "error": f"{item.rel_path}: pieces do not add up to the video "
                                                    f"({len(odd)} members missing or extra, e.g. {odd[0]})"}
    return None
