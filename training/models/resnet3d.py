"""3D ResNet / ResNeXt in the layout of Hara et al.'s 3D-ResNets (CVPR 2018), as MARS and IMRS use them.

Layout (so Kinetics checkpoints of that project load key for key, see `pretrained.py`):
conv1 7x7x7 stride (1,2,2) pad 3 -> bn1 -> relu -> maxpool 3x3x3 stride 2 -> layer1..layer4
(Res2..Res5; stride 2 from layer2 on) -> global average pool -> fc. Shortcut B (default) is a
1x1x1 conv + BN projection wherever the shape changes; shortcut A is the parameter-free
subsample-and-zero-pad of the original ResNet-18/34 checkpoints.
ResNeXt-101 (cardinality 32, widths 128..1024, expansion 2) with 3 input channels and 400 classes
has exactly 48,340,816 parameters, the 48.34M IMRS reports for it; `attention='ce'` adds the IMRS CE
module after each of Res2..Res5 (4 x k = 12 parameters at k=3), `attention='se'` an SE block there.

Input `x: float32 (B, C, T, H, W)`; `forward_features` returns the stage outputs res2..res5
(B, C_i, T_i, H_i, W_i), "pool" (B, F) (what the fc sees) and "logits" (B, num_classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .excitation import make_excitation


def _conv3x3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, cardinality: int = 1):
        super().__init__()
        self.conv1 = _conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1x1 reduce to `planes` -> 3x3x3 -> 1x1x1 expand to 4 * planes (ResNet; cardinality unused)."""

    expansion = 4
    grouped = False

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, cardinality: int = 1):
        super().__init__()
        if not self.grouped:
            cardinality = 1
        # ResNeXt: 3D-ResNets' ResNeXtBottleneck width, cardinality * planes/32 (= planes at C=32)
        mid = cardinality * (planes // 32) if self.grouped else planes
        self.conv1 = nn.Conv3d(inplanes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = _conv3x3x3(mid, mid, stride, groups=cardinality)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNeXtBottleneck(Bottleneck):
    """As Bottleneck with the 3x3x3 conv in `cardinality` groups and expansion 2."""

    expansion = 2
    grouped = True


class ZeroPadShortcut(nn.Module):
    """Shortcut A: subsample by `stride` and zero-pad the channels up to `out_channels` (no params)."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


class ResNet3D(nn.Module):
    """Hara et al.'s 3D ResNet / ResNeXt with an optional channel excitation after each stage."""

    sampling = "consecutive"  # T consecutive frames, convolved over time

    def __init__(
        self,
        block,
        layers: list[int],
        widths: list[int],
        num_classes: int,
        in_channels: int = 3,
        *,
        stem_channels: int = 64,
        cardinality: int = 1,
        shortcut: str = "B",
        attention: str = "none",
        ce_kernel: int = 3,
        se_reduction: int = 16,
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"need num_classes >= 1 and in_channels >= 1, got {num_classes}, {in_channels}")
        self.in_channels, self.num_classes, self.attention = in_channels, num_classes, attention
        self.conv1 = nn.Conv3d(in_channels, stem_channels, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        inplanes = stem_channels
        stages = []
        for i, (planes, n_blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            out = planes * block.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = (
                    ZeroPadShortcut(out, stride)
                    if shortcut == "A"
                    else nn.Sequential(nn.Conv3d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm3d(out))
                )
            blocks = [block(inplanes, planes, stride, downsample, cardinality)]
            blocks += [block(out, planes, 1, None, cardinality) for _ in range(1, n_blocks)]
            stages.append(nn.Sequential(*blocks))
            inplanes = out
        # named layer1..layer4 so 3D-ResNets checkpoint keys match one to one
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.excite = nn.ModuleList(
            make_excitation(attention, planes * block.expansion, ce_kernel=ce_kernel, se_reduction=se_reduction)
            for planes in widths
        )
        self.avgpool = nn.AdaptiveAvgPool3d(1)  # any clip size, unlike the original's fixed AvgPool3d
        self.fc = nn.Linear(inplanes, num_classes)
        self.num_features = inplanes
        for m in self.modules():  # the initialisation of 3D-ResNets
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, T, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = {}
        for i, (stage, excite) in enumerate(zip((self.layer1, self.layer2, self.layer3, self.layer4), self.excite)):
            x = excite(stage(x))
            feats[f"res{i + 2}"] = x
        feats["pool"] = self.avgpool(x).flatten(1)
        feats["logits"] = self.fc(feats["pool"])
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["logits"]


def _build(block, layers, widths, num_classes, in_channels, pretrained: str | None = None, **kwargs) -> ResNet3D:
    model = ResNet3D(block, layers, widths, num_classes, in_channels, **kwargs)
    if pretrained:
        from .pretrained import load_3dresnets_checkpoint

        load_3dresnets_checkpoint(model, pretrained)
    return model


RESNET_WIDTHS = [64, 128, 256, 512]
RESNEXT_WIDTHS = [128, 256, 512, 1024]


def resnet3d_tiny(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    """ResNet-10 layout at 1/8 width (8-16-32-64, BasicBlock): for CPU demos and tests."""
    kwargs.setdefault("stem_channels", 8)
    return _build(BasicBlock, [1, 1, 1, 1], [8, 16, 32, 64], num_classes, in_channels, **kwargs)


def resnet3d_18(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    return _build(BasicBlock, [2, 2, 2, 2], RESNET_WIDTHS, num_classes, in_channels, **kwargs)


def resnet3d_34(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    return _build(BasicBlock, [3, 4, 6, 3], RESNET_WIDTHS, num_classes, in_channels, **kwargs)


def resnet3d_50(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    return _build(Bottleneck, [3, 4, 6, 3], RESNET_WIDTHS, num_classes, in_channels, **kwargs)


def resnet3d_101(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    return _build(Bottleneck, [3, 4, 23, 3], RESNET_WIDTHS, num_classes, in_channels, **kwargs)


def resnext3d_50(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    kwargs.setdefault("cardinality", 32)
    return _build(ResNeXtBottleneck, [3, 4, 6, 3], RESNEXT_WIDTHS, num_classes, in_channels, **kwargs)


def resnext3d_101(num_classes: int, in_channels: int = 3, **kwargs) -> ResNet3D:
    """The MARS / IMRS backbone; `attention='ce'` gives the IMRS network (48,340,828 params at 400 classes)."""
    kwargs.setdefault("cardinality", 32)
    return _build(ResNeXtBottleneck, [3, 4, 23, 3], RESNEXT_WIDTHS, num_classes, in_channels, **kwargs)
