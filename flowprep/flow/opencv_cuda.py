"""OpenCV's CUDA TV-L1 (`cv2.cuda.OpticalFlowDual_TVL1`), set up with the CPU reference's parameters.

Needs an OpenCV built with CUDA (the PyPI wheels are not): `available()` says so when it is missing.
The CUDA class (opencv_contrib `modules/cudaoptflow`) is a different code from the CPU one, and
some of the difference cannot be configured away (docs/flow_backends.md):
  - one iteration budget (`iterations`) instead of inner x outer; set to inner * outer = 300;
  - no median filtering of the flow (the CPU default filters with a 5x5 median);
  - warping by a normalized Keys cubic (a = -0.5) with clamped border, where the CPU code uses
    cv::remap (a = -0.75, zero border).
`params()` records what it really runs with, so shards say which flavour of TV-L1 made them.
"""

from __future__ import annotations

import numpy as np

from flowprep.flow.base import FlowBackend
from flowprep.flow.opencv_tvl1 import OPENCV_TVL1_DEFAULTS, merge_params


def _factory():
    """The CUDA TV-L1 factory of this cv2 build, whichever name its bindings use (or None)."""
    import cv2

    cuda = getattr(cv2, "cuda", None)
    for owner, attr in (
        (cuda, "OpticalFlowDual_TVL1_create"),
        (getattr(cuda, "OpticalFlowDual_TVL1", None), "create"),
        (getattr(cv2, "cuda_OpticalFlowDual_TVL1", None), "create"),
    ):
        if owner is not None and hasattr(owner, attr):
            return getattr(owner, attr)
    return None


class OpenCVCudaTVL1(FlowBackend):
    name = "opencv-cuda"
    needs_gpu = True
    preferred_batch = 16  # pairs are computed one by one; a batch only saves Python round trips

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import cv2
        except ImportError as exc:
            return False, f"cv2 is not installed: {exc}"
        try:
            if not hasattr(cv2, "cuda"):
                return False, "this OpenCV build has no cv2.cuda module (PyPI wheels are CPU-only)"
            count = cv2.cuda.getCudaEnabledDeviceCount()
            if count < 1:
                return False, "OpenCV was built without CUDA or sees no CUDA device (getCudaEnabledDeviceCount() = 0)"
            if _factory() is None:
                return False, "this OpenCV CUDA build lacks cudaoptflow's OpticalFlowDual_TVL1"
        except Exception as exc:  # a broken driver must not crash `available()`
            return False, f"cv2.cuda failed: {exc}"
        return True, ""

    def __init__(self, **overrides):
        self._params = merge_params(OPENCV_TVL1_DEFAULTS, overrides)
        p = self._params
        if p["use_initial_flow"]:
            raise ValueError("opencv-cuda backend does not take an initial flow (use_initial_flow=False)")
        self._iterations = int(p["inner_iterations"]) * int(p["outer_iterations"])
        # The CUDA defaults are tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01,
        # 300 iterations, scale step 0.8, gamma 0: set every one explicitly anyway, so a change of
        # OpenCV's defaults cannot change our output.
        self._tvl1 = _factory()(
            float(p["tau"]),
            float(p["lambda"]),
            float(p["theta"]),
            int(p["nscales"]),
            int(p["warps"]),
            float(p["epsilon"]),
            self._iterations,
            float(p["scale_step"]),
            float(p["gamma"]),
            False,
        )
        self._gpu = None  # (I0, I1, flow) GpuMats, reused between pairs

    def params(self) -> dict:
        import cv2

        return {
            **self._params,
            "iterations": self._iterations,
            "median_filtering": 0,
            "impl": f"cv2.cuda.OpticalFlowDual_TVL1 {cv2.__version__} (no median filter, a=-0.5 cubic warp)",
        }

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> float32 (B,H,W,2) px."""
        import cv2

        if self._gpu is None:
            self._gpu = (cv2.cuda_GpuMat(), cv2.cuda_GpuMat(), cv2.cuda_GpuMat())
        g0, g1, gflow = self._gpu
        flows = []
        for a, b in zip(prev_u8, next_u8):
            g0.upload(np.ascontiguousarray(a))
            g1.upload(np.ascontiguousarray(b))
            gflow = self._tvl1.calc(g0, g1, gflow)
            flows.append(gflow.download())
        self._gpu = (g0, g1, gflow)
        if not flows:
            return np.zeros(np.shape(prev_u8) + (2,), np.float32)
        return np.stack(flows).astype(np.float32, copy=False)
