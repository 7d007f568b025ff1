"""The Ray executor: jobs as Ray tasks on a local Ray or a cluster, progress on a board actor.

Only small summaries come back to the driver; the jobs write their shards, pieces and parts themselves.
With --flow-actors, the tasks compute flow on the actors of `flow_pool.FlowPool`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ..config import ExtractConfig
from ..errors import last_line
from ..jobs import Job, JobQueue, jobs_failed, known_bad_videos, run_job
from ..manifest import STATUS_FAILED
from ..progress import Progress
from ..task import worker_threads
from . import Executor, ray_address

if TYPE_CHECKING:
    from ..flow.remote import RemoteFlow
    from .flow_pool import FlowPool

log = logging.getLogger(__name__)


class ProgressBoard:
    """Ray actor: what the running task attempts have finished so far, polled by the driver.

    It holds one small counter dict per task in flight (bounded by --max-in-flight), never rows, so
    it stays flat whatever the dataset size. A retried task starts a new attempt, which replaces the
    dead attempt's counters; late reports of a dead attempt are ignored.
    """

    def __init__(self) -> None:
        self.running: dict[str, dict[str, Any]] = {}
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

    def snapshot(self) -> dict[str, Any]:
        return {"running": self.running, "retries": self.retries}


def wait_holding_cpus(ref: Any, timeout_s: float) -> Any:
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


def run_job_reporting(job: Job, cfg: ExtractConfig, board: Any, flow: RemoteFlow | None = None) -> dict[str, Any]:
    """`run_job` on a Ray worker, telling `board` of each finished video.

    Videos are processed in order and the board counts the finished ones, so the video an attempt
    died on is known; one that killed two attempts (a decoder segfault, say) becomes a failed row
    instead of failing its whole task again and again. A range of a split video is one video.
    """
    import uuid

    import ray

    attempt = uuid.uuid4().hex[:8]
    try:
        died_at = wait_holding_cpus(board.started.remote(job.name, attempt), timeout_s=60)
    except (ray.exceptions.RayError, TimeoutError):  # no board, no crash history: run every video
        died_at = []
    known_bad = known_bad_videos(job, died_at)

    def on_video(row: dict[str, Any]) -> None:
        # Waited for (a millisecond), so that when this worker dies the board's count is exact:
        # a report still in this process's send queue would make it blame the previous video.
        try:
            wait_holding_cpus(
                board.video_done.remote(job.name, attempt, row["frames"], row["status"] == STATUS_FAILED), timeout_s=10
            )
        except (ray.exceptions.RayError, TimeoutError):
            pass  # progress is best effort: never fail a task over it

    return run_job(job, cfg, on_video, known_bad, flow)


def start(cfg: ExtractConfig) -> contextlib.AbstractContextManager[Executor]:
    return contextlib.nullcontext(run)  # Ray starts in `run`: a cluster's workers are already up


def run(jobs: list[Job], cfg: ExtractConfig, progress: Progress) -> list[dict[str, Any]]:
    """Run `jobs` as Ray tasks, at most --max-in-flight at a time; returns their summaries."""
    import dataclasses

    import ray

    from ..flow.remote import ACTOR_CPUS
    from .flow_pool import FlowPool

    address = ray_address(cfg)
    # Resolved here, on the driver, so the CPUs Ray reserves and the threads OpenCV uses agree.
    cfg = dataclasses.replace(cfg, threads_per_worker=worker_threads(cfg))
    # Ray started here is shut down here: a library call must not leave Ray's threads and processes
    # behind in the caller (a training script that forks DataLoader workers next would hang).
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # address="local": always a fresh local instance, never a cluster that happens to run here
            ray.init(
                address="local",
                num_cpus=cfg.workers * cfg.threads_per_worker + cfg.flow_actors * ACTOR_CPUS,
                include_dashboard=False,
                log_to_driver=False,
            )
    pool = None
    try:
        pool = FlowPool.start(cfg, ray) if cfg.flow_actors else None  # flow actors shared by the tasks
        return _run_ray_jobs(jobs, cfg, progress, ray, pool)
    finally:
        if pool is not None:
            pool.stop(ray)
        if started_here:
            ray.shutdown()


def _run_ray_jobs(
    jobs: list[Job], cfg: ExtractConfig, progress: Progress, ray: Any, pool: FlowPool | None = None
) -> list[dict[str, Any]]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    threads = cfg.threads_per_worker
    # The board lives on the driver's node: it dies with the driver, never with a worker node.
    board = (
        ray.remote(num_cpus=0)(ProgressBoard)
        .options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        )
        .remote()
    )
    # task_retries covers worker and node deaths, and OSError (an object store's transient failure);
    # a video's own problem is caught inside the job and becomes a failed row, so nothing else retries.
    resources = {"num_cpus": threads, **({"memory": cfg.task_memory_mb * 2**20} if cfg.task_memory_mb else {})}
    task_options = dict(max_retries=cfg.task_retries, retry_exceptions=[OSError], **resources)
    remote_fn = ray.remote(run_job_reporting)
    remote_job = remote_fn.options(**task_options)
    cfg_ref = ray.put(cfg)
    max_in_flight = cfg.max_in_flight or 2 * cfg.workers
    queue, failed, summaries = JobQueue(jobs), [], []
    pending: dict[Any, Job] = {}  # ObjectRef -> its job
    while queue or pending:
        while queue and len(pending) < max_in_flight:
            job = queue.pop()
            if pool is None or job.assemble:  # an assembly computes nothing: no flow actor
                pending[remote_job.remote(job, cfg_ref, board)] = job
                continue
            flow = pool.acquire()  # the least-loaded actor; the job runs on its node when there is room
            near = remote_fn.options(**task_options, scheduling_strategy=pool.near(flow))
            ref = near.remote(job, cfg_ref, board, flow)
            pending[ref] = job
            pool.submitted(ref, flow)
        # Wake on the first finished job (so a free CPU gets a new job at once), then take every other
        # finished one; wake anyway after poll_s to refresh the progress of the running ones.
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=progress.poll_s, fetch_local=False)
        if ready:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0, fetch_local=False)
        for ref in ready:
            job = pending.pop(ref)
            if pool is not None:
                pool.release(ref)
            try:
                summary = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted: its part stays unpublished
                log.error("%s failed: %s", job.name, exc)
                failed.append((job.name, last_line(exc)))
                continue
            summaries.append(summary)
            progress.task_done(summary)
            queue.finished(job)
        if time.time() - progress.polled_at >= progress.poll_s:
            progress.poll(board, running=[j.name for j in pending.values()])
    progress.poll(board, running=[])
    if failed:
        raise jobs_failed(failed, len(jobs), cfg.task_retries)
    return summaries
