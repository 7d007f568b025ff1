"""What the executors schedule: a Job is a whole task, one range of a ranged video, or its assembly.

`jobs_to_run` turns the unfinished tasks of a plan into jobs (a ranged task's missing ranges, or its
assembly once none is missing); `JobQueue` hands them out in run order and puts an assembly at the
front as soon as its last range is done; `run_job` runs one on a worker and says where and when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import ExtractConfig
from .plan import Task
from .ranges import assemble, pieces_done, run_range
from .task import run_task, worker_name, worker_threads


@dataclass(frozen=True)
class Job:
    """What one worker runs: a whole task, range `range_index` of a ranged task, or a ranged task's assembly."""

    task: Task
    range_index: int | None = None
    assemble: bool = False

    @property
    def name(self) -> str:
        base = self.task.part_name
        return (
            base
            if self.range_index is None and not self.assemble
            else f"{base}#assemble"
            if self.assemble
            else f"{base}#range{self.range_index}"
        )


def jobs_to_run(tasks: list[Task], fs, out: str) -> list[Job]:
    """The jobs of unfinished `tasks`: a ranged task's missing ranges, or its assembly once none is missing."""
    jobs = []
    for task in tasks:
        if not task.is_ranged:
            jobs.append(Job(task))
            continue
        done = pieces_done(fs, out, task)
        missing = [Job(task, k) for k in range(len(task.ranges)) if k not in done]
        jobs.extend(missing or [Job(task, assemble=True)])
    return jobs


class JobQueue:
    """Jobs in run order; a ranged task's assembly joins the front as soon as its last range is done."""

    def __init__(self, jobs: list[Job]):
        import collections

        self.queue = collections.deque(jobs)
        self.ranges_left: dict[tuple[str, int], int] = collections.Counter(
            (j.task.partition, j.task.index) for j in jobs if j.range_index is not None
        )

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


def run_job(
    job: Job,
    cfg: ExtractConfig,
    on_video: Callable[[dict], None] | None = None,
    known_bad: dict[str, str] | None = None,
    flow=None,
) -> dict:
    """Runs `job`; returns its summary, with where and when it ran (the report's utilization)."""
    started_at = time.time()
    if job.assemble:
        summary = assemble(job.task, cfg, on_video)
    elif job.range_index is not None:
        summary = run_range(job.task, job.range_index, cfg, known_bad, flow)
    else:
        summary = run_task(job.task, cfg, on_video, known_bad, flow)
    return {
        **summary,
        "job": job.name,
        "worker": worker_name(),
        "started_at": started_at,
        "ended_at": time.time(),
        "cpus": worker_threads(cfg),
    }


CRASHES_TO_BLAME_A_VIDEO = 2  # one death mid-video may be the node's fault; two on the same video are its own


def known_bad_videos(job: Job, died_at: list[int]) -> dict[str, str]:
    """plan_id (a clip: path + range) -> why, for the videos of `job` that killed CRASHES_TO_BLAME_A_VIDEO of
    its attempts (`died_at`: how many videos each dead attempt had finished). They become failed rows, untried."""
    import collections

    items = job.task.items
    return {
        items[index].plan_id: f"killed its worker {count} times (a crash in decoding or flow?)"
        for index, count in collections.Counter(died_at).items()
        if count >= CRASHES_TO_BLAME_A_VIDEO and index < len(items)
    }


def jobs_failed(failed: list[tuple[str, str]], total: int, retries: int) -> RuntimeError:
    """The job's error when some jobs failed for good: how many, the first and its cause, what to do."""
    return RuntimeError(
        f"{len(failed)} of {total} task(s) failed after {retries} retries, e.g. {failed[0][0]}: "
        f"{failed[0][1]}; the finished tasks are published: re-run the same command to retry the rest"
    )
