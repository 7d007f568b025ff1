"""TSM (Lin et al., ICCV 2019): zero-parameter temporal shift on the residual branch of every bottleneck.

1/`shift_div` of the channels take the next segment's features, another 1/`shift_div` the previous
segment's, the rest stay; the ends are zero-padded ("residual shift", the paper's best placement).
"""

from __future__ import annotations

import torch
from torch import nn

from training.models.resnet2d import Bottleneck, SegmentNet, build_segment_net


def temporal_shift(frames: torch.Tensor, num_segments: int, shift_div: int = 8) -> torch.Tensor:
    """frames: (B*T, C, H, W). Channels [0, C/div) read t+1, [C/div, 2C/div) read t-1, zero at the ends."""
    batch_segments, channels, height, width = frames.shape
    if batch_segments % num_segments:
        raise ValueError(f"leading dim {batch_segments} is not a multiple of num_segments={num_segments}")
    x = frames.view(-1, num_segments, channels, height, width)
    fold = channels // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # from the future
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # from the past
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(batch_segments, channels, height, width)


class TemporalShift(nn.Module):
    def __init__(self, shift_div: int = 8):
        super().__init__()
        self.shift_div = shift_div

    def forward(self, frames: torch.Tensor, num_segments: int) -> torch.Tensor:
        return temporal_shift(frames, num_segments, self.shift_div)


def tsm_bottleneck(in_channels: int, planes: int, stride: int) -> Bottleneck:
    return Bottleneck(in_channels, planes, stride, temporal=TemporalShift())


def tsm_r50(num_classes: int, in_channels: int = 3, **kwargs) -> SegmentNet:
    return build_segment_net(tsm_bottleneck, "r50", num_classes, in_channels, **kwargs)


def tsm_tiny(num_classes: int, in_channels: int = 3, **kwargs) -> SegmentNet:
    return build_segment_net(tsm_bottleneck, "tiny", num_classes, in_channels, **kwargs)
