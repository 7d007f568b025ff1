"""The inline executor: every job in this process, one after another (debugging, tests, a tiny job)."""

from __future__ import annotations

import contextlib
from typing import Any

from ..config import ExtractConfig
from ..jobs import Job, JobQueue, run_job
from ..progress import Progress
from . import Executor


def run(jobs: list[Job], cfg: ExtractConfig, progress: Progress) -> list[dict[str, Any]]:
    import cv2

    threads = cv2.getNumThreads()  # a job sets OpenCV's threads to its share: the caller's setting comes back
    queue, summaries = JobQueue(jobs), []
    try:
        while queue:
            job = queue.pop()
            summaries.append(run_job(job, cfg, on_video=progress.video_done))
            queue.finished(job)
    finally:
        cv2.setNumThreads(threads)
    return summaries


def start(cfg: ExtractConfig) -> contextlib.AbstractContextManager[Executor]:
    return contextlib.nullcontext(run)
