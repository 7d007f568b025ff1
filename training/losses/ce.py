"""Plain cross-entropy (paper 001, eqs. 6-7): the teacher's loss on flow and the RGB-only baseline's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import FeatureDict, LossFn


def ce_loss(student: FeatureDict, target: torch.Tensor, teacher: FeatureDict | None = None) -> dict[str, torch.Tensor]:
    """{"loss", "ce"}: mean over the batch of -log softmax(logits)[target]; `teacher` is ignored."""
    ce = F.cross_entropy(student["logits"].float(), target)
    return {"loss": ce, "ce": ce}


def ce() -> LossFn:
    return ce_loss
