"""The single-machine executor without Ray: `--workers` long-lived worker processes, one job each at a time.

Ray costs a fixed ~10 s per run on a 2-core machine (start 6 s, first workers 1 s, shutdown 1.4 s:
`benchmarks/results/vs_mmaction2.md`), which is most of a small job. These workers start in about a
second and keep Ray's fault model on one machine: each worker has a pipe of its own, so when a worker
process dies the driver knows the job and the video it was on; the job is retried (up to
--task-retries), a video that killed two attempts becomes a failed row, and a storage error (OSError)
is retried like a dead worker. Anything else a job raises fails the job; its part stays unpublished.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ..config import ExtractConfig
from ..errors import last_line
from ..jobs import Job, JobQueue, jobs_failed, known_bad_videos, run_job
from ..manifest import STATUS_FAILED
from ..progress import Progress
from . import Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOrder:
    """Driver -> worker: run `job` with `cfg`; `known_bad` videos become failed rows untried."""

    job: Job
    cfg: ExtractConfig
    known_bad: dict[str, str]


@dataclass(frozen=True)
class VideoDone:
    """Worker -> driver, sent before the next video starts (so the driver's count is exact)."""

    frames: int
    failed: bool


@dataclass(frozen=True)
class JobDone:
    summary: dict[str, Any]


@dataclass(frozen=True)
class JobError:
    error: str  # 'Type: last line'
    retry: bool  # a storage error (OSError): retried like a dead worker; anything else fails the job


WorkerMessage = VideoDone | JobDone | JobError


def _serve(conn: Any, backend_name: str) -> None:
    """A worker process: run the jobs the driver sends until it sends None."""
    import importlib

    for module in ("av", "cv2"):  # imported while the driver plans, so that the first job starts at once
        importlib.import_module(module)
    try:  # the flow backend's code too (numba loads its compiled kernels): the driver resolves the same name
        from ..flow import backend_class, resolve_backend_name

        backend_class(resolve_backend_name(backend_name))()
    except Exception:  # the job builds it again and reports what is wrong
        pass

    while True:
        order: JobOrder | None = conn.recv()
        if order is None:
            return

        def on_video(row: dict[str, Any]) -> None:
            conn.send(VideoDone(row["frames"], row["status"] == STATUS_FAILED))

        try:
            conn.send(JobDone(run_job(order.job, order.cfg, on_video, order.known_bad)))
        except Exception as exc:
            conn.send(JobError(f"{type(exc).__name__}: {last_line(exc)}", retry=isinstance(exc, OSError)))


class _Worker:
    def __init__(self, context: Any, backend_name: str):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, backend_name), daemon=True, name="flowprep-worker")
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.counted = {"videos": 0, "frames": 0, "failed": 0}  # what the bar took from the current attempt


def start_method() -> str:
    """fork where it is safe (Linux, this process has one thread: the pool starts before any other work),
    so that a worker starts with the driver's modules already imported (~1 s less than spawn); else spawn."""
    import sys
    import threading

    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


class ProcessPool:
    """`workers` processes, started as soon as the job starts (they import while the driver plans)."""

    def __init__(self, workers: int, backend_name: str):
        self.context = multiprocessing.get_context(start_method())
        self.backend_name = backend_name
        self.workers = [_Worker(self.context, backend_name) for _ in range(workers)]

    def replace(self, index: int) -> _Worker:
        self.workers[index] = _Worker(self.context, self.backend_name)
        return self.workers[index]

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()  # by its own handle, never by name


@contextlib.contextmanager
def start(cfg: ExtractConfig) -> Iterator[Executor]:
    """The pool started now (its workers import while the driver plans), closed when the job is done."""
    pool = ProcessPool(cfg.workers, cfg.flow_backend)
    try:
        yield functools.partial(run, pool=pool)
    finally:
        pool.close()


def run(
    jobs: list[Job], cfg: ExtractConfig, progress: Progress, pool: ProcessPool | None = None
) -> list[dict[str, Any]]:
    """Run `jobs` on the pool's processes (a pool of its own when none is given); returns their summaries."""
    if pool is None:
        with start(cfg) as run_on_pool:
            return run_on_pool(jobs, cfg, progress)
    import dataclasses

    from ..task import worker_threads

    cfg = dataclasses.replace(cfg, threads_per_worker=worker_threads(cfg))
    workers = pool.workers
    queue, summaries, failed = JobQueue(jobs), [], []  # failed: (job name, cause)
    died_at: dict[str, list[int]] = collections.defaultdict(list)  # job -> videos done when each attempt died
    attempts: collections.Counter[str] = collections.Counter()
    while queue or any(w.job for w in workers):
        for worker in workers:
            if worker.job is None and queue:
                # Idle CPU goes to the work left: fewer jobs than idle workers, and each job takes the
                # threads of the workers that will have nothing to do (OpenCV's TV-L1 and FFmpeg use them).
                idle = sum(w.job is None for w in workers)
                share = max(1, idle // len(queue))
                job = queue.pop()
                job_cfg = (
                    cfg if share == 1 else dataclasses.replace(cfg, threads_per_worker=cfg.threads_per_worker * share)
                )
                worker.conn.send(JobOrder(job, job_cfg, known_bad_videos(job, died_at[job.name])))
                worker.job = job
                worker.counted = {"videos": 0, "frames": 0, "failed": 0}
                attempts[job.name] += 1
        busy = [w for w in workers if w.job]
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=progress.poll_s)
        for index, worker in enumerate(workers):
            running = worker.job
            if running is None or (worker.conn not in ready and worker.process.sentinel not in ready):
                continue
            try:
                message: WorkerMessage | None = worker.conn.recv() if worker.conn.poll() else None
            except (EOFError, OSError):
                message = None
            if message is None and worker.process.is_alive():
                continue
            if message is None or (isinstance(message, JobError) and message.retry):  # died, or a storage error
                cause = "worker died" if message is None else message.error
                for name, n in worker.counted.items():  # the attempt's videos are redone
                    progress.done[name] -= n
                if message is None:
                    died_at[running.name].append(worker.counted["videos"])
                    worker = pool.replace(index)
                worker.job = None
                progress.retries += 1
                if attempts[running.name] > cfg.task_retries:
                    log.error("%s failed: %s", running.name, cause)
                    failed.append((running.name, cause))
                else:
                    queue.queue.appendleft(running)
            elif isinstance(message, VideoDone):
                row = {"frames": message.frames, "status": STATUS_FAILED if message.failed else "ok"}
                progress.video_done(row)
                worker.counted["videos"] += 1
                worker.counted["frames"] += message.frames
                worker.counted["failed"] += int(message.failed)
            elif isinstance(message, JobError):
                log.error("%s failed: %s", running.name, message.error)
                failed.append((running.name, message.error))
                worker.job = None
            else:  # JobDone
                summary = message.summary
                summaries.append(summary)
                if running.range_index is not None:  # a range has no finished video, only frames
                    progress.task_done({"videos": 0, "frames": summary["frames"], "failed": 0})
                queue.finished(running)
                worker.job = None
    if failed:
        raise jobs_failed(failed, len(jobs), cfg.task_retries)
    return summaries
