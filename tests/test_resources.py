"""A task's resources stay bounded: decoder threads follow its budget, decoded frames never pile up."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
import pytest

from flowprep.decode import Resize, StreamInfo, decode_frames
from tests.conftest import shared_path
from tests.test_extract import FAST_FLOW, extract

TASKS = Path("/proc/self/task")  # one entry per native thread of this process (Linux)


def peak_native_threads(clip: Path, threads: int) -> int:
    peak = 0
    for _ in decode_frames(str(clip), Resize("square", 16), StreamInfo(), threads=threads):
        peak = max(peak, len(os.listdir(TASKS)))
    return peak


def test_the_decoder_starts_only_the_threads_it_is_given():
    import cv2

    if not TASKS.is_dir():
        pytest.skip("counting native threads needs /proc/self/task (Linux)")
    clip = shared_path("videos", "kinetics_arm_wrestling_28fps.mp4")  # H.264: FFmpeg frame-threads it
    cv2.setNumThreads(1)  # OpenCV's own pool (resize) must not be counted
    peak_native_threads(clip, threads=1)  # warm-up: anything started once per process is started now
    idle = len(os.listdir(TASKS))
    # <=: a thread of an earlier test may still be winding down; none may be added
    assert peak_native_threads(clip, threads=1) <= idle, "one decoder thread: the caller's own"
    assert peak_native_threads(clip, threads=3) >= idle + 2, "the knob is what sets the decoder's threads"


@pytest.mark.parametrize("threads", [1, 2])
def test_each_task_gives_the_decoder_its_own_thread_budget(threads, tmp_path, write_video, monkeypatch):
    import flowprep.core as core

    write_video(tmp_path / "videos" / "a" / "v.avi", frames=3, size_px=32)
    seen = []
    real = core.decode_frames

    def recording(*args, threads=0, **kwargs):
        seen.append(threads)
        return real(*args, threads=threads, **kwargs)

    monkeypatch.setattr(core, "decode_frames", recording)
    extract(
        "--dataset",
        "folder",
        "--root",
        str(tmp_path / "videos"),
        "--out",
        str(tmp_path / "out"),
        "--executor",
        "inline",
        "--size",
        "16",
        "--threads-per-worker",
        str(threads),
        *FAST_FLOW,
    )
    assert seen == [threads]


def frames_alive_at_most(num_frames: int, monkeypatch) -> int:
    """Run process_video over a fake decoder of `num_frames` 64x64 frames; return the largest number
    of decoded frames alive at once (weak references: a frame still held anywhere counts)."""
    import flowprep.core as core
    from flowprep.core import VideoSettings, process_video
    from flowprep.flow import create_backend

    alive: list[weakref.ref] = []
    peak = {"alive": 0}

    def fake_decode(source, resize, info, max_frames=None, threads=0, skip_before=0, time_range=None):
        rng = np.random.default_rng(0)
        info.coded_hw, info.container_fps, info.tick_s = (64, 64), 25.0, 1 / 25
        for i in range(num_frames):
            frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            alive.append(weakref.ref(frame))
            peak["alive"] = max(peak["alive"], sum(ref() is not None for ref in alive))
            info.pts_s.append(i / 25)
            info.decoded_frames += 1
            yield frame
            del frame
        info.complete = True

    monkeypatch.setattr(core, "decode_frames", fake_decode)
    flow = {
        name: int(value)
        for flag, param in zip(FAST_FLOW, FAST_FLOW[1:])
        if flag == "--flow-param"
        for name, value in [param.split("=")]
    }
    result = process_video(
        "fake",
        {"id": "v", "label": 0, "class": "c"},
        VideoSettings(Resize("square", 64), timeout_s=600),
        create_backend("opencv", **flow),
    )
    assert result.num_frames == num_frames
    return peak["alive"]


def test_decoded_frames_do_not_pile_up_whatever_the_length(monkeypatch):
    """Frames are encoded as they come: a video 8x longer holds no more decoded frames at once."""
    short, long = frames_alive_at_most(10, monkeypatch), frames_alive_at_most(80, monkeypatch)
    assert long == short and short <= 6  # the producer's, the hand-over queue's (2), the consumer's
