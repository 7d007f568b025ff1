"""Live progress of a job: a tqdm bar over videos, with frames/s, failures and retries."""

from __future__ import annotations

import logging
import time

from .manifest import STATUS_FAILED

log = logging.getLogger(__name__)


class Progress:
    """Live progress: a tqdm bar over videos with frames/s, failures and retries in its postfix.

    Finished tasks are counted from their summaries; the tasks still running from a Ray actor
    (`ProgressBoard`) polled every `poll_s` seconds, so the bar moves between task completions.
    """

    def __init__(self, total_videos: int, disable: bool = False):
        import sys

        from tqdm import tqdm

        # Not a terminal (a Ray Job's log, a Slurm file): a line every 30 s instead of a redraw per video.
        self.bar = tqdm(
            total=total_videos,
            unit="video",
            disable=disable,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )
        self.poll_s, self.polled_at = 1.0, 0.0
        self.done = {"videos": 0, "frames": 0, "failed": 0}
        self.retries = 0
        self.started = time.time()

    def _show(self, videos: int, frames: int, failed: int) -> None:
        frames_per_s = frames / max(time.time() - self.started, 1e-9)
        self.bar.set_postfix(
            frames=frames, fps=f"{frames_per_s:.0f}", failed=failed, retries=self.retries, refresh=False
        )
        self.bar.update(videos - self.bar.n)  # may step back when a dead attempt's videos are redone

    def video_done(self, row: dict) -> None:
        self.done["videos"] += 1
        self.done["frames"] += row["frames"]
        self.done["failed"] += row["status"] == STATUS_FAILED
        self._show(**self.done)

    def task_done(self, summary: dict) -> None:
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
        live = dict.fromkeys(self.done, 0)
        for task in running:
            for name in live:
                live[name] += snapshot["running"].get(task, {}).get(name, 0)
        running_set = set(running)
        board.forget.remote([t for t in snapshot["running"] if t not in running_set])
        self._show(**{name: self.done[name] + live[name] for name in self.done})

    def close(self) -> None:
        self.bar.close()
