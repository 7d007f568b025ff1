"""ACTION-Net (Wang, She & Smolic, CVPR 2021): spatio-temporal, channel and motion excitation.

One `ActionModule` sits on the residual branch of every ResNet bottleneck, before conv1 (paper Fig. 3;
the public code wraps `conv1`). Layer shapes follow the paper's Sec. 3 and the public reference code
(V-Sense/ACTION-Net `models/action.py`), with C = the bottleneck's input channels and r = C // 16:

- learnable depthwise temporal shift: Conv1d(C, C, 3, groups=C) over T, initialised to TSM's shift;
- STE: mean over channels -> Conv3d(1, 1, 3x3x3) over (T, H, W) -> sigmoid mask (N, T, 1, H, W);
- CE: spatial mean -> 1x1 squeeze C->r -> Conv1d(r, r, 3) over T -> ReLU -> 1x1 expand r->C -> sigmoid;
- ME: 1x1 squeeze C->r -> BN -> depthwise 3x3 on frame t+1 minus frame t (last segment zero) -> spatial
  mean -> 1x1 expand r->C -> sigmoid.

Each path outputs X + X * M (paper eq. 3) on the shifted X; the module returns the sum over the enabled
paths, so `paths=("me",)` is the paper's Table 3 "ME" row.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from training.models.resnet2d import Bottleneck, SegmentNet, build_segment_net, conv1x1

ALL_PATHS = ("ste", "ce", "me")


class ActionModule(nn.Module):
    def __init__(self, channels: int, paths: Sequence[str] = ALL_PATHS, reduction: int = 16, shift_div: int = 8):
        super().__init__()
        paths = tuple(paths.split(",")) if isinstance(paths, str) else tuple(paths)  # "ste,me" from a CLI
        if not paths or set(paths) - set(ALL_PATHS) or len(set(paths)) != len(paths):
            raise ValueError(f"paths must be a non-empty subset of {ALL_PATHS}, got {paths}")
        reduced = channels // reduction
        if reduced < 1:
            raise ValueError(f"channels={channels} < reduction={reduction}: squeeze would have 0 channels")
        self.paths = paths
        self.shift_div = shift_div
        self.shift = nn.Conv1d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=False)
        if "ste" in paths:
            self.ste_conv = nn.Conv3d(1, 1, kernel_size=3, padding=1, bias=False)
        if "ce" in paths:
            self.ce_squeeze = conv1x1(channels, reduced)
            self.ce_temporal = nn.Conv1d(reduced, reduced, kernel_size=3, padding=1, bias=False)
            self.ce_expand = conv1x1(reduced, channels)
        if "me" in paths:
            self.me_squeeze = conv1x1(channels, reduced)
            self.me_bn = nn.BatchNorm2d(reduced)
            self.me_motion = nn.Conv2d(reduced, reduced, kernel_size=3, padding=1, groups=reduced, bias=False)
            self.me_expand = conv1x1(reduced, channels)
        self.reset_temporal_parameters()

    def reset_temporal_parameters(self) -> None:
        """PyTorch's default init for the excitation layers (the reference inserts the module into an
        already-initialised net, so the trunk's Kaiming init never reaches them), and TSM's shift as
        the starting point of the learnable shift: C/8 channels from t+1, C/8 from t-1, rest identity."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        channels = self.shift.weight.shape[0]
        fold = channels // self.shift_div
        with torch.no_grad():
            w = self.shift.weight  # (C, 1, 3): taps for t-1, t, t+1
            w.zero_()
            w[:fold, 0, 2] = 1
            w[fold : 2 * fold, 0, 0] = 1
            w[2 * fold :, 0, 1] = 1

    def forward(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        """frames: (N*T, C, H, W) -> (N*T, C, H, W)."""
        batch_segments, channels, height, width = frames.shape
        if batch_segments % num_segments:
            raise ValueError(f"leading dim {batch_segments} is not a multiple of num_segments={num_segments}")
        n = batch_segments // num_segments
        # Depthwise conv over T as a (3,1,1) Conv3d: the same weights as the reference's Conv1d on
        # (N*H*W, C, T), without permuting H and W into the batch.
        video = frames.view(n, num_segments, channels, height, width).transpose(1, 2)  # (N, C, T, H, W)
        video = F.conv3d(video, self.shift.weight.unsqueeze(-1).unsqueeze(-1), padding=(1, 0, 0), groups=channels)
        shifted = video.transpose(1, 2).reshape(batch_segments, channels, height, width)

        out = torch.zeros_like(shifted)
        if "ste" in self.paths:
            out = out + shifted * (1 + self.ste_mask(video))
        if "ce" in self.paths:
            out = out + shifted * (1 + self.ce_mask(shifted, num_segments))
        if "me" in self.paths:
            out = out + shifted * (1 + self.me_mask(shifted, num_segments))
        return out

    def ste_mask(self, video: torch.Tensor) -> torch.Tensor:
        """video: (N, C, T, H, W) -> mask (N*T, 1, H, W)."""
        n, _, num_segments, height, width = video.shape
        mask = torch.sigmoid(self.ste_conv(video.mean(1, keepdim=True)))  # (N, 1, T, H, W)
        return mask.transpose(1, 2).reshape(n * num_segments, 1, height, width)

    def ce_mask(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        """frames: (N*T, C, H, W) -> mask (N*T, C, 1, 1)."""
        squeezed = self.ce_squeeze(frames.mean((2, 3), keepdim=True))  # (N*T, r, 1, 1)
        reduced = squeezed.shape[1]
        over_time = squeezed.view(-1, num_segments, reduced).transpose(1, 2)  # (N, r, T)
        over_time = F.relu(self.ce_temporal(over_time))
        back = over_time.transpose(1, 2).reshape(-1, reduced, 1, 1)
        return torch.sigmoid(self.ce_expand(back))

    def me_mask(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        """frames: (N*T, C, H, W) -> mask (N*T, C, 1, 1); motion = K * F[t+1] - F[t] (paper eq. 9)."""
        squeezed = self.me_bn(self.me_squeeze(frames))  # (N*T, r, H, W)
        _, reduced, height, width = squeezed.shape
        transformed = self.me_motion(squeezed).view(-1, num_segments, reduced, height, width)
        motion = transformed[:, 1:] - squeezed.view(-1, num_segments, reduced, height, width)[:, :-1]
        motion = F.pad(motion, (0, 0, 0, 0, 0, 0, 0, 1))  # zero motion for the last segment
        pooled = motion.mean((3, 4)).reshape(-1, reduced, 1, 1)
        return torch.sigmoid(self.me_expand(pooled))


def action_bottleneck(
    in_channels: int, planes: int, stride: int, paths: Sequence[str] = ALL_PATHS, reduction: int = 16
) -> Bottleneck:
    return Bottleneck(in_channels, planes, stride, temporal=ActionModule(in_channels, paths, reduction))


def action_r50(
    num_classes: int, in_channels: int = 3, paths: Sequence[str] = ALL_PATHS, reduction: int = 16, **kwargs
) -> SegmentNet:
    block = partial(action_bottleneck, paths=paths, reduction=reduction)
    return build_segment_net(block, "r50", num_classes, in_channels, **kwargs)


def action_tiny(
    num_classes: int, in_channels: int = 3, paths: Sequence[str] = ALL_PATHS, reduction: int = 16, **kwargs
) -> SegmentNet:
    block = partial(action_bottleneck, paths=paths, reduction=reduction)
    return build_segment_net(block, "tiny", num_classes, in_channels, **kwargs)
