"""Dual-action Stream loss, paper 002 eqs. (2)-(4):

    L_MAE = 1/L sum_i mean|f_DS(i) - f_FLOW(i)|                                   (2)
    L_G   = 1/L' sum_i mean|G(f_DS(i)) - G(f_FLOW(i))|,  G(f) = f f^T / (C_i T_i H_i W_i)  (3)
    L_DS  = CE(h_DS, y) + alpha (L_MAE + L_G),  alpha = 50                          (4)

What the paper leaves open, and what we chose:
- levels: eq. (2) runs over every layer before the last linear one; the contract exposes the stage
  outputs res2..res5 and the pooled vector, so MAE uses all five and the Gram term the four feature
  blocks res2..res5 (the pooled vector has no T, H, W). Each sum is divided by its own number of
  levels (the paper's 1/(n-1)).
- ||.||_1 is read as PyTorch's L1Loss, a mean over elements (and batch), as the name "mean absolute
  error" says; the literal sum would scale with the feature-map size and swamp CE at alpha = 50.
  Eq. (3) uses the same ||.||_1, over the (C_i, C_i) Gram entries.
- the Gram term has its own weight `gram_weight` (1 = eq. (4)); 0 is paper 002's ablation without it.
  At init the Gram L1 of mean-read (C, C) entries is a small share of the MAE (~0.3% on the tiny demo
  net), so a larger weight is the knob to give it a say.
- G is taken per sample (per frame for 2D nets, whose stage outputs are (B*T, C, H, W)) over the
  C_i x (T_i H_i W_i) flattened block, normalised as eq. (3) by C_i T_i H_i W_i.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F

from . import FeatureDict, LossFn
from .features import feature_pair, gram_matrix

MAE_LEVELS = ("res2", "res3", "res4", "res5", "pool")
GRAM_LEVELS = ("res2", "res3", "res4", "res5")


def dual_action_loss(
    student: FeatureDict,
    target: torch.Tensor,
    teacher: FeatureDict | None = None,
    *,
    alpha: float = 50.0,
    gram_weight: float = 1.0,
    mae_levels: Sequence[str] = MAE_LEVELS,
    gram_levels: Sequence[str] = GRAM_LEVELS,
) -> dict[str, torch.Tensor]:
    """{"loss" = ce + alpha * (mae + gram_weight * gram), "ce", "mae", "gram"}."""
    ce = F.cross_entropy(student["logits"].float(), target)
    mae = sum(F.l1_loss(*feature_pair(student, teacher, k)) for k in mae_levels) / len(mae_levels)
    gram = sum(F.l1_loss(*map(gram_matrix, feature_pair(student, teacher, k))) for k in gram_levels) / len(gram_levels)
    return {"loss": ce + alpha * (mae + gram_weight * gram), "ce": ce, "mae": mae, "gram": gram}


def dual_action(
    alpha: float = 50.0,
    gram_weight: float = 1.0,
    mae_levels: Sequence[str] = MAE_LEVELS,
    gram_levels: Sequence[str] = GRAM_LEVELS,
) -> LossFn:
    if not mae_levels or not gram_levels:
        raise ValueError(f"dual_action needs at least one level each, got {mae_levels=} {gram_levels=}")
    if gram_weight < 0:
        raise ValueError(f"dual_action gram_weight {gram_weight}: must be >= 0 (0 = without the Gram term)")
    return partial(
        dual_action_loss,
        alpha=alpha,
        gram_weight=gram_weight,
        mae_levels=tuple(mae_levels),
        gram_levels=tuple(gram_levels),
    )
