"""Plan, run and resume an extraction job; the only module that knows about executors.

A job is a fixed plan of tasks (groups of videos of one partition). A task writes its own shards
straight to the destination and, last, its manifest part; a task whose part exists is done. The plan
is written once (`plan.json`) and reused on every re-run, so a job killed at any point and started
again with the same command ends with every video exactly once.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from . import format as fmt
from .config import ExtractConfig
from .datasets import UNSPLIT_NOTE, Catalog, VideoItem, load_catalog
from .manifest import (STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, done_parts, empty_row, read_rows,
                       rows_to_parquet_bytes, write_part)
from .storage import filesystem, is_local, join, remove_quietly, write_bytes_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    index: int
    partition: str
    items: tuple[VideoItem, ...]

    @property
    def part_name(self) -> str:
        return f"{self.partition}-{self.index:05d}.parquet"


# ---- planning --------------------------------------------------------------------------------

def base_row(item: VideoItem, cfg: ExtractConfig) -> dict:
    row = empty_row()
    row.update(key=fmt.make_key(item.class_name or "unlabeled", item.video_id), video_id=item.video_id,
               class_name=item.class_name, label=item.label, source=item.rel_path,
               partition=item.splits.get(cfg.split, ""))
    return row


def select(catalog: Catalog, cfg: ExtractConfig) -> tuple[list[VideoItem], list[dict]]:
    """Videos to extract (shuffled, class-mixed, deterministic) and rows for every other video."""
    chosen, rows = [], []
    for item in sorted(catalog.items, key=lambda i: i.rel_path):
        partition = item.splits.get(cfg.split)
        if item.problem:
            rows.append({**base_row(item, cfg), "status": STATUS_FAILED, "cause": item.problem.split(":")[0],
                         "error": item.problem})
        elif partition is None:
            note = UNSPLIT_NOTE if not item.splits else f"not in split {cfg.split}"
            rows.append({**base_row(item, cfg), "status": STATUS_SKIPPED, "cause": "unsplit", "error": f"{item.rel_path}: {note}"})
        elif (cfg.partitions and partition not in cfg.partitions) or (not cfg.partitions and partition == "unused"):
            rows.append({**base_row(item, cfg), "status": STATUS_SKIPPED, "cause": "partition not selected",
                         "error": f"{item.rel_path}: partition {partition!r} of split {cfg.split} not selected"})
        else:
            chosen.append(item)
    random.Random(cfg.seed).shuffle(chosen)
    if cfg.limit is not None:
        for item in chosen[cfg.limit:]:
            rows.append({**base_row(item, cfg), "status": STATUS_SKIPPED, "cause": "limit",
                         "error": f"{item.rel_path}: beyond --limit {cfg.limit}"})
        chosen = chosen[: cfg.limit]
    return chosen, rows


def make_tasks(chosen: list[VideoItem], cfg: ExtractConfig) -> list[Task]:
    by_partition: dict[str, list[VideoItem]] = {}
    for item in chosen:
        by_partition.setdefault(item.splits[cfg.split], []).append(item)
    tasks = []
    for partition, items in sorted(by_partition.items()):
        for index, start in enumerate(range(0, len(items), cfg.videos_per_task)):
            tasks.append(Task(index, partition, tuple(items[start:start + cfg.videos_per_task])))
    return tasks


def load_or_write_plan(fs, out: str, cfg: ExtractConfig, tasks: list[Task]) -> list[Task]:
    """The plan on disk wins, so that a re-run re-creates exactly the tasks of the first run."""
    path = join(out, fmt.PLAN_FILE)
    fingerprint = cfg.content_fingerprint()
    if fs.exists(path):
        with fs.open(path, "rb") as f:
            plan = json.load(f)
        if plan["fingerprint"] != fingerprint:
            raise RuntimeError(
                f"{path} was written by a run with different settings (fingerprint {plan['fingerprint']} != "
                f"{fingerprint}); resume with the same flags, or extract into a new --out")
        item_of = {item.rel_path: item for task in tasks for item in task.items}
        missing = [rel for task in plan["tasks"] for rel in task["sources"] if rel not in item_of]
        if missing:
            raise RuntimeError(f"{len(missing)} planned video(s) are no longer in the catalog, e.g. {missing[0]}")
        return [Task(t["index"], t["partition"], tuple(item_of[rel] for rel in t["sources"])) for t in plan["tasks"]]
    plan = {"fingerprint": fingerprint, "tasks": [
        {"index": t.index, "partition": t.partition, "sources": [i.rel_path for i in t.items]} for t in tasks]}
    write_bytes_atomic(fs, path, json.dumps(plan).encode())
    return tasks


# ---- one task (runs on a worker) -------------------------------------------------------------

def opencv_threads(cfg: ExtractConfig) -> int:
    if cfg.threads_per_worker:
        return cfg.threads_per_worker
    return max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.ray_address is None else 1


def run_task(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None) -> dict:
    """Extract every video of `task` into its shards, then publish its manifest part. Returns a summary."""
    import cv2

    from .core import process_video
    from .decode import VideoError
    from .flow import create_backend
    from .shards import ShardWriter, task_shard_paths

    cv2.setNumThreads(opencv_threads(cfg))
    fs_out, out = filesystem(cfg.out)
    fs_in, root = filesystem(cfg.root)
    settings = cfg.video_settings()
    backend = create_backend(cfg.flow_backend, **dict(cfg.flow_params))
    # A previous attempt of this task may have published some shards before dying: start clean.
    remove_quietly(fs_out, task_shard_paths(fs_out, out, task.partition, task.index))
    writer = ShardWriter(fs_out, out, task.partition, task.index, cfg.shard_max_bytes)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    rows = []
    try:
        for item in task.items:
            row = {**base_row(item, cfg), "task": task.index, "worker": worker}
            path = join(root, item.rel_path)
            meta = {"id": item.video_id, "label": item.label, "class": item.class_name, "splits": item.splits,
                    "source": item.rel_path, "dataset": cfg.dataset}
            try:
                if fs_in.size(path) == 0:
                    raise VideoError("empty file", "zero bytes")
                if is_local(cfg.root):  # FFmpeg's own file IO is faster than a Python file object
                    result = process_video(path, meta, settings, backend)
                else:
                    with fs_in.open(path, "rb") as f:
                        result = process_video(f, meta, settings, backend)
            except VideoError as exc:
                row.update(status=STATUS_FAILED, cause=exc.cause, error=f"{item.rel_path}: {exc}")
            except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
                row.update(status=STATUS_FAILED, cause="unreadable file", error=f"{item.rel_path}: {exc!r}")
            except Exception as exc:  # a bug or an exotic file must not take the other videos down
                last = traceback.format_exc(limit=-1).strip().splitlines()[-1]
                row.update(status=STATUS_FAILED, cause="internal error", error=f"{item.rel_path}: {exc!r} ({last})")
            else:
                t0 = time.perf_counter()
                shard = writer.write(result.key, result.members)
                row.update(status=STATUS_OK, shard=shard, frames=result.num_frames, flows=result.num_frames - 1,
                           bytes=result.nbytes(), seconds_write=time.perf_counter() - t0,
                           **{f"seconds_{k}": v for k, v in result.seconds.items()})
            rows.append(row)
            if on_video:
                on_video(row)
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


# ---- executors -------------------------------------------------------------------------------

def run_inline(tasks: list[Task], cfg: ExtractConfig, progress) -> None:
    for task in tasks:
        run_task(task, cfg, on_video=progress.video_done)


def run_ray(tasks: list[Task], cfg: ExtractConfig, progress) -> None:
    import ray

    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=cfg.workers * opencv_threads(cfg), include_dashboard=False, log_to_driver=False)
    # max_retries covers worker/node deaths; a video's own problem is caught inside run_task and
    # becomes a failed row, so application exceptions are not retried (retry_exceptions=False).
    remote_task = ray.remote(num_cpus=opencv_threads(cfg), max_retries=3, retry_exceptions=False)(run_task)
    cfg_ref = ray.put(cfg)
    max_in_flight = cfg.max_in_flight or 2 * cfg.workers
    pending: dict = {}
    queue = list(tasks)
    while queue or pending:
        while queue and len(pending) < max_in_flight:
            task = queue.pop(0)
            pending[remote_task.remote(task, cfg_ref)] = task
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            task = pending.pop(ref)
            progress.task_done(task, ray.get(ref))


class Progress:
    """A tqdm bar over videos, with frames/s and failures in its postfix."""

    def __init__(self, total_videos: int, disable: bool = False):
        from tqdm import tqdm

        self.bar = tqdm(total=total_videos, unit="video", disable=disable, dynamic_ncols=True)
        self.frames = self.failed = 0

    def _update(self, videos: int, frames: int, failed: int) -> None:
        self.frames += frames
        self.failed += failed
        self.bar.set_postfix(frames=self.frames, failed=self.failed, refresh=False)
        self.bar.update(videos)

    def video_done(self, row: dict) -> None:
        self._update(1, row["frames"], row["status"] == STATUS_FAILED)

    def task_done(self, task: Task, summary: dict) -> None:
        self._update(summary["videos"], summary["frames"], summary["failed"])

    def close(self) -> None:
        self.bar.close()


# ---- the job ---------------------------------------------------------------------------------

def run_extract(cfg: ExtractConfig, show_progress: bool = True) -> dict:
    """Run (or resume) the whole job; returns the summary also printed by the CLI."""
    from .flow import backend_class, resolve_backend_name

    started = time.time()
    backend_name = resolve_backend_name(cfg.flow_backend)
    if backend_name != cfg.flow_backend:
        import dataclasses
        cfg = dataclasses.replace(cfg, flow_backend=backend_name)
    fs, out = filesystem(cfg.out)
    fs.makedirs(out, exist_ok=True)
    catalog = load_catalog(cfg.dataset, cfg.root, cfg.annotations)
    chosen, other_rows = select(catalog, cfg)
    tasks = load_or_write_plan(fs, out, cfg, make_tasks(chosen, cfg))
    resolved = {**cfg.to_dict(), "fingerprint": cfg.content_fingerprint(),
                "flow_params_resolved": backend_class(backend_name)(**dict(cfg.flow_params)).params(),
                "classes": list(catalog.classes)}
    write_bytes_atomic(fs, join(out, fmt.CONFIG_FILE), json.dumps(resolved, indent=2).encode())

    done = done_parts(fs, out)
    todo = [t for t in tasks if t.part_name not in done]
    log.info("%d tasks planned, %d already done, %d to run", len(tasks), len(tasks) - len(todo), len(todo))
    progress = Progress(sum(len(t.items) for t in todo), disable=not show_progress)
    try:
        (run_inline if cfg.executor == "inline" else run_ray)(todo, cfg, progress)
    finally:
        progress.close()

    rows = list(other_rows)
    for task in tasks:
        rows += read_rows(fs, join(out, fmt.PARTS_DIR, task.part_name))
    write_bytes_atomic(fs, join(out, fmt.MANIFEST_FILE), rows_to_parquet_bytes(rows))
    write_shard_lists(fs, out, rows)
    summary = job_summary(rows, time.time() - started, resumed_tasks=len(tasks) - len(todo))
    write_bytes_atomic(fs, join(out, "summary.json"), json.dumps(summary, indent=2).encode())
    return summary


def write_shard_lists(fs, out: str, rows: list[dict]) -> None:
    shards: dict[str, set[str]] = {}
    for row in rows:
        if row["status"] == STATUS_OK:
            shards.setdefault(row["partition"], set()).add(row["shard"])
    for partition, names in shards.items():
        write_bytes_atomic(fs, join(out, partition + fmt.SHARD_LIST_SUFFIX), ("\n".join(sorted(names)) + "\n").encode())


def job_summary(rows: list[dict], wall_s: float, resumed_tasks: int = 0) -> dict:
    ok = [r for r in rows if r["status"] == STATUS_OK]
    failures: dict[str, int] = {}
    for row in rows:
        if row["status"] == STATUS_FAILED:
            failures[row["cause"]] = failures.get(row["cause"], 0) + 1
    stage_s = {stage: round(sum(r[f"seconds_{stage}"] for r in ok), 3) for stage in ("decode", "flow", "encode", "write")}
    return {
        "videos": len(rows), "ok": len(ok), "failed": sum(failures.values()),
        "skipped": sum(r["status"] == STATUS_SKIPPED for r in rows), "failures_by_cause": failures,
        "frames": sum(r["frames"] for r in ok), "bytes": sum(r["bytes"] for r in ok),
        "stage_seconds": stage_s, "wall_seconds": round(wall_s, 3), "resumed_tasks": resumed_tasks,
        "videos_per_hour": round(len(ok) / wall_s * 3600, 1) if wall_s > 0 else 0.0,
    }
