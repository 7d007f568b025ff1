"""Twins Training (STM paper, Sec. 3.5): two augmented views of each RGB clip through one shared net."""

from __future__ import annotations

from . import Recipe


def split_views(features: dict) -> tuple[dict, dict]:
    """Features of a forward over two stacked views -> one dict per view (dim 0 is view-major)."""
    first = {k: v[: v.shape[0] // 2] for k, v in features.items()}
    second = {k: v[v.shape[0] // 2 :] for k, v in features.items()}
    return first, second


def two_views(ctx, batch: dict, target) -> tuple[dict, dict]:
    """The loader cut a crop + flip per view; Twins Training's colour ops are applied here, per clip, drawn
    from the rank's own generator (seeded by seed, epoch and rank: `train.jitter_generator`)."""
    import torch

    from ..data import ACTIVITYNET_MEAN_RGB
    from ..losses.twins import augment_clips

    x = augment_clips(
        torch.cat([ctx.input(batch, "rgb"), ctx.input(batch, "rgb2")]),
        ctx.generator,
        mean=ACTIVITYNET_MEAN_RGB,
        pixel_max=255.0,
        spatial=False,
    )
    with ctx.autocast():
        first, second = split_views(ctx.net(x, views=2))  # each view its own BatchNorm batch, as the paper
        return first, ctx.loss_fn(first, target, student2=second)


def from_scratch_advice(cfg) -> str:
    if cfg.pretrained or cfg.clip_grad_norm:
        return ""
    return (
        "twins from scratch without --clip-grad-norm: the correlation loss's first gradients can derail "
        "training (docs/baselines.md); the TSN/TSM recipe clips at 20"
    )


TWINS = Recipe(
    "twins",
    "Train an RGB stream on two augmented views of each clip (twins loss).",
    modality="rgb",
    reads=("rgb",),
    default_loss="twins",
    step=two_views,
    views=2,
    advice=from_scratch_advice,
)
