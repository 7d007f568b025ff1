"""Precise BN: BatchNorm running statistics recomputed with the final weights after an epoch."""

from __future__ import annotations

import torch
from torch import nn

from .distributed import autocast, average_over_ranks
from .normalize import model_input


@torch.no_grad()
def recompute_batchnorm(
    model: nn.Module, loader, modality: str, device: torch.device, precision: str, batches: int
) -> None:
    """Precise BN: BatchNorm running statistics recomputed as the plain average over `batches` training
    batches with the final weights, instead of the exponential average trailing the whole epoch's
    changing weights (what a short run's test accuracy suffers from). Under DDP every rank averages its
    own `batches` batches, then the ranks average theirs: the statistics of batches x world batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: cumulative average over the batches seen
    model.train()
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        with autocast(device, precision):
            model(model_input(batch, modality, device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    average_over_ranks([buf for m in norms for buf in (m.running_mean, m.running_var) if buf is not None])
