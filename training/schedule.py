"""The staples of large runs, as small functions over an optimizer and a model (train.py / loops.py call them):
the linear scaling rule, linear warmup, parameter groups without weight decay on norms and biases, label-
smoothed targets. Each is off by default, so a run without the flags takes the same steps as before."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def scaled_lr(lr: float, batch_size: int, world: int, base_batch: int) -> float:
    """Goyal et al.'s linear scaling rule: `lr` was tuned for a global batch of `base_batch` clips (0 = as given)."""
    return lr * batch_size * world / base_batch if base_batch else lr


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup: step s (counted from 0) runs at (s + 1) / warmup_steps of the lr, then 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


@contextlib.contextmanager
def warmed_up(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int) -> Iterator[None]:
    """The optimizer steps at warmup_factor x its lr, which is put back after: the epoch scheduler
    (plateau, cosine, multistep) never sees the warmup, so the two compose without knowing each other."""
    factor = warmup_factor(step, warmup_steps)
    if factor == 1.0:
        yield
        return
    saved = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, saved):
        group["lr"] = lr * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr


def param_groups(model: nn.Module, weight_decay: float, exclude_norm_bias: bool) -> list[dict]:
    """SGD groups: with `exclude_norm_bias`, biases and norm scales/shifts (every 1-d parameter) get no decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not exclude_norm_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def smooth_targets(target: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """Labels (B,) -> probabilities float32 (B,K): 1 - eps + eps/K on the label, eps/K elsewhere.

    F.cross_entropy takes these as soft targets, so every loss that calls it smooths with no change."""
    soft = torch.full((len(target), num_classes), eps / num_classes, device=target.device)
    return soft.scatter_(1, target[:, None], 1.0 - eps + eps / num_classes)
