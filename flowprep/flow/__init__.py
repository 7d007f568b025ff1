"""Flow backends: a registry of name -> 'module:Class', each imported only when chosen (heavy deps stay lazy).

Every backend subclasses `base.FlowBackend` (the contract: `name`, `needs_gpu`, `preferred_batch`,
`available()`, `params()`, `compute(prev_u8, next_u8)` and `levels(window_u8, bound_px)`, the core's
one entry point). Adding a backend is one module plus one line in BACKENDS; the tests parametrize over
BACKENDS, so a new backend is covered by them with no new test. `resolve` is the one place a requested
name (`auto` included) becomes the backend a job runs and records.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from ..registry import Registry
from .base import FlowBackend

log = logging.getLogger(__name__)

BACKENDS = Registry(
    "flow backend",
    {
        "opencv": "flowprep.flow.opencv_tvl1:OpenCVTVL1",
        "torch": "flowprep.flow.torch_tvl1:TorchTVL1",  # CUDA if torch sees a device, else CPU
        "torch-cuda": "flowprep.flow.torch_tvl1:TorchCudaTVL1",  # the same, CUDA or unavailable
        "triton-cuda": "flowprep.flow.triton_tvl1:TritonCudaTVL1",  # torch-cuda with fused Triton kernels
        "opencv-cuda": "flowprep.flow.opencv_cuda:OpenCVCudaTVL1",
        "numba": "flowprep.flow.numba_tvl1:NumbaTVL1",  # OpenCV's CPU TV-L1 fused and compiled: the CPU default
    },
)

# `auto` tries these in order and takes the first available: fastest faithful backend first.
# triton-cuda (torch-cuda's flow, its inner iteration fused into two Triton kernels), then
# torch-cuda (batched, follows the CPU code to ~0.01 px), before opencv-cuda (no median filter, other
# warp); on a CPU, numba (OpenCV's CPU code fused and compiled, ~17-21x its speed per core) before
# opencv itself. Plain `torch` is not in the list: on a CPU it is slower than OpenCV's own code.
AUTO_ORDER: tuple[str, ...] = ("triton-cuda", "torch-cuda", "opencv-cuda", "numba", "opencv")


class ResolvedBackend(NamedTuple):
    name: str  # a registered name, never 'auto': what the job's config records and resumes with
    params: dict  # the parameters it runs with (the job's `flow_params_resolved`)


def backend_class(name: str) -> type[FlowBackend]:
    """The backend class registered as `name`; unknown names raise with the valid ones."""
    if name not in BACKENDS:
        raise ValueError(f"unknown flow backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    return BACKENDS.get(name)


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


def resolve(name: str, params: dict, on_actors: bool) -> ResolvedBackend:
    """The backend a job runs (`name` may be 'auto') and the parameters it records, checked before any work.

    In the job's own processes the backend must be available here and is built once for its `params()`.
    On flow actors it is built on the actors' nodes, which the driver (a CPU-only head, say) may not
    resemble: the name is only looked up (unknown raises), `auto` is refused, and the parameters
    recorded are OpenCV's defaults with the overrides, `built_on` the actors (each sample's json has
    the actor's own `params()`).
    """
    if not on_actors:
        resolved = resolve_backend_name(name)
        return ResolvedBackend(resolved, backend_class(resolved)(**params).params())
    from .opencv_tvl1 import OPENCV_TVL1_DEFAULTS

    if name == "auto":
        raise ValueError(
            "--flow-backend auto with --flow-actors: name the backend (e.g. torch-cuda); "
            "the driver's machine may not have the flow actors' accelerator"
        )
    backend_class(name)  # an unknown name fails here, before any work
    built_on = "the flow actors (see each sample's json)"
    return ResolvedBackend(name, {**OPENCV_TVL1_DEFAULTS, **params, "built_on": built_on})


def create_backend(name: str, **params) -> FlowBackend:
    """An instance of backend `name` ('auto' allowed) with OpenCV-named parameter overrides."""
    return backend_class(resolve_backend_name(name))(**params)
