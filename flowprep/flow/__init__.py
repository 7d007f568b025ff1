"""Flow backends: a registry of name -> 'module:Class', imported only when chosen (heavy deps stay lazy).

A backend is a class with:
    name: str
    available() -> (bool, reason)            classmethod; cheap, never raises
    __init__(**overrides)                      OpenCV-named TV-L1 parameters, defaults = OpenCV's CPU defaults
    params() -> dict                           every parameter it runs with, recorded in each sample's json
    preferred_batch: int                       how many frame pairs it wants per `compute` call
    compute(prev_u8, next_u8) -> flow_xy      uint8 (B,H,W) x2 -> float32 (B,H,W,2) px, frame t -> t+1
optionally:
    compute_levels(window_u8, bound_px)        uint8 (B+1,H,W) -> uint8 (B,H,W,2) `format.quantize_flow` levels;
                                               the core prefers it (a remote backend sends back fewer bytes)
Adding a backend is one module plus one line in BACKENDS; tests parametrize over BACKENDS.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

BACKENDS: dict[str, str] = {
    "opencv": "flowprep.flow.opencv_tvl1:OpenCVTVL1",
    "torch": "flowprep.flow.torch_tvl1:TorchTVL1",  # CUDA if torch sees a device, else CPU
    "torch-cuda": "flowprep.flow.torch_tvl1:TorchCudaTVL1",  # the same, CUDA or unavailable
    "triton-cuda": "flowprep.flow.triton_tvl1:TritonCudaTVL1",  # torch-cuda with fused Triton kernels
    "opencv-cuda": "flowprep.flow.opencv_cuda:OpenCVCudaTVL1",
    "numba": "flowprep.flow.numba_tvl1:NumbaTVL1",  # OpenCV's CPU TV-L1 fused and compiled: the CPU default
}

# `auto` tries these in order and takes the first available: fastest faithful backend first.
# triton-cuda (torch-cuda's flow, its inner iteration fused into two Triton kernels), then
# torch-cuda (batched, follows the CPU code to ~0.01 px), before opencv-cuda (no median filter, other
# warp); on a CPU, numba (OpenCV's CPU code fused and compiled, ~7x its speed per core) before
# opencv itself. Plain `torch` is not in the list: on a CPU it is slower than OpenCV's own code.
AUTO_ORDER: tuple[str, ...] = ("triton-cuda", "torch-cuda", "opencv-cuda", "numba", "opencv")


def backend_class(name: str):
    """The backend class registered as `name`; unknown names raise with the valid ones."""
    if name not in BACKENDS:
        raise ValueError(f"unknown flow backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def resolve_backend_name(name: str) -> str:
    """'auto' -> the first available backend of AUTO_ORDER; an explicit name must be available."""
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            ok, reason = backend_class(candidate).available()
            if ok:
                log.info("flow backend auto -> %s", candidate)
                return candidate
            reasons.append(f"{candidate}: {reason}")
        raise RuntimeError("no flow backend is available: " + "; ".join(reasons))
    ok, reason = backend_class(name).available()
    if not ok:
        raise RuntimeError(f"flow backend {name!r} was requested but is not available: {reason}")
    return name


def create_backend(name: str, **params):
    """An instance of backend `name` ('auto' allowed) with OpenCV-named parameter overrides."""
    return backend_class(resolve_backend_name(name))(**params)
