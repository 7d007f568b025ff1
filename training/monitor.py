"""What a run shows while it trains, on rank 0: a progress line (step, clips/s, ETA of the epoch), TensorBoard
scalars (optional: one warning line when the package is missing), and the checkpoints every N steps."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .optional import missing_message

log = logging.getLogger(__name__)


def tensorboard_writer(folder: Path):
    """A SummaryWriter, or None with one warning line when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        log.warning("--tensorboard: %s; going on without it", missing_message(exc, "--tensorboard") or exc)
        return None
    return SummaryWriter(str(folder))


def progress_line(epoch: int, step: int, steps_in_epoch: int, expected: int, clips_per_s: float, eta_s: float) -> str:
    eta = f"ETA {int(eta_s // 60)}:{int(eta_s % 60):02d}" if eta_s >= 0 else "ETA ?"
    of = f"/{expected}" if expected else ""
    return f"epoch {epoch} step {step} ({steps_in_epoch}{of} this epoch) {clips_per_s:.1f} clips/s {eta}"


class RunMonitor:
    """Called by the loop after every step (`on_step`) and by train() at epoch starts and ends."""

    def __init__(
        self,
        checkpoint_every: int,
        rank: int,
        progress: bool,
        tensorboard: Path | None,
        expected_steps: int = 0,
        stream=None,
        interval_s: float | None = None,
    ):
        self.every, self.rank = checkpoint_every, rank
        self.show = progress and rank == 0
        self.tb = tensorboard_writer(tensorboard) if tensorboard is not None and rank == 0 else None
        self.expected = expected_steps  # steps per epoch: known for --epoch-samples, else learnt from epoch 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # a terminal redraws one line every 2 s; a log file (batch job) gets a line a minute, not a \r smear
        self.interval_s = interval_s if interval_s is not None else (2.0 if self.tty else 60.0)
        self.save: Callable[[dict], None] | None = None

    def start_epoch(self, epoch: int, save: Callable[[dict], None], resumed: dict | None = None) -> None:
        self.epoch, self.save = epoch, save
        self.t0 = self.shown = time.perf_counter()
        self.steps = self.skipped = resumed["batches"] if resumed else 0
        self.clips0 = resumed["seen"] if resumed else 0

    def on_step(self, step: int, seen: int, progress: Callable[[], dict]) -> None:
        self.steps += 1
        if self.every and step % self.every == 0 and self.save is not None:
            self.save({**progress(), "step": step})  # on every rank: the running sums are summed over ranks
        now = time.perf_counter()
        if self.show and now - self.shown >= self.interval_s:
            self.shown = now
            rate = (seen - self.clips0) / max(now - self.t0, 1e-9)
            per_step = (now - self.t0) / max(self.steps - self.skipped, 1)
            eta = (self.expected - self.steps) * per_step if self.expected else -1.0
            line = progress_line(self.epoch, step, self.steps, self.expected, rate, eta)
            self.stream.write("\r" + line if self.tty else line + "\n")
            self.stream.flush()
            if self.tb is not None:
                self.tb.add_scalar("train/clips_per_second", rate, step)

    def end_epoch(self, metrics: dict) -> None:
        if self.show and self.tty:
            self.stream.write("\n")
        if not self.expected:
            self.expected = self.steps  # an epoch is one pass: the next ones have about as many steps
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.tb.add_scalar(f"epoch/{key}", value, metrics["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
