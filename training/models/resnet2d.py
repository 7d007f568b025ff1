"""2D ResNet backbone for segment-based (TSN-style) video nets, plus the video wrapper they share.

The backbone's state_dict keys are torchvision's (`conv1`, `bn1`, `layer1.0.conv2`, `layer1.0.downsample.0`,
`fc`), so an ImageNet `resnet50` checkpoint saved by torchvision loads with `load_imagenet_weights`
without torchvision being installed. Blocks take `(x, num_segments)` so temporal modules (TSM shift,
ACTION, STM) can see T while the net keeps the 2D layout `(B*T, C, H, W)`.

`SegmentNet` implements the model contract of `training/models/__init__.py`: input `(B, C, T, H, W)`,
T folded into the batch, per-segment logits averaged over T (TSN's average consensus).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Builds one residual block: (in_channels, planes, stride) -> block whose forward is (x, num_segments).
BlockFactory = Callable[[int, int, int], nn.Module]


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3) with an optional temporal module
    applied to the residual branch's input, before conv1 (TSM's "residual shift", ACTION's place)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, temporal: nn.Module | None = None):
        super().__init__()
        out_channels = planes * self.expansion
        self.temporal = temporal  # forward(x (B*T,C,H,W), num_segments) -> same shape
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor, num_segments: int) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x if self.temporal is None else self.temporal(x, num_segments)
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def plain_bottleneck(in_channels: int, planes: int, stride: int) -> nn.Module:
    return Bottleneck(in_channels, planes, stride)


class ResNet2d(nn.Module):
    """Bottleneck ResNet trunk (stem + 4 stages), no classifier. `stem_width` 64 and
    `blocks_per_stage` (3, 4, 6, 3) is ResNet-50; smaller values give CPU-sized variants."""

    def __init__(
        self,
        blocks_per_stage: Sequence[int] = (3, 4, 6, 3),
        block: BlockFactory = plain_bottleneck,
        in_channels: int = 3,
        stem_width: int = 64,
    ):
        super().__init__()
        if len(blocks_per_stage) != 4 or min(blocks_per_stage) < 1:
            raise ValueError(f"blocks_per_stage must be 4 positive ints, got {tuple(blocks_per_stage)}")
        self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem_width
        for stage, num_blocks in enumerate(blocks_per_stage):
            planes = stem_width * 2**stage
            blocks = []
            for i in range(num_blocks):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(block(channels, planes, stride))
                channels = planes * Bottleneck.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.num_features = channels
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init; temporal modules re-initialise their own layers afterwards where it matters.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if hasattr(m, "reset_temporal_parameters"):
                m.reset_temporal_parameters()

    def forward_stages(self, frames: torch.Tensor, num_segments: int) -> dict[str, torch.Tensor]:
        """frames: (B*T, C, H, W) -> {"res2".."res5": (B*T, C_s, H_s, W_s)}."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(frames))))
        stages = {}
        for stage in range(1, 5):
            for block in getattr(self, f"layer{stage}"):
                x = block(x, num_segments)
            stages[f"res{stage + 1}"] = x
        return stages


class SegmentNet(nn.Module):
    """TSN-style video classifier around a 2D trunk: (B, C, T, H, W) -> logits (B, K), consensus = mean
    over the T segments. The classifier is `fc` (torchvision's name), so checkpoints stay comparable."""

    sampling = "segments"

    def __init__(self, backbone: ResNet2d, num_classes: int, dropout: float = 0.5):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(backbone.num_features, num_classes)
        # TSN / TSM / STM reference code: a near-zero head, so early gradients reach a pretrained trunk intact.
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"expected video (B, C, T, H, W), got shape {tuple(x.shape)}")
        batch, channels, num_segments, height, width = x.shape
        frames = x.transpose(1, 2).reshape(batch * num_segments, channels, height, width)
        out = self.backbone.forward_stages(frames, num_segments)
        pooled_per_frame = F.adaptive_avg_pool2d(out["res5"], 1).flatten(1)  # (B*T, F)
        logits_per_frame = self.fc(self.dropout(pooled_per_frame)).view(batch, num_segments, -1)
        out["pool"] = pooled_per_frame.view(batch, num_segments, -1).mean(1)
        out["logits"] = logits_per_frame.mean(1)  # average consensus over segments
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["logits"]


def load_imagenet_weights(model: SegmentNet, path: str | Path) -> list[str]:
    """Loads a torchvision-format ImageNet ResNet state_dict (a `.pth` holding the dict, or a dict under
    "state_dict"/"model") into `model.backbone`; the ImageNet `fc` is dropped. A stem with
    `in_channels != 3` (e.g. 2-channel flow) gets the RGB kernel averaged over colour and replicated
    (TSN's cross-modality init). Returns the backbone keys left at their init (the temporal modules'),
    and raises if any ImageNet key fails to match, naming it."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith(("fc.", "module.fc."))}
    target = model.backbone.state_dict()
    stem = state.get("conv1.weight")
    if stem is not None and stem.shape[1] != target["conv1.weight"].shape[1]:
        in_channels = target["conv1.weight"].shape[1]
        state["conv1.weight"] = stem.mean(1, keepdim=True).expand(-1, in_channels, -1, -1).clone()
    unexpected = sorted(set(state) - set(target))
    wrong_shape = sorted(k for k in state if k in target and state[k].shape != target[k].shape)
    if unexpected or wrong_shape:
        raise ValueError(
            f"{path}: ImageNet keys that do not fit this backbone: unexpected={unexpected[:5]} "
            f"wrong_shape={[(k, tuple(state[k].shape), tuple(target[k].shape)) for k in wrong_shape[:5]]}"
        )
    missing = [
        k
        for k in model.backbone.load_state_dict(state, strict=False).missing_keys
        if not k.endswith("num_batches_tracked")
    ]  # older torchvision files omit this BN counter
    missing_imagenet = [k for k in missing if _TORCHVISION_KEY.match(k)]
    if missing_imagenet:
        raise ValueError(
            f"{path}: lacks ImageNet ResNet keys this backbone needs: {missing_imagenet[:5]} "
            f"({len(missing_imagenet)} in all); is it a different depth?"
        )
    return sorted(missing)


# Keys a torchvision ResNet checkpoint must provide; anything else (temporal modules) starts from its init.
_TORCHVISION_KEY = re.compile(r"^(conv1|bn1|layer\d+\.\d+\.(conv[123]|bn[123]|downsample\.[01]))\.")


# Trunk shapes by name: (blocks_per_stage, stem_width). "tiny" keeps every stage (so res2..res5 and the
# temporal modules are exercised) at 1/4 width and one block per stage: CPU demos on 64x64 frames.
ARCHS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "r50": ((3, 4, 6, 3), 64),
    "r101": ((3, 4, 23, 3), 64),
    "tiny": ((1, 1, 1, 1), 16),
}


def build_segment_net(
    block: BlockFactory,
    arch: str,
    num_classes: int,
    in_channels: int = 3,
    pretrained: str | Path | None = None,
    dropout: float = 0.5,
) -> SegmentNet:
    """One entry point for every 2D family: trunk `arch` built from `block`, TSN head, optional
    ImageNet weights from a local torchvision-format file."""
    if arch not in ARCHS:
        raise ValueError(f"unknown 2D ResNet arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    blocks_per_stage, stem_width = ARCHS[arch]
    model = SegmentNet(ResNet2d(blocks_per_stage, block, in_channels, stem_width), num_classes, dropout)
    if pretrained is not None:
        load_imagenet_weights(model, pretrained)
    return model
