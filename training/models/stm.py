"""STM (Jiang et al., ICCV 2019; Wang et al., "Learning SpatioTemporal and Motion Features in a Unified
2D Network", TPAMI): every ResNet bottleneck becomes an STM block.

STM block (paper Sec. 3.4, Fig. 3): 1x1 conv C_in->p (+BN, ReLU), then two parallel paths on the p
channels, summed, then the 1x1 conv p->4p (+BN) and the identity shortcut:
- CSTM (Sec. 3.1, eq. 1): channel-wise temporal Conv1d(p, p, 3, groups=p) over T, then the block's
  ordinary 3x3 conv (+BN, ReLU). Initialised like the authors' code: p/4 channels read t-1, p/2 t,
  p/4 t+1, so ImageNet weights start as a TSM-like net.
- CMM (Sec. 3.2, eq. 2): 1x1 conv p->p/r (+BN, r = 16), then H_t = F_t - K * F_{t+1} with K a depthwise
  3x3 conv shared over time, zero for the last segment, then 1x1 conv p/r->p. On a stride-2 block the
  motion map is max-pooled 2x2 to the 3x3 conv's output size (as the authors' code does).
The conv1/bn1/conv2/bn2/conv3/bn3/downsample names are torchvision's, so ImageNet ResNet weights load.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from training.models.resnet2d import Bottleneck, SegmentNet, build_segment_net, conv1x1

ALL_MODULES = ("cstm", "cmm")


class ChannelwiseMotion(nn.Module):
    """CMM on (N*T, p, H, W) -> (N*T, p, H, W)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        reduced = channels // reduction
        if reduced < 1:
            raise ValueError(f"channels={channels} < reduction={reduction}: CMM would have 0 channels")
        self.reduce = conv1x1(channels, reduced)
        self.reduce_bn = nn.BatchNorm2d(reduced)
        self.motion = nn.Conv2d(reduced, reduced, kernel_size=3, padding=1, groups=reduced, bias=False)
        self.restore = conv1x1(reduced, channels)

    def forward(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        reduced = self.reduce_bn(self.reduce(frames))
        _, channels, height, width = reduced.shape
        per_segment = reduced.view(-1, num_segments, channels, height, width)
        transformed = self.motion(reduced).view(-1, num_segments, channels, height, width)
        motion = per_segment[:, :-1] - transformed[:, 1:]  # H_t = F_t - K * F_{t+1}, t < T
        motion = F.pad(motion, (0, 0, 0, 0, 0, 0, 0, 1))  # the last segment has no successor: zero
        return self.restore(motion.reshape(-1, channels, height, width))


class STMBlock(Bottleneck):
    """A bottleneck whose middle is CSTM + CMM; `modules` selects them for the paper's Table 6 ablation."""

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, modules: Sequence[str] = ALL_MODULES, reduction: int = 16
    ):
        super().__init__(in_channels, planes, stride)
        modules = tuple(modules.split(",")) if isinstance(modules, str) else tuple(modules)
        if not modules or set(modules) - set(ALL_MODULES):
            raise ValueError(f"modules must be a non-empty subset of {ALL_MODULES}, got {modules}")
        self.stm_modules = modules
        self.cstm_temporal = None
        self.cmm = None
        if "cstm" in modules:
            self.cstm_temporal = nn.Conv1d(planes, planes, kernel_size=3, padding=1, groups=planes, bias=False)
        if "cmm" in modules:
            self.cmm = ChannelwiseMotion(planes, reduction)
            # ceil_mode makes 2x2 pooling match the stride-2 3x3 conv's output size for odd sizes too.
            self.cmm_pool = nn.MaxPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.reset_temporal_parameters()

    def reset_temporal_parameters(self) -> None:
        if self.cstm_temporal is not None:
            planes = self.cstm_temporal.weight.shape[0]
            quarter = planes // 4
            with torch.no_grad():
                w = self.cstm_temporal.weight  # (p, 1, 3): taps for t-1, t, t+1
                w.zero_()
                w[:quarter, 0, 0] = 1
                w[quarter : planes - quarter, 0, 1] = 1
                w[planes - quarter :, 0, 2] = 1
        if self.cmm is not None:
            for m in self.cmm.modules():
                if m is not self.cmm and hasattr(m, "reset_parameters"):
                    m.reset_parameters()

    def cstm_temporal_fusion(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        """Eq. 1, G[c, t] = sum_i K[c, i] F[c, t + i]: the Conv1d applied as a (3,1,1) grouped Conv3d."""
        batch_segments, channels, height, width = frames.shape
        video = frames.view(-1, num_segments, channels, height, width).transpose(1, 2)  # (N, p, T, H, W)
        weight = self.cstm_temporal.weight.unsqueeze(-1).unsqueeze(-1)
        video = F.conv3d(video, weight, padding=(1, 0, 0), groups=channels)
        return video.transpose(1, 2).reshape(batch_segments, channels, height, width)

    def forward(self, x: torch.Tensor, num_segments: int) -> torch.Tensor:
        if x.shape[0] % num_segments:
            raise ValueError(f"leading dim {x.shape[0]} is not a multiple of num_segments={num_segments}")
        identity = x if self.downsample is None else self.downsample(x)
        reduced = self.relu(self.bn1(self.conv1(x)))  # (N*T, p, H, W)
        spatiotemporal = reduced
        if self.cstm_temporal is not None:
            spatiotemporal = self.cstm_temporal_fusion(reduced, num_segments)
        out = self.relu(self.bn2(self.conv2(spatiotemporal)))
        if self.cmm is not None:
            out = out + self.cmm_pool(self.cmm(reduced, num_segments))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def stm_r50(num_classes: int, in_channels: int = 3, modules: Sequence[str] = ALL_MODULES, **kwargs) -> SegmentNet:
    return build_segment_net(partial(STMBlock, modules=modules), "r50", num_classes, in_channels, **kwargs)


def stm_tiny(num_classes: int, in_channels: int = 3, modules: Sequence[str] = ALL_MODULES, **kwargs) -> SegmentNet:
    return build_segment_net(partial(STMBlock, modules=modules), "tiny", num_classes, in_channels, **kwargs)
