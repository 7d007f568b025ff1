"""CPU TV-L1 from OpenCV contrib (`cv2.optflow.DualTVL1OpticalFlow`), the paper's reference backend."""

from __future__ import annotations

import numpy as np

from flowprep.flow.base import FlowBackend

# OpenCV's CPU defaults (modules/optflow/src/tvl1flow.cpp), the setting the IMRS paper used.
OPENCV_TVL1_DEFAULTS: dict[str, float | int | bool] = {
    "tau": 0.25,
    "lambda": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "inner_iterations": 30,
    "outer_iterations": 10,
    "scale_step": 0.8,
    "gamma": 0.0,
    "median_filtering": 5,
    "use_initial_flow": False,
}

_SETTERS = {
    "tau": "setTau",
    "lambda": "setLambda",
    "theta": "setTheta",
    "nscales": "setScalesNumber",
    "warps": "setWarpingsNumber",
    "epsilon": "setEpsilon",
    "inner_iterations": "setInnerIterations",
    "outer_iterations": "setOuterIterations",
    "scale_step": "setScaleStep",
    "gamma": "setGamma",
    "median_filtering": "setMedianFiltering",
    "use_initial_flow": "setUseInitialFlow",
}


def merge_params(defaults: dict, overrides: dict) -> dict:
    """Defaults updated by overrides; an unknown parameter name is a config error, said at once."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown TV-L1 parameter(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **overrides}


class OpenCVTVL1(FlowBackend):
    name = "opencv"
    preferred_batch = 1  # OpenCV computes one pair at a time; parallelism comes from workers

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import cv2

            _ = cv2.optflow.DualTVL1OpticalFlow_create  # AttributeError: a build without the contrib modules
        except (ImportError, AttributeError) as exc:
            return False, f"cv2.optflow missing (install opencv-contrib-python-headless): {exc}"
        return True, ""

    def __init__(self, **overrides):
        import cv2

        self._params = merge_params(OPENCV_TVL1_DEFAULTS, overrides)
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        for key, value in self._params.items():
            getattr(self._tvl1, _SETTERS[key])(type(OPENCV_TVL1_DEFAULTS[key])(value))

    def params(self) -> dict:
        import cv2

        return {**self._params, "impl": f"cv2.optflow.DualTVL1OpticalFlow {cv2.__version__}"}

    def compute(self, prev_u8: np.ndarray, next_u8: np.ndarray) -> np.ndarray:
        """uint8 (B,H,W) x2 -> float32 (B,H,W,2) px."""
        flows = [self._tvl1.calc(a, b, None) for a, b in zip(prev_u8, next_u8)]
        return np.stack(flows).astype(np.float32, copy=False)
