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
import logging
import multiprocessing
from multiprocessing.connection import wait

from .config import ExtractConfig
from .errors import last_line
from .jobs import Job, JobQueue, jobs_failed, known_bad_videos, run_job
from .manifest import STATUS_FAILED

log = logging.getLogger(__name__)


def _serve(conn, backend_name: str) -> None:
    """A worker process: run the jobs the driver sends until it sends None."""
    import importlib

    for module in ("av", "cv2"):  # imported while the driver plans, so that the first job starts at once
        importlib.import_module(module)
    try:  # the flow backend's code too (numba loads its compiled kernels): the driver resolves the same name
        from .flow import backend_class, resolve_backend_name

        backend_class(resolve_backend_name(backend_name))()
    except Exception:  # the job builds it again and reports what is wrong
        pass

    while True:
        message = conn.recv()
        if message is None:
            return
        job, cfg, known_bad = message

        def on_video(row: dict) -> None:  # sent before the next video starts: the driver's count is exact
            conn.send(("video", row["frames"], row["status"] == STATUS_FAILED))

        try:
            conn.send(("done", run_job(job, cfg, on_video, known_bad)))
        except Exception as exc:  # a storage error is retried like a dead worker; anything else fails the job
            conn.send(("error", isinstance(exc, OSError), f"{type(exc).__name__}: {last_line(exc)}"))


class _Worker:
    def __init__(self, context, backend_name: str):
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


def run_processes(jobs: list[Job], cfg: ExtractConfig, progress, pool: ProcessPool) -> list[dict]:
    """Run `jobs` on the pool's processes; returns their summaries."""
    import dataclasses

    from .task import worker_threads

    cfg = dataclasses.replace(cfg, threads_per_worker=worker_threads(cfg))
    workers = pool.workers
    queue, summaries, failed = JobQueue(jobs), [], []
    died_at: dict[str, list[int]] = collections.defaultdict(list)  # job -> videos done when each attempt died
    attempts: collections.Counter = collections.Counter()
    while queue or any(w.job for w in workers):
        for worker in workers:
            if worker.job is None and queue:
                # Idle CPU goes to the work left: fewer jobs than idle workers, and each job takes the
                # threads of the workers that will have nothing to do (OpenCV's TV-L1 and FFmpeg use them).
                idle = sum(w.job is None for w in workers)
                share = max(1, idle // len(queue))
                job = queue.pop()
                job_cfg = cfg if share == 1 else dataclasses.replace(cfg, threads_per_worker=cfg.threads_per_worker * share)
                worker.conn.send((job, job_cfg, known_bad_videos(job, died_at[job.name])))
                worker.job = job
                worker.counted = {"videos": 0, "frames": 0, "failed": 0}
                attempts[job.name] += 1
        busy = [w for w in workers if w.job]
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=progress.poll_s)
        for index, worker in enumerate(workers):
            if worker.job is None or (worker.conn not in ready and worker.process.sentinel not in ready):
                continue
            try:
                message = worker.conn.recv() if worker.conn.poll() else None
            except (EOFError, OSError):
                message = None
            if message is None and worker.process.is_alive():
                continue
            if message is None or (message[0] == "error" and message[1]):  # died, or a storage error
                job = worker.job
                cause = "worker died" if message is None else message[2]
                for name, n in worker.counted.items():  # the attempt's videos are redone
                    progress.done[name] -= n
                if message is None:
                    died_at[job.name].append(worker.counted["videos"])
                    worker = pool.replace(index)
                worker.job = None
                progress.retries += 1
                if attempts[job.name] > cfg.task_retries:
                    log.error("%s failed: %s", job.name, cause)
                    failed.append((job.name, cause))
                else:
                    queue.queue.appendleft(job)
            elif message[0] == "video":
                row = {"frames": message[1], "status": STATUS_FAILED if message[2] else "ok"}
                progress.video_done(row)
                worker.counted["videos"] += 1
                worker.counted["frames"] += message[1]
                worker.counted["failed"] += int(message[2])
            elif message[0] == "error":
                log.error("%s failed: %s", worker.job.name, message[2])
                failed.append((worker.job.name, message[2]))
                worker.job = None
            else:  # done
                summary = message[1]
                summaries.append(summary)
                if worker.job.range_index is not None:  # a range has no finished video, only frames
                    progress.task_done({"videos": 0, "frames": summary["frames"], "failed": 0})
                queue.finished(worker.job)
                worker.job = None
    if failed:
        raise jobs_failed(failed, len(jobs), cfg.task_retries)
    return summaries
