"""IMRS linear combination loss, paper 001 eq. (8):

    L = CE(s_RGB, y) + lambda1 * d(fc_RGB, fc_Flow) + lambda2 * KL(P(fc_RGB) || P(fc_Flow)),  lambda1=50, lambda2=200

What the paper leaves open, and what we chose:
- fc_* are "the high-level global features ... from the layer preceding the last fully-connected
  layer" (section 1, as MARS): the "pool" vector. Section 3.1 says instead "the output of the fully
  connected layer"; `feature="logits"` selects that reading.
- d is the MSE of MARS, whose code IMRS follows: mean over batch and feature dims of (s - t)^2.
- P(fc) = softmax over the feature dimension at temperature 1 (no temperature in the paper), and
  eq. (9) KL(P||Q) = sum_x P(x) (log P(x) - log Q(x)), averaged over the batch. P is the student's.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from . import FeatureDict, LossFn
from .features import feature_pair

FEATURES = ("pool", "logits")


def imrs_loss(
    student: FeatureDict,
    target: torch.Tensor,
    teacher: FeatureDict | None = None,
    *,
    lambda1: float = 50.0,
    lambda2: float = 200.0,
    feature: str = "pool",
) -> dict[str, torch.Tensor]:
    """{"loss" = ce + lambda1 * feat_mse + lambda2 * feat_kl, "ce", "feat_mse", "feat_kl"}."""
    s, t = feature_pair(student, teacher, feature)
    ce = F.cross_entropy(student["logits"].float(), target)
    feat_mse = F.mse_loss(s, t)
    log_p, log_q = F.log_softmax(s, dim=1), F.log_softmax(t, dim=1)
    feat_kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
    return {"loss": ce + lambda1 * feat_mse + lambda2 * feat_kl, "ce": ce, "feat_mse": feat_mse, "feat_kl": feat_kl}


def imrs(lambda1: float = 50.0, lambda2: float = 200.0, feature: str = "pool") -> LossFn:
    if feature not in FEATURES:
        raise ValueError(f"imrs feature must be one of {FEATURES}, got {feature!r}")
    return partial(imrs_loss, lambda1=lambda1, lambda2=lambda2, feature=feature)
