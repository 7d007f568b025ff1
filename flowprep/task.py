"""The body of a task on a worker: its videos into shards, then its manifest part.

A task writes its shards straight to the destination and, last, its part: a task whose part exists
is done, and a re-run of an unfinished one starts from a clean slate. Split videos (`split.py`) reuse
the same pieces: `Extractor` (one video, or a range of it) and `publish` (shards, then the part).
"""
from __future__ import annotations

import io
import os
import socket
import time
import traceback
from typing import Callable

from .config import ExtractConfig
from .datasets import KIND_FRAMES, VideoItem
from .errors import last_line
from .manifest import STATUS_FAILED, STATUS_OK, add_shard_digests, write_part
from .plan import Task, base_row
from .storage import filesystem, is_local, join, remove_quietly


def worker_threads(cfg: ExtractConfig) -> int:
    if cfg.threads_per_worker:
        return cfg.threads_per_worker
    return max(1, (os.cpu_count() or 1) // (cfg.workers or os.cpu_count() or 1)) if cfg.ray_address is None else 1


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Extractor:
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
        self._clip_source: tuple[str, bytes] = ("", b"")  # (path, bytes) of the last remote video clips came from

    def video(self, item: VideoItem, known_bad: dict[str, str] | None, pairs=None):
        """The VideoResult of `item` (or of its range `pairs`); VideoError or OSError for its problems."""
        from .core import process_video
        from .decode import VideoError

        cfg, fs_in = self.cfg, self.fs_in
        path = join(self.root, item.rel_path)
        meta = {"id": item.video_id, "label": item.label, "class": item.class_name, "splits": item.splits,
                "source": item.rel_path, "dataset": cfg.dataset}
        if item.plan_id in (known_bad or {}):
            raise VideoError("worker crashed", known_bad[item.plan_id])
        if item.kind == KIND_FRAMES:  # a folder of numbered images, read through fs_in frame by frame
            from .frames import open_frame_folder
            return process_video(open_frame_folder(fs_in, path, cfg.frame_fps), meta, self.settings, self.backend, pairs)
        if fs_in.size(path) == 0:
            raise VideoError("empty file", "zero bytes")
        if is_local(cfg.root):  # FFmpeg's own file IO is faster than a Python file object (and a clip seeks in it)
            return process_video(path, meta, self.settings, self.backend, pairs, item.time_range)
        if item.time_range is not None:  # clips of one remote video (adjacent in a task) share one read of it
            if self._clip_source[0] != path:
                self._clip_source = (path, fs_in.cat_file(path))
            return process_video(io.BytesIO(self._clip_source[1]), meta, self.settings, self.backend, pairs,
                                 item.time_range)
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


def ok_fields(shard: str, num_frames: int, nbytes: int, seconds: dict[str, float], write_s: float,
              num_flows: int | None = None) -> dict:
    flows = num_frames - 1 if num_flows is None else num_flows
    return dict(status=STATUS_OK, shard=shard, frames=num_frames, flows=flows, bytes=nbytes,
                seconds_write=write_s, **{f"seconds_{k}": v for k, v in seconds.items()})


def run_task(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None,
             known_bad: dict[str, str] | None = None, flow=None) -> dict:
    """Extract every video of `task` into its shards, then publish its manifest part. Returns a summary.
    `known_bad` (plan_id -> why) become failed rows untried: videos that killed earlier attempts.
    `flow`: a backend to use instead of building one (a `RemoteFlow` computing on a flow actor)."""
    extractor = Extractor(cfg, flow)
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
                write_s = time.perf_counter() - t0
                row.update(ok_fields(shard, result.num_frames, result.nbytes(), result.seconds, write_s,
                                     cfg.flow_layout().num_flows(result.num_frames)))
            rows.append(row)
            if on_video:
                on_video(row)

    return publish(extractor, task, each_video, rows)


def publish(extractor: Extractor, task: Task, fill: Callable, rows: list[dict]) -> dict:
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
    add_shard_digests(rows, writer.digests)
    write_part(fs_out, out, task.partition, task.index, rows)
    return summarize_rows(rows)


def summarize_rows(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == STATUS_OK]
    return {"videos": len(rows), "ok": len(ok), "failed": sum(r["status"] == STATUS_FAILED for r in rows),
            "frames": sum(r["frames"] for r in ok), "bytes": sum(r["bytes"] for r in ok)}
