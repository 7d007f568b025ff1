"""TSN (Wang et al., ECCV 2016) with a ResNet trunk: a plain 2D ResNet on T sparsely sampled segments,
per-segment logits averaged. No temporal modelling: the baseline every 2D method is measured against."""

from __future__ import annotations

from training.models.resnet2d import SegmentNet, build_segment_net, plain_bottleneck


def tsn_r50(num_classes: int, in_channels: int = 3, **kwargs) -> SegmentNet:
    return build_segment_net(plain_bottleneck, "r50", num_classes, in_channels, **kwargs)


def tsn_tiny(num_classes: int, in_channels: int = 3, **kwargs) -> SegmentNet:
    return build_segment_net(plain_bottleneck, "tiny", num_classes, in_channels, **kwargs)
