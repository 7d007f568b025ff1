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
from .datasets import KIND_FRAMES, UNSPLIT_NOTE, Catalog, VideoItem, load_catalog
from .manifest import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, done_parts, empty_row, write_part
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

def fit_local_workers(cfg: ExtractConfig) -> ExtractConfig:
    """At most one worker per core when the job runs on this machine alone (no --ray-address / RAY_ADDRESS).

    TV-L1 is CPU-bound, so workers past the core count only compete; and a local Ray told of 64 CPUs
    would start up to 64 worker processes on a 2-core laptop. A cluster's own CPU count is Ray's to
    manage, so `--workers` is left as asked there."""
    import dataclasses

    cores = os.cpu_count() or 1
    if ray_address(cfg) is None and cfg.workers > cores:
        log.warning("--workers %d on a %d-core machine without a cluster: using %d", cfg.workers, cores, cores)
        return dataclasses.replace(cfg, workers=cores)
    return cfg


def opencv_threads(cfg: ExtractConfig) -> int:
    if cfg.threads_per_worker:
        return cfg.threads_per_worker
    return max(1, (os.cpu_count() or 1) // cfg.workers) if cfg.ray_address is None else 1


def run_task(task: Task, cfg: ExtractConfig, on_video: Callable[[dict], None] | None = None,
             known_bad: dict[str, str] | None = None, flow=None) -> dict:
    """Extract every video of `task` into its shards, then publish its manifest part. Returns a summary.
    `known_bad` (rel_path -> why) become failed rows untried: videos that killed earlier attempts.
    `flow`: a backend to use instead of building one (a `RemoteFlow` computing on a flow actor)."""
    import cv2

    from .core import process_video
    from .decode import VideoError
    from .flow import create_backend
    from .shards import ShardWriter, task_shard_paths

    threads = opencv_threads(cfg)
    cv2.setNumThreads(threads)
    fs_out, out = filesystem(cfg.out)
    fs_in, root = filesystem(cfg.root)
    settings = cfg.video_settings(decode_threads=threads)  # FFmpeg would start a thread per core
    backend = flow if flow is not None else create_backend(cfg.flow_backend, **dict(cfg.flow_params))
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
                if item.rel_path in (known_bad or {}):
                    raise VideoError("worker crashed", known_bad[item.rel_path])
                if item.kind == KIND_FRAMES:  # a folder of numbered images, read through fs_in frame by frame
                    from .frames import open_frame_folder
                    result = process_video(open_frame_folder(fs_in, path, cfg.frame_fps), meta, settings, backend)
                elif fs_in.size(path) == 0:
                    raise VideoError("empty file", "zero bytes")
                elif is_local(cfg.root):  # FFmpeg's own file IO is faster than a Python file object
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
        self.died_at: dict[str, list[int]] = {}  # task -> index of the video each dead attempt was on
        self.retries = 0

    def started(self, task: str, attempt: str) -> list[int]:
        """Registers a new attempt; returns where the earlier attempts of this task died."""
        if task in self.running:  # an earlier attempt of this task died (the driver forgets finished ones)
            self.retries += 1
            self.died_at.setdefault(task, []).append(self.running[task]["videos"])
        self.running[task] = {"attempt": attempt, "videos": 0, "frames": 0, "failed": 0}
        return self.died_at.get(task, [])

    def video_done(self, task: str, attempt: str, frames: int, failed: bool) -> None:
        counters = self.running.get(task)
        if counters is not None and counters["attempt"] == attempt:
            counters["videos"] += 1
            counters["frames"] += frames
            counters["failed"] += int(failed)

    def forget(self, tasks: list[str]) -> None:
        for task in tasks:
            self.running.pop(task, None)
            self.died_at.pop(task, None)

    def snapshot(self) -> dict:
        return {"running": self.running, "retries": self.retries}


def wait_holding_cpus(ref, timeout_s: float):
    """The value of `ref`, waited for without giving up this task's CPUs.

    `ray.get` in a task tells Ray the worker is blocked, and Ray lends its CPUs to the next queued
    task, which then keeps running beside this one once the get returns: a millisecond's wait per
    video put 3 TV-L1 tasks on 2 cores (and 1 worker's job on 2). Waiting on the object's future is
    invisible to the scheduler.
    """
    import concurrent.futures

    try:
        return ref.future().result(timeout=timeout_s)
    except concurrent.futures.TimeoutError as exc:
        raise TimeoutError(f"no answer from the progress board in {timeout_s} s") from exc


CRASHES_TO_BLAME_A_VIDEO = 2  # one death mid-video may be the node's fault; two on the same video are its own


def run_task_reporting(task: Task, cfg: ExtractConfig, board, flow=None) -> dict:
    """`run_task` on a Ray worker, telling `board` of each finished video.

    Videos are processed in order and the board counts the finished ones, so the video an attempt
    died on is known; one that killed two attempts (a decoder segfault, say) becomes a failed row
    instead of failing its whole task again and again.
    """
    import collections
    import uuid

    import ray

    attempt = uuid.uuid4().hex[:8]
    try:
        died_at = wait_holding_cpus(board.started.remote(task.part_name, attempt), timeout_s=60)
    except (ray.exceptions.RayError, TimeoutError):  # no board, no crash history: run every video
        died_at = []
    known_bad = {task.items[index].rel_path: f"killed its worker {count} times (a crash in decoding or flow?)"
                 for index, count in collections.Counter(died_at).items()
                 if count >= CRASHES_TO_BLAME_A_VIDEO and index < len(task.items)}

    def on_video(row: dict) -> None:
        # Waited for (a millisecond), so that when this worker dies the board's count is exact:
        # a report still in this process's send queue would make it blame the previous video.
        try:
            wait_holding_cpus(board.video_done.remote(task.part_name, attempt, row["frames"],
                                                      row["status"] == STATUS_FAILED), timeout_s=10)
        except (ray.exceptions.RayError, TimeoutError):
            pass  # progress is best effort: never fail a task over it

    return run_task(task, cfg, on_video, known_bad, flow)


def run_ray(tasks: list[Task], cfg: ExtractConfig, progress) -> None:
    """Run `tasks` as Ray tasks, at most --max-in-flight at a time; only small summaries come back."""
    import dataclasses

    import ray

    from .flow.remote import ACTOR_CPUS, FlowPool

    address = ray_address(cfg)
    # Resolved here, on the driver, so the CPUs Ray reserves and the threads OpenCV uses agree.
    threads = cfg.threads_per_worker or (1 if address else opencv_threads(cfg))
    cfg = dataclasses.replace(cfg, threads_per_worker=threads)
    # Ray started here is shut down here: a library call must not leave Ray's threads and processes
    # behind in the caller (a training script that forks DataLoader workers next would hang).
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": always a fresh local instance, never a cluster that happens to run here
            ray.init(address="local", num_cpus=cfg.workers * threads + cfg.flow_actors * ACTOR_CPUS,
                     include_dashboard=False, log_to_driver=False)
    pool = None
    try:
        pool = FlowPool.start(cfg, ray) if cfg.flow_actors else None  # flow actors shared by the tasks
        _run_ray_tasks(tasks, cfg, progress, ray, pool)
    finally:
        if pool is not None:
            pool.stop(ray)
        if started_here:
            ray.shutdown()


def _run_ray_tasks(tasks: list[Task], cfg: ExtractConfig, progress, ray, pool=None) -> None:
    import collections

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    threads = cfg.threads_per_worker
    # The board lives on the driver's node: it dies with the driver, never with a worker node.
    board = ray.remote(num_cpus=0)(ProgressBoard).options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        ray.get_runtime_context().get_node_id(), soft=False)).remote()
    # task_retries covers worker and node deaths, and OSError (an object store's transient failure);
    # a video's own problem is caught inside run_task and becomes a failed row, so nothing else retries.
    resources = {"num_cpus": threads, **({"memory": cfg.task_memory_mb * 2**20} if cfg.task_memory_mb else {})}
    task_options = dict(max_retries=cfg.task_retries, retry_exceptions=[OSError], **resources)
    remote_fn = ray.remote(run_task_reporting)
    remote_task = remote_fn.options(**task_options)
    cfg_ref = ray.put(cfg)
    max_in_flight = cfg.max_in_flight or 2 * cfg.workers
    queue, pending, failed = collections.deque(tasks), {}, []
    while queue or pending:
        while queue and len(pending) < max_in_flight:
            task = queue.popleft()
            if pool is None:
                pending[remote_task.remote(task, cfg_ref, board)] = task
                continue
            flow = pool.acquire()  # the least-loaded actor; the task runs on its node when there is room
            ref = remote_fn.options(**task_options, scheduling_strategy=pool.near(flow)).remote(task, cfg_ref, board, flow)
            pending[ref] = task
            pool.submitted(ref, flow)
        # Wake on the first finished task (so a free CPU gets a new task at once), then take every other
        # finished one; wake anyway after poll_s to refresh the progress of the running ones.
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=progress.poll_s, fetch_local=False)
        if ready:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0, fetch_local=False)
        for ref in ready:
            task = pending.pop(ref)
            if pool is not None:
                pool.release(ref)
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
        self.retries = 0
        self.started = time.time()

    def _show(self, videos: int, frames: int, failed: int) -> None:
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
    from .flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS

    started = time.time()
    cfg = fit_local_workers(cfg)
    if cfg.flow_actors:
        # The actors build the backend on the GPU nodes; the driver (a CPU-only head, say) may not
        # have the accelerator, so it neither checks availability nor picks `auto` here.
        if cfg.flow_backend == "auto":
            raise ValueError("--flow-backend auto with --flow-actors: name the backend (e.g. torch-cuda); "
                             "the driver's machine may not have the flow actors' accelerator")
        backend_name = cfg.flow_backend
        params_resolved = {**OPENCV_TVL1_DEFAULTS, **dict(cfg.flow_params),
                           "built_on": "the flow actors (see each sample's json)"}
        backend_class(backend_name)  # an unknown name fails here, before any work
    else:
        backend_name = resolve_backend_name(cfg.flow_backend)
        params_resolved = backend_class(backend_name)(**dict(cfg.flow_params)).params()
    if backend_name != cfg.flow_backend:
        import dataclasses
        cfg = dataclasses.replace(cfg, flow_backend=backend_name)
    fs, out = filesystem(cfg.out)
    fs.makedirs(out, exist_ok=True)
    catalog = load_catalog(cfg.dataset, cfg.root, cfg.annotations)
    cfg = resolve_frame_fps(cfg, catalog)
    chosen, other_rows = select(catalog, cfg)
    tasks = load_or_write_plan(fs, out, cfg, make_tasks(chosen, cfg))
    resolved = {**cfg.to_dict(), "fingerprint": cfg.content_fingerprint(),
                "flow_params_resolved": params_resolved,
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

    report = merge_manifest(fs, out, other_rows, [join(out, fmt.PARTS_DIR, t.part_name) for t in tasks])
    for partition, names in report.shards.items():
        write_bytes_atomic(fs, join(out, partition + fmt.SHARD_LIST_SUFFIX), ("\n".join(sorted(names)) + "\n").encode())
    summary = report.to_dict(time.time() - started, tasks=len(tasks), resumed_tasks=len(tasks) - len(todo),
                             retried_tasks=progress.retries)
    for name in (REPORT_FILE, "summary.json"):  # summary.json: the name earlier versions wrote
        write_bytes_atomic(fs, join(out, name), json.dumps(summary, indent=2).encode())
    return summary


def resolve_frame_fps(cfg: ExtractConfig, catalog: Catalog) -> ExtractConfig:
    """--frame-fps, else the dataset's own rate; a frame-folder video with neither stops the job at once."""
    import dataclasses

    if cfg.frame_fps:
        return cfg
    if catalog.frame_fps:
        return dataclasses.replace(cfg, frame_fps=catalog.frame_fps)
    frames = next((item for item in catalog.items if item.kind == KIND_FRAMES and not item.problem), None)
    if frames is not None:
        raise ValueError(f"{frames.rel_path} is a folder of frames, which have no timestamps: pass --frame-fps "
                         f"(the rate they were extracted at)")
    return cfg


REPORT_FILE = "report.json"
STAGES = ("decode", "flow", "encode", "write")


def merge_manifest(fs, out: str, other_rows: list[dict], part_paths: list[str], parts_per_fetch: int = 256,
                   rows_per_group: int = 65536) -> "JobReport":
    """Concatenate the task parts (and `other_rows`) into manifest.parquet, streaming: the driver holds
    `parts_per_fetch` parts at a time, never the whole manifest. Returns the report of every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .manifest import schema, table_from_parquet_bytes
    from .storage import TMP_MARK, atomic_open

    # Temporaries of attempts killed between writing and renaming (no writer is left running now).
    remove_quietly(fs, [p for pattern in ("*", f"{fmt.PARTS_DIR}/*") for p in fs.glob(join(out, pattern))
                        if TMP_MARK in p.rsplit("/", 1)[-1]])
    report = JobReport()
    report.add(other_rows)
    tables = [pa.Table.from_pylist(other_rows, schema=schema())]
    with atomic_open(fs, join(out, fmt.MANIFEST_FILE)) as f, pq.ParquetWriter(f, schema()) as writer:
        for start in range(0, len(part_paths), parts_per_fetch):
            batch = part_paths[start:start + parts_per_fetch]
            # One call for many small files: object stores fetch them concurrently.
            blobs = {path.rsplit("/", 1)[-1]: data for path, data in fs.cat(batch).items()}
            for path in batch:
                name = path.rsplit("/", 1)[-1]
                if name not in blobs:
                    raise RuntimeError(f"{path}: task part missing after the run; re-run the same command")
                try:
                    table = table_from_parquet_bytes(blobs[name], path)
                except ValueError as exc:  # no part means "task not done": re-running redoes that task
                    raise RuntimeError(f"{str(exc).rstrip('.')}; delete it and re-run the same command") from None
                report.add(table.to_pylist())
                tables.append(table)
            if sum(t.num_rows for t in tables) >= rows_per_group:
                writer.write_table(pa.concat_tables(tables))
                tables = []
        if tables:
            writer.write_table(pa.concat_tables(tables))
    return report


class JobReport:
    """Totals over manifest rows, added part by part: counters per cause, stage and worker, no rows."""

    def __init__(self):
        from collections import Counter

        self.totals: Counter = Counter()
        self.failures_by_cause: Counter = Counter()
        self.stage_seconds: Counter = Counter()
        self.shards: dict[str, set[str]] = {}  # partition -> shard names (for <partition>.shards.txt)
        self.by_worker: dict[str, Counter] = {}  # 'host:pid' -> videos, frames, busy_seconds

    def add(self, rows: list[dict]) -> None:
        from collections import Counter

        for row in rows:
            self.totals["videos"] += 1
            self.totals[row["status"]] += 1
            if row["status"] == STATUS_FAILED:
                self.failures_by_cause[row["cause"]] += 1
            if row["status"] != STATUS_OK:
                continue
            self.totals["frames"] += row["frames"]
            self.totals["bytes"] += row["bytes"]
            self.shards.setdefault(row["partition"], set()).add(row["shard"])
            busy_s = 0.0
            for stage in STAGES:
                self.stage_seconds[stage] += row[f"seconds_{stage}"]
                busy_s += row[f"seconds_{stage}"]
            worker = self.by_worker.setdefault(row["worker"] or "?", Counter())
            worker.update(videos=1, frames=row["frames"], busy_seconds=busy_s)

    def to_dict(self, wall_s: float, **extra) -> dict:
        ok = self.totals[STATUS_OK]
        per_worker = {name: {"videos": c["videos"], "frames": c["frames"], "busy_seconds": round(c["busy_seconds"], 3),
                             "frames_per_busy_second": round(c["frames"] / max(c["busy_seconds"], 1e-9), 2)}
                      for name, c in sorted(self.by_worker.items())}
        rates = sorted(w["frames_per_busy_second"] for w in per_worker.values())
        return {
            "videos": self.totals["videos"], "ok": ok, "failed": self.totals[STATUS_FAILED],
            "skipped": self.totals[STATUS_SKIPPED], "failures_by_cause": dict(sorted(self.failures_by_cause.items())),
            "frames": self.totals["frames"], "bytes": self.totals["bytes"],
            "stage_seconds": {stage: round(self.stage_seconds[stage], 3) for stage in STAGES},
            "wall_seconds": round(wall_s, 3),
            "videos_per_hour": round(ok / wall_s * 3600, 1) if wall_s > 0 else 0.0,
            "frames_per_second": round(self.totals["frames"] / wall_s, 2) if wall_s > 0 else 0.0,
            **extra,
            # Rows of tasks resumed from an earlier run count here too: their workers are long gone.
            "workers": len(per_worker),
            "frames_per_busy_second_per_worker": {"min": rates[0], "median": rates[len(rates) // 2], "max": rates[-1]}
            if rates else {},
            "per_worker": per_worker,
        }
