"""Small helpers every model family shares."""

from __future__ import annotations

from torch import nn


def freeze(model: nn.Module) -> nn.Module:
    """Frozen teacher: eval mode (BN uses its running stats, dropout off), no parameter needs grad.

    Call its forward under `torch.no_grad()` too, so no graph is kept. Returns `model` for chaining.
    Note `model.train()` (e.g. from a loop that toggles every module) would undo the eval mode:
    the loops should never call it on the teacher.
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter scalars (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
