"""The body of a task on a worker: its videos into shards, then its manifest part.

A task writes its shards straight to the destination and, last, its part (`shard_job.publish`): a
task whose part exists is done, and a re-run of an unfinished one starts from a clean slate. A long
video's ranges (`ranges.py`) reuse `Extractor` (one video, or a range of it).
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable
from typing import cast

from .config import ExtractConfig
from .datasets import KIND_FRAMES, VideoItem
from .plan import Task
from .shard_job import publish, write_items
from .storage import filesystem, is_local, join


def worker_threads(cfg: ExtractConfig) -> int:
    """Threads of one worker (OpenCV, FFmpeg, the numba backend's pairs): 1 unless --threads-per-worker
    says more, so `--workers N` is the N cores a run uses, locally as on Ray (one CPU per task). Idle
    cores within them still go to the work left: the processes executor gives the last jobs of a run
    the idle workers' threads."""
    return cfg.threads_per_worker or 1


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
        self.fs_in, self.root = filesystem(cast(str, cfg.root))  # the CLI resolves --root
        self.settings = cfg.video_settings(decode_threads=threads)  # FFmpeg would start a thread per core
        self.backend = (
            None
            if not compute
            else flow
            if flow is not None
            else create_backend(cfg.flow_backend, **dict(cfg.flow_params))
        )
        self._clip_source: tuple[str, bytes] = ("", b"")  # (path, bytes) of the last remote video clips came from

    def video(self, item: VideoItem, known_bad: dict[str, str] | None, pairs=None):
        """The VideoResult of `item` (or of its range `pairs`); VideoError or OSError for its problems."""
        from .core import process_video
        from .decode import VideoError

        cfg, fs_in = self.cfg, self.fs_in
        path = join(self.root, item.rel_path)
        meta = item.meta(cfg.dataset)
        if self.backend is None:
            raise RuntimeError("an Extractor built with compute=False extracts no video")
        if item.plan_id in (known_bad or {}):
            raise VideoError("worker crashed", cast(dict[str, str], known_bad)[item.plan_id])
        if item.kind == KIND_FRAMES:  # a folder of numbered images, read through fs_in frame by frame
            from .frames import open_frame_folder

            folder = open_frame_folder(fs_in, path, cfg.frame_fps)
            return process_video(folder, meta, self.settings, self.backend, pairs)
        if fs_in.size(path) == 0:
            raise VideoError("empty file", "zero bytes")
        if is_local(cast(str, cfg.root)):  # FFmpeg's own file IO is faster than a Python file object (a clip seeks)
            return process_video(path, meta, self.settings, self.backend, pairs, item.time_range)
        if item.time_range is not None:  # clips of one remote video (adjacent in a task) share one read of it
            if self._clip_source[0] != path:
                self._clip_source = (path, fs_in.cat_file(path))
            return process_video(
                io.BytesIO(self._clip_source[1]), meta, self.settings, self.backend, pairs, item.time_range
            )
        with fs_in.open(path, "rb") as f:
            return process_video(f, meta, self.settings, self.backend, pairs)


def run_task(
    task: Task,
    cfg: ExtractConfig,
    on_video: Callable[[dict], None] | None = None,
    known_bad: dict[str, str] | None = None,
    flow=None,
) -> dict:
    """Extract every video of `task` into its shards, then publish its manifest part. Returns a summary.
    `known_bad` (plan_id -> why) become failed rows untried: videos that killed earlier attempts.
    `flow`: a backend to use instead of building one (a `RemoteFlow` computing on a flow actor)."""
    extractor = Extractor(cfg, flow)

    def fill(writer) -> list[dict]:
        return write_items(
            writer,
            task,
            cfg,
            worker_name(),
            lambda item: extractor.video(item, known_bad),
            on_video,
            flows_of=cfg.flow_layout().num_flows,
        )

    return publish(extractor.fs_out, extractor.out, task, cfg.shard_max_bytes, fill)
