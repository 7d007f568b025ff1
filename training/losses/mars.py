"""MARS (Crasto et al., CVPR 2019): CE + alpha * MSE between student and teacher pooled features.

As MARS_train.py: `nn.MSELoss()` (mean over batch and feature dims) of the avgpool features, the
vector the fc sees, with alpha = 50; paper 002 eq. (1) writes the same distance as a norm.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from . import FeatureDict, LossFn
from .features import feature_pair


def mars_loss(
    student: FeatureDict, target: torch.Tensor, teacher: FeatureDict | None = None, *, alpha: float = 50.0
) -> dict[str, torch.Tensor]:
    """{"loss" = ce + alpha * feat_mse, "ce", "feat_mse"}."""
    s, t = feature_pair(student, teacher, "pool")
    ce = F.cross_entropy(student["logits"].float(), target)
    feat_mse = F.mse_loss(s, t)
    return {"loss": ce + alpha * feat_mse, "ce": ce, "feat_mse": feat_mse}


def mars(alpha: float = 50.0) -> LossFn:
    return partial(mars_loss, alpha=alpha)
