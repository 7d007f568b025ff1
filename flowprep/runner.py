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


def ray_address(cfg: ExtractConfig) -> str | None:
    """The cluster to join: --ray-address, else RAY_ADDRESS (set by `ray job submit`), else None (local)."""
    return cfg.ray_address or os.environ.get("RAY_ADDRESS") or None


class ProgressBoard:
    """Ray actor: what the running task attempts have finished so far, polled by the driver.

    It holds one small counter dict per task in flight (bounded by --max-in-flight), never rows, so
    it stays flat whatever the dataset size. A retried task starts a new attempt, which replaces the
    dead attempt's counters; late reports of a dead attempt are ignored.
    """

    def __init__(self):
        self.running: dict[str, dict] = {}
        self.retries = 0

    def started(self, task: str, attempt: str) -> None:
        if task in self.running:  # an earlier attempt of this task died (the driver forgets finished ones)
            self.retries += 1
        self.running[task] = {"attempt": attempt, "videos": 0, "frames": 0, "failed": 0}

    def video_done(self, task: str, attempt: str, frames: int, failed: bool) -> None:
        counters = self.running.get(task)
        if counters is not None and counters["attempt"] == attempt:
            counters["videos"] += 1
            counters["frames"] += frames
            counters["failed"] += int(failed)

    def forget(self, tasks: list[str]) -> None:
        for task in tasks:
            self.running.pop(task, None)

    def snapshot(self) -> dict:
        return {"running": self.running, "retries": self.retries}


def run_task_reporting(task: Task, cfg: ExtractConfig, board) -> dict:
    """`run_task` on a Ray worker, telling `board` of each finished video (fire and forget)."""
    import uuid

    attempt = uuid.uuid4().hex[:8]
    board.started.remote(task.part_name, attempt)

    def on_video(row: dict) -> None:
        board.video_done.remote(task.part_name, attempt, row["frames"], row["status"] == STATUS_FAILED)

    return run_task(task, cfg, on_video)


def run_ray(tasks: list[Task], cfg: ExtractConfig, progress) -> None:
    """Run `tasks` as Ray tasks, at most --max-in-flight at a time; only small summaries come back."""
    import collections
    import dataclasses

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    address = ray_address(cfg)
    # Resolved here, on the driver, so the CPUs Ray reserves and the threads OpenCV uses agree.
    threads = cfg.threads_per_worker or (1 if address else opencv_threads(cfg))
    cfg = dataclasses.replace(cfg, threads_per_worker=threads)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": always a fresh local instance, never a cluster that happens to run here
            ray.init(address="local", num_cpus=cfg.workers * threads, include_dashboard=False, log_to_driver=False)
    # The board lives on the driver's node: it dies with the driver, never with a worker node.
    board = ray.remote(num_cpus=0)(ProgressBoard).options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        ray.get_runtime_context().get_node_id(), soft=False)).remote()
    # task_retries covers worker and node deaths, and OSError (an object store's transient failure);
    # a video's own problem is caught inside run_task and becomes a failed row, so nothing else retries.
    resources = {"num_cpus": threads, **({"memory": cfg.task_memory_mb * 2**20} if cfg.task_memory_mb else {})}
    remote_task = ray.remote(run_task_reporting).options(
        max_retries=cfg.task_retries, retry_exceptions=[OSError], **resources)
    cfg_ref = ray.put(cfg)
    max_in_flight = cfg.max_in_flight or 2 * cfg.workers
    queue, pending, failed = collections.deque(tasks), {}, []
    while queue or pending:
        while queue and len(pending) < max_in_flight:
            task = queue.popleft()
            pending[remote_task.remote(task, cfg_ref, board)] = task
        # Wake on the first finished task (so a free CPU gets a new task at once), then take every other
        # finished one; wake anyway after poll_s to refresh the progress of the running ones.
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=progress.poll_s, fetch_local=False)
        if ready:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0, fetch_local=False)
        for ref in ready:
            task = pending.pop(ref)
            try:
                progress.task_done(task, ray.get(ref))
            except ray.exceptions.RayError as exc:  # retries exhausted: its part stays unpublished
                log.error("task %s failed: %s", task.part_name, exc)
                failed.append((task.part_name, str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)))
        if time.time() - progress.polled_at >= progress.poll_s:
            progress.poll(board, running=[t.part_name for t in pending.values()])
    progress.poll(board, running=[])
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(tasks)} task(s) failed after {cfg.task_retries} retries, e.g. "
                           f"{failed[0][0]}: {failed[0][1]}; the finished tasks are published: re-run the same "
                           f"command to retry the rest")


class Progress:
    """Live progress: a tqdm bar over videos with frames/s, failures and retries in its postfix.

    Finished tasks are counted from their summaries; the tasks still running from a Ray actor
    (`ProgressBoard`) polled every `poll_s` seconds, so the bar moves between task completions.
    """

    def __init__(self, total_videos: int, disable: bool = False):
        import sys

        from tqdm import tqdm

        # Not a terminal (a Ray Job's log, a Slurm file): a line every 30 s instead of a redraw per video.
        self.bar = tqdm(total=total_videos, unit="video", disable=disable, dynamic_ncols=True,
                        mininterval=0.5 if sys.stderr.isatty() else 30.0)
        self.poll_s, self.polled_at = 1.0, 0.0
        self.done = {"videos": 0, "frames": 0, "failed": 0}
        self.shown = dict(self.done)
        self.retries = 0
        self.started = time.time()

    def _show(self, videos: int, frames: int, failed: int) -> None:
        self.shown = {"videos": videos, "frames": frames, "failed": failed}
        frames_per_s = frames / max(time.time() - self.started, 1e-9)
        self.bar.set_postfix(frames=frames, fps=f"{frames_per_s:.0f}", failed=failed, retries=self.retries, refresh=False)
        self.bar.update(videos - self.bar.n)  # may step back when a dead attempt's videos are redone

    def video_done(self, row: dict) -> None:
        self.done["videos"] += 1
        self.done["frames"] += row["frames"]
        self.done["failed"] += row["status"] == STATUS_FAILED
        self._show(**self.done)

    def task_done(self, task: Task, summary: dict) -> None:
        for name in self.done:
            self.done[name] += summary[name]
        self._show(**self.done)

    def poll(self, board, running: list[str]) -> None:
        """Add the running attempts' counters (from the board) to the finished tasks' ones."""
        import ray

        self.polled_at = time.time()
        try:
            snapshot = ray.get(board.snapshot.remote(), timeout=10)
        except ray.exceptions.RayError as exc:  # progress is best effort; the job goes on without it
            log.warning("progress board unreachable: %s", exc)
            return
        self.retries = snapshot["retries"]
        live = {name: 0 for name in self.done}
        for task in running:
            for name in live:
                live[name] += snapshot["running"].get(task, {}).get(name, 0)
        running_set = set(running)
        board.forget.remote([t for t in snapshot["running"] if t not in running_set])
        self._show(**{name: self.done[name] + live[name] for name in self.done})

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
