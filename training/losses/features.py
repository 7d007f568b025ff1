"""Helpers the distillation losses share: fetching matching student / teacher features, Gram matrices."""

from __future__ import annotations

import torch

from . import FeatureDict


def feature_pair(student: FeatureDict, teacher: FeatureDict | None, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(student[key], teacher[key]) as float32, the teacher's detached; shapes must agree."""
    if teacher is None:
        raise ValueError(f"this loss distils from a teacher: pass teacher=<its forward_features dict> (needs {key!r})")
    for name, feats in (("student", student), ("teacher", teacher)):
        if key not in feats:
            raise KeyError(f"{name} features have no {key!r}; they have {sorted(feats)}")
    s, t = student[key], teacher[key]
    if s.shape != t.shape:
        raise ValueError(f"student and teacher {key!r} differ in shape: {tuple(s.shape)} vs {tuple(t.shape)}")
    # float32 so that half-precision activations under autocast neither overflow nor lose the small terms
    return s.float(), t.detach().float()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, C, C) Gram matrices f f^T / (C * prod(spatial)) (paper 002, eq. 3).

    Computed in float32 with autocast off: the sums run over T*H*W products and overflow in fp16.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.float().flatten(2)
        return flat @ flat.transpose(1, 2) / (flat.shape[1] * flat.shape[2])
