"""Channel attention placed after each residual stage: the IMRS CE module and the SE block it replaces.

Both gate a feature map `x: (B, C, *spatial)` channel by channel with `sigmoid(f(mean of x over
*spatial))`, so they work unchanged on 3D (B,C,T,H,W) and 2D (B,C,H,W) maps.
"""

from __future__ import annotations

import torch
from torch import nn

EXCITATIONS = ("none", "ce", "se")


def _gate(x: torch.Tensor, weights_bc: torch.Tensor) -> torch.Tensor:
    """x: (B,C,*spatial) times per-channel weights (B,C) broadcast over the spatial dims."""
    return x * weights_bc.reshape(*weights_bc.shape, *([1] * (x.dim() - 2)))


class ChannelExcitation(nn.Module):
    """IMRS CE module (paper 001, eqs. 1-5): eta = sigmoid(Conv1D_k(y)), y = global average of x.

    The 1-D convolution slides over the channel axis of the pooled descriptor with one shared
    k-tap kernel (eq. 4), so each channel's weight depends on its k neighbours only; no bias, zero
    padding k//2 so the channel count is kept. k parameters per module (k=3 in the paper).
    """

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CE kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y_bc = x.mean(dim=tuple(range(2, x.dim())))
        eta_bc = torch.sigmoid(self.conv(y_bc.unsqueeze(1)).squeeze(1))
        return _gate(x, eta_bc)


class SqueezeExcitation(nn.Module):
    """SE block (Hu et al. 2018), the IMRS ablation baseline: FC C->C/r, ReLU, FC C/r->C, sigmoid.

    Both FC layers have biases as in SENet: 2*C*(C/r) + C/r + C parameters per block.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if reduction < 1 or channels % reduction:
            raise ValueError(f"SE reduction {reduction} must divide the channel count {channels}")
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _gate(x, self.fc(x.mean(dim=tuple(range(2, x.dim())))))


def make_excitation(kind: str, channels: int, *, ce_kernel: int = 3, se_reduction: int = 16) -> nn.Module:
    """'none' -> identity, 'ce' -> ChannelExcitation(ce_kernel), 'se' -> SqueezeExcitation(channels)."""
    if kind == "none":
        return nn.Identity()
    if kind == "ce":
        return ChannelExcitation(ce_kernel)
    if kind == "se":
        return SqueezeExcitation(channels, se_reduction)
    raise ValueError(f"unknown excitation {kind!r}; choose one of: {', '.join(EXCITATIONS)}")
