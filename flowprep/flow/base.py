"""The flow-backend contract: what the core, the flow actors and the runner may rely on, and nothing else.

A backend is a `FlowBackend` subclass, one module in `flowprep/flow/` plus one line in the registry
(`flowprep/flow/__init__.py`). The core calls `levels` only; a backend that computes float flow
implements `compute` and inherits `levels` (compute, then `format.quantize_flow`); a backend whose
flow is computed elsewhere (`remote.RemoteFlow`, on a Ray actor) implements `levels` to quantize
there, so a quarter of the bytes come back.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from .. import format as fmt


class FlowBackend(ABC):
    """TV-L1 between consecutive uint8 gray frames. Subclasses take OpenCV-named TV-L1 parameters as
    `__init__(**overrides)` (defaults: OpenCV's CPU defaults) and raise ValueError on an unknown one."""

    name: str  # the registry name, recorded in every sample's json
    needs_gpu: ClassVar[bool] = False  # True: it runs only on a CUDA device (a flow actor reserves one GPU)
    preferred_batch: int = 1  # frame pairs per call; the core sends windows of preferred_batch + 1 frames

    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here, why not); cheap and never raises (a broken driver is a reason, not a crash)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Every parameter it runs with, plus an `impl` string (code and version); JSON-serializable."""

    @abstractmethod
    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> flow_xy float32 (B,H,W,2) px, frame t -> t+1."""

    def levels(self, window_u8: np.ndarray, bound_px: float) -> np.ndarray:
        """uint8 (B+1,H,W) consecutive frames -> uint8 (B,H,W,2) `format.quantize_flow` levels of their B flows.

        The core's one entry point: what is written to the shards is always these levels."""
        return fmt.quantize_flow(self.compute(window_u8[:-1], window_u8[1:]), bound_px)


def importable(module: str, hint: str) -> tuple[bool, str]:
    """`available()`'s answer for a backend that needs `module`: (True, '') or why not, with how to get it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return False, f"{module} is not installed ({hint}): {exc}"
    return True, ""
