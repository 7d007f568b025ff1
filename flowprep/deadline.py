"""A per-video wall-clock limit that holds even when the decoder is stuck inside C.

A Python signal or a check between frames cannot stop a decoder that spins (or a read that hangs)
inside FFmpeg: the interpreter runs the handler only when the C call returns. So the frames are
produced on a daemon thread and handed over through a small queue; the caller waits for each one
only until the deadline. PyAV releases the GIL while it demuxes and decodes, so the waiting thread
runs. A producer stuck for good is abandoned: it keeps its one container and its core until the
process exits (`abandoned_threads()` counts them), and the task goes on with its next video.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

from .decode import VideoError

log = logging.getLogger(__name__)
T = TypeVar("T")
_abandoned: list[threading.Thread] = []


class VideoTimeout(VideoError):
    """The video took longer than its limit; recorded as a failed row `timeout after N s (...)`."""

    def __init__(self, limit_s: float, detail: str):
        Exception.__init__(self, f"timeout after {limit_s:g} s ({detail})")
        self.cause = "timeout"


def abandoned_threads() -> int:
    """Producer threads given up on in this process that are still running (stuck decoders)."""
    return sum(t.is_alive() for t in _abandoned)


def iterate_until(items: Iterator[T], deadline: float, limit_s: float, depth: int = 2) -> Iterator[T]:
    """Yield `items` (iterated on a daemon thread) until `deadline` (time.monotonic()).

    Raises VideoTimeout when the next item has not come by the deadline, and whatever iterating
    `items` raised otherwise. `depth` items at most wait in the queue: the producer runs only that
    far ahead, so memory stays bounded and the decoder barely overlaps the caller's work.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the caller, raised there
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator is closed by the thread that runs it
                close()

    producer = threading.Thread(target=produce, name="flowprep-decode", daemon=True)
    producer.start()
    received = 0
    try:
        while True:
            try:
                kind, value = handoff.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise VideoTimeout(limit_s, f"{received} frames decoded by then") from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            received += 1
            yield value
            if time.monotonic() > deadline:  # the caller's own work (flow) used the time up
                raise VideoTimeout(limit_s, f"{received} frames decoded by then")
    finally:
        stop.set()
        producer.join(timeout=1.0)
        if producer.is_alive():
            _abandoned.append(producer)
            log.warning(
                "a decoder thread did not stop after the %g s limit and was left behind (%d stuck in this "
                "process; each holds a core until it exits)",
                limit_s,
                abandoned_threads(),
            )
