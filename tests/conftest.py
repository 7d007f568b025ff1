"""Shared fixtures: where the real test material is, and tiny synthetic videos made on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test material not found: {path} (../shared/data is absent on this machine)")
    return path


def moving_square_video(frames: int = 6, size_px: int = 48, step_px: int = 2, seed: int = 0) -> np.ndarray:
    """uint8 (T,H,W,3): a textured square moving right by `step_px` per frame over a textured background."""
    rng = np.random.default_rng(seed)
    import cv2

    background = cv2.GaussianBlur(rng.integers(0, 255, (size_px, size_px, 3), dtype=np.uint8), (0, 0), 1.5)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (size_px // 3, size_px // 3, 3), dtype=np.uint8), (0, 0), 1.0)
    video = []
    for t in range(frames):
        frame = background.copy()
        x = 4 + step_px * t
        frame[8 : 8 + patch.shape[0], x : x + patch.shape[1]] = patch
        video.append(frame)
    return np.stack(video)


@pytest.fixture
def write_video():
    """write_video(path, frames=6, size_px=48) -> path of a real MPEG-4 AVI written with PyAV."""
    from flowprep.datasets.sample import write_avi

    def _write(path: Path, frames: int = 6, size_px: int = 48, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_avi(path, moving_square_video(frames, size_px, seed=seed))
        return path

    return _write


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # Tests share 2 cores; keep OpenCV from spawning a thread per core in each test process.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from intra-op threads; on a shared 2-core machine two threads spin
    against each other (a tiny twins step: 4 s with 2 threads, 0.5 s with 1, under load)."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
