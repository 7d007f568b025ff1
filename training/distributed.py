"""Devices, ranks and mixed precision: DDP joined from torchrun's env vars, sums and means over the ranks."""

from __future__ import annotations

import atexit
import contextlib
import os

import torch
import torch.distributed as dist


def setup_distributed(device: str) -> tuple[torch.device, int, int]:
    """(device, rank, world_size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        # Left to the interpreter's teardown, the group's C++ threads can be destroyed still joinable:
        # std::terminate, SIGABRT, a failed rank after all the work was done (seen once in CI).
        atexit.register(_leave_process_group)
    return dev, (dist.get_rank() if dist.is_initialized() else 0), world


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def autocast(device: torch.device, precision: str):
    """Mixed precision context: bf16 / fp16 autocast on CUDA, nothing for fp32."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def average_over_ranks(tensors: list[torch.Tensor]) -> None:
    """In place: each tensor becomes its mean over the ranks (a no-op outside torch.distributed).

    Without it each rank would keep statistics of its own batches only, and DDP's buffer broadcast
    would then impose rank 0's on everyone at the next forward.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for t in tensors:
        dist.all_reduce(t)
        t /= dist.get_world_size()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
