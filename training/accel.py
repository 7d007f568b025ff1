"""The network as a large run wants it: SyncBatchNorm under DDP, channels_last_3d weights, torch.compile.
Each is off by default (TrainConfig.sync_bn / channels_last / compile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where used: config.py imports this module's names without torch
    from torch import nn

COMPILE_BACKENDS = ("", "inductor", "aot_eager", "eager")  # "" = not compiled; aot_eager: no C++ compiler needed


def to_channels_last_3d(model: nn.Module) -> nn.Module:
    """5-d weights (Conv3d) in channels_last_3d, in place; 2-d nets' 4-d weights stay as they are."""
    import torch

    for param in model.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def prepare_network(net: nn.Module, world: int, sync_bn: bool, channels_last: bool, compile_backend: str) -> nn.Module:
    """`net` with its BatchNorms synchronised over the ranks (only when world > 1), its Conv3d weights in
    channels_last_3d and compiled; the modules inside `net` are changed in place, so a reference to the
    model inside (for checkpoints) stays valid. Compiled before DDP wraps it, so the loop's Join works."""
    import torch
    from torch import nn

    if sync_bn and world > 1:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    if channels_last:
        to_channels_last_3d(net)
    if compile_backend:
        net = torch.compile(net, backend=compile_backend)
    return net
